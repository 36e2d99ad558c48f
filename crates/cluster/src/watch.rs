//! The one watch of a session: every change under the cluster's keys, in revision order,
//! applied to this gateway's view and LUs. PR changes are applied (state, unit attentions,
//! aborts) on a blocking thread and then acknowledged; the next event waits for that.

use std::sync::Arc;

use etcd_client::{EventType, GetOptions, WatchOptions};
use ironlun_engine::pr::{PrChange, RemotePort};
use tokio::sync::mpsc::Sender;

use crate::keys::{self, Key};

/// Why a watch stopped.
enum Broken {
    /// Watch again from the next revision.
    Retry(String),
    /// This session's view cannot be trusted any more: join again.
    Lost(String),
}
use crate::Inner;

impl Inner {
    pub(crate) async fn watch(self: Arc<Self>, from: i64, err: Sender<String>) {
        // A watch that breaks (its etcd member died, a leader election) starts again from the
        // next revision not yet applied; only history etcd compacted away ends the session
        // (which re-syncs everything).
        let mut next = from;
        loop {
            match self.clone().follow(&mut next).await {
                Ok(()) => {}
                Err(Broken::Lost(e)) => {
                    let _ = err.send(format!("watch: {e}")).await;
                    return;
                }
                Err(Broken::Retry(e)) => tracing::warn!("watch broke: {e}; watching again"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    async fn follow(self: Arc<Self>, next: &mut i64) -> Result<(), Broken> {
        let mut c = self.conn.client();
        let opts = WatchOptions::new().with_prefix().with_start_revision(*next);
        let mut stream = c
            .watch(keys::ROOT, Some(opts))
            .await
            .map_err(|e| Broken::Retry(self.conn.failed(e)))?;
        while let Some(resp) = stream
            .message()
            .await
            .map_err(|e| Broken::Retry(self.conn.failed(e)))?
        {
            if resp.compact_revision() > 0 {
                return Err(Broken::Lost(format!(
                    "etcd compacted the history past revision {next}"
                )));
            }
            if resp.canceled() {
                return Err(Broken::Retry(format!(
                    "cancelled by etcd: {}",
                    resp.cancel_reason()
                )));
            }
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                let key = kv.key_str().unwrap_or_default();
                let put = ev.event_type() == EventType::Put;
                let rev = u64::try_from(kv.mod_revision()).unwrap_or(0);
                self.event(key, put, kv.value(), rev)
                    .await
                    .map_err(Broken::Lost)?;
                *next = kv.mod_revision() + 1;
            }
        }
        Err(Broken::Retry("the watch stream ended".into()))
    }

    async fn event(&self, key: &str, put: bool, value: &[u8], rev: u64) -> Result<(), String> {
        match keys::parse(key) {
            Key::Member(node) => {
                if put {
                    self.view.lock().members.insert(node.to_string());
                } else {
                    self.view.lock().members.remove(node);
                    if node != self.opts.node {
                        tracing::warn!("gateway {node} left the cluster");
                        self.dead_peers().await;
                    }
                }
            }
            Key::Pr(serial) if put => {
                let Some(lu) = self.lus.lock().get(serial).cloned() else {
                    return Ok(());
                };
                let change: PrChange = serde_json::from_slice(value)
                    .map_err(|e| format!("{key}: not a PR change: {e}"))?;
                let dev = lu.dev.clone();
                tokio::task::spawn_blocking(move || dev.apply_shared_pr(rev, &change))
                    .await
                    .map_err(|e| e.to_string())?;
                if lu.synced.load(std::sync::atomic::Ordering::Acquire) {
                    self.ack(&lu, rev).await?;
                }
            }
            Key::Ports(serial, node) => {
                let ports: Vec<RemotePort> = if put {
                    serde_json::from_slice(value).unwrap_or_default()
                } else {
                    Vec::new()
                };
                {
                    let mut v = self.view.lock();
                    let of = v.ports.entry(serial.to_string()).or_default();
                    if put {
                        of.insert(node.to_string(), ports);
                    } else {
                        of.remove(node);
                    }
                }
                if let Some(lu) = self.lus.lock().get(serial).cloned() {
                    self.set_remote(&lu);
                }
            }
            Key::Config(node) if put && node == self.opts.node => {
                let _ = self.fragments.send((value.to_vec(), rev));
            }
            Key::Group(serial, id) => {
                let Some(state) = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok())
                else {
                    return Ok(());
                };
                let lu = self.lus.lock().get(serial).cloned();
                match lu {
                    Some(lu) => {
                        let _g = lu.alua.lock().await;
                        self.view
                            .lock()
                            .groups
                            .insert((serial.to_string(), id), state);
                        let dev = lu.dev.clone();
                        tokio::task::spawn_blocking(move || {
                            dev.apply_shared_group_state(id, state)
                        })
                        .await
                        .map_err(|e| e.to_string())?;
                    }
                    None => {
                        self.view
                            .lock()
                            .groups
                            .insert((serial.to_string(), id), state);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A fresh read of everything under one LU's keys: (PR change and its revision, the
    /// header revision).
    pub(crate) async fn read_lu(&self, serial: &str) -> Result<Option<(u64, PrChange)>, String> {
        let mut c = self.conn.client();
        let r = c
            .get(keys::pr(serial), Some(GetOptions::new()))
            .await
            .map_err(|e| self.conn.failed(e))?;
        let Some(kv) = r.kvs().first() else {
            return Ok(None);
        };
        let change: PrChange = serde_json::from_slice(kv.value())
            .map_err(|e| format!("{}: not a PR change: {e}", keys::pr(serial)))?;
        Ok(Some((
            u64::try_from(kv.mod_revision()).unwrap_or(0),
            change,
        )))
    }
}
