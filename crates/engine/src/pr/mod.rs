//! Persistent reservations (SPC-4 §5.13; PERSISTENT RESERVE IN §6.15, OUT §6.16).
//!
//! Contract between the engine and the control plane (the PR state is per logical unit, shared
//! by every target port):
//! * [`PrState`] is the whole persistent state of one LU: what APTPL writes and what the
//!   control plane shows under `core/<kind>_<n>/<dev>/pr/`.
//! * [`AptplStore`] is how the engine makes that state durable: with APTPL active (or the
//!   device attribute `force_pr_aptpl`), a PERSISTENT RESERVE OUT that changes the state calls
//!   [`AptplStore::save`] and returns GOOD only after it succeeded. The control plane implements
//!   it (atomic, durable file under `<state-dir>/pr/`).
//! * At start the control plane loads the file and calls [`Device::restore_pr_state`] before any
//!   portal accepts a login; each registration comes back to life when its initiator port logs
//!   in again through the same target port.
//!
//! Engine side: `out` (PERSISTENT RESERVE OUT, SPC-4 §5.13.7-§5.13.11, §6.16), `input`
//! (PERSISTENT RESERVE IN, §6.15) and here: the state's data lives with the device
//! (`crate::core::device::pr`, re-exported here) so that the core depends on no command code;
//! how a registration matches an I_T nexus, the reservation-conflict gate (SPC-4 §5.13.1 table 62, SBC-3 §4.17 table 13)
//! and the SPC-2 RESERVE / RELEASE exemptions (CRH = 1, SPC-4 §5.13.3).
//!
//! Every command reads the state through an `ArcSwap` snapshot, behind an atomic "no
//! reservation" flag; PR OUT commands are serialised per LU, build the new state on a copy,
//! persist it when APTPL is active, and only then publish it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ironlun_scsi::cdb::StartStopUnit;
use ironlun_scsi::pr::kind;
use ironlun_scsi::sense::asc;

use crate::core::device::slot::LunSlot;
use crate::handler::{Cmd, OpInfo, F_PR_READ};
use crate::Device;

mod input;
mod out;
mod shared;
mod spc2;

pub use crate::core::device::pr::{AptplStore, PrRegistration, PrReservation, PrState};
pub(crate) use crate::core::device::pr::{NexusIdent, MAX_REGISTRATIONS};
pub use crate::core::device::shared::{
    PrChange, PrEffects, PrSender, PrShare, PrUa, RemotePort, ShareError,
};

pub(crate) use input::persistent_reserve_in;
pub(crate) use out::persistent_reserve_out;

/// Live I_T_L nexuses registered by any of `regs`, except those of I_T nexus `except`.
pub(crate) fn slots_of(
    slots: &[Arc<LunSlot>],
    regs: &[PrRegistration],
    except: Option<u64>,
) -> Vec<Arc<LunSlot>> {
    slots
        .iter()
        .filter(|s| Some(s.nexus) != except && regs.iter().any(|r| r.matches(&s.ident)))
        .cloned()
        .collect()
}

/// Gate 3 (persistent part): would this command from `who` conflict with the persistent
/// reservation? SPC-4 table 62 and SBC-3 table 13, reduced to three classes by the opcode
/// table: free (never here), read class (`F_PR_READ`) and the write class (everything else).
/// Where LIO lets unregistered nexuses run no-data commands through Write Exclusive, this
/// follows the standard (conflict).
pub(crate) fn conflicts(dev: &Device, who: &NexusIdent, o: &OpInfo, cdb: &[u8]) -> bool {
    if !dev.pr.reserved.load(Ordering::Acquire) || !dev.emulate_pr.load(Ordering::Relaxed) {
        return false;
    }
    // SBC-3 table 13: START STOP UNIT with START = 1 and POWER CONDITION 0h is allowed.
    if o.cmd == Cmd::StartStopUnit
        && StartStopUnit::parse(cdb).is_ok_and(|s| s.start && s.power_condition == 0)
    {
        return false;
    }
    let st = dev.pr.state.load();
    let Some(res) = &st.reservation else {
        return false;
    };
    let me = st.find(who);
    if me.is_some_and(|i| st.is_holder(i)) {
        return false;
    }
    let registered = me.is_some();
    let read = o.has(F_PR_READ);
    match res.kind {
        kind::WRITE_EXCLUSIVE => !read,
        kind::WRITE_EXCLUSIVE_REGISTRANTS_ONLY | kind::WRITE_EXCLUSIVE_ALL_REGISTRANTS => {
            !read && !registered
        }
        kind::EXCLUSIVE_ACCESS_REGISTRANTS_ONLY | kind::EXCLUSIVE_ACCESS_ALL_REGISTRANTS => {
            !registered
        }
        // Exclusive Access, and anything unexpected: only the holder.
        _ => true,
    }
}

/// SPC-4 §5.13.3 (CRH = 1) for SPC-2 RESERVE / RELEASE from `who`: `Some(true)` — complete
/// with GOOD and change nothing (a PR holder, or a registrant under a registrants-only /
/// all-registrants reservation); `Some(false)` — RESERVE conflicts (registrations exist);
/// `None` — plain SPC-2 rules.
pub(crate) fn spc2_exemption(dev: &Device, who: &NexusIdent) -> Option<bool> {
    let st = dev.pr.state.load();
    if st.registrations.is_empty() {
        return None;
    }
    let me = st.find(who);
    let exempt = match (&st.reservation, me) {
        (Some(r), Some(i)) => {
            st.is_holder(i) || kind::is_registrants_only(r.kind) || kind::is_all_registrants(r.kind)
        }
        _ => false,
    };
    Some(exempt)
}

impl Device {
    /// Attach (or detach) the store used while APTPL is active.
    pub fn set_aptpl_store(&self, store: Option<Arc<dyn AptplStore>>) {
        let _w = self.pr.write.lock();
        *self.pr.store.lock() = store;
    }

    /// A copy of the current PR state.
    pub fn pr_state(&self) -> PrState {
        (*self.pr.load()).clone()
    }

    /// Load persisted state (at start, before the device is exported). Err: one line saying
    /// what is inconsistent (e.g. holder index out of range, unknown type, duplicate nexus);
    /// nothing changes then.
    pub fn restore_pr_state(&self, state: PrState) -> Result<(), String> {
        state.validate()?;
        let _w = self.pr.write.lock();
        self.pr.install(state);
        Ok(())
    }

    /// Administrator's clear (`ironlun pr clear <dev> --force`): drop every registration and the
    /// reservation, bump PRgeneration, raise RESERVATIONS PREEMPTED (2A/03) on nexuses that
    /// held a registration, persist if APTPL is active. Returns the state that was dropped.
    /// Err (persisting failed): nothing changed.
    pub fn pr_clear(&self) -> Result<PrState, String> {
        if let Some(sh) = self.shared.share() {
            return self.pr_clear_shared(&*sh);
        }
        let _w = self.pr.write.lock();
        let old = self.pr.load();
        let new = cleared(&old);
        let told = slots_of(&self.live_slots(), &old.registrations, None);
        self.pr
            .commit(&old, new)
            .map_err(|e| format!("persisting the cleared PR state failed: {e}"))?;
        for s in told {
            s.ua.raise(asc::RESERVATIONS_PREEMPTED);
        }
        Ok((*old).clone())
    }
}

/// The state after an administrator's clear of `old`.
fn cleared(old: &PrState) -> PrState {
    PrState {
        generation: old.generation.wrapping_add(1),
        aptpl: old.aptpl,
        registrations: Vec::new(),
        reservation: None,
    }
}
