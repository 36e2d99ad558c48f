//! CLI-level tests of ALUA in the control plane (SPC-4 §5.11, in LIO's configfs layout): target
//! port groups under
//! `core/<kind>_<n>/<dev>/alua/`, TPG LUN membership and offline flags, LU groups,
//! `ironlun alua show / set-state / set-pref`, refusals, and persistence across SIGTERM and
//! kill -9 restarts. The real daemon on ports 3620-3639. (RTPG/STPG traffic through iSCSI is
//! tested end to end elsewhere.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ops::Range;
use std::time::{Duration, Instant};

use support::{Daemon, RAMDISK, TARGET, TPG, TPG2};

const PORTS: Range<u16> = 3620..3640;

fn attr(group: &str, name: &str) -> String {
    format!("{RAMDISK}/alua/{group}/{name}")
}

fn get(d: &Daemon, path: &str) -> String {
    d.cli(&["get", path]).trim_end().to_string()
}

/// Poll `path` until it reads `want` (a transition runs on an engine thread).
fn wait_for(d: &Daemon, path: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = get(d, path);
        if v == want {
            return;
        }
        assert!(Instant::now() < deadline, "{path}: {v:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config_json(d: &Daemon) -> String {
    d.saved_config()
}

/// West (id 1) holds tpgt_1's LUN 0, east (id 2) tpgt_2's; west ANO through the tree, east
/// Standby and preferred through `alua set-state/set-pref`, tpgt_2's LUN offline.
fn setup(d: &Daemon) {
    d.add_tpg2(PORTS);
    d.alua_west_east(TPG, TPG2);
    d.cli(&["set", &attr("alua_west", "alua_access_state"), "ano"]);
    d.cli(&["alua", "set-state", RAMDISK, "alua_east", "s"]);
    d.cli(&["alua", "set-pref", RAMDISK, "alua_east", "on"]);
    d.cli(&["set", &attr("alua_west", "nonop_delay_msecs"), "250"]);
    d.cli(&["set", &format!("{TPG2}/lun/lun_0/alua_tg_pt_offline"), "1"]);
}

/// Everything [`setup`] configured, as the tree and `alua show` report it.
fn check(d: &Daemon, rtpi1: u16, rtpi2: u16) {
    wait_for(d, &attr("alua_west", "alua_access_state"), "1");
    wait_for(d, &attr("alua_east", "alua_access_state"), "2");
    assert_eq!(get(d, &attr("alua_west", "alua_access_status")), "2");
    assert_eq!(get(d, &attr("alua_east", "alua_access_status")), "2");
    assert_eq!(get(d, &attr("alua_east", "preferred")), "1");
    assert_eq!(get(d, &attr("alua_west", "preferred")), "0");
    assert_eq!(get(d, &attr("alua_west", "nonop_delay_msecs")), "250");
    assert_eq!(get(d, &attr("alua_west", "tg_pt_gp_id")), "1");
    assert_eq!(get(d, &attr("alua_east", "tg_pt_gp_id")), "2");
    assert_eq!(
        get(d, &attr("alua_west", "members")),
        format!("iscsi/{TARGET}/tpgt_1/lun_0")
    );
    assert_eq!(
        get(d, &format!("{TPG}/lun/lun_0/alua_tg_pt_gp")),
        "alua_west"
    );
    assert_eq!(
        get(d, &format!("{TPG2}/lun/lun_0/alua_tg_pt_gp")),
        "alua_east"
    );
    assert_eq!(get(d, &format!("{TPG2}/lun/lun_0/alua_tg_pt_offline")), "1");
    assert_eq!(get(d, &format!("{TPG2}/lun/lun_0/alua_tg_pt_status")), "2");
    assert_eq!(get(d, &format!("{TPG}/lun/lun_0/alua_tg_pt_offline")), "0");
    assert_eq!(d.rtpi(TPG), rtpi1);
    assert_eq!(d.rtpi(TPG2), rtpi2);

    let show = d.cli(&["alua", "show", RAMDISK]);
    for needle in [
        format!("{RAMDISK}: LU group default_lu_gp\n"),
        "default_tg_pt_gp (id 0)\n".to_string(),
        "alua_west (id 1)\n  access type: Implicit and Explicit (3)\n  primary state: Active/NonOptimized (0x01)\n  status: Altered by Implicit ALUA (0x02)\n  preferred: 0\n  nonop_delay_msecs: 250  trans_delay_msecs: 0  implicit_trans_secs: 0\n  supported states: ao,ano,s,u,o,t (0xcf)\n  members:\n".to_string(),
        format!("    iscsi/{TARGET}/tpgt_1/lun_0 rtpi {rtpi1}\n"),
        "alua_east (id 2)\n".to_string(),
        "  primary state: Standby (0x02)\n".to_string(),
        "  preferred: 1\n".to_string(),
        format!("    iscsi/{TARGET}/tpgt_2/lun_0 rtpi {rtpi2} (offline)\n"),
        "  members: none\n".to_string(),
    ] {
        assert!(show.contains(&needle), "missing {needle:?} in\n{show}");
    }
}

#[test]
fn groups_states_and_prefs_survive_sigterm_and_kill9() {
    let mut d = Daemon::start_in(PORTS);
    setup(&d);
    let (r1, r2) = (d.rtpi(TPG), d.rtpi(TPG2));
    assert_ne!(r1, r2);
    check(&d, r1, r2);

    // Bad inputs: one line naming the field, exit 2, nothing changed.
    let before = config_json(&d);
    let bad: &[(&[&str], &str)] = &[
        (
            &["alua", "set-state", RAMDISK, "alua_east", "x"],
            "alua_access_state",
        ),
        (
            &["alua", "set-state", RAMDISK, "alua_east", "4"],
            "alua_access_state",
        ),
        (
            &["alua", "set-state", RAMDISK, "nope", "s"],
            "no such group",
        ),
        (
            &["alua", "set-state", "core/rd_mcp_0", "alua_east", "s"],
            "device",
        ),
        (
            &["alua", "set-pref", RAMDISK, "alua_east", "maybe"],
            "expected on or off",
        ),
        (&["alua", "show", "core/rd_mcp_0/nope"], "no such device"),
        (
            &["create", &format!("{RAMDISK}/alua/g3"), "tg_pt_gp_id=2"],
            "already used",
        ),
        (
            &["create", &format!("{RAMDISK}/alua/g3"), "tg_pt_gp_id=0"],
            "1-65535",
        ),
        (
            &["delete", &format!("{RAMDISK}/alua/alua_west")],
            "member port",
        ),
        (
            &["delete", &format!("{RAMDISK}/alua/default_tg_pt_gp")],
            "cannot be deleted",
        ),
        (
            &["set", &attr("alua_west", "trans_delay_msecs"), "30001"],
            "0-30000",
        ),
        (
            &["set", &attr("alua_west", "tg_pt_gp_id"), "5"],
            "read-only",
        ),
        (&["set", &attr("alua_west", "members"), "x"], "read-only"),
        (
            &["set", &format!("{TPG}/lun/lun_0/alua_tg_pt_gp"), "nope"],
            "alua_tg_pt_gp",
        ),
        (
            &["set", &format!("{TPG}/lun/lun_0/alua_tg_pt_offline"), "yes"],
            "alua_tg_pt_offline",
        ),
        (
            &["set", &format!("{TPG}/lun/lun_0/alua_tg_pt_status"), "1"],
            "read-only",
        ),
        (
            &["set", &format!("{RAMDISK}/alua_lu_gp"), "nope"],
            "alua_lu_gp",
        ),
        (
            &["create", "core/alua/lu_gps/default_lu_gp"],
            "already exists",
        ),
    ];
    for (args, needle) in bad {
        let e = d.refused(args);
        assert!(e.contains(needle), "{args:?}: {e}");
    }
    // The access type gates administrator transitions (LIO: implicit ALUA needed).
    d.cli(&["set", &attr("alua_west", "alua_access_type"), "2"]);
    let e = d.refused(&["alua", "set-state", RAMDISK, "alua_west", "ao"]);
    assert!(e.contains("alua_access_type"), "{e}");
    d.cli(&["set", &attr("alua_west", "alua_access_type"), "3"]);
    assert_eq!(
        config_json(&d),
        before,
        "a refused command changed config.json"
    );
    check(&d, r1, r2);

    d.stop();
    d.restart();
    check(&d, r1, r2);

    // A change right before kill -9 is there after the restart too.
    d.cli(&["alua", "set-pref", RAMDISK, "alua_east", "off"]);
    d.cli(&["alua", "set-pref", RAMDISK, "alua_east", "on"]);
    d.kill9();
    d.restart();
    check(&d, r1, r2);

    // Moving the LUN back lets the group go.
    d.cli(&[
        "set",
        &format!("{TPG}/lun/lun_0/alua_tg_pt_gp"),
        "default_tg_pt_gp",
    ]);
    d.cli(&["delete", &format!("{RAMDISK}/alua/alua_west")]);
    let ls = d.cli(&["ls", &format!("{RAMDISK}/alua")]);
    assert!(!ls.contains("alua_west"), "{ls}");
    assert_eq!(
        get(&d, &attr("default_tg_pt_gp", "members")),
        format!("iscsi/{TARGET}/tpgt_1/lun_0")
    );
}

/// Devices in one LU group transition together (LIO): the peer's new state is made by the
/// engine at the end of the transition, reported through the observer and saved.
#[test]
fn lu_group_peers_follow_and_their_state_is_saved() {
    let mut d = Daemon::start_in(PORTS);
    let peer = "core/rd_mcp_0/peer0";
    d.cli(&["create", peer, "size=16M"]);
    d.cli(&["create", "core/alua/lu_gps/pair", "lu_gp_id=5"]);
    for dev in [RAMDISK, peer] {
        d.cli(&["create", &format!("{dev}/alua/west"), "tg_pt_gp_id=1"]);
        d.cli(&["set", &format!("{dev}/alua_lu_gp"), "pair"]);
        d.cli(&["set", &format!("{dev}/alua/west/trans_delay_msecs"), "300"]);
    }
    assert_eq!(get(&d, "core/alua/lu_gps/pair/lu_gp_id"), "5");
    assert_eq!(
        get(&d, "core/alua/lu_gps/pair/members"),
        "rd_mcp_0/ramdisk0 rd_mcp_0/peer0"
    );
    d.cli(&["set", &format!("{TPG}/lun/lun_0/alua_tg_pt_gp"), "west"]);
    d.cli(&["alua", "set-state", RAMDISK, "west", "u"]);
    wait_for(&d, &format!("{peer}/alua/west/alua_access_state"), "3");
    wait_for(&d, &format!("{RAMDISK}/alua/west/alua_access_state"), "3");
    // The observer's save lands shortly after the transition's end.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cfg: serde_json::Value = serde_json::from_str(&config_json(&d)).expect("json");
        let state = cfg["storage_objects"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == "peer0"))
            .and_then(|s| s["alua_tpgs"].as_array().cloned())
            .and_then(|g| g.into_iter().find(|g| g["name"] == "west"))
            .map(|g| g["alua_access_state"].clone());
        if state == Some(serde_json::json!(3)) {
            break;
        }
        assert!(Instant::now() < deadline, "peer state not saved: {state:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.kill9();
    d.restart();
    assert_eq!(get(&d, &format!("{peer}/alua/west/alua_access_state")), "3");
    assert_eq!(
        get(&d, &format!("{RAMDISK}/alua/west/alua_access_state")),
        "3"
    );
    assert_eq!(get(&d, &format!("{peer}/alua_lu_gp")), "pair");
    let e = d.refused(&["delete", "core/alua/lu_gps/pair"]);
    assert!(e.contains("still in it"), "{e}");
}
