//! Helpers of the robustness and durability tests: the real `ironlun serve` on a temporary
//! state directory and a port of a given range (restartable after `kill -9` on the same state
//! directory), its resident memory, and a raw-PDU initiator connection for adversarial
//! traffic (RFC 7143 framing through `ironlun-initiator`'s [`Connection`]).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use ironlun_initiator::iscsi::pdu::task_attr;
use ironlun_initiator::iscsi::serial::lun_to_bytes;
use ironlun_initiator::iscsi::{Bhs, NopOut, Pdu, ScsiCommand, BHS_LEN, RESERVED_TAG};
use ironlun_initiator::scsi_codes::{sense, status};
use ironlun_initiator::{Bytes, Connection, Error, LoginConfig, Negotiated, Session};

pub const BIN: &str = env!("CARGO_BIN_EXE_ironlun");
/// The target of the daemon's built-in default config.
pub const TARGET: &str = "iqn.2026-11.org.ironlun:default";
pub const TPG: &str = "iscsi/iqn.2026-11.org.ironlun:default/tpgt_1";
pub const BLOCK: u32 = 512;

/// A running daemon; killed and reaped on drop. Its stderr goes to `daemon.log` beside (not
/// inside) the state directory, printed when a test panics.
pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    log: PathBuf,
}

impl Daemon {
    /// `ironlun serve` with the built-in default config on a free port of `ports`.
    pub fn start(ports: Range<u16>) -> Daemon {
        for port in ports {
            // Skip ports someone holds (a leftover, a parallel test).
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue;
            }
            let dir = tempfile::tempdir().expect("tempdir");
            let log = dir.path().join("daemon.log");
            let mut d = Daemon {
                child: None,
                dir,
                port,
                log,
            };
            d.spawn();
            if d.wait_ready() {
                return d;
            }
            // Lost a race for the port (the daemon exited): try the next one.
        }
        panic!("no free port for the daemon");
    }

    /// The state directory (the log file sits in its parent temp dir, not in it).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("daemon log");
        let child = Command::new(BIN)
            .arg("serve")
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--portal")
            .arg(format!("127.0.0.1:{}", self.port))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn ironlun serve");
        self.child = Some(child);
    }

    /// Wait until the control socket answers and the portal accepts; false if the daemon
    /// exited first.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        let sock = self.state_dir().join("control.sock");
        loop {
            if !self.alive() {
                return false;
            }
            // A stale socket of a killed daemon exists but refuses connections.
            if UnixStream::connect(&sock).is_ok() && TcpStream::connect(self.addr()).is_ok() {
                return true;
            }
            assert!(Instant::now() < deadline, "daemon did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    /// Still running (not exited)?
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL (std's `Child::kill` sends SIGKILL on Unix) and reap; returns the exit status.
    pub fn kill9(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("daemon running");
        c.kill().expect("SIGKILL the daemon");
        c.wait().expect("reap the daemon")
    }

    /// Start the daemon again on the same state directory and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running daemon");
        self.spawn();
        assert!(
            self.wait_ready(),
            "daemon did not restart: {}",
            self.log_tail(30)
        );
    }

    /// Resident set size of the daemon in KiB (VmRSS of /proc/<pid>/status).
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// The open-file flags (octal `flags:` of /proc/<pid>/fdinfo) of the daemon's descriptor
    /// on `path`, if it has one.
    pub fn fd_flags(&self, path: &std::path::Path) -> Option<u32> {
        let pid = self.pid();
        let want = std::fs::canonicalize(path).ok()?;
        for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
            if std::fs::read_link(e.path()).ok().as_deref() != Some(want.as_path()) {
                continue;
            }
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                e.file_name().to_string_lossy()
            ))
            .ok()?;
            return info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok());
        }
        None
    }

    /// Run a CLI command against this daemon.
    pub fn cli_output(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(args)
            .output()
            .expect("run ironlun CLI")
    }

    /// Run a CLI command that must succeed; returns its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let o = self.cli_output(args);
        assert!(
            o.status.success(),
            "ironlun {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The last `n` lines of the daemon's log.
    pub fn log_tail(&self, n: usize) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
            let _ = f.read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- daemon log (tail) ---\n{}", self.log_tail(40));
        }
    }
}

/// Liveness guard: an operation that never completes fails the test instead of hanging it.
/// (Nothing is measured: 20 s is far beyond any legitimate wait.)
pub async fn guard<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(20), f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no answer from the target within 20 s"),
    }
}

/// An initiator name per test role.
pub fn iqn(who: &str) -> String {
    format!("iqn.2026-11.org.example:{who}")
}

pub fn normal(who: &str) -> LoginConfig {
    LoginConfig::normal(&iqn(who), TARGET)
}

/// Log in to the default target and consume the unit attentions of the new I_T nexus on
/// `lun`.
pub async fn login(addr: SocketAddr, cfg: LoginConfig, lun: u64) -> Session {
    let s = guard("login", Session::login(addr, &cfg))
        .await
        .unwrap_or_else(|e| panic!("login failed: {e}"));
    clear_ua(&s, lun).await;
    s
}

/// TEST UNIT READY until GOOD; anything but GOOD or a UNIT ATTENTION fails.
pub async fn clear_ua(s: &Session, lun: u64) {
    for _ in 0..8 {
        let r = guard("TEST UNIT READY", s.test_unit_ready(lun))
            .await
            .unwrap();
        if r.status == status::GOOD {
            return;
        }
        assert_eq!(r.status, status::CHECK_CONDITION, "TUR: {r:?}");
        assert_eq!(
            r.sense.map(|s| s.key),
            Some(sense::key::UNIT_ATTENTION),
            "{r:?}"
        );
    }
    panic!("unit attentions never cleared");
}

/// Distinct, position-dependent data.
pub fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A command's data (status GOOD required).
pub fn good(r: Result<ironlun_initiator::CommandResult, Error>, what: &str) -> Bytes {
    match r {
        Ok(r) => r
            .clone()
            .good()
            .unwrap_or_else(|e| panic!("{what}: {e} ({r:?})")),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// The outcome of a SCSI command on a [`Raw`] connection.
#[derive(Debug)]
pub struct RawOutcome {
    pub status: u8,
    pub data: Vec<u8>,
    /// Sense key / ASC / ASCQ from fixed or descriptor sense data.
    pub sense: Option<(u8, u8, u8)>,
}

/// A logged-in connection driven PDU by PDU: the test chooses every field (CmdSN included)
/// and sees every PDU the target sends.
pub struct Raw {
    pub conn: Connection,
    pub neg: Negotiated,
}

impl Raw {
    /// Connect and log in with `cfg`.
    pub async fn login(addr: SocketAddr, cfg: &LoginConfig) -> Raw {
        let mut conn = guard("connect", Connection::connect(addr))
            .await
            .expect("connect");
        let neg = guard("login", ironlun_initiator::login::login(&mut conn, cfg))
            .await
            .unwrap_or_else(|e| panic!("raw login failed: {e}"));
        Raw { conn, neg }
    }

    /// CmdSN of the next non-immediate command.
    pub fn cmd_sn(&self) -> u32 {
        self.conn.counters.cmd_sn
    }

    /// Take the next CmdSN (advancing it).
    pub fn take_cmd_sn(&mut self) -> u32 {
        let sn = self.conn.counters.cmd_sn;
        self.conn.counters.cmd_sn = sn.wrapping_add(1);
        sn
    }

    pub fn itt(&mut self) -> u32 {
        self.conn.next_itt()
    }

    pub fn exp_stat_sn(&self) -> u32 {
        self.conn.counters.exp_stat_sn
    }

    /// Encode with the negotiated digests and send.
    pub async fn send(&mut self, pdu: Pdu) {
        guard("send", self.conn.send_pdu(&pdu))
            .await
            .expect("send PDU");
    }

    pub async fn send_bytes(&mut self, b: &[u8]) -> Result<(), Error> {
        guard("send bytes", self.conn.send_bytes(b)).await
    }

    /// The next PDU other than a target ping (pings are answered, §11.18).
    pub async fn recv(&mut self) -> Result<Pdu, Error> {
        loop {
            let p = guard("receive", self.conn.recv_pdu()).await?;
            self.conn.observe(&p);
            if let Bhs::NopIn(n) = &p.bhs {
                if n.itt == RESERVED_TAG && n.ttt != RESERVED_TAG {
                    let answer = Bhs::NopOut(NopOut {
                        immediate: true,
                        lun: n.lun,
                        itt: RESERVED_TAG,
                        ttt: n.ttt,
                        cmd_sn: self.cmd_sn(),
                        exp_stat_sn: self.exp_stat_sn(),
                    });
                    self.send(Pdu::new(answer)).await;
                    continue;
                }
            }
            return Ok(p);
        }
    }

    /// A SCSI Command BHS on LUN `lun` with F set.
    pub fn scsi_bhs(
        &mut self,
        lun: u64,
        cdb: [u8; 16],
        read: bool,
        write: bool,
        edtl: u32,
        cmd_sn: u32,
    ) -> ScsiCommand {
        ScsiCommand {
            immediate: false,
            final_: true,
            read,
            write,
            attr: task_attr::SIMPLE,
            lun: lun_to_bytes(lun),
            itt: self.itt(),
            expected_data_length: edtl,
            cmd_sn,
            exp_stat_sn: self.exp_stat_sn(),
            cdb,
        }
    }

    /// Collect the outcome of the command with `itt`: Data-In then status. Any other PDU
    /// fails the test (nothing else is outstanding on a raw connection).
    pub async fn outcome(&mut self, itt: u32) -> RawOutcome {
        let mut data = Vec::new();
        loop {
            let p = self
                .recv()
                .await
                .unwrap_or_else(|e| panic!("waiting for ITT {itt:#x}: {e}"));
            match &p.bhs {
                Bhs::DataIn(d) if d.itt == itt => {
                    let off = d.buffer_offset as usize;
                    if data.len() < off + p.data.len() {
                        data.resize(off + p.data.len(), 0);
                    }
                    data[off..off + p.data.len()].copy_from_slice(&p.data);
                    if let Some(st) = d.status {
                        return RawOutcome {
                            status: st,
                            data,
                            sense: None,
                        };
                    }
                }
                Bhs::ScsiResponse(r) if r.itt == itt => {
                    let sense = if p.data.len() > 2 {
                        let n = usize::from(u16::from_be_bytes([p.data[0], p.data[1]]));
                        let s = &p.data[2..(2 + n).min(p.data.len())];
                        ironlun_initiator::scsi_codes::Sense::parse(s)
                            .ok()
                            .map(|s| (s.key, s.asc.asc, s.asc.ascq))
                    } else {
                        None
                    };
                    return RawOutcome {
                        status: r.status,
                        data,
                        sense,
                    };
                }
                other => panic!("waiting for ITT {itt:#x}: unexpected {other:?}"),
            }
        }
    }

    /// Run a command with the next CmdSN (no data-out) and return its outcome.
    pub async fn command(&mut self, lun: u64, cdb: [u8; 16], edtl: u32) -> RawOutcome {
        let sn = self.take_cmd_sn();
        self.command_with_sn(lun, cdb, edtl, sn).await
    }

    /// Run a command with an explicit CmdSN (to plug a gap left by a rejected PDU).
    pub async fn command_with_sn(
        &mut self,
        lun: u64,
        cdb: [u8; 16],
        edtl: u32,
        cmd_sn: u32,
    ) -> RawOutcome {
        let cmd = self.scsi_bhs(lun, cdb, edtl > 0, false, edtl, cmd_sn);
        let itt = cmd.itt;
        self.send(Pdu::new(Bhs::ScsiCommand(cmd))).await;
        self.outcome(itt).await
    }

    /// TEST UNIT READY on LUN 0 with the next CmdSN until GOOD (unit attentions of a new
    /// nexus are consumed); fails on anything else.
    pub async fn tur_good(&mut self) {
        for _ in 0..8 {
            let o = self.command(0, [0; 16], 0).await;
            if o.status == status::GOOD {
                return;
            }
            assert_eq!(o.status, status::CHECK_CONDITION, "TUR: {o:?}");
            assert_eq!(
                o.sense.map(|s| s.0),
                Some(sense::key::UNIT_ATTENTION),
                "{o:?}"
            );
        }
        panic!("TEST UNIT READY never returned GOOD");
    }

    /// Expect a Reject with one of `reasons` whose data segment is the header we sent
    /// (RFC 7143 §11.17: the complete header of the rejected PDU).
    pub async fn expect_reject(&mut self, what: &str, reasons: &[u8], sent: &[u8]) -> u8 {
        let p = self
            .recv()
            .await
            .unwrap_or_else(|e| panic!("{what}: expected a Reject, got {e}"));
        let Bhs::Reject(r) = &p.bhs else {
            panic!("{what}: expected a Reject, got {:?}", p.bhs);
        };
        assert!(
            reasons.contains(&r.reason),
            "{what}: Reject reason {:#04x}, expected one of {reasons:02x?}",
            r.reason
        );
        assert!(
            p.data.len() >= BHS_LEN && p.data[..BHS_LEN] == sent[..BHS_LEN],
            "{what}: the Reject does not carry the rejected header ({} bytes)",
            p.data.len()
        );
        r.reason
    }

    /// Read until the target closes the connection; every PDU before the close must pass
    /// `allowed` (e.g. a Reject announcing the reason). Returns those PDUs.
    pub async fn expect_close(&mut self, what: &str, allowed: impl Fn(&Bhs) -> bool) -> Vec<Pdu> {
        let mut seen = Vec::new();
        loop {
            match self.recv().await {
                Ok(p) => {
                    assert!(
                        allowed(&p.bhs),
                        "{what}: unexpected {:?} before the close",
                        p.bhs
                    );
                    seen.push(p);
                }
                Err(Error::ConnectionClosed) => return seen,
                // A reset, or bytes we cannot frame after the target gave up: closed too.
                Err(Error::Io(_)) => return seen,
                Err(e) => panic!("{what}: expected the target to close, got {e}"),
            }
        }
    }

    /// NOP-Out ping (immediate) answered by a NOP-In with our ITT and data.
    pub async fn ping(&mut self) {
        let itt = self.itt();
        let bhs = Bhs::NopOut(NopOut {
            immediate: true,
            lun: [0; 8],
            itt,
            ttt: RESERVED_TAG,
            cmd_sn: self.cmd_sn(),
            exp_stat_sn: self.exp_stat_sn(),
        });
        self.send(Pdu::with_data(bhs, Bytes::from_static(b"ping")))
            .await;
        let p = self.recv().await.expect("NOP-In");
        match &p.bhs {
            Bhs::NopIn(n) if n.itt == itt => assert_eq!(&p.data[..], b"ping"),
            other => panic!("expected the NOP-In answering our ping, got {other:?}"),
        }
    }
}

/// The 48-byte header of `pdu` as encoded without digests (what a Reject must echo).
pub fn header_of(pdu: &Pdu) -> Vec<u8> {
    let b = pdu
        .to_bytes(ironlun_initiator::iscsi::Digests::default())
        .expect("encode");
    b[..BHS_LEN].to_vec()
}

/// CDB builders not in the initiator crate.
pub fn cdb16(bytes: &[u8]) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[..bytes.len()].copy_from_slice(bytes);
    c
}
