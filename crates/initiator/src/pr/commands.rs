//! The persistent reservation service actions on a [`Session`] (SPC-4 §6.15, §6.16): raw PR
//! IN / OUT, one helper per PR OUT service action, and the PR IN reports parsed.

use bytes::Bytes;
use ironlun_iscsi::pdu::task_attr::SIMPLE;
use ironlun_scsi::pr::{in_sa, out_sa};

use super::prin::{prin_cdb, Capabilities, FullStatus, ReadKeys, ReadReservation, PRIN_ALLOC};
use super::prout::{prout_cdb, ProutParams, RegisterAndMoveParams, RegisterFlags};
use super::PrType;
use crate::command::CommandResult;
use crate::session::Session;
use crate::{Error, Result};

impl Session {
    /// PERSISTENT RESERVE OUT with a raw parameter list (PARAMETER LIST LENGTH = its length).
    pub async fn pr_out(
        &self,
        lun: u64,
        service_action: u8,
        pr_type: u8,
        params: Vec<u8>,
    ) -> Result<CommandResult> {
        let len = u32::try_from(params.len())
            .map_err(|_| Error::Invalid("parameter list longer than 4 GiB".into()))?;
        let cdb = prout_cdb(service_action, 0, pr_type, len);
        let data = (!params.is_empty()).then_some(params);
        self.command(lun, &cdb, data, 0, SIMPLE).await
    }

    /// PERSISTENT RESERVE IN returning the raw result.
    pub async fn pr_in(&self, lun: u64, service_action: u8, alloc: u16) -> Result<CommandResult> {
        self.command(
            lun,
            &prin_cdb(service_action, alloc),
            None,
            u32::from(alloc),
            SIMPLE,
        )
        .await
    }

    /// REGISTER: `old` must be the nexus' current key (0 if unregistered), `new` 0 unregisters.
    pub async fn pr_register(
        &self,
        lun: u64,
        old: u64,
        new: u64,
        flags: &RegisterFlags,
    ) -> Result<CommandResult> {
        let p = flags.params(old, new).encode();
        self.pr_out(lun, out_sa::REGISTER, 0, p).await
    }

    /// REGISTER AND IGNORE EXISTING KEY.
    pub async fn pr_register_ignore(
        &self,
        lun: u64,
        new: u64,
        flags: &RegisterFlags,
    ) -> Result<CommandResult> {
        let p = flags.params(0, new).encode();
        self.pr_out(lun, out_sa::REGISTER_AND_IGNORE_EXISTING_KEY, 0, p)
            .await
    }

    pub async fn pr_reserve(&self, lun: u64, key: u64, t: PrType) -> Result<CommandResult> {
        self.pr_out_keys(lun, out_sa::RESERVE, t.code(), key, 0)
            .await
    }

    pub async fn pr_release(&self, lun: u64, key: u64, t: PrType) -> Result<CommandResult> {
        self.pr_out_keys(lun, out_sa::RELEASE, t.code(), key, 0)
            .await
    }

    pub async fn pr_clear(&self, lun: u64, key: u64) -> Result<CommandResult> {
        self.pr_out_keys(lun, out_sa::CLEAR, 0, key, 0).await
    }

    /// PREEMPT the registrations with key `victim` (reserving with `t` if they held it).
    pub async fn pr_preempt(
        &self,
        lun: u64,
        key: u64,
        victim: u64,
        t: PrType,
    ) -> Result<CommandResult> {
        self.pr_out_keys(lun, out_sa::PREEMPT, t.code(), key, victim)
            .await
    }

    /// PREEMPT AND ABORT: as PREEMPT, and the preempted nexuses' tasks are aborted.
    pub async fn pr_preempt_and_abort(
        &self,
        lun: u64,
        key: u64,
        victim: u64,
        t: PrType,
    ) -> Result<CommandResult> {
        self.pr_out_keys(lun, out_sa::PREEMPT_AND_ABORT, t.code(), key, victim)
            .await
    }

    /// REGISTER AND MOVE; the reservation keeps its type (the CDB TYPE is sent as `t`).
    pub async fn pr_register_and_move(
        &self,
        lun: u64,
        t: PrType,
        params: &RegisterAndMoveParams,
    ) -> Result<CommandResult> {
        self.pr_out(lun, out_sa::REGISTER_AND_MOVE, t.code(), params.encode())
            .await
    }

    /// REPLACE LOST RESERVATION (SPC-4 §5.13.11).
    pub async fn pr_replace_lost_reservation(
        &self,
        lun: u64,
        key: u64,
        t: PrType,
    ) -> Result<CommandResult> {
        self.pr_out_keys(lun, out_sa::REPLACE_LOST_RESERVATION, t.code(), key, 0)
            .await
    }

    /// READ KEYS, parsed; non-GOOD is an error.
    pub async fn pr_read_keys(&self, lun: u64) -> Result<ReadKeys> {
        ReadKeys::parse(&self.pr_in_data(lun, in_sa::READ_KEYS).await?)
    }

    /// READ RESERVATION, parsed; non-GOOD is an error.
    pub async fn pr_read_reservation(&self, lun: u64) -> Result<ReadReservation> {
        ReadReservation::parse(&self.pr_in_data(lun, in_sa::READ_RESERVATION).await?)
    }

    /// REPORT CAPABILITIES, parsed; non-GOOD is an error.
    pub async fn pr_report_capabilities(&self, lun: u64) -> Result<Capabilities> {
        Capabilities::parse(&self.pr_in_data(lun, in_sa::REPORT_CAPABILITIES).await?)
    }

    /// READ FULL STATUS, parsed; non-GOOD is an error.
    pub async fn pr_read_full_status(&self, lun: u64) -> Result<FullStatus> {
        FullStatus::parse(&self.pr_in_data(lun, in_sa::READ_FULL_STATUS).await?)
    }

    /// A PR IN report's parameter data, with room for many registrations ([`PRIN_ALLOC`]);
    /// non-GOOD is an error.
    async fn pr_in_data(&self, lun: u64, service_action: u8) -> Result<Bytes> {
        self.pr_in(lun, service_action, PRIN_ALLOC).await?.good()
    }

    /// PERSISTENT RESERVE OUT with the basic parameter list carrying only the two keys.
    async fn pr_out_keys(
        &self,
        lun: u64,
        service_action: u8,
        pr_type: u8,
        key: u64,
        sa_key: u64,
    ) -> Result<CommandResult> {
        let p = ProutParams::keys(key, sa_key).encode();
        self.pr_out(lun, service_action, pr_type, p).await
    }
}
