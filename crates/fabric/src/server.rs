//! Portals and listeners (RFC 7143 §3.4 network portals), applying a configuration, and
//! shutdown. One tokio task per listener; each accepted connection gets a login task
//! (`login`) that becomes the connection's reader (`conn`), with a writer task beside it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::shared::{FabricOptions, Shared};
use crate::stats::FabricStats;
use crate::FabricConfig;

struct Listener {
    local: SocketAddr,
    task: JoinHandle<()>,
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
        Arc::new(Fabric {
            shared: Arc::new(Shared::new(options)),
            listeners: tokio::sync::Mutex::new(HashMap::new()),
            listening: Mutex::new(Vec::new()),
        })
    }

    /// Sessions, connections, failed logins and digest errors (docs/metrics.md).
    pub fn stats(&self) -> FabricStats {
        let sh = &self.shared;
        let all = sh.registry.all();
        let discovery = all.iter().filter(|s| s.is_discovery()).count();
        let connections = sh
            .options
            .max_connections
            .saturating_sub(sh.connections.available_permits());
        sh.counters
            .snapshot(all.len() - discovery, discovery, connections)
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
        let config = Arc::new(config);
        *self.shared.config.write() = config.clone();
        // A session whose target portal group was disabled or removed ends now, as LIO ends
        // them when a TPG's `enable` goes to 0: its initiator sees the transport go away
        // (and may fail over) instead of a port that silently stays open.
        for s in self.shared.registry.all() {
            let Some(target) = s.target.as_deref() else {
                continue;
            };
            let live = config
                .targets
                .iter()
                .filter(|t| t.name == target)
                .flat_map(|t| t.tpgs.iter())
                .any(|g| g.tpgt == s.tpgt && g.enabled);
            if !live {
                info!(
                    tsih = s.tsih,
                    target,
                    tpgt = s.tpgt,
                    "session closed: its portal group is disabled or gone"
                );
                self.shared.registry.remove(&s);
                s.close();
            }
        }
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

    /// Every session now registered, by TSIH (discovery sessions included).
    pub fn sessions(&self) -> Vec<crate::SessionInfo> {
        let mut v: Vec<crate::SessionInfo> = self
            .shared
            .registry
            .all()
            .iter()
            .map(|s| crate::SessionInfo {
                tsih: s.tsih,
                initiator: s.initiator.clone(),
                isid: s.isid,
                target: s.target.clone(),
                tpgt: s.tpgt,
                params: s.params.clone(),
                connections: s.conn_infos(),
                commands: s.nexus.as_ref().map_or([0; 3], |n| {
                    let st = n.io_stats();
                    [0, 1, 2].map(|i| st.classes[i].count)
                }),
            })
            .collect();
        v.sort_by_key(|s| s.tsih);
        v
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
            s.request_logout();
        }
        self.shared.wait_drained(Duration::from_secs(10)).await;
        for s in sessions {
            self.shared.registry.remove(&s);
            s.close();
        }
        self.shared.wait_drained(Duration::from_secs(10)).await;
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
            shared.counters.login_timed_out();
            warn!(%peer, "login timed out");
        }
        return;
    };
    let (rd, wr) = stream.into_split();
    crate::conn::run(ok.setup, rd, wr, ok.leftover).await;
    drop(ok.slot);
}
