//! Shared helpers of the end-to-end, robustness and durability tests: the real
//! `ironlun serve` on a temporary state directory and a free port of the test file's own
//! range (restartable after SIGTERM or `kill -9` on the same state directory), the real CLI
//! against it, and login / TEST UNIT READY / data helpers over `ironlun-initiator`.
//! Raw-PDU traffic (RFC 7143 framing driven field by field) is in [`raw`]; the persistent-
//! reservation rig of e2e_pr and e2e_aptpl in [`pr`].
//!
//! Port ranges, one per test binary group so parallel binaries never collide:
//! e2e_io, e2e_login, e2e_tmf 3361-3399 ([`Daemon::start`]); e2e_resize 3470-3489;
//! robust_bad_input 3400-3419; durability 3420-3449 (those via [`Daemon::start_in`]);
//! closed_doors 3960-3979 ([`Daemon::start_with`]); kill_loop 3810-3819; soak 3820-3839.

// Each test binary uses only some of these helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod etcd;
pub mod pr;
pub mod raw;

use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use ironlun_initiator::scsi_codes::{sense, status};
use ironlun_initiator::{Bytes, CommandResult, Error, LoginConfig, Session};

pub const BIN: &str = env!("CARGO_BIN_EXE_ironlun");
/// The target of the daemon's built-in default config.
pub const TARGET: &str = "iqn.2026-11.org.ironlun:default";
pub const TPG: &str = "iscsi/iqn.2026-11.org.ironlun:default/tpgt_1";
pub const BLOCK: u32 = 512;

/// The ports of [`Daemon::start`] (e2e_io, e2e_login, e2e_tmf).
pub const E2E_PORTS: Range<u16> = 3361..3400;
/// Rotates the first port tried so consecutive starts in one binary do not probe the same
/// (just released, possibly still lingering) port first.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A running daemon; killed and reaped on drop. Its state directory is `state/` in a temp dir
/// and its stderr goes to `daemon.log` beside (not inside) it, printed when a test panics.
pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    log: PathBuf,
    /// How the daemon runs: its RUST_LOG, umask and extra variables (from the next start or
    /// restart on).
    pub env: DaemonEnv,
}

/// The environment [`Daemon::start_with`] gives the daemon.
#[derive(Clone, Debug)]
pub struct DaemonEnv {
    /// RUST_LOG (default `info`).
    pub rust_log: String,
    /// The daemon's umask; `None` keeps the test's.
    pub umask: Option<u32>,
    /// More environment variables.
    pub vars: Vec<(String, String)>,
    /// More `serve` arguments (limits), kept for restarts.
    pub args: Vec<String>,
}

impl DaemonEnv {
    /// The defaults plus these `serve` arguments.
    pub fn args(args: &[&str]) -> DaemonEnv {
        DaemonEnv {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..DaemonEnv::default()
        }
    }
}

impl Default for DaemonEnv {
    fn default() -> DaemonEnv {
        DaemonEnv {
            rust_log: "info".into(),
            umask: None,
            vars: Vec::new(),
            args: Vec::new(),
        }
    }
}

impl Daemon {
    /// `ironlun serve` with the built-in default config on a free port of [`E2E_PORTS`].
    pub fn start() -> Daemon {
        Daemon::start_in(E2E_PORTS)
    }

    /// `ironlun serve` with the built-in default config on a free port of `ports`, once its
    /// portal accepts connections and its control socket answers.
    pub fn start_in(ports: Range<u16>) -> Daemon {
        Daemon::start_with(ports, DaemonEnv::default())
    }

    /// [`Daemon::start_in`] with the RUST_LOG, umask, variables and `serve` arguments of `env`.
    pub fn start_with(ports: Range<u16>, env: DaemonEnv) -> Daemon {
        let count = ports.end.saturating_sub(ports.start);
        for _ in 0..count {
            let port = ports.start + NEXT_PORT.fetch_add(1, Ordering::Relaxed) % count;
            // Skip ports someone holds (another helper's daemon, a leftover, a parallel test).
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
                env: env.clone(),
            };
            d.spawn();
            if d.wait_ready() {
                return d;
            }
            // Lost a race for the port (the daemon exited): try the next one.
        }
        panic!(
            "no free port in {}-{} for the daemon",
            ports.start,
            ports.end.saturating_sub(1)
        );
    }

    /// The state directory (config.json, control.sock, file backstores of the tests).
    /// The saved configuration as the daemon would restart with it: config.json with the
    /// changes journaled since (config.journal) replayed, as config.json text.
    pub fn saved_config(&self) -> String {
        let cfg = ironlun_control::journal::read(&self.state_dir()).expect("saved config");
        ironlun_control::persist::to_json(&cfg)
    }

    /// The bytes of config.json and config.journal: equal before and after a change that was
    /// refused.
    pub fn saved_files(&self) -> (Vec<u8>, Vec<u8>) {
        let read = |f: &str| std::fs::read(self.state_dir().join(f)).unwrap_or_default();
        (read("config.json"), read("config.journal"))
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("daemon log");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--portal")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(&self.env.args)
            .env("RUST_LOG", &self.env.rust_log)
            .envs(self.env.vars.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        if let Some(mask) = self.env.umask {
            use std::os::unix::process::CommandExt;
            // SAFETY: umask(2) is async-signal-safe and cannot fail; it only sets the child's mask.
            unsafe {
                cmd.pre_exec(move || {
                    libc::umask(mask as libc::mode_t);
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().expect("spawn ironlun serve");
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

    /// Wait (bounded) for the daemon to exit on its own and reap it; its exit status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let c = self.child.as_mut().expect("daemon running");
            if let Some(st) = c.try_wait().expect("wait") {
                self.child = None;
                return st;
            }
            assert!(Instant::now() < deadline, "daemon did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM (sessions drained, devices flushed) and wait for a clean exit.
    pub fn stop(&mut self) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
        // SAFETY: kill(2) on the pid of our own child process, not yet reaped.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let c = self.child.as_mut().expect("daemon running");
            if let Some(st) = c.try_wait().expect("wait") {
                self.child = None;
                assert!(st.success(), "daemon exit status {st}");
                return;
            }
            assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
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
    pub fn fd_flags(&self, path: &Path) -> Option<u32> {
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

    /// A CLI command that must be refused: exit 2 and one line on stderr; that line.
    pub fn refused(&self, args: &[&str]) -> String {
        let o = self.cli_output(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
        err
    }

    /// Leave demo mode and allow `initiator` with LUN 0 mapped, CHAP required with
    /// (`user`, `secret`) and, if given, mutual CHAP with the target's (`user`, `secret`).
    pub fn require_chap(
        &self,
        initiator: &str,
        user: &str,
        secret: &str,
        mutual: Option<(&str, &str)>,
    ) {
        let acl = format!("{TPG}/acls/{initiator}");
        self.cli(&["set", &format!("{TPG}/attrib/generate_node_acls"), "0"]);
        self.cli(&["create", &acl]);
        self.cli(&["create", &format!("{acl}/lun_0"), "tpg_lun=0"]);
        self.cli(&["set", &format!("{acl}/auth/userid"), user]);
        self.cli(&["set", &format!("{acl}/auth/password"), secret]);
        if let Some((mu, ms)) = mutual {
            self.cli(&["set", &format!("{acl}/auth/userid_mutual"), mu]);
            self.cli(&["set", &format!("{acl}/auth/password_mutual"), ms]);
        }
        self.cli(&["set", &format!("{TPG}/attrib/authentication"), "1"]);
    }

    /// The daemon's whole log (stderr, every start).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
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
/// Runs `ironlun serve` on a state directory whose saved config it must refuse: it exits 1 with
/// one line on stderr that names the problem (`what` appears in it).
pub fn serve_refuses_config(state: &Path, what: &str) {
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--state-dir")
        .arg(state)
        .env("RUST_LOG", "off")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid config") && err.contains(what),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

pub fn iqn(who: &str) -> String {
    format!("iqn.2026-11.org.example:{who}")
}

pub fn normal(who: &str) -> LoginConfig {
    LoginConfig::normal(&iqn(who), TARGET)
}

/// Log in to `d`'s default target with `cfg` and consume the unit attentions a new I_T
/// nexus reports first on LUN 0.
pub async fn login(d: &Daemon, cfg: LoginConfig) -> Session {
    login_at(d.addr(), cfg, 0).await
}

/// Log in at `addr` with `cfg` and consume the unit attentions of the new I_T nexus on
/// `lun`.
pub async fn login_at(addr: SocketAddr, cfg: LoginConfig, lun: u64) -> Session {
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
pub fn good(r: Result<CommandResult, Error>, what: &str) -> Bytes {
    match r {
        Ok(r) => r
            .clone()
            .good()
            .unwrap_or_else(|e| panic!("{what}: {e} ({r:?})")),
        Err(e) => panic!("{what}: {e}"),
    }
}

// ---- Persistent reservations (e2e_pr, e2e_aptpl; helper P3's ports 3540-3589) ----

/// The second TPG of the default target made by [`Daemon::add_tpg2`].
pub const TPG2: &str = "iscsi/iqn.2026-11.org.ironlun:default/tpgt_2";
/// The built-in default config's device.
pub const RAMDISK: &str = "core/rd_mcp_0/ramdisk0";
static NEXT_TPG_PORT: AtomicU16 = AtomicU16::new(0);

impl Daemon {
    /// Create TPG `tpg` (its target too if new) exporting `dev` as LUN 0, demo mode
    /// read-write, enabled, its portal on a free port of `ports`. Returns the portal's address.
    fn export_tpg(&self, tpg: &str, dev: &str, ports: Range<u16>) -> SocketAddr {
        self.cli(&["create", tpg]);
        self.cli(&["create", &format!("{tpg}/lun/lun_0"), &format!("dev={dev}")]);
        self.cli(&["set", &format!("{tpg}/attrib/generate_node_acls"), "1"]);
        self.cli(&["set", &format!("{tpg}/attrib/demo_mode_write_protect"), "0"]);
        let count = ports.end.saturating_sub(ports.start);
        let mut bound = None;
        for _ in 0..count {
            let port = ports.start + NEXT_TPG_PORT.fetch_add(1, Ordering::Relaxed) % count;
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue;
            }
            // Another test may take the port between the probe and the bind: try the next.
            let o = self.cli_output(&["create", &format!("{tpg}/np/127.0.0.1:{port}")]);
            if o.status.success() {
                bound = Some(port);
                break;
            }
        }
        let port = bound.unwrap_or_else(|| panic!("no free port for {tpg}"));
        self.cli(&["set", &format!("{tpg}/enable"), "1"]);
        SocketAddr::from(([127, 0, 0, 1], port))
    }
}

impl Daemon {
    /// Add [`TPG2`] on the default target: the same device as LUN 0, demo mode read-write,
    /// enabled, its portal on a free port of `ports`. Returns that portal's address.
    pub fn add_tpg2(&self, ports: Range<u16>) -> SocketAddr {
        self.export_tpg(TPG2, RAMDISK, ports)
    }

    /// The RELATIVE TARGET PORT IDENTIFIER of a TPG (`iscsi/<iqn>/tpgt_<t>`).
    pub fn rtpi(&self, tpg: &str) -> u16 {
        let v = self.cli(&["get", &format!("{tpg}/rtpi")]);
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("rtpi of {tpg}: {v:?}"))
    }

    /// The unit serial number of a device (`core/<kind>_<n>/<name>`).
    pub fn unit_serial(&self, dev: &str) -> String {
        self.cli(&["get", &format!("{dev}/wwn/vpd_unit_serial")])
            .trim()
            .to_string()
    }

    /// Start again on the same state directory expecting the daemon to refuse: returns its
    /// exit status once it exits; fails the test if it comes up instead.
    pub fn restart_refused(&mut self) -> ExitStatus {
        assert!(self.child.is_none(), "restart of a running daemon");
        self.spawn();
        let deadline = Instant::now() + Duration::from_secs(30);
        let sock = self.state_dir().join("control.sock");
        loop {
            let c = self.child.as_mut().expect("daemon spawned");
            if let Some(st) = c.try_wait().expect("wait") {
                self.child = None;
                return st;
            }
            assert!(
                !(UnixStream::connect(&sock).is_ok() && TcpStream::connect(self.addr()).is_ok()),
                "the daemon came up: {}",
                self.log_tail(20)
            );
            assert!(
                Instant::now() < deadline,
                "daemon neither came up nor exited"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ---- ALUA (e2e_alua; helper A3's ports 3640-3689) ----

/// Target port group IDs of `alua_west` and `alua_east` ([`Daemon::alua_west_east`]).
pub const WEST_ID: u16 = 1;
pub const EAST_ID: u16 = 2;

impl Daemon {
    /// Create the target port groups `alua_west` ([`WEST_ID`]) and `alua_east` ([`EAST_ID`])
    /// on [`RAMDISK`] and put LUN 0 of `west_tpg` in the first, LUN 0 of `east_tpg` in the
    /// second.
    pub fn alua_west_east(&self, west_tpg: &str, east_tpg: &str) {
        for (g, id, tpg) in [
            ("alua_west", WEST_ID, west_tpg),
            ("alua_east", EAST_ID, east_tpg),
        ] {
            self.cli(&[
                "create",
                &format!("{RAMDISK}/alua/{g}"),
                &format!("tg_pt_gp_id={id}"),
            ]);
            self.cli(&["set", &format!("{tpg}/lun/lun_0/alua_tg_pt_gp"), g]);
        }
    }

    /// Add target `iqn` with `tpgt_1` exporting `dev` as LUN 0, demo mode read-write, enabled,
    /// its portal on a free port of `ports`. Returns the TPG path and the portal's address.
    pub fn add_target(&self, iqn: &str, dev: &str, ports: Range<u16>) -> (String, SocketAddr) {
        let tpg = format!("iscsi/{iqn}/tpgt_1");
        let addr = self.export_tpg(&tpg, dev, ports);
        (tpg, addr)
    }
}

/// A small xorshift generator for the randomized tests (kill_loop, netfuzz, soak),
/// reproducible from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform enough in `0..n` (`n` 0 counts as 1).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The seed of a randomized test: `IRONLUN_SEED` (hex or decimal) to replay a printed one,
/// else the clock. Never 0 (xorshift would stay 0).
pub fn test_seed() -> u64 {
    let given = std::env::var("IRONLUN_SEED").ok().and_then(|v| {
        let v = v.trim();
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    });
    let seed = given.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
    });
    seed | 1
}

/// A number from the environment variable `name` (a run length, a count), or `default`.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A loop device over a file (`losetup -f --show`), detached on drop (also when the test
/// fails). The error says why none could be attached (not root, no losetup, no free device).
pub struct LoopDevice {
    pub dev: PathBuf,
}

impl LoopDevice {
    pub fn attach(file: &Path) -> Result<LoopDevice, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root (losetup needs root)".into());
        }
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file)
            .output()
            .map_err(|e| format!("cannot run losetup: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "losetup failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(LoopDevice {
            dev: PathBuf::from(dev),
        })
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}
