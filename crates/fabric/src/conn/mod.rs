//! One iSCSI connection in the full feature phase (RFC 7143 §3.2.4, §11), at
//! ErrorRecoveryLevel 0. The connection only frames (`wire`); the handlers of each kind of
//! PDU depend on it and on the held tasks, never the reverse:
//!
//! * `wire` — reader, writer (StatSN / ExpCmdSN / MaxCmdSN stamping) and keep-alive NOP-In
//!   pings (§11.18, §11.19).
//! * `task` — the commands the connection holds and their state (`TaskState`).
//! * `command` — SCSI Command intake and admission at the CmdSN turn (§11.3, §4.2.2.1).
//! * `data_out` — R2T and Data-Out (§11.7, §11.8).
//! * `runq` — running ready commands on the blocking pool.
//! * `response` — Data-In and SCSI Response (§11.4, §11.7.4).
//! * `tmf` — task management (§11.5, §4.2.3.3).
//! * `text` — Text requests (§11.10); `logout` — Logout (§11.14).
//!
//! This module owns the connection's lifetime (`run`), hands each PDU to its handler
//! (`dispatch`) and is the session's [`Link`] to the connection.

mod command;
mod data_out;
mod logout;
mod response;
mod runq;
mod task;
mod text;
mod tmf;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use ironlun_engine::Abort;
use ironlun_iscsi::pdu::reject_reason;
use ironlun_iscsi::{Bhs, Digests, Pdu, RESERVED_TAG};
use parking_lot::Mutex;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tracing::{debug, info};

use crate::session::{Job, Link, Session, TaskRef};
use crate::shared::Shared;
use runq::RunQueue;
use task::{HeldTasks, Task};
use text::TextState;
use wire::{Fatal, Sn, Wire};

struct Conn {
    cid: u16,
    session: Arc<Session>,
    shared: Arc<Shared>,
    wire: Arc<Wire>,
    tasks: HeldTasks,
    text: Mutex<TextState>,
    runq: Mutex<RunQueue>,
    /// The address the initiator reached us on (SendTargets for wildcard portals).
    local: SocketAddr,
}

/// What login hands the full feature phase.
pub(crate) struct ConnSetup {
    pub cid: u16,
    pub session: Arc<Session>,
    pub shared: Arc<Shared>,
    pub max_xmit: u32,
    pub max_recv: u32,
    pub xmit_cap: u32,
    pub stat_sn: u32,
    pub local: SocketAddr,
    /// The initiator's address.
    pub peer: SocketAddr,
    /// The login of this connection went through CHAP.
    pub chap: bool,
    pub digests: Digests,
}

impl Conn {
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

impl Link for Conn {
    fn stop(&self) {
        self.wire.stop();
    }

    fn request_logout(&self) {
        logout::request_logout(&self.wire);
    }

    fn abort_held(self: Arc<Self>, itt: u32, how: Abort, whole_set: bool) -> bool {
        tmf::abort_held(&self, itt, how, whole_set)
    }

    fn drop_unadmitted(&self, pick: &dyn Fn(&TaskRef) -> bool) -> usize {
        tmf::drop_unadmitted(self, pick)
    }
}

/// Start the full feature phase on a logged-in connection. Returns when it closes.
pub(crate) async fn run(
    setup: ConnSetup,
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    leftover: BytesMut,
) {
    let (wire, rx) = Wire::new(
        setup.max_xmit,
        setup.max_recv,
        setup.xmit_cap,
        setup.shared.counters.clone(),
    );
    let wire = Arc::new(wire);
    let session = setup.session;
    let conn = Arc::new(Conn {
        cid: setup.cid,
        session: session.clone(),
        shared: setup.shared,
        wire: wire.clone(),
        tasks: HeldTasks::default(),
        text: Mutex::new(TextState::new()),
        runq: Mutex::new(RunQueue::default()),
        local: setup.local,
    });
    // Connection reinstatement (§6.3.4): a login with the CID of a live connection replaces it.
    let info = crate::listing::ConnInfo {
        cid: setup.cid,
        peer: setup.peer,
        local: setup.local,
        chap: setup.chap,
        digests: (setup.digests.header, setup.digests.data),
        since: std::time::SystemTime::now(),
    };
    let id = session.attach(info, conn.clone());
    if session.is_closed() {
        wire.stop();
    }
    let writer = tokio::spawn(wire::writer(
        wr,
        rx,
        wire.clone(),
        session.clone(),
        setup.stat_sn,
        setup.digests,
    ));
    let keep_alive = conn
        .shared
        .keep_alive(session.target.as_deref(), session.tpgt);
    wire::reader(
        &wire,
        &session,
        rd,
        leftover,
        setup.digests,
        keep_alive,
        |p, header| dispatch(&conn, p, header),
    )
    .await;
    wire.stop();
    let _ = writer.await;
    // Fabric-held tasks of this connection die with it (ERL 0); their window slots reopen.
    let dropped: Vec<Task> = conn.tasks.lock().drain().map(|(_, t)| t).collect();
    for t in dropped {
        if !t.is_queued() && t.counts_in_window {
            session.finish_one();
        }
    }
    if session.detach(id) {
        conn.shared.registry.remove(&session);
        session.close();
        info!(
            initiator = %session.initiator,
            tsih = session.tsih,
            "session closed"
        );
    }
}

/// Hand one PDU to its handler.
fn dispatch(conn: &Arc<Conn>, p: Pdu, header: &[u8]) -> Result<(), Fatal> {
    let discovery = conn.session.is_discovery();
    match p.bhs {
        Bhs::NopOut(ref n) => {
            if n.itt == RESERVED_TAG {
                // The answer to our ping (§11.18.1: ITT 0xffffffff, I bit set).
                return Ok(());
            }
            let c = conn.clone();
            let echo = Pdu::with_data(wire::nop_in(n.lun, n.itt, RESERVED_TAG), p.data.clone());
            let non_immediate = !n.immediate;
            conn.ordered(
                n.cmd_sn,
                n.immediate,
                Box::new(move || {
                    c.wire.send(echo, Sn::Advance);
                    if non_immediate {
                        c.session.finish_one();
                    }
                }),
            );
            Ok(())
        }
        Bhs::ScsiCommand(ref cmd) if !discovery => {
            let cmd = cmd.clone();
            command::scsi_command(conn, cmd, p, header);
            Ok(())
        }
        Bhs::DataOut(ref d) if !discovery => {
            let d = d.clone();
            data_out::data_out(conn, d, p.data, header);
            Ok(())
        }
        Bhs::TaskMgmtRequest(ref t) if !discovery => {
            let t = t.clone();
            let c = conn.clone();
            conn.ordered(
                t.cmd_sn,
                t.immediate,
                Box::new(move || tmf::task_management(&c, t)),
            );
            Ok(())
        }
        Bhs::TextRequest(ref t) => {
            let t = t.clone();
            text::text_request(conn, t, p.data, header)
        }
        Bhs::LogoutRequest(ref l) => {
            let l = l.clone();
            let c = conn.clone();
            conn.ordered(
                l.cmd_sn,
                l.immediate,
                Box::new(move || logout::logout_request(&c, l)),
            );
            Ok(())
        }
        Bhs::Unknown(_) => {
            conn.wire
                .reject(reject_reason::COMMAND_NOT_SUPPORTED, header);
            Ok(())
        }
        // Login in full feature phase, SNACK at ERL 0, target-only opcodes, SCSI in a
        // discovery session: protocol errors (§11.17.1).
        _ => {
            conn.wire.reject(reject_reason::PROTOCOL_ERROR, header);
            Ok(())
        }
    }
}
