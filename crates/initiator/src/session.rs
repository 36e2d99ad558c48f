//! The full feature phase on one connection (RFC 7143 §4.2, §11): a reader task routes every
//! target PDU to its task by ITT, a writer task sends PDUs in the order they were queued (so
//! CmdSN order on the wire is allocation order).
//!
//! * Commands: ITT allocation, the CmdSN window (§4.2.2.1: send only while CmdSN <=
//!   MaxCmdSN), immediate data and unsolicited Data-Out up to FirstBurstLength (§4.2.5.2,
//!   §13.13-14), R2T-solicited Data-Out in PDUs of at most the target's
//!   MaxRecvDataSegmentLength (§11.8), Data-In reassembly by buffer offset with status in the
//!   final Data-In (§11.7.4).
//! * NOP-Out pings and answers to target NOP-Ins (§11.18-19), task management (§11.5-6),
//!   text requests and SendTargets (§11.10-11, Appendix C), logout (§11.14-15).
//! * Anything unexpected (Async Messages, Rejects, PDUs for unknown tags) becomes an
//!   [`Event`]; protocol deviations the target survives are counted in [`Stats::violations`]
//!   so tests can assert there are none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use ironlun_iscsi::negotiation::OperationalParams;
use ironlun_iscsi::pdu::{ahs_type, tmf_function, tmf_response};
use ironlun_iscsi::serial::{lun_to_bytes, sn_gt, sn_le};
use ironlun_iscsi::text::{self, TextCollector};
use ironlun_iscsi::{
    AsyncMessage, Bhs, DataIn, DataOut, LogoutRequest, LogoutResponse, NopOut, Opcode, Pdu, R2t,
    Reject, ScsiCommand, ScsiResponse, TaskMgmtRequest, TextRequest, RESERVED_TAG,
};
use tokio::net::ToSocketAddrs;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use crate::connection::{Connection, Counters, Reader, Writer};
use crate::login::{LoginConfig, Negotiated};
use crate::scsi::{CommandResult, Residual};
use crate::{Error, Result};

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
    /// Protocol deviations by the target that did not stop the session.
    pub violations: Vec<String>,
}

/// A SendTargets record (Appendix C).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoveredTarget {
    pub name: String,
    /// `TargetAddress` values: `ip:port,tpgt`.
    pub addresses: Vec<String>,
}

enum Outgoing {
    Pdu(Pdu),
    Bytes(Vec<u8>),
}

struct ScsiTask {
    lun: u64,
    lun_raw: [u8; 8],
    cmd_sn: u32,
    data_out: Bytes,
    policy: DataOutPolicy,
    held: Vec<R2t>,
    next_r2t_sn: u32,
    next_data_sn: u32,
    buf: Vec<u8>,
    high_water: usize,
    tx: oneshot::Sender<Result<CommandResult>>,
}

enum Task {
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

struct State {
    c: Counters,
    tasks: HashMap<u32, Task>,
    closed: Option<String>,
    stats: Stats,
}

struct Shared {
    state: Mutex<State>,
    tx: mpsc::UnboundedSender<Outgoing>,
    window: Notify,
    /// Signalled after every PDU the reader handled (for [`Session::until`]).
    progress: Notify,
    events_tx: mpsc::UnboundedSender<Event>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>,
    params: OperationalParams,
    cid: u16,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug in this crate; keep going with the data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn send(&self, p: Pdu) {
        let _ = self.tx.send(Outgoing::Pdu(p));
    }
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
    }
}

/// A logged-in session on one connection. Cheap to clone; the connection closes when the
/// last clone is dropped.
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

/// Record the sequence numbers in a target PDU: ExpStatSN advances past every StatSN that
/// was assigned to a status-carrying PDU; ExpCmdSN / MaxCmdSN move forward only, and only
/// when MaxCmdSN >= ExpCmdSN - 1 (§4.2.2.1).
pub(crate) fn observe_sns(c: &mut Counters, bhs: &Bhs) -> bool {
    let (stat, exp, max) = match bhs {
        Bhs::ScsiResponse(p) => (Some(p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
        Bhs::DataIn(p) => (p.status.map(|_| p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
        Bhs::NopIn(p) => (
            (p.itt != RESERVED_TAG).then_some(p.stat_sn),
            p.exp_cmd_sn,
            p.max_cmd_sn,
        ),
        Bhs::R2t(p) => (None, p.exp_cmd_sn, p.max_cmd_sn),
        Bhs::TaskMgmtResponse(p) => (Some(p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
        Bhs::TextResponse(p) => (Some(p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
        Bhs::LogoutResponse(p) => (Some(p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
        Bhs::AsyncMessage(p) => (Some(p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
        Bhs::Reject(p) => (Some(p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
        Bhs::LoginResponse(p) => (Some(p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
        _ => return false,
    };
    if let Some(s) = stat {
        let next = s.wrapping_add(1);
        if sn_gt(next, c.exp_stat_sn) {
            c.exp_stat_sn = next;
        }
    }
    let mut opened = false;
    if sn_le(exp, max.wrapping_add(1)) {
        if sn_gt(max, c.max_cmd_sn) {
            c.max_cmd_sn = max;
            opened = true;
        }
        if sn_gt(exp, c.exp_cmd_sn) {
            c.exp_cmd_sn = exp;
        }
    }
    opened
}

/// Who a Data-Out sequence belongs to.
struct Burst {
    lun_raw: [u8; 8],
    itt: u32,
    ttt: u32,
    exp_stat_sn: u32,
}

/// One sequence of Data-Out PDUs covering `data[offset..offset + len]` in segments of at
/// most `max_seg`, DataSN from 0, F on the last (§11.7).
fn data_out_pdus(b: &Burst, data: &Bytes, offset: usize, len: usize, max_seg: usize) -> Vec<Pdu> {
    let max_seg = max_seg.max(1);
    let mut out = Vec::with_capacity(len.div_ceil(max_seg));
    let mut done = 0usize;
    let mut sn = 0u32;
    while done < len {
        let n = (len - done).min(max_seg);
        let at = offset + done;
        let bhs = Bhs::DataOut(DataOut {
            final_: done + n == len,
            lun: b.lun_raw,
            itt: b.itt,
            ttt: b.ttt,
            exp_stat_sn: b.exp_stat_sn,
            data_sn: sn,
            buffer_offset: at as u32,
        });
        out.push(Pdu::with_data(bhs, data.slice(at..at + n)));
        done += n;
        sn += 1;
    }
    out
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
        let (events_tx, events_rx) = mpsc::unbounded_channel();
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
            events_tx,
            events: tokio::sync::Mutex::new(events_rx),
            params: negotiated.params.clone(),
            cid,
        });
        let writer = tokio::spawn(write_loop(writer, rx));
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
        self.sh().lock().stats.clone()
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

    /// Why the connection ended, if it did.
    pub fn closed(&self) -> Option<String> {
        self.sh().lock().closed.clone()
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
            .tx
            .send(Outgoing::Pdu(pdu))
            .map_err(|_| Error::ConnectionClosed)
    }

    /// Queue raw bytes.
    pub fn send_bytes(&self, bytes: Vec<u8>) -> Result<()> {
        self.sh()
            .tx
            .send(Outgoing::Bytes(bytes))
            .map_err(|_| Error::ConnectionClosed)
    }

    /// The next unsolicited event; `None` once the connection is gone and all were read.
    pub async fn next_event(&self) -> Option<Event> {
        self.sh().events.lock().await.recv().await
    }

    /// An event if one is queued now.
    pub fn try_event(&self) -> Option<Event> {
        self.sh().events.try_lock().ok()?.try_recv().ok()
    }

    /// Wait for the CmdSN window (unless `immediate`), then run `f` under the state lock.
    async fn with_window<T>(
        &self,
        immediate: bool,
        f: impl FnOnce(&mut State) -> Result<T>,
    ) -> Result<T> {
        let mut f = Some(f);
        loop {
            let notified = self.sh().window.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.sh().lock();
                if let Some(why) = &st.closed {
                    return Err(if why.is_empty() {
                        Error::ConnectionClosed
                    } else {
                        Error::Protocol(why.clone())
                    });
                }
                if immediate || sn_le(st.c.cmd_sn, st.c.max_cmd_sn) {
                    let Some(f) = f.take() else {
                        return Err(Error::Invalid("window closure reused".into()));
                    };
                    return f(&mut st);
                }
            }
            notified.await;
        }
    }

    /// Issue a SCSI command and wait for its outcome.
    pub async fn command(
        &self,
        lun: u64,
        cdb: &[u8],
        data_out: Option<Vec<u8>>,
        expected_in: u32,
        attr: u8,
    ) -> Result<CommandResult> {
        let opts = CommandOptions {
            attr,
            ..CommandOptions::default()
        };
        self.start_command(lun, cdb, data_out.map(Bytes::from), expected_in, opts)
            .await?
            .wait()
            .await
    }

    /// Issue a SCSI command and return once it is queued for sending (its ITT is known);
    /// many may be outstanding at once, bounded by the target's CmdSN window.
    pub async fn start_command(
        &self,
        lun: u64,
        cdb: &[u8],
        data_out: Option<Bytes>,
        expected_in: u32,
        opts: CommandOptions,
    ) -> Result<PendingCommand> {
        if cdb.is_empty() || cdb.len() > 16 + 1019 {
            return Err(Error::Invalid(format!("CDB of {} bytes", cdb.len())));
        }
        let data_out = data_out.unwrap_or_default();
        if !data_out.is_empty() && expected_in > 0 {
            return Err(Error::Invalid(
                "bidirectional commands are not supported".into(),
            ));
        }
        let u32_len = u32::try_from(data_out.len())
            .map_err(|_| Error::Invalid("data-out longer than 4 GiB".into()))?;
        let p = self.sh().params.clone();
        let mut cdb16 = [0u8; 16];
        let head = cdb.len().min(16);
        cdb16[..head].copy_from_slice(&cdb[..head]);
        let ahs = if cdb.len() > 16 {
            // Extended CDB AHS (§11.3.5): length counts the reserved byte, padded to 4.
            let rest = &cdb[16..];
            let mut a = Vec::with_capacity(rest.len() + 8);
            a.extend_from_slice(&((rest.len() + 1) as u16).to_be_bytes());
            a.push(ahs_type::EXTENDED_CDB);
            a.push(0);
            a.extend_from_slice(rest);
            while a.len() % 4 != 0 {
                a.push(0);
            }
            Bytes::from(a)
        } else {
            Bytes::new()
        };
        let lun_raw = lun_to_bytes(lun);
        let (tx, rx) = oneshot::channel();
        let sh = self.sh();
        self.with_window(opts.immediate, move |st| {
            let itt = alloc_itt(st);
            let cmd_sn = st.c.cmd_sn;
            if !opts.immediate {
                st.c.cmd_sn = cmd_sn.wrapping_add(1);
            }
            let len = data_out.len();
            let mxdsl = p.max_xmit_data_segment_length as usize;
            let fbl = p.first_burst_length as usize;
            let imm = if opts.unsolicited && p.immediate_data {
                len.min(fbl).min(mxdsl)
            } else {
                0
            };
            let unsol_end = if opts.unsolicited && !p.initial_r2t {
                len.min(fbl)
            } else {
                imm
            };
            let cmd = ScsiCommand {
                immediate: opts.immediate,
                final_: unsol_end == imm,
                read: expected_in > 0,
                write: len > 0,
                attr: opts.attr,
                lun: lun_raw,
                itt,
                expected_data_length: if len > 0 { u32_len } else { expected_in },
                cmd_sn,
                exp_stat_sn: st.c.exp_stat_sn,
                cdb: cdb16,
            };
            let mut pdu = Pdu::with_data(Bhs::ScsiCommand(cmd), data_out.slice(..imm));
            pdu.ahs = ahs;
            sh.send(pdu);
            st.stats.immediate_bytes += imm as u64;
            if unsol_end > imm {
                let burst = Burst {
                    lun_raw,
                    itt,
                    ttt: RESERVED_TAG,
                    exp_stat_sn: st.c.exp_stat_sn,
                };
                let pdus = data_out_pdus(&burst, &data_out, imm, unsol_end - imm, mxdsl);
                for d in pdus {
                    count_data_out(&mut st.stats, &d);
                    sh.send(d);
                }
                st.stats.unsolicited_bytes += (unsol_end - imm) as u64;
            }
            st.tasks.insert(
                itt,
                Task::Scsi(Box::new(ScsiTask {
                    lun,
                    lun_raw,
                    cmd_sn,
                    data_out,
                    policy: opts.data_out,
                    held: Vec::new(),
                    next_r2t_sn: 0,
                    next_data_sn: 0,
                    buf: vec![0; expected_in as usize],
                    high_water: 0,
                    tx,
                })),
            );
            Ok(PendingCommand { itt, cmd_sn, rx })
        })
        .await
    }

    /// Answer the R2Ts held for a command under [`DataOutPolicy::Withhold`] / `Batch` and
    /// answer further ones promptly.
    pub fn release_data(&self, itt: u32) -> Result<()> {
        let mut st = self.sh().lock();
        let State {
            c, tasks, stats, ..
        } = &mut *st;
        let Some(Task::Scsi(t)) = tasks.get_mut(&itt) else {
            return Err(Error::Invalid(format!("no command with ITT {itt:#x}")));
        };
        t.policy = DataOutPolicy::Prompt;
        let held = std::mem::take(&mut t.held);
        for r in held {
            answer_r2t(&self.h.shared, c.exp_stat_sn, t, &r, stats);
        }
        Ok(())
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

    /// A task management request (§11.5), sent immediate; returns the response code
    /// (`ironlun_iscsi::pdu::tmf_response`). On FUNCTION COMPLETE the affected commands of
    /// this session end with [`Error::TaskAborted`].
    pub async fn task_mgmt(&self, function: u8, lun: u64, referenced_itt: u32) -> Result<u8> {
        let (tx, rx) = oneshot::channel();
        let sh = self.sh();
        self.with_window(true, move |st| {
            let itt = alloc_itt(st);
            let ref_cmd_sn = match st.tasks.get(&referenced_itt) {
                Some(Task::Scsi(t)) => t.cmd_sn,
                _ => st.c.cmd_sn,
            };
            let referenced = if function == tmf_function::ABORT_TASK {
                referenced_itt
            } else {
                RESERVED_TAG
            };
            let bhs = Bhs::TaskMgmtRequest(TaskMgmtRequest {
                immediate: true,
                function,
                lun: lun_to_bytes(lun),
                itt,
                referenced_task_tag: referenced,
                cmd_sn: st.c.cmd_sn,
                exp_stat_sn: st.c.exp_stat_sn,
                ref_cmd_sn,
                exp_data_sn: 0,
            });
            sh.send(Pdu::new(bhs));
            st.tasks.insert(
                itt,
                Task::Tmf {
                    function,
                    lun,
                    referenced,
                    cmd_sn: st.c.cmd_sn,
                    tx,
                },
            );
            Ok(())
        })
        .await?;
        rx.await.unwrap_or(Err(Error::ConnectionClosed))
    }

    pub async fn abort_task(&self, lun: u64, itt: u32) -> Result<u8> {
        self.task_mgmt(tmf_function::ABORT_TASK, lun, itt).await
    }
    pub async fn abort_task_set(&self, lun: u64) -> Result<u8> {
        self.task_mgmt(tmf_function::ABORT_TASK_SET, lun, RESERVED_TAG)
            .await
    }
    pub async fn clear_task_set(&self, lun: u64) -> Result<u8> {
        self.task_mgmt(tmf_function::CLEAR_TASK_SET, lun, RESERVED_TAG)
            .await
    }
    pub async fn clear_aca(&self, lun: u64) -> Result<u8> {
        self.task_mgmt(tmf_function::CLEAR_ACA, lun, RESERVED_TAG)
            .await
    }
    pub async fn lun_reset(&self, lun: u64) -> Result<u8> {
        self.task_mgmt(tmf_function::LOGICAL_UNIT_RESET, lun, RESERVED_TAG)
            .await
    }
    pub async fn target_warm_reset(&self) -> Result<u8> {
        self.task_mgmt(tmf_function::TARGET_WARM_RESET, 0, RESERVED_TAG)
            .await
    }
    /// TARGET COLD RESET: the target closes the connection after answering (§11.5.1).
    pub async fn target_cold_reset(&self) -> Result<u8> {
        self.task_mgmt(tmf_function::TARGET_COLD_RESET, 0, RESERVED_TAG)
            .await
    }

    /// A text request (§11.10) with `pairs`; follows the target's continuations and returns
    /// all response pairs.
    pub async fn text_request(&self, pairs: &[(&str, &str)]) -> Result<Vec<(String, String)>> {
        let data = text::encode(pairs.iter().copied());
        if data.len() > self.sh().params.max_xmit_data_segment_length as usize {
            return Err(Error::Invalid("text request longer than one PDU".into()));
        }
        let (tx, rx) = oneshot::channel();
        let sh = self.sh();
        self.with_window(false, move |st| {
            let itt = alloc_itt(st);
            let cmd_sn = st.c.cmd_sn;
            st.c.cmd_sn = cmd_sn.wrapping_add(1);
            let bhs = Bhs::TextRequest(TextRequest {
                immediate: false,
                final_: true,
                cont: false,
                lun: [0; 8],
                itt,
                ttt: RESERVED_TAG,
                cmd_sn,
                exp_stat_sn: st.c.exp_stat_sn,
            });
            sh.send(Pdu::with_data(bhs, data));
            st.tasks.insert(
                itt,
                Task::Text {
                    collector: TextCollector::new(1 << 20),
                    tx,
                },
            );
            Ok(())
        })
        .await?;
        rx.await.unwrap_or(Err(Error::ConnectionClosed))
    }

    /// SendTargets (Appendix C): `"All"` in a discovery session, `""` (or the session's
    /// target name) in a normal one.
    pub async fn send_targets(&self, what: &str) -> Result<Vec<DiscoveredTarget>> {
        let pairs = self.text_request(&[("SendTargets", what)]).await?;
        parse_send_targets(&pairs)
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

/// Parse SendTargets response pairs: each TargetName starts a record, TargetAddress values
/// belong to the record before them.
pub fn parse_send_targets(pairs: &[(String, String)]) -> Result<Vec<DiscoveredTarget>> {
    let mut out: Vec<DiscoveredTarget> = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "TargetName" => out.push(DiscoveredTarget {
                name: v.clone(),
                addresses: Vec::new(),
            }),
            "TargetAddress" => match out.last_mut() {
                Some(t) => t.addresses.push(v.clone()),
                None => {
                    return Err(Error::Protocol(
                        "TargetAddress before any TargetName".into(),
                    ))
                }
            },
            _ => {}
        }
    }
    Ok(out)
}

fn alloc_itt(st: &mut State) -> u32 {
    loop {
        let itt = st.c.next_itt;
        st.c.next_itt = itt.wrapping_add(1);
        if itt != RESERVED_TAG && !st.tasks.contains_key(&itt) {
            return itt;
        }
    }
}

fn count_data_out(stats: &mut Stats, p: &Pdu) {
    stats.data_out_pdus += 1;
    stats.max_data_out_segment = stats.max_data_out_segment.max(p.data.len() as u32);
}

/// Send the data one R2T asks for.
fn answer_r2t(sh: &Shared, exp_stat_sn: u32, t: &mut ScsiTask, r: &R2t, stats: &mut Stats) {
    let burst = Burst {
        lun_raw: t.lun_raw,
        itt: r.itt,
        ttt: r.ttt,
        exp_stat_sn,
    };
    let pdus = data_out_pdus(
        &burst,
        &t.data_out,
        r.buffer_offset as usize,
        r.desired_length as usize,
        sh.params.max_xmit_data_segment_length as usize,
    );
    stats.solicited_bytes += u64::from(r.desired_length);
    for p in pdus {
        count_data_out(stats, &p);
        sh.send(p);
    }
}

async fn write_loop(mut w: Writer, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    while let Some(o) = rx.recv().await {
        let r = match o {
            Outgoing::Pdu(p) => w.send(&p).await,
            Outgoing::Bytes(b) => {
                use tokio::io::AsyncWriteExt;
                w.half.write_all(&b).await.map_err(Error::from)
            }
        };
        if r.is_err() {
            return;
        }
    }
}

async fn read_loop(mut r: Reader, sh: Arc<Shared>) {
    let why = loop {
        match r.recv().await {
            Ok(pdu) => {
                handle(&sh, pdu);
                sh.progress.notify_waiters();
            }
            Err(Error::ConnectionClosed) => break String::new(),
            Err(e) => break e.to_string(),
        }
    };
    let tasks = {
        let mut st = sh.lock();
        st.closed = Some(why.clone());
        std::mem::take(&mut st.tasks)
    };
    let err = || {
        if why.is_empty() {
            Error::ConnectionClosed
        } else {
            Error::Protocol(why.clone())
        }
    };
    for (_, t) in tasks {
        fail(t, err());
    }
    sh.window.notify_waiters();
    sh.progress.notify_waiters();
    let _ = sh.events_tx.send(Event::Closed(if why.is_empty() {
        "connection closed by the target".into()
    } else {
        why
    }));
}

fn fail(t: Task, e: Error) {
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

fn event(sh: &Shared, e: Event) {
    let _ = sh.events_tx.send(e);
}

fn handle(sh: &Shared, pdu: Pdu) {
    let mut st = sh.lock();
    if observe_sns(&mut st.c, &pdu.bhs) {
        sh.window.notify_waiters();
    }
    match &pdu.bhs {
        Bhs::DataIn(d) => on_data_in(sh, &mut st, d, &pdu),
        Bhs::ScsiResponse(r) => on_response(sh, &mut st, r, &pdu),
        Bhs::R2t(r) => on_r2t(sh, &mut st, r, &pdu),
        Bhs::NopIn(n) => {
            if n.ttt != RESERVED_TAG {
                // A target ping: answer with the same TTT and LUN (§11.18.4), immediate.
                let bhs = Bhs::NopOut(NopOut {
                    immediate: true,
                    lun: n.lun,
                    itt: RESERVED_TAG,
                    ttt: n.ttt,
                    cmd_sn: st.c.cmd_sn,
                    exp_stat_sn: st.c.exp_stat_sn,
                });
                sh.send(Pdu::new(bhs));
                st.stats.nop_ins_answered += 1;
            }
            if n.itt != RESERVED_TAG {
                match st.tasks.remove(&n.itt) {
                    Some(Task::Nop(tx)) => {
                        let _ = tx.send(Ok(pdu.data.clone()));
                    }
                    other => unexpected(sh, &mut st, n.itt, other, pdu),
                }
            }
        }
        Bhs::TaskMgmtResponse(t) => match st.tasks.remove(&t.itt) {
            Some(Task::Tmf {
                function,
                lun,
                referenced,
                cmd_sn,
                tx,
            }) => {
                if t.response == tmf_response::FUNCTION_COMPLETE {
                    abort_affected(&mut st, function, lun, referenced, cmd_sn);
                }
                let _ = tx.send(Ok(t.response));
            }
            other => unexpected(sh, &mut st, t.itt, other, pdu),
        },
        Bhs::TextResponse(t) => on_text(sh, &mut st, t, &pdu),
        Bhs::LogoutResponse(l) => match st.tasks.remove(&l.itt) {
            Some(Task::Logout(tx)) => {
                let _ = tx.send(Ok(l.clone()));
            }
            other => unexpected(sh, &mut st, l.itt, other, pdu),
        },
        Bhs::AsyncMessage(m) => {
            let msg = m.clone();
            event(
                sh,
                Event::Async {
                    msg,
                    data: pdu.data,
                },
            );
        }
        Bhs::Reject(j) => {
            // The data segment is the rejected header: fail the task it names, if that PDU
            // was the task's request. A rejected Data-Out (or SNACK) does not end its
            // command (§11.17.1): e.g. data for a task a TMF just aborted.
            if pdu.data.len() >= 20 {
                let d = &pdu.data;
                let itt = u32::from_be_bytes([d[16], d[17], d[18], d[19]]);
                let op = d[0] & 0x3f;
                let ends_task = op != Opcode::DataOut as u8 && op != Opcode::SnackRequest as u8;
                if itt != RESERVED_TAG && ends_task {
                    if let Some(t) = st.tasks.remove(&itt) {
                        fail(t, Error::Rejected(j.reason));
                    }
                }
            }
            event(
                sh,
                Event::Reject {
                    reject: j.clone(),
                    data: pdu.data,
                },
            );
        }
        _ => {
            st.stats.violations.push(format!(
                "unexpected {:?} in full feature phase",
                pdu.bhs.opcode()
            ));
            event(sh, Event::Unexpected(pdu));
        }
    }
}

/// A PDU for a tag we do not have (or of the wrong kind for it).
fn unexpected(sh: &Shared, st: &mut State, itt: u32, task: Option<Task>, pdu: Pdu) {
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

/// On FUNCTION COMPLETE the target ended the affected tasks without responses (§11.5.1):
/// end them here too. Only tasks issued before the TMF are affected.
fn abort_affected(st: &mut State, function: u8, lun: u64, referenced: u32, tmf_sn: u32) {
    let hit: Vec<u32> = st
        .tasks
        .iter()
        .filter_map(|(itt, t)| match t {
            Task::Scsi(s) => {
                let before = sn_le(s.cmd_sn, tmf_sn);
                let yes = match function {
                    tmf_function::ABORT_TASK => *itt == referenced,
                    tmf_function::ABORT_TASK_SET
                    | tmf_function::CLEAR_TASK_SET
                    | tmf_function::LOGICAL_UNIT_RESET => s.lun == lun && before,
                    tmf_function::TARGET_WARM_RESET | tmf_function::TARGET_COLD_RESET => before,
                    _ => false,
                };
                yes.then_some(*itt)
            }
            _ => None,
        })
        .collect();
    for itt in hit {
        if let Some(t) = st.tasks.remove(&itt) {
            fail(t, Error::TaskAborted);
        }
    }
}

fn on_data_in(sh: &Shared, st: &mut State, d: &DataIn, pdu: &Pdu) {
    let seg = pdu.data.len();
    st.stats.data_in_pdus += 1;
    st.stats.max_data_in_segment = st.stats.max_data_in_segment.max(seg as u32);
    let State { tasks, stats, .. } = st;
    let Some(Task::Scsi(t)) = tasks.get_mut(&d.itt) else {
        let task = tasks.remove(&d.itt);
        unexpected(sh, st, d.itt, task, pdu.clone());
        return;
    };
    if d.data_sn != t.next_data_sn {
        stats.violations.push(format!(
            "Data-In DataSN {} where {} was due (ITT {:#x})",
            d.data_sn, t.next_data_sn, d.itt
        ));
    }
    t.next_data_sn = d.data_sn.wrapping_add(1);
    let off = d.buffer_offset as usize;
    match off.checked_add(seg).filter(|&e| e <= t.buf.len()) {
        Some(end) => {
            t.buf[off..end].copy_from_slice(&pdu.data);
            t.high_water = t.high_water.max(end);
        }
        None => stats.violations.push(format!(
            "Data-In offset {off} + {seg} beyond the expected {} bytes (ITT {:#x})",
            t.buf.len(),
            d.itt
        )),
    }
    if let Some(status) = d.status {
        if !d.final_ {
            stats
                .violations
                .push(format!("Data-In with S but without F (ITT {:#x})", d.itt));
        }
        let residual = residual(d.underflow, d.overflow, d.residual);
        if let Some(Task::Scsi(t)) = tasks.remove(&d.itt) {
            let mut buf = t.buf;
            buf.truncate(t.high_water);
            let _ = t.tx.send(Ok(CommandResult {
                response: 0,
                status,
                sense: None,
                sense_bytes: Bytes::new(),
                data_in: Bytes::from(buf),
                residual,
                data_in_pdus: d.data_sn.wrapping_add(1),
            }));
        }
    }
}

fn residual(under: bool, over: bool, n: u32) -> Residual {
    if under {
        Residual::Underflow(n)
    } else if over {
        Residual::Overflow(n)
    } else {
        Residual::None
    }
}

fn on_response(sh: &Shared, st: &mut State, r: &ScsiResponse, pdu: &Pdu) {
    let task = st.tasks.remove(&r.itt);
    let Some(Task::Scsi(t)) = task else {
        unexpected(sh, st, r.itt, task, pdu.clone());
        return;
    };
    // Data segment: SenseLength (2 bytes), sense data, then response data (§11.4.7).
    let d = &pdu.data;
    let sense_bytes = if d.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([d[0], d[1]]));
        if 2 + n > d.len() {
            st.stats.violations.push(format!(
                "SenseLength {n} beyond the data segment (ITT {:#x})",
                r.itt
            ));
        }
        d.slice(2..(2 + n).min(d.len()))
    } else {
        Bytes::new()
    };
    let sense = if sense_bytes.is_empty() {
        None
    } else {
        ironlun_scsi::Sense::parse(&sense_bytes).ok()
    };
    let mut buf = t.buf;
    buf.truncate(t.high_water);
    let _ = t.tx.send(Ok(CommandResult {
        response: r.response,
        status: r.status,
        sense,
        sense_bytes,
        data_in: Bytes::from(buf),
        residual: residual(r.underflow, r.overflow, r.residual),
        data_in_pdus: t.next_data_sn,
    }));
}

fn on_r2t(sh: &Shared, st: &mut State, r: &R2t, pdu: &Pdu) {
    st.stats.r2ts += 1;
    st.stats.max_r2t_length = st.stats.max_r2t_length.max(r.desired_length);
    let exp_stat_sn = st.c.exp_stat_sn;
    let State { tasks, stats, .. } = st;
    let Some(Task::Scsi(t)) = tasks.get_mut(&r.itt) else {
        let task = tasks.remove(&r.itt);
        unexpected(sh, st, r.itt, task, pdu.clone());
        return;
    };
    if r.r2t_sn != t.next_r2t_sn {
        stats.violations.push(format!(
            "R2TSN {} where {} was due (ITT {:#x})",
            r.r2t_sn, t.next_r2t_sn, r.itt
        ));
    }
    t.next_r2t_sn = r.r2t_sn.wrapping_add(1);
    if r.desired_length > sh.params.max_burst_length {
        stats.violations.push(format!(
            "R2T for {} bytes exceeds MaxBurstLength {}",
            r.desired_length, sh.params.max_burst_length
        ));
    }
    if r.ttt == RESERVED_TAG {
        stats
            .violations
            .push(format!("R2T with the reserved TTT (ITT {:#x})", r.itt));
    }
    let in_range = (r.buffer_offset as usize)
        .checked_add(r.desired_length as usize)
        .is_some_and(|e| e <= t.data_out.len());
    if !in_range || r.desired_length == 0 {
        stats.violations.push(format!(
            "R2T offset {} length {} outside the {} bytes of data-out",
            r.buffer_offset,
            r.desired_length,
            t.data_out.len()
        ));
        if let Some(t) = tasks.remove(&r.itt) {
            fail(t, Error::Protocol("R2T outside the data-out buffer".into()));
        }
        return;
    }
    t.held.push(r.clone());
    let n = t.held.len() as u32;
    stats.max_outstanding_r2t = stats.max_outstanding_r2t.max(n);
    let go = match t.policy {
        DataOutPolicy::Prompt => true,
        DataOutPolicy::Withhold => false,
        DataOutPolicy::Batch(k) => {
            let last_end = t
                .held
                .iter()
                .map(|h| h.buffer_offset as usize + h.desired_length as usize)
                .max()
                .unwrap_or(0);
            n >= k || last_end >= t.data_out.len()
        }
    };
    if go {
        let held = std::mem::take(&mut t.held);
        for h in held {
            answer_r2t(sh, exp_stat_sn, t, &h, stats);
        }
    }
}

fn on_text(sh: &Shared, st: &mut State, t: &ironlun_iscsi::TextResponse, pdu: &Pdu) {
    let exp_stat_sn = st.c.exp_stat_sn;
    let Some(Task::Text { collector, .. }) = st.tasks.get_mut(&t.itt) else {
        let task = st.tasks.remove(&t.itt);
        unexpected(sh, st, t.itt, task, pdu.clone());
        return;
    };
    if let Err(e) = collector.push(&pdu.data) {
        if let Some(task) = st.tasks.remove(&t.itt) {
            fail(task, Error::Protocol(e.to_string()));
        }
        return;
    }
    if t.final_ && !t.cont {
        let pairs = collector.finish();
        if let Some(Task::Text { tx, .. }) = st.tasks.remove(&t.itt) {
            let _ = tx.send(pairs.map_err(|e| Error::Protocol(format!("text response: {e}"))));
        }
        return;
    }
    // More to come: ask with an empty Text Request carrying the target's TTT (§11.10.4).
    let cmd_sn = st.c.cmd_sn;
    st.c.cmd_sn = cmd_sn.wrapping_add(1);
    let bhs = Bhs::TextRequest(TextRequest {
        immediate: false,
        final_: true,
        cont: false,
        lun: [0; 8],
        itt: t.itt,
        ttt: t.ttt,
        cmd_sn,
        exp_stat_sn,
    });
    sh.send(Pdu::new(bhs));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nop_in(itt: u32, stat_sn: u32, exp: u32, max: u32) -> Bhs {
        Bhs::NopIn(ironlun_iscsi::NopIn {
            lun: [0; 8],
            itt,
            ttt: RESERVED_TAG,
            stat_sn,
            exp_cmd_sn: exp,
            max_cmd_sn: max,
        })
    }

    #[test]
    fn window_moves_forward_only_and_ignores_bad_pairs() {
        let mut c = Counters {
            exp_stat_sn: 10,
            exp_cmd_sn: 5,
            max_cmd_sn: 8,
            ..Counters::default()
        };
        assert!(observe_sns(&mut c, &nop_in(1, 10, 6, 12)));
        assert_eq!((c.exp_stat_sn, c.exp_cmd_sn, c.max_cmd_sn), (11, 6, 12));
        // An older MaxCmdSN does not shrink the window.
        assert!(!observe_sns(&mut c, &nop_in(2, 11, 6, 9)));
        assert_eq!(c.max_cmd_sn, 12);
        // MaxCmdSN < ExpCmdSN - 1 is not a valid pair: ignored (§4.2.2.1).
        assert!(!observe_sns(&mut c, &nop_in(3, 12, 20, 10)));
        assert_eq!((c.exp_cmd_sn, c.max_cmd_sn), (6, 12));
        // A NOP-In ping (ITT reserved) carries no status: ExpStatSN stays.
        let before = c.exp_stat_sn;
        observe_sns(&mut c, &nop_in(RESERVED_TAG, 40, 6, 12));
        assert_eq!(c.exp_stat_sn, before);
        // Serial arithmetic across the wrap.
        let mut c = Counters {
            exp_cmd_sn: 0xffff_fffe,
            max_cmd_sn: 0xffff_ffff,
            ..Counters::default()
        };
        assert!(observe_sns(&mut c, &nop_in(1, 0, 0xffff_ffff, 3)));
        assert_eq!(c.max_cmd_sn, 3);
    }

    #[test]
    fn data_out_sequences_split_and_number() {
        let data = Bytes::from(vec![7u8; 10_000]);
        let b = Burst {
            lun_raw: [0; 8],
            itt: 9,
            ttt: 0x44,
            exp_stat_sn: 3,
        };
        let pdus = data_out_pdus(&b, &data, 1000, 9000, 4096);
        assert_eq!(pdus.len(), 3);
        let sizes: Vec<usize> = pdus.iter().map(|p| p.data.len()).collect();
        assert_eq!(sizes, vec![4096, 4096, 808]);
        for (i, p) in pdus.iter().enumerate() {
            let Bhs::DataOut(d) = &p.bhs else { panic!() };
            assert_eq!(d.data_sn, i as u32);
            assert_eq!(d.buffer_offset, 1000 + 4096 * i as u32);
            assert_eq!(d.final_, i == 2);
            assert_eq!(d.ttt, 0x44);
        }
    }

    #[test]
    fn send_targets_records() {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        let pairs = vec![
            p("TargetName", "iqn.a"),
            p("TargetAddress", "1.2.3.4:3260,1"),
            p("TargetName", "iqn.b"),
        ];
        let t = parse_send_targets(&pairs).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].addresses, vec!["1.2.3.4:3260,1"]);
        assert!(t[1].addresses.is_empty());
        assert!(parse_send_targets(&[p("TargetAddress", "x")]).is_err());
    }
}
