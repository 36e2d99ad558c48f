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
//! (PERSISTENT RESERVE IN, §6.15) and here the shared model: how a registration matches an
//! I_T nexus, the reservation-conflict gate (SPC-4 §5.13.1 table 62, SBC-3 §4.17 table 13)
//! and the SPC-2 RESERVE / RELEASE exemptions (CRH = 1, SPC-4 §5.13.3).
//!
//! Every command reads the state through an `ArcSwap` snapshot, behind an atomic "no
//! reservation" flag; PR OUT commands are serialised per LU, build the new state on a copy,
//! persist it when APTPL is active, and only then publish it.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ironlun_scsi::pr::kind;
use ironlun_scsi::sense::asc;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::cmd::{Cmd, OpInfo, F_PR_READ};
use crate::core::port::LunSlot;
use crate::{Device, InitiatorPortId};

mod input;
mod out;

pub(crate) use input::persistent_reserve_in;
pub(crate) use out::persistent_reserve_out;

/// Most registrations one LU keeps: beyond it INSUFFICIENT REGISTRATION RESOURCES.
pub(crate) const MAX_REGISTRATIONS: usize = 1024;

/// One registration: an I_T nexus (or, with ALL_TG_PT, an initiator port through every target
/// port) and its reservation key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrRegistration {
    pub key: u64,
    /// Initiator node name (iSCSI name).
    pub initiator: String,
    /// ISID of the initiator port; `None` for a registration made through an iSCSI TransportID
    /// of format 00b (initiator device name only).
    pub isid: Option<[u8; 6]>,
    /// Target port the registration was made through: target name, TPGT and its RTPI.
    pub target: String,
    pub tpgt: u16,
    pub rtpi: u16,
    /// Registered through every target port (ALL_TG_PT=1).
    pub all_tg_pt: bool,
}

/// The persistent reservation, if any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrReservation {
    /// Index into [`PrState::registrations`] of the holder (for the all-registrants types, the
    /// registration that established it).
    pub holder: usize,
    /// PR type code (SPC-4 Table 168): 1 WE, 3 EA, 5 WE-RO, 6 EA-RO, 7 WE-AR, 8 EA-AR.
    pub kind: u8,
}

/// The whole persistent reservation state of one logical unit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrState {
    /// PRgeneration (SPC-4 §6.15.2).
    pub generation: u32,
    /// Activate Persist Through Power Loss as last set by an initiator.
    pub aptpl: bool,
    pub registrations: Vec<PrRegistration>,
    pub reservation: Option<PrReservation>,
}

/// Durable storage for one device's PR state (implemented by the control plane).
pub trait AptplStore: Send + Sync {
    /// Make `state` durable (atomically: after a crash the previous or the new state is found,
    /// never a mix). Called with the device's PR lock held, before the PR OUT returns GOOD.
    fn save(&self, state: &PrState) -> io::Result<()>;
    /// APTPL was turned off: remove the persisted state (durably).
    fn clear(&self) -> io::Result<()>;
}

/// Who an I_T nexus is, by the names persistent reservations use (SPC-4 §5.13.4: an I_T
/// nexus = initiator port + target port).
#[derive(Debug)]
pub(crate) struct NexusIdent {
    pub initiator: InitiatorPortId,
    /// Target name and TPGT of the target port, and its RTPI.
    pub target: String,
    pub tpgt: u16,
    pub rtpi: u16,
}

impl PrRegistration {
    /// Does this registration belong to the I_T nexus `who`? By initiator name (iSCSI names
    /// compare case-insensitively), ISID unless registered by name alone, and target port
    /// unless registered through all target ports.
    pub(crate) fn matches(&self, who: &NexusIdent) -> bool {
        self.initiator.eq_ignore_ascii_case(&who.initiator.name)
            && self.isid.is_none_or(|i| i == who.initiator.isid)
            && (self.all_tg_pt
                || (self.tpgt == who.tpgt && self.target.eq_ignore_ascii_case(&who.target)))
    }

    /// Could some I_T nexus match both registrations? (One nexus has one registration.)
    pub(crate) fn overlaps(&self, o: &PrRegistration) -> bool {
        self.initiator.eq_ignore_ascii_case(&o.initiator)
            && (self.isid.is_none() || o.isid.is_none() || self.isid == o.isid)
            && (self.all_tg_pt
                || o.all_tg_pt
                || (self.tpgt == o.tpgt && self.target.eq_ignore_ascii_case(&o.target)))
    }
}

impl PrState {
    /// The registration of the I_T nexus `who`, if registered.
    pub(crate) fn find(&self, who: &NexusIdent) -> Option<usize> {
        self.registrations.iter().position(|r| r.matches(who))
    }

    /// Is registration `i` a reservation holder? For the all-registrants types every
    /// registrant is (SPC-4 §5.13.10).
    pub(crate) fn is_holder(&self, i: usize) -> bool {
        match &self.reservation {
            Some(r) if kind::is_all_registrants(r.kind) => i < self.registrations.len(),
            Some(r) => r.holder == i,
            None => false,
        }
    }

    /// One line saying what is inconsistent, if anything.
    fn validate(&self) -> Result<(), String> {
        if self.registrations.len() > MAX_REGISTRATIONS {
            return Err(format!(
                "{} registrations, more than the {MAX_REGISTRATIONS} supported",
                self.registrations.len()
            ));
        }
        for (i, r) in self.registrations.iter().enumerate() {
            if r.key == 0 {
                return Err(format!("registration {i}: reservation key 0"));
            }
            if r.initiator.is_empty() || r.initiator.len() > ironlun_scsi::pr::MAX_ISCSI_NAME {
                return Err(format!("registration {i}: invalid initiator name"));
            }
            if r.target.is_empty() {
                return Err(format!("registration {i}: empty target name"));
            }
            if let Some(j) = self.registrations[..i].iter().position(|o| o.overlaps(r)) {
                return Err(format!(
                    "registrations {j} and {i} name the same I_T nexus ({})",
                    r.initiator
                ));
            }
        }
        if let Some(res) = &self.reservation {
            if res.holder >= self.registrations.len() {
                return Err(format!(
                    "reservation holder {} is not a registration (have {})",
                    res.holder,
                    self.registrations.len()
                ));
            }
            if !kind::is_valid(res.kind) {
                return Err(format!("unknown reservation type {}", res.kind));
            }
        }
        Ok(())
    }
}

/// The PR state of one LU and what serialises its writers.
pub(crate) struct PrUnit {
    state: ArcSwap<PrState>,
    /// A persistent reservation exists: the only thing the gate needs on the fast path.
    reserved: AtomicBool,
    /// Held by a PR OUT (or an administrator's change) from reading the state to publishing.
    write: Mutex<()>,
    store: Mutex<Option<Arc<dyn AptplStore>>>,
}

impl Default for PrUnit {
    fn default() -> PrUnit {
        PrUnit {
            state: ArcSwap::from_pointee(PrState::default()),
            reserved: AtomicBool::new(false),
            write: Mutex::new(()),
            store: Mutex::new(None),
        }
    }
}

impl PrUnit {
    pub(crate) fn load(&self) -> Arc<PrState> {
        self.state.load_full()
    }

    pub(crate) fn store(&self) -> Option<Arc<dyn AptplStore>> {
        self.store.lock().clone()
    }

    /// Publish a new state (caller holds `write`).
    fn install(&self, st: PrState) {
        let reserved = st.reservation.is_some();
        self.state.store(Arc::new(st));
        self.reserved.store(reserved, Ordering::Release);
    }

    /// Make `new` durable as APTPL requires, then publish it. `old` is the state it replaces.
    /// Err: nothing was changed.
    fn commit(&self, old: &PrState, new: PrState) -> io::Result<()> {
        if new.aptpl {
            let Some(store) = self.store() else {
                return Err(io::Error::other("no APTPL store attached to the device"));
            };
            store.save(&new)?;
        } else if old.aptpl {
            if let Some(store) = self.store() {
                store.clear()?;
            }
        }
        self.install(new);
        Ok(())
    }
}

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
        && ironlun_scsi::cdb::byte(cdb, 4) & 0x01 != 0
        && ironlun_scsi::cdb::byte(cdb, 4) & 0xF0 == 0
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
        let _w = self.pr.write.lock();
        let old = self.pr.load();
        let new = PrState {
            generation: old.generation.wrapping_add(1),
            aptpl: old.aptpl,
            registrations: Vec::new(),
            reservation: None,
        };
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
