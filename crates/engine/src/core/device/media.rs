//! Medium state of an LU (kept by the device): removable-medium emulation (SBC-3 §4.20; INQUIRY
//! RMB), and the sanitize state (SBC-3 §4.11: in progress, failure mode) that gates medium
//! access. The commands that change it are `crate::cmd::media` and `crate::cmd::sanitize`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use ironlun_scsi::sense::asc;
use ironlun_scsi::Sense;
use parking_lot::Mutex;

/// Where the LU's sanitize stands (SBC-3 §4.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sanitize {
    Idle,
    /// Running: `done` of `total` units (bytes) written.
    Running {
        done: u64,
        total: u64,
    },
    /// The last sanitize failed; `ause` is its AUSE bit (may EXIT FAILURE MODE end it).
    Failed {
        ause: bool,
    },
}

/// Medium state of one LU.
#[derive(Debug)]
pub(crate) struct MediaState {
    pub(crate) removable: AtomicBool,
    pub(crate) loaded: AtomicBool,
    /// I_T nexuses that sent PREVENT ALLOW MEDIUM REMOVAL with PREVENT 01b.
    pub(crate) preventing: Mutex<HashSet<u64>>,
    pub(crate) sanitize: Mutex<Sanitize>,
    /// `sanitize` is not Idle: lets the medium gate of every READ and WRITE skip the lock.
    pub(crate) sanitize_busy: AtomicBool,
}

impl Default for MediaState {
    fn default() -> Self {
        Self {
            removable: AtomicBool::new(false),
            loaded: AtomicBool::new(true),
            preventing: Mutex::new(HashSet::new()),
            sanitize: Mutex::new(Sanitize::Idle),
            sanitize_busy: AtomicBool::new(false),
        }
    }
}

impl MediaState {
    pub(crate) fn removable(&self) -> bool {
        self.removable.load(Ordering::Relaxed)
    }

    pub(crate) fn set_removable(&self, on: bool) {
        self.removable.store(on, Ordering::Relaxed);
        if !on {
            self.loaded.store(true, Ordering::Relaxed);
            self.preventing.lock().clear();
        }
    }

    pub(crate) fn loaded(&self) -> bool {
        !self.removable() || self.loaded.load(Ordering::Relaxed)
    }

    pub(crate) fn sanitize_state(&self) -> Sanitize {
        if !self.sanitize_busy.load(Ordering::Acquire) {
            return Sanitize::Idle;
        }
        *self.sanitize.lock()
    }

    /// Store a new sanitize state (under its lock) and keep `sanitize_busy` in step.
    pub(crate) fn set_sanitize(&self, s: &mut Sanitize, new: Sanitize) {
        *s = new;
        self.sanitize_busy
            .store(!matches!(new, Sanitize::Idle), Ordering::Release);
    }

    /// Enter the running state unless a sanitize already runs (then Err with its sense).
    pub(crate) fn sanitize_begin(&self, total: u64) -> Result<(), Sense> {
        let mut s = self.sanitize.lock();
        if let Sanitize::Running { done, total } = *s {
            return Err(in_progress(done, total));
        }
        self.set_sanitize(&mut s, Sanitize::Running { done: 0, total });
        Ok(())
    }

    pub(crate) fn sanitize_progress(&self, done: u64) {
        let mut s = self.sanitize.lock();
        if let Sanitize::Running { total, .. } = *s {
            *s = Sanitize::Running { done, total };
        }
    }

    /// End the running sanitize: success returns to normal, failure enters failure mode.
    pub(crate) fn sanitize_end(&self, ok: bool, ause: bool) {
        let new = if ok {
            Sanitize::Idle
        } else {
            Sanitize::Failed { ause }
        };
        self.set_sanitize(&mut self.sanitize.lock(), new);
    }

    /// EXIT FAILURE MODE: Ok when the LU is (now) out of failure mode, Err(()) when the failed
    /// sanitize had AUSE=0 and only a successful sanitize may end it.
    pub(crate) fn sanitize_exit_failure(&self) -> Result<(), ()> {
        let mut s = self.sanitize.lock();
        match *s {
            Sanitize::Failed { ause: false } => Err(()),
            Sanitize::Failed { ause: true } => {
                self.set_sanitize(&mut s, Sanitize::Idle);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// NOT READY, SANITIZE IN PROGRESS with the progress indication (fraction done × 65536).
pub(crate) fn in_progress(done: u64, total: u64) -> Sense {
    let frac = if total == 0 {
        0
    } else {
        (u128::from(done.min(total)) * 65536 / u128::from(total)).min(65535) as u16
    };
    Sense::not_ready(asc::NOT_READY_SANITIZE_IN_PROGRESS).with_progress(frac)
}
