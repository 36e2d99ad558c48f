//! `ironlun sessions [--detail]` (targetcli's `sessions` / `sessions detail`) and
//! `ironlun status` (one screen: portals, targets, LUs with size and usage, sessions, PR and
//! ALUA in brief). Both render the running tree ([`Config`]), live values ([`Inspect`]) and
//! the fabric's session snapshot ([`SessionInfo`]); nothing here changes anything.

use std::fmt::Write as _;

use ironlun_engine::scsi::alua::AccessState;
use ironlun_fabric::SessionInfo;

use crate::model::{Config, DevKey, Tpg};
use crate::pr;
use crate::tree::Inspect;

/// The LUNs a session sees, as `(its LUN, device path, read-only)`: its ACL's mapped LUNs,
/// or every TPG LUN in demo mode (`generate_node_acls`).
fn mapped(cfg: &Config, s: &SessionInfo) -> Vec<(u64, String, bool)> {
    let Some(tpg) = tpg_of(cfg, s) else {
        return Vec::new();
    };
    let dev = |tpg_lun: u64| {
        tpg.luns
            .iter()
            .find(|l| l.index == tpg_lun)
            .map(|l| l.storage_object.clone())
    };
    match tpg.node_acls.iter().find(|a| a.node_wwn == s.initiator) {
        Some(acl) => acl
            .mapped_luns
            .iter()
            .filter_map(|m| dev(m.tpg_lun).map(|d| (m.index, d, m.write_protect)))
            .collect(),
        None if tpg.attributes.generate_node_acls != 0 => tpg
            .luns
            .iter()
            .map(|l| {
                let ro = tpg.attributes.demo_mode_write_protect != 0;
                (l.index, l.storage_object.clone(), ro)
            })
            .collect(),
        None => Vec::new(),
    }
}

fn tpg_of<'a>(cfg: &'a Config, s: &SessionInfo) -> Option<&'a Tpg> {
    let target = s.target.as_deref()?;
    cfg.targets
        .iter()
        .find(|t| t.wwn == target)?
        .tpgs
        .iter()
        .find(|g| g.tag == s.tpgt)
}

/// `ironlun sessions`: one block per session, as targetcli prints them; `detail` adds the
/// negotiated keys and each connection's digests and login time.
pub fn sessions(cfg: &Config, list: &[SessionInfo], detail: bool) -> String {
    if list.is_empty() {
        return "(no open sessions)".into();
    }
    let mut out = String::new();
    for s in list {
        let kind = if s.target.is_some() {
            "Normal"
        } else {
            "Discovery"
        };
        let _ = writeln!(out, "sid: {} type: {kind} session-state: LOGGED_IN", s.tsih);
        let auth = if s.authenticated() {
            "AUTHENTICATED"
        } else {
            "NOT AUTHENTICATED"
        };
        let _ = writeln!(out, "  name: {} ({auth})", s.initiator);
        let _ = writeln!(out, "  isid: 0x{}", s.isid_hex());
        if let Some(t) = &s.target {
            let _ = writeln!(out, "  target: {t} tpgt: {}", s.tpgt);
            let [r, w, o] = s.commands;
            let _ = writeln!(
                out,
                "  commands: {} (read {r}, write {w}, other {o})",
                r + w + o
            );
        }
        for (lun, dev, ro) in mapped(cfg, s) {
            let mode = if ro { "ro" } else { "rw" };
            let _ = writeln!(out, "    mapped-lun: {lun} backstore: {dev} mode: {mode}");
        }
        for c in &s.connections {
            let _ = writeln!(
                out,
                "    address: {} (TCP) portal: {} cid: {} connection-state: LOGGED_IN",
                c.peer.ip(),
                c.local,
                c.cid
            );
            if detail {
                let since = c
                    .since
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let digest = |on: bool| if on { "CRC32C" } else { "None" };
                let _ = writeln!(
                    out,
                    "      source port: {} chap: {} header digest: {} data digest: {} logged in: {since} (seconds since the epoch)",
                    c.peer.port(),
                    if c.chap { "yes" } else { "no" },
                    digest(c.digests.0),
                    digest(c.digests.1)
                );
            }
        }
        if detail {
            let _ = writeln!(out, "  negotiated:");
            for (k, v) in s.keys() {
                let _ = writeln!(out, "    {k}={v}");
            }
        }
    }
    out.trim_end().to_string()
}

/// Bytes as binary units (`512.0 MiB`), exact below 1 KiB.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// `ironlun status`: what is served, by whom, in one screen.
pub fn status(cfg: &Config, insp: &dyn Inspect, list: &[SessionInfo]) -> String {
    let mut out = String::new();
    let mut portals: Vec<String> = cfg
        .targets
        .iter()
        .flat_map(|t| t.tpgs.iter().filter(|g| g.enable))
        .flat_map(|g| g.portals.iter().map(|p| p.addr().to_string()))
        .collect();
    portals.sort();
    portals.dedup();
    let _ = writeln!(
        out,
        "portals: {}",
        if portals.is_empty() {
            "none".to_string()
        } else {
            portals.join(", ")
        }
    );
    let normal = list.iter().filter(|s| s.target.is_some()).count();
    let conns: usize = list.iter().map(|s| s.connections.len()).sum();
    let _ = writeln!(
        out,
        "sessions: {normal} normal, {} discovery; {conns} connection(s)",
        list.len() - normal
    );

    let _ = writeln!(out, "targets ({}):", cfg.targets.len());
    for t in &cfg.targets {
        for g in &t.tpgs {
            let sessions = list
                .iter()
                .filter(|s| s.target.as_deref() == Some(t.wwn.as_str()) && s.tpgt == g.tag)
                .count();
            let _ = writeln!(
                out,
                "  {}/tpgt_{} {}: {} LUN(s), {} ACL(s){}, {} portal(s), {sessions} session(s)",
                t.wwn,
                g.tag,
                if g.enable { "enabled" } else { "disabled" },
                g.luns.len(),
                g.node_acls.len(),
                if g.attributes.generate_node_acls != 0 {
                    " + demo mode"
                } else {
                    ""
                },
                g.portals.len(),
            );
        }
    }

    let _ = writeln!(out, "LUs ({}):", cfg.storage_objects.len());
    for so in &cfg.storage_objects {
        let key = so.key();
        let _ = writeln!(out, "  {}", lu_line(cfg, insp, &key, list));
        if let Some(line) = alua_line(insp, &key, so) {
            let _ = writeln!(out, "    alua: {line}");
        }
    }
    out.trim_end().to_string()
}

fn lu_line(cfg: &Config, insp: &dyn Inspect, key: &DevKey, list: &[SessionInfo]) -> String {
    let size = insp
        .device_size(key)
        .map(human)
        .unwrap_or_else(|| "not running".into());
    let usage = insp
        .device_allocated(key)
        .map(|a| format!(", {} allocated", human(a)))
        .unwrap_or_default();
    let path = key.to_string();
    let exports = cfg.luns_of(key).len();
    let users = list
        .iter()
        .filter(|s| mapped(cfg, s).iter().any(|(_, d, _)| *d == path))
        .count();
    let pr = match insp.device_pr(key) {
        Some(v) => {
            let st = &v.state;
            let res = match &st.reservation {
                Some(r) => {
                    let holder = st
                        .registrations
                        .get(r.holder)
                        .map(pr::initiator_port)
                        .unwrap_or_default();
                    format!(", reserved ({}) by {holder}", pr::type_name(r.kind))
                }
                None => String::new(),
            };
            format!(
                "PR: {} registration(s){res}{}",
                st.registrations.len(),
                if st.aptpl { ", APTPL" } else { "" }
            )
        }
        None => "PR: none".into(),
    };
    format!("{path}: {size}{usage}; {exports} export(s), {users} session(s); {pr}")
}

/// The device's target port groups and their access states, in brief (`None` without any
/// group but the default).
fn alua_line(insp: &dyn Inspect, key: &DevKey, so: &crate::model::StorageObject) -> Option<String> {
    if so.alua_tpgs.is_empty() {
        return None;
    }
    let groups: Vec<String> = so
        .alua_tpgs
        .iter()
        .map(|g| {
            let code = insp
                .alua_group_attribute(key, &g.name, "alua_access_state")
                .and_then(|v| v.parse::<u8>().ok())
                .unwrap_or(g.alua_access_state);
            let pref = if g.preferred != 0 { ", preferred" } else { "" };
            format!(
                "{} {}{pref}",
                g.name,
                AccessState::from_code(code).short_name()
            )
        })
        .collect();
    Some(groups.join("; "))
}

#[cfg(test)]
mod tests;
