//! Unit tests of the LIO conversions (no daemon): rtslib-fb saveconfig.json import and
//! export, and LIO's APTPL text.

use serde_json::json;

use super::aptpl;
use super::export::export;
use super::import::import;
use super::Report;
use crate::model::alua::DEFAULT_TG_PT_GP;
use crate::model::Config;

const T: &str = "iqn.2003-01.org.linux-iscsi.x:t";

fn base() -> serde_json::Value {
    json!({
        "storage_objects": [
            {"plugin": "rd_mcp", "name": "r", "wwn": "0badc0de-1234-4567-89ab-cdef01234567",
             "size": 1048576, "attributes": {"emulate_tpu": 1, "emulate_3pc": 1}}
        ],
        "targets": [{"fabric": "iscsi", "wwn": T, "tpgs": [{
            "tag": 1, "enable": 1,
            "attributes": {"generate_node_acls": 1, "login_timeout": 15},
            "portals": [{"ip_address": "[::0]", "port": 3260, "iser": false}],
            "luns": [{"index": 0, "storage_object": "/backstores/ramdisk/r"}],
            "node_acls": [
                {"node_wwn": "iqn.1994-05.com.redhat:a", "attributes": {"nopin_timeout": 20, "nopin_response_timeout": 25},
                 "mapped_luns": [{"index": 4, "tpg_lun": 0, "write_protect": 1}]},
                {"node_wwn": "iqn.1994-05.com.redhat:b", "attributes": {"nopin_timeout": 20, "nopin_response_timeout": 25},
                 "chap_userid": "u", "chap_password": "short"}
            ]
        }]}]
    })
}

fn run(v: &serde_json::Value) -> (Config, Report) {
    let i = import(&v.to_string()).expect("imports");
    (i.config, i.report)
}

fn reported(r: &Report, what: &str) -> bool {
    r.lines.iter().any(|l| l.contains(what))
}

#[test]
fn fields_carry_over() {
    let (cfg, report) = run(&base());
    let so = &cfg.storage_objects[0];
    assert_eq!(so.key().to_string(), "core/rd_mcp_0/r");
    assert_eq!(so.wwn, "0badc0de-1234-4567-89ab-cdef01234567");
    assert_eq!(so.vendor_id, "LIO-ORG");
    // emulate_3pc=1 is the engine's default: not saved; emulate_tpu=1 is.
    assert_eq!(so.attributes.get("emulate_tpu"), Some(&1));
    assert!(!so.attributes.contains_key("emulate_3pc"));
    let g = &cfg.targets[0].tpgs[0];
    assert!(g.enable);
    assert_eq!(g.attributes.generate_node_acls, 1);
    assert_eq!(g.portals[0].addr().to_string(), "[::]:3260");
    assert_eq!(g.luns[0].storage_object, "core/rd_mcp_0/r");
    let a = &g.node_acls[0];
    assert_eq!((a.mapped_luns[0].index, a.mapped_luns[0].tpg_lun), (4, 0));
    assert!(a.mapped_luns[0].write_protect);
    // Every ACL agrees: the NOP-In timeouts become the TPG's.
    assert_eq!(
        (
            g.attributes.nopin_timeout,
            g.attributes.nopin_response_timeout
        ),
        (20, 25)
    );
    // A secret under 12 bytes is dropped and named.
    assert!(g.node_acls[1].chap.is_empty());
    assert!(reported(
        &report,
        "acls/iqn.1994-05.com.redhat:b/auth: CHAP credentials not carried"
    ));
    assert!(reported(&report, "login_timeout=15"));
    assert!(g.rtpi != 0);
}

#[test]
fn differing_nopin_timeouts_are_reported() {
    let mut v = base();
    v["targets"][0]["tpgs"][0]["node_acls"][1]["attributes"]["nopin_timeout"] = json!(30);
    let (cfg, report) = run(&v);
    assert_eq!(cfg.targets[0].tpgs[0].attributes.nopin_timeout, 15);
    assert!(reported(&report, "differ between ACLs"));
}

#[test]
fn default_group_is_merged_not_duplicated() {
    let gp = |name: &str, id: u64, state: u64| {
        json!({"name": name, "tg_pt_gp_id": id, "alua_access_state": state, "alua_access_type": 3,
               "nonop_delay_msecs": 100, "alua_write_metadata": 0})
    };
    let mut v = base();
    v["storage_objects"][0]["alua_tpgs"] = json!([gp(DEFAULT_TG_PT_GP, 0, 0), gp("x", 5, 1)]);
    let (cfg, _) = run(&v);
    let names: Vec<&str> = cfg.storage_objects[0]
        .alua_tpgs
        .iter()
        .map(|g| g.name.as_str())
        .collect();
    assert_eq!(names, vec!["x"], "an unchanged default group is not saved");
    v["storage_objects"][0]["alua_tpgs"] = json!([gp(DEFAULT_TG_PT_GP, 0, 2), gp("x", 5, 1)]);
    let (cfg, _) = run(&v);
    let groups = cfg.storage_objects[0].alua_groups();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        (groups[0].name.as_str(), groups[0].alua_access_state),
        (DEFAULT_TG_PT_GP, 2)
    );
}

#[test]
fn missing_wwn_is_generated_and_reported() {
    let mut v = base();
    v["storage_objects"][0]
        .as_object_mut()
        .expect("an object")
        .remove("wwn");
    let (cfg, report) = run(&v);
    assert_eq!(cfg.storage_objects[0].wwn.len(), 36);
    assert!(reported(&report, "/backstores/ramdisk/r.wwn: missing"));
}

#[test]
fn export_then_import_is_a_fixpoint() {
    let (cfg, _) = run(&base());
    let (text, _) = export(&cfg);
    let (again, _) = run(&serde_json::from_str(&text).expect("the export is JSON"));
    assert_eq!(again, cfg);
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (
            json!({"storage_objects": [{"plugin": "ramdisk", "name": "r", "size": "big"}]}),
            "/backstores/ramdisk/r.size: 'big' is not a whole number",
        ),
        (
            json!({"storage_objects": [{"plugin": "x", "name": "r"}]}),
            "storage_objects[0].plugin: unknown plugin 'x'",
        ),
        (
            json!({"storage_objects": {}}),
            "saveconfig.json.storage_objects: expected a list",
        ),
        (
            json!({"targets": [{"fabric": "iscsi", "wwn": "bogus"}]}),
            "targets[0].wwn",
        ),
        (
            json!({"targets": [{"fabric": "iscsi", "wwn": T, "tpgs": [{"tag": 1, "portals": [{"ip_address": "nowhere", "port": 1}]}]}]}),
            "portals[0].ip_address: 'nowhere'",
        ),
    ];
    for (v, want) in cases {
        let e = import(&v.to_string()).expect_err("refused");
        assert!(e.contains(want), "{e:?} should contain {want:?}");
        assert_eq!(e.lines().count(), 1);
    }
}

const APTPL: &str = "PR_REG_START: 0
initiator_fabric=iSCSI
initiator_node=iqn.1994-05.com.redhat:a
initiator_sid=400001370000
sa_res_key=0x10
res_holder=1
res_type=06
res_scope=00
res_all_tg_pt=0
mapped_lun=0
target_fabric=iSCSI
target_node=iqn.2003-01.org.linux-iscsi.x:t
tpgt=1
port_rtpi=9
target_lun=0
PR_REG_END: 0
PR_REG_START: 1
initiator_fabric=iSCSI
initiator_node=iqn.1994-05.com.redhat:b
sa_res_key=42
res_holder=0
res_all_tg_pt=1
target_fabric=iSCSI
target_node=iqn.2003-01.org.linux-iscsi.x:elsewhere
tpgt=1
PR_REG_END: 1
";

#[test]
fn aptpl_text_converts() {
    let (cfg, _) = run(&base());
    let mut report = Report::default();
    let s = aptpl::parse("f", APTPL, &cfg, &mut report)
        .expect("parses")
        .expect("a state");
    assert!(s.aptpl);
    assert_eq!(s.registrations.len(), 1);
    let r = &s.registrations[0];
    assert_eq!(
        (r.key, r.initiator.as_str(), r.tpgt),
        (0x10, "iqn.1994-05.com.redhat:a", 1)
    );
    assert_eq!(r.isid, Some([0x40, 0, 1, 0x37, 0, 0]));
    // ironlun's RTPI of the TPG, not LIO's per-LUN port_rtpi.
    assert_eq!(r.rtpi, cfg.targets[0].tpgs[0].rtpi);
    let res = s.reservation.expect("a reservation");
    assert_eq!((res.holder, res.kind), (0, 6));
    assert!(reported(&report, "registration 1: target port iqn.2003-01.org.linux-iscsi.x:elsewhere,t,0x0001 is not in the imported config"));
    assert_eq!(
        aptpl::parse("f", "No Registrations or Reservations\n", &cfg, &mut report),
        Ok(None)
    );
}

#[test]
fn aptpl_errors_name_the_line_or_key() {
    let (cfg, _) = run(&base());
    let mut report = Report::default();
    for (text, want) in [
        ("PR_REG_START: 0\ninitiator_fabric=iSCSI\n", "no PR_REG_END"),
        (
            "initiator_fabric=iSCSI\n",
            "f line 1: 'initiator_fabric=iSCSI' is outside",
        ),
        (
            &APTPL.replace("res_type=06", "res_type=02"),
            "res_type is not a PR type",
        ),
        (
            &APTPL.replace("initiator_sid=400001370000", "initiator_sid=xyz"),
            "initiator_sid 'xyz'",
        ),
        (
            &APTPL.replace("res_scope=00", "res_scope=01"),
            "res_scope 01",
        ),
    ] {
        let e = aptpl::parse("f", text, &cfg, &mut report).expect_err("refused");
        assert!(e.contains(want), "{e:?} should contain {want:?}");
    }
}

/// What a real rtslib writes that LIO accepts and ironlun's rules do not: reported and left
/// out (or renamed), never a failed import.
#[test]
fn valid_lio_files_import_with_what_does_not_fit_reported() {
    let mut v = base();
    let so = &mut v["storage_objects"][0];
    so["name"] = json!("vm:disk+1");
    // A RAM disk's kernel values, as a real saveconfig.json holds them.
    so["attributes"]["optimal_sectors"] = json!(4_294_967_288u64);
    so["attributes"]["queue_depth"] = json!(256);
    v["storage_objects"]
        .as_array_mut()
        .expect("list")
        .push(json!(
        {"plugin": "fileio", "name": "f", "wwn": "f-1", "dev": "/srv/f.img", "size": 1048576,
         "buffered_mode": true}));
    let g = &mut v["targets"][0]["tpgs"][0];
    g["luns"][0]["storage_object"] = json!("/backstores/ramdisk/vm:disk+1");
    g["luns"].as_array_mut().expect("luns").push(json!(
        {"index": 20000, "storage_object": "/backstores/ramdisk/vm:disk+1"}));
    g["node_acls"][0]["mapped_luns"]
        .as_array_mut()
        .expect("mapped")
        .push(json!(
        {"index": 1, "tpg_lun": 20000}));
    g["chap_userid"] = json!("tpg-user");
    g["chap_password"] = json!("shared-secret-123");
    g["node_acls"][0]["chap_mutual_userid"] = json!("tgt");
    g["node_acls"][0]["chap_mutual_password"] = json!("shared-secret-123");
    g["node_acls"][0]["password"] = json!("documented-in-the-man-page");
    v["targets"][0]["wwn"] = json!("naa.6001405abcdef0123456789abcdef012");
    v["fabric_modules"] = json!([{"name": "iscsi", "discovery_enable_auth": true}]);
    let (c, r) = run(&v);
    let text = r.lines.join("\n");
    let so = &c.storage_objects[0];
    assert_eq!(so.name, "vm_disk_1");
    assert!(
        !so.attributes.contains_key("optimal_sectors")
            && !so.attributes.contains_key("queue_depth"),
        "{:?}",
        so.attributes
    );
    assert!(
        c.storage_objects[1].write_back,
        "buffered_mode is the old write_back"
    );
    let t = &c.targets[0];
    assert_eq!(t.wwn, "naa.5001405abcdef0123456789abcdef012");
    let g = &t.tpgs[0];
    assert_eq!(g.luns.iter().map(|l| l.index).collect::<Vec<_>>(), [0]);
    assert!(
        g.luns[0].storage_object.ends_with("/vm_disk_1"),
        "{:?}",
        g.luns[0]
    );
    let acl = &g.node_acls[0];
    assert_eq!(acl.mapped_luns.len(), 1);
    assert!(acl.chap.chap_mutual_password.is_empty() && acl.chap.chap_mutual_userid.is_empty());
    assert!(!c.discovery_auth.enforce_discovery_auth);
    for what in [
        "vm:disk+1.name: named vm_disk_1",
        "attributes.optimal_sectors: 4294967288 not carried",
        "attributes.queue_depth: 256 not carried",
        "lun20000: LUN 20000: ironlun serves LUNs 0-16383",
        "chap_mutual_password: equals the initiator secret of /iscsi/",
        "named naa.5001405abcdef0123456789abcdef012",
        "discovery_enable_auth: true without discovery_userid and discovery_password; LIO required CHAP for discovery and ironlun now does NOT",
        ".password: ******** (not a field ironlun knows)",
    ] {
        assert!(text.contains(what), "report lacks {what:?}:\n{text}");
    }
    assert!(
        !text.contains("documented-in-the-man-page") && !text.contains("shared-secret-123"),
        "{text}"
    );
}

#[test]
fn export_leaves_out_what_rtslib_cannot_restore() {
    let (c, _) = run(&base());
    let (text, _) = export(&c);
    assert!(
        !text.contains("alua_support_lba_dependent"),
        "read-only in rtslib:\n{text}"
    );
}
