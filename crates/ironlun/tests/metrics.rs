//! End to end: `serve --metrics` (docs/metrics.md). A real iSCSI session does a known amount
//! of I/O, a bad CDB, a PR registration and reservation, an ALUA state change and a failed
//! login; the scrapes before and after must differ by exactly that, per LU and per I_T nexus,
//! and `promtool check metrics` must accept the output. The HTTP side answers only
//! `GET /metrics` and survives junk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ironlun_initiator::pr::{PrType, RegisterFlags};
use ironlun_initiator::LoginConfig;
use ironlun_scsi::status;
use support::*;

const LU: &str = "lu=\"core/rd_mcp_0/ramdisk0\"";

/// A free port of `ports` for the metrics listener (the portals take 4020-4029; each test
/// has its own range, as they run at once).
fn metrics_port(ports: std::ops::Range<u16>) -> u16 {
    ports
        .clone()
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .unwrap_or_else(|| panic!("no free port in {ports:?}"))
}

/// One HTTP exchange: the raw request, then (status line, headers, body).
fn http(addr: SocketAddr, request: &[u8]) -> (String, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8(out).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_string(), body.to_string())
}

fn scrape_text(addr: SocketAddr) -> String {
    let (st, headers, body) = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(st, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("Content-Type: text/plain; version=0.0.4"),
        "{headers}"
    );
    body
}

/// `name{labels}` → value, for every sample.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("sample line");
            (k.to_string(), v.parse().expect("sample value"))
        })
        .collect()
}

fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    samples(&scrape_text(addr))
}

/// The sample `key` (0 where absent: a series not there yet).
fn at(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

/// The sum over every sample of `name` whose labels contain `has`.
fn sum(m: &HashMap<String, f64>, name: &str, has: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")) && k.contains(has))
        .map(|(_, v)| v)
        .sum()
}

/// `promtool check metrics` on `text`: must pass; a missing promtool fails where `CI` or
/// `IRONLUN_REQUIRE_PROMTOOL` is set (.ci/run sets the latter), else the check is skipped.
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let required = ["CI", "IRONLUN_REQUIRE_PROMTOOL"]
                .iter()
                .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty() && x != "false"));
            assert!(
                !required,
                "promtool not runnable ({e}); CI must have it (apt-get install prometheus)"
            );
            eprintln!("note: promtool not installed (apt-get install prometheus): check skipped");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn counters_move_by_exactly_the_io_done() {
    let mport = metrics_port(4030..4035);
    let maddr: SocketAddr = ([127, 0, 0, 1], mport).into();
    let d = Daemon::start_with(
        4020..4030,
        DaemonEnv::args(&["--metrics", &format!("127.0.0.1:{mport}")]),
    );
    let s = login(&d, normal("metrics")).await;
    let me = format!("initiator=\"{}\"", iqn("metrics"));
    let before = scrape(maddr);
    assert_eq!(at(&before, "ironlun_iscsi_sessions{type=\"normal\"}"), 1.0);
    assert_eq!(at(&before, "ironlun_iscsi_connections"), 1.0);

    // 5 WRITEs of 8 blocks, 3 READs of 16 blocks, one CDB with an unknown opcode.
    for i in 0..5u64 {
        let data = pattern(i as u32, 8 * BLOCK as usize);
        good(s.write16(0, i * 8, data, BLOCK, false).await, "write");
    }
    for i in 0..3u64 {
        good(s.read16(0, i * 16, 16, BLOCK).await, "read");
    }
    let bad = s.command(0, &[0xff; 16], None, 0, 0).await.unwrap();
    assert_eq!(bad.status, status::CHECK_CONDITION, "{bad:?}");
    // A WRITE larger than the fabric gathers (64 MiB): refused before the engine runs it,
    // counted all the same (a write, ILLEGAL REQUEST, no bytes).
    let huge = (64 << 20) + BLOCK as usize;
    let r = s
        .write16(0, 0, vec![0u8; huge], BLOCK, false)
        .await
        .unwrap();
    assert_eq!(r.status, status::CHECK_CONDITION, "{r:?}");

    let after = scrape(maddr);
    let delta = |key: &str| at(&after, key) - at(&before, key);
    let op = |o: &str| format!(",op=\"{o}\"");
    for (o, n) in [("write", 6.0), ("read", 3.0), ("other", 1.0)] {
        let key = format!("ironlun_lu_commands_total{{{LU}{}}}", op(o));
        assert_eq!(delta(&key), n, "{key}");
    }
    assert_eq!(
        delta(&format!("ironlun_lu_written_bytes_total{{{LU}}}")),
        5.0 * 4096.0
    );
    assert_eq!(
        delta(&format!("ironlun_lu_read_bytes_total{{{LU}}}")),
        3.0 * 8192.0
    );
    assert_eq!(
        delta(&format!(
            "ironlun_lu_command_duration_seconds_count{{{LU}{}}}",
            op("read")
        )),
        3.0
    );
    assert_eq!(
        delta(&format!(
            "ironlun_lu_command_duration_seconds_bucket{{{LU}{},le=\"+Inf\"}}",
            op("write")
        )),
        6.0
    );
    assert_eq!(
        delta(&format!(
            "ironlun_lu_check_conditions_total{{{LU},sense_key=\"illegal_request\"}}"
        )),
        2.0
    );
    assert_eq!(
        sum(&after, "ironlun_lu_check_conditions_total", LU)
            - sum(&before, "ironlun_lu_check_conditions_total", LU),
        2.0,
        "no other sense key moved"
    );
    assert_eq!(
        at(&after, &format!("ironlun_lu_outstanding_commands{{{LU}}}")),
        0.0
    );
    // The same per I_T nexus (this session is the only one).
    let nx = |name: &str, has: &str| {
        let f = |m: &HashMap<String, f64>| {
            m.iter()
                .filter(|(k, _)| {
                    k.starts_with(&format!("{name}{{")) && k.contains(&me) && k.contains(has)
                })
                .map(|(_, v)| v)
                .sum::<f64>()
        };
        f(&after) - f(&before)
    };
    assert_eq!(nx("ironlun_nexus_commands_total", "op=\"write\""), 6.0);
    assert_eq!(nx("ironlun_nexus_commands_total", "op=\"read\""), 3.0);
    assert_eq!(nx("ironlun_nexus_commands_total", "op=\"other\""), 1.0);
    assert_eq!(nx("ironlun_nexus_written_bytes_total", ""), 5.0 * 4096.0);
    assert_eq!(nx("ironlun_nexus_read_bytes_total", ""), 3.0 * 8192.0);
    assert_eq!(
        nx(
            "ironlun_nexus_check_conditions_total",
            "sense_key=\"illegal_request\""
        ),
        2.0
    );
    assert!(
        after
            .keys()
            .any(|k| k.starts_with("ironlun_nexus_commands_total{")
                && k.contains(&me)
                && k.contains(&format!("target=\"{TARGET}\""))
                && k.contains("tpgt=\"1\"")),
        "nexus labels: initiator, isid, target, tpgt"
    );

    // A PR registration bumps PRgeneration; a reservation shows as held.
    let gen = |m: &HashMap<String, f64>| at(m, &format!("ironlun_lu_pr_generation{{{LU}}}"));
    let flags = RegisterFlags::default();
    good(s.pr_register(0, 0, 0xAB, &flags).await, "PR register");
    let m = scrape(maddr);
    assert_eq!(gen(&m), gen(&after) + 1.0);
    assert_eq!(at(&m, &format!("ironlun_lu_pr_registrations{{{LU}}}")), 1.0);
    assert_eq!(at(&m, &format!("ironlun_lu_pr_reserved{{{LU}}}")), 0.0);
    good(
        s.pr_reserve(0, 0xAB, PrType::WriteExclusive).await,
        "PR reserve",
    );
    let m = scrape(maddr);
    assert_eq!(at(&m, &format!("ironlun_lu_pr_reserved{{{LU}}}")), 1.0);
    // PR OUT's parameter lists were Data-Out: 24 bytes each.
    assert_eq!(
        at(&m, &format!("ironlun_lu_written_bytes_total{{{LU}}}"))
            - at(&after, &format!("ironlun_lu_written_bytes_total{{{LU}}}")),
        48.0
    );

    // An ALUA state change shows.
    d.cli(&["create", &format!("{RAMDISK}/alua/west"), "tg_pt_gp_id=7"]);
    let state = |m: &HashMap<String, f64>, st: &str| {
        at(
            m,
            &format!(
                "ironlun_lu_alua_access_state{{{LU},group=\"west\",group_id=\"7\",state=\"{st}\"}}"
            ),
        )
    };
    assert_eq!(state(&scrape(maddr), "active_optimized"), 1.0);
    d.cli(&[
        "set",
        &format!("{RAMDISK}/alua/west/alua_access_state"),
        "s",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(maddr);
        if state(&m, "standby") == 1.0 {
            assert_eq!(state(&m, "active_optimized"), 0.0);
            break;
        }
        assert!(Instant::now() < deadline, "standby never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A login to a target that does not exist: not_found.
    let fails = |m: &HashMap<String, f64>| {
        at(
            m,
            "ironlun_iscsi_login_failures_total{reason=\"not_found\"}",
        )
    };
    let f0 = fails(&scrape(maddr));
    let cfg = LoginConfig::normal(&iqn("metrics-lost"), "iqn.2026-11.org.example:no-such");
    assert!(ironlun_initiator::Session::login(d.addr(), &cfg)
        .await
        .is_err());
    assert_eq!(fails(&scrape(maddr)), f0 + 1.0);

    // Both formats; promtool checks the Prometheus text.
    let text = scrape_text(maddr);
    promtool_check(&text);
    let (st, headers, body) = http(
        maddr,
        b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n",
    );
    assert_eq!(st, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("application/openmetrics-text"),
        "{headers}"
    );
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");

    // The nexus leaves the output with its session.
    s.logout(0).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(maddr);
        if !m.keys().any(|k| k.contains(&me)) {
            assert_eq!(at(&m, "ironlun_iscsi_sessions{type=\"normal\"}"), 0.0);
            break;
        }
        assert!(Instant::now() < deadline, "the nexus stayed in the output");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn only_get_metrics_answers_and_junk_does_not_hurt() {
    let mport = metrics_port(4035..4040);
    let maddr: SocketAddr = ([127, 0, 0, 1], mport).into();
    let mut d = Daemon::start_with(
        4020..4030,
        DaemonEnv::args(&["--metrics", &format!("127.0.0.1:{mport}")]),
    );
    for req in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"HEAD /metrics HTTP/1.1\r\n\r\n",
        b"GET /metricsx HTTP/1.1\r\n\r\n",
    ] {
        let (st, _, _) = http(maddr, req);
        assert_eq!(
            st,
            "HTTP/1.1 404 Not Found",
            "{}",
            String::from_utf8_lossy(req)
        );
    }
    let (st, _, _) = http(maddr, b"\x16\x03\x01 not http at all\r\n\r\n");
    assert_eq!(st, "HTTP/1.1 400 Bad Request");
    // A head far over the limit is refused, not buffered.
    let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    let mut s = TcpStream::connect(maddr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(&huge);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&out[..out.len().min(200)])
    );
    // A client trickling its head a byte at a time is dropped once its 2 s are up.
    let mut slow = TcpStream::connect(maddr).unwrap();
    let t0 = Instant::now();
    let mut dropped = false;
    for b in b"GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
        if slow.write_all(&[*b]).is_err() {
            dropped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    slow.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut rest = Vec::new();
    let closed = dropped || slow.read_to_end(&mut rest).is_ok();
    assert!(
        closed && rest.is_empty(),
        "a trickling client was kept {:?}",
        t0.elapsed()
    );
    // Clients that connect and say nothing hold the endpoint for 2 s at most: more than the
    // places get 503 at once; the daemon serves iSCSI meanwhile and scrapes work again once
    // they are gone.
    let idle: Vec<TcpStream> = (0..70)
        .map(|_| TcpStream::connect(maddr).unwrap())
        .collect();
    let (st, _, _) = http(maddr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(st, "HTTP/1.1 503 Service Unavailable");
    assert!(TcpStream::connect(d.addr()).is_ok());
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut s = TcpStream::connect(maddr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        if out.starts_with("HTTP/1.1 200 OK") {
            assert!(out.contains("ironlun_lu_commands_total{"), "{out}");
            break;
        }
        assert!(Instant::now() < deadline, "scrapes never came back");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d.alive());
    // A port that cannot be bound stops the start with one line naming the flag.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ironlun"))
        .arg("--state-dir")
        .arg(dir.path())
        // The start stops at --metrics, before any portal is bound.
        .args(["serve", "--portal", "127.0.0.1:4039", "--metrics"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("--metrics 127.0.0.1:{port}: cannot listen")),
        "{err}"
    );
}
