//! N gateways, one LU (`serve --cluster`, docs/cluster.md): a 3-member etcd on loopback and
//! three gateways on this machine exporting one backing file as one clustered LU (same unit
//! serial), each through its own target port (own TPGT and RTPI) in its own target port group.
//!
//! Ports: etcd 4140-4142 (clients) and 4150-4152 (peers); gateways 4120-4139.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ironlun_initiator::pr::{PrType, RegisterAndMoveParams};
use ironlun_initiator::scsi_codes::{sense, status};
use ironlun_initiator::LoginConfig;
use support::etcd::{etcd_or_skip, EtcdCluster};
use support::pr::{conflict, desc, held_by, ok, run, show, Nexus};
use support::{iqn, login_at, Daemon, DaemonEnv};

const GW_PORTS: std::ops::Range<u16> = 4120..4140;
const TARGET: &str = "iqn.2026-12.org.ironlun:clustered";
const DEV: &str = "core/fileio_1/shared";
const SERIAL: &str = "cluster-lu-0001";
/// Lease TTL of the gateways, seconds.
const TTL: u64 = 2;

struct Gateway {
    d: Daemon,
    addr: SocketAddr,
    rtpi: u16,
    group: u16,
}

/// Gateway `i` (1-3): `--cluster`, the shared file as a clustered LU, groups gw1-gw3 (ids 1-3)
/// on the LU, its own TPG `tpgt_<10+i>` (RTPI 10+i) exporting it as LUN 0 in group `gw<i>`.
fn gateway(i: u16, etcd: &EtcdCluster, file: &std::path::Path) -> Gateway {
    let node = format!("gw{i}");
    let ttl = TTL.to_string();
    let eps = etcd.endpoints();
    let d = Daemon::start_with(
        GW_PORTS,
        DaemonEnv::args(&["--cluster", &eps, "--node", &node, "--cluster-ttl", &ttl]),
    );
    d.cli(&[
        "create",
        DEV,
        &format!("path={}", file.display()),
        "size=16M",
    ]);
    d.cli(&["set", &format!("{DEV}/wwn/vpd_unit_serial"), SERIAL]);
    d.cli(&["set", &format!("{DEV}/attrib/cluster"), "1"]);
    for g in 1..=3u16 {
        d.cli(&[
            "create",
            &format!("{DEV}/alua/gw{g}"),
            &format!("tg_pt_gp_id={g}"),
        ]);
    }
    let tpg = format!("iscsi/{TARGET}/tpgt_{}", 10 + i);
    let rtpi = 10 + i;
    d.cli(&["create", &tpg, &format!("rtpi={rtpi}")]);
    d.cli(&["create", &format!("{tpg}/lun/lun_0"), &format!("dev={DEV}")]);
    d.cli(&["set", &format!("{tpg}/lun/lun_0/alua_tg_pt_gp"), &node]);
    d.cli(&["set", &format!("{tpg}/attrib/generate_node_acls"), "1"]);
    d.cli(&["set", &format!("{tpg}/attrib/demo_mode_write_protect"), "0"]);
    let mut port = None;
    for p in GW_PORTS.rev() {
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
            continue;
        }
        if d.cli_output(&["create", &format!("{tpg}/np/127.0.0.1:{p}")])
            .status
            .success()
        {
            port = Some(p);
            break;
        }
    }
    let port = port.expect("a free portal port");
    d.cli(&["set", &format!("{tpg}/enable"), "1"]);
    Gateway {
        d,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        rtpi,
        group: i,
    }
}

/// Wait until the gateway says the clustered LU is in sync (it serves from then on).
fn wait_synced(g: &Gateway) {
    let until = Instant::now() + Duration::from_secs(20);
    while !g
        .d
        .log()
        .contains(&format!("clustered LU {SERIAL} in sync"))
    {
        assert!(
            Instant::now() < until,
            "gateway never synced:\n{}",
            g.d.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn shared_file() -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    f.as_file().set_len(16 << 20).expect("size the shared file");
    f
}

async fn nexus(g: &Gateway, label: &str, who: &str, isid: [u8; 6]) -> Nexus {
    let name = iqn(who);
    let s = login_at(g.addr, LoginConfig::normal(&name, TARGET).isid(isid), 0).await;
    Nexus {
        s,
        label: label.to_string(),
        name,
        isid,
        rtpi: g.rtpi,
    }
}

const ISID: [u8; 6] = [0x80, 0, 0x49, 0x4c, 0, 1];

/// READ FULL STATUS through every nexus is the same.
async fn same_everywhere(all: &[&Nexus], step: &str) -> ironlun_initiator::pr::FullStatus {
    let first = all[0].full_status().await;
    for n in &all[1..] {
        let st = n.full_status().await;
        assert_eq!(st, first, "after {step}: {} sees another state", n.label);
    }
    first
}

/// Expect one UNIT ATTENTION with this ASC/ASCQ as the next thing `n` is told.
async fn expect_ua(n: &Nexus, asc: u8, ascq: u8) {
    let r = run(&n.what("TEST UNIT READY"), n.s.test_unit_ready(0)).await;
    assert_eq!(
        r.status,
        status::CHECK_CONDITION,
        "{}: {}",
        n.label,
        show(&r)
    );
    let s = r.sense.expect("sense");
    assert_eq!(
        (s.key, s.asc.asc, s.asc.ascq),
        (sense::key::UNIT_ATTENTION, asc, ascq),
        "{}: {}",
        n.label,
        show(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pr_sequence_across_three_gateways() {
    if !etcd_or_skip() {
        return;
    }
    let etcd = EtcdCluster::start(4140);
    let file = shared_file();
    let gws: Vec<Gateway> = (1..=3).map(|i| gateway(i, &etcd, file.path())).collect();
    for g in &gws {
        wait_synced(g);
    }
    let a = nexus(&gws[0], "A@gw1", "a", ISID).await;
    let b = nexus(&gws[1], "B@gw2", "b", ISID).await;
    let c = nexus(&gws[2], "C@gw3", "c", ISID).await;
    let all = [&a, &b, &c];
    let (ka, kb, kc) = (0xAAu64, 0xBBu64, 0xCCu64);
    let flags = ironlun_initiator::pr::RegisterFlags::default();
    // REGISTER, each through its own gateway.
    for (n, k) in [(&a, ka), (&b, kb), (&c, kc)] {
        ok(
            &run(&n.what("REGISTER"), n.s.pr_register(0, 0, k, &flags)).await,
            &n.what("REGISTER"),
        );
    }
    let st = same_everywhere(&all, "REGISTER").await;
    assert_eq!(st.descriptors.len(), 3, "{st:?}");
    // RESERVE (Write Exclusive) through gw2.
    let we = PrType::WriteExclusive;
    ok(
        &run("B RESERVE", b.s.pr_reserve(0, kb, we)).await,
        "B RESERVE",
    );
    let st = same_everywhere(&all, "RESERVE").await;
    assert!(st.descriptors.contains(&desc(kb, &b, Some(we))), "{st:?}");
    ok(&b.write(1).await, "B WRITE (holder)");
    conflict(&a.write(1).await, "A WRITE under B's reservation");
    conflict(&c.write(1).await, "C WRITE under B's reservation");
    // PREEMPT AND ABORT through gw3: B's registration and reservation go.
    ok(
        &run(
            "C PREEMPT AND ABORT",
            c.s.pr_preempt_and_abort(0, kc, kb, we),
        )
        .await,
        "C PREEMPT AND ABORT",
    );
    // gw2 told B, whose registration another gateway removed: REGISTRATIONS PREEMPTED.
    expect_ua(&b, 0x2A, 0x05).await;
    let st = same_everywhere(&all, "PREEMPT AND ABORT").await;
    assert_eq!(st.descriptors.len(), 2, "{st:?}");
    assert!(st.descriptors.contains(&desc(kc, &c, Some(we))), "{st:?}");
    assert!(st.descriptors.contains(&desc(ka, &a, None)), "{st:?}");
    conflict(&b.write(2).await, "B WRITE after being preempted");
    conflict(&a.write(2).await, "A WRITE under C's reservation");
    ok(&c.write(2).await, "C WRITE (holder)");
    assert_eq!(a.reservation().await, held_by(kc, we.code()));
    // REGISTER AND MOVE from the holder (gw3) to A's nexus on gw1.
    let p = RegisterAndMoveParams {
        key: kc,
        sa_key: ka,
        unreg: false,
        aptpl: false,
        rtpi: a.rtpi,
        transport_id: a.port(),
    };
    ok(
        &run("C REGISTER AND MOVE", c.s.pr_register_and_move(0, we, &p)).await,
        "C REGISTER AND MOVE",
    );
    let st = same_everywhere(&all, "REGISTER AND MOVE").await;
    assert!(st.descriptors.contains(&desc(ka, &a, Some(we))), "{st:?}");
    ok(&a.write(3).await, "A WRITE (holder after the move)");
    conflict(
        &c.write(3).await,
        "C WRITE after moving the reservation away",
    );
    for g in &gws {
        assert!(g.d.log().contains("in sync"), "{}", g.d.log_tail(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_goes_unavailable_within_twice_the_ttl() {
    if !etcd_or_skip() {
        return;
    }
    let etcd = EtcdCluster::start(4160);
    let file = shared_file();
    let mut gws: Vec<Gateway> = (1..=3).map(|i| gateway(i, &etcd, file.path())).collect();
    for g in &gws {
        wait_synced(g);
    }
    let a = nexus(&gws[0], "A@gw1", "a", ISID).await;
    let rtpg = a.s.report_target_port_groups(0, true).await.expect("RTPG");
    let states: Vec<(u16, u8)> = rtpg
        .groups
        .iter()
        .map(|g| (g.group_id, g.state.code()))
        .collect();
    for g in &gws {
        assert!(
            states.contains(&(g.group, 0)),
            "group {} not AO: {states:?}",
            g.group
        );
    }
    let killed = Instant::now();
    gws[2].d.kill9();
    let limit = Duration::from_secs(2 * TTL);
    // The survivors' nexuses are told (ASYMMETRIC ACCESS STATE CHANGED), then RTPG shows it.
    let mut seen = None;
    while killed.elapsed() < limit + Duration::from_secs(3) {
        let r = run("TEST UNIT READY", a.s.test_unit_ready(0)).await;
        if let Some(s) = r.sense {
            assert_eq!(
                (s.key, s.asc.asc, s.asc.ascq),
                (sense::key::UNIT_ATTENTION, 0x2A, 0x06),
                "{}",
                show(&r)
            );
            seen = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = seen.expect("no ASYMMETRIC ACCESS STATE CHANGED after gw3 died");
    let r = a.s.report_target_port_groups(0, true).await.expect("RTPG");
    let g3 = r
        .groups
        .iter()
        .find(|g| g.group_id == 3)
        .map(|g| g.state.code());
    assert_eq!(g3, Some(3), "gw3's group after its death: {:?}", r.groups);
    println!("gw3's group Unavailable after {took:?} (lease TTL {TTL} s)");
    assert!(took <= limit, "took {took:?}, more than 2 x TTL");
    ok(&a.write(5).await, "A WRITE after gw3 died");
}
