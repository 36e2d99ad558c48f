use super::*;

fn base() -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "storage_objects": [
            {"plugin": "ramdisk", "hba": 0, "name": "rd0", "wwn": "w-rd0",
             "vendor_id": "IRONLUN", "product_id": "RAMDISK-MCP", "revision": "1.0",
             "size": 1048576, "write_back": false, "readonly": false, "attributes": {}},
            {"plugin": "fileio", "hba": 1, "name": "f1", "wwn": "w-f1", "dev": "/x/f1.img",
             "vendor_id": "IRONLUN", "product_id": "FILEIO", "revision": "1.0",
             "size": 1048576, "write_back": true, "readonly": false,
             "attributes": {"emulate_tpu": 0}}
        ],
        "discovery_auth": {"enforce_discovery_auth": false},
        "targets": [{
            "wwn": "iqn.2026-12.test:t", "fabric": "iscsi",
            "tpgs": [{
                "tag": 1, "enable": true, "rtpi": 1,
                "attributes": {"authentication": 0, "demo_mode_write_protect": 0,
                               "generate_node_acls": 1, "prod_mode_write_protect": 0},
                "parameters": {},
                "portals": [{"ip_address": "127.0.0.1", "port": 3260}],
                "luns": [
                    {"index": 0, "storage_object": "core/rd_mcp_0/rd0"},
                    {"index": 1, "storage_object": "core/fileio_1/f1"}
                ],
                "node_acls": []
            }]
        }]
    })
}

fn cfg(v: &serde_json::Value) -> Config {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("test config: {e}"))
}

fn lines(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    plan(&cfg(a), &cfg(b))
        .iter()
        .map(|c| c.to_string())
        .collect()
}

#[test]
fn equal_configs_plan_nothing() {
    assert!(lines(&base(), &base()).is_empty());
    assert_eq!(
        render(&[]),
        "no changes: the running configuration already equals the file"
    );
}

#[test]
fn order_does_not_matter() {
    let mut b = base();
    b["storage_objects"]
        .as_array_mut()
        .expect("array")
        .reverse();
    b["targets"][0]["tpgs"][0]["luns"]
        .as_array_mut()
        .expect("array")
        .reverse();
    assert!(lines(&base(), &b).is_empty(), "{:?}", lines(&base(), &b));
}

#[test]
fn devices_are_named_by_their_tree_path() {
    let mut b = base();
    b["storage_objects"]
        .as_array_mut()
        .expect("array")
        .push(serde_json::json!(
            {"plugin": "block", "hba": 2, "name": "b1", "wwn": "w-b1", "dev": "/dev/loop9",
             "vendor_id": "IRONLUN", "product_id": "IBLOCK", "revision": "1.0",
             "size": 1048576, "write_back": false, "readonly": false, "attributes": {}}
        ));
    assert_eq!(
        lines(&base(), &b),
        vec!["create core/iblock_2/b1".to_string()]
    );
}

#[test]
fn new_objects_are_created_parents_first_and_gone_ones_deleted() {
    let mut b = base();
    b["storage_objects"]
        .as_array_mut()
        .expect("array")
        .push(serde_json::json!(
            {"plugin": "ramdisk", "hba": 0, "name": "rd9", "wwn": "w-rd9",
             "vendor_id": "IRONLUN", "product_id": "RAMDISK-MCP", "revision": "1.0",
             "size": 1048576, "write_back": false, "readonly": false, "attributes": {}}
        ));
    let tpg = &mut b["targets"][0]["tpgs"][0];
    tpg["luns"].as_array_mut().expect("array").remove(1);
    tpg["luns"]
        .as_array_mut()
        .expect("array")
        .push(serde_json::json!({"index": 7, "storage_object": "core/rd_mcp_0/rd9"}));
    tpg["node_acls"] = serde_json::json!([{
        "node_wwn": "iqn.2026-12.test:host",
        "mapped_luns": [{"index": 0, "tpg_lun": 7, "write_protect": false}]
    }]);
    let t = "iscsi/iqn.2026-12.test:t/tpgt_1";
    assert_eq!(
        lines(&base(), &b),
        vec![
            format!("delete {t}/lun/lun_1"),
            "create core/rd_mcp_0/rd9".to_string(),
            format!("create {t}/lun/lun_7"),
            format!("create {t}/acls/iqn.2026-12.test:host"),
            format!("create {t}/acls/iqn.2026-12.test:host/lun_0"),
        ]
    );
    // A deleted target is one line, not one per object under it.
    let mut c = base();
    c["targets"] = serde_json::json!([]);
    assert_eq!(
        lines(&base(), &c),
        vec!["delete iscsi/iqn.2026-12.test:t".to_string()]
    );
}

#[test]
fn changed_values_are_named_with_before_and_after() {
    let mut b = base();
    b["storage_objects"][1]["attributes"]["emulate_tpu"] = serde_json::json!(1);
    b["targets"][0]["tpgs"][0]["enable"] = serde_json::json!(false);
    assert_eq!(
        lines(&base(), &b),
        vec![
            "set    core/fileio_1/f1/attrib/emulate_tpu: 0 -> 1".to_string(),
            "set    iscsi/iqn.2026-12.test:t/tpgt_1/enable: true -> false".to_string(),
        ]
    );
}

#[test]
fn secrets_are_never_printed() {
    let mut a = base();
    a["targets"][0]["tpgs"][0]["chap_userid"] = serde_json::json!("user");
    a["targets"][0]["tpgs"][0]["chap_password"] = serde_json::json!("old-secret-1234");
    let mut b = a.clone();
    b["targets"][0]["tpgs"][0]["chap_password"] = serde_json::json!("new-secret-5678");
    let text = render(&plan(&cfg(&a), &cfg(&b)));
    assert!(
        text.contains("iscsi/iqn.2026-12.test:t/tpgt_1/auth/password: ******** -> ********"),
        "{text}"
    );
    assert!(
        !text.contains("old-secret") && !text.contains("new-secret"),
        "{text}"
    );
    assert!(text.ends_with("1 change(s)"), "{text}");
}

#[test]
fn chap_fields_are_named_by_their_tree_paths() {
    let a = base();
    let mut b = a.clone();
    b["targets"][0]["tpgs"][0]["chap_mutual_userid"] = serde_json::json!("tgt");
    b["discovery_auth"]["chap_userid"] = serde_json::json!("disc");
    b["discovery_auth"]["enforce_discovery_auth"] = serde_json::json!(true);
    let got = lines(&a, &b);
    for want in [
        " iscsi/iqn.2026-12.test:t/tpgt_1/auth/userid_mutual: (none) -> tgt",
        " iscsi/discovery_auth/userid: (none) -> disc",
        " iscsi/discovery_auth/enforce_discovery_auth: false -> true",
    ] {
        assert!(
            got.iter()
                .any(|l| l.starts_with("set") && l.ends_with(want)),
            "{want}: {got:?}"
        );
    }
}

#[test]
fn the_engine_owns_alua_status() {
    let group = |state: u8, status: u8| {
        let mut g = crate::model::alua::AluaTpg::new("west", 1);
        (g.alua_access_state, g.alua_access_status) = (state, status);
        serde_json::json!([g])
    };
    let mut running = base();
    running["storage_objects"][0]["alua_tpgs"] = group(1, 2);
    let mut file = base();
    file["storage_objects"][0]["alua_tpgs"] = group(1, 0);
    let (cur, mut new) = (cfg(&running), cfg(&file));
    assert_eq!(plan(&cur, &new).len(), 1, "the status alone differs");
    adopt_engine_owned(&cur, &mut new);
    assert!(plan(&cur, &new).is_empty(), "{:?}", plan(&cur, &new));
    // A state change is still a change; a group the engine does not have keeps the file's.
    file["storage_objects"][0]["alua_tpgs"] = group(0, 0);
    file["storage_objects"][1]["alua_tpgs"] = group(0, 1);
    let mut new = cfg(&file);
    adopt_engine_owned(&cur, &mut new);
    assert_eq!(new.storage_objects[0].alua_tpgs[0].alua_access_status, 2);
    assert_eq!(new.storage_objects[1].alua_tpgs[0].alua_access_status, 1);
    let got: Vec<String> = plan(&cur, &new).iter().map(|c| c.to_string()).collect();
    assert!(
        got.iter()
            .any(|l| l.contains("rd0/alua/west/alua_access_state")),
        "{got:?}"
    );
}
