//! The protocol as the spec words it (NetworkBlockDevice/nbd doc/proto.md), spoken by a raw
//! client: the options of the fixed newstyle handshake, simple and structured replies,
//! pipelined requests answered by cookie, and the error values of bad requests.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::Ordering;

use ironlun_nbd::proto;
use support::{closed, read_option_reply, send_option, Raw, Server, DISK_SIZE, EXPORT};

const READ: u16 = 0;
const WRITE: u16 = 1;
const DISC: u16 = 2;
const TRIM: u16 = 4;
const WRITE_ZEROES: u16 = 6;

fn greet(server: &Server, client_flags: u32) -> std::net::TcpStream {
    let mut s = server.connect();
    let mut g = [0u8; 18];
    s.read_exact(&mut g).unwrap();
    assert_eq!(&g[..16], b"NBDMAGICIHAVEOPT");
    assert_eq!(
        u16::from_be_bytes([g[16], g[17]]),
        3,
        "FIXED_NEWSTYLE | NO_ZEROES"
    );
    s.write_all(&client_flags.to_be_bytes()).unwrap();
    s
}

fn info_data(name: &str, infos: &[u16]) -> Vec<u8> {
    let mut d = (name.len() as u32).to_be_bytes().to_vec();
    d.extend_from_slice(name.as_bytes());
    d.extend_from_slice(&(infos.len() as u16).to_be_bytes());
    for i in infos {
        d.extend_from_slice(&i.to_be_bytes());
    }
    d
}

#[test]
fn export_name_the_old_way_with_and_without_zeroes() {
    let server = Server::tcp();
    for (flags, tail) in [(1u32, 124usize), (3, 0)] {
        let mut s = greet(&server, flags);
        send_option(&mut s, proto::OPT_EXPORT_NAME, EXPORT.as_bytes());
        let mut b = vec![0u8; 10 + tail];
        s.read_exact(&mut b).unwrap();
        assert_eq!(
            u64::from_be_bytes(b[0..8].try_into().unwrap()),
            DISK_SIZE as u64
        );
        let tflags = u16::from_be_bytes([b[8], b[9]]);
        assert_eq!(
            tflags, 0x016d,
            "HAS_FLAGS FLUSH FUA TRIM WRITE_ZEROES MULTI_CONN"
        );
        assert!(b[10..].iter().all(|&z| z == 0));
        // Transmission works right after, with simple replies.
        s.write_all(&proto::encode_request(0, READ, 5, 0, 512))
            .unwrap();
        let mut r = [0u8; 16 + 512];
        s.read_exact(&mut r).unwrap();
        assert_eq!(&r[..16], &proto::simple_reply(5, 0));
    }
}

#[test]
fn export_name_of_an_unknown_export_closes_the_connection() {
    let server = Server::tcp();
    let mut s = greet(&server, 3);
    send_option(&mut s, proto::OPT_EXPORT_NAME, b"nope");
    assert!(closed(&mut s));
}

#[test]
fn options_unknown_list_info_then_go() {
    let server = Server::tcp();
    let mut s = greet(&server, 3);

    send_option(&mut s, 0x4242, b"whatever");
    assert_eq!(read_option_reply(&mut s).1, proto::REP_ERR_UNSUP);

    send_option(&mut s, proto::OPT_LIST, &[]);
    let (opt, kind, data) = read_option_reply(&mut s);
    assert_eq!((opt, kind), (proto::OPT_LIST, proto::REP_SERVER));
    assert_eq!(&data[4..], EXPORT.as_bytes());
    assert_eq!(read_option_reply(&mut s).1, proto::REP_ACK);

    send_option(&mut s, proto::OPT_LIST, b"x");
    assert_eq!(read_option_reply(&mut s).1, proto::REP_ERR_INVALID);

    send_option(&mut s, proto::OPT_INFO, &[0, 0, 0, 9, b'x']);
    assert_eq!(read_option_reply(&mut s).1, proto::REP_ERR_INVALID);

    send_option(&mut s, proto::OPT_INFO, &info_data("other", &[]));
    assert_eq!(read_option_reply(&mut s).1, proto::REP_ERR_UNKNOWN);

    send_option(
        &mut s,
        proto::OPT_INFO,
        &info_data(EXPORT, &[proto::INFO_NAME]),
    );
    let mut seen = Vec::new();
    loop {
        let (opt, kind, data) = read_option_reply(&mut s);
        assert_eq!(opt, proto::OPT_INFO);
        if kind == proto::REP_ACK {
            break;
        }
        assert_eq!(kind, proto::REP_INFO);
        let info = u16::from_be_bytes([data[0], data[1]]);
        match info {
            proto::INFO_BLOCK_SIZE => {
                let v = |i: usize| u32::from_be_bytes(data[i..i + 4].try_into().unwrap());
                assert_eq!((v(2), v(6), v(10)), (512, 4096, 1 << 20));
            }
            proto::INFO_NAME => assert_eq!(&data[2..], EXPORT.as_bytes()),
            proto::INFO_EXPORT => assert_eq!(data.len(), 12),
            other => panic!("unexpected info {other}"),
        }
        seen.push(info);
    }
    seen.sort();
    assert_eq!(seen, vec![0, 1, 3]);

    // Still negotiating: the default (empty) name goes into transmission.
    send_option(&mut s, proto::OPT_GO, &info_data("", &[]));
    let mut kinds = Vec::new();
    loop {
        let (_, kind, _) = read_option_reply(&mut s);
        kinds.push(kind);
        if kind != proto::REP_INFO {
            break;
        }
    }
    assert_eq!(kinds.last(), Some(&proto::REP_ACK));
    s.write_all(&proto::encode_request(0, DISC, 1, 0, 0))
        .unwrap();
    assert!(closed(&mut s));
}

#[test]
fn abort_is_acknowledged_and_closes() {
    let server = Server::tcp();
    let mut s = greet(&server, 3);
    send_option(&mut s, proto::OPT_ABORT, &[]);
    assert_eq!(read_option_reply(&mut s).1, proto::REP_ACK);
    assert!(closed(&mut s));
}

#[test]
fn simple_replies_carry_data_and_pipelined_requests_all_come_back() {
    let server = Server::tcp();
    let mut c = Raw::go(&server, false);
    assert_eq!(c.size, DISK_SIZE as u64);
    let mut payload = vec![0u8; 64 << 10];
    for (i, b) in payload.iter_mut().enumerate() {
        *b = (i % 253) as u8;
    }
    c.request(proto::CMD_FLAG_FUA, WRITE, 1, 1 << 20, payload.len() as u32);
    c.s.write_all(&payload).unwrap();
    assert_eq!(c.simple_reply(), (0, 1));
    assert_eq!(server.disk.fua_writes.load(Ordering::Relaxed), 1);

    // 32 reads in flight at once; each reply names its cookie.
    for i in 0..32u64 {
        c.request(0, READ, 100 + i, (1 << 20) + i * 2048, 2048);
    }
    let mut got = Vec::new();
    for _ in 0..32 {
        let (err, cookie) = c.simple_reply();
        assert_eq!(err, 0);
        let mut data = vec![0u8; 2048];
        c.s.read_exact(&mut data).unwrap();
        let i = (cookie - 100) as usize;
        assert_eq!(data, payload[i * 2048..(i + 1) * 2048], "cookie {cookie}");
        got.push(cookie);
    }
    got.sort();
    assert_eq!(got, (100..132).collect::<Vec<_>>());
}

#[test]
fn structured_replies_for_reads_and_errors() {
    let server = Server::tcp();
    server.disk.fill(8192, 4096, 0x77);
    let mut c = Raw::go(&server, true);
    c.request(0, READ, 9, 8192, 4096);
    let (flags, kind, cookie, payload) = c.chunk();
    assert_eq!((flags, kind, cookie), (1, proto::REPLY_TYPE_OFFSET_DATA, 9));
    assert_eq!(u64::from_be_bytes(payload[..8].try_into().unwrap()), 8192);
    assert!(payload[8..].iter().all(|&b| b == 0x77) && payload.len() == 8 + 4096);

    c.request(0, READ, 10, DISK_SIZE as u64, 512);
    let (flags, kind, cookie, payload) = c.chunk();
    assert_eq!((flags, kind, cookie), (1, proto::REPLY_TYPE_ERROR, 10));
    assert_eq!(
        u32::from_be_bytes(payload[..4].try_into().unwrap()),
        proto::EINVAL
    );
    let len = u16::from_be_bytes([payload[4], payload[5]]) as usize;
    let msg = String::from_utf8(payload[6..6 + len].to_vec()).unwrap();
    assert!(msg.contains("beyond the end"), "{msg}");

    // A write's success may be a simple reply.
    c.request(0, WRITE, 11, 0, 512);
    c.s.write_all(&[1u8; 512]).unwrap();
    assert_eq!(c.simple_reply(), (0, 11));

    // A failing device: its error kind becomes the error value.
    *server.disk.fail_next.lock().unwrap() = Some(ErrorKind::StorageFull);
    c.request(0, WRITE, 12, 0, 512);
    c.s.write_all(&[1u8; 512]).unwrap();
    let (_, kind, cookie, payload) = c.chunk();
    assert_eq!((kind, cookie), (proto::REPLY_TYPE_ERROR, 12));
    assert_eq!(
        u32::from_be_bytes(payload[..4].try_into().unwrap()),
        proto::ENOSPC
    );
    *server.disk.fail_next.lock().unwrap() = Some(ErrorKind::BrokenPipe);
    c.request(0, READ, 13, 0, 512);
    let (_, kind, _, payload) = c.chunk();
    assert_eq!(kind, proto::REPLY_TYPE_ERROR);
    assert_eq!(
        u32::from_be_bytes(payload[..4].try_into().unwrap()),
        proto::EIO
    );
}

#[test]
fn bad_requests_get_error_values_and_the_connection_goes_on() {
    let server = Server::tcp();
    let mut c = Raw::go(&server, false);
    let end = DISK_SIZE as u64;
    let cases: [(u16, u64, u32, u32); 7] = [
        (READ, end - 512, 1024, proto::EINVAL),
        (READ, u64::MAX - 511, 1024, proto::EINVAL),
        (READ, 100, 512, proto::EINVAL),
        (READ, 0, 2 << 20, proto::EINVAL),
        (TRIM, end, 512, proto::EINVAL),
        (5, 0, 512, proto::EINVAL),
        (42, 0, 0, proto::EINVAL),
    ];
    for (i, &(cmd, off, len, want)) in cases.iter().enumerate() {
        c.request(0, cmd, i as u64, off, len);
        assert_eq!(c.simple_reply(), (want, i as u64), "case {i}");
    }
    // Writes: the payload is taken off the wire even when the request is refused.
    c.request(0, WRITE, 50, end - 512, 1024);
    c.s.write_all(&[9u8; 1024]).unwrap();
    assert_eq!(c.simple_reply(), (proto::ENOSPC, 50));
    c.request(0, WRITE, 51, 0, 2 << 20);
    c.s.write_all(&vec![9u8; 2 << 20]).unwrap();
    assert_eq!(c.simple_reply(), (proto::EINVAL, 51));
    assert_eq!(server.disk.writes.load(Ordering::Relaxed), 0);
    // A WRITE_ZEROES longer than the device takes at once goes in pieces.
    server.disk.fill(0, 8 << 20, 0xee);
    c.request(0, WRITE_ZEROES, 52, 0, 8 << 20);
    assert_eq!(c.simple_reply(), (0, 52));
    assert!(server.disk.bytes(0, 8 << 20).iter().all(|&b| b == 0));
    assert_eq!(server.disk.zeroes.load(Ordering::Relaxed), 8);
    // And the connection still reads.
    c.request(0, READ, 53, 0, 512);
    assert_eq!(c.simple_reply(), (0, 53));
}

#[test]
fn disc_answers_what_is_in_flight_then_closes() {
    let server = Server::tcp();
    let mut c = Raw::go(&server, false);
    for i in 0..8 {
        c.request(0, READ, i, i * 65536, 65536);
    }
    c.request(0, DISC, 99, 0, 0);
    let mut n = 0;
    for _ in 0..8 {
        let (err, _) = c.simple_reply();
        assert_eq!(err, 0);
        let mut data = vec![0u8; 65536];
        c.s.read_exact(&mut data).unwrap();
        n += 1;
    }
    assert_eq!(n, 8);
    assert!(closed(&mut c.s));
}

#[test]
fn a_slow_request_does_not_hold_back_the_ones_behind_it() {
    let server = Server::tcp();
    *server.disk.slow_read_at.lock().unwrap() = Some(1 << 20);
    let mut c = Raw::go(&server, false);
    c.request(0, READ, 1, 1 << 20, 4096);
    c.request(0, READ, 2, 0, 4096);
    c.request(0, WRITE, 3, 8192, 512);
    c.s.write_all(&[7u8; 512]).unwrap();
    let mut order = Vec::new();
    for _ in 0..3 {
        let (err, cookie) = c.simple_reply();
        assert_eq!(err, 0);
        if cookie != 3 {
            let mut data = vec![0u8; 4096];
            c.s.read_exact(&mut data).unwrap();
        }
        order.push(cookie);
    }
    assert_eq!(
        order.last(),
        Some(&1),
        "the slow read is answered last: {order:?}"
    );
}

#[tokio::test]
async fn shutdown_stops_the_server_and_closes_the_listener() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let disk = support::MemDisk::new();
    let task = tokio::spawn(ironlun_nbd::serve(listener, disk, EXPORT, async {
        let _ = rx.await;
    }));
    let c = tokio::net::TcpStream::connect(addr).await.unwrap();
    tx.send(()).unwrap();
    let r = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    assert!(matches!(r, Ok(Ok(Ok(())))), "serve returned: {r:?}");
    drop(c);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
