//! The one grammar of object-tree paths (LIO's configfs layout): a path
//! is read segment by segment into an [`ObjPath`], a typed name of the node it addresses, which
//! every verb (`ls`, `get`, `set`, `create`, `delete`, `link`) then matches on.
//!
//! Names are checked on the way down (iSCSI names RFC 7143 §4.2.7, `tpgt_<n>` 1-65535, LUNs
//! SAM-5 flat space 0-16383, portals, device and group names), so a verb never sees a malformed
//! key. Whether the object exists is the verb's question, not the grammar's.

use std::net::SocketAddr;

use crate::model::alua::validate_group_name;
use crate::model::{parse_index, validate_dev_name, validate_portal, DevKey, Kind, MAX_LUN};
use crate::names::validate_iscsi_name;

/// A TPG: `iscsi/<target>/tpgt_<tag>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpgId {
    pub target: String,
    pub tag: u16,
}

/// The directories of a device: `attrib/`, `wwn/`, `pr/`, `alua/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceDir {
    Attrib,
    Wwn,
    Pr,
    Alua,
}

/// The directories of a TPG: `attrib/`, `auth/`, `param/`, `np/`, `lun/`, `acls/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TpgDir {
    Attrib,
    Auth,
    Param,
    Np,
    Lun,
    Acls,
}

/// A node of the object tree, by kind, with its keys parsed. Leaf names (`…Attr`, `…Leaf`)
/// are kept as written: which names exist is known where the node's values are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjPath {
    /// `/`.
    Root,
    /// `core`.
    Core,
    /// `iscsi`.
    Iscsi,
    /// `core/alua`.
    CoreAlua,
    /// `core/alua/lu_gps`.
    LuGps,
    /// `core/alua/lu_gps/<group>`.
    LuGp(String),
    /// `core/alua/lu_gps/<group>/<attr>`.
    LuGpAttr(String, String),
    /// `core/<kind>_<n>`.
    Hba(Kind, u32),
    /// `core/<kind>_<n>/<dev>`.
    Device(DevKey),
    /// `…/<dev>/{control,enable,info,alua_lu_gp}`.
    DeviceLeaf(DevKey, String),
    /// `…/<dev>/{attrib,wwn,pr,alua}`.
    DeviceDir(DevKey, DeviceDir),
    /// `…/<dev>/attrib/<name>`.
    DeviceAttr(DevKey, String),
    /// `…/<dev>/wwn/<name>`.
    DeviceWwn(DevKey, String),
    /// `…/<dev>/pr/<name>`.
    DevicePr(DevKey, String),
    /// `…/<dev>/alua/<group>`.
    AluaGroup(DevKey, String),
    /// `…/<dev>/alua/<group>/<attr>`.
    AluaGroupAttr(DevKey, String, String),
    /// `iscsi/discovery_auth`.
    DiscoveryAuthDir,
    /// `iscsi/discovery_auth/<name>`.
    DiscoveryAuth(String),
    /// `iscsi/<target>`.
    Target(String),
    /// `iscsi/<target>/tpgt_<n>`.
    Tpg(TpgId),
    /// `…/tpgt_<n>/{enable,rtpi}`.
    TpgLeaf(TpgId, String),
    /// `…/tpgt_<n>/{attrib,auth,param,np,lun,acls}`.
    TpgDir(TpgId, TpgDir),
    /// `…/tpgt_<n>/attrib/<name>`.
    TpgAttrib(TpgId, String),
    /// `…/tpgt_<n>/auth/<name>`.
    TpgAuth(TpgId, String),
    /// `…/tpgt_<n>/param/<key>`.
    TpgParam(TpgId, String),
    /// `…/tpgt_<n>/np/<ip>:<port>`.
    Np(TpgId, SocketAddr),
    /// `…/tpgt_<n>/lun/lun_<l>`.
    Lun(TpgId, u64),
    /// `…/tpgt_<n>/lun/lun_<l>/<attr>`.
    LunAttr(TpgId, u64, String),
    /// `…/tpgt_<n>/acls/<initiator>`.
    Acl(TpgId, String),
    /// `…/acls/<initiator>/auth`.
    AclAuthDir(TpgId, String),
    /// `…/acls/<initiator>/auth/<name>`.
    AclAuth(TpgId, String, String),
    /// `…/acls/<initiator>/lun_<m>`.
    MappedLun(TpgId, String, u64),
    /// `…/acls/<initiator>/lun_<m>/<attr>`.
    MappedLunAttr(TpgId, String, u64, String),
}

/// Why a segment does not extend a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// Nothing of that name can be there; the message names the whole path, with a hint.
    NoSuchObject(Option<&'static str>),
    /// A malformed key (one line, naming it and what is valid).
    Invalid(String),
}

/// The non-empty segments of a path (leading, trailing and doubled `/` ignored).
pub fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

impl ObjPath {
    /// Parse a whole path. Err: one line naming what is wrong.
    pub fn parse(path: &str) -> Result<ObjPath, String> {
        let segs = segments(path);
        let mut at = ObjPath::Root;
        for seg in &segs {
            at = at.child(seg).map_err(|e| match e {
                PathError::NoSuchObject(None) => format!("{}: no such object", segs.join("/")),
                PathError::NoSuchObject(Some(hint)) => {
                    format!("{}: no such object; {hint}", segs.join("/"))
                }
                PathError::Invalid(msg) => msg,
            })?;
        }
        Ok(at)
    }

    /// The path one segment further down.
    pub fn child(&self, seg: &str) -> Result<ObjPath, PathError> {
        use ObjPath as P;
        let none = || Err(PathError::NoSuchObject(None));
        let name = seg.to_string();
        Ok(match self {
            P::Root => match seg {
                "core" => P::Core,
                "iscsi" => P::Iscsi,
                _ => {
                    return Err(PathError::NoSuchObject(Some(
                        "the tree has core/ and iscsi/",
                    )))
                }
            },
            P::Core if seg == "alua" => P::CoreAlua,
            P::Core => {
                let (kind, n) = Kind::parse_hba(seg).map_err(PathError::Invalid)?;
                P::Hba(kind, n)
            }
            P::CoreAlua if seg == "lu_gps" => P::LuGps,
            P::CoreAlua => {
                return Err(PathError::NoSuchObject(Some("core/alua has lu_gps/<name>")))
            }
            P::LuGps => {
                invalid(validate_group_name(&format!("core/alua/lu_gps/{seg}"), seg))?;
                P::LuGp(name)
            }
            P::LuGp(g) => P::LuGpAttr(g.clone(), name),
            P::Hba(kind, hba) => {
                invalid(validate_dev_name(seg))?;
                P::Device(DevKey {
                    kind: *kind,
                    hba: *hba,
                    name,
                })
            }
            P::Device(key) => match seg {
                "control" | "enable" | "info" | "alua_lu_gp" => P::DeviceLeaf(key.clone(), name),
                "attrib" => P::DeviceDir(key.clone(), DeviceDir::Attrib),
                "wwn" => P::DeviceDir(key.clone(), DeviceDir::Wwn),
                "pr" => P::DeviceDir(key.clone(), DeviceDir::Pr),
                "alua" => P::DeviceDir(key.clone(), DeviceDir::Alua),
                _ => return none(),
            },
            P::DeviceDir(key, dir) => match dir {
                DeviceDir::Attrib => P::DeviceAttr(key.clone(), name),
                DeviceDir::Wwn => P::DeviceWwn(key.clone(), name),
                DeviceDir::Pr => P::DevicePr(key.clone(), name),
                DeviceDir::Alua => {
                    invalid(validate_group_name(&format!("{key}/alua"), seg))?;
                    P::AluaGroup(key.clone(), name)
                }
            },
            P::AluaGroup(key, g) => P::AluaGroupAttr(key.clone(), g.clone(), name),
            P::Iscsi if seg == "discovery_auth" => P::DiscoveryAuthDir,
            P::Iscsi => {
                invalid(validate_iscsi_name("target name", seg))?;
                P::Target(name)
            }
            P::DiscoveryAuthDir => P::DiscoveryAuth(name),
            P::Target(t) => P::Tpg(TpgId {
                target: t.clone(),
                tag: parse_tpgt(&format!("iscsi/{t}"), seg)?,
            }),
            P::Tpg(id) => {
                let dir = |d| P::TpgDir(id.clone(), d);
                match seg {
                    "enable" | "rtpi" => P::TpgLeaf(id.clone(), name),
                    "attrib" => dir(TpgDir::Attrib),
                    "auth" => dir(TpgDir::Auth),
                    "param" => dir(TpgDir::Param),
                    "np" => dir(TpgDir::Np),
                    "lun" => dir(TpgDir::Lun),
                    "acls" => dir(TpgDir::Acls),
                    _ => return none(),
                }
            }
            P::TpgDir(id, dir) => match dir {
                TpgDir::Attrib => P::TpgAttrib(id.clone(), name),
                TpgDir::Auth => P::TpgAuth(id.clone(), name),
                TpgDir::Param => P::TpgParam(id.clone(), name),
                TpgDir::Np => P::Np(id.clone(), parse_portal(&id.to_string(), seg)?),
                TpgDir::Lun => P::Lun(id.clone(), parse_lun(&id.to_string(), seg)?),
                TpgDir::Acls => {
                    invalid(validate_iscsi_name("initiator name", seg))?;
                    P::Acl(id.clone(), name)
                }
            },
            P::Lun(id, l) => P::LunAttr(id.clone(), *l, name),
            P::Acl(id, i) => match seg {
                "auth" => P::AclAuthDir(id.clone(), i.clone()),
                "attrib" => {
                    return Err(PathError::Invalid(format!(
                        "{id}/acls/{i}/attrib: per-ACL attributes are not available in this build"
                    )))
                }
                _ => P::MappedLun(
                    id.clone(),
                    i.clone(),
                    parse_lun(&format!("{id}/acls/{i}"), seg)?,
                ),
            },
            P::AclAuthDir(id, i) => P::AclAuth(id.clone(), i.clone(), name),
            P::MappedLun(id, i, m) => P::MappedLunAttr(id.clone(), i.clone(), *m, name),
            P::LuGpAttr(..)
            | P::DeviceLeaf(..)
            | P::DeviceAttr(..)
            | P::DeviceWwn(..)
            | P::DevicePr(..)
            | P::AluaGroupAttr(..)
            | P::DiscoveryAuth(_)
            | P::TpgLeaf(..)
            | P::TpgAttrib(..)
            | P::TpgAuth(..)
            | P::TpgParam(..)
            | P::Np(..)
            | P::LunAttr(..)
            | P::AclAuth(..)
            | P::MappedLunAttr(..) => return none(),
        })
    }
}

impl std::fmt::Display for TpgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "iscsi/{}/tpgt_{}", self.target, self.tag)
    }
}

fn invalid(r: Result<(), String>) -> Result<(), PathError> {
    r.map_err(PathError::Invalid)
}

fn parse_tpgt(at: &str, seg: &str) -> Result<u16, PathError> {
    seg.strip_prefix("tpgt_")
        .and_then(parse_index)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n >= 1)
        .ok_or_else(|| PathError::Invalid(format!("{at}/{seg}: expected tpgt_<n> with n 1-65535")))
}

fn parse_lun(at: &str, seg: &str) -> Result<u64, PathError> {
    seg.strip_prefix("lun_")
        .and_then(parse_index)
        .map(u64::from)
        .filter(|&n| n <= MAX_LUN)
        .ok_or_else(|| {
            PathError::Invalid(format!("{at}/{seg}: expected lun_<n> with n 0-{MAX_LUN}"))
        })
}

fn parse_portal(at: &str, seg: &str) -> Result<SocketAddr, PathError> {
    let addr: SocketAddr = seg.parse().map_err(|_| {
        PathError::Invalid(format!(
            "{at}/{seg}: expected <IPv4>:<port> or [<IPv6>]:<port> (e.g. 127.0.0.1:3260)"
        ))
    })?;
    invalid(validate_portal(at, addr))?;
    Ok(addr)
}
