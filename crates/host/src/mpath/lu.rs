//! [`MultipathLu`]: the public face of the engine: open over N URLs, send commands, the
//! block limits of the LU (Block Limits VPD 0xB0 and Logical Block Provisioning VPD 0xB2,
//! SBC-4 §6.6.4, §6.6.6), a status snapshot, and mpathpersist's register-on-every-path.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ironlun_initiator::pr::{prout_cdb, ProutParams};
use ironlun_initiator::Bytes;
use ironlun_initiator::CommandResult;
use tokio::task::JoinHandle;

use super::engine::{open_inner, spawn_checker, Inner, MpathOptions};
use super::path::{send, Cmd, Sent};
use super::policy::{classify, MultipathStatus, PathStatus, Verdict};
use crate::ctx::Ctx;
use crate::inquiry::vpd_block::{decode_block_limits, decode_provisioning};
use crate::inquiry::{fetch, Fetched};
use crate::url::IscsiUrl;
use crate::{HostError, Result};

/// The request size when the LU names no MAXIMUM TRANSFER LENGTH.
pub const DEFAULT_MAX_REQUEST: u32 = 1 << 20;
/// The largest request offered in any case (NBD clients expect at most 32 MiB).
pub const MAX_REQUEST_CAP: u32 = 32 << 20;
/// PERSISTENT RESERVE OUT service action REGISTER AND IGNORE EXISTING KEY (SPC-4 §6.16.2).
const REGISTER_AND_IGNORE: u8 = 0x06;

/// What the LU takes in one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes per READ/WRITE.
    pub max_request: u32,
    /// UNMAP is supported (LBPU, and a non-zero MAXIMUM UNMAP LBA COUNT).
    pub unmap: bool,
    /// Blocks per UNMAP descriptor (and command).
    pub max_unmap_blocks: u32,
    /// Blocks per WRITE SAME (0: no limit given).
    pub max_write_same_blocks: u64,
}

/// The limits from the pages' bytes (either may be missing).
pub fn limits_from(b0: Option<&[u8]>, b2: Option<&[u8]>, block_size: u32) -> Limits {
    let bl = b0.and_then(|p| decode_block_limits(p).ok());
    let lbpu = b2
        .and_then(|p| decode_provisioning(p).ok())
        .is_some_and(|p| p.lbpu);
    let mtl = bl.as_ref().map_or(0, |b| b.maximum_transfer_length);
    let max_request = if mtl == 0 {
        DEFAULT_MAX_REQUEST
    } else {
        u32::try_from(u64::from(mtl) * u64::from(block_size))
            .unwrap_or(u32::MAX)
            .min(MAX_REQUEST_CAP)
    };
    let max_unmap_blocks = bl
        .as_ref()
        .and_then(|b| b.maximum_unmap_lba_count)
        .unwrap_or(0);
    Limits {
        max_request: max_request.max(block_size),
        unmap: lbpu
            && max_unmap_blocks > 0
            && bl
                .as_ref()
                .is_some_and(|b| b.maximum_unmap_block_descriptor_count.unwrap_or(0) > 0),
        max_unmap_blocks,
        max_write_same_blocks: bl.and_then(|b| b.maximum_write_same_length).unwrap_or(0),
    }
}

/// One logical unit over N paths (module docs of [`super`]).
#[derive(Debug)]
pub struct MultipathLu {
    pub(super) inner: Arc<Inner>,
    pub(super) limits: Limits,
    checker: JoinHandle<()>,
}

impl Drop for MultipathLu {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.stop.send_replace(true);
        self.checker.abort();
    }
}

impl MultipathLu {
    /// Open the LU over `urls` (each one path): log in on every path, read each path's ALUA
    /// view, check that all name one LU (WWID), read its capacity and block limits, start
    /// the path checker.
    pub async fn open(ctx: &Ctx, urls: &[IscsiUrl], opts: MpathOptions) -> Result<MultipathLu> {
        let inner = open_inner(ctx, urls, opts).await?;
        let bs = inner.capacity.block_size;
        let mut pages: [Option<Vec<u8>>; 2] = [None, None];
        if let Some(p) = inner.paths.iter().find_map(|p| p.lu().map(|lu| (p, lu))) {
            for (slot, code) in pages.iter_mut().zip([0xB0u8, 0xB2]) {
                if let Ok(Fetched::Page(b)) = fetch(&p.0.ctx, &p.1, code).await {
                    *slot = Some(b);
                }
            }
        }
        let limits = limits_from(pages[0].as_deref(), pages[1].as_deref(), bs);
        let checker = spawn_checker(&inner);
        Ok(MultipathLu {
            inner,
            limits,
            checker,
        })
    }

    pub fn wwid(&self) -> &str {
        &self.inner.wwid
    }

    pub fn block_size(&self) -> u32 {
        self.inner.capacity.block_size
    }

    /// Blocks of the LU.
    pub fn blocks(&self) -> u64 {
        self.inner.capacity.blocks()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// One command through the map: failover, re-reads and queueing as the engine does them;
    /// any SCSI outcome that is the command's own is returned (GOOD or not).
    pub async fn execute(
        &self,
        cdb: &[u8],
        data: Option<Bytes>,
        alloc: u32,
        what: &(dyn std::fmt::Display + Sync),
    ) -> Result<CommandResult> {
        self.inner.execute(cdb, data, alloc, what).await
    }

    /// Register `key` on every connected path with REGISTER AND IGNORE EXISTING KEY, as
    /// mpathpersist does (each path is its own I_T nexus, so its own registration). Returns
    /// the paths registered; any refusal is an error naming the paths.
    pub async fn register_all(&self, key: u64) -> Result<usize> {
        let params = ProutParams::keys(0, key).encode();
        let len = u32::try_from(params.len()).unwrap_or(u32::MAX);
        let cdb = prout_cdb(REGISTER_AND_IGNORE, 0, 0, len);
        let (mut done, mut errs) = (0usize, Vec::new());
        for p in &self.inner.paths {
            let Some(lu) = p.lu() else {
                errs.push(format!("{}: path failed", p.url));
                continue;
            };
            let what = format!("PERSISTENT RESERVE OUT (REGISTER AND IGNORE) to {}", p.url);
            let mut outcome = Err(format!("{what}: UNIT ATTENTION on every try"));
            for _ in 0..5 {
                let cmd = Cmd {
                    lun: lu.url.lun,
                    cdb: &cdb,
                    data: Some(params.clone().into()),
                    alloc: 0,
                    what: &what,
                };
                match send(&p.ctx, &lu.session, cmd).await {
                    Ok(Sent::Outcome(r)) if r.status == ironlun_scsi::status::GOOD => {
                        outcome = Ok(());
                        break;
                    }
                    Ok(Sent::Outcome(r)) if classify(&r) != Verdict::Done => continue,
                    Ok(Sent::Outcome(r)) => {
                        outcome = Err(format!(
                            "{what}: {}",
                            crate::error::scsi_failure(r.status, r.sense.as_ref())
                        ));
                        break;
                    }
                    Ok(Sent::Transport(e) | Sent::Hung(e)) => {
                        outcome = Err(e);
                        break;
                    }
                    Err(e) => {
                        outcome = Err(e.0);
                        break;
                    }
                }
            }
            match outcome {
                Ok(()) => done += 1,
                Err(e) => errs.push(e),
            }
        }
        if errs.is_empty() {
            Ok(done)
        } else {
            Err(HostError::new(format!(
                "register on every path: {done} registered, failed: {}",
                errs.join("; ")
            )))
        }
    }

    /// A snapshot of the map.
    pub fn status(&self) -> MultipathStatus {
        let infos = self.inner.infos();
        let active = self.inner.active(&infos);
        let paths: Vec<PathStatus> = self
            .inner
            .paths
            .iter()
            .zip(&infos)
            .map(|(p, info)| {
                let st = p.st();
                PathStatus {
                    url: p.url.to_string(),
                    target_port_group: st.group,
                    // multipath -ll's "undef" for a path never read.
                    state: match (st.seen, st.state) {
                        (false, _) => "undef",
                        (true, s) => s.map_or("active/optimized", crate::paths::mp_state_name),
                    },
                    pref: st.pref,
                    priority: info.priority(),
                    checker: st.checker,
                    connected: st.session.is_some(),
                    in_use: info.usable() && Some(info.priority()) == active,
                    counters: p.counters(),
                    last_error: st.last_error.clone(),
                }
            })
            .collect();
        let mut active_groups: Vec<u16> = paths
            .iter()
            .filter(|p| p.in_use)
            .filter_map(|p| p.target_port_group)
            .collect();
        active_groups.sort_unstable();
        active_groups.dedup();
        MultipathStatus {
            wwid: self.inner.wwid.clone(),
            size_bytes: self.blocks() * u64::from(self.block_size()),
            block_size: self.block_size(),
            active_priority: active,
            active_groups,
            alua_rereads: self.inner.epoch.load(Ordering::Acquire),
            paths,
        }
    }

    /// Log out of every path (best effort) and stop the background tasks.
    pub async fn close(self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.stop.send_replace(true);
        for (ctx, s) in self.inner.sessions() {
            ctx.logout(&s).await;
        }
    }
}
