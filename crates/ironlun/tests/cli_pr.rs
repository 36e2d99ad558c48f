//! CLI-level tests of persistent reservations in the control plane: the `pr/` tree,
//! `ironlun pr show` / `pr clear`, and the APTPL file (`<state-dir>/pr/aptpl_<serial>`)
//! restored at start and on device creation, or refused when corrupt. The real daemon on
//! ports 3520-3539. (PR traffic through iSCSI is tested end to end elsewhere.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Daemon, BIN, TARGET};

const PORTS: Range<u16> = 3520..3540;
const DEV: &str = "core/rd_mcp_0/ramdisk0";
const HOST: &str = "iqn.2026-11.org.example:pr-host";

fn serial(d: &Daemon, dev: &str) -> String {
    d.cli(&["get", &format!("{dev}/wwn/vpd_unit_serial")])
        .trim()
        .to_string()
}

fn aptpl_path(d: &Daemon, serial: &str) -> PathBuf {
    d.state_dir().join("pr").join(format!("aptpl_{serial}"))
}

/// An APTPL file as ironlun writes it: `host` (ISID 23d000000001) registered with key
/// 0xabc through tpgt_1 of the default target, holding an Exclusive Access reservation.
fn aptpl_text(serial: &str) -> String {
    format!(
        r#"{{
  "format": "ironlun-aptpl",
  "version": 1,
  "unit_serial": "{serial}",
  "state": {{
    "generation": 5,
    "aptpl": true,
    "registrations": [
      {{ "key": 2748, "initiator": "{HOST}", "isid": [35, 208, 0, 0, 0, 1],
         "target": "{TARGET}", "tpgt": 1, "rtpi": 1, "all_tg_pt": false }}
    ],
    "reservation": {{ "holder": 0, "kind": 3 }}
  }}
}}
"#
    )
}

fn write_file(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir pr");
    std::fs::write(path, text).expect("write aptpl file");
}

/// `ironlun serve` on `d`'s state directory, expected to refuse to start: its exit status
/// and stderr.
fn start_refused(d: &Daemon) -> (Option<i32>, String) {
    let err = d.dir.path().join("refused.log");
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--state-dir")
        .arg(d.state_dir())
        .arg("--portal")
        .arg(format!("127.0.0.1:{}", d.port))
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&err).expect("log")))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon started although it should have refused");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code(),
        std::fs::read_to_string(&err).expect("stderr"),
    )
}

#[test]
fn fresh_device_shows_empty_pr_state_read_only() {
    let d = Daemon::start_in(PORTS);
    let serial = serial(&d, DEV);
    let out = d.cli(&["pr", "show", DEV]);
    assert!(
        out.starts_with(&format!("{DEV} (unit serial {serial})\n")),
        "{out}"
    );
    for needle in [
        "APTPL:          not activated".to_string(),
        format!(
            "APTPL file:     {} (absent)",
            aptpl_path(&d, &serial).display()
        ),
        "PRgeneration:   0x00000000".to_string(),
        "Reservation:    none".to_string(),
        "Registrations:  0".to_string(),
    ] {
        assert!(out.contains(&needle), "missing {needle:?} in\n{out}");
    }
    let pr = format!("{DEV}/pr");
    assert_eq!(
        d.cli(&["get", &format!("{pr}/res_pr_generation")]),
        "0x00000000\n"
    );
    assert_eq!(
        d.cli(&["get", &format!("{pr}/res_holder")]),
        "No SPC-3 Reservation holder\n"
    );
    assert_eq!(
        d.cli(&["get", &format!("{pr}/res_pr_registered_i_pts")]),
        "SPC-3 PR Registrations:\nNone\n"
    );
    assert_eq!(
        d.cli(&["get", &format!("{pr}/res_aptpl_active")]),
        "APTPL Bit Status: Disabled\n"
    );
    let ls = d.cli(&["ls", &pr]);
    for leaf in [
        "res_aptpl_active",
        "res_holder",
        "res_pr_all_tgt_pts",
        "res_pr_generation",
        "res_pr_holder_tg_port",
        "res_pr_registered_i_pts",
        "res_pr_type",
        "res_type",
    ] {
        assert!(ls.contains(&format!("  {leaf} = ")), "{leaf} in\n{ls}");
        let e = d.refused(&["set", &format!("{pr}/{leaf}"), "1"]);
        assert!(e.contains("read-only"), "{e}");
    }
    let e = d.refused(&["pr", "show", "core/rd_mcp_0/nope"]);
    assert!(e.contains("no such device"), "{e}");
    let e = d.refused(&["pr", "show", "iscsi/whatever"]);
    assert!(e.contains("not a device path"), "{e}");
}

#[test]
fn pr_clear_needs_force() {
    let d = Daemon::start_in(PORTS);
    let e = d.refused(&["pr", "clear", DEV]);
    assert!(e.contains("--force"), "{e}");
    assert!(e.contains("0 registration(s)"), "says what would go: {e}");
    let e = d.refused(&["pr", "clear", "core/rd_mcp_0/nope", "--force"]);
    assert!(e.contains("no such device"), "{e}");
    // A missing device path is a usage error (exit 2 from the parser).
    let o = d.cli_output(&["pr", "clear"]);
    assert_eq!(o.status.code(), Some(2));
    let out = d.cli(&["pr", "clear", DEV, "--force"]);
    assert!(
        out.starts_with(&format!("cleared {DEV}: dropped PRgeneration 0x00000000")),
        "{out}"
    );
}

#[test]
fn corrupt_aptpl_file_stops_the_daemon_naming_the_file() {
    let mut d = Daemon::start_in(PORTS);
    let serial = serial(&d, DEV);
    d.stop();
    let file = aptpl_path(&d, &serial);
    for (text, problem) in [
        (
            "{\"format\": \"ironlun-aptpl\", \"version\": 1, \"unit_".to_string(),
            "not valid JSON",
        ),
        (
            aptpl_text(&serial).replace("\"version\": 1", "\"version\": 9"),
            "format version 9 is not supported",
        ),
        (
            aptpl_text(&serial).replace("\"holder\": 0", "\"holder\": 4"),
            "holder 4 is not one of the 1 registrations",
        ),
    ] {
        write_file(&file, &text);
        let (code, stderr) = start_refused(&d);
        assert_eq!(code, Some(1), "{stderr}");
        // Among the log lines, one error line for the user names the device, the file and
        // the problem.
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("ironlun: "))
            .collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(lines[0].contains(&file.display().to_string()), "{stderr}");
        assert!(lines[0].contains(problem), "{problem}: {stderr}");
        assert!(lines[0].contains(DEV), "{stderr}");
        // It never got as far as binding the portal.
        assert!(!stderr.contains("serving"), "{stderr}");
        // The file is left for the administrator to look at.
        assert_eq!(std::fs::read_to_string(&file).expect("kept"), text);
    }
    // Removed, the daemon starts again.
    std::fs::remove_file(&file).expect("rm");
    d.restart();
    assert!(d.cli(&["pr", "show", DEV]).contains("Registrations:  0"));
}

#[test]
fn aptpl_file_is_restored_at_start() {
    let mut d = Daemon::start_in(PORTS);
    let serial = serial(&d, DEV);
    d.stop();
    let file = aptpl_path(&d, &serial);
    write_file(&file, &aptpl_text(&serial));
    d.restart();
    let out = d.cli(&["pr", "show", DEV]);
    for needle in [
        "APTPL:          activated".to_string(),
        format!("APTPL file:     {} (present)", file.display()),
        "PRgeneration:   0x00000005".to_string(),
        format!(
            "Reservation:    Exclusive Access (type 3), scope LU, held by {HOST},i,0x23d000000001"
        ),
        "Registrations:  1".to_string(),
        "#1  [reservation holder]".to_string(),
        "key:            0x0000000000000abc".to_string(),
        format!("target port:    {TARGET},t,0x0001 (RTPI 1, LUN 0)"),
    ] {
        assert!(out.contains(&needle), "missing {needle:?} in\n{out}");
    }
    assert_eq!(
        d.cli(&["get", &format!("{DEV}/pr/res_pr_type")]),
        "SPC-3 Reservation Type: Exclusive Access\n"
    );
    assert_eq!(
        d.cli(&["get", &format!("{DEV}/pr/res_pr_holder_tg_port")]),
        format!("SPC-3 Reservation: iSCSI Target Node Endpoint: {TARGET}\nSPC-3 Reservation: Relative Port Identifier Tag: 1 iSCSI Portal Group Tag: 1 iSCSI Logical Unit: 0\n")
    );
}

#[test]
fn created_devices_pick_up_their_aptpl_file_and_deleted_ones_leave_it() {
    let d = Daemon::start_in(PORTS);
    let dev = "core/rd_mcp_1/prdisk";
    let serial = "ironlun-pr-test-0001";
    let file = aptpl_path(&d, serial);
    // A corrupt file refuses the creation (nothing changes) ...
    write_file(&file, "garbage");
    let e = d.refused(&["create", dev, "size=1M", &format!("wwn={serial}")]);
    assert!(
        e.contains(&file.display().to_string()) && e.contains("not valid JSON"),
        "{e}"
    );
    assert!(
        d.cli_output(&["get", &format!("{dev}/wwn/vpd_unit_serial")])
            .status
            .code()
            == Some(2)
    );
    // ... a valid one is restored into the new device.
    write_file(&file, &aptpl_text(serial));
    d.cli(&["create", dev, "size=1M", &format!("wwn={serial}")]);
    let out = d.cli(&["pr", "show", dev]);
    assert!(out.contains("Registrations:  1"), "{out}");
    assert!(
        out.contains(&format!("initiator port: {HOST},i,0x23d000000001")),
        "{out}"
    );
    // Deleting the device keeps the file (documented), so the state comes back with it.
    d.cli(&["delete", dev]);
    assert!(file.exists(), "the APTPL file is kept on delete");
    d.cli(&["create", dev, "size=1M", &format!("wwn={serial}")]);
    assert!(d.cli(&["pr", "show", dev]).contains("Registrations:  1"));
}

/// PERSISTENT RESERVE OUT REGISTER (SPC-4 §6.16) from `s` on `lun`: service action key
/// `key`, APTPL bit `aptpl`. Hand-built, so this test depends on nothing but the wire format.
async fn register(s: &ironlun_initiator::Session, lun: u64, key: u64, aptpl: bool) -> u8 {
    let mut cdb = [0u8; 10];
    cdb[0] = 0x5f; // PERSISTENT RESERVE OUT, service action 0 = REGISTER
    cdb[5..9].copy_from_slice(&24u32.to_be_bytes());
    let mut params = vec![0u8; 24];
    params[8..16].copy_from_slice(&key.to_be_bytes());
    params[20] = u8::from(aptpl);
    let r = support::guard("PR OUT", s.command(lun, &cdb, Some(params), 0, 0))
        .await
        .expect("PR OUT");
    r.status
}

#[tokio::test]
async fn force_pr_aptpl_persists_through_the_store_and_survives_kill9() {
    let mut d = Daemon::start_in(PORTS);
    let dev = "core/rd_mcp_1/forced";
    d.cli(&["create", dev, "size=1M"]);
    d.cli(&["set", &format!("{dev}/attrib/force_pr_aptpl"), "1"]);
    d.cli(&[
        "create",
        &format!("{}/lun/lun_1", support::TPG),
        &format!("dev={dev}"),
    ]);
    let serial = serial(&d, dev);
    let file = aptpl_path(&d, &serial);
    assert!(!file.exists());

    let s = support::login_at(d.addr(), support::normal("forced"), 1).await;
    // APTPL=0 in the command, but the device forces persistence.
    assert_eq!(register(&s, 1, 0x1234, false).await, 0, "REGISTER GOOD");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("APTPL file written"))
            .expect("json");
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["unit_serial"], serial.as_str());
    assert_eq!(saved["state"]["registrations"][0]["key"], 0x1234);
    assert_eq!(
        saved["state"]["registrations"][0]["initiator"],
        support::iqn("forced")
    );
    let dmode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(file.parent().expect("pr dir"))
            .expect("pr dir")
            .permissions(),
    ) & 0o777;
    assert_eq!(dmode, 0o700);
    drop(s);

    d.kill9();
    d.restart();
    let out = d.cli(&["pr", "show", dev]);
    assert!(out.contains("Registrations:  1"), "{out}");
    assert!(out.contains("key:            0x0000000000001234"), "{out}");
    assert!(out.contains("(present)"), "{out}");
    assert_eq!(
        d.cli(&["get", &format!("{dev}/pr/res_aptpl_active")]),
        "APTPL Bit Status: Activated\n"
    );

    // The administrator's clear is persisted too: after another restart nothing comes back.
    let out = d.cli(&["pr", "clear", dev, "--force"]);
    assert!(out.contains("1 registration(s)"), "{out}");
    assert!(
        out.contains(&format!("{} key 0x0000000000001234", "t,0x0001")),
        "{out}"
    );
    d.kill9();
    d.restart();
    let out = d.cli(&["pr", "show", dev]);
    assert!(out.contains("Registrations:  0"), "{out}");
    assert!(out.contains("PRgeneration:   0x00000002"), "{out}");
}
