//! The transmission phase (NetworkBlockDevice/nbd doc/proto.md, "Transmission", "Request
//! types", "Error values"): requests are read one after another and run concurrently up to a
//! bound; replies go out in completion order (the cookie pairs them), one whole reply at a time,
//! through one writer task that sends the replies ready together in one write. Memory per
//! connection is bounded by the in-flight request count and payload bytes: a request's permits
//! are held until its reply has been written.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::handshake::skip;
use crate::proto::{self, Command, Request};
use crate::BlockDev;

/// Per-connection bounds.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub max_in_flight: usize,
    pub max_in_flight_bytes: u32,
    /// How long writing a batch of replies, or reading a WRITE's payload, may take before the
    /// client is taken for one that stalled, and dropped.
    pub stall_timeout: std::time::Duration,
    /// Payload bytes in flight on all the listener's connections, and its size.
    pub total: Arc<Semaphore>,
    pub total_cap: u32,
    /// A connection's payload bytes in flight that need nothing of `total`.
    pub guaranteed: u32,
}

/// How the connection ended, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    Disconnect,
    Eof,
    Protocol(String),
}

/// A reply: success (with read data, and its offset), or an error value and message.
enum Outcome {
    Done(Option<(u64, Vec<u8>)>),
    Failed(u32, String),
}

/// Runs transmission until the client disconnects, leaves, or breaks the framing. In-flight
/// requests finish (and are answered if the client still listens) before this returns.
pub(crate) async fn run<R, W, D>(
    r: &mut R,
    w: W,
    dev: Arc<D>,
    structured: bool,
    limits: Limits,
    peer: &str,
) -> std::io::Result<End>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
    D: BlockDev,
{
    let (writer, replies) = mpsc::unbounded_channel();
    let (stall_tx, mut stall_rx) = oneshot::channel();
    let out_task = tokio::spawn(write_replies(
        w,
        replies,
        limits.stall_timeout,
        stall_tx,
        peer.to_owned(),
    ));
    let max_in_flight = limits.max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let byte_cap = limits.max_in_flight_bytes.max(1);
    let bytes = Arc::new(Semaphore::new(byte_cap as usize));
    let size = dev.size();
    let bs = u64::from(dev.block_size().max(1));
    let max_req = dev.max_request().max(dev.block_size().max(1));

    let main = async {
        let end = loop {
            let mut hdr = [0u8; proto::REQUEST_LEN];
            match r.read_exact(&mut hdr).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break End::Eof,
                Err(e) => return finish(&slots, max_in_flight, writer, out_task, Err(e)).await,
            }
            let req = match Request::decode(&hdr) {
                Ok(req) => req,
                Err(e) => break End::Protocol(e.to_string()),
            };
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break End::Eof;
            };
            let check = |write: bool| check_range(&req, size, bs, write);
            match req.command {
                Command::Disc => break End::Disconnect,
                Command::Read => {
                    let err = if req.length > max_req {
                        Some((
                            proto::EINVAL,
                            "READ longer than the maximum payload".to_owned(),
                        ))
                    } else {
                        check(false).err()
                    };
                    if let Some((errno, msg)) = err {
                        refuse(&writer, structured, &req, errno, msg);
                        continue;
                    }
                    let Some(held) = payload(slot, &bytes, byte_cap, &limits, req.length).await
                    else {
                        break End::Eof;
                    };
                    let (dev, writer) = (dev.clone(), writer.clone());
                    tokio::spawn(async move {
                        let out = if req.length == 0 {
                            Outcome::Done(Some((req.offset, Vec::new())))
                        } else {
                            match dev.read(req.offset, req.length).await {
                                Ok(data) if data.len() == req.length as usize => {
                                    Outcome::Done(Some((req.offset, data)))
                                }
                                Ok(_) => Outcome::Failed(proto::EIO, "short read".to_owned()),
                                Err(e) => Outcome::Failed(proto::errno_of(&e), e.to_string()),
                            }
                        };
                        send(&writer, structured, &req, out, held);
                    });
                }
                Command::Write => {
                    if req.length > max_req {
                        // The payload follows regardless; drop it unless it is absurd.
                        if req.length > proto::DOS_PAYLOAD {
                            break End::Protocol(format!("WRITE of {} bytes", req.length));
                        }
                        if let Err(e) = skip(&mut *r, u64::from(req.length)).await {
                            return finish(&slots, max_in_flight, writer, out_task, Err(e)).await;
                        }
                        let msg = "WRITE longer than the maximum payload".to_owned();
                        refuse(&writer, structured, &req, proto::EINVAL, msg);
                        continue;
                    }
                    let Some(held) = payload(slot, &bytes, byte_cap, &limits, req.length).await
                    else {
                        break End::Eof;
                    };
                    let mut data = vec![0u8; req.length as usize];
                    let read = tokio::time::timeout(limits.stall_timeout, r.read_exact(&mut data));
                    let Ok(read) = read.await else {
                        break End::Protocol(format!(
                            "a WRITE's payload did not arrive within {} s",
                            limits.stall_timeout.as_secs_f64()
                        ));
                    };
                    match read {
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            break End::Protocol("client left in the middle of a WRITE".to_owned())
                        }
                        Err(e) => {
                            return finish(&slots, max_in_flight, writer, out_task, Err(e)).await
                        }
                    }
                    if let Err((errno, msg)) = check(true) {
                        refuse(&writer, structured, &req, errno, msg);
                        continue;
                    }
                    let (dev, writer) = (dev.clone(), writer.clone());
                    tokio::spawn(async move {
                        let out = if data.is_empty() {
                            Outcome::Done(None)
                        } else {
                            done(dev.write(req.offset, data, req.fua()).await)
                        };
                        send(&writer, structured, &req, out, held);
                    });
                }
                Command::Flush => {
                    let (dev, writer) = (dev.clone(), writer.clone());
                    tokio::spawn(async move {
                        let out = done(dev.flush().await);
                        send(&writer, structured, &req, out, [Some(slot), None, None]);
                    });
                }
                Command::Trim | Command::WriteZeroes => {
                    let trim = req.command == Command::Trim;
                    let offered = if trim {
                        dev.can_trim()
                    } else {
                        dev.can_write_zeroes()
                    };
                    let err = if !offered {
                        Some((proto::EINVAL, format!("{} not offered", req.command.name())))
                    } else {
                        check(!trim).err()
                    };
                    if let Some((errno, msg)) = err {
                        refuse(&writer, structured, &req, errno, msg);
                        continue;
                    }
                    let (dev, writer) = (dev.clone(), writer.clone());
                    tokio::spawn(async move {
                        let out = done(ranged(&*dev, &req, max_req, trim).await);
                        send(&writer, structured, &req, out, [Some(slot), None, None]);
                    });
                }
                Command::Other(c) => {
                    let msg = format!("unknown command {c}");
                    refuse(&writer, structured, &req, proto::EINVAL, msg);
                }
            }
        };
        finish(&slots, max_in_flight, writer, out_task, Ok(end)).await
    };
    tokio::select! {
        end = main => end,
        Ok(()) = &mut stall_rx => Ok(End::Protocol(format!(
            "no reply could be written for {} s: the client stopped reading",
            limits.stall_timeout.as_secs_f64()
        ))),
    }
}

/// Waits for the in-flight requests and for their replies to be written (each request holds
/// an in-flight slot until then), then closes the writing side.
async fn finish<W: AsyncWrite + Unpin>(
    slots: &Semaphore,
    max_in_flight: usize,
    writer: Replies,
    out_task: tokio::task::JoinHandle<W>,
    end: std::io::Result<End>,
) -> std::io::Result<End> {
    let _all = slots
        .acquire_many(u32::try_from(max_in_flight).unwrap_or(u32::MAX))
        .await;
    drop(writer);
    if let Ok(mut w) = out_task.await {
        let _ = w.shutdown().await;
    }
    end
}

/// TRIM or WRITE_ZEROES over a range longer than the device takes at once, in pieces.
async fn ranged<D: BlockDev>(
    dev: &D,
    req: &Request,
    max_req: u32,
    trim: bool,
) -> std::io::Result<()> {
    let mut off = req.offset;
    let mut left = req.length;
    while left > 0 {
        let n = left.min(max_req);
        if trim {
            dev.trim(off, n).await?;
        } else {
            dev.write_zeroes(off, n, req.fua()).await?;
        }
        off += u64::from(n);
        left -= n;
    }
    Ok(())
}

fn done(r: std::io::Result<()>) -> Outcome {
    match r {
        Ok(()) => Outcome::Done(None),
        Err(e) => Outcome::Failed(proto::errno_of(&e), e.to_string()),
    }
}

/// Alignment and bounds ("Error values": EINVAL for a misaligned request and for a read or
/// trim past the end, ENOSPC for a write past the end).
fn check_range(req: &Request, size: u64, bs: u64, write: bool) -> Result<(), (u32, String)> {
    let name = req.command.name();
    if !req.offset.is_multiple_of(bs) || !u64::from(req.length).is_multiple_of(bs) {
        let msg = format!("{name} not aligned to the {bs}-byte block size");
        return Err((proto::EINVAL, msg));
    }
    let end = req.offset.checked_add(u64::from(req.length));
    if end.is_none_or(|end| end > size) {
        let msg = format!(
            "{name} of {} bytes at {} is beyond the end ({size} bytes)",
            req.length, req.offset
        );
        return Err((if write { proto::ENOSPC } else { proto::EINVAL }, msg));
    }
    Ok(())
}

/// Queues an error reply for a request that is not run.
fn refuse(writer: &Replies, structured: bool, req: &Request, errno: u32, msg: String) {
    send(writer, structured, req, Outcome::Failed(errno, msg), NONE);
}

/// A request's permits (in-flight slot, payload bytes of the connection and of the listener),
/// released once its reply is written.
type Held = [Option<OwnedSemaphorePermit>; 3];
const NONE: Held = [None, None, None];

/// A request with a payload holds its in-flight slot and permits for the payload: this
/// connection's bytes, and the listener's unless the connection's bytes in flight, this
/// request's included, are within its guaranteed share. (Requests admitted on the share were
/// each admitted with at most the share in flight, so together they never exceed it.)
async fn payload(
    slot: OwnedSemaphorePermit,
    conn: &Arc<Semaphore>,
    conn_cap: u32,
    limits: &Limits,
    len: u32,
) -> Option<Held> {
    let want = len.clamp(1, conn_cap);
    let p = conn.clone().acquire_many_owned(want).await.ok()?;
    let in_flight = (conn_cap as usize).saturating_sub(conn.available_permits());
    if in_flight <= limits.guaranteed as usize {
        return Some([Some(slot), Some(p), None]);
    }
    let t = limits
        .total
        .clone()
        .acquire_many_owned(want.min(limits.total_cap))
        .await
        .ok()?;
    Some([Some(slot), Some(p), Some(t)])
}

/// One encoded reply: its header (or whole error chunk), its read data, its permits, and
/// for a failed request what failed (for the log).
struct Reply {
    head: Vec<u8>,
    data: Vec<u8>,
    _held: Held,
    what: &'static str,
    failure: Option<String>,
}

type Replies = mpsc::UnboundedSender<Reply>;

/// Queues one whole reply for the writer task.
fn send(writer: &Replies, structured: bool, req: &Request, out: Outcome, held: Held) {
    let failure = match &out {
        Outcome::Failed(errno, msg) => Some(format!(
            "{} of {} bytes at {}: error {errno}: {msg}",
            req.command.name(),
            req.length,
            req.offset
        )),
        Outcome::Done(_) => None,
    };
    let (head, data) = match (out, structured) {
        (Outcome::Done(Some((offset, data))), true) if !data.is_empty() => (
            proto::offset_data_header(req.cookie, offset, data.len() as u32).to_vec(),
            data,
        ),
        (Outcome::Done(_), true) if req.command == Command::Read => {
            let flags = proto::REPLY_FLAG_DONE;
            let hdr = proto::chunk_header(flags, proto::REPLY_TYPE_NONE, req.cookie, 0);
            (hdr.to_vec(), Vec::new())
        }
        (Outcome::Done(data), _) => (
            proto::simple_reply(req.cookie, 0).to_vec(),
            data.map(|(_, d)| d).unwrap_or_default(),
        ),
        (Outcome::Failed(errno, msg), true) => {
            (proto::error_chunk(req.cookie, errno, &msg), Vec::new())
        }
        (Outcome::Failed(errno, _), false) => {
            (proto::simple_reply(req.cookie, errno).to_vec(), Vec::new())
        }
    };
    let reply = Reply {
        head,
        data,
        _held: held,
        what: req.command.name(),
        failure,
    };
    // The writer task ends only after every sender is gone.
    let _ = writer.send(reply);
}

/// Writes replies in the order they were queued; the ones ready together are flushed with
/// one write. A client that stopped listening is not an error of the server: after a write
/// error later replies are dropped (their permits released) until the connection ends; a batch
/// that cannot be written within `stall` ends the connection (`stalled` tells the reader).
async fn write_replies<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<Reply>,
    stall: std::time::Duration,
    stalled: oneshot::Sender<()>,
    peer: String,
) -> W {
    let mut broken = false;
    let mut failed: u64 = 0;
    while let Some(first) = rx.recv().await {
        // Failed requests are logged at the 1st, 2nd, 4th, 8th… of the connection, so that a
        // storm of them does not flood the log.
        let mut log = |r: &Reply| {
            if let Some(f) = &r.failure {
                failed += 1;
                if failed.is_power_of_two() {
                    tracing::warn!("nbd: {peer}: {f} ({failed} failed so far)");
                }
            }
        };
        log(&first);
        if broken {
            continue;
        }
        let batch = async {
            let mut next = Some(first);
            while let Some(reply) = next.take() {
                let r = async {
                    w.write_all(&reply.head).await?;
                    w.write_all(&reply.data).await
                };
                if let Err(e) = r.await {
                    tracing::debug!("nbd: reply to {} not sent: {e}", reply.what);
                    return Err(e);
                }
                drop(reply);
                next = rx.try_recv().ok();
                if let Some(r) = &next {
                    log(r);
                }
            }
            w.flush().await
        };
        match tokio::time::timeout(stall, batch).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!("nbd: replies not sent: {e}");
                broken = true;
            }
            Err(_) => {
                let _ = stalled.send(());
                return w;
            }
        }
    }
    w
}
