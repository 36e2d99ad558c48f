//! Moving between LIO and ironlun: rtslib-fb's `saveconfig.json` (the file `targetctl save`
//! writes; its shape is set by rtslib-fb's rtslib/root.py `dump`, tcm.py `StorageObject.dump`,
//! target.py `Target/TPG/LUN/NodeACL/MappedLUN.dump` and alua.py `ALUATargetPortGroup.dump`)
//! converted to a [`crate::model::Config`] ([`import`]) and back ([`export`]), and LIO's APTPL
//! files (`<dbroot>/pr/aptpl_<unit serial>`, written by the kernel's target_core_pr.c
//! `core_scsi3_update_and_write_aptpl`) converted to ironlun's ([`aptpl`]).
//!
//! Every field of the input that does not carry over is named in a [`Report`] with the reason;
//! a file that cannot be understood at all (not JSON, a missing required field, an unknown
//! plugin) is one error line naming the field. docs/cli.md "Moving from LIO" has the table.

pub mod aptpl;
pub mod export;
pub mod import;
mod targets;

use serde_json::{Map, Value};

use crate::model::{Kind, ParamSchema};

/// Fields not carried over, one line each: `<where>: <why>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub lines: Vec<String>,
}

impl Report {
    pub fn push(&mut self, at: impl AsRef<str>, why: impl AsRef<str>) {
        self.lines
            .push(format!("{}: {}", at.as_ref(), why.as_ref()));
    }

    /// The report as text: a heading and one line per field (or a line saying all carried).
    pub fn render(&self) -> String {
        if self.lines.is_empty() {
            return "every field was carried over\n".into();
        }
        let mut s = format!("not carried over ({}):\n", self.lines.len());
        for l in &self.lines {
            s.push_str("  ");
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

/// The ironlun name of an rtslib storage object name: every character outside A-Z a-z 0-9
/// `_` `-` `.` becomes `_`, a leading `.` too, at most 64 characters. A name that was valid
/// stays as it is. Used for the objects and for the LUNs pointing at them.
pub(crate) fn dev_name(name: &str) -> String {
    if crate::model::validate_dev_name(name).is_ok() {
        return name.to_string();
    }
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if out.starts_with('.') {
        out.replace_range(..1, "_");
    }
    out
}

/// rtslib's canonical plugin names and the ones it also accepts (`iblock`, `rd_mcp`).
pub(crate) fn canonical_plugin(p: &str) -> Option<&'static str> {
    Some(match p {
        "block" | "iblock" => "block",
        "fileio" => "fileio",
        "ramdisk" | "rd_mcp" => "ramdisk",
        "pscsi" => "pscsi",
        "user" => "user",
        _ => return None,
    })
}

/// The backstore kind of a canonical rtslib plugin name ironlun serves.
pub(crate) fn plugin_kind(p: &str) -> Option<Kind> {
    match p {
        "block" => Some(Kind::IBlock),
        "fileio" => Some(Kind::FileIo),
        "ramdisk" => Some(Kind::RdMcp),
        "pscsi" => Some(Kind::PScsi),
        _ => None,
    }
}

/// The iSCSI fabric's `param/` keys (ironlun-fabric), for checks made away from the daemon.
pub struct FabricParams;

impl ParamSchema for FabricParams {
    fn param_defaults(&self) -> Vec<(String, String)> {
        ironlun_fabric::param_defaults()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
    fn validate_param(&self, key: &str, value: &str) -> Result<(), String> {
        ironlun_fabric::validate_param(key, value)
    }
}

/// A JSON object at `at`.
pub(crate) fn object<'a>(at: &str, v: &'a Value) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{at}: expected a JSON object, found {}", kind_of(v)))
}

/// A list at `at.key` (missing: empty).
pub(crate) fn list<'a>(
    at: &str,
    m: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a [Value], String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(format!("{at}.{key}: expected a list, found {}", kind_of(v))),
    }
}

/// A required string at `at.key`.
pub(crate) fn req_str<'a>(
    at: &str,
    m: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a str, String> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s),
        None => Err(format!("{at}.{key}: missing (a string is required)")),
        Some(v) => Err(format!(
            "{at}.{key}: expected a string, found {}",
            kind_of(v)
        )),
    }
}

/// An optional string at `at.key` (empty string: none).
pub(crate) fn opt_str<'a>(
    at: &str,
    m: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!(
            "{at}.{key}: expected a string, found {}",
            kind_of(v)
        )),
    }
}

/// A number at `at.key` (rtslib writes ints; older files may hold digit strings).
pub(crate) fn opt_u64(at: &str, m: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => number(&format!("{at}.{key}"), v).map(Some),
    }
}

pub(crate) fn req_u64(at: &str, m: &Map<String, Value>, key: &str) -> Result<u64, String> {
    opt_u64(at, m, key)?.ok_or_else(|| format!("{at}.{key}: missing (a number is required)"))
}

pub(crate) fn number(at: &str, v: &Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("{at}: {n} is not a whole number >= 0")),
        Value::Bool(b) => Ok(u64::from(*b)),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{at}: '{s}' is not a whole number >= 0")),
        v => Err(format!("{at}: expected a number, found {}", kind_of(v))),
    }
}

/// A flag at `at.key`: true/false, 0/1 (rtslib writes both forms).
pub(crate) fn opt_bool(
    at: &str,
    m: &Map<String, Value>,
    key: &str,
) -> Result<Option<bool>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => match number(&format!("{at}.{key}"), v)? {
            0 => Ok(Some(false)),
            1 => Ok(Some(true)),
            n => Err(format!("{at}.{key}: {n} is not a flag (expected 0 or 1)")),
        },
    }
}

/// Report every key of `m` not in `known`, with its value (masked where the key names a
/// password or secret: rtslib's man page documents `password`/`mutual_password` keys).
pub(crate) fn unknown_keys(at: &str, m: &Map<String, Value>, known: &[&str], report: &mut Report) {
    for (k, v) in m {
        if !known.contains(&k.as_str()) {
            let l = k.to_ascii_lowercase();
            let shown = if l.contains("password") || l.contains("secret") {
                ironlun_fabric::SECRET_MASK.to_string()
            } else {
                short(v)
            };
            report.push(
                format!("{at}.{k}"),
                format!("{shown} (not a field ironlun knows)"),
            );
        }
    }
}

/// A value as the report shows it (secrets are never passed here).
pub(crate) fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(57).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
