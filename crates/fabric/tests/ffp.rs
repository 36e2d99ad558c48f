//! Full feature phase without SCSI data: NOP, Logout, Reject paths, keepalive, digests,
//! multiple connections per session and session reinstatement (RFC 7143 §11.14-§11.19).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use ironlun_fabric::FabricOptions;
use ironlun_iscsi::pdu::{logout, reject_reason};
use ironlun_iscsi::{Bhs, Digests, LogoutRequest, NopOut, Pdu, RESERVED_TAG};

#[tokio::test]
async fn nop_out_is_echoed() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[]).await;
    let p = c.nop(b"hello, target").await;
    let Bhs::NopIn(n) = &p.bhs else {
        panic!("{:?}", p.bhs)
    };
    assert_eq!(n.itt, c.itt);
    assert_eq!(n.ttt, RESERVED_TAG);
    assert_eq!(&p.data[..], b"hello, target");
}

async fn logout(c: &mut Client, reason: u8, cid: u16) -> u8 {
    let itt = c.next_itt();
    let l = LogoutRequest {
        immediate: true,
        reason,
        itt,
        cid,
        cmd_sn: c.cmd_sn,
        exp_stat_sn: c.exp_stat_sn,
    };
    c.send(&Pdu::new(Bhs::LogoutRequest(l))).await;
    let p = c.recv().await.expect("logout response");
    let Bhs::LogoutResponse(r) = p.bhs else {
        panic!("{:?}", p.bhs)
    };
    assert_eq!(r.itt, itt);
    r.response
}

#[tokio::test]
async fn logout_close_session_then_connection_closes() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[]).await;
    assert_eq!(
        logout(&mut c, logout::CLOSE_SESSION, 1).await,
        logout::RESP_SUCCESS
    );
    assert!(c.closed_within(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn logout_codes_for_recovery_and_unknown_cid() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[]).await;
    assert_eq!(
        logout(&mut c, logout::REMOVE_CONNECTION_FOR_RECOVERY, 1).await,
        logout::RESP_RECOVERY_NOT_SUPPORTED
    );
    assert_eq!(
        logout(&mut c, logout::CLOSE_CONNECTION, 9).await,
        logout::RESP_CID_NOT_FOUND
    );
    assert_eq!(
        logout(&mut c, logout::CLOSE_CONNECTION, 1).await,
        logout::RESP_SUCCESS
    );
    assert!(c.closed_within(Duration::from_secs(5)).await);
}

async fn expect_reject(c: &mut Client, reason: u8) -> Pdu {
    let p = c.recv().await.expect("reject");
    let Bhs::Reject(r) = &p.bhs else {
        panic!("expected Reject, got {:?}", p.bhs)
    };
    assert_eq!(r.reason, reason);
    assert_eq!(p.data.len(), 48, "carries the rejected header");
    p
}

#[tokio::test]
async fn reject_paths() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[]).await;
    // Unknown (vendor) opcode.
    let mut raw = [0u8; 48];
    raw[0] = 0x1c;
    raw[1] = 0x80;
    c.send_raw(&raw).await;
    expect_reject(&mut c, reject_reason::COMMAND_NOT_SUPPORTED).await;
    // Login PDU in the full feature phase.
    let mut raw = [0u8; 48];
    raw[0] = 0x43;
    c.send_raw(&raw).await;
    expect_reject(&mut c, reject_reason::PROTOCOL_ERROR).await;
    // Data-Out for a task that does not exist.
    let d = ironlun_iscsi::DataOut {
        final_: true,
        lun: [0; 8],
        itt: 0x777,
        ttt: 0x1234,
        exp_stat_sn: c.exp_stat_sn,
        data_sn: 0,
        buffer_offset: 0,
    };
    c.send(&Pdu::with_data(
        Bhs::DataOut(d),
        Bytes::from_static(&[0u8; 512]),
    ))
    .await;
    expect_reject(&mut c, reject_reason::INVALID_PDU_FIELD).await;
    // SNACK at ERL 0.
    let mut raw = [0u8; 48];
    raw[0] = 0x10;
    raw[1] = 0x80;
    c.send_raw(&raw).await;
    expect_reject(&mut c, reject_reason::PROTOCOL_ERROR).await;
    // Text without '='.
    let t = ironlun_iscsi::TextRequest {
        immediate: true,
        final_: true,
        cont: false,
        lun: [0; 8],
        itt: 99,
        ttt: RESERVED_TAG,
        cmd_sn: c.cmd_sn,
        exp_stat_sn: c.exp_stat_sn,
    };
    c.send(&Pdu::with_data(
        Bhs::TextRequest(t),
        Bytes::from_static(b"NoEquals\0"),
    ))
    .await;
    expect_reject(&mut c, reject_reason::INVALID_PDU_FIELD).await;
    // The connection still works.
    let p = c.nop(b"").await;
    assert!(matches!(p.bhs, Bhs::NopIn(_)));
}

#[tokio::test]
async fn oversized_data_segment_drops_the_connection() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[]).await;
    let mut hdr = [0u8; 48];
    hdr[0] = 0x40;
    hdr[1] = 0x80;
    hdr[5..8].copy_from_slice(&[0x40, 0, 0]); // 4 MiB > MaxRecvDataSegmentLength
    c.send_raw(&hdr).await;
    assert!(c.closed_within(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn discovery_session_refuses_scsi() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_discovery().await;
    let mut raw = [0u8; 48];
    raw[0] = 0x01;
    raw[1] = 0x80;
    raw[32] = 0x00; // TEST UNIT READY
    c.send_raw(&raw).await;
    expect_reject(&mut c, reject_reason::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn keepalive_pings_and_drops_silent_peers() {
    let opts = FabricOptions {
        nop_interval: Duration::from_millis(200),
        nop_timeout: Duration::from_millis(300),
        ..FabricOptions::default()
    };
    let (_f, addr) = fabric_with(opts, |_| {}).await;
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[]).await;
    // Answer one ping: the connection stays.
    let p = c.recv().await.expect("ping");
    let Bhs::NopIn(n) = p.bhs else { panic!() };
    assert_eq!(n.itt, RESERVED_TAG);
    assert_ne!(n.ttt, RESERVED_TAG);
    let answer = NopOut {
        immediate: true,
        lun: n.lun,
        itt: RESERVED_TAG,
        ttt: n.ttt,
        cmd_sn: c.cmd_sn,
        exp_stat_sn: c.exp_stat_sn,
    };
    c.send(&Pdu::new(Bhs::NopOut(answer))).await;
    let p = c.recv().await.expect("second ping");
    assert!(matches!(p.bhs, Bhs::NopIn(_)));
    // Ignore it: the target gives up on us.
    assert!(c.closed_within(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn digests_protect_full_feature_pdus() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    let ans = c
        .login_normal(
            TARGET,
            &[("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")],
        )
        .await;
    assert_eq!(get(&ans, "HeaderDigest"), Some("CRC32C"));
    assert_eq!(get(&ans, "DataDigest"), Some("CRC32C"));
    c.digests = Digests {
        header: true,
        data: true,
    };
    let p = c.nop(b"digest me").await;
    assert_eq!(&p.data[..], b"digest me");
    // A bad data digest: Reject, connection continues.
    let n = NopOut {
        immediate: true,
        lun: [0; 8],
        itt: 500,
        ttt: RESERVED_TAG,
        cmd_sn: c.cmd_sn,
        exp_stat_sn: c.exp_stat_sn,
    };
    let mut wire = Pdu::with_data(Bhs::NopOut(n), Bytes::from_static(b"abcd"))
        .to_bytes(c.digests)
        .unwrap();
    let last = wire.len() - 1;
    wire[last] ^= 0xff;
    c.send_raw(&wire).await;
    let p = c.recv().await.expect("reject");
    let Bhs::Reject(r) = p.bhs else {
        panic!("{:?}", p.bhs)
    };
    assert_eq!(r.reason, reject_reason::DATA_DIGEST_ERROR);
    // A bad header digest: the connection is dropped (ERL 0).
    let mut wire = Pdu::new(Bhs::NopOut(NopOut {
        itt: 501,
        ..n_clone(&c)
    }))
    .to_bytes(c.digests)
    .unwrap();
    wire[49] ^= 0xff;
    c.send_raw(&wire).await;
    assert!(c.closed_within(Duration::from_secs(5)).await);
}

fn n_clone(c: &Client) -> NopOut {
    NopOut {
        immediate: true,
        lun: [0; 8],
        itt: 0,
        ttt: RESERVED_TAG,
        cmd_sn: c.cmd_sn,
        exp_stat_sn: c.exp_stat_sn,
    }
}

#[tokio::test]
async fn second_connection_joins_the_session() {
    let (_f, addr) = fabric().await;
    let mut a = Client::connect(addr).await;
    a.login_normal(TARGET, &[("MaxConnections", "2")]).await;
    let mut b = Client::connect(addr).await;
    b.tsih = a.tsih;
    b.cid = 2;
    b.cmd_sn = a.cmd_sn;
    b.login_normal(TARGET, &[]).await;
    assert_eq!(b.tsih, a.tsih);
    assert!(matches!(a.nop(b"a").await.bhs, Bhs::NopIn(_)));
    assert!(matches!(b.nop(b"b").await.bhs, Bhs::NopIn(_)));
    // A third one is over MaxConnections=2.
    let mut c3 = Client::connect(addr).await;
    c3.tsih = a.tsih;
    c3.cid = 3;
    let (r, _) = c3
        .login_pdu(
            ironlun_iscsi::Stage::Security,
            ironlun_iscsi::Stage::Operational,
            true,
            &[
                ("InitiatorName", INITIATOR),
                ("TargetName", TARGET),
                ("AuthMethod", "None"),
            ],
        )
        .await;
    assert_eq!(
        r.status(),
        ironlun_iscsi::pdu::login_status::TOO_MANY_CONNECTIONS
    );
    // Closing the session from one connection ends the other too.
    assert_eq!(
        logout(&mut b, logout::CLOSE_SESSION, 2).await,
        logout::RESP_SUCCESS
    );
    assert!(a.closed_within(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn session_reinstatement_replaces_the_old_session() {
    let (_f, addr) = fabric().await;
    let mut old = Client::connect(addr).await;
    old.login_normal(TARGET, &[]).await;
    let mut new = Client::connect(addr).await;
    new.login_normal(TARGET, &[]).await;
    assert_ne!(new.tsih, old.tsih);
    assert!(old.closed_within(Duration::from_secs(5)).await);
    assert!(matches!(new.nop(b"x").await.bhs, Bhs::NopIn(_)));
}

#[tokio::test]
async fn non_immediate_commands_follow_cmdsn_and_window() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[]).await;
    let send_nop = |itt: u32, sn: u32, esn: u32| {
        Pdu::new(Bhs::NopOut(NopOut {
            immediate: false,
            lun: [0; 8],
            itt,
            ttt: RESERVED_TAG,
            cmd_sn: sn,
            exp_stat_sn: esn,
        }))
    };
    // Far outside the window: silently ignored.
    let p = send_nop(40, c.cmd_sn.wrapping_add(100_000), c.exp_stat_sn);
    c.send(&p).await;
    // In order: answered, and ExpCmdSN moves on.
    let p = send_nop(41, c.cmd_sn, c.exp_stat_sn);
    c.send(&p).await;
    let r = c.recv().await.expect("nop-in");
    let Bhs::NopIn(n) = r.bhs else { panic!() };
    assert_eq!(n.itt, 41);
    assert_eq!(n.exp_cmd_sn, c.cmd_sn.wrapping_add(1));
    assert!(ironlun_iscsi::serial::sn_lt(n.exp_cmd_sn, n.max_cmd_sn));
}

#[tokio::test]
async fn shutdown_asks_for_logout_and_closes() {
    let (f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[]).await;
    let sd = tokio::spawn(async move { f.shutdown().await });
    let p = c.recv().await.expect("async message");
    let Bhs::AsyncMessage(m) = p.bhs else {
        panic!("{:?}", p.bhs)
    };
    assert_eq!(m.event, ironlun_iscsi::pdu::async_event::LOGOUT_REQUEST);
    assert!(c.closed_within(Duration::from_secs(15)).await);
    sd.await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn connection_reinstatement_replaces_the_same_cid() {
    let (_f, addr) = fabric().await;
    let mut a = Client::connect(addr).await;
    a.login_normal(TARGET, &[]).await;
    let mut again = Client::connect(addr).await;
    again.tsih = a.tsih;
    again.cid = a.cid;
    again.cmd_sn = a.cmd_sn;
    again.login_normal(TARGET, &[]).await;
    assert!(a.closed_within(Duration::from_secs(5)).await);
    assert!(matches!(again.nop(b"still here").await.bhs, Bhs::NopIn(_)));
}
