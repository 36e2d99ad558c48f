//! The initiator against the in-test fake target (tests/fake): login and negotiation, CHAP,
//! data transfer flows, NOP, TMF, discovery, logout, and hostile target input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake;

use std::time::Duration;

use bytes::Bytes;
use fake::{pattern, spawn, FakeConfig, BLOCK, TARGET};
use ironlun_initiator::iscsi::chap::ChapAlgorithm;
use ironlun_initiator::iscsi::pdu::{logout, task_attr, tmf_response};
use ironlun_initiator::session::DataOutPolicy;
use ironlun_initiator::{
    ChapConfig, CommandOptions, Connection, Error, Event, LoginConfig, Session,
};

const INI: &str = "iqn.2026-11.test:ini";

/// Liveness guard: a hang is a failure, not a measurement.
async fn guard<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("operation hung")
}

async fn session(f: &fake::Fake, cfg: LoginConfig) -> Session {
    guard(Session::login(f.addr, &cfg)).await.expect("login")
}

#[tokio::test]
async fn login_negotiates_each_offered_key() {
    let f = spawn(FakeConfig {
        ours: vec![("MaxBurstLength", "131072"), ("MaxOutstandingR2T", "2")],
        ..FakeConfig::default()
    })
    .await;
    let cfg = LoginConfig::normal(INI, TARGET)
        .offer("HeaderDigest", "CRC32C,None")
        .offer("DataDigest", "CRC32C")
        .offer("MaxBurstLength", "262144")
        .offer("FirstBurstLength", "32768")
        .offer("MaxOutstandingR2T", "8")
        .offer("InitialR2T", "No")
        .offer("ImmediateData", "No")
        .offer("MaxRecvDataSegmentLength", "4096");
    let s = session(&f, cfg).await;
    let n = s.negotiated();
    assert_eq!(n.value("HeaderDigest"), Some("CRC32C"));
    assert_eq!(n.value("DataDigest"), Some("CRC32C"));
    assert!(n.params.header_digest && n.params.data_digest);
    assert_eq!(n.value("MaxBurstLength"), Some("131072"));
    assert_eq!(n.params.max_burst_length, 131072);
    assert_eq!(n.params.first_burst_length, 32768);
    assert_eq!(n.params.max_outstanding_r2t, 2);
    assert!(!n.params.initial_r2t);
    assert!(!n.params.immediate_data);
    assert_eq!(n.params.max_recv_data_segment_length, 4096);
    assert_eq!(n.params.max_xmit_data_segment_length, 65536);
    assert_eq!(n.target_portal_group_tag, Some(1));
    assert_eq!(n.tsih, 7);
    // What we sent reached the target.
    let seen = f.seen.lock().unwrap().last().cloned().unwrap();
    assert!(seen.contains(&("InitiatorName".into(), INI.into())));
    assert!(seen.contains(&("TargetName".into(), TARGET.into())));
    assert!(seen.contains(&("MaxRecvDataSegmentLength".into(), "4096".into())));

    // Digests on, with data both ways; Data-In never exceeds our 4096.
    let data = pattern(3, 64 * 1024);
    let r = guard(s.write16(0, 8, data.clone(), BLOCK as u32, true))
        .await
        .unwrap();
    assert_eq!(r.status, 0);
    let r = guard(s.read16(0, 8, 128, BLOCK as u32)).await.unwrap();
    assert_eq!(r.clone().good().unwrap(), Bytes::from(data));
    assert_eq!(r.data_in_pdus, 16);
    let st = s.stats();
    assert_eq!(st.max_data_in_segment, 4096);
    assert!(st.violations.is_empty(), "{:?}", st.violations);
}

#[tokio::test]
async fn target_offers_are_answered() {
    let f = spawn(FakeConfig {
        target_offers: vec![("DefaultTime2Wait", "5"), ("X-vendor.key", "1")],
        ..FakeConfig::default()
    })
    .await;
    let s = session(
        &f,
        LoginConfig::normal(INI, TARGET).without_offer("DefaultTime2Wait"),
    )
    .await;
    assert_eq!(s.negotiated().value("DefaultTime2Wait"), Some("5"));
    assert_eq!(s.params().default_time2wait, 5);
    let seen = f.seen.lock().unwrap().last().cloned().unwrap();
    assert!(seen.contains(&("DefaultTime2Wait".into(), "5".into())));
    assert!(seen.contains(&("X-vendor.key".into(), "NotUnderstood".into())));
}

#[tokio::test]
async fn irrelevant_first_burst_keeps_default() {
    let f = spawn(FakeConfig::default()).await;
    let cfg = LoginConfig::normal(INI, TARGET)
        .offer("InitialR2T", "Yes")
        .offer("ImmediateData", "No")
        .offer("FirstBurstLength", "4096");
    let s = session(&f, cfg).await;
    assert_eq!(s.negotiated().value("FirstBurstLength"), Some("Irrelevant"));
    assert_eq!(s.params().first_burst_length, 65536);
}

async fn chap_login(f: &fake::Fake, c: ChapConfig) -> Result<Session, Error> {
    guard(Session::login(
        f.addr,
        &LoginConfig::normal(INI, TARGET).chap(c),
    ))
    .await
}

#[tokio::test]
async fn chap_one_way_md5_and_sha256() {
    for alg in [ChapAlgorithm::Md5, ChapAlgorithm::Sha256] {
        let f = spawn(FakeConfig {
            chap: Some(("user".into(), b"secretsecret".to_vec())),
            chap_algs: vec![alg],
            ..FakeConfig::default()
        })
        .await;
        let s = chap_login(&f, ChapConfig::new("user", b"secretsecret".to_vec()))
            .await
            .unwrap();
        assert_eq!(s.negotiated().auth_method, "CHAP");
        assert_eq!(s.negotiated().chap_algorithm, Some(alg));
        assert_eq!(guard(s.test_unit_ready(0)).await.unwrap().status, 0);
        let bad = chap_login(&f, ChapConfig::new("user", b"wrongsecret!".to_vec()))
            .await
            .unwrap_err();
        assert_eq!(bad.login_status(), Some(0x0201), "{bad}");
    }
}

#[tokio::test]
async fn chap_required_but_none_offered_fails() {
    let f = spawn(FakeConfig {
        chap: Some(("user".into(), b"secretsecret".to_vec())),
        ..FakeConfig::default()
    })
    .await;
    let e = guard(Session::login(f.addr, &LoginConfig::normal(INI, TARGET)))
        .await
        .unwrap_err();
    assert_eq!(e.login_status(), Some(0x0201));
}

#[tokio::test]
async fn mutual_chap_verifies_the_target() {
    let base = FakeConfig {
        chap: Some(("user".into(), b"secretsecret".to_vec())),
        mutual: Some(("tuser".into(), b"targetsecret".to_vec())),
        chap_algs: vec![ChapAlgorithm::Sha256, ChapAlgorithm::Md5],
        ..FakeConfig::default()
    };
    let f = spawn(base.clone()).await;
    let c = ChapConfig::new("user", b"secretsecret".to_vec())
        .mutual(Some("tuser"), b"targetsecret".to_vec());
    chap_login(&f, c.clone()).await.unwrap();
    // Wrong expected secret, wrong expected name, and a target that answers wrongly.
    let wrong = ChapConfig::new("user", b"secretsecret".to_vec())
        .mutual(Some("tuser"), b"othersecret!".to_vec());
    assert!(matches!(
        chap_login(&f, wrong).await,
        Err(Error::MutualAuthFailed(_))
    ));
    let wrong_name = ChapConfig::new("user", b"secretsecret".to_vec())
        .mutual(Some("someone"), b"targetsecret".to_vec());
    assert!(matches!(
        chap_login(&f, wrong_name).await,
        Err(Error::MutualAuthFailed(_))
    ));
    let f2 = spawn(FakeConfig {
        bad_mutual: true,
        ..base
    })
    .await;
    assert!(matches!(
        chap_login(&f2, c).await,
        Err(Error::MutualAuthFailed(_))
    ));
}

#[tokio::test]
async fn r2t_flow_with_several_outstanding() {
    let f = spawn(FakeConfig::default()).await;
    let cfg = LoginConfig::normal(INI, TARGET)
        .offer("ImmediateData", "No")
        .offer("InitialR2T", "Yes")
        .offer("MaxBurstLength", "8192")
        .offer("MaxOutstandingR2T", "4");
    let s = session(&f, cfg).await;
    let data = Bytes::from(pattern(9, 1 << 20));
    let cdb = ironlun_initiator::scsi::cdb::write16(0, (1 << 20) / BLOCK as u32, false);
    let opts = CommandOptions {
        data_out: DataOutPolicy::Batch(4),
        ..CommandOptions::default()
    };
    let p = guard(s.start_command(0, &cdb, Some(data.clone()), 0, opts))
        .await
        .unwrap();
    assert_eq!(guard(p.wait()).await.unwrap().status, 0);
    let st = s.stats();
    assert_eq!(st.r2ts, 128);
    assert_eq!(st.max_r2t_length, 8192);
    assert_eq!(st.max_outstanding_r2t, 4);
    assert_eq!(st.immediate_bytes, 0);
    assert_eq!(st.solicited_bytes, 1 << 20);
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    assert_eq!(&f.disk.lock().unwrap()[..1 << 20], &data[..]);
    let r = guard(s.read16(0, 0, 2048, BLOCK as u32)).await.unwrap();
    assert_eq!(r.good().unwrap(), data);
}

#[tokio::test]
async fn immediate_and_unsolicited_data() {
    let f = spawn(FakeConfig::default()).await;
    let cfg = LoginConfig::normal(INI, TARGET)
        .offer("ImmediateData", "Yes")
        .offer("InitialR2T", "No")
        .offer("FirstBurstLength", "65536")
        .offer("MaxBurstLength", "65536");
    let s = session(&f, cfg).await;
    let data = pattern(1, 256 * 1024);
    let r = guard(s.write16(0, 100, data.clone(), BLOCK as u32, false))
        .await
        .unwrap();
    assert_eq!(r.status, 0);
    let st = s.stats();
    // Immediate: one target MaxRecvDataSegmentLength (65536) = all of FirstBurstLength.
    assert_eq!(st.immediate_bytes, 65536);
    assert_eq!(st.unsolicited_bytes, 0);
    assert_eq!(st.solicited_bytes, 256 * 1024 - 65536);
    assert_eq!(st.r2ts, 3);
    assert_eq!(
        &f.disk.lock().unwrap()[100 * BLOCK..100 * BLOCK + data.len()],
        &data[..]
    );

    // Immediate data off, unsolicited Data-Out on.
    let f = spawn(FakeConfig::default()).await;
    let cfg = LoginConfig::normal(INI, TARGET)
        .offer("ImmediateData", "No")
        .offer("InitialR2T", "No")
        .offer("FirstBurstLength", "16384");
    let s = session(&f, cfg).await;
    let r = guard(s.write16(0, 0, data.clone(), BLOCK as u32, false))
        .await
        .unwrap();
    assert_eq!(r.status, 0);
    let st = s.stats();
    assert_eq!((st.immediate_bytes, st.unsolicited_bytes), (0, 16384));
    assert_eq!(st.solicited_bytes, 256 * 1024 - 16384);
    assert_eq!(&f.disk.lock().unwrap()[..data.len()], &data[..]);
}

#[tokio::test]
async fn many_commands_within_a_small_window() {
    let f = spawn(FakeConfig {
        window: 3,
        ..FakeConfig::default()
    })
    .await;
    let s = session(&f, LoginConfig::normal(INI, TARGET)).await;
    let mut handles = Vec::new();
    for i in 0..40u64 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let d = pattern(i as u8, BLOCK * 4);
            s.write16(0, i * 4, d.clone(), BLOCK as u32, false)
                .await
                .unwrap()
                .good()
                .unwrap();
            let r = s.read16(0, i * 4, 4, BLOCK as u32).await.unwrap();
            assert_eq!(r.good().unwrap(), Bytes::from(d));
        }));
    }
    for h in handles {
        guard(h).await.unwrap();
    }
    let c = s.counters();
    assert_eq!(c.cmd_sn, 80);
}

#[tokio::test]
async fn nops_both_ways() {
    let f = spawn(FakeConfig {
        ping_after_login: true,
        ..FakeConfig::default()
    })
    .await;
    let s = session(&f, LoginConfig::normal(INI, TARGET)).await;
    let echo = guard(s.ping(b"hello".to_vec())).await.unwrap();
    assert_eq!(&echo[..], b"hello");
    assert_eq!(s.stats().nop_ins_answered, 1);
    // The fake records the NOP-Out answering its ping with TTT 0x55.
    let seen = f.seen.lock().unwrap().clone();
    assert!(seen
        .iter()
        .any(|v| v == &vec![("NopOutTTT".to_string(), "85".to_string())]));
}

/// With answers switched off the target's ping goes unanswered (a hung host, for keep-alive
/// tests), and is counted; the session itself goes on.
#[tokio::test]
async fn target_pings_left_unanswered_on_request() {
    let f = spawn(FakeConfig {
        ping_before_echo: true,
        ..FakeConfig::default()
    })
    .await;
    let s = session(&f, LoginConfig::normal(INI, TARGET)).await;
    s.answer_nop_ins(false);
    // The target's ping comes just before this echo, so it was handled by the time we have it.
    guard(s.ping(b"one".to_vec())).await.unwrap();
    let st = s.stats();
    assert_eq!((st.nop_ins_answered, st.nop_ins_ignored), (0, 1));
    s.answer_nop_ins(true);
    // Nothing answered the ping: the fake saw no NOP-Out with its TTT.
    guard(s.ping(b"two".to_vec())).await.unwrap();
    let seen = f.seen.lock().unwrap().clone();
    assert!(!seen.iter().any(|v| v.iter().any(|(k, _)| k == "NopOutTTT")));
}

#[tokio::test]
async fn abort_task_of_a_withheld_write_and_of_no_task() {
    let f = spawn(FakeConfig::default()).await;
    let cfg = LoginConfig::normal(INI, TARGET).offer("ImmediateData", "No");
    let s = session(&f, cfg).await;
    let cdb = ironlun_initiator::scsi::cdb::write16(0, 8, false);
    let opts = CommandOptions {
        data_out: DataOutPolicy::Withhold,
        ..CommandOptions::default()
    };
    let p = guard(s.start_command(0, &cdb, Some(Bytes::from(vec![1u8; 4096])), 0, opts))
        .await
        .unwrap();
    // The R2T arrived and is held: a ping after it proves the order.
    guard(s.ping(Vec::new())).await.unwrap();
    assert_eq!(s.stats().r2ts, 1);
    let r = guard(s.abort_task(0, p.itt)).await.unwrap();
    assert_eq!(r, tmf_response::FUNCTION_COMPLETE);
    assert!(matches!(guard(p.wait()).await, Err(Error::TaskAborted)));
    let r = guard(s.abort_task(0, 0x4242)).await.unwrap();
    assert_eq!(r, tmf_response::TASK_DOES_NOT_EXIST);
    // LUN RESET then a unit attention 29/03 on the next command.
    assert_eq!(
        guard(s.lun_reset(0)).await.unwrap(),
        tmf_response::FUNCTION_COMPLETE
    );
    let r = guard(s.test_unit_ready(0)).await.unwrap();
    assert_eq!(r.status, 2);
    assert_eq!(r.sense_triple(), Some((6, 0x29, 0x03)));
    assert_eq!(
        guard(s.target_warm_reset()).await.unwrap(),
        tmf_response::NOT_SUPPORTED
    );
}

#[tokio::test]
async fn release_of_withheld_data_completes_the_write() {
    let f = spawn(FakeConfig::default()).await;
    let s = session(
        &f,
        LoginConfig::normal(INI, TARGET).offer("ImmediateData", "No"),
    )
    .await;
    let cdb = ironlun_initiator::scsi::cdb::write16(2, 8, false);
    let opts = CommandOptions {
        data_out: DataOutPolicy::Withhold,
        ..CommandOptions::default()
    };
    let data = pattern(5, 4096);
    let p = guard(s.start_command(0, &cdb, Some(Bytes::from(data.clone())), 0, opts))
        .await
        .unwrap();
    guard(s.ping(Vec::new())).await.unwrap();
    s.release_data(p.itt).unwrap();
    assert_eq!(guard(p.wait()).await.unwrap().status, 0);
    assert_eq!(
        &f.disk.lock().unwrap()[2 * BLOCK..2 * BLOCK + 4096],
        &data[..]
    );
}

#[tokio::test]
async fn discovery_with_continuation_and_logout() {
    let f = spawn(FakeConfig::default()).await;
    let s = session(&f, LoginConfig::discovery(INI)).await;
    let t = guard(s.send_targets("All")).await.unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].name, TARGET);
    assert_eq!(t[0].addresses, vec!["127.0.0.1:3260,1", "[::1]:3260,1"]);
    assert_eq!(t[1].addresses, vec!["127.0.0.1:3261,2"]);
    let seen = f.seen.lock().unwrap().last().cloned().unwrap();
    assert!(seen.contains(&("SessionType".into(), "Discovery".into())));
    assert!(!seen
        .iter()
        .any(|(k, _)| k == "InitialR2T" || k == "TargetName"));
    let r = guard(s.logout(logout::CLOSE_SESSION)).await.unwrap();
    assert_eq!(r.response, logout::RESP_SUCCESS);
    // The target closed: the session reports it and refuses further commands.
    loop {
        match guard(s.next_event()).await {
            Some(Event::Closed(_)) | None => break,
            Some(_) => {}
        }
    }
    assert!(s.closed().is_some());
    assert!(matches!(
        guard(s.ping(Vec::new())).await,
        Err(Error::ConnectionClosed)
    ));
}

#[tokio::test]
async fn oversized_data_in_is_a_protocol_error_not_a_panic() {
    let f = spawn(FakeConfig {
        force_data_in_seg: Some(16384),
        ..FakeConfig::default()
    })
    .await;
    let cfg = LoginConfig::normal(INI, TARGET).offer("MaxRecvDataSegmentLength", "8192");
    let s = session(&f, cfg).await;
    let e = guard(s.read16(0, 0, 64, BLOCK as u32)).await.unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e}");
}

#[tokio::test]
async fn garbage_from_the_target_ends_the_session_cleanly() {
    let f = spawn(FakeConfig {
        garbage_after_first_command: Some(vec![0xff; 100]),
        ..FakeConfig::default()
    })
    .await;
    let s = session(&f, LoginConfig::normal(INI, TARGET)).await;
    // The fake answers the command with a header claiming a 16 MiB data segment.
    let e = guard(s.test_unit_ready(0)).await.unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e}");
    assert!(matches!(
        guard(s.next_event()).await,
        Some(Event::Closed(_))
    ));
    assert!(s.closed().is_some());
    assert!(guard(s.ping(Vec::new())).await.is_err());
}

#[tokio::test]
async fn unknown_opcode_is_an_event_and_the_session_goes_on() {
    // The first command is swallowed by the fake (it answers with the unknown PDU); a TEST
    // UNIT READY after it completes.
    let s = flooded(1, |_| {
        let mut bhs = [0u8; 48];
        bhs[0] = 0x3c; // no such target opcode
        bhs[16..20].copy_from_slice(&[0, 0, 0x12, 0x34]);
        bhs
    })
    .await;
    match guard(s.next_event()).await {
        Some(Event::Unexpected(p)) => assert_eq!(p.bhs.itt(), 0x1234),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.stats().violations.len(), 1);
}

/// A session whose first command the fake answers with `n` headers made by `bhs(i)`
/// (written all at once, before the fake reads again); returns once a TEST UNIT READY after
/// them has completed, so the session has read them all.
async fn flooded(n: u32, bhs: impl Fn(u32) -> [u8; 48]) -> Session {
    let mut flood = Vec::with_capacity(48 * n as usize);
    for i in 0..n {
        flood.extend_from_slice(&bhs(i));
    }
    let f = spawn(FakeConfig {
        garbage_after_first_command: Some(flood),
        ..FakeConfig::default()
    })
    .await;
    let s = session(&f, LoginConfig::normal(INI, TARGET)).await;
    let _swallowed = guard(s.start_command(0, &[0; 6], None, 0, CommandOptions::default()))
        .await
        .unwrap();
    assert_eq!(guard(s.test_unit_ready(0)).await.unwrap().status, 0);
    s
}

#[tokio::test]
async fn a_flood_of_unsolicited_pdus_costs_bounded_memory() {
    // 1,000 PDUs of an opcode no target sends, each one an event and a violation.
    let n = 1000u32;
    let s = flooded(n, |i| {
        let mut bhs = [0u8; 48];
        bhs[0] = 0x3c;
        bhs[16..20].copy_from_slice(&(0x1000 + i).to_be_bytes());
        bhs
    })
    .await;
    let st = s.stats();
    assert_eq!(st.violations_total, u64::from(n));
    assert_eq!(
        st.violations.len(),
        ironlun_initiator::session::MAX_VIOLATIONS
    );
    let kept = ironlun_initiator::session::MAX_EVENTS as u32;
    assert_eq!(st.events_dropped, u64::from(n - kept));
    // The newest events are the ones kept, in order.
    let mut got = Vec::new();
    while let Some(e) = s.try_event() {
        match e {
            Event::Unexpected(p) => got.push(p.bhs.itt()),
            other => panic!("{other:?}"),
        }
    }
    let want: Vec<u32> = (n - kept..n).map(|i| 0x1000 + i).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn pings_from_a_target_that_does_not_read_are_not_queued_without_bound() {
    // NOP-In pings (TTT set: each wants an answer) written before the fake reads again: the
    // answers fill the socket and then wait in the session's queue.
    let n = 300_000u32;
    let s = flooded(n, |i| {
        let mut bhs = [0u8; 48];
        bhs[0] = 0x20; // NOP-In
        bhs[1] = 0x80;
        bhs[16..20].copy_from_slice(&u32::MAX.to_be_bytes()); // ITT reserved
        bhs[20..24].copy_from_slice(&(i + 1).to_be_bytes()); // TTT
        bhs
    })
    .await;
    let st = s.stats();
    let unanswered = st.violations_total;
    assert!(unanswered > 0, "every ping was queued: {st:?}");
    assert_eq!(st.nop_ins_answered + unanswered, u64::from(n));
    assert!(
        st.violations[0].contains("not answered"),
        "{:?}",
        st.violations[0]
    );
}

#[tokio::test]
async fn raw_connection_login_and_hand_built_pdu() {
    let f = spawn(FakeConfig::default()).await;
    let mut c = guard(Connection::connect(f.addr)).await.unwrap();
    let n = guard(ironlun_initiator::login::login(
        &mut c,
        &LoginConfig::normal(INI, TARGET),
    ))
    .await
    .unwrap();
    assert_eq!(n.tsih, 7);
    let itt = c.next_itt();
    let mut cdb = [0u8; 16];
    cdb[0] = 0x00;
    let cmd = ironlun_initiator::iscsi::ScsiCommand {
        immediate: false,
        final_: true,
        read: false,
        write: false,
        attr: task_attr::SIMPLE,
        lun: [0; 8],
        itt,
        expected_data_length: 0,
        cmd_sn: c.counters.cmd_sn,
        exp_stat_sn: c.counters.exp_stat_sn,
        cdb,
    };
    guard(c.send_pdu(&ironlun_initiator::iscsi::Pdu::new(
        ironlun_initiator::iscsi::Bhs::ScsiCommand(cmd),
    )))
    .await
    .unwrap();
    let p = guard(c.recv_pdu()).await.unwrap();
    c.observe(&p);
    match p.bhs {
        ironlun_initiator::iscsi::Bhs::ScsiResponse(r) => {
            assert_eq!(r.itt, itt);
            assert_eq!(r.status, 0);
        }
        other => panic!("{other:?}"),
    }
}
