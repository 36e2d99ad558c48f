//! The connection's framing (RFC 7143 §3.2.4, §11): a reader loop that decodes PDUs and hands
//! each to the dispatcher, a writer task that stamps StatSN / ExpCmdSN / MaxCmdSN in
//! transmission order (§4.2.2.1-2) and batches writes, and the keep-alive: a NOP-In
//! ping after an idle interval, the connection dropped when no NOP-Out answers it (§11.18,
//! §11.19). Knows nothing of what the PDUs mean.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ironlun_iscsi::pdu::{self, reject_reason};
use ironlun_iscsi::{Bhs, Decoder, Digests, NopIn, Pdu, PduError, Reject, BHS_LEN, RESERVED_TAG};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, Notify};
use tracing::warn;

use crate::session::Session;
use crate::stats::Counters;

/// How the writer fills StatSN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sn {
    /// A status-bearing PDU: takes the next StatSN.
    Advance,
    /// Carries the next StatSN without taking it (R2T, NOP-In pings).
    Peek,
    /// StatSN is reserved (Data-In without status).
    Keep,
}

pub(super) enum Out {
    Pdu(Pdu, Sn),
    /// Flush what is queued, then close the connection.
    Close,
}

/// A fatal protocol error: the connection must close.
pub(super) struct Fatal;

/// The sending side of a connection and its segment sizes.
pub(super) struct Wire {
    tx: mpsc::UnboundedSender<Out>,
    stop_notify: Notify,
    stopped: AtomicBool,
    next_ttt: AtomicU32,
    /// The initiator's MaxRecvDataSegmentLength (capped by ours to send): Data-In size.
    max_xmit: AtomicU32,
    /// Our declared MaxRecvDataSegmentLength.
    max_recv: u32,
    /// Never send larger segments than this (LIO MaxXmitDataSegmentLength).
    xmit_cap: u32,
    /// The fabric's digest error counters.
    counters: Arc<Counters>,
}

impl Wire {
    /// A wire and the queue its writer drains.
    pub(super) fn new(
        max_xmit: u32,
        max_recv: u32,
        xmit_cap: u32,
        counters: Arc<Counters>,
    ) -> (Wire, mpsc::UnboundedReceiver<Out>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let wire = Wire {
            tx,
            stop_notify: Notify::new(),
            stopped: AtomicBool::new(false),
            next_ttt: AtomicU32::new(1),
            max_xmit: AtomicU32::new(max_xmit),
            max_recv,
            xmit_cap,
            counters,
        };
        (wire, rx)
    }

    /// Ask the connection to close (logout elsewhere, reinstatement, shutdown).
    pub(super) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.stop_notify.notify_one();
        let _ = self.tx.send(Out::Close);
    }

    pub(super) fn send(&self, pdu: Pdu, sn: Sn) {
        // A closed writer means the connection is going away; the PDU has nowhere to go.
        let _ = self.tx.send(Out::Pdu(pdu, sn));
    }

    /// Flush what is queued, then close (after a Logout Response).
    pub(super) fn close_after_queued(&self) {
        let _ = self.tx.send(Out::Close);
    }

    /// A Target Transfer Tag not in use (never the reserved 0xffffffff).
    pub(super) fn alloc_ttt(&self) -> u32 {
        loop {
            let t = self.next_ttt.fetch_add(1, Ordering::Relaxed);
            if t != RESERVED_TAG {
                return t;
            }
        }
    }

    /// Reject a PDU (§11.17), echoing its header.
    pub(super) fn reject(&self, reason: u8, header: &[u8]) {
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

    /// The largest data segment we may send.
    pub(super) fn max_xmit(&self) -> usize {
        self.max_xmit.load(Ordering::Relaxed).max(512) as usize
    }

    /// The initiator declared a new MaxRecvDataSegmentLength (§13.12).
    pub(super) fn set_max_xmit(&self, n: u32) {
        self.max_xmit.store(n.min(self.xmit_cap), Ordering::Relaxed);
    }
}

/// A NOP-In (§11.19): a ping (ITT reserved, a TTT to echo) or the answer to a NOP-Out.
pub(super) fn nop_in(lun: [u8; 8], itt: u32, ttt: u32) -> Bhs {
    Bhs::NopIn(NopIn {
        lun,
        itt,
        ttt,
        stat_sn: 0,
        exp_cmd_sn: 0,
        max_cmd_sn: 0,
    })
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

/// Write what the connection queues, in order, until it closes.
pub(super) async fn writer(
    wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
    wire: Arc<Wire>,
    session: Arc<Session>,
    mut stat_sn: u32,
    digests: Digests,
) {
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
    wire.stopped.store(true, Ordering::Release);
    wire.stop_notify.notify_one();
}

/// Read PDUs and hand each, with its header bytes (for a Reject), to `dispatch` until the
/// connection closes, `dispatch` fails, or the keep-alive gives up on the initiator.
pub(super) async fn reader(
    wire: &Wire,
    session: &Session,
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
    digests: Digests,
    nopin: crate::NopIn,
    mut dispatch: impl FnMut(Pdu, &[u8]) -> Result<(), Fatal>,
) {
    let decoder = Decoder {
        digests,
        max_data: wire.max_recv,
    };
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
                    if dispatch(p, &header).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(PduError::DataDigest { header }) => {
                    wire.counters.data_digest_error();
                    warn!("data digest error; PDU rejected");
                    wire.reject(reject_reason::DATA_DIGEST_ERROR, &header[..]);
                }
                Err(e) => {
                    if matches!(e, PduError::HeaderDigest) {
                        wire.counters.header_digest_error();
                    }
                    warn!(error = %e, "closing connection");
                    return;
                }
            }
        }
        if wire.stopped.load(Ordering::Acquire) {
            return;
        }
        if let Ok(pdu::FrameCheck::Incomplete(n)) = pdu::check_frame(&buf, digests, wire.max_recv) {
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
            _ = wire.stop_notify.notified() => return,
            _ = tokio::time::sleep_until(deadline) => {
                if nopin == crate::NopIn::Off {
                    continue;
                }
                if ping_sent.is_some() {
                    warn!(initiator = %session.initiator, "no answer to NOP-In; closing connection");
                    return;
                }
                let ping = nop_in([0; 8], RESERVED_TAG, wire.alloc_ttt());
                wire.send(Pdu::new(ping), Sn::Peek);
                ping_sent = Some(tokio::time::Instant::now());
            }
        }
    }
}
