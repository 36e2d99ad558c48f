//! Portals, listeners and the fabric's shared state (RFC 7143 §3.4 network portals). One
//! tokio task per listener; each accepted connection gets a login task that becomes the
//! connection's reader, with a writer task beside it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ironlun_iscsi::pdu::{async_event, AsyncMessage};
use ironlun_iscsi::text;
use ironlun_iscsi::{Bhs, Pdu};
use parking_lot::{Mutex, RwLock};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::conn::Sn;
use crate::session::Registry;
use crate::{FabricConfig, TpgConfig};

/// Tunables of the server (timeouts and limits); [`Fabric::new`] uses the defaults.
#[derive(Clone, Debug)]
pub struct FabricOptions {
    /// The whole login phase must finish within this time.
    pub login_timeout: Duration,
    /// Idle time after which the target pings with a NOP-In.
    pub nop_interval: Duration,
    /// Time allowed for the NOP-Out answering a ping before the connection is dropped.
    pub nop_timeout: Duration,
    /// Connections accepted but not yet logged in; further ones are refused.
    pub max_pending_logins: usize,
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
            runners_per_connection: 4,
        }
    }
}

struct Listener {
    local: SocketAddr,
    task: JoinHandle<()>,
}

/// State shared by every task of the fabric.
pub(crate) struct Shared {
    pub config: RwLock<Arc<FabricConfig>>,
    pub registry: Registry,
    pub options: FabricOptions,
    pub runtime: tokio::runtime::Handle,
    pub pending_logins: Arc<Semaphore>,
    in_flight: AtomicUsize,
    drained: Notify,
    /// Configured portal → actual listening address (port 0 resolved).
    pub resolved: RwLock<HashMap<SocketAddr, SocketAddr>>,
}

impl Shared {
    pub(crate) fn begin_command(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }
    pub(crate) fn end_command(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drained.notify_waiters();
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
}

/// The running iSCSI server.
pub struct Fabric {
    shared: Arc<Shared>,
    listeners: tokio::sync::Mutex<HashMap<SocketAddr, Listener>>,
    listening: Mutex<Vec<SocketAddr>>,
}

impl Fabric {
    /// A fabric with no portals; call [`Fabric::apply`] to configure it. Must be called
    /// inside a tokio runtime.
    pub fn new() -> Arc<Fabric> {
        Fabric::with_options(FabricOptions::default())
    }

    /// Like [`Fabric::new`] with explicit timeouts and limits.
    pub fn with_options(options: FabricOptions) -> Arc<Fabric> {
        let shared = Arc::new(Shared {
            config: RwLock::new(Arc::new(FabricConfig::default())),
            registry: Registry::default(),
            pending_logins: Arc::new(Semaphore::new(options.max_pending_logins)),
            options,
            runtime: tokio::runtime::Handle::current(),
            in_flight: AtomicUsize::new(0),
            drained: Notify::new(),
            resolved: RwLock::new(HashMap::new()),
        });
        Arc::new(Fabric {
            shared,
            listeners: tokio::sync::Mutex::new(HashMap::new()),
            listening: Mutex::new(Vec::new()),
        })
    }

    /// Swap in a new configuration: bind portals that are new (Err if one cannot be bound,
    /// leaving the previous configuration in force), close listeners of removed portals.
    pub async fn apply(&self, config: FabricConfig) -> Result<(), String> {
        let mut listeners = self.listeners.lock().await;
        let mut wanted: Vec<SocketAddr> = config
            .targets
            .iter()
            .flat_map(|t| t.tpgs.iter())
            .flat_map(|g| g.portals.iter().copied())
            .collect();
        wanted.sort();
        wanted.dedup();
        let mut bound = Vec::new();
        for p in &wanted {
            if listeners.contains_key(p) {
                continue;
            }
            match bind(*p).await {
                Ok(l) => bound.push((*p, l)),
                Err(e) => {
                    // Leave the previous configuration in force; new sockets close on drop.
                    return Err(format!("cannot listen on {p}: {e}"));
                }
            }
        }
        *self.shared.config.write() = Arc::new(config);
        for (p, l) in bound {
            let local = l.local_addr().map_err(|e| e.to_string())?;
            info!(portal = %p, listening = %local, "portal up");
            let task = tokio::spawn(accept_loop(l, p, self.shared.clone()));
            listeners.insert(p, Listener { local, task });
        }
        let removed: Vec<SocketAddr> = listeners
            .keys()
            .filter(|p| !wanted.contains(p))
            .copied()
            .collect();
        for p in removed {
            if let Some(l) = listeners.remove(&p) {
                l.task.abort();
                info!(portal = %p, "portal down");
            }
        }
        let resolved: HashMap<SocketAddr, SocketAddr> =
            listeners.iter().map(|(p, l)| (*p, l.local)).collect();
        *self.listening.lock() = resolved.values().copied().collect();
        *self.shared.resolved.write() = resolved;
        Ok(())
    }

    /// Addresses actually listening (after apply; port 0 portals resolved).
    pub fn listening(&self) -> Vec<SocketAddr> {
        let mut v = self.listening.lock().clone();
        v.sort();
        v
    }

    /// Stop accepting, log out/close every connection, wait for in-flight commands.
    pub async fn shutdown(&self) {
        let mut listeners = self.listeners.lock().await;
        for (_, l) in listeners.drain() {
            l.task.abort();
        }
        self.listening.lock().clear();
        let sessions = self.shared.registry.all();
        // Ask initiators to log out (§11.9.1 event 1) before the connections go away.
        for s in &sessions {
            for c in s.conns.lock().iter() {
                c.send(
                    Pdu::new(Bhs::AsyncMessage(AsyncMessage {
                        lun: [0; 8],
                        stat_sn: 0,
                        exp_cmd_sn: 0,
                        max_cmd_sn: 0,
                        event: async_event::LOGOUT_REQUEST,
                        vcode: 0,
                        param1: 0,
                        param2: 0,
                        param3: 0,
                    })),
                    Sn::Advance,
                );
            }
        }
        self.wait_drained(Duration::from_secs(10)).await;
        for s in sessions {
            self.shared.registry.remove(&s);
            s.close();
        }
        self.wait_drained(Duration::from_secs(10)).await;
    }

    async fn wait_drained(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.shared.in_flight.load(Ordering::Acquire) > 0 {
            let notified = self.shared.drained.notified();
            if self.shared.in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                warn!("shutdown: commands still running after the drain timeout");
                break;
            }
        }
    }
}

async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(1024)
}

async fn accept_loop(l: TcpListener, portal: SocketAddr, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(10);
    loop {
        match l.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(10);
                let Ok(permit) = shared.pending_logins.clone().try_acquire_owned() else {
                    // Too many connections still in login: refuse this one (bounded memory).
                    warn!(%peer, "too many pending logins; connection refused");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let sh = shared.clone();
                tokio::spawn(handle_connection(stream, peer, portal, sh, permit));
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    portal: SocketAddr,
    shared: Arc<Shared>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let local = stream.local_addr().unwrap_or(portal);
    let mut stream = stream;
    let timeout = shared.options.login_timeout;
    let outcome = tokio::time::timeout(
        timeout,
        crate::login::login(&mut stream, peer, portal, local, &shared),
    )
    .await;
    drop(permit);
    let Ok(Some(ok)) = outcome else {
        if outcome.is_err() {
            warn!(%peer, "login timed out");
        }
        return;
    };
    let (rd, wr) = stream.into_split();
    crate::conn::run(ok.setup, rd, wr, ok.leftover).await;
}
