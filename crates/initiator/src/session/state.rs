//! What the reader task and the callers share (RFC 7143 §4.2): the tasks outstanding by
//! Initiator Task Tag, the sequence numbers, the statistics; ending a task and reporting what
//! no task was waiting for.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use ironlun_iscsi::negotiation::OperationalParams;
use ironlun_iscsi::text::TextCollector;
use ironlun_iscsi::{LogoutResponse, Pdu, R2t};
use tokio::sync::{mpsc, oneshot, Notify};

use super::{DataOutPolicy, Event, Stats, MAX_EVENTS};
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
    pub(super) closed: Option<Ending>,
    pub(super) stats: Stats,
}

/// How a session ended.
#[derive(Clone, Debug)]
pub(super) enum Ending {
    /// The target closed the connection.
    ByTarget,
    /// The target broke the protocol (what).
    Protocol(String),
    /// [`super::Session::close_now`] (why).
    ByUs(String),
}

impl Ending {
    /// The error outstanding and later requests end with.
    pub(super) fn error(&self) -> Error {
        match self {
            Ending::ByTarget => Error::ConnectionClosed,
            Ending::Protocol(m) => Error::Protocol(m.clone()),
            Ending::ByUs(m) => Error::ClosedByInitiator(m.clone()),
        }
    }

    /// In words, for [`super::Session::closed`] and [`Event::Closed`].
    pub(super) fn text(&self) -> String {
        self.error().to_string()
    }
}

pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) tx: mpsc::UnboundedSender<Outgoing>,
    /// PDUs queued for the writer and not yet taken by it (a target that stops reading
    /// shows here).
    pub(super) queued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub(super) window: Notify,
    /// Signalled after every PDU the reader handled (for [`Session::until`]).
    pub(super) progress: Notify,
    pub(super) events: Events,
    pub(super) params: OperationalParams,
    pub(super) cid: u16,
    /// Whether the reader answers target NOP-In pings ([`super::Session::answer_nop_ins`]).
    pub(super) answer_pings: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug in this crate; keep going with the data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub(super) fn send(&self, p: Pdu) {
        self.queue(Outgoing::Pdu(p));
    }
    /// Queue for the writer task; false once it is gone.
    pub(super) fn queue(&self, o: Outgoing) -> bool {
        // Counted before sending: the writer subtracts what it takes.
        self.queued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.tx.send(o).is_ok()
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
    sh.events.push(e);
}

/// The unsolicited events not read yet, at most [`MAX_EVENTS`]: a target that floods
/// Async Messages or Rejects at a session whose owner does not read them costs a bounded
/// amount of memory (the oldest are dropped and counted).
#[derive(Default)]
pub(super) struct Events {
    q: Mutex<EventQueue>,
    arrived: Notify,
}

#[derive(Default)]
struct EventQueue {
    items: VecDeque<Event>,
    dropped: u64,
    /// [`Event::Closed`] was queued: nothing comes after it.
    ended: bool,
}

impl Events {
    fn lock(&self) -> MutexGuard<'_, EventQueue> {
        self.q.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn push(&self, e: Event) {
        {
            let mut q = self.lock();
            if q.ended {
                return;
            }
            if q.items.len() >= MAX_EVENTS {
                q.items.pop_front();
                q.dropped += 1;
            }
            q.ended = matches!(e, Event::Closed(_));
            q.items.push_back(e);
        }
        self.arrived.notify_waiters();
    }

    /// The oldest queued event; `Err(true)` when none is queued and none will come.
    pub(super) fn pop(&self) -> Result<Event, bool> {
        let mut q = self.lock();
        match q.items.pop_front() {
            Some(e) => Ok(e),
            None => Err(q.ended),
        }
    }

    pub(super) async fn next(&self) -> Option<Event> {
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            match self.pop() {
                Ok(e) => return Some(e),
                Err(true) => return None,
                Err(false) => arrived.await,
            }
        }
    }

    pub(super) fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

/// A PDU for a tag we do not have (or of the wrong kind for it).
pub(super) fn unexpected(sh: &Shared, st: &mut State, itt: u32, task: Option<Task>, pdu: Pdu) {
    if let Some(t) = task {
        st.stats.violation(format!(
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
