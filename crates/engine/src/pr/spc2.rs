//! SPC-2 RESERVE / RELEASE on a device (`crate::core::device::reservation` keeps the holder): local,
//! or, for a clustered LU, one holder cluster-wide — published like a PR change (the holder
//! travels in every [`PrChange`]), so that a nexus of another gateway conflicts too, and
//! RELEASE, I_T nexus loss and LOGICAL UNIT RESET end it on every gateway.

use std::sync::atomic::Ordering;

use super::out::cut_off;
use ironlun_scsi::Asc;

use super::{PrChange, PrEffects, PrSender, PrShare, ShareError};
use crate::core::device::pr::NexusIdent;
use crate::core::device::reservation::NONE;
use crate::handler::{Done, Fail, Outcome};
use crate::Device;

/// Tries of a clustered change that found the cluster's state moved on.
const MAX_STALE: u32 = 16;

/// What a clustered SPC-2 change does once it is this gateway's turn (PR lock held).
enum Turn {
    /// Publish this holder (and hold it locally as this nexus, if any).
    Publish(Option<PrSender>, Option<u64>),
    /// Nothing to publish: answer this.
    Answer(Outcome),
}

impl Device {
    /// RESERVE(6)/(10) from nexus `id` (the CRH exemptions are the caller's).
    pub(crate) fn spc2_reserve(&self, id: u64, name: &str, who: &NexusIdent) -> Outcome {
        let me = PrSender::of(who);
        let Some(sh) = self.shared.share() else {
            return self
                .spc2
                .reserve(id, name, me)
                .map(|()| Done::good())
                .map_err(|()| Fail::ReservationConflict);
        };
        self.spc2_shared(&*sh, || match self.spc2.holder() {
            NONE => Turn::Publish(Some(me.clone()), Some(id)),
            h if h == id => Turn::Answer(Ok(Done::good())),
            _ => Turn::Answer(Err(Fail::ReservationConflict)),
        })
        .map_err(cut_off)?
    }

    /// RELEASE from nexus `id`, or its loss: ends the reservation if `id` holds it.
    pub(crate) fn spc2_release(&self, id: u64) {
        let Some(sh) = self.shared.share() else {
            self.spc2.release(id);
            return;
        };
        let r = self.spc2_shared(&*sh, || {
            if self.spc2.holder() == id {
                Turn::Publish(None, None)
            } else {
                Turn::Answer(Ok(Done::good()))
            }
        });
        if let Err(e) = r {
            tracing::warn!(
                device = self.name(),
                "SPC-2 release not made cluster-wide: {e:?}"
            );
        }
    }

    /// LOGICAL UNIT RESET, target reset (the local part done by the caller): no SPC-2
    /// reservation any more and, for a clustered LU, the reset on every other gateway too —
    /// their tasks aborted and `ua` on their nexuses — before this returns.
    pub(crate) fn lu_reset_everywhere(&self, ua: Asc) {
        let Some(sh) = self.shared.share() else {
            self.spc2.clear();
            return;
        };
        let fx = PrEffects {
            reset: Some((ua.asc, ua.ascq)),
            ..PrEffects::default()
        };
        let r = self.spc2_shared_with(&*sh, fx, || Turn::Publish(None, None));
        if let Err(e) = r {
            tracing::warn!(
                device = self.name(),
                "LU reset not made cluster-wide: {e:?}"
            );
            self.spc2.clear();
        }
    }

    fn spc2_shared(
        &self,
        sh: &dyn PrShare,
        turn: impl Fn() -> Turn,
    ) -> Result<Outcome, ShareError> {
        self.spc2_shared_with(sh, PrEffects::default(), turn)
    }

    fn spc2_shared_with(
        &self,
        sh: &dyn PrShare,
        effects: PrEffects,
        turn: impl Fn() -> Turn,
    ) -> Result<Outcome, ShareError> {
        let mut stale = 0;
        loop {
            let w = self.pr.write.lock();
            let (holder, local) = match turn() {
                Turn::Answer(o) => return Ok(o),
                Turn::Publish(h, l) => (h, l),
            };
            let base = self.shared.rev.load(Ordering::Acquire);
            let change = PrChange {
                state: (*self.pr.load()).clone(),
                effects: effects.clone(),
                sender: holder.clone(),
                spc2: holder.clone(),
            };
            match sh.commit(base, &change) {
                Ok(rev) => {
                    self.spc2.set_shared(holder, local);
                    self.shared.rev.store(rev, Ordering::Release);
                    drop(w);
                    sh.confirm(rev)?;
                    return Ok(Ok(Done::good()));
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
}
