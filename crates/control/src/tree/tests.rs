use super::*;
use crate::model::*;

/// A fabric/engine stand-in: two params, and device attributes for every device.
pub(crate) struct Fake;

impl ParamSchema for Fake {
    fn param_defaults(&self) -> Vec<(String, String)> {
        vec![
            ("HeaderDigest".into(), "CRC32C,None".into()),
            ("MaxConnections".into(), "1".into()),
        ]
    }
    fn validate_param(&self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "HeaderDigest" if ["None", "CRC32C", "CRC32C,None", "None,CRC32C"].contains(&value) => {
                Ok(())
            }
            "MaxConnections" if value.parse::<u16>().is_ok_and(|n| n >= 1) => Ok(()),
            _ => Err(format!("'{value}' is not valid")),
        }
    }
}

impl Inspect for Fake {
    fn device_attributes(&self, _key: &DevKey) -> Vec<(String, String)> {
        vec![
            ("block_size".into(), "512".into()),
            ("emulate_tpu".into(), "0".into()),
        ]
    }
    fn device_info(&self, _key: &DevKey) -> Option<String> {
        None
    }
    fn device_size(&self, _key: &DevKey) -> Option<u64> {
        None
    }
}

const T: &str = "iqn.2026-11.org.ironlun:t1";
const I: &str = "iqn.2026-11.org.example:host1";

fn run(cfg: &Config, op: Op) -> Result<Config, String> {
    mutate(cfg, &Fake, &op).map(|(c, _)| c)
}
fn create(cfg: &Config, path: &str, args: &[&str]) -> Result<Config, String> {
    run(
        cfg,
        Op::Create {
            path: path.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
        },
    )
}
fn set(cfg: &Config, path: &str, value: &str) -> Result<Config, String> {
    run(
        cfg,
        Op::Set {
            path: path.into(),
            value: value.into(),
        },
    )
}
fn delete(cfg: &Config, path: &str) -> Result<Config, String> {
    run(cfg, Op::Delete { path: path.into() })
}

/// The example session of docs/cli.md, step by step.
fn example() -> Config {
    let mut c = Config::default();
    c = create(
        &c,
        "core/fileio_0/disk0",
        &["path=/srv/disk0.img", "size=1G"],
    )
    .expect("device");
    c = create(&c, &format!("iscsi/{T}/tpgt_1"), &[]).expect("tpg");
    c = create(&c, &format!("iscsi/{T}/tpgt_1/np/127.0.0.1:3321"), &[]).expect("np");
    c = create(
        &c,
        &format!("iscsi/{T}/tpgt_1/lun/lun_0"),
        &["dev=core/fileio_0/disk0"],
    )
    .expect("lun");
    c = create(&c, &format!("iscsi/{T}/tpgt_1/acls/{I}"), &[]).expect("acl");
    c = create(
        &c,
        &format!("iscsi/{T}/tpgt_1/acls/{I}/lun_0"),
        &["tpg_lun=0", "write_protect=0"],
    )
    .expect("mapped");
    set(&c, &format!("iscsi/{T}/tpgt_1/enable"), "1").expect("enable")
}

#[test]
fn example_session_builds_the_tree() {
    let c = example();
    let so = &c.storage_objects[0];
    assert_eq!(so.size, Some(1 << 30));
    assert_eq!(so.dev.as_deref(), Some("/srv/disk0.img"));
    assert!(so.write_back, "fileio defaults to write-back like rtslib");
    let tpg = c.target(T).and_then(|t| t.tpg(1)).expect("tpg");
    assert!(tpg.enable);
    assert_eq!(tpg.rtpi, 1);
    assert_eq!(tpg.portals[0].addr().to_string(), "127.0.0.1:3321");
    assert_eq!(
        tpg.acl(I).map(|a| a.mapped_luns.clone()),
        Some(vec![MappedLunCfg {
            index: 0,
            tpg_lun: 0,
            write_protect: false
        }])
    );

    let out = ls(&c, &Fake, "").expect("ls");
    for needle in [
        "core/\n  fileio_0/\n    disk0/\n",
        "      control = path=/srv/disk0.img,size=1073741824,write_back=1\n",
        "        block_size = 512\n",
        "iscsi/\n  discovery_auth/\n",
        &format!("  {T}/\n    tpgt_1/\n      enable = 1\n      rtpi = 1\n"),
        "        127.0.0.1:3321/\n",
        "        lun_0 -> core/fileio_0/disk0\n",
        "          lun_0 -> lun/lun_0\n            tpg_lun = 0\n            write_protect = 0\n",
        "        HeaderDigest = CRC32C,None\n",
        "        members = fileio_0/disk0\n",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    assert_eq!(
        get(&c, &Fake, &format!("iscsi/{T}/tpgt_1/lun/lun_0")),
        Ok("core/fileio_0/disk0".into())
    );
    assert_eq!(
        get(&c, &Fake, "/core/fileio_0/disk0/wwn/vendor_id/"),
        Ok("IRONLUN".into())
    );
    assert!(get(&c, &Fake, "core/fileio_0")
        .expect_err("dir")
        .contains("is a directory"));
}

#[test]
fn bad_inputs_are_one_line_errors_and_change_nothing() {
    let c = example();
    let tp = format!("iscsi/{T}/tpgt_1");
    let cases: Vec<(Op, &str)> = vec![
        (
            Op::Set {
                path: format!("{tp}/attrib/nonsense"),
                value: "1".into(),
            },
            "valid: authentication",
        ),
        (
            Op::Set {
                path: format!("{tp}/attrib/authentication"),
                value: "2".into(),
            },
            "expected 0 or 1",
        ),
        (
            Op::Set {
                path: format!("{tp}/enable"),
                value: "yes".into(),
            },
            "expected 0 or 1",
        ),
        (
            Op::Set {
                path: format!("{tp}/rtpi"),
                value: "0".into(),
            },
            "expected 1-65535",
        ),
        (
            Op::Set {
                path: format!("{tp}/rtpi"),
                value: "5".into(),
            },
            "disabled",
        ),
        (
            Op::Set {
                path: format!("{tp}/param/HeaderDigest"),
                value: "MD5".into(),
            },
            "param/HeaderDigest",
        ),
        (
            Op::Set {
                path: format!("{tp}/param/Bogus"),
                value: "1".into(),
            },
            "unknown parameter",
        ),
        (
            Op::Set {
                path: "core/fileio_0/disk0/attrib/bogus".into(),
                value: "1".into(),
            },
            "valid: block_size",
        ),
        (
            Op::Set {
                path: "core/fileio_0/disk0/wwn/vendor_id".into(),
                value: "TOOLONGVENDOR".into(),
            },
            "1-8",
        ),
        (
            Op::Set {
                path: "core/fileio_0/disk0/wwn/product_id".into(),
                value: "X".into(),
            },
            "exported by",
        ),
        (
            Op::Set {
                path: "core/fileio_0/disk0/wwn/company_id".into(),
                value: "0x1".into(),
            },
            "read-only",
        ),
        (
            Op::Set {
                path: "core/fileio_0/disk0/info".into(),
                value: "x".into(),
            },
            "read-only",
        ),
        (
            Op::Set {
                path: "core/fileio_0/disk0/enable".into(),
                value: "0".into(),
            },
            "cannot be disabled",
        ),
        (
            Op::Set {
                path: "core/fileio_0/nope/attrib/block_size".into(),
                value: "512".into(),
            },
            "no such device",
        ),
        (
            Op::Set {
                path: "nowhere/x".into(),
                value: "1".into(),
            },
            "no such object",
        ),
        (
            Op::Set {
                path: format!("{tp}/acls/{I}/auth/password"),
                value: "has space".into(),
            },
            "printable",
        ),
        (
            Op::Set {
                path: format!("{tp}/acls/{I}/lun_0/tpg_lun"),
                value: "7".into(),
            },
            "not a LUN",
        ),
        (
            Op::Create {
                path: "core/pscsi_0/sg0".into(),
                args: vec![],
            },
            "dev=</dev/sgN|/dev/sdX|H:C:T:L> is required",
        ),
        (
            Op::Create {
                path: "core/fileio_0/disk0".into(),
                args: vec!["path=/x".into()],
            },
            "already exists",
        ),
        (
            Op::Create {
                path: "core/fileio_0/d2".into(),
                args: vec!["path=rel.img".into()],
            },
            "absolute",
        ),
        (
            Op::Create {
                path: "core/fileio_0/d2".into(),
                args: vec!["path=/x".into(), "size=1Q".into()],
            },
            "invalid size",
        ),
        (
            Op::Create {
                path: "core/fileio_0/d2".into(),
                args: vec!["path=/x".into(), "colour=red".into()],
            },
            "unknown argument 'colour'",
        ),
        (
            Op::Create {
                path: "core/rd_mcp_0/r".into(),
                args: vec![],
            },
            "needs size",
        ),
        (
            Op::Create {
                path: "core/rd_mcp_0/r".into(),
                args: vec!["size=1000".into()],
            },
            "multiple of 512",
        ),
        (
            Op::Create {
                path: "core/fileio_0/d2".into(),
                args: vec!["path=/x".into(), "wwn".into()],
            },
            "key=value",
        ),
        (
            Op::Create {
                path: "iscsi/iqn.bad/tpgt_1".into(),
                args: vec![],
            },
            "target name",
        ),
        (
            Op::Create {
                path: format!("iscsi/{T}/tpgt_0"),
                args: vec![],
            },
            "1-65535",
        ),
        (
            Op::Create {
                path: format!("iscsi/{T}/tpgt_2"),
                args: vec!["rtpi=1".into()],
            },
            "already used",
        ),
        (
            Op::Create {
                path: format!("{tp}/np/localhost:3260"),
                args: vec![],
            },
            "expected <IPv4>:<port>",
        ),
        (
            Op::Create {
                path: format!("{tp}/np/127.0.0.1:0"),
                args: vec![],
            },
            "port must be",
        ),
        (
            Op::Create {
                path: format!("{tp}/np/127.0.0.1:3321"),
                args: vec![],
            },
            "already exists",
        ),
        (
            Op::Create {
                path: format!("{tp}/lun/lun_1"),
                args: vec!["dev=core/fileio_0/zz".into()],
            },
            "no such device",
        ),
        (
            Op::Create {
                path: format!("{tp}/lun/lun_99999"),
                args: vec!["dev=core/fileio_0/disk0".into()],
            },
            "0-16383",
        ),
        (
            Op::Create {
                path: format!("{tp}/acls/iqn.2026-11.org.example:UPPER"),
                args: vec![],
            },
            "lower case",
        ),
        (
            Op::Create {
                path: format!("{tp}/acls/{I}/lun_1"),
                args: vec!["tpg_lun=3".into()],
            },
            "no such LUN",
        ),
        (
            Op::Create {
                path: format!("{tp}/acls/{I}/lun_1"),
                args: vec![],
            },
            "tpg_lun=<n> is required",
        ),
        (
            Op::Create {
                path: format!("iscsi/{T}/tpgt_9/np/127.0.0.1:1"),
                args: vec![],
            },
            "no such TPG",
        ),
        (
            Op::Delete {
                path: format!("{tp}/lun/lun_5"),
            },
            "no such LUN",
        ),
        (
            Op::Delete {
                path: "core".into(),
            },
            "cannot be deleted",
        ),
        (
            Op::Link {
                src: "core/fileio_0/disk0".into(),
                dst: format!("{tp}/lun/lun_0"),
            },
            "already exists",
        ),
        (
            Op::Link {
                src: format!("{tp}/lun/lun_0"),
                dst: "core/fileio_0/disk0".into(),
            },
            "expected link",
        ),
    ];
    let more: Vec<(Op, &str)> = vec![
        (
            Op::Set {
                path: "core/alua/lu_gps/default_lu_gp/lu_gp_id".into(),
                value: "3".into(),
            },
            "read-only",
        ),
        (
            Op::Set {
                path: format!("{tp}/lun"),
                value: "3".into(),
            },
            "not an attribute",
        ),
        (
            Op::Set {
                path: format!("{tp}/acls/{I}/attrib/nopin_timeout"),
                value: "3".into(),
            },
            "not available",
        ),
        (
            Op::Set {
                path: "core/fileio_0/disk0/pr/res_holder".into(),
                value: "3".into(),
            },
            "read-only",
        ),
        (
            Op::Set {
                path: "core/fileio_0/disk0/pr/res_aptpl_metadata".into(),
                value: "x".into(),
            },
            "unknown attribute; pr/ has (read-only) res_aptpl_active",
        ),
        (
            Op::Create {
                path: "core/fileio_0/disk0/pr/res_type".into(),
                args: vec![],
            },
            "cannot be created",
        ),
        (
            Op::Delete {
                path: "core/fileio_0/disk0/pr".into(),
            },
            "cannot be deleted",
        ),
        (
            Op::Set {
                path: "core/fileio_0/disk0/alua/default_tg_pt_gp/x".into(),
                value: "3".into(),
            },
            "unknown attribute; valid: alua_access_state",
        ),
    ];
    for (op, needle) in cases.into_iter().chain(more) {
        let e = mutate(&c, &Fake, &op)
            .map(|_| ())
            .expect_err(&format!("{op:?}"));
        assert!(e.contains(needle), "{op:?}: {e}");
        assert!(!e.contains('\n'), "{op:?}: multi-line error {e}");
    }
}

#[test]
fn delete_cascades_like_targetcli() {
    let c = example();
    let (after, msg) = mutate(
        &c,
        &Fake,
        &Op::Delete {
            path: "core/fileio_0/disk0".into(),
        },
    )
    .expect("delete");
    assert!(after.storage_objects.is_empty());
    let tpg = after.target(T).and_then(|t| t.tpg(1)).expect("tpg stays");
    assert!(tpg.luns.is_empty());
    assert!(
        tpg.acl(I).is_some_and(|a| a.mapped_luns.is_empty()),
        "ACL stays, mapping goes"
    );
    assert!(
        msg.contains("also removed")
            && msg.contains("lun/lun_0")
            && msg.contains(&format!("acls/{I}/lun_0")),
        "{msg}"
    );

    let after = delete(&c, &format!("iscsi/{T}/tpgt_1/lun/lun_0")).expect("lun");
    assert_eq!(after.storage_objects.len(), 1, "device stays");
    let after = delete(&c, &format!("iscsi/{T}")).expect("target");
    assert!(after.targets.is_empty());
}

#[test]
fn links_in_ln_order() {
    let mut c = example();
    c = run(
        &c,
        Op::Link {
            src: "core/fileio_0/disk0".into(),
            dst: format!("iscsi/{T}/tpgt_1/lun/lun_3"),
        },
    )
    .expect("lun");
    c = run(
        &c,
        Op::Link {
            src: format!("iscsi/{T}/tpgt_1/lun/lun_3"),
            dst: format!("iscsi/{T}/tpgt_1/acls/{I}/lun_7"),
        },
    )
    .expect("mapped");
    assert_eq!(
        get(&c, &Fake, &format!("iscsi/{T}/tpgt_1/acls/{I}/lun_7")),
        Ok("lun/lun_3".into())
    );
    let e = run(
        &c,
        Op::Link {
            src: format!("iscsi/{T}/tpgt_2/lun/lun_3"),
            dst: format!("iscsi/{T}/tpgt_1/acls/{I}/lun_8"),
        },
    )
    .expect_err("cross tpg");
    assert!(e.contains("own TPG"), "{e}");
}

#[test]
fn rtpis_are_unique_lowest_free_and_settable_while_disabled() {
    let mut c = example();
    c = create(&c, "iscsi/iqn.2026-11.org.ironlun:t2/tpgt_1", &[]).expect("t2");
    c = create(&c, "iscsi/iqn.2026-11.org.ironlun:t2/tpgt_2", &[]).expect("t2 tpg2");
    let rtpi = |c: &Config, t: &str, g| c.target(t).and_then(|x| x.tpg(g)).map(|x| x.rtpi);
    assert_eq!(rtpi(&c, "iqn.2026-11.org.ironlun:t2", 1), Some(2));
    assert_eq!(rtpi(&c, "iqn.2026-11.org.ironlun:t2", 2), Some(3));
    c = set(&c, "iscsi/iqn.2026-11.org.ironlun:t2/tpgt_1/rtpi", "100").expect("pin");
    assert_eq!(rtpi(&c, "iqn.2026-11.org.ironlun:t2", 1), Some(100));
    let e = set(&c, "iscsi/iqn.2026-11.org.ironlun:t2/tpgt_2/rtpi", "100").expect_err("dup");
    assert!(
        e.contains("already used by iscsi/iqn.2026-11.org.ironlun:t2/tpgt_1"),
        "{e}"
    );
    c = create(&c, "iscsi/iqn.2026-11.org.ironlun:t3/tpgt_1", &[]).expect("t3");
    assert_eq!(
        rtpi(&c, "iqn.2026-11.org.ironlun:t3", 1),
        Some(2),
        "lowest free is reused"
    );
}

#[test]
fn params_store_only_overrides_and_secrets_are_masked_in_ls() {
    let mut c = example();
    let tp = format!("iscsi/{T}/tpgt_1");
    c = set(&c, &format!("{tp}/param/HeaderDigest"), "CRC32C").expect("param");
    assert_eq!(
        c.target(T)
            .and_then(|t| t.tpg(1))
            .map(|g| g.parameters.len()),
        Some(1)
    );
    c = set(&c, &format!("{tp}/param/HeaderDigest"), "CRC32C,None").expect("back to default");
    assert_eq!(
        c.target(T)
            .and_then(|t| t.tpg(1))
            .map(|g| g.parameters.len()),
        Some(0)
    );

    c = set(&c, &format!("{tp}/auth/userid"), "joe").expect("user");
    let (next, msg) = mutate(
        &c,
        &Fake,
        &Op::Set {
            path: format!("{tp}/auth/password"),
            value: "secret123456".into(),
        },
    )
    .expect("pw");
    assert!(msg.ends_with("/auth/password = ********"), "{msg}");
    c = next;
    let e =
        set(&c, &format!("{tp}/auth/password_mutual"), "secret123456").expect_err("same secret");
    assert!(e.contains("must differ"), "{e}");
    let out = ls(&c, &Fake, &format!("{tp}/auth")).expect("ls");
    assert!(
        out.contains("password = ********")
            && out.contains("userid = joe")
            && !out.contains("secret123456"),
        "{out}"
    );
    assert_eq!(
        get(&c, &Fake, &format!("{tp}/auth/password")),
        Ok("secret123456".into())
    );
}

#[test]
fn chap_secrets_are_twelve_bytes_or_more_and_never_serve_both_directions() {
    let tp = format!("iscsi/{T}/tpgt_1");
    let acl = format!("{tp}/acls/{I}");
    let c = example();
    // RFC 7143 §12.1.3: 96 bits; one byte short is refused with the field and the rule.
    for at in [
        format!("{tp}/auth/password"),
        format!("{tp}/auth/password_mutual"),
        format!("{acl}/auth/password"),
        format!("{acl}/auth/password_mutual"),
        "iscsi/discovery_auth/password".to_string(),
        "iscsi/discovery_auth/password_mutual".to_string(),
    ] {
        let e = set(&c, &at, "elevenchars").expect_err("11 bytes");
        assert!(
            e.starts_with(&format!("{at}: ")) && e.contains("12-255"),
            "{e}"
        );
        assert!(
            !e.contains("elevenchars"),
            "the secret is not repeated: {e}"
        );
        set(&c, &at, "twelve_chars").expect("12 bytes");
    }
    // One secret per direction within each set, and across sets: a target secret is no
    // initiator's secret anywhere in the tree.
    let c = set(&c, &format!("{tp}/auth/password"), "tpg_initiator_secret").expect("tpg");
    let c = set(&c, &format!("{acl}/auth/password"), "acl_initiator_secret").expect("acl");
    let c = set(&c, "iscsi/discovery_auth/password", "discovery_secret").expect("disc");
    for (at, same) in [
        (
            format!("{acl}/auth/password_mutual"),
            "acl_initiator_secret",
        ),
        (
            format!("{acl}/auth/password_mutual"),
            "tpg_initiator_secret",
        ),
        (format!("{tp}/auth/password_mutual"), "acl_initiator_secret"),
        (
            "iscsi/discovery_auth/password_mutual".to_string(),
            "tpg_initiator_secret",
        ),
        (format!("{tp}/auth/password_mutual"), "discovery_secret"),
    ] {
        let e = set(&c, &at, same).expect_err("same secret both ways");
        assert!(e.contains(&format!("{at} must differ")), "{e}");
        assert!(!e.contains(same), "the secret is not repeated: {e}");
    }
    set(
        &c,
        &format!("{acl}/auth/password_mutual"),
        "target_secret_1",
    )
    .expect("distinct");
    // config.json loading applies the same rules.
    let mut short = c.clone();
    if let Some(a) = short
        .targets
        .iter_mut()
        .flat_map(|t| t.tpgs.iter_mut())
        .flat_map(|g| g.node_acls.iter_mut())
        .next()
    {
        a.chap.chap_password = "short".into();
    }
    let e = crate::persist::from_json(&crate::persist::to_json(&short), &Fake).expect_err("load");
    assert!(e.contains(&format!("{acl}/auth/password: ")), "{e}");
    let mut both = c.clone();
    both.discovery_auth.chap.chap_mutual_password = "acl_initiator_secret".into();
    let e = crate::persist::from_json(&crate::persist::to_json(&both), &Fake).expect_err("load");
    assert!(
        e.contains("iscsi/discovery_auth/password_mutual must differ"),
        "{e}"
    );
}

#[test]
fn discovery_auth_needs_credentials_before_enforcing() {
    let c = Config::default();
    let e = set(&c, "iscsi/discovery_auth/enforce_discovery_auth", "1").expect_err("no creds");
    assert!(e.contains("userid and password"), "{e}");
    let c = set(&c, "iscsi/discovery_auth/userid", "d").expect("u");
    let c = set(&c, "iscsi/discovery_auth/password", "discoverypass").expect("p");
    let c = set(&c, "iscsi/discovery_auth/enforce_discovery_auth", "1").expect("enforce");
    assert!(c.discovery_auth.enforce_discovery_auth);
}

#[test]
fn wwn_changes_only_while_not_exported_and_serials_are_unique() {
    let mut c = Config::default();
    c = create(&c, "core/rd_mcp_0/r0", &["size=1M", "wwn=serial-a"]).expect("r0");
    c = set(&c, "core/rd_mcp_0/r0/wwn/product_id", "MYDISK").expect("product");
    assert_eq!(c.storage_objects[0].product_id, "MYDISK");
    let e = create(&c, "core/rd_mcp_1/r1", &["size=1M", "wwn=serial-a"]).expect_err("dup serial");
    assert!(e.contains("already used by core/rd_mcp_0/r0"), "{e}");
    c = set(&c, "core/rd_mcp_0/r0/attrib/emulate_tpu", "1").expect("attr");
    assert_eq!(c.storage_objects[0].attributes.get("emulate_tpu"), Some(&1));
}

/// `resize_request` on `example()` plus an rd_mcp and an iblock device.
fn resize_cfg() -> Config {
    let c = create(&example(), "core/rd_mcp_0/r0", &["size=1M"]).expect("rd");
    create(&c, "core/iblock_0/b0", &["path=/dev/loop7"]).expect("iblock")
}

fn req(cfg: &Config, path: &str, value: &str) -> Result<Option<Resize>, String> {
    resize_request(cfg, &Fake, path, value)
}

#[test]
fn control_writes_parse_into_resizes() {
    let c = resize_cfg();
    let key = |p: &str| DevKey::parse(p).expect("key");
    assert_eq!(
        req(&c, "core/fileio_0/disk0/control", "size=2G"),
        Ok(Some(Resize {
            key: key("core/fileio_0/disk0"),
            size: Some(2 << 30),
            thick: false
        }))
    );
    // A whole control line with only the size changed is accepted.
    assert_eq!(
        req(
            &c,
            "/core/fileio_0/disk0/control",
            "path=/srv/disk0.img,size=3G,write_back=1"
        ),
        Ok(Some(Resize {
            key: key("core/fileio_0/disk0"),
            size: Some(3 << 30),
            thick: false
        }))
    );
    assert_eq!(
        req(&c, "core/rd_mcp_0/r0/control", "size=512K,shrink=1"),
        Ok(Some(Resize {
            key: key("core/rd_mcp_0/r0"),
            size: Some(512 << 10),
            thick: false
        }))
    );
    assert_eq!(
        req(&c, "core/iblock_0/b0/control", "rescan=1"),
        Ok(Some(Resize {
            key: key("core/iblock_0/b0"),
            size: None,
            thick: false
        }))
    );
    assert_eq!(
        req(&c, "core/fileio_0/disk0/control", " rescan=1 "),
        Ok(Some(Resize {
            key: key("core/fileio_0/disk0"),
            size: None,
            thick: false
        }))
    );
    // sparse=0: preallocate what the growth adds (fileio only, with size=).
    assert_eq!(
        req(&c, "core/fileio_0/disk0/control", "size=4G,sparse=0"),
        Ok(Some(Resize {
            key: key("core/fileio_0/disk0"),
            size: Some(4 << 30),
            thick: true
        }))
    );
    assert_eq!(
        req(&c, "core/fileio_0/disk0/control", "size=4G,sparse=1").map(|r| r.map(|r| r.thick)),
        Ok(Some(false))
    );
    // Other paths are plain mutations.
    assert_eq!(req(&c, &format!("iscsi/{T}/tpgt_1/enable"), "1"), Ok(None));
    assert_eq!(req(&c, "core/rd_mcp_0/r0/enable", "1"), Ok(None));
    // mutate() itself does not apply a resize: only the daemon can.
    let e = set(&c, "core/rd_mcp_0/r0/control", "size=2M").expect_err("live only");
    assert!(e.contains("live capacity change"), "{e}");
}

#[test]
fn bad_control_writes_name_the_field() {
    let c = resize_cfg();
    let fio = "core/fileio_0/disk0/control";
    for (path, value, needle) in [
        (fio, "size=0", "size must not be zero"),
        (
            fio,
            "size=1000",
            "not a multiple of the 512-byte logical block size",
        ),
        (
            fio,
            "size=512M",
            "smaller than the current 1073741824 bytes",
        ),
        (fio, "size=512M,shrink=0", "add shrink=1"),
        (fio, "size=1X", "size: invalid size"),
        (fio, "size=2G,rescan=1", "not both"),
        (fio, "rescan=0", "rescan: '0' is not valid"),
        (fio, "rescan=1,shrink=1", "shrink=1 goes with size="),
        (fio, "shrink=1", "expected size="),
        (fio, "", "expected size="),
        (fio, "size", "is not key=value"),
        (fio, "size=2G,size=3G", "size given twice"),
        (fio, "colour=blue", "unknown key 'colour'"),
        (fio, "path=/srv/other.img,size=2G", "path cannot be changed"),
        (fio, "write_back=0,size=2G", "write_back cannot be changed"),
        ("core/rd_mcp_0/r0/control", "rescan=1", "rd_mcp takes size="),
        (fio, "size=2G,sparse=maybe", "sparse: 'maybe'"),
        (fio, "rescan=1,sparse=0", "sparse=0 goes with size="),
        (
            "core/rd_mcp_0/r0/control",
            "size=2M,sparse=0",
            "sparse=0 is for fileio",
        ),
        (
            "core/rd_mcp_0/r9/control",
            "size=2M",
            "core/rd_mcp_0/r9: no such device",
        ),
        (
            "core/iblock_0/b0/control",
            "size=1G",
            "current size is unknown",
        ),
    ] {
        let e = req(&c, path, value).expect_err(value);
        assert!(e.contains(needle), "{value:?}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
    // The LU block size counts, not the backstore's.
    let c4k = {
        let mut c = resize_cfg();
        c.device_mut(&DevKey::parse("core/rd_mcp_0/r0").expect("key"))
            .expect("rd")
            .attributes
            .insert("block_size".into(), 4096);
        c
    };
    struct NoLive;
    impl ParamSchema for NoLive {
        fn param_defaults(&self) -> Vec<(String, String)> {
            Fake.param_defaults()
        }
        fn validate_param(&self, k: &str, v: &str) -> Result<(), String> {
            Fake.validate_param(k, v)
        }
    }
    impl Inspect for NoLive {
        fn device_attributes(&self, _key: &DevKey) -> Vec<(String, String)> {
            Vec::new()
        }
        fn device_info(&self, _key: &DevKey) -> Option<String> {
            None
        }
        fn device_size(&self, _key: &DevKey) -> Option<u64> {
            None
        }
    }
    let e = resize_request(&c4k, &NoLive, "core/rd_mcp_0/r0/control", "size=2050K")
        .expect_err("unaligned to 4096");
    assert!(e.contains("4096-byte logical block"), "{e}");
}

#[test]
fn resized_records_the_size_where_one_is_saved() {
    let c = resize_cfg();
    let rd = DevKey::parse("core/rd_mcp_0/r0").expect("key");
    let (n, msg) = resized(&c, &Fake, &rd, 1 << 20, 4 << 20).expect("rd");
    assert_eq!(n.device(&rd).and_then(|s| s.size), Some(4 << 20));
    assert!(msg.contains("1048576 -> 4194304"), "{msg}");
    let fio = DevKey::parse("core/fileio_0/disk0").expect("key");
    let (n, _) = resized(&c, &Fake, &fio, 1 << 30, 2 << 30).expect("fileio");
    assert_eq!(
        get(&n, &Fake, "core/fileio_0/disk0/control"),
        Ok("path=/srv/disk0.img,size=2147483648,write_back=1".into())
    );
    // iblock saves no size: the device carries it.
    let ib = DevKey::parse("core/iblock_0/b0").expect("key");
    let (n, msg) = resized(&c, &Fake, &ib, 8 << 20, 8 << 20).expect("iblock");
    assert_eq!(n, c);
    assert!(msg.contains("unchanged"), "{msg}");
}

/// Fake with live PR state for every device: one registration holding a reservation.
struct WithPr;

impl ParamSchema for WithPr {
    fn param_defaults(&self) -> Vec<(String, String)> {
        Fake.param_defaults()
    }
    fn validate_param(&self, k: &str, v: &str) -> Result<(), String> {
        Fake.validate_param(k, v)
    }
}

impl Inspect for WithPr {
    fn device_attributes(&self, key: &DevKey) -> Vec<(String, String)> {
        Fake.device_attributes(key)
    }
    fn device_info(&self, _key: &DevKey) -> Option<String> {
        None
    }
    fn device_size(&self, _key: &DevKey) -> Option<u64> {
        None
    }
    fn device_pr(&self, _key: &DevKey) -> Option<crate::pr::PrView> {
        use ironlun_engine::{PrRegistration, PrReservation, PrState};
        Some(crate::pr::PrView {
            state: PrState {
                generation: 0x12,
                aptpl: true,
                registrations: vec![PrRegistration {
                    key: 0xfeed,
                    initiator: I.into(),
                    isid: Some([0x23, 0xd0, 0, 0, 0, 1]),
                    target: T.into(),
                    tpgt: 1,
                    rtpi: 1,
                    all_tg_pt: false,
                }],
                reservation: Some(PrReservation { holder: 0, kind: 3 }),
            },
            emulate_pr: true,
            force_aptpl: false,
            spc2_holder: None,
            file: "/s/pr/aptpl_x".into(),
            file_present: true,
        })
    }
}

#[test]
fn pr_shows_live_state_read_only() {
    let c = example();
    let dev = "core/fileio_0/disk0";
    assert_eq!(
        get(&c, &WithPr, &format!("{dev}/pr/res_pr_generation")),
        Ok("0x00000012".into())
    );
    assert_eq!(
        get(&c, &WithPr, &format!("{dev}/pr/res_pr_type")),
        Ok("SPC-3 Reservation Type: Exclusive Access".into())
    );
    assert_eq!(
        get(&c, &WithPr, &format!("{dev}/pr/res_holder")),
        Ok(format!(
            "SPC-3 Reservation: iSCSI Initiator: {I},i,0x23d000000001"
        ))
    );
    // The holder's LUN comes from the config: lun_0 of tpgt_1 exports the device.
    let tg = get(&c, &WithPr, &format!("{dev}/pr/res_pr_holder_tg_port")).expect("tg port");
    assert!(
        tg.ends_with("iSCSI Portal Group Tag: 1 iSCSI Logical Unit: 0"),
        "{tg}"
    );
    // ls keeps one entry per leaf; continuation lines are indented below it.
    let out = ls(&c, &WithPr, &format!("{dev}/pr")).expect("ls");
    assert_eq!(
        out,
        format!(
            "pr/\n  res_aptpl_active = APTPL Bit Status: Activated\n  \
             res_holder = SPC-3 Reservation: iSCSI Initiator: {I},i,0x23d000000001\n  \
             res_pr_all_tgt_pts = SPC-3 Reservation: Single Target Port registration\n  \
             res_pr_generation = 0x00000012\n  \
             res_pr_holder_tg_port = SPC-3 Reservation: iSCSI Target Node Endpoint: {T}\n      \
             SPC-3 Reservation: Relative Port Identifier Tag: 1 iSCSI Portal Group Tag: 1 iSCSI Logical Unit: 0\n  \
             res_pr_registered_i_pts = SPC-3 PR Registrations:\n      \
             iSCSI Node: {I},i,0x23d000000001 Key: 0x000000000000feed Target Port: {T},t,0x0001 RTPI: 1\n  \
             res_pr_type = SPC-3 Reservation Type: Exclusive Access\n  \
             res_type = SPC3_PERSISTENT_RESERVATIONS\n"
        )
    );
    for leaf in crate::pr::TREE_LEAVES {
        let e = mutate(
            &c,
            &WithPr,
            &Op::Set {
                path: format!("{dev}/pr/{leaf}"),
                value: "0".into(),
            },
        )
        .expect_err("read-only");
        assert!(e.contains("read-only") && e.contains("pr clear"), "{e}");
    }
    // A device that is not running has no pr/.
    assert_eq!(
        get(&c, &Fake, &format!("{dev}/pr/res_type")),
        Err(format!("{dev}/pr: no such object"))
    );
    assert!(!ls(&c, &Fake, dev).expect("ls").contains("pr/"));
}

fn alua_example() -> Config {
    let mut c = example();
    let dev = "core/fileio_0/disk0";
    c = create(&c, &format!("{dev}/alua/west"), &["tg_pt_gp_id=1"]).expect("west");
    c = create(&c, &format!("{dev}/alua/east"), &[]).expect("east (auto id)");
    c = create(&c, &format!("iscsi/{T}/tpgt_2"), &[]).expect("tpg2");
    create(
        &c,
        &format!("iscsi/{T}/tpgt_2/lun/lun_0"),
        &["dev=core/fileio_0/disk0"],
    )
    .expect("lun")
}

#[test]
fn alua_groups_luns_and_lu_groups_through_the_tree() {
    let dev = "core/fileio_0/disk0";
    let mut c = alua_example();
    let so = c.device(&DevKey::parse(dev).expect("key")).expect("dev");
    let ids: Vec<(String, u16)> = so
        .alua_groups()
        .into_iter()
        .map(|g| (g.name, g.tg_pt_gp_id))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("default_tg_pt_gp".into(), 0),
            ("east".into(), 2),
            ("west".into(), 1)
        ]
    );
    let l1 = format!("iscsi/{T}/tpgt_1/lun/lun_0");
    let l2 = format!("iscsi/{T}/tpgt_2/lun/lun_0");
    assert_eq!(
        get(&c, &Fake, &format!("{l1}/alua_tg_pt_gp")),
        Ok("default_tg_pt_gp".into())
    );
    c = set(&c, &format!("{l1}/alua_tg_pt_gp"), "west").expect("move");
    c = set(&c, &format!("{l2}/alua_tg_pt_gp"), "east").expect("move");
    assert_eq!(
        get(&c, &Fake, &format!("{dev}/alua/west/members")),
        Ok(format!("iscsi/{T}/tpgt_1/lun_0"))
    );
    assert_eq!(
        get(&c, &Fake, &format!("{dev}/alua/default_tg_pt_gp/members")),
        Ok(String::new())
    );
    c = set(&c, &format!("{dev}/alua/east/alua_access_state"), "s").expect("standby");
    assert_eq!(
        get(&c, &Fake, &format!("{dev}/alua/east/alua_access_state")),
        Ok("2".into())
    );
    assert_eq!(
        get(&c, &Fake, &format!("{dev}/alua/east/alua_access_status")),
        Ok("2".into())
    );
    c = set(&c, &format!("{dev}/alua/west/preferred"), "1").expect("pref");
    c = set(
        &c,
        &format!("{dev}/alua/default_tg_pt_gp/trans_delay_msecs"),
        "2000",
    )
    .expect("delay");
    c = set(&c, &format!("{l2}/alua_tg_pt_offline"), "1").expect("offline");
    assert_eq!(
        get(&c, &Fake, &format!("{l2}/alua_tg_pt_status")),
        Ok("2".into())
    );
    // LU groups.
    c = create(&c, "core/alua/lu_gps/pair", &["lu_gp_id=7"]).expect("lu gp");
    c = set(&c, &format!("{dev}/alua_lu_gp"), "pair").expect("join");
    assert_eq!(
        get(&c, &Fake, "core/alua/lu_gps/pair/members"),
        Ok("fileio_0/disk0".into())
    );
    assert_eq!(
        get(&c, &Fake, "core/alua/lu_gps/default_lu_gp/members"),
        Ok(String::new())
    );
    let out = ls(&c, &Fake, dev).expect("ls");
    for needle in [
        "  alua/
    default_tg_pt_gp/
",
        "      trans_delay_msecs = 2000
",
        "  alua_lu_gp = pair
",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }

    // Refusals: one line, nothing changed.
    let refusals: Vec<(Op, &str)> = vec![
        (
            Op::Delete {
                path: format!("{dev}/alua/west"),
            },
            "member port",
        ),
        (
            Op::Delete {
                path: format!("{dev}/alua/default_tg_pt_gp"),
            },
            "cannot be deleted",
        ),
        (
            Op::Delete {
                path: "core/alua/lu_gps/pair".into(),
            },
            "still in it",
        ),
        (
            Op::Delete {
                path: "core/alua/lu_gps/default_lu_gp".into(),
            },
            "cannot be deleted",
        ),
        (
            Op::Create {
                path: format!("{dev}/alua/dup"),
                args: vec!["tg_pt_gp_id=1".into()],
            },
            "already used",
        ),
        (
            Op::Create {
                path: format!("{dev}/alua/zero"),
                args: vec!["tg_pt_gp_id=0".into()],
            },
            "expected 1-65535",
        ),
        (
            Op::Create {
                path: format!("{dev}/alua/big"),
                args: vec!["tg_pt_gp_id=65536".into()],
            },
            "expected 1-65535",
        ),
        (
            Op::Create {
                path: format!("{dev}/alua/west"),
                args: vec![],
            },
            "already exists",
        ),
        (
            Op::Create {
                path: format!("{dev}/alua/b@d"),
                args: vec![],
            },
            "group name",
        ),
        (
            Op::Create {
                path: "core/alua/lu_gps/x".into(),
                args: vec!["lu_gp_id=7".into()],
            },
            "already used",
        ),
        (
            Op::Set {
                path: format!("{dev}/alua/west/alua_access_state"),
                value: "x".into(),
            },
            "expected ao (0)",
        ),
        (
            Op::Set {
                path: format!("{dev}/alua/west/alua_access_state"),
                value: "4".into(),
            },
            "expected ao (0)",
        ),
        (
            Op::Set {
                path: format!("{dev}/alua/west/tg_pt_gp_id"),
                value: "9".into(),
            },
            "read-only",
        ),
        (
            Op::Set {
                path: format!("{dev}/alua/nope/preferred"),
                value: "1".into(),
            },
            "no such group",
        ),
        (
            Op::Set {
                path: format!("{dev}/alua_lu_gp"),
                value: "nope".into(),
            },
            "does not exist",
        ),
        (
            Op::Set {
                path: format!("{l1}/alua_tg_pt_gp"),
                value: "nope".into(),
            },
            "not a target port group",
        ),
        (
            Op::Set {
                path: format!("{l1}/alua_tg_pt_offline"),
                value: "2".into(),
            },
            "expected 0 or 1",
        ),
        (
            Op::Set {
                path: format!("{l1}/alua_tg_pt_status"),
                value: "1".into(),
            },
            "read-only",
        ),
        (
            Op::Set {
                path: "core/alua/lu_gps/pair/lu_gp_id".into(),
                value: "3".into(),
            },
            "read-only",
        ),
    ];
    for (op, needle) in refusals {
        let e = mutate(&c, &Fake, &op)
            .map(|_| ())
            .expect_err(&format!("{op:?}"));
        assert!(e.contains(needle), "{op:?}: {e}");
        assert!(!e.contains('\n'), "{op:?}: {e}");
    }

    // Moving the LUNs out lets the groups go; NULL is the default group (LIO).
    c = set(&c, &format!("{l1}/alua_tg_pt_gp"), "NULL").expect("null");
    c = delete(&c, &format!("{dev}/alua/west")).expect("delete west");
    c = set(&c, &format!("{dev}/alua_lu_gp"), "default_lu_gp").expect("leave");
    c = delete(&c, "core/alua/lu_gps/pair").expect("delete lu gp");
    assert!(c.alua_lu_gps.is_empty());
}

#[test]
fn alua_state_round_trips_through_config_json() {
    let dev = "core/fileio_0/disk0";
    let mut c = alua_example();
    c = set(
        &c,
        &format!("iscsi/{T}/tpgt_2/lun/lun_0/alua_tg_pt_gp"),
        "east",
    )
    .expect("move");
    c = set(&c, &format!("{dev}/alua/east/alua_access_state"), "ano").expect("ano");
    c = set(&c, &format!("{dev}/alua/east/preferred"), "1").expect("pref");
    c = set(
        &c,
        &format!("{dev}/alua/default_tg_pt_gp/alua_access_state"),
        "u",
    )
    .expect("u");
    c = set(
        &c,
        &format!("iscsi/{T}/tpgt_2/lun/lun_0/alua_tg_pt_offline"),
        "1",
    )
    .expect("off");
    c = create(&c, "core/alua/lu_gps/pair", &["lu_gp_id=7"]).expect("lu gp");
    c = set(&c, &format!("{dev}/alua_lu_gp"), "pair").expect("join");
    let text = crate::persist::to_json(&c);
    for needle in [
        "\"alua_tpgs\"",
        "\"alua_tg_pt_gp_name\": \"east\"",
        "\"alua_lu_gps\"",
        "\"alua_tg_pt_offline\": true",
    ] {
        assert!(text.contains(needle), "missing {needle} in {text}");
    }
    let back = crate::persist::from_json(&text, &Fake).expect("loads");
    assert_eq!(back, c);
    // A file naming a group the device does not have is refused.
    let bad = text.replace(
        "\"alua_tg_pt_gp_name\": \"east\"",
        "\"alua_tg_pt_gp_name\": \"gone\"",
    );
    let e = crate::persist::from_json(&bad, &Fake).expect_err("bad group");
    assert!(e.contains("alua_tg_pt_gp") && e.contains("gone"), "{e}");
    let bad = text.replace("\"tg_pt_gp_id\": 2", "\"tg_pt_gp_id\": 1");
    let e = crate::persist::from_json(&bad, &Fake).expect_err("dup id");
    assert!(e.contains("already used"), "{e}");
    // A config without ALUA keys (older files) loads with the defaults.
    let plain = crate::persist::to_json(&example());
    assert!(!plain.contains("alua"), "{plain}");
}

#[test]
fn nopin_attributes_take_seconds_and_zero_turns_pings_off() {
    let c = example();
    let tp = format!("iscsi/{T}/tpgt_1");
    let c = set(&c, &format!("{tp}/attrib/nopin_timeout"), "0").expect("off");
    assert_eq!(c.targets[0].tpgs[0].attributes.nopin_timeout, 0);
    let c = set(&c, &format!("{tp}/attrib/nopin_response_timeout"), "60").expect("60");
    assert_eq!(c.targets[0].tpgs[0].attributes.nopin_response_timeout, 60);
    for (name, bad) in [
        ("nopin_timeout", "2"),
        ("nopin_timeout", "61"),
        ("nopin_timeout", "x"),
        ("nopin_response_timeout", "0"),
    ] {
        let e = set(&c, &format!("{tp}/attrib/{name}"), bad).expect_err(bad);
        assert!(e.contains(name) && e.contains("seconds"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
    // Defaults are not written to the saved config; other values are.
    let json = serde_json::to_string(&example()).expect("json");
    assert!(!json.contains("nopin"), "{json}");
    let json = serde_json::to_string(&c).expect("json");
    assert!(json.contains("\"nopin_timeout\":0"), "{json}");
}

/// `ls`/`get` read the rendered tree with the one path grammar: every path the tree shows
/// (devices with live `pr/`, ALUA groups, LU groups, TPGs, portals, LUNs, ACLs) parses.
#[test]
fn every_rendered_path_parses_with_the_one_grammar() {
    fn walk(node: &Node, at: &str, out: &mut Vec<String>) {
        for c in node.children() {
            let p = if at.is_empty() {
                c.name().to_string()
            } else {
                format!("{at}/{}", c.name())
            };
            out.push(p.clone());
            walk(c, &p, out);
        }
    }
    let c = alua_example();
    let mut paths = Vec::new();
    walk(&render(&c, &WithPr), "", &mut paths);
    assert!(paths.len() > 100, "{}", paths.len());
    for p in &paths {
        ObjPath::parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    }
    assert_eq!(
        ObjPath::parse(&format!("/iscsi/{T}/tpgt_1/acls/{I}/lun_0/write_protect/")),
        Ok(ObjPath::MappedLunAttr(
            path::TpgId {
                target: T.into(),
                tag: 1
            },
            I.into(),
            0,
            "write_protect".into()
        ))
    );
}

#[test]
fn sparse_0_asks_for_a_preallocated_file_and_is_for_fileio_only() {
    let base = Config::default();
    let fio = "core/fileio_1/thick";
    let args = ["path=/srv/thick.img", "size=1G", "wwn=thick-1", "sparse=0"];
    let c = create(&base, fio, &args).expect("sparse=0");
    let owned: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        crate::tree::preallocation(&c, fio, &owned),
        Ok(Some(("/srv/thick.img".to_string(), Some(1 << 30))))
    );
    // Not kept in the model: it says how the file is made, as targetcli's sparse=.
    let plain = create(&base, fio, &args[..3]).expect("plain");
    assert_eq!(c, plain);
    for sparse in [
        &["path=/srv/thick.img", "size=1G"][..],
        &["path=/srv/thick.img", "sparse=true"],
    ] {
        let owned: Vec<String> = sparse.iter().map(|a| a.to_string()).collect();
        let c = create(&base, fio, sparse).expect("sparse");
        assert_eq!(
            crate::tree::preallocation(&c, fio, &owned),
            Ok(None),
            "{sparse:?}"
        );
    }
    for (path, args, needle) in [
        (
            "core/rd_mcp_1/r",
            &["size=1M", "sparse=0"][..],
            "sparse= is for fileio",
        ),
        (
            "core/iblock_1/b",
            &["path=/dev/loop0", "sparse=0"],
            "sparse= is for fileio",
        ),
        (
            fio,
            &["path=/srv/t.img", "size=1G", "sparse=no"],
            "sparse: 'no' is not valid; expected 0 or 1",
        ),
    ] {
        let e = create(&base, path, args).expect_err(path);
        assert!(e.contains(needle), "{args:?}: {e}");
    }
}

#[test]
fn pscsi_takes_dev_only_and_the_targets_attributes_only() {
    let base = Config::default();
    let c = create(&base, "core/pscsi_0/tape0", &["dev=/dev/sg3"]).expect("sg node");
    let so = c
        .device(&DevKey::parse("core/pscsi_0/tape0").expect("key"))
        .expect("device");
    assert_eq!(so.control_text(), "dev=/dev/sg3");
    create(&base, "core/pscsi_1/disk", &["dev=2:0:0:0"]).expect("H:C:T:L");
    set(&c, "core/pscsi_0/tape0/attrib/queue_depth", "16").expect("queue_depth applies");
    let e = set(&c, "core/pscsi_0/tape0/attrib/emulate_tpu", "1").expect_err("device's");
    assert!(
        e.contains(
            "core/pscsi_0/tape0/attrib/emulate_tpu: does not apply to a pass-through device"
        ),
        "{e}"
    );
    assert!(
        e.contains("settable here: queue_depth, emulate_tas, emulate_ua_intlck_ctrl"),
        "{e}"
    );
    for (args, needle) in [
        (
            &["dev=/dev/sg3", "size=1G"][..],
            "pscsi takes dev= only (size is the device's own)",
        ),
        (
            &["path=/dev/sg3"],
            "pscsi takes dev=</dev/sgN|/dev/sdX|H:C:T:L>, not path=",
        ),
        (&[], "dev=</dev/sgN|/dev/sdX|H:C:T:L> is required"),
        (
            &["dev=sg3"],
            "dev 'sg3' is not valid; expected /dev/sgN, a SCSI disk /dev/sdX or H:C:T:L",
        ),
        (&["dev=1:2:3"], "dev '1:2:3' is not valid"),
        (
            &["dev=/dev/sg3", "block_size=4096"],
            "block_size is the device's own",
        ),
    ] {
        let e = create(&base, "core/pscsi_0/x", args).expect_err(needle);
        assert!(e.contains(needle), "{args:?}: {e}");
    }
    let e = create(&c, "core/pscsi_0/tape0/alua/west", &[]).expect_err("alua on pscsi");
    assert!(
        e.contains("ALUA is the device's on a pass-through LU"),
        "{e}"
    );
    let tree = crate::tree::ls(&c, &Fake, "core/pscsi_0/tape0").expect("ls");
    assert!(!tree.contains("alua") && !tree.contains("pr/"), "{tree}");
    let e = create(&base, "core/fileio_0/f", &["dev=/x", "size=1M"]).expect_err("dev on fileio");
    assert!(e.contains("dev= is for pscsi; fileio takes path="), "{e}");
}
