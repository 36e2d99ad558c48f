//! A SCSI command the connection holds (RFC 7143 §4.2.2.1, §4.2.3.3): waiting for its CmdSN
//! turn, then in its LU's task set waiting for Data-Out, or aborted by a TMF and waiting for
//! the answers to R2Ts already sent. The table of them is locked once per incoming PDU.

use std::collections::{HashMap, VecDeque};

use ironlun_engine::{Abort, DataDirection, Received, TaskAttr};
use parking_lot::{Mutex, MutexGuard};

use crate::session::TaskRef;

/// ITTs of aborted tasks remembered so their late Data-Out is dropped without a Reject.
const MAX_GONE: usize = 256;

/// One R2T sent and not yet fully answered (§11.8).
pub(super) struct OutstandingR2t {
    pub ttt: u32,
    pub offset: u32,
    pub len: u32,
    pub got: u32,
    pub next_data_sn: u32,
}

/// Where a held task stands.
pub(super) enum TaskState {
    /// Waiting for its CmdSN turn: known to the fabric only.
    Queued,
    /// Its CmdSN turn came: it holds its place in the LU's task set, where TMFs of every I_T
    /// nexus reach it (`TaskListener for Session`), until it runs.
    Admitted(Received),
    /// A TMF aborted it while it waited for Data-Out: it ends as `how` once the R2Ts already
    /// sent are answered (the data is discarded), and leaves the task set with `entry`.
    Aborted { how: Abort, entry: Received },
}

/// A command held by the fabric: waiting for its CmdSN turn or for Data-Out.
pub(super) struct Task {
    pub itt: u32,
    pub cmd_sn: u32,
    pub lun: u64,
    pub lun_raw: [u8; 8],
    pub cdb: Vec<u8>,
    pub attr: TaskAttr,
    pub direction: DataDirection,
    pub edtl: u32,
    pub data: Vec<u8>,
    /// Bytes received so far (in order: DataPDUInOrder / DataSequenceInOrder are Yes).
    pub received: u32,
    /// Unsolicited Data-Out may still arrive up to this offset.
    pub unsolicited_end: Option<u32>,
    pub unsolicited_data_sn: u32,
    pub next_r2t_offset: u32,
    pub r2t_sn: u32,
    pub r2ts: VecDeque<OutstandingR2t>,
    pub state: TaskState,
    /// Non-immediate commands hold a window slot until their response is queued.
    pub counts_in_window: bool,
}

impl Task {
    pub(super) fn data_complete(&self) -> bool {
        self.direction != DataDirection::Write && self.direction != DataDirection::Bidirectional
            || self.received >= self.edtl
    }

    pub(super) fn is_queued(&self) -> bool {
        matches!(self.state, TaskState::Queued)
    }

    pub(super) fn is_aborted(&self) -> bool {
        matches!(self.state, TaskState::Aborted { .. })
    }

    /// Admitted with all its data: ready to run.
    pub(super) fn is_ready(&self) -> bool {
        matches!(self.state, TaskState::Admitted(_)) && self.data_complete()
    }

    /// A TMF aborted it: it ends as `how`. False (and unchanged) when it is still waiting
    /// for its CmdSN turn, so not in the task set the TMF acted on.
    pub(super) fn abort(&mut self, how: Abort) -> bool {
        match std::mem::replace(&mut self.state, TaskState::Queued) {
            TaskState::Queued => false,
            TaskState::Admitted(entry) | TaskState::Aborted { entry, .. } => {
                self.state = TaskState::Aborted { how, entry };
                true
            }
        }
    }

    pub(super) fn task_ref(&self) -> TaskRef {
        TaskRef {
            itt: self.itt,
            cmd_sn: self.cmd_sn,
            lun: self.lun,
        }
    }
}

/// The tasks a connection holds, by ITT, and the ITTs of tasks recently aborted.
#[derive(Default)]
pub(super) struct HeldTasks {
    tasks: Mutex<HashMap<u32, Task>>,
    /// Recently aborted tasks (see `MAX_GONE`).
    gone: Mutex<VecDeque<u32>>,
}

impl HeldTasks {
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<u32, Task>> {
        self.tasks.lock()
    }

    pub(super) fn remember_gone(&self, itt: u32) {
        let mut g = self.gone.lock();
        if g.len() >= MAX_GONE {
            g.pop_front();
        }
        g.push_back(itt);
    }

    pub(super) fn was_aborted(&self, itt: u32) -> bool {
        self.gone.lock().contains(&itt)
    }
}

/// Take the task `itt` out of `tasks` if it is ready to run.
pub(super) fn take_ready(tasks: &mut HashMap<u32, Task>, itt: u32) -> Option<Task> {
    match tasks.get(&itt) {
        Some(t) if t.is_ready() => tasks.remove(&itt),
        _ => None,
    }
}
