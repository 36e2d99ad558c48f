//! The full feature phase on one connection (RFC 7143 §4.2, §11): a reader task routes every
//! target PDU to its task by ITT, a writer task sends PDUs in the order they were queued (so
//! CmdSN order on the wire is allocation order).
//!
//! In dependency order:
//! * `state`: what the two tasks share: the tasks outstanding by ITT, the counters, the
//!   statistics; ending a task.
//! * `window`: ITT allocation and the CmdSN window (§4.2.2.1: send only while CmdSN <=
//!   MaxCmdSN).
//! * `transfer`: SCSI commands and their data: immediate data and unsolicited Data-Out up to
//!   FirstBurstLength (§4.2.5.2, §13.13-14), R2T-solicited Data-Out in PDUs of at most the
//!   target's MaxRecvDataSegmentLength (§11.8), Data-In reassembly by buffer offset with
//!   status in the final Data-In (§11.7.4), the SCSI Response (§11.4).
//! * `tmf`: task management (§11.5-6) and the tasks it ends.
//! * `text`: text requests and SendTargets (§11.10-11, Appendix C).
//! * `reader`: the reader and writer tasks; the reader dispatches each PDU to the above and
//!   answers target NOP-Ins (§11.19).
//! * Here: the [`Session`] handle, NOP-Out pings (§11.18) and logout (§11.14-15).
//!
//! Anything unexpected (Async Messages, Rejects, PDUs for unknown tags) becomes an [`Event`];
//! protocol deviations the target survives are counted in [`Stats::violations`] so tests can
//! assert there are none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ironlun_iscsi::negotiation::OperationalParams;
use ironlun_iscsi::{
    AsyncMessage, Bhs, LogoutRequest, LogoutResponse, NopOut, Pdu, Reject, RESERVED_TAG,
};
use tokio::net::ToSocketAddrs;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use crate::command::CommandResult;
use crate::connection::{Connection, Counters};
use crate::login::{LoginConfig, Negotiated};
use crate::{Error, Result};
use reader::{read_loop, write_loop};
use state::{Events, Outgoing, Shared, State, Task};
use window::alloc_itt;

mod reader;
mod state;
#[cfg(test)]
mod tests;
mod text;
mod tmf;
mod transfer;
mod window;

pub use text::parse_send_targets;

/// How a write command answers R2Ts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DataOutPolicy {
    /// Send solicited data as soon as each R2T arrives.
    #[default]
    Prompt,
    /// Never send solicited data until [`Session::release_data`]: the command stays
    /// outstanding in the target (for ABORT TASK tests). For multi-task TMFs an initiator
    /// keeps answering R2Ts of the affected tasks (RFC 3720 §10.6.2, RFC 7143 §4.2.3): the
    /// caller releases the data after sending such a TMF, or a target may wait for it.
    Withhold,
    /// Hold R2Ts until this many are outstanding (or they cover all remaining data), then
    /// answer them all: shows whether the target keeps several R2Ts outstanding.
    Batch(u32),
}

/// Per-command options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandOptions {
    /// Task attribute (`ironlun_iscsi::pdu::task_attr`).
    pub attr: u8,
    /// Send as an immediate command (I bit; CmdSN not advanced).
    pub immediate: bool,
    pub data_out: DataOutPolicy,
    /// Allow immediate data / unsolicited Data-Out when negotiated (default true).
    pub unsolicited: bool,
}

impl Default for CommandOptions {
    fn default() -> Self {
        CommandOptions {
            attr: ironlun_iscsi::pdu::task_attr::SIMPLE,
            immediate: false,
            data_out: DataOutPolicy::Prompt,
            unsolicited: true,
        }
    }
}

/// Something the target sent that no request of ours was waiting for.
#[derive(Clone, Debug)]
pub enum Event {
    /// Asynchronous Message (§11.9); `data` holds sense data for SCSI async events.
    Async { msg: AsyncMessage, data: Bytes },
    /// Reject (§11.17); `data` is the rejected PDU's header.
    Reject { reject: Reject, data: Bytes },
    /// A PDU for a tag we do not know (or of a kind a target must not send).
    Unexpected(Pdu),
    /// The connection ended (reason).
    Closed(String),
}

/// Counters over the session's life, for tests that check the target's flow control.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub data_in_pdus: u64,
    /// Largest Data-In data segment seen.
    pub max_data_in_segment: u32,
    pub data_out_pdus: u64,
    pub max_data_out_segment: u32,
    pub r2ts: u64,
    /// Largest R2T Desired Data Transfer Length seen.
    pub max_r2t_length: u32,
    /// Most R2Ts of one task outstanding at once (only meaningful under
    /// [`DataOutPolicy::Batch`] or [`DataOutPolicy::Withhold`], which let them accumulate).
    pub max_outstanding_r2t: u32,
    pub immediate_bytes: u64,
    pub unsolicited_bytes: u64,
    pub solicited_bytes: u64,
    /// Target NOP-Ins we answered (TTT != 0xffffffff).
    pub nop_ins_answered: u64,
    /// Target NOP-In pings left unanswered on purpose ([`Session::answer_nop_ins`] off).
    pub nop_ins_ignored: u64,
    /// Protocol deviations by the target that did not stop the session: the first
    /// [`MAX_VIOLATIONS`] of them (a target that misbehaves on every PDU does not grow the
    /// session's memory); `violations_total` counts them all.
    pub violations: Vec<String>,
    pub violations_total: u64,
    /// The latest deviation (kept when `violations` is full).
    pub last_violation: Option<String>,
    /// Unsolicited events dropped because [`MAX_EVENTS`] were queued and not read.
    pub events_dropped: u64,
}

/// Protocol deviations kept word for word in [`Stats::violations`].
pub const MAX_VIOLATIONS: usize = 64;
/// Unsolicited events queued for [`Session::next_event`]; past this the oldest is dropped.
pub const MAX_EVENTS: usize = 256;

impl Stats {
    /// Record a deviation (kept if fewer than [`MAX_VIOLATIONS`] are).
    pub(crate) fn violation(&mut self, what: String) {
        self.violations_total += 1;
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(what.clone());
        }
        self.last_violation = Some(what);
    }
}

/// A SendTargets record (Appendix C).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoveredTarget {
    pub name: String,
    /// `TargetAddress` values: `ip:port,tpgt`.
    pub addresses: Vec<String>,
}

struct Handles {
    shared: Arc<Shared>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for Handles {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
        // An [`EventReceiver`] outliving the session learns that nothing more will come.
        self.shared
            .events
            .push(Event::Closed("the session was dropped".into()));
    }
}

/// The unsolicited events of a session, readable without keeping the session (and its
/// connection) alive: when the last [`Session`] handle is dropped, [`Event::Closed`] ends them.
#[derive(Clone)]
pub struct EventReceiver {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EventReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReceiver").finish_non_exhaustive()
    }
}

impl EventReceiver {
    /// As [`Session::next_event`].
    pub async fn next(&self) -> Option<Event> {
        self.shared.events.next().await
    }

    /// Whether these are `s`'s events.
    pub fn of(&self, s: &Session) -> bool {
        Arc::ptr_eq(&self.shared, &s.h.shared)
    }
}

/// A logged-in session on one connection. Cheap to clone; the connection closes when the

#[derive(Clone)]
pub struct Session {
    h: Arc<Handles>,
    negotiated: Arc<Negotiated>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("tsih", &self.negotiated.tsih)
            .field("counters", &self.counters())
            .field("closed", &self.closed())
            .finish()
    }
}

/// A command on its way; [`PendingCommand::wait`] for the result.
#[derive(Debug)]
pub struct PendingCommand {
    pub itt: u32,
    pub cmd_sn: u32,
    rx: oneshot::Receiver<Result<CommandResult>>,
}

impl PendingCommand {
    pub async fn wait(self) -> Result<CommandResult> {
        self.rx.await.unwrap_or(Err(Error::ConnectionClosed))
    }
}

impl Session {
    /// Connect, log in with `cfg`, and start the full feature phase.
    pub async fn login(addr: impl ToSocketAddrs, cfg: &LoginConfig) -> Result<Session> {
        let mut conn = Connection::connect(addr).await?;
        let negotiated = crate::login::login(&mut conn, cfg).await?;
        Ok(Session::start(conn, negotiated, cfg.cid))
    }

    /// Take over a connection that finished login.
    pub fn start(conn: Connection, negotiated: Negotiated, cid: u16) -> Session {
        let Connection {
            reader,
            writer,
            counters,
        } = conn;
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                c: counters,
                tasks: HashMap::new(),
                closed: None,
                stats: Stats::default(),
            }),
            tx,
            window: Notify::new(),
            progress: Notify::new(),
            events: Events::default(),
            queued: queued.clone(),
            params: negotiated.params.clone(),
            cid,
            answer_pings: std::sync::atomic::AtomicBool::new(true),
        });
        let writer = tokio::spawn(write_loop(writer, rx, queued));
        let reader = tokio::spawn(read_loop(reader, shared.clone()));
        Session {
            h: Arc::new(Handles {
                shared,
                reader,
                writer,
            }),
            negotiated: Arc::new(negotiated),
        }
    }

    fn sh(&self) -> &Shared {
        &self.h.shared
    }

    /// What login agreed.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// The operational parameters in force.
    pub fn params(&self) -> &OperationalParams {
        &self.negotiated.params
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.sh().lock().stats.clone();
        s.events_dropped = self.sh().events.dropped();
        s
    }

    /// How many protocol deviations the target made so far ([`Stats::violations_total`]),
    /// without copying the statistics.
    pub fn violations_total(&self) -> u64 {
        self.sh().lock().stats.violations_total
    }

    /// The latest deviation if there were more than `seen` ([`Session::violations_total`]
    /// before a command): what went wrong while it ran.
    pub fn violation_since(&self, seen: u64) -> Option<String> {
        let st = self.sh().lock();
        (st.stats.violations_total > seen)
            .then(|| st.stats.last_violation.clone())
            .flatten()
    }

    /// Current sequence numbers (for hand-built PDUs).
    pub fn counters(&self) -> Counters {
        self.sh().lock().c
    }

    /// Wait until `cond` holds for the statistics (re-checked after every PDU received), e.g.
    /// until the target's R2T for a withheld write has arrived. Returns the statistics, or
    /// [`Error::ConnectionClosed`] if the connection ends first with `cond` still false.
    pub async fn until(&self, cond: impl Fn(&Stats) -> bool) -> Result<Stats> {
        loop {
            let notified = self.sh().progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.sh().lock();
                if cond(&st.stats) {
                    return Ok(st.stats.clone());
                }
                if st.closed.is_some() {
                    return Err(Error::ConnectionClosed);
                }
            }
            notified.await;
        }
    }

    /// Close the connection at once, without a logout, for a target that no longer answers
    /// (as Linux drops a session whose error handling failed): outstanding commands fail with
    /// [`Error::ClosedByInitiator`] naming `why`, and nothing more is sent or received.
    pub fn close_now(&self, why: &str) {
        self.h.reader.abort();
        self.h.writer.abort();
        if self.sh().lock().closed.is_none() {
            reader::end(self.sh(), state::Ending::ByUs(why.to_owned()));
        }
    }

    /// Whether target NOP-In pings (§11.19) are answered (the default) or silently left
    /// unanswered, as by a host that hung: a test of the target's keep-alive
    /// (`nopin_response_timeout`) switches them off and watches the target drop the
    /// connection. Pings left unanswered count in [`Stats::nop_ins_ignored`].
    pub fn answer_nop_ins(&self, on: bool) {
        self.sh()
            .answer_pings
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Why the connection ended, if it did.
    pub fn closed(&self) -> Option<String> {
        self.sh().lock().closed.as_ref().map(state::Ending::text)
    }

    /// Allocate an ITT and, unless `immediate`, a CmdSN (for hand-built PDUs; responses to
    /// them arrive as [`Event::Unexpected`]).
    pub fn allocate(&self, immediate: bool) -> (u32, u32) {
        let mut st = self.sh().lock();
        let itt = alloc_itt(&mut st);
        let sn = st.c.cmd_sn;
        if !immediate {
            st.c.cmd_sn = sn.wrapping_add(1);
        }
        (itt, sn)
    }

    /// Queue a hand-built PDU (encoded with the negotiated digests).
    pub fn send_pdu(&self, pdu: Pdu) -> Result<()> {
        self.sh()
            .queue(Outgoing::Pdu(pdu))
            .then_some(())
            .ok_or(Error::ConnectionClosed)
    }

    /// Queue raw bytes.
    pub fn send_bytes(&self, bytes: Vec<u8>) -> Result<()> {
        self.sh()
            .queue(Outgoing::Bytes(bytes))
            .then_some(())
            .ok_or(Error::ConnectionClosed)
    }

    /// The next unsolicited event; `None` once the connection is gone and all were read.
    pub async fn next_event(&self) -> Option<Event> {
        self.sh().events.next().await
    }

    /// A handle on this session's events that does not keep the session open.
    pub fn events(&self) -> EventReceiver {
        EventReceiver {
            shared: self.h.shared.clone(),
        }
    }

    /// An event if one is queued now.
    pub fn try_event(&self) -> Option<Event> {
        self.sh().events.pop().ok()
    }

    /// NOP-Out ping (§11.18) as an immediate PDU; returns the data the target echoed.
    pub async fn ping(&self, data: Vec<u8>) -> Result<Bytes> {
        let (tx, rx) = oneshot::channel();
        let sh = self.sh();
        self.with_window(true, move |st| {
            let itt = alloc_itt(st);
            let bhs = Bhs::NopOut(NopOut {
                immediate: true,
                lun: [0; 8],
                itt,
                ttt: RESERVED_TAG,
                cmd_sn: st.c.cmd_sn,
                exp_stat_sn: st.c.exp_stat_sn,
            });
            sh.send(Pdu::with_data(bhs, data));
            st.tasks.insert(itt, Task::Nop(tx));
            Ok(())
        })
        .await?;
        rx.await.unwrap_or(Err(Error::ConnectionClosed))
    }

    /// Logout (§11.14) with `reason` (`ironlun_iscsi::pdu::logout`); returns the response.
    /// Commands still outstanding end with [`Error::ConnectionClosed`] when the target
    /// closes the connection.
    pub async fn logout(&self, reason: u8) -> Result<LogoutResponse> {
        let (tx, rx) = oneshot::channel();
        let sh = self.sh();
        let cid = sh.cid;
        self.with_window(true, move |st| {
            let itt = alloc_itt(st);
            let bhs = Bhs::LogoutRequest(LogoutRequest {
                immediate: true,
                reason,
                itt,
                cid,
                cmd_sn: st.c.cmd_sn,
                exp_stat_sn: st.c.exp_stat_sn,
            });
            sh.send(Pdu::new(bhs));
            st.tasks.insert(itt, Task::Logout(tx));
            Ok(())
        })
        .await?;
        rx.await.unwrap_or(Err(Error::ConnectionClosed))
    }
}
