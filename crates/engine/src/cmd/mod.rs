//! The command handlers, one module per command family, and what they share: the opcode
//! table's types ([`Cmd`], [`OpInfo`] and the gate flags), the handler context ([`Ctx`]), a
//! handler's result ([`Done`] / [`Fail`]), the dispatch from [`Cmd`] to its handler, and the one
//! place where an outcome becomes the transport's response ([`respond`]: status, sense in the
//! LU's format, Data-In cut to the allocation and expected lengths, residual; RFC 7143 §11.4.5,
//! SAM-5 §5.4.3).
//!
//! Families: [`spc`] (INQUIRY, REQUEST SENSE, REPORT LUNS, RSOC, reservations' commands),
//! [`vpd`] (INQUIRY VPD pages), [`mode`] (MODE SENSE/SELECT), [`sbc`] (READ, WRITE, VERIFY,
//! COMPARE AND WRITE, WRITE SAME, SYNCHRONIZE CACHE, READ CAPACITY), [`thin`] (UNMAP, GET LBA
//! STATUS), [`xcopy`] (EXTENDED COPY, RECEIVE COPY RESULTS), [`atomic`] (ORWRITE, WRITE
//! ATOMIC), [`sanitize`], [`defect`] (READ DEFECT DATA), [`media`] (removable medium, START
//! STOP UNIT, PREVENT ALLOW), [`reservation`] (SPC-2 RESERVE/RELEASE state). The opcode table is
//! [`table`], looked up and checked by [`ops`]. PR and ALUA commands live in `crate::pr` and
//! `crate::alua`.

use ironlun_scsi::sense::asc;
use ironlun_scsi::{status, Sense};

use crate::core::device::Device;
use crate::core::nexus::Nexus;
use crate::core::port::LunSlot;
use crate::{alua, pr, DataDirection, Residual, ScsiRequest, ScsiResponse};

pub(crate) mod atomic;
pub(crate) mod defect;
pub(crate) mod media;
pub(crate) mod mode;
pub(crate) mod ops;
pub(crate) mod reservation;
pub(crate) mod sanitize;
pub(crate) mod sbc;
pub(crate) mod spc;
pub(crate) mod table;
pub(crate) mod thin;
pub(crate) mod vpd;
pub(crate) mod xcopy;

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

pub(crate) type Outcome = Result<Done, Fail>;

pub(crate) fn run(c: &Ctx) -> Outcome {
    match c.op.cmd {
        Cmd::TestUnitReady => Ok(Done::good()),
        Cmd::RequestSense => spc::request_sense(c),
        Cmd::Inquiry => spc::inquiry(c),
        Cmd::ReportLuns => spc::report_luns(c.nexus, c.cdb),
        Cmd::ReportSupportedOpcodes => spc::rsoc(c),
        Cmd::ReportSupportedTmfs => spc::rstmf(c),
        Cmd::ReportTargetPortGroups => alua::report::report_target_port_groups(c),
        Cmd::SetTargetPortGroups => alua::report::set_target_port_groups(c),
        Cmd::Reserve => spc::reserve(c),
        Cmd::Release => spc::release(c),
        Cmd::ModeSense6 | Cmd::ModeSense10 => mode::mode_sense(c),
        Cmd::ModeSelect6 | Cmd::ModeSelect10 => mode::mode_select(c),
        Cmd::Read => sbc::read(c),
        Cmd::Write => sbc::write(c),
        Cmd::WriteVerify => sbc::write_verify(c),
        Cmd::CompareAndWrite => sbc::compare_and_write(c),
        Cmd::WriteSame => sbc::write_same(c),
        Cmd::Verify => sbc::verify(c),
        Cmd::PreFetch => sbc::pre_fetch(c),
        Cmd::SyncCache => sbc::sync_cache(c),
        Cmd::StartStopUnit => media::start_stop_unit(c),
        Cmd::PreventAllow => media::prevent_allow(c),
        Cmd::Unmap => thin::unmap(c),
        Cmd::GetLbaStatus => thin::get_lba_status(c),
        Cmd::ExtendedCopy => xcopy::extended_copy(c),
        Cmd::ReceiveCopyResults => xcopy::receive_copy_results(c),
        Cmd::OrWrite => atomic::orwrite(c),
        Cmd::WriteAtomic => atomic::write_atomic(c),
        Cmd::Sanitize => sanitize::sanitize(c),
        Cmd::ReadDefectData => defect::read_defect_data(c),
        Cmd::ReadCapacity10 => sbc::read_capacity_10(c),
        Cmd::ReadCapacity16 => sbc::read_capacity_16(c),
        Cmd::PersistentReserveIn => pr::persistent_reserve_in(c),
        Cmd::PersistentReserveOut => pr::persistent_reserve_out(c),
    }
}

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
