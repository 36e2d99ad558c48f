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
//! ALUA (SPC-4 §5.11; lio.md §3.6-3.8): each device's target port groups, their attributes
//! and its LU group are made to match the config, and each TPG LUN's group and offline flag.
//! A group or LUN that is new to the engine gets its saved state, status, preferred bit and
//! offline flag restored without a transition (no unit attention, no delay); a change of a
//! live group's state is an implicit transition. Every device reports the changes the engine
//! makes by itself (SET TARGET PORT GROUPS, end of a transition) through an
//! [`AluaObserver`] that wakes the service ([`EngineRuntime::take_alua_events`]), which folds
//! them into the config ([`Runtime::alua_refresh`]) and saves it.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ironlun_backstore::{Backstore, BackstoreSpec, FileIoOptions, IBlockOptions};
use ironlun_engine::{AluaObserver, Device, DeviceConfig, LuGroup, MappedLun, PrState, TargetPort};
use ironlun_fabric::{AuthConfig, Fabric, FabricConfig, NopIn, TargetConfig, TpgConfig};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use ironlun_engine::scsi::alua::{status_code, AccessState};

use crate::model::alua::{self, AluaTpg};
use crate::model::{Chap, Config, DevKey, Kind, ParamSchema, StorageObject, Tpg};
use crate::pr::{self, AptplFile, PrView};
use crate::tree::Inspect;

/// The effectful side of the control plane. Implemented by [`EngineRuntime`]; tests use fakes.
pub trait Runtime: Inspect + Send {
    /// Make the running system match `new`. On Err (one line) the running system is as before.
    fn apply(&mut self, new: &Config) -> impl Future<Output = Result<(), String>> + Send;
    /// Resize the backstore of the live device `key` to `size` bytes, or rescan its block
    /// device (`None`), and raise CAPACITY DATA HAS CHANGED if the capacity changed.
    /// Returns (old, new) capacity. On Err (one line) nothing changed.
    fn resize(&mut self, key: &DevKey, size: Option<u64>) -> Result<(u64, u64), String>;
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
            fabric,
            devices: BTreeMap::new(),
            ports: BTreeMap::new(),
            // Absolute, so that messages and `pr show` name the file unambiguously.
            pr_dir: std::path::absolute(state_dir)
                .unwrap_or_else(|_| state_dir.to_path_buf())
                .join(pr::PR_DIR),
        }
    }

    /// The names of devices whose ALUA state the engine changed by itself; hand it to
    /// [`crate::service::watch_alua`]. `None` after the first call.
    pub fn take_alua_events(&mut self) -> Option<UnboundedReceiver<String>> {
        self.alua_rx.take()
    }

    /// Addresses the fabric listens on.
    pub fn listening(&self) -> Vec<std::net::SocketAddr> {
        self.fabric.listening()
    }
}

fn spec(so: &StorageObject) -> BackstoreSpec {
    let path = so.dev.clone().unwrap_or_default();
    match so.plugin {
        Kind::RdMcp => BackstoreSpec::RamDisk {
            size: so.size.unwrap_or(0),
        },
        Kind::FileIo => BackstoreSpec::FileIo(FileIoOptions {
            size: so.size,
            write_back: so.write_back,
            readonly: so.readonly,
            ..FileIoOptions::new(path)
        }),
        Kind::IBlock => BackstoreSpec::IBlock(IBlockOptions {
            readonly: so.readonly,
            ..IBlockOptions::new(path)
        }),
    }
}

/// A new engine device on `backstore` with the identity and attributes of `so`, its APTPL
/// store attached and its persistent reservation state restored: `carry` (the state of the
/// live device this one replaces, same unit serial) or else the APTPL file, if there is one.
fn build_device(
    so: &StorageObject,
    backstore: Arc<dyn Backstore>,
    aptpl: &AptplFile,
    carry: Option<PrState>,
) -> Result<Arc<Device>, String> {
    let key = so.key();
    let block_size = match so.attributes.get("block_size") {
        Some(v) => v
            .text()
            .parse()
            .map_err(|_| format!("{key}/attrib/block_size: not a number"))?,
        None => backstore.hw_block_size(),
    };
    let config = DeviceConfig {
        name: so.name.clone(),
        unit_serial: so.wwn.clone(),
        vendor_id: so.vendor_id.clone(),
        product_id: so.product_id.clone(),
        revision: so.revision.clone(),
        block_size,
    };
    let device = Device::new(config, backstore).map_err(|e| format!("{key}: {e}"))?;
    // Restore before the store is attached (nothing to write back) and before attributes
    // such as force_pr_aptpl are set (which may persist the current state).
    const FIX: &str =
        "fix or remove the file (removing it drops the saved registrations and reservation)";
    let carried = carry.is_some();
    let state = match carry {
        Some(s) => Some(s),
        None => aptpl
            .load()
            .map_err(|e| format!("{key}: persistent reservations: {e}; {FIX}"))?,
    };
    if let Some(state) = state.filter(|s| *s != PrState::default()) {
        let summary = pr::summary(&state);
        if carried {
            device.restore_pr_state(state).map_err(|e| {
                format!("{key}: persistent reservations of the replaced device: {e}")
            })?;
        } else {
            let file = aptpl.path().display();
            device
                .restore_pr_state(state)
                .map_err(|e| format!("{key}: persistent reservations: {file}: {e}; {FIX}"))?;
            tracing::info!("{key}: restored persistent reservations from {file}: {summary}");
        }
    }
    device.set_aptpl_store(Some(Arc::new(aptpl.clone())));
    for (name, value) in &so.attributes {
        if name != "block_size" {
            device
                .set_attribute(name, &value.text())
                .map_err(|e| attr_error(&key, name, &e))?;
        }
    }
    Ok(device)
}

/// `core/…/attrib/<name>: <engine reason>`, without the engine's own `<name>: ` prefix.
fn attr_error(key: &DevKey, name: &str, e: &str) -> String {
    let reason = e
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix(": "))
        .unwrap_or(e);
    format!("{key}/attrib/{name}: {reason}")
}

/// The engine-side state a TPG asks for.
fn desired_state(tpg: &Tpg, devices: &BTreeMap<DevKey, DevEntry>) -> Result<PortState, String> {
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
        .map(|a| {
            let mapped = a
                .mapped_luns
                .iter()
                .map(|m| MappedLun {
                    mapped_lun: m.index,
                    tpg_lun: m.tpg_lun,
                    write_protect: m.write_protect || prod_wp,
                })
                .collect();
            (a.node_wwn.clone(), mapped)
        })
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

/// Bring `port` from `cur` to `want`, updating `cur` after each engine call that succeeded
/// (so that a failure can be undone from the true state).
fn sync_port(port: &TargetPort, cur: &mut PortState, want: &PortState) -> Result<(), String> {
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

fn auth(chap: &Chap) -> AuthConfig {
    AuthConfig {
        userid: chap.chap_userid.clone(),
        password: chap.chap_password.clone(),
        mutual_userid: chap.chap_mutual_userid.clone(),
        mutual_password: chap.chap_mutual_password.clone(),
    }
}

fn fabric_config(cfg: &Config, ports: &BTreeMap<(String, u16), PortEntry>) -> FabricConfig {
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

impl ParamSchema for EngineRuntime {
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

    async fn apply_inner(&mut self, new: &Config) -> Result<(), String> {
        self.alua_undo.clear();
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
                            if let Err(e) = cur.device.set_attribute(name, &value.text()) {
                                self.undo(attr_undo, Vec::new());
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
                        match build_device(so, cur.backstore.clone(), &aptpl, carry) {
                            Ok(device) => DevEntry {
                                so: so.clone(),
                                backstore: cur.backstore.clone(),
                                device,
                                aptpl,
                            },
                            Err(e) => {
                                self.undo(attr_undo, Vec::new());
                                return Err(e);
                            }
                        }
                    }
                }
                _ => {
                    let aptpl = AptplFile::new(&self.pr_dir, &so.wwn);
                    let built = spec(so)
                        .open()
                        .map_err(|e| format!("{key}: {e}"))
                        .and_then(|bs| build_device(so, bs.clone(), &aptpl, None).map(|d| (bs, d)));
                    match built {
                        Ok((backstore, device)) => DevEntry {
                            so: so.clone(),
                            backstore,
                            device,
                            aptpl,
                        },
                        Err(e) => {
                            self.undo(attr_undo, Vec::new());
                            return Err(e);
                        }
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
                &lu_gps,
                &mut self.alua_undo,
            );
            if groups.is_ok() && old.is_none() {
                let obs = AluaEvents(self.alua_tx.clone());
                entry.device.set_alua_observer(Some(Arc::new(obs)));
            }
            match groups {
                Ok(gone) => drop_groups.push((entry.device.clone(), key.clone(), gone)),
                Err(e) => {
                    self.undo(attr_undo, Vec::new());
                    return Err(e);
                }
            }
            devices.insert(key, entry);
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
            }
        }

        // 2b. Groups no longer configured, now that no LUN is in them.
        for (dev, key, gone) in drop_groups {
            for g in gone {
                if let Err(e) = dev.delete_alua_group(&g.name) {
                    self.undo(attr_undo, port_undo);
                    return Err(format!("{key}/alua/{}: {e}", g.name));
                }
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
        for (key, old) in std::mem::take(&mut self.devices) {
            let kept = devices
                .get(&key)
                .is_some_and(|d: &DevEntry| Arc::ptr_eq(&d.backstore, &old.backstore));
            if !kept {
                if let Err(e) = old.backstore.flush() {
                    tracing::warn!("{key}: flush on removal: {e}");
                }
            }
            let same_device = devices
                .get(&key)
                .is_some_and(|d: &DevEntry| Arc::ptr_eq(&d.device, &old.device));
            if !same_device {
                // A retired device object must not write the file any more (a replacement
                // with the same serial has its own store), nor report ALUA changes.
                old.device.set_aptpl_store(None);
                old.device.set_alua_observer(None);
                old.device.set_lu_group(None);
            }
            let serial_lives_on = devices.values().any(|d| d.so.wwn == old.so.wwn);
            if !serial_lives_on && old.aptpl.exists() {
                // Kept on purpose (as LIO does): deleting a device is not a reason to forget
                // the reservations initiators made persistent. See docs/cli.md.
                tracing::warn!(
                    "{key}: no device has unit serial '{1}' any more; its persistent reservation state stays in {0} and is restored if a device with that serial is created again (`ironlun pr clear --force` before deleting drops it)",
                    old.aptpl.path().display(),
                    old.so.wwn
                );
            }
        }
        self.devices = devices;
        self.ports = ports;
        self.lu_gps = lu_gps;
        self.alua_undo.clear();
        Ok(())
    }
}

impl Runtime for EngineRuntime {
    fn apply(&mut self, new: &Config) -> impl Future<Output = Result<(), String>> + Send {
        self.apply_inner(new)
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
        if new != old {
            e.device.capacity_changed();
            tracing::info!("{key}: capacity {old} -> {new} bytes");
        }
        // Keep the entry's parameters equal to what the tree will record, so the next apply
        // sees the same backing and keeps this backstore.
        e.so.record_size(new);
        Ok((old, new))
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
            let key = so.key();
            let Some(e) = self.devices.get_mut(&key) else {
                continue;
            };
            for g in so.alua_groups() {
                let live = |a: &str| e.device.alua_group_attribute(&g.name, a);
                let state = live("alua_access_state").and_then(|v| alua::parse_group_state(&v));
                let status = live("alua_access_status").and_then(|v| status_code::parse(&v));
                let preferred = live("preferred").and_then(|v| v.parse::<u8>().ok());
                let mut want = g.clone();
                if let Some(st) =
                    state.filter(|st| AccessState::from_code(*st) != AccessState::Transitioning)
                {
                    want.alua_access_state = st;
                }
                if let Some(st) = status {
                    want.alua_access_status = st;
                }
                if let Some(p) = preferred.filter(|p| *p <= 1) {
                    want.preferred = p;
                }
                if want != g {
                    if let Some(slot) = so.alua_group_mut(&g.name) {
                        *slot = want;
                    }
                }
            }
            e.so.alua_tpgs = so.alua_tpgs.clone();
        }
        for t in &mut next.targets {
            for g in &mut t.tpgs {
                let Some(p) = self.ports.get(&(t.wwn.clone(), g.tag)) else {
                    continue;
                };
                for l in &mut g.luns {
                    if let Some(off) = p.port.lun_alua_offline(l.index) {
                        l.alua_tg_pt_offline = off;
                    }
                    if let Some(st) = p.port.lun_alua_offline_status(l.index) {
                        l.alua_tg_pt_status = st.min(2);
                    }
                }
            }
        }
        next
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

/// Settable group attributes other than state, status and preferred, in the order they are
/// given to the engine (the supported states before anything that depends on them).
const GROUP_SETTINGS: &[&str] = &[
    "alua_access_type",
    "alua_support_transitioning",
    "alua_support_offline",
    "alua_support_lba_dependent",
    "alua_support_unavailable",
    "alua_support_standby",
    "alua_support_active_optimized",
    "alua_support_active_nonoptimized",
    "nonop_delay_msecs",
    "trans_delay_msecs",
    "implicit_trans_secs",
];

/// Give a group that is new to the engine its saved attributes, then its state, status and
/// preferred bit as a restore (not a transition).
fn restore_group(dev: &Device, g: &AluaTpg) -> Result<(), String> {
    for a in GROUP_SETTINGS {
        dev.set_alua_group_attribute(&g.name, a, &g.get(a).unwrap_or_default())?;
    }
    dev.restore_alua_group_state(
        &g.name,
        g.alua_access_state,
        g.alua_access_status,
        g.preferred == 1,
    )
}

/// Make `dev`'s groups and LU group match `so`. `old`: what `dev` was last given (`None`: the
/// device is new to the engine). Returns the groups to delete once no LUN is in them.
fn sync_device_alua(
    dev: &Arc<Device>,
    key: &DevKey,
    old: Option<&StorageObject>,
    so: &StorageObject,
    lu_gps: &BTreeMap<String, Arc<LuGroup>>,
    undo: &mut Vec<Undo>,
) -> Result<Vec<AluaTpg>, String> {
    let live = dev.alua_groups();
    let old_groups = old.map(StorageObject::alua_groups).unwrap_or_default();
    for g in so.alua_groups() {
        let at = format!("{key}/alua/{}", g.name);
        let err = |e: String| format!("{at}: {e}");
        if !live.contains(&g.name) {
            dev.create_alua_group(&g.name, g.tg_pt_gp_id).map_err(err)?;
            let (d, name) = (dev.clone(), g.name.clone());
            undo.push(Box::new(move || {
                if let Err(e) = d.delete_alua_group(&name) {
                    tracing::error!("rollback of ALUA group {name}: {e}");
                }
            }));
        }
        let Some(before) = old_groups.iter().find(|x| x.name == g.name) else {
            // New to the engine (new device or new group): a restore, no transition.
            restore_group(dev, &g).map_err(err)?;
            continue;
        };
        // A live group: change what changed; the state last, as an implicit transition.
        let mut order: Vec<&str> = GROUP_SETTINGS.to_vec();
        order.extend(["preferred", "alua_access_state"]);
        if before.alua_access_state == g.alua_access_state {
            order.push("alua_access_status");
        }
        for a in order {
            let (was, want) = (
                before.get(a).unwrap_or_default(),
                g.get(a).unwrap_or_default(),
            );
            if was == want {
                continue;
            }
            dev.set_alua_group_attribute(&g.name, a, &want)
                .map_err(err)?;
            let (d, name) = (dev.clone(), g.name.clone());
            undo.push(Box::new(move || {
                if let Err(e) = d.set_alua_group_attribute(&name, a, &was) {
                    tracing::error!("rollback of ALUA group {name} {a}: {e}");
                }
            }));
        }
    }
    let want_lu = so.alua_lu_gp.as_ref().and_then(|n| lu_gps.get(n)).cloned();
    let cur_lu = dev.lu_group();
    let same = match (&cur_lu, &want_lu) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    };
    if !same {
        dev.set_lu_group(want_lu);
        let d = dev.clone();
        undo.push(Box::new(move || d.set_lu_group(cur_lu)));
    }
    let wanted = so.alua_groups();
    Ok(old_groups
        .into_iter()
        .filter(|g| live.contains(&g.name) && !wanted.iter().any(|w| w.name == g.name))
        .collect())
}

/// Make each TPG LUN's group and offline flag match the config. A LUN new to the port gets
/// its saved offline flag and status restored; a live LUN's offline change is a secondary
/// state change by the administrator.
fn sync_port_alua(
    port: &Arc<TargetPort>,
    tpg: &Tpg,
    before: &PortState,
    want: &PortState,
    undo: &mut Vec<Undo>,
) -> Result<(), String> {
    for l in &tpg.luns {
        let at = format!("lun/lun_{}", l.index);
        let cur = port.lun_alua_group(l.index);
        if cur.as_deref() != Some(l.tg_pt_gp()) {
            port.set_lun_alua_group(l.index, l.tg_pt_gp())
                .map_err(|e| format!("{at}/alua_tg_pt_gp: {e}"))?;
            if let Some(cur) = cur {
                let (p, idx) = (port.clone(), l.index);
                undo.push(Box::new(move || {
                    if let Err(e) = p.set_lun_alua_group(idx, &cur) {
                        tracing::error!("rollback of LUN {idx} ALUA group: {e}");
                    }
                }));
            }
        }
        let off = port.lun_alua_offline(l.index).unwrap_or(false);
        let status = port.lun_alua_offline_status(l.index).unwrap_or(0);
        let fresh = match (before.luns.get(&l.index), want.luns.get(&l.index)) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            _ => true,
        };
        if fresh {
            if off != l.alua_tg_pt_offline || status != l.alua_tg_pt_status {
                port.restore_lun_alua_offline(l.index, l.alua_tg_pt_offline, l.alua_tg_pt_status)
                    .map_err(|e| format!("{at}/alua_tg_pt_offline: {e}"))?;
            }
        } else if off != l.alua_tg_pt_offline {
            port.set_lun_alua_offline(l.index, l.alua_tg_pt_offline)
                .map_err(|e| format!("{at}/alua_tg_pt_offline: {e}"))?;
            let (p, idx) = (port.clone(), l.index);
            undo.push(Box::new(move || {
                let back = p
                    .set_lun_alua_offline(idx, off)
                    .and_then(|()| p.restore_lun_alua_offline(idx, off, status));
                if let Err(e) = back {
                    tracing::error!("rollback of LUN {idx} offline flag: {e}");
                }
            }));
        }
    }
    Ok(())
}
