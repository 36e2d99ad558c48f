//! SPC-2 RESERVE / RELEASE (SPC-2 §5.5.1, §7.21-7.22; kept by SPC-4 for compatibility).
//!
//! One I_T nexus may hold a logical-unit reservation. While it does, every other nexus gets
//! RESERVATION CONFLICT (no sense data) except for the commands SPC-2 §5.5.1 exempts (the
//! `F_RES_OK` opcode flag). Released by RELEASE from the holder, LOGICAL UNIT RESET, target
//! resets and I_T nexus loss. Third-party and extent reservations are not supported (their
//! CDB bits are rejected by the opcode table).

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::shared::PrSender;

/// No holder.
pub(crate) const NONE: u64 = 0;
/// Held through another gateway (a clustered LU): every nexus here conflicts.
pub(crate) const REMOTE: u64 = u64::MAX;

#[derive(Default)]
pub(crate) struct Spc2Reservation {
    /// Holder's nexus id (or [`REMOTE`]), read lock-free on every command.
    holder: AtomicU64,
    /// Who holds it, while someone does (boxed: most LUs are never reserved).
    name: Mutex<Option<Box<Holder>>>,
}

struct Holder {
    /// The holder's initiator port name, for the control plane's `info`.
    name: String,
    /// Who it is by name (what a clustered LU shares with the other gateways).
    who: Option<PrSender>,
}

fn held(name: String, who: PrSender) -> Option<Box<Holder>> {
    Some(Box::new(Holder {
        name,
        who: Some(who),
    }))
}

impl Spc2Reservation {
    /// Would a command from `nexus` conflict (held by someone else)?
    pub(crate) fn conflicts(&self, nexus: u64) -> bool {
        let h = self.holder.load(Ordering::Acquire);
        h != NONE && h != nexus
    }

    /// RESERVE: Ok if now (or already) held by `nexus`; Err(()) on conflict.
    pub(crate) fn reserve(&self, nexus: u64, name: &str, who: PrSender) -> Result<(), ()> {
        let mut n = self.name.lock();
        match self
            .holder
            .compare_exchange(NONE, nexus, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                *n = held(name.to_string(), who);
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
        self.name.lock().as_ref().map(|h| h.name.clone())
    }

    /// The holder's nexus id ([`NONE`], [`REMOTE`] or a nexus of this gateway).
    pub(crate) fn holder(&self) -> u64 {
        self.holder.load(Ordering::Acquire)
    }

    /// Who holds it, by name.
    pub(crate) fn holder_ident(&self) -> Option<PrSender> {
        self.name.lock().as_ref().and_then(|h| h.who.clone())
    }

    /// Set the holder as the cluster says: `local` if the holder is a nexus of this gateway,
    /// else [`REMOTE`] (or no holder).
    pub(crate) fn set_shared(&self, who: Option<PrSender>, local: Option<u64>) {
        let mut n = self.name.lock();
        match who {
            None => {
                self.holder.store(NONE, Ordering::Release);
                *n = None;
            }
            Some(w) => {
                self.holder
                    .store(local.unwrap_or(REMOTE), Ordering::Release);
                let name = format!("{},i,0x{}", w.initiator, hex(&w.isid));
                *n = held(name, w);
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
