//! End to end: the doors an administrator expects closed (docs/robustness.md, "The daemon's
//! own doors"):
//!
//! * the control socket serves only root and the daemon's own user, even when its mode has
//!   been loosened: another user gets one refusal line, and the daemon logs who it was;
//! * under umask 000 every file the daemon writes in its state directory is 0600 and every
//!   directory 0700, and a loose state directory found at start is tightened (logged);
//! * CHAP secrets (TPG, ACL, mutual, discovery) never appear in the daemon's log at trace
//!   level, in `ls`, in refused commands' errors or in `config save`'s output, through good
//!   and bad logins; only `get` of the secret's own leaf prints it.
//!
//! Ports 3960-3979.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ops::Range;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use ironlun_initiator::pr::RegisterFlags;
use ironlun_initiator::{ChapConfig, LoginConfig, Session};
use support::pr::{ok, run};
use support::*;

const PORTS: Range<u16> = 3960..3980;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", p.display()));
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
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

/// Every entry under `dir` (itself included) with its mode, for messages.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, std::fs::FileType, u32)>) {
    let meta = std::fs::symlink_metadata(dir).expect("stat");
    out.push((dir.to_path_buf(), meta.file_type(), mode(dir)));
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let ft = e.file_type().expect("file type");
        if ft.is_dir() {
            walk(&e.path(), out);
        } else {
            out.push((e.path(), ft, mode(&e.path())));
        }
    }
}

/// Directories 0700, files and the socket 0600, nothing else; the files found.
fn assert_private(state: &Path) -> Vec<String> {
    let mut all = Vec::new();
    walk(state, &mut all);
    let mut files = Vec::new();
    for (p, ft, m) in &all {
        let want = if ft.is_dir() { 0o700 } else { 0o600 };
        assert!(
            ft.is_dir() || ft.is_file() || ft.is_socket(),
            "{}: unexpected kind",
            p.display()
        );
        assert_eq!(*m, want, "{}: mode {m:04o}", p.display());
        if ft.is_file() {
            files.push(p.strip_prefix(state).expect("inside").display().to_string());
        }
    }
    files.sort();
    files
}

#[tokio::test]
async fn state_files_are_private_under_umask_000() {
    let mut d = Daemon::start_with(
        PORTS,
        DaemonEnv {
            umask: Some(0),
            ..DaemonEnv::default()
        },
    );
    // Something in every kind of file the daemon writes: an APTPL file, ALUA state, a saved
    // copy, a new fileio image.
    let s = login(&d, normal("doors-pr")).await;
    let r = run(
        "REGISTER",
        s.pr_register(0, 0, 0xD0, &RegisterFlags::aptpl()),
    )
    .await;
    ok(&r, "REGISTER with APTPL");
    d.cli(&["create", "core/rd_mcp_0/ramdisk0/alua/alua_west"]);
    let image = d.state_dir().join("disk.img");
    let image_arg = format!("path={}", image.display());
    d.cli(&["create", "core/fileio_0/disk", &image_arg, "size=1M"]);
    let copy = d.state_dir().join("copy.json");
    d.cli(&["config", "save", copy.to_str().expect("utf-8")]);
    let files = assert_private(&d.state_dir());
    assert!(files.iter().any(|f| f == "config.json"), "{files:?}");
    assert!(
        files.iter().any(|f| f.starts_with("pr/aptpl_")),
        "{files:?}"
    );
    assert!(files.iter().any(|f| f == "copy.json"), "{files:?}");
    assert!(files.iter().any(|f| f == "disk.img"), "{files:?}");
    drop(s);

    // Loosened while the daemon was down: tightened at the next start, and said so.
    d.stop();
    chmod(&d.state_dir(), 0o755);
    chmod(&d.state_dir().join("pr"), 0o777);
    chmod(&d.state_dir().join("config.json"), 0o644);
    d.restart();
    assert_private(&d.state_dir());
    let log = d.log();
    for (dir, was) in [("state", "0755"), ("state/pr", "0777")] {
        assert!(
            log.contains(&format!(
                "{dir}: mode {was} let other users in; changed to 0700"
            )),
            "{dir}: {}",
            d.log_tail(20)
        );
    }
}

const ACL_SECRET: &str = "DoorsAclSecret1";
const ACL_TSECRET: &str = "DoorsAclMutual2";
const TPG_SECRET: &str = "DoorsTpgSecret3";
const TPG_TSECRET: &str = "DoorsTpgMutual4";
const DISC_SECRET: &str = "DoorsDiscSecret5";
const DISC_TSECRET: &str = "DoorsDiscMutual6";
const SECRETS: [&str; 6] = [
    ACL_SECRET,
    ACL_TSECRET,
    TPG_SECRET,
    TPG_TSECRET,
    DISC_SECRET,
    DISC_TSECRET,
];

#[track_caller]
fn no_secret(what: &str, text: &str) {
    for s in SECRETS {
        // The distinctive part too: a secret cut or quoted is still a secret.
        assert!(
            !text.contains(s) && !text.contains(&s[..10]),
            "{what} shows {s}: {text}"
        );
    }
}

async fn try_login(d: &Daemon, cfg: LoginConfig) -> bool {
    guard("login", Session::login(d.addr(), &cfg)).await.is_ok()
}

#[tokio::test]
async fn chap_secrets_stay_out_of_logs_and_outputs() {
    let d = Daemon::start_with(
        PORTS,
        DaemonEnv {
            rust_log: "trace".into(),
            ..DaemonEnv::default()
        },
    );
    let who = iqn("doors-chap");
    let acl = format!("{TPG}/acls/{who}");
    d.require_chap(
        &who,
        "chapuser",
        ACL_SECRET,
        Some(("targetuser", ACL_TSECRET)),
    );
    let mut outputs = String::new();
    for (leaf, v) in [
        ("auth/userid", "tpguser"),
        ("auth/password", TPG_SECRET),
        ("auth/userid_mutual", "tpgtarget"),
        ("auth/password_mutual", TPG_TSECRET),
    ] {
        outputs += &d.cli(&["set", &format!("{TPG}/{leaf}"), v]);
    }
    for (leaf, v) in [
        ("userid", "discuser"),
        ("password", DISC_SECRET),
        ("userid_mutual", "disctarget"),
        ("password_mutual", DISC_TSECRET),
        ("enforce_discovery_auth", "1"),
    ] {
        outputs += &d.cli(&["set", &format!("iscsi/discovery_auth/{leaf}"), v]);
    }

    // Logins, good and bad, one-way and mutual, normal and discovery.
    let good = ChapConfig::new("chapuser", ACL_SECRET).mutual(Some("targetuser"), ACL_TSECRET);
    assert!(try_login(&d, normal("doors-chap").chap(good)).await);
    let bad = ChapConfig::new("chapuser", "DoorsWrongOne7");
    assert!(!try_login(&d, normal("doors-chap").chap(bad)).await);
    let bad_mutual =
        ChapConfig::new("chapuser", ACL_SECRET).mutual(Some("targetuser"), "x12345678");
    assert!(!try_login(&d, normal("doors-chap").chap(bad_mutual)).await);
    let disc = |c: ChapConfig| LoginConfig::discovery(&who).chap(c);
    let good = ChapConfig::new("discuser", DISC_SECRET).mutual(Some("disctarget"), DISC_TSECRET);
    assert!(try_login(&d, disc(good)).await);
    assert!(!try_login(&d, disc(ChapConfig::new("discuser", "DoorsWrongTwo8"))).await);

    // What the CLI prints: the tree, the auth directories, saves.
    outputs += &d.cli(&["ls"]);
    outputs += &d.cli(&["ls", &format!("{acl}/auth")]);
    outputs += &d.cli(&["ls", "iscsi/discovery_auth"]);
    outputs += &d.cli(&["get", &format!("{acl}/auth/userid")]);
    outputs += &d.cli(&["config", "save"]);
    let copy = d.dir.path().join("copy.json");
    outputs += &d.cli(&["config", "save", copy.to_str().expect("utf-8")]);
    no_secret("CLI output", &outputs);

    // Refused commands that carry a secret: their errors do not repeat it.
    let refused = [
        // the mutual secret equal to the initiator's
        vec![
            "set".to_string(),
            format!("{acl}/auth/password_mutual"),
            ACL_SECRET.into(),
        ],
        // not a valid CHAP value (a space), a secret all the same
        vec![
            "set".into(),
            format!("{TPG}/auth/password"),
            format!("{TPG_SECRET} x"),
        ],
        // a misspelt leaf
        vec![
            "set".into(),
            format!("{acl}/auth/passwd"),
            ACL_SECRET.into(),
        ],
        vec![
            "create".into(),
            format!("{TPG}/acls/{}", iqn("other")),
            format!("password={ACL_SECRET}"),
        ],
    ];
    for args in &refused {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        no_secret(&format!("{args:?}"), &d.refused(&args));
    }

    // `get` of the secret's own leaf prints it (docs/cli.md "CHAP values", as LIO's configfs).
    assert_eq!(
        d.cli(&["get", &format!("{acl}/auth/password")]).trim(),
        ACL_SECRET
    );

    let log = d.log();
    assert!(
        log.contains("login complete") && log.contains("login failed"),
        "the logins are in the log"
    );
    no_secret("the daemon's log", &log);
}
