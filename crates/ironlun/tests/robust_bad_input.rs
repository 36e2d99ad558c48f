//! Robustness against malformed and hostile traffic (RFC 7143 §7.6 format errors, §7.7 digest
//! errors, §4.2.2.1 CmdSN window, §11.17 Reject, §11.12-13 login): the real daemon keeps one
//! healthy session doing verified WRITE + READ I/O the whole time while other connections send
//! garbage. Each attack checks the reaction the RFC asks for (a Reject with the right reason,
//! a Login Response with an error status, or the connection closed); each phase checks that
//! the healthy session kept making progress without a single error and that the daemon's
//! resident memory stays bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironlun_initiator::iscsi::pdu::{login_status, reject_reason};
use ironlun_initiator::iscsi::{
    Bhs, DataOut, Digests, LoginRequest, Pdu, Stage, BHS_LEN, RESERVED_TAG,
};
use ironlun_initiator::scsi::cdb;
use ironlun_initiator::scsi_codes::{sense, status};
use ironlun_initiator::{Bytes, Error, Session};
use support::raw::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Our daemon's ports (3400-3419 of helper H6's 3400-3449).
const PORTS: std::ops::Range<u16> = 3400..3420;
/// Growth of the daemon's VmRSS over the baseline that no phase may exceed: a leak of a
/// buffer per connection or per PDU breaks it, normal per-connection buffers do not.
const RSS_SLACK_KIB: u64 = 64 * 1024;
/// The fabric's login timeout (ironlun_fabric::FabricOptions default; the daemon has no
/// option to change it).
const LOGIN_TIMEOUT: Duration = Duration::from_secs(15);
const MIB: usize = 1 << 20;
/// The Reject reasons a malformed PDU may get (RFC 7143 §11.17.1).
const MALFORMED: [u8; 2] = [
    reject_reason::PROTOCOL_ERROR,
    reject_reason::INVALID_PDU_FIELD,
];

/// The healthy session's verified I/O loop, running as a task.
struct Healthy {
    count: Arc<AtomicU64>,
    error: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Healthy {
    fn start(s: Session) -> Healthy {
        let count = Arc::new(AtomicU64::new(0));
        let error = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, e, st) = (count.clone(), error.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut i = 0u32;
            while !st.load(Ordering::Relaxed) {
                // 4 KiB at one of 1024 places in the first 4 MiB of LUN 0, then read back.
                let lba = u64::from(i % 1024) * 8;
                let data = pattern(1_000_000 + i, 4096);
                let io = async {
                    s.write16(0, lba, data.clone(), BLOCK, false)
                        .await?
                        .good()?;
                    s.read16(0, lba, 8, BLOCK).await?.good()
                };
                let why = match tokio::time::timeout(Duration::from_secs(20), io).await {
                    Ok(Ok(back)) if back[..] == data[..] => None,
                    Ok(Ok(_)) => Some(format!("I/O {i}: data read back differs (lba {lba})")),
                    Ok(Err(e)) => Some(format!("I/O {i} (lba {lba}): {e}")),
                    Err(_) => Some(format!("I/O {i} (lba {lba}): no answer within 20 s")),
                };
                if let Some(why) = why {
                    *e.lock().unwrap() = Some(why);
                    return;
                }
                c.fetch_add(1, Ordering::Relaxed);
                i = i.wrapping_add(1);
            }
        });
        Healthy {
            count,
            error,
            stop,
            task,
        }
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn check(&self, phase: &str) {
        if let Some(e) = self.error.lock().unwrap().clone() {
            panic!("{phase}: the healthy session failed: {e}");
        }
    }

    /// Wait until at least `n` more verified I/Os completed (no speed is asserted: the
    /// guard only turns a stall into a failure).
    async fn progress(&self, phase: &str, n: u64) {
        let target = self.count() + n;
        guard(&format!("{phase}: healthy I/O progress"), async {
            while self.count() < target {
                self.check(phase);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        self.check(phase);
    }
}

struct Ctx {
    d: Daemon,
    baseline_kib: u64,
    healthy: Healthy,
}

impl Ctx {
    fn addr(&self) -> SocketAddr {
        self.d.addr()
    }

    /// After a phase: the healthy session progressed, the daemon lives, memory is bounded.
    async fn checkpoint(&mut self, phase: &str) -> u64 {
        self.healthy.progress(phase, 5).await;
        assert!(self.d.alive(), "{phase}: the daemon died");
        let rss = self.d.rss_kib();
        println!(
            "{phase}: VmRSS {rss} KiB (baseline {} KiB), healthy I/Os {}",
            self.baseline_kib,
            self.healthy.count()
        );
        assert!(
            rss <= self.baseline_kib + RSS_SLACK_KIB,
            "{phase}: daemon VmRSS {rss} KiB exceeds the baseline {} KiB + {} KiB",
            self.baseline_kib,
            RSS_SLACK_KIB
        );
        rss
    }

    /// Run one phase of hostile traffic, then [`Ctx::checkpoint`] it.
    async fn phase(&mut self, phase: &str, traffic: impl std::future::Future<Output = ()>) {
        traffic.await;
        self.checkpoint(phase).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_traffic_leaves_the_daemon_and_other_sessions_intact() {
    raise_fd_limit(4096);
    let d = Daemon::start_in(PORTS);
    let addr = d.addr();
    let healthy_session = login_at(addr, normal("healthy"), 0).await;
    let healthy = Healthy::start(healthy_session.clone());
    healthy.progress("warm-up", 20).await;
    let baseline_kib = d.rss_kib();
    let mut cx = Ctx {
        d,
        baseline_kib,
        healthy,
    };

    // (11a) Half a Login Request, then silence: held through every other phase; the login
    // timeout must end it.
    let half_login_at = Instant::now();
    let mut half_login = TcpStream::connect(addr).await.unwrap();
    half_login
        .write_all(&login_bhs(&iqn("half"), 0)[..30])
        .await
        .unwrap();
    // (11b) Half a SCSI Command in the full feature phase, then silence.
    let mut half_ffp = Raw::login(addr, &normal("half-ffp")).await;
    half_ffp.tur_good().await;
    let partial = scsi_header(&mut half_ffp);
    half_ffp.send_bytes(&partial[..30]).await.unwrap();
    cx.checkpoint("half-sent PDUs outstanding").await;

    cx.phase("(1) unknown opcodes", unknown_opcode(addr)).await;

    cx.phase("(2) truncated BHS", truncated_bhs(addr)).await;

    cx.phase(
        "(3) DataSegmentLength over MaxRecvDataSegmentLength",
        data_segment_too_long(addr),
    )
    .await;

    cx.phase("(4) header and data digest errors", digest_errors(addr))
        .await;

    cx.phase("(5) CmdSN outside the window", cmd_sn_outside_window(addr))
        .await;

    cx.phase(
        "(6) Data-Out with unknown TTT / ITT",
        data_out_unknown_tags(addr),
    )
    .await;

    cx.phase(
        "(7) Login Request in the full feature phase",
        login_in_full_feature_phase(addr),
    )
    .await;

    cx.phase("(8) text without '='", text_without_equals(addr))
        .await;

    cx.phase("(9) 1 MiB key value", huge_key_value(addr)).await;

    cx.phase(
        "(10) garbage before the first login",
        garbage_before_login(addr),
    )
    .await;

    cx.phase("bad version in login", bad_version(addr)).await;

    cx.phase("garbage SCSI commands", garbage_scsi_commands(addr))
        .await;

    cx.phase("huge / inconsistent AHS", bad_ahs(addr)).await;

    // (12) 1,000 connections that never log in, twice: the second round must not grow
    // memory much beyond the first (a per-connection leak would).
    let r1 = idle_flood(&mut cx, 1000, "(12) 1000 idle connections, round 1").await;
    let r2 = idle_flood(&mut cx, 1000, "(12) 1000 idle connections, round 2").await;
    assert!(
        r2 <= r1 + 24 * 1024,
        "VmRSS grew from {r1} KiB to {r2} KiB over a second round of 1000 connections"
    );

    // (11a) The login timeout ends the half-sent login (not later than the timeout plus
    // generous slack).
    let deadline = half_login_at + LOGIN_TIMEOUT + Duration::from_secs(10);
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout_at(deadline.into(), half_login.read(&mut buf)).await;
    match closed {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("half-sent login: {n} bytes came back instead of a close"),
        Err(_) => panic!(
            "half-sent login still open {:?} after it started (login timeout {LOGIN_TIMEOUT:?})",
            half_login_at.elapsed()
        ),
    }
    // (11b) The half-sent command never disturbed anything; the connection is dropped now.
    drop(half_ffp);
    cx.checkpoint("(11) half-sent PDUs").await;

    // (13) Writes announced, their data never sent: held, but memory comes only with data.
    let announced = announce_writes(addr).await;
    cx.checkpoint("(13) 256 MiB of writes announced, no data sent")
        .await;
    drop(announced);

    // Last, because it exposes a reinstatement race that leaves the other phases unchecked.
    cx.phase("ISID reuse storm", isid_storm(addr)).await;

    // The daemon is alive, answers a fresh login, and the healthy session never failed.
    let fresh = login_at(addr, normal("fresh"), 0).await;
    let data = pattern(7, 65536);
    good(
        guard(
            "fresh write",
            fresh.write16(0, 100_000, data.clone(), BLOCK, true),
        )
        .await,
        "fresh write",
    );
    let back = good(
        guard("fresh read", fresh.read16(0, 100_000, 128, BLOCK)).await,
        "fresh read",
    );
    assert_eq!(&back[..], &data[..]);
    cx.healthy.progress("end", 5).await;
    cx.healthy.stop.store(true, Ordering::Relaxed);
    guard("healthy loop end", &mut cx.healthy.task)
        .await
        .unwrap();
    cx.healthy.check("end");
    assert!(healthy_session.closed().is_none(), "healthy session closed");
    assert!(
        healthy_session.stats().violations.is_empty(),
        "{:?}",
        healthy_session.stats().violations
    );
    assert!(cx.d.alive(), "daemon died");
    println!(
        "healthy session completed {} verified I/Os",
        cx.healthy.count()
    );
}

/// Eight WRITE(16) commands of 32 MiB each (256 MiB in all, within the default buffered-write
/// limit) whose data never comes: the connection is returned, held open. A target that fills
/// each buffer ahead of its data (zeroes where Data-Out will land) takes 256 MiB for nothing.
async fn announce_writes(addr: SocketAddr) -> Raw {
    let mut r = Raw::login(addr, &normal("announcer")).await;
    r.tur_good().await;
    for i in 0..8u64 {
        let sn = r.take_cmd_sn();
        let blocks = 65536u32;
        let cdb = cdb::write16(i * u64::from(blocks), blocks, false);
        let cmd = r.scsi_bhs(0, cdb, false, true, blocks * BLOCK, sn);
        r.send(Pdu::new(Bhs::ScsiCommand(cmd))).await;
    }
    // The R2Ts come back; they stay unanswered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    r
}

/// A Login Request header (security stage, T=1 to operational) for raw use.
fn login_bhs(initiator: &str, isid_low: u8) -> Vec<u8> {
    let data = login_text(initiator);
    let pdu = Pdu::with_data(Bhs::LoginRequest(login_req(isid_low)), Bytes::from(data));
    pdu.to_bytes(Digests::default()).unwrap().to_vec()
}

fn login_req(isid_low: u8) -> LoginRequest {
    LoginRequest {
        transit: true,
        cont: false,
        csg: Stage::Security,
        nsg: Stage::Operational,
        version_max: 0,
        version_min: 0,
        isid: [0x80, 0, 0x48, 0x36, 0, isid_low],
        tsih: 0,
        itt: 1,
        cid: 0,
        cmd_sn: 0,
        exp_stat_sn: 0,
    }
}

fn login_text(initiator: &str) -> Vec<u8> {
    let mut t = Vec::new();
    for (k, v) in [
        ("InitiatorName", initiator),
        ("SessionType", "Normal"),
        ("TargetName", TARGET),
        ("AuthMethod", "None"),
    ] {
        t.extend_from_slice(format!("{k}={v}\0").as_bytes());
    }
    t
}

/// A TEST UNIT READY header with the next CmdSN, encoded without digests.
fn scsi_header(r: &mut Raw) -> Vec<u8> {
    let sn = r.cmd_sn();
    let cmd = r.scsi_bhs(0, cdb16(&cdb::test_unit_ready()), false, false, 0, sn);
    header_of(&Pdu::new(Bhs::ScsiCommand(cmd)))
}

/// Read from a not-logged-in connection until the target closes it. Anything it sent
/// before must be a Login Response with an error status (class ≠ 0); returns that status.
async fn expect_refused(s: &mut TcpStream, what: &str) -> Option<(u8, u8)> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match guard(what, s.read(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    if got.is_empty() {
        return None;
    }
    assert!(
        got.len() >= BHS_LEN,
        "{what}: {} stray bytes before the close",
        got.len()
    );
    let mut h = [0u8; BHS_LEN];
    h.copy_from_slice(&got[..BHS_LEN]);
    match Bhs::decode(&h) {
        Bhs::LoginResponse(r) => {
            assert_ne!(
                r.status_class, 0,
                "{what}: the target accepted the login: {r:?}"
            );
            Some((r.status_class, r.status_detail))
        }
        other => panic!("{what}: the target answered {other:?} instead of closing"),
    }
}

/// (1) Reserved and vendor-specific opcodes in the full feature phase: Reject "Command not
/// supported" (RFC 7143 §11.17.1) carrying our header; the connection goes on.
async fn unknown_opcode(addr: SocketAddr) {
    let mut r = Raw::login(addr, &normal("bad-opcode")).await;
    r.tur_good().await;
    for op in [0x0f_u8, 0x1c, 0x1e] {
        let itt = r.itt();
        let mut h = [0u8; BHS_LEN];
        h[0] = op;
        h[1] = 0x80;
        h[16..20].copy_from_slice(&itt.to_be_bytes());
        h[24..28].copy_from_slice(&r.cmd_sn().to_be_bytes());
        h[28..32].copy_from_slice(&r.exp_stat_sn().to_be_bytes());
        r.send_bytes(&h).await.unwrap();
        r.expect_reject(
            &format!("opcode {op:#04x}"),
            &[reject_reason::COMMAND_NOT_SUPPORTED],
            &h,
        )
        .await;
    }
    // The rejected PDUs took no CmdSN: the next command uses the same one (§11.17.1).
    r.tur_good().await;
    r.ping().await;
}

/// (2) A truncated BHS, then the initiator closes: before login and in the full feature
/// phase. The target closes its side too (no waiting for a timeout).
async fn truncated_bhs(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&login_bhs(&iqn("trunc"), 1)[..20])
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(expect_refused(&mut s, "truncated login BHS").await, None);

    let mut r = Raw::login(addr, &normal("trunc-ffp")).await;
    r.tur_good().await;
    let h = scsi_header(&mut r);
    r.send_bytes(&h[..20]).await.unwrap();
    let Raw { conn, .. } = r;
    conn.close().await;
}

/// (3) A data segment longer than the MaxRecvDataSegmentLength the target declared: a format
/// error (RFC 7143 §7.6): the target closes the connection, at most after a Reject.
async fn data_segment_too_long(addr: SocketAddr) {
    let mut r = Raw::login(addr, &normal("big-dsl")).await;
    r.tur_good().await;
    let max = r.neg.params.max_xmit_data_segment_length;
    assert!(max >= 512, "target declared MaxRecvDataSegmentLength {max}");
    let len = max as usize + 512;
    let sn = r.take_cmd_sn();
    let cmd = r.scsi_bhs(
        0,
        cdb::write16(200_000, (len / BLOCK as usize) as u32, false),
        false,
        true,
        len as u32,
        sn,
    );
    let pdu = Pdu::with_data(Bhs::ScsiCommand(cmd), Bytes::from(pattern(3, len)));
    let bytes = pdu.to_bytes(r.conn.digests()).unwrap();
    // The target may close before it has read everything we send.
    let _ = r.send_bytes(&bytes).await;
    r.expect_close(
        "DataSegmentLength over the limit",
        |b| matches!(b, Bhs::Reject(j) if j.reason == reject_reason::PROTOCOL_ERROR),
    )
    .await;
}

/// (4) With HeaderDigest=CRC32C, a header digest error ends the connection (RFC 7143 §7.7:
/// the length cannot be trusted; ERL 0 has no recovery). With DataDigest=CRC32C, a data
/// digest error on immediate data gets Reject "Data (payload) digest error" and the command
/// is discarded; re-sent with the same CmdSN it succeeds.
async fn digest_errors(addr: SocketAddr) {
    let cfg = normal("hdigest").offer("HeaderDigest", "CRC32C");
    let mut r = Raw::login(addr, &cfg).await;
    assert!(r.neg.params.header_digest, "HeaderDigest=CRC32C not agreed");
    r.tur_good().await;
    let sn = r.cmd_sn();
    let cmd = r.scsi_bhs(0, cdb16(&cdb::test_unit_ready()), false, false, 0, sn);
    let mut bytes = Pdu::new(Bhs::ScsiCommand(cmd))
        .to_bytes(r.conn.digests())
        .unwrap();
    bytes[BHS_LEN] ^= 0x5a;
    r.send_bytes(&bytes).await.unwrap();
    r.expect_close("header digest error", |_| false).await;

    let cfg = normal("ddigest")
        .offer("DataDigest", "CRC32C")
        .offer("ImmediateData", "Yes");
    let mut r = Raw::login(addr, &cfg).await;
    assert!(r.neg.params.data_digest, "DataDigest=CRC32C not agreed");
    assert!(r.neg.params.immediate_data);
    r.tur_good().await;
    let data = pattern(4, 4096);
    let sn = r.cmd_sn();
    let cmd = r.scsi_bhs(0, cdb::write16(300_000, 8, false), false, true, 4096, sn);
    let pdu = Pdu::with_data(Bhs::ScsiCommand(cmd), Bytes::from(data.clone()));
    let mut bytes = pdu.to_bytes(r.conn.digests()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    r.send_bytes(&bytes).await.unwrap();
    let sent = header_of(&pdu);
    r.expect_reject(
        "data digest error",
        &[reject_reason::DATA_DIGEST_ERROR],
        &sent,
    )
    .await;
    // Re-issue with the same CmdSN (the gap the discarded command left, §11.17.1).
    let cmd = r.scsi_bhs(0, cdb::write16(300_000, 8, false), false, true, 4096, sn);
    let itt = cmd.itt;
    r.send(Pdu::with_data(
        Bhs::ScsiCommand(cmd),
        Bytes::from(data.clone()),
    ))
    .await;
    let o = r.outcome(itt).await;
    assert_eq!(o.status, status::GOOD, "{o:?}");
    r.take_cmd_sn();
    let o = r.command(0, cdb::read16(300_000, 8, false), 4096).await;
    assert_eq!(o.status, status::GOOD, "{o:?}");
    assert_eq!(o.data, data, "data digest test: read back differs");
}

/// (5) Commands outside [ExpCmdSN, MaxCmdSN] are silently ignored (RFC 7143 §4.2.2.1): no
/// response, and the next in-window command and a ping are answered first.
async fn cmd_sn_outside_window(addr: SocketAddr) {
    let mut r = Raw::login(addr, &normal("cmdsn")).await;
    r.tur_good().await;
    let sn = r.cmd_sn();
    let max = r.conn.counters.max_cmd_sn;
    for bad in [
        sn.wrapping_add(0x4000_0000),
        sn.wrapping_add(0x7fff_0000),
        max.wrapping_add(1),
        sn.wrapping_sub(1),
        sn.wrapping_sub(1000),
    ] {
        let cmd = r.scsi_bhs(0, cdb16(&cdb::test_unit_ready()), false, false, 0, bad);
        r.send(Pdu::new(Bhs::ScsiCommand(cmd))).await;
        // A write far outside the window must not be solicited either (no R2T).
        let cmd = r.scsi_bhs(0, cdb::write16(0, 8, false), false, true, 4096, bad);
        r.send(Pdu::new(Bhs::ScsiCommand(cmd))).await;
    }
    // `outcome` fails on any PDU other than this command's answer.
    let o = r.command(0, cdb16(&cdb::test_unit_ready()), 0).await;
    assert_eq!(o.status, status::GOOD, "{o:?}");
    r.ping().await;
    let o = r.command(0, cdb16(&cdb::test_unit_ready()), 0).await;
    assert_eq!(o.status, status::GOOD, "{o:?}");
}

/// (6) Data-Out naming a TTT the target never issued, or an ITT it does not know: Reject
/// "Invalid PDU field" (RFC 7143 §11.17.1). The write the bad TTT pretended to answer is
/// not ended by the Reject (§11.17.1): the right Data-Out still completes it.
async fn data_out_unknown_tags(addr: SocketAddr) {
    let cfg = normal("bad-ttt")
        .offer("ImmediateData", "No")
        .offer("InitialR2T", "Yes");
    let mut r = Raw::login(addr, &cfg).await;
    r.tur_good().await;
    let data = pattern(6, 4096);
    let sn = r.take_cmd_sn();
    let cmd = r.scsi_bhs(0, cdb::write16(400_000, 8, false), false, true, 4096, sn);
    let (itt, lun) = (cmd.itt, cmd.lun);
    r.send(Pdu::new(Bhs::ScsiCommand(cmd))).await;
    let p = r.recv().await.expect("R2T");
    let Bhs::R2t(r2t) = p.bhs else {
        panic!("expected an R2T, got {:?}", p.bhs);
    };
    assert_eq!(
        (r2t.itt, r2t.buffer_offset, r2t.desired_length),
        (itt, 0, 4096)
    );
    let mut bad_ttt = r2t.ttt ^ 0x5a5a_5a5a;
    if bad_ttt == RESERVED_TAG {
        bad_ttt = 0x1234_5678;
    }
    let data_out = |itt: u32, ttt: u32, exp: u32| {
        Pdu::with_data(
            Bhs::DataOut(DataOut {
                final_: true,
                lun,
                itt,
                ttt,
                exp_stat_sn: exp,
                data_sn: 0,
                buffer_offset: 0,
            }),
            Bytes::from(data.clone()),
        )
    };
    let bad = data_out(itt, bad_ttt, r.exp_stat_sn());
    r.send(bad.clone()).await;
    r.expect_reject(
        "Data-Out with an unknown TTT",
        &[reject_reason::INVALID_PDU_FIELD],
        &header_of(&bad),
    )
    .await;
    let stranger = r.itt();
    let bad = data_out(stranger, r2t.ttt, r.exp_stat_sn());
    r.send(bad.clone()).await;
    r.expect_reject(
        "Data-Out with an unknown ITT",
        &[reject_reason::INVALID_PDU_FIELD],
        &header_of(&bad),
    )
    .await;
    r.send(data_out(itt, r2t.ttt, r.exp_stat_sn())).await;
    let o = r.outcome(itt).await;
    assert_eq!(
        o.status,
        status::GOOD,
        "write after the rejected Data-Outs: {o:?}"
    );
    let o = r.command(0, cdb::read16(400_000, 8, false), 4096).await;
    assert_eq!(o.status, status::GOOD, "{o:?}");
    assert_eq!(
        o.data, data,
        "the write completed after the Rejects stored other data"
    );
}

/// (7) A Login Request in the full feature phase: Reject "Protocol error" (RFC 7143
/// §11.17.1); the session goes on.
async fn login_in_full_feature_phase(addr: SocketAddr) {
    let mut r = Raw::login(addr, &normal("ffp-login")).await;
    r.tur_good().await;
    let mut req = login_req(9);
    req.csg = Stage::Operational;
    req.nsg = Stage::FullFeature;
    req.tsih = r.neg.tsih;
    req.itt = r.itt();
    req.cmd_sn = r.cmd_sn();
    req.exp_stat_sn = r.exp_stat_sn();
    let pdu = Pdu::with_data(
        Bhs::LoginRequest(req),
        Bytes::from(login_text(&iqn("ffp-login"))),
    );
    r.send(pdu.clone()).await;
    r.expect_reject(
        "Login Request in the full feature phase",
        &[reject_reason::PROTOCOL_ERROR],
        &header_of(&pdu),
    )
    .await;
    r.tur_good().await;
    r.ping().await;
}

/// A Text Request (SendTargets=All) with an explicit CmdSN must get a final Text Response
/// listing our target.
async fn text_ok(r: &mut Raw, cmd_sn: u32) {
    let itt = r.itt();
    let req = r.text_bhs(itt, RESERVED_TAG, cmd_sn, true);
    r.send(Pdu::with_data(
        req,
        Bytes::from_static(b"SendTargets=All\0"),
    ))
    .await;
    let p = r.recv().await.expect("Text Response");
    match &p.bhs {
        Bhs::TextResponse(t) if t.itt == itt && t.final_ => {
            let text = String::from_utf8_lossy(&p.data);
            assert!(text.contains(TARGET), "SendTargets answer: {text:?}");
        }
        other => panic!("expected a final Text Response, got {other:?}"),
    }
}

/// (8) Text without '=': in a Login Request a Login Response with an initiator error
/// (class 2, RFC 7143 §11.13.5) and the close; in a Text Request a Reject, after which the
/// same CmdSN carries a valid request.
async fn text_without_equals(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut text = login_text(&iqn("no-equals"));
    text.extend_from_slice(b"ThisKeyHasNoValue\0");
    let pdu = Pdu::with_data(Bhs::LoginRequest(login_req(2)), Bytes::from(text));
    s.write_all(&pdu.to_bytes(Digests::default()).unwrap())
        .await
        .unwrap();
    let st = expect_refused(&mut s, "login text without '='").await;
    assert_eq!(
        st.map(|(c, _)| c),
        Some(0x02),
        "login text without '=': expected an initiator-error Login Response"
    );

    let mut r = Raw::login(addr, &normal("no-equals-ffp")).await;
    r.tur_good().await;
    let sn = r.cmd_sn();
    let itt = r.itt();
    let req = Pdu::with_data(
        r.text_bhs(itt, RESERVED_TAG, sn, true),
        Bytes::from_static(b"ThisKeyHasNoValue\0"),
    );
    r.send(req.clone()).await;
    let reason = r
        .expect_reject("Text Request without '='", &MALFORMED, &header_of(&req))
        .await;
    println!("Text Request without '=': Reject reason {reason:#04x}");
    text_ok(&mut r, sn).await;
    r.take_cmd_sn();
    r.tur_good().await;
}

/// (9) A 1 MiB key value: over login continuation PDUs (refused with an initiator error
/// once the target's bound is passed, never accepted), as one Text Request data segment (over
/// MaxRecvDataSegmentLength: the connection closes), and over Text continuation PDUs (a
/// Reject once past the bound; the session goes on).
async fn huge_key_value(addr: SocketAddr) {
    let huge = "v".repeat(MIB);
    let mut cfg = normal("huge-login");
    cfg.extra_keys
        .push(("X-org.example.huge".into(), huge.clone()));
    match guard("login with a 1 MiB value", Session::login(addr, &cfg)).await {
        Err(e) => {
            let st = e.login_status();
            assert_eq!(
                st.map(|s| s >> 8),
                Some(login_status::INITIATOR_ERROR >> 8),
                "login with a 1 MiB value: expected an initiator-error Login Response, got {e}"
            );
        }
        Ok(_) => panic!("a login carrying a 1 MiB key value was accepted"),
    }

    let mut r = Raw::login(addr, &normal("huge-text")).await;
    r.tur_good().await;
    let mut body = format!("X-org.example.huge={huge}").into_bytes();
    body.push(0);
    let sn = r.take_cmd_sn();
    let itt = r.itt();
    let req = Pdu::with_data(
        r.text_bhs(itt, RESERVED_TAG, sn, true),
        Bytes::from(body.clone()),
    );
    let bytes = req.to_bytes(r.conn.digests()).unwrap();
    let _ = r.send_bytes(&bytes).await;
    r.expect_close(
        "1 MiB Text Request data segment",
        |b| matches!(b, Bhs::Reject(j) if j.reason == reject_reason::PROTOCOL_ERROR),
    )
    .await;

    let mut r = Raw::login(addr, &normal("huge-text-cont")).await;
    r.tur_good().await;
    let itt = r.itt();
    let mut ttt = RESERVED_TAG;
    let chunks: Vec<&[u8]> = body.chunks(16 * 1024).collect();
    let mut rejected_sn = None;
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let sn = r.take_cmd_sn();
        let req = Pdu::with_data(
            r.text_bhs(itt, ttt, sn, last),
            Bytes::copy_from_slice(chunk),
        );
        r.send(req.clone()).await;
        let p = r.recv().await.expect("answer to a Text continuation");
        match &p.bhs {
            Bhs::TextResponse(t) if t.itt == itt && !t.final_ && t.ttt != RESERVED_TAG => {
                ttt = t.ttt;
            }
            Bhs::Reject(_) => {
                let reason = check_reject(
                    &p,
                    "Text continuation past the bound",
                    &MALFORMED,
                    &header_of(&req),
                );
                println!(
                    "Text continuation refused after {} bytes (Reject {reason:#04x})",
                    (i + 1) * 16 * 1024
                );
                rejected_sn = Some(sn);
                break;
            }
            other => panic!("Text continuation {i}: unexpected {other:?}"),
        }
    }
    let sn = rejected_sn.expect("a 1 MiB value over Text continuations was accepted");
    text_ok(&mut r, sn).await;
    r.tur_good().await;
}

/// (10) Bytes that are not a Login Request before the first login: the connection closes
/// (an error Login Response before it is allowed), nothing else.
async fn garbage_before_login(addr: SocketAddr) {
    let http = b"GET / HTTP/1.1\r\nHost: ironlun\r\nUser-Agent: robust-test\r\nAccept: */*\r\n\r\n";
    let random = pattern(10, 4096);
    let nop_out = [0u8; BHS_LEN];
    let mut reversed = login_bhs(&iqn("garbage"), 3);
    reversed.reverse();
    for (what, bytes) in [
        ("HTTP request", &http[..]),
        ("4 KiB of noise", &random[..]),
        ("a NOP-Out as the first PDU", &nop_out[..]),
        ("a reversed Login Request", &reversed[..]),
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // The target may close before it has read all of it.
        let _ = s.write_all(bytes).await;
        expect_refused(&mut s, what).await;
    }
}

/// A Login Request with Version-min above what the target supports: "Unsupported version"
/// (0205, RFC 7143 §11.13.5), then the close.
async fn bad_version(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = login_req(4);
    req.version_max = 7;
    req.version_min = 5;
    let pdu = Pdu::with_data(
        Bhs::LoginRequest(req),
        Bytes::from(login_text(&iqn("version"))),
    );
    s.write_all(&pdu.to_bytes(Digests::default()).unwrap())
        .await
        .unwrap();
    let st = expect_refused(&mut s, "login with an unsupported version").await;
    assert_eq!(
        st.map(|(c, d)| (u16::from(c) << 8) | u16::from(d)),
        Some(login_status::UNSUPPORTED_VERSION)
    );
}

/// SCSI commands that are garbage: unknown opcodes get CHECK CONDITION ILLEGAL REQUEST /
/// INVALID COMMAND OPERATION CODE; a 4 GiB write is refused without soliciting data;
/// immediate data where none may be is rejected (and the CmdSN gap plugged).
async fn garbage_scsi_commands(addr: SocketAddr) {
    let mut r = Raw::login(addr, &normal("garbage-scsi")).await;
    r.tur_good().await;
    let o = r.command(0, [0xff; 16], 0).await;
    assert_eq!(o.status, status::CHECK_CONDITION, "{o:?}");
    assert_eq!(
        o.sense,
        Some((sense::key::ILLEGAL_REQUEST, 0x20, 0x00)),
        "{o:?}"
    );
    let mut c = pattern(11, 16);
    c[0] = 0xfe;
    let o = r.command(0, cdb16(&c), 65536).await;
    assert_eq!(o.status, status::CHECK_CONDITION, "{o:?}");
    assert_eq!(
        o.sense,
        Some((sense::key::ILLEGAL_REQUEST, 0x20, 0x00)),
        "{o:?}"
    );

    // WRITE(16) of 0xffffffff blocks with an expected length of 4 GiB - 1.
    let sn = r.take_cmd_sn();
    let cmd = r.scsi_bhs(
        0,
        cdb::write16(0, u32::MAX, false),
        false,
        true,
        u32::MAX,
        sn,
    );
    let itt = cmd.itt;
    r.send(Pdu::new(Bhs::ScsiCommand(cmd))).await;
    let o = r.outcome(itt).await;
    assert_eq!(o.status, status::CHECK_CONDITION, "{o:?}");
    assert_eq!(
        o.sense.map(|s| s.0),
        Some(sense::key::ILLEGAL_REQUEST),
        "{o:?}"
    );

    // Immediate data on a command without the W bit, and more immediate data than the
    // expected length: Reject (the command is discarded, its CmdSN left as a gap).
    for (what, write, edtl, imm) in [
        ("immediate data on a read", false, 512u32, 512usize),
        ("immediate data beyond the expected length", true, 512, 1024),
    ] {
        let sn = r.cmd_sn();
        let c = if write {
            cdb::write16(500_000, 1, false)
        } else {
            cdb::read16(500_000, 1, false)
        };
        let cmd = r.scsi_bhs(0, c, !write, write, edtl, sn);
        let pdu = Pdu::with_data(Bhs::ScsiCommand(cmd), Bytes::from(pattern(12, imm)));
        r.send(pdu.clone()).await;
        let reason = r.expect_reject(what, &MALFORMED, &header_of(&pdu)).await;
        println!("{what}: Reject reason {reason:#04x}");
        r.tur_good().await;
    }
    r.ping().await;
}

/// AHS that lies about its length, an empty Extended CDB AHS, and a maximal (1020-byte)
/// AHS with a garbage extended CDB: Reject (or the close of a format error, RFC 7143 §7.6)
/// for the inconsistent ones, CHECK CONDITION for the well-formed garbage CDB.
async fn bad_ahs(addr: SocketAddr) {
    let mut r = Raw::login(addr, &normal("bad-ahs")).await;
    r.tur_good().await;
    // Maximal AHS (TotalAHSLength 255 words) with a well-formed Extended CDB AHS whose CDB
    // is garbage (opcode 0xff, 16 + 1016 bytes).
    let mut ahs = Vec::with_capacity(1020);
    ahs.extend_from_slice(&1017u16.to_be_bytes());
    ahs.push(1);
    ahs.push(0);
    ahs.extend_from_slice(&pattern(13, 1016));
    assert_eq!(ahs.len(), 1020);
    let sn = r.take_cmd_sn();
    let cmd = r.scsi_bhs(0, [0xff; 16], false, false, 0, sn);
    let itt = cmd.itt;
    let mut pdu = Pdu::new(Bhs::ScsiCommand(cmd));
    pdu.ahs = Bytes::from(ahs);
    r.send(pdu).await;
    let o = r.outcome(itt).await;
    assert_eq!(o.status, status::CHECK_CONDITION, "{o:?}");
    assert_eq!(
        o.sense.map(|s| s.0),
        Some(sense::key::ILLEGAL_REQUEST),
        "{o:?}"
    );

    for (what, ahs) in [
        ("AHS length 65535 in a 1020-byte AHS", {
            let mut a = vec![0u8; 1020];
            a[0] = 0xff;
            a[1] = 0xff;
            a[2] = 1;
            a
        }),
        ("empty Extended CDB AHS", vec![0, 0, 1, 0]),
    ] {
        let sn = r.cmd_sn();
        let cmd = r.scsi_bhs(0, cdb16(&cdb::test_unit_ready()), false, false, 0, sn);
        let mut pdu = Pdu::new(Bhs::ScsiCommand(cmd));
        pdu.ahs = Bytes::from(ahs);
        let bytes = pdu.to_bytes(r.conn.digests()).unwrap();
        let header = bytes[..BHS_LEN].to_vec();
        r.send_bytes(&bytes).await.unwrap();
        match r.recv().await {
            Ok(p) => match &p.bhs {
                Bhs::Reject(_) => {
                    let reason = check_reject(&p, what, &MALFORMED, &header);
                    println!("{what}: Reject reason {reason:#04x}");
                    r.tur_good().await;
                }
                other => panic!("{what}: expected a Reject or the close, got {other:?}"),
            },
            Err(Error::ConnectionClosed) => {
                println!("{what}: connection closed");
                r = Raw::login(addr, &normal("bad-ahs")).await;
                r.tur_good().await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// Many logins at once with one initiator port (same name and ISID): each reinstates the
/// previous session (RFC 7143 §6.3.5), so exactly one stays — and works.
async fn isid_storm(addr: SocketAddr) {
    let cfg = normal("storm").isid([0x80, 0, 0x53, 0x54, 0, 1]);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(
            async move { Session::login(addr, &cfg).await },
        ));
    }
    let mut sessions = Vec::new();
    for t in tasks {
        match guard("storm login", t).await.unwrap() {
            Ok(s) => sessions.push(s),
            Err(e) => panic!("a login of the ISID storm failed: {e}"),
        }
    }
    // Sequential reinstatements on top.
    for _ in 0..16 {
        sessions.push(
            guard("storm login", Session::login(addr, &cfg))
                .await
                .unwrap_or_else(|e| panic!("a sequential reinstating login failed: {e}")),
        );
    }
    let open = |v: &[Session]| v.iter().filter(|s| s.closed().is_none()).count();
    let settled = tokio::time::timeout(Duration::from_secs(10), async {
        while open(&sessions) > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let live_tsihs: Vec<u16> = sessions
        .iter()
        .filter(|s| s.closed().is_none())
        .map(|s| s.negotiated().tsih)
        .collect();
    assert!(
        settled.is_ok(),
        "after the ISID storm {} sessions of one initiator port are still open (TSIHs \
         {live_tsihs:?}): a reinstating login must replace the old session (RFC 7143 §6.3.5)",
        live_tsihs.len()
    );
    let live: Vec<&Session> = sessions.iter().filter(|s| s.closed().is_none()).collect();
    assert_eq!(live.len(), 1, "no session of the storm survived");
    clear_ua(live[0], 0).await;
    let data = pattern(14, 4096);
    good(
        guard(
            "storm survivor write",
            live[0].write16(0, 600_000, data.clone(), BLOCK, false),
        )
        .await,
        "storm survivor write",
    );
    let back = good(
        guard("storm survivor read", live[0].read16(0, 600_000, 8, BLOCK)).await,
        "storm survivor read",
    );
    assert_eq!(&back[..], &data[..]);
}

/// (12) Open `n` connections that never log in and hold them while the healthy session
/// works; then close them and wait until a fresh login succeeds. Returns VmRSS after.
async fn idle_flood(cx: &mut Ctx, n: usize, phase: &str) -> u64 {
    let addr = cx.addr();
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        match TcpStream::connect(addr).await {
            Ok(s) => held.push(s),
            Err(e) => panic!("{phase}: connection {i} failed: {e}"),
        }
    }
    cx.checkpoint(&format!("{phase}: held")).await;
    // Not asserted (a design choice, reported): can a new initiator log in meanwhile?
    let probe = tokio::time::timeout(
        Duration::from_secs(5),
        Session::login(addr, &normal("during-flood")),
    )
    .await;
    println!(
        "{phase}: a fresh login while {n} idle connections are held: {}",
        match probe {
            Ok(Ok(_)) => "succeeded".to_string(),
            Ok(Err(e)) => format!("failed ({e})"),
            Err(_) => "no answer within 5 s".to_string(),
        }
    );
    drop(held);
    // Once the target has seen the closes, logins work again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            Session::login(addr, &normal("after-flood")),
        )
        .await;
        if let Ok(Ok(s)) = r {
            clear_ua(&s, 0).await;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{phase}: no login possible 20 s after the idle connections closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cx.checkpoint(&format!("{phase}: closed")).await
}

/// The idle-connection phase holds 1,000 sockets in this process: make sure a low default
/// soft limit (often 1024) does not fail the test instead of the daemon.
fn raise_fd_limit(want: libc::rlim_t) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to a live rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = lim.rlim_max.min(want);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
