//! End to end: the doors an administrator expects closed (docs/robustness.md, "The daemon's
//! own doors"):
//!
//! * the control socket serves only root and the daemon's own user, even when its mode has
//!   been loosened: another user gets one refusal line, and the daemon logs who it was;
//!
//! Ports 3960-3979.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::*;

const PORTS: Range<u16> = 3960..3980;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", p.display()));
}

#[test]
fn another_user_is_refused_on_the_control_socket() {
    let d = Daemon::start_with(PORTS, DaemonEnv::default());
    let sock = d.state_dir().join("control.sock");
    // Open every door but the credential check: directories traversable, socket 0666.
    chmod(d.dir.path(), 0o711);
    chmod(&d.state_dir(), 0o711);
    chmod(&sock, 0o666);

    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .arg("--socket")
        .arg(&sock)
        .arg("ls")
        .output()
        .expect("run the CLI as uid 65534 (setpriv)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty(), "nothing served");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("permission denied: uid 65534 may not use this daemon's control socket"),
        "{err}"
    );
    let log = d.log();
    assert!(
        log.contains("refused a client with uid 65534 (pid "),
        "{}",
        d.log_tail(10)
    );
    // Root is still served.
    assert!(d.cli(&["ls", "core"]).starts_with("core/"));
}
