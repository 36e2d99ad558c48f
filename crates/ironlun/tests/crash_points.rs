//! Crash consistency of every persistence step (issue 12): the daemon, aborted at each crash
//! point of saving `config.json`, appending a change to `config.journal` (issue 16) or a
//! device's APTPL file (crates/control/src/failpoint.rs),
//! comes back with the old state or the new one, never a torn or lost one, and without the
//! temp files of the interrupted save. Which one is fixed by the point: before the rename the
//! old, from the rename on the new. Needs the daemon built with its crash points:
//! `cargo test -p ironlun --features failpoints --test crash_points`. Ports 3800-3809.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ops::Range;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use ironlun_initiator::pr::RegisterFlags;
use ironlun_initiator::Session;
use support::*;

const PORTS: Range<u16> = 3800..3810;
const K1: u64 = 0x1111;
const K2: u64 = 0x2222;

/// The steps of one atomic save, in order; `true`: the new content is in place from it on.
const SAVE_POINTS: [(&str, bool); 6] = [
    ("tmp-created", false),
    ("tmp-half", false),
    ("tmp-written", false),
    ("tmp-synced", false),
    ("renamed", true),
    ("dir-synced", true),
];

/// A daemon that reads its crash point from a file beside (not in) its state directory.
fn daemon() -> (Daemon, PathBuf) {
    let mut d = Daemon::start_in(PORTS);
    let arm = d.dir.path().join("failpoint");
    d.stop();
    d.env
        .vars
        .push(("IRONLUN_FAILPOINTS".into(), arm.to_string_lossy().into()));
    d.restart();
    (d, arm)
}

/// The daemon hit `point` and aborted: reap it, disarm, restart, and check that no temp
/// file of the cut-short save is left.
fn crashed_and_restarted(d: &mut Daemon, arm: &Path, point: &str) {
    let st = d.wait_exit();
    assert_eq!(
        st.signal(),
        Some(libc::SIGABRT),
        "{point}: the daemon did not abort there ({st}): {}",
        d.log_tail(20)
    );
    std::fs::remove_file(arm).expect("disarm");
    d.restart();
    // The new daemon's own saves may be under way: only another process' temp files count.
    let own = format!(".tmp.{}.", d.pid());
    for dir in [d.state_dir(), d.state_dir().join("pr")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                !name.contains(".tmp.") || name.contains(&own),
                "{point}: temp file {name} left in {}",
                dir.display()
            );
        }
    }
}

#[test]
fn config_saves_cut_short_leave_the_old_or_the_new_config() {
    let (mut d, arm) = daemon();
    // A new target is a change of the whole tree: config.json is written whole.
    for (step, new) in SAVE_POINTS {
        let point = format!("config.{step}");
        let target = format!("iscsi/iqn.2026-12.org.ironlun:{step}");
        std::fs::write(&arm, &point).expect("arm");
        let out = d.cli_output(&["create", &target]);
        assert!(!out.status.success(), "{point}: the change was answered OK");
        crashed_and_restarted(&mut d, &arm, &point);
        let listed = d.cli(&["ls", "iscsi"]);
        assert_eq!(
            listed.contains(step),
            new,
            "{point}: expected the {} config:\n{listed}",
            if new { "new" } else { "old" }
        );
    }
    // A change answered OK after all that is saved.
    d.cli(&["create", "iscsi/iqn.2026-12.org.ironlun:last"]);
    d.stop();
    d.restart();
    assert!(d.cli(&["ls", "iscsi"]).contains("last"));
}

/// The steps of appending one change to the journal; `true`: the restarted daemon has the
/// change. Half a record is torn and ignored. A whole record not yet synced is in the page
/// cache, which a process crash does not lose (a power loss could: then it is torn or absent,
/// the old config; never half of it).
const JOURNAL_POINTS: [(&str, bool); 3] = [("half", false), ("written", true), ("synced", true)];

#[test]
fn journal_appends_cut_short_leave_the_old_or_the_new_config() {
    let (mut d, arm) = daemon();
    // Changes already in the journal before each crash stay.
    d.cli(&["create", "core/rd_mcp_1/before", "size=1M"]);
    for (step, new) in JOURNAL_POINTS {
        let point = format!("journal.{step}");
        let dev = format!("core/rd_mcp_1/j_{step}");
        std::fs::write(&arm, &point).expect("arm");
        let out = d.cli_output(&["create", &dev, "size=1M"]);
        assert!(!out.status.success(), "{point}: the change was answered OK");
        crashed_and_restarted(&mut d, &arm, &point);
        let listed = d.cli(&["ls", "core"]);
        assert!(
            listed.contains("before"),
            "{point}: an earlier change was lost:\n{listed}"
        );
        assert_eq!(
            listed.contains(&format!("j_{step}")),
            new,
            "{point}: expected the {} config:\n{listed}",
            if new { "new" } else { "old" }
        );
        // The journal goes on after the cut-off record.
        let next = format!("core/rd_mcp_1/after_{step}");
        d.cli(&["create", &next, "size=1M"]);
        d.kill9();
        d.restart();
        assert!(
            d.cli(&["ls", "core"]).contains(&format!("after_{step}")),
            "{point}"
        );
    }
}

async fn keys(d: &Daemon) -> Vec<u64> {
    let s = login(d, normal("a")).await;
    let k = guard("READ KEYS", s.pr_read_keys(0))
        .await
        .expect("READ KEYS")
        .keys;
    let _ = guard("logout", s.logout(0)).await;
    k
}

/// Nexus a's REGISTER AND IGNORE EXISTING KEY to `key` with `aptpl`; GOOD required.
async fn register(s: &Session, key: u64, aptpl: bool) {
    let flags = RegisterFlags {
        aptpl,
        ..RegisterFlags::default()
    };
    let r = guard("REGISTER", s.pr_register_ignore(0, key, &flags))
        .await
        .expect("REGISTER");
    assert_eq!(r.status, 0, "REGISTER: {r:?}");
}

/// Nexus a sends REGISTER AND IGNORE EXISTING KEY to `key` with `aptpl` while a crash point is
/// armed: no GOOD may come back.
async fn register_crashing(d: &Daemon, key: u64, aptpl: bool, point: &str) {
    let s = login(d, normal("a")).await;
    let flags = RegisterFlags {
        aptpl,
        ..RegisterFlags::default()
    };
    if let Ok(r) = guard("REGISTER", s.pr_register_ignore(0, key, &flags)).await {
        assert_ne!(r.status, 0, "{point}: REGISTER answered GOOD");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn aptpl_saves_cut_short_leave_the_old_or_the_new_reservations() {
    let (mut d, arm) = daemon();

    // The first APTPL save makes the pr/ directory: cut short there, nothing was saved.
    std::fs::write(&arm, "aptpl.dir-created").expect("arm");
    register_crashing(&d, K1, true, "aptpl.dir-created").await;
    crashed_and_restarted(&mut d, &arm, "aptpl.dir-created");
    assert_eq!(keys(&d).await, Vec::<u64>::new(), "aptpl.dir-created");

    for (step, new) in SAVE_POINTS {
        let point = format!("aptpl.{step}");
        // Old state: K1, saved.
        {
            let s = login(&d, normal("a")).await;
            register(&s, K1, true).await;
            let _ = guard("logout", s.logout(0)).await;
        }
        std::fs::write(&arm, &point).expect("arm");
        register_crashing(&d, K2, true, &point).await;
        crashed_and_restarted(&mut d, &arm, &point);
        let want = if new { K2 } else { K1 };
        assert_eq!(keys(&d).await, vec![want], "{point}");
    }

    // Turning APTPL off removes the file: cut short after the unlink, the new state (nothing
    // persists through a power loss any more) is what a restart shows.
    {
        let s = login(&d, normal("a")).await;
        register(&s, K1, true).await;
        let _ = guard("logout", s.logout(0)).await;
    }
    std::fs::write(&arm, "aptpl.removed").expect("arm");
    register_crashing(&d, K2, false, "aptpl.removed").await;
    crashed_and_restarted(&mut d, &arm, "aptpl.removed");
    assert_eq!(keys(&d).await, Vec::<u64>::new(), "aptpl.removed");
}
