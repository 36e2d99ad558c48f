//! The saved object tree: the data behind `core/…` and `iscsi/…`, serialised as `config.json`.
//!
//! The JSON follows rtslib's saveconfig.json (storage_objects / targets / tpgs / luns / portals /
//! node_acls / mapped_luns, `attributes`, `parameters`, `chap_*`) with our additions: `hba`
//! (the `<n>` of `core/<kind>_<n>`), identity fields (`vendor_id`, `product_id`, `revision`) and
//! the TPG `rtpi`, which rtslib does not save — we pin it so that relative target port
//! identifiers survive restarts (the relative target port designator of SPC-4 §7.8.6, device
//! identification VPD page, must stay stable for multipath hosts).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::alua::{AluaTpg, LuGp};
use crate::names::validate_iscsi_name;

/// Version written in `config.json`; files of other versions are refused.
pub const CONFIG_VERSION: u32 = 1;

/// Highest LUN number accepted (TPG LUNs and mapped LUNs): SAM-5 flat space addressing, the
/// largest LUN the engine can address without extended addressing.
pub const MAX_LUN: u64 = 16383;

/// Backstore kinds (LIO HBA plugin names in the tree; rtslib plugin names in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    #[serde(rename = "ramdisk")]
    RdMcp,
    #[serde(rename = "fileio")]
    FileIo,
    #[serde(rename = "block")]
    IBlock,
}

impl Kind {
    /// The configfs HBA prefix (`rd_mcp`, `fileio`, `iblock`).
    pub fn tree_name(self) -> &'static str {
        match self {
            Kind::RdMcp => "rd_mcp",
            Kind::FileIo => "fileio",
            Kind::IBlock => "iblock",
        }
    }

    /// Parse an HBA directory name `<kind>_<n>`.
    pub fn parse_hba(seg: &str) -> Result<(Kind, u32), String> {
        let (kind, n) = seg.rsplit_once('_').ok_or_else(|| hba_error(seg))?;
        let kind = match kind {
            "rd_mcp" => Kind::RdMcp,
            "fileio" => Kind::FileIo,
            "iblock" => Kind::IBlock,
            "pscsi" => {
                return Err(format!(
                    "core/{seg}: pscsi (SCSI pass-through) is not supported by this build; use iblock for a block device"
                ))
            }
            "user" | "rd_dr" => return Err(format!("core/{seg}: backstore kind '{kind}' is not supported by this build")),
            _ => return Err(hba_error(seg)),
        };
        let n = parse_index(n).ok_or_else(|| hba_error(seg))?;
        Ok((kind, n))
    }

    /// Product identification used when none is given (LIO uses the same per-plugin strings).
    pub fn default_product_id(self) -> &'static str {
        match self {
            Kind::RdMcp => "RAMDISK-MCP",
            Kind::FileIo => "FILEIO",
            Kind::IBlock => "IBLOCK",
        }
    }
}

fn hba_error(seg: &str) -> String {
    format!("core/{seg}: expected <kind>_<n> with kind rd_mcp, fileio or iblock and n a number (e.g. fileio_0)")
}

/// A decimal index without sign or leading zeros ("0", "17"), as used in `_<n>` suffixes.
pub fn parse_index(s: &str) -> Option<u32> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

/// Key of a storage object: `core/<kind>_<hba>/<name>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DevKey {
    pub kind: Kind,
    pub hba: u32,
    pub name: String,
}

impl fmt::Display for DevKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "core/{}_{}/{}",
            self.kind.tree_name(),
            self.hba,
            self.name
        )
    }
}

impl DevKey {
    /// Parse `core/<kind>_<n>/<name>` (with or without a leading '/').
    pub fn parse(path: &str) -> Result<DevKey, String> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segs.as_slice() {
            ["core", hba, name] => {
                let (kind, hba) = Kind::parse_hba(hba)?;
                validate_dev_name(name)?;
                Ok(DevKey {
                    kind,
                    hba,
                    name: name.to_string(),
                })
            }
            _ => Err(format!(
                "'{path}' is not a device path; expected core/<kind>_<n>/<name>"
            )),
        }
    }
}

/// Device names: what LIO allows in configfs minus characters that make paths ambiguous.
pub fn validate_dev_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "device name '{name}': use 1-64 characters A-Z a-z 0-9 _ - . (not starting with '.')"
        ))
    }
}

/// One storage object (`core/<kind>_<hba>/<name>`), rtslib `storage_objects[]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageObject {
    pub plugin: Kind,
    #[serde(default)]
    pub hba: u32,
    pub name: String,
    /// `wwn/vpd_unit_serial`.
    pub wwn: String,
    pub vendor_id: String,
    pub product_id: String,
    pub revision: String,
    /// fileio/block: file or block device path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// ramdisk/fileio: size in bytes (block: the device's size, not saved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// fileio: write-back (volatile cache, WCE=1) rather than write-through.
    #[serde(default)]
    pub write_back: bool,
    /// block/fileio: open read-only.
    #[serde(default)]
    pub readonly: bool,
    /// `attrib/<name>` values set by the user (only those; others keep the engine default).
    #[serde(default)]
    pub attributes: BTreeMap<String, AttrValue>,
    /// `alua/<group>/`: target port groups (rtslib `alua_tpgs`), including
    /// `default_tg_pt_gp` once it was changed; states and statuses are saved too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alua_tpgs: Vec<AluaTpg>,
    /// `alua_lu_gp`: the LU group the device joined (none: `default_lu_gp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alua_lu_gp: Option<String>,
}

/// An attribute value in JSON: rtslib writes integers as numbers, other values as strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    Int(u64),
    Str(String),
}

impl AttrValue {
    pub fn from_text(s: &str) -> AttrValue {
        // Canonical decimal only ("007" stays text so that it round-trips unchanged).
        let canonical = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        match s.parse::<u64>() {
            Ok(n) if canonical => AttrValue::Int(n),
            _ => AttrValue::Str(s.to_string()),
        }
    }
    pub fn text(&self) -> String {
        match self {
            AttrValue::Int(n) => n.to_string(),
            AttrValue::Str(s) => s.clone(),
        }
    }
}

impl StorageObject {
    pub fn key(&self) -> DevKey {
        DevKey {
            kind: self.plugin,
            hba: self.hba,
            name: self.name.clone(),
        }
    }

    /// The backing store parameters (what a backstore is opened with), as one comparable value:
    /// if they differ the backstore must be reopened.
    pub fn backing(&self) -> (Kind, Option<&str>, Option<u64>, bool, bool) {
        (
            self.plugin,
            self.dev.as_deref(),
            self.size,
            self.write_back,
            self.readonly,
        )
    }

    /// The identity given to the engine at device creation.
    pub fn identity(&self) -> (&str, &str, &str, &str) {
        (&self.wwn, &self.vendor_id, &self.product_id, &self.revision)
    }

    /// Record a capacity reached by a live resize. rd_mcp always saves its size; fileio saves
    /// it where one was saved before (a file created with `size=`, or a prefix of a block
    /// device). Otherwise the size is the file's or the device's own and nothing is saved:
    /// the file's length or the device carries it across a restart.
    pub fn record_size(&mut self, new_size: u64) {
        if self.plugin == Kind::RdMcp || (self.plugin == Kind::FileIo && self.size.is_some()) {
            self.size = Some(new_size);
        }
    }

    /// The `control` text: the creation parameters, LIO style `key=value` comma separated.
    pub fn control_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(dev) = &self.dev {
            parts.push(format!("path={dev}"));
        }
        if let Some(size) = self.size {
            parts.push(format!("size={size}"));
        }
        match self.plugin {
            Kind::FileIo => parts.push(format!("write_back={}", u8::from(self.write_back))),
            Kind::IBlock => parts.push(format!("readonly={}", u8::from(self.readonly))),
            Kind::RdMcp => {}
        }
        parts.join(",")
    }
}

/// TPG `attrib/` values that are wired through (0/1 each).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpgAttributes {
    /// 1: CHAP required at login; 0: AuthMethod=None accepted.
    #[serde(default)]
    pub authentication: u8,
    /// 1: demo mode — any initiator may log in and sees every TPG LUN.
    #[serde(default)]
    pub generate_node_acls: u8,
    /// Demo-mode LUNs are write protected (LIO default 1).
    #[serde(default = "one")]
    pub demo_mode_write_protect: u8,
    /// Every LUN mapped through an explicit ACL is write protected.
    #[serde(default)]
    pub prod_mode_write_protect: u8,
    /// Seconds of silence before a NOP-In ping (0: no pings), LIO's `nopin_timeout`
    /// (a node-ACL attribute there; here it applies to every session of the TPG).
    #[serde(
        default = "default_nopin_timeout",
        skip_serializing_if = "is_default_nopin_timeout"
    )]
    pub nopin_timeout: u8,
    /// Seconds to wait for the NOP-Out answering a ping before dropping the connection.
    #[serde(
        default = "default_nopin_response_timeout",
        skip_serializing_if = "is_default_nopin_response_timeout"
    )]
    pub nopin_response_timeout: u8,
}

fn one() -> u8 {
    1
}

/// Default `nopin_timeout` / `nopin_response_timeout`, seconds.
pub const NOPIN_TIMEOUT: u8 = 15;
pub const NOPIN_RESPONSE_TIMEOUT: u8 = 15;
/// Largest value of either (LIO's NA_NOPIN_TIMEOUT_MAX / NA_NOPIN_RESPONSE_TIMEOUT_MAX).
pub const NOPIN_MAX: u8 = 60;
/// Smallest nonzero value of either (LIO's *_MIN).
pub const NOPIN_MIN: u8 = 3;

fn default_nopin_timeout() -> u8 {
    NOPIN_TIMEOUT
}
fn default_nopin_response_timeout() -> u8 {
    NOPIN_RESPONSE_TIMEOUT
}
fn is_default_nopin_timeout(v: &u8) -> bool {
    *v == NOPIN_TIMEOUT
}
fn is_default_nopin_response_timeout(v: &u8) -> bool {
    *v == NOPIN_RESPONSE_TIMEOUT
}

/// Check one TPG attribute value: the two keep-alive times are seconds, the rest 0/1.
pub fn check_tpg_attribute(name: &str, v: u8) -> Result<(), String> {
    match name {
        "nopin_timeout" if v == 0 || (NOPIN_MIN..=NOPIN_MAX).contains(&v) => Ok(()),
        "nopin_timeout" => Err(format!(
            "must be 0 (no NOP-In pings) or {NOPIN_MIN}-{NOPIN_MAX} seconds"
        )),
        "nopin_response_timeout" if (NOPIN_MIN..=NOPIN_MAX).contains(&v) => Ok(()),
        "nopin_response_timeout" => Err(format!("must be {NOPIN_MIN}-{NOPIN_MAX} seconds")),
        _ if v <= 1 => Ok(()),
        _ => Err("must be 0 or 1".to_string()),
    }
}

impl Default for TpgAttributes {
    fn default() -> Self {
        // Like targetcli, new TPGs have authentication off (LIO's kernel default is 1).
        TpgAttributes {
            authentication: 0,
            generate_node_acls: 0,
            demo_mode_write_protect: 1,
            prod_mode_write_protect: 0,
            nopin_timeout: NOPIN_TIMEOUT,
            nopin_response_timeout: NOPIN_RESPONSE_TIMEOUT,
        }
    }
}

/// The names under a TPG's `attrib/`, in display order.
pub const TPG_ATTRIBUTES: &[&str] = &[
    "authentication",
    "demo_mode_write_protect",
    "generate_node_acls",
    "nopin_response_timeout",
    "nopin_timeout",
    "prod_mode_write_protect",
];

impl TpgAttributes {
    pub fn get(&self, name: &str) -> Option<u8> {
        Some(match name {
            "authentication" => self.authentication,
            "generate_node_acls" => self.generate_node_acls,
            "demo_mode_write_protect" => self.demo_mode_write_protect,
            "prod_mode_write_protect" => self.prod_mode_write_protect,
            "nopin_timeout" => self.nopin_timeout,
            "nopin_response_timeout" => self.nopin_response_timeout,
            _ => return None,
        })
    }
    pub fn slot(&mut self, name: &str) -> Option<&mut u8> {
        Some(match name {
            "authentication" => &mut self.authentication,
            "generate_node_acls" => &mut self.generate_node_acls,
            "demo_mode_write_protect" => &mut self.demo_mode_write_protect,
            "prod_mode_write_protect" => &mut self.prod_mode_write_protect,
            "nopin_timeout" => &mut self.nopin_timeout,
            "nopin_response_timeout" => &mut self.nopin_response_timeout,
            _ => return None,
        })
    }
}

/// CHAP credentials (`auth/`), rtslib `chap_*` keys. Empty = not set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Whole-set checks: values are printable without spaces; mutual secrets differ from
    /// the initiator secret (RFC 7143 §12.1.3: a CHAP secret is not used in both directions).
    pub fn validate(&self, at: &str) -> Result<(), String> {
        for name in AUTH_NAMES {
            let v = self.get(name).unwrap_or_default();
            validate_chap_value(&format!("{at}/{name}"), v)?;
        }
        if !self.chap_password.is_empty() && self.chap_password == self.chap_mutual_password {
            return Err(format!(
                "{at}/password_mutual must differ from {at}/password (RFC 7143 §12.1.3: one secret per direction)"
            ));
        }
        Ok(())
    }
}

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
            .unwrap_or(crate::alua::DEFAULT_TG_PT_GP)
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

/// The whole tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    #[serde(default)]
    pub storage_objects: Vec<StorageObject>,
    #[serde(default)]
    pub discovery_auth: DiscoveryAuth,
    #[serde(default)]
    pub targets: Vec<Target>,
    /// `core/alua/lu_gps/<name>` other than `default_lu_gp`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alua_lu_gps: Vec<LuGp>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: CONFIG_VERSION,
            storage_objects: Vec::new(),
            discovery_auth: DiscoveryAuth::default(),
            targets: Vec::new(),
            alua_lu_gps: Vec::new(),
        }
    }
}

/// Something that knows the fabric's `param/` keys (the fabric crate; a fake in tests).
pub trait ParamSchema {
    /// `param/` keys and their defaults, in display order.
    fn param_defaults(&self) -> Vec<(String, String)>;
    /// Err is one line naming the key and what is valid.
    fn validate_param(&self, key: &str, value: &str) -> Result<(), String>;
}

impl Config {
    pub fn device(&self, key: &DevKey) -> Option<&StorageObject> {
        self.storage_objects.iter().find(|s| s.key() == *key)
    }
    pub fn device_mut(&mut self, key: &DevKey) -> Option<&mut StorageObject> {
        self.storage_objects.iter_mut().find(|s| s.key() == *key)
    }
    pub fn target(&self, wwn: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.wwn == wwn)
    }
    pub fn target_mut(&mut self, wwn: &str) -> Option<&mut Target> {
        self.targets.iter_mut().find(|t| t.wwn == wwn)
    }
    pub fn tpg_mut(&mut self, wwn: &str, tag: u16) -> Option<&mut Tpg> {
        self.target_mut(wwn).and_then(|t| t.tpg_mut(tag))
    }

    /// Every TPG LUN that exports `key`, as (target, tpgt, lun).
    pub fn luns_of(&self, key: &DevKey) -> Vec<(String, u16, u64)> {
        let path = key.to_string();
        let mut out = Vec::new();
        for t in &self.targets {
            for g in &t.tpgs {
                for l in &g.luns {
                    if l.storage_object == path {
                        out.push((t.wwn.clone(), g.tag, l.index));
                    }
                }
            }
        }
        out
    }

    /// Lowest RTPI in 1..=65535 not used by any TPG (LIO allocates the lowest free one too).
    pub fn free_rtpi(&self) -> Option<u16> {
        let used: BTreeSet<u16> = self
            .targets
            .iter()
            .flat_map(|t| t.tpgs.iter().map(|g| g.rtpi))
            .collect();
        (1..=u16::MAX).find(|r| !used.contains(r))
    }

    /// Give every TPG with `rtpi == 0` (a file without pinned RTPIs) a free one.
    pub fn assign_missing_rtpis(&mut self) -> Result<(), String> {
        loop {
            let Some((ti, gi)) = self
                .targets
                .iter()
                .enumerate()
                .find_map(|(ti, t)| t.tpgs.iter().position(|g| g.rtpi == 0).map(|gi| (ti, gi)))
            else {
                return Ok(());
            };
            let r = self
                .free_rtpi()
                .ok_or("no free relative target port identifier (all 65535 used)")?;
            if let Some(g) = self.targets.get_mut(ti).and_then(|t| t.tpgs.get_mut(gi)) {
                g.rtpi = r;
            }
        }
    }

    /// Check the whole tree: names, uniqueness, references, values. Used after every mutation
    /// (as a safety net behind the per-operation checks) and before a restore.
    /// Device `attrib/` values are checked by the engine when applied.
    pub fn validate(&self, params: &dyn ParamSchema) -> Result<(), String> {
        if self.version != CONFIG_VERSION {
            return Err(format!(
                "config version {} is not supported (expected {CONFIG_VERSION})",
                self.version
            ));
        }
        let mut keys = BTreeSet::new();
        let mut serials: BTreeMap<&str, DevKey> = BTreeMap::new();
        for so in &self.storage_objects {
            let key = so.key();
            validate_dev_name(&so.name)?;
            if !keys.insert(key.clone()) {
                return Err(format!("{key} is defined twice"));
            }
            validate_storage_object(so)?;
            if let Some(other) = serials.insert(&so.wwn, key.clone()) {
                return Err(format!(
                    "{key}/wwn/vpd_unit_serial '{}' is already used by {other}; serials must be unique",
                    so.wwn
                ));
            }
        }
        self.discovery_auth.chap.validate("iscsi/discovery_auth")?;
        if self.discovery_auth.enforce_discovery_auth
            && (self.discovery_auth.chap.chap_userid.is_empty()
                || self.discovery_auth.chap.chap_password.is_empty())
        {
            return Err(
                "iscsi/discovery_auth/enforce_discovery_auth=1 needs discovery_auth/userid and password set first".into()
            );
        }
        let mut targets = BTreeSet::new();
        let mut rtpis: BTreeMap<u16, String> = BTreeMap::new();
        let defaults: BTreeSet<String> = params
            .param_defaults()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for t in &self.targets {
            validate_iscsi_name("target name", &t.wwn)?;
            if t.fabric != "iscsi" {
                return Err(format!(
                    "target {}: fabric '{}' is not supported (only iscsi)",
                    t.wwn, t.fabric
                ));
            }
            if !targets.insert(&t.wwn) {
                return Err(format!("iscsi/{} is defined twice", t.wwn));
            }
            let mut tags = BTreeSet::new();
            for g in &t.tpgs {
                let at = format!("iscsi/{}/tpgt_{}", t.wwn, g.tag);
                if g.tag == 0 {
                    return Err(format!("{at}: the portal group tag must be 1-65535"));
                }
                if !tags.insert(g.tag) {
                    return Err(format!("{at} is defined twice"));
                }
                if g.rtpi == 0 {
                    return Err(format!("{at}/rtpi must be 1-65535"));
                }
                if let Some(other) = rtpis.insert(g.rtpi, at.clone()) {
                    return Err(format!(
                        "{at}/rtpi {} is already used by {other}; RTPIs must be unique",
                        g.rtpi
                    ));
                }
                for name in TPG_ATTRIBUTES {
                    check_tpg_attribute(name, g.attributes.get(name).unwrap_or(0))
                        .map_err(|e| format!("{at}/attrib/{name} {e}"))?;
                }
                for (k, v) in &g.parameters {
                    if !defaults.contains(k) {
                        return Err(format!("{at}/param/{k}: unknown parameter"));
                    }
                    params
                        .validate_param(k, v)
                        .map_err(|e| format!("{at}/param/{k}: {e}"))?;
                }
                g.chap.validate(&format!("{at}/auth"))?;
                let mut portals = BTreeSet::new();
                for p in &g.portals {
                    validate_portal(&at, p.addr())?;
                    if !portals.insert(p.addr()) {
                        return Err(format!("{at}/np/{} is defined twice", p.addr()));
                    }
                }
                let mut luns = BTreeSet::new();
                for l in &g.luns {
                    if l.index > MAX_LUN {
                        return Err(format!("{at}/lun/lun_{}: LUN must be 0-{MAX_LUN}", l.index));
                    }
                    if !luns.insert(l.index) {
                        return Err(format!("{at}/lun/lun_{} is defined twice", l.index));
                    }
                    let key = DevKey::parse(&l.storage_object)
                        .map_err(|e| format!("{at}/lun/lun_{}: {e}", l.index))?;
                    if l.storage_object != key.to_string() {
                        return Err(format!(
                            "{at}/lun/lun_{}: write the device as {key}",
                            l.index
                        ));
                    }
                    if !keys.contains(&key) {
                        return Err(format!(
                            "{at}/lun/lun_{}: device {key} does not exist",
                            l.index
                        ));
                    }
                }
                let mut acls = BTreeSet::new();
                for a in &g.node_acls {
                    validate_iscsi_name("initiator name", &a.node_wwn)?;
                    if !acls.insert(&a.node_wwn) {
                        return Err(format!("{at}/acls/{} is defined twice", a.node_wwn));
                    }
                    let aat = format!("{at}/acls/{}", a.node_wwn);
                    a.chap.validate(&format!("{aat}/auth"))?;
                    let mut mapped = BTreeSet::new();
                    for m in &a.mapped_luns {
                        if m.index > MAX_LUN {
                            return Err(format!(
                                "{aat}/lun_{}: mapped LUN must be 0-{MAX_LUN}",
                                m.index
                            ));
                        }
                        if !mapped.insert(m.index) {
                            return Err(format!("{aat}/lun_{} is defined twice", m.index));
                        }
                        if !luns.contains(&m.tpg_lun) {
                            return Err(format!(
                                "{aat}/lun_{}: TPG LUN {} does not exist",
                                m.index, m.tpg_lun
                            ));
                        }
                    }
                }
            }
        }
        self.validate_alua()
    }
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

/// Per-object checks shared by create and validate.
pub fn validate_storage_object(so: &StorageObject) -> Result<(), String> {
    let at = so.key().to_string();
    validate_wwn_field(&at, "vendor_id", &so.vendor_id)?;
    validate_wwn_field(&at, "product_id", &so.product_id)?;
    validate_wwn_field(&at, "revision", &so.revision)?;
    validate_wwn_field(&at, "vpd_unit_serial", &so.wwn)?;
    match so.plugin {
        Kind::RdMcp => {
            if so.dev.is_some() {
                return Err(format!("{at}: rd_mcp takes no path"));
            }
            check_size(
                &at,
                so.size
                    .ok_or_else(|| format!("{at}: rd_mcp needs size=<bytes|K|M|G|T>"))?,
            )?;
            if so.write_back || so.readonly {
                return Err(format!(
                    "{at}: rd_mcp takes only size= (write_back and readonly are for fileio/iblock)"
                ));
            }
        }
        Kind::FileIo => {
            check_path(&at, so.dev.as_deref())?;
            if let Some(size) = so.size {
                check_size(&at, size)?;
            }
        }
        Kind::IBlock => {
            check_path(&at, so.dev.as_deref())?;
            if so.size.is_some() || so.write_back {
                return Err(format!(
                    "{at}: iblock takes path= and readonly= only (its size is the device's)"
                ));
            }
        }
    }
    for (k, v) in &so.attributes {
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!("{at}/attrib/{k}: not an attribute name"));
        }
        if let AttrValue::Str(s) = v {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "{at}/attrib/{k}: value must be a number or printable text"
                ));
            }
        }
    }
    Ok(())
}

fn check_path(at: &str, dev: Option<&str>) -> Result<(), String> {
    match dev {
        Some(p) if p.starts_with('/') => Ok(()),
        Some(p) => Err(format!("{at}: path '{p}' must be absolute")),
        None => Err(format!("{at}: path=<file or block device> is required")),
    }
}

fn check_size(at: &str, size: u64) -> Result<(), String> {
    if size == 0 || !size.is_multiple_of(512) {
        return Err(format!(
            "{at}: size {size} must be a nonzero multiple of 512 bytes"
        ));
    }
    Ok(())
}

/// `wwn/` text fields: LIO's limits (SPC-4 §6.6.2 INQUIRY field widths) and printable ASCII.
pub fn validate_wwn_field(at: &str, name: &str, v: &str) -> Result<(), String> {
    let (max, what) = match name {
        "vendor_id" => (8, "1-8"),
        "product_id" => (16, "1-16"),
        "revision" => (4, "1-4"),
        "vpd_unit_serial" => (253, "1-253"),
        _ => return Err(format!("{at}/wwn/{name}: unknown attribute")),
    };
    let printable = if name == "vpd_unit_serial" {
        // The serial becomes a VPD 0x80 value and feeds the NAA designator: no blanks.
        v.bytes().all(|b| b.is_ascii_graphic())
    } else {
        v.bytes().all(|b| (0x20..=0x7e).contains(&b))
    };
    if v.is_empty() || v.len() > max || !printable {
        return Err(format!(
            "{at}/wwn/{name}: use {what} printable ASCII characters"
        ));
    }
    Ok(())
}

/// Parse a size (bytes or K/M/G/T/P binary suffixes, as targetcli; ironlun-backstore's rules),
/// naming `field` in the error.
pub fn parse_size(field: &str, s: &str) -> Result<u64, String> {
    ironlun_backstore::parse_size(s).map_err(|e| format!("{field}: {e}"))
}

/// Parse a boolean setting: 0/1 (as LIO), also true/false.
pub fn parse_bool(field: &str, s: &str) -> Result<bool, String> {
    match s {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(format!("{field}: '{s}' is not valid; expected 0 or 1")),
    }
}

/// A unit serial for a new device: a random UUID (version 4 form), as rtslib generates.
pub fn generate_serial() -> String {
    let b: [u8; 16] = rand::random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("size", "1G"), Ok(1 << 30));
        assert_eq!(parse_size("size", "512"), Ok(512));
        assert_eq!(parse_size("size", "64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("size", "2t"), Ok(2 << 40));
        for bad in ["", "G", "1X", "-1", "1.5G", "99999999999P", "1 X"] {
            let e = parse_size("size", bad).expect_err(bad);
            assert!(e.starts_with("size:"), "{e}");
        }
    }

    #[test]
    fn serials_are_uuid_shaped_and_differ() {
        let a = generate_serial();
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert_ne!(a, generate_serial());
    }

    #[test]
    fn hba_names() {
        assert_eq!(Kind::parse_hba("fileio_3"), Ok((Kind::FileIo, 3)));
        assert!(Kind::parse_hba("pscsi_0")
            .expect_err("pscsi")
            .contains("not supported by this build"));
        assert!(Kind::parse_hba("fileio_01").is_err());
        assert!(Kind::parse_hba("disk_0").is_err());
    }

    #[test]
    fn attr_values_round_trip_as_numbers_or_text() {
        assert_eq!(AttrValue::from_text("4096"), AttrValue::Int(4096));
        assert_eq!(AttrValue::from_text("0"), AttrValue::Int(0));
        assert_eq!(AttrValue::from_text("007"), AttrValue::Str("007".into()));
        assert_eq!(AttrValue::from_text("abc").text(), "abc");
    }
}
