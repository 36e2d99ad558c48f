use std::net::SocketAddr;
use std::time::SystemTime;

use ironlun_fabric::{ConnInfo, OperationalParams, SessionInfo};

use super::*;
use crate::model::ParamSchema;

/// Live values: every device 1 MiB with 64 KiB allocated; no PR or ALUA state.
struct Live;

impl ParamSchema for Live {
    fn param_defaults(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    fn validate_param(&self, _: &str, _: &str) -> Result<(), String> {
        Ok(())
    }
}

impl Inspect for Live {
    fn device_attributes(&self, _: &DevKey) -> Vec<(String, String)> {
        Vec::new()
    }
    fn device_info(&self, _: &DevKey) -> Option<String> {
        None
    }
    fn device_size(&self, _: &DevKey) -> Option<u64> {
        Some(1 << 20)
    }
    fn device_allocated(&self, _: &DevKey) -> Option<u64> {
        Some(64 << 10)
    }
}

fn cfg() -> Config {
    serde_json::from_value(serde_json::json!({
        "version": 1,
        "storage_objects": [
            {"plugin": "ramdisk", "hba": 0, "name": "rd0", "wwn": "w-rd0",
             "vendor_id": "IRONLUN", "product_id": "RAMDISK-MCP", "revision": "1.0",
             "size": 1048576, "write_back": false, "readonly": false, "attributes": {}},
            {"plugin": "ramdisk", "hba": 0, "name": "rd1", "wwn": "w-rd1",
             "vendor_id": "IRONLUN", "product_id": "RAMDISK-MCP", "revision": "1.0",
             "size": 1048576, "write_back": false, "readonly": false, "attributes": {}}
        ],
        "discovery_auth": {"enforce_discovery_auth": false},
        "targets": [{
            "wwn": "iqn.2026-12.test:t", "fabric": "iscsi",
            "tpgs": [{
                "tag": 1, "enable": true, "rtpi": 1,
                "attributes": {"authentication": 0, "demo_mode_write_protect": 0,
                               "generate_node_acls": 0, "prod_mode_write_protect": 0},
                "parameters": {},
                "portals": [{"ip_address": "127.0.0.1", "port": 3260}],
                "luns": [
                    {"index": 0, "storage_object": "core/rd_mcp_0/rd0"},
                    {"index": 1, "storage_object": "core/rd_mcp_0/rd1"}
                ],
                "node_acls": [{
                    "node_wwn": "iqn.2026-12.test:host",
                    "mapped_luns": [{"index": 5, "tpg_lun": 1, "write_protect": true}]
                }]
            }]
        }]
    }))
    .unwrap_or_else(|e| panic!("test config: {e}"))
}

fn session(initiator: &str, target: Option<&str>, chap: bool) -> SessionInfo {
    let peer: SocketAddr = "127.0.0.1:40001".parse().unwrap_or_else(|e| panic!("{e}"));
    let local: SocketAddr = "127.0.0.1:3260".parse().unwrap_or_else(|e| panic!("{e}"));
    SessionInfo {
        tsih: 7,
        initiator: initiator.into(),
        isid: [0x80, 0, 0x23, 0, 0, 1],
        target: target.map(str::to_owned),
        tpgt: 1,
        params: OperationalParams::default(),
        connections: vec![ConnInfo {
            cid: 0,
            peer,
            local,
            chap,
            digests: (true, false),
            since: SystemTime::now(),
        }],
        commands: [12, 30, 4],
    }
}

#[test]
fn a_session_shows_its_acl_mapped_luns_and_connection() {
    let s = session("iqn.2026-12.test:host", Some("iqn.2026-12.test:t"), true);
    let text = sessions(&cfg(), &[s], false);
    for line in [
        "sid: 7 type: Normal session-state: LOGGED_IN",
        "  name: iqn.2026-12.test:host (AUTHENTICATED)",
        "  isid: 0x800023000001",
        "  target: iqn.2026-12.test:t tpgt: 1",
        "  commands: 46 (read 12, write 30, other 4)",
        "    mapped-lun: 5 backstore: core/rd_mcp_0/rd1 mode: ro",
        "    address: 127.0.0.1 (TCP) portal: 127.0.0.1:3260 cid: 0 connection-state: LOGGED_IN",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // Only the ACL's LUN, and no negotiated keys without --detail.
    assert!(!text.contains("rd0"), "{text}");
    assert!(!text.contains("MaxBurstLength"), "{text}");
    let detail = sessions(
        &cfg(),
        &[session(
            "iqn.2026-12.test:host",
            Some("iqn.2026-12.test:t"),
            false,
        )],
        true,
    );
    assert!(detail.contains("(NOT AUTHENTICATED)"), "{detail}");
    assert!(detail.contains("    MaxBurstLength=262144"), "{detail}");
    assert!(detail.contains("    HeaderDigest=None"), "{detail}");
    assert!(
        detail.contains("source port: 40001 chap: no header digest: CRC32C data digest: None"),
        "{detail}"
    );
}

#[test]
fn no_sessions_and_discovery_sessions() {
    assert_eq!(sessions(&cfg(), &[], false), "(no open sessions)");
    let d = sessions(&cfg(), &[session("iqn.2026-12.test:x", None, false)], false);
    assert!(d.starts_with("sid: 7 type: Discovery"), "{d}");
    assert!(!d.contains("mapped-lun"), "{d}");
}

#[test]
fn status_is_one_screen_of_everything() {
    let s = session("iqn.2026-12.test:host", Some("iqn.2026-12.test:t"), false);
    let text = status(&cfg(), &Live, &[s]);
    for line in [
        "portals: 127.0.0.1:3260",
        "sessions: 1 normal, 0 discovery; 1 connection(s)",
        "targets (1):",
        "  iqn.2026-12.test:t/tpgt_1 enabled: 2 LUN(s), 1 ACL(s), 1 portal(s), 1 session(s)",
        "LUs (2):",
        "  core/rd_mcp_0/rd0: 1.0 MiB, 64.0 KiB allocated; 1 export(s), 0 session(s); PR: none",
        "  core/rd_mcp_0/rd1: 1.0 MiB, 64.0 KiB allocated; 1 export(s), 1 session(s); PR: none",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}
