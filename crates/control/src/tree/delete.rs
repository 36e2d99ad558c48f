//! `delete PATH`, cascading like targetcli: a device takes the TPG LUNs that export it, a TPG
//! LUN the mapped LUNs that point at it, a target or TPG everything below; the reply names
//! every object removed along the way.

use super::path::{segments, ObjPath, TpgId};
use super::{need_acl, need_tpg};
use crate::model::alua::{DEFAULT_LU_GP, DEFAULT_TG_PT_GP};
use crate::model::{Config, Tpg};

/// Remove mapped LUNs pointing at TPG LUN `l`; returns their paths.
fn drop_mapped_of(tpg: &mut Tpg, at: &str, l: u64) -> Vec<String> {
    let mut gone = Vec::new();
    for a in &mut tpg.node_acls {
        a.mapped_luns.retain(|m| {
            let keep = m.tpg_lun != l;
            if !keep {
                gone.push(format!("{at}/acls/{}/lun_{}", a.node_wwn, m.index));
            }
            keep
        });
    }
    gone
}

fn with_cascade(at: &str, gone: Vec<String>) -> String {
    if gone.is_empty() {
        format!("deleted {at}")
    } else {
        format!("deleted {at}; also removed {}", gone.join(", "))
    }
}

/// Delete the object at `path` from `cfg` and what cascades with it. Ok: the reply line.
pub(super) fn delete(cfg: &mut Config, path: &str) -> Result<String, String> {
    let loc = ObjPath::parse(path)?;
    let at = segments(path).join("/");
    match loc {
        ObjPath::Device(key) => {
            if cfg.device(&key).is_none() {
                return Err(format!("{at}: no such device"));
            }
            let mut gone = Vec::new();
            for (t, g, l) in cfg.luns_of(&key) {
                if let Some(tpg) = cfg.tpg_mut(&t, g) {
                    let tat = format!("iscsi/{t}/tpgt_{g}");
                    tpg.luns.retain(|x| x.index != l);
                    gone.push(format!("{tat}/lun/lun_{l}"));
                    gone.extend(drop_mapped_of(tpg, &tat, l));
                }
            }
            cfg.storage_objects.retain(|s| s.key() != key);
            Ok(with_cascade(&at, gone))
        }
        ObjPath::Target(t) => {
            let before = cfg.targets.len();
            cfg.targets.retain(|x| x.wwn != t);
            if cfg.targets.len() == before {
                return Err(format!("{at}: no such target"));
            }
            Ok(format!("deleted {at} and everything below it"))
        }
        ObjPath::Tpg(TpgId { target: t, tag: g }) => {
            let target = cfg.target_mut(&t).ok_or_else(|| format!("iscsi/{t}: no such target"))?;
            let before = target.tpgs.len();
            target.tpgs.retain(|x| x.tag != g);
            if target.tpgs.len() == before {
                return Err(format!("{at}: no such TPG"));
            }
            Ok(format!("deleted {at} and everything below it"))
        }
        ObjPath::Np(TpgId { target: t, tag: g }, addr) => {
            let tpg = need_tpg(cfg, &t, g)?;
            let before = tpg.portals.len();
            tpg.portals.retain(|p| p.addr() != addr);
            if tpg.portals.len() == before {
                return Err(format!("{at}: no such portal"));
            }
            Ok(format!("deleted {at}"))
        }
        ObjPath::Lun(TpgId { target: t, tag: g }, l) => {
            let tpg = need_tpg(cfg, &t, g)?;
            if tpg.lun(l).is_none() {
                return Err(format!("{at}: no such LUN"));
            }
            tpg.luns.retain(|x| x.index != l);
            let gone = drop_mapped_of(tpg, &format!("iscsi/{t}/tpgt_{g}"), l);
            Ok(with_cascade(&at, gone))
        }
        ObjPath::Acl(TpgId { target: t, tag: g }, i) => {
            let tpg = need_tpg(cfg, &t, g)?;
            if tpg.acl(&i).is_none() {
                return Err(format!("{at}: no such ACL"));
            }
            tpg.node_acls.retain(|a| a.node_wwn != i);
            Ok(format!("deleted {at}"))
        }
        ObjPath::MappedLun(TpgId { target: t, tag: g }, i, m) => {
            let acl = need_acl(cfg, &t, g, &i)?;
            let before = acl.mapped_luns.len();
            acl.mapped_luns.retain(|x| x.index != m);
            if acl.mapped_luns.len() == before {
                return Err(format!("{at}: no such mapped LUN"));
            }
            Ok(format!("deleted {at}"))
        }
        ObjPath::AluaGroup(key, name) => {
            let so = cfg.device(&key).ok_or_else(|| format!("{key}: no such device"))?;
            if name == DEFAULT_TG_PT_GP {
                return Err(format!("{at}: {DEFAULT_TG_PT_GP} always exists and cannot be deleted"));
            }
            if so.alua_group(&name).is_none() {
                return Err(format!("{at}: no such group"));
            }
            let members = cfg.alua_members(&key, &name);
            if let Some(m) = members.first() {
                return Err(format!(
                    "{at}: the group still has {} member port(s), e.g. iscsi/{}/tpgt_{}/lun/lun_{}; move them to another group (…/alua_tg_pt_gp) first",
                    members.len(), m.target, m.tpgt, m.lun
                ));
            }
            if let Some(so) = cfg.device_mut(&key) {
                so.alua_tpgs.retain(|g| g.name != name);
            }
            Ok(format!("deleted {at}"))
        }
        ObjPath::LuGp(name) => {
            if name == DEFAULT_LU_GP {
                return Err(format!("{at}: {DEFAULT_LU_GP} always exists and cannot be deleted"));
            }
            if !cfg.alua_lu_gps.iter().any(|g| g.name == name) {
                return Err(format!("{at}: no such LU group"));
            }
            if let Some(so) = cfg.storage_objects.iter().find(|s| s.lu_gp() == name) {
                return Err(format!(
                    "{at}: {} is still in it; set its alua_lu_gp to another group first",
                    so.key()
                ));
            }
            cfg.alua_lu_gps.retain(|g| g.name != name);
            Ok(format!("deleted {at}"))
        }
        _ => Err(format!(
            "{at}: cannot be deleted; delete a device, target, tpgt_<n>, np/<ip>:<port>, lun/lun_<n>, acls/<iqn>, acls/<iqn>/lun_<n>, core/<kind>_<n>/<dev>/alua/<group> or core/alua/lu_gps/<group>"
        )),
    }
}
