//! Task management (RFC 7143 §11.5, §4.2.3.3 standard multi-task abort semantics) at
//! ErrorRecoveryLevel 0. A command enters its LU's task set at its CmdSN turn, before its
//! Data-Out is in, so a TMF of any session reaches it in the engine; the engine tells the
//! holding session (`TaskListener for Session`), which ends the task — after the Data-Out of
//! R2Ts already sent, for multi-task functions — with status TASK ABORTED or silently as the
//! engine decided, and drops any later Data-Out for it.

use std::sync::Arc;
use std::time::Duration;

use ironlun_engine::scsi::lun;
use ironlun_engine::{Abort, ScsiResponse as EngineResponse, TmfKind, TmfResponse};
use ironlun_iscsi::pdu::{self, tmf_function, tmf_response};
use ironlun_iscsi::{Bhs, Pdu};
use tracing::warn;

use super::response::send_response;
use super::task::{Task, TaskState};
use super::wire::Sn;
use super::Conn;
use crate::session::{sn_before, Session, TaskRef};

/// How long an aborted task waits for the Data-Out of R2Ts it already sent (RFC 7143
/// §4.2.3.3 a) before it ends anyway: an initiator that stops answering must not hold up
/// another initiator's TMF forever.
const ABORTED_DATA_WAIT: Duration = Duration::from_secs(10);

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
    conn.wire.send(
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

/// This connection's part of a TMF on tasks still waiting for their CmdSN turn (the engine
/// does not know them yet): drop those `pick` selects. They end silently (own I_T nexus,
/// SAM-5 §5.6); their CmdSN slot is finished when their turn comes.
pub(super) fn drop_unadmitted(conn: &Conn, pick: &dyn Fn(&TaskRef) -> bool) -> usize {
    let removed: Vec<Task> = {
        let mut tasks = conn.tasks.lock();
        let keys: Vec<u32> = tasks
            .iter()
            .filter(|(_, t)| t.is_queued() && pick(&t.task_ref()))
            .map(|(k, _)| *k)
            .collect();
        keys.iter().filter_map(|k| tasks.remove(k)).collect()
    };
    for t in &removed {
        conn.tasks.remember_gone(t.itt);
    }
    removed.len()
}

/// A TMF (of any session) aborted a task this connection holds: end it now, or — for a
/// multi-task function with R2Ts outstanding — once the initiator has answered them (RFC 7143
/// §4.2.3.3 a: the target waits for the issuing initiator's outstanding TTTs and may for
/// third parties; waiting for both keeps one behaviour and lets the initiator finish its
/// bursts). No further R2T is sent for it. False: no such task here.
pub(super) fn abort_held(conn: &Arc<Conn>, itt: u32, how: Abort, whole_set: bool) -> bool {
    let ended = {
        let mut tasks = conn.tasks.lock();
        let Some(t) = tasks.get_mut(&itt) else {
            return false;
        };
        if !t.abort(how) {
            // Not admitted: not in the task set, so not this TMF's task.
            return false;
        }
        t.data = Vec::new();
        t.unsolicited_end = None;
        if whole_set && !t.r2ts.is_empty() {
            let c = conn.clone();
            conn.shared.runtime.spawn(async move {
                tokio::time::sleep(ABORTED_DATA_WAIT).await;
                let late = {
                    let mut tasks = c.tasks.lock();
                    match tasks.get(&itt) {
                        Some(t) if t.is_aborted() => tasks.remove(&itt),
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
pub(super) fn end_aborted(conn: &Conn, t: Task) {
    conn.tasks.remember_gone(t.itt);
    if t.counts_in_window {
        conn.session.finish_one();
    }
    if let TaskState::Aborted { how, .. } = t.state {
        let resp = EngineResponse::aborted(how);
        send_response(conn, t.itt, t.lun_raw, t.edtl, t.direction, resp);
    }
    // Dropping the task drops its `Received`: it leaves the task set and the TMF goes on.
    drop(t);
}

/// Task management (§11.5) at ERL 0.
pub(super) fn task_management(conn: &Arc<Conn>, t: pdu::TaskMgmtRequest) {
    let counts = !t.immediate;
    let lun = lun::decode_or_raw(t.lun);
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
            if session.drop_unadmitted(&|x| x.itt == tag && x.lun == lun) > 0 {
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
    let before = |x: &TaskRef| sn_before(x.cmd_sn, t.cmd_sn);
    match kind {
        TmfKind::AbortTask { .. } | TmfKind::ClearAca => {}
        TmfKind::TargetWarmReset | TmfKind::TargetColdReset => {
            session.drop_unadmitted(&before);
        }
        _ => {
            session.drop_unadmitted(&|x| x.lun == lun && before(x));
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
