//! Persistent reservation state of an LU (SPC-4 §5.13): registrations, the reservation, the
//! generation, the APTPL store, and who an I_T nexus is. The service actions, the conflict gate
//! and the control plane's surface are `crate::pr`.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;
use ironlun_scsi::pr::kind;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::InitiatorPortId;

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
    pub(crate) fn validate(&self) -> Result<(), String> {
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
    pub(crate) state: ArcSwap<PrState>,
    /// A persistent reservation exists: the only thing the gate needs on the fast path.
    pub(crate) reserved: AtomicBool,
    /// Held by a PR OUT (or an administrator's change) from reading the state to publishing.
    pub(crate) write: Mutex<()>,
    pub(crate) store: Mutex<Option<Arc<dyn AptplStore>>>,
}

impl Default for PrUnit {
    fn default() -> PrUnit {
        // Every LU without registrations starts from one shared empty state.
        static EMPTY: LazyLock<Arc<PrState>> = LazyLock::new(Arc::default);
        PrUnit {
            state: ArcSwap::new(EMPTY.clone()),
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
    pub(crate) fn install(&self, st: PrState) {
        let reserved = st.reservation.is_some();
        self.state.store(Arc::new(st));
        self.reserved.store(reserved, Ordering::Release);
    }

    /// Make `new` durable as APTPL requires, then publish it. `old` is the state it replaces.
    /// Err: nothing was changed.
    pub(crate) fn commit(&self, old: &PrState, new: PrState) -> io::Result<()> {
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
