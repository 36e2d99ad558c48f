//! `link SRC DST` (`ln -s` order: DST is the new link, SRC what it points at): a TPG LUN to a
//! device, or a mapped LUN to a TPG LUN of the same TPG.

use super::create::{add_lun, add_mapped_lun};
use super::path::{ObjPath, TpgId};
use crate::model::Config;

/// `link SRC DST`, `ln -s` order: DST is the new link, SRC what it points at.
pub(super) fn link(cfg: &mut Config, src: &str, dst: &str) -> Result<String, String> {
    match (ObjPath::parse(src)?, ObjPath::parse(dst)?) {
        (ObjPath::Device(key), ObjPath::Lun(TpgId { target: t, tag: g }, l)) => {
            add_lun(cfg, &t, g, l, &key.to_string())
        }
        (ObjPath::Lun(of, l), ObjPath::MappedLun(tpg, i, m)) => {
            if of != tpg {
                return Err(format!(
                    "link: a mapped LUN can only point at a LUN of its own TPG ({tpg}/lun/…)"
                ));
            }
            add_mapped_lun(cfg, &tpg.target, tpg.tag, &i, m, l, false)
        }
        _ => Err(format!(
            "link {src} {dst}: expected link core/<kind>_<n>/<dev> iscsi/<iqn>/tpgt_<n>/lun/lun_<l>, or link iscsi/<iqn>/tpgt_<n>/lun/lun_<l> iscsi/<iqn>/tpgt_<n>/acls/<initiator>/lun_<m>"
        )),
    }
}
