//! `attrib/` values on the engine's attribute schema ([`AttrDef`], crates/engine/src/attr.rs):
//!
//! * TPG attributes (LIO's `tpgt_<n>/attrib/`; the portal group of RFC 7143 §3.4.1, its
//!   keep-alive times drive the NOP-In pings of RFC 7143 §11.18), each declared once in
//!   [`TPG_ATTRIBUTES`] beside where its value lives: `ls`, `get`, `set`, the defaults, the
//!   checks, `config.json` and the table of docs/cli.md all read that table.
//! * Device attributes: the values a storage object saves, parsed once with the engine's
//!   declarations ([`device_attribute_defs`], crates/engine/src/core/device/attrs.rs) and kept
//!   as numbers; a name or value the schema refuses is refused when `config.json` is read or a
//!   tree is validated, before anything is applied.
//!
//! ironlun has no per-ACL attributes (LIO's `acls/<i>/attrib/`): the tree refuses them.

use std::collections::BTreeMap;

use ironlun_engine::attr::{AttrDef, Default as AttrDefault, Domain, WhileExported};
use ironlun_engine::device_attribute_defs;
use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::parse_bool;

/// A TPG's `attrib/` values, typed; what each means is in [`TPG_ATTRIBUTES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpgAttributes {
    pub authentication: u32,
    pub demo_mode_write_protect: u32,
    pub generate_node_acls: u32,
    pub nopin_response_timeout: u32,
    pub nopin_timeout: u32,
    pub prod_mode_write_protect: u32,
}

/// Whether `config.json` carries a value equal to its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Saved {
    /// Always, as rtslib's saveconfig.json does for LIO's TPG attributes.
    Always,
    /// Only once changed: files without the attribute stay as rtslib writes them.
    WhenChanged,
}

/// One TPG attribute: its schema and where its value lives.
pub struct TpgAttr {
    pub def: AttrDef,
    get: fn(&TpgAttributes) -> u32,
    slot: fn(&mut TpgAttributes) -> &mut u32,
    /// The values the schema's domain takes (a `Bounded` domain names them in words).
    accepts: fn(u32) -> bool,
    saved: Saved,
}

fn flag(v: u32) -> bool {
    v <= 1
}

macro_rules! tpg_attr {
    ($field:ident, $domain:expr, $default:literal, $accepts:expr, $saved:ident, $help:literal) => {
        TpgAttr {
            def: AttrDef {
                name: stringify!($field),
                domain: $domain,
                default: AttrDefault::Value($default),
                while_exported: WhileExported::Live,
                ua: None,
                help: $help,
            },
            get: |a| a.$field,
            slot: |a| &mut a.$field,
            accepts: $accepts,
            saved: Saved::$saved,
        }
    };
}

/// Every TPG attribute, in display order (LIO's names).
pub static TPG_ATTRIBUTES: &[TpgAttr] = &[
    tpg_attr!(authentication, Domain::Flag, 0, flag, Always,
        "CHAP required at login (0: AuthMethod=None accepted; LIO's kernel default is 1, new TPGs get 0 as targetcli makes them)"),
    tpg_attr!(demo_mode_write_protect, Domain::Flag, 1, flag, Always,
        "demo-mode LUNs are read-only"),
    tpg_attr!(generate_node_acls, Domain::Flag, 0, flag, Always,
        "demo mode: any initiator may log in and sees every TPG LUN"),
    // LIO's NA_NOPIN_RESPONSE_TIMEOUT_MIN / _MAX.
    tpg_attr!(nopin_response_timeout, Domain::Bounded("3-60 seconds"), 15,
        |v| (3..=60).contains(&v), WhenChanged,
        "drop the connection when no NOP-Out answers a ping within this time"),
    // LIO's NA_NOPIN_TIMEOUT_MIN / _MAX, and 0.
    tpg_attr!(nopin_timeout, Domain::Bounded("0 (no NOP-In pings) or 3-60 seconds"), 15,
        |v| v == 0 || (3..=60).contains(&v), WhenChanged,
        "ping a silent connection with a NOP-In after this long; 0 = never ping (a silent initiator is never dropped). LIO has it per ACL; here it applies to every session of the TPG, from its next login"),
    tpg_attr!(prod_mode_write_protect, Domain::Flag, 0, flag, Always,
        "every ACL-mapped LUN is read-only"),
];

impl TpgAttr {
    /// The current value in `a`.
    pub fn get(&self, a: &TpgAttributes) -> u32 {
        (self.get)(a)
    }

    /// Parses a value written by an administrator (flags also take true/false). Err: one
    /// line starting with `at`, saying what is valid.
    pub fn parse(&self, at: &str, text: &str) -> Result<u32, String> {
        let v = match self.def.domain {
            Domain::Flag => u32::from(parse_bool(at, text)?),
            _ => text
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("{at}: invalid value {text:?}; expected {}", self.valid()))?,
        };
        self.check(v).map_err(|e| format!("{at}: {e}"))?;
        Ok(v)
    }

    /// Checks a value (`set` and loading `config.json`). Err: "must be …".
    pub fn check(&self, v: u32) -> Result<(), String> {
        if (self.accepts)(v) {
            Ok(())
        } else {
            Err(format!("must be {}", self.valid()))
        }
    }

    /// Stores a value [`TpgAttr::parse`] or [`TpgAttr::check`] accepted.
    pub fn set(&self, a: &mut TpgAttributes, v: u32) {
        *(self.slot)(a) = v;
    }

    fn valid(&self) -> String {
        match self.def.domain {
            Domain::Flag => "0 or 1".to_string(),
            _ => self.def.valid_text(),
        }
    }

    fn default_value(&self) -> u32 {
        match self.def.default {
            AttrDefault::Value(v) => v,
            AttrDefault::Derived(_) => 0,
        }
    }
}

/// The declaration of TPG attribute `name`.
pub fn tpg_attribute(name: &str) -> Option<&'static TpgAttr> {
    TPG_ATTRIBUTES.iter().find(|t| t.def.name == name)
}

/// The schema of every TPG attribute, in display order (docs/cli.md's table).
pub fn tpg_attribute_defs() -> impl Iterator<Item = &'static AttrDef> {
    TPG_ATTRIBUTES.iter().map(|t| &t.def)
}

/// The TPG attribute names, in display order, comma separated (error lines).
pub fn tpg_attribute_names() -> String {
    names(tpg_attribute_defs())
}

fn names<'a>(defs: impl Iterator<Item = &'a AttrDef>) -> String {
    defs.map(|d| d.name).collect::<Vec<_>>().join(", ")
}

impl Default for TpgAttributes {
    /// The declared defaults. Like targetcli, new TPGs have authentication off.
    fn default() -> Self {
        let mut a = TpgAttributes {
            authentication: 0,
            demo_mode_write_protect: 0,
            generate_node_acls: 0,
            nopin_response_timeout: 0,
            nopin_timeout: 0,
            prod_mode_write_protect: 0,
        };
        for t in TPG_ATTRIBUTES {
            t.set(&mut a, t.default_value());
        }
        a
    }
}

impl Serialize for TpgAttributes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let saved: Vec<(&str, u32)> = TPG_ATTRIBUTES
            .iter()
            .map(|t| (t, t.get(self)))
            .filter(|(t, v)| t.saved == Saved::Always || *v != t.default_value())
            .map(|(t, v)| (t.def.name, v))
            .collect();
        let mut m = s.serialize_map(Some(saved.len()))?;
        for (name, v) in saved {
            m.serialize_entry(name, &v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for TpgAttributes {
    /// Missing attributes take their defaults; unknown names are refused. Values are checked
    /// with the whole tree (model/config.rs).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut a = TpgAttributes::default();
        for (name, v) in BTreeMap::<String, u32>::deserialize(d)? {
            let t = tpg_attribute(&name).ok_or_else(|| {
                D::Error::custom(format!(
                    "unknown field `{name}`, expected one of {}",
                    tpg_attribute_names()
                ))
            })?;
            t.set(&mut a, v);
        }
        Ok(a)
    }
}

/// Parses a value of device attribute `name` with the engine's declaration. Err: the schema's
/// one line, `<name>: <reason>`.
pub fn parse_device_attribute(name: &str, text: &str) -> Result<u32, String> {
    let def = device_attribute_defs()
        .find(|d| d.name == name)
        .ok_or_else(|| {
            format!(
                "{name}: unknown attribute; valid: {}",
                names(device_attribute_defs())
            )
        })?;
    def.parse(text)
}

/// Checks a saved value of device attribute `name` against the engine's declaration.
pub fn check_device_attribute(name: &str, v: u32) -> Result<(), String> {
    parse_device_attribute(name, &v.to_string()).map(|_| ())
}

/// `<path>: <reason>`: an engine or schema line about attribute `name` (`<name>: <reason>`)
/// placed at the attribute's path in the tree.
pub fn at_path(path: &str, name: &str, line: &str) -> String {
    let reason = line
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix(": "))
        .unwrap_or(line);
    format!("{path}: {reason}")
}

/// `attributes` of a storage object in `config.json`: numbers, or (as older files and rtslib
/// may write them) text, each parsed once with the engine's schema.
pub(super) fn deserialize_device_attributes<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(serde_json::Number),
        Text(String),
    }
    BTreeMap::<String, Raw>::deserialize(d)?
        .into_iter()
        .map(|(name, v)| {
            let text = match v {
                Raw::Number(n) => n.to_string(),
                Raw::Text(s) => s,
            };
            let v = parse_device_attribute(&name, &text)
                .map_err(|e| D::Error::custom(format!("attributes: {e}")))?;
            Ok((name, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpg_defaults_come_from_the_table_and_nopin_is_saved_only_when_changed() {
        let a = TpgAttributes::default();
        assert_eq!((a.authentication, a.demo_mode_write_protect), (0, 1));
        assert_eq!((a.nopin_timeout, a.nopin_response_timeout), (15, 15));
        let json = serde_json::to_string(&a).expect("json");
        assert_eq!(
            json,
            r#"{"authentication":0,"demo_mode_write_protect":1,"generate_node_acls":0,"prod_mode_write_protect":0}"#
        );
        let back: TpgAttributes = serde_json::from_str(&json).expect("back");
        assert_eq!(back, a);
        let partial: TpgAttributes =
            serde_json::from_str(r#"{"generate_node_acls":1,"nopin_timeout":0}"#).expect("partial");
        assert_eq!(
            (
                partial.generate_node_acls,
                partial.nopin_timeout,
                partial.demo_mode_write_protect
            ),
            (1, 0, 1)
        );
        let e = serde_json::from_str::<TpgAttributes>(r#"{"bogus":1}"#).expect_err("unknown");
        assert!(e.to_string().contains("unknown field `bogus`"), "{e}");
    }

    #[test]
    fn tpg_values_are_parsed_and_checked_by_their_declaration() {
        let t = tpg_attribute("authentication").expect("declared");
        assert_eq!(t.parse("at", "true"), Ok(1));
        assert_eq!(
            t.parse("at", "2"),
            Err("at: '2' is not valid; expected 0 or 1".to_string())
        );
        assert_eq!(t.check(2), Err("must be 0 or 1".to_string()));
        let n = tpg_attribute("nopin_timeout").expect("declared");
        assert_eq!(n.parse("at", "0"), Ok(0));
        assert_eq!(n.parse("at", "60"), Ok(60));
        assert_eq!(
            n.parse("at", "2"),
            Err("at: must be 0 (no NOP-In pings) or 3-60 seconds".to_string())
        );
        let r = tpg_attribute("nopin_response_timeout").expect("declared");
        assert_eq!(r.check(0), Err("must be 3-60 seconds".to_string()));
        assert!(tpg_attribute("nonsense").is_none());
    }

    #[test]
    fn device_values_take_the_engine_schema_and_its_line() {
        assert_eq!(parse_device_attribute("block_size", "4096"), Ok(4096));
        let e = parse_device_attribute("emulate_dpo", "1").expect_err("only 0");
        assert!(e.starts_with("emulate_dpo: only 0 is accepted ("), "{e}");
        assert_eq!(
            at_path("core/rd_mcp_0/r/attrib/emulate_dpo", "emulate_dpo", &e),
            format!("core/rd_mcp_0/r/attrib/{e}")
        );
        let e = parse_device_attribute("frobnicate", "1").expect_err("unknown");
        assert!(
            e.starts_with("frobnicate: unknown attribute; valid: block_size"),
            "{e}"
        );
        assert!(check_device_attribute("emulate_tpu", 1).is_ok());
        assert!(check_device_attribute("hw_block_size", 512).is_err());
    }
}
