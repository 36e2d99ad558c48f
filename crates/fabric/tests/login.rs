//! Login, negotiation, CHAP and discovery through a raw TCP client (RFC 7143 §6, §11.12-13,
//! §12.1.3, §13, Appendix C).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ironlun_fabric::{AuthConfig, FabricOptions, TargetConfig};
use ironlun_iscsi::chap::{decode_binary, encode_hex, ChapAlgorithm};
use ironlun_iscsi::pdu::login_status as st;
use ironlun_iscsi::{Bhs, Pdu, Stage, RESERVED_TAG};

#[tokio::test]
async fn discovery_lists_enabled_targets_with_portal_and_tag() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_discovery().await;
    let ans = c.text(&[("SendTargets", "All")]).await;
    assert_eq!(get(&ans, "TargetName"), Some(TARGET));
    assert_eq!(
        get(&ans, "TargetAddress"),
        Some(format!("{addr},1").as_str())
    );
    assert!(
        ans.iter().all(|(_, v)| v != HIDDEN),
        "disabled TPG is hidden"
    );
    let one = c.text(&[("SendTargets", TARGET)]).await;
    assert_eq!(get(&one, "TargetName"), Some(TARGET));
    let none = c.text(&[("SendTargets", "iqn.2024-01.nope:x")]).await;
    assert!(none.is_empty());
}

/// SendTargets=All over 300 targets, each with two TPGs of four portals (about 90 KB of
/// text): the answer comes in parts of at most MaxRecvDataSegmentLength (8192, the default
/// a discovery login without the key keeps), each but the last with C set, F clear and a TTT
/// the initiator echoes in an empty Text Request for the next; the last has F set and the
/// reserved TTT (RFC 7143 §11.10.4, §11.11.1-11.11.4). Together they list every target.
#[tokio::test]
async fn a_long_send_targets_answer_comes_in_parts_of_max_recv_data_segment_length() {
    const N: u16 = 300;
    let portals: Vec<std::net::SocketAddr> = (2..6)
        .map(|i| format!("127.0.0.{i}:0").parse().unwrap())
        .collect();
    let (f, addr) = fabric_cfg(
        FabricOptions::default(),
        |_| {},
        |cfg| {
            for t in 0..N {
                let name = format!("iqn.2024-01.test.ironlun:many-{t:04}");
                let tpgs = (1..=2)
                    .map(|tpgt| {
                        let mut g = tpg(port(&name, tpgt, tpgt, 0), tpgt, portals[0]);
                        g.portals = portals.clone();
                        g
                    })
                    .collect();
                cfg.targets.push(TargetConfig { name, tpgs });
            }
        },
    )
    .await;
    let mut c = Client::connect(addr).await;
    c.login_discovery().await;
    let answer = c.text_parts(&[("SendTargets", "All")]).await;
    let parts = answer.len();
    let mut body = Vec::new();
    for (i, (r, data)) in answer.iter().enumerate() {
        let part = i + 1;
        assert!(data.len() <= 8192, "part {part}: {} bytes", data.len());
        body.extend_from_slice(data);
        if r.final_ {
            assert_eq!(part, parts, "F set only on the last part");
            assert!(!r.cont, "the last part has C clear");
            assert_eq!(r.ttt, RESERVED_TAG, "the last part has the reserved TTT");
            continue;
        }
        assert!(r.cont, "part {part}: F clear needs C set");
        assert_ne!(r.ttt, RESERVED_TAG, "part {part}: a TTT to continue with");
        assert_eq!(data.len(), 8192, "part {part} is full");
    }
    assert!(parts > 10, "{} bytes in {parts} parts", body.len());
    let pairs = kv(&body);
    let names: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "TargetName")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(names.len(), 1 + N as usize, "TARGET and the 300");
    for t in 0..N {
        let name = format!("iqn.2024-01.test.ironlun:many-{t:04}");
        let at = pairs
            .iter()
            .position(|(k, v)| k == "TargetName" && *v == name);
        let at = at.unwrap_or_else(|| panic!("{name} listed"));
        let addrs: Vec<&str> = pairs[at + 1..]
            .iter()
            .take_while(|(k, _)| k == "TargetAddress")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(addrs.len(), 8, "{name}: {addrs:?}");
        for (i, a) in addrs.iter().enumerate() {
            let (ip_port, tag) = a.rsplit_once(',').expect("ADDR,TPGT");
            assert_eq!(tag, if i < 4 { "1" } else { "2" }, "{a}");
            let sa: std::net::SocketAddr = ip_port.parse().expect("IP:PORT");
            assert_eq!(sa.ip(), portals[i % 4].ip(), "{a}");
            assert!(f.listening().contains(&sa), "{a} is a listening portal");
        }
    }
    // The session goes on: a short request gets a one-part answer.
    let one = c
        .text(&[("SendTargets", "iqn.2024-01.test.ironlun:many-0299")])
        .await;
    assert_eq!(one.len(), 9);
}

#[tokio::test]
async fn normal_login_negotiates_every_key() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    let (r, first) = c
        .login_pdu(
            Stage::Security,
            Stage::Operational,
            true,
            &[
                ("InitiatorName", INITIATOR),
                ("TargetName", TARGET),
                ("SessionType", "Normal"),
                ("AuthMethod", "None"),
            ],
        )
        .await;
    assert_eq!(r.status(), 0);
    assert!(r.transit && r.nsg == Stage::Operational);
    assert_eq!(get(&first, "TargetPortalGroupTag"), Some("1"));
    assert_eq!(get(&first, "AuthMethod"), Some("None"));
    let (r, ans) = c
        .login_pdu(
            Stage::Operational,
            Stage::FullFeature,
            true,
            &[
                ("HeaderDigest", "None,CRC32C"),
                ("DataDigest", "None"),
                ("MaxConnections", "4"),
                ("InitialR2T", "No"),
                ("ImmediateData", "Yes"),
                ("MaxRecvDataSegmentLength", "65536"),
                ("MaxBurstLength", "16776192"),
                ("FirstBurstLength", "262144"),
                ("DefaultTime2Wait", "0"),
                ("DefaultTime2Retain", "0"),
                ("MaxOutstandingR2T", "64"),
                ("DataPDUInOrder", "Yes"),
                ("DataSequenceInOrder", "Yes"),
                ("ErrorRecoveryLevel", "2"),
                ("IFMarker", "No"),
                ("OFMarkInt", "2048"),
                ("X-com.example.Foo", "1"),
                ("Bogus", "1"),
                ("TaskReporting", "ResponseFence,RFC3720"),
            ],
        )
        .await;
    assert_eq!(r.status(), 0);
    assert!(r.transit && r.nsg == Stage::FullFeature);
    assert_ne!(r.tsih, 0);
    let want = [
        ("HeaderDigest", "None"),
        ("DataDigest", "None"),
        ("MaxConnections", "4"),
        ("InitialR2T", "No"),
        ("ImmediateData", "Yes"),
        ("MaxBurstLength", "16776192"),
        ("FirstBurstLength", "262144"),
        ("DefaultTime2Wait", "2"),
        ("DefaultTime2Retain", "0"),
        ("MaxOutstandingR2T", "16"),
        ("DataPDUInOrder", "Yes"),
        ("DataSequenceInOrder", "Yes"),
        ("ErrorRecoveryLevel", "0"),
        ("IFMarker", "No"),
        ("OFMarkInt", "Reject"),
        ("X-com.example.Foo", "NotUnderstood"),
        ("Bogus", "NotUnderstood"),
        ("TaskReporting", "RFC3720"),
        ("MaxRecvDataSegmentLength", "262144"),
    ];
    for (k, v) in want {
        assert_eq!(get(&ans, k), Some(v), "{k}");
    }
}

#[tokio::test]
async fn bad_values_are_rejected_and_target_keys_refused() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    let (r, ans) = c
        .login_pdu(
            Stage::Security,
            Stage::Operational,
            true,
            &[
                ("InitiatorName", INITIATOR),
                ("TargetName", TARGET),
                ("AuthMethod", "None"),
                ("MaxBurstLength", "abc"),
                ("MaxOutstandingR2T", "0"),
                ("HeaderDigest", "MD5"),
                ("TargetAlias", "mine"),
                ("InitiatorAlias", "host one"),
            ],
        )
        .await;
    assert_eq!(r.status(), 0);
    assert_eq!(get(&ans, "MaxBurstLength"), Some("Reject"));
    assert_eq!(get(&ans, "MaxOutstandingR2T"), Some("Reject"));
    assert_eq!(get(&ans, "HeaderDigest"), Some("Reject"));
    assert_eq!(
        get(&ans, "InitiatorAlias"),
        None,
        "declarations get no answer"
    );
    // TargetAlias is ours to declare: the initiator's offer is refused, ours is declared.
    assert!(ans.iter().any(|(k, v)| k == "TargetAlias" && v == "Reject"));
}

async fn expect_failure(addr: std::net::SocketAddr, keys: &[(&str, &str)], tsih: u16, status: u16) {
    let mut c = Client::connect(addr).await;
    c.tsih = tsih;
    let (r, ans) = c
        .login_pdu(Stage::Security, Stage::Operational, true, keys)
        .await;
    assert_eq!(r.status(), status, "keys {keys:?}");
    assert!(ans.is_empty(), "a failed login leaks no keys");
    assert!(c.closed_within(std::time::Duration::from_secs(5)).await);
}

#[tokio::test]
async fn login_failures_carry_rfc_status_codes() {
    let (_f, addr) = fabric().await;
    expect_failure(
        addr,
        &[("TargetName", TARGET), ("AuthMethod", "None")],
        0,
        st::MISSING_PARAMETER,
    )
    .await;
    expect_failure(
        addr,
        &[("InitiatorName", INITIATOR), ("AuthMethod", "None")],
        0,
        st::MISSING_PARAMETER,
    )
    .await;
    expect_failure(
        addr,
        &[
            ("InitiatorName", INITIATOR),
            ("TargetName", "iqn.2024-01.nope:x"),
            ("AuthMethod", "None"),
        ],
        0,
        st::NOT_FOUND,
    )
    .await;
    expect_failure(
        addr,
        &[
            ("InitiatorName", INITIATOR),
            ("TargetName", HIDDEN),
            ("AuthMethod", "None"),
        ],
        0,
        st::NOT_FOUND,
    )
    .await;
    expect_failure(
        addr,
        &[
            ("InitiatorName", INITIATOR),
            ("TargetName", TARGET),
            ("SessionType", "Weird"),
        ],
        0,
        st::SESSION_TYPE_NOT_SUPPORTED,
    )
    .await;
    expect_failure(
        addr,
        &[
            ("InitiatorName", INITIATOR),
            ("TargetName", TARGET),
            ("AuthMethod", "None"),
        ],
        0x4321,
        st::SESSION_DOES_NOT_EXIST,
    )
    .await;
}

#[tokio::test]
async fn unsupported_version_is_refused() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    let req = ironlun_iscsi::LoginRequest {
        transit: true,
        cont: false,
        csg: Stage::Security,
        nsg: Stage::Operational,
        version_max: 2,
        version_min: 1,
        isid: c.isid,
        tsih: 0,
        itt: 1,
        cid: 1,
        cmd_sn: 1,
        exp_stat_sn: 0,
    };
    let data = ironlun_iscsi::text::encode([("InitiatorName", INITIATOR), ("TargetName", TARGET)]);
    c.send(&Pdu::with_data(Bhs::LoginRequest(req), data)).await;
    let Some(Pdu {
        bhs: Bhs::LoginResponse(r),
        ..
    }) = c.recv().await
    else {
        panic!("no login response")
    };
    assert_eq!(r.status(), st::UNSUPPORTED_VERSION);
}

#[tokio::test]
async fn chap_one_way_md5_and_sha256() {
    let (_f, addr) = fabric_with(FabricOptions::default(), chap_tpg(false)).await;
    for (algs, want) in [("5", ChapAlgorithm::Md5), ("7,5", ChapAlgorithm::Sha256)] {
        let mut c = Client::connect(addr).await;
        let (status, _) = chap_login(&mut c, algs, "user1", "secretsecret1", None).await;
        assert_eq!(status, 0, "CHAP_A={algs} ({want:?})");
        let ans = c
            .login_pdu(Stage::Operational, Stage::FullFeature, true, &[])
            .await;
        assert_eq!(ans.0.status(), 0);
    }
}

#[tokio::test]
async fn chap_wrong_secret_or_name_fails_with_0201() {
    let (_f, addr) = fabric_with(FabricOptions::default(), chap_tpg(false)).await;
    let mut c = Client::connect(addr).await;
    let (status, ans) = chap_login(&mut c, "5", "user1", "wrongwrongwrong", None).await;
    assert_eq!(status, st::AUTHENTICATION_FAILURE);
    assert!(ans.is_empty());
    let mut c = Client::connect(addr).await;
    let (status, _) = chap_login(&mut c, "5", "someone", "secretsecret1", None).await;
    assert_eq!(status, st::AUTHENTICATION_FAILURE);
}

#[tokio::test]
async fn chap_required_refuses_none() {
    let (_f, addr) = fabric_with(FabricOptions::default(), chap_tpg(false)).await;
    let mut c = Client::connect(addr).await;
    let (r, _) = c
        .login_pdu(
            Stage::Security,
            Stage::Operational,
            true,
            &[
                ("InitiatorName", INITIATOR),
                ("TargetName", TARGET),
                ("AuthMethod", "None"),
            ],
        )
        .await;
    assert_eq!(r.status(), st::AUTHENTICATION_FAILURE);
}

#[tokio::test]
async fn chap_mutual_authenticates_the_target() {
    let (_f, addr) = fabric_with(FabricOptions::default(), chap_tpg(true)).await;
    let mut c = Client::connect(addr).await;
    let my_challenge = [0x5au8; 16];
    let (status, ans) =
        chap_login(&mut c, "5", "user1", "secretsecret1", Some(&my_challenge)).await;
    assert_eq!(status, 0);
    assert_eq!(get(&ans, "CHAP_N"), Some("target1"));
    let got = decode_binary(get(&ans, "CHAP_R").unwrap()).unwrap();
    assert!(ChapAlgorithm::Md5.verify(77, b"tgtsecret12345", &my_challenge, &got));
}

#[tokio::test]
async fn chap_mutual_with_one_secret_both_ways_fails_with_0201() {
    // The control plane refuses such a configuration; the login refuses it too (§12.1.3).
    let (_f, addr) = fabric_with(FabricOptions::default(), |g| {
        chap_tpg(true)(g);
        if let Some(a) = g.acl_auth.get_mut(INITIATOR) {
            a.mutual_password = a.password.clone();
        }
    })
    .await;
    let mut c = Client::connect(addr).await;
    let (status, ans) = chap_login(&mut c, "5", "user1", "secretsecret1", Some(&[7u8; 16])).await;
    assert_eq!(status, st::AUTHENTICATION_FAILURE);
    assert!(ans.is_empty(), "no CHAP_R given away: {ans:?}");
    // One-way CHAP with the same configuration still works: nothing is answered.
    let mut c = Client::connect(addr).await;
    let (status, _) = chap_login(&mut c, "5", "user1", "secretsecret1", None).await;
    assert_eq!(status, 0);
}

#[tokio::test]
async fn chap_mutual_without_target_secret_fails() {
    let (_f, addr) = fabric_with(FabricOptions::default(), chap_tpg(false)).await;
    let mut c = Client::connect(addr).await;
    let (status, _) = chap_login(&mut c, "5", "user1", "secretsecret1", Some(&[1u8; 16])).await;
    assert_eq!(status, st::AUTHENTICATION_FAILURE);
}

#[tokio::test]
async fn garbage_before_login_closes() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.send_raw(&[0xffu8; 48]).await;
    assert!(c.closed_within(std::time::Duration::from_secs(5)).await);
}

#[tokio::test]
async fn half_sent_login_times_out() {
    let opts = FabricOptions {
        login_timeout: std::time::Duration::from_millis(300),
        ..FabricOptions::default()
    };
    let (_f, addr) = fabric_with(opts, |_| {}).await;
    let mut c = Client::connect(addr).await;
    c.send_raw(&[0x43u8; 20]).await;
    assert!(c.closed_within(std::time::Duration::from_secs(5)).await);
}

#[tokio::test]
async fn oversized_login_segment_closes() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    let mut hdr = [0u8; 48];
    hdr[0] = 0x43;
    hdr[5..8].copy_from_slice(&[0x10, 0, 0]); // 1 MiB of text
    c.send_raw(&hdr).await;
    assert!(c.closed_within(std::time::Duration::from_secs(5)).await);
}

#[tokio::test]
async fn many_idle_connections_do_not_block_a_real_login() {
    let opts = FabricOptions {
        max_pending_logins: 8,
        login_timeout: std::time::Duration::from_secs(2),
        ..FabricOptions::default()
    };
    let (_f, addr) = fabric_with(opts, |_| {}).await;
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // The idle ones time out; then a real login succeeds.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[]).await;
}

#[tokio::test]
async fn initiator_without_acl_sees_nothing_and_gets_0202() {
    let (_f, addr) = fabric_with(FabricOptions::default(), |g| {
        g.port.set_demo_mode(false, false)
    })
    .await;
    let mut c = Client::connect(addr).await;
    c.login_discovery().await;
    let ans = c.text(&[("SendTargets", "All")]).await;
    assert!(ans.is_empty(), "no ACL, no demo mode: hidden ({ans:?})");
    let mut c = Client::connect(addr).await;
    let (r, _) = c
        .login_pdu(
            Stage::Security,
            Stage::FullFeature,
            true,
            &[
                ("InitiatorName", INITIATOR),
                ("TargetName", TARGET),
                ("AuthMethod", "None"),
            ],
        )
        .await;
    assert_eq!(r.status(), st::AUTHORIZATION_FAILURE);
}

#[tokio::test]
async fn discovery_chap_is_enforced() {
    let (_f, addr) = fabric_cfg(
        FabricOptions::default(),
        |_| {},
        |cfg| {
            cfg.discovery_auth = Some(AuthConfig {
                userid: "disc".into(),
                password: "discoverysecret".into(),
                ..AuthConfig::default()
            })
        },
    )
    .await;
    let mut c = Client::connect(addr).await;
    let (r, _) = c
        .login_pdu(
            Stage::Security,
            Stage::FullFeature,
            true,
            &[
                ("InitiatorName", INITIATOR),
                ("SessionType", "Discovery"),
                ("AuthMethod", "None"),
            ],
        )
        .await;
    assert_eq!(r.status(), st::AUTHENTICATION_FAILURE);
    let mut c = Client::connect(addr).await;
    let (r, ans) = c
        .login_pdu(
            Stage::Security,
            Stage::FullFeature,
            false,
            &[
                ("InitiatorName", INITIATOR),
                ("SessionType", "Discovery"),
                ("AuthMethod", "CHAP"),
            ],
        )
        .await;
    assert_eq!(r.status(), 0);
    assert_eq!(get(&ans, "AuthMethod"), Some("CHAP"));
    let (_, ans) = c
        .login_pdu(
            Stage::Security,
            Stage::FullFeature,
            false,
            &[("CHAP_A", "7")],
        )
        .await;
    let id: u8 = get(&ans, "CHAP_I").unwrap().parse().unwrap();
    let ch = decode_binary(get(&ans, "CHAP_C").unwrap()).unwrap();
    assert_eq!(ch.len(), 32, "SHA-256 challenge");
    let resp = encode_hex(&ChapAlgorithm::Sha256.response(id, b"discoverysecret", &ch));
    let (r, _) = c
        .login_pdu(
            Stage::Security,
            Stage::FullFeature,
            true,
            &[("CHAP_N", "disc"), ("CHAP_R", &resp)],
        )
        .await;
    assert_eq!(r.status(), 0);
    assert!(r.transit && r.nsg == Stage::FullFeature);
    let ans = c.text(&[("SendTargets", "All")]).await;
    assert_eq!(get(&ans, "TargetName"), Some(TARGET));
}
