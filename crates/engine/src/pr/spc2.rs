//! SPC-2 RESERVE / RELEASE on a device (`crate::core::device::reservation` keeps the holder): local,
//! or, for a clustered LU, one holder cluster-wide — published like a PR change (the holder
//! travels in every [`PrChange`]), so that a nexus of another gateway conflicts too, and
//! RELEASE, I_T nexus loss and LOGICAL UNIT RESET end it on every gateway.

use ironlun_scsi::Asc;

use super::out::cut_off;
use super::shared::Turn;
use super::{PrChange, PrEffects, PrSender};
use crate::core::device::pr::NexusIdent;
use crate::core::device::reservation::NONE;
use crate::handler::{Done, Fail, Outcome};
use crate::Device;

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
        self.commit_shared(&*sh, || match self.spc2.holder() {
            NONE => Turn::Publish(
                self.holder_change(Some(me.clone())),
                Some(id),
                Ok(Done::good()),
            ),
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
        let r = self.commit_shared(&*sh, || {
            if self.spc2.holder() == id {
                Turn::Publish(self.holder_change(None), None, ())
            } else {
                Turn::Answer(())
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
        let r = self.commit_shared(&*sh, || {
            let mut change = self.holder_change(None);
            change.effects.reset = Some((ua.asc, ua.ascq));
            Turn::Publish(change, None, ())
        });
        if let Err(e) = r {
            tracing::warn!(
                device = self.name(),
                "LU reset not made cluster-wide: {e:?}"
            );
            self.spc2.clear();
        }
    }

    /// The current PR state with `holder` as the SPC-2 holder (who also sends it).
    fn holder_change(&self, holder: Option<PrSender>) -> Box<PrChange> {
        Box::new(PrChange {
            state: (*self.pr.load()).clone(),
            effects: PrEffects::default(),
            sender: holder.clone(),
            spc2: holder,
        })
    }
}
