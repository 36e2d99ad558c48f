//! Target ports and the fabric: what the engine is told about each TPG (LUNs, ACLs with mapped
//! LUNs, demo mode, enable; SAM-5 §4.6 LUN access), bringing a port there one engine call at a
//! time, and the iSCSI fabric's config (portals, CHAP RFC 7143 §12.1.3, parameters, NOP-In).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ironlun_engine::{MappedLun, TargetPort};
use ironlun_fabric::{AuthConfig, FabricConfig, NopIn, TargetConfig, TpgConfig};

use super::{DevEntry, PortEntry, PortState};
use crate::model::{Chap, Config, DevKey, NodeAcl, Tpg};

/// The engine-side state a TPG asks for.
pub(super) fn desired_state(
    tpg: &Tpg,
    devices: &BTreeMap<DevKey, DevEntry>,
) -> Result<PortState, String> {
    let mut luns = BTreeMap::new();
    for l in &tpg.luns {
        let key = DevKey::parse(&l.storage_object)?;
        let dev = devices
            .get(&key)
            .ok_or_else(|| format!("{key}: no such device"))?;
        luns.insert(l.index, dev.device.clone());
    }
    let prod_wp = tpg.attributes.prod_mode_write_protect == 1;
    let acls = tpg
        .node_acls
        .iter()
        .map(|a| (a.node_wwn.clone(), mapped_of(a, prod_wp)))
        .collect();
    Ok(PortState {
        luns,
        acls,
        demo: (
            tpg.attributes.generate_node_acls == 1,
            tpg.attributes.demo_mode_write_protect == 1,
        ),
        enabled: tpg.enable,
    })
}

/// What the engine is told of an ACL's mapped LUNs (`prod_wp`: the TPG's
/// prod_mode_write_protect, which write-protects them all).
pub(super) fn mapped_of(a: &NodeAcl, prod_wp: bool) -> Vec<MappedLun> {
    a.mapped_luns
        .iter()
        .map(|m| MappedLun {
            mapped_lun: m.index,
            tpg_lun: m.tpg_lun,
            write_protect: m.write_protect || prod_wp,
        })
        .collect()
}

/// Bring `port` from `cur` to `want`, updating `cur` after each engine call that succeeded
/// (so that a failure can be undone from the true state).
pub(super) fn sync_port(
    port: &TargetPort,
    cur: &mut PortState,
    want: &PortState,
) -> Result<(), String> {
    // Disable first and enable last, so nobody logs in to a half-built port.
    if cur.enabled && !want.enabled {
        port.set_enabled(false);
        cur.enabled = false;
    }
    let gone_acls: Vec<String> = cur
        .acls
        .keys()
        .filter(|k| !want.acls.contains_key(*k))
        .cloned()
        .collect();
    for name in gone_acls {
        port.remove_acl(&name);
        cur.acls.remove(&name);
    }
    let stale: Vec<u64> = cur
        .luns
        .iter()
        .filter(|(l, d)| want.luns.get(l).is_none_or(|w| !Arc::ptr_eq(w, d)))
        .map(|(l, _)| *l)
        .collect();
    for l in stale {
        port.remove_lun(l)
            .map_err(|e| format!("removing LUN {l}: {e}"))?;
        cur.luns.remove(&l);
    }
    for (l, d) in &want.luns {
        if !cur.luns.contains_key(l) {
            port.add_lun(*l, d.clone())
                .map_err(|e| format!("adding LUN {l}: {e}"))?;
            cur.luns.insert(*l, d.clone());
        }
    }
    for (name, mapped) in &want.acls {
        if cur.acls.get(name) != Some(mapped) {
            port.set_acl(name, mapped.clone());
            cur.acls.insert(name.clone(), mapped.clone());
        }
    }
    if cur.demo != want.demo {
        port.set_demo_mode(want.demo.0, want.demo.1);
        cur.demo = want.demo;
    }
    if !cur.enabled && want.enabled {
        port.set_enabled(true);
        cur.enabled = true;
    }
    Ok(())
}

pub(super) fn auth(chap: &Chap) -> AuthConfig {
    AuthConfig {
        userid: chap.chap_userid.clone(),
        password: chap.chap_password.clone(),
        mutual_userid: chap.chap_mutual_userid.clone(),
        mutual_password: chap.chap_mutual_password.clone(),
    }
}

pub(super) fn fabric_config(
    cfg: &Config,
    ports: &BTreeMap<(String, u16), PortEntry>,
) -> FabricConfig {
    let targets = cfg
        .targets
        .iter()
        .map(|t| TargetConfig {
            name: t.wwn.clone(),
            tpgs: t
                .tpgs
                .iter()
                .filter_map(|g| {
                    let port = ports.get(&(t.wwn.clone(), g.tag))?.port.clone();
                    Some(TpgConfig {
                        tpgt: g.tag,
                        enabled: g.enable,
                        portals: g.portals.iter().map(|p| p.addr()).collect(),
                        port,
                        authentication: g.attributes.authentication == 1,
                        auth: auth(&g.chap),
                        acl_auth: g
                            .node_acls
                            .iter()
                            .map(|a| (a.node_wwn.clone(), auth(&a.chap)))
                            .collect(),
                        params: g.parameters.clone(),
                        nopin: Some(match g.attributes.nopin_timeout {
                            0 => NopIn::Off,
                            t => NopIn::Every {
                                interval: Duration::from_secs(u64::from(t)),
                                response: Duration::from_secs(u64::from(
                                    g.attributes.nopin_response_timeout,
                                )),
                            },
                        }),
                    })
                })
                .collect(),
        })
        .collect();
    let da = &cfg.discovery_auth;
    FabricConfig {
        targets,
        discovery_auth: da.enforce_discovery_auth.then(|| auth(&da.chap)),
    }
}
