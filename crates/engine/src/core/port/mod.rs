//! SPC-4 target ports (§4.3.4; for iSCSI a target portal group: target IQN + TPGT), their LUN
//! tables and ACLs (LIO `lun/` and `acls/`), and the per-nexus LUN views built from them.
//!
//! Each open I_T nexus holds an immutable [`View`] (LUN → [`LunSlot`]) behind an `ArcSwap`, so
//! the command path resolves a LUN without locking. Configuration changes rebuild the views
//! of the port's nexuses and raise REPORTED LUNS DATA HAS CHANGED (SPC-4 §6.33) where a
//! nexus' LUN inventory changed.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use ironlun_scsi::sense::asc;
use parking_lot::Mutex;

use crate::core::device::alua::PortLun;
use crate::core::device::slot::LunSlot;
use crate::core::device::{Device, Export};
use crate::core::ua::UaQueue;
use crate::{InitiatorPortId, LoginDenied};

pub(crate) mod nexus;

use nexus::{Nexus, View};

pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One entry of an ACL: initiator-visible LUN `mapped_lun` → the port's LUN `tpg_lun`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedLun {
    pub mapped_lun: u64,
    pub tpg_lun: u64,
    pub write_protect: bool,
}

#[derive(Default)]
struct PortConfig {
    luns: BTreeMap<u64, Arc<Device>>,
    /// ALUA membership of each port LUN (same keys as `luns`).
    alua: BTreeMap<u64, Arc<PortLun>>,
    acls: BTreeMap<String, Vec<MappedLun>>,
    demo: bool,
    demo_write_protect: bool,
}

impl PortConfig {
    /// (initiator LUN, device, write_protect, port LUN ALUA) for an initiator node name;
    /// None = no access.
    fn mapping(&self, initiator: &str) -> Option<Vec<Mapped>> {
        let entry = |tpg_lun: u64, lun: u64, wp: bool| {
            let d = self.luns.get(&tpg_lun)?;
            let a = self.alua.get(&tpg_lun)?;
            Some((lun, d.clone(), wp, a.clone()))
        };
        if let Some(acl) = self.acls.get(initiator) {
            // An explicit ACL wins over demo mode, as in LIO.
            return Some(
                acl.iter()
                    .filter_map(|m| entry(m.tpg_lun, m.mapped_lun, m.write_protect))
                    .collect(),
            );
        }
        self.demo.then(|| {
            self.luns
                .keys()
                .filter_map(|l| entry(*l, *l, self.demo_write_protect))
                .collect()
        })
    }
}

type Mapped = (u64, Arc<Device>, bool, Arc<PortLun>);

/// An SPC-4 target port.
pub struct TargetPort {
    pub(crate) id: u64,
    name: String,
    tpgt: u16,
    rtpi: u16,
    enabled: AtomicBool,
    cfg: Mutex<PortConfig>,
    nexuses: Mutex<Vec<Weak<Nexus>>>,
}

impl TargetPort {
    /// `target_name` is the iSCSI target IQN, `tpgt` the portal group tag, `rtpi` the relative
    /// target port identifier (unique per LU's ports). A new port is enabled, has no LUNs, no
    /// ACLs and demo mode off.
    pub fn new(target_name: &str, tpgt: u16, rtpi: u16) -> Arc<TargetPort> {
        Arc::new(TargetPort {
            id: next_id(),
            name: target_name.to_string(),
            tpgt,
            rtpi,
            enabled: AtomicBool::new(true),
            cfg: Mutex::new(PortConfig::default()),
            nexuses: Mutex::new(Vec::new()),
        })
    }

    /// Open an I_T nexus for this initiator port (checks the ACLs / demo mode). Every LU of
    /// the new nexus starts with UA 29/00 POWER ON, RESET, OR BUS DEVICE RESET OCCURRED.
    pub fn open_nexus(
        self: &Arc<Self>,
        initiator: InitiatorPortId,
    ) -> Result<Arc<Nexus>, LoginDenied> {
        if !self.enabled.load(Ordering::Acquire) {
            return Err(LoginDenied::Disabled);
        }
        let cfg = self.cfg.lock();
        let Some(mapping) = cfg.mapping(&initiator.name) else {
            return Err(LoginDenied::NotAuthorized(initiator.name));
        };
        let nexus = Arc::new(Nexus::new(initiator, self.clone()));
        let view = build_view(mapping, None, &nexus, true);
        nexus.view.store(Arc::new(view));
        let mut list = self.nexuses.lock();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&nexus));
        drop(list);
        drop(cfg);
        Ok(nexus)
    }

    pub fn target_name(&self) -> &str {
        &self.name
    }

    pub fn tpgt(&self) -> u16 {
        self.tpgt
    }

    pub fn rtpi(&self) -> u16 {
        self.rtpi
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// The SPC-4 iSCSI target port name `<iqn>,t,0x<tpgt>` (VPD 83h SCSI name string).
    pub fn port_name(&self) -> String {
        format!("{},t,0x{:04x}", self.name, self.tpgt)
    }

    /// Export `dev` as LUN `lun`. REPORTED LUNS DATA HAS CHANGED (3F/0E) to this port's nexuses.
    pub fn add_lun(&self, lun: u64, dev: Arc<Device>) -> Result<(), String> {
        if lun > ironlun_scsi::lun::MAX_LUN {
            return Err(format!(
                "lun_{lun}: LUN out of range; valid: 0..={}",
                ironlun_scsi::lun::MAX_LUN
            ));
        }
        let mut cfg = self.cfg.lock();
        if cfg.luns.contains_key(&lun) {
            return Err(format!("lun_{lun}: already exists on this target port"));
        }
        let alua = Arc::new(PortLun::new(dev.alua.default_group()));
        dev.add_export(Export {
            port: self.id,
            rtpi: self.rtpi,
            lun,
            target: self.name.clone(),
            tpgt: self.tpgt,
            alua: alua.clone(),
        });
        cfg.luns.insert(lun, dev);
        cfg.alua.insert(lun, alua);
        self.refresh(&cfg);
        Ok(())
    }

    pub fn remove_lun(&self, lun: u64) -> Result<(), String> {
        let mut cfg = self.cfg.lock();
        let Some(dev) = cfg.luns.remove(&lun) else {
            return Err(format!("lun_{lun}: no such LUN on this target port"));
        };
        cfg.alua.remove(&lun);
        dev.remove_export(self.id, lun);
        self.refresh(&cfg);
        Ok(())
    }

    /// The target port group of this port's LUN `lun`.
    pub fn lun_alua_group(&self, lun: u64) -> Option<String> {
        let (_, pl) = self.port_lun(lun).ok()?;
        let name = pl.group.load().name.clone();
        Some(name)
    }

    pub fn lun_alua_offline(&self, lun: u64) -> Option<bool> {
        let (_, pl) = self.port_lun(lun).ok()?;
        Some(pl.offline.load(Ordering::Acquire))
    }

    /// `lun/lun_<n>/alua_tg_pt_status`: 0 none, 1 set by STPG, 2 set by the administrator.
    pub fn lun_alua_offline_status(&self, lun: u64) -> Option<u8> {
        let (_, pl) = self.port_lun(lun).ok()?;
        Some(pl.offline_status.load(Ordering::Relaxed))
    }

    /// Start-up restore of the secondary Offline state: no UA.
    pub fn restore_lun_alua_offline(
        &self,
        lun: u64,
        offline: bool,
        status: u8,
    ) -> Result<(), String> {
        let (_, pl) = self.port_lun(lun)?;
        pl.offline.store(offline, Ordering::Release);
        pl.offline_status.store(status.min(2), Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn port_lun(&self, lun: u64) -> Result<(Arc<Device>, Arc<PortLun>), String> {
        let cfg = self.cfg.lock();
        match (cfg.luns.get(&lun), cfg.alua.get(&lun)) {
            (Some(d), Some(a)) => Ok((d.clone(), a.clone())),
            _ => Err(format!("lun_{lun}: no such LUN on this target port")),
        }
    }

    /// The port's LUN table.
    pub fn luns(&self) -> Vec<(u64, Arc<Device>)> {
        self.cfg
            .lock()
            .luns
            .iter()
            .map(|(l, d)| (*l, d.clone()))
            .collect()
    }

    /// Create or replace the ACL of `initiator_name` (an initiator node name, no ISID).
    pub fn set_acl(&self, initiator_name: &str, mapped: Vec<MappedLun>) {
        let mut cfg = self.cfg.lock();
        cfg.acls.insert(initiator_name.to_string(), mapped);
        self.refresh(&cfg);
    }

    pub fn remove_acl(&self, initiator_name: &str) {
        let mut cfg = self.cfg.lock();
        if cfg.acls.remove(initiator_name).is_some() {
            self.refresh(&cfg);
        }
    }

    /// The ACLs: initiator node name → mapped LUNs.
    pub fn acls(&self) -> Vec<(String, Vec<MappedLun>)> {
        self.cfg
            .lock()
            .acls
            .iter()
            .map(|(n, m)| (n.clone(), m.clone()))
            .collect()
    }

    /// Demo mode (LIO `generate_node_acls=1`): any initiator may log in and sees every LUN
    /// (read-write unless `demo_write_protect`).
    pub fn set_demo_mode(&self, on: bool, write_protect: bool) {
        let mut cfg = self.cfg.lock();
        cfg.demo = on;
        cfg.demo_write_protect = write_protect;
        self.refresh(&cfg);
    }

    /// (demo mode on, demo write protect).
    pub fn demo_mode(&self) -> (bool, bool) {
        let cfg = self.cfg.lock();
        (cfg.demo, cfg.demo_write_protect)
    }

    /// Disabled ports refuse new nexuses; open ones are left to the fabric to end.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Release);
    }

    /// Open I_T nexuses through this port.
    pub fn sessions(&self) -> Vec<Arc<Nexus>> {
        self.nexuses
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Does this initiator still have access (ACL or demo mode)? A fabric may end the
    /// sessions of initiators that lost access.
    pub fn allows(&self, initiator_name: &str) -> bool {
        self.cfg.lock().mapping(initiator_name).is_some()
    }

    pub(crate) fn forget_nexus(&self, id: u64) {
        self.nexuses
            .lock()
            .retain(|w| w.upgrade().is_some_and(|n| n.id != id));
    }

    /// Devices reachable through the port (target resets).
    pub(crate) fn devices(&self) -> Vec<Arc<Device>> {
        let mut v: Vec<Arc<Device>> = Vec::new();
        for d in self.cfg.lock().luns.values() {
            if !v.iter().any(|x| Arc::ptr_eq(x, d)) {
                v.push(d.clone());
            }
        }
        v
    }

    /// Rebuild every nexus' view after a configuration change (caller holds the cfg lock).
    fn refresh(&self, cfg: &PortConfig) {
        for n in self.sessions() {
            let old = n.view.load_full();
            let mapping = cfg.mapping(&n.initiator().name).unwrap_or_default();
            let view = build_view(mapping, Some(&old), &n, false);
            let changed = inventory(&old) != inventory(&view);
            if changed {
                for s in view.luns.values() {
                    s.ua.raise(asc::REPORTED_LUNS_DATA_HAS_CHANGED);
                }
            }
            n.view.store(Arc::new(view));
        }
    }
}

impl Drop for TargetPort {
    fn drop(&mut self) {
        for (lun, dev) in &self.cfg.get_mut().luns {
            dev.remove_export(self.id, *lun);
        }
    }
}

fn inventory(v: &View) -> Vec<(u64, u64)> {
    let mut x: Vec<(u64, u64)> = v.luns.iter().map(|(l, s)| (*l, s.device.id)).collect();
    x.sort_unstable();
    x
}

fn build_view(mapping: Vec<Mapped>, old: Option<&View>, nexus: &Nexus, fresh: bool) -> View {
    let mut luns = HashMap::new();
    for (lun, dev, wp, alua) in mapping {
        let reuse = old
            .and_then(|o| o.luns.get(&lun))
            .filter(|s| Arc::ptr_eq(&s.device, &dev) && Arc::ptr_eq(&s.alua, &alua))
            .cloned();
        let slot = match reuse {
            Some(s) => {
                s.write_protect.store(wp, Ordering::Relaxed);
                s
            }
            None => {
                let initial: &[_] = if fresh {
                    &[asc::POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED]
                } else {
                    &[]
                };
                let s = Arc::new(LunSlot {
                    id: next_id(),
                    nexus: nexus.id,
                    ident: nexus.ident.clone(),
                    device: dev.clone(),
                    alua,
                    write_protect: AtomicBool::new(wp),
                    ua: UaQueue::with(initial),
                });
                dev.register_slot(&s);
                s
            }
        };
        luns.insert(lun, slot);
    }
    View { luns }
}
