//! What the reader task and the callers share (RFC 7143 §4.2): the tasks outstanding by
//! Initiator Task Tag, the sequence numbers, the statistics; ending a task and reporting what
//! no task was waiting for.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use ironlun_iscsi::negotiation::OperationalParams;
use ironlun_iscsi::text::TextCollector;
use ironlun_iscsi::{LogoutResponse, Pdu, R2t};
use tokio::sync::{mpsc, oneshot, Notify};

use super::{DataOutPolicy, Event, Stats};
use crate::command::CommandResult;
use crate::connection::Counters;
use crate::{Error, Result};

pub(super) enum Outgoing {
    Pdu(Pdu),
    Bytes(Vec<u8>),
}

pub(super) struct ScsiTask {
    pub(super) lun: u64,
    pub(super) lun_raw: [u8; 8],
    pub(super) cmd_sn: u32,
    pub(super) data_out: Bytes,
    pub(super) policy: DataOutPolicy,
    pub(super) held: Vec<R2t>,
    pub(super) next_r2t_sn: u32,
    pub(super) next_data_sn: u32,
    pub(super) buf: Vec<u8>,
    pub(super) high_water: usize,
    pub(super) tx: oneshot::Sender<Result<CommandResult>>,
}

pub(super) enum Task {
    Scsi(Box<ScsiTask>),
    Nop(oneshot::Sender<Result<Bytes>>),
    Tmf {
        function: u8,
        lun: u64,
        referenced: u32,
        cmd_sn: u32,
        tx: oneshot::Sender<Result<u8>>,
    },
    Text {
        collector: TextCollector,
        tx: oneshot::Sender<Result<Vec<(String, String)>>>,
    },
    Logout(oneshot::Sender<Result<LogoutResponse>>),
}

pub(super) struct State {
    pub(super) c: Counters,
    pub(super) tasks: HashMap<u32, Task>,
    pub(super) closed: Option<String>,
    pub(super) stats: Stats,
}

pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) tx: mpsc::UnboundedSender<Outgoing>,
    pub(super) window: Notify,
    /// Signalled after every PDU the reader handled (for [`Session::until`]).
    pub(super) progress: Notify,
    pub(super) events_tx: mpsc::UnboundedSender<Event>,
    pub(super) events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>,
    pub(super) params: OperationalParams,
    pub(super) cid: u16,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug in this crate; keep going with the data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub(super) fn send(&self, p: Pdu) {
        let _ = self.tx.send(Outgoing::Pdu(p));
    }
}

pub(super) fn fail(t: Task, e: Error) {
    match t {
        Task::Scsi(s) => {
            let _ = s.tx.send(Err(e));
        }
        Task::Nop(tx) => {
            let _ = tx.send(Err(e));
        }
        Task::Tmf { tx, .. } => {
            let _ = tx.send(Err(e));
        }
        Task::Text { tx, .. } => {
            let _ = tx.send(Err(e));
        }
        Task::Logout(tx) => {
            let _ = tx.send(Err(e));
        }
    }
}

pub(super) fn event(sh: &Shared, e: Event) {
    let _ = sh.events_tx.send(e);
}

/// A PDU for a tag we do not have (or of the wrong kind for it).
pub(super) fn unexpected(sh: &Shared, st: &mut State, itt: u32, task: Option<Task>, pdu: Pdu) {
    if let Some(t) = task {
        st.stats.violations.push(format!(
            "{:?} for task {itt:#x} of another kind",
            pdu.bhs.opcode()
        ));
        fail(
            t,
            Error::Protocol(format!("unexpected {:?}", pdu.bhs.opcode())),
        );
    }
    event(sh, Event::Unexpected(pdu));
}
