//! The two tasks of a session (RFC 7143 §4.2): the writer sends queued PDUs in order; the
//! reader records each target PDU's sequence numbers, hands it to the task its ITT names,
//! answers target NOP-In pings (§11.19) and turns the rest into [`Event`]s. When the
//! connection ends, every outstanding task fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ironlun_iscsi::pdu::tmf_response;
use ironlun_iscsi::{Bhs, NopOut, Opcode, Pdu, RESERVED_TAG};
use tokio::sync::mpsc;

use super::state::{event, fail, unexpected, Ending, Outgoing, Shared, Task};
use super::{text, tmf, transfer, Event};
use crate::connection::{Reader, Writer};
use crate::Error;

/// Bytes gathered into one write at most: PDUs queued while the previous write was in
/// progress go out together (one system call for a burst of commands), in queue order.
const WRITE_BATCH: usize = 256 * 1024;

/// NOP-In pings (§11.19) answered while this many PDUs wait for the writer are not answered:
/// a target that pings faster than it reads cannot make the session queue without bound.
pub(super) const MAX_QUEUED_FOR_PINGS: usize = 4096;

pub(super) async fn write_loop(
    mut w: Writer,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    queued: Arc<AtomicUsize>,
) {
    use tokio::io::AsyncWriteExt;
    let mut buf = bytes::BytesMut::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut unencodable = false;
        while let Some(o) = next.take() {
            queued.fetch_sub(1, Ordering::Relaxed);
            match o {
                // A PDU that cannot be encoded (a data segment over 16 MiB) ends the
                // connection after what was queued before it.
                Outgoing::Pdu(p) => unencodable = p.encode(w.digests, &mut buf).is_err(),
                Outgoing::Bytes(b) => buf.extend_from_slice(&b),
            }
            if buf.len() < WRITE_BATCH && !unencodable {
                next = rx.try_recv().ok();
            }
        }
        if w.half.write_all(&buf).await.is_err() || unencodable {
            return;
        }
        buf.clear();
        if buf.capacity() > 4 * WRITE_BATCH {
            buf = bytes::BytesMut::with_capacity(64 * 1024);
        }
    }
}

pub(super) async fn read_loop(mut r: Reader, sh: Arc<Shared>) {
    // Runs until the connection ends (or the task is aborted: `Session::close_now`).
    let why = loop {
        match r.recv().await {
            Ok(pdu) => {
                handle(&sh, pdu);
                sh.progress.notify_waiters();
            }
            Err(Error::ConnectionClosed) => break Ending::ByTarget,
            Err(Error::Protocol(m)) => break Ending::Protocol(m),
            Err(e) => break Ending::Protocol(e.to_string()),
        }
    };
    end(&sh, why);
}

/// The session is over (`why`): every outstanding task fails, waiters wake, and
/// [`Event::Closed`] is the last event.
pub(super) fn end(sh: &Shared, why: Ending) {
    let tasks = {
        let mut st = sh.lock();
        st.closed = Some(why.clone());
        std::mem::take(&mut st.tasks)
    };
    for (_, t) in tasks {
        fail(t, why.error());
    }
    sh.window.notify_waiters();
    sh.progress.notify_waiters();
    sh.events.push(Event::Closed(why.text()));
}

/// Route one target PDU (under the state lock).
fn handle(sh: &Shared, pdu: Pdu) {
    let mut st = sh.lock();
    if st.c.observe(&pdu.bhs) {
        sh.window.notify_waiters();
    }
    match &pdu.bhs {
        Bhs::DataIn(d) => transfer::on_data_in(sh, &mut st, d, &pdu),
        Bhs::ScsiResponse(r) => transfer::on_response(sh, &mut st, r, &pdu),
        Bhs::R2t(r) => transfer::on_r2t(sh, &mut st, r, &pdu),
        Bhs::NopIn(n) => {
            if n.ttt != RESERVED_TAG && sh.queued.load(Ordering::Relaxed) >= MAX_QUEUED_FOR_PINGS {
                st.stats.violation(format!(
                    "NOP-In ping (TTT {:#x}) while {MAX_QUEUED_FOR_PINGS} PDUs wait to be sent: \
                     not answered",
                    n.ttt
                ));
            } else if n.ttt != RESERVED_TAG && !sh.answer_pings.load(Ordering::Relaxed) {
                st.stats.nop_ins_ignored += 1;
            } else if n.ttt != RESERVED_TAG {
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
                    tmf::abort_affected(&mut st, function, lun, referenced, cmd_sn);
                }
                let _ = tx.send(Ok(t.response));
            }
            other => unexpected(sh, &mut st, t.itt, other, pdu),
        },
        Bhs::TextResponse(t) => text::on_text(sh, &mut st, t, &pdu),
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
            st.stats.violation(format!(
                "unexpected {:?} in full feature phase",
                pdu.bhs.opcode()
            ));
            event(sh, Event::Unexpected(pdu));
        }
    }
}
