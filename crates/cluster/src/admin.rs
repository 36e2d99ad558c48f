//! `ironlun cluster …` (docs/cluster.md): the cluster as etcd holds it, read and changed from
//! any machine that reaches etcd — which gateways are live, every clustered LU with its PR
//! state, each gateway's ports and acknowledged revision, the group states — and the changes
//! an administrator makes cluster-wide: a group's access state (every gateway applies it as an
//! implicit transition, ASYMMETRIC ACCESS STATE CHANGED to its nexuses) and forgetting a
//! gateway that was taken out of service (its port records).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use etcd_client::{DeleteOptions, GetOptions};
use ironlun_engine::pr::{PrChange, RemotePort};
use ironlun_engine::scsi::alua::AccessState;
use serde::Serialize;

use crate::conn::Conn;
use crate::keys::{self, Key};

/// One gateway as the cluster sees it for one LU.
#[derive(Debug, Default, Serialize)]
pub struct GatewayStatus {
    pub live: bool,
    pub ports: Vec<RemotePort>,
    /// The PR revision it acknowledged (live gateways only).
    pub acked: Option<u64>,
}

/// One clustered LU.
#[derive(Debug, Default, Serialize)]
pub struct LuStatus {
    pub pr_revision: u64,
    pub pr: Option<PrChange>,
    pub gateways: BTreeMap<String, GatewayStatus>,
    /// Group id → access state code.
    pub groups: BTreeMap<u16, u8>,
}

/// One gateway's part of the cluster configuration.
#[derive(Debug, Default, Serialize)]
pub struct NodeConfig {
    /// The `config.json` fragment it applies.
    pub fragment: Option<serde_json::Value>,
    /// `applied <rev>` or `refused <rev>: why`.
    pub status: Option<String>,
}

/// The whole cluster.
#[derive(Debug, Default, Serialize)]
pub struct Status {
    pub members: BTreeSet<String>,
    pub lus: BTreeMap<String, LuStatus>,
    /// Node → its part of the cluster configuration.
    pub config: BTreeMap<String, NodeConfig>,
}

async fn connect(endpoints: &[String]) -> Result<std::sync::Arc<Conn>, String> {
    Conn::connect(endpoints.to_vec(), Duration::from_secs(4))
        .await
        .map_err(|e| format!("--cluster {}: {e}", endpoints.join(",")))
}

/// Read everything under the cluster's keys.
pub async fn status(endpoints: &[String]) -> Result<Status, String> {
    let conn = connect(endpoints).await?;
    let mut c = conn.client();
    let r = c
        .get(keys::ROOT, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(|e| e.to_string())?;
    let mut st = Status::default();
    for kv in r.kvs() {
        let value = kv.value();
        match keys::parse(kv.key_str().unwrap_or_default()) {
            Key::Member(n) => {
                st.members.insert(n.to_string());
            }
            Key::Pr(s) => {
                let lu = st.lus.entry(s.to_string()).or_default();
                lu.pr_revision = u64::try_from(kv.mod_revision()).unwrap_or(0);
                lu.pr = serde_json::from_slice(value).ok();
            }
            Key::Ack(s, n) => {
                let g = st.lus.entry(s.to_string()).or_default();
                let gw = g.gateways.entry(n.to_string()).or_default();
                gw.acked = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            Key::Ports(s, n) => {
                let g = st.lus.entry(s.to_string()).or_default();
                let gw = g.gateways.entry(n.to_string()).or_default();
                gw.ports = serde_json::from_slice(value).unwrap_or_default();
            }
            Key::Group(s, id) => {
                if let Some(code) = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                    st.lus
                        .entry(s.to_string())
                        .or_default()
                        .groups
                        .insert(id, code);
                }
            }
            Key::Config(n) => {
                let frag = serde_json::from_slice(value).unwrap_or(serde_json::Value::Null);
                st.config.entry(n.to_string()).or_default().fragment = Some(frag);
            }
            Key::ConfigStatus(n) => {
                let v = String::from_utf8_lossy(value).into_owned();
                st.config.entry(n.to_string()).or_default().status = Some(v);
            }
            Key::Other => {}
        }
    }
    for lu in st.lus.values_mut() {
        for (n, gw) in lu.gateways.iter_mut() {
            gw.live = st.members.contains(n);
        }
    }
    Ok(st)
}

fn state_name(code: u8) -> &'static str {
    match AccessState::from_code(code) {
        AccessState::ActiveOptimized => "Active/Optimized",
        AccessState::ActiveNonOptimized => "Active/Non-optimized",
        AccessState::Standby => "Standby",
        AccessState::Unavailable => "Unavailable",
        AccessState::Offline => "Offline",
        AccessState::Transitioning => "Transitioning",
        _ => "reserved",
    }
}

/// The status as lines for a terminal.
pub fn render(st: &Status) -> String {
    let mut o = String::new();
    let members: Vec<&str> = st.members.iter().map(String::as_str).collect();
    let _ = writeln!(o, "live gateways: {}", members.join(" "));
    for (serial, lu) in &st.lus {
        let _ = writeln!(o, "LU {serial}");
        match &lu.pr {
            Some(c) => {
                let s = &c.state;
                let holder = s.reservation.as_ref().map_or("none".to_string(), |r| {
                    let key = s.registrations.get(r.holder).map_or(0, |h| h.key);
                    format!("key {key:#x}, type {}", r.kind)
                });
                let _ = writeln!(
                    o,
                    "  persistent reservations: revision {}, PRgeneration {}, APTPL {}, {} registrations, reservation {holder}",
                    lu.pr_revision,
                    s.generation,
                    u8::from(s.aptpl),
                    s.registrations.len()
                );
                for r in &s.registrations {
                    let _ = writeln!(
                        o,
                        "    key {:#x} {} through {},t,{:#x} (rtpi {})",
                        r.key, r.initiator, r.target, r.tpgt, r.rtpi
                    );
                }
                if let Some(h) = &c.spc2 {
                    let _ = writeln!(
                        o,
                        "  SPC-2 reservation: {} through {},t,{:#x}",
                        h.initiator, h.target, h.tpgt
                    );
                }
            }
            None => {
                let _ = writeln!(o, "  persistent reservations: none yet");
            }
        }
        for (n, gw) in &lu.gateways {
            let ports: Vec<String> = gw
                .ports
                .iter()
                .map(|p| {
                    format!(
                        "rtpi {} {},t,{:#x} group {}",
                        p.rtpi, p.target, p.tpgt, p.group
                    )
                })
                .collect();
            let acked = gw
                .acked
                .map_or(String::new(), |a| format!(", acknowledged revision {a}"));
            let live = if gw.live { "live" } else { "gone" };
            let _ = writeln!(o, "  gateway {n} ({live}{acked}): {}", ports.join("; "));
        }
        for (id, code) in &lu.groups {
            let _ = writeln!(o, "  group {id}: {} ({code})", state_name(*code));
        }
    }
    for (n, c) in &st.config {
        let objects = c.fragment.as_ref().map_or(0, |f| {
            let n = |k: &str| f.get(k).and_then(|v| v.as_array()).map_or(0, Vec::len);
            n("storage_objects") + n("targets")
        });
        let status = c.status.as_deref().unwrap_or("not applied yet");
        let _ = writeln!(o, "configuration of {n}: {objects} object(s); {status}");
    }
    o
}

/// Gateway `node`'s part of the cluster configuration, as `config.json` text.
pub async fn config_show(endpoints: &[String], node: &str) -> Result<String, String> {
    let conn = connect(endpoints).await?;
    let mut c = conn.client();
    let r = c
        .get(keys::config(node), None)
        .await
        .map_err(|e| e.to_string())?;
    let Some(kv) = r.kvs().first() else {
        return Err(format!("gateway {node}: no cluster configuration"));
    };
    let v: serde_json::Value = serde_json::from_slice(kv.value()).map_err(|e| e.to_string())?;
    serde_json::to_string_pretty(&v).map_err(|e| e.to_string())
}

/// Make `text` (a `config.json` fragment: the gateway's clustered storage objects, their
/// groups and the TPGs that export them) gateway `node`'s part of the cluster configuration;
/// the gateway applies it and reports in `status`. Err: one line, nothing changed.
pub async fn config_set(endpoints: &[String], node: &str, text: &str) -> Result<(), String> {
    let cfg: ironlun_control::model::Config =
        serde_json::from_str(text).map_err(|e| format!("not a config.json fragment: {e}"))?;
    if cfg.storage_objects.is_empty() && cfg.targets.is_empty() {
        return Err("the fragment has no storage_objects and no targets".into());
    }
    let conn = connect(endpoints).await?;
    let mut c = conn.client();
    let v = serde_json::to_string(&cfg).map_err(|e| e.to_string())?;
    c.put(keys::config(node), v, None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// ao, ano, s, u, o (or the code 0, 1, 2, 3, 14) → the state code. Err: one line.
pub fn parse_state(v: &str) -> Result<u8, String> {
    Ok(match v.to_ascii_lowercase().as_str() {
        "ao" | "0" => 0,
        "ano" | "1" => 1,
        "s" | "2" => 2,
        "u" | "3" => 3,
        "o" | "14" => 14,
        _ => {
            return Err(format!(
                "state: invalid value {v:?}; valid: ao, ano, s, u, o (or 0, 1, 2, 3, 14)"
            ))
        }
    })
}

/// Set group `id` of LU `serial` to `state` on every gateway. Err: one line (nothing changed).
pub async fn set_group(
    endpoints: &[String],
    serial: &str,
    id: u16,
    state: &str,
) -> Result<(), String> {
    let code = parse_state(state)?;
    let st = status(endpoints).await?;
    let Some(lu) = st.lus.get(serial) else {
        let known: Vec<&str> = st.lus.keys().map(String::as_str).collect();
        return Err(format!(
            "LU {serial}: not in the cluster; clustered LUs: {}",
            known.join(", ")
        ));
    };
    let has = lu
        .gateways
        .values()
        .any(|g| g.ports.iter().any(|p| p.group == id));
    if !has && !lu.groups.contains_key(&id) {
        return Err(format!(
            "group {id}: no gateway of LU {serial} has ports in it"
        ));
    }
    let conn = connect(endpoints).await?;
    let mut c = conn.client();
    c.put(keys::group(serial, id), code.to_string(), None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Forget gateway `node` (taken out of service): its port records of every LU. Refused while
/// it is live. Its groups stay as they are (Unavailable).
pub async fn forget(endpoints: &[String], node: &str) -> Result<usize, String> {
    let st = status(endpoints).await?;
    if st.members.contains(node) {
        return Err(format!("gateway {node} is live; stop it first"));
    }
    let conn = connect(endpoints).await?;
    let mut c = conn.client();
    let mut n = 0;
    for (serial, lu) in &st.lus {
        if lu.gateways.contains_key(node) {
            c.delete(keys::port(serial, node), None::<DeleteOptions>)
                .await
                .map_err(|e| e.to_string())?;
            n += 1;
        }
    }
    if n == 0 {
        return Err(format!("gateway {node}: the cluster has no record of it"));
    }
    Ok(n)
}
