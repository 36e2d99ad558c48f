//! Text requests in the full feature phase (RFC 7143 §11.10): requests gathered over
//! continuation PDUs (C bit, §11.10.2), long responses sent in parts the initiator asks for
//! with the TTT we gave (§11.10.4), SendTargets (Appendix C) and the one key an initiator may
//! renegotiate here, MaxRecvDataSegmentLength (§13.12).

use std::sync::Arc;

use bytes::Bytes;
use ironlun_iscsi::negotiation::{self, Answer, Usage};
use ironlun_iscsi::pdu::{self, reject_reason};
use ironlun_iscsi::text::{self, TextCollector};
use ironlun_iscsi::{Bhs, Pdu, TextResponse, RESERVED_TAG};

use super::wire::{Fatal, Sn};
use super::Conn;

/// Bound on a text request gathered over continuation PDUs.
const MAX_TEXT_LEN: usize = 64 * 1024;

/// A text exchange in progress.
pub(super) struct TextState {
    collector: TextCollector,
    /// TTT we gave for the initiator's continuation of a long request.
    request_ttt: Option<u32>,
    /// The rest of a long response, with the TTT the initiator echoes to get it.
    pending: Option<(u32, Bytes)>,
}

impl TextState {
    pub(super) fn new() -> TextState {
        TextState {
            collector: TextCollector::new(MAX_TEXT_LEN),
            request_ttt: None,
            pending: None,
        }
    }
}

pub(super) fn text_request(
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
            conn.wire.reject(reject_reason::INVALID_PDU_FIELD, header);
            return Ok(());
        }
    } else {
        // A new request resets any half-done exchange (§11.10.4).
        st.pending = None;
        st.collector.clear();
    }
    if st.collector.push(&data).is_err() {
        drop(st);
        conn.wire.reject(reject_reason::INVALID_PDU_FIELD, header);
        return Ok(());
    }
    if t.cont {
        let ttt = conn.wire.alloc_ttt();
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
                c.wire.send(
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
        conn.wire.reject(reject_reason::INVALID_PDU_FIELD, header);
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
    let max = conn.wire.max_xmit();
    let (now, rest) = if body.len() > max {
        (body.slice(..max), Some(body.slice(max..)))
    } else {
        (body, None)
    };
    let ttt = match rest {
        Some(r) => {
            let ttt = conn.wire.alloc_ttt();
            conn.text.lock().pending = Some((ttt, r));
            ttt
        }
        None => RESERVED_TAG,
    };
    conn.wire.send(
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
                        conn.wire.set_max_xmit(u32::try_from(n).unwrap_or(u32::MAX));
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
