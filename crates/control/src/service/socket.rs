//! The control socket: who may connect, how requests are read and answered, progress lines
//! ([`crate::progress`]) while a request runs, and the client side.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Mutex;

use super::{Control, Request, Response, MAX_REQUEST};
use crate::persist;
use crate::progress::{Progress, ProgressMsg};
use crate::runtime::Runtime;

/// Bind the control socket at `path` (mode 0600), replacing a stale socket file but refusing
/// if another daemon answers on it.
pub async fn bind_socket(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(format!(
                "{}: another ironlun daemon is serving this state directory",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("{}: cannot remove stale socket: {e}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("{}: cannot bind: {e}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: chmod 0600: {e}", path.display()))?;
    Ok(listener)
}

/// Who may talk on the control socket, and how long a request may take to arrive.
///
/// The socket's mode (0600) is the first door; the peer's credentials (SO_PEERCRED) are the
/// second, so a socket file made reachable by mistake (a loosened mode or directory) still
/// serves only root and the daemon's own user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketPolicy {
    /// The daemon's effective uid: with uid 0 the only peers served.
    pub daemon_uid: u32,
    /// A request line must arrive, and its response be taken, within this time; otherwise
    /// the connection is closed (a stalled client holds nothing but its own descriptor).
    pub timeout: Duration,
}

impl SocketPolicy {
    /// How long a request may take by default.
    pub const TIMEOUT: Duration = Duration::from_secs(10);

    /// The policy of this process: its effective uid, [`SocketPolicy::TIMEOUT`].
    pub fn of_this_process() -> SocketPolicy {
        SocketPolicy {
            daemon_uid: persist::effective_uid(),
            timeout: SocketPolicy::TIMEOUT,
        }
    }

    /// May a peer with this uid use the socket? Root, and the daemon's own user.
    pub fn allows(&self, peer_uid: u32) -> bool {
        peer_uid == 0 || peer_uid == self.daemon_uid
    }
}

/// Serve the control socket until `listener` is dropped with the future (select it against a
/// shutdown signal).
pub async fn serve<R: Runtime + 'static>(
    listener: UnixListener,
    control: Arc<Mutex<Control<R>>>,
    policy: SocketPolicy,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let control = control.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, control, policy).await {
                        tracing::debug!("control connection: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("control socket accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Why a connection ends without another request being handled.
enum Ended {
    /// The client closed it between requests.
    Closed,
    /// The client's request was refused and the connection must close (the reason).
    Refuse(String),
}

/// Read one request line: no lock is held, so a slow client delays no one but itself.
async fn read_request<T: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut T,
    policy: &SocketPolicy,
) -> Result<Vec<u8>, Ended> {
    let mut line = Vec::new();
    let mut limited = rd.take(MAX_REQUEST + 1);
    let read = limited.read_until(b'\n', &mut line);
    match tokio::time::timeout(policy.timeout, read).await {
        Err(_) => Err(Ended::Refuse(format!(
            "no complete request line within {} s; connection closed",
            policy.timeout.as_secs_f64()
        ))),
        Ok(Err(_)) | Ok(Ok(0)) => Err(Ended::Closed),
        Ok(Ok(_)) if line.len() as u64 > MAX_REQUEST => Err(Ended::Refuse(format!(
            "request longer than {MAX_REQUEST} bytes refused; connection closed"
        ))),
        Ok(Ok(_)) => Ok(line),
    }
}

/// Write one response line, within the policy's time.
async fn send<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    resp: &Response,
    policy: &SocketPolicy,
) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(resp).unwrap_or_default();
    out.push(b'\n');
    match tokio::time::timeout(policy.timeout, wr.write_all(&out)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client took no response",
        )),
    }
}

/// Send a refusal and close the connection (anything more the client sent is dropped).
async fn refuse_and_close(stream: UnixStream, why: String, policy: &SocketPolicy) {
    let (_, mut wr) = stream.into_split();
    if send(&mut wr, &Response::refused(why), policy).await.is_ok() {
        let _ = wr.shutdown().await;
    }
}

async fn connection<R: Runtime + 'static>(
    stream: UnixStream,
    control: Arc<Mutex<Control<R>>>,
    policy: SocketPolicy,
) -> std::io::Result<()> {
    let cred = stream.peer_cred()?;
    let pid = cred
        .pid()
        .map_or_else(|| "?".to_string(), |p| p.to_string());
    let mut rd = BufReader::new(stream);
    if !policy.allows(cred.uid()) {
        tracing::warn!(
            "control socket: refused a client with uid {} (pid {pid}): only root and the daemon's user (uid {}) may use it",
            cred.uid(),
            policy.daemon_uid
        );
        let why = format!(
            "permission denied: uid {} may not use this daemon's control socket (only root and uid {})",
            cred.uid(),
            policy.daemon_uid
        );
        // Its request is read (within the same limits) and answered with the refusal: a
        // client writing after an early close would see a broken pipe, not the reason.
        let _ = read_request(&mut rd, &policy).await;
        refuse_and_close(rd.into_inner(), why, &policy).await;
        return Ok(());
    }
    let mut progress_on = false;
    loop {
        let line = match read_request(&mut rd, &policy).await {
            Ok(line) => line,
            Err(Ended::Closed) => return Ok(()),
            Err(Ended::Refuse(why)) => {
                tracing::debug!("control connection (pid {pid}): {why}");
                refuse_and_close(rd.into_inner(), why, &policy).await;
                return Ok(());
            }
        };
        let resp = match serde_json::from_slice::<Request>(&line) {
            Ok(Request::Progress { on }) => {
                progress_on = on;
                Response::ok(if on { "progress on" } else { "progress off" })
            }
            // The lock is taken only once the whole request is in.
            Ok(req) if progress_on => {
                handle_showing_progress(&control, req, rd.get_mut(), &policy).await
            }
            Ok(req) => control.lock().await.handle(req).await,
            Err(e) => Response::refused(format!("bad request: {e}")),
        };
        send(rd.get_mut(), &resp, &policy).await?;
    }
}

/// Handle `req`, writing its progress lines to `wr` while it runs. A client that stops
/// taking them loses the rest of them, never the request: the change goes on to its end.
async fn handle_showing_progress<R: Runtime + 'static, W: tokio::io::AsyncWrite + Unpin>(
    control: &Arc<Mutex<Control<R>>>,
    req: Request,
    wr: &mut W,
    policy: &SocketPolicy,
) -> Response {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ProgressMsg>();
    let progress = Progress::new(move |m| {
        let _ = tx.send(m);
    });
    let work = async {
        let mut c = control.lock().await;
        c.handle_with_progress(req, progress).await
    };
    tokio::pin!(work);
    let mut writing = true;
    let resp = loop {
        tokio::select! {
            biased;
            Some(msg) = rx.recv() => write_progress(wr, msg, policy, &mut writing).await,
            resp = &mut work => break resp,
        }
    };
    // What was reported just before the end (the last report among it) still goes first.
    while let Ok(msg) = rx.try_recv() {
        write_progress(wr, msg, policy, &mut writing).await;
    }
    resp
}

async fn write_progress<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    msg: ProgressMsg,
    policy: &SocketPolicy,
    writing: &mut bool,
) {
    if !*writing {
        return;
    }
    let mut out = serde_json::to_vec(&ServerLine::Progress { progress: msg }).unwrap_or_default();
    out.push(b'\n');
    let sent = tokio::time::timeout(policy.timeout, wr.write_all(&out)).await;
    *writing = matches!(sent, Ok(Ok(())));
}

/// A line from the daemon: a progress report or the response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerLine {
    Progress { progress: ProgressMsg },
    Response(Response),
}

/// Client side with progress: ask for progress lines, send `req`, pass each progress line
/// to `on_progress` and return the response. A daemon that does not know progress lines
/// refuses the first request and answers the second as [`request`] would.
pub async fn request_with_progress(
    socket: &Path,
    req: &Request,
    on_progress: &mut dyn FnMut(&ProgressMsg),
) -> std::io::Result<Response> {
    let stream = UnixStream::connect(socket).await?;
    let (rd, mut wr) = stream.into_split();
    let mut lines =
        serde_json::to_vec(&Request::Progress { on: true }).map_err(std::io::Error::other)?;
    lines.push(b'\n');
    lines.extend(serde_json::to_vec(req).map_err(std::io::Error::other)?);
    lines.push(b'\n');
    wr.write_all(&lines).await?;
    let mut rd = BufReader::new(rd);
    // The answer to the progress request first, then the request's lines.
    let _ = read_line::<Response>(&mut rd).await?;
    loop {
        match read_line::<ServerLine>(&mut rd).await? {
            ServerLine::Progress { progress } => on_progress(&progress),
            ServerLine::Response(resp) => return Ok(resp),
        }
    }
}

async fn read_line<T: serde::de::DeserializeOwned>(
    rd: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
) -> std::io::Result<T> {
    let mut buf = Vec::new();
    rd.read_until(b'\n', &mut buf).await?;
    if buf.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the daemon closed the connection",
        ));
    }
    serde_json::from_slice(&buf).map_err(std::io::Error::other)
}

/// Client side: send one request to the daemon at `socket` and wait for the response.
pub async fn request(socket: &Path, req: &Request) -> std::io::Result<Response> {
    let stream = UnixStream::connect(socket).await?;
    let (rd, mut wr) = stream.into_split();
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    wr.write_all(&line).await?;
    read_line(&mut BufReader::new(rd)).await
}
