//! rtslib-fb `saveconfig.json` → [`Config`]. The reference for each field is rtslib-fb's dump
//! code (root.py `RTSRoot.dump`, tcm.py `*StorageObject.dump`, target.py `TPG/LUN/NodeACL/
//! MappedLUN.dump`, alua.py `ALUATargetPortGroup.dump`) and its restore code (root.py
//! `restore`), which also accepts the plugin aliases `iblock` and `rd_mcp`.
//!
//! Storage objects get HBA number 0 of their kind (`/backstores/block/disk1` becomes
//! `core/iblock_0/disk1`: rtslib's names are unique per plugin), vendor `LIO-ORG` and LIO's
//! product id per plugin, so hosts see the INQUIRY data and, from the kept `wwn` (the unit
//! serial), the NAA designator that LIO showed them.

use serde_json::Value;

use super::{
    canonical_plugin, list, object, opt_bool, opt_str, opt_u64, plugin_kind, req_str, req_u64,
    short, unknown_keys, FabricParams, Report,
};
use crate::model::alua::DEFAULT_TG_PT_GP;
use crate::model::{
    generate_serial, parse_device_attribute, validate_dev_name, validate_wwn_field, AluaTpg, Chap,
    Config, DiscoveryAuth, Kind, StorageObject,
};

/// INQUIRY vendor identification LIO gives every device.
pub const LIO_VENDOR: &str = "LIO-ORG";
/// INQUIRY product revision LIO's backstores report.
pub const LIO_REVISION: &str = "4.0";

/// The result of an import: a validated config and what did not carry over.
#[derive(Clone, Debug)]
pub struct Imported {
    pub config: Config,
    pub report: Report,
}

/// Convert the text of a `saveconfig.json`. Err: one line naming the field.
pub fn import(text: &str) -> Result<Imported, String> {
    let root: Value = serde_json::from_str(text)
        .map_err(|e| format!("saveconfig.json is not valid JSON: {e}"))?;
    let m = object("saveconfig.json", &root)?;
    let mut report = Report::default();
    unknown_keys(
        "saveconfig.json",
        m,
        &["storage_objects", "targets", "fabric_modules"],
        &mut report,
    );
    let mut cfg = Config::default();
    for (i, v) in list("saveconfig.json", m, "storage_objects")?
        .iter()
        .enumerate()
    {
        if let Some(so) = storage_object(i, v, &mut report)? {
            cfg.storage_objects.push(so);
        }
    }
    for (i, v) in list("saveconfig.json", m, "fabric_modules")?
        .iter()
        .enumerate()
    {
        fabric_module(i, v, &mut cfg.discovery_auth, &mut report)?;
    }
    let params = FabricParams;
    for (i, v) in list("saveconfig.json", m, "targets")?.iter().enumerate() {
        if let Some(t) = super::targets::target(i, v, &cfg, &params, &mut report)? {
            cfg.targets.push(t);
        }
    }
    cfg.assign_missing_rtpis()?;
    drop_shared_mutual_secrets(&mut cfg, &mut report);
    cfg.validate(&params)
        .map_err(|e| format!("the converted config is not valid: {e}"))?;
    Ok(Imported {
        config: cfg,
        report,
    })
}

fn storage_object(
    i: usize,
    v: &Value,
    report: &mut Report,
) -> Result<Option<StorageObject>, String> {
    let at0 = format!("storage_objects[{i}]");
    let m = object(&at0, v)?;
    let raw = req_str(&at0, m, "plugin")?;
    let plugin = canonical_plugin(raw).ok_or_else(|| {
        format!("{at0}.plugin: unknown plugin '{raw}'; valid: block (iblock), fileio, ramdisk (rd_mcp), pscsi, user")
    })?;
    let name = req_str(&at0, m, "name")?;
    let at = format!("/backstores/{plugin}/{name}");
    let kind = match plugin_kind(plugin) {
        Some(k) => k,
        None => {
            report.push(
                &at,
                "user (TCMU) backstores are not supported: the object and its LUNs are skipped",
            );
            return Ok(None);
        }
    };
    // rtslib forbids only '/' and whitespace in names; ironlun's tree names are narrower.
    let renamed = super::dev_name(name);
    if renamed != name {
        report.push(
            format!("{at}.name"),
            format!("named {renamed} (ironlun names use A-Z a-z 0-9 _ - .; its LUNs follow)"),
        );
    }
    let name = renamed.as_str();
    validate_dev_name(name).map_err(|e| format!("{at0}.name: {e}"))?;
    let wwn = match opt_str(&at, m, "wwn")? {
        Some(w) => {
            validate_wwn_field(&at, "vpd_unit_serial", w).map_err(|e| format!("{at}.wwn: {e}"))?;
            w.to_string()
        }
        // rtslib's pscsi objects have none: hosts see the device's own identity.
        None if kind == Kind::PScsi => generate_serial(),
        None => {
            let w = generate_serial();
            report.push(format!("{at}.wwn"), format!("missing: the new serial {w} was generated (hosts see a new NAA identifier, as LIO would)"));
            w
        }
    };
    let mut so = StorageObject {
        plugin: kind,
        hba: 0,
        name: name.to_string(),
        wwn,
        vendor_id: LIO_VENDOR.into(),
        product_id: kind.default_product_id().into(),
        revision: LIO_REVISION.into(),
        dev: None,
        size: None,
        write_back: false,
        readonly: false,
        attributes: Default::default(),
        alua_tpgs: Vec::new(),
        alua_lu_gp: None,
    };
    let common = ["name", "plugin", "wwn", "attributes", "alua_tpgs"];
    match kind {
        Kind::IBlock => {
            unknown_keys(
                &at,
                m,
                &[&common[..], &["dev", "readonly", "write_back", "exclusive"]].concat(),
                report,
            );
            so.dev = Some(req_str(&at, m, "dev")?.to_string());
            so.readonly = opt_bool(&at, m, "readonly")?.unwrap_or(false);
            if opt_bool(&at, m, "write_back")? == Some(true) {
                report.push(format!("{at}.write_back"), "true ignored (LIO ignores it for block too; the cache is attributes.emulate_write_cache)");
            }
            if let Some(x) = m.get("exclusive") {
                report.push(
                    format!("{at}.exclusive"),
                    format!(
                        "{} (ironlun opens the device for itself whatever the value)",
                        short(x)
                    ),
                );
            }
        }
        Kind::FileIo => {
            unknown_keys(
                &at,
                m,
                &[
                    &common[..],
                    &["dev", "size", "write_back", "buffered_mode", "aio"],
                ]
                .concat(),
                report,
            );
            let dev = req_str(&at, m, "dev")?;
            so.dev = Some(dev.to_string());
            let size = opt_u64(&at, m, "size")?.filter(|s| *s > 0);
            if size.is_some() && is_block_device(dev) {
                // LIO sizes a fileio on a block device by the device; so does ironlun.
                report.push(
                    format!("{at}.size"),
                    "ignored for a block device (its own size is used, as LIO does)",
                );
            } else {
                so.size = size;
            }
            // Older rtslib wrote `buffered_mode` for what is now `write_back`.
            so.write_back = match opt_bool(&at, m, "write_back")? {
                Some(w) => w,
                None => opt_bool(&at, m, "buffered_mode")?.unwrap_or(false),
            };
            if opt_bool(&at, m, "aio")? == Some(true) {
                report.push(
                    format!("{at}.aio"),
                    "true: ironlun's fileio has its own I/O path; there is no aio switch",
                );
            }
        }
        Kind::PScsi => {
            unknown_keys(&at, m, &[&common[..], &["dev"]].concat(), report);
            so.dev = Some(req_str(&at, m, "dev")?.to_string());
        }
        Kind::RdMcp => {
            unknown_keys(&at, m, &[&common[..], &["size", "nullio"]].concat(), report);
            so.size = Some(req_u64(&at, m, "size")?);
            if opt_bool(&at, m, "nullio")? == Some(true) {
                report.push(format!("{at}.nullio"), "true: ironlun has no null I/O RAM disk; imported as a RAM disk that keeps its data");
            }
        }
    }
    if let Some(a) = m.get("attributes") {
        for (k, v) in object(&format!("{at}.attributes"), a)? {
            device_attribute(&at, k, v, &mut so, report);
        }
        drop_unacceptable(&at, &mut so, report);
    }
    let groups = list(&at, m, "alua_tpgs")?;
    if kind == Kind::PScsi && !groups.is_empty() {
        report.push(
            format!("{at}.alua_tpgs"),
            "not carried: ALUA is the device's on a pass-through LU (LIO offers none on pscsi)",
        );
        return Ok(Some(so));
    }
    for (gi, g) in groups.iter().enumerate() {
        alua_group(&format!("{at}.alua_tpgs[{gi}]"), g, &mut so, report)?;
    }
    Ok(Some(so))
}

fn is_block_device(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

/// LIO lets a target's secret (`chap_mutual_password`, which the target proves) equal an
/// initiator's (`chap_password`); RFC 7143 §12.1.3 and ironlun do not. Such mutual credentials
/// are not carried, and the report says so: the initiator's own login still works, the target
/// just no longer proves itself to it.
fn drop_shared_mutual_secrets(cfg: &mut Config, report: &mut Report) {
    let mut initiator_secrets: Vec<(String, String)> = vec![(
        "/iscsi/discovery_auth".into(),
        cfg.discovery_auth.chap.chap_password.clone(),
    )];
    for t in &cfg.targets {
        for g in &t.tpgs {
            let at = format!("/iscsi/{}/tpgt_{}", t.wwn, g.tag);
            initiator_secrets.push((at.clone(), g.chap.chap_password.clone()));
            for a in &g.node_acls {
                initiator_secrets.push((
                    format!("{at}/acls/{}", a.node_wwn),
                    a.chap.chap_password.clone(),
                ));
            }
        }
    }
    initiator_secrets.retain(|(_, p)| !p.is_empty());
    let mut check = |at: String, chap: &mut Chap| {
        if chap.chap_mutual_password.is_empty() {
            return;
        }
        if let Some((iat, _)) = initiator_secrets
            .iter()
            .find(|(_, p)| *p == chap.chap_mutual_password)
        {
            report.push(
                format!("{at}.chap_mutual_password"),
                format!("equals the initiator secret of {iat} (LIO allows it; RFC 7143 §12.1.3 does not): mutual CHAP not carried, set a distinct auth/password_mutual"),
            );
            chap.chap_mutual_userid.clear();
            chap.chap_mutual_password.clear();
        }
    };
    check("/iscsi/discovery_auth".into(), &mut cfg.discovery_auth.chap);
    for t in &mut cfg.targets {
        for g in &mut t.tpgs {
            let at = format!("/iscsi/{}/tpgt_{}", t.wwn, g.tag);
            check(at.clone(), &mut g.chap);
            for a in &mut g.node_acls {
                check(format!("{at}/acls/{}", a.node_wwn), &mut a.chap);
            }
        }
    }
}

/// Values the engine's rules for this device refuse, though they parse: bounds that depend on
/// the device (`optimal_sectors` up to 8 MiB of blocks, `queue_depth` up to `hw_queue_depth`)
/// where LIO saved its kernel's own (a RAM disk's `optimal_sectors` 4294967288, a disk
/// queue's 256). Tried on a probe device of the same block size; refused ones are reported
/// and the engine's default kept.
fn drop_unacceptable(at: &str, so: &mut StorageObject, report: &mut Report) {
    let bs = so.attributes.get("block_size").copied().unwrap_or(512);
    let config = ironlun_engine::DeviceConfig {
        name: so.name.clone(),
        unit_serial: "probe".into(),
        vendor_id: String::new(),
        product_id: String::new(),
        revision: String::new(),
        block_size: bs,
    };
    let Ok(store) = ironlun_backstore::RamDisk::new(u64::from(bs)) else {
        return;
    };
    let Ok(probe) = ironlun_engine::Device::new(config, std::sync::Arc::new(store)) else {
        return;
    };
    let names: Vec<String> = so.attributes.keys().cloned().collect();
    for k in names.into_iter().filter(|k| k != "block_size") {
        let v = so.attributes[&k];
        if let Err(e) = probe.set_attribute(&k, &v.to_string()) {
            so.attributes.remove(&k);
            let why = e.strip_prefix(&format!("{k}: ")).unwrap_or(&e).to_string();
            report.push(
                format!("{at}.attributes.{k}"),
                format!("{v} not carried ({why}); ironlun's default is kept"),
            );
        }
    }
}

/// One device attribute: kept when the engine declares it and takes the value; a value equal
/// to the engine's fixed default is not saved (it is the default).
fn device_attribute(at: &str, k: &str, v: &Value, so: &mut StorageObject, report: &mut Report) {
    let text = match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    if so.plugin == Kind::PScsi && !crate::model::device::PSCSI_ATTRIBUTES.contains(&k) {
        report.push(
            format!("{at}.attributes.{k}"),
            format!("{text} (the device decides: does not apply to a pass-through device)"),
        );
        return;
    }
    let Some(def) = ironlun_engine::device_attribute_defs().find(|d| d.name == k) else {
        report.push(
            format!("{at}.attributes.{k}"),
            format!("{text} (ironlun has no such device attribute)"),
        );
        return;
    };
    match parse_device_attribute(k, &text) {
        Ok(n) => {
            if !matches!(def.default, ironlun_engine::attr::Default::Value(d) if d == n) {
                so.attributes.insert(k.to_string(), n);
            }
        }
        Err(e) => report.push(
            format!("{at}.attributes.{k}"),
            format!("{text} not carried: {e}"),
        ),
    }
}

const GROUP_FIELDS: &[&str] = &[
    "alua_access_state",
    "alua_access_status",
    "alua_access_type",
    "preferred",
    "nonop_delay_msecs",
    "trans_delay_msecs",
    "implicit_trans_secs",
    "alua_support_transitioning",
    "alua_support_offline",
    "alua_support_lba_dependent",
    "alua_support_unavailable",
    "alua_support_standby",
    "alua_support_active_optimized",
    "alua_support_active_nonoptimized",
];

/// One `alua_tpgs[]` entry. LIO dumps `default_tg_pt_gp` (id 0) too: its values go to
/// ironlun's default group, which is saved only when it differs from the defaults.
fn alua_group(
    at: &str,
    v: &Value,
    so: &mut StorageObject,
    report: &mut Report,
) -> Result<(), String> {
    let m = object(at, v)?;
    let name = req_str(at, m, "name")?;
    let id = req_u64(at, m, "tg_pt_gp_id")?;
    let is_default = name == DEFAULT_TG_PT_GP;
    let id = if is_default {
        0
    } else {
        u16::try_from(id)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{at}.tg_pt_gp_id: {id} is not 1-65535"))?
    };
    let mut g = AluaTpg::new(name, id);
    let mut known: Vec<&str> = vec!["name", "tg_pt_gp_id", "alua_write_metadata"];
    known.extend_from_slice(GROUP_FIELDS);
    unknown_keys(at, m, &known, report);
    for f in GROUP_FIELDS {
        let Some(n) = opt_u64(at, m, f)? else {
            continue;
        };
        let bad = || format!("{at}.{f}: {n} is out of range");
        match *f {
            "nonop_delay_msecs" => g.nonop_delay_msecs = u32::try_from(n).map_err(|_| bad())?,
            "trans_delay_msecs" => g.trans_delay_msecs = u32::try_from(n).map_err(|_| bad())?,
            "implicit_trans_secs" => g.implicit_trans_secs = u32::try_from(n).map_err(|_| bad())?,
            _ => {
                let n = u8::try_from(n).map_err(|_| bad())?;
                *group_u8(&mut g, f).ok_or_else(bad)? = n;
            }
        }
    }
    if opt_u64(at, m, "alua_write_metadata")?.unwrap_or(0) != 0 {
        report.push(
            format!("{at}.alua_write_metadata"),
            "1: not needed, ironlun always saves ALUA states in config.json",
        );
    }
    if is_default {
        if g != AluaTpg::new(DEFAULT_TG_PT_GP, 0) {
            so.alua_tpgs.insert(0, g);
        }
    } else {
        so.alua_tpgs.push(g);
    }
    Ok(())
}

fn group_u8<'a>(g: &'a mut AluaTpg, f: &str) -> Option<&'a mut u8> {
    Some(match f {
        "alua_access_state" => &mut g.alua_access_state,
        "alua_access_status" => &mut g.alua_access_status,
        "alua_access_type" => &mut g.alua_access_type,
        "preferred" => &mut g.preferred,
        _ => return g.support_slot(f),
    })
}

/// `fabric_modules[]`: the iSCSI module's discovery authentication.
fn fabric_module(
    i: usize,
    v: &Value,
    d: &mut DiscoveryAuth,
    report: &mut Report,
) -> Result<(), String> {
    let at0 = format!("fabric_modules[{i}]");
    let m = object(&at0, v)?;
    let name = req_str(&at0, m, "name")?;
    let at = format!("fabric_modules[{name}]");
    if name != "iscsi" {
        report.push(
            &at,
            "ironlun serves iSCSI only: this fabric's settings are skipped",
        );
        return Ok(());
    }
    unknown_keys(
        &at,
        m,
        &[
            "name",
            "discovery_enable_auth",
            "discovery_userid",
            "discovery_password",
            "discovery_mutual_userid",
            "discovery_mutual_password",
        ],
        report,
    );
    let get = |k: &str| -> Result<String, String> {
        Ok(opt_str(&at, m, k)?.unwrap_or_default().to_string())
    };
    let chap = Chap {
        chap_userid: get("discovery_userid")?,
        chap_password: get("discovery_password")?,
        chap_mutual_userid: get("discovery_mutual_userid")?,
        chap_mutual_password: get("discovery_mutual_password")?,
    };
    let enforce = opt_bool(&at, m, "discovery_enable_auth")?.unwrap_or(false);
    // Said plainly when discovery ends up open where LIO demanded CHAP.
    let open = if enforce {
        "; LIO required CHAP for discovery and ironlun now does NOT: any initiator can list the targets (SendTargets) until iscsi/discovery_auth/userid and password are set and enforce_discovery_auth=1"
    } else {
        ""
    };
    match chap.validate("iscsi/discovery_auth") {
        Ok(()) if enforce && (chap.chap_userid.is_empty() || chap.chap_password.is_empty()) => {
            // rtslib writes the credentials only when set; LIO then refused every discovery
            // login. ironlun enforces only with credentials.
            d.chap = chap;
            report.push(
                format!("{at}.discovery_enable_auth"),
                format!("true without discovery_userid and discovery_password{open}"),
            );
        }
        Ok(()) => {
            d.chap = chap;
            d.enforce_discovery_auth = enforce;
        }
        Err(e) => {
            report.push(
                &at,
                format!("discovery credentials not carried ({e}){open}"),
            );
        }
    }
    Ok(())
}
