//! N gateways, one LU (`ironlun serve --cluster ENDPOINTS --node NAME`): the LUs whose
//! `cluster` attribute is set share, through etcd, their persistent reservation state and
//! their ALUA group states with every other gateway that exports an LU of the same unit
//! serial (docs/cluster.md). Each gateway brings its own target ports (RTPIs unique
//! cluster-wide) in its own target port group.
//!
//! * Membership: a key under a lease this gateway keeps alive (`keys.rs`). The I/O path reads
//!   local memory only; what fences it is a deadline on the engine's device that every
//!   successful keep-alive moves to 60 % of the TTL after it was sent, so a gateway cut off
//!   from etcd (or stopped) stops serving before its lease can expire.
//! * PR OUT: `share.rs` ([`ironlun_engine::pr::PrShare`]). Changes other gateways make arrive
//!   through one watch (`watch.rs`), are applied in revision order and acknowledged.
//! * Gateway loss: when a member key goes, the survivors set the groups of its ports
//!   Unavailable (each gateway raises ASYMMETRIC ACCESS STATE CHANGED on its nexuses as it
//!   applies the new state). A gateway that comes back re-syncs every LU before it serves and
//!   makes its own groups Active/Optimized again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{GetOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions};
use ironlun_control::live::LiveObjects;
use ironlun_engine::pr::RemotePort;
use ironlun_engine::Device;
use parking_lot::Mutex;
use tokio::runtime::Handle;

pub mod admin;
pub mod config;
mod conn;
pub mod keys;
mod lu;
mod share;
mod watch;

/// How `serve --cluster` runs.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// etcd client URLs.
    pub endpoints: Vec<String>,
    /// This gateway's name, unique in the cluster.
    pub node: String,
    /// Lease TTL (whole seconds, at least 1).
    pub ttl: Duration,
}

impl ClusterOptions {
    /// Check the node name (it is part of etcd keys). Err: one line.
    pub fn validate(&self) -> Result<(), String> {
        if self.node.is_empty()
            || self.node.len() > 64
            || !self
                .node
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!(
                "--node {:?}: use 1..64 characters of [A-Za-z0-9_.-]",
                self.node
            ));
        }
        if self.endpoints.is_empty() || self.endpoints.iter().any(|e| e.is_empty()) {
            return Err("--cluster: give the etcd client URLs, comma-separated".into());
        }
        if self.ttl < Duration::from_secs(1) || self.ttl.subsec_nanos() != 0 {
            return Err("--cluster-ttl: whole seconds, at least 1".into());
        }
        Ok(())
    }
}

/// One clustered LU on this gateway.
pub(crate) struct Lu {
    pub(crate) serial: String,
    pub(crate) dev: Arc<Device>,
    /// In sync with the cluster (adopted its state, published its ports): may serve.
    pub(crate) synced: AtomicBool,
    /// The highest revision acknowledged under the current lease.
    pub(crate) acked: tokio::sync::Mutex<u64>,
    /// The ports last published.
    pub(crate) published: Mutex<Vec<RemotePort>>,
    /// Held while a group state from etcd is applied or a local one compared with etcd's.
    pub(crate) alua: tokio::sync::Mutex<()>,
    /// Why the last sync failed (logged once, tried again at every reconcile).
    pub(crate) last_error: Mutex<Option<String>>,
}

/// What this gateway knows of the cluster (caches of etcd keys, updated by the watch).
#[derive(Default)]
pub(crate) struct View {
    pub(crate) members: BTreeSet<String>,
    /// serial → node → its ports.
    pub(crate) ports: BTreeMap<String, BTreeMap<String, Vec<RemotePort>>>,
    /// (serial, group id) → state code.
    pub(crate) groups: BTreeMap<(String, u16), u8>,
}

pub(crate) struct Inner {
    pub(crate) opts: ClusterOptions,
    pub(crate) conn: Arc<conn::Conn>,
    handle: Handle,
    live: Arc<LiveObjects>,
    pub(crate) lease: AtomicI64,
    /// Membership held and the view loaded (false while (re)joining).
    pub(crate) joined: AtomicBool,
    pub(crate) lus: Mutex<BTreeMap<String, Arc<Lu>>>,
    pub(crate) view: Mutex<View>,
    /// Until when this gateway may serve (from the last keep-alive).
    pub(crate) deadline: Mutex<Option<Instant>>,
    /// The control plane this gateway's part of the cluster configuration is applied through.
    pub(crate) control: Mutex<Option<config::ControlHandle>>,
    /// Fragments to apply (value, revision), one after the other.
    pub(crate) fragments: tokio::sync::mpsc::UnboundedSender<(Vec<u8>, u64)>,
}

/// The running cluster membership of this gateway.
pub struct Cluster {
    inner: Arc<Inner>,
}

impl Cluster {
    /// Connect to etcd and start keeping this gateway's membership and its clustered LUs in
    /// step. Err: etcd cannot be reached at all (one line).
    pub async fn start(opts: ClusterOptions, live: Arc<LiveObjects>) -> Result<Cluster, String> {
        opts.validate()?;
        let conn = conn::Conn::connect(opts.endpoints.clone(), opts.ttl)
            .await
            .map_err(|e| format!("--cluster {}: {e}", opts.endpoints.join(",")))?;
        let (fragments, mut todo) = tokio::sync::mpsc::unbounded_channel::<(Vec<u8>, u64)>();
        let inner = Arc::new(Inner {
            opts,
            conn,
            handle: Handle::current(),
            live,
            lease: AtomicI64::new(0),
            joined: AtomicBool::new(false),
            lus: Mutex::new(BTreeMap::new()),
            view: Mutex::new(View::default()),
            deadline: Mutex::new(None),
            control: Mutex::new(None),
            fragments,
        });
        tokio::spawn(inner.clone().run());
        let applier = inner.clone();
        tokio::spawn(async move {
            while let Some((value, rev)) = todo.recv().await {
                applier.apply_fragment(&value, rev).await;
            }
        });
        Ok(Cluster { inner })
    }

    /// Apply this gateway's part of the cluster configuration (`config/<node>` in etcd)
    /// through `control`: now, and whenever it changes.
    pub async fn manage_config(&self, control: config::ControlHandle) {
        *self.inner.control.lock() = Some(control);
        let mut c = self.inner.conn.client();
        match c.get(keys::config(&self.inner.opts.node), None).await {
            Ok(r) => {
                if let Some(kv) = r.kvs().first() {
                    let rev = u64::try_from(kv.mod_revision()).unwrap_or(0);
                    let _ = self.inner.fragments.send((kv.value().to_vec(), rev));
                }
            }
            Err(e) => {
                let why = self.inner.conn.failed(e);
                tracing::warn!("reading this gateway's cluster configuration: {why}");
            }
        }
    }

    /// Is this gateway a member in sync with the cluster now?
    pub fn joined(&self) -> bool {
        self.inner.joined.load(Ordering::Acquire)
    }

    /// Leave: revoke the lease (the others see this gateway gone at once).
    pub async fn leave(&self) {
        let id = self.inner.lease.swap(0, Ordering::AcqRel);
        if id != 0 {
            let mut c = self.inner.conn.client();
            let _ = tokio::time::timeout(Duration::from_secs(2), c.lease_revoke(id)).await;
        }
    }
}

impl Inner {
    /// Run `f` to completion from engine code (a blocking thread, or a runtime thread the
    /// caller may block).
    pub(crate) fn block<T>(&self, f: impl Future<Output = T>) -> T {
        if Handle::try_current().is_ok() {
            tokio::task::block_in_place(|| self.handle.block_on(f))
        } else {
            self.handle.block_on(f)
        }
    }

    async fn run(self: Arc<Self>) {
        loop {
            if let Err(e) = self.clone().session().await {
                tracing::warn!(
                    node = self.opts.node,
                    "cluster membership lost: {e}; re-joining"
                );
            }
            self.leave_session();
            tokio::time::sleep(self.opts.ttl / 4).await;
        }
    }

    /// Stop serving every clustered LU until the next session has re-synced it.
    fn leave_session(&self) {
        self.joined.store(false, Ordering::Release);
        *self.deadline.lock() = None;
        for lu in self.lus.lock().values() {
            lu.synced.store(false, Ordering::Release);
            lu.dev.set_serve_deadline(Some(Instant::now()));
        }
    }

    /// One membership: join under a new lease, load the view, sync every LU, then keep the
    /// lease alive, follow the watch and reconcile with the live objects until something
    /// fails.
    async fn session(self: Arc<Self>) -> Result<(), String> {
        let mut c = self.conn.client();
        // One live gateway per name: another's member key (a second daemon given this name,
        // or this one before a kill -9, until its lease ends) keeps this one out.
        let held = c
            .get(keys::member(&self.opts.node), None)
            .await
            .map_err(|e| self.conn.failed(e))?;
        if let Some(kv) = held.kvs().first() {
            if kv.lease() != self.lease.load(Ordering::Acquire) {
                return Err(format!(
                    "gateway name {} is held by another live gateway (pid {}) until its lease ends",
                    self.opts.node,
                    kv.value_str().unwrap_or("?")
                ));
            }
        }
        let ttl = i64::try_from(self.opts.ttl.as_secs()).unwrap_or(i64::MAX);
        let lease = c
            .lease_grant(ttl, None)
            .await
            .map_err(|e| self.conn.failed(e))?
            .id();
        self.lease.store(lease, Ordering::Release);
        let (mut keeper, mut alive) = self.keep_alive_stream(lease).await?;
        // Send times of the keep-alives not yet answered, oldest first. etcd answers a
        // stream's keep-alives in order, so each response extends the deadline from the send
        // time of its own request: a late answer to one sent before this process was stopped
        // (SIGSTOP, a long pause) extends from that old time, which has passed, and never lets
        // a resumed gateway run what it had queued.
        let mut unanswered: VecDeque<Instant> = VecDeque::new();
        let sent = Instant::now();
        c.put(
            keys::member(&self.opts.node),
            std::process::id().to_string(),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .map_err(|e| self.conn.failed(e))?;
        self.extend(sent);
        let snap = c
            .get(keys::ROOT, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| self.conn.failed(e))?;
        let rev = snap.header().map_or(0, |h| h.revision());
        self.load_view(snap.kvs());
        self.joined.store(true, Ordering::Release);
        tracing::info!(
            node = self.opts.node,
            "joined the cluster at revision {rev}"
        );
        let (err_tx, mut err_rx) = tokio::sync::mpsc::channel::<String>(1);
        let watcher = tokio::spawn(self.clone().watch(rev + 1, err_tx));
        let _stop = AbortOnDrop(watcher);
        // LUs already attached re-sync now; new ones as the reconcile finds them.
        let attached: Vec<Arc<Lu>> = self.lus.lock().values().cloned().collect();
        for lu in attached {
            self.try_sync(&lu).await;
        }
        self.dead_peers().await;
        let beat = self.opts.ttl / 5;
        let mut beat_tick = tokio::time::interval(beat);
        let mut reconcile = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = beat_tick.tick() => {
                    let oldest = unanswered.front().map(Instant::elapsed);
                    if oldest.is_some_and(|t| t >= self.opts.ttl) {
                        // Nothing answered for a whole TTL: the lease has expired or is about
                        // to; the stream may be stuck behind a member that stopped answering.
                        return Err(format!("no lease keep-alive answered in {:?}", self.opts.ttl));
                    }
                    if oldest.is_some_and(|t| t >= beat) {
                        tracing::warn!("lease keep-alive not answered in {beat:?}");
                    }
                    let sent = Instant::now();
                    match tokio::time::timeout(beat, keeper.keep_alive()).await {
                        Ok(Ok(())) => unanswered.push_back(sent),
                        // The request may or may not be on the stream: pairing responses with
                        // sends is lost, so start again on a new stream.
                        Ok(Err(_)) | Err(_) => {
                            tracing::warn!("lease keep-alive could not be sent: opening a new keep-alive stream");
                            (keeper, alive) = self.keep_alive_stream(lease).await?;
                            unanswered.clear();
                        }
                    }
                }
                m = alive.message() => match m {
                    Ok(Some(r)) => {
                        let Some(sent) = unanswered.pop_front() else {
                            // More answers than requests: nothing to extend from.
                            tracing::warn!("lease keep-alive answer without a request");
                            continue;
                        };
                        if r.ttl() <= 0 {
                            return Err("the lease expired".into());
                        }
                        self.extend(sent);
                    }
                    // etcd unreachable or the stream ended: the deadline is not moved; the lease
                    // may yet be kept through a new stream.
                    Ok(None) | Err(_) => {
                        match m {
                            Err(e) => tracing::warn!("lease keep-alive failed: {e}"),
                            _ => tracing::warn!("lease keep-alive stream ended"),
                        }
                        (keeper, alive) = self.keep_alive_stream(lease).await?;
                        unanswered.clear();
                    }
                },
                _ = reconcile.tick() => {
                    // A failed step is tried again at the next tick; only the lease or the
                    // watch ends a session.
                    if let Err(e) = self.reconcile().await {
                        tracing::warn!("cluster: {e}");
                    }
                }
                e = err_rx.recv() => return Err(e.unwrap_or_else(|| "watch ended".into())),
            }
        }
    }

    /// A keep-alive stream for `lease`. Opening it sends a keep-alive and reads its answer
    /// (etcd-client does; an expired lease is an error), which extends the deadline.
    async fn keep_alive_stream(
        &self,
        lease: i64,
    ) -> Result<(LeaseKeeper, LeaseKeepAliveStream), String> {
        let mut c = self.conn.client();
        let sent = Instant::now();
        let (k, a) = c
            .lease_keep_alive(lease)
            .await
            .map_err(|e| self.conn.failed(e))?;
        self.extend(sent);
        Ok((k, a))
    }

    /// A keep-alive sent at `sent` was answered: serve until 60 % of the TTL after it.
    fn extend(&self, sent: Instant) {
        let until = sent + self.opts.ttl * 3 / 5;
        *self.deadline.lock() = Some(until);
        for lu in self.lus.lock().values() {
            if lu.synced.load(Ordering::Acquire) {
                lu.dev.set_serve_deadline(Some(until));
            }
        }
    }

    /// Acknowledge revision `rev` of an LU's PR state (never going backwards).
    pub(crate) async fn ack(&self, lu: &Lu, rev: u64) -> Result<(), String> {
        let mut acked = lu.acked.lock().await;
        if rev <= *acked {
            return Ok(());
        }
        let lease = self.lease.load(Ordering::Acquire);
        let mut c = self.conn.client();
        c.put(
            keys::ack(&lu.serial, &self.opts.node),
            keys::rev_value(rev),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .map_err(|e| self.conn.failed(e))?;
        *acked = rev;
        Ok(())
    }
}

/// Aborts a task when dropped (the watch of a session that ended).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
