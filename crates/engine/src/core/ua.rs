//! Unit attention conditions per I_T_L nexus (SAM-5 §5.14, SPC-4 §5.14 / §7.5.8 UA_INTLCK_CTRL).
//!
//! Each I_T_L nexus owns one [`UaQueue`]. The command path only reads an atomic flag; the lock
//! is taken when a condition is pending, raised or reported.

use std::sync::atomic::{AtomicBool, Ordering};

use ironlun_scsi::Asc;
use parking_lot::Mutex;

/// Bound on queued conditions: beyond it the newest lowest-priority condition is dropped.
/// SPC-4 lets a device server lose conditions when storage runs out; 29h ones always fit.
const MAX_PENDING: usize = 16;

#[derive(Default)]
pub(crate) struct UaQueue {
    pending: AtomicBool,
    queue: Mutex<Vec<Asc>>,
}

/// SPC-4 §5.14: 29h (reset/power-on) conditions take precedence over every other condition.
fn rank(a: Asc) -> u8 {
    if a.asc == 0x29 {
        0
    } else {
        1
    }
}

impl UaQueue {
    pub(crate) fn with(initial: &[Asc]) -> UaQueue {
        let q = UaQueue::default();
        for a in initial {
            q.raise(*a);
        }
        q
    }

    /// Cheap check for the command path.
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Establish a condition: duplicates are merged; 29h conditions go before the others.
    pub(crate) fn raise(&self, a: Asc) {
        let mut q = self.queue.lock();
        if q.contains(&a) {
            return;
        }
        let at = q.iter().position(|x| rank(*x) > rank(a)).unwrap_or(q.len());
        if q.len() >= MAX_PENDING {
            if rank(a) > 0 {
                return;
            }
            q.pop();
        }
        q.insert(at, a);
        self.pending.store(true, Ordering::Release);
    }

    /// The highest-priority condition; removed when `clear` (UA_INTLCK_CTRL 00b or REQUEST SENSE).
    pub(crate) fn take(&self, clear: bool) -> Option<Asc> {
        let mut q = self.queue.lock();
        let head = q.first().copied()?;
        if clear {
            q.remove(0);
            self.pending.store(!q.is_empty(), Ordering::Release);
        }
        Some(head)
    }

    /// Remove every pending condition with this code (REPORT LUNS clears 3F/0E, SPC-4 §6.33).
    pub(crate) fn clear(&self, a: Asc) {
        if !self.is_pending() {
            return;
        }
        let mut q = self.queue.lock();
        q.retain(|x| *x != a);
        self.pending.store(!q.is_empty(), Ordering::Release);
    }

    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> Vec<Asc> {
        self.queue.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironlun_scsi::sense::asc;

    #[test]
    fn reset_conditions_come_first_and_duplicates_merge() {
        let q = UaQueue::default();
        q.raise(asc::MODE_PARAMETERS_CHANGED);
        q.raise(asc::REPORTED_LUNS_DATA_HAS_CHANGED);
        q.raise(asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED);
        q.raise(asc::MODE_PARAMETERS_CHANGED);
        assert_eq!(
            q.snapshot(),
            vec![
                asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED,
                asc::MODE_PARAMETERS_CHANGED,
                asc::REPORTED_LUNS_DATA_HAS_CHANGED
            ]
        );
        assert_eq!(q.take(false), Some(asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED));
        assert_eq!(q.take(true), Some(asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED));
        q.clear(asc::REPORTED_LUNS_DATA_HAS_CHANGED);
        assert_eq!(q.take(true), Some(asc::MODE_PARAMETERS_CHANGED));
        assert!(!q.is_pending());
        assert_eq!(q.take(true), None);
    }

    #[test]
    fn full_queue_keeps_reset_conditions() {
        let q = UaQueue::default();
        for i in 0..MAX_PENDING as u8 {
            q.raise(Asc::new(0x2A, i));
        }
        q.raise(asc::REPORTED_LUNS_DATA_HAS_CHANGED);
        assert_eq!(q.snapshot().len(), MAX_PENDING);
        q.raise(asc::POWER_ON_OCCURRED);
        assert_eq!(q.take(false), Some(asc::POWER_ON_OCCURRED));
    }
}
