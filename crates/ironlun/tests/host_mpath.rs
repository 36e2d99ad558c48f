//! The multipath engine (`ironlun_host::mpath`, issue 10) against the real daemon: one RAM
//! disk exported by the default target ("west", group `alua_west` id 1) and
//! `iqn.2026-11.org.ironlun:east` (group `alua_east` id 2), each its own portal. I/O runs
//! without pause (write a block, read it back, compare) while the test switches the groups
//! with `ironlun alua set-state` (Active/Optimized ↔ Standby both ways, a group transitioning
//! while nothing else is usable, Unavailable) and disables and re-enables the west TPG
//! (transport loss: its session ends): every I/O completes with its data, and after each step
//! I/O goes to the group the ALUA states call for (`status()`, and the path counters moving).
//!
//! Ports: daemon 3460-3464, the east portal 3465-3469.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ops::Range;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironlun_host::ctx::Ctx;
use ironlun_host::mpath::{BlockDev, MpathOptions, MultipathLu, MultipathStatus};
use ironlun_host::url::IscsiUrl;
use support::{Daemon, BIN, RAMDISK, TARGET, TPG};

const PORTS: Range<u16> = 3460..3465;
const PORTS2: Range<u16> = 3465..3470;
const EAST: &str = "iqn.2026-11.org.ironlun:east";
const WEST_ID: u16 = 1;
const EAST_ID: u16 = 2;

fn set_state(d: &Daemon, group: &str, state: &str) {
    d.cli(&["alua", "set-state", RAMDISK, group, state]);
}

/// The daemon with the RAM disk in two targets and groups, west Active/Optimized, east
/// Standby; the east TPG, both paths' URLs, and a context.
fn two_groups() -> (Daemon, String, IscsiUrl, IscsiUrl, Ctx) {
    let d = Daemon::start_in(PORTS);
    let (east_tpg, east_addr) = d.add_target(EAST, RAMDISK, PORTS2);
    d.alua_west_east(TPG, &east_tpg);
    set_state(&d, "alua_west", "ao");
    set_state(&d, "alua_east", "s");
    let west = IscsiUrl::parse(&format!("iscsi://127.0.0.1:{}/{TARGET}/0", d.port)).unwrap();
    let east = IscsiUrl::parse(&format!("iscsi://{east_addr}/{EAST}/0")).unwrap();
    let ctx = Ctx {
        timeout: Duration::from_secs(5),
        ..Ctx::default()
    };
    (d, east_tpg, west, east, ctx)
}

/// Wait until I/O goes to `group` only, and the path there completes I/Os.
async fn expect_group(lu: &MultipathLu, group: u16, step: &str) -> MultipathStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = lu.status();
        if s.active_groups == vec![group] {
            let ios = |s: &MultipathStatus| -> u64 {
                s.paths
                    .iter()
                    .filter(|p| p.target_port_group == Some(group))
                    .map(|p| p.counters.ios)
                    .sum()
            };
            let before = ios(&s);
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = lu.status();
            if now.active_groups == vec![group] && ios(&now) > before {
                return now;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{step}: I/O not on group {group} after 15 s: {}",
            serde_json::to_string_pretty(&s).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The block `k` of generation `g`.
fn block(k: u64, g: u64) -> Vec<u8> {
    let mut v = vec![0u8; 512];
    for (i, b) in v.iter_mut().enumerate() {
        *b = (k as u8) ^ (g as u8).wrapping_mul(31) ^ (i as u8);
    }
    v[0..8].copy_from_slice(&k.to_be_bytes());
    v[8..16].copy_from_slice(&g.to_be_bytes());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn io_follows_alua_and_survives_transport_loss() {
    let (d, _, west, east, ctx) = two_groups();
    let opts = MpathOptions {
        checker_interval: Duration::from_millis(500),
        ..MpathOptions::default()
    };
    let lu = Arc::new(
        MultipathLu::open(&ctx, &[west.clone(), east.clone()], opts)
            .await
            .unwrap(),
    );
    assert_eq!(lu.block_size(), 512);
    assert!(lu.size() >= 1 << 20);
    let s = lu.status();
    assert_eq!(s.active_groups, vec![WEST_ID], "{s:?}");
    assert_eq!(s.paths[1].state, "standby");
    assert_eq!(lu.register_all(0xabc).await.unwrap(), 2);

    // The I/O: write a block, read it back, compare; without pause until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    // The longest write+read pair since the last step (µs): the step's I/O pause.
    let pause = Arc::new(AtomicU64::new(0));
    let mut pauses: Vec<(String, u64)> = Vec::new();
    let mut note = |step: &str| {
        pauses.push((step.to_string(), pause.swap(0, Ordering::Relaxed) / 1000));
    };
    let io = {
        let (lu, stop, done, pause) = (lu.clone(), stop.clone(), done.clone(), pause.clone());
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut g = 0u64;
            while !stop.load(Ordering::Relaxed) {
                g += 1;
                let k = g % 256;
                let t = Instant::now();
                let data = block(k, g);
                lu.write(k * 512, data.clone(), g.is_multiple_of(7))
                    .await
                    .unwrap_or_else(|e| panic!("write {g}: {e}"));
                let back = lu
                    .read(k * 512, 512)
                    .await
                    .unwrap_or_else(|e| panic!("read {g}: {e}"));
                assert_eq!(back, data, "block {k} of generation {g}");
                worst = worst.max(t.elapsed());
                let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                pause.fetch_max(us, Ordering::Relaxed);
                done.fetch_add(1, Ordering::Relaxed);
            }
            worst
        })
    };

    expect_group(&lu, WEST_ID, "start").await;

    // Implicit switches, both ways (the new group first: I/O never lacks a path).
    for round in 0..2 {
        set_state(&d, "alua_east", "ao");
        set_state(&d, "alua_west", "s");
        expect_group(&lu, EAST_ID, &format!("round {round}: east ao, west s")).await;
        note("ao->standby (to east)");
        set_state(&d, "alua_west", "ao");
        set_state(&d, "alua_east", "s");
        expect_group(&lu, WEST_ID, &format!("round {round}: west ao, east s")).await;
        note("standby->ao (to west)");
    }

    // West goes to Standby through 1.5 s of Transitioning while east is Standby: no usable
    // path, I/O held; then east becomes Active/Optimized and takes it.
    let attr = format!("{RAMDISK}/alua/alua_west/trans_delay_msecs");
    d.cli(&["set", &attr, "1500"]);
    let child = Command::new(BIN)
        .arg("--state-dir")
        .arg(d.state_dir())
        .args(["alua", "set-state", RAMDISK, "alua_west", "s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Transitioning for 1.5 s, then both Standby: I/O held all along.
    let held = done.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let s = lu.status();
    assert_eq!(s.active_groups, Vec::<u16>::new(), "{s:?}");
    assert!(
        done.load(Ordering::Relaxed) <= held + 1,
        "I/O went on while no group was usable: {s:?}"
    );
    d.cli(&["set", &attr, "0"]);
    set_state(&d, "alua_east", "ao");
    expect_group(&lu, EAST_ID, "after west transitioning to standby").await;
    note("transitioning 1.5 s + no usable group 0.5 s, then east ao");

    // Unavailable is never used.
    set_state(&d, "alua_west", "ao");
    set_state(&d, "alua_east", "u");
    let s = expect_group(&lu, WEST_ID, "east unavailable").await;
    note("east unavailable, west ao");
    assert_eq!(s.paths[1].state, "unavailable");
    set_state(&d, "alua_east", "s");

    // Transport loss: east made optimized, then the west TPG disabled, which ends its
    // sessions (as LIO does); west cannot log in again while it is disabled. (A daemon
    // restart would lose this RAM disk's data; scripts/failover-load.sh restarts one over a
    // file.)
    let enable = format!("{TPG}/enable");
    set_state(&d, "alua_east", "ao");
    d.cli(&["set", &enable, "0"]);
    let s = expect_group(&lu, EAST_ID, "west TPG disabled").await;
    note("west TPG disabled (its session ended)");
    let deadline = Instant::now() + Duration::from_secs(5);
    while lu.status().paths[0].connected {
        assert!(Instant::now() < deadline, "west still connected: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Back: west reconnects in the background and, optimized again, takes the I/O back.
    d.cli(&["set", &enable, "1"]);
    set_state(&d, "alua_west", "ao");
    set_state(&d, "alua_east", "s");
    let s = expect_group(&lu, WEST_ID, "west TPG enabled again").await;
    note("west reconnects, failback");
    assert!(s.paths[0].connected);
    assert!(
        s.paths.iter().map(|p| p.counters.failovers).sum::<u64>() >= 1,
        "{s:?}"
    );

    stop.store(true, Ordering::Relaxed);
    let worst = io.await.unwrap();
    let n = done.load(Ordering::Relaxed);
    eprintln!(
        "host_mpath: {n} verified write+read pairs, longest pair {} ms, status {}",
        worst.as_millis(),
        serde_json::to_string(&lu.status()).unwrap()
    );
    for (step, ms) in &pauses {
        eprintln!("host_mpath: pause {ms} ms: {step}");
    }
    assert!(n > 100, "only {n} I/Os");
}

/// A path that is down when the LU is opened (its portal group disabled) does not stop the
/// open: the LU works over the others, the path shows failed ("undef", its error), and it
/// joins once its portal group is enabled, taking I/O when its group is the better one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_path_down_at_open_joins_when_it_comes_up() {
    let (d, east_tpg, west, east, ctx) = two_groups();
    let east_enable = format!("{east_tpg}/enable");
    d.cli(&["set", &east_enable, "0"]);
    let opts = MpathOptions {
        checker_interval: Duration::from_millis(500),
        reconnect_max: Duration::from_millis(500),
        ..MpathOptions::default()
    };
    let lu = MultipathLu::open(&ctx, &[west, east], opts).await.unwrap();
    let s = lu.status();
    assert!(s.paths[0].connected && !s.paths[1].connected, "{s:?}");
    assert_eq!(s.paths[1].state, "undef", "{s:?}");
    assert!(
        s.paths[1]
            .last_error
            .as_deref()
            .is_some_and(|e| !e.is_empty()),
        "{s:?}"
    );
    assert_eq!(s.active_groups, vec![WEST_ID], "{s:?}");
    let data = block(1, 1);
    lu.write(512, data.clone(), false).await.unwrap();
    assert_eq!(lu.read(512, 512).await.unwrap(), data);

    d.cli(&["set", &east_enable, "1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = lu.status();
        if s.paths[1].connected && s.paths[1].state == "standby" {
            assert_eq!(s.paths[1].target_port_group, Some(EAST_ID));
            assert_eq!(s.paths[1].last_error, None, "{s:?}");
            break;
        }
        assert!(Instant::now() < deadline, "east did not join: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    set_state(&d, "alua_east", "ao");
    set_state(&d, "alua_west", "s");
    // I/O keeps going while the checker sees the change, until the move is seen (a fixed
    // count could all land on east before the check looks, and then no I/O would be moving).
    let lu = Arc::new(lu);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let io = {
        let (l, stop) = (lu.clone(), stop.clone());
        tokio::spawn(async move {
            let mut g = 2u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let data = block(g % 64, g);
                l.write((g % 64) * 512, data.clone(), false).await.unwrap();
                assert_eq!(l.read((g % 64) * 512, 512).await.unwrap(), data);
                g += 1;
            }
        })
    };
    expect_group(&lu, EAST_ID, "east joined, then optimized").await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    io.await.unwrap();
}
