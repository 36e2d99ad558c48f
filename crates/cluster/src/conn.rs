//! The connection to etcd: one member at a time. etcd-client's balanced channel keeps sending
//! to a member that died (every other request fails with "connection refused"), so this
//! gateway talks to one member and, when a request fails, moves to the next one that answers.
//! Streams (the lease keep-alive, the watch) break with the old connection and are opened
//! again by their loops on the new one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use parking_lot::Mutex;

pub(crate) struct Conn {
    endpoints: Vec<String>,
    ttl: Duration,
    /// The member in use (index into `endpoints`) and its client.
    now: Mutex<(usize, Client)>,
    /// A move to another member is under way.
    moving: AtomicBool,
}

impl Conn {
    fn options(ttl: Duration) -> ConnectOptions {
        ConnectOptions::new()
            .with_connect_timeout(ttl / 2)
            .with_timeout(ttl)
            .with_keep_alive(ttl / 4, ttl / 2)
    }

    /// Connect to the first member (from `from` on) that answers.
    async fn any(
        endpoints: &[String],
        from: usize,
        ttl: Duration,
    ) -> Result<(usize, Client), String> {
        let mut last = String::from("no endpoints");
        for k in 0..endpoints.len() {
            let i = (from + k) % endpoints.len();
            match Client::connect([&endpoints[i]], Some(Conn::options(ttl))).await {
                Ok(mut c) => match tokio::time::timeout(ttl / 2, c.status()).await {
                    Ok(Ok(_)) => return Ok((i, c)),
                    Ok(Err(e)) => last = format!("{}: {e}", endpoints[i]),
                    Err(_) => last = format!("{}: no answer in {:?}", endpoints[i], ttl / 2),
                },
                Err(e) => last = format!("{}: {e}", endpoints[i]),
            }
        }
        Err(last)
    }

    pub(crate) async fn connect(
        endpoints: Vec<String>,
        ttl: Duration,
    ) -> Result<Arc<Conn>, String> {
        let now = Conn::any(&endpoints, 0, ttl).await?;
        Ok(Arc::new(Conn {
            endpoints,
            ttl,
            now: Mutex::new(now),
            moving: AtomicBool::new(false),
        }))
    }

    pub(crate) fn client(&self) -> Client {
        self.now.lock().1.clone()
    }

    /// A request failed: say why, and move to another member (in the background, once).
    pub(crate) fn failed(self: &Arc<Self>, e: impl std::fmt::Display) -> String {
        if !self.moving.swap(true, Ordering::AcqRel) {
            let me = self.clone();
            tokio::spawn(async move {
                let from = me.now.lock().0 + 1;
                match Conn::any(&me.endpoints, from, me.ttl).await {
                    Ok((i, c)) => {
                        tracing::info!("etcd: now through {}", me.endpoints[i]);
                        *me.now.lock() = (i, c);
                    }
                    Err(e) => tracing::warn!("etcd: no member answers: {e}"),
                }
                me.moving.store(false, Ordering::Release);
            });
        }
        e.to_string()
    }
}
