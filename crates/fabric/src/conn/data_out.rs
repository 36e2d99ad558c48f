//! Write data (RFC 7143 §11.7, §11.8): R2Ts for a write task as far as MaxOutstandingR2T
//! allows, each at most MaxBurstLength, after any unsolicited burst (FirstBurstLength,
//! §13.14); Data-Out PDUs checked against their R2T or the unsolicited burst and gathered in
//! order (DataPDUInOrder / DataSequenceInOrder = Yes). Data-Out of an aborted task is
//! discarded (§4.2.3.3).

use std::sync::Arc;

use bytes::Bytes;
use ironlun_iscsi::pdu::reject_reason;
use ironlun_iscsi::{Bhs, DataOut, Pdu, R2t, RESERVED_TAG};
use tracing::debug;

use super::runq::execute;
use super::task::{take_ready, OutstandingR2t, Task};
use super::tmf::end_aborted;
use super::wire::{Sn, Wire};
use super::Conn;

/// The R2Ts to send for `t` now, recorded as outstanding; called with the tasks locked and
/// sent with [`send_r2ts`] once the lock is released.
pub(super) fn next_r2ts(conn: &Conn, t: &mut Task) -> Vec<R2t> {
    let params = &conn.session.params;
    let mut out = Vec::new();
    if t.unsolicited_end.is_some() || t.data_complete() || t.is_aborted() {
        return out;
    }
    if t.next_r2t_offset < t.received {
        t.next_r2t_offset = t.received;
    }
    while t.r2ts.len() < params.max_outstanding_r2t.max(1) as usize && t.next_r2t_offset < t.edtl {
        let len = (t.edtl - t.next_r2t_offset).min(params.max_burst_length.max(512));
        let ttt = conn.wire.alloc_ttt();
        let r = OutstandingR2t {
            ttt,
            offset: t.next_r2t_offset,
            len,
            got: 0,
            next_data_sn: 0,
        };
        out.push(R2t {
            lun: t.lun_raw,
            itt: t.itt,
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
    out
}

pub(super) fn send_r2ts(wire: &Wire, r2ts: Vec<R2t>) {
    for r in r2ts {
        wire.send(Pdu::new(Bhs::R2t(r)), Sn::Peek);
    }
}

/// What a Data-Out PDU leads to once the tasks are unlocked.
enum Next {
    Nothing,
    Reject(u8),
    EndAborted(Task),
    Run(Task),
    Solicit(Vec<R2t>),
}

/// A Data-Out PDU (§11.7): one lock of the held tasks gathers it and decides what follows.
pub(super) fn data_out(conn: &Arc<Conn>, d: DataOut, data: Bytes, header: &[u8]) {
    let next = {
        let mut tasks = conn.tasks.lock();
        let Some(t) = tasks.get_mut(&d.itt) else {
            drop(tasks);
            if conn.tasks.was_aborted(d.itt) {
                // Data of a task we aborted and already ended (ABORT TASK does not wait for
                // it, unsolicited data may trail): discarded silently at ERL 0, not rejected
                // (RFC 7143 §4.2.3).
                debug!(itt = d.itt, "Data-Out for an aborted task discarded");
                return;
            }
            conn.wire.reject(reject_reason::INVALID_PDU_FIELD, header);
            return;
        };
        match gather(t, &d, &data) {
            Gathered::Bad(reason) => Next::Reject(reason),
            Gathered::Aborted { done: false } | Gathered::More { need_r2t: false } => Next::Nothing,
            Gathered::Aborted { done: true } => {
                tasks.remove(&d.itt).map_or(Next::Nothing, Next::EndAborted)
            }
            Gathered::Complete => take_ready(&mut tasks, d.itt).map_or(Next::Nothing, Next::Run),
            Gathered::More { need_r2t: true } => Next::Solicit(next_r2ts(conn, t)),
        }
    };
    match next {
        Next::Nothing => {}
        Next::Reject(reason) => conn.wire.reject(reason, header),
        Next::EndAborted(t) => end_aborted(conn, t),
        Next::Run(t) => execute(conn, t),
        Next::Solicit(r2ts) => send_r2ts(&conn.wire, r2ts),
    }
}

/// A Data-Out PDU applied to its task.
enum Gathered {
    /// The task was aborted; `done` once no R2T it sent is still unanswered.
    Aborted { done: bool },
    /// The PDU breaks the rules: Reject with this reason.
    Bad(u8),
    /// All the task's data is in.
    Complete,
    /// More data to come; `need_r2t` when a burst ended and more R2Ts may go out.
    More { need_r2t: bool },
}

fn gather(t: &mut Task, d: &DataOut, data: &Bytes) -> Gathered {
    let len = data.len() as u32;
    if t.is_aborted() {
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
        return Gathered::Aborted {
            done: t.r2ts.is_empty(),
        };
    }
    let end = d.buffer_offset.checked_add(len);
    if d.ttt == RESERVED_TAG {
        // Unsolicited data: in order, within the first burst (§13.14).
        let ok = matches!((t.unsolicited_end, end), (Some(ue), Some(e))
            if d.buffer_offset == t.received && d.data_sn == t.unsolicited_data_sn && e <= ue);
        if !ok {
            return Gathered::Bad(reject_reason::PROTOCOL_ERROR);
        }
        t.unsolicited_data_sn = t.unsolicited_data_sn.wrapping_add(1);
    } else {
        let Some(r) = t.r2ts.iter_mut().find(|r| r.ttt == d.ttt) else {
            return Gathered::Bad(reject_reason::INVALID_PDU_FIELD);
        };
        let ok = matches!(end, Some(e) if d.buffer_offset == r.offset + r.got
            && e <= r.offset + r.len && d.buffer_offset == t.received);
        if !ok {
            return Gathered::Bad(reject_reason::INVALID_PDU_FIELD);
        }
        if d.data_sn != r.next_data_sn {
            return Gathered::Bad(reject_reason::PROTOCOL_ERROR);
        }
        r.next_data_sn = r.next_data_sn.wrapping_add(1);
        r.got += len;
    }
    // In order (checked above: the offset is what was received so far), so it extends.
    t.data.extend_from_slice(data);
    t.received += len;
    let mut need_r2t = false;
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
        Gathered::Complete
    } else {
        Gathered::More { need_r2t }
    }
}
