//! `ironlun sessions [--detail]` and `ironlun status` against a running daemon with a real
//! session: what they show follows logins, logouts and PR changes.

mod support;

use std::ops::Range;
use std::time::{Duration, Instant};

use ironlun_initiator::pr::RegisterFlags;
use support::*;

const PORTS: Range<u16> = 3890..3894;

/// Wait (bounded) until `ironlun sessions` satisfies `ok`.
fn sessions_until(d: &Daemon, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = d.cli(&["sessions"]);
        if ok(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "sessions never became as expected:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_status_follow_logins_and_reservations() {
    let d = Daemon::start_in(PORTS);
    assert_eq!(d.cli(&["sessions"]).trim(), "(no open sessions)");

    let s = login(&d, normal("a")).await;
    let out = sessions_until(&d, |o| o.contains(&iqn("a")));
    for line in [
        format!("  name: {} (NOT AUTHENTICATED)", iqn("a")),
        format!("  target: {TARGET} tpgt: 1"),
        format!("    mapped-lun: 0 backstore: {RAMDISK} mode: rw"),
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
    assert!(
        out.contains(&format!("portal: {} cid: 0", d.addr())),
        "{out}"
    );
    // Command counts follow the I/O done: 3 READs and 2 WRITEs more.
    let count = |o: &str, what: &str| -> u64 {
        let line = o
            .lines()
            .find(|l| l.starts_with("  commands: "))
            .unwrap_or_else(|| panic!("{o}"));
        let at = line
            .find(&format!("{what} "))
            .unwrap_or_else(|| panic!("{line}"))
            + what.len()
            + 1;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"))
    };
    let (r0, w0) = (count(&out, "read"), count(&out, "write"));
    for lba in 0..3 {
        good(s.read16(0, lba, 1, 512).await, "READ(16)");
    }
    for lba in 0..2 {
        good(
            s.write16(0, lba, vec![7u8; 512], 512, false).await,
            "WRITE(16)",
        );
    }
    let out = d.cli(&["sessions"]);
    assert_eq!(
        (count(&out, "read"), count(&out, "write")),
        (r0 + 3, w0 + 2),
        "{out}"
    );
    let detail = d.cli(&["sessions", "--detail"]);
    assert!(
        detail.contains("header digest: None data digest: None"),
        "{detail}"
    );
    let p = s.params();
    for kv in [
        format!("MaxBurstLength={}", p.max_burst_length),
        format!("FirstBurstLength={}", p.first_burst_length),
        format!("MaxConnections={}", p.max_connections),
    ] {
        assert!(detail.contains(&kv), "missing {kv} in\n{detail}");
    }

    let r = guard(
        "REGISTER",
        s.pr_register_ignore(0, 0xabc, &RegisterFlags::default()),
    )
    .await
    .expect("REGISTER");
    assert_eq!(r.status, 0, "{r:?}");
    let st = d.cli(&["status"]);
    for line in [
        format!("portals: {}", d.addr()),
        "sessions: 1 normal, 0 discovery; 1 connection(s)".to_string(),
        format!(
            "  {TARGET}/tpgt_1 enabled: 1 LUN(s), 0 ACL(s) + demo mode, 1 portal(s), 1 session(s)"
        ),
    ] {
        assert!(st.lines().any(|l| l == line), "missing {line:?} in\n{st}");
    }
    let lu = st
        .lines()
        .find(|l| l.starts_with(&format!("  {RAMDISK}: ")))
        .unwrap_or_else(|| panic!("no LU line in\n{st}"));
    assert!(
        lu.contains("1.0 GiB") && lu.contains("1 export(s), 1 session(s); PR: 1 registration(s)"),
        "{lu}"
    );

    let _ = guard("logout", s.logout(0)).await;
    let out = sessions_until(&d, |o| !o.contains(&iqn("a")));
    assert_eq!(out.trim(), "(no open sessions)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_with_control_characters_is_refused_at_login() {
    let d = Daemon::start_in(PORTS);
    for bad in [
        "iqn.2026-12.org.x:a\nname: forged",
        "iqn.2026-12.org.x:\x1b[2Jb",
    ] {
        let cfg = ironlun_initiator::LoginConfig::normal(bad, TARGET);
        let e = ironlun_initiator::session::Session::login(d.addr(), &cfg)
            .await
            .err()
            .unwrap_or_else(|| panic!("{bad:?} was let in"));
        assert_eq!(e.login_status(), Some(0x0200), "{bad:?}: {e}");
    }
    assert_eq!(d.cli(&["sessions"]).trim(), "(no open sessions)");
}
