//! The clustered LUs of this gateway: found among the live objects (`cluster` attribute set),
//! attached to the cluster, synced before they serve, their ports and group states published,
//! and the groups of gateways that left set Unavailable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use etcd_client::{Compare, CompareOp, KeyValue, Txn, TxnOp};
use ironlun_engine::pr::{PrChange, PrState, RemotePort};
use ironlun_engine::scsi::alua::AccessState;
use ironlun_engine::Device;
use parking_lot::Mutex;

use crate::keys::{self, Key};
use crate::share::EtcdShare;
use crate::{Inner, Lu, View};

const UNAVAILABLE: u8 = 3;
const TRANSITIONING: u8 = 0x0F;

impl Inner {
    /// Replace the view with what a snapshot of every key says.
    pub(crate) fn load_view(&self, kvs: &[KeyValue]) {
        let mut v = View::default();
        for kv in kvs {
            match keys::parse(kv.key_str().unwrap_or_default()) {
                Key::Member(n) => {
                    v.members.insert(n.to_string());
                }
                Key::Ports(s, n) => {
                    let p: Vec<RemotePort> = serde_json::from_slice(kv.value()).unwrap_or_default();
                    v.ports
                        .entry(s.to_string())
                        .or_default()
                        .insert(n.to_string(), p);
                }
                Key::Group(s, id) => {
                    if let Some(st) = kv.value_str().ok().and_then(|x| x.parse().ok()) {
                        v.groups.insert((s.to_string(), id), st);
                    }
                }
                _ => {}
            }
        }
        *self.view.lock() = v;
    }

    /// Give the device the ports the other gateways export it through.
    pub(crate) fn set_remote(&self, lu: &Lu) {
        let ports: Vec<RemotePort> = self
            .view
            .lock()
            .ports
            .get(&lu.serial)
            .map(|m| {
                m.iter()
                    .filter(|(n, _)| **n != self.opts.node)
                    .flat_map(|(_, p)| p.iter().cloned())
                    .collect()
            })
            .unwrap_or_default();
        lu.dev.set_remote_ports(ports);
    }

    /// Bring one LU in step with the cluster, then let it serve: the PR state (the cluster's,
    /// or this gateway's seeds an LU the cluster does not know yet), the other gateways'
    /// ports, the group states, this gateway's ports and groups, an acknowledgement.
    pub(crate) async fn sync(&self, lu: &Arc<Lu>) -> Result<(), String> {
        lu.synced.store(false, Ordering::Release);
        *lu.acked.lock().await = 0;
        let dev = lu.dev.clone();
        match self.read_lu(&lu.serial).await? {
            Some((rev, change)) => {
                let first = dev.pr_revision() == 0;
                let d = dev.clone();
                tokio::task::spawn_blocking(move || {
                    if first {
                        d.adopt_shared_pr(rev, &change)
                    } else {
                        // Back after a partition: the last change's unit attentions too.
                        d.apply_shared_pr(rev, &change);
                        Ok(())
                    }
                })
                .await
                .map_err(|e| e.to_string())??;
            }
            None => {
                // The state this gateway published is the cluster's now, at that revision.
                let seeded = PrChange {
                    state: dev.pr_state(),
                    ..PrChange::default()
                };
                let rev = self.seed(&lu.serial, &seeded).await?;
                if rev > 0 {
                    dev.adopt_shared_pr(rev, &seeded)?;
                }
            }
        }
        self.set_remote(lu);
        self.check_ports(lu)?;
        let known: Vec<(u16, u8)> = self
            .view
            .lock()
            .groups
            .iter()
            .filter(|((s, _), _)| *s == lu.serial)
            .map(|((_, id), st)| (*id, *st))
            .collect();
        {
            let _g = lu.alua.lock().await;
            let d = dev.clone();
            tokio::task::spawn_blocking(move || {
                for (id, st) in known {
                    d.apply_shared_group_state(id, st);
                }
            })
            .await
            .map_err(|e| e.to_string())?;
        }
        self.publish_ports(lu).await?;
        self.own_groups_back(lu).await?;
        self.ack(lu, dev.pr_revision()).await?;
        lu.synced.store(true, Ordering::Release);
        if let Some(d) = *self.deadline.lock() {
            dev.set_serve_deadline(Some(d));
        }
        tracing::info!(
            node = self.opts.node,
            "clustered LU {} in sync at PR revision {}",
            lu.serial,
            dev.pr_revision()
        );
        Ok(())
    }

    /// The cluster has no PR state for this LU: publish this gateway's (e.g. restored from
    /// its APTPL file), unless another gateway does first. Returns the revision.
    async fn seed(&self, serial: &str, change: &PrChange) -> Result<u64, String> {
        if change.state == PrState::default() {
            return Ok(0);
        }
        let v = serde_json::to_vec(change).map_err(|e| e.to_string())?;
        let key = keys::pr(serial);
        let txn = Txn::new()
            .when(vec![Compare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then(vec![TxnOp::put(key, v, None)]);
        let mut c = self.conn.client();
        let r = c.txn(txn).await.map_err(|e| self.conn.failed(e))?;
        if !r.succeeded() {
            return Err("another gateway published this LU's PR state first; retrying".into());
        }
        Ok(r.header()
            .map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0)))
    }

    async fn publish_ports(&self, lu: &Lu) -> Result<(), String> {
        let now = lu.dev.local_ports();
        if *lu.published.lock() == now && lu.synced.load(Ordering::Acquire) {
            return Ok(());
        }
        let v = serde_json::to_string(&now).map_err(|e| e.to_string())?;
        let mut c = self.conn.client();
        c.put(keys::port(&lu.serial, &self.opts.node), v, None)
            .await
            .map_err(|e| self.conn.failed(e))?;
        *lu.published.lock() = now;
        Ok(())
    }

    /// This gateway's groups of the LU: Unavailable (set by the others while it was gone)
    /// becomes Active/Optimized again; a group the cluster has no state for gets the local one.
    async fn own_groups_back(&self, lu: &Lu) -> Result<(), String> {
        let own: BTreeSet<u16> = lu.published.lock().iter().map(|p| p.group).collect();
        let states = lu.dev.alua_group_states();
        for id in own {
            let known = self
                .view
                .lock()
                .groups
                .get(&(lu.serial.clone(), id))
                .copied();
            let want = match known {
                Some(UNAVAILABLE) | Some(TRANSITIONING) => AccessState::ActiveOptimized.code(),
                Some(_) => continue,
                None => states
                    .iter()
                    .find(|g| g.id == id)
                    .map_or(AccessState::ActiveOptimized.code(), |g| g.state.code()),
            };
            self.put_group(&lu.serial, id, want).await?;
        }
        Ok(())
    }

    async fn put_group(&self, serial: &str, id: u16, state: u8) -> Result<(), String> {
        let mut c = self.conn.client();
        c.put(keys::group(serial, id), state.to_string(), None)
            .await
            .map_err(|e| self.conn.failed(e))?;
        Ok(())
    }

    /// Gateways that are not members: their groups (those no live gateway's ports are in)
    /// become Unavailable.
    pub(crate) async fn dead_peers(&self) {
        if !self.joined.load(Ordering::Acquire) {
            return;
        }
        let todo: Vec<(String, u16)> = {
            let v = self.view.lock();
            let mut todo = Vec::new();
            for (serial, nodes) in &v.ports {
                let live: BTreeSet<u16> = nodes
                    .iter()
                    .filter(|(n, _)| v.members.contains(*n))
                    .flat_map(|(_, p)| p.iter().map(|p| p.group))
                    .collect();
                for (n, ports) in nodes {
                    if v.members.contains(n) {
                        continue;
                    }
                    for p in ports {
                        let st = v.groups.get(&(serial.clone(), p.group)).copied();
                        if !live.contains(&p.group) && st != Some(UNAVAILABLE) {
                            todo.push((serial.clone(), p.group));
                        }
                    }
                }
            }
            todo.sort();
            todo.dedup();
            todo
        };
        for (serial, id) in todo {
            tracing::warn!("LU {serial}: target port group {id} has no live gateway: Unavailable");
            if let Err(e) = self.put_group(&serial, id, UNAVAILABLE).await {
                tracing::warn!("setting group {id} of {serial} Unavailable failed: {e}");
            }
        }
        if let Err(e) = self.spc2_of_dead_peers().await {
            tracing::warn!("releasing SPC-2 reservations of gateways that left: {e}");
        }
    }

    /// An SPC-2 reservation held through a gateway that left ended with its I_T nexus (SAM-5
    /// I_T nexus loss): release it cluster-wide.
    async fn spc2_of_dead_peers(&self) -> Result<(), String> {
        let serials: Vec<String> = self.view.lock().ports.keys().cloned().collect();
        for serial in serials {
            let Some((rev, mut change)) = self.read_lu(&serial).await? else {
                continue;
            };
            let Some(h) = change.spc2.clone() else {
                continue;
            };
            let gone = {
                let v = self.view.lock();
                v.ports.get(&serial).is_some_and(|nodes| {
                    nodes.iter().any(|(n, ports)| {
                        !v.members.contains(n)
                            && ports.iter().any(|p| {
                                p.tpgt == h.tpgt && p.target.eq_ignore_ascii_case(&h.target)
                            })
                    })
                })
            };
            if !gone {
                continue;
            }
            change.spc2 = None;
            change.sender = None;
            change.effects = Default::default();
            let v = serde_json::to_vec(&change).map_err(|e| e.to_string())?;
            let key = keys::pr(&serial);
            let rev = i64::try_from(rev).map_err(|e| e.to_string())?;
            let txn = Txn::new()
                .when(vec![Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    rev,
                )])
                .and_then(vec![TxnOp::put(key, v, None)]);
            let mut c = self.conn.client();
            c.txn(txn).await.map_err(|e| self.conn.failed(e))?;
            tracing::warn!(
                "LU {serial}: SPC-2 reservation of {} released (its gateway left)",
                h.initiator
            );
        }
        Ok(())
    }

    /// Follow the live objects: attach clustered LUs that appeared (or were replaced), detach
    /// those that went, publish changed ports and group states changed here.
    pub(crate) async fn reconcile(self: &Arc<Self>) -> Result<(), String> {
        let live = self.live.load();
        let mut want: BTreeMap<String, Arc<Device>> = BTreeMap::new();
        for (path, d) in &live.devices {
            if !d.clustered() {
                continue;
            }
            let serial = d.config().unit_serial;
            if want.contains_key(&serial) {
                tracing::warn!("{path}: another clustered LU here has unit serial {serial}");
                continue;
            }
            want.insert(serial, d.clone());
        }
        let current: Vec<(String, Arc<Lu>)> = self
            .lus
            .lock()
            .iter()
            .map(|(s, l)| (s.clone(), l.clone()))
            .collect();
        for (s, lu) in &current {
            if !want.get(s).is_some_and(|d| Arc::ptr_eq(d, &lu.dev)) {
                lu.dev.set_pr_share(None);
                lu.dev.set_serve_deadline(None);
                self.lus.lock().remove(s);
            }
        }
        for (serial, dev) in want {
            if self.lus.lock().contains_key(&serial) {
                continue;
            }
            let lu = Arc::new(Lu {
                serial: serial.clone(),
                dev: dev.clone(),
                synced: std::sync::atomic::AtomicBool::new(false),
                acked: tokio::sync::Mutex::new(0),
                published: Mutex::new(Vec::new()),
                alua: tokio::sync::Mutex::new(()),
                last_error: Mutex::new(None),
            });
            dev.set_serve_deadline(Some(Instant::now()));
            dev.set_pr_share(Some(Arc::new(EtcdShare {
                inner: self.clone(),
                lu: lu.clone(),
            })));
            self.lus.lock().insert(serial, lu);
        }
        let lus: Vec<Arc<Lu>> = self.lus.lock().values().cloned().collect();
        for lu in lus {
            if lu.synced.load(Ordering::Acquire) {
                if let Err(e) = self.check_ports(&lu) {
                    // A port added since the sync clashes: stop serving the LU until fixed.
                    lu.synced.store(false, Ordering::Release);
                    lu.dev.set_serve_deadline(Some(Instant::now()));
                    tracing::error!(
                        node = self.opts.node,
                        "clustered LU {} not served: {e}",
                        lu.serial
                    );
                    *lu.last_error.lock() = Some(e);
                    continue;
                }
                self.publish_ports(&lu).await?;
                self.local_group_changes(&lu).await?;
            } else if self.joined.load(Ordering::Acquire) {
                self.try_sync(&lu).await;
            }
        }
        Ok(())
    }

    /// [`Inner::sync`], its failure logged once (the LU stays fenced; tried again later).
    pub(crate) async fn try_sync(&self, lu: &Arc<Lu>) {
        match self.sync(lu).await {
            Ok(()) => *lu.last_error.lock() = None,
            Err(e) => {
                let mut last = lu.last_error.lock();
                if last.as_deref() != Some(&e) {
                    tracing::error!(
                        node = self.opts.node,
                        "clustered LU {} not served: {e}",
                        lu.serial
                    );
                    *last = Some(e);
                }
            }
        }
    }

    /// This gateway's ports of the LU must not be another gateway's (RTPI, or target and
    /// TPGT): the I_T nexuses, REPORT TARGET PORT GROUPS and REGISTER AND MOVE name ports by them.
    fn check_ports(&self, lu: &Lu) -> Result<(), String> {
        let mine = lu.dev.local_ports();
        let v = self.view.lock();
        let Some(nodes) = v.ports.get(&lu.serial) else {
            return Ok(());
        };
        for (node, ports) in nodes.iter().filter(|(n, _)| **n != self.opts.node) {
            for m in &mine {
                if let Some(p) = ports.iter().find(|p| {
                    p.rtpi == m.rtpi || p.tpgt == m.tpgt && p.target.eq_ignore_ascii_case(&m.target)
                }) {
                    return Err(format!(
                        "this gateway's port (rtpi {}, {},t,{:#x}) clashes with gateway {node}'s \
                         (rtpi {}, {},t,{:#x}): RTPIs and TPGTs must be unique in the cluster \
                         (`ironlun cluster forget` a retired gateway)",
                        m.rtpi, m.target, m.tpgt, p.rtpi, p.target, p.tpgt
                    ));
                }
            }
        }
        Ok(())
    }

    /// Group states changed on this gateway (SET TARGET PORT GROUPS, an administrator) go to
    /// the cluster.
    async fn local_group_changes(&self, lu: &Lu) -> Result<(), String> {
        let _g = lu.alua.lock().await;
        for g in lu.dev.alua_group_states() {
            let code = g.state.code();
            if code == TRANSITIONING {
                continue;
            }
            let key = (lu.serial.clone(), g.id);
            let known = self.view.lock().groups.get(&key).copied();
            if known.is_some_and(|k| k != code) || known.is_none() && g.id != 0 {
                self.put_group(&lu.serial, g.id, code).await?;
                self.view.lock().groups.insert(key, code);
            }
        }
        Ok(())
    }
}
