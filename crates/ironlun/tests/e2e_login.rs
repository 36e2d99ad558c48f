//! End to end: login and operational negotiation both ways, CHAP (one-way, mutual, MD5,
//! SHA-256) success and failure configured with the CLI, the failed-login back-off and the
//! session and connection limits set by `serve` flags, SendTargets discovery, logout.
//! The real `ironlun serve` driven by `ironlun-initiator`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ironlun_initiator::iscsi::chap::ChapAlgorithm;
use ironlun_initiator::iscsi::pdu::{login_status, logout};
use ironlun_initiator::{ChapConfig, Error, Event, LoginConfig, Session};
use support::*;

/// Offer one side of every key and check the agreed value against the result function and
/// the target's defaults (param/: InitialR2T=No ImmediateData=Yes MaxBurstLength=16776192
/// FirstBurstLength=262144 MaxOutstandingR2T=16 MaxConnections=8 DefaultTime2Wait=2
/// DefaultTime2Retain=20 MaxRecvDataSegmentLength=262144).
#[tokio::test]
async fn negotiation_one_way() {
    let d = Daemon::start();
    let cfg = normal("neg1")
        .offer("HeaderDigest", "CRC32C,None")
        .offer("DataDigest", "None")
        .offer("MaxConnections", "4")
        .offer("InitialR2T", "Yes")
        .offer("ImmediateData", "No")
        .offer("MaxRecvDataSegmentLength", "4096")
        .offer("MaxBurstLength", "65536")
        .offer("FirstBurstLength", "16384")
        .offer("DefaultTime2Wait", "5")
        .offer("DefaultTime2Retain", "10")
        .offer("MaxOutstandingR2T", "4")
        .offer("DataPDUInOrder", "Yes")
        .offer("DataSequenceInOrder", "Yes")
        .offer("ErrorRecoveryLevel", "0");
    let s = login(&d, cfg).await;
    let n = s.negotiated();
    let v = |k: &str| n.value(k).map(str::to_owned);
    assert_eq!(v("HeaderDigest").as_deref(), Some("CRC32C"));
    assert_eq!(v("DataDigest").as_deref(), Some("None"));
    assert_eq!(v("MaxConnections").as_deref(), Some("4"));
    assert_eq!(v("InitialR2T").as_deref(), Some("Yes"));
    assert_eq!(v("ImmediateData").as_deref(), Some("No"));
    assert_eq!(v("MaxBurstLength").as_deref(), Some("65536"));
    // InitialR2T=Yes with ImmediateData=No: no unsolicited data, so FirstBurstLength is
    // Irrelevant (§13.14) — or agreed if the target answers it anyway.
    assert!(
        matches!(
            v("FirstBurstLength").as_deref(),
            Some("Irrelevant") | Some("16384")
        ),
        "{:?}",
        v("FirstBurstLength")
    );
    assert_eq!(v("DefaultTime2Wait").as_deref(), Some("5"));
    assert_eq!(v("DefaultTime2Retain").as_deref(), Some("10"));
    assert_eq!(v("MaxOutstandingR2T").as_deref(), Some("4"));
    assert_eq!(v("DataPDUInOrder").as_deref(), Some("Yes"));
    assert_eq!(v("DataSequenceInOrder").as_deref(), Some("Yes"));
    assert_eq!(v("ErrorRecoveryLevel").as_deref(), Some("0"));
    // The target's declaration is what we may send; ours is what it may send us.
    assert_eq!(n.params.max_xmit_data_segment_length, 262_144);
    assert_eq!(n.params.max_recv_data_segment_length, 4096);
    assert_eq!(n.target_portal_group_tag, Some(1));
    assert_ne!(n.tsih, 0);
    assert!(n.params.header_digest && !n.params.data_digest);

    // Data-In PDUs never exceed our MaxRecvDataSegmentLength of 4096.
    let data = pattern(1, 1 << 20);
    good(
        guard("write", s.write16(0, 0, data.clone(), BLOCK, false)).await,
        "write 1 MiB",
    );
    let r = guard("read", s.read16(0, 0, 2048, BLOCK)).await.unwrap();
    assert_eq!(r.data_in_pdus, 256, "1 MiB in 4096-byte Data-In PDUs");
    assert_eq!(&good(Ok(r), "read 1 MiB")[..], &data[..]);
    let st = s.stats();
    assert_eq!(st.max_data_in_segment, 4096);
    assert!(st.violations.is_empty(), "{:?}", st.violations);
}

/// The other side of every key: our offers above the target's limits get the target's.
#[tokio::test]
async fn negotiation_other_way() {
    let d = Daemon::start();
    let cfg = normal("neg2")
        .offer("HeaderDigest", "None")
        .offer("DataDigest", "CRC32C")
        .offer("MaxConnections", "65535")
        .offer("InitialR2T", "No")
        .offer("ImmediateData", "Yes")
        .offer("MaxRecvDataSegmentLength", "16777215")
        .offer("MaxBurstLength", "16777215")
        .offer("FirstBurstLength", "16777215")
        .offer("DefaultTime2Wait", "0")
        .offer("DefaultTime2Retain", "3600")
        .offer("MaxOutstandingR2T", "65535");
    let s = login(&d, cfg).await;
    let n = s.negotiated();
    let v = |k: &str| n.value(k).map(str::to_owned);
    assert_eq!(v("HeaderDigest").as_deref(), Some("None"));
    assert_eq!(v("DataDigest").as_deref(), Some("CRC32C"));
    assert_eq!(v("MaxConnections").as_deref(), Some("8"));
    assert_eq!(v("InitialR2T").as_deref(), Some("No"));
    assert_eq!(v("ImmediateData").as_deref(), Some("Yes"));
    assert_eq!(v("MaxBurstLength").as_deref(), Some("16776192"));
    assert_eq!(v("FirstBurstLength").as_deref(), Some("262144"));
    assert_eq!(v("DefaultTime2Wait").as_deref(), Some("2"));
    assert_eq!(v("DefaultTime2Retain").as_deref(), Some("20"));
    assert_eq!(v("MaxOutstandingR2T").as_deref(), Some("16"));
    assert!(!n.params.header_digest && n.params.data_digest);
    assert!(!n.params.initial_r2t && n.params.immediate_data);
    // Data both ways with the data digest on.
    let data = pattern(2, 3 << 20);
    good(
        guard("write", s.write16(0, 4096, data.clone(), BLOCK, true)).await,
        "write 3 MiB",
    );
    let back = good(
        guard("read", s.read16(0, 4096, (3 << 20) / BLOCK, BLOCK)).await,
        "read 3 MiB",
    );
    assert_eq!(&back[..], &data[..]);
    let st = s.stats();
    assert!(st.max_data_in_segment <= 262_144 && st.max_data_in_segment > 0);
    assert!(st.violations.is_empty(), "{:?}", st.violations);
}

#[tokio::test]
async fn both_digests_with_data() {
    let d = Daemon::start();
    let cfg = normal("digests")
        .offer("HeaderDigest", "CRC32C")
        .offer("DataDigest", "CRC32C")
        .offer("MaxRecvDataSegmentLength", "8192");
    let s = login(&d, cfg).await;
    assert_eq!(s.negotiated().value("HeaderDigest"), Some("CRC32C"));
    assert_eq!(s.negotiated().value("DataDigest"), Some("CRC32C"));
    // Every PDU is digest-checked by the initiator's decoder: a wrong digest fails the read.
    let data = pattern(3, 512 * 1024);
    good(
        guard("write", s.write16(0, 77, data.clone(), BLOCK, false)).await,
        "write",
    );
    let back = good(guard("read", s.read16(0, 77, 1024, BLOCK)).await, "read");
    assert_eq!(&back[..], &data[..]);
    assert_eq!(
        &guard("ping", s.ping(b"digest".to_vec())).await.unwrap()[..],
        b"digest"
    );
    assert!(s.stats().violations.is_empty());
}

#[tokio::test]
async fn login_errors_are_typed() {
    let d = Daemon::start();
    let e = guard(
        "login",
        Session::login(
            d.addr(),
            &LoginConfig::normal(&iqn("x"), "iqn.2026-11.org.nowhere:none"),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(e.login_status(), Some(login_status::NOT_FOUND), "{e}");
}

async fn chap_login(d: &Daemon, who: &str, c: ChapConfig) -> Result<Session, Error> {
    guard("login", Session::login(d.addr(), &normal(who).chap(c))).await
}

const SECRET: &str = "initiatorsecret1";
const TSECRET: &str = "targetsecret123";

#[tokio::test]
async fn chap_one_way_md5_and_sha256() {
    let d = Daemon::start();
    d.require_chap(&iqn("chap1"), "chapuser", SECRET, None);
    for alg in [ChapAlgorithm::Md5, ChapAlgorithm::Sha256] {
        let c = ChapConfig::new("chapuser", SECRET).algorithms(&[alg]);
        let s = chap_login(&d, "chap1", c).await.unwrap();
        assert_eq!(s.negotiated().auth_method, "CHAP");
        assert_eq!(s.negotiated().chap_algorithm, Some(alg));
        clear_ua(&s, 0).await;
        let _ = guard("logout", s.logout(logout::CLOSE_SESSION))
            .await
            .unwrap();
    }
    // Preference order is ours: SHA-256 first when offered first.
    let s = chap_login(&d, "chap1", ChapConfig::new("chapuser", SECRET))
        .await
        .unwrap();
    assert_eq!(s.negotiated().chap_algorithm, Some(ChapAlgorithm::Sha256));
}

#[tokio::test]
async fn chap_failures() {
    let d = Daemon::start();
    d.require_chap(&iqn("chap2"), "chapuser", SECRET, None);
    let fail = |e: Result<Session, Error>| e.unwrap_err().login_status();
    // Wrong secret, wrong user name, and no CHAP at all: authentication failure.
    let wrong = ChapConfig::new("chapuser", "wrongsecret12345");
    assert_eq!(
        fail(chap_login(&d, "chap2", wrong).await),
        Some(login_status::AUTHENTICATION_FAILURE)
    );
    let wrong_user = ChapConfig::new("someoneelse", SECRET);
    assert_eq!(
        fail(chap_login(&d, "chap2", wrong_user).await),
        Some(login_status::AUTHENTICATION_FAILURE)
    );
    let none = guard("login", Session::login(d.addr(), &normal("chap2"))).await;
    assert_eq!(fail(none), Some(login_status::AUTHENTICATION_FAILURE));
    // An initiator without an ACL (demo mode off) is not authorized.
    let stranger = chap_login(&d, "stranger", ChapConfig::new("chapuser", SECRET)).await;
    assert!(
        matches!(
            fail(stranger),
            Some(login_status::AUTHORIZATION_FAILURE) | Some(login_status::AUTHENTICATION_FAILURE)
        ),
        "a stranger must not log in"
    );
    // The right credentials still work afterwards.
    chap_login(&d, "chap2", ChapConfig::new("chapuser", SECRET))
        .await
        .unwrap();
}

#[tokio::test]
async fn mutual_chap() {
    let d = Daemon::start();
    d.require_chap(
        &iqn("mutual"),
        "chapuser",
        SECRET,
        Some(("targetuser", TSECRET)),
    );
    for alg in [ChapAlgorithm::Md5, ChapAlgorithm::Sha256] {
        let c = ChapConfig::new("chapuser", SECRET)
            .algorithms(&[alg])
            .mutual(Some("targetuser"), TSECRET);
        let s = chap_login(&d, "mutual", c).await.unwrap();
        assert_eq!(s.negotiated().chap_algorithm, Some(alg));
        clear_ua(&s, 0).await;
    }
    // We verify the target: a secret it does not know fails on our side.
    let c = ChapConfig::new("chapuser", SECRET).mutual(Some("targetuser"), "notthesecret123");
    assert!(matches!(
        chap_login(&d, "mutual", c).await,
        Err(Error::MutualAuthFailed(_))
    ));
    // The target's wrong password for us still fails on its side.
    let c = ChapConfig::new("chapuser", "wrongsecret12345").mutual(Some("targetuser"), TSECRET);
    assert_eq!(
        chap_login(&d, "mutual", c)
            .await
            .unwrap_err()
            .login_status(),
        Some(login_status::AUTHENTICATION_FAILURE)
    );
}

#[tokio::test]
async fn mutual_chap_requested_but_not_configured_fails() {
    let d = Daemon::start();
    d.require_chap(&iqn("halfmutual"), "chapuser", SECRET, None);
    // The target has no mutual credentials: it must refuse our challenge (§12.1.3).
    let c = ChapConfig::new("chapuser", SECRET).mutual(None, TSECRET);
    let e = chap_login(&d, "halfmutual", c).await.unwrap_err();
    assert!(
        e.login_status() == Some(login_status::AUTHENTICATION_FAILURE)
            || matches!(e, Error::MutualAuthFailed(_)),
        "{e}"
    );
}

#[tokio::test]
async fn send_targets_discovery() {
    let d = Daemon::start();
    let s = guard(
        "login",
        Session::login(d.addr(), &LoginConfig::discovery(&iqn("disc"))),
    )
    .await
    .unwrap();
    assert_eq!(
        s.negotiated().session_type,
        ironlun_initiator::SessionType::Discovery
    );
    let t = guard("SendTargets", s.send_targets("All")).await.unwrap();
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].name, TARGET);
    assert_eq!(t[0].addresses, vec![format!("127.0.0.1:{},1", d.port)]);
    let r = guard("logout", s.logout(logout::CLOSE_SESSION))
        .await
        .unwrap();
    assert_eq!(r.response, logout::RESP_SUCCESS);

    // In a normal session SendTargets reports the session's own target.
    let n = login(&d, normal("disc2")).await;
    let t = guard("SendTargets", n.send_targets("")).await.unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].name, TARGET);
}

async fn wait_closed(s: &Session) {
    loop {
        match guard("connection close", s.next_event()).await {
            Some(Event::Closed(_)) | None => return,
            Some(_) => {}
        }
    }
}

#[tokio::test]
async fn logout_session_and_connection() {
    let d = Daemon::start();
    let s = login(&d, normal("logout")).await;
    let r = guard("logout", s.logout(logout::CLOSE_SESSION))
        .await
        .unwrap();
    assert_eq!(r.response, logout::RESP_SUCCESS);
    wait_closed(&s).await;
    assert!(matches!(
        guard("TUR after logout", s.test_unit_ready(0)).await,
        Err(Error::ConnectionClosed)
    ));

    let s = login(&d, normal("logout")).await;
    let r = guard("logout", s.logout(logout::CLOSE_CONNECTION))
        .await
        .unwrap();
    assert_eq!(r.response, logout::RESP_SUCCESS);
    wait_closed(&s).await;
    // The session can be logged in to again afterwards.
    let s = login(&d, normal("logout")).await;
    clear_ua(&s, 0).await;
}

/// Disabling a target portal group ends its sessions (as LIO does on `enable 0`): the
/// initiator sees the connection close, a new login is refused while it is disabled, and
/// works again once it is enabled.
#[tokio::test]
async fn disabling_a_tpg_ends_its_sessions() {
    let d = Daemon::start();
    let s = login(&d, normal("tpg-off")).await;
    assert!(s.closed().is_none());
    d.cli(&["set", &format!("{TPG}/enable"), "0"]);
    let t0 = std::time::Instant::now();
    while s.closed().is_none() && t0.elapsed() < std::time::Duration::from_secs(5) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        s.closed().is_some(),
        "the session outlived its disabled portal group"
    );
    assert!(Session::login(d.addr(), &normal("tpg-off")).await.is_err());
    d.cli(&["set", &format!("{TPG}/enable"), "1"]);
    let s2 = login(&d, normal("tpg-off")).await;
    assert!(s2.closed().is_none());
}

/// Ports of this file's daemons started with limits.
const LIMIT_PORTS: std::ops::Range<u16> = 3980..3990;

#[tokio::test]
async fn failed_logins_back_off_until_the_window_passes() {
    let window = std::time::Duration::from_secs(2);
    let d = Daemon::start_with(
        LIMIT_PORTS,
        DaemonEnv::args(&["--auth-fail-limit", "5", "--auth-fail-window", "2"]),
    );
    d.require_chap(&iqn("guess"), "chapuser", SECRET, None);
    let fail = |e: Result<Session, Error>| e.unwrap_err().login_status();
    let right = || ChapConfig::new("chapuser", SECRET);
    for n in 1..=5 {
        let wrong = ChapConfig::new("chapuser", "wrongsecret12345");
        assert_eq!(
            fail(chap_login(&d, "guess", wrong).await),
            Some(login_status::AUTHENTICATION_FAILURE),
            "bad attempt {n}"
        );
    }
    let start = std::time::Instant::now();
    // The sixth attempt brings the right secret: refused all the same.
    assert_eq!(
        fail(chap_login(&d, "guess", right()).await),
        Some(login_status::AUTHENTICATION_FAILURE),
        "the sixth attempt"
    );
    assert!(start.elapsed() < window, "checked inside the window");
    // Logged once per name and address, without a secret.
    let log = d.log_tail(400);
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("its logins are refused"))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines.iter().any(|l| l.contains(&iqn("guess"))), "{log}");
    assert!(lines.iter().any(|l| l.contains("127.0.0.1")), "{log}");
    assert!(
        !log.contains(SECRET) && !log.contains("wrongsecret12345"),
        "{log}"
    );
    // Once the window has passed the right secret gets in again.
    tokio::time::sleep(
        window.saturating_sub(start.elapsed()) + std::time::Duration::from_millis(300),
    )
    .await;
    chap_login(&d, "guess", right()).await.unwrap();
}

#[tokio::test]
async fn session_and_connection_limits_refuse_with_0302() {
    let d = Daemon::start_with(
        LIMIT_PORTS,
        DaemonEnv::args(&[
            "--max-sessions-per-initiator",
            "2",
            "--max-connections",
            "3",
        ]),
    );
    let isid = |n: u8| [0x80, 0, 0, 0, 0, n];
    let refused = |e: Result<Session, Error>| e.unwrap_err().login_status();
    // Two sessions of one initiator (N), not a third (N+1).
    let _a1 = login(&d, normal("lim").isid(isid(1))).await;
    let _a2 = login(&d, normal("lim").isid(isid(2))).await;
    let a3 = guard(
        "login",
        Session::login(d.addr(), &normal("lim").isid(isid(3))),
    )
    .await;
    assert_eq!(refused(a3), Some(login_status::OUT_OF_RESOURCES));
    // Three connections in all (N), not a fourth (N+1), whoever asks.
    let _b1 = login(&d, normal("other")).await;
    let b2 = guard(
        "login",
        Session::login(d.addr(), &normal("other").isid(isid(2))),
    )
    .await;
    assert_eq!(refused(b2), Some(login_status::OUT_OF_RESOURCES));
}
