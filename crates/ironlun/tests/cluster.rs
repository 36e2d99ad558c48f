//! N gateways, one LU (`serve --cluster`, docs/cluster.md): a 3-member etcd on loopback and
//! three gateways on this machine exporting one backing file as one clustered LU (same unit
//! serial), each through its own target port (own TPGT and RTPI) in its own target port group.
//!
//! Ports: each test has a block of 20 from its base (4140, 4160, 4180, 4200, 4260, 4280, 4300,
//! 4320): etcd clients at base + 0..2, its peers at base + 10..12, the test's gateways (daemon
//! and portal ports) at base + 13..19 ([`EtcdCluster::spare_ports`]). Tests run in parallel:
//! with one shared range, a test took the port of another test's killed gateway before that
//! gateway restarted on it.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ironlun_initiator::pr::{PrType, RegisterAndMoveParams};
use ironlun_initiator::scsi_codes::{sense, status};
use ironlun_initiator::LoginConfig;
use support::etcd::{etcd_or_skip, EtcdCluster};
use support::pr::{conflict, desc, held_by, ok, run, show, Nexus};
use support::{iqn, login_at, Daemon, DaemonEnv};

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
    gateway_on(i, etcd, &etcd.endpoints(), file)
}

/// [`gateway`] reaching etcd through `eps` only (ports still from `etcd`'s block).
fn gateway_on(i: u16, etcd: &EtcdCluster, eps: &str, file: &std::path::Path) -> Gateway {
    let ports = etcd.spare_ports();
    let node = format!("gw{i}");
    let ttl = TTL.to_string();
    let d = Daemon::start_with(
        ports.clone(),
        DaemonEnv::args(&["--cluster", eps, "--node", &node, "--cluster-ttl", &ttl]),
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
    for p in ports.rev() {
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

/// `ironlun cluster --cluster <etcd> ARGS…`: (exit code, stdout, stderr).
fn cluster_cli(etcd: &EtcdCluster, args: &[&str]) -> (i32, String, String) {
    let o = std::process::Command::new(support::BIN)
        .args(["cluster", "--cluster", &etcd.endpoints()])
        .args(args)
        .output()
        .expect("run ironlun cluster");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
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

/// The answer of `cmd`, asked again while it is a UNIT ATTENTION (what resets, group changes
/// and re-joins leave on nexuses).
async fn past_ua<F: std::future::Future<Output = ironlun_initiator::CommandResult>>(
    cmd: impl Fn() -> F,
) -> ironlun_initiator::CommandResult {
    loop {
        let r = cmd().await;
        if r.sense.is_none_or(|s| s.key != sense::key::UNIT_ATTENTION) {
            return r;
        }
    }
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

/// REPORT TARGET PORT GROUPS through `n` as sent (a unit attention is an answer here, not
/// an error), and its groups when it was GOOD and parses.
async fn rtpg_through(
    n: &Nexus,
) -> (
    ironlun_initiator::CommandResult,
    Option<Vec<ironlun_initiator::alua::PortGroup>>,
) {
    let r = run("REPORT TARGET PORT GROUPS", n.s.rtpg_raw(0, true, 4096)).await;
    let groups = (r.status == status::GOOD)
        .then(|| ironlun_initiator::alua::Rtpg::parse(&r.data_in, true).ok())
        .flatten()
        .map(|p| p.groups);
    (r, groups)
}

/// Wait (up to `limit` from `since`) until REPORT TARGET PORT GROUPS through `n` shows `group`
/// Unavailable: the moment the other gateways have declared that gateway gone. A unit attention
/// alone does not tell it: under load `n`'s own gateway may change its groups for a moment too.
/// Returns when, and whether `n` was told ASYMMETRIC ACCESS STATE CHANGED on the way (by the
/// TEST UNIT READY or the RTPG it sends, whichever the unit attention met).
async fn until_unavailable(
    n: &Nexus,
    group: u16,
    since: Instant,
    limit: Duration,
) -> (Duration, bool) {
    let told_by = |r: &ironlun_initiator::CommandResult| {
        r.sense.is_some_and(|s| {
            (s.key, s.asc.asc, s.asc.ascq) == (sense::key::UNIT_ATTENTION, 0x2A, 0x06)
        })
    };
    let mut told = false;
    loop {
        let r = run("TEST UNIT READY", n.s.test_unit_ready(0)).await;
        told |= told_by(&r);
        let (r, groups) = rtpg_through(n).await;
        told |= told_by(&r);
        let state = groups.and_then(|gs| {
            gs.iter()
                .find(|g| g.group_id == group)
                .map(|g| g.state.code())
        });
        if state == Some(3) {
            return (since.elapsed(), told);
        }
        assert!(
            since.elapsed() < limit,
            "group {group} not Unavailable through {} after {limit:?}",
            n.label
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Wait until `n`'s gateway knows every gateway of `gws`: RTPG through `n` lists each one's
/// port (RTPI) in its group. A gateway says it is in sync as soon as it holds the LU, which
/// may be before its own TPG exports it; it publishes the port at a later reconcile, and until
/// the others know that port, its death changes no group they report.
async fn wait_known(n: &Nexus, gws: &[&Gateway]) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (r, groups) = rtpg_through(n).await;
        let known = groups.is_some_and(|gs| {
            gws.iter().all(|g| {
                gs.iter()
                    .any(|pg| pg.group_id == g.group && pg.ports.contains(&g.rtpi))
            })
        });
        if known {
            return;
        }
        assert!(
            Instant::now() < until,
            "{} does not list every gateway's port: {}",
            n.label,
            show(&r)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGSTOP a process and wait until every thread of it has stopped: kill(2) returns before
/// the threads take the signal (a thread of it was seen running right after, on a busy host).
fn stop_process(pid: u32) {
    signal(pid, "-STOP");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process's threads");
        let all_stopped = tasks.flatten().all(|t| {
            std::fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|st| st.rsplit(") ").next().map(|f| f.starts_with('T')))
                .unwrap_or(true)
        });
        if all_stopped {
            return;
        }
        assert!(Instant::now() < until, "process {pid} did not stop");
        std::thread::sleep(Duration::from_millis(1));
    }
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
    // Any machine that reaches etcd shows the cluster and changes a group on every gateway.
    let (code, out, err) = cluster_cli(&etcd, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("live gateways: gw1 gw2 gw3"), "{out}");
    assert!(
        out.contains("2 registrations, reservation key 0xaa, type 1"),
        "{out}"
    );
    for g in 1..=3 {
        assert!(
            out.contains(&format!("gateway gw{g} (live, acknowledged revision")),
            "{out}"
        );
        assert!(
            out.contains(&format!("group {g}: Active/Optimized")),
            "{out}"
        );
    }
    let (code, _, err) = cluster_cli(&etcd, &["set-group", SERIAL, "2", "standby"]);
    assert_eq!(code, 2, "a bad state is refused");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("valid: ao, ano, s, u, o"), "{err}");
    let (code, _, err) = cluster_cli(&etcd, &["forget", "gw1"]);
    assert_eq!(code, 2, "a live gateway is not forgotten: {err}");
    let (code, out, err) = cluster_cli(&etcd, &["set-group", SERIAL, "2", "s"]);
    assert_eq!(code, 0, "{out}{err}");
    expect_ua(&a, 0x2A, 0x06).await;
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let r = a.s.report_target_port_groups(0, true).await.expect("RTPG");
        let g2 = r
            .groups
            .iter()
            .find(|g| g.group_id == 2)
            .map(|g| g.state.code());
        if g2 == Some(2) {
            break;
        }
        assert!(
            Instant::now() < until,
            "group 2 never Standby: {:?}",
            r.groups
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // B, through gw2, is Standby now: no writes.
    let r = past_ua(|| b.write(9)).await;
    assert_eq!(
        r.sense.map(|s| (s.key, s.asc.asc, s.asc.ascq)),
        Some((sense::key::NOT_READY, 0x04, 0x0B)),
        "{}",
        show(&r)
    );
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
    wait_known(&a, &gws.iter().collect::<Vec<_>>()).await;
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
    // The survivors' nexuses are told (ASYMMETRIC ACCESS STATE CHANGED) and RTPG shows it.
    let (took, told) = until_unavailable(&a, 3, killed, limit + Duration::from_secs(3)).await;
    assert!(told, "no ASYMMETRIC ACCESS STATE CHANGED after gw3 died");
    println!("gw3's group Unavailable after {took:?} (lease TTL {TTL} s)");
    assert!(took <= limit, "took {took:?}, more than 2 x TTL");
    ok(&a.write(5).await, "A WRITE after gw3 died");
    let (code, out, err) = cluster_cli(&etcd, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("gateway gw3 (gone)"), "{out}");
    assert!(out.contains("group 3: Unavailable (3)"), "{out}");
    let (code, out, err) = cluster_cli(&etcd, &["forget", "gw3"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("forgot gateway gw3 (1 LU port record(s))"),
        "{out}"
    );
    let (_, out, _) = cluster_cli(&etcd, &["status"]);
    assert!(!out.contains("gateway gw3"), "{out}");
    // gw3 starts again on its state directory: it re-syncs before it serves, and its group is
    // Active/Optimized again for everyone.
    let synced_before = gws[2].d.log().matches("in sync").count();
    gws[2].d.restart();
    let until = Instant::now() + Duration::from_secs(20);
    while gws[2].d.log().matches("in sync").count() <= synced_before {
        assert!(
            Instant::now() < until,
            "gw3 never re-synced: {}",
            gws[2].d.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let r = a.s.report_target_port_groups(0, true).await;
        let g3 = r.ok().and_then(|r| {
            r.groups
                .iter()
                .find(|g| g.group_id == 3)
                .map(|g| g.state.code())
        });
        if g3 == Some(0) {
            break;
        }
        assert!(Instant::now() < until, "gw3's group not back: {g3:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = nexus(&gws[2], "C@gw3", "c", ISID).await;
    ok(&c.write(6).await, "C WRITE through the restarted gw3");
}

/// One REGISTER AND IGNORE EXISTING KEY after another through `n`, keys 100, 101, …, until
/// `until`: (key, when answered, answered GOOD).
async fn key_stream(n: &Nexus, until: Instant) -> Vec<(u64, Instant, bool)> {
    let flags = ironlun_initiator::pr::RegisterFlags::default();
    let mut log = Vec::new();
    let mut key = 100;
    while Instant::now() < until {
        let r = n.s.pr_register_ignore(0, key, &flags).await;
        let good = matches!(&r, Ok(r) if r.status == status::GOOD);
        log.push((key, Instant::now(), good));
        if !good {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        key += 1;
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_leader_killed_during_pr_out_traffic_loses_no_answered_change() {
    if !etcd_or_skip() {
        return;
    }
    let mut etcd = EtcdCluster::start(4180);
    let file = shared_file();
    let gws: Vec<Gateway> = (1..=2).map(|i| gateway(i, &etcd, file.path())).collect();
    for g in &gws {
        wait_synced(g);
    }
    let a = nexus(&gws[0], "A@gw1", "a", ISID).await;
    let b = nexus(&gws[1], "B@gw2", "b", ISID).await;
    let start = Instant::now();
    let until = start + Duration::from_secs(8);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let l = etcd.leader();
        etcd.kill(l);
        (l, Instant::now())
    };
    let (la, lb, (leader, killed)) =
        tokio::join!(key_stream(&a, until), key_stream(&b, until), kill);
    for (n, log) in [(&a, &la), (&b, &lb)] {
        let good: Vec<&(u64, Instant, bool)> = log.iter().filter(|e| e.2).collect();
        let before = good.iter().filter(|e| e.1 < killed).count();
        let after = good.iter().filter(|e| e.1 >= killed).count();
        assert!(
            before > 0 && after > 0,
            "{}: {before} GOOD before the kill, {after} after",
            n.label
        );
        // The longest time without an answered change around the kill.
        let mut last = killed;
        let mut pause = Duration::ZERO;
        for e in good.iter().filter(|e| e.1 >= killed) {
            pause = pause.max(e.1 - last);
            last = e.1;
        }
        let failed = log.iter().filter(|e| !e.2).count();
        println!(
            "{}: {} PR OUT answered GOOD ({before} before killing etcd leader m{leader}, {after} after), {failed} not; longest pause after the kill {pause:?}",
            n.label,
            good.len()
        );
        assert!(
            pause < Duration::from_secs(6),
            "{}: paused {pause:?}",
            n.label
        );
        // The last change answered GOOD (or a later one that was tried) is what every gateway has.
        let last_good = good.last().map(|e| e.0).expect("some GOOD");
        let tried_max = log.last().map(|e| e.0).expect("some tried");
        for via in [&a, &b] {
            let keys = via.s.pr_read_keys(0).await.expect("READ KEYS").keys;
            let mine: Vec<u64> = keys
                .iter()
                .copied()
                .filter(|k| (100..=tried_max + 1).contains(k))
                .collect();
            assert!(
                keys.iter().any(|k| *k >= last_good && *k <= tried_max),
                "{}'s last GOOD key {last_good} lost: {} reads {keys:?} ({mine:?})",
                n.label,
                via.label
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_cut_off_from_etcd_stops_writing_before_the_others_declare_it_unavailable() {
    if !etcd_or_skip() {
        return;
    }
    let etcd = EtcdCluster::start(4260);
    let file = shared_file();
    let gw1 = gateway(1, &etcd, file.path());
    let gw2 = gateway(2, &etcd, file.path());
    // gw3 reaches etcd through member m2 only: stopping m2 cuts it off.
    let only_m2 = format!("http://127.0.0.1:{}", etcd.client_port(2));
    let gw3 = gateway_on(3, &etcd, &only_m2, file.path());
    for g in [&gw1, &gw2, &gw3] {
        wait_synced(g);
    }
    let o = nexus(&gw1, "O@gw1", "o", ISID).await;
    let w = nexus(&gw3, "W@gw3", "w", ISID).await;
    wait_known(&o, &[&gw1, &gw3]).await;
    const LOG_LBA: u64 = 1000;
    // The write log: write n goes to block LOG_LBA + n, holding n. One write per millisecond
    // at most: unpaced, a fast host used up the blocks of the 16 MiB file before the cut.
    let writer = async {
        let mut log = Vec::new();
        let end = Instant::now() + Duration::from_secs(3 * TTL + 2);
        let mut pace = tokio::time::interval(Duration::from_millis(1));
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0u64;
        while Instant::now() < end && n < 20_000 {
            pace.tick().await;
            let mut data = vec![0u8; 512];
            data[..8].copy_from_slice(&(n + 1).to_be_bytes());
            let r = w.s.write16(0, LOG_LBA + n, data, 512, false).await;
            let good = matches!(&r, Ok(r) if r.status == status::GOOD);
            if let Ok(r) = &r {
                if !good {
                    let s = r.sense.expect("sense of a refused write");
                    assert_eq!(
                        (s.key, s.asc.asc, s.asc.ascq),
                        (sense::key::NOT_READY, 0x04, 0x0A),
                        "{}",
                        show(r)
                    );
                }
            }
            log.push((n, Instant::now(), good));
            n += 1;
            if !good {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        log
    };
    let cut = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        etcd.pause(2);
        let t0 = Instant::now();
        // The others declare gw3 Unavailable: O is told, RTPG through gw1 shows it.
        let (_, told) = until_unavailable(&o, 3, t0, Duration::from_secs(4 * TTL)).await;
        assert!(told, "O was not told of gw3's group change");
        let declared = Instant::now();
        // Cut off, gw3 reports its own group Transitioning.
        let r =
            w.s.report_target_port_groups(0, true)
                .await
                .expect("RTPG through gw3");
        let g3 = r
            .groups
            .iter()
            .find(|g| g.group_id == 3)
            .map(|g| g.state.code());
        assert_eq!(
            g3,
            Some(0x0F),
            "gw3's own group, seen through gw3: {:?}",
            r.groups
        );
        (t0, declared)
    };
    let (log, (t0, declared)) = tokio::join!(writer, cut);
    etcd.resume(2);
    let first_refused = log
        .iter()
        .find(|e| !e.2 && e.1 > t0)
        .map(|e| e.1)
        .unwrap_or_else(|| {
            panic!(
                "gw3 never stopped writing: {} writes, the last {:?} after the cut",
                log.len(),
                log.last().map(|e| e.1.saturating_duration_since(t0))
            )
        });
    let last_good = log
        .iter()
        .filter(|e| e.2)
        .map(|e| e.1)
        .max()
        .expect("some writes");
    println!(
        "cut off at 0; gw3 refused writes from {:?}; the others declared it Unavailable at {:?}; its last GOOD write at {:?}; {} writes tried",
        first_refused - t0,
        declared - t0,
        last_good.saturating_duration_since(t0),
        log.len()
    );
    assert!(
        first_refused < declared,
        "gw3 still wrote when declared Unavailable"
    );
    assert!(
        first_refused - t0 < Duration::from_secs(TTL),
        "fenced only after the TTL"
    );
    let good_after = log.iter().filter(|e| e.2 && e.1 >= declared).count();
    // Once fenced, nothing gw3 answered later may be GOOD while the others hold it Unavailable
    // (it may serve again after it re-joined: stop looking at its re-join).
    let rejoin = log
        .iter()
        .filter(|e| e.2 && e.1 > declared)
        .map(|e| e.1)
        .min();
    println!(
        "GOOD writes of gw3 after it was declared Unavailable (after re-joining): {good_after}"
    );
    // The log on the medium, read through gw1: every write answered GOOD is there, and no
    // write refused before gw3 re-joined landed.
    for (n, at, good) in &log {
        // gw3 re-joins meanwhile (its group Active/Optimized again: a unit attention).
        let r = past_ua(|| async { o.s.read16(0, LOG_LBA + n, 1, 512).await.expect("READ") }).await;
        assert_eq!(
            r.status,
            status::GOOD,
            "READ of log block {n}: {}",
            show(&r)
        );
        let got = u64::from_be_bytes(r.data_in[..8].try_into().expect("8 bytes"));
        if *good {
            assert_eq!(got, n + 1, "GOOD write {n} is not on the medium");
        } else if rejoin.is_none_or(|t| *at < t) {
            assert_eq!(got, 0, "write {n}, refused at {:?}, landed", *at - t0);
        }
    }
    // Back in touch with etcd, gw3 re-syncs and serves again.
    let back = Instant::now();
    loop {
        let r =
            w.s.write16(0, 0, vec![7u8; 512], 512, false)
                .await
                .expect("WRITE");
        if r.status == status::GOOD {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "gw3 never served again: {}",
            show(&r)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "gw3 served again {:?} after etcd answered it again",
        back.elapsed()
    );
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_gateway_finds_itself_fenced_before_running_what_it_had_queued() {
    if !etcd_or_skip() {
        return;
    }
    let etcd = EtcdCluster::start(4280);
    let file = shared_file();
    let gw1 = gateway(1, &etcd, file.path());
    let gw3 = gateway(3, &etcd, file.path());
    for g in [&gw1, &gw3] {
        wait_synced(g);
    }
    let o = nexus(&gw1, "O@gw1", "o", ISID).await;
    let w = nexus(&gw3, "W@gw3", "w", ISID).await;
    wait_known(&o, &[&gw1, &gw3]).await;
    ok(&w.write(10).await, "W WRITE before the stop");
    stop_process(gw3.d.pid());
    let stopped = Instant::now();
    // A write sent to the stopped gateway waits in its socket.
    let queued = tokio::spawn(async move {
        let mut data = vec![0u8; 512];
        data[..8].copy_from_slice(&0xDEAD_u64.to_be_bytes());
        let r = w.s.write16(0, 20, data, 512, false).await;
        (w, r)
    });
    // The others declare gw3 Unavailable (its lease ended); then it runs again.
    let (took, _) = until_unavailable(&o, 3, stopped, Duration::from_secs(4 * TTL)).await;
    println!("stopped gw3 declared Unavailable after {took:?}");
    signal(gw3.d.pid(), "-CONT");
    let (_w, r) = queued.await.expect("the queued write");
    let r = r.expect("an answer to the queued write");
    let s = r.sense.unwrap_or_else(|| {
        panic!(
            "the queued write ran: {}\n--- gw3's log ---\n{}",
            show(&r),
            gw3.d.log_tail(40)
        )
    });
    // Refused by the fence (NOT READY 04/0A), or by the unit attention that tells this nexus
    // its group changed, if gw3 learned of the change before it read the write (a unit
    // attention is reported before NOT READY, SAM-5 5.14): either way the write was not run,
    // which the READ below shows.
    let sk = (s.key, s.asc.asc, s.asc.ascq);
    assert!(
        sk == (sense::key::NOT_READY, 0x04, 0x0A) || sk == (sense::key::UNIT_ATTENTION, 0x2A, 0x06),
        "{}",
        show(&r)
    );
    let r = past_ua(|| async { o.s.read16(0, 20, 1, 512).await.expect("READ") }).await;
    assert_eq!(r.status, status::GOOD, "{}", show(&r));
    assert_eq!(
        &r.data_in[..8],
        &[0u8; 8],
        "the write queued while gw3 was stopped landed"
    );
}

/// PREEMPT AND ABORT through gw1 of a nexus on gw2 whose WRITE waits for its Data-Out there:
/// gw2 aborts it (TASK ABORTED, TAS = 1) before gw1 answers GOOD, and it writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preempt_and_abort_aborts_the_tasks_on_the_gateway_that_runs_them() {
    use ironlun_initiator::scsi::cdb;
    use ironlun_initiator::session::DataOutPolicy;
    use ironlun_initiator::{Bytes, CommandOptions};
    if !etcd_or_skip() {
        return;
    }
    let etcd = EtcdCluster::start(4300);
    let file = shared_file();
    let gw1 = gateway(1, &etcd, file.path());
    let gw2 = gateway(2, &etcd, file.path());
    for g in [&gw1, &gw2] {
        wait_synced(g);
    }
    let a = nexus(&gw1, "A@gw1", "a", ISID).await;
    let name = iqn("b");
    let cfg = LoginConfig::normal(&name, TARGET)
        .isid(ISID)
        .offer("ImmediateData", "No")
        .offer("InitialR2T", "Yes");
    let b = Nexus {
        s: login_at(gw2.addr, cfg, 0).await,
        label: "B@gw2".into(),
        name,
        isid: ISID,
        rtpi: gw2.rtpi,
    };
    let flags = ironlun_initiator::pr::RegisterFlags::default();
    let (ka, kb) = (0xA1u64, 0xB2u64);
    ok(
        &run("A REGISTER", a.s.pr_register(0, 0, ka, &flags)).await,
        "A REGISTER",
    );
    ok(
        &run("B REGISTER", b.s.pr_register(0, 0, kb, &flags)).await,
        "B REGISTER",
    );
    let wero = PrType::WriteExclusiveRegistrantsOnly;
    ok(
        &run("A RESERVE", a.s.pr_reserve(0, ka, wero)).await,
        "A RESERVE",
    );
    // B's write waits on gw2 for the data we withhold.
    const LEN: usize = 64 * 1024;
    let before = b.s.stats().r2ts;
    let opts = CommandOptions {
        data_out: DataOutPolicy::Withhold,
        ..CommandOptions::default()
    };
    let held =
        b.s.start_command(
            0,
            &cdb::write16(1000, (LEN / 512) as u32, false),
            Some(Bytes::from(vec![0x5A; LEN])),
            0,
            opts,
        )
        .await
        .expect("start the held write");
    support::guard("R2T", b.s.until(|st| st.r2ts > before))
        .await
        .expect("R2T");
    let s = a.s.clone();
    let mut paa = tokio::spawn(async move { s.pr_preempt_and_abort(0, ka, kb, wero).await });
    // GOOD only after gw2 aborted B's task: not while it still waits for its data.
    let early = tokio::time::timeout(Duration::from_millis(700), &mut paa).await;
    let _ = b.s.release_data(held.itt);
    let r = match early {
        Ok(r) => r,
        Err(_) => support::guard("PREEMPT AND ABORT", paa).await,
    }
    .expect("PAA task")
    .expect("PAA");
    ok(&r, "A PREEMPT AND ABORT B (across gateways)");
    let w = support::guard("B's held write", held.wait())
        .await
        .expect("B's held write ends");
    assert_eq!(
        w.status,
        status::TASK_ABORTED,
        "B's held write on gw2: {}",
        show(&w)
    );
    let r = past_ua(|| async {
        a.s.read16(0, 1000, (LEN / 512) as u32, 512)
            .await
            .expect("READ")
    })
    .await;
    assert!(
        r.data_in.iter().all(|b| *b == 0),
        "the aborted write landed"
    );
    expect_ua(&b, 0x2A, 0x05).await;
    conflict(&b.write(50).await, "B (preempted) writes under WE-RO");
}

async fn reserve(n: &Nexus) -> Result<ironlun_initiator::CommandResult, ironlun_initiator::Error> {
    n.s.command(
        0,
        &[0x16, 0, 0, 0, 0, 0],
        None,
        0,
        ironlun_initiator::iscsi::pdu::task_attr::SIMPLE,
    )
    .await
}

async fn release(n: &Nexus) -> Result<ironlun_initiator::CommandResult, ironlun_initiator::Error> {
    n.s.command(
        0,
        &[0x17, 0, 0, 0, 0, 0],
        None,
        0,
        ironlun_initiator::iscsi::pdu::task_attr::SIMPLE,
    )
    .await
}

/// SPC-2 RESERVE(6) / RELEASE(6) on a clustered LU: one holder cluster-wide; RELEASE, LOGICAL
/// UNIT RESET on another gateway and the holder's gateway dying end it everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_spc2_reservation_holds_across_gateways() {
    if !etcd_or_skip() {
        return;
    }
    let etcd = EtcdCluster::start(4320);
    let file = shared_file();
    let gw1 = gateway(1, &etcd, file.path());
    let mut gw2 = gateway(2, &etcd, file.path());
    let gw3 = gateway(3, &etcd, file.path());
    for g in [&gw1, &gw2, &gw3] {
        wait_synced(g);
    }
    let a = nexus(&gw1, "A@gw1", "a", ISID).await;
    let b = nexus(&gw2, "B@gw2", "b", ISID).await;
    let c = nexus(&gw3, "C@gw3", "c", ISID).await;
    ok(&run("A RESERVE(6)", reserve(&a)).await, "A RESERVE(6)");
    conflict(&b.write(1).await, "B WRITE under A's SPC-2 reservation");
    conflict(&run("B RESERVE(6)", reserve(&b)).await, "B RESERVE(6)");
    ok(&a.write(1).await, "A WRITE (holder)");
    ok(
        &run("B RELEASE(6)", release(&b)).await,
        "B RELEASE(6) (not the holder)",
    );
    conflict(&c.write(1).await, "C WRITE: B's RELEASE changed nothing");
    ok(&run("A RELEASE(6)", release(&a)).await, "A RELEASE(6)");
    ok(&b.write(2).await, "B WRITE after A released");
    // A LOGICAL UNIT RESET through gw1 ends B's reservation (made through gw2) everywhere.
    ok(&run("B RESERVE(6)", reserve(&b)).await, "B RESERVE(6)");
    conflict(&c.write(3).await, "C WRITE under B's reservation");
    let tmf = a.s.lun_reset(0).await.expect("LUN RESET");
    assert_eq!(tmf, 0, "LOGICAL UNIT RESET response");
    // The reset is the LU's: the nexuses of the other gateways are told too (SAM-5 §6.3.3).
    expect_ua(&b, 0x29, 0x03).await;
    expect_ua(&c, 0x29, 0x03).await;
    ok(&c.write(3).await, "C WRITE after the LU reset on gw1");
    // The holder's gateway dies: its I_T nexus is gone, and so is the reservation.
    ok(
        &run("B RESERVE(6)", reserve(&b)).await,
        "B RESERVE(6) again",
    );
    conflict(&c.write(4).await, "C WRITE under B's reservation");
    gw2.d.kill9();
    let t = Instant::now();
    loop {
        let r = c.write(4).await;
        if r.status == status::GOOD {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(4 * TTL),
            "still reserved: {}",
            show(&r)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "B's SPC-2 reservation released {:?} after gw2 died",
        t.elapsed()
    );
}

/// The cluster configuration in etcd: a new gateway started with nothing but `--cluster` gets
/// its part (the clustered LU, its groups, the TPG exporting it) from `ironlun cluster
/// config-set` run on another machine, applies it, joins the LU and sees its PR state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_takes_its_part_of_the_cluster_configuration_from_etcd() {
    if !etcd_or_skip() {
        return;
    }
    let etcd = EtcdCluster::start(4200);
    let file = shared_file();
    let gw1 = gateway(1, &etcd, file.path());
    wait_synced(&gw1);
    let a = nexus(&gw1, "A@gw1", "a", ISID).await;
    let flags = ironlun_initiator::pr::RegisterFlags::default();
    ok(
        &run("A REGISTER", a.s.pr_register(0, 0, 0xA, &flags)).await,
        "A REGISTER",
    );
    // gw2: nothing but its membership.
    let ttl = TTL.to_string();
    let gw2 = Daemon::start_with(
        etcd.spare_ports(),
        DaemonEnv::args(&[
            "--cluster",
            &etcd.endpoints(),
            "--node",
            "gw2",
            "--cluster-ttl",
            &ttl,
        ]),
    );
    // Its part, made from gw1's: the same storage object and groups, its own TPG.
    let gw1_cfg: serde_json::Value =
        serde_json::from_str(&gw1.d.saved_config()).expect("config.json");
    let so: Vec<serde_json::Value> = gw1_cfg["storage_objects"]
        .as_array()
        .expect("storage objects")
        .iter()
        .filter(|o| o["name"] == "shared")
        .cloned()
        .collect();
    let mut target = gw1_cfg["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["wwn"] == TARGET)
        .cloned()
        .expect("the clustered target");
    let port = etcd
        .spare_ports()
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port");
    let tpg = &mut target["tpgs"][0];
    tpg["tag"] = 12.into();
    tpg["rtpi"] = 12.into();
    tpg["portals"] = serde_json::json!([{ "ip_address": "127.0.0.1", "port": port }]);
    tpg["luns"][0]["alua_tg_pt_gp_name"] = "gw2".into();
    let frag = serde_json::json!({ "version": 1, "storage_objects": so, "targets": [target] });
    let frag_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(frag_file.path(), frag.to_string()).expect("write the fragment");
    let (code, _, err) = cluster_cli(&etcd, &["config-set", "gw2", "/nonexistent.json"]);
    assert_eq!(code, 2, "a missing file is refused: {err}");
    let path = frag_file.path().to_str().expect("utf-8 path");
    let (code, out, err) = cluster_cli(&etcd, &["config-set", "gw2", path]);
    assert_eq!(code, 0, "{out}{err}");
    let g2 = Gateway {
        d: gw2,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        rtpi: 12,
        group: 2,
    };
    wait_synced(&g2);
    let (_, out, _) = cluster_cli(&etcd, &["status"]);
    assert!(
        out.contains("configuration of gw2: 2 object(s); applied"),
        "{out}"
    );
    let (code, shown, _) = cluster_cli(&etcd, &["config-show", "gw2"]);
    assert_eq!(code, 0);
    assert!(shown.contains("\"rtpi\": 12"), "{shown}");
    let b = nexus(&g2, "B@gw2", "b", ISID).await;
    let keys = b.s.pr_read_keys(0).await.expect("READ KEYS").keys;
    assert_eq!(
        keys,
        vec![0xA],
        "gw2, configured from etcd, sees A's registration"
    );
    conflict(
        &run("B REGISTER 0xA", b.s.pr_register(0, 0xA, 0xB, &flags)).await,
        "B REGISTER with a key it does not have",
    );
    ok(
        &run("B REGISTER", b.s.pr_register(0, 0, 0xB, &flags)).await,
        "B REGISTER",
    );
    let keys = a.s.pr_read_keys(0).await.expect("READ KEYS").keys;
    assert_eq!(
        keys,
        vec![0xA, 0xB],
        "gw1 sees B's registration made through gw2"
    );
    // A fragment the gateway cannot apply changes nothing there; `status` says why.
    let mut bad = frag.clone();
    bad["targets"][0]["tpgs"][0]["luns"][0]["storage_object"] = "core/fileio_9/nothere".into();
    std::fs::write(frag_file.path(), bad.to_string()).expect("write the fragment");
    let (code, out, err) = cluster_cli(&etcd, &["config-set", "gw2", path]);
    assert_eq!(code, 0, "{out}{err}");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out, _) = cluster_cli(&etcd, &["status"]);
        if out.contains("configuration of gw2: 2 object(s); refused") {
            assert!(out.contains("nothere"), "{out}");
            break;
        }
        assert!(Instant::now() < until, "never refused: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(&b.write(1).await, "B WRITE: gw2 still serves as before");
    // A port whose RTPI another gateway has: gw2 stops serving the LU until it is fixed.
    let mut clash = frag.clone();
    clash["targets"][0]["tpgs"][0]["rtpi"] = 11.into();
    std::fs::write(frag_file.path(), clash.to_string()).expect("write the fragment");
    let (code, out, err) = cluster_cli(&etcd, &["config-set", "gw2", path]);
    assert_eq!(code, 0, "{out}{err}");
    let until = Instant::now() + Duration::from_secs(10);
    while !g2.d.log().contains("clashes with gateway gw1's (rtpi 11") {
        assert!(
            Instant::now() < until,
            "no clash seen: {}",
            g2.d.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // (The TPG's RTPI changed: a new target port; log in again.)
    let cfg = LoginConfig::normal(&iqn("b2"), TARGET).isid(ISID);
    let s2 = support::guard("login", ironlun_initiator::Session::login(g2.addr, &cfg))
        .await
        .expect("login through the clashing port");
    let r = past_ua(|| run("TUR", s2.test_unit_ready(0))).await;
    assert_eq!(
        r.sense.map(|s| (s.key, s.asc.asc, s.asc.ascq)),
        Some((sense::key::NOT_READY, 0x04, 0x0A)),
        "TEST UNIT READY through a clashing port: {}",
        show(&r)
    );
    std::fs::write(frag_file.path(), frag.to_string()).expect("write the fragment");
    let (code, out, err) = cluster_cli(&etcd, &["config-set", "gw2", path]);
    assert_eq!(code, 0, "{out}{err}");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let s3 = support::guard("login", ironlun_initiator::Session::login(g2.addr, &cfg)).await;
        if let Ok(s3) = s3 {
            let r = past_ua(|| run("TUR", s3.test_unit_ready(0))).await;
            if r.status == status::GOOD {
                break;
            }
        }
        assert!(Instant::now() < until, "gw2 never served again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // gw2 kept it in its own config.json: it restarts with it.
    let saved = g2.d.saved_config();
    assert!(
        saved.contains("tpgt") || saved.contains("\"tag\": 12"),
        "{saved}"
    );
}
