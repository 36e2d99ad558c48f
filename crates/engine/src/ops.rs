//! The opcode table: one list drives command dispatch, CDB validation (every bit not in the
//! CDB usage data is reserved or unsupported → INVALID FIELD IN CDB with a field pointer,
//! SPC-4 §4.5.2.4.2) and REPORT SUPPORTED OPERATION CODES (SPC-4 §6.35).

use std::sync::OnceLock;

use ironlun_scsi::opcode as op;
use ironlun_scsi::opcode::sanitize;
use ironlun_scsi::sense::{asc, Sense};

/// What the engine runs for an opcode / service action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmd {
    TestUnitReady,
    RequestSense,
    Read,
    Write,
    WriteVerify,
    CompareAndWrite,
    WriteSame,
    Verify,
    PreFetch,
    SyncCache,
    Inquiry,
    ModeSelect6,
    ModeSelect10,
    ModeSense6,
    ModeSense10,
    Reserve,
    Release,
    StartStopUnit,
    ReadCapacity10,
    ReadCapacity16,
    ReportLuns,
    ReportTargetPortGroups,
    SetTargetPortGroups,
    ReportSupportedOpcodes,
    ReportSupportedTmfs,
    PersistentReserveIn,
    PersistentReserveOut,
    Unmap,
    GetLbaStatus,
    ExtendedCopy,
    ReceiveCopyResults,
    OrWrite,
    WriteAtomic,
    Sanitize,
    ReadDefectData,
    PreventAllow,
}

/// Changes the medium: refused on a write-protected LU (SBC-3 §4.11).
pub(crate) const F_WRITE: u16 = 1;
/// Accesses the medium: refused while the LU is stopped (SBC-3 §4.20).
pub(crate) const F_MEDIA: u16 = 2;
/// Allowed while another I_T nexus holds an SPC-2 reservation (SPC-2 §5.5.1).
pub(crate) const F_RES_OK: u16 = 4;
/// Not blocked by a pending unit attention (SAM-5 §5.14).
pub(crate) const F_UA_EXEMPT: u16 = 8;
/// Always runs as HEAD OF QUEUE (as LIO does for INQUIRY and REPORT LUNS).
pub(crate) const F_HOQ: u16 = 16;
/// DPO/FUA bits in CDB byte 1 exist only while the LU advertises DPOFUA.
pub(crate) const F_DPOFUA: u16 = 32;
/// Present only while `emulate_rsoc` is on.
pub(crate) const F_RSOC: u16 = 64;

/// Present only while `emulate_pr` is on (PERSISTENT RESERVE IN/OUT, SPC-2 RESERVE/RELEASE,
/// as LIO).
pub(crate) const F_PR: u16 = 128;
/// Persistent reservations never block it here (SPC-4 §5.13.1 table 62 / SBC-3 table 13
/// "allowed" for every type; PR and SPC-2 reservation commands decide in their handlers).
pub(crate) const F_PR_FREE: u16 = 256;
/// Read class of the PR tables: allowed through Write Exclusive (and to registrants through
/// the registrants-only / all-registrants types), conflicts with Exclusive Access. Opcodes
/// with neither PR flag are the write class: only holders (and registrants for the RO/AR
/// types) may run them.
pub(crate) const F_PR_READ: u16 = 512;
/// Present only while `emulate_caw` is on (COMPARE AND WRITE, as LIO).
pub(crate) const F_CAW: u16 = 1024;
/// Present only while `emulate_tpu` is on (UNMAP, GET LBA STATUS: logical block provisioning
/// management, SBC-3 §4.7).
pub(crate) const F_TPU: u16 = 2048;
/// The ANCHOR / UNMAP (and for WRITE SAME(16) NDOB) bits of CDB byte 1 exist only while
/// `emulate_tpws` is on.
pub(crate) const F_TPWS: u16 = 4096;
/// Present only while `emulate_3pc` is on (EXTENDED COPY, RECEIVE COPY RESULTS; INQUIRY 3PC).
pub(crate) const F_3PC: u16 = 8192;
/// Present only on a removable-medium LU (PREVENT ALLOW MEDIUM REMOVAL; INQUIRY RMB).
pub(crate) const F_REMOVABLE: u16 = 16384;

/// CDB byte 1 bits that `F_TPWS` hides while `emulate_tpws` is off.
const TPWS_BITS: u8 = 0x19;

pub(crate) struct OpInfo {
    pub opcode: u8,
    pub sa: Option<u8>,
    pub cmd: Cmd,
    /// CDB usage data (SPC-4 §6.35.3): byte 0 the opcode, the service action field holding
    /// the service action, every other bit 1 where the device server evaluates it.
    pub usage: &'static [u8],
    pub flags: u16,
    /// Recommended command timeout in seconds (RCTD command timeouts descriptor).
    pub timeout: u32,
}

impl OpInfo {
    pub(crate) fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }

    /// Bits of CDB byte 1 not offered now: DPO/FUA without DPOFUA, the WRITE SAME unmap bits
    /// without `emulate_tpws`.
    fn hidden_byte1(&self, dpofua: bool, tpws: bool) -> u8 {
        let mut h = 0;
        if self.has(F_DPOFUA) && !dpofua {
            h |= 0x18;
        }
        if self.has(F_TPWS) && !tpws {
            h |= TPWS_BITS;
        }
        h
    }

    /// CDB usage data as currently offered (the hidden byte 1 bits cleared).
    pub(crate) fn usage_for(&self, dpofua: bool, tpws: bool) -> Vec<u8> {
        let mut u = self.usage.to_vec();
        if let Some(b) = u.get_mut(1) {
            *b &= !self.hidden_byte1(dpofua, tpws);
        }
        u
    }
}

const fn e(
    opcode: u8,
    sa: Option<u8>,
    cmd: Cmd,
    usage: &'static [u8],
    flags: u16,
    timeout: u32,
) -> OpInfo {
    OpInfo {
        opcode,
        sa,
        cmd,
        usage,
        flags,
        timeout,
    }
}

const L4: [u8; 4] = [0xFF; 4];

/// Sorted by opcode, then service action.
pub(crate) static OPS: &[OpInfo] = &[
    e(
        op::TEST_UNIT_READY,
        None,
        Cmd::TestUnitReady,
        &[0x00, 0, 0, 0, 0, 0],
        F_MEDIA | F_PR_FREE,
        5,
    ),
    e(
        op::REQUEST_SENSE,
        None,
        Cmd::RequestSense,
        &[0x03, 0x01, 0, 0, 0xFF, 0],
        F_UA_EXEMPT | F_RES_OK | F_PR_FREE,
        5,
    ),
    e(
        op::READ_6,
        None,
        Cmd::Read,
        &[0x08, 0x1F, 0xFF, 0xFF, 0xFF, 0],
        F_MEDIA | F_PR_READ,
        30,
    ),
    e(
        op::WRITE_6,
        None,
        Cmd::Write,
        &[0x0A, 0x1F, 0xFF, 0xFF, 0xFF, 0],
        F_MEDIA | F_WRITE,
        30,
    ),
    e(
        op::INQUIRY,
        None,
        Cmd::Inquiry,
        &[0x12, 0x01, 0xFF, 0xFF, 0xFF, 0],
        F_UA_EXEMPT | F_RES_OK | F_HOQ | F_PR_FREE,
        5,
    ),
    e(
        op::MODE_SELECT_6,
        None,
        Cmd::ModeSelect6,
        &[0x15, 0x11, 0, 0, 0xFF, 0],
        0,
        5,
    ),
    e(
        op::RESERVE_6,
        None,
        Cmd::Reserve,
        &[0x16, 0, 0, 0, 0, 0],
        F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::RELEASE_6,
        None,
        Cmd::Release,
        &[0x17, 0, 0, 0, 0, 0],
        F_RES_OK | F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::MODE_SENSE_6,
        None,
        Cmd::ModeSense6,
        &[0x1A, 0x08, 0xFF, 0xFF, 0xFF, 0],
        F_PR_READ,
        5,
    ),
    e(
        op::START_STOP_UNIT,
        None,
        Cmd::StartStopUnit,
        &[0x1B, 0x01, 0, 0x0F, 0xF7, 0],
        0,
        30,
    ),
    e(
        op::PREVENT_ALLOW_MEDIUM_REMOVAL,
        None,
        Cmd::PreventAllow,
        &[0x1E, 0, 0, 0, 0x03, 0],
        F_REMOVABLE,
        5,
    ),
    e(
        op::READ_CAPACITY_10,
        None,
        Cmd::ReadCapacity10,
        &[0x25, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x01, 0],
        F_MEDIA | F_PR_FREE,
        5,
    ),
    e(
        op::READ_10,
        None,
        Cmd::Read,
        &[0x28, 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0],
        F_MEDIA | F_DPOFUA | F_PR_READ,
        30,
    ),
    e(
        op::WRITE_10,
        None,
        Cmd::Write,
        &[0x2A, 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0],
        F_MEDIA | F_WRITE | F_DPOFUA,
        30,
    ),
    e(
        op::WRITE_AND_VERIFY_10,
        None,
        Cmd::WriteVerify,
        &[0x2E, 0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0],
        F_MEDIA | F_WRITE | F_DPOFUA,
        30,
    ),
    e(
        op::VERIFY_10,
        None,
        Cmd::Verify,
        &[0x2F, 0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0],
        F_MEDIA | F_DPOFUA | F_PR_READ,
        30,
    ),
    e(
        op::PRE_FETCH_10,
        None,
        Cmd::PreFetch,
        &[0x34, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0],
        F_MEDIA | F_PR_READ,
        30,
    ),
    e(
        op::SYNCHRONIZE_CACHE_10,
        None,
        Cmd::SyncCache,
        &[0x35, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0],
        F_MEDIA,
        60,
    ),
    e(
        op::READ_DEFECT_DATA_10,
        None,
        Cmd::ReadDefectData,
        &[0x37, 0, 0x1F, 0, 0, 0, 0, 0xFF, 0xFF, 0],
        F_MEDIA | F_PR_READ,
        5,
    ),
    // WRITE SAME(10) (SBC-3 §5.45): byte 1 holds ANCHOR and UNMAP (with `emulate_tpws`);
    // WRPROTECT and the obsolete PBDATA/LBDATA are unsupported (no protection information).
    e(
        op::WRITE_SAME_10,
        None,
        Cmd::WriteSame,
        &[0x41, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0],
        F_MEDIA | F_WRITE | F_TPWS,
        60,
    ),
    e(
        op::UNMAP,
        None,
        Cmd::Unmap,
        &[0x42, 0x01, 0, 0, 0, 0, 0x1F, 0xFF, 0xFF, 0],
        F_MEDIA | F_WRITE | F_TPU,
        60,
    ),
    // SANITIZE (SBC-3 §5.19) is not F_MEDIA: it must run in sanitize failure mode, and its
    // handler applies the in-progress / no-medium / stopped checks itself. BLOCK ERASE only on
    // a thin LU (libiscsi requires LBPME with it; deallocation is the erase).
    e(
        op::SANITIZE,
        Some(sanitize::OVERWRITE),
        Cmd::Sanitize,
        &[
            0x48,
            0xA0 | sanitize::OVERWRITE,
            0,
            0,
            0,
            0,
            0,
            0xFF,
            0xFF,
            0,
        ],
        F_WRITE,
        3600,
    ),
    e(
        op::SANITIZE,
        Some(sanitize::BLOCK_ERASE),
        Cmd::Sanitize,
        &[
            0x48,
            0xA0 | sanitize::BLOCK_ERASE,
            0,
            0,
            0,
            0,
            0,
            0xFF,
            0xFF,
            0,
        ],
        F_WRITE | F_TPU,
        3600,
    ),
    e(
        op::SANITIZE,
        Some(sanitize::EXIT_FAILURE_MODE),
        Cmd::Sanitize,
        &[
            0x48,
            0xA0 | sanitize::EXIT_FAILURE_MODE,
            0,
            0,
            0,
            0,
            0,
            0xFF,
            0xFF,
            0,
        ],
        F_WRITE,
        3600,
    ),
    e(
        op::MODE_SELECT_10,
        None,
        Cmd::ModeSelect10,
        &[0x55, 0x11, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0],
        0,
        5,
    ),
    e(
        op::RESERVE_10,
        None,
        Cmd::Reserve,
        &[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::RELEASE_10,
        None,
        Cmd::Release,
        &[0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        F_RES_OK | F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::MODE_SENSE_10,
        None,
        Cmd::ModeSense10,
        &[0x5A, 0x18, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0],
        F_PR_READ,
        5,
    ),
    e(
        op::PERSISTENT_RESERVE_IN,
        Some(0),
        Cmd::PersistentReserveIn,
        &[0x5E, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0],
        F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::PERSISTENT_RESERVE_IN,
        Some(1),
        Cmd::PersistentReserveIn,
        &[0x5E, 1, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0],
        F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::PERSISTENT_RESERVE_IN,
        Some(2),
        Cmd::PersistentReserveIn,
        &[0x5E, 2, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0],
        F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::PERSISTENT_RESERVE_IN,
        Some(3),
        Cmd::PersistentReserveIn,
        &[0x5E, 3, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0],
        F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::PERSISTENT_RESERVE_OUT,
        Some(0),
        Cmd::PersistentReserveOut,
        &[0x5F, 0, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0],
        F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::PERSISTENT_RESERVE_OUT,
        Some(1),
        Cmd::PersistentReserveOut,
        &[0x5F, 1, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0],
        F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::PERSISTENT_RESERVE_OUT,
        Some(2),
        Cmd::PersistentReserveOut,
        &[0x5F, 2, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0],
        F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::PERSISTENT_RESERVE_OUT,
        Some(3),
        Cmd::PersistentReserveOut,
        &[0x5F, 3, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0],
        F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::PERSISTENT_RESERVE_OUT,
        Some(4),
        Cmd::PersistentReserveOut,
        &[0x5F, 4, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0],
        F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::PERSISTENT_RESERVE_OUT,
        Some(5),
        Cmd::PersistentReserveOut,
        &[0x5F, 5, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0],
        F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::PERSISTENT_RESERVE_OUT,
        Some(6),
        Cmd::PersistentReserveOut,
        &[0x5F, 6, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0],
        F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::PERSISTENT_RESERVE_OUT,
        Some(7),
        Cmd::PersistentReserveOut,
        &[0x5F, 7, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0],
        F_PR | F_PR_FREE,
        5,
    ),
    e(
        op::EXTENDED_COPY,
        Some(op::xcopy::EXTENDED_COPY_LID1),
        Cmd::ExtendedCopy,
        &[
            0x83, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, L4[0], L4[1], L4[2], L4[3], 0, 0,
        ],
        F_MEDIA | F_3PC,
        600,
    ),
    e(
        op::RECEIVE_COPY_RESULTS,
        Some(op::rcr::COPY_STATUS),
        Cmd::ReceiveCopyResults,
        &[
            0x84, 0x00, 0xFF, 0, 0, 0, 0, 0, 0, 0, L4[0], L4[1], L4[2], L4[3], 0, 0,
        ],
        F_3PC | F_PR_FREE,
        5,
    ),
    e(
        op::RECEIVE_COPY_RESULTS,
        Some(op::rcr::OPERATING_PARAMETERS),
        Cmd::ReceiveCopyResults,
        &[
            0x84, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, L4[0], L4[1], L4[2], L4[3], 0, 0,
        ],
        F_3PC | F_PR_FREE,
        5,
    ),
    e(
        op::RECEIVE_COPY_RESULTS,
        Some(op::rcr::FAILED_SEGMENT_DETAILS),
        Cmd::ReceiveCopyResults,
        &[
            0x84, 0x04, 0xFF, 0, 0, 0, 0, 0, 0, 0, L4[0], L4[1], L4[2], L4[3], 0, 0,
        ],
        F_3PC | F_PR_FREE,
        5,
    ),
    e(
        op::READ_16,
        None,
        Cmd::Read,
        &[
            0x88, 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, L4[0], L4[1], L4[2], L4[3],
            0x1F, 0,
        ],
        F_MEDIA | F_DPOFUA | F_PR_READ,
        30,
    ),
    // COMPARE AND WRITE (SBC-3 §5.2): WRPROTECT is not supported (no protection
    // information), so byte 1 carries only DPO and FUA; byte 13 is NUMBER OF LOGICAL BLOCKS.
    e(
        op::COMPARE_AND_WRITE,
        None,
        Cmd::CompareAndWrite,
        &[
            0x89, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0x1F, 0,
        ],
        F_MEDIA | F_WRITE | F_DPOFUA | F_CAW,
        30,
    ),
    e(
        op::WRITE_16,
        None,
        Cmd::Write,
        &[
            0x8A, 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, L4[0], L4[1], L4[2], L4[3],
            0x1F, 0,
        ],
        F_MEDIA | F_WRITE | F_DPOFUA,
        30,
    ),
    // ORWRITE(16) (SBC-3 §5.10): ORPROTECT is not supported (no protection information).
    e(
        op::ORWRITE_16,
        None,
        Cmd::OrWrite,
        &[
            0x8B, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, L4[0], L4[1], L4[2], L4[3],
            0x1F, 0,
        ],
        F_MEDIA | F_WRITE | F_DPOFUA,
        30,
    ),
    e(
        op::WRITE_AND_VERIFY_16,
        None,
        Cmd::WriteVerify,
        &[
            0x8E, 0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, L4[0], L4[1], L4[2], L4[3],
            0x1F, 0,
        ],
        F_MEDIA | F_WRITE | F_DPOFUA,
        30,
    ),
    e(
        op::VERIFY_16,
        None,
        Cmd::Verify,
        &[
            0x8F, 0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, L4[0], L4[1], L4[2], L4[3],
            0x1F, 0,
        ],
        F_MEDIA | F_DPOFUA | F_PR_READ,
        30,
    ),
    e(
        op::PRE_FETCH_16,
        None,
        Cmd::PreFetch,
        &[
            0x90, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, L4[0], L4[1], L4[2], L4[3],
            0x1F, 0,
        ],
        F_MEDIA | F_PR_READ,
        30,
    ),
    e(
        op::SYNCHRONIZE_CACHE_16,
        None,
        Cmd::SyncCache,
        &[
            0x91, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, L4[0], L4[1], L4[2], L4[3],
            0x1F, 0,
        ],
        F_MEDIA,
        60,
    ),
    // WRITE SAME(16) (SBC-3 §5.46): as WRITE SAME(10), byte 1 also holds NDOB.
    e(
        op::WRITE_SAME_16,
        None,
        Cmd::WriteSame,
        &[
            0x93, 0x19, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, L4[0], L4[1], L4[2], L4[3],
            0x1F, 0,
        ],
        F_MEDIA | F_WRITE | F_TPWS,
        60,
    ),
    // WRITE ATOMIC(16) (SBC-4 §5.48): WRPROTECT is not supported; bytes 10-11 ATOMIC BOUNDARY,
    // 12-13 TRANSFER LENGTH.
    e(
        op::WRITE_ATOMIC_16,
        None,
        Cmd::WriteAtomic,
        &[
            0x9C, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0x1F, 0,
        ],
        F_MEDIA | F_WRITE | F_DPOFUA,
        30,
    ),
    e(
        op::SERVICE_ACTION_IN_16,
        Some(op::sai::READ_CAPACITY_16),
        Cmd::ReadCapacity16,
        &[
            0x9E, 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, L4[0], L4[1], L4[2], L4[3],
            0x01, 0,
        ],
        F_MEDIA | F_PR_FREE,
        5,
    ),
    e(
        op::SERVICE_ACTION_IN_16,
        Some(op::sai::GET_LBA_STATUS),
        Cmd::GetLbaStatus,
        &[
            0x9E, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, L4[0], L4[1], L4[2], L4[3],
            0, 0,
        ],
        F_MEDIA | F_PR_READ | F_TPU,
        5,
    ),
    e(
        op::REPORT_LUNS,
        None,
        Cmd::ReportLuns,
        &[0xA0, 0, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0],
        F_UA_EXEMPT | F_RES_OK | F_HOQ | F_PR_FREE,
        5,
    ),
    e(
        op::MAINTENANCE_IN,
        Some(op::mi::REPORT_TARGET_PORT_GROUPS),
        Cmd::ReportTargetPortGroups,
        &[0xA3, 0xE0 | 0x0A, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0],
        F_RES_OK | F_PR_FREE,
        5,
    ),
    e(
        op::MAINTENANCE_IN,
        Some(op::mi::REPORT_SUPPORTED_OPERATION_CODES),
        Cmd::ReportSupportedOpcodes,
        &[
            0xA3, 0x0C, 0x87, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0,
        ],
        F_RES_OK | F_RSOC | F_PR_READ,
        5,
    ),
    e(
        op::MAINTENANCE_IN,
        Some(op::mi::REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS),
        Cmd::ReportSupportedTmfs,
        &[0xA3, 0x0D, 0x80, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0],
        F_RES_OK | F_PR_READ,
        5,
    ),
    e(
        op::MAINTENANCE_OUT,
        Some(op::mo::SET_TARGET_PORT_GROUPS),
        Cmd::SetTargetPortGroups,
        &[0xA4, 0x0A, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0],
        0,
        30,
    ),
    e(
        op::READ_12,
        None,
        Cmd::Read,
        &[
            0xA8, 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0,
        ],
        F_MEDIA | F_DPOFUA | F_PR_READ,
        30,
    ),
    e(
        op::WRITE_12,
        None,
        Cmd::Write,
        &[
            0xAA, 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0,
        ],
        F_MEDIA | F_WRITE | F_DPOFUA,
        30,
    ),
    e(
        op::WRITE_AND_VERIFY_12,
        None,
        Cmd::WriteVerify,
        &[
            0xAE, 0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0,
        ],
        F_MEDIA | F_WRITE | F_DPOFUA,
        30,
    ),
    e(
        op::VERIFY_12,
        None,
        Cmd::Verify,
        &[
            0xAF, 0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0,
        ],
        F_MEDIA | F_DPOFUA | F_PR_READ,
        30,
    ),
    e(
        op::READ_DEFECT_DATA_12,
        None,
        Cmd::ReadDefectData,
        &[
            0xB7, 0x1F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0,
        ],
        F_MEDIA | F_PR_READ,
        5,
    ),
];

/// Index of the first table entry for each opcode.
fn index() -> &'static [Option<u8>; 256] {
    static INDEX: OnceLock<[Option<u8>; 256]> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut idx = [None; 256];
        for (i, o) in OPS.iter().enumerate().rev() {
            idx[usize::from(o.opcode)] = u8::try_from(i).ok();
        }
        idx
    })
}

/// Entries for one opcode (several for service-action opcodes).
pub(crate) fn entries(opcode: u8) -> &'static [OpInfo] {
    match index()[usize::from(opcode)] {
        Some(first) => {
            let first = usize::from(first);
            let n = OPS[first..]
                .iter()
                .take_while(|o| o.opcode == opcode)
                .count();
            &OPS[first..first + n]
        }
        None => &[],
    }
}

/// Find the entry for a CDB. Unknown opcode → INVALID COMMAND OPERATION CODE; known
/// service-action opcode with an unsupported service action → INVALID FIELD IN CDB pointing
/// at the SERVICE ACTION field (SPC-4 §4.2.5.2; libiscsi accepts either for such opcodes).
/// Entries carrying any flag in `hidden` (features switched off) do not exist.
pub(crate) fn lookup(cdb: &[u8], hidden: u16) -> Result<&'static OpInfo, Sense> {
    let opcode = *cdb
        .first()
        .ok_or(Sense::illegal(asc::INVALID_COMMAND_OPERATION_CODE))?;
    let mut list = entries(opcode).iter().filter(|o| o.flags & hidden == 0);
    let Some(first) = list.next() else {
        return Err(Sense::illegal(asc::INVALID_COMMAND_OPERATION_CODE));
    };
    if first.sa.is_none() {
        return Ok(first);
    }
    let sa = ironlun_scsi::cdb::byte(cdb, 1) & 0x1F;
    std::iter::once(first)
        .chain(list)
        .find(|o| o.sa == Some(sa))
        .ok_or(Sense::invalid_cdb_field(1, Some(4)))
}

/// Check every CDB bit against the usage data: a set bit the device server does not use is
/// a reserved or unsupported field (SPC-4 §4.2.5 "reserved fields ... shall be checked").
pub(crate) fn validate(o: &OpInfo, cdb: &[u8], dpofua: bool, tpws: bool) -> Result<(), Sense> {
    if cdb.len() < o.usage.len() {
        // A CDB shorter than its opcode's group requires: point at the missing first byte.
        return Err(Sense::invalid_cdb_field(cdb.len() as u16, None));
    }
    // Same masks as `usage_for`, without allocating on the command path.
    let hide = o.hidden_byte1(dpofua, tpws);
    for (i, (&b, &u)) in cdb.iter().zip(o.usage.iter()).enumerate().skip(1) {
        let allowed = match i {
            // The service action bits were matched by `lookup`.
            1 if o.sa.is_some() => u | 0x1F,
            1 => u & !hide,
            _ => u,
        };
        let bad = b & !allowed;
        if bad != 0 {
            let bit = 7 - bad.leading_zeros() as u8;
            return Err(Sense::invalid_cdb_field(i as u16, Some(bit)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_usage_lengths_match_group_codes() {
        for w in OPS.windows(2) {
            assert!((w[0].opcode, w[0].sa) < (w[1].opcode, w[1].sa));
        }
        for o in OPS {
            assert_eq!(Some(o.usage.len()), ironlun_scsi::cdb::cdb_len(o.opcode));
            assert_eq!(o.usage[0], o.opcode);
            if let Some(sa) = o.sa {
                assert_eq!(o.usage[1] & 0x1F, sa);
            }
        }
    }

    #[test]
    fn lookup_distinguishes_opcode_and_service_action_errors() {
        assert!(lookup(&[0x28; 16], 0).is_ok());
        let e = lookup(&[0xE0; 16], 0).err();
        assert_eq!(e.map(|s| s.asc), Some(asc::INVALID_COMMAND_OPERATION_CODE));
        let e = lookup(&[0x9E, 0x13, 0, 0], 0).err();
        assert_eq!(e.and_then(|s| s.field_pointer).map(|f| f.field), Some(1));
        // GET LBA STATUS exists only with emulate_tpu.
        assert!(lookup(&[0x9E, 0x12, 0, 0], 0).is_ok());
        let e = lookup(&[0x9E, 0x12, 0, 0], F_TPU).err();
        assert_eq!(e.and_then(|s| s.field_pointer).map(|f| f.field), Some(1));
        assert!(lookup(&[0xA3, 0x0C], F_RSOC).is_err());
        let e = lookup(&[0x5E, 0, 0, 0], F_PR).err();
        assert_eq!(e.map(|s| s.asc), Some(asc::INVALID_COMMAND_OPERATION_CODE));
        let e = lookup(&[0x5F, 0x08, 0, 0], 0).err();
        assert_eq!(e.and_then(|s| s.field_pointer).map(|f| f.field), Some(1));
    }

    #[test]
    fn reserved_bits_point_at_the_highest_offending_bit() {
        let o = &OPS[0];
        let e = validate(o, &[0, 0, 0, 0x24, 0, 0], true, true).err();
        let fp = e.and_then(|s| s.field_pointer);
        assert_eq!(fp.map(|f| (f.field, f.bit)), Some((3, Some(5))));
    }
}
