//! The ALUA commands on a [`Session`]: REPORT / SET TARGET PORT GROUPS (SPC-4 §6.36, §6.44),
//! the Device Identification VPD page (§7.8.6) and the TPGS bits of INQUIRY (§6.6.2).

use ironlun_iscsi::pdu::task_attr::SIMPLE;

use super::rtpg::{rtpg_cdb, stpg_cdb, stpg_params, Rtpg, StpgDescriptor};
use super::vpd::{DeviceIdentification, Tpgs};
use crate::command::CommandResult;
use crate::scsi::cdb;
use crate::session::Session;
use crate::{Error, Result};

impl Session {
    /// REPORT TARGET PORT GROUPS with an explicit allocation length, raw.
    pub async fn rtpg_raw(&self, lun: u64, extended: bool, alloc: u32) -> Result<CommandResult> {
        self.command(lun, &rtpg_cdb(extended, alloc), None, alloc, SIMPLE)
            .await
    }

    /// REPORT TARGET PORT GROUPS, parsed and complete (re-issued with a larger allocation
    /// length if the first answer was truncated); non-GOOD is an error.
    pub async fn report_target_port_groups(&self, lun: u64, extended: bool) -> Result<Rtpg> {
        let mut alloc = 1024u32;
        for _ in 0..3 {
            let d = self.rtpg_raw(lun, extended, alloc).await?.good()?;
            let r = Rtpg::parse(&d, extended)?;
            if !r.truncated {
                return Ok(r);
            }
            alloc = r.return_data_length.saturating_add(8);
        }
        Err(Error::Protocol(
            "RTPG data still truncated after growing the allocation length".into(),
        ))
    }

    /// SET TARGET PORT GROUPS with these descriptors (raw result: CHECK CONDITION is data).
    pub async fn set_target_port_groups(
        &self,
        lun: u64,
        descriptors: &[StpgDescriptor],
    ) -> Result<CommandResult> {
        self.stpg_raw(lun, stpg_params(descriptors)).await
    }

    /// SET TARGET PORT GROUPS with an arbitrary parameter list.
    pub async fn stpg_raw(&self, lun: u64, params: Vec<u8>) -> Result<CommandResult> {
        let len = u32::try_from(params.len())
            .map_err(|_| Error::Invalid("parameter list longer than 4 GiB".into()))?;
        let data = (!params.is_empty()).then_some(params);
        self.command(lun, &stpg_cdb(len), data, 0, SIMPLE).await
    }

    /// The Device Identification VPD page, parsed; non-GOOD is an error.
    pub async fn device_identification(&self, lun: u64) -> Result<DeviceIdentification> {
        let alloc = 1024u16;
        let d = self
            .command(
                lun,
                &cdb::inquiry(true, 0x83, alloc),
                None,
                alloc.into(),
                SIMPLE,
            )
            .await?
            .good()?;
        DeviceIdentification::parse(&d)
    }

    /// The TPGS bits of standard INQUIRY data; non-GOOD is an error.
    pub async fn inquiry_tpgs(&self, lun: u64) -> Result<Tpgs> {
        let d = self.inquiry(lun, false, 0, 96).await?.good()?;
        Tpgs::from_inquiry(&d)
    }
}
