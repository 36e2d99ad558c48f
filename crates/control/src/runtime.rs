//! Making the running system match a [`Config`]: backstores and engine devices
//! (ironlun-engine [`Device`]), engine target ports ([`TargetPort`]: LUNs, ACLs, demo mode,
//! enable) and the iSCSI fabric ([`Fabric::apply`]: portals, auth, parameters).
//!
//! [`Runtime::apply`] is all-or-nothing: new objects are built first and only published when
//! every step, including binding the portals, succeeded; changes already made to live objects
//! are undone when a later step fails. Live objects are kept when they did not change, so a
//! ramdisk keeps its data and sessions keep running across unrelated changes.
//!
//! Persistent reservations: every device built here gets its APTPL store
//! ([`crate::pr::AptplFile`]) and, if `<state-dir>/pr/aptpl_<serial>` exists, its saved state
//! is restored while the device is being built, i.e. before any of its LUNs is exported and
//! before [`Fabric::apply`] binds a portal. A file that cannot be read or restored fails the
//! build (at start: the daemon does not start).
//!
//! ALUA (SPC-4 §5.11): each device's target port groups, their attributes
//! and its LU group are made to match the config, and each TPG LUN's group and offline flag.
//! A group or LUN that is new to the engine gets its saved state, status, preferred bit and
//! offline flag restored without a transition (no unit attention, no delay); a change of a
//! live group's state is an implicit transition. Every device reports the changes the engine
//! makes by itself (SET TARGET PORT GROUPS, end of a transition) through an
//! [`AluaObserver`] that wakes the service ([`EngineRuntime::take_alua_events`]), which folds
//! them into the config ([`Runtime::alua_refresh`]) and saves it.
//!
//! * `device` — backstores and engine devices (identity, attributes, restored APTPL state).
//! * `port` — target ports (LUNs, ACLs, demo mode, enable) and the fabric's config.
//! * `alua` — target port groups, LU groups and each LUN's group and offline flag.
//! * Here: the [`Runtime`] trait, [`EngineRuntime`] and its all-or-nothing apply with undo.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironlun_backstore::Backstore;
use ironlun_engine::{AluaObserver, Device, LuGroup, MappedLun, PrState, TargetPort};
use ironlun_fabric::Fabric;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::lio::FabricParams;
use crate::live::LiveObjects;
use crate::model::alua::AluaTpg;
use crate::model::{Config, DevKey, ParamSchema, StorageObject, Touched};
use crate::pr::{self, AptplFile, PrView};
use crate::progress::{Progress, Unit};
use crate::tree::Inspect;

mod alua;
mod device;
mod port;
mod refresh;
mod scoped;

use alua::{restore_group, sync_device_alua, sync_port_alua};
use device::{attr_error, build_device, retire_device, spec};
use port::{desired_state, fabric_config, sync_port};
use refresh::refresh_lun_alua;

/// The effectful side of the control plane. Implemented by [`EngineRuntime`]; tests use fakes.
pub trait Runtime: Inspect + Send {
    /// Make the running system match `new`. On Err (one line) the running system is as before.
    fn apply(&mut self, new: &Config) -> impl Future<Output = Result<(), String>> + Send;
    /// Make the parts of the running system that `touched` names match `new` (the rest is
    /// as it was: a change of a few objects costs the same however many there are). On Err
    /// (one line) the running system is as before.
    fn apply_touched(
        &mut self,
        new: &Config,
        touched: &Touched,
    ) -> impl Future<Output = Result<(), String>> + Send {
        let _ = touched;
        self.apply(new)
    }
    /// [`Runtime::alua_refresh`] of the devices and TPG LUNs `touched` names, in place.
    fn alua_refresh_touched(&mut self, cfg: &mut Config, touched: &Touched) {
        let _ = touched;
        *cfg = self.alua_refresh(cfg);
    }
    /// Resize the backstore of the live device `key` to `size` bytes, or rescan its block
    /// device (`None`), and raise CAPACITY DATA HAS CHANGED if the capacity changed.
    /// Returns (old, new) capacity. On Err (one line) nothing changed.
    fn resize(&mut self, key: &DevKey, size: Option<u64>) -> Result<(u64, u64), String>;
    /// [`Runtime::resize`] to `size` with the added range's backing space allocated first
    /// (`control size=…,sparse=0`), progress to the sink of [`Runtime::set_progress`].
    fn resize_thick(
        &mut self,
        key: &DevKey,
        size: u64,
    ) -> impl Future<Output = Result<(u64, u64), String>> + Send;
    /// Create the fileio backing file `path` (or fill the holes of an existing one) with
    /// every block allocated (`create … sparse=0`), progress to the sink of
    /// [`Runtime::set_progress`]. Ok(true): created here, so the caller removes it if the
    /// creation fails after all. Err: one line, nothing left behind.
    fn preallocate_file(
        &mut self,
        path: &str,
        size: Option<u64>,
    ) -> impl Future<Output = Result<bool, String>> + Send;
    /// Where the request being handled reports progress (off between requests).
    fn set_progress(&mut self, progress: Progress) {
        let _ = progress;
    }
    /// Stop the fabric (drain sessions) and flush every backstore.
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send;
    /// The administrator's clear of the live device `key`'s persistent reservations: drop
    /// every registration and the reservation (persisted if APTPL is active). Returns the
    /// state that was dropped. Err: one line.
    fn pr_clear(&mut self, key: &DevKey) -> Result<PrState, String>;
    /// `cfg` with the ALUA state the engine changed by itself folded in: each group's state
    /// (kept as saved while a transition is under way), status and preferred bit, each TPG
    /// LUN's offline flag and its status. The runtime's own record follows, so the next
    /// [`Runtime::apply`] does not see these as changes.
    fn alua_refresh(&mut self, cfg: &Config) -> Config {
        cfg.clone()
    }
    /// The fabric's sessions now (`ironlun sessions`, `ironlun status`).
    fn sessions(&self) -> Vec<ironlun_fabric::SessionInfo> {
        Vec::new()
    }
}

/// An action that undoes one ALUA change already made to a live object.
type Undo = Box<dyn FnOnce() + Send>;

/// Wakes the service when a device's ALUA state changed by itself. Called on engine threads:
/// only queues the device name (the save happens on the service's task).
struct AluaEvents(UnboundedSender<String>);

impl AluaObserver for AluaEvents {
    fn alua_changed(&self, device_name: &str) {
        // A closed channel means the daemon is stopping; nothing left to save.
        let _ = self.0.send(device_name.to_string());
    }
}

struct DevEntry {
    so: StorageObject,
    backstore: Arc<dyn Backstore>,
    device: Arc<Device>,
    aptpl: AptplFile,
}

/// What the engine has been told about one target port.
#[derive(Clone, Default)]
struct PortState {
    luns: BTreeMap<u64, Arc<Device>>,
    acls: BTreeMap<String, Vec<MappedLun>>,
    demo: (bool, bool),
    enabled: bool,
}

struct PortEntry {
    port: Arc<TargetPort>,
    rtpi: u16,
    state: PortState,
}

/// The real runtime: ironlun-backstore + ironlun-engine + ironlun-fabric.
pub struct EngineRuntime {
    fabric: Arc<Fabric>,
    devices: BTreeMap<DevKey, DevEntry>,
    ports: BTreeMap<(String, u16), PortEntry>,
    /// `<state-dir>/pr`: the APTPL files.
    pr_dir: PathBuf,
    /// LU groups other than `default_lu_gp`, by name.
    lu_gps: BTreeMap<String, Arc<LuGroup>>,
    alua_tx: UnboundedSender<String>,
    alua_rx: Option<UnboundedReceiver<String>>,
    /// ALUA changes made by the apply under way, to undo if a later step fails.
    alua_undo: Vec<Undo>,
    /// What the metrics exporter reads (`crate::live`).
    live: Arc<LiveObjects>,
    /// The progress sink of the request being handled.
    progress: Progress,
}

impl EngineRuntime {
    /// A runtime keeping its APTPL files under `<state_dir>/pr`.
    pub fn new(fabric: Arc<Fabric>, state_dir: &Path) -> EngineRuntime {
        let (alua_tx, alua_rx) = tokio::sync::mpsc::unbounded_channel();
        EngineRuntime {
            lu_gps: BTreeMap::new(),
            alua_undo: Vec::new(),
            alua_tx,
            alua_rx: Some(alua_rx),
            live: Arc::new(LiveObjects::new(fabric.clone())),
            progress: Progress::default(),
            fabric,
            devices: BTreeMap::new(),
            ports: BTreeMap::new(),
            // Absolute, so that messages and `pr show` name the file unambiguously.
            pr_dir: std::path::absolute(state_dir)
                .unwrap_or_else(|_| state_dir.to_path_buf())
                .join(pr::PR_DIR),
        }
    }

    /// After a live resize of `key` from `old` to `new` bytes: tell initiators, and keep the
    /// entry's parameters equal to what the tree will record, so the next apply sees the same
    /// backing and keeps this backstore.
    fn resized(&mut self, key: &DevKey, old: u64, new: u64) -> (u64, u64) {
        if let Some(e) = self.devices.get_mut(key) {
            if new != old {
                e.device.capacity_changed();
                tracing::info!("{key}: capacity {old} -> {new} bytes");
            }
            e.so.record_size(new);
        }
        (old, new)
    }

    /// The names of devices whose ALUA state the engine changed by itself; hand it to
    /// the service's `watch_alua`. `None` after the first call.
    pub fn take_alua_events(&mut self) -> Option<UnboundedReceiver<String>> {
        self.alua_rx.take()
    }

    /// The live objects, republished after every apply, for the metrics exporter.
    pub fn live(&self) -> Arc<LiveObjects> {
        self.live.clone()
    }

    /// Addresses the fabric listens on.
    pub fn listening(&self) -> Vec<std::net::SocketAddr> {
        self.fabric.listening()
    }
}

impl ParamSchema for EngineRuntime {
    fn param_defaults(&self) -> Vec<(String, String)> {
        FabricParams.param_defaults()
    }
    fn validate_param(&self, key: &str, value: &str) -> Result<(), String> {
        FabricParams.validate_param(key, value)
    }
}

impl Inspect for EngineRuntime {
    fn device_attributes(&self, key: &DevKey) -> Vec<(String, String)> {
        let Some(e) = self.devices.get(key) else {
            return Vec::new();
        };
        e.device
            .attribute_names()
            .into_iter()
            .map(|n| (n.to_string(), e.device.attribute(n).unwrap_or_default()))
            .collect()
    }
    fn device_pr(&self, key: &DevKey) -> Option<PrView> {
        let e = self.devices.get(key)?;
        let attr = |n: &str| e.device.attribute(n).is_some_and(|v| v == "1");
        Some(PrView {
            state: e.device.pr_state(),
            emulate_pr: attr("emulate_pr"),
            force_aptpl: attr("force_pr_aptpl"),
            spc2_holder: e.device.info().spc2_holder,
            file: e.aptpl.path().to_path_buf(),
            file_present: e.aptpl.exists(),
        })
    }
    fn device_size(&self, key: &DevKey) -> Option<u64> {
        Some(self.devices.get(key)?.backstore.size())
    }
    fn device_allocated(&self, key: &DevKey) -> Option<u64> {
        self.devices.get(key)?.backstore.allocated()
    }
    fn alua_group_attribute(&self, key: &DevKey, group: &str, attr: &str) -> Option<String> {
        self.devices
            .get(key)?
            .device
            .alua_group_attribute(group, attr)
    }
    fn device_info(&self, key: &DevKey) -> Option<String> {
        let e = self.devices.get(key)?;
        let bs = &e.backstore;
        let i = e.device.info();
        Some(format!(
            "Status: {} blocks={} block_size={} exports={} tasks={} spc2_reservation={} | {} read_only={} write_cache={}",
            if i.stopped { "STOPPED" } else { "ACTIVATED" },
            i.blocks,
            i.block_size,
            i.exports,
            i.tasks,
            i.spc2_holder.as_deref().unwrap_or("none"),
            bs.info(),
            u8::from(bs.read_only()),
            u8::from(bs.write_cache())
        ))
    }
}

impl EngineRuntime {
    /// Undo live changes: attribute values and port states, then let new objects drop.
    fn undo(
        &mut self,
        attrs: Vec<(Arc<Device>, String, String)>,
        ports: Vec<(Arc<TargetPort>, PortState, PortState)>,
    ) {
        for u in std::mem::take(&mut self.alua_undo).into_iter().rev() {
            u();
        }
        for (port, mut now, before) in ports.into_iter().rev() {
            if let Err(e) = sync_port(&port, &mut now, &before) {
                tracing::error!("rollback of target port {}: {e}", port.target_name());
            }
        }
        for (dev, name, value) in attrs.into_iter().rev() {
            if let Err(e) = dev.set_attribute(&name, &value) {
                tracing::error!("rollback of attribute {name}: {e}");
            }
        }
    }

    /// The entry for device `so`: the live one kept (attributes changed live), rebuilt on the
    /// same backstore, or new; its ALUA groups and LU group made to match. Returns it and the
    /// groups to delete once no LUN is in them. On Err the caller undoes `attr_undo` and
    /// `alua_undo`.
    fn device_entry(
        &mut self,
        so: &StorageObject,
        lu_gps: &BTreeMap<String, Arc<LuGroup>>,
        attr_undo: &mut Vec<(Arc<Device>, String, String)>,
    ) -> Result<(DevEntry, Vec<AluaTpg>), String> {
        let key = so.key();
        let entry = match self.devices.get(&key) {
            Some(cur) if cur.so.backing() == so.backing() => {
                let dropped_attr = cur
                    .so
                    .attributes
                    .keys()
                    .any(|k| !so.attributes.contains_key(k));
                if cur.so.identity() == so.identity() && !dropped_attr {
                    for (name, value) in &so.attributes {
                        if cur.so.attributes.get(name) == Some(value) {
                            continue;
                        }
                        let before = cur.device.attribute(name);
                        if let Err(e) = cur.device.set_attribute(name, &value.to_string()) {
                            return Err(attr_error(&key, name, &e));
                        }
                        if let Some(before) = before {
                            attr_undo.push((cur.device.clone(), name.clone(), before));
                        }
                    }
                    DevEntry {
                        so: so.clone(),
                        backstore: cur.backstore.clone(),
                        device: cur.device.clone(),
                        aptpl: cur.aptpl.clone(),
                    }
                } else {
                    // Same unit serial: the LU keeps its persistent reservations.
                    let aptpl = AptplFile::new(&self.pr_dir, &so.wwn);
                    let carry = (cur.so.wwn == so.wwn).then(|| cur.device.pr_state());
                    let device = build_device(so, cur.backstore.clone(), &aptpl, carry)?;
                    DevEntry {
                        so: so.clone(),
                        backstore: cur.backstore.clone(),
                        device,
                        aptpl,
                    }
                }
            }
            _ => {
                let aptpl = AptplFile::new(&self.pr_dir, &so.wwn);
                let backstore = spec(so).open().map_err(|e| format!("{key}: {e}"))?;
                let device = build_device(so, backstore.clone(), &aptpl, None)?;
                DevEntry {
                    so: so.clone(),
                    backstore,
                    device,
                    aptpl,
                }
            }
        };
        let old = self
            .devices
            .get(&key)
            .filter(|cur| Arc::ptr_eq(&cur.device, &entry.device))
            .map(|cur| cur.so.clone());
        let groups = sync_device_alua(
            &entry.device,
            &key,
            old.as_ref(),
            so,
            lu_gps,
            &mut self.alua_undo,
        );
        if groups.is_ok() && old.is_none() {
            let obs = AluaEvents(self.alua_tx.clone());
            entry.device.set_alua_observer(Some(Arc::new(obs)));
        }
        Ok((entry, groups?))
    }

    /// Delete the ALUA groups no longer configured (`drop`: per device, from
    /// [`EngineRuntime::device_entry`]), now that no LUN is in them; undone through
    /// `alua_undo`.
    fn drop_alua_groups(
        &mut self,
        drop: Vec<(Arc<Device>, DevKey, Vec<AluaTpg>)>,
    ) -> Result<(), String> {
        for (dev, key, gone) in drop {
            for g in gone {
                dev.delete_alua_group(&g.name)
                    .map_err(|e| format!("{key}/alua/{}: {e}", g.name))?;
                let d = dev.clone();
                self.alua_undo.push(Box::new(move || {
                    let back = d
                        .create_alua_group(&g.name, g.tg_pt_gp_id)
                        .and_then(|()| restore_group(&d, &g));
                    if let Err(e) = back {
                        tracing::error!("rollback of ALUA group {}: {e}", g.name);
                    }
                }));
            }
        }
        Ok(())
    }

    /// Publish the live objects for the metrics exporter.
    fn publish_live(&self) {
        self.live.publish(
            (self.devices.iter())
                .map(|(k, e)| (k.clone(), e.device.clone()))
                .collect(),
            self.ports.values().map(|p| p.port.clone()).collect(),
        );
    }

    async fn apply_inner(&mut self, new: &Config) -> Result<(), String> {
        self.alua_undo.clear();
        // Progress per storage object and TPG (an apply, restore or import of many).
        let ticker = self.progress.task("applying", Unit::Objects);
        let total =
            new.storage_objects.len() + new.targets.iter().map(|t| t.tpgs.len()).sum::<usize>();
        let (total, mut done) = (total as u64, 0u64);
        ticker.set(0, total);
        // LU groups: kept while their name and id stay, so members stay members.
        let lu_gps: BTreeMap<String, Arc<LuGroup>> = new
            .alua_lu_gps
            .iter()
            .map(|g| {
                let keep = self
                    .lu_gps
                    .get(&g.name)
                    .filter(|x| x.id() == g.lu_gp_id)
                    .cloned();
                (
                    g.name.clone(),
                    keep.unwrap_or_else(|| LuGroup::new(&g.name, g.lu_gp_id)),
                )
            })
            .collect();
        let mut drop_groups: Vec<(Arc<Device>, DevKey, Vec<AluaTpg>)> = Vec::new();
        // 1. Devices: reuse, change attributes live, rebuild on the same backstore, or create.
        let mut devices = BTreeMap::new();
        let mut attr_undo: Vec<(Arc<Device>, String, String)> = Vec::new();
        for so in &new.storage_objects {
            let key = so.key();
            let (entry, gone) = match self.device_entry(so, &lu_gps, &mut attr_undo) {
                Ok(x) => x,
                Err(e) => {
                    self.undo(attr_undo, Vec::new());
                    return Err(e);
                }
            };
            drop_groups.push((entry.device.clone(), key.clone(), gone));
            devices.insert(key, entry);
            done += 1;
            if ticker.set(done, total) {
                // Let the control connection write the report.
                tokio::task::yield_now().await;
            }
        }

        // 2. Target ports: reuse (same RTPI) or create, then sync LUNs/ACLs/demo/enable.
        let mut ports = BTreeMap::new();
        let mut port_undo: Vec<(Arc<TargetPort>, PortState, PortState)> = Vec::new();
        for t in &new.targets {
            for g in &t.tpgs {
                let id = (t.wwn.clone(), g.tag);
                let want = match desired_state(g, &devices) {
                    Ok(w) => w,
                    Err(e) => {
                        self.undo(attr_undo, port_undo);
                        return Err(e);
                    }
                };
                // New ports start from the empty state, so undoing them removes their LUN
                // exports again (the engine counts exports per device).
                let (port, before) = match self.ports.get(&id) {
                    Some(p) if p.rtpi == g.rtpi => (p.port.clone(), p.state.clone()),
                    _ => (TargetPort::new(&t.wwn, g.tag, g.rtpi), PortState::default()),
                };
                let mut now = before.clone();
                let result = sync_port(&port, &mut now, &want)
                    .and_then(|()| sync_port_alua(&port, g, &before, &want, &mut self.alua_undo));
                port_undo.push((port.clone(), now.clone(), before));
                if let Err(e) = result {
                    self.undo(attr_undo, port_undo);
                    return Err(format!("iscsi/{}/tpgt_{}: {e}", t.wwn, g.tag));
                }
                ports.insert(
                    id,
                    PortEntry {
                        port,
                        rtpi: g.rtpi,
                        state: now,
                    },
                );
                done += 1;
                if ticker.set(done, total) {
                    tokio::task::yield_now().await;
                }
            }
        }

        // 2b. Groups no longer configured, now that no LUN is in them.
        if let Err(e) = self.drop_alua_groups(drop_groups) {
            self.undo(attr_undo, port_undo);
            return Err(e);
        }

        // 3. The fabric: portals, auth, parameters. Binding a portal may fail.
        if let Err(e) = self.fabric.apply(fabric_config(new, &ports)).await {
            self.undo(attr_undo, port_undo);
            return Err(e);
        }

        // 4. Commit: retire ports and devices that are gone or were replaced.
        for (id, old) in std::mem::take(&mut self.ports) {
            if ports
                .get(&id)
                .is_none_or(|p| !Arc::ptr_eq(&p.port, &old.port))
            {
                let mut now = old.state;
                if let Err(e) = sync_port(&old.port, &mut now, &PortState::default()) {
                    tracing::warn!("retiring iscsi/{}/tpgt_{}: {e}", id.0, id.1);
                }
            }
        }
        let serials: std::collections::HashSet<&str> =
            devices.values().map(|d| d.so.wwn.as_str()).collect();
        for (key, old) in std::mem::take(&mut self.devices) {
            let lives_on = serials.contains(old.so.wwn.as_str());
            retire_device(&key, &old, devices.get(&key), lives_on);
        }
        self.devices = devices;
        self.ports = ports;
        self.lu_gps = lu_gps;
        self.publish_live();
        self.alua_undo.clear();
        Ok(())
    }
}

impl Runtime for EngineRuntime {
    fn apply(&mut self, new: &Config) -> impl Future<Output = Result<(), String>> + Send {
        self.apply_inner(new)
    }

    fn sessions(&self) -> Vec<ironlun_fabric::SessionInfo> {
        self.fabric.sessions()
    }

    fn resize(&mut self, key: &DevKey, size: Option<u64>) -> Result<(u64, u64), String> {
        let e = self
            .devices
            .get_mut(key)
            .ok_or_else(|| format!("{key}: no such device"))?;
        let old = e.backstore.size();
        let new = match size {
            Some(n) => e.backstore.resize(n),
            None => e.backstore.rescan(),
        }
        .map_err(|err| format!("{key}/control: {err}"))?;
        Ok(self.resized(key, old, new))
    }

    async fn resize_thick(&mut self, key: &DevKey, size: u64) -> Result<(u64, u64), String> {
        let bs = self
            .devices
            .get(key)
            .map(|e| e.backstore.clone())
            .ok_or_else(|| format!("{key}: no such device"))?;
        let old = bs.size();
        let ticker = self
            .progress
            .task(format!("preallocating {key}"), Unit::Bytes);
        // Off the async threads: allocating gigabytes takes a while, and the control
        // connection's task writes the progress meanwhile.
        let new = tokio::task::spawn_blocking(move || {
            bs.resize_thick(size, &|d, t| {
                ticker.set(d, t);
            })
        })
        .await
        .map_err(|e| format!("{key}/control: {e}"))?
        .map_err(|err| format!("{key}/control: {err}"))?;
        Ok(self.resized(key, old, new))
    }

    fn preallocate_file(
        &mut self,
        path: &str,
        size: Option<u64>,
    ) -> impl Future<Output = Result<bool, String>> + Send {
        let ticker = self
            .progress
            .task(format!("preallocating {path}"), Unit::Bytes);
        let path = PathBuf::from(path);
        async move {
            tokio::task::spawn_blocking(move || {
                ironlun_backstore::prealloc::preallocate_file(&path, size, &|d, t| {
                    ticker.set(d, t);
                })
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
        }
    }

    fn set_progress(&mut self, progress: Progress) {
        self.progress = progress;
    }

    fn pr_clear(&mut self, key: &DevKey) -> Result<PrState, String> {
        let e = self
            .devices
            .get(key)
            .ok_or_else(|| format!("{key}: no such device"))?;
        e.device
            .pr_clear()
            .map_err(|err| format!("{key}: pr clear: {err}"))
    }

    fn alua_refresh(&mut self, cfg: &Config) -> Config {
        let mut next = cfg.clone();
        for so in &mut next.storage_objects {
            self.refresh_device_alua(so);
        }
        for t in &mut next.targets {
            for g in &mut t.tpgs {
                let Some(p) = self.ports.get(&(t.wwn.clone(), g.tag)) else {
                    continue;
                };
                for l in &mut g.luns {
                    refresh_lun_alua(&p.port, l);
                }
            }
        }
        next
    }

    fn apply_touched(
        &mut self,
        new: &Config,
        touched: &Touched,
    ) -> impl Future<Output = Result<(), String>> + Send {
        self.apply_touched_inner(new, touched)
    }

    fn alua_refresh_touched(&mut self, cfg: &mut Config, touched: &Touched) {
        if touched.whole {
            *cfg = self.alua_refresh(cfg);
            return;
        }
        for key in &touched.devices {
            if let Some(so) = cfg.device_mut(key) {
                self.refresh_device_alua(so);
            }
        }
        for ((t, tag), what) in &touched.tpgs {
            let (Some(p), Some(g)) = (self.ports.get(&(t.clone(), *tag)), cfg.tpg_mut(t, *tag))
            else {
                continue;
            };
            for l in g
                .luns
                .iter_mut()
                .filter(|l| what.all || what.luns.contains(&l.index))
            {
                refresh_lun_alua(&p.port, l);
            }
        }
    }

    async fn shutdown(&mut self) {
        self.fabric.shutdown().await;
        for (key, d) in &self.devices {
            match d.backstore.flush() {
                Ok(()) => tracing::info!("{key}: flushed"),
                Err(e) => tracing::error!("{key}: flush failed: {e}"),
            }
        }
    }
}
