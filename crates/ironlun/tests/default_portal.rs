//! The built-in default config on a portal off loopback: CHAP with a secret generated and shown
//! once, or no authentication only when asked for with `--insecure-demo`. Ports 3330-3338.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironlun_initiator::iscsi::pdu::login_status;
use ironlun_initiator::{ChapConfig, Error, LoginConfig, Session};

const BIN: &str = env!("CARGO_BIN_EXE_ironlun");
const TARGET: &str = "iqn.2026-11.org.ironlun:default";
const HOST: &str = "iqn.2026-11.org.example:netdemo";

/// `ironlun serve` on a first-run (or restored) state directory, stderr kept in a file.
struct Serve {
    child: Child,
    stderr: PathBuf,
}

impl Serve {
    /// Started, its portal on 127.0.0.1:`port` accepting and its control socket in place.
    fn ready(state: &Path, stderr: PathBuf, args: &[&str], port: u16) -> Serve {
        let mut d = Serve::start(state, stderr, args);
        d.wait_ready(state, port);
        d
    }

    fn start(state: &Path, stderr: PathBuf, args: &[&str]) -> Serve {
        let log = std::fs::File::create(&stderr).expect("stderr file");
        let child = Command::new(BIN)
            .arg("serve")
            .arg("--state-dir")
            .arg(state)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn ironlun serve");
        Serve { child, stderr }
    }

    /// Wait until `port` accepts on 127.0.0.1, the control socket exists and the daemon has
    /// logged that it serves (after any notice of the start).
    fn wait_ready(&mut self, state: &Path, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err()
            || !state.join("control.sock").exists()
            || !self.stderr().contains("serving; portals")
        {
            assert!(
                self.child.try_wait().expect("wait").is_none(),
                "daemon exited: {}",
                self.stderr()
            );
            assert!(Instant::now() < deadline, "daemon did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM and a clean exit.
    fn stop(mut self) {
        // SAFETY: kill(2) on the pid of our own child process.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "daemon exit status {status}");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn login(port: u16, chap: Option<ChapConfig>) -> Result<Session, Error> {
    let mut cfg = LoginConfig::normal(HOST, TARGET);
    if let Some(c) = chap {
        cfg = cfg.chap(c);
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    tokio::time::timeout(Duration::from_secs(20), Session::login(addr, &cfg))
        .await
        .expect("login timed out")
}

/// The secret of the notice's `secret:` line.
fn shown_secret(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| {
            l.trim_start_matches("ironlun:")
                .trim()
                .starts_with("secret:")
        })
        .unwrap_or_else(|| panic!("no secret shown: {stderr}"));
    line.split_whitespace().last().expect("secret").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_network_portal_needs_chap_with_a_secret_shown_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let port = 3330;
    let portal = format!("0.0.0.0:{port}");
    let d = Serve::ready(
        &state,
        tmp.path().join("run1.err"),
        &["--portal", &portal],
        port,
    );
    let err = d.stderr();
    let secret = shown_secret(&err);
    assert_eq!(secret.len(), 20, "{err}");
    assert!(secret.chars().all(|c| c.is_ascii_alphanumeric()), "{err}");
    assert!(err.contains("user:   ironlun"), "{err}");
    // Shown in the notice and its example URL, nowhere else (not in the log lines).
    assert_eq!(err.matches(secret.as_str()).count(), 2, "{err}");

    // Without CHAP: refused. With the shown credentials: in.
    let open = login(port, None).await;
    assert_eq!(
        open.unwrap_err().login_status(),
        Some(login_status::AUTHENTICATION_FAILURE)
    );
    let s = login(port, Some(ChapConfig::new("ironlun", secret.as_str())))
        .await
        .expect("login with the shown secret");
    assert_eq!(s.negotiated().auth_method, "CHAP");
    drop(s);
    d.stop();

    // A restart keeps the secret and does not show it again.
    let d = Serve::ready(&state, tmp.path().join("run2.err"), &[], port);
    let err = d.stderr();
    assert!(!err.contains(secret.as_str()), "shown again: {err}");
    assert!(!err.contains("secret:"), "{err}");
    let s = login(port, Some(ChapConfig::new("ironlun", secret.as_str())))
        .await
        .expect("login after restart");
    drop(s);
    assert!(login(port, None).await.is_err());
    d.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn insecure_demo_serves_a_network_portal_without_chap() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let port = 3331;
    let portal = format!("0.0.0.0:{port}");
    let args = ["--portal", &portal, "--insecure-demo"];
    let d = Serve::ready(&state, tmp.path().join("run.err"), &args, port);
    let err = d.stderr();
    assert!(!err.contains("secret:"), "{err}");
    assert!(
        err.contains("--insecure-demo") && err.contains("not loopback"),
        "no warning: {err}"
    );
    let s = login(port, None).await.expect("open login");
    assert_eq!(s.negotiated().auth_method, "None");
    drop(s);
    d.stop();
}
