//! Clients that misbehave: garbage before and after the handshake, leaving in the middle of a
//! request, requests out of range, a client that stops reading its replies. Each loses only its
//! own connection; a well-behaved client connected all along keeps its service and its data.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::sync::atomic::Ordering;

use ironlun_nbd::proto;
use support::{closed, send_option, Raw, Server};

const READ: u16 = 0;
const WRITE: u16 = 1;

/// The good client writes a block and reads it back.
fn still_serves(good: &mut Raw, cookie: u64, byte: u8) {
    let off = 4096 * (cookie % 1000);
    good.request(0, WRITE, cookie, off, 4096);
    good.s.write_all(&[byte; 4096]).unwrap();
    assert_eq!(good.simple_reply(), (0, cookie));
    good.request(0, READ, cookie + 1, off, 4096);
    assert_eq!(good.simple_reply(), (0, cookie + 1));
    let mut data = [0u8; 4096];
    good.s.read_exact(&mut data).unwrap();
    assert!(data.iter().all(|&b| b == byte));
}

#[test]
fn garbage_before_the_handshake_closes_only_that_connection() {
    let server = Server::tcp();
    let mut good = Raw::go(&server, false);
    let garbage: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0xff; 64],
        &[0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 7, 0, 0, 0, 0],
        &[0, 0, 0, 0x10],
    ];
    for (i, g) in garbage.iter().enumerate() {
        let mut s = server.connect();
        let mut greet = [0u8; 18];
        s.read_exact(&mut greet).unwrap();
        s.write_all(g).unwrap();
        assert!(closed(&mut s), "garbage {i} closes the connection");
        still_serves(&mut good, 10 * i as u64, i as u8 + 1);
    }
    // An option with an absurd length is not read into memory.
    let mut s = server.connect();
    let mut greet = [0u8; 18];
    s.read_exact(&mut greet).unwrap();
    s.write_all(&3u32.to_be_bytes()).unwrap();
    let mut v = proto::IHAVEOPT.to_be_bytes().to_vec();
    v.extend_from_slice(&proto::OPT_GO.to_be_bytes());
    v.extend_from_slice(&u32::MAX.to_be_bytes());
    s.write_all(&v).unwrap();
    assert!(closed(&mut s));
    // One just a bit too long is skipped and refused; the client can go on.
    let mut s = server.connect();
    s.read_exact(&mut greet).unwrap();
    s.write_all(&3u32.to_be_bytes()).unwrap();
    send_option(&mut s, proto::OPT_GO, &vec![0u8; 100_000]);
    assert_eq!(support::read_option_reply(&mut s).1, proto::REP_ERR_TOO_BIG);
    send_option(&mut s, proto::OPT_LIST, &[]);
    assert_eq!(support::read_option_reply(&mut s).1, proto::REP_SERVER);
    still_serves(&mut good, 100, 0x42);
}

#[test]
fn garbage_after_the_handshake_closes_only_that_connection() {
    let server = Server::tcp();
    let mut good = Raw::go(&server, true);
    good.s.set_read_timeout(None).unwrap();
    for structured in [false, true] {
        let mut bad = Raw::go(&server, structured);
        bad.s.write_all(&[0x5a; 28]).unwrap();
        assert!(closed(&mut bad.s), "bad request magic closes");
    }
    // Good client (structured) still works.
    good.request(0, WRITE, 1, 0, 512);
    good.s.write_all(&[3u8; 512]).unwrap();
    assert_eq!(good.simple_reply(), (0, 1));
    good.request(0, READ, 2, 0, 512);
    let (flags, kind, cookie, payload) = good.chunk();
    assert_eq!((flags, kind, cookie), (1, proto::REPLY_TYPE_OFFSET_DATA, 2));
    assert!(payload[8..].iter().all(|&b| b == 3));
}

#[test]
fn leaving_in_the_middle_of_a_request_harms_no_one() {
    let server = Server::tcp();
    let mut good = Raw::go(&server, false);
    server.disk.fill(1 << 20, 1 << 20, 0x33);
    for round in 0..20u64 {
        let mut bad = Raw::go(&server, false);
        match round % 4 {
            // Half a header.
            0 => bad.s.write_all(&[0x25, 0x60, 0x95, 0x13, 0, 0]).unwrap(),
            // A WRITE header and half its payload.
            1 => {
                bad.request(0, WRITE, 1, 1 << 20, 1 << 20);
                bad.s.write_all(&vec![0xcc; 512 << 10]).unwrap();
            }
            // Many reads whose replies it never takes.
            2 => {
                for i in 0..64 {
                    bad.request(0, READ, i, 0, 1 << 20);
                }
            }
            // Out-of-range requests, then gone.
            _ => {
                bad.request(0, READ, 1, u64::MAX - 4095, 1 << 20);
                bad.request(0, WRITE, 2, 1 << 40, 4096);
            }
        }
        drop(bad);
        still_serves(&mut good, 10 + 2 * round, round as u8);
    }
    // The half-sent WRITE never reached the disk.
    assert!(server
        .disk
        .bytes(1 << 20, 1 << 20)
        .iter()
        .all(|&b| b == 0x33));
    assert_eq!(server.disk.writes.load(Ordering::Relaxed), 20);
}

#[test]
fn a_client_that_stops_reading_is_dropped_after_the_stall_timeout() {
    let server = Server::tcp_with(ironlun_nbd::ServerConfig {
        stall_timeout: std::time::Duration::from_secs(1),
        ..ironlun_nbd::ServerConfig::new(support::EXPORT)
    });
    let mut good = Raw::go(&server, false);
    let mut bad = Raw::go(&server, false);
    // 256 MiB of reads whose replies it never takes: far more than the sockets buffer, so
    // the server's writes stall.
    for i in 0..256 {
        bad.request(0, READ, i, 0, 1 << 20);
    }
    // The good client is served while the bad one stalls.
    still_serves(&mut good, 10, 1);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    still_serves(&mut good, 20, 2);
    // By now the server has given up on it: what it had buffered, then the end (without the
    // timeout the server would go on sending the rest and `closed` would not see an end).
    assert!(closed(&mut bad.s), "the stalled client was not dropped");
    still_serves(&mut good, 30, 3);
}
