//! The connection's run queue: commands with their CmdSN turn (RFC 7143 §4.2.2.1) and all
//! their data run on tokio's blocking pool (the engine's `execute_received` blocks; the task
//! set's ordering rules, SAM-5 §8, are the engine's), their outcomes queued as they complete.
//! A small READ or WRITE on a memory LU that may run at once (`Received::runs_at_once`) runs
//! on the connection's own task instead: it waits for nothing, and the hand-off to a thread and
//! back cost more than the command.

use std::collections::VecDeque;
use std::sync::Arc;

use ironlun_engine::ScsiRequest;

use super::response::send_response;
use super::task::{Task, TaskState};
use super::Conn;

/// A command's execution, ready to run on the blocking pool.
type Run = Box<dyn FnOnce() + Send>;

/// Commands ready to execute, and how many runners drain them (see `submit`).
#[derive(Default)]
pub(super) struct RunQueue {
    ready: VecDeque<Run>,
    runners: usize,
    /// Runners inside a command (the rest are about to pop the next one or exit).
    busy: usize,
}

/// Run a task taken out of the held table ready (admitted, all its data in).
pub(super) fn execute(conn: &Arc<Conn>, task: Task) {
    let TaskState::Admitted(entry) = task.state else {
        return;
    };
    let Some(nexus) = conn.session.nexus.clone() else {
        return;
    };
    let inline = entry.runs_at_once(&task.cdb, task.edtl);
    let c = conn.clone();
    conn.shared.begin_command();
    let req = ScsiRequest {
        lun: task.lun,
        cdb: task.cdb,
        tag: u64::from(task.itt),
        attr: task.attr,
        direction: task.direction,
        expected_len: task.edtl,
        data_out: task.data,
    };
    let (itt, lun_raw, edtl, dir, counts) = (
        task.itt,
        task.lun_raw,
        task.edtl,
        task.direction,
        task.counts_in_window,
    );
    let run = move || {
        let resp = nexus.execute_received(entry, req);
        if counts {
            c.session.finish_one();
        }
        send_response(&c, itt, lun_raw, edtl, dir, resp);
        c.shared.end_command();
    };
    if inline {
        run();
    } else {
        submit(conn, Box::new(run));
    }
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
