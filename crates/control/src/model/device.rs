//! Storage objects (`core/<kind>_<n>/<dev>`): backstore kinds, device keys and names, the saved
//! device with its identity (`wwn/`, SPC-4 §6.6.2 INQUIRY fields and §7.8.5 unit serial number
//! VPD page), `attrib/` values and creation parameters, and their checks.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::alua::{AluaTpg, DEFAULT_LU_GP, DEFAULT_TG_PT_GP};
use super::attrib::{at_path, check_device_attribute, deserialize_device_attributes};
use super::{is_object_name, parse_index};

/// Backstore kinds (LIO HBA plugin names in the tree; rtslib plugin names in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    #[serde(rename = "ramdisk")]
    RdMcp,
    #[serde(rename = "fileio")]
    FileIo,
    #[serde(rename = "block")]
    IBlock,
    /// SCSI pass-through (LIO's pscsi): a real SCSI device through SG_IO.
    #[serde(rename = "pscsi")]
    PScsi,
}

impl Kind {
    /// The configfs HBA prefix (`rd_mcp`, `fileio`, `iblock`).
    pub fn tree_name(self) -> &'static str {
        match self {
            Kind::RdMcp => "rd_mcp",
            Kind::FileIo => "fileio",
            Kind::IBlock => "iblock",
            Kind::PScsi => "pscsi",
        }
    }

    /// Parse an HBA directory name `<kind>_<n>`.
    pub fn parse_hba(seg: &str) -> Result<(Kind, u32), String> {
        let (kind, n) = seg.rsplit_once('_').ok_or_else(|| hba_error(seg))?;
        let kind = match kind {
            "rd_mcp" => Kind::RdMcp,
            "fileio" => Kind::FileIo,
            "iblock" => Kind::IBlock,
            "pscsi" => Kind::PScsi,
            "user" | "rd_dr" => {
                return Err(format!(
                    "core/{seg}: backstore kind '{kind}' is not supported by this build"
                ))
            }
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
            // Not shown to initiators: a pass-through LU answers INQUIRY with the device's.
            Kind::PScsi => "PSCSI",
        }
    }
}

fn hba_error(seg: &str) -> String {
    format!("core/{seg}: expected <kind>_<n> with kind rd_mcp, fileio, iblock or pscsi and n a number (e.g. fileio_0)")
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
    if is_object_name(name) {
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
    /// `attrib/<name>` values set by the user (only those; others keep the engine default),
    /// each accepted by the engine's declaration of the attribute.
    #[serde(default, deserialize_with = "deserialize_device_attributes")]
    pub attributes: BTreeMap<String, u32>,
    /// `alua/<group>/`: target port groups (rtslib `alua_tpgs`), including
    /// `default_tg_pt_gp` once it was changed; states and statuses are saved too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alua_tpgs: Vec<AluaTpg>,
    /// `alua_lu_gp`: the LU group the device joined (none: `default_lu_gp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alua_lu_gp: Option<String>,
}

impl StorageObject {
    /// Whether this is the device `key` names (no allocation: lookups scan thousands).
    pub fn is(&self, key: &DevKey) -> bool {
        self.hba == key.hba && self.plugin == key.kind && self.name == key.name
    }

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
        match (&self.dev, self.plugin) {
            (Some(dev), Kind::PScsi) => parts.push(format!("dev={dev}")),
            (Some(dev), _) => parts.push(format!("path={dev}")),
            (None, _) => {}
        }
        if let Some(size) = self.size {
            parts.push(format!("size={size}"));
        }
        match self.plugin {
            Kind::FileIo => parts.push(format!("write_back={}", u8::from(self.write_back))),
            Kind::IBlock => parts.push(format!("readonly={}", u8::from(self.readonly))),
            Kind::RdMcp | Kind::PScsi => {}
        }
        parts.join(",")
    }
}

impl StorageObject {
    /// Every target port group of the device, `default_tg_pt_gp` first (with LIO's defaults
    /// when it was never changed and so is not saved).
    pub fn alua_groups(&self) -> Vec<AluaTpg> {
        let mut out = Vec::with_capacity(self.alua_tpgs.len() + 1);
        if !self.alua_tpgs.iter().any(|g| g.name == DEFAULT_TG_PT_GP) {
            out.push(AluaTpg::new(DEFAULT_TG_PT_GP, 0));
        }
        out.extend(self.alua_tpgs.iter().cloned());
        out.sort_by_key(|g| (g.name != DEFAULT_TG_PT_GP, g.name.clone()));
        out
    }

    pub fn alua_group(&self, name: &str) -> Option<AluaTpg> {
        self.alua_groups().into_iter().find(|g| g.name == name)
    }

    /// The saved group `name`, materialising `default_tg_pt_gp` on first change.
    pub fn alua_group_mut(&mut self, name: &str) -> Option<&mut AluaTpg> {
        if name == DEFAULT_TG_PT_GP && !self.alua_tpgs.iter().any(|g| g.name == name) {
            self.alua_tpgs.insert(0, AluaTpg::new(DEFAULT_TG_PT_GP, 0));
        }
        self.alua_tpgs.iter_mut().find(|g| g.name == name)
    }

    /// The LU group the device is in.
    pub fn lu_gp(&self) -> &str {
        self.alua_lu_gp.as_deref().unwrap_or(DEFAULT_LU_GP)
    }

    /// Whole-device ALUA checks: names and ids unique.
    pub fn validate_alua(&self) -> Result<(), String> {
        let at = self.key().to_string();
        let mut names = std::collections::BTreeSet::new();
        let mut ids = std::collections::BTreeMap::new();
        for g in &self.alua_tpgs {
            g.validate(&at)?;
            if !names.insert(g.name.as_str()) {
                return Err(format!("{at}/alua/{} is defined twice", g.name));
            }
            if let Some(other) = ids.insert(g.tg_pt_gp_id, g.name.as_str()) {
                return Err(format!(
                    "{at}/alua/{}/tg_pt_gp_id {} is already used by {other}; ids must be unique per device",
                    g.name, g.tg_pt_gp_id
                ));
            }
        }
        if self.alua_lu_gp.as_deref() == Some(DEFAULT_LU_GP) {
            return Err(format!("{at}/alua_lu_gp: save {DEFAULT_LU_GP} as no value"));
        }
        Ok(())
    }
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
        Kind::PScsi => {
            match so.dev.as_deref() {
                Some(d) if d.starts_with('/') || is_hctl(d) => {}
                Some(d) => {
                    return Err(format!(
                        "{at}: dev '{d}' is not valid; expected /dev/sgN, a SCSI disk /dev/sdX or H:C:T:L"
                    ))
                }
                None => return Err(format!("{at}: dev=</dev/sgN|/dev/sdX|H:C:T:L> is required")),
            }
            if so.size.is_some() || so.write_back || so.readonly {
                return Err(format!(
                    "{at}: pscsi takes dev= only (size, cache and write protection are the device's)"
                ));
            }
            if !so.alua_tpgs.is_empty() || so.alua_lu_gp.is_some() {
                return Err(format!(
                    "{at}/alua: ALUA is the device's on a pass-through LU (REPORT and SET TARGET PORT GROUPS go to it): no groups here"
                ));
            }
            if let Some(name) = so
                .attributes
                .keys()
                .find(|n| !PSCSI_ATTRIBUTES.contains(&n.as_str()))
            {
                return Err(format!(
                    "{at}/attrib/{name}: does not apply to a pass-through device (pscsi sends every command to the device, which decides); settable here: {}",
                    PSCSI_ATTRIBUTES.join(", ")
                ));
            }
        }
    }
    for (name, v) in &so.attributes {
        check_device_attribute(name, *v)
            .map_err(|e| at_path(&format!("{at}/attrib/{name}"), name, &e))?;
    }
    Ok(())
}

/// The device attributes a pass-through LU has: those of the target's side of it (its task
/// set and its own unit attentions); every other one is the device's business.
pub const PSCSI_ATTRIBUTES: &[&str] = &["queue_depth", "emulate_tas", "emulate_ua_intlck_ctrl"];

/// `H:C:T:L`: four decimal numbers.
fn is_hctl(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
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
