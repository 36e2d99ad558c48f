//! SCSI on top of a [`Session`]: CDB builders, parameter data parsers and `Session` helpers
//! for common commands (SPC-4 §6: INQUIRY, REPORT LUNS, REQUEST SENSE, TEST UNIT READY,
//! MODE SENSE/SELECT; SBC-3 §5: READ CAPACITY(16), READ(16), WRITE(16), SYNCHRONIZE
//! CACHE(16)). Their outcome is a [`CommandResult`].

use bytes::Bytes;
use ironlun_iscsi::pdu::task_attr;
use ironlun_scsi::lun;

use crate::command::CommandResult;
use crate::session::Session;
use crate::{Error, Result};

/// READ CAPACITY(16) parameter data (SBC-3 §5.16.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub last_lba: u64,
    pub block_size: u32,
    /// LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT.
    pub lbppbe: u8,
    /// LBPME (thin provisioning) bit.
    pub lbpme: bool,
}

impl Capacity {
    pub fn parse(d: &[u8]) -> Result<Capacity> {
        if d.len() < 14 {
            return Err(Error::Protocol(format!(
                "READ CAPACITY(16) data of {} bytes",
                d.len()
            )));
        }
        let mut lba = [0u8; 8];
        lba.copy_from_slice(&d[0..8]);
        Ok(Capacity {
            last_lba: u64::from_be_bytes(lba),
            block_size: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
            lbppbe: d[13] & 0x0f,
            lbpme: d.get(14).is_some_and(|b| b & 0x80 != 0),
        })
    }
    pub fn blocks(&self) -> u64 {
        self.last_lba.saturating_add(1)
    }
}

/// Parse REPORT LUNS parameter data (SPC-4 §6.33.2) into LUN numbers; a LUN that is not a
/// single-level peripheral device or flat space address (SAM-5 §4.7) is an error.
pub fn parse_report_luns(d: &[u8]) -> Result<Vec<u64>> {
    if d.len() < 8 {
        return Err(Error::Protocol("REPORT LUNS data shorter than 8".into()));
    }
    let list_len = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    let end = (8 + list_len).min(d.len());
    d[8..end]
        .chunks_exact(8)
        .map(|c| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(c);
            lun::decode(raw)
                .map_err(|e| Error::Protocol(format!("REPORT LUNS entry {raw:02x?}: {e}")))
        })
        .collect()
}

/// The first REPORT LUNS allocation length: the header and 256 LUNs (SPC-4 §6.33.2).
const FIRST_REPORT_LUNS: u32 = 8 + 8 * 256;

/// The allocation length that gets the whole LUN list when REPORT LUNS data `d` was cut
/// short: the LUN LIST LENGTH is the whole list's whatever the allocation length (SPC-4
/// §6.33.2). At most the header and every single-level LUN (SAM-5 §4.7), which is all that
/// [`parse_report_luns`] reads; `None` when `d` holds the whole list.
fn report_luns_rest(d: &[u8]) -> Option<u32> {
    let list_len = u64::from(u32::from_be_bytes(d.get(..4)?.try_into().ok()?));
    let whole = (8 + list_len).min(8 + 8 * (lun::MAX_LUN + 1));
    (whole > d.len() as u64).then_some(whole as u32)
}

/// CDB builders: the typed CDBs of `ironlun_scsi::cdb` with the fields these commands use.
pub mod cdb {
    use ironlun_scsi::cdb::{
        Blocks, Inquiry, Lba, ModeSelect10, ModeSense10, ModeSense6, Read16, ReadCapacity16,
        ReportLuns, RequestSense, SynchronizeCache16, TestUnitReady, Write16,
    };

    pub fn test_unit_ready() -> [u8; 6] {
        TestUnitReady {}.encode()
    }
    pub fn inquiry(evpd: bool, page: u8, alloc: u16) -> [u8; 6] {
        Inquiry {
            evpd,
            page_code: page,
            allocation_length: alloc,
        }
        .encode()
    }
    pub fn request_sense(desc: bool, alloc: u8) -> [u8; 6] {
        RequestSense {
            desc,
            allocation_length: alloc,
        }
        .encode()
    }
    pub fn report_luns(select: u8, alloc: u32) -> [u8; 12] {
        ReportLuns {
            select_report: select,
            allocation_length: alloc,
        }
        .encode()
    }
    pub fn read_capacity16(alloc: u32) -> [u8; 16] {
        ReadCapacity16 {
            allocation_length: alloc,
            ..Default::default()
        }
        .encode()
    }
    pub fn read16(lba: u64, blocks: u32, fua: bool) -> [u8; 16] {
        Read16 {
            fua,
            lba: Lba(lba),
            transfer_length: Blocks(blocks),
            ..Default::default()
        }
        .encode()
    }
    pub fn write16(lba: u64, blocks: u32, fua: bool) -> [u8; 16] {
        Write16 {
            fua,
            lba: Lba(lba),
            transfer_length: Blocks(blocks),
            ..Default::default()
        }
        .encode()
    }
    pub fn sync_cache16(lba: u64, blocks: u32) -> [u8; 16] {
        SynchronizeCache16 {
            lba: Lba(lba),
            number_of_logical_blocks: Blocks(blocks),
            ..Default::default()
        }
        .encode()
    }
    pub fn mode_sense10(dbd: bool, pc: u8, page: u8, subpage: u8, alloc: u16) -> [u8; 10] {
        ModeSense10 {
            dbd,
            pc,
            page_code: page,
            subpage_code: subpage,
            allocation_length: alloc,
            ..Default::default()
        }
        .encode()
    }
    pub fn mode_sense6(dbd: bool, pc: u8, page: u8, subpage: u8, alloc: u8) -> [u8; 6] {
        ModeSense6 {
            dbd,
            pc,
            page_code: page,
            subpage_code: subpage,
            allocation_length: alloc,
        }
        .encode()
    }
    pub fn mode_select10(pf: bool, sp: bool, len: u16) -> [u8; 10] {
        ModeSelect10 {
            pf,
            sp,
            parameter_list_length: len,
        }
        .encode()
    }
}

const SIMPLE: u8 = task_attr::SIMPLE;

impl Session {
    pub async fn test_unit_ready(&self, lun: u64) -> Result<CommandResult> {
        self.command(lun, &cdb::test_unit_ready(), None, 0, SIMPLE)
            .await
    }

    pub async fn inquiry(
        &self,
        lun: u64,
        evpd: bool,
        page: u8,
        alloc: u16,
    ) -> Result<CommandResult> {
        self.command(
            lun,
            &cdb::inquiry(evpd, page, alloc),
            None,
            u32::from(alloc),
            SIMPLE,
        )
        .await
    }

    pub async fn request_sense(&self, lun: u64, desc: bool) -> Result<CommandResult> {
        self.command(lun, &cdb::request_sense(desc, 252), None, 252, SIMPLE)
            .await
    }

    /// REPORT LUNS (select report 0) parsed into LUN numbers; non-GOOD is an error. Asks
    /// for 256 LUNs, then once more for the whole list when the target has more.
    pub async fn report_luns(&self, lun: u64) -> Result<Vec<u64>> {
        let mut d = self.report_luns_data(lun, FIRST_REPORT_LUNS).await?;
        if let Some(alloc) = report_luns_rest(&d) {
            d = self.report_luns_data(lun, alloc).await?;
        }
        parse_report_luns(&d)
    }

    async fn report_luns_data(&self, lun: u64, alloc: u32) -> Result<Bytes> {
        self.command(lun, &cdb::report_luns(0, alloc), None, alloc, SIMPLE)
            .await?
            .good()
    }

    /// READ CAPACITY(16), parsed; non-GOOD is an error.
    pub async fn read_capacity16(&self, lun: u64) -> Result<Capacity> {
        let d = self
            .command(lun, &cdb::read_capacity16(32), None, 32, SIMPLE)
            .await?
            .good()?;
        Capacity::parse(&d)
    }

    pub async fn read16(
        &self,
        lun: u64,
        lba: u64,
        blocks: u32,
        block_size: u32,
    ) -> Result<CommandResult> {
        let len = blocks
            .checked_mul(block_size)
            .ok_or_else(|| Error::Invalid("transfer length overflows".into()))?;
        self.command(lun, &cdb::read16(lba, blocks, false), None, len, SIMPLE)
            .await
    }

    /// WRITE(16) of `data` (whole blocks of `block_size`), FUA optional.
    pub async fn write16(
        &self,
        lun: u64,
        lba: u64,
        data: Vec<u8>,
        block_size: u32,
        fua: bool,
    ) -> Result<CommandResult> {
        if block_size == 0 || !data.len().is_multiple_of(block_size as usize) {
            return Err(Error::Invalid("data is not whole blocks".into()));
        }
        let blocks = u32::try_from(data.len() / block_size as usize)
            .map_err(|_| Error::Invalid("too many blocks".into()))?;
        self.command(lun, &cdb::write16(lba, blocks, fua), Some(data), 0, SIMPLE)
            .await
    }

    /// SYNCHRONIZE CACHE(16) of the whole LU.
    pub async fn sync_cache(&self, lun: u64) -> Result<CommandResult> {
        self.command(lun, &cdb::sync_cache16(0, 0), None, 0, SIMPLE)
            .await
    }

    pub async fn mode_sense10(
        &self,
        lun: u64,
        pc: u8,
        page: u8,
        subpage: u8,
        alloc: u16,
    ) -> Result<CommandResult> {
        self.command(
            lun,
            &cdb::mode_sense10(false, pc, page, subpage, alloc),
            None,
            u32::from(alloc),
            SIMPLE,
        )
        .await
    }

    pub async fn mode_sense6(
        &self,
        lun: u64,
        pc: u8,
        page: u8,
        subpage: u8,
        alloc: u8,
    ) -> Result<CommandResult> {
        self.command(
            lun,
            &cdb::mode_sense6(false, pc, page, subpage, alloc),
            None,
            u32::from(alloc),
            SIMPLE,
        )
        .await
    }

    /// MODE SELECT(10) with PF = 1 and the given parameter list.
    pub async fn mode_select10(
        &self,
        lun: u64,
        sp: bool,
        params: Vec<u8>,
    ) -> Result<CommandResult> {
        let len = u16::try_from(params.len())
            .map_err(|_| Error::Invalid("parameter list longer than 65535".into()))?;
        self.command(
            lun,
            &cdb::mode_select10(true, sp, len),
            Some(params),
            0,
            SIMPLE,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironlun_scsi::opcode;
    use proptest::prelude::*;

    #[test]
    fn capacity_parses_and_refuses_short_data() {
        let mut d = vec![0u8; 32];
        d[0..8].copy_from_slice(&0x1f_ffffu64.to_be_bytes());
        d[8..12].copy_from_slice(&512u32.to_be_bytes());
        d[13] = 3;
        d[14] = 0x80;
        let c = Capacity::parse(&d).unwrap();
        assert_eq!(
            (c.last_lba, c.blocks(), c.block_size),
            (0x1f_ffff, 0x20_0000, 512)
        );
        assert_eq!((c.lbppbe, c.lbpme), (3, true));
        assert!(Capacity::parse(&d[..13]).is_err());
    }

    #[test]
    fn report_luns_parses_within_its_list_length() {
        let mut d = vec![0u8; 8];
        d[3] = 16;
        d.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        d.extend_from_slice(&[0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
        d.extend_from_slice(&[0, 7, 0, 0, 0, 0, 0, 0]); // beyond LUN LIST LENGTH
        assert_eq!(parse_report_luns(&d).unwrap(), vec![0, 300]);
        assert!(parse_report_luns(&d[..4]).is_err());
    }

    #[test]
    fn a_cut_short_report_luns_asks_again_for_the_whole_list() {
        // 10,000 LUNs (80,000 bytes of list), 256 of them read.
        let mut d = 80_000u32.to_be_bytes().to_vec();
        d.resize(8 + 8 * 256, 0);
        assert_eq!(report_luns_rest(&d), Some(80_008));
        d.resize(80_008, 0);
        assert_eq!(report_luns_rest(&d), None);
        // A list longer than every single-level LUN is read as far as those go.
        let mut d = u32::MAX.to_be_bytes().to_vec();
        d.resize(8 + 8 * 256, 0);
        assert_eq!(report_luns_rest(&d), Some(8 + 8 * 16_384));
        assert_eq!(report_luns_rest(&d[..3]), None);
    }

    #[test]
    fn report_luns_refuses_luns_that_are_not_single_level() {
        for bad in [
            [0, 1, 0, 0, 0, 0, 0, 1],    // a non-zero reserved / second-level byte
            [0x01, 0, 0, 0, 0, 0, 0, 0], // peripheral device addressing through bus 1
            [0xC1, 1, 0, 0, 0, 0, 0, 0], // extended addressing (a well-known LUN)
        ] {
            let mut d = vec![0, 0, 0, 16, 0, 0, 0, 0];
            d.extend_from_slice(&[0, 2, 0, 0, 0, 0, 0, 0]);
            d.extend_from_slice(&bad);
            assert!(
                matches!(parse_report_luns(&d), Err(Error::Protocol(_))),
                "{bad:02x?}"
            );
        }
    }

    proptest! {
        /// REPORT LUNS data as the engine writes it (each LUN by `lun::encode`) reads back as
        /// the same LUN list.
        #[test]
        fn report_luns_reads_back_what_the_target_encodes(
            luns in proptest::collection::vec(0..=lun::MAX_LUN, 0..64),
        ) {
            let mut d = ((8 * luns.len()) as u32).to_be_bytes().to_vec();
            d.extend_from_slice(&[0; 4]);
            for &l in &luns {
                d.extend_from_slice(&lun::encode(l));
            }
            prop_assert_eq!(parse_report_luns(&d).unwrap(), luns);
        }
    }

    #[test]
    fn cdbs_carry_their_fields() {
        let c = cdb::write16(0x0102_0304_0506_0708, 9, true);
        assert_eq!(c[0], opcode::WRITE_16);
        assert_eq!(c[1], 0x08);
        assert_eq!(&c[2..10], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&c[10..14], &[0, 0, 0, 9]);
        assert_eq!(
            cdb::inquiry(true, 0x83, 0x1234),
            [0x12, 1, 0x83, 0x12, 0x34, 0]
        );
        assert_eq!(cdb::read_capacity16(32)[1], 0x10);
    }

    #[test]
    fn cdbs_are_byte_exact() {
        assert_eq!(cdb::test_unit_ready(), [0; 6]);
        assert_eq!(cdb::inquiry(false, 0, 96), [0x12, 0, 0, 0, 96, 0]);
        assert_eq!(cdb::request_sense(true, 252), [0x03, 1, 0, 0, 252, 0]);
        assert_eq!(
            cdb::report_luns(2, 0x0102_0304),
            [0xA0, 0, 2, 0, 0, 0, 1, 2, 3, 4, 0, 0]
        );
        assert_eq!(
            cdb::read_capacity16(0x0102_0304),
            [0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0]
        );
        assert_eq!(
            cdb::read16(0x0102_0304_0506_0708, 0x0A0B_0C0D, false),
            [0x88, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x0A, 0x0B, 0x0C, 0x0D, 0, 0]
        );
        assert_eq!(
            cdb::write16(u64::MAX, u32::MAX, true),
            [
                0x8A, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                0, 0
            ]
        );
        assert_eq!(
            cdb::sync_cache16(0x0102_0304_0506_0708, 0x0A0B_0C0D),
            [0x91, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x0A, 0x0B, 0x0C, 0x0D, 0, 0]
        );
        assert_eq!(
            cdb::sync_cache16(0, 0),
            [0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        // PC in bits 7..6 and PAGE CODE in 5..0 of byte 2; wider values lose their high bits.
        assert_eq!(
            cdb::mode_sense10(true, 1, 0x3F, 0xFF, 0x1234),
            [0x5A, 0x08, 0x7F, 0xFF, 0, 0, 0, 0x12, 0x34, 0]
        );
        assert_eq!(
            cdb::mode_sense10(false, 7, 0xC8, 0, 8),
            [0x5A, 0, 0xC8, 0, 0, 0, 0, 0, 8, 0]
        );
        assert_eq!(
            cdb::mode_sense6(false, 2, 0x08, 1, 252),
            [0x1A, 0, 0x88, 1, 252, 0]
        );
        assert_eq!(
            cdb::mode_sense6(true, 0, 0x3F, 0, 4),
            [0x1A, 0x08, 0x3F, 0, 4, 0]
        );
        assert_eq!(
            cdb::mode_select10(true, true, 0x0102),
            [0x55, 0x11, 0, 0, 0, 0, 0, 1, 2, 0]
        );
        assert_eq!(
            cdb::mode_select10(false, true, 0),
            [0x55, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }
}
