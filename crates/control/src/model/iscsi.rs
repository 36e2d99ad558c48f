//! iSCSI targets (`iscsi/<iqn>/tpgt_<n>/…`, RFC 7143 §4.2.7 names, §3.4.1 portal groups): TPGs
//! (their `attrib/` values are declared in model/attrib.rs), CHAP credentials (`auth/`,
//! RFC 7143 §12.1.3), portals, LUNs (SAM-5 §4.6 numbers), node ACLs with mapped LUNs, and
//! `iscsi/discovery_auth/`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ironlun_fabric::Masked;
use serde::{Deserialize, Serialize};

use super::alua::DEFAULT_TG_PT_GP;
use super::attrib::TpgAttributes;

/// Highest LUN number accepted (TPG LUNs and mapped LUNs): the largest single-level LUN
/// (SAM-5 §4.7), defined once in `ironlun_scsi::lun`.
pub use ironlun_engine::scsi::lun::MAX_LUN;

/// CHAP credentials (`auth/`), rtslib `chap_*` keys. Empty = not set. `Debug` masks the
/// secrets.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chap {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chap_userid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chap_password: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chap_mutual_userid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chap_mutual_password: String,
}

impl std::fmt::Debug for Chap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chap")
            .field("chap_userid", &self.chap_userid)
            .field("chap_password", &Masked(&self.chap_password))
            .field("chap_mutual_userid", &self.chap_mutual_userid)
            .field("chap_mutual_password", &Masked(&self.chap_mutual_password))
            .finish()
    }
}

/// The names under `auth/` (LIO configfs names).
pub const AUTH_NAMES: &[&str] = &["userid", "password", "userid_mutual", "password_mutual"];

impl Chap {
    pub fn get(&self, name: &str) -> Option<&str> {
        Some(match name {
            "userid" => &self.chap_userid,
            "password" => &self.chap_password,
            "userid_mutual" => &self.chap_mutual_userid,
            "password_mutual" => &self.chap_mutual_password,
            _ => return None,
        })
    }
    pub fn slot(&mut self, name: &str) -> Option<&mut String> {
        Some(match name {
            "userid" => &mut self.chap_userid,
            "password" => &mut self.chap_password,
            "userid_mutual" => &mut self.chap_mutual_userid,
            "password_mutual" => &mut self.chap_mutual_password,
            _ => return None,
        })
    }
    pub fn is_empty(&self) -> bool {
        *self == Chap::default()
    }
    /// Whole-set checks: values are printable without spaces; secrets are at least
    /// [`MIN_CHAP_SECRET`] bytes; mutual secrets differ from the initiator secret (RFC 7143
    /// §12.1.3: a CHAP secret is not used in both directions).
    pub fn validate(&self, at: &str) -> Result<(), String> {
        for name in AUTH_NAMES {
            let v = self.get(name).unwrap_or_default();
            validate_chap_value(&format!("{at}/{name}"), v)?;
        }
        for name in ["password", "password_mutual"] {
            let v = self.get(name).unwrap_or_default();
            if !v.is_empty() && v.len() < MIN_CHAP_SECRET {
                return Err(format!(
                    "{at}/{name}: a CHAP secret must be {MIN_CHAP_SECRET}-255 printable ASCII characters without spaces (RFC 7143 §12.1.3: 96 bits or more)"
                ));
            }
        }
        if !self.chap_password.is_empty() && self.chap_password == self.chap_mutual_password {
            return Err(format!(
                "{at}/password_mutual must differ from {at}/password (RFC 7143 §12.1.3: one secret per direction)"
            ));
        }
        Ok(())
    }
}

/// The shortest CHAP secret accepted: 12 bytes, the 96 bits below which RFC 7143 §12.1.3
/// requires IPsec (which ironlun does not do). Microsoft's initiator asks the same (12-16).
pub const MIN_CHAP_SECRET: usize = 12;

/// A CHAP name or secret: ≤255 printable ASCII characters without spaces (LIO's limit).
pub fn validate_chap_value(field: &str, v: &str) -> Result<(), String> {
    if v.len() > 255 || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{field}: use at most 255 printable ASCII characters without spaces"
        ));
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Portal {
    pub ip_address: IpAddr,
    pub port: u16,
}

impl Portal {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip_address, self.port)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lun {
    pub index: u64,
    /// Tree path of the device, `core/<kind>_<n>/<name>`.
    pub storage_object: String,
    /// `alua_tg_pt_gp`: the device's target port group this LUN's port is in (rtslib's key;
    /// none: `default_tg_pt_gp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alua_tg_pt_gp_name: Option<String>,
    /// `alua_tg_pt_offline`: secondary state Offline.
    #[serde(default, skip_serializing_if = "is_false")]
    pub alua_tg_pt_offline: bool,
    /// `alua_tg_pt_status`: how the offline flag last changed (0 none, 1 SET TARGET PORT
    /// GROUPS, 2 administrator).
    #[serde(default, skip_serializing_if = "is_zero_u8")]
    pub alua_tg_pt_status: u8,
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero_u8(n: &u8) -> bool {
    *n == 0
}

impl Lun {
    /// A LUN in `default_tg_pt_gp`, online.
    pub fn new(index: u64, storage_object: String) -> Lun {
        Lun {
            index,
            storage_object,
            alua_tg_pt_gp_name: None,
            alua_tg_pt_offline: false,
            alua_tg_pt_status: 0,
        }
    }
    /// The target port group this LUN is in.
    pub fn tg_pt_gp(&self) -> &str {
        self.alua_tg_pt_gp_name
            .as_deref()
            .unwrap_or(DEFAULT_TG_PT_GP)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappedLunCfg {
    pub index: u64,
    pub tpg_lun: u64,
    #[serde(default)]
    pub write_protect: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAcl {
    pub node_wwn: String,
    #[serde(flatten)]
    pub chap: Chap,
    #[serde(default)]
    pub mapped_luns: Vec<MappedLunCfg>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tpg {
    pub tag: u16,
    #[serde(default)]
    pub enable: bool,
    /// Relative target port identifier; 0 in a loaded file = allocate one.
    #[serde(default)]
    pub rtpi: u16,
    #[serde(default)]
    pub attributes: TpgAttributes,
    /// `param/<Key>` values that differ from the fabric defaults.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    #[serde(flatten)]
    pub chap: Chap,
    #[serde(default)]
    pub portals: Vec<Portal>,
    #[serde(default)]
    pub luns: Vec<Lun>,
    #[serde(default)]
    pub node_acls: Vec<NodeAcl>,
}

impl Tpg {
    pub fn new(tag: u16, rtpi: u16) -> Tpg {
        Tpg {
            tag,
            enable: false,
            rtpi,
            attributes: TpgAttributes::default(),
            parameters: BTreeMap::new(),
            chap: Chap::default(),
            portals: Vec::new(),
            luns: Vec::new(),
            node_acls: Vec::new(),
        }
    }
    pub fn lun(&self, index: u64) -> Option<&Lun> {
        self.luns.iter().find(|l| l.index == index)
    }
    pub fn acl(&self, name: &str) -> Option<&NodeAcl> {
        self.node_acls.iter().find(|a| a.node_wwn == name)
    }
    pub fn acl_mut(&mut self, name: &str) -> Option<&mut NodeAcl> {
        self.node_acls.iter_mut().find(|a| a.node_wwn == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub wwn: String,
    #[serde(default = "iscsi")]
    pub fabric: String,
    #[serde(default)]
    pub tpgs: Vec<Tpg>,
}

fn iscsi() -> String {
    "iscsi".to_string()
}

impl Target {
    pub fn tpg(&self, tag: u16) -> Option<&Tpg> {
        self.tpgs.iter().find(|t| t.tag == tag)
    }
    pub fn tpg_mut(&mut self, tag: u16) -> Option<&mut Tpg> {
        self.tpgs.iter_mut().find(|t| t.tag == tag)
    }
}

/// `iscsi/discovery_auth/`: CHAP for SendTargets discovery sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryAuth {
    #[serde(default)]
    pub enforce_discovery_auth: bool,
    #[serde(flatten)]
    pub chap: Chap,
}

/// Portal addresses: a concrete port (0 would not survive a restart) and a unicast address.
pub fn validate_portal(at: &str, addr: SocketAddr) -> Result<(), String> {
    if addr.port() == 0 {
        return Err(format!("{at}/np/{addr}: port must be 1-65535"));
    }
    if addr.ip().is_multicast() {
        return Err(format!(
            "{at}/np/{addr}: a multicast address cannot be a portal"
        ));
    }
    Ok(())
}
