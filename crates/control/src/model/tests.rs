use super::*;

#[test]
fn sizes_parse_with_binary_suffixes() {
    assert_eq!(parse_size("size", "1G"), Ok(1 << 30));
    assert_eq!(parse_size("size", "512"), Ok(512));
    assert_eq!(parse_size("size", "64MiB"), Ok(64 << 20));
    assert_eq!(parse_size("size", "2t"), Ok(2 << 40));
    for bad in ["", "G", "1X", "-1", "1.5G", "99999999999P", "1 X"] {
        let e = parse_size("size", bad).expect_err(bad);
        assert!(e.starts_with("size:"), "{e}");
    }
}

#[test]
fn serials_are_uuid_shaped_and_differ() {
    let a = generate_serial();
    assert_eq!(a.len(), 36);
    assert_eq!(a.as_bytes()[14], b'4');
    assert_ne!(a, generate_serial());
}

#[test]
fn hba_names() {
    assert_eq!(Kind::parse_hba("fileio_3"), Ok((Kind::FileIo, 3)));
    assert_eq!(Kind::parse_hba("pscsi_0"), Ok((Kind::PScsi, 0)));
    assert!(Kind::parse_hba("user_0")
        .expect_err("user")
        .contains("not supported by this build"));
    assert!(Kind::parse_hba("fileio_01").is_err());
    assert!(Kind::parse_hba("disk_0").is_err());
}

#[test]
fn device_attribute_values_load_as_numbers_or_text_and_save_as_numbers() {
    let so = |attrs: &str| {
        serde_json::from_str::<StorageObject>(&format!(
            r#"{{"plugin": "ramdisk", "name": "r", "wwn": "s", "vendor_id": "V",
                "product_id": "P", "revision": "1", "size": 1048576, "attributes": {attrs}}}"#
        ))
    };
    let ok = so(r#"{"block_size": 4096, "emulate_tpu": "1", "queue_depth": "007"}"#).expect("ok");
    assert_eq!(ok.attributes.get("block_size"), Some(&4096));
    assert_eq!(ok.attributes.get("emulate_tpu"), Some(&1));
    assert_eq!(ok.attributes.get("queue_depth"), Some(&7));
    let json = serde_json::to_string(&ok).expect("json");
    assert!(json.contains(r#""emulate_tpu":1"#), "{json}");
    for (attrs, needle) in [
        (r#"{"emulate_dpo": 1}"#, "emulate_dpo: only 0 is accepted ("),
        (r#"{"emulate_tpu": "abc"}"#, "emulate_tpu: invalid value"),
        (r#"{"emulate_tpu": -1}"#, "emulate_tpu: invalid value"),
        (
            r#"{"frobnicate": 1}"#,
            "frobnicate: unknown attribute; valid: block_size",
        ),
    ] {
        let e = so(attrs).expect_err(attrs).to_string();
        assert!(e.contains(needle), "{attrs}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn states_parse_by_code_and_name() {
    for (v, c) in [
        ("ao", 0),
        ("ANO", 1),
        ("s", 2),
        ("u", 3),
        ("o", 14),
        ("t", 15),
        ("14", 14),
        ("0x0f", 15),
        ("Active/Optimized", 0),
        ("standby", 2),
    ] {
        assert_eq!(alua::parse_group_state(v), Some(c), "{v}");
    }
    for bad in ["", "4", "16", "x", "lbd", "-1", "0x10"] {
        assert_eq!(alua::parse_group_state(bad), None, "{bad}");
    }
}

#[test]
fn setting_a_state_is_checked_and_marks_the_status_implicit() {
    let mut g = AluaTpg::new("west", 1);
    g.set("w", "alua_access_state", "s").expect("standby");
    assert_eq!((g.alua_access_state, g.alua_access_status), (2, 2));
    g.alua_access_status = 1;
    g.set("w", "alua_access_state", "2").expect("same state");
    assert_eq!(g.alua_access_status, 1, "same state is no transition");
    g.set("w", "alua_support_standby", "0").expect("flag");
    g.set("w", "alua_access_state", "ao").expect("ao");
    let e = g
        .set("w", "alua_access_state", "s")
        .expect_err("unsupported");
    assert!(
        e.contains("not a supported state") && e.starts_with("w:"),
        "{e}"
    );
    g.set("w", "alua_access_type", "2").expect("explicit only");
    let e = g
        .set("w", "alua_access_state", "u")
        .expect_err("no implicit");
    assert!(e.contains("alua_access_type"), "{e}");
    for (attr, v, needle) in [
        ("nonop_delay_msecs", "10001", "0-10000"),
        ("trans_delay_msecs", "30001", "0-30000"),
        ("implicit_trans_secs", "256", "0-255"),
        ("preferred", "2", "valid values: 0, 1"),
        ("alua_access_type", "4", "3 (Implicit and Explicit)"),
        ("alua_access_status", "3", "2 (Altered by Implicit ALUA)"),
        ("tg_pt_gp_id", "4", "read-only"),
        ("members", "x", "read-only"),
        ("bogus", "1", "unknown attribute"),
    ] {
        let before = g.clone();
        let e = g.set("at", attr, v).expect_err(attr);
        assert!(e.contains(needle), "{attr}: {e}");
        assert_eq!(g, before);
    }
}

#[test]
fn supported_bits_follow_the_flags() {
    let g = AluaTpg::new("g", 1);
    assert_eq!(g.supported_bits(), 0xCF);
}

#[test]
fn debug_output_never_shows_a_chap_secret() {
    let chap = Chap {
        chap_userid: "chapuser".into(),
        chap_password: "Sekr1t-initiator".into(),
        chap_mutual_userid: "targetuser".into(),
        chap_mutual_password: "Sekr1t-target".into(),
    };
    let mut cfg = Config::default();
    cfg.discovery_auth.chap = chap.clone();
    let mut tpg = Tpg::new(1, 1);
    tpg.chap = chap.clone();
    cfg.targets.push(Target {
        wwn: "iqn.2026-11.org.ironlun:t".into(),
        fabric: "iscsi".into(),
        tpgs: vec![tpg],
    });
    for shown in [format!("{chap:?}"), format!("{cfg:?}"), format!("{cfg:#?}")] {
        assert!(!shown.contains("Sekr1t"), "{shown}");
        assert!(
            shown.contains("chapuser") && shown.contains("********"),
            "{shown}"
        );
    }
    assert!(format!("{:?}", Chap::default()).contains("chap_password: \"\""));
}
