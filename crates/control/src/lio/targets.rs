//! rtslib-fb `saveconfig.json` targets → [`Target`]s: TPGs, portals, LUNs, node ACLs with
//! mapped LUNs and CHAP (rtslib-fb target.py `TPG.dump`, `LUN.dump`, `NetworkPortal.dump`,
//! `NodeACL.dump`, `MappedLUN.dump`; LIO's configfs layout `iscsi/<wwn>/tpgt_<n>/…`, RFC 7143
//! §3.4.1 portal groups). Part of [`super::import`].

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{Map, Value};

use super::{
    canonical_plugin, list, number, object, opt_bool, opt_str, opt_u64, plugin_kind, req_str,
    req_u64, short, unknown_keys, FabricParams, Report,
};
use crate::model::alua::DEFAULT_TG_PT_GP;
use crate::model::{
    tpg_attribute, Chap, Config, DevKey, Lun, MappedLunCfg, NodeAcl, ParamSchema, Portal, Target,
    Tpg,
};
use crate::names::validate_iscsi_name;

/// `chap_*` keys of a TPG or ACL. Credentials ironlun refuses (a secret under 12 bytes) are
/// dropped and reported: logins that need them then fail rather than pass.
pub(super) fn chap_of(
    at: &str,
    m: &Map<String, Value>,
    report: &mut Report,
) -> Result<Chap, String> {
    let get = |k: &str| -> Result<String, String> {
        Ok(opt_str(at, m, k)?.unwrap_or_default().to_string())
    };
    let chap = Chap {
        chap_userid: get("chap_userid")?,
        chap_password: get("chap_password")?,
        chap_mutual_userid: get("chap_mutual_userid")?,
        chap_mutual_password: get("chap_mutual_password")?,
    };
    match chap.validate(at) {
        Ok(()) => Ok(chap),
        Err(e) => {
            report.push(
                at,
                format!("CHAP credentials not carried ({e}); logins that need them fail until set"),
            );
            Ok(Chap::default())
        }
    }
}

const CHAP_KEYS: [&str; 4] = [
    "chap_userid",
    "chap_password",
    "chap_mutual_userid",
    "chap_mutual_password",
];

pub(super) fn target(
    i: usize,
    v: &Value,
    cfg: &Config,
    params: &FabricParams,
    report: &mut Report,
) -> Result<Option<Target>, String> {
    let at0 = format!("targets[{i}]");
    let m = object(&at0, v)?;
    let wwn = req_str(&at0, m, "wwn")?;
    let fabric = req_str(&at0, m, "fabric")?;
    let at = format!("/{fabric}/{wwn}");
    if fabric != "iscsi" {
        report.push(&at, format!("fabric '{fabric}': ironlun serves iSCSI only, the target is skipped (its storage objects are imported)"));
        return Ok(None);
    }
    // rtslib's Target() turns a saved `naa.6…` into `naa.5…` ("old versions used wrong NAA
    // prefix"), so that is the name LIO served: keep serving it.
    let fixed;
    let wwn = match wwn.strip_prefix("naa.6") {
        Some(rest) => {
            fixed = format!("naa.5{rest}");
            report.push(
                &at,
                format!("named {fixed}, as rtslib's restore renames naa.6… targets (the name LIO served)"),
            );
            fixed.as_str()
        }
        None => wwn,
    };
    validate_iscsi_name("target name", wwn).map_err(|e| format!("{at0}.wwn: {e}"))?;
    unknown_keys(&at, m, &["wwn", "fabric", "tpgs", "parameters"], report);
    if let Some(p) = m
        .get("parameters")
        .filter(|p| p.as_object().is_some_and(|o| !o.is_empty()))
    {
        report.push(
            format!("{at}.parameters"),
            format!(
                "{} (target-level parameters; rtslib's restore ignores them too)",
                short(p)
            ),
        );
    }
    let mut t = Target {
        wwn: wwn.to_string(),
        fabric: "iscsi".into(),
        tpgs: Vec::new(),
    };
    for (gi, g) in list(&at, m, "tpgs")?.iter().enumerate() {
        t.tpgs.push(tpg(&at, gi, g, cfg, params, report)?);
    }
    Ok(Some(t))
}

fn tpg(
    tat: &str,
    gi: usize,
    v: &Value,
    cfg: &Config,
    params: &FabricParams,
    report: &mut Report,
) -> Result<Tpg, String> {
    let at0 = format!("{tat}.tpgs[{gi}]");
    let m = object(&at0, v)?;
    let tag = req_u64(&at0, m, "tag")?;
    let tag = u16::try_from(tag)
        .ok()
        .filter(|t| *t > 0)
        .ok_or_else(|| format!("{at0}.tag: {tag} is not 1-65535"))?;
    let at = format!("{tat}/tpgt_{tag}");
    let mut known = vec![
        "tag",
        "enable",
        "attributes",
        "parameters",
        "portals",
        "luns",
        "node_acls",
    ];
    known.extend_from_slice(&CHAP_KEYS);
    unknown_keys(&at, m, &known, report);
    let mut g = Tpg::new(tag, 0);
    g.enable = opt_bool(&at, m, "enable")?.unwrap_or(true);
    if let Some(a) = m.get("attributes") {
        let mut skipped = Vec::new();
        for (k, v) in object(&format!("{at}.attributes"), a)? {
            let n = number(&format!("{at}.attributes.{k}"), v)?;
            match tpg_attribute(k) {
                Some(ta) => {
                    let n32 = u32::try_from(n)
                        .map_err(|_| format!("{at}.attributes.{k}: {n} is out of range"))?;
                    ta.check(n32)
                        .map_err(|e| format!("{at}.attributes.{k}: {e}"))?;
                    ta.set(&mut g.attributes, n32);
                }
                None => skipped.push(format!("{k}={n}")),
            }
        }
        if !skipped.is_empty() {
            report.push(
                format!("{at}.attributes"),
                format!(
                    "{} (ironlun has no such TPG attributes)",
                    skipped.join(", ")
                ),
            );
        }
    }
    if let Some(p) = m.get("parameters") {
        let defaults = params.param_defaults();
        let mut skipped = Vec::new();
        for (k, v) in object(&format!("{at}.parameters"), p)? {
            let text = match v {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            match defaults.iter().find(|(d, _)| d == k) {
                Some((_, d)) if *d == text => {}
                Some(_) => match params.validate_param(k, &text) {
                    Ok(()) => {
                        g.parameters.insert(k.clone(), text);
                    }
                    Err(e) => report.push(
                        format!("{at}.parameters.{k}"),
                        format!("'{text}' not carried: {e}"),
                    ),
                },
                None => skipped.push(format!("{k}={text}")),
            }
        }
        if !skipped.is_empty() {
            report.push(
                format!("{at}.parameters"),
                format!("{} (ironlun has no such parameters)", skipped.join(", ")),
            );
        }
    }
    g.chap = chap_of(&format!("{at}/auth"), m, report)?;
    for (pi, p) in list(&at, m, "portals")?.iter().enumerate() {
        let pat = format!("{at}.portals[{pi}]");
        let pm = object(&pat, p)?;
        unknown_keys(&pat, pm, &["ip_address", "port", "iser", "offload"], report);
        let ip = req_str(&pat, pm, "ip_address")?;
        let addr: IpAddr = ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("{pat}.ip_address: '{ip}' is not an IPv4 or IPv6 address"))?;
        let port = req_u64(&pat, pm, "port")?;
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{pat}.port: {port} is not 1-65535"))?;
        for flag in ["iser", "offload"] {
            if opt_bool(&pat, pm, flag)? == Some(true) {
                report.push(format!("{pat}.{flag}"), format!("true: ironlun serves iSCSI over TCP only; the portal {ip}:{port} serves TCP"));
            }
        }
        g.portals.push(Portal {
            ip_address: addr,
            port,
        });
    }
    let mut skipped_luns = BTreeSet::new();
    for (li, l) in list(&at, m, "luns")?.iter().enumerate() {
        let lat0 = format!("{at}.luns[{li}]");
        let lm = object(&lat0, l)?;
        let index = req_u64(&lat0, lm, "index")?;
        let lat = format!("{at}/luns/lun{index}");
        unknown_keys(
            &lat,
            lm,
            &["index", "storage_object", "alias", "alua_tg_pt_gp_name"],
            report,
        );
        let so = req_str(&lat0, lm, "storage_object")?;
        if index > crate::model::MAX_LUN {
            report.push(
                &lat,
                format!("LUN {index}: ironlun serves LUNs 0-{} (flat space addressing; rtslib allows up to 65535): skipped, with its mapped LUNs", crate::model::MAX_LUN),
            );
            skipped_luns.insert(index);
            continue;
        }
        let Some(key) = lun_device(&lat0, so)? else {
            report.push(
                &lat,
                format!("{so}: a user (TCMU) object, not imported; the LUN is skipped"),
            );
            skipped_luns.insert(index);
            continue;
        };
        if cfg.device(&key).is_none() {
            return Err(format!(
                "{lat0}.storage_object: '{so}' is not in storage_objects"
            ));
        }
        if let Some(a) = opt_str(&lat, lm, "alias")? {
            report.push(
                format!("{lat}.alias"),
                format!("'{a}' (ironlun names LUN links lun_<n>)"),
            );
        }
        let mut lun = Lun::new(index, key.to_string());
        lun.alua_tg_pt_gp_name = opt_str(&lat, lm, "alua_tg_pt_gp_name")?
            .filter(|n| *n != DEFAULT_TG_PT_GP)
            .map(str::to_string);
        g.luns.push(lun);
    }
    let mut nopins = BTreeSet::new();
    for (ai, a) in list(&at, m, "node_acls")?.iter().enumerate() {
        let (acl, nopin) = node_acl(&at, ai, a, &skipped_luns, report)?;
        g.node_acls.push(acl);
        nopins.insert(nopin);
    }
    carry_nopin(&at, nopins, &mut g, report)?;
    Ok(g)
}

/// `/backstores/<plugin>/<name>` → the device key; None for user objects.
fn lun_device(at: &str, so: &str) -> Result<Option<DevKey>, String> {
    let bad = || format!("{at}.storage_object: '{so}' is not /backstores/<plugin>/<name>");
    let rest = so.strip_prefix("/backstores/").ok_or_else(bad)?;
    let (plugin, name) = rest.split_once('/').ok_or_else(bad)?;
    let plugin = canonical_plugin(plugin).ok_or_else(bad)?;
    Ok(plugin_kind(plugin).map(|kind| DevKey {
        kind,
        hba: 0,
        name: super::dev_name(name),
    }))
}

/// LIO's NOP-In timeouts, per ACL: `(nopin_timeout, nopin_response_timeout)`.
type Nopin = (Option<u64>, Option<u64>);
const NOPIN: [&str; 2] = ["nopin_timeout", "nopin_response_timeout"];

/// LIO keeps the NOP-In timeouts per ACL, ironlun per TPG: carried when every ACL of the TPG
/// agrees, reported otherwise.
fn carry_nopin(
    at: &str,
    nopins: BTreeSet<Nopin>,
    g: &mut Tpg,
    report: &mut Report,
) -> Result<(), String> {
    if nopins.len() > 1 {
        report.push(format!("{at}/acls/*.attributes"), "nopin_timeout and nopin_response_timeout differ between ACLs; ironlun has one value per TPG, its default is kept");
        return Ok(());
    }
    let Some((t, r)) = nopins.into_iter().next() else {
        return Ok(());
    };
    for (name, v) in NOPIN.into_iter().zip([t, r]) {
        let Some(v) = v else { continue };
        let Some(ta) = tpg_attribute(name) else {
            continue;
        };
        let n = u32::try_from(v)
            .map_err(|_| format!("{at}/acls/*.attributes.{name}: {v} is out of range"))?;
        match ta.check(n) {
            Ok(()) => ta.set(&mut g.attributes, n),
            Err(e) => report.push(
                format!("{at}/acls/*.attributes.{name}"),
                format!("{v} not carried: {e}"),
            ),
        }
    }
    Ok(())
}

fn node_acl(
    at: &str,
    ai: usize,
    v: &Value,
    skipped_luns: &BTreeSet<u64>,
    report: &mut Report,
) -> Result<(NodeAcl, Nopin), String> {
    let at0 = format!("{at}.node_acls[{ai}]");
    let m = object(&at0, v)?;
    let wwn = req_str(&at0, m, "node_wwn")?;
    validate_iscsi_name("initiator name", wwn).map_err(|e| format!("{at0}.node_wwn: {e}"))?;
    let aat = format!("{at}/acls/{wwn}");
    let mut known = vec!["node_wwn", "attributes", "mapped_luns", "tag"];
    known.extend_from_slice(&CHAP_KEYS);
    unknown_keys(&aat, m, &known, report);
    let mut nopin: Nopin = (None, None);
    if let Some(a) = m.get("attributes") {
        let a = object(&format!("{aat}.attributes"), a)?;
        nopin = (opt_u64(&aat, a, NOPIN[0])?, opt_u64(&aat, a, NOPIN[1])?);
        let items: Vec<String> = a
            .iter()
            .filter(|(k, _)| !NOPIN.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={}", short(v)))
            .collect();
        if !items.is_empty() {
            report.push(
                format!("{aat}.attributes"),
                format!("{} (ironlun has no per-ACL attributes)", items.join(", ")),
            );
        }
    }
    if let Some(t) = opt_str(&aat, m, "tag")? {
        report.push(
            format!("{aat}.tag"),
            format!("'{t}' (ironlun has no ACL tags)"),
        );
    }
    let chap = chap_of(&format!("{aat}/auth"), m, report)?;
    let mut acl = NodeAcl {
        node_wwn: wwn.to_string(),
        chap,
        mapped_luns: Vec::new(),
    };
    for (mi, ml) in list(&aat, m, "mapped_luns")?.iter().enumerate() {
        let mat0 = format!("{aat}.mapped_luns[{mi}]");
        let mm = object(&mat0, ml)?;
        let index = req_u64(&mat0, mm, "index")?;
        let mat = format!("{aat}/mapped_lun{index}");
        unknown_keys(
            &mat,
            mm,
            &["index", "tpg_lun", "write_protect", "alias"],
            report,
        );
        let tpg_lun = req_u64(&mat0, mm, "tpg_lun")?;
        if index > crate::model::MAX_LUN {
            report.push(
                &mat,
                format!(
                    "mapped LUN {index}: ironlun serves LUNs 0-{}: skipped",
                    crate::model::MAX_LUN
                ),
            );
            continue;
        }
        if skipped_luns.contains(&tpg_lun) {
            report.push(
                &mat,
                format!("TPG LUN {tpg_lun} was skipped, so is this mapping"),
            );
            continue;
        }
        if let Some(a) = opt_str(&mat, mm, "alias")? {
            report.push(
                format!("{mat}.alias"),
                format!("'{a}' (ironlun names mapped LUN links lun_<n>)"),
            );
        }
        let write_protect = opt_bool(&mat, mm, "write_protect")?.unwrap_or(false);
        acl.mapped_luns.push(MappedLunCfg {
            index,
            tpg_lun,
            write_protect,
        });
    }
    Ok((acl, nopin))
}
