//! End to end: asymmetric logical unit access (SPC-4 §5.16; REPORT TARGET PORT GROUPS §6.36,
//! SET TARGET PORT GROUPS §6.44, Device Identification VPD §7.8.6) driven through real iSCSI.
//!
//! The rig is the scenario of LIO's ALUA announcement: one RAM disk exported by two targets,
//! the default target (`tpgt_1`, "west") and `iqn.2026-11.org.ironlun:east` (`tpgt_1`, its own
//! portal), LUN 0 each; target port groups `alua_west` (id 1) and `alua_east` (id 2) on the
//! device, each target's LUN in one of them, access type implicit and explicit.
//!
//! Cast: host `W` (initiator "host" through west), `E` (the same initiator through east: a
//! second I_T nexus of the same LU) and observer `O` (another initiator through west). Every
//! command goes through [`Nexus::cmd`], which records each UNIT ATTENTION it meets and
//! re-issues the command, so a unit attention is counted exactly once whichever command
//! happens to receive it; [`Nexus::drain`] collects the rest with REQUEST SENSE (allowed in
//! every access state).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::ops::Range;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ironlun_initiator::alua::{
    rtpg_cdb, status_code, stpg_cdb, stpg_params, AccessState, Association, DeviceIdentification,
    PathChooser, Rtpg, RtpgFormat, StpgDescriptor, Tpgs,
};
use ironlun_initiator::iscsi::pdu::task_attr;
use ironlun_initiator::pr::{in_sa, prin_cdb};
use ironlun_initiator::scsi::cdb;
use ironlun_initiator::{Bytes, CommandOptions, CommandResult, LoginConfig, Session};
use ironlun_scsi::{status, Sense};
use support::*;

/// Daemon portals (west) of this binary; east portals come from [`PORTS2`].
const PORTS: Range<u16> = 3640..3665;
const PORTS2: Range<u16> = 3665..3690;

const EAST: &str = "iqn.2026-11.org.ironlun:east";
const UA: u8 = 0x06;
const NOT_READY: u8 = 0x02;
const ALUA_CHANGED: (u8, u8) = (0x2A, 0x06);
const TRANSITIONING: (u8, u8, u8) = (NOT_READY, 0x04, 0x0A);
const STANDBY: (u8, u8, u8) = (NOT_READY, 0x04, 0x0B);
/// LIO's default supported states of a new group: T, O, U, S, AN, AO (no LBD).
const DEFAULT_SUPPORTED: u8 = 0xCF;

struct Rig {
    d: Daemon,
    east_tpg: String,
    east_addr: SocketAddr,
    rtpi_west: u16,
    rtpi_east: u16,
}

fn group_path(g: &str) -> String {
    format!("{RAMDISK}/alua/{g}")
}

/// The daemon with both targets, both groups, each LUN in its group.
fn rig() -> Rig {
    let d = Daemon::start_in(PORTS);
    let (east_tpg, east_addr) = d.add_target(EAST, RAMDISK, PORTS2);
    d.alua_west_east(TPG, &east_tpg);
    for g in ["alua_west", "alua_east"] {
        // Explicit and implicit: STPG and the admin commands both allowed.
        d.cli(&["set", &format!("{}/alua_access_type", group_path(g)), "3"]);
    }
    let rtpi_west = d.rtpi(TPG);
    let rtpi_east = d.rtpi(&east_tpg);
    assert_ne!(rtpi_west, rtpi_east);
    Rig {
        d,
        east_tpg,
        east_addr,
        rtpi_west,
        rtpi_east,
    }
}

/// One I_T nexus and the unit attentions it has been given since the last [`Nexus::take_uas`].
struct Nexus {
    s: Session,
    label: &'static str,
    uas: Vec<(u8, u8)>,
    /// Those collected right after login (power on / nexus loss).
    login_uas: Vec<(u8, u8)>,
}

impl Nexus {
    async fn login(addr: SocketAddr, target: &str, who: &str, label: &'static str) -> Nexus {
        let cfg = LoginConfig::normal(&iqn(who), target);
        let s = guard("login", Session::login(addr, &cfg))
            .await
            .unwrap_or_else(|e| panic!("{label}: login failed: {e}"));
        let mut n = Nexus {
            s,
            label,
            uas: Vec::new(),
            login_uas: Vec::new(),
        };
        n.drain().await;
        n.login_uas = n.take_uas();
        n
    }

    /// A command on LUN 0; a UNIT ATTENTION is recorded and the command issued again.
    async fn cmd(&mut self, cdb: &[u8], data: Option<Vec<u8>>, expected_in: u32) -> CommandResult {
        for _ in 0..8 {
            let r = guard(
                self.label,
                self.s
                    .command(0, cdb, data.clone(), expected_in, task_attr::SIMPLE),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.label));
            match r.sense_triple() {
                Some((UA, asc, ascq)) if r.status == status::CHECK_CONDITION => {
                    self.uas.push((asc, ascq));
                }
                _ => return r,
            }
        }
        panic!("{}: unit attentions never ended", self.label);
    }

    /// Collect pending unit attentions with REQUEST SENSE until it reports something else.
    async fn drain(&mut self) {
        for _ in 0..8 {
            let r = self.cmd(&cdb::request_sense(false, 252), None, 252).await;
            let d = good(Ok(r), &format!("{}: REQUEST SENSE", self.label));
            match Sense::parse(&d) {
                Ok(s) if s.key == UA => self.uas.push((s.asc.asc, s.asc.ascq)),
                _ => return,
            }
        }
        panic!(
            "{}: REQUEST SENSE kept reporting unit attentions",
            self.label
        );
    }

    fn take_uas(&mut self) -> Vec<(u8, u8)> {
        std::mem::take(&mut self.uas)
    }

    /// Drain, then require exactly `n` ASYMMETRIC ACCESS STATE CHANGED and nothing else.
    async fn expect_alua_uas(&mut self, n: usize, after: &str) {
        self.drain().await;
        let got = self.take_uas();
        assert_eq!(
            got,
            vec![ALUA_CHANGED; n],
            "{}: unit attentions after {after}",
            self.label
        );
    }

    async fn rtpg(&mut self, extended: bool) -> (Rtpg, Bytes) {
        let r = self.cmd(&rtpg_cdb(extended, 1024), None, 1024).await;
        let d = good(Ok(r), &format!("{}: RTPG", self.label));
        let p = Rtpg::parse(&d, extended)
            .unwrap_or_else(|e| panic!("{}: RTPG data {d:02x?}: {e}", self.label));
        assert!(!p.truncated, "{}: RTPG truncated at 1024", self.label);
        (p, d)
    }

    async fn vpd83(&mut self) -> (DeviceIdentification, Bytes) {
        let r = self.cmd(&cdb::inquiry(true, 0x83, 1024), None, 1024).await;
        let d = good(Ok(r), &format!("{}: INQUIRY VPD 0x83", self.label));
        let p = DeviceIdentification::parse(&d)
            .unwrap_or_else(|e| panic!("{}: VPD 0x83 {d:02x?}: {e}", self.label));
        (p, d)
    }

    async fn read(&mut self) -> CommandResult {
        self.cmd(&cdb::read16(0, 1, false), None, BLOCK).await
    }

    async fn write(&mut self, seed: u32) -> CommandResult {
        let data = pattern(seed, BLOCK as usize);
        self.cmd(&cdb::write16(1, 1, false), Some(data), 0).await
    }

    async fn stpg(&mut self, descs: &[StpgDescriptor]) -> CommandResult {
        let p = stpg_params(descs);
        let len = u32::try_from(p.len()).unwrap();
        self.cmd(&stpg_cdb(len), Some(p), 0).await
    }

    /// RTPG (extended) until group `id` is in `state`; fails after 10 s.
    async fn wait_state(&mut self, id: u16, state: AccessState) -> Rtpg {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (r, _) = self.rtpg(true).await;
            if r.group(id).map(|g| g.state) == Some(state) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{}: group {id} never reached {state:?}: {r:?}",
                self.label
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn sense_of(r: &CommandResult) -> Option<(u8, u8, u8)> {
    (r.status == status::CHECK_CONDITION)
        .then(|| r.sense_triple())
        .flatten()
}

fn assert_good(r: &CommandResult, what: &str) {
    assert_eq!(r.status, status::GOOD, "{what}: {r:?}");
}

/// The `ironlun alua` admin command, which must succeed.
fn alua_admin(d: &Daemon, args: &[&str]) {
    let mut v = vec!["alua"];
    v.extend_from_slice(args);
    d.cli(&v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lio_announcement_scenario() {
    let rig = rig();
    let d = &rig.d;
    let mut w = Nexus::login(d.addr(), TARGET, "host", "W").await;
    let mut e = Nexus::login(rig.east_addr, EAST, "host", "E").await;
    let mut o = Nexus::login(d.addr(), TARGET, "observer", "O").await;

    // What a multipath host reads first: TPGS and the VPD 0x83 designators of each path.
    for n in [&mut w, &mut e] {
        let inq = good(
            Ok(n.cmd(&cdb::inquiry(false, 0, 96), None, 96).await),
            "INQUIRY",
        );
        assert_eq!(
            Tpgs::from_inquiry(&inq).unwrap(),
            Tpgs {
                implicit: true,
                explicit: true
            },
            "{}: TPGS of access type 3",
            n.label
        );
    }
    let (idw, _) = w.vpd83().await;
    let (ide, _) = e.vpd83().await;
    assert_eq!(idw.relative_target_port(), Some(rig.rtpi_west));
    assert_eq!(ide.relative_target_port(), Some(rig.rtpi_east));
    assert_eq!(idw.target_port_group(), Some(WEST_ID));
    assert_eq!(ide.target_port_group(), Some(EAST_ID));
    assert_eq!(idw.lu_group(), Some(0), "default_lu_gp");
    assert_eq!(ide.lu_group(), Some(0), "default_lu_gp");
    assert!(idw.naa().is_some());
    assert_eq!(idw.naa(), ide.naa(), "one logical unit behind both ports");
    assert_eq!(
        idw.scsi_name(Association::TargetPort).as_deref(),
        Some(&*format!("{TARGET},t,0x0001"))
    );
    assert_eq!(
        ide.scsi_name(Association::TargetPort).as_deref(),
        Some(&*format!("{EAST},t,0x0001"))
    );
    assert_eq!(
        ide.scsi_name(Association::TargetDevice).as_deref(),
        Some(EAST)
    );

    // Both groups Active/Optimized, nothing altered yet; both formats list the same groups.
    let (r, _) = w.rtpg(true).await;
    assert_eq!(
        r.format,
        RtpgFormat::Extended {
            implicit_transition_secs: 0
        }
    );
    let (lo, _) = e.rtpg(false).await;
    assert_eq!(lo.format, RtpgFormat::LengthOnly);
    assert_eq!(lo.groups, r.groups);
    for (id, rtpi) in [(WEST_ID, rig.rtpi_west), (EAST_ID, rig.rtpi_east)] {
        let g = r.group(id).unwrap_or_else(|| panic!("group {id} in {r:?}"));
        assert_eq!(g.state, AccessState::ActiveOptimized);
        assert_eq!((g.pref, g.status), (false, status_code::NONE));
        assert_eq!(g.ports, vec![rtpi]);
        assert_eq!(g.supported.to_byte(), DEFAULT_SUPPORTED, "group {id}");
    }

    // 1. STPG through west: west Active/Non-optimized.
    let r = w
        .stpg(&[StpgDescriptor::Primary {
            group: WEST_ID,
            state: AccessState::ActiveNonOptimized,
        }])
        .await;
    assert_good(&r, "STPG west ANO");
    w.expect_alua_uas(0, "its own STPG").await;
    e.expect_alua_uas(1, "STPG through W").await;
    o.expect_alua_uas(1, "STPG through W (same port, other nexus)")
        .await;
    let (r, _) = e.rtpg(true).await;
    let west = r.group(WEST_ID).unwrap();
    assert_eq!(
        (west.state, west.status),
        (
            AccessState::ActiveNonOptimized,
            status_code::ALTERED_BY_STPG
        )
    );
    assert_eq!(
        r.group(EAST_ID).unwrap().state,
        AccessState::ActiveOptimized
    );
    assert_good(&w.read().await, "READ through ANO west");

    // The path chooser picks east (AO) over west (ANO).
    let mut chooser = PathChooser::new(0, vec![w.s.clone(), e.s.clone()]);
    assert_eq!(chooser.best().await, Some(1));
    let st = chooser.states();
    assert_eq!(
        st[0].map(|p| (p.rtpi, p.group_id, p.state)),
        Some((rig.rtpi_west, WEST_ID, AccessState::ActiveNonOptimized))
    );
    assert_eq!(
        st[1].map(|p| (p.rtpi, p.group_id, p.state)),
        Some((rig.rtpi_east, EAST_ID, AccessState::ActiveOptimized))
    );

    // 2. Admin (implicit) change: east Standby.
    alua_admin(d, &["set-state", RAMDISK, "alua_east", "s"]);
    w.wait_state(EAST_ID, AccessState::Standby).await;
    for n in [&mut w, &mut e, &mut o] {
        n.expect_alua_uas(1, "set-state alua_east s").await;
    }
    let (r, _) = e.rtpg(true).await;
    let east = r.group(EAST_ID).unwrap();
    assert_eq!(
        (east.state, east.status),
        (AccessState::Standby, status_code::ALTERED_BY_IMPLICIT)
    );
    let west = r.group(WEST_ID).unwrap();
    assert_eq!(
        (west.state, west.status),
        (
            AccessState::ActiveNonOptimized,
            status_code::ALTERED_BY_STPG
        )
    );
    let read = e.read().await;
    assert_eq!(sense_of(&read), Some(STANDBY), "READ through standby east");
    assert_eq!(
        sense_of(&e.write(1).await),
        Some(STANDBY),
        "WRITE through standby east"
    );
    // What Standby still allows.
    assert_good(
        &e.cmd(&cdb::inquiry(false, 0, 96), None, 96).await,
        "INQUIRY",
    );
    e.vpd83().await;
    assert_good(
        &e.cmd(&cdb::report_luns(0, 1024), None, 1024).await,
        "REPORT LUNS",
    );
    assert_good(
        &e.cmd(&cdb::read_capacity16(32), None, 32).await,
        "READ CAPACITY(16)",
    );
    assert_good(
        &e.cmd(&prin_cdb(in_sa::READ_KEYS, 1024), None, 1024).await,
        "PR IN READ KEYS",
    );
    assert_good(
        &e.cmd(&cdb::mode_sense6(false, 0, 0x3f, 0, 252), None, 252)
            .await,
        "MODE SENSE(6)",
    );
    assert_good(
        &e.cmd(&cdb::mode_sense10(false, 0, 0x3f, 0, 1024), None, 1024)
            .await,
        "MODE SENSE(10) (LIO's quirk fixed)",
    );
    e.rtpg(false).await;
    assert!(e.take_uas().is_empty());
    // The chooser, told of the NOT READY, re-reads and is left with west only.
    assert!(chooser.observe(&read));
    assert_eq!(chooser.best().await, Some(0));
    assert_eq!(
        chooser.states()[1].map(|p| p.state),
        Some(AccessState::Standby)
    );

    // 3. East back to Active/Optimized, then preferred.
    alua_admin(d, &["set-state", RAMDISK, "alua_east", "ao"]);
    w.wait_state(EAST_ID, AccessState::ActiveOptimized).await;
    for n in [&mut w, &mut e, &mut o] {
        n.expect_alua_uas(1, "set-state alua_east ao").await;
    }
    assert_good(&e.read().await, "READ through east AO again");
    alua_admin(d, &["set-pref", RAMDISK, "alua_east", "on"]);
    let (r, _) = e.rtpg(true).await;
    let east = r.group(EAST_ID).unwrap();
    assert_eq!(
        (east.pref, east.state, east.status),
        (
            true,
            AccessState::ActiveOptimized,
            status_code::ALTERED_BY_IMPLICIT
        )
    );
    assert!(!r.group(WEST_ID).unwrap().pref);
    assert_eq!(
        d.cli(&["get", &format!("{}/preferred", group_path("alua_east"))])
            .trim(),
        "1"
    );
    // Whether a PREF change raises a unit attention is not specified: just collect them.
    for n in [&mut w, &mut e, &mut o] {
        n.drain().await;
        n.take_uas();
    }
    chooser.refresh().await;
    assert_eq!(chooser.best().await, Some(1));
    assert_eq!(chooser.states()[1].map(|p| p.pref), Some(true));

    // 4. STPG through the other path: east's nexus is exempt, west's get it.
    let r = e
        .stpg(&[StpgDescriptor::Primary {
            group: WEST_ID,
            state: AccessState::ActiveOptimized,
        }])
        .await;
    assert_good(&r, "STPG west AO through east");
    e.expect_alua_uas(0, "its own STPG").await;
    w.expect_alua_uas(1, "STPG through E").await;
    o.expect_alua_uas(1, "STPG through E").await;
    let (r, _) = o.rtpg(true).await;
    let west = r.group(WEST_ID).unwrap();
    assert_eq!(
        (west.state, west.status),
        (AccessState::ActiveOptimized, status_code::ALTERED_BY_STPG)
    );

    // `alua show` lists both groups with their ids.
    let show = d.cli(&["alua", "show", RAMDISK]);
    for g in ["alua_west", "alua_east", "default_tg_pt_gp"] {
        assert!(show.contains(g), "alua show without {g}:\n{show}");
    }
}

/// Run the `ironlun alua set-state` admin command without waiting for it.
fn spawn_set_state(d: &Daemon, group: &str, state: &str) -> std::process::Child {
    Command::new(BIN)
        .arg("--state-dir")
        .arg(d.state_dir())
        .args(["alua", "set-state", RAMDISK, group, state])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ironlun alua set-state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitioning_lasts_trans_delay_msecs() {
    const DELAY: Duration = Duration::from_millis(2000);
    let rig = rig();
    let d = &rig.d;
    d.cli(&[
        "set",
        &format!("{}/trans_delay_msecs", group_path("alua_east")),
        "2000",
    ]);
    let mut w = Nexus::login(d.addr(), TARGET, "host", "W").await;
    let mut e = Nexus::login(rig.east_addr, EAST, "host", "E").await;

    // Implicit: the admin command.
    let start = Instant::now();
    let child = spawn_set_state(d, "alua_east", "ano");
    w.wait_state(EAST_ID, AccessState::Transitioning).await;
    let read = e.read().await;
    let seen = start.elapsed();
    assert!(
        seen < DELAY,
        "test too slow to look inside the delay ({seen:?})"
    );
    assert_eq!(
        sense_of(&read),
        Some(TRANSITIONING),
        "READ while transitioning"
    );
    // RTPG stays allowed while transitioning.
    let (r, _) = e.rtpg(false).await;
    assert_eq!(
        r.group(EAST_ID).map(|g| g.state),
        Some(AccessState::Transitioning)
    );
    let st = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        st.status.success(),
        "alua set-state: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let r = e.wait_state(EAST_ID, AccessState::ActiveNonOptimized).await;
    assert!(
        start.elapsed() >= DELAY - Duration::from_millis(100),
        "final state after {:?}, before trans_delay_msecs",
        start.elapsed()
    );
    assert_eq!(
        r.group(EAST_ID).unwrap().status,
        status_code::ALTERED_BY_IMPLICIT
    );
    assert_good(&e.read().await, "READ after the transition");
    for n in [&mut w, &mut e] {
        n.drain().await;
        let u = n.take_uas();
        // One at the start and possibly one at the end of the transition (LIO queues both).
        assert!(
            !u.is_empty() && u.len() <= 2 && u.iter().all(|x| *x == ALUA_CHANGED),
            "{}: {u:?}",
            n.label
        );
    }

    // Explicit: STPG through west moving east back to AO, observed through east meanwhile.
    let p = stpg_params(&[StpgDescriptor::Primary {
        group: EAST_ID,
        state: AccessState::ActiveOptimized,
    }]);
    let start = Instant::now();
    let pending = guard(
        "STPG",
        w.s.start_command(
            0,
            &stpg_cdb(u32::try_from(p.len()).unwrap()),
            Some(Bytes::from(p)),
            0,
            CommandOptions::default(),
        ),
    )
    .await
    .unwrap();
    e.wait_state(EAST_ID, AccessState::Transitioning).await;
    let read = e.read().await;
    assert!(
        start.elapsed() < DELAY,
        "test too slow to look inside the delay"
    );
    assert_eq!(
        sense_of(&read),
        Some(TRANSITIONING),
        "READ while transitioning"
    );
    let r = guard("STPG completion", pending.wait()).await.unwrap();
    assert_good(&r, "STPG east AO with trans_delay");
    let r = e.wait_state(EAST_ID, AccessState::ActiveOptimized).await;
    assert!(
        start.elapsed() >= DELAY - Duration::from_millis(100),
        "final state after {:?}, before trans_delay_msecs",
        start.elapsed()
    );
    assert_eq!(
        r.group(EAST_ID).unwrap().status,
        status_code::ALTERED_BY_STPG
    );
    assert_good(&e.read().await, "READ after the explicit transition");
    w.drain().await;
    assert_eq!(w.take_uas(), vec![], "W sent the STPG");
}

/// Everything an initiator can observe of ALUA through both paths, plus the saved RTPIs.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    /// Parsed, groups sorted by id (SPC-4 sets no descriptor order).
    rtpg_ext: [Rtpg; 2],
    rtpg_len: [Rtpg; 2],
    vpd83: [Bytes; 2],
    rtpi: [u16; 2],
    attrs: Vec<String>,
}

fn by_id(mut r: Rtpg) -> Rtpg {
    r.groups.sort_by_key(|g| g.group_id);
    r
}

async fn snapshot(rig: &Rig, w: &mut Nexus, e: &mut Nexus) -> Snapshot {
    let mut attrs = Vec::new();
    for g in ["alua_west", "alua_east"] {
        for a in [
            "alua_access_state",
            "alua_access_status",
            "alua_access_type",
            "preferred",
            "trans_delay_msecs",
            "nonop_delay_msecs",
            "tg_pt_gp_id",
            "members",
        ] {
            let v = rig.d.cli(&["get", &format!("{}/{a}", group_path(g))]);
            attrs.push(format!("{g}/{a}={}", v.trim()));
        }
    }
    Snapshot {
        rtpg_ext: [by_id(w.rtpg(true).await.0), by_id(e.rtpg(true).await.0)],
        rtpg_len: [by_id(w.rtpg(false).await.0), by_id(e.rtpg(false).await.0)],
        vpd83: [w.vpd83().await.1, e.vpd83().await.1],
        rtpi: [rig.d.rtpi(TPG), rig.d.rtpi(&rig.east_tpg)],
        attrs,
    }
}

/// Log both paths in again after a restart; the power-on unit attention is expected, a
/// state change one is not (restoring is not a transition).
async fn relogin(rig: &Rig) -> (Nexus, Nexus) {
    let mut w = Nexus::login(rig.d.addr(), TARGET, "host", "W").await;
    let mut e = Nexus::login(rig.east_addr, EAST, "host", "E").await;
    for n in [&mut w, &mut e] {
        let u = std::mem::take(&mut n.login_uas);
        assert!(
            !u.contains(&ALUA_CHANGED),
            "{}: restore raised 2A/06: {u:?}",
            n.label
        );
    }
    (w, e)
}

/// After the daemon went down (`how`): restart it on its state directory, log both paths in
/// again and check that the ALUA state is `before`.
async fn restarted_as(rig: &mut Rig, before: &Snapshot, how: &str) -> (Nexus, Nexus) {
    rig.d.restart();
    let (mut w, mut e) = relogin(rig).await;
    assert_eq!(snapshot(rig, &mut w, &mut e).await, *before, "after {how}");
    (w, e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alua_state_survives_restart() {
    let mut rig = rig();
    rig.d.cli(&[
        "set",
        &format!("{}/nonop_delay_msecs", group_path("alua_west")),
        "20",
    ]);
    let (mut w, mut e) = relogin(&rig).await;
    let r = w
        .stpg(&[StpgDescriptor::Primary {
            group: WEST_ID,
            state: AccessState::ActiveNonOptimized,
        }])
        .await;
    assert_good(&r, "STPG west ANO");
    alua_admin(&rig.d, &["set-state", RAMDISK, "alua_east", "s"]);
    alua_admin(&rig.d, &["set-pref", RAMDISK, "alua_west", "on"]);
    w.wait_state(EAST_ID, AccessState::Standby).await;
    let before = snapshot(&rig, &mut w, &mut e).await;
    let r = &before.rtpg_ext[0];
    let west = r.group(WEST_ID).unwrap();
    let east = r.group(EAST_ID).unwrap();
    assert_eq!(
        (west.state, west.status, west.pref, west.ports.clone()),
        (
            AccessState::ActiveNonOptimized,
            status_code::ALTERED_BY_STPG,
            true,
            vec![rig.rtpi_west]
        )
    );
    assert_eq!(
        (east.state, east.status, east.pref, east.ports.clone()),
        (
            AccessState::Standby,
            status_code::ALTERED_BY_IMPLICIT,
            false,
            vec![rig.rtpi_east]
        )
    );
    drop((w, e));

    rig.d.stop();
    let (mut w, mut e) = restarted_as(&mut rig, &before, "SIGTERM").await;
    assert_eq!(
        sense_of(&e.read().await),
        Some(STANDBY),
        "east still gated after restart"
    );

    // Change again, then kill -9 at once: the new states must be the ones restored.
    let r = e
        .stpg(&[StpgDescriptor::Primary {
            group: WEST_ID,
            state: AccessState::Standby,
        }])
        .await;
    assert_good(&r, "STPG west Standby through east");
    alua_admin(&rig.d, &["set-state", RAMDISK, "alua_east", "ano"]);
    alua_admin(&rig.d, &["set-pref", RAMDISK, "alua_east", "on"]);
    e.wait_state(EAST_ID, AccessState::ActiveNonOptimized).await;
    let before = snapshot(&rig, &mut w, &mut e).await;
    let r = &before.rtpg_ext[1];
    assert_eq!(
        r.group(WEST_ID).map(|g| (g.state, g.status)),
        Some((AccessState::Standby, status_code::ALTERED_BY_STPG))
    );
    assert_eq!(
        r.group(EAST_ID).map(|g| (g.state, g.status, g.pref)),
        Some((
            AccessState::ActiveNonOptimized,
            status_code::ALTERED_BY_IMPLICIT,
            true
        ))
    );
    drop((w, e));
    rig.d.kill9();
    let (mut w, _e) = restarted_as(&mut rig, &before, "kill -9").await;
    assert_eq!(
        sense_of(&w.read().await),
        Some(STANDBY),
        "west still gated after kill -9"
    );
}
