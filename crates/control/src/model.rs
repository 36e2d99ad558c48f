//! The saved object tree: the data behind `core/…` and `iscsi/…`, serialised as `config.json`.
//!
//! The JSON follows rtslib's saveconfig.json (storage_objects / targets / tpgs / luns / portals /
//! node_acls / mapped_luns, `attributes`, `parameters`, `chap_*`) with our additions: `hba`
//! (the `<n>` of `core/<kind>_<n>`), identity fields (`vendor_id`, `product_id`, `revision`) and
//! the TPG `rtpi`, which rtslib does not save — we pin it so that relative target port
//! identifiers survive restarts (the relative target port designator of SPC-4 §7.8.6, device
//! identification VPD page, must stay stable for multipath hosts).
//!
//! * [`alua`] — target port groups and LU groups (SPC-4 §5.11.2), with no dependency on the
//!   others.
//! * [`attrib`] — TPG attributes declared once on the engine's attribute schema, and device
//!   attribute values parsed with the engine's declarations; no dependency on the others.
//! * [`device`] — storage objects (`core/<kind>_<n>/<dev>`); uses [`alua`], [`attrib`].
//! * [`iscsi`] — targets, TPGs, portals, LUNs, ACLs, CHAP (RFC 7143); uses [`alua`], [`attrib`].
//! * [`config`] — the whole tree and its validation; uses the others.
//! * Here: the value parsers they share (indexes, sizes, booleans, object names).

pub mod alua;
pub mod attrib;
pub mod config;
pub mod device;
pub mod iscsi;
pub mod touched;
mod validate;

pub use alua::{AluaTpg, LuGp};
pub use attrib::{
    at_path, check_device_attribute, parse_device_attribute, tpg_attribute, tpg_attribute_defs,
    tpg_attribute_names, TpgAttr, TpgAttributes, TPG_ATTRIBUTES,
};
pub use config::{Config, Member, ParamSchema, CONFIG_VERSION};
pub use device::{
    generate_serial, validate_dev_name, validate_storage_object, validate_wwn_field, DevKey, Kind,
    StorageObject,
};
pub use iscsi::{
    validate_chap_value, validate_portal, Chap, DiscoveryAuth, Lun, MappedLunCfg, NodeAcl, Portal,
    Target, Tpg, AUTH_NAMES, MAX_LUN,
};
pub use touched::{Snapshot, Touched, TpgTouch};

/// A decimal index without sign or leading zeros ("0", "17"), as used in `_<n>` suffixes.
pub fn parse_index(s: &str) -> Option<u32> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

/// Device and group names: 1-64 of A-Z a-z 0-9 _ - ., not starting with '.' (what LIO allows
/// in configfs minus characters that make paths ambiguous).
fn is_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

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

#[cfg(test)]
mod tests;
