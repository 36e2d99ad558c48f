//! `ironlun apply`: what it takes to turn one configuration into another, in the object
//! tree's terms (targetcli's paths: `core/<plugin>_<hba>/<name>`, `iscsi/<wwn>/tpgt_<tag>`,
//! `…/lun/lun_<n>`, `…/acls/<wwn>`, `…/np/<ip>:<port>`). The runtime's apply
//! ([`crate::runtime::Runtime::apply`]) already changes only what differs (a device whose
//! backing and identity stay is kept, with its sessions, reservations and task sets); this
//! module names those differences for the plan `apply` prints, and decides that a file equal
//! to the running tree changes nothing.
//!
//! Objects are matched by what names them (a storage object by plugin, hba and name; a
//! target by its WWN; a TPG by its tag; a LUN by its index; an ACL by the initiator's name;
//! a portal by address and port; an ALUA group by its name), never by position, so a file
//! that lists the same objects in another order plans nothing. Secrets are never printed.

use serde_json::{Map, Value};

use crate::model::Config;

/// One change of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new object, by its tree path.
    Create(String),
    /// An object that goes, by its tree path (with everything under it).
    Delete(String),
    /// A value that changes: tree path of the object, then the field, before and after.
    Set {
        path: String,
        before: String,
        after: String,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Create(p) => write!(f, "create {p}"),
            Change::Delete(p) => write!(f, "delete {p}"),
            Change::Set {
                path,
                before,
                after,
            } => write!(f, "set    {path}: {before} -> {after}"),
        }
    }
}

/// The changes that turn `old` into `new`: deletions first (deepest first), then creations
/// (parents first), then values.
/// `new` with what the engine owns taken from the running `cur`: the status of every ALUA
/// group both have (`alua_access_status` says who changed the state last: the engine sets
/// it on each transition, so a file cannot hold it). Without this, applying a file that
/// changes a state would change the status back on the next apply.
pub fn adopt_engine_owned(cur: &Config, new: &mut Config) {
    for so in &mut new.storage_objects {
        let Some(was) = cur.device(&so.key()) else {
            continue;
        };
        for g in &mut so.alua_tpgs {
            if let Some(w) = was.alua_group(&g.name) {
                g.alua_access_status = w.alua_access_status;
            }
        }
    }
}

pub fn plan(old: &Config, new: &Config) -> Vec<Change> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
        // Config is plain data; serialization cannot fail. Plan nothing rather than panic.
        return Vec::new();
    };
    let mut out = Vec::new();
    diff_object("", &a, &b, &mut out);
    let mut deletes: Vec<Change> = Vec::new();
    let mut creates: Vec<Change> = Vec::new();
    let mut sets: Vec<Change> = Vec::new();
    for c in out {
        match c {
            Change::Delete(_) => deletes.push(c),
            Change::Create(_) => creates.push(c),
            Change::Set { .. } => sets.push(c),
        }
    }
    deletes.reverse();
    deletes.extend(creates);
    deletes.extend(sets);
    deletes
}

/// The plan as text: one change per line, then a count; or the line saying there is none.
pub fn render(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no changes: the running configuration already equals the file".into();
    }
    let mut s = String::new();
    for c in changes {
        s.push_str(&c.to_string());
        s.push('\n');
    }
    s.push_str(&format!("{} change(s)", changes.len()));
    s
}

/// Where a list's elements go in the tree, and what names each one.
fn element_path(field: &str, parent: &str, e: &Value) -> Option<String> {
    let s = |k: &str| e.get(k).map(scalar).unwrap_or_default();
    Some(match field {
        "storage_objects" => {
            // The plugin's JSON name as the tree's HBA prefix (`Kind::tree_name`).
            let plugin = e
                .get("plugin")
                .and_then(|p| serde_json::from_value::<crate::model::Kind>(p.clone()).ok())
                .map_or_else(|| s("plugin"), |k| k.tree_name().to_string());
            format!("core/{plugin}_{}/{}", s("hba"), s("name"))
        }
        "targets" => format!("iscsi/{}", s("wwn")),
        "tpgs" => format!("{parent}/tpgt_{}", s("tag")),
        "portals" => {
            let ip = s("ip_address");
            let ip = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip
            };
            format!("{parent}/np/{ip}:{}", s("port"))
        }
        "luns" => format!("{parent}/lun/lun_{}", s("index")),
        "node_acls" => format!("{parent}/acls/{}", s("node_wwn")),
        "mapped_luns" => format!("{parent}/lun_{}", s("index")),
        "alua_tpgs" => format!("{parent}/alua/{}", s("name")),
        "alua_lu_gps" => format!("core/alua/lu_gps/{}", s("name")),
        _ => return None,
    })
}

/// A field's path below an object: top-level lists hang from the root, the rest from
/// their object.
fn field_path(parent: &str, field: &str) -> String {
    // The tree's names for the two maps of values (configfs's `attrib/` and `param/`).
    let field = match field {
        "attributes" => "attrib",
        "parameters" => "param",
        f => f,
    };
    // CHAP credentials are `auth/<leaf>` in the tree (flat under `iscsi/discovery_auth/`).
    let chap = match field {
        "chap_userid" => Some("userid"),
        "chap_password" => Some("password"),
        "chap_mutual_userid" => Some("userid_mutual"),
        "chap_mutual_password" => Some("password_mutual"),
        _ => None,
    };
    if parent == "discovery_auth" {
        return format!("iscsi/discovery_auth/{}", chap.unwrap_or(field));
    }
    if let Some(leaf) = chap {
        return format!("{parent}/auth/{leaf}");
    }
    if parent.is_empty() {
        field.to_string()
    } else {
        format!("{parent}/{field}")
    }
}

fn diff_object(path: &str, a: &Value, b: &Value, out: &mut Vec<Change>) {
    let empty = Map::new();
    let (ma, mb) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = ma.keys().chain(mb.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (va, vb) = (ma.get(k), mb.get(k));
        if va == vb {
            continue;
        }
        let (va, vb) = (va.unwrap_or(&Value::Null), vb.unwrap_or(&Value::Null));
        // A missing list is an empty one.
        fn list(v: &Value) -> Option<&[Value]> {
            match v {
                Value::Array(x) => Some(x),
                Value::Null => Some(&[]),
                _ => None,
            }
        }
        if let (Some(xa), Some(xb)) = (list(va), list(vb)) {
            if is_named_list(k, xa, xb) {
                diff_list(path, k, xa, xb, out);
                continue;
            }
        }
        if va.is_object() || vb.is_object() {
            diff_object(&field_path(path, k), va, vb, out);
            continue;
        }
        out.push(Change::Set {
            path: field_path(path, k),
            before: shown(k, va),
            after: shown(k, vb),
        });
    }
}

/// A list whose elements are objects the tree names ([`element_path`]).
fn is_named_list(field: &str, a: &[Value], b: &[Value]) -> bool {
    let probe = Value::Object(Map::new());
    element_path(field, "", &probe).is_some() && a.iter().chain(b).all(Value::is_object)
}

fn diff_list(parent: &str, field: &str, a: &[Value], b: &[Value], out: &mut Vec<Change>) {
    fn named<'v>(field: &str, parent: &str, v: &'v [Value]) -> Vec<(String, &'v Value)> {
        v.iter()
            .filter_map(|e| element_path(field, parent, e).map(|p| (p, e)))
            .collect()
    }
    let (na, nb) = (named(field, parent, a), named(field, parent, b));
    // Matched by name through maps: lists of ten thousand LUs are compared in n log n.
    let ia: std::collections::BTreeMap<&str, &Value> =
        na.iter().map(|(p, e)| (p.as_str(), *e)).collect();
    let ib: std::collections::BTreeMap<&str, &Value> =
        nb.iter().map(|(p, e)| (p.as_str(), *e)).collect();
    for (p, ea) in &na {
        match ib.get(p.as_str()) {
            Some(eb) => diff_object(p, ea, eb, out),
            None => out.push(Change::Delete(p.clone())),
        }
    }
    for (p, eb) in &nb {
        if !ia.contains_key(p.as_str()) {
            out.push(Change::Create(p.clone()));
            // What the new object holds is part of creating it, except the named objects
            // below it (LUNs, ACLs, portals…), which are creations of their own.
            diff_object(p, &Value::Object(Map::new()), &only_named(eb), out);
        }
    }
}

/// An object with only its named lists kept (their elements are planned as creations).
fn only_named(v: &Value) -> Value {
    let mut m = Map::new();
    if let Some(o) = v.as_object() {
        for (k, x) in o {
            if let Value::Array(xs) = x {
                if is_named_list(k, xs, &[]) {
                    m.insert(k.clone(), x.clone());
                }
            }
        }
    }
    Value::Object(m)
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A value as the plan prints it: secrets masked, absence as `(none)`.
fn shown(field: &str, v: &Value) -> String {
    if v.is_null() {
        return "(none)".into();
    }
    if field.contains("password") || field.contains("secret") {
        return ironlun_fabric::SECRET_MASK.into();
    }
    match v {
        Value::String(s) if s.is_empty() => "\"\"".into(),
        _ => scalar(v),
    }
}

#[cfg(test)]
mod tests;
