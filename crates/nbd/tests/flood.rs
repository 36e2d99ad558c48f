//! 1,000 connections opened at once against a server capped at 64: a well-behaved client
//! connected before keeps being served, the server's descriptors and memory stay bounded,
//! idle handshakes time out and free their places, and all is well after the flood closes.
//! Alone in its test binary: it counts this process's descriptors and resident memory.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ironlun_nbd::ServerConfig;
use support::{Raw, Server, EXPORT};

const FLOOD: usize = 1000;
const MAX_CONNECTIONS: usize = 64;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn serves(good: &mut Raw, cookie: u64) {
    let byte = cookie as u8;
    good.request(0, 1, cookie, 0, 65536);
    good.s.write_all(&[byte; 65536]).unwrap();
    assert_eq!(good.simple_reply(), (0, cookie));
    good.request(0, 0, cookie + 1, 0, 65536);
    assert_eq!(good.simple_reply(), (0, cookie + 1));
    let mut data = vec![0u8; 65536];
    good.s.read_exact(&mut data).unwrap();
    assert!(data.iter().all(|&b| b == byte));
}

#[test]
fn a_thousand_connections_leave_the_server_bounded_and_serving() {
    let mut config = ServerConfig::new(EXPORT);
    config.max_connections = MAX_CONNECTIONS;
    config.handshake_timeout = Duration::from_secs(2);
    let server = Server::tcp_with(config);
    let mut good = Raw::go(&server, false);
    serves(&mut good, 2);
    let fds_before = open_fds();
    let rss_before = rss_kib();

    let addr = match server.addr {
        support::Addr::Tcp(a) => a,
        support::Addr::Unix(_) => unreachable!(),
    };
    let started = Instant::now();
    let mut flood = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        flood.push(TcpStream::connect(addr).unwrap());
        if i % 100 == 0 {
            serves(&mut good, 10 + i as u64);
        }
    }
    let opened = started.elapsed();
    // Every flood socket is ours (FLOOD descriptors); what is left over is the server's.
    std::thread::sleep(Duration::from_millis(300));
    serves(&mut good, 3000);
    let server_fds = open_fds().saturating_sub(fds_before + FLOOD);
    let rss_grew = rss_kib().saturating_sub(rss_before);
    eprintln!(
        "flood: {FLOOD} opened in {opened:?}; server holds {server_fds} more descriptors, \
         RSS grew {rss_grew} KiB"
    );
    assert!(
        server_fds <= MAX_CONNECTIONS + 8,
        "server holds {server_fds} descriptors for {FLOOD} connections (cap {MAX_CONNECTIONS})"
    );
    assert!(rss_grew < 48 << 10, "RSS grew {rss_grew} KiB");

    // Those beyond the cap were closed at once; the first ones were greeted.
    let mut greeted = 0;
    let mut refused = 0;
    for s in flood.iter_mut() {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut g = [0u8; 18];
        match s.read(&mut g) {
            Ok(0) | Err(_) => refused += 1,
            Ok(_) => greeted += 1,
        }
    }
    eprintln!("flood: {greeted} greeted, {refused} refused");
    assert!(greeted <= MAX_CONNECTIONS, "{greeted} greeted");
    assert!(refused >= FLOOD - MAX_CONNECTIONS, "{refused} refused");

    // The idle handshakes time out while the flood is still open; a new client gets in.
    std::thread::sleep(Duration::from_millis(2500));
    let mut late = Raw::go(&server, true);
    late.request(0, 0, 7, 0, 512);
    let (flags, _, cookie, _) = late.chunk();
    assert_eq!((flags, cookie), (1, 7));
    serves(&mut good, 4000);

    drop(flood);
    std::thread::sleep(Duration::from_millis(200));
    serves(&mut good, 5000);
    let after = open_fds();
    assert!(
        after <= fds_before + 4,
        "descriptors after the flood closed: {after} (before {fds_before})"
    );
}
