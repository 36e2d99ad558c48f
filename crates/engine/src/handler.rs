//! What a command handler is given and what it returns: the command kinds and gate flags of
//! the opcode table ([`Cmd`], [`OpInfo`]), the context of one command ([`Ctx`]: nexus, I_T_L
//! nexus, LU, CDB, Data-Out), its outcome ([`Done`] / [`Fail`]), and the one place where an
//! outcome — or an internal error — becomes the transport's response ([`respond`], [`io_fail`]:
//! status, sense in the LU's format, Data-In cut to the allocation and expected lengths,
//! residual; RFC 7143 §11.4.5, SAM-5 §5.4.3).

use std::io;
use std::sync::atomic::Ordering;

use ironlun_scsi::cdb::{CdbError, SERVICE_ACTION};
use ironlun_scsi::sense::asc;
use ironlun_scsi::{status, Sense};

use crate::core::device::slot::LunSlot;
use crate::core::device::Device;
use crate::core::port::nexus::Nexus;
use crate::{DataDirection, Residual, ScsiRequest, ScsiResponse};

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
    pub(crate) fn hidden_byte1(&self, dpofua: bool, tpws: bool) -> u8 {
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

/// Everything a handler needs about the command being run.
pub(crate) struct Ctx<'a> {
    pub nexus: &'a Nexus,
    pub slot: &'a LunSlot,
    pub dev: &'a Device,
    pub cdb: &'a [u8],
    pub req: &'a ScsiRequest,
    pub op: &'static OpInfo,
    /// The task's place in its LU's task set.
    pub task: u64,
}

impl<'a> Ctx<'a> {
    /// Bytes of Data-In the initiator accepts.
    pub(crate) fn read_room(&self) -> u64 {
        match self.req.direction {
            DataDirection::Read | DataDirection::Bidirectional => u64::from(self.req.expected_len),
            _ => 0,
        }
    }

    /// The Data-Out buffer when it carries exactly `want` bytes (the CDB's transfer or
    /// parameter list length); otherwise the SBC-3 / SPC-4 data length mismatch: INVALID FIELD
    /// IN COMMAND INFORMATION UNIT and nothing is written, as LIO does (FCP-4 §9.4.2 option b).
    pub(crate) fn data_out(&self, want: u64) -> Result<&'a [u8], Fail> {
        let req: &'a ScsiRequest = self.req;
        let e = u64::from(self.req.expected_len);
        let dir_ok = matches!(
            self.req.direction,
            DataDirection::Write | DataDirection::Bidirectional
        ) || want == 0;
        match usize::try_from(want) {
            Ok(w) if e == want && dir_ok && req.data_out.len() >= w => Ok(&req.data_out[..w]),
            _ => Err(Fail::Check {
                sense: Sense::illegal(asc::INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT),
                want: Some(want),
            }),
        }
    }
}

impl<'a> Ctx<'a> {
    /// Data-Out of a WRITE-type command moving `want` bytes in blocks of `bs`, under the
    /// FCP-4 §9.4.2 / SAM-5 §5.4.3 rule (a) for a transfer length that differs from the
    /// expected length: process normally, moving no data beyond the smaller of the two. An
    /// expected length shorter than the transfer that is not a whole number of blocks cannot
    /// be written that way: INVALID FIELD IN COMMAND INFORMATION UNIT, nothing written
    /// (rule b). The residual is reported either way.
    pub(crate) fn write_data(&self, want: u64, bs: u64) -> Result<&'a [u8], Fail> {
        let req: &'a ScsiRequest = self.req;
        let e = u64::from(req.expected_len);
        let usable = if e >= want {
            Some(want)
        } else if e % bs == 0 {
            Some(e)
        } else {
            None
        };
        match usable.and_then(|n| usize::try_from(n).ok()) {
            Some(n) if req.data_out.len() >= n => Ok(&req.data_out[..n]),
            _ => Err(Fail::Check {
                sense: Sense::illegal(asc::INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT),
                want: Some(want),
            }),
        }
    }
}

/// A successful command.
pub(crate) struct Done {
    pub status: u8,
    /// Data-In, at most `want` bytes.
    pub data: Vec<u8>,
    /// Bytes the command transfers (SPC-4 allocation-length rules or the SBC transfer length):
    /// the base of the residual.
    pub want: u64,
}

impl Done {
    pub(crate) fn good() -> Done {
        Done {
            status: status::GOOD,
            data: Vec::new(),
            want: 0,
        }
    }

    /// Parameter data cut to the allocation length (SPC-4 §4.2.5.6).
    pub(crate) fn data(mut data: Vec<u8>, alloc: u64) -> Done {
        let want = (data.len() as u64).min(alloc);
        data.truncate(want as usize);
        Done {
            status: status::GOOD,
            data,
            want,
        }
    }

    /// A data-out command that consumed `want` bytes.
    pub(crate) fn consumed(want: u64) -> Done {
        Done {
            status: status::GOOD,
            data: Vec::new(),
            want,
        }
    }
}

/// A command that did not complete with GOOD.
#[derive(Debug)]
pub(crate) enum Fail {
    Check {
        sense: Sense,
        /// Transfer length for the residual when it is known (data length mismatch).
        want: Option<u64>,
    },
    ReservationConflict,
    TaskSetFull,
}

impl From<Sense> for Fail {
    fn from(sense: Sense) -> Fail {
        Fail::Check { sense, want: None }
    }
}

/// The sense for bytes a typed CDB struct refuses (SPC-4 §4.2.5): a CDB shorter than its
/// operation code's group needs is INVALID FIELD IN CDB at its missing first byte, an operation
/// code nothing supports INVALID COMMAND OPERATION CODE, a service action nothing supports
/// INVALID FIELD IN CDB at SERVICE ACTION. The opcode table's lookup and validation
/// (`cmd::ops`) answer these before a handler decodes its CDB.
pub(crate) fn cdb_sense(e: CdbError) -> Sense {
    match e {
        CdbError::Short { got, .. } => Sense::invalid_cdb_field(got as u16, None),
        CdbError::Opcode { .. } => Sense::illegal(asc::INVALID_COMMAND_OPERATION_CODE),
        CdbError::ServiceAction { .. } => Sense::invalid_cdb(SERVICE_ACTION),
    }
}

impl From<CdbError> for Fail {
    fn from(e: CdbError) -> Fail {
        cdb_sense(e).into()
    }
}

pub(crate) type Outcome = Result<Done, Fail>;

/// Turn an outcome into the transport's response: status, sense in the LU's format, Data-In
/// cut to what the initiator accepts, residual against the expected transfer length.
pub(crate) fn respond(req: &ScsiRequest, outcome: Outcome, descriptor: bool) -> ScsiResponse {
    let e = u64::from(req.expected_len);
    let residual = |want: u64| -> Residual {
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        if want < e {
            Residual::Underflow(clamp(e - want))
        } else if want > e {
            Residual::Overflow(clamp(want - e))
        } else {
            Residual::None
        }
    };
    match outcome {
        Ok(mut d) => {
            let room = match req.direction {
                DataDirection::Read | DataDirection::Bidirectional => e,
                _ => 0,
            };
            d.data.truncate(room.min(d.want) as usize);
            ScsiResponse {
                status: d.status,
                sense: Vec::new(),
                data_in: d.data,
                residual: residual(d.want),
                suppressed: false,
            }
        }
        Err(Fail::Check { sense, want }) => ScsiResponse {
            status: status::CHECK_CONDITION,
            sense: sense.encode(descriptor),
            data_in: Vec::new(),
            residual: want.map(residual).unwrap_or_default(),
            suppressed: false,
        },
        Err(Fail::ReservationConflict) => ScsiResponse {
            status: status::RESERVATION_CONFLICT,
            ..ScsiResponse::default()
        },
        Err(Fail::TaskSetFull) => ScsiResponse {
            status: status::TASK_SET_FULL,
            ..ScsiResponse::default()
        },
    }
}

/// Backstore errors become MEDIUM ERROR with the read or write ASC.
pub(crate) fn io_fail(e: io::Error, write: bool) -> Fail {
    tracing::warn!(error = %e, write, "backstore I/O error");
    let a = if write {
        asc::WRITE_ERROR
    } else {
        asc::UNRECOVERED_READ_ERROR
    };
    Sense::medium_error(a).into()
}

impl Device {
    /// Opcode table flags whose entries are switched off (`emulate_rsoc`, `emulate_pr`,
    /// `emulate_caw`).
    pub(crate) fn hidden_ops(&self) -> u16 {
        let mut h = 0;
        if !self.rsoc.load(Ordering::Relaxed) {
            h |= F_RSOC;
        }
        if !self.emulate_pr.load(Ordering::Relaxed) {
            h |= F_PR;
        }
        if !self.emulate_caw.load(Ordering::Relaxed) {
            h |= F_CAW;
        }
        if !self.emulate_tpu.load(Ordering::Relaxed) {
            h |= F_TPU;
        }
        if !self.emulate_3pc.load(Ordering::Relaxed) {
            h |= F_3PC;
        }
        if !self.media.removable() {
            h |= F_REMOVABLE;
        }
        h
    }
}
