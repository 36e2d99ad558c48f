//! One iSCSI connection in the full feature phase (RFC 7143 §3.2.4, §11): a reader loop that
//! decodes PDUs and a writer task that stamps StatSN / ExpCmdSN / MaxCmdSN in transmission
//! order and batches writes.
//!
//! SCSI writes gather immediate data, unsolicited Data-Out (FirstBurstLength) and solicited
//! Data-Out (R2T, up to MaxOutstandingR2T at a time, each ≤ MaxBurstLength) before the
//! engine runs the command on the blocking pool; reads come back as Data-In PDUs of at most
//! the initiator's MaxRecvDataSegmentLength with the status in the last one when there is no
//! sense data (§11.7.4), otherwise a SCSI Response (§11.4). ErrorRecoveryLevel 0 only.
//!
//! Task management (§11.5, §4.2.3.3 standard multi-task abort semantics): a command enters its
//! LU's task set at its CmdSN turn, before its Data-Out is in, so a TMF of any session reaches
//! it in the engine; the engine tells the holding session (`TaskListener`), which ends the
//! task — after the Data-Out of R2Ts already sent, for multi-task functions — with status TASK
//! ABORTED or silently as the engine decided, and drops any later Data-Out for it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ironlun_iscsi::negotiation::{self, Answer, Usage};
use ironlun_iscsi::pdu::{
    self, logout, reject_reason, scsi_response, task_attr, tmf_function, tmf_response,
};
use ironlun_iscsi::serial::lun_from_bytes;
use ironlun_iscsi::text::{self, TextCollector};
use ironlun_iscsi::{
    Bhs, DataIn, DataOut, Decoder, Digests, NopIn, Pdu, PduError, R2t, Reject, ScsiCommand,
    TextResponse, BHS_LEN, RESERVED_TAG,
};
use ironlun_engine::{
    Abort, DataDirection, Received, Residual, ScsiRequest, ScsiResponse as EngineResponse,
    TaskAttr, TmfKind, TmfResponse,
};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info, warn};

use crate::server::Shared;
use crate::session::{sn_before, Job, Session};

/// Largest write we gather for one command; larger ones are refused with CHECK CONDITION
/// (an initiator could otherwise make us allocate up to 4 GiB per command).
const MAX_WRITE_LEN: u32 = 64 << 20;
/// Commands one connection may have waiting in the fabric (for data or CmdSN order).
const MAX_HELD_TASKS: usize = 2 * crate::session::QUEUE_DEPTH as usize;
/// Write buffers one connection may have waiting for their Data-Out.
const MAX_HELD_WRITE_BYTES: u64 = 512 << 20;
/// Bound on a text request gathered over continuation PDUs.
const MAX_TEXT_LEN: usize = 64 * 1024;
/// ITTs of aborted tasks remembered so their late Data-Out is dropped without a Reject.
const MAX_GONE: usize = 256;
/// How long an aborted task waits for the Data-Out of R2Ts it already sent (RFC 7143
/// §4.2.3.3 a) before it ends anyway: an initiator that stops answering must not hold up
/// another initiator's TMF forever.
const ABORTED_DATA_WAIT: Duration = Duration::from_secs(10);

/// How the writer fills StatSN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sn {
    /// A status-bearing PDU: takes the next StatSN.
    Advance,
    /// Carries the next StatSN without taking it (R2T, NOP-In pings).
    Peek,
    /// StatSN is reserved (Data-In without status).
    Keep,
}

pub(crate) enum Out {
    Pdu(Pdu, Sn),
    /// Flush what is queued, then close the connection.
    Close,
}

struct OutstandingR2t {
    ttt: u32,
    offset: u32,
    len: u32,
    got: u32,
    next_data_sn: u32,
}

/// A command held by the fabric: waiting for its CmdSN turn or for Data-Out.
struct Task {
    itt: u32,
    cmd_sn: u32,
    lun: u64,
    lun_raw: [u8; 8],
    cdb: Vec<u8>,
    attr: TaskAttr,
    direction: DataDirection,
    edtl: u32,
    data: Vec<u8>,
    /// Bytes received so far (in order: DataPDUInOrder / DataSequenceInOrder are Yes).
    received: u32,
    /// Unsolicited Data-Out may still arrive up to this offset.
    unsolicited_end: Option<u32>,
    unsolicited_data_sn: u32,
    next_r2t_offset: u32,
    r2t_sn: u32,
    r2ts: VecDeque<OutstandingR2t>,
    /// Its CmdSN turn came (it is an engine task from then on, see `engine`).
    admitted: bool,
    /// Its place in the LU's task set, from admission until it runs: TMFs of every I_T
    /// nexus reach it there (`TaskListener for Session`).
    engine: Option<Received>,
    /// A TMF aborted it while it waited for Data-Out: it ends as this once the R2Ts already
    /// sent are answered; the data is discarded.
    aborted: Option<Abort>,
    /// Non-immediate commands hold a window slot until their response is queued.
    counts_in_window: bool,
}

impl Task {
    fn data_complete(&self) -> bool {
        self.direction != DataDirection::Write && self.direction != DataDirection::Bidirectional
            || self.received >= self.edtl
    }
}

struct TextState {
    collector: TextCollector,
    /// TTT we gave for the initiator's continuation of a long request.
    request_ttt: Option<u32>,
    /// The rest of a long response, with the TTT the initiator echoes to get it.
    pending: Option<(u32, Bytes)>,
}

pub(crate) struct Conn {
    pub cid: u16,
    pub session: Arc<Session>,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Out>,
    stop_notify: Notify,
    stopped: AtomicBool,
    tasks: Mutex<HashMap<u32, Task>>,
    /// Recently aborted tasks (see `MAX_GONE`).
    gone: Mutex<VecDeque<u32>>,
    /// The initiator's MaxRecvDataSegmentLength (capped by ours to send): Data-In size.
    max_xmit: AtomicU32,
    /// Our declared MaxRecvDataSegmentLength.
    max_recv: u32,
    /// Never send larger segments than this (LIO MaxXmitDataSegmentLength).
    xmit_cap: u32,
    next_ttt: AtomicU32,
    ping_ttt: AtomicU32,
    local: SocketAddr,
    text: Mutex<TextState>,
    /// Commands ready to execute, and how many runners drain them (see `submit`).
    runq: Mutex<RunQueue>,
}

/// A command's execution, ready to run on the blocking pool.
type Run = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct RunQueue {
    ready: VecDeque<Run>,
    runners: usize,
    /// Runners inside a command (the rest are about to pop the next one or exit).
    busy: usize,
}

pub(crate) struct ConnSetup {
    pub cid: u16,
    pub session: Arc<Session>,
    pub shared: Arc<Shared>,
    pub max_xmit: u32,
    pub max_recv: u32,
    pub xmit_cap: u32,
    pub stat_sn: u32,
    pub local: SocketAddr,
    pub digests: Digests,
}

impl Conn {
    /// Ask the connection to close (logout elsewhere, reinstatement, shutdown).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.stop_notify.notify_one();
        let _ = self.tx.send(Out::Close);
    }

    pub(crate) fn send(&self, pdu: Pdu, sn: Sn) {
        // A closed writer means the connection is going away; the PDU has nowhere to go.
        let _ = self.tx.send(Out::Pdu(pdu, sn));
    }

    fn alloc_ttt(&self) -> u32 {
        loop {
            let t = self.next_ttt.fetch_add(1, Ordering::Relaxed);
            if t != RESERVED_TAG {
                return t;
            }
        }
    }

    fn reject(&self, reason: u8, header: &[u8]) {
        let bhs = Bhs::Reject(Reject {
            reason,
            stat_sn: 0,
            exp_cmd_sn: 0,
            max_cmd_sn: 0,
            data_sn_r2t_sn: 0,
        });
        let h = &header[..header.len().min(BHS_LEN)];
        self.send(Pdu::with_data(bhs, Bytes::copy_from_slice(h)), Sn::Advance);
    }

    /// Start (or run) the job for a non-immediate command in CmdSN order. False: the
    /// command is outside the CmdSN window and was ignored.
    fn ordered(&self, cmd_sn: u32, immediate: bool, job: Job) -> bool {
        if immediate {
            job();
            return true;
        }
        match self.session.admit(cmd_sn, job) {
            Some(ready) => {
                ready.into_iter().for_each(|j| j());
                true
            }
            None => {
                debug!(cmd_sn, "command outside the CmdSN window ignored");
                false
            }
        }
    }
}

/// Start the full feature phase on a logged-in connection. Returns when it closes.
pub(crate) async fn run(
    setup: ConnSetup,
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    leftover: BytesMut,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let conn = Arc::new(Conn {
        cid: setup.cid,
        session: setup.session.clone(),
        shared: setup.shared.clone(),
        tx,
        stop_notify: Notify::new(),
        stopped: AtomicBool::new(false),
        tasks: Mutex::new(HashMap::new()),
        gone: Mutex::new(VecDeque::new()),
        max_xmit: AtomicU32::new(setup.max_xmit),
        max_recv: setup.max_recv,
        xmit_cap: setup.xmit_cap,
        next_ttt: AtomicU32::new(1),
        ping_ttt: AtomicU32::new(RESERVED_TAG),
        local: setup.local,
        text: Mutex::new(TextState {
            collector: TextCollector::new(MAX_TEXT_LEN),
            request_ttt: None,
            pending: None,
        }),
        runq: Mutex::new(RunQueue::default()),
    });
    // Connection reinstatement (§6.3.4): a login with the CID of a live connection replaces it.
    {
        let mut conns = setup.session.conns.lock();
        if let Some(pos) = conns.iter().position(|c| c.cid == setup.cid) {
            let old = conns.remove(pos);
            old.stop();
        }
        conns.push(conn.clone());
    }
    if setup.session.is_closed() {
        conn.stop();
    }
    let writer = tokio::spawn(writer(wr, rx, conn.clone(), setup.stat_sn, setup.digests));
    reader(&conn, rd, leftover, setup.digests).await;
    conn.stop();
    let _ = writer.await;
    // Fabric-held tasks of this connection die with it (ERL 0); their window slots reopen.
    let dropped: Vec<Task> = conn.tasks.lock().drain().map(|(_, t)| t).collect();
    for t in dropped {
        if t.admitted && t.counts_in_window {
            conn.session.finish_one();
        }
    }
    let last = {
        let mut conns = conn.session.conns.lock();
        conns.retain(|c| !Arc::ptr_eq(c, &conn));
        conns.is_empty()
    };
    if last {
        conn.shared.registry.remove(&conn.session);
        conn.session.close();
        info!(
            initiator = %conn.session.initiator,
            tsih = conn.session.tsih,
            "session closed"
        );
    }
}

fn stamp(bhs: &mut Bhs, stat_sn: u32, exp: u32, max: u32) {
    match bhs {
        Bhs::NopIn(p) => (p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn) = (stat_sn, exp, max),
        Bhs::ScsiResponse(p) => (p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn) = (stat_sn, exp, max),
        Bhs::TaskMgmtResponse(p) => (p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn) = (stat_sn, exp, max),
        Bhs::TextResponse(p) => (p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn) = (stat_sn, exp, max),
        Bhs::DataIn(p) => {
            if p.status.is_some() {
                p.stat_sn = stat_sn;
            }
            (p.exp_cmd_sn, p.max_cmd_sn) = (exp, max)
        }
        Bhs::LogoutResponse(p) => (p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn) = (stat_sn, exp, max),
        Bhs::R2t(p) => (p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn) = (stat_sn, exp, max),
        Bhs::AsyncMessage(p) => (p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn) = (stat_sn, exp, max),
        Bhs::Reject(p) => (p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn) = (stat_sn, exp, max),
        _ => {}
    }
}

async fn writer(
    wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
    conn: Arc<Conn>,
    mut stat_sn: u32,
    digests: Digests,
) {
    let session = conn.session.clone();
    let mut w = BufWriter::with_capacity(256 * 1024, wr);
    let mut hdr = BytesMut::with_capacity(1024);
    'outer: while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Out::Close => {
                    let _ = w.flush().await;
                    break 'outer;
                }
                Out::Pdu(mut pdu, sn) => {
                    let exp = session.exp_cmd_sn();
                    let max = session.max_cmd_sn();
                    stamp(&mut pdu.bhs, stat_sn, exp, max);
                    if sn == Sn::Advance {
                        stat_sn = stat_sn.wrapping_add(1);
                    }
                    hdr.clear();
                    if pdu.encode_header(digests, &mut hdr).is_err() {
                        warn!("dropping an unencodable PDU");
                        continue;
                    }
                    let (trailer, tn) = pdu.data_trailer(digests);
                    let r = async {
                        w.write_all(&hdr).await?;
                        w.write_all(&pdu.data).await?;
                        w.write_all(&trailer[..tn]).await
                    }
                    .await;
                    if r.is_err() {
                        break 'outer;
                    }
                }
            }
            next = rx.try_recv().ok();
        }
        if w.flush().await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
    // Logout or a write error: the reader has nothing more to do either.
    conn.stopped.store(true, Ordering::Release);
    conn.stop_notify.notify_one();
}

async fn reader(conn: &Arc<Conn>, mut rd: OwnedReadHalf, mut buf: BytesMut, digests: Digests) {
    let decoder = Decoder {
        digests,
        max_data: conn.max_recv,
    };
    let opts = conn.shared.options.clone();
    // The TPG's keep-alive, else the server default.
    let nopin = conn
        .session
        .target
        .as_deref()
        .and_then(|t| {
            let cfg = conn.shared.config.read().clone();
            cfg.targets
                .iter()
                .find(|x| x.name == t)
                .and_then(|x| x.tpgs.iter().find(|g| g.tpgt == conn.session.tpgt))
                .and_then(|g| g.nopin)
        })
        .unwrap_or(crate::NopIn::Every {
            interval: opts.nop_interval,
            response: opts.nop_timeout,
        });
    let mut last_rx = tokio::time::Instant::now();
    let mut ping_sent: Option<tokio::time::Instant> = None;
    loop {
        // Drain every complete PDU already buffered.
        loop {
            let mut header = [0u8; BHS_LEN];
            if let Some(h) = buf.get(..BHS_LEN) {
                header.copy_from_slice(h);
            }
            match decoder.decode(&mut buf) {
                Ok(Some(p)) => {
                    last_rx = tokio::time::Instant::now();
                    ping_sent = None;
                    if handle(conn, p, &header).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(PduError::DataDigest { header }) => {
                    warn!("data digest error; PDU rejected");
                    conn.reject(reject_reason::DATA_DIGEST_ERROR, &header[..]);
                }
                Err(e) => {
                    warn!(error = %e, "closing connection");
                    return;
                }
            }
        }
        if conn.stopped.load(Ordering::Acquire) {
            return;
        }
        if let Ok(pdu::FrameCheck::Incomplete(n)) = pdu::check_frame(&buf, digests, conn.max_recv) {
            buf.reserve(n.max(4096));
        }
        // With pings off, a deadline a day away that is simply renewed.
        let deadline = match (nopin, ping_sent) {
            (crate::NopIn::Every { response, .. }, Some(t)) => t + response,
            (crate::NopIn::Every { interval, .. }, None) => last_rx + interval,
            (crate::NopIn::Off, _) => tokio::time::Instant::now() + Duration::from_secs(86_400),
        };
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = conn.stop_notify.notified() => return,
            _ = tokio::time::sleep_until(deadline) => {
                if nopin == crate::NopIn::Off {
                    continue;
                }
                if ping_sent.is_some() {
                    warn!(initiator = %conn.session.initiator, "no answer to NOP-In; closing connection");
                    return;
                }
                let ttt = conn.alloc_ttt();
                conn.ping_ttt.store(ttt, Ordering::Relaxed);
                conn.send(
                    Pdu::new(Bhs::NopIn(NopIn {
                        lun: [0; 8],
                        itt: RESERVED_TAG,
                        ttt,
                        stat_sn: 0,
                        exp_cmd_sn: 0,
                        max_cmd_sn: 0,
                    })),
                    Sn::Peek,
                );
                ping_sent = Some(tokio::time::Instant::now());
            }
        }
    }
}

/// A fatal protocol error: the connection must close.
struct Fatal;

fn handle(conn: &Arc<Conn>, p: Pdu, header: &[u8]) -> Result<(), Fatal> {
    let discovery = conn.session.is_discovery();
    match p.bhs {
        Bhs::NopOut(ref n) => {
            let n = n.clone();
            if n.itt == RESERVED_TAG {
                // The answer to our ping (§11.18.1: ITT 0xffffffff, I bit set).
                return Ok(());
            }
            let c = conn.clone();
            let data = p.data.clone();
            let non_immediate = !n.immediate;
            conn.ordered(
                n.cmd_sn,
                n.immediate,
                Box::new(move || {
                    c.send(
                        Pdu::with_data(
                            Bhs::NopIn(NopIn {
                                lun: n.lun,
                                itt: n.itt,
                                ttt: RESERVED_TAG,
                                stat_sn: 0,
                                exp_cmd_sn: 0,
                                max_cmd_sn: 0,
                            }),
                            data,
                        ),
                        Sn::Advance,
                    );
                    if non_immediate {
                        c.session.finish_one();
                    }
                }),
            );
            Ok(())
        }
        Bhs::ScsiCommand(ref cmd) if !discovery => {
            let cmd = cmd.clone();
            scsi_command(conn, cmd, p, header);
            Ok(())
        }
        Bhs::DataOut(ref d) if !discovery => {
            let d = d.clone();
            data_out(conn, d, p.data, header);
            Ok(())
        }
        Bhs::TaskMgmtRequest(ref t) if !discovery => {
            let t = t.clone();
            let c = conn.clone();
            let imm = t.immediate;
            let sn = t.cmd_sn;
            conn.ordered(sn, imm, Box::new(move || task_management(&c, t)));
            Ok(())
        }
        Bhs::TextRequest(ref t) => {
            let t = t.clone();
            text_request(conn, t, p.data, header)
        }
        Bhs::LogoutRequest(ref l) => {
            let l = l.clone();
            let c = conn.clone();
            conn.ordered(
                l.cmd_sn,
                l.immediate,
                Box::new(move || logout_request(&c, l)),
            );
            Ok(())
        }
        Bhs::Unknown(_) => {
            conn.reject(reject_reason::COMMAND_NOT_SUPPORTED, header);
            Ok(())
        }
        // Login in full feature phase, SNACK at ERL 0, target-only opcodes, SCSI in a
        // discovery session: protocol errors (§11.17.1).
        _ => {
            conn.reject(reject_reason::PROTOCOL_ERROR, header);
            Ok(())
        }
    }
}

fn task_attr_of(attr: u8) -> TaskAttr {
    match attr {
        task_attr::UNTAGGED => TaskAttr::Untagged,
        task_attr::ORDERED => TaskAttr::Ordered,
        task_attr::HEAD_OF_QUEUE => TaskAttr::HeadOfQueue,
        task_attr::ACA => TaskAttr::Aca,
        // SIMPLE and the reserved values 5-7 (treated as SIMPLE, like LIO).
        _ => TaskAttr::Simple,
    }
}

fn scsi_command(conn: &Arc<Conn>, cmd: ScsiCommand, p: Pdu, header: &[u8]) {
    let params = &conn.session.params;
    let Ok(cdb) = p.full_cdb() else {
        conn.reject(reject_reason::INVALID_PDU_FIELD, header);
        return;
    };
    let direction = match (cmd.read, cmd.write) {
        (false, false) => DataDirection::None,
        (true, false) => DataDirection::Read,
        (false, true) => DataDirection::Write,
        (true, true) => DataDirection::Bidirectional,
    };
    let imm_len = p.data.len() as u32;
    let writes = cmd.write;
    if imm_len > 0
        && (!writes
            || !params.immediate_data
            || imm_len > params.first_burst_length
            || imm_len > cmd.expected_data_length)
    {
        // Immediate data where none may be (§11.3.5 / §13.12 / §13.14).
        conn.reject(reject_reason::PROTOCOL_ERROR, header);
        return;
    }
    if conn.tasks.lock().contains_key(&cmd.itt) {
        conn.reject(reject_reason::INVALID_PDU_FIELD, header);
        return;
    }
    let edtl = cmd.expected_data_length;
    let itt = cmd.itt;
    if let Some(resp) = refusal(conn, writes, edtl) {
        // Refuse once its CmdSN turn comes; any Data-Out for it is rejected as unknown.
        let c = conn.clone();
        let counts = !cmd.immediate;
        conn.ordered(
            cmd.cmd_sn,
            cmd.immediate,
            Box::new(move || {
                if counts {
                    c.session.finish_one();
                }
                send_response(&c, itt, [0; 8], edtl, DataDirection::Write, resp);
            }),
        );
        return;
    }
    let mut data = Vec::new();
    if writes {
        data = vec![0u8; edtl as usize];
        data[..p.data.len()].copy_from_slice(&p.data);
    }
    // Unsolicited Data-Out follows when InitialR2T=No and F is clear (§11.3.1.1).
    let unsolicited_end =
        (writes && !params.initial_r2t && !cmd.final_).then(|| params.first_burst_length.min(edtl));
    let task = Task {
        itt,
        cmd_sn: cmd.cmd_sn,
        lun: lun_from_bytes(cmd.lun),
        lun_raw: cmd.lun,
        cdb,
        attr: task_attr_of(cmd.attr),
        direction,
        edtl,
        data,
        received: imm_len,
        unsolicited_end: unsolicited_end.filter(|&e| e > imm_len),
        unsolicited_data_sn: 0,
        next_r2t_offset: imm_len,
        r2t_sn: 0,
        r2ts: VecDeque::new(),
        admitted: false,
        engine: None,
        aborted: None,
        counts_in_window: !cmd.immediate,
    };
    if !cmd.immediate && !conn.session.in_window(cmd.cmd_sn) {
        // Silently ignored (§4.2.2.1); no R2T for a command we will never run.
        debug!(
            cmd_sn = cmd.cmd_sn,
            "SCSI command outside the CmdSN window ignored"
        );
        return;
    }
    conn.tasks.lock().insert(itt, task);
    solicit(conn, itt);
    let c = conn.clone();
    let counts = !cmd.immediate;
    let admitted = conn.ordered(
        cmd.cmd_sn,
        cmd.immediate,
        Box::new(move || admit(&c, itt, counts)),
    );
    if !admitted {
        conn.tasks.lock().remove(&itt);
    }
}

/// A command's CmdSN turn: it enters its LU's task set now, in command order, whether or
/// not its Data-Out is in; it runs once it is.
fn admit(conn: &Arc<Conn>, itt: u32, counts: bool) {
    let Some(nexus) = conn.session.nexus.clone() else {
        return;
    };
    let full = {
        let mut tasks = conn.tasks.lock();
        let Some(t) = tasks.get_mut(&itt) else {
            // Aborted before its turn: its CmdSN slot is done.
            drop(tasks);
            if counts {
                conn.session.finish_one();
            }
            return;
        };
        t.admitted = true;
        // Under the tasks lock, so an abort (which takes it) finds the task with its entry.
        match nexus.receive(t.lun, &t.cdb, u64::from(itt), t.attr) {
            Ok(r) => {
                t.engine = Some(r);
                None
            }
            Err(resp) => tasks.remove(&itt).map(|t| (t, resp)),
        }
    };
    if let Some((t, resp)) = full {
        // TASK SET FULL: answered now; Data-Out already solicited is dropped when it comes.
        conn.remember_gone(itt);
        if t.counts_in_window {
            conn.session.finish_one();
        }
        send_response(conn, itt, t.lun_raw, t.edtl, t.direction, resp);
        return;
    }
    try_execute(conn, itt);
}

/// Commands the fabric will not hold: a write larger than it gathers (CHECK CONDITION,
/// ILLEGAL REQUEST / INVALID FIELD IN CDB, like a fabric max_sectors limit in LIO), or more
/// held tasks / buffered write bytes than one connection may have (TASK SET FULL, SAM-5
/// §5.3.1) — immediate commands bypass the CmdSN window, so this bounds memory.
fn refusal(conn: &Conn, writes: bool, edtl: u32) -> Option<EngineResponse> {
    if writes && edtl > MAX_WRITE_LEN {
        let mut sense = vec![0u8; 18];
        sense[0] = 0x70;
        sense[2] = 0x05;
        sense[7] = 10;
        sense[12] = 0x24;
        return Some(EngineResponse {
            status: 0x02,
            sense,
            ..Default::default()
        });
    }
    let tasks = conn.tasks.lock();
    let held: u64 = tasks.values().map(|t| t.data.len() as u64).sum();
    let extra = if writes { u64::from(edtl) } else { 0 };
    if tasks.len() >= MAX_HELD_TASKS || held + extra > MAX_HELD_WRITE_BYTES {
        return Some(EngineResponse {
            status: 0x28,
            ..Default::default()
        });
    }
    None
}

/// Send R2Ts for a write task as far as MaxOutstandingR2T allows (§11.8).
fn solicit(conn: &Arc<Conn>, itt: u32) {
    let params = &conn.session.params;
    let mut out = Vec::new();
    {
        let mut tasks = conn.tasks.lock();
        let Some(t) = tasks.get_mut(&itt) else {
            return;
        };
        if t.unsolicited_end.is_some() || t.data_complete() || t.aborted.is_some() {
            return;
        }
        if t.next_r2t_offset < t.received {
            t.next_r2t_offset = t.received;
        }
        while t.r2ts.len() < params.max_outstanding_r2t.max(1) as usize
            && t.next_r2t_offset < t.edtl
        {
            let len = (t.edtl - t.next_r2t_offset).min(params.max_burst_length.max(512));
            let ttt = conn.alloc_ttt();
            let r = OutstandingR2t {
                ttt,
                offset: t.next_r2t_offset,
                len,
                got: 0,
                next_data_sn: 0,
            };
            out.push(R2t {
                lun: t.lun_raw,
                itt,
                ttt,
                stat_sn: 0,
                exp_cmd_sn: 0,
                max_cmd_sn: 0,
                r2t_sn: t.r2t_sn,
                buffer_offset: r.offset,
                desired_length: len,
            });
            t.r2t_sn = t.r2t_sn.wrapping_add(1);
            t.next_r2t_offset += len;
            t.r2ts.push_back(r);
        }
    }
    for r in out {
        conn.send(Pdu::new(Bhs::R2t(r)), Sn::Peek);
    }
}

fn data_out(conn: &Arc<Conn>, d: DataOut, data: Bytes, header: &[u8]) {
    let len = data.len() as u32;
    let mut need_r2t = false;
    let mut complete = false;
    {
        let mut tasks = conn.tasks.lock();
        let Some(t) = tasks.get_mut(&d.itt) else {
            drop(tasks);
            if conn.was_aborted(d.itt) {
                // Data of a task we aborted and already ended (ABORT TASK does not wait for
                // it, unsolicited data may trail): discarded silently at ERL 0, not rejected
                // (RFC 7143 §4.2.3).
                debug!(itt = d.itt, "Data-Out for an aborted task discarded");
                return;
            }
            conn.reject(reject_reason::INVALID_PDU_FIELD, header);
            return;
        };
        if t.aborted.is_some() {
            // The initiator keeps answering the R2Ts of affected tasks (RFC 7143 §4.2.3.3);
            // the data is discarded and the task ends once those are answered.
            if d.ttt != RESERVED_TAG {
                if let Some(r) = t.r2ts.iter_mut().find(|r| r.ttt == d.ttt) {
                    r.got = if d.final_ {
                        r.len
                    } else {
                        r.got.saturating_add(len).min(r.len)
                    };
                }
                t.r2ts.retain(|r| r.got < r.len);
            }
            let done = t.r2ts.is_empty();
            let ended = if done { tasks.remove(&d.itt) } else { None };
            drop(tasks);
            if let Some(t) = ended {
                end_aborted(conn, t);
            }
            return;
        }
        let end = d.buffer_offset.checked_add(len);
        if d.ttt == RESERVED_TAG {
            // Unsolicited data: in order, within the first burst (§13.14).
            let ok = matches!((t.unsolicited_end, end), (Some(ue), Some(e))
                if d.buffer_offset == t.received && d.data_sn == t.unsolicited_data_sn && e <= ue);
            if !ok {
                drop(tasks);
                conn.reject(reject_reason::PROTOCOL_ERROR, header);
                return;
            }
            t.unsolicited_data_sn = t.unsolicited_data_sn.wrapping_add(1);
        } else {
            let Some(r) = t.r2ts.iter_mut().find(|r| r.ttt == d.ttt) else {
                drop(tasks);
                conn.reject(reject_reason::INVALID_PDU_FIELD, header);
                return;
            };
            let ok = matches!(end, Some(e) if d.buffer_offset == r.offset + r.got
                && e <= r.offset + r.len && d.buffer_offset == t.received);
            if !ok {
                drop(tasks);
                conn.reject(reject_reason::INVALID_PDU_FIELD, header);
                return;
            }
            if d.data_sn != r.next_data_sn {
                drop(tasks);
                conn.reject(reject_reason::PROTOCOL_ERROR, header);
                return;
            }
            r.next_data_sn = r.next_data_sn.wrapping_add(1);
            r.got += len;
        }
        let start = d.buffer_offset as usize;
        if let Some(dst) = t.data.get_mut(start..start + data.len()) {
            dst.copy_from_slice(&data);
        }
        t.received += len;
        if d.ttt == RESERVED_TAG {
            if d.final_ || Some(t.received) == t.unsolicited_end {
                t.unsolicited_end = None;
                need_r2t = true;
            }
        } else {
            while t.r2ts.front().is_some_and(|r| r.got == r.len) {
                t.r2ts.pop_front();
                need_r2t = true;
            }
        }
        if t.data_complete() {
            complete = true;
        }
    }
    if complete {
        try_execute(conn, d.itt);
    } else if need_r2t {
        solicit(conn, d.itt);
    }
}

/// Run the task if it has its CmdSN turn and all its data.
fn try_execute(conn: &Arc<Conn>, itt: u32) {
    let task = {
        let mut tasks = conn.tasks.lock();
        match tasks.get(&itt) {
            Some(t) if t.engine.is_some() && t.aborted.is_none() && t.data_complete() => {
                tasks.remove(&itt)
            }
            _ => None,
        }
    };
    let Some(mut task) = task else {
        return;
    };
    let Some(entry) = task.engine.take() else {
        return;
    };
    let Some(nexus) = conn.session.nexus.clone() else {
        return;
    };
    let c = conn.clone();
    let shared = conn.shared.clone();
    shared.begin_command();
    let req = ScsiRequest {
        lun: task.lun,
        cdb: task.cdb,
        tag: u64::from(task.itt),
        attr: task.attr,
        direction: task.direction,
        expected_len: task.edtl,
        data_out: task.data,
    };
    let (lun_raw, edtl, dir, counts) = (
        task.lun_raw,
        task.edtl,
        task.direction,
        task.counts_in_window,
    );
    submit(
        conn,
        Box::new(move || {
            let resp = nexus.execute_received(entry, req);
            if counts {
                c.session.finish_one();
            }
            send_response(&c, itt, lun_raw, edtl, dir, resp);
            c.shared.end_command();
        }),
    );
}

/// Queue a ready command. A blocking-pool runner drains the connection's queue until it is
/// empty, so a busy connection hands commands to an already running thread instead of waking
/// one per command (thread wake-ups dominated the 4 KiB path). Another runner starts only
/// while the queue is longer than the number of idle runners, up to `runners_per_connection`:
/// a runner blocked in a long command (a SANITIZE, a large EXTENDED COPY) does not count, so
/// the commands behind it still run.
fn submit(conn: &Arc<Conn>, run: Run) {
    let start = {
        let mut q = conn.runq.lock();
        q.ready.push_back(run);
        let max = conn.shared.options.runners_per_connection.max(1);
        let idle = q.runners - q.busy;
        let start = q.runners == 0 || (q.runners < max && q.ready.len() > idle);
        if start {
            q.runners += 1;
        }
        start
    };
    if start {
        let c = conn.clone();
        conn.shared.runtime.spawn_blocking(move || {
            // One lock per command: the end of one is accounted where the next is taken.
            let mut ran = false;
            loop {
                let next = {
                    let mut q = c.runq.lock();
                    if ran {
                        q.busy -= 1;
                    }
                    let next = q.ready.pop_front();
                    match next {
                        Some(_) => q.busy += 1,
                        None => q.runners -= 1,
                    }
                    next
                };
                match next {
                    Some(run) => {
                        run();
                        ran = true;
                    }
                    None => return,
                }
            }
        });
    }
}

/// Turn an engine outcome into Data-In / SCSI Response PDUs.
fn send_response(
    conn: &Conn,
    itt: u32,
    lun: [u8; 8],
    edtl: u32,
    dir: DataDirection,
    resp: EngineResponse,
) {
    if resp.suppressed {
        return;
    }
    let (over, under, residual) = match resp.residual {
        Residual::None => (false, false, 0),
        Residual::Overflow(n) => (true, false, n),
        Residual::Underflow(n) => (false, true, n),
    };
    let data_in = Bytes::from(resp.data_in);
    let reads = matches!(dir, DataDirection::Read | DataDirection::Bidirectional);
    let mut data_sn = 0u32;
    let total = if reads {
        data_in.len().min(edtl as usize)
    } else {
        0
    };
    if total > 0 {
        let seg = conn.max_xmit.load(Ordering::Relaxed).max(512) as usize;
        let burst = conn.session.params.max_burst_length.max(512) as usize;
        let status_in_data = resp.sense.is_empty();
        let mut off = 0usize;
        while off < total {
            // Segments never cross a burst boundary, so F marks each sequence's end.
            let burst_end = (off / burst + 1) * burst;
            let end = (off + seg).min(total).min(burst_end);
            let last = end == total;
            let with_status = last && status_in_data;
            let din = DataIn {
                final_: last || end == burst_end,
                ack: false,
                overflow: with_status && over,
                underflow: with_status && under,
                status: with_status.then_some(resp.status),
                lun,
                itt,
                ttt: RESERVED_TAG,
                stat_sn: 0,
                exp_cmd_sn: 0,
                max_cmd_sn: 0,
                data_sn,
                buffer_offset: off as u32,
                residual: if with_status { residual } else { 0 },
            };
            conn.send(
                Pdu::with_data(Bhs::DataIn(din), data_in.slice(off..end)),
                if with_status { Sn::Advance } else { Sn::Keep },
            );
            data_sn = data_sn.wrapping_add(1);
            off = end;
        }
        if status_in_data {
            return;
        }
    }
    let mut seg = Vec::new();
    if !resp.sense.is_empty() {
        let n = resp.sense.len().min(0xffff);
        seg.extend_from_slice(&(n as u16).to_be_bytes());
        seg.extend_from_slice(&resp.sense[..n]);
    }
    let r = pdu::ScsiResponse {
        bidi_overflow: false,
        bidi_underflow: false,
        overflow: over,
        underflow: under,
        response: scsi_response::COMMAND_COMPLETED,
        status: resp.status,
        itt,
        snack_tag: 0,
        stat_sn: 0,
        exp_cmd_sn: 0,
        max_cmd_sn: 0,
        exp_data_sn: data_sn,
        bidi_residual: 0,
        residual,
    };
    conn.send(Pdu::with_data(Bhs::ScsiResponse(r), seg), Sn::Advance);
}

fn tmf_code(r: TmfResponse) -> u8 {
    match r {
        TmfResponse::FunctionComplete => tmf_response::FUNCTION_COMPLETE,
        TmfResponse::TaskDoesNotExist => tmf_response::TASK_DOES_NOT_EXIST,
        TmfResponse::LunDoesNotExist => tmf_response::LUN_DOES_NOT_EXIST,
        TmfResponse::TaskStillAllegiant => tmf_response::TASK_STILL_ALLEGIANT,
        TmfResponse::ReassignmentNotSupported => tmf_response::REASSIGNMENT_NOT_SUPPORTED,
        TmfResponse::NotSupported => tmf_response::NOT_SUPPORTED,
        TmfResponse::AuthorizationFailed => tmf_response::AUTHORIZATION_FAILED,
        TmfResponse::Rejected => tmf_response::REJECTED,
    }
}

fn send_tmf_response(conn: &Conn, itt: u32, response: u8) {
    conn.send(
        Pdu::new(Bhs::TaskMgmtResponse(pdu::TaskMgmtResponse {
            response,
            itt,
            stat_sn: 0,
            exp_cmd_sn: 0,
            max_cmd_sn: 0,
        })),
        Sn::Advance,
    );
}

/// Abort the issuing session's tasks still waiting for their CmdSN turn that match `pick`
/// (the engine does not know them yet). They end silently (own I_T nexus, SAM-5 §5.6); their
/// CmdSN slot is finished when their turn comes.
fn drop_unadmitted(session: &Session, pick: impl Fn(&Task) -> bool) -> usize {
    let conns: Vec<Arc<Conn>> = session.conns.lock().clone();
    let mut n = 0;
    for c in conns {
        let removed: Vec<Task> = {
            let mut tasks = c.tasks.lock();
            let keys: Vec<u32> = tasks
                .iter()
                .filter(|(_, t)| !t.admitted && pick(t))
                .map(|(k, _)| *k)
                .collect();
            keys.iter().filter_map(|k| tasks.remove(k)).collect()
        };
        for t in removed {
            n += 1;
            c.remember_gone(t.itt);
        }
    }
    n
}

impl Conn {
    fn remember_gone(&self, itt: u32) {
        let mut g = self.gone.lock();
        if g.len() >= MAX_GONE {
            g.pop_front();
        }
        g.push_back(itt);
    }

    fn was_aborted(&self, itt: u32) -> bool {
        self.gone.lock().contains(&itt)
    }
}

/// A TMF (of any session) aborted a task this connection holds: end it now, or — for a
/// multi-task function with R2Ts outstanding — once the initiator has answered them (RFC 7143
/// §4.2.3.3 a: the target waits for the issuing initiator's outstanding TTTs and may for
/// third parties; waiting for both keeps one behaviour and lets the initiator finish its
/// bursts). No further R2T is sent for it. False: no such task here.
fn abort_held(conn: &Arc<Conn>, itt: u32, how: Abort, whole_set: bool) -> bool {
    let ended = {
        let mut tasks = conn.tasks.lock();
        let Some(t) = tasks.get_mut(&itt) else {
            return false;
        };
        if t.engine.is_none() {
            // Not admitted: not in the task set, so not this TMF's task.
            return false;
        }
        t.aborted = Some(how);
        t.data = Vec::new();
        t.unsolicited_end = None;
        if whole_set && !t.r2ts.is_empty() {
            let c = conn.clone();
            conn.shared.runtime.spawn(async move {
                tokio::time::sleep(ABORTED_DATA_WAIT).await;
                let late = {
                    let mut tasks = c.tasks.lock();
                    match tasks.get(&itt) {
                        Some(t) if t.aborted.is_some() => tasks.remove(&itt),
                        _ => None,
                    }
                };
                if let Some(t) = late {
                    warn!(itt, "Data-Out of an aborted task never came; ending it");
                    end_aborted(&c, t);
                }
            });
            return true;
        }
        tasks.remove(&itt)
    };
    if let Some(t) = ended {
        end_aborted(conn, t);
    }
    true
}

/// End a task a TMF aborted: its outcome (status TASK ABORTED, or nothing) goes out before it
/// leaves the task set, so before the TMF's response (SAM-5 §7.1, RFC 7143 §4.2.3.3).
fn end_aborted(conn: &Conn, t: Task) {
    conn.remember_gone(t.itt);
    if t.counts_in_window {
        conn.session.finish_one();
    }
    if let Some(how) = t.aborted {
        let resp = EngineResponse::aborted(how);
        send_response(conn, t.itt, t.lun_raw, t.edtl, t.direction, resp);
    }
    // Dropping the task drops its `Received`: it leaves the task set and the TMF goes on.
    drop(t);
}

impl ironlun_engine::TaskListener for Session {
    fn aborted(&self, tag: u64, how: Abort, whole_set: bool) {
        let Ok(itt) = u32::try_from(tag) else {
            return;
        };
        let conns: Vec<Arc<Conn>> = self.conns.lock().clone();
        for c in conns {
            if abort_held(&c, itt, how, whole_set) {
                return;
            }
        }
    }
}

/// Task management (§11.5) at ERL 0.
fn task_management(conn: &Arc<Conn>, t: pdu::TaskMgmtRequest) {
    let counts = !t.immediate;
    let lun = lun_from_bytes(t.lun);
    let session = conn.session.clone();
    let finish = move |s: &Session| {
        if counts {
            s.finish_one();
        }
    };
    let kind = match t.function {
        tmf_function::ABORT_TASK => {
            let tag = t.referenced_task_tag;
            // A task still waiting for its CmdSN turn is known to the fabric only.
            if drop_unadmitted(&session, |x| x.itt == tag && x.lun == lun) > 0 {
                finish(&session);
                send_tmf_response(conn, t.itt, tmf_response::FUNCTION_COMPLETE);
                return;
            }
            TmfKind::AbortTask {
                tag: u64::from(tag),
            }
        }
        tmf_function::ABORT_TASK_SET => TmfKind::AbortTaskSet,
        tmf_function::CLEAR_ACA => TmfKind::ClearAca,
        tmf_function::CLEAR_TASK_SET => TmfKind::ClearTaskSet,
        tmf_function::LOGICAL_UNIT_RESET => TmfKind::LogicalUnitReset,
        tmf_function::TARGET_WARM_RESET => TmfKind::TargetWarmReset,
        tmf_function::TARGET_COLD_RESET => TmfKind::TargetColdReset,
        tmf_function::TASK_REASSIGN => {
            // ERL 0: no connection recovery, so no reassignment (§11.5.1).
            finish(&session);
            send_tmf_response(conn, t.itt, tmf_response::REASSIGNMENT_NOT_SUPPORTED);
            return;
        }
        _ => {
            finish(&session);
            send_tmf_response(conn, t.itt, tmf_response::REJECTED);
            return;
        }
    };
    // Every admitted task of every session is in its LU's task set: the engine aborts those,
    // across all I_T nexuses, and tells their connections (`TaskListener for Session`). Only
    // the issuing session's commands sent before this TMF but still behind a CmdSN gap (an
    // immediate TMF over several connections) are the fabric's to drop (§4.2.3.3 b; target
    // resets "plug" the whole CmdSN space before the TMF).
    let before = |x: &Task| sn_before(x.cmd_sn, t.cmd_sn);
    match kind {
        TmfKind::AbortTask { .. } | TmfKind::ClearAca => {}
        TmfKind::TargetWarmReset | TmfKind::TargetColdReset => {
            drop_unadmitted(&session, before);
        }
        _ => {
            drop_unadmitted(&session, |x| x.lun == lun && before(x));
        }
    }
    let Some(nexus) = session.nexus.clone() else {
        finish(&session);
        send_tmf_response(conn, t.itt, tmf_response::REJECTED);
        return;
    };
    // The affected tasks are marked now, at the TMF's CmdSN turn, so commands after it are
    // not affected (§4.2.3.3); waiting for them to end blocks, so it goes to the pool.
    let pending = nexus.begin_task_management(lun, kind);
    let c = conn.clone();
    conn.shared.begin_command();
    conn.shared.runtime.spawn_blocking(move || {
        let mut code = tmf_code(pending.wait());
        if let TmfKind::AbortTask { .. } = kind {
            if code == tmf_response::TASK_DOES_NOT_EXIST
                && sn_before(t.ref_cmd_sn, t.cmd_sn)
                && c.session.not_yet_received(t.ref_cmd_sn)
            {
                // RefCmdSN in the window but not received: consider it received and
                // aborted (§11.5.1 b).
                for j in c.session.consume_sn(t.ref_cmd_sn) {
                    j();
                }
                code = tmf_response::FUNCTION_COMPLETE;
            }
        }
        finish(&c.session);
        send_tmf_response(&c, t.itt, code);
        if kind == TmfKind::TargetColdReset && code == tmf_response::FUNCTION_COMPLETE {
            // A cold reset is a power-on event for the whole target: after the response, every
            // TCP connection to every initiator of this target node is closed (§11.5.1).
            for s in c.shared.registry.all() {
                if s.target.is_some() && s.target == c.session.target {
                    s.close();
                }
            }
        }
        c.shared.end_command();
    });
}

fn logout_request(conn: &Arc<Conn>, l: pdu::LogoutRequest) {
    if !l.immediate {
        conn.session.finish_one();
    }
    let params = &conn.session.params;
    let respond = |code: u8| {
        conn.send(
            Pdu::new(Bhs::LogoutResponse(pdu::LogoutResponse {
                response: code,
                itt: l.itt,
                stat_sn: 0,
                exp_cmd_sn: 0,
                max_cmd_sn: 0,
                time2wait: if code == logout::RESP_SUCCESS {
                    params.default_time2wait.min(3600) as u16
                } else {
                    0
                },
                time2retain: 0,
            })),
            Sn::Advance,
        );
    };
    info!(
        initiator = %conn.session.initiator,
        tsih = conn.session.tsih,
        reason = l.reason,
        "logout"
    );
    match l.reason {
        logout::CLOSE_SESSION => {
            respond(logout::RESP_SUCCESS);
            let _ = conn.tx.send(Out::Close);
            conn.shared.registry.remove(&conn.session);
            let others: Vec<Arc<Conn>> = conn
                .session
                .conns
                .lock()
                .iter()
                .filter(|c| c.cid != conn.cid)
                .cloned()
                .collect();
            for o in others {
                o.stop();
            }
        }
        logout::CLOSE_CONNECTION => {
            if l.cid == conn.cid {
                respond(logout::RESP_SUCCESS);
                let _ = conn.tx.send(Out::Close);
            } else if let Some(other) = conn.session.conn_by_cid(l.cid) {
                other.stop();
                respond(logout::RESP_SUCCESS);
            } else {
                respond(logout::RESP_CID_NOT_FOUND);
            }
        }
        // ERL 0: no connection recovery (§11.15.1).
        logout::REMOVE_CONNECTION_FOR_RECOVERY => respond(logout::RESP_RECOVERY_NOT_SUPPORTED),
        _ => {
            let mut h = [0u8; BHS_LEN];
            Bhs::LogoutRequest(l.clone()).encode(&mut h);
            conn.reject(reject_reason::INVALID_PDU_FIELD, &h);
        }
    }
}

fn text_request(
    conn: &Arc<Conn>,
    t: pdu::TextRequest,
    data: Bytes,
    header: &[u8],
) -> Result<(), Fatal> {
    let mut st = conn.text.lock();
    if t.ttt != RESERVED_TAG {
        // Continuation of our long response, or of the initiator's long request.
        if let Some((ttt, rest)) = st.pending.take() {
            if ttt == t.ttt {
                drop(st);
                let c = conn.clone();
                conn.ordered(
                    t.cmd_sn,
                    t.immediate,
                    Box::new(move || send_text(&c, t.itt, t.immediate, t.lun, rest)),
                );
                return Ok(());
            }
        }
        if st.request_ttt != Some(t.ttt) {
            drop(st);
            conn.reject(reject_reason::INVALID_PDU_FIELD, header);
            return Ok(());
        }
    } else {
        // A new request resets any half-done exchange (§11.10.4).
        st.pending = None;
        st.collector.clear();
    }
    if st.collector.push(&data).is_err() {
        drop(st);
        conn.reject(reject_reason::INVALID_PDU_FIELD, header);
        return Ok(());
    }
    if t.cont {
        let ttt = conn.alloc_ttt();
        st.request_ttt = Some(ttt);
        drop(st);
        let c = conn.clone();
        conn.ordered(
            t.cmd_sn,
            t.immediate,
            Box::new(move || {
                if !t.immediate {
                    c.session.finish_one();
                }
                c.send(
                    Pdu::new(Bhs::TextResponse(TextResponse {
                        final_: false,
                        cont: false,
                        lun: t.lun,
                        itt: t.itt,
                        ttt,
                        stat_sn: 0,
                        exp_cmd_sn: 0,
                        max_cmd_sn: 0,
                    })),
                    Sn::Advance,
                );
            }),
        );
        return Ok(());
    }
    st.request_ttt = None;
    let parsed = st.collector.finish();
    drop(st);
    let Ok(pairs) = parsed else {
        conn.reject(reject_reason::INVALID_PDU_FIELD, header);
        return Ok(());
    };
    let c = conn.clone();
    conn.ordered(
        t.cmd_sn,
        t.immediate,
        Box::new(move || {
            let out = answer_text(&c, &pairs);
            send_text(&c, t.itt, t.immediate, t.lun, Bytes::from(out));
        }),
    );
    Ok(())
}

/// Send (the first part of) a text response; keep the rest for continuation.
fn send_text(conn: &Conn, itt: u32, immediate: bool, lun: [u8; 8], body: Bytes) {
    if !immediate {
        conn.session.finish_one();
    }
    let max = conn.max_xmit.load(Ordering::Relaxed).max(512) as usize;
    let (now, rest) = if body.len() > max {
        (body.slice(..max), Some(body.slice(max..)))
    } else {
        (body, None)
    };
    let ttt = match rest {
        Some(r) => {
            let ttt = conn.alloc_ttt();
            conn.text.lock().pending = Some((ttt, r));
            ttt
        }
        None => RESERVED_TAG,
    };
    conn.send(
        Pdu::with_data(
            Bhs::TextResponse(TextResponse {
                final_: ttt == RESERVED_TAG,
                cont: ttt != RESERVED_TAG,
                lun,
                itt,
                ttt,
                stat_sn: 0,
                exp_cmd_sn: 0,
                max_cmd_sn: 0,
            }),
            now,
        ),
        Sn::Advance,
    );
}

/// Answer the keys of a full-feature-phase Text Request (§11.10, SendTargets Appendix C).
fn answer_text(conn: &Conn, pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        if k == "SendTargets" {
            let listing = conn.shared.send_targets(
                v,
                &conn.session.initiator,
                conn.session.target.as_deref(),
                conn.local,
            );
            out.extend_from_slice(&listing);
            continue;
        }
        let answer = match negotiation::key(k) {
            None => Answer::NotUnderstood,
            Some(def) if def.usage != Usage::Any => Answer::Reject,
            Some(def) => {
                let a = negotiation::respond(def, v, "");
                if a == Answer::Accepted && k == "MaxRecvDataSegmentLength" {
                    if let Some(n) = negotiation::parse_number(v) {
                        let n = u32::try_from(n).unwrap_or(u32::MAX);
                        conn.max_xmit.store(n.min(conn.xmit_cap), Ordering::Relaxed);
                    }
                }
                a
            }
        };
        if let Some(val) = answer.text() {
            text::encode_pair(&mut out, k, val);
        }
    }
    out
}
