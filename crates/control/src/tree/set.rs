//! `set PATH VALUE`: change one leaf of the tree (LIO's configfs writes), checked against the
//! leaf's rules; the reply echoes the value, never a secret.

use super::path::{segments, ObjPath, TpgId};
use super::render::COMPANY_ID;
use super::resize::resize_request;
use super::{need_acl, need_tpg, Inspect};
use crate::model::alua::{DEFAULT_LU_GP, DEFAULT_TG_PT_GP};
use crate::model::*;
use crate::pr;
use ironlun_fabric::SECRET_MASK;

/// Set the leaf at `path` to `value` in `cfg`. Ok: the reply line; Err: one line.
pub(super) fn set(
    cfg: &mut Config,
    insp: &dyn Inspect,
    path: &str,
    value: &str,
) -> Result<String, String> {
    let loc = ObjPath::parse(path)?;
    let at = segments(path).join("/");
    match loc {
        ObjPath::DeviceAttr(key, name) => {
            if cfg.device(&key).is_none() {
                return Err(format!("{key}: no such device"));
            }
            // Parsed once, with the engine's declaration; the engine may still refuse a
            // value that depends on the device (its backstore, whether it is exported).
            let v = parse_device_attribute(&name, value).map_err(|e| at_path(&at, &name, &e))?;
            if let Some(so) = cfg.device_mut(&key) {
                so.attributes.insert(name, v);
            }
        }
        ObjPath::DeviceWwn(key, name) => {
            if cfg.device(&key).is_none() {
                return Err(format!("{key}: no such device"));
            }
            if name == "company_id" {
                return Err(format!(
                    "{at}: read-only in this build (the engine uses OUI {COMPANY_ID})"
                ));
            }
            validate_wwn_field(&key.to_string(), &name, value)?;
            // LIO refuses identity changes while exported; initiators cache them.
            if let Some((t, g, l)) = cfg.luns_of(&key).first() {
                return Err(format!(
                    "{at}: cannot change while the device is exported by iscsi/{t}/tpgt_{g}/lun/lun_{l}"
                ));
            }
            if let Some(so) = cfg.device_mut(&key) {
                match name.as_str() {
                    "vendor_id" => so.vendor_id = value.to_string(),
                    "product_id" => so.product_id = value.to_string(),
                    "revision" => so.revision = value.to_string(),
                    _ => so.wwn = value.to_string(),
                }
            }
        }
        ObjPath::DeviceLeaf(key, leaf) if leaf == "alua_lu_gp" => {
            let names: Vec<String> = cfg.lu_gps().into_iter().map(|g| g.name).collect();
            if !names.iter().any(|n| n == value) {
                return Err(format!(
                    "{at}: LU group '{value}' does not exist; valid: {} (create core/alua/lu_gps/<name> lu_gp_id=<n> first)",
                    names.join(", ")
                ));
            }
            let so = cfg
                .device_mut(&key)
                .ok_or_else(|| format!("{key}: no such device"))?;
            so.alua_lu_gp = (value != DEFAULT_LU_GP).then(|| value.to_string());
        }
        ObjPath::AluaGroupAttr(key, g, attr) => {
            let so = cfg
                .device_mut(&key)
                .ok_or_else(|| format!("{key}: no such device"))?;
            let names: Vec<String> = so.alua_groups().into_iter().map(|x| x.name).collect();
            let group = so.alua_group_mut(&g).ok_or_else(|| {
                format!(
                    "{key}/alua/{g}: no such group; groups: {}",
                    names.join(", ")
                )
            })?;
            group.set(&at, &attr, value)?;
        }
        ObjPath::LuGpAttr(name, attr) => {
            if !cfg.lu_gps().iter().any(|x| x.name == name) {
                return Err(format!("core/alua/lu_gps/{name}: no such LU group"));
            }
            return Err(match attr.as_str() {
                "lu_gp_id" => format!("{at}: read-only (given when the group is created)"),
                "members" => format!(
                    "{at}: read-only (a device joins with core/<kind>_<n>/<dev>/alua_lu_gp)"
                ),
                _ => format!("{at}: unknown attribute; valid: lu_gp_id, members (both read-only)"),
            });
        }
        ObjPath::LunAttr(TpgId { target: t, tag: g }, l, attr) => {
            let devs = cfg.clone();
            let tpg = need_tpg(cfg, &t, g)?;
            let lun = tpg
                .luns
                .iter_mut()
                .find(|x| x.index == l)
                .ok_or_else(|| format!("iscsi/{t}/tpgt_{g}/lun/lun_{l}: no such LUN"))?;
            match attr.as_str() {
                "alua_tg_pt_gp" => {
                    let so = DevKey::parse(&lun.storage_object)
                        .ok()
                        .and_then(|k| devs.device(&k))
                        .ok_or_else(|| format!("{at}: the LUN's device does not exist"))?;
                    // LIO: writing NULL puts the LUN back into the default group.
                    let name = if value == "NULL" { DEFAULT_TG_PT_GP } else { value };
                    if so.alua_group(name).is_none() {
                        let names: Vec<String> =
                            so.alua_groups().into_iter().map(|x| x.name).collect();
                        return Err(format!(
                            "{at}: '{value}' is not a target port group of {}; valid: {}",
                            so.key(),
                            names.join(", ")
                        ));
                    }
                    lun.alua_tg_pt_gp_name = (name != DEFAULT_TG_PT_GP).then(|| name.to_string());
                }
                "alua_tg_pt_offline" => {
                    let on = parse_bool(&at, value)?;
                    if on != lun.alua_tg_pt_offline {
                        lun.alua_tg_pt_offline = on;
                        // Changed by the administrator: implicit (LIO's configfs write).
                        lun.alua_tg_pt_status = 2;
                    }
                }
                "alua_tg_pt_status" => {
                    return Err(format!(
                        "{at}: read-only (0 none, 1 changed by SET TARGET PORT GROUPS, 2 changed by the administrator)"
                    ))
                }
                _ => {
                    return Err(format!(
                        "{at}: unknown attribute; valid: alua_tg_pt_gp, alua_tg_pt_offline, alua_tg_pt_status (read-only)"
                    ))
                }
            }
        }
        ObjPath::DeviceLeaf(key, leaf) => {
            if cfg.device(&key).is_none() {
                return Err(format!("{key}: no such device"));
            }
            match leaf.as_str() {
                "enable" if value == "1" => return Ok(format!("{at} is 1 (devices are enabled when created)")),
                "enable" => {
                    return Err(format!("{at}: a configured device cannot be disabled; delete it instead (only 1 is valid)"))
                }
                "control" => {
                    // A capacity change acts on the running backstore; the daemon routes it
                    // through `resize_request` before any plain mutation.
                    let r = resize_request(cfg, insp, path, value)?;
                    return Err(format!(
                        "{at}: {} is a live capacity change; send it to the daemon",
                        if r.is_some() { value } else { "this" }
                    ));
                }
                _ => return Err(format!("{at}: read-only (creation parameters are given to create)")),
            }
        }
        ObjPath::DevicePr(key, name) => {
            if cfg.device(&key).is_none() {
                return Err(format!("{key}: no such device"));
            }
            if pr::TREE_LEAVES.contains(&name.as_str()) {
                return Err(format!(
                    "{at}: read-only (live persistent reservation state; initiators change it with PERSISTENT RESERVE OUT, an administrator drops it with `ironlun pr clear {key} --force`)"
                ));
            }
            return Err(format!(
                "{at}: unknown attribute; pr/ has (read-only) {}",
                pr::TREE_LEAVES.join(", ")
            ));
        }
        ObjPath::DiscoveryAuth(name) => {
            let da = &mut cfg.discovery_auth;
            if name == "enforce_discovery_auth" {
                da.enforce_discovery_auth = parse_bool(&at, value)?;
            } else {
                let slot = da.chap.slot(&name).ok_or_else(|| {
                    format!(
                        "{at}: unknown attribute; valid: enforce_discovery_auth, {}",
                        AUTH_NAMES.join(", ")
                    )
                })?;
                validate_chap_value(&at, value)?;
                *slot = value.to_string();
            }
        }
        ObjPath::TpgLeaf(TpgId { target: t, tag: g }, leaf) if leaf == "enable" => {
            let on = parse_bool(&at, value)?;
            need_tpg(cfg, &t, g)?.enable = on;
        }
        ObjPath::TpgLeaf(TpgId { target: t, tag: g }, _) => {
            let rtpi = value
                .parse::<u16>()
                .ok()
                .filter(|&r| r >= 1)
                .ok_or_else(|| format!("{at}: '{value}' is not valid; expected 1-65535"))?;
            let owner = cfg.targets.iter().find_map(|tt| {
                tt.tpgs
                    .iter()
                    .find(|gg| gg.rtpi == rtpi && !(tt.wwn == t && gg.tag == g))
                    .map(|gg| format!("iscsi/{}/tpgt_{}", tt.wwn, gg.tag))
            });
            let tpg = need_tpg(cfg, &t, g)?;
            if tpg.enable {
                return Err(format!(
                    "{at}: can only change while the TPG is disabled (set enable 0 first)"
                ));
            }
            if let Some(owner) = owner {
                return Err(format!(
                    "{at}: {rtpi} is already used by {owner}; RTPIs must be unique"
                ));
            }
            tpg.rtpi = rtpi;
        }
        ObjPath::TpgAttrib(TpgId { target: t, tag: g }, name) => {
            let attr = tpg_attribute(&name).ok_or_else(|| {
                format!("{at}: unknown attribute; valid: {}", tpg_attribute_names())
            })?;
            let v = attr.parse(&at, value)?;
            attr.set(&mut need_tpg(cfg, &t, g)?.attributes, v);
        }
        ObjPath::TpgAuth(TpgId { target: t, tag: g }, name) => {
            validate_chap_value(&at, value)?;
            let tpg = need_tpg(cfg, &t, g)?;
            let slot = tpg.chap.slot(&name).ok_or_else(|| {
                format!("{at}: unknown attribute; valid: {}", AUTH_NAMES.join(", "))
            })?;
            *slot = value.to_string();
        }
        ObjPath::AclAuth(TpgId { target: t, tag: g }, i, name) => {
            validate_chap_value(&at, value)?;
            let acl = need_acl(cfg, &t, g, &i)?;
            let slot = acl.chap.slot(&name).ok_or_else(|| {
                format!("{at}: unknown attribute; valid: {}", AUTH_NAMES.join(", "))
            })?;
            *slot = value.to_string();
        }
        ObjPath::TpgParam(TpgId { target: t, tag: g }, key) => {
            let defaults = insp.param_defaults();
            let default = defaults
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, d)| d.clone())
                .ok_or_else(|| {
                    let names: Vec<&str> = defaults.iter().map(|(k, _)| k.as_str()).collect();
                    format!("{at}: unknown parameter; valid: {}", names.join(", "))
                })?;
            insp.validate_param(&key, value)
                .map_err(|e| format!("{at}: {e}"))?;
            let tpg = need_tpg(cfg, &t, g)?;
            if value == default {
                tpg.parameters.remove(&key);
            } else {
                tpg.parameters.insert(key, value.to_string());
            }
        }
        ObjPath::MappedLunAttr(TpgId { target: t, tag: g }, i, m, name) => {
            let tpg = need_tpg(cfg, &t, g)?;
            let tpg_luns: Vec<u64> = tpg.luns.iter().map(|l| l.index).collect();
            let acl = tpg
                .acl_mut(&i)
                .ok_or_else(|| format!("iscsi/{t}/tpgt_{g}/acls/{i}: no such ACL"))?;
            let ml = acl
                .mapped_luns
                .iter_mut()
                .find(|x| x.index == m)
                .ok_or_else(|| {
                    format!("iscsi/{t}/tpgt_{g}/acls/{i}/lun_{m}: no such mapped LUN")
                })?;
            match name.as_str() {
                "write_protect" => ml.write_protect = parse_bool(&at, value)?,
                "tpg_lun" => {
                    let n = value
                        .parse::<u64>()
                        .ok()
                        .filter(|n| tpg_luns.contains(n))
                        .ok_or_else(|| {
                            format!("{at}: '{value}' is not a LUN of iscsi/{t}/tpgt_{g}/lun")
                        })?;
                    ml.tpg_lun = n;
                }
                _ => {
                    return Err(format!(
                        "{at}: unknown attribute; valid: tpg_lun, write_protect"
                    ))
                }
            }
        }
        ObjPath::Lun(..) => {
            return Err(format!(
                "{at}: a LUN link cannot be changed; delete it and create it again"
            ))
        }
        ObjPath::Root
        | ObjPath::Core
        | ObjPath::Iscsi
        | ObjPath::CoreAlua
        | ObjPath::LuGps
        | ObjPath::Hba(..)
        | ObjPath::DeviceDir(..)
        | ObjPath::DiscoveryAuthDir
        | ObjPath::TpgDir(..)
        | ObjPath::AclAuthDir(..)
        | ObjPath::Device(_)
        | ObjPath::Target(_)
        | ObjPath::Tpg(..)
        | ObjPath::Np(..)
        | ObjPath::Acl(..)
        | ObjPath::AluaGroup(..)
        | ObjPath::LuGp(_)
        | ObjPath::MappedLun(..) => {
            return Err(format!(
                "{at}: not an attribute (set takes a leaf such as …/enable)"
            ))
        }
    }
    // The reply is echoed and logged: never repeat a secret.
    let secret = at.ends_with("/password") || at.ends_with("/password_mutual");
    Ok(format!(
        "{at} = {}",
        if secret { SECRET_MASK } else { value }
    ))
}
