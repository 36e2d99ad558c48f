//! CLI-level tests: the real `ironlun serve` on a temporary state directory and a port of our
//! own (3320-3339), driven by the real `ironlun` client commands.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_ironlun");
const T: &str = "iqn.2026-11.org.ironlun:t1";
const I: &str = "iqn.2026-11.org.example:host1";

struct Daemon {
    child: Child,
    dir: PathBuf,
    first_line: String,
}

impl Daemon {
    /// Start `ironlun serve` and wait until its control socket answers.
    fn start(dir: &Path, extra: &[&str]) -> Daemon {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--state-dir")
            .arg(dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ironlun serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send(first);
            for _ in lines {}
        });
        let mut d = Daemon {
            child,
            dir: dir.to_path_buf(),
            first_line: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if d.cli(&["ls", "core"]).status.success() {
                break;
            }
            assert!(Instant::now() < deadline, "daemon did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        let first_line = rx
            .recv_timeout(Duration::from_millis(500))
            .unwrap_or_default();
        d.first_line = first_line;
        d
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--state-dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .expect("run ironlun")
    }

    /// Run a command that must succeed; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run a command that must be refused with exit 2 and one line on stderr; returns it.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
        err
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(mut self) {
        // SAFETY: kill(2) on the pid of our own child process.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "daemon exit status {status}");
                return;
            }
            assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn empty_config(dir: &Path) -> PathBuf {
    let p = dir.join("empty.json");
    std::fs::write(&p, "{\"version\": 1}\n").expect("write empty config");
    p
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).is_ok()
}

#[test]
fn first_run_serves_the_default_ramdisk_in_demo_mode() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let d = Daemon::start(&state, &["--portal", "127.0.0.1:3320"]);
    assert_eq!(
        d.first_line,
        "iscsi://127.0.0.1:3320/iqn.2026-11.org.ironlun:default/0"
    );
    let tpg = "iscsi/iqn.2026-11.org.ironlun:default/tpgt_1";
    assert_eq!(
        d.ok(&["get", &format!("{tpg}/attrib/generate_node_acls")]),
        "1\n"
    );
    assert_eq!(
        d.ok(&["get", &format!("{tpg}/attrib/demo_mode_write_protect")]),
        "0\n"
    );
    assert_eq!(
        d.ok(&["get", &format!("{tpg}/lun/lun_0")]),
        "core/rd_mcp_0/ramdisk0\n"
    );
    assert_eq!(
        d.ok(&["get", "core/rd_mcp_0/ramdisk0/control"]),
        "size=1073741824\n"
    );
    assert!(listening(3320));
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: PathBuf| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(state.join("config.json")), 0o600);
    assert_eq!(mode(state.join("control.sock")), 0o600);
    d.stop();
    assert!(
        !state.join("control.sock").exists(),
        "socket removed on exit"
    );
}

#[test]
fn the_documented_example_session_works() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = empty_config(tmp.path());
    let d = Daemon::start(
        &tmp.path().join("state"),
        &["--config", cfg.to_str().expect("utf8")],
    );
    assert_eq!(d.first_line, "", "nothing to serve yet, no URL");
    let img = tmp.path().join("disk0.img");
    let tpg = format!("iscsi/{T}/tpgt_1");
    d.ok(&[
        "create",
        "core/fileio_0/disk0",
        &format!("path={}", img.display()),
        "size=1G",
    ]);
    assert_eq!(
        std::fs::metadata(&img).expect("image created").len(),
        1 << 30
    );
    assert_eq!(
        d.ok(&["create", &tpg]),
        format!("created iscsi/{T} and {tpg} (rtpi 1)\n")
    );
    d.ok(&["create", &format!("{tpg}/np/127.0.0.1:3321")]);
    d.ok(&[
        "create",
        &format!("{tpg}/lun/lun_0"),
        "dev=core/fileio_0/disk0",
    ]);
    d.ok(&["create", &format!("{tpg}/acls/{I}")]);
    d.ok(&[
        "create",
        &format!("{tpg}/acls/{I}/lun_0"),
        "tpg_lun=0",
        "write_protect=0",
    ]);
    d.ok(&["set", &format!("{tpg}/enable"), "1"]);
    let ls = d.ok(&["ls"]);
    for needle in [
        "core/\n  fileio_0/\n    disk0/\n",
        &format!("  {T}/\n    tpgt_1/\n      enable = 1\n      rtpi = 1\n"),
        "        lun_0 -> core/fileio_0/disk0\n",
        &format!("        {I}/\n"),
        "          lun_0 -> lun/lun_0\n",
        "        127.0.0.1:3321/\n",
    ] {
        assert!(ls.contains(needle), "missing {needle:?} in\n{ls}");
    }
    assert!(listening(3321));
    // Deleting the backstore takes its LUN and the mapping with it (targetcli behaviour).
    let out = d.ok(&["delete", "core/fileio_0/disk0"]);
    assert!(
        out.contains(&format!("{tpg}/lun/lun_0")) && out.contains(&format!("acls/{I}/lun_0")),
        "{out}"
    );
    assert!(d
        .ok(&["ls", &format!("{tpg}/lun")])
        .trim_end()
        .ends_with("lun/"));
    d.stop();
}

#[test]
fn bad_inputs_exit_2_with_one_line_and_change_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(&tmp.path().join("state"), &["--portal", "127.0.0.1:3322"]);
    let tpg = "iscsi/iqn.2026-11.org.ironlun:default/tpgt_1";
    let before = d.ok(&["ls"]);
    let saved_files = || {
        ["config.json", "config.journal"]
            .map(|f| std::fs::read(tmp.path().join("state").join(f)).unwrap_or_default())
    };
    let saved_before = saved_files();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "set".into(),
                format!("{tpg}/attrib/authentication"),
                "7".into(),
            ],
            "expected 0 or 1",
        ),
        (
            vec!["set".into(), format!("{tpg}/attrib/frobnicate"), "1".into()],
            "unknown attribute",
        ),
        (
            vec!["set".into(), format!("{tpg}/rtpi"), "9".into()],
            "disabled",
        ),
        (
            vec![
                "set".into(),
                "core/rd_mcp_0/ramdisk0/attrib/no_such_attribute".into(),
                "1".into(),
            ],
            "attrib",
        ),
        (
            vec![
                "set".into(),
                "core/rd_mcp_0/ramdisk0/wwn/vendor_id".into(),
                "X".into(),
            ],
            "exported",
        ),
        (vec!["get".into(), "iscsi/nowhere".into()], "no such object"),
        (
            vec!["get".into(), format!("{tpg}/lun/lun_9")],
            "no such object",
        ),
        (
            vec![
                "create".into(),
                "core/pscsi_0/sg".into(),
                "dev=/dev/null".into(),
            ],
            "not a SCSI generic node (give /dev/sgN, a SCSI disk /dev/sdX or H:C:T:L)",
        ),
        (
            vec!["create".into(), "core/rd_mcp_1/r".into(), "size=12Q".into()],
            "invalid size",
        ),
        (
            vec![
                "create".into(),
                "core/rd_mcp_1/r".into(),
                "size=1M".into(),
                "path=/x".into(),
            ],
            "path",
        ),
        (
            vec![
                "create".into(),
                "iscsi/iqn.2026-11.org.ironlun:Upper/tpgt_1".into(),
            ],
            "lower case",
        ),
        (
            vec!["create".into(), format!("{tpg}/np/127.0.0.1:99999")],
            "<port>",
        ),
        (
            vec![
                "create".into(),
                format!("{tpg}/lun/lun_1"),
                "dev=core/rd_mcp_0/nothing".into(),
            ],
            "no such device",
        ),
        (
            vec![
                "create".into(),
                format!("{tpg}/acls/{I}/lun_0"),
                "tpg_lun=0".into(),
            ],
            "no such ACL",
        ),
        (vec!["delete".into(), "core".into()], "cannot be deleted"),
        (
            vec![
                "link".into(),
                "core/rd_mcp_0/ramdisk0".into(),
                format!("{tpg}/lun/lun_0"),
            ],
            "already exists",
        ),
        (
            vec![
                "config".into(),
                "restore".into(),
                "/nonexistent/x.json".into(),
            ],
            "cannot read",
        ),
        // Refused by the engine or the backstore at apply time: still exit 2, nothing changed.
        (
            vec![
                "set".into(),
                "core/rd_mcp_0/ramdisk0/attrib/block_size".into(),
                "4096".into(),
            ],
            "block_size",
        ),
        (
            vec![
                "set".into(),
                "core/rd_mcp_0/ramdisk0/attrib/queue_depth".into(),
                "0".into(),
            ],
            "queue_depth",
        ),
        (
            vec![
                "create".into(),
                "core/fileio_0/f".into(),
                "path=/nonexistent-dir/f.img".into(),
                "size=1M".into(),
            ],
            "/nonexistent-dir/f.img",
        ),
    ];
    for (args, needle) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = d.refused(&args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // Usage errors are bad input too.
    assert_eq!(d.cli(&["set", "only-a-path"]).status.code(), Some(2));
    assert_eq!(d.ok(&["ls"]), before);
    assert_eq!(saved_files(), saved_before);
    d.stop();
}

#[test]
fn daemon_not_running_is_exit_1() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .arg("--state-dir")
        .arg(tmp.path())
        .args(["ls"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the daemon") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn restart_keeps_the_config_including_rtpis() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let cfg = empty_config(tmp.path());
    let d = Daemon::start(&state, &["--config", cfg.to_str().expect("utf8")]);
    d.ok(&[
        "create",
        "core/rd_mcp_3/r",
        "size=8M",
        "wwn=restart-serial-1",
    ]);
    d.ok(&["create", &format!("iscsi/{T}/tpgt_1")]);
    d.ok(&["create", &format!("iscsi/{T}/tpgt_2"), "rtpi=77"]);
    d.ok(&["set", &format!("iscsi/{T}/tpgt_1/rtpi"), "42"]);
    d.ok(&["create", &format!("iscsi/{T}/tpgt_1/np/127.0.0.1:3323")]);
    d.ok(&[
        "create",
        &format!("iscsi/{T}/tpgt_1/lun/lun_4"),
        "dev=core/rd_mcp_3/r",
    ]);
    d.ok(&[
        "set",
        &format!("iscsi/{T}/tpgt_1/param/MaxConnections"),
        "1",
    ]);
    d.ok(&["set", &format!("iscsi/{T}/tpgt_1/auth/userid"), "alice"]);
    d.ok(&[
        "set",
        &format!("iscsi/{T}/tpgt_1/auth/password"),
        "alicesecret12",
    ]);
    d.ok(&["set", &format!("iscsi/{T}/tpgt_1/enable"), "1"]);
    let before = d.ok(&["ls"]);
    d.stop();

    // --portal and --config are ignored once the state directory has a config.
    let d = Daemon::start(&state, &["--portal", "127.0.0.1:3339"]);
    assert_eq!(d.first_line, format!("iscsi://127.0.0.1:3323/{T}/4"));
    assert_eq!(d.ok(&["get", &format!("iscsi/{T}/tpgt_1/rtpi")]), "42\n");
    assert_eq!(d.ok(&["get", &format!("iscsi/{T}/tpgt_2/rtpi")]), "77\n");
    assert_eq!(
        d.ok(&["get", &format!("iscsi/{T}/tpgt_1/auth/password")]),
        "alicesecret12\n"
    );
    assert_eq!(
        d.ok(&["get", "core/rd_mcp_3/r/wwn/vpd_unit_serial"]),
        "restart-serial-1\n"
    );
    assert_eq!(d.ok(&["ls"]), before);
    assert!(listening(3323));
    d.stop();
}

#[test]
fn config_save_and_restore() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(&tmp.path().join("state"), &["--portal", "127.0.0.1:3324"]);
    let copy = tmp.path().join("copy.json");
    d.ok(&["config", "save", copy.to_str().expect("utf8")]);
    let before = d.ok(&["ls"]);
    d.ok(&["delete", "iscsi/iqn.2026-11.org.ironlun:default"]);
    d.ok(&["create", "core/rd_mcp_1/extra", "size=1M"]);
    assert!(!listening(3324), "portal closed with its target");

    // A file with one bad field is refused whole.
    let text = std::fs::read_to_string(&copy).expect("read copy");
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, text.replace("\"tag\": 1", "\"tag\": 0")).expect("write bad");
    let mid = d.ok(&["ls"]);
    let err = d.refused(&["config", "restore", bad.to_str().expect("utf8")]);
    assert!(
        err.contains("tpgt_0") && err.contains("nothing changed"),
        "{err}"
    );
    assert_eq!(d.ok(&["ls"]), mid);

    d.ok(&["config", "restore", copy.to_str().expect("utf8")]);
    assert_eq!(d.ok(&["ls"]), before);
    assert!(listening(3324));
    d.stop();
}

#[test]
fn a_portal_that_cannot_be_bound_is_refused_and_rolled_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(&tmp.path().join("state"), &["--portal", "127.0.0.1:3325"]);
    let _busy = std::net::TcpListener::bind("127.0.0.1:3326").expect("occupy 3326");
    let before = d.ok(&["ls"]);
    let err = d.refused(&[
        "create",
        "iscsi/iqn.2026-11.org.ironlun:default/tpgt_1/np/127.0.0.1:3326",
    ]);
    assert!(err.contains("3326"), "{err}");
    assert_eq!(d.ok(&["ls"]), before);
    assert!(listening(3325), "the existing portal keeps serving");

    // A restore that exports a device on a new TPG and then fails on the busy portal is undone
    // entirely: the device is not left exported (the engine refuses block_size while exported).
    d.ok(&["create", "core/rd_mcp_0/spare", "size=1M"]);
    let saved = tmp.path().join("saved.json");
    d.ok(&["config", "save", saved.to_str().expect("utf8")]);
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).expect("read")).expect("json");
    let tpgs = json["targets"][0]["tpgs"].as_array_mut().expect("tpgs");
    tpgs.push(serde_json::json!({
        "tag": 2, "enable": true, "rtpi": 9,
        "portals": [{"ip_address": "127.0.0.1", "port": 3326}],
        "luns": [{"index": 0, "storage_object": "core/rd_mcp_0/spare"}]
    }));
    std::fs::write(&saved, json.to_string()).expect("write");
    let before = d.ok(&["ls"]);
    let err = d.refused(&["config", "restore", saved.to_str().expect("utf8")]);
    assert!(
        err.contains("3326") && err.contains("nothing changed"),
        "{err}"
    );
    assert_eq!(d.ok(&["ls"]), before);
    d.ok(&["set", "core/rd_mcp_0/spare/attrib/block_size", "4096"]);
    d.stop();
}

/// A real initiator (libiscsi's iscsi-inq / iscsi-ls) sees the device and live changes.
#[test]
fn real_initiator_sees_identity_and_new_luns_live() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(&tmp.path().join("state"), &["--portal", "127.0.0.1:3327"]);
    let url = "iscsi://127.0.0.1:3327/iqn.2026-11.org.ironlun:default/0";
    let inq = Command::new("iscsi-inq")
        .arg(url)
        .output()
        .expect("iscsi-inq (libiscsi-bin) must be installed");
    let text = String::from_utf8_lossy(&inq.stdout);
    assert!(
        inq.status.success(),
        "iscsi-inq: {}",
        String::from_utf8_lossy(&inq.stderr)
    );
    assert!(
        text.contains("IRONLUN") && text.contains("RAMDISK-MCP"),
        "{text}"
    );

    d.ok(&["create", "core/rd_mcp_0/second", "size=4M"]);
    d.ok(&[
        "create",
        "iscsi/iqn.2026-11.org.ironlun:default/tpgt_1/lun/lun_1",
        "dev=core/rd_mcp_0/second",
    ]);
    let ls = Command::new("iscsi-ls")
        .args(["-s", "iscsi://127.0.0.1:3327"])
        .output()
        .expect("iscsi-ls (libiscsi-bin) must be installed");
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(
        ls.status.success(),
        "iscsi-ls: {}",
        String::from_utf8_lossy(&ls.stderr)
    );
    assert!(text.contains("Lun:0") && text.contains("Lun:1"), "{text}");
    d.stop();
}

fn inq(initiator: &str, url: &str) -> (bool, String) {
    let out = Command::new("iscsi-inq")
        .args(["-i", initiator, url])
        .output()
        .expect("iscsi-inq (libiscsi-bin) must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// ACLs, mapped LUN numbers and per-ACL CHAP reach the engine and the fabric.
#[test]
fn acls_and_chap_are_enforced_for_a_real_initiator() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = empty_config(tmp.path());
    let d = Daemon::start(
        &tmp.path().join("state"),
        &["--config", cfg.to_str().expect("utf8")],
    );
    let tpg = format!("iscsi/{T}/tpgt_1");
    d.ok(&[
        "create",
        "core/rd_mcp_0/r",
        "size=16M",
        "product_id=ACLDISK",
    ]);
    d.ok(&["create", &tpg]);
    d.ok(&["create", &format!("{tpg}/np/127.0.0.1:3328")]);
    d.ok(&["create", &format!("{tpg}/lun/lun_0"), "dev=core/rd_mcp_0/r"]);
    d.ok(&["create", &format!("{tpg}/acls/{I}")]);
    d.ok(&[
        "link",
        &format!("{tpg}/lun/lun_0"),
        &format!("{tpg}/acls/{I}/lun_5"),
    ]);
    d.ok(&["set", &format!("{tpg}/enable"), "1"]);

    let url = format!("iscsi://127.0.0.1:3328/{T}/5");
    let (ok, text) = inq(I, &url);
    assert!(ok && text.contains("ACLDISK"), "{text}");
    let (ok, text) = inq("iqn.2026-11.org.example:stranger", &url);
    assert!(!ok, "an initiator without ACL must not log in: {text}");

    d.ok(&["set", &format!("{tpg}/acls/{I}/auth/userid"), "host1user"]);
    let echoed = d.ok(&[
        "set",
        &format!("{tpg}/acls/{I}/auth/password"),
        "host1secret12",
    ]);
    assert!(!echoed.contains("host1secret12"), "{echoed}");
    d.ok(&["set", &format!("{tpg}/attrib/authentication"), "1"]);
    let (ok, _) = inq(I, &url);
    assert!(!ok, "CHAP is required now");
    let (ok, _) = inq(
        I,
        &format!("iscsi://host1user%wrongsecret1@127.0.0.1:3328/{T}/5"),
    );
    assert!(!ok, "a wrong secret must fail");
    let (ok, text) = inq(
        I,
        &format!("iscsi://host1user%host1secret12@127.0.0.1:3328/{T}/5"),
    );
    assert!(ok && text.contains("ACLDISK"), "{text}");
    d.stop();
}

#[test]
fn a_broken_saved_config_stops_the_daemon_with_exit_1() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::write(
        state.join("config.json"),
        "{\"version\": 1, \"targets\": [{\"wwn\": \"bogus\"}]}",
    )
    .expect("write");
    support::serve_refuses_config(&state, "bogus");
}
