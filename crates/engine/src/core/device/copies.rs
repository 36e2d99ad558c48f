//! The EXTENDED COPY results an LU holds (SPC-4 §6.4 RECEIVE COPY RESULTS), per I_T nexus and
//! list identifier. The copy itself is `crate::cmd::xcopy`.

use std::sync::atomic::{AtomicU16, AtomicU64};
use std::sync::Arc;

use ironlun_scsi::sense::asc;
use ironlun_scsi::Sense;
use parking_lot::Mutex;

/// progress at once on one copy manager (also bounds the held results, see [`CopyResults`]).
pub(crate) const MAX_CONCURRENT_COPIES: usize = 255;
/// Held results kept per LU (completed copies; the oldest go first).
pub(crate) const MAX_HELD: usize = 256;
/// COPY MANAGER STATUS (SPC-4 §6.18.3).
pub(crate) const IN_PROGRESS: u8 = 0x00;
pub(crate) const COMPLETED_OK: u8 = 0x01;
pub(crate) const COMPLETED_WITH_ERRORS: u8 = 0x02;

/// Progress of one copy, updated by the copy as it goes.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub(crate) segments: AtomicU16,
    pub(crate) bytes: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) nexus: u64,
    pub(crate) list_id: u8,
    /// Results are kept after completion (LIST ID USAGE 00b).
    pub(crate) hold: bool,
    pub(crate) progress: Arc<Progress>,
    /// COPY MANAGER STATUS.
    pub(crate) status: u8,
    /// Sense data of a failed copy, until FAILED SEGMENT DETAILS returns it.
    pub(crate) failed: Option<Vec<u8>>,
}

/// Held copy results of one LU (RECEIVE COPY RESULTS), per I_T nexus and list identifier:
/// copies in progress (for COPY STATUS and duplicate detection) and completed copies whose
/// LIST ID USAGE asked for held results, at most [`MAX_HELD`] of them.
#[derive(Debug, Default)]
pub(crate) struct CopyResults {
    pub(crate) held: Mutex<Vec<Held>>,
}

impl CopyResults {
    /// Register a copy about to start. Err: the same nexus has a copy with this list
    /// identifier in progress, or too many copies run.
    pub(crate) fn begin(
        &self,
        nexus: u64,
        list_id: u8,
        hold: bool,
    ) -> Result<Arc<Progress>, Sense> {
        let mut g = self.held.lock();
        if g.iter()
            .any(|h| h.nexus == nexus && h.list_id == list_id && h.status == IN_PROGRESS)
        {
            // SPC-4 §6.3.1: a list identifier in use by a copy in progress from this nexus.
            return Err(Sense::illegal(asc::OPERATION_IN_PROGRESS));
        }
        if g.iter().filter(|h| h.status == IN_PROGRESS).count() >= MAX_CONCURRENT_COPIES {
            return Err(Sense::illegal(asc::INSUFFICIENT_RESOURCES));
        }
        // A new copy with the same list identifier replaces the held results of the old one.
        g.retain(|h| !(h.nexus == nexus && h.list_id == list_id));
        while g.len() >= MAX_HELD {
            match g.iter().position(|h| h.status != IN_PROGRESS) {
                Some(i) => {
                    g.remove(i);
                }
                None => break,
            }
        }
        let progress = Arc::new(Progress::default());
        g.push(Held {
            nexus,
            list_id,
            hold,
            progress: progress.clone(),
            status: IN_PROGRESS,
            failed: None,
        });
        Ok(progress)
    }

    /// The copy ended: keep its results if they are held, else forget it.
    pub(crate) fn end(&self, progress: &Arc<Progress>, failed: Option<Vec<u8>>) {
        let mut g = self.held.lock();
        let Some(i) = g.iter().position(|h| Arc::ptr_eq(&h.progress, progress)) else {
            return;
        };
        if !g[i].hold {
            g.remove(i);
            return;
        }
        let h = &mut g[i];
        h.status = if failed.is_some() {
            COMPLETED_WITH_ERRORS
        } else {
            COMPLETED_OK
        };
        h.failed = failed;
    }

    /// I_T nexus loss: the nexus' held copy results are discarded.
    pub(crate) fn nexus_gone(&self, nexus: u64) {
        self.held.lock().retain(|h| h.nexus != nexus);
    }
}
