//! Shared helpers of the end-to-end tests: start the real `ironlun serve` on a temporary
//! state directory and a port of our own (3361-3399), configure it with the real CLI, and
//! log in with `ironlun-initiator`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use ironlun_initiator::{Error, LoginConfig, Session};
use ironlun_scsi::{sense, status};

pub const BIN: &str = env!("CARGO_BIN_EXE_ironlun");
/// The target of the daemon's built-in default config.
pub const TARGET: &str = "iqn.2026-11.org.ironlun:default";
pub const TPG: &str = "iscsi/iqn.2026-11.org.ironlun:default/tpgt_1";
pub const BLOCK: u32 = 512;

const PORT_FIRST: u16 = 3361;
const PORT_COUNT: u16 = 39;
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A running daemon; killed and reaped on drop.
pub struct Daemon {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Daemon {
    /// Start `ironlun serve` with the built-in default config on a free port of our range
    /// and wait until its portal accepts connections and its control socket exists.
    pub fn start() -> Daemon {
        for _ in 0..PORT_COUNT {
            let port = PORT_FIRST + NEXT_PORT.fetch_add(1, Ordering::Relaxed) % PORT_COUNT;
            // Skip ports someone else holds (another helper's daemon, a leftover).
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue;
            }
            let dir = tempfile::tempdir().expect("tempdir");
            let child = Command::new(BIN)
                .arg("serve")
                .arg("--state-dir")
                .arg(dir.path())
                .arg("--portal")
                .arg(format!("127.0.0.1:{port}"))
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn ironlun serve");
            let mut d = Daemon { child, dir, port };
            if d.wait_ready() {
                return d;
            }
            // Lost a race for the port (the daemon exited): try the next one.
        }
        panic!("no free port in 3361-3399 for the daemon");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        let sock = self.dir.path().join("control.sock");
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if sock.exists() && TcpStream::connect(self.addr()).is_ok() {
                return true;
            }
            assert!(Instant::now() < deadline, "daemon did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Run a CLI command against this daemon.
    pub fn cli_output(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--state-dir")
            .arg(self.dir.path())
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
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// Log in to the default target as `who` with `cfg` adjustments, and consume the unit
/// attentions a new I_T nexus reports first.
pub async fn login(d: &Daemon, cfg: LoginConfig) -> Session {
    let s = guard("login", Session::login(d.addr(), &cfg))
        .await
        .unwrap_or_else(|e| panic!("login failed: {e}"));
    clear_ua(&s, 0).await;
    s
}

pub fn normal(who: &str) -> LoginConfig {
    LoginConfig::normal(&iqn(who), TARGET)
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

/// Unwrap a command result's data (status GOOD required).
pub fn good(
    r: Result<ironlun_initiator::CommandResult, Error>,
    what: &str,
) -> ironlun_initiator::Bytes {
    match r {
        Ok(r) => r
            .clone()
            .good()
            .unwrap_or_else(|e| panic!("{what}: {e} ({r:?})")),
        Err(e) => panic!("{what}: {e}"),
    }
}
