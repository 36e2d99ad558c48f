//! Making the running system match a [`Config`]: backstores and engine devices
//! (ironlun-target [`Device`]), engine target ports ([`TargetPort`]: LUNs, ACLs, demo mode,
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

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironlun_backstore::{Backstore, BackstoreSpec, FileIoOptions, IBlockOptions};
use ironlun_fabric::{AuthConfig, Fabric, FabricConfig, TargetConfig, TpgConfig};
use ironlun_target::{Device, DeviceConfig, MappedLun, PrState, TargetPort};

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

/// The real runtime: ironlun-backstore + ironlun-target + ironlun-fabric.
pub struct EngineRuntime {
    fabric: Arc<Fabric>,
    devices: BTreeMap<DevKey, DevEntry>,
    ports: BTreeMap<(String, u16), PortEntry>,
    /// `<state-dir>/pr`: the APTPL files.
    pr_dir: PathBuf,
}

impl EngineRuntime {
    /// A runtime keeping its APTPL files under `<state_dir>/pr`.
    pub fn new(fabric: Arc<Fabric>, state_dir: &Path) -> EngineRuntime {
        EngineRuntime {
            fabric,
            devices: BTreeMap::new(),
            ports: BTreeMap::new(),
            // Absolute, so that messages and `pr show` name the file unambiguously.
            pr_dir: std::path::absolute(state_dir)
                .unwrap_or_else(|_| state_dir.to_path_buf())
                .join(pr::PR_DIR),
        }
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
                let result = sync_port(&port, &mut now, &want);
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
                // with the same serial has its own store).
                old.device.set_aptpl_store(None);
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
