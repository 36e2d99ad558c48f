//! SPC-2 RESERVE / RELEASE (SPC-2 §5.5.1, §7.21-7.22; kept by SPC-4 for compatibility).
//!
//! One I_T nexus may hold a logical-unit reservation. While it does, every other nexus gets
//! RESERVATION CONFLICT (no sense data) except for the commands SPC-2 §5.5.1 exempts (the
//! `F_RES_OK` opcode flag). Released by RELEASE from the holder, LOGICAL UNIT RESET, target
//! resets and I_T nexus loss. Third-party and extent reservations are not supported (their
//! CDB bits are rejected by the opcode table).

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// No holder.
const NONE: u64 = 0;

#[derive(Default)]
pub(crate) struct Spc2Reservation {
    /// Holder's nexus id, read lock-free on every command.
    holder: AtomicU64,
    /// Holder's initiator port name, for the control plane's `info`.
    name: Mutex<Option<String>>,
}

impl Spc2Reservation {
    /// Would a command from `nexus` conflict (held by someone else)?
    pub(crate) fn conflicts(&self, nexus: u64) -> bool {
        let h = self.holder.load(Ordering::Acquire);
        h != NONE && h != nexus
    }

    /// RESERVE: Ok if now (or already) held by `nexus`; Err(()) on conflict.
    pub(crate) fn reserve(&self, nexus: u64, name: &str) -> Result<(), ()> {
        let mut n = self.name.lock();
        match self
            .holder
            .compare_exchange(NONE, nexus, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                *n = Some(name.to_string());
                Ok(())
            }
            Err(h) if h == nexus => Ok(()),
            Err(_) => Err(()),
        }
    }

    /// RELEASE from `nexus` (a no-op unless it is the holder, SPC-2 §7.22) or nexus loss.
    pub(crate) fn release(&self, nexus: u64) {
        let mut n = self.name.lock();
        if self
            .holder
            .compare_exchange(nexus, NONE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            *n = None;
        }
    }

    /// LOGICAL UNIT RESET / target reset: drop any reservation.
    pub(crate) fn clear(&self) {
        let mut n = self.name.lock();
        self.holder.store(NONE, Ordering::Release);
        *n = None;
    }

    pub(crate) fn holder_name(&self) -> Option<String> {
        self.name.lock().clone()
    }
}
