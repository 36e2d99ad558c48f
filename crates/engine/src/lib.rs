//! The SCSI target engine (SAM-5 / SPC-4 / SBC-3), transport-independent.
//!
//! Contract used by the fabric (iSCSI server) and the control plane:
//!
//! * [`Device`] — a logical unit: a backstore plus attributes, identity (WWN), unit-attention
//!   queues and reservation state. Created by the control plane from a backstore.
//! * [`TargetPort`] — an SPC-4 target port (for iSCSI: target IQN + TPGT), with its relative
//!   target port identifier, its LUN table (LUN → device) and its ACLs (initiator name → mapped
//!   LUNs). The control plane edits these live.
//! * [`Nexus`] — an I_T nexus: one initiator port (name + ISID) logged in through one target port.
//!   The fabric creates one per iSCSI session with [`TargetPort::open_nexus`] and drops it
//!   (with [`Nexus::close`]) when the session ends (I_T nexus loss).
//! * [`Nexus::execute`] runs one SCSI command to completion (blocking; call it from a thread
//!   pool) and returns a [`ScsiResponse`]. [`Nexus::task_management`] runs a TMF.
//! * A transport that holds a command before it can run (an iSCSI write collecting Data-Out)
//!   enters it with [`Nexus::receive`] in command order and runs it later with
//!   [`Nexus::execute_received`]; TMFs reach it meanwhile through its [`TaskListener`].
//!   [`Nexus::begin_task_management`] applies a TMF at once (in command order) and
//!   [`PendingTmf::wait`] blocks until its affected tasks have ended.
//!
//! * ALUA (SPC-4 §5.11; module `alua`):
//!   [`Device::alua_groups`] and friends manage target port groups and their LIO attributes,
//!   [`TargetPort::set_lun_alua_group`] / [`TargetPort::set_lun_alua_offline`] the per-port-LUN
//!   membership and secondary state, [`LuGroup`] the LU groups, [`AluaObserver`] hears about
//!   changes the engine makes itself, [`Device::restore_alua_group_state`] restores at start.
//!
//! Execution gates, in order (docs/ARCHITECTURE.md): pending unit attention, ALUA state,
//! reservation conflict, opcode handler.
//!
//! Where things live, each layer using only those below it (`scripts/module-cycles.py` checks):
//! * `attr` — attribute schemas (name, values, default, frozen while exported, unit attention).
//! * `core` — the engine proper, knowing no command: `core::device` (the LU: identity,
//!   attributes in `core::device::attrs`, its I_T_L nexuses in `core::device::slot`, and the data
//!   of its ALUA groups, persistent reservations, medium and held copy results), `core::port`
//!   (target ports, LUN tables, ACLs; `core::port::nexus` the I_T nexus and its LUN view),
//!   `core::tmf` (task sets, task attributes, abort marking), `core::ua` (unit attentions),
//!   `core::stripe` (range locks), `core::device::reservation` (the SPC-2 reservation holder).
//! * `handler` — what a command handler is given and returns (`Ctx`, `Done`, `Fail`), the
//!   opcode table's types and gate flags, and the one error → sense / response function.
//! * [`pr`] — persistent reservations (SPC-4 §5.13): PR IN / PR OUT, the conflict gate, APTPL
//!   through [`AptplStore`]. `alua` — asymmetric access (SPC-4 §5.11): the admin surface,
//!   transitions, the access-state gate, RTPG / STPG.
//! * `cmd` — the other command handlers, one module per family (spc, vpd, mode, sbc, thin,
//!   xcopy, atomic, sanitize, defect, media), the opcode table (`cmd::table`) and its lookup
//!   (`cmd::ops`).
//! * `pipeline` — `Nexus::execute`: LUN → task set → gates → dispatch → response; task
//!   management and I_T nexus loss (`pipeline::tmf`).

use std::sync::Arc;

pub use ironlun_scsi as scsi;

/// SCSI initiator port identity: iSCSI name + ISID (SPC-4 §7.6.4.6 `iqn…,i,0x<isid>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InitiatorPortId {
    /// The initiator node name (e.g. `iqn.1994-05.com.redhat:host1`), as sent at login.
    pub name: String,
    /// The 6-byte ISID from the login PDU.
    pub isid: [u8; 6],
}

impl InitiatorPortId {
    /// The SPC-4 iSCSI initiator port name `<name>,i,0x<isid hex>`.
    pub fn port_name(&self) -> String {
        let mut s = format!("{},i,0x", self.name);
        for b in self.isid {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

/// Direction of data transfer for a command, as the transport saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirection {
    None,
    /// Data-In: target → initiator (READ).
    Read,
    /// Data-Out: initiator → target (WRITE).
    Write,
    Bidirectional,
}

/// SAM-5 task attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TaskAttr {
    Untagged,
    #[default]
    Simple,
    Ordered,
    HeadOfQueue,
    Aca,
}

/// One SCSI command as received by the transport, with all its Data-Out already gathered.
#[derive(Debug)]
pub struct ScsiRequest {
    /// The LUN field as the initiator addressed it (the 8-byte SAM LUN decoded to a number,
    /// flat/peripheral addressing; e.g. LUN 0 → 0).
    pub lun: u64,
    /// The CDB, exactly as received (16 bytes for iSCSI plus any AHS extension; trailing bytes
    /// beyond the opcode's CDB length are ignored).
    pub cdb: Vec<u8>,
    /// The initiator's tag for this task (iSCSI Initiator Task Tag); used by ABORT TASK.
    pub tag: u64,
    pub attr: TaskAttr,
    pub direction: DataDirection,
    /// Expected data transfer length in bytes as the transport announced it (iSCSI EDTL).
    /// For reads: the most bytes the initiator accepts. For writes: `data_out.len()` is this.
    pub expected_len: u32,
    /// All Data-Out bytes (immediate + unsolicited + solicited), `expected_len` long for writes.
    pub data_out: Vec<u8>,
}

/// Residual as SAM/iSCSI report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Residual {
    #[default]
    None,
    /// The command wanted to move fewer bytes than expected_len (count = the difference).
    Underflow(u32),
    /// The command wanted to move more bytes than expected_len (count = the difference).
    Overflow(u32),
}

/// The outcome of one command.
#[derive(Debug, Default)]
pub struct ScsiResponse {
    /// SAM status byte ([`scsi::status`]).
    pub status: u8,
    /// Sense data (fixed or descriptor per the LU's D_SENSE), present with CHECK CONDITION.
    pub sense: Vec<u8>,
    /// Data-In bytes to send (already truncated to expected_len and the CDB's allocation length).
    pub data_in: Vec<u8>,
    pub residual: Residual,
    /// The task was aborted by a task management function of its own I_T nexus (ABORT TASK,
    /// ABORT TASK SET, LUN RESET from the same session): the transport sends no response for it
    /// (SAM-5 §5.6). Tasks of *other* nexuses aborted with TAS=1 instead come back with status
    /// TASK ABORTED and `suppressed == false`.
    pub suppressed: bool,
}

impl ScsiResponse {
    /// The end of a task a task management function aborted (SAM-5 §5.6): no response at all
    /// ([`Abort::Silent`]) or status TASK ABORTED ([`Abort::TaskAborted`]).
    pub fn aborted(how: Abort) -> ScsiResponse {
        match how {
            Abort::Silent => ScsiResponse {
                suppressed: true,
                ..ScsiResponse::default()
            },
            Abort::TaskAborted => ScsiResponse {
                status: scsi::status::TASK_ABORTED,
                ..ScsiResponse::default()
            },
        }
    }
}

/// The transport's side of the tasks it received into a task set ([`Nexus::receive`]) but has
/// not run yet ([`Nexus::execute_received`]) — e.g. an iSCSI write still collecting Data-Out.
/// A TMF of any I_T nexus that aborts such a task (ABORT TASK, ABORT TASK SET, CLEAR TASK SET,
/// LOGICAL UNIT RESET, target resets: SAM-5 §7) calls [`TaskListener::aborted`] and completes
/// only after the transport has dropped the task's [`Received`] (SAM-5 §7.1).
pub trait TaskListener: Send + Sync {
    /// The task with initiator tag `tag` is aborted and ends as `how` says: the transport sends
    /// [`ScsiResponse::aborted`]`(how)` for it (nothing for [`Abort::Silent`]), never runs it,
    /// and drops its [`Received`]. `whole_set`: a multi-task function (anything but ABORT
    /// TASK), for which a transport may first let transfers already solicited finish
    /// (RFC 7143 §4.2.3.3). Called from the TMF's thread, with no engine lock held.
    fn aborted(&self, tag: u64, how: Abort, whole_set: bool);
}

/// SAM-5 task management functions (RFC 7143 §11.5.1 function codes in comments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TmfKind {
    /// 1: abort the task with this initiator tag on this I_T_L nexus.
    AbortTask { tag: u64 },
    /// 2
    AbortTaskSet,
    /// 3
    ClearAca,
    /// 4
    ClearTaskSet,
    /// 5
    LogicalUnitReset,
    /// 6
    TargetWarmReset,
    /// 7
    TargetColdReset,
}

/// TMF response codes (RFC 7143 §11.6.1 values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TmfResponse {
    FunctionComplete = 0,
    TaskDoesNotExist = 1,
    LunDoesNotExist = 2,
    TaskStillAllegiant = 3,
    ReassignmentNotSupported = 4,
    NotSupported = 5,
    AuthorizationFailed = 6,
    Rejected = 255,
}

/// Why a nexus could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoginDenied {
    #[error("initiator {0} is not in the ACL of this target port")]
    NotAuthorized(String),
    #[error("target port is disabled")]
    Disabled,
}

pub mod attr;
mod handler;
mod pipeline;
pub mod pr;
pub use pr::{AptplStore, PrRegistration, PrReservation, PrState};
mod alua;
pub use alua::{
    alua_group_attribute_defs, settable_alua_states, AluaObserver, LuGroup, DEFAULT_GROUP_NAME,
};
mod cmd;
mod core;
pub mod metrics;

pub use crate::core::device::{device_attribute_defs, Device, DeviceConfig, DeviceInfo};
pub use crate::core::port::nexus::Nexus;
pub use crate::core::port::{MappedLun, TargetPort};
pub use crate::core::tmf::Abort;
pub use crate::pipeline::tmf::PendingTmf;
pub use crate::pipeline::{Received, INLINE_MAX_BYTES};

/// Shared handle types.
pub type DeviceRef = Arc<Device>;
pub type PortRef = Arc<TargetPort>;
