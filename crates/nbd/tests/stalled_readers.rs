//! Many clients that ask for reads and never take the replies: the server's memory is bounded
//! by the listener's in-flight payload budget plus each connection's guaranteed share (not
//! connections × the per-connection budget), a good client is served all along on its share,
//! and the stall timeout drops the stalled ones.
//! Alone in its test binary: it counts this process's resident memory.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use ironlun_nbd::ServerConfig;
use support::{Raw, Server, EXPORT};

const STALLED: usize = 24;
const TOTAL_BUDGET: u32 = 32 << 20;
const SHARE: u32 = 1 << 20;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Reads what the server sent; true if the connection ended (quiet for 300 ms: false).
fn ended(s: &mut std::net::TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = vec![0u8; 1 << 20];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn read_back(good: &mut Raw, cookie: u64) {
    good.request(0, 0, cookie, 0, 4096);
    assert_eq!(good.simple_reply(), (0, cookie));
    let mut data = [0u8; 4096];
    good.s.read_exact(&mut data).unwrap();
}

#[test]
fn stalled_readers_cost_the_listener_budget_and_are_dropped() {
    let mut config = ServerConfig::new(EXPORT);
    config.max_total_in_flight_bytes = TOTAL_BUDGET;
    config.guaranteed_in_flight_bytes = SHARE;
    config.stall_timeout = Duration::from_secs(3);
    let server = Server::tcp_with(config);
    let mut good = Raw::go(&server, false);
    read_back(&mut good, 1);
    let rss_before = rss_kib();

    // Each asks for 64 MiB (its own budget is 16 MiB): 24 of them would hold 384 MiB of
    // replies under per-connection budgets alone; here at most 24 × 1 MiB + 32 MiB.
    let mut stalled: Vec<Raw> = (0..STALLED).map(|_| Raw::go(&server, false)).collect();
    for s in stalled.iter_mut() {
        for c in 0..64 {
            s.request(0, 0, c, 0, 1 << 20);
        }
        s.s.flush().unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let grew = rss_kib().saturating_sub(rss_before);
    let bound = (STALLED as u64 * u64::from(SHARE) + u64::from(TOTAL_BUDGET)) / 1024;
    eprintln!("stalled readers: RSS grew {grew} KiB (bound {bound} KiB)");
    assert!(
        grew < bound + (24 << 10),
        "RSS grew {grew} KiB, bound {bound} KiB"
    );

    // The good client is served on its share while they stall.
    let t = Instant::now();
    read_back(&mut good, 2);
    let waited = t.elapsed();
    eprintln!("stalled readers: the good client's read took {waited:?}");
    assert!(waited < Duration::from_millis(500), "{waited:?}");
    // The stall timeout (3 s) passes.
    std::thread::sleep(Duration::from_secs(3));
    // Those whose replies stalled for the timeout were dropped (the others waited for the
    // budget and are being served now that their reads are taken).
    let dropped = stalled
        .iter_mut()
        .map(|s| ended(&mut s.s))
        .filter(|&e| e)
        .count();
    eprintln!("stalled readers: {dropped} of {STALLED} dropped");
    assert!(dropped >= 2, "{dropped} dropped");
    // Once the rest leave, the budget is back at once.
    drop(stalled);
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    read_back(&mut good, 3);
    assert!(t.elapsed() < Duration::from_secs(1));
}
