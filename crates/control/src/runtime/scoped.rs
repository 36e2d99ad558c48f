//! Applying a change that touched a few objects ([`Touched`]): only those devices, and per TPG
//! only those LUNs, ACLs or settings, are brought to the config, one engine call each, every
//! call undone if a later step fails; the fabric is told only when its view changed. The
//! cost does not grow with the objects that were not touched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ironlun_engine::{Device, MappedLun};

use super::alua::sync_lun_alua;
use super::device::retire_device;
use super::port::{fabric_config, mapped_of};
use super::{DevEntry, EngineRuntime};
use crate::model::{AluaTpg, Config, DevKey, Touched, TpgTouch};

/// What changed on one port, recorded into its [`super::PortState`] once everything worked.
enum PortChange {
    Lun(u64, Option<Arc<Device>>),
    Acl(String, Option<Vec<MappedLun>>),
    Demo((bool, bool)),
    Enabled(bool),
}

fn same_dev(a: Option<&Arc<Device>>, b: Option<&Arc<Device>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl EngineRuntime {
    /// Make the touched parts of the running system match `new`; all or nothing.
    pub(super) async fn apply_touched_inner(
        &mut self,
        new: &Config,
        touched: &Touched,
    ) -> Result<(), String> {
        if touched.whole {
            return self.apply_inner(new).await;
        }
        self.alua_undo.clear();
        let lu_gps = self.lu_gps.clone();
        let mut attr_undo = Vec::new();
        // 1. Devices: the new entries (None: deleted), not yet installed.
        let mut fresh: BTreeMap<DevKey, Option<DevEntry>> = BTreeMap::new();
        let mut drop_groups: Vec<(Arc<Device>, DevKey, Vec<AluaTpg>)> = Vec::new();
        let mut tpgs = touched.tpgs.clone();
        for key in &touched.devices {
            let Some(so) = new.device(key) else {
                fresh.insert(key.clone(), None);
                continue;
            };
            let (entry, gone) = match self.device_entry(so, &lu_gps, &mut attr_undo) {
                Ok(x) => x,
                Err(e) => {
                    self.undo(attr_undo, Vec::new());
                    return Err(e);
                }
            };
            let rebuilt =
                (self.devices.get(key)).is_some_and(|cur| !Arc::ptr_eq(&cur.device, &entry.device));
            if rebuilt {
                // Its LUNs export the new device object.
                let mut exports = Touched::default();
                exports.add_exports_of(new, key);
                for (id, t) in exports.tpgs {
                    tpgs.entry(id).or_default().luns.extend(t.luns);
                }
            }
            drop_groups.push((entry.device.clone(), key.clone(), gone));
            fresh.insert(key.clone(), Some(entry));
        }
        // 2. Ports: the touched LUNs, ACLs and settings.
        let mut changes = Vec::new();
        for ((t, tag), what) in &tpgs {
            match self.sync_touched_port(new, &fresh, t, *tag, what) {
                Ok(c) => changes.push(((t.clone(), *tag), c)),
                Err(e) => {
                    self.undo(attr_undo, Vec::new());
                    return Err(format!("iscsi/{t}/tpgt_{tag}: {e}"));
                }
            }
        }
        if let Err(e) = self.drop_alua_groups(drop_groups) {
            self.undo(attr_undo, Vec::new());
            return Err(e);
        }
        // 3. The fabric, if its view changed (portals, CHAP, parameters, ACLs, enable).
        if touched.fabric {
            if let Err(e) = self.fabric.apply(fabric_config(new, &self.ports)).await {
                self.undo(attr_undo, Vec::new());
                return Err(e);
            }
        }
        // 4. Commit.
        for (id, list) in changes {
            let Some(p) = self.ports.get_mut(&id) else {
                continue;
            };
            for c in list {
                match c {
                    PortChange::Lun(l, Some(d)) => drop(p.state.luns.insert(l, d)),
                    PortChange::Lun(l, None) => drop(p.state.luns.remove(&l)),
                    PortChange::Acl(n, Some(m)) => drop(p.state.acls.insert(n, m)),
                    PortChange::Acl(n, None) => drop(p.state.acls.remove(&n)),
                    PortChange::Demo(d) => p.state.demo = d,
                    PortChange::Enabled(e) => p.state.enabled = e,
                }
            }
        }
        for (key, entry) in fresh {
            let old = match entry {
                Some(e) => {
                    self.live.set_device(&key, Some(e.device.clone()));
                    self.devices.insert(key.clone(), e)
                }
                None => {
                    self.live.set_device(&key, None);
                    self.devices.remove(&key)
                }
            };
            let now = self.devices.get(&key);
            if let Some(old) =
                old.filter(|o| !now.is_some_and(|d| Arc::ptr_eq(&d.device, &o.device)))
            {
                let lives_on = self.devices.values().any(|d| d.so.wwn == old.so.wwn);
                retire_device(&key, &old, now, lives_on);
            }
        }
        self.alua_undo.clear();
        Ok(())
    }

    /// Bring the touched parts of port `t`/`tag` to `new`, in the order of a whole sync
    /// (disable, ACLs removed, LUNs removed, LUNs added, ACLs set, demo mode, enable), each
    /// engine call with its undo in `alua_undo`. Returns what changed.
    fn sync_touched_port(
        &mut self,
        new: &Config,
        fresh: &BTreeMap<DevKey, Option<DevEntry>>,
        t: &str,
        tag: u16,
        what: &TpgTouch,
    ) -> Result<Vec<PortChange>, String> {
        let g = (new.target(t).and_then(|x| x.tpg(tag)))
            .ok_or_else(|| "not in the config".to_string())?;
        let pe = (self.ports.get(&(t.to_string(), tag)))
            .ok_or_else(|| "no such target port".to_string())?;
        let port = pe.port.clone();
        let undo = &mut self.alua_undo;
        let mut out = Vec::new();
        let device = |key: &DevKey| match fresh.get(key) {
            Some(e) => e.as_ref().map(|e| e.device.clone()),
            None => self.devices.get(key).map(|e| e.device.clone()),
        };
        // Wanted and current LUNs and ACLs.
        let mut lun_ids: BTreeSet<u64> = what.luns.clone();
        let mut acl_ids: BTreeSet<String> = what.acls.clone();
        if what.all {
            lun_ids.extend(
                g.luns
                    .iter()
                    .map(|l| l.index)
                    .chain(pe.state.luns.keys().copied()),
            );
            acl_ids.extend(g.node_acls.iter().map(|a| a.node_wwn.clone()));
            acl_ids.extend(pe.state.acls.keys().cloned());
        }
        let mut luns = Vec::new();
        for l in lun_ids {
            let want = match g.lun(l) {
                None => None,
                Some(x) => {
                    let key = DevKey::parse(&x.storage_object)?;
                    Some(device(&key).ok_or_else(|| format!("{key}: no such device"))?)
                }
            };
            luns.push((l, pe.state.luns.get(&l).cloned(), want));
        }
        let prod_wp = g.attributes.prod_mode_write_protect == 1;
        type Mapped = Option<Vec<MappedLun>>;
        let acls: Vec<(String, Mapped, Mapped)> = acl_ids
            .into_iter()
            .map(|n| {
                let cur = pe.state.acls.get(&n).cloned();
                let want = g.acl(&n).map(|a| mapped_of(a, prod_wp));
                (n, cur, want)
            })
            .collect();
        let settings = what.settings || what.all;
        let demo = (
            g.attributes.generate_node_acls == 1,
            g.attributes.demo_mode_write_protect == 1,
        );
        let (was_enabled, was_demo) = (pe.state.enabled, pe.state.demo);

        if settings && was_enabled && !g.enable {
            port.set_enabled(false);
            let p = port.clone();
            undo.push(Box::new(move || p.set_enabled(true)));
            out.push(PortChange::Enabled(false));
        }
        for (n, cur, want) in &acls {
            if let (Some(cur), None) = (cur, want) {
                port.remove_acl(n);
                let (p, back, m) = (port.clone(), n.clone(), cur.clone());
                undo.push(Box::new(move || p.set_acl(&back, m)));
                out.push(PortChange::Acl(n.clone(), None));
            }
        }
        for (l, cur, want) in &luns {
            if let Some(d) = cur
                .as_ref()
                .filter(|_| !same_dev(cur.as_ref(), want.as_ref()))
            {
                port.remove_lun(*l)
                    .map_err(|e| format!("removing LUN {l}: {e}"))?;
                let (p, l, d) = (port.clone(), *l, d.clone());
                undo.push(Box::new(move || {
                    if let Err(e) = p.add_lun(l, d) {
                        tracing::error!("rollback of LUN {l}: {e}");
                    }
                }));
                out.push(PortChange::Lun(l, None));
            }
        }
        for (l, cur, want) in &luns {
            let fresh_lun = !same_dev(cur.as_ref(), want.as_ref());
            if let Some(d) = want.as_ref().filter(|_| fresh_lun) {
                port.add_lun(*l, d.clone())
                    .map_err(|e| format!("adding LUN {l}: {e}"))?;
                let (p, l) = (port.clone(), *l);
                undo.push(Box::new(move || {
                    if let Err(e) = p.remove_lun(l) {
                        tracing::error!("rollback of LUN {l}: {e}");
                    }
                }));
                out.push(PortChange::Lun(l, Some(d.clone())));
            }
            if let Some(x) = g.lun(*l) {
                sync_lun_alua(&port, x, fresh_lun, undo)?;
            }
        }
        for (n, cur, want) in acls {
            if let Some(m) = want.filter(|m| cur.as_ref() != Some(m)) {
                port.set_acl(&n, m.clone());
                let p = port.clone();
                let back = n.clone();
                undo.push(Box::new(move || match cur {
                    Some(c) => p.set_acl(&back, c),
                    None => p.remove_acl(&back),
                }));
                out.push(PortChange::Acl(n, Some(m)));
            }
        }
        if settings && was_demo != demo {
            port.set_demo_mode(demo.0, demo.1);
            let p = port.clone();
            undo.push(Box::new(move || p.set_demo_mode(was_demo.0, was_demo.1)));
            out.push(PortChange::Demo(demo));
        }
        if settings && !was_enabled && g.enable {
            port.set_enabled(true);
            let p = port.clone();
            undo.push(Box::new(move || p.set_enabled(false)));
            out.push(PortChange::Enabled(true));
        }
        Ok(out)
    }
}
