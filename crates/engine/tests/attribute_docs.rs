//! docs/cli.md's table of device attributes is the one the declarations make: a new or
//! changed attribute shows up there, or this test fails. `IRONLUN_UPDATE_DOCS=1` rewrites the
//! table instead of comparing.

use ironlun_engine::attr::doc_table_in_step;
use ironlun_engine::device_attribute_defs;

#[test]
fn docs_cli_lists_every_device_attribute_as_declared() {
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    let defs: Vec<_> = device_attribute_defs().copied().collect();
    let rewrite = std::env::var_os("IRONLUN_UPDATE_DOCS").is_some();
    if let Err(e) = doc_table_in_step(&doc, "device attributes", &defs, rewrite) {
        panic!("{e}");
    }
}

#[test]
fn docs_cli_lists_every_alua_group_attribute_as_declared() {
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    let defs: Vec<_> = ironlun_engine::alua_group_attribute_defs()
        .copied()
        .collect();
    let rewrite = std::env::var_os("IRONLUN_UPDATE_DOCS").is_some();
    if let Err(e) = doc_table_in_step(&doc, "ALUA group attributes", &defs, rewrite) {
        panic!("{e}");
    }
}

#[test]
fn new_groups_and_devices_start_at_their_declared_defaults() {
    use ironlun_engine::attr::Default;
    let dev = ramdisk_device();
    dev.create_alua_group("g", 1).expect("group");
    for def in ironlun_engine::alua_group_attribute_defs() {
        if let Default::Value(v) = def.default {
            for group in ["default_tg_pt_gp", "g"] {
                let shown = dev.alua_group_attribute(group, def.name).expect("shown");
                assert_eq!(def.parse(&shown), Ok(v), "{group}/{}", def.name);
            }
        }
    }
    for def in device_attribute_defs() {
        if let Default::Value(v) = def.default {
            let shown = dev.attribute(def.name).expect("shown");
            assert_eq!(shown, v.to_string(), "{}", def.name);
        }
    }
}

fn ramdisk_device() -> std::sync::Arc<ironlun_engine::Device> {
    ironlun_engine::Device::new(
        ironlun_engine::DeviceConfig {
            name: "d".into(),
            unit_serial: "s".into(),
            vendor_id: String::new(),
            product_id: String::new(),
            revision: String::new(),
            block_size: 512,
        },
        std::sync::Arc::new(ironlun_backstore::RamDisk::new(1 << 20).expect("ramdisk")),
    )
    .expect("device")
}

/// Attributes LIO has whose feature ironlun has not: only 0 is accepted.
const ONLY_ZERO: &[&str] = &["emulate_dpo", "emulate_fua_read", "emulate_rest_reord"];

#[test]
fn attributes_lio_has_but_ironlun_fixes_accept_only_their_value() {
    let dev = ramdisk_device();
    for name in ONLY_ZERO {
        assert_eq!(dev.attribute(name).as_deref(), Some("0"), "{name}");
        dev.set_attribute(name, "0").expect("0 is accepted");
        let e = dev.set_attribute(name, "1").expect_err("1 is refused");
        assert!(
            e.starts_with(&format!("{name}: only 0 is accepted (")),
            "{e}"
        );
        assert_eq!(dev.attribute(name).as_deref(), Some("0"));
    }
}
