//! systemd's side of `Type=notify` (sd_notify(3)), played by the test: a datagram socket in
//! `NOTIFY_SOCKET`. READY=1 must come only when the daemon serves: at the moment it arrives
//! the portal accepts, the control socket answers, and the ALUA state and APTPL
//! registrations of the last run are back. Then WATCHDOG=1 at half of `WATCHDOG_USEC`,
//! STOPPING=1 on SIGTERM before the exit, and nothing after that but the exit. And
//! `systemd-analyze verify` on packaging/ironlun.service.

mod support;

use std::net::TcpStream;
use std::ops::Range;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ironlun_initiator::pr::RegisterFlags;
use support::*;

const PORTS: Range<u16> = 3870..3880;
const KEY: u64 = 0xfeed_0001;

/// What the daemon sent, with when, and what the test saw at the moment READY=1 arrived.
struct Heard {
    messages: Vec<(Duration, String)>,
    portal_at_ready: Option<bool>,
    alua_at_ready: Option<String>,
}

/// Collect datagrams until `quiet` passes without one after STOPPING=1 (or 40 s in all).
/// On READY=1, at once and before reading on: connect to the portal and run `alua show`.
fn listen(sock: UnixDatagram, d_addr: std::net::SocketAddr, state: &Path) -> Heard {
    let start = Instant::now();
    let mut heard = Heard {
        messages: Vec::new(),
        portal_at_ready: None,
        alua_at_ready: None,
    };
    sock.set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.lines().any(|l| l == "READY=1") && heard.portal_at_ready.is_none() {
                    heard.portal_at_ready = Some(TcpStream::connect(d_addr).is_ok());
                    let o = Command::new(BIN)
                        .arg("--state-dir")
                        .arg(state)
                        .args(["alua", "show", RAMDISK])
                        .output()
                        .expect("run alua show");
                    heard.alua_at_ready = Some(format!(
                        "{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    ));
                }
                heard.messages.push((start.elapsed(), msg));
            }
            Err(_) => {
                let stopped = heard.messages.iter().any(|(_, m)| m.contains("STOPPING=1"));
                if stopped || start.elapsed() > Duration::from_secs(40) {
                    return heard;
                }
            }
        }
    }
}

fn count(h: &Heard, line: &str) -> usize {
    h.messages
        .iter()
        .filter(|(_, m)| m.lines().any(|l| l == line))
        .count()
}

/// Index of the first message holding `line`.
fn first(h: &Heard, line: &str) -> Option<usize> {
    h.messages
        .iter()
        .position(|(_, m)| m.lines().any(|l| l == line))
}

/// RAM disks added to the saved config, each a LUN of tpgt_1, so that the restore takes a
/// while (about a millisecond each): a READY=1 sent before it would be seen early.
const EXTRA_LUS: usize = 400;

/// Add `n` 1 MiB RAM disks to config.json at `path`, each LUN `i` of the default TPG.
fn add_luns(path: &Path, n: usize) {
    let text = std::fs::read_to_string(path).expect("config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&text).expect("config.json parses");
    for i in 1..=n {
        cfg["storage_objects"]
            .as_array_mut()
            .expect("storage_objects")
            .push(serde_json::json!({
                "plugin": "ramdisk", "hba": 1, "name": format!("extra{i}"),
                "wwn": format!("00000000-0000-4000-8000-{i:012x}"), "size": 1 << 20,
                "vendor_id": "IRONLUN", "product_id": "RAMDISK-MCP", "revision": "1.0",
                "write_back": false, "readonly": false, "attributes": {},
            }));
        cfg["targets"][0]["tpgs"][0]["luns"]
            .as_array_mut()
            .expect("luns")
            .push(serde_json::json!({
                "index": i, "storage_object": format!("core/rd_mcp_1/extra{i}"),
            }));
    }
    std::fs::write(path, serde_json::to_vec(&cfg).expect("json")).expect("write config.json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_only_when_serving_then_watchdog_then_stopping() {
    let mut d = Daemon::start_in(PORTS);
    // Last run's state: an ALUA group in Active/Non-optimized, an APTPL registration.
    d.cli(&[
        "create",
        &format!("{RAMDISK}/alua/alua_west"),
        "tg_pt_gp_id=1",
    ]);
    d.cli(&[
        "set",
        &format!("{TPG}/lun/lun_0/alua_tg_pt_gp"),
        "alua_west",
    ]);
    d.cli(&["alua", "set-state", RAMDISK, "alua_west", "ano"]);
    let s = login(&d, normal("a")).await;
    let r = guard(
        "REGISTER",
        s.pr_register_ignore(0, KEY, &RegisterFlags::aptpl()),
    )
    .await
    .expect("REGISTER");
    assert_eq!(r.status, 0, "REGISTER: {r:?}");
    let _ = guard("logout", s.logout(0)).await;
    d.stop();
    add_luns(&d.state_dir().join("config.json"), EXTRA_LUS);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    let (addr, state) = (d.addr(), d.state_dir());
    let listener = std::thread::spawn(move || listen(sock, addr, &state));
    d.env.vars = vec![
        ("NOTIFY_SOCKET".into(), path.display().to_string()),
        ("WATCHDOG_USEC".into(), "200000".into()),
    ];
    d.restart();
    let s = login(&d, normal("a")).await;
    let keys = guard("READ KEYS", s.pr_read_keys(0))
        .await
        .expect("READ KEYS")
        .keys;
    assert_eq!(keys, vec![KEY], "APTPL registration restored");
    let _ = guard("logout", s.logout(0)).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    d.stop();
    let heard = listener.join().expect("listener");
    let shown: Vec<String> = heard
        .messages
        .iter()
        .map(|(t, m)| format!("{:>6} ms {}", t.as_millis(), m.replace('\n', " | ")))
        .collect();
    let shown = shown.join("\n");

    // READY=1 first, once, with a status line; the daemon was serving at that moment.
    assert_eq!(first(&heard, "READY=1"), Some(0), "READY=1 first:\n{shown}");
    assert_eq!(count(&heard, "READY=1"), 1, "{shown}");
    assert!(
        heard.messages[0]
            .1
            .contains(&format!("STATUS=serving {} LU(s)", EXTRA_LUS + 1)),
        "{shown}"
    );
    assert_eq!(heard.portal_at_ready, Some(true), "portal bound at READY=1");
    let alua = heard.alua_at_ready.clone().unwrap_or_default();
    assert!(
        alua.contains("alua_west (id 1)") && alua.contains("primary state: Active/NonOptimized"),
        "ALUA state restored at READY=1:\n{alua}"
    );
    // Watchdog pings every 100 ms while serving (about 1.5 s here).
    let stopping = first(&heard, "STOPPING=1").unwrap_or_else(|| panic!("no STOPPING=1:\n{shown}"));
    let pings = heard.messages[..stopping]
        .iter()
        .filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1"))
        .count();
    assert!(
        pings >= 5,
        "{pings} watchdog pings before STOPPING=1:\n{shown}"
    );
    // STOPPING=1 once, last but for pings the drain overlapped.
    assert_eq!(count(&heard, "STOPPING=1"), 1, "{shown}");
    for (_, m) in &heard.messages[stopping + 1..] {
        assert!(
            m.lines().all(|l| l == "WATCHDOG=1"),
            "after STOPPING=1: {m:?}\n{shown}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_watchdog_pings_when_the_watchdog_is_for_another_pid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(800)))
        .expect("timeout");
    let env = DaemonEnv {
        vars: vec![
            ("NOTIFY_SOCKET".into(), path.display().to_string()),
            ("WATCHDOG_USEC".into(), "100000".into()),
            ("WATCHDOG_PID".into(), "1".into()),
        ],
        ..DaemonEnv::default()
    };
    let mut d = Daemon::start_with(PORTS, env);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    d.stop();
    assert!(
        got.first().is_some_and(|m| m.contains("READY=1")),
        "{got:?}"
    );
    assert!(!got.iter().any(|m| m.contains("WATCHDOG=1")), "{got:?}");
}

/// The unit as shipped, with ExecStart pointed at the binary under test (verify checks that
/// the command exists).
#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing (CI installs systemd)"
        );
        eprintln!("systemd-analyze not found: skipped");
        return;
    };
    assert!(out.status.success());
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/ironlun.service"
    ))
    .expect("packaging/ironlun.service");
    for want in [
        "Type=notify",
        "ExecStart=/usr/local/bin/ironlun serve --state-dir /var/lib/ironlun",
        "StateDirectory=ironlun",
        "WatchdogSec=",
    ] {
        assert!(unit.contains(want), "unit lacks {want}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ironlun.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/ironlun", BIN)).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "verify: {text}"
    );
}
