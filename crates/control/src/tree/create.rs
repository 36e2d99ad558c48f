//! `create PATH [key=value…]`: a device, target, TPG, portal, LUN, ACL, mapped LUN, target port
//! group or LU group, with its creation parameters.

use std::collections::BTreeMap;

use super::need_tpg;
use super::path::{segments, ObjPath, TpgId};
use crate::model::alua::{self, AluaTpg, LuGp};
use crate::model::*;

/// Create the object at `path` with `args` (`key=value` each) in `cfg`. Ok: the reply line.
pub(super) fn create(cfg: &mut Config, path: &str, args: &[String]) -> Result<String, String> {
    let args = &parse_args(args)?;
    let loc = ObjPath::parse(path)?;
    let at = segments(path).join("/");
    let arg = |k: &str| args.get(k).map(String::as_str);
    match loc {
        ObjPath::Device(key) => {
            const VALID: &[&str] = &[
                "size", "path", "dev", "write_back", "readonly", "sparse", "wwn", "vendor_id", "product_id", "revision", "block_size",
            ];
            only_keys(&at, args, VALID)?;
            if cfg.device(&key).is_some() {
                return Err(format!("{at}: already exists"));
            }
            let size = arg("size").map(|s| parse_size(&format!("{at}: size"), s)).transpose()?;
            let mut attributes = BTreeMap::new();
            if let Some(bs) = arg("block_size") {
                let v = parse_device_attribute("block_size", bs).map_err(|e| format!("{at}: {e}"))?;
                attributes.insert("block_size".to_string(), v);
            }
            let so = StorageObject {
                plugin: key.kind,
                hba: key.hba,
                name: key.name.clone(),
                wwn: arg("wwn").map_or_else(generate_serial, str::to_string),
                vendor_id: arg("vendor_id").unwrap_or("IRONLUN").to_string(),
                product_id: arg("product_id").unwrap_or(key.kind.default_product_id()).to_string(),
                revision: arg("revision").unwrap_or("1.0").to_string(),
                dev: arg(if key.kind == Kind::PScsi { "dev" } else { "path" }).map(str::to_string),
                size,
                write_back: match arg("write_back") {
                    Some(v) => parse_bool(&format!("{at}: write_back"), v)?,
                    None => key.kind == Kind::FileIo,
                },
                readonly: arg("readonly").map(|v| parse_bool(&format!("{at}: readonly"), v)).transpose()?.unwrap_or(false),
                attributes,
                alua_tpgs: Vec::new(),
                alua_lu_gp: None,
            };
            if key.kind == Kind::RdMcp && (args.contains_key("write_back") || args.contains_key("readonly")) {
                return Err(format!("create {at}: rd_mcp takes size= only (write_back/readonly are for fileio/iblock)"));
            }
            match (key.kind, args.contains_key("dev"), args.contains_key("path")) {
                (Kind::PScsi, _, true) => {
                    return Err(format!("create {at}: pscsi takes dev=</dev/sgN|/dev/sdX|H:C:T:L>, not path="))
                }
                (Kind::PScsi, _, _) => {
                    if let Some(k) = ["size", "write_back", "readonly", "block_size", "vendor_id", "product_id", "revision"]
                        .into_iter()
                        .find(|k| args.contains_key(*k))
                    {
                        return Err(format!("create {at}: pscsi takes dev= only ({k} is the device's own)"));
                    }
                }
                (_, true, _) => return Err(format!("create {at}: dev= is for pscsi; {} takes path=", key.kind.tree_name())),
                _ => {}
            }
            if key.kind != Kind::FileIo && args.contains_key("sparse") {
                return Err(format!("create {at}: sparse= is for fileio (a file to preallocate)"));
            }
            thick_arg(&at, args)?;
            if key.kind == Kind::IBlock && args.contains_key("write_back") {
                return Err(format!("create {at}: iblock takes path= and readonly= (write_back is for fileio)"));
            }
            validate_storage_object(&so)?;
            cfg.storage_objects.push(so);
            Ok(format!("created {at}"))
        }
        ObjPath::Target(t) => {
            only_keys(&at, args, &[])?;
            if cfg.target(&t).is_some() {
                return Err(format!("{at}: already exists"));
            }
            cfg.targets.push(Target { wwn: t, fabric: "iscsi".into(), tpgs: Vec::new() });
            Ok(format!("created {at}"))
        }
        ObjPath::Tpg(TpgId { target: t, tag: g }) => {
            only_keys(&at, args, &["rtpi"])?;
            let rtpi = match arg("rtpi") {
                Some(v) => {
                    let r = v
                        .parse::<u16>()
                        .ok()
                        .filter(|&r| r >= 1)
                        .ok_or_else(|| format!("create {at}: rtpi '{v}' is not valid; expected 1-65535"))?;
                    if cfg.targets.iter().any(|tt| tt.tpgs.iter().any(|gg| gg.rtpi == r)) {
                        return Err(format!("create {at}: rtpi {r} is already used; RTPIs must be unique"));
                    }
                    r
                }
                None => cfg.free_rtpi().ok_or("no free relative target port identifier (all 65535 used)")?,
            };
            let mut msg = format!("created {at} (rtpi {rtpi})");
            if cfg.target(&t).is_none() {
                cfg.targets.push(Target { wwn: t.clone(), fabric: "iscsi".into(), tpgs: Vec::new() });
                msg = format!("created iscsi/{t} and {at} (rtpi {rtpi})");
            }
            let target = cfg.target_mut(&t).ok_or_else(|| format!("iscsi/{t}: no such target"))?;
            if target.tpg(g).is_some() {
                return Err(format!("{at}: already exists"));
            }
            target.tpgs.push(Tpg::new(g, rtpi));
            target.tpgs.sort_by_key(|x| x.tag);
            Ok(msg)
        }
        ObjPath::Np(TpgId { target: t, tag: g }, addr) => {
            only_keys(&at, args, &[])?;
            let tpg = need_tpg(cfg, &t, g)?;
            if tpg.portals.iter().any(|p| p.addr() == addr) {
                return Err(format!("{at}: already exists"));
            }
            tpg.portals.push(Portal { ip_address: addr.ip(), port: addr.port() });
            Ok(format!("created {at}"))
        }
        ObjPath::Lun(TpgId { target: t, tag: g }, l) => {
            only_keys(&at, args, &["dev"])?;
            let dev = arg("dev").ok_or_else(|| format!("create {at}: dev=core/<kind>_<n>/<name> is required"))?;
            add_lun(cfg, &t, g, l, dev)
        }
        ObjPath::Acl(TpgId { target: t, tag: g }, i) => {
            only_keys(&at, args, &[])?;
            let tpg = need_tpg(cfg, &t, g)?;
            if tpg.acl(&i).is_some() {
                return Err(format!("{at}: already exists"));
            }
            tpg.node_acls.push(NodeAcl { node_wwn: i, chap: Chap::default(), mapped_luns: Vec::new() });
            Ok(format!("created {at}"))
        }
        ObjPath::MappedLun(TpgId { target: t, tag: g }, i, m) => {
            only_keys(&at, args, &["tpg_lun", "write_protect"])?;
            let tpg_lun = arg("tpg_lun").ok_or_else(|| format!("create {at}: tpg_lun=<n> is required"))?;
            let tpg_lun = tpg_lun
                .parse::<u64>()
                .map_err(|_| format!("create {at}: tpg_lun '{tpg_lun}' is not a number"))?;
            let wp = arg("write_protect").map(|v| parse_bool(&format!("create {at}: write_protect"), v)).transpose()?;
            add_mapped_lun(cfg, &t, g, &i, m, tpg_lun, wp.unwrap_or(false))
        }
        ObjPath::AluaGroup(key, name) => {
            only_keys(&at, args, &["tg_pt_gp_id"])?;
            let so = cfg.device_mut(&key).ok_or_else(|| format!("{key}: no such device"))?;
            if so.alua_group(&name).is_some() {
                return Err(format!("{at}: already exists"));
            }
            let taken: Vec<(u16, String)> = so
                .alua_groups()
                .into_iter()
                .map(|g| (g.tg_pt_gp_id, format!("{key}/alua/{}", g.name)))
                .collect();
            let id = group_id(&at, "tg_pt_gp_id", arg("tg_pt_gp_id"), &taken, " per device")?;
            so.alua_tpgs.push(AluaTpg::new(&name, id));
            Ok(format!("created {at} (tg_pt_gp_id {id})"))
        }
        ObjPath::LuGp(name) => {
            only_keys(&at, args, &["lu_gp_id"])?;
            if cfg.lu_gps().iter().any(|g| g.name == name) {
                return Err(format!("{at}: already exists"));
            }
            let taken: Vec<(u16, String)> = cfg
                .lu_gps()
                .into_iter()
                .map(|g| (g.lu_gp_id, format!("core/alua/lu_gps/{}", g.name)))
                .collect();
            let id = group_id(&at, "lu_gp_id", arg("lu_gp_id"), &taken, "")?;
            cfg.alua_lu_gps.push(LuGp { name, lu_gp_id: id });
            Ok(format!("created {at} (lu_gp_id {id})"))
        }
        ObjPath::Root | ObjPath::Core | ObjPath::Iscsi => Err(format!("{at}: already exists")),
        _ => Err(format!(
            "{at}: cannot be created; create a device, target, tpgt_<n>, np/<ip>:<port>, lun/lun_<n>, acls/<iqn>, acls/<iqn>/lun_<n>, core/<kind>_<n>/<dev>/alua/<group> or core/alua/lu_gps/<group>"
        )),
    }
}

pub(super) fn add_lun(
    cfg: &mut Config,
    t: &str,
    g: u16,
    l: u64,
    dev: &str,
) -> Result<String, String> {
    let key = DevKey::parse(dev)?;
    if cfg.device(&key).is_none() {
        return Err(format!("{key}: no such device"));
    }
    let tpg = need_tpg(cfg, t, g)?;
    if tpg.lun(l).is_some() {
        return Err(format!("iscsi/{t}/tpgt_{g}/lun/lun_{l}: already exists"));
    }
    tpg.luns.push(Lun::new(l, key.to_string()));
    tpg.luns.sort_by_key(|x| x.index);
    Ok(format!("created iscsi/{t}/tpgt_{g}/lun/lun_{l} -> {key}"))
}

pub(super) fn add_mapped_lun(
    cfg: &mut Config,
    t: &str,
    g: u16,
    i: &str,
    m: u64,
    tpg_lun: u64,
    wp: bool,
) -> Result<String, String> {
    let tpg = need_tpg(cfg, t, g)?;
    if tpg.lun(tpg_lun).is_none() {
        return Err(format!("iscsi/{t}/tpgt_{g}/lun/lun_{tpg_lun}: no such LUN (tpg_lun must name an existing TPG LUN)"));
    }
    let acl = tpg
        .acl_mut(i)
        .ok_or_else(|| format!("iscsi/{t}/tpgt_{g}/acls/{i}: no such ACL"))?;
    if acl.mapped_luns.iter().any(|x| x.index == m) {
        return Err(format!(
            "iscsi/{t}/tpgt_{g}/acls/{i}/lun_{m}: already exists"
        ));
    }
    acl.mapped_luns.push(MappedLunCfg {
        index: m,
        tpg_lun,
        write_protect: wp,
    });
    acl.mapped_luns.sort_by_key(|x| x.index);
    Ok(format!(
        "created iscsi/{t}/tpgt_{g}/acls/{i}/lun_{m} -> lun/lun_{tpg_lun}"
    ))
}

/// `sparse=` of a fileio creation: `Some(true)` for `sparse=0` (preallocate). The model does
/// not keep it: as in targetcli, it says how the file is made, not what the LU is.
fn thick_arg(at: &str, args: &BTreeMap<String, String>) -> Result<bool, String> {
    match args.get("sparse") {
        None => Ok(false),
        Some(v) => Ok(!parse_bool(&format!("{at}: sparse"), v)?),
    }
}

/// The file a `create` asks to preallocate (`sparse=0`): its path and the size given, if
/// any. `cfg` is the tree after the creation; `Ok(None)`: nothing to preallocate.
pub fn preallocation(
    cfg: &Config,
    path: &str,
    args: &[String],
) -> Result<Option<(String, Option<u64>)>, String> {
    let ObjPath::Device(key) = ObjPath::parse(path)? else {
        return Ok(None);
    };
    if key.kind != Kind::FileIo || !thick_arg(&segments(path).join("/"), &parse_args(args)?)? {
        return Ok(None);
    }
    let so = cfg
        .device(&key)
        .ok_or_else(|| format!("{key}: no such device"))?;
    Ok(so.dev.clone().map(|d| (d, so.size)))
}

fn parse_args(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| format!("argument '{a}': expected key=value"))?;
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("argument '{k}' given twice"));
        }
    }
    Ok(out)
}

fn only_keys(at: &str, args: &BTreeMap<String, String>, valid: &[&str]) -> Result<(), String> {
    if let Some(k) = args.keys().find(|k| !valid.contains(&k.as_str())) {
        let valid = if valid.is_empty() {
            "none".to_string()
        } else {
            valid.join(", ")
        };
        return Err(format!(
            "create {at}: unknown argument '{k}'; valid: {valid}"
        ));
    }
    Ok(())
}

/// The id of a new group: the one given (1-65535, not `taken` by another group of the same
/// scope) or the lowest free one. `taken` pairs ids with their group's path.
fn group_id(
    at: &str,
    key: &str,
    given: Option<&str>,
    taken: &[(u16, String)],
    scope: &str,
) -> Result<u16, String> {
    match given {
        Some(v) => {
            let id = alua::parse_group_id(at, key, v)?;
            match taken.iter().find(|(t, _)| *t == id) {
                Some((_, owner)) => Err(format!(
                    "create {at}: {key} {id} is already used by {owner}; ids must be unique{scope}"
                )),
                None => Ok(id),
            }
        }
        None => (1..=u16::MAX)
            .find(|i| !taken.iter().any(|(t, _)| t == i))
            .ok_or_else(|| format!("create {at}: no free {key}")),
    }
}
