//! State shared by every task of the fabric: the configuration snapshot, the session registry,
//! the server's tunables, the count of commands in flight (so shutdown can drain them) and the
//! SendTargets listing built from the configuration (RFC 7143 Appendix C).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ironlun_iscsi::text;
use parking_lot::RwLock;
use tokio::sync::{Notify, Semaphore};
use tracing::warn;

use crate::guard::AuthGuard;
use crate::session::Registry;
use crate::stats::Counters;
use crate::{FabricConfig, TpgConfig};

/// Tunables of the server (timeouts and limits); [`crate::Fabric::new`] uses the defaults.
#[derive(Clone, Debug)]
pub struct FabricOptions {
    /// The whole login phase must finish within this time.
    pub login_timeout: Duration,
    /// Idle time after which the target pings with a NOP-In.
    pub nop_interval: Duration,
    /// Time allowed for the NOP-Out answering a ping before the connection is dropped.
    pub nop_timeout: Duration,
    /// Connections accepted but not yet logged in; further ones are closed at once.
    pub max_pending_logins: usize,
    /// Connections past login (full feature phase), all sessions together; a login beyond
    /// them gets 0x0302 (out of resources, RFC 7143 §11.13.5).
    pub max_connections: usize,
    /// Sessions of one initiator name (every target, discovery included); a new session
    /// beyond them gets 0x0302. Reinstating a session (same ISID) does not count twice.
    pub max_sessions_per_initiator: usize,
    /// Bytes of write data one connection may hold for commands still gathering their
    /// Data-Out; a command that would pass it gets TASK SET FULL.
    pub max_buffered_write_bytes: u64,
    /// Failed authentications from one initiator name or source address after which its
    /// logins are refused (0x0201) for `auth_fail_window`; 0 = no back-off (`guard`).
    pub auth_fail_limit: u32,
    /// The window the failures are counted in, and how long the refusal lasts.
    pub auth_fail_window: Duration,
    /// Commands of one connection that may execute at once on the blocking pool. Each runner
    /// drains the connection's queue of ready commands before it returns, so under load a
    /// command costs no thread wake-up; more than one lets slow media overlap I/O.
    pub runners_per_connection: usize,
}

impl Default for FabricOptions {
    fn default() -> Self {
        FabricOptions {
            login_timeout: Duration::from_secs(15),
            nop_interval: Duration::from_secs(15),
            nop_timeout: Duration::from_secs(15),
            max_pending_logins: 256,
            max_connections: 1024,
            max_sessions_per_initiator: 64,
            max_buffered_write_bytes: 512 << 20,
            auth_fail_limit: 5,
            auth_fail_window: Duration::from_secs(60),
            runners_per_connection: 4,
        }
    }
}

/// State shared by every task of the fabric.
pub(crate) struct Shared {
    pub config: RwLock<Arc<FabricConfig>>,
    pub registry: Registry,
    pub options: FabricOptions,
    pub runtime: tokio::runtime::Handle,
    pub pending_logins: Arc<Semaphore>,
    /// One permit per connection past login (`max_connections`).
    pub connections: Arc<Semaphore>,
    pub auth_guard: AuthGuard,
    /// Failed logins and digest errors (`crate::stats`).
    pub counters: Arc<Counters>,
    in_flight: AtomicUsize,
    drained: Notify,
    /// Configured portal → actual listening address (port 0 resolved).
    pub resolved: RwLock<HashMap<SocketAddr, SocketAddr>>,
}

impl Shared {
    /// Empty configuration, no sessions; must be called inside a tokio runtime.
    pub(crate) fn new(options: FabricOptions) -> Shared {
        Shared {
            config: RwLock::new(Arc::new(FabricConfig::default())),
            registry: Registry::default(),
            pending_logins: Arc::new(Semaphore::new(options.max_pending_logins)),
            connections: Arc::new(Semaphore::new(options.max_connections)),
            auth_guard: AuthGuard::new(options.auth_fail_limit, options.auth_fail_window),
            counters: Arc::default(),
            options,
            runtime: tokio::runtime::Handle::current(),
            in_flight: AtomicUsize::new(0),
            drained: Notify::new(),
            resolved: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn begin_command(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn end_command(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drained.notify_waiters();
        }
    }

    /// Wait until no command is in flight, or `limit` has passed.
    pub(crate) async fn wait_drained(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.in_flight.load(Ordering::Acquire) > 0 {
            let notified = self.drained.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                warn!("shutdown: commands still running after the drain timeout");
                break;
            }
        }
    }

    /// The TPGs of `target` reachable through `portal` (the configured address the
    /// connection came in on).
    pub(crate) fn find_tpg(&self, target: &str, portal: SocketAddr) -> Option<TpgConfig> {
        let cfg = self.config.read().clone();
        let t = cfg.targets.iter().find(|t| t.name == target)?;
        t.tpgs
            .iter()
            .find(|g| g.enabled && g.portals.contains(&portal))
            .cloned()
    }

    /// SendTargets text (RFC 7143 Appendix C): `value` is "All", a target name or empty.
    /// In a normal session only the session's own target is reported. Only enabled TPGs
    /// the initiator may log in to are listed.
    pub(crate) fn send_targets(
        &self,
        value: &str,
        initiator: &str,
        session_target: Option<&str>,
        local: SocketAddr,
    ) -> Vec<u8> {
        let cfg = self.config.read().clone();
        let resolved = self.resolved.read().clone();
        let mut out = Vec::new();
        for t in &cfg.targets {
            let wanted = match session_target {
                Some(own) => t.name == own && (value.is_empty() || value == "All" || value == own),
                None => value == "All" || value == t.name,
            };
            // Targets the initiator has no ACL on (and no demo mode) stay hidden, as in LIO.
            let tpgs: Vec<&TpgConfig> = t
                .tpgs
                .iter()
                .filter(|g| g.enabled && g.port.allows(initiator))
                .collect();
            if !wanted || tpgs.is_empty() {
                continue;
            }
            text::encode_pair(&mut out, "TargetName", &t.name);
            for g in tpgs {
                for p in &g.portals {
                    let mut addr = resolved.get(p).copied().unwrap_or(*p);
                    if addr.ip().is_unspecified() {
                        // A wildcard portal: report the address this initiator reached us on.
                        addr.set_ip(local.ip());
                    }
                    let a = match addr.ip() {
                        IpAddr::V4(ip) => format!("{ip}:{},{}", addr.port(), g.tpgt),
                        IpAddr::V6(ip) => format!("[{ip}]:{},{}", addr.port(), g.tpgt),
                    };
                    text::encode_pair(&mut out, "TargetAddress", &a);
                }
            }
        }
        out
    }

    /// The keep-alive of connections to `target` through TPG `tpgt` (`None`: discovery): the
    /// TPG's `attrib/nopin_timeout`, else the server default.
    pub(crate) fn keep_alive(&self, target: Option<&str>, tpgt: u16) -> crate::NopIn {
        target
            .and_then(|t| {
                let cfg = self.config.read().clone();
                cfg.targets
                    .iter()
                    .find(|x| x.name == t)
                    .and_then(|x| x.tpgs.iter().find(|g| g.tpgt == tpgt))
                    .and_then(|g| g.nopin)
            })
            .unwrap_or(crate::NopIn::Every {
                interval: self.options.nop_interval,
                response: self.options.nop_timeout,
            })
    }
}
