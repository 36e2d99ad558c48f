//! Persistent reservations of a clustered LU (`serve --cluster`): the changes other gateways
//! made, applied here (state, unit attentions, PREEMPT AND ABORT's aborts on this gateway's
//! nexuses), the state adopted when this gateway (re)joins, and the administrator's clear
//! made cluster-wide. A PR OUT's own path is `out.rs`; the link itself is
//! [`crate::pr::PrShare`], implemented by the cluster layer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use ironlun_scsi::sense::asc;
use ironlun_scsi::Asc;

use super::ShareError;
use super::{cleared, slots_of, PrChange, PrEffects, PrSender, PrShare, PrState, PrUa, RemotePort};
use crate::core::device::shared::ms_of;
use crate::core::device::slot::LunSlot;
use crate::core::tmf::{Abort, Scope};
use crate::Device;

/// Tries of a change made here that found the cluster's state moved on.
const MAX_STALE: u32 = 16;

/// What [`Device::commit_shared`] does once it is this gateway's turn (PR lock held).
pub(super) enum Turn<T> {
    /// Publish this change (the nexus here that becomes the SPC-2 holder, if one does), then
    /// answer `T`.
    Publish(Box<PrChange>, Option<u64>, T),
    /// Nothing to publish: answer `T`.
    Answer(T),
}

impl Device {
    /// Attach (or detach) the link that makes this LU's PR changes cluster-wide. While one is
    /// attached the APTPL file is not written: the cluster's store is the durable copy.
    pub fn set_pr_share(&self, share: Option<Arc<dyn PrShare>>) {
        let _w = self.pr.write.lock();
        *self.shared.share.lock() = share;
    }

    /// Is a cluster link attached?
    pub fn pr_shared(&self) -> bool {
        self.shared.share().is_some()
    }

    /// The revision of the cluster's PR state applied here.
    pub fn pr_revision(&self) -> u64 {
        self.shared.rev.load(Ordering::Acquire)
    }

    /// Take the cluster's state as it is at revision `rev`, without unit attentions (this
    /// gateway joins, or comes back and re-syncs before serving).
    pub fn adopt_shared_pr(&self, rev: u64, change: &PrChange) -> Result<(), String> {
        change.state.validate()?;
        let _w = self.pr.write.lock();
        self.pr.install(change.state.clone());
        self.set_shared_spc2(change.spc2.clone());
        self.shared.rev.store(rev, Ordering::Release);
        Ok(())
    }

    /// The SPC-2 holder as the cluster says (a nexus here, another gateway's, or none).
    fn set_shared_spc2(&self, who: Option<PrSender>) {
        if who == self.spc2.holder_ident() {
            return;
        }
        let local = who.as_ref().and_then(|w| {
            self.live_slots()
                .iter()
                .find(|s| w.is(&s.ident))
                .map(|s| s.nexus)
        });
        self.spc2.set_shared(who, local);
    }

    /// A change another gateway made (revision `rev`): install it unless this gateway has it
    /// already, raise its unit attentions on this gateway's nexuses and abort the tasks of the
    /// nexuses PREEMPT AND ABORT preempted; returns once they ended. False: already applied.
    pub fn apply_shared_pr(&self, rev: u64, change: &PrChange) -> bool {
        {
            let _w = self.pr.write.lock();
            if rev <= self.shared.rev.load(Ordering::Acquire) {
                return false;
            }
            self.pr.install(change.state.clone());
            self.set_shared_spc2(change.spc2.clone());
            self.shared.rev.store(rev, Ordering::Release);
        }
        let slots: Vec<Arc<LunSlot>> = self
            .live_slots()
            .into_iter()
            .filter(|s| !change.sender.as_ref().is_some_and(|p| p.is(&s.ident)))
            .collect();
        for ua in &change.effects.uas {
            for s in slots_of(&slots, &ua.to, None) {
                s.ua.raise(Asc::new(ua.asc, ua.ascq));
            }
        }
        if let Some((a, q)) = change.effects.reset {
            // Another gateway's LOGICAL UNIT RESET: every task here, every nexus told.
            let others = if self.tas.load(Ordering::Relaxed) {
                Abort::TaskAborted
            } else {
                Abort::Silent
            };
            let m = self.tasks.mark(Scope::All, u64::MAX, others);
            for s in &slots {
                s.ua.raise(Asc::new(a, q));
            }
            self.tasks.wait(&m.tasks);
        }
        if !change.effects.abort.is_empty() {
            let itls = slots_of(&slots, &change.effects.abort, None)
                .iter()
                .map(|s| s.id)
                .collect();
            let others = if self.tas.load(Ordering::Relaxed) {
                Abort::TaskAborted
            } else {
                Abort::Silent
            };
            // No nexus of this gateway sent it: every aborted task is another nexus' (TAS).
            let m = self.tasks.mark(
                Scope::Preempted {
                    itls,
                    except: u64::MAX,
                },
                u64::MAX,
                others,
            );
            self.tasks.wait(&m.tasks);
        }
        true
    }

    /// The target ports of the other gateways that export this LU.
    pub fn set_remote_ports(&self, ports: Vec<RemotePort>) {
        *self.shared.remote.lock() = Arc::new(ports);
    }

    /// Until when this gateway may serve the LU (clustered LUs): from that instant on, every
    /// command but the informational ones gets NOT READY, ASYMMETRIC ACCESS STATE TRANSITION
    /// and REPORT TARGET PORT GROUPS shows this gateway's groups Transitioning. The cluster
    /// layer moves it forward with each lease keep-alive; `None`: not clustered, never fenced.
    pub fn set_serve_deadline(&self, until: Option<Instant>) {
        let ms = until.map_or(0, ms_of);
        self.shared.deadline.store(ms, Ordering::Release);
    }

    /// Is this gateway fenced from the LU now?
    pub fn fenced(&self) -> bool {
        self.shared.fenced()
    }

    /// `pr_clear` of a clustered LU: one cluster-wide change, RESERVATIONS PREEMPTED to every
    /// nexus of a registration on every gateway.
    pub(super) fn pr_clear_shared(&self, sh: &dyn PrShare) -> Result<PrState, String> {
        let ua = asc::RESERVATIONS_PREEMPTED;
        self.commit_shared(sh, || {
            let old = self.pr.load();
            let change = PrChange {
                state: cleared(&old),
                effects: PrEffects {
                    uas: vec![PrUa {
                        asc: ua.asc,
                        ascq: ua.ascq,
                        to: old.registrations.clone(),
                    }],
                    ..PrEffects::default()
                },
                sender: None,
                spc2: self.spc2.holder_ident(),
            };
            Turn::Publish(Box::new(change), None, (*old).clone())
        })
        .map_err(|e| format!("the cluster did not take the change: {e:?}"))
    }

    /// Make a change of this gateway's cluster-wide (an administrator's clear, SPC-2 RESERVE /
    /// RELEASE, a reset): `turn` says, with the PR lock held, what to publish (and, if the SPC-2
    /// holder becomes a nexus here, which) or what to answer instead; the change is committed
    /// at the revision applied here, installed, its unit attentions raised on this gateway's
    /// nexuses (a reset's local part is the caller's), then confirmed by every gateway. When
    /// the cluster moved on meanwhile, this catches up and asks `turn` again.
    pub(super) fn commit_shared<T>(
        &self,
        sh: &dyn PrShare,
        turn: impl Fn() -> Turn<T>,
    ) -> Result<T, ShareError> {
        let mut stale = 0;
        loop {
            let w = self.pr.write.lock();
            let (change, local, out) = match turn() {
                Turn::Answer(t) => return Ok(t),
                Turn::Publish(c, l, t) => (c, l, t),
            };
            let base = self.shared.rev.load(Ordering::Acquire);
            match sh.commit(base, &change) {
                Ok(rev) => {
                    self.pr.install(change.state.clone());
                    if change.spc2 != self.spc2.holder_ident() {
                        self.spc2.set_shared(change.spc2.clone(), local);
                    }
                    self.shared.rev.store(rev, Ordering::Release);
                    drop(w);
                    let slots = self.live_slots();
                    for ua in &change.effects.uas {
                        for s in slots_of(&slots, &ua.to, None) {
                            s.ua.raise(Asc::new(ua.asc, ua.ascq));
                        }
                    }
                    sh.confirm(rev)?;
                    return Ok(out);
                }
                Err(ShareError::Stale) if stale < MAX_STALE => {
                    drop(w);
                    stale += 1;
                    sh.catch_up()?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// This gateway's target ports that export the LU, with their groups (what the other
    /// gateways list in REPORT TARGET PORT GROUPS).
    pub fn local_ports(&self) -> Vec<RemotePort> {
        let mut v: Vec<RemotePort> = self
            .exports()
            .into_iter()
            .map(|e| RemotePort {
                rtpi: e.rtpi,
                target: e.target,
                tpgt: e.tpgt,
                group: e.alua.group.load().id,
            })
            .collect();
        v.sort_by_key(|p| p.rtpi);
        v.dedup();
        v
    }

    /// Is the `cluster` attribute set (shared with the other gateways of `serve --cluster`)?
    pub fn clustered(&self) -> bool {
        self.shared.clustered.load(Ordering::Relaxed)
    }
}
