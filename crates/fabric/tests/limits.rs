//! The fabric's limits, each at its edge (N allowed, N+1 refused): failed-login back-off per
//! initiator name and source address, sessions per initiator, connections in total,
//! connections still in login, write data buffered per connection. Login refusals carry the
//! RFC 7143 §11.13.5 status.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ironlun_fabric::{Fabric, FabricOptions};
use ironlun_iscsi::pdu::login_status as st;
use ironlun_iscsi::{Bhs, Stage};

const OTHER: &str = "iqn.2024-01.test.client:host2";
const GOOD: &str = "secretsecret1";
const BAD: &str = "wrongwrongwrong";

fn addr1() -> IpAddr {
    [127, 0, 0, 1].into()
}
fn addr2() -> IpAddr {
    [127, 0, 0, 2].into()
}

/// The status of a first Login Request of `initiator` from `from` (security stage, CHAP
/// offered).
async fn first_status(addr: SocketAddr, from: IpAddr, initiator: &str) -> u16 {
    let mut c = Client::connect_from(addr, from).await;
    chap_offer(&mut c, initiator).await.0.status()
}

async fn chap_from(addr: SocketAddr, from: IpAddr, pass: &str) -> u16 {
    let mut c = Client::connect_from(addr, from).await;
    chap_login(&mut c, "5", "user1", pass, None).await.0
}

#[tokio::test]
async fn failed_logins_back_off_the_name_and_the_address_for_the_window() {
    let window = Duration::from_millis(1500);
    let opts = FabricOptions {
        auth_fail_limit: 5,
        auth_fail_window: window,
        ..FabricOptions::default()
    };
    let (_f, addr) = fabric_with(opts, chap_tpg(false)).await;
    for _ in 0..4 {
        assert_eq!(
            chap_from(addr, addr1(), BAD).await,
            st::AUTHENTICATION_FAILURE
        );
    }
    // Four failures (N-1): the right secret still gets in.
    assert_eq!(chap_from(addr, addr1(), GOOD).await, 0);
    // The fifth failure within the window starts the back-off.
    assert_eq!(
        chap_from(addr, addr1(), BAD).await,
        st::AUTHENTICATION_FAILURE
    );
    let start = std::time::Instant::now();
    // The sixth attempt is refused at its first PDU, right secret or not: the name from
    // another address, another name from this address.
    assert_eq!(
        first_status(addr, addr1(), INITIATOR).await,
        st::AUTHENTICATION_FAILURE
    );
    assert_eq!(
        first_status(addr, addr2(), INITIATOR).await,
        st::AUTHENTICATION_FAILURE
    );
    assert_eq!(
        first_status(addr, addr1(), OTHER).await,
        st::AUTHENTICATION_FAILURE
    );
    // Another name from another address is not concerned.
    assert_eq!(first_status(addr, addr2(), OTHER).await, 0);
    assert!(start.elapsed() < window, "the checks ran inside the window");
    // Once the window has passed, the right secret gets in again.
    tokio::time::sleep(window.saturating_sub(start.elapsed()) + Duration::from_millis(200)).await;
    assert_eq!(chap_from(addr, addr1(), GOOD).await, 0);
}

/// A normal login (AuthMethod None) of `initiator` with ISID ending in `isid`: its final
/// status, and the client (kept open to keep the session).
async fn login_as(addr: SocketAddr, initiator: &str, isid: u8) -> (u16, Client) {
    let mut c = Client::connect(addr).await;
    c.isid = [0x80, 0, 0, 0, 0, isid];
    let (r, _) = c
        .login_pdu(
            Stage::Security,
            Stage::FullFeature,
            true,
            &[
                ("InitiatorName", initiator),
                ("TargetName", TARGET),
                ("SessionType", "Normal"),
                ("AuthMethod", "None"),
            ],
        )
        .await;
    (r.status(), c)
}

/// Retry a login until it succeeds (a closed session leaves the registry when its
/// connection task sees the close), for at most 5 s.
async fn eventually(addr: SocketAddr, initiator: &str, isid: u8) -> Client {
    for _ in 0..50 {
        let (s, c) = login_as(addr, initiator, isid).await;
        if s == 0 {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{initiator} could not log in again");
}

/// With a limit of 2 under `opts`: the logins `ok` both succeed (N), `over` gets 0x0302
/// (N+1). The fabric, its address and the two clients.
async fn two_then_0302(
    opts: FabricOptions,
    ok: [(&str, u8); 2],
    over: (&str, u8),
) -> (Arc<Fabric>, SocketAddr, Client, Client) {
    let (f, addr) = fabric_with(opts, |_| {}).await;
    let (s1, c1) = login_as(addr, ok[0].0, ok[0].1).await;
    let (s2, c2) = login_as(addr, ok[1].0, ok[1].1).await;
    assert_eq!((s1, s2), (0, 0), "N");
    let (s3, _) = login_as(addr, over.0, over.1).await;
    assert_eq!(s3, st::OUT_OF_RESOURCES, "N+1");
    (f, addr, c1, c2)
}

#[tokio::test]
async fn sessions_per_initiator_stop_at_the_limit_with_0302() {
    let opts = FabricOptions {
        max_sessions_per_initiator: 2,
        ..FabricOptions::default()
    };
    let (_f, addr, c1, c2) =
        two_then_0302(opts, [(INITIATOR, 1), (INITIATOR, 2)], (INITIATOR, 3)).await;
    // Reinstating a session (same ISID) replaces it, and another initiator is not counted.
    let (s, _c1b) = login_as(addr, INITIATOR, 1).await;
    assert_eq!(s, 0, "reinstatement");
    let (s, _o) = login_as(addr, OTHER, 1).await;
    assert_eq!(s, 0, "another initiator");
    drop(c1);
    drop(c2);
    eventually(addr, INITIATOR, 3).await;
}

#[tokio::test]
async fn connections_in_total_stop_at_the_limit_with_0302() {
    let opts = FabricOptions {
        max_connections: 2,
        ..FabricOptions::default()
    };
    let (_f, addr, c1, _c2) = two_then_0302(opts, [(INITIATOR, 1), (OTHER, 1)], (OTHER, 2)).await;
    // At the limit, reinstating a session (same ISID) takes the place of the one it replaces.
    let (s, _c1b) = login_as(addr, INITIATOR, 1).await;
    assert_eq!(s, 0, "reinstatement at the limit");
    drop(c1);
    drop(_c1b);
    eventually(addr, OTHER, 2).await;
}

#[tokio::test]
async fn connections_in_login_stop_at_the_limit() {
    let opts = FabricOptions {
        max_pending_logins: 2,
        login_timeout: Duration::from_secs(20),
        ..FabricOptions::default()
    };
    let (_f, addr) = fabric_with(opts, |_| {}).await;
    // N connections in login: one silent, one that logs in afterwards.
    let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = Client::connect(addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // N+1: closed at once, before any PDU.
    let mut third = Client::connect(addr).await;
    assert!(third.closed_within(Duration::from_secs(2)).await, "N+1");
    second.login_normal(TARGET, &[]).await;
    // Its login done, the second frees its place; so does the silent one when it goes.
    drop(idle);
    let mut c = None;
    for _ in 0..50 {
        let mut t = Client::connect(addr).await;
        if t.closed_within(Duration::from_millis(50)).await {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        c = Some(t);
        break;
    }
    c.expect("a place in login again")
        .login_normal(TARGET, &[])
        .await;
}

/// WRITE(10) of `blocks` at LBA 0, declaring `bytes` of data; without ImmediateData or
/// unsolicited data nothing is sent with it, so the fabric holds its buffer.
async fn write(c: &mut Client, blocks: u16, bytes: u32) -> Bhs {
    c.command(&write10(0, blocks), 0, bytes).await;
    c.recv().await.expect("an answer").bhs
}

#[tokio::test]
async fn write_data_held_per_connection_stops_at_the_limit() {
    const N: u64 = 64 * 1024;
    let opts = FabricOptions {
        max_buffered_write_bytes: N,
        ..FabricOptions::default()
    };
    let (_f, addr) = fabric_with(opts, |_| {}).await;
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[("InitialR2T", "Yes"), ("ImmediateData", "No")])
        .await;
    c.clear_ua().await;
    // N bytes held (two commands waiting for their Data-Out): each gets its R2T.
    let a = write(&mut c, 127, 127 * 512).await;
    assert!(matches!(a, Bhs::R2t(_)), "{a:?}");
    let b = write(&mut c, 1, 511).await;
    assert!(matches!(b, Bhs::R2t(_)), "{b:?}");
    let c1 = write(&mut c, 1, 1).await;
    assert!(matches!(c1, Bhs::R2t(_)), "exactly N: {c1:?}");
    // N+1: TASK SET FULL, the connection stays up.
    let d = write(&mut c, 1, 1).await;
    let Bhs::ScsiResponse(r) = d else {
        panic!("expected TASK SET FULL, got {d:?}")
    };
    assert_eq!(r.status, ironlun_engine::scsi::status::TASK_SET_FULL);
}
