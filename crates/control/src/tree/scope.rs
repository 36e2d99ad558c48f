//! Which parts of the tree a mutation can touch, read from its path before it runs
//! ([`touched_by`]), so that the service validates, applies and saves only those. What the
//! path alone cannot bound (targets and TPGs made or removed, RTPIs, LU groups, discovery
//! authentication) is `whole`.

use super::path::{ObjPath, TpgId};
use super::Op;
use crate::model::{Config, DevKey, Touched};

fn lun(t: &mut Touched, id: &TpgId, l: u64) {
    t.tpg(&id.target, id.tag).luns.insert(l);
}
fn acl(t: &mut Touched, id: &TpgId, i: &str, fabric: bool) {
    t.tpg(&id.target, id.tag).acls.insert(i.to_string());
    t.fabric |= fabric;
}
fn settings(t: &mut Touched, id: &TpgId) {
    t.tpg(&id.target, id.tag).settings = true;
    t.fabric = true;
}

/// A device and, when it goes or is rebuilt, what exports it.
fn device(cfg: &Config, key: &DevKey, exports: bool) -> Touched {
    let mut t = Touched::device(key);
    if exports {
        t.add_exports_of(cfg, key);
    }
    t
}

/// What `op` can touch in `cfg`. A path that does not parse touches nothing (the op fails).
pub fn touched_by(cfg: &Config, op: &Op) -> Touched {
    let mut t = Touched::default();
    match op {
        Op::Set { path, .. } => match ObjPath::parse(path) {
            Ok(
                ObjPath::DeviceAttr(k, _)
                | ObjPath::DeviceLeaf(k, _)
                | ObjPath::AluaGroupAttr(k, ..)
                | ObjPath::DevicePr(k, _),
            ) => return device(cfg, &k, false),
            // A new serial is a new device object (its persistent reservations are the serial's).
            Ok(ObjPath::DeviceWwn(k, _)) => return device(cfg, &k, true),
            Ok(ObjPath::LunAttr(id, l, _)) => lun(&mut t, &id, l),
            Ok(ObjPath::MappedLunAttr(id, i, ..)) => acl(&mut t, &id, &i, false),
            Ok(ObjPath::AclAuth(id, i, _)) => acl(&mut t, &id, &i, true),
            Ok(ObjPath::TpgLeaf(id, leaf)) if leaf == "enable" => settings(&mut t, &id),
            Ok(ObjPath::TpgAuth(id, _) | ObjPath::TpgParam(id, _)) => settings(&mut t, &id),
            // prod_mode_write_protect reaches every mapped LUN.
            Ok(ObjPath::TpgAttrib(id, _)) => {
                settings(&mut t, &id);
                t.tpg(&id.target, id.tag).all = true;
            }
            Ok(_) => return Touched::whole(),
            Err(_) => {}
        },
        Op::Create { path, .. } => match ObjPath::parse(path) {
            Ok(ObjPath::Device(k) | ObjPath::AluaGroup(k, _)) => return device(cfg, &k, false),
            Ok(ObjPath::Np(id, _)) => settings(&mut t, &id),
            Ok(ObjPath::Lun(id, l)) => lun(&mut t, &id, l),
            Ok(ObjPath::Acl(id, i)) => acl(&mut t, &id, &i, true),
            Ok(ObjPath::MappedLun(id, i, _)) => acl(&mut t, &id, &i, false),
            Ok(_) => return Touched::whole(),
            Err(_) => {}
        },
        Op::Delete { path } => match ObjPath::parse(path) {
            Ok(ObjPath::Device(k)) => return device(cfg, &k, true),
            Ok(ObjPath::AluaGroup(k, _)) => return device(cfg, &k, false),
            Ok(ObjPath::Np(id, _)) => settings(&mut t, &id),
            Ok(ObjPath::Lun(id, l)) => match cfg.target(&id.target).and_then(|x| x.tpg(id.tag)) {
                Some(g) => t.add_lun_cascade(g, &id.target, l),
                None => lun(&mut t, &id, l),
            },
            Ok(ObjPath::Acl(id, i)) => acl(&mut t, &id, &i, true),
            Ok(ObjPath::MappedLun(id, i, _)) => acl(&mut t, &id, &i, false),
            Ok(_) => return Touched::whole(),
            Err(_) => {}
        },
        Op::Link { dst, .. } => match ObjPath::parse(dst) {
            Ok(ObjPath::Lun(id, l)) => lun(&mut t, &id, l),
            Ok(ObjPath::MappedLun(id, i, _)) => acl(&mut t, &id, &i, false),
            Ok(_) => return Touched::whole(),
            Err(_) => {}
        },
    }
    t
}
