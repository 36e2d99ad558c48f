//! SCSI Command intake (RFC 7143 §11.3): checks the PDU, refuses what the fabric will not
//! hold, records the task with its first R2Ts and admits it at its CmdSN turn (§4.2.2.1) —
//! at once when it is immediate or in order, all under one lock of the held tasks. Admitted,
//! it is in its LU's task set whether or not its Data-Out is in, and runs once it is.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use ironlun_engine::scsi::lun;
use ironlun_engine::scsi::sense::{asc, Sense};
use ironlun_engine::scsi::status;
use ironlun_engine::{DataDirection, ScsiResponse as EngineResponse, TaskAttr};
use ironlun_iscsi::pdu::{reject_reason, task_attr};
use ironlun_iscsi::{Pdu, R2t, ScsiCommand};
use tracing::debug;

use super::data_out::{next_r2ts, send_r2ts};
use super::response::send_response;
use super::runq::execute;
use super::task::{take_ready, Task, TaskState};
use super::Conn;
use crate::session::Job;

/// Largest write we gather for one command; larger ones are refused with CHECK CONDITION
/// (an initiator could otherwise make us allocate up to 4 GiB per command).
const MAX_WRITE_LEN: u32 = 64 << 20;
/// Commands one connection may have waiting in the fabric (for data or CmdSN order).
const MAX_HELD_TASKS: usize = 2 * crate::session::QUEUE_DEPTH as usize;

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

/// What the held tasks say about a new command.
// Lives on the stack for one PDU; boxing the held variant would cost an allocation per command.
#[allow(clippy::large_enum_variant)]
enum Intake {
    /// Its ITT is already in use.
    Duplicate,
    /// The fabric will not hold it: answered with this at its CmdSN turn (the CDB: for the
    /// counters).
    Refused(EngineResponse, Vec<u8>),
    /// Outside the CmdSN window (§4.2.2.1): silently ignored.
    Ignored,
    /// Held, with the R2Ts to send for it now, its admission if its CmdSN turn has come
    /// (`None`: it waits behind a gap) and the jobs of later commands its turn released.
    Held {
        r2ts: Vec<R2t>,
        admission: Option<Admission>,
        released: Vec<Job>,
    },
}

/// A SCSI Command PDU (§11.3): one lock of the held tasks checks it, records it, computes its
/// first R2Ts and — when its CmdSN turn has come (immediate, or in order) — admits it.
pub(super) fn scsi_command(conn: &Arc<Conn>, cmd: ScsiCommand, p: Pdu, header: &[u8]) {
    let params = &conn.session.params;
    let Ok(cdb) = p.full_cdb() else {
        conn.wire.reject(reject_reason::INVALID_PDU_FIELD, header);
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
        conn.wire.reject(reject_reason::PROTOCOL_ERROR, header);
        return;
    }
    let edtl = cmd.expected_data_length;
    let itt = cmd.itt;
    let counts = !cmd.immediate;
    let intake = {
        let mut tasks = conn.tasks.lock();
        if tasks.contains_key(&itt) {
            Intake::Duplicate
        } else if let Some(resp) = refusal(
            &tasks,
            writes,
            edtl,
            conn.shared.options.max_buffered_write_bytes,
            || {
                // The LU's sense format (control mode page D_SENSE); no LU: fixed.
                conn.session
                    .nexus
                    .as_deref()
                    .is_some_and(|n| n.descriptor_sense(lun::decode_or_raw(cmd.lun)))
            },
        ) {
            Intake::Refused(resp, cdb)
        } else {
            // Its CmdSN turn is taken under the tasks lock (the window's own lock nests
            // inside it and is never held while taking this one): now for an immediate
            // command, else as the window says. Jobs of later commands it releases run once
            // the tasks are unlocked.
            let turn = if cmd.immediate {
                Some((true, Vec::new()))
            } else {
                let c = conn.clone();
                let job: Job = Box::new(move || admit(&c, itt, counts));
                conn.session.admit(cmd.cmd_sn, job).map(|mut released| {
                    // Its turn came when the window released jobs: the first is its own
                    // admission, done here instead.
                    let now = !released.is_empty();
                    if now {
                        drop(released.remove(0));
                    }
                    (now, released)
                })
            };
            match turn {
                None => Intake::Ignored,
                Some((now, released)) => {
                    let mut data = Vec::new();
                    if writes {
                        // Room for the whole transfer, filled as the data arrives (Data-Out
                        // lands in order, data_out::gather): memory is touched only by what
                        // the initiator really sends, never zero-filled ahead of it.
                        data.reserve_exact(edtl as usize);
                        data.extend_from_slice(&p.data);
                    }
                    // Unsolicited Data-Out follows when InitialR2T=No and F is clear
                    // (§11.3.1.1).
                    let unsolicited_end = (writes && !params.initial_r2t && !cmd.final_)
                        .then(|| params.first_burst_length.min(edtl));
                    let mut task = Task {
                        itt,
                        cmd_sn: cmd.cmd_sn,
                        lun: lun::decode_or_raw(cmd.lun),
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
                        state: TaskState::Queued,
                        counts_in_window: counts,
                    };
                    let r2ts = next_r2ts(conn, &mut task);
                    tasks.insert(itt, task);
                    let admission = now.then(|| enter(conn, &mut tasks, itt));
                    Intake::Held {
                        r2ts,
                        admission,
                        released,
                    }
                }
            }
        }
    };
    match intake {
        Intake::Duplicate => conn.wire.reject(reject_reason::INVALID_PDU_FIELD, header),
        Intake::Refused(resp, cdb) => {
            // Answered like any command in the I/O counters (metrics, `sessions`).
            if let Some(n) = conn.session.nexus.as_deref() {
                n.count_refused(lun::decode_or_raw(cmd.lun), &cdb, resp.status, &resp.sense);
            }
            // Refused once its CmdSN turn comes; any Data-Out for it is rejected as unknown.
            let c = conn.clone();
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
        }
        Intake::Ignored => debug!(
            cmd_sn = cmd.cmd_sn,
            "SCSI command outside the CmdSN window ignored"
        ),
        Intake::Held {
            r2ts,
            admission,
            released,
        } => {
            send_r2ts(&conn.wire, r2ts);
            if let Some(a) = admission {
                admitted(conn, itt, counts, a);
            }
            released.into_iter().for_each(|j| j());
        }
    }
}

/// What a command's admission leads to once the tasks are unlocked.
enum Admission {
    /// In its LU's task set, waiting for Data-Out (or not admitted: no I_T nexus).
    Held,
    /// Admitted with all its data: it runs.
    Run(Task),
    /// The task set is full: answered now.
    Full(Task, EngineResponse),
    /// Gone before its turn (a TMF dropped it).
    Gone,
}

/// A command's CmdSN turn, with the tasks locked: it enters its LU's task set now, in command
/// order, whether or not its Data-Out is in; it runs at once if it is. Under the tasks lock,
/// so an abort (which takes it) finds the task with its entry.
fn enter(conn: &Conn, tasks: &mut HashMap<u32, Task>, itt: u32) -> Admission {
    let Some(nexus) = conn.session.nexus.as_deref() else {
        return Admission::Held;
    };
    let Some(t) = tasks.get_mut(&itt) else {
        return Admission::Gone;
    };
    match nexus.receive(t.lun, &t.cdb, u64::from(itt), t.attr) {
        Ok(r) => {
            t.state = TaskState::Admitted(r);
            take_ready(tasks, itt).map_or(Admission::Held, Admission::Run)
        }
        Err(resp) => tasks
            .remove(&itt)
            .map_or(Admission::Gone, |t| Admission::Full(t, resp)),
    }
}

/// Act on an admission once the tasks are unlocked.
fn admitted(conn: &Arc<Conn>, itt: u32, counts: bool, a: Admission) {
    match a {
        Admission::Held => {}
        Admission::Run(t) => execute(conn, t),
        Admission::Full(t, resp) => {
            // TASK SET FULL: Data-Out already solicited is dropped when it comes.
            conn.tasks.remember_gone(itt);
            if t.counts_in_window {
                conn.session.finish_one();
            }
            send_response(conn, itt, t.lun_raw, t.edtl, t.direction, resp);
        }
        Admission::Gone => {
            // Its CmdSN slot is done.
            if counts {
                conn.session.finish_one();
            }
        }
    }
}

/// The CmdSN turn of a command that waited behind a gap (a job the window releases).
fn admit(conn: &Arc<Conn>, itt: u32, counts: bool) {
    let a = enter(conn, &mut conn.tasks.lock(), itt);
    admitted(conn, itt, counts, a);
}

/// Commands the fabric will not hold: a write larger than it gathers (CHECK CONDITION,
/// ILLEGAL REQUEST / INVALID FIELD IN CDB, like a fabric max_sectors limit in LIO), or more
/// held tasks / buffered write bytes than one connection may have (`max_buffered_write_bytes`) (TASK SET FULL, SAM-5
/// §5.3.1) — immediate commands bypass the CmdSN window, so this bounds memory.
///
/// The sense data is in the format the LU's D_SENSE bit selects (`descriptor`, asked only
/// when needed).
fn refusal(
    tasks: &HashMap<u32, Task>,
    writes: bool,
    edtl: u32,
    max_held_write_bytes: u64,
    descriptor: impl FnOnce() -> bool,
) -> Option<EngineResponse> {
    if writes && edtl > MAX_WRITE_LEN {
        return Some(EngineResponse {
            status: status::CHECK_CONDITION,
            sense: Sense::illegal(asc::INVALID_FIELD_IN_CDB).encode(descriptor()),
            ..Default::default()
        });
    }
    // What the held writes may fill: each reserved its whole transfer.
    let held: u64 = tasks.values().map(|t| t.data.capacity() as u64).sum();
    let extra = if writes { u64::from(edtl) } else { 0 };
    if tasks.len() >= MAX_HELD_TASKS || held + extra > max_held_write_bytes {
        return Some(EngineResponse {
            status: status::TASK_SET_FULL,
            ..Default::default()
        });
    }
    None
}
