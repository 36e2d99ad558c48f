//! [`PrShare`] on etcd: a PR OUT of a clustered LU becomes one transaction guarded by the
//! revision of the LU's PR key and by this gateway's membership key (which lives only as long
//! as its lease); GOOD waits until every live gateway serving the LU has acknowledged the new
//! revision (each acknowledges after applying it: state, unit attentions, PREEMPT AND ABORT's
//! aborts on its own nexuses).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
use ironlun_engine::pr::{PrChange, PrShare, ShareError};

use crate::keys::{self, Key};
use crate::{Inner, Lu};

/// How often a waiting PR OUT looks at the acknowledgements again.
const POLL: Duration = Duration::from_millis(2);

pub(crate) struct EtcdShare {
    pub(crate) inner: Arc<Inner>,
    pub(crate) lu: Arc<Lu>,
}

fn unavailable(e: impl std::fmt::Display) -> ShareError {
    ShareError::Unavailable(e.to_string())
}

impl EtcdShare {
    fn ready(&self) -> Result<(), ShareError> {
        if !self.inner.joined.load(Ordering::Acquire) || !self.lu.synced.load(Ordering::Acquire) {
            return Err(unavailable("this gateway is not in sync with the cluster"));
        }
        Ok(())
    }

    async fn commit_async(&self, base: u64, change: &PrChange) -> Result<u64, ShareError> {
        let serial = &self.lu.serial;
        let pr_key = keys::pr(serial);
        let member = keys::member(&self.inner.opts.node);
        let value = serde_json::to_vec(change).map_err(unavailable)?;
        let base = i64::try_from(base).map_err(unavailable)?;
        let txn = Txn::new()
            .when(vec![
                Compare::mod_revision(pr_key.clone(), CompareOp::Equal, base),
                Compare::version(member.clone(), CompareOp::Greater, 0),
            ])
            .and_then(vec![TxnOp::put(pr_key, value, None)])
            .or_else(vec![TxnOp::get(member, None)]);
        let mut client = self.inner.conn.client();
        let resp = tokio::time::timeout(self.inner.opts.ttl, client.txn(txn))
            .await
            .map_err(|_| unavailable(self.inner.conn.failed("etcd did not answer in time")))?
            .map_err(|e| unavailable(self.inner.conn.failed(e)))?;
        if resp.succeeded() {
            let rev = resp.header().map_or(0, |h| h.revision());
            return u64::try_from(rev).map_err(unavailable);
        }
        let member_gone = resp.op_responses().iter().any(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().is_empty(),
            _ => false,
        });
        if member_gone {
            return Err(unavailable("this gateway's membership lease is gone"));
        }
        Err(ShareError::Stale)
    }

    /// Every live gateway that serves the LU (a member with a port record and an
    /// acknowledgement key) has acknowledged `rev`?
    async fn all_acked(&self, rev: u64) -> Result<bool, ShareError> {
        let serial = &self.lu.serial;
        let pfx = || Some(GetOptions::new().with_prefix());
        let txn = Txn::new().and_then(vec![
            TxnOp::get(keys::members(), pfx()),
            TxnOp::get(keys::ports(serial), pfx()),
            TxnOp::get(keys::acks(serial), pfx()),
        ]);
        let mut client = self.inner.conn.client();
        let resp = client
            .txn(txn)
            .await
            .map_err(|e| unavailable(self.inner.conn.failed(e)))?;
        let r = resp.op_responses();
        let keys_of = |i: usize| -> Vec<(String, String)> {
            match r.get(i) {
                Some(TxnOpResponse::Get(g)) => g
                    .kvs()
                    .iter()
                    .filter_map(|kv| {
                        let node = match keys::parse(kv.key_str().unwrap_or_default()) {
                            Key::Member(n) | Key::Ports(_, n) | Key::Ack(_, n) => n.to_string(),
                            _ => return None,
                        };
                        Some((node, kv.value_str().unwrap_or_default().to_string()))
                    })
                    .collect(),
                _ => Vec::new(),
            }
        };
        let members = keys_of(0);
        let ports = keys_of(1);
        let acks = keys_of(2);
        let waiting = acks.iter().any(|(node, v)| {
            let live = members.iter().any(|(m, _)| m == node);
            let serves = ports.iter().any(|(p, _)| p == node);
            live && serves && v.parse::<u64>().unwrap_or(0) < rev
        });
        Ok(!waiting)
    }

    async fn confirm_async(&self, rev: u64) -> Result<(), ShareError> {
        self.inner.ack(&self.lu, rev).await.map_err(unavailable)?;
        let until = Instant::now() + self.inner.opts.ttl * 2;
        loop {
            if self.all_acked(rev).await? {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(unavailable(format!(
                    "not every gateway acknowledged PR revision {rev} within {:?}",
                    self.inner.opts.ttl * 2
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn catch_up_async(&self) -> Result<(), ShareError> {
        let mut client = self.inner.conn.client();
        let resp = client
            .get(keys::pr(&self.lu.serial), None)
            .await
            .map_err(|e| unavailable(self.inner.conn.failed(e)))?;
        let want = resp
            .kvs()
            .first()
            .map_or(0, |kv| u64::try_from(kv.mod_revision()).unwrap_or(0));
        let until = Instant::now() + self.inner.opts.ttl * 2;
        while self.lu.dev.pr_revision() < want {
            if Instant::now() > until {
                return Err(unavailable(format!(
                    "this gateway did not apply PR revision {want} in time"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }
}

impl PrShare for EtcdShare {
    fn commit(&self, base: u64, change: &PrChange) -> Result<u64, ShareError> {
        self.ready()?;
        self.inner.block(self.commit_async(base, change))
    }

    fn confirm(&self, rev: u64) -> Result<(), ShareError> {
        self.inner.block(self.confirm_async(rev))
    }

    fn catch_up(&self) -> Result<(), ShareError> {
        self.ready()?;
        self.inner.block(self.catch_up_async())
    }
}
