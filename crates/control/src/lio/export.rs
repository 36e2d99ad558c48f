//! [`Config`] → rtslib-fb `saveconfig.json`, in the shape rtslib's `RTSRoot.dump` writes
//! (sorted keys, two-space indent, as root.py `save_to_file` does), so `targetctl restore` or
//! `targetcli restoreconfig` can take a config back to LIO.
//!
//! What LIO cannot hold is named in the [`Report`]: ironlun-only device attributes set away
//! from their defaults, LU groups, a LUN port's offline state, INQUIRY identity other than
//! LIO's, and HBA numbers that would make two objects of one plugin share a name.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::import::{LIO_REVISION, LIO_VENDOR};
use super::Report;
use crate::model::{tpg_attribute, AluaTpg, Chap, Config, Kind, StorageObject, Tpg};

/// Device attributes LIO has (`core/<hba>/<dev>/attrib/`, the writable ones rtslib dumps).
const LIO_DEVICE_ATTRS: &[&str] = &[
    "block_size",
    "emulate_3pc",
    "emulate_caw",
    "emulate_dpo",
    "emulate_fua_read",
    "emulate_fua_write",
    "emulate_model_alias",
    "emulate_pr",
    "emulate_rest_reord",
    "emulate_rsoc",
    "emulate_tas",
    "emulate_tpu",
    "emulate_tpws",
    "emulate_ua_intlck_ctrl",
    "emulate_write_cache",
    "enforce_pr_isids",
    "force_pr_aptpl",
    "is_nonrot",
    "max_unmap_block_desc_count",
    "max_unmap_lba_count",
    "max_write_same_len",
    "optimal_sectors",
    "queue_depth",
    "unmap_granularity",
    "unmap_granularity_alignment",
    "unmap_zeroes_data",
];

/// LIO's TPG attributes among ironlun's (nopin_* are per ACL in LIO).
const LIO_TPG_ATTRS: &[&str] = &[
    "authentication",
    "demo_mode_write_protect",
    "generate_node_acls",
    "prod_mode_write_protect",
];

/// The rtslib plugin name of a kind.
pub fn plugin_name(k: Kind) -> &'static str {
    match k {
        Kind::IBlock => "block",
        Kind::FileIo => "fileio",
        Kind::RdMcp => "ramdisk",
        Kind::PScsi => "pscsi",
    }
}

/// `cfg` as saveconfig.json text, and what LIO cannot hold.
pub fn export(cfg: &Config) -> (String, Report) {
    let mut report = Report::default();
    let mut seen = BTreeSet::new();
    let mut sos = Vec::new();
    for so in &cfg.storage_objects {
        let at = so.key().to_string();
        if !seen.insert((plugin_name(so.plugin), so.name.clone())) {
            report.push(
                &at,
                format!(
                    "another {} object is named '{}' (rtslib names are per plugin): left out",
                    plugin_name(so.plugin),
                    so.name
                ),
            );
            continue;
        }
        sos.push(storage_object(so, &at, &mut report));
    }
    for g in &cfg.alua_lu_gps {
        report.push(
            format!("core/alua/lu_gps/{}", g.name),
            "LU groups are not in saveconfig.json",
        );
    }
    let targets: Vec<Value> = cfg
        .targets
        .iter()
        .map(|t| {
            let tpgs: Vec<Value> = t
                .tpgs
                .iter()
                .map(|g| tpg(cfg, &t.wwn, g, &mut report))
                .collect();
            json!({"fabric": t.fabric, "tpgs": tpgs, "wwn": t.wwn})
        })
        .collect();
    let mut fabric_modules = Vec::new();
    let d = &cfg.discovery_auth;
    if d.enforce_discovery_auth || !d.chap.is_empty() {
        fabric_modules.push(json!({
            "discovery_enable_auth": d.enforce_discovery_auth,
            "discovery_mutual_password": d.chap.chap_mutual_password,
            "discovery_mutual_userid": d.chap.chap_mutual_userid,
            "discovery_password": d.chap.chap_password,
            "discovery_userid": d.chap.chap_userid,
            "name": "iscsi",
        }));
    }
    let root = json!({
        "fabric_modules": fabric_modules,
        "storage_objects": sos,
        "targets": targets,
    });
    // Plain maps, lists, strings and numbers: serialising cannot fail.
    let mut text = serde_json::to_string_pretty(&root).unwrap_or_default();
    text.push('\n');
    (text, report)
}

fn storage_object(so: &StorageObject, at: &str, report: &mut Report) -> Value {
    if so.plugin == Kind::PScsi {
        return pscsi_object(so, at, report);
    }
    let mut m = Map::new();
    m.insert("name".into(), json!(so.name));
    m.insert("plugin".into(), json!(plugin_name(so.plugin)));
    m.insert("wwn".into(), json!(so.wwn));
    match so.plugin {
        Kind::IBlock => {
            m.insert("dev".into(), json!(so.dev.clone().unwrap_or_default()));
            m.insert("readonly".into(), json!(so.readonly));
            m.insert("write_back".into(), json!(false));
        }
        Kind::FileIo => {
            m.insert("dev".into(), json!(so.dev.clone().unwrap_or_default()));
            // rtslib sends `size` to the kernel as fd_dev_size: a file that ironlun sizes by its
            // own length gets that length (0 stays for a block device: LIO sizes it itself).
            let dev = so.dev.clone().unwrap_or_default();
            let size = so.size.or_else(|| {
                std::fs::metadata(&dev)
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
            });
            if size.is_none() && !std::path::Path::new(&dev).exists() {
                report.push(
                    at,
                    format!("size: {dev} cannot be read here; exported as 0, which LIO takes from the file only if it is a block device"),
                );
            }
            m.insert("size".into(), json!(size.unwrap_or(0)));
            m.insert("write_back".into(), json!(so.write_back));
            m.insert("aio".into(), json!(false));
            if so.readonly {
                report.push(
                    at,
                    "readonly: LIO's fileio has no read-only mode; exported writable",
                );
            }
        }
        Kind::RdMcp => {
            m.insert("size".into(), json!(so.size.unwrap_or(0)));
            m.insert("nullio".into(), json!(false));
        }
        Kind::PScsi => {}
    }
    if so.hba != 0 {
        report.push(
            at,
            format!(
                "HBA number {} is not in saveconfig.json (LIO numbers HBAs itself)",
                so.hba
            ),
        );
    }
    if so.vendor_id != LIO_VENDOR
        || so.product_id != so.plugin.default_product_id()
        || so.revision != LIO_REVISION
    {
        report.push(at, format!("INQUIRY identity '{}' '{}' '{}' is not in saveconfig.json; LIO shows 'LIO-ORG' '{}' '{}'", so.vendor_id, so.product_id, so.revision, so.plugin.default_product_id(), LIO_REVISION));
    }
    let mut attrs = Map::new();
    for def in ironlun_engine::device_attribute_defs() {
        let saved = so.attributes.get(def.name).copied();
        let value = match (saved, def.default) {
            (Some(v), _) => Some(v),
            (None, ironlun_engine::attr::Default::Value(v)) => Some(v),
            (None, ironlun_engine::attr::Default::Derived(_)) => None,
        };
        if matches!(def.domain, ironlun_engine::attr::Domain::ReadOnly) {
            continue;
        }
        if !LIO_DEVICE_ATTRS.contains(&def.name) {
            if let Some(v) = saved {
                report.push(
                    format!("{at}/attrib/{}", def.name),
                    format!("{v}: LIO has no such attribute"),
                );
            }
            continue;
        }
        if let Some(v) = value {
            attrs.insert(def.name.into(), json!(v));
        }
    }
    m.insert("attributes".into(), Value::Object(attrs));
    // alua_groups() lists default_tg_pt_gp first, as LIO dumps it (id 0).
    let groups = so.alua_groups().into_iter().map(alua_group).collect();
    m.insert("alua_tpgs".into(), Value::Array(groups));
    if let Some(lg) = &so.alua_lu_gp {
        report.push(
            format!("{at}/alua_lu_gp"),
            format!("'{lg}': LU groups are not in saveconfig.json"),
        );
    }
    Value::Object(m)
}

/// rtslib's pscsi object: `dev` only (its PSCSIStorageObject takes no wwn, and LIO offers no
/// ALUA and none of our attributes on pass-through devices).
fn pscsi_object(so: &StorageObject, at: &str, report: &mut Report) -> Value {
    for (name, v) in &so.attributes {
        report.push(
            format!("{at}/attrib/{name}"),
            format!("{v}: LIO's pscsi has no such attribute"),
        );
    }
    report.push(
        at,
        "the unit serial is not in saveconfig.json for pscsi (the device's own identity is what hosts see)",
    );
    json!({
        "attributes": {},
        "dev": so.dev.clone().unwrap_or_default(),
        "name": so.name,
        "plugin": "pscsi",
    })
}

fn alua_group(g: AluaTpg) -> Value {
    json!({
        "alua_access_state": g.alua_access_state,
        "alua_access_status": g.alua_access_status,
        "alua_access_type": g.alua_access_type,
        "alua_support_active_nonoptimized": g.alua_support_active_nonoptimized,
        "alua_support_active_optimized": g.alua_support_active_optimized,
        "alua_support_offline": g.alua_support_offline,
        "alua_support_standby": g.alua_support_standby,
        "alua_support_transitioning": g.alua_support_transitioning,
        "alua_support_unavailable": g.alua_support_unavailable,
        "alua_write_metadata": 0,
        "implicit_trans_secs": g.implicit_trans_secs,
        "name": g.name,
        "nonop_delay_msecs": g.nonop_delay_msecs,
        "preferred": g.preferred,
        "tg_pt_gp_id": g.tg_pt_gp_id,
        "trans_delay_msecs": g.trans_delay_msecs,
    })
}

fn chap_into(m: &mut Map<String, Value>, c: &Chap) {
    for (k, v) in [
        ("chap_userid", &c.chap_userid),
        ("chap_password", &c.chap_password),
        ("chap_mutual_userid", &c.chap_mutual_userid),
        ("chap_mutual_password", &c.chap_mutual_password),
    ] {
        if !v.is_empty() {
            m.insert(k.into(), json!(v));
        }
    }
}

fn tpg(cfg: &Config, wwn: &str, g: &Tpg, report: &mut Report) -> Value {
    let at = format!("iscsi/{wwn}/tpgt_{}", g.tag);
    let mut attrs = Map::new();
    for name in LIO_TPG_ATTRS {
        if let Some(a) = tpg_attribute(name) {
            attrs.insert((*name).into(), json!(a.get(&g.attributes)));
        }
    }
    let mut acl_attrs = Map::new();
    for name in ["nopin_timeout", "nopin_response_timeout"] {
        if let Some(a) = tpg_attribute(name) {
            acl_attrs.insert(name.into(), json!(a.get(&g.attributes)));
        }
    }
    let mut params = Map::new();
    for (k, d) in ironlun_fabric::param_defaults() {
        let v = g.parameters.get(k).map_or(d, String::as_str);
        params.insert(k.into(), json!(v));
    }
    let portals: Vec<Value> = g
        .portals
        .iter()
        .map(|p| {
            let ip = match p.ip_address {
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            };
            json!({"ip_address": ip, "iser": false, "offload": false, "port": p.port})
        })
        .collect();
    let luns: Vec<Value> = g
        .luns
        .iter()
        .map(|l| {
            if l.alua_tg_pt_offline {
                report.push(
                    format!("{at}/lun/lun_{}", l.index),
                    "the port's offline state is not in saveconfig.json",
                );
            }
            let so = crate::model::DevKey::parse(&l.storage_object)
                .ok()
                .and_then(|k| cfg.device(&k))
                .map(|so| format!("/backstores/{}/{}", plugin_name(so.plugin), so.name))
                .unwrap_or_default();
            json!({"alua_tg_pt_gp_name": l.tg_pt_gp(), "index": l.index, "storage_object": so})
        })
        .collect();
    let acls: Vec<Value> = g.node_acls.iter().map(|a| {
        let mut m = Map::new();
        m.insert("node_wwn".into(), json!(a.node_wwn));
        m.insert("attributes".into(), Value::Object(acl_attrs.clone()));
        let mapped: Vec<Value> = a.mapped_luns.iter().map(|ml| json!({"index": ml.index, "tpg_lun": ml.tpg_lun, "write_protect": ml.write_protect})).collect();
        m.insert("mapped_luns".into(), Value::Array(mapped));
        chap_into(&mut m, &a.chap);
        Value::Object(m)
    }).collect();
    let mut m = Map::new();
    m.insert("tag".into(), json!(g.tag));
    m.insert("enable".into(), json!(g.enable));
    m.insert("attributes".into(), Value::Object(attrs));
    m.insert("parameters".into(), Value::Object(params));
    m.insert("portals".into(), Value::Array(portals));
    m.insert("luns".into(), Value::Array(luns));
    m.insert("node_acls".into(), Value::Array(acls));
    chap_into(&mut m, &g.chap);
    Value::Object(m)
}
