//! `ironlun host serve-nbd` over two paths whose targets misbehave (issue 10, acceptance
//! point 4, bad targets). Two scripted fakes (tests/host_fake) are the two paths to one LU:
//! an 8 MiB store they share, one NAA, path A in target port group 1 (Active/Optimized,
//! preferred), path B in group 2 (Active/Non-optimized), so I/O goes to A alone while A is
//! usable (SPC-4 §5.16.2; dm-multipath `group_by_prio`). NBD clients speak to the real binary
//! (the newstyle fixed handshake with structured replies, so a failed request brings its
//! message: NetworkBlockDevice/nbd doc/proto.md, "Structured reply chunk message"), writing a
//! pattern and reading it back, while path A turns bad in the middle of their I/O:
//!
//! * it never answers (RFC 7143 §11.3: no SCSI Response): I/O goes on through B once the
//!   command's timeout has run out, and `nbd-status` names why A failed;
//! * it closes the connection, sends bytes that are no PDU, a Reject (§11.17), a response
//!   under a tag the initiator never used (§11.4), Data-In beyond the expected length
//!   (§11.7.7): no client sees an error;
//! * both paths answer every command with UNIT ATTENTION (SAM-5 §5.14), or BUSY (§5.3.1),
//!   forever: clients get EIO with the reason within a bounded time, other clients and the
//!   status socket are served meanwhile, and I/O works again once the targets behave; one
//!   BUSY alone is retried, as Linux's SCSI midlayer does, not failed;
//! * both paths stop answering, then refuse every login (§11.13.5): after `--no-path-retry`
//!   clients get EIO naming it, new clients still connect and get an error, not a hang; when
//!   one target is back, I/O resumes, without a restart; serve-nbd's own log names such a
//!   failure too;
//! * one path floods the initiator with unsolicited PDUs (Asynchronous Messages §11.9, NOP-In
//!   pings §11.19, Rejects, PDUs for unknown tags): serve-nbd's resident memory stays bounded
//!   and I/O goes on.
//!
//! Every written block is also checked in the store the fakes share: what the clients read
//! back is what reached the LU. Each test prints what it measured (pauses, RSS).
//!
//! Ports: 3900-3949 (the NBD listeners); the fakes take free ports on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod host_fake;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use host_fake::*;
use ironlun_initiator::iscsi::pdu::{login_status, reject_reason};
use ironlun_nbd::proto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_ironlun");
/// The LU both fakes serve.
const STORE_BYTES: usize = 8 << 20;
/// The export's name.
const EXPORT: &str = "ironlun";
/// Bytes per client request.
const IO: usize = 4096;
/// A client request still unanswered after this long is a hang, not a slow answer.
const HANG: Duration = Duration::from_secs(30);
/// SCSI status BUSY (SAM-5 §5.3.1).
const BUSY: u8 = 0x08;

// ---------------------------------------------------------------------------------------
// A raw NBD client (newstyle fixed handshake, structured replies)
// ---------------------------------------------------------------------------------------

/// Why a request failed: the NBD error value and the server's message, or the connection.
#[derive(Debug, Clone)]
struct Failed {
    errno: Option<u32>,
    msg: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.errno {
            Some(e) => write!(f, "errno {e}: {}", self.msg),
            None => write!(f, "connection: {}", self.msg),
        }
    }
}

fn io_failed(e: std::io::Error) -> Failed {
    Failed {
        errno: None,
        msg: e.to_string(),
    }
}

struct Nbd {
    s: TcpStream,
    size: u64,
    cookie: u64,
}

impl Nbd {
    /// Connect, ask for structured replies, then NBD_OPT_GO for the export.
    async fn connect(addr: SocketAddr) -> Result<Nbd, Failed> {
        let mut s = TcpStream::connect(addr).await.map_err(io_failed)?;
        let mut greeting = [0u8; 18];
        s.read_exact(&mut greeting).await.map_err(io_failed)?;
        assert_eq!(&greeting[0..8], &proto::NBDMAGIC.to_be_bytes());
        assert_eq!(&greeting[8..16], &proto::IHAVEOPT.to_be_bytes());
        let flags = proto::FLAG_C_FIXED_NEWSTYLE | proto::FLAG_C_NO_ZEROES;
        s.write_all(&flags.to_be_bytes()).await.map_err(io_failed)?;
        Nbd::option(&mut s, proto::OPT_STRUCTURED_REPLY, &[]).await?;
        let (kind, _) = Nbd::option_reply(&mut s).await?;
        assert_eq!(kind, proto::REP_ACK, "structured replies refused");
        let mut go = (EXPORT.len() as u32).to_be_bytes().to_vec();
        go.extend_from_slice(EXPORT.as_bytes());
        go.extend_from_slice(&0u16.to_be_bytes());
        Nbd::option(&mut s, proto::OPT_GO, &go).await?;
        let mut size = 0;
        loop {
            let (kind, data) = Nbd::option_reply(&mut s).await?;
            match kind {
                proto::REP_ACK => break,
                proto::REP_INFO if data.len() >= 10 && data[0..2] == [0, 0] => {
                    size = u64::from_be_bytes(data[2..10].try_into().unwrap());
                }
                proto::REP_INFO => {}
                other => {
                    return Err(Failed {
                        errno: None,
                        msg: format!("NBD_OPT_GO answered {other:#x}"),
                    })
                }
            }
        }
        Ok(Nbd { s, size, cookie: 0 })
    }

    async fn option(s: &mut TcpStream, option: u32, data: &[u8]) -> Result<(), Failed> {
        let mut b = proto::IHAVEOPT.to_be_bytes().to_vec();
        b.extend_from_slice(&option.to_be_bytes());
        b.extend_from_slice(&(data.len() as u32).to_be_bytes());
        b.extend_from_slice(data);
        s.write_all(&b).await.map_err(io_failed)
    }

    async fn option_reply(s: &mut TcpStream) -> Result<(u32, Vec<u8>), Failed> {
        let mut h = [0u8; 20];
        s.read_exact(&mut h).await.map_err(io_failed)?;
        assert_eq!(&h[0..8], &proto::OPT_REPLY_MAGIC.to_be_bytes());
        let kind = u32::from_be_bytes(h[12..16].try_into().unwrap());
        let len = u32::from_be_bytes(h[16..20].try_into().unwrap()) as usize;
        let mut data = vec![0u8; len];
        s.read_exact(&mut data).await.map_err(io_failed)?;
        Ok((kind, data))
    }

    /// One request and its reply (simple, or structured chunks up to the one marked done);
    /// for a read, the data.
    async fn request(
        &mut self,
        command: u16,
        offset: u64,
        len: u32,
        payload: &[u8],
    ) -> Result<Vec<u8>, Failed> {
        self.cookie += 1;
        let cookie = self.cookie;
        let mut b = proto::encode_request(0, command, cookie, offset, len);
        b.extend_from_slice(payload);
        self.s.write_all(&b).await.map_err(io_failed)?;
        let mut out = vec![0u8; if command == 0 { len as usize } else { 0 }];
        loop {
            let mut magic = [0u8; 4];
            self.s.read_exact(&mut magic).await.map_err(io_failed)?;
            let magic = u32::from_be_bytes(magic);
            if magic == proto::SIMPLE_REPLY_MAGIC {
                let mut h = [0u8; 12];
                self.s.read_exact(&mut h).await.map_err(io_failed)?;
                let errno = u32::from_be_bytes(h[0..4].try_into().unwrap());
                assert_eq!(u64::from_be_bytes(h[4..12].try_into().unwrap()), cookie);
                if errno != 0 {
                    let msg = "(simple reply)".to_string();
                    return Err(Failed {
                        errno: Some(errno),
                        msg,
                    });
                }
                if command == 0 {
                    self.s.read_exact(&mut out).await.map_err(io_failed)?;
                }
                return Ok(out);
            }
            assert_eq!(magic, proto::STRUCTURED_REPLY_MAGIC, "reply magic");
            let mut h = [0u8; 16];
            self.s.read_exact(&mut h).await.map_err(io_failed)?;
            let flags = u16::from_be_bytes([h[0], h[1]]);
            let kind = u16::from_be_bytes([h[2], h[3]]);
            assert_eq!(u64::from_be_bytes(h[4..12].try_into().unwrap()), cookie);
            let len = u32::from_be_bytes(h[12..16].try_into().unwrap()) as usize;
            let mut p = vec![0u8; len];
            self.s.read_exact(&mut p).await.map_err(io_failed)?;
            match kind {
                proto::REPLY_TYPE_OFFSET_DATA => {
                    let at = u64::from_be_bytes(p[0..8].try_into().unwrap()) - offset;
                    let at = at as usize;
                    out[at..at + p.len() - 8].copy_from_slice(&p[8..]);
                }
                proto::REPLY_TYPE_ERROR => {
                    let errno = u32::from_be_bytes(p[0..4].try_into().unwrap());
                    let n = usize::from(u16::from_be_bytes([p[4], p[5]]));
                    let msg = String::from_utf8_lossy(&p[6..6 + n]).into_owned();
                    return Err(Failed {
                        errno: Some(errno),
                        msg,
                    });
                }
                _ => {}
            }
            if flags & proto::REPLY_FLAG_DONE != 0 {
                return Ok(out);
            }
        }
    }

    async fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, Failed> {
        self.request(0, offset, len as u32, &[]).await
    }

    async fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Failed> {
        self.request(1, offset, data.len() as u32, data)
            .await
            .map(drop)
    }

    async fn flush(&mut self) -> Result<(), Failed> {
        self.request(3, 0, 0, &[]).await.map(drop)
    }
}

/// `f` must finish within [`HANG`].
async fn no_hang<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {} s (a hang)", HANG.as_secs()))
}

/// A write of one request's bytes, then whether it failed with EIO, its message and how long
/// it took.
async fn one_write(addr: SocketAddr, offset: u64) -> (Result<(), Failed>, Duration) {
    let t = Instant::now();
    let r = no_hang("a write", async {
        let mut c = Nbd::connect(addr).await?;
        c.write(offset, &pattern(9, offset, 1)).await
    })
    .await;
    (r, t.elapsed())
}

#[track_caller]
fn eio(r: &Result<(), Failed>, words: &[&str]) -> String {
    let e = match r {
        Ok(()) => panic!("the request succeeded; EIO was due"),
        Err(e) => e,
    };
    assert_eq!(e.errno, Some(proto::EIO), "{e}");
    let low = e.msg.to_lowercase();
    for w in words {
        assert!(low.contains(&w.to_lowercase()), "'{w}' not in: {e}");
    }
    e.msg.clone()
}

/// The bytes client `w` writes at `offset` in its generation `g`.
fn pattern(w: u64, offset: u64, g: u64) -> Vec<u8> {
    let mut v = vec![0u8; IO];
    for (i, b) in v.iter_mut().enumerate() {
        *b = (i as u8) ^ (w as u8).wrapping_mul(77) ^ (g as u8).wrapping_mul(31);
    }
    v[0..8].copy_from_slice(&offset.to_be_bytes());
    v[8..16].copy_from_slice(&g.to_be_bytes());
    v[16..24].copy_from_slice(&w.to_be_bytes());
    v
}

// ---------------------------------------------------------------------------------------
// The load: clients writing a pattern and reading it back without pause
// ---------------------------------------------------------------------------------------

/// What the clients of a [`Load`] share.
#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    /// The longest write + read pair since the last [`Load::mark`] (µs): the I/O pause.
    worst_us: AtomicU64,
    errors: Mutex<Vec<String>>,
    /// The last data written at each offset, by every client.
    last: Mutex<HashMap<u64, Vec<u8>>>,
}

struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `clients` clients, each on its own 64 KiB of the disk (from `base`).
    async fn start(addr: SocketAddr, clients: u64, base: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let mut tasks = Vec::new();
        for w in 0..clients {
            let mut c = Nbd::connect(addr).await.unwrap();
            assert_eq!(c.size, STORE_BYTES as u64);
            let (stop, tally) = (stop.clone(), tally.clone());
            tasks.push(tokio::spawn(async move {
                let mut g = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    g += 1;
                    let offset = base + w * 65536 + (g % 16) * IO as u64;
                    let data = pattern(w, offset, g);
                    let t = Instant::now();
                    let r = no_hang("a client request", async {
                        c.write(offset, &data).await?;
                        let back = c.read(offset, IO).await?;
                        if g.is_multiple_of(5) {
                            c.flush().await?;
                        }
                        Ok::<_, Failed>(back)
                    })
                    .await;
                    let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                    tally.worst_us.fetch_max(us, Ordering::Relaxed);
                    match r {
                        Ok(back) if back == data => {
                            tally.last.lock().unwrap().insert(offset, data);
                            tally.ops.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {
                            let e = format!("client {w}: offset {offset} read back other data");
                            tally.errors.lock().unwrap().push(e);
                        }
                        Err(e) => {
                            tally
                                .errors
                                .lock()
                                .unwrap()
                                .push(format!("client {w}: {e}"));
                            // A broken connection is not retried: one error is enough.
                            if e.errno.is_none() {
                                return;
                            }
                        }
                    }
                }
            }));
        }
        Load { stop, tally, tasks }
    }

    fn ops(&self) -> u64 {
        self.tally.ops.load(Ordering::Relaxed)
    }

    /// The longest pair since the last mark (ms), and a new mark.
    fn mark(&self) -> u64 {
        self.tally.worst_us.swap(0, Ordering::Relaxed) / 1000
    }

    fn errors(&self) -> Vec<String> {
        self.tally.errors.lock().unwrap().clone()
    }

    /// Wait until `n` more pairs completed (within `limit`).
    async fn advance(&self, n: u64, limit: Duration, what: &str) {
        let start = self.ops();
        let deadline = Instant::now() + limit;
        while self.ops() < start + n {
            assert!(
                Instant::now() < deadline,
                "{what}: only {} I/Os in {} s; errors: {:?}",
                self.ops() - start,
                limit.as_secs(),
                self.errors()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop the clients; every block they last wrote must be in the store as written.
    async fn stop(self, store: &Store) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let last = self.tally.last.lock().unwrap();
        for (offset, data) in last.iter() {
            let lba = offset / Store::BLOCK as u64;
            let got = store.read(lba, (IO / Store::BLOCK) as u32).unwrap();
            assert!(
                &got == data,
                "the store at {offset} is not what was written"
            );
        }
        self.tally.ops.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------
// The rig: two fakes, one store, the real serve-nbd
// ---------------------------------------------------------------------------------------

/// The fake of path `rel_port` (group `rel_port`) to the LU in `store`.
fn path_script(store: &Store, rel_port: u16) -> Script {
    Script {
        lu: Lu {
            rel_port,
            group: rel_port,
            store: Some(store.clone()),
            ..Lu::default()
        },
        ..Script::default()
    }
}

/// READ and WRITE get `bad`, everything else a normal answer (the path logs in and answers
/// the checker, the ALUA re-reads and a reconnect's INQUIRYs).
fn on_io(bad: Reply) -> impl Fn(&Cmd) -> Reply + Send + Sync + 'static {
    move |c| match c.kind {
        Kind::Read | Kind::Write => bad.clone(),
        _ => Reply::Normal,
    }
}

/// The options of one rig.
struct Opts {
    port: u16,
    /// `--timeout`
    timeout: &'static str,
    no_path_retry: &'static str,
}

struct Rig {
    a: Fake,
    b: Fake,
    store: Store,
    child: Child,
    nbd: SocketAddr,
    status_socket: PathBuf,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// The rig most tests use: `--timeout 1`, `--no-path-retry 30`.
    async fn start(port: u16) -> Rig {
        Rig::with(Opts {
            port,
            timeout: "1",
            no_path_retry: "30",
        })
        .await
    }

    async fn with(o: Opts) -> Rig {
        let store = Store::new(STORE_BYTES);
        let a = Fake::spawn(path_script(&store, 1)).await;
        let b = Fake::spawn(path_script(&store, 2)).await;
        let dir = tempfile::tempdir().unwrap();
        let status_socket = dir.path().join("status.sock");
        let nbd: SocketAddr = format!("127.0.0.1:{}", o.port).parse().unwrap();
        let mut child = Command::new(BIN)
            .args(["host", "--timeout", o.timeout, "serve-nbd", "--listen"])
            .arg(nbd.to_string())
            .arg("--status-socket")
            .arg(&status_socket)
            .args(["--no-path-retry", o.no_path_retry])
            .args(["--checker-interval", "0.2"])
            .arg(a.url(0))
            .arg(b.url(0))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ironlun host serve-nbd");
        let log = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut l = l.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(nbd).await.is_ok() && status_socket.exists() {
                break;
            }
            if let Some(st) = child.try_wait().unwrap() {
                panic!("serve-nbd ended ({st}): {}", log.lock().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "serve-nbd not listening on {nbd}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Rig {
            a,
            b,
            store,
            child,
            nbd,
            status_socket,
            log,
            _dir: dir,
        }
    }

    /// `ironlun host [--json] nbd-status SOCKET`: its stdout, and how long it took.
    async fn nbd_status(&self, json: bool) -> (String, Duration) {
        let sock = self.status_socket.clone();
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let mut c = Command::new(BIN);
            c.arg("host");
            if json {
                c.arg("--json");
            }
            let out = c
                .args(["--timeout", "5", "nbd-status"])
                .arg(&sock)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "nbd-status: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (String::from_utf8(out.stdout).unwrap(), t.elapsed())
        })
        .await
        .unwrap()
    }

    /// The export's status as JSON.
    async fn status(&self) -> serde_json::Value {
        let (out, _) = self.nbd_status(true).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Wait until the status satisfies `ok` (within `limit`); the last status.
    async fn until(
        &self,
        limit: Duration,
        what: &str,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.status().await;
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not so after {} s: {}",
                limit.as_secs_f64(),
                serde_json::to_string_pretty(&s).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until I/O goes through path `i` (its I/O count grows).
    async fn io_on(&self, i: usize, limit: Duration, what: &str) -> serde_json::Value {
        let before = ios(&self.status().await, i);
        self.until(limit, what, |s| ios(s, i) > before).await
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// serve-nbd's resident memory (KiB).
    fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// serve-nbd is still running.
    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path `i`'s completed I/Os.
fn ios(s: &serde_json::Value, i: usize) -> u64 {
    s["paths"][i]["counters"]["ios"].as_u64().unwrap()
}

fn last_error(s: &serde_json::Value, i: usize) -> String {
    s["paths"][i]["last_error"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn connected(s: &serde_json::Value, i: usize) -> bool {
    s["paths"][i]["connected"].as_bool().unwrap()
}

fn in_use(s: &serde_json::Value, i: usize) -> bool {
    s["paths"][i]["in_use"].as_bool().unwrap()
}

/// The start every test shares: I/O on path A (group 1, optimized), none on B.
async fn io_on_a(rig: &Rig, load: &Load) {
    load.advance(20, Duration::from_secs(10), "start").await;
    let s = rig.io_on(0, Duration::from_secs(5), "I/O on A").await;
    assert!(in_use(&s, 0) && !in_use(&s, 1), "{s}");
    assert_eq!(ios(&s, 1), 0, "I/O on the non-optimized path: {s}");
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_never_answers_is_failed_after_the_timeout_and_io_goes_on_through_the_other() {
    let rig = Rig::start(3900).await;
    let load = Load::start(rig.nbd, 4, 0).await;
    io_on_a(&rig, &load).await;
    load.mark();

    // A stops answering anything (and reads on): the commands in flight wait for the
    // timeout, then go to B.
    let t = Instant::now();
    rig.a.set_reply(|_| Reply::Silent);
    let s = rig.io_on(1, Duration::from_secs(10), "I/O on B").await;
    let switched = t.elapsed();
    load.advance(50, Duration::from_secs(5), "on B").await;
    let pause = load.mark();
    assert!(!in_use(&s, 0) && in_use(&s, 1), "{s}");
    let why = last_error(&s, 0);
    assert!(why.contains("no answer within 1 s"), "A's last error: {s}");
    let (text, took) = rig.nbd_status(false).await;
    assert!(
        text.contains("last error:") && text.contains("no answer within 1 s"),
        "{text}"
    );
    assert!(took < Duration::from_secs(2), "nbd-status took {took:?}");

    // A answers again: it reconnects and takes the I/O back (failback to the optimized
    // group).
    rig.a.behave();
    let t = Instant::now();
    let s = rig.io_on(0, Duration::from_secs(10), "failback to A").await;
    let back = t.elapsed();
    assert!(connected(&s, 0) && in_use(&s, 0), "{s}");
    load.advance(20, Duration::from_secs(5), "back on A").await;

    let n = load.errors();
    assert!(n.is_empty(), "client errors: {n:?}");
    let ops = load.stop(&rig.store).await;
    eprintln!(
        "[silent] A silent: I/O on B after {} ms, longest write+read {pause} ms \
         (--timeout 1 s); A's error: {why}; failback {} ms; {ops} verified pairs",
        switched.as_millis(),
        back.as_millis()
    );
    // The command's timeout, then ABORT TASK SET and a logout, each under the same timeout
    // at most (crates/host/src/mpath/path.rs, send): the old nexus cannot complete them.
    assert!(pause < 3 * 1000 + 1500, "pause {pause} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_answers_on_a_path_are_retried_on_the_other_without_client_errors() {
    let rig = Rig::start(3901).await;
    let load = Load::start(rig.nbd, 4, 0).await;
    io_on_a(&rig, &load).await;
    // Each way of answering READ and WRITE badly, and words the path's last error must have.
    let phases: Vec<(&str, Reply, &[&str])> = vec![
        ("closes the connection", Reply::Close, &["closed"]),
        (
            "sends garbage",
            Reply::Garbage(vec![0xff; 48]),
            &["protocol violation"],
        ),
        (
            "rejects the command",
            Reply::Reject(reject_reason::COMMAND_NOT_SUPPORTED),
            &["reject"],
        ),
        (
            "answers under a wrong tag",
            Reply::WrongTag,
            &["no answer within 1 s"],
        ),
    ];
    for (what, reply, words) in phases {
        load.mark();
        let e0 = ios(&rig.status().await, 1);
        rig.a.set_reply(on_io(reply));
        // B takes I/O, and A's failure shows (A comes back between failures: the error is
        // cleared each time it reconnects).
        let s = rig
            .until(Duration::from_secs(10), what, |s| {
                ios(s, 1) > e0 && !last_error(s, 0).is_empty()
            })
            .await;
        load.advance(30, Duration::from_secs(10), what).await;
        let why = last_error(&s, 0);
        for w in words {
            assert!(
                why.to_lowercase().contains(w),
                "A {what}: '{w}' not in its last error: {s}"
            );
        }
        let errs = load.errors();
        assert!(errs.is_empty(), "A {what}: client errors: {errs:?}");
        rig.a.behave();
        rig.io_on(0, Duration::from_secs(10), "failback").await;
        load.advance(10, Duration::from_secs(5), "after failback")
            .await;
        eprintln!(
            "[broken] A {what}: longest pair {} ms, A: {why}",
            load.mark()
        );
    }

    let ops = load.stop(&rig.store).await;
    eprintln!("[broken] {ops} verified pairs, no client error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unit_attention_or_busy_forever_fail_io_with_eio_in_bounded_time_then_io_resumes() {
    let mut rig = Rig::start(3902).await;
    let mut report = Vec::new();
    let storms: Vec<(&str, Reply, &[&str])> = vec![
        (
            "UNIT ATTENTION on every command",
            check(UNIT_ATTENTION, 0x29, 0x00),
            &["unit attention"],
        ),
        ("BUSY on every command", Reply::Status(BUSY), &["busy"]),
    ];
    for (what, reply, words) in storms {
        let (ra, rb) = (reply.clone(), reply);
        rig.a.set_reply(move |_| ra.clone());
        rig.b.set_reply(move |_| rb.clone());
        // Two clients at once, each must get its EIO in bounded time.
        let (one, two) = tokio::join!(one_write(rig.nbd, 0), one_write(rig.nbd, 65536));
        let m1 = eio(&one.0, words);
        eio(&two.0, words);
        let took = one.1.max(two.1);
        // Bounded: Linux retries BUSY for at most its retries times the timeout (5 x 1 s).
        assert!(took < Duration::from_secs(8), "{what}: EIO after {took:?}");
        // The status socket answers meanwhile.
        let (_, st) = rig.nbd_status(false).await;
        assert!(
            st < Duration::from_secs(2),
            "{what}: nbd-status took {st:?}"
        );
        assert!(rig.alive(), "serve-nbd ended: {}", rig.log());
        report.push(format!("{what}: EIO after {} ms: {m1}", took.as_millis()));

        // The targets behave again: the same export serves I/O.
        rig.a.behave();
        rig.b.behave();
        let t = Instant::now();
        let mut c = no_hang("connect", Nbd::connect(rig.nbd)).await.unwrap();
        let data = pattern(7, 8192, 1);
        loop {
            let r = no_hang("write", c.write(8192, &data)).await;
            if r.is_ok() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{what}: after: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(no_hang("read", c.read(8192, IO)).await.unwrap(), data);
        report.push(format!(
            "{what}: I/O again after {} ms",
            t.elapsed().as_millis()
        ));
    }
    for r in report {
        eprintln!("[storm] {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_busy_answer_is_retried_not_failed() {
    let rig = Rig::start(3905).await;
    let mut c = Nbd::connect(rig.nbd).await.unwrap();
    // The next WRITE on either path is answered BUSY once (SAM-5 §5.3.1: the command may be
    // sent again later).
    for f in [&rig.a, &rig.b] {
        f.set_reply(|c| match c.kind {
            Kind::Write if c.nth == 0 => Reply::Status(BUSY),
            _ => Reply::Normal,
        });
    }
    let data = pattern(3, 0, 1);
    let r = no_hang("write", c.write(0, &data)).await;
    assert!(r.is_ok(), "one BUSY failed the client's write: {r:?}");
    assert_eq!(no_hang("read", c.read(0, IO)).await.unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_usable_path_fails_io_after_no_path_retry_and_io_resumes_when_a_target_is_back() {
    let rig = Rig::with(Opts {
        port: 3903,
        timeout: "1",
        no_path_retry: "2",
    })
    .await;
    let mut c = Nbd::connect(rig.nbd).await.unwrap();
    // 1 MiB: more than the first burst (immediate data), so the rest goes in R2T-solicited
    // Data-Out, and more than one Data-In PDU back.
    let big: u64 = 1 << 20;
    let before: Vec<u8> = (0..big / IO as u64)
        .flat_map(|k| pattern(1, big + k * IO as u64, 1))
        .collect();
    c.write(big, &before).await.unwrap();
    assert_eq!(c.read(big, before.len()).await.unwrap(), before);

    // Both targets stop answering: A times out, then B, then no path for no_path_retry.
    rig.a.set_reply(|_| Reply::Silent);
    rig.b.set_reply(|_| Reply::Silent);
    let t = Instant::now();
    let r = no_hang("write", c.write(4096, &pattern(1, 4096, 1))).await;
    let silent = t.elapsed();
    let m_silent = eio(&r, &["no usable path", "no_path_retry"]);
    // Two paths of (timeout + abort + logout), then no_path_retry, and slack.
    assert!(
        silent < Duration::from_secs(6 + 2 + 3),
        "EIO after {silent:?}"
    );
    let s = rig
        .until(Duration::from_secs(5), "both failed", |s| {
            !connected(s, 0) && !connected(s, 1)
        })
        .await;
    for i in 0..2 {
        assert!(last_error(&s, i).contains("no answer within 1 s"), "{s}");
    }

    // Both refuse every login now: a new client connects and gets its error, not a hang.
    for f in [&rig.a, &rig.b] {
        f.set_login(Login::Reject(login_status::TARGET_ERROR));
        f.behave();
    }
    let s = rig
        .until(Duration::from_secs(10), "logins refused", |s| {
            (0..2).all(|i| last_error(s, i).to_lowercase().contains("login"))
        })
        .await;
    let refused = last_error(&s, 0);
    let (r, took) = one_write(rig.nbd, 8192).await;
    let m_refused = eio(&r, &["no usable path", "no_path_retry"]);
    assert!(took < Duration::from_secs(2 + 3), "EIO after {took:?}");
    // The first client too.
    let r = no_hang("read", c.read(big, IO)).await;
    assert!(r.is_err(), "a read with no path succeeded");

    // A takes logins again: it reconnects in the background and I/O resumes, data intact.
    rig.a.set_login(Login::Normal);
    let t = Instant::now();
    let back = loop {
        match no_hang("read", c.read(big, before.len())).await {
            Ok(d) => break d,
            Err(e) => {
                assert!(t.elapsed() < Duration::from_secs(10), "not back: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let resumed = t.elapsed();
    assert_eq!(back, before, "the data written before the outage");
    let next = pattern(1, 4096, 2);
    c.write(4096, &next).await.unwrap();
    assert_eq!(c.read(4096, IO).await.unwrap(), next);
    eprintln!(
        "[no path] both silent: EIO after {} ms: {m_silent}",
        silent.as_millis()
    );
    eprintln!(
        "[no path] logins refused ({refused}): a new client's EIO after {} ms: {m_refused}",
        took.as_millis()
    );
    eprintln!("[no path] A back: I/O after {} ms", resumed.as_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_failed_for_want_of_a_path_is_named_in_serve_nbds_log() {
    let rig = Rig::with(Opts {
        port: 3907,
        timeout: "1",
        no_path_retry: "1",
    })
    .await;
    // Both targets close the connection at any command and refuse new logins: the paths
    // fail at once, and the write has no path left.
    for f in [&rig.a, &rig.b] {
        f.set_login(Login::Reject(login_status::TARGET_ERROR));
        f.set_reply(|_| Reply::Close);
    }
    let (r, took) = one_write(rig.nbd, 0).await;
    let msg = eio(&r, &["no usable path"]);
    // The operator sees why I/O failed in serve-nbd's own log, not only the client.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !rig.log().contains("no usable path") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = rig.log();
    eprintln!(
        "[log] the client's EIO after {} ms: {msg}; serve-nbd's log:\n{log}",
        took.as_millis()
    );
    assert!(
        log.contains("no usable path"),
        "serve-nbd's log does not name the failed I/O"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_in_beyond_the_expected_length_is_not_taken_for_the_read_data() {
    let rig = Rig::start(3906).await;
    let load = Load::start(rig.nbd, 4, 0).await;
    io_on_a(&rig, &load).await;
    load.mark();
    // A answers each READ with its data and 512 bytes more in the same Data-In, status GOOD
    // (RFC 7143 §11.7.7: a target sends at most the expected length): the data cannot be
    // trusted, so the read must be done again, elsewhere or later; the client sees no error.
    let store = rig.store.clone();
    rig.a.set_reply(move |c| match (c.kind, c.blocks()) {
        (Kind::Read, Some((lba, n))) => {
            let mut d = store.read(lba, n).unwrap();
            d.extend_from_slice(&[0xee; 512]);
            Reply::DataUncut(d)
        }
        _ => Reply::Normal,
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = rig.status().await;
    let errs = load.errors();
    eprintln!(
        "[data-in] longest pair {} ms; {} client errors, the first: {:?}; A: {}",
        load.mark(),
        errs.len(),
        errs.first(),
        last_error(&s, 0)
    );
    assert!(
        errs.is_empty(),
        "client errors: {:?}",
        &errs[..errs.len().min(3)]
    );
    rig.a.behave();
    load.advance(20, Duration::from_secs(10), "after").await;
    load.stop(&rig.store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unsolicited_pdus_keeps_memory_bounded_and_io_going() {
    // Per step, on A (the path in use) and on B; ten steps 200 ms apart.
    const STEP_A: usize = 10_000;
    const STEP_B: usize = 2_000;
    const STEPS: usize = 10;
    let rig = Rig::with(Opts {
        port: 3904,
        timeout: "5",
        no_path_retry: "30",
    })
    .await;
    let load = Load::start(rig.nbd, 4, 0).await;
    io_on_a(&rig, &load).await;
    load.advance(200, Duration::from_secs(10), "warm-up").await;
    let rss0 = rig.rss_kib();
    let ops0 = load.ops();
    load.mark();
    let t = Instant::now();
    let mut peak = rss0;
    for _ in 0..STEPS {
        rig.a.flood(STEP_A);
        rig.b.flood(STEP_B);
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak = peak.max(rig.rss_kib());
    }
    // Every PDU sent, and read: each ping (one PDU in six) answered.
    let (total_a, total_b) = (STEP_A * STEPS, STEP_B * STEPS);
    let pings = |n: usize| (0..n).filter(|i| i % 6 == 2).count();
    while rig.a.ping_answers() < pings(total_a) || rig.b.ping_answers() < pings(total_b) {
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "flood not read: PDUs sent {} + {} of {total_a} + {total_b}, pings answered \
             {} + {}",
            rig.a.flooded(),
            rig.b.flooded(),
            rig.a.ping_answers(),
            rig.b.ping_answers()
        );
        peak = peak.max(rig.rss_kib());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let flood_time = t.elapsed();
    let during = load.ops() - ops0;
    let pause = load.mark();
    load.advance(50, Duration::from_secs(10), "after the flood")
        .await;
    peak = peak.max(rig.rss_kib());
    let s = rig.status().await;
    let errs = load.errors();
    assert!(errs.is_empty(), "client errors: {errs:?}");
    let ops = load.stop(&rig.store).await;
    let growth = peak.saturating_sub(rss0);
    eprintln!(
        "[flood] {total_a} + {total_b} unsolicited PDUs read in {} ms; serve-nbd VmRSS \
         {rss0} KiB before, peak {peak} KiB (+{growth} KiB); {during} write+read pairs \
         during the flood, longest {pause} ms; {ops} verified pairs; A connected {}, in use {}",
        flood_time.as_millis(),
        connected(&s, 0),
        in_use(&s, 0)
    );
    assert!(growth < 32 * 1024, "serve-nbd grew {growth} KiB");
    assert!(during >= 20, "only {during} I/Os during the flood");
    assert!(in_use(&s, 0), "the flood took A out of use: {s}");
}
