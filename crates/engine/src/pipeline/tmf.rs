//! Task management (SAM-5 §7) at the I_T nexus: the TMF entry points, target resets, and
//! I_T nexus loss (SAM-5 §6.3.4), which ends what the nexus held in every LU.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ironlun_scsi::sense::asc;

use crate::cmd::media;
use crate::core::device::Device;
use crate::core::port::nexus::{Nexus, View};
use crate::core::tmf::{Abort, Scope};
use crate::{TmfKind, TmfResponse};

impl Nexus {
    /// Run a task management function for `lun`. Blocking: returns once the affected tasks
    /// have completed (SAM-5 §7).
    pub fn task_management(&self, lun: u64, tmf: TmfKind) -> TmfResponse {
        self.begin_task_management(lun, tmf).wait()
    }

    /// The non-blocking first half of [`Nexus::task_management`], for a transport that must
    /// apply TMFs in command order (RFC 7143 §4.2.3.3): every affected task is marked aborted
    /// and every other effect (reservation release, unit attentions) applied before this
    /// returns, so a command received afterwards is not affected; tasks a transport still
    /// holds are handed to its [`TaskListener`](crate::TaskListener). [`PendingTmf::wait`] then blocks until the
    /// affected tasks have ended and gives the response.
    pub fn begin_task_management(&self, lun: u64, tmf: TmfKind) -> PendingTmf {
        let done = |response| PendingTmf {
            response,
            waits: Vec::new(),
            resets: Vec::new(),
        };
        match tmf {
            TmfKind::TargetWarmReset => {
                return done(TmfResponse::FunctionComplete)
                    .with_all(self.target_reset(asc::SCSI_BUS_RESET_OCCURRED, 5));
            }
            TmfKind::TargetColdReset => {
                return done(TmfResponse::FunctionComplete)
                    .with_all(self.target_reset(asc::POWER_ON_OCCURRED, 6));
            }
            _ => {}
        }
        let Some(slot) = self.view.load().luns.get(&lun).cloned() else {
            return done(TmfResponse::LunDoesNotExist);
        };
        let dev = &slot.device;
        let counted = |which: usize, p: PendingTmf| {
            let n = p.waits.iter().map(|(_, t)| t.len()).sum();
            dev.stats.tmf(which, n);
            self.stats.tmf(which, n);
            p
        };
        let others = if dev.tas.load(Ordering::Relaxed) {
            Abort::TaskAborted
        } else {
            Abort::Silent
        };
        match tmf {
            TmfKind::AbortTask { tag } => {
                let m = dev
                    .tasks
                    .mark(Scope::Tag { itl: slot.id, tag }, self.id, Abort::Silent);
                if m.tasks.is_empty() {
                    counted(0, done(TmfResponse::TaskDoesNotExist))
                } else {
                    counted(0, done(TmfResponse::FunctionComplete).with(dev, m.tasks))
                }
            }
            TmfKind::AbortTaskSet => {
                let m = dev.tasks.mark(Scope::Itl(slot.id), self.id, Abort::Silent);
                counted(1, done(TmfResponse::FunctionComplete).with(dev, m.tasks))
            }
            // NACA is not supported, so there is never an ACA condition to clear.
            TmfKind::ClearAca => counted(3, done(TmfResponse::NotSupported)),
            TmfKind::ClearTaskSet => {
                let m = dev.tasks.mark(Scope::All, self.id, others);
                if others == Abort::Silent {
                    // SAM-5 §7.4: TAS=0 → the other nexuses learn it from a unit attention.
                    dev.raise_ua_for(asc::COMMANDS_CLEARED_BY_ANOTHER_INITIATOR, &m.owners);
                }
                counted(2, done(TmfResponse::FunctionComplete).with(dev, m.tasks))
            }
            TmfKind::LogicalUnitReset => {
                let marked = lu_reset(dev, self.id, asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED);
                counted(4, done(TmfResponse::FunctionComplete).with(dev, marked)).resetting(dev)
            }
            TmfKind::TargetWarmReset | TmfKind::TargetColdReset => {
                done(TmfResponse::FunctionComplete)
            }
        }
    }

    /// SAM-5 §6.3: a hard reset (warm) or power-on (cold) of every LU behind the port;
    /// `which` indexes [`crate::TMF_NAMES`] for the counters.
    fn target_reset(&self, ua: ironlun_scsi::Asc, which: usize) -> Vec<(Arc<Device>, Vec<u64>)> {
        let all: Vec<_> = self
            .port
            .devices()
            .into_iter()
            .map(|dev| {
                let marked = lu_reset(&dev, self.id, ua);
                dev.stats.tmf(which, marked.len());
                (dev, marked)
            })
            .collect();
        self.stats
            .tmf(which, all.iter().map(|(_, t)| t.len()).sum());
        all
    }

    /// I_T nexus loss (session ended): release SPC-2 reservations, forget its UAs, etc.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let view = self.view.swap(Arc::new(View::default()));
        for slot in view.luns.values() {
            let dev = &slot.device;
            // SAM-5 §6.3.4: I_T nexus loss aborts the nexus' tasks and SPC-2 reservations.
            dev.spc2_release(self.id);
            dev.tasks
                .abort(Scope::Nexus(self.id), self.id, Abort::Silent);
            media::nexus_gone(dev, self.id);
            dev.copies.nexus_gone(self.id);
        }
        self.port.forget_nexus(self.id);
    }
}

impl Drop for Nexus {
    fn drop(&mut self) {
        self.close();
    }
}

/// A task management function whose affected tasks are marked aborted
/// ([`Nexus::begin_task_management`]) but may not have ended yet.
#[must_use = "the TMF's response is known only after wait()"]
pub struct PendingTmf {
    response: TmfResponse,
    /// Per LU, the places of the marked tasks in its task set.
    waits: Vec<(Arc<Device>, Vec<u64>)>,
    /// Pass-through LUs whose device gets the reset too (pscsi), before the wait.
    resets: Vec<Arc<Device>>,
}

impl std::fmt::Debug for PendingTmf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: usize = self.waits.iter().map(|(_, t)| t.len()).sum();
        f.debug_struct("PendingTmf")
            .field("response", &self.response)
            .field("aborted", &n)
            .finish()
    }
}

impl PendingTmf {
    fn with(mut self, dev: &Arc<Device>, tasks: Vec<u64>) -> PendingTmf {
        self.waits.push((dev.clone(), tasks));
        self
    }

    fn with_all(mut self, waits: Vec<(Arc<Device>, Vec<u64>)>) -> PendingTmf {
        for (dev, _) in &waits {
            self = self.resetting(dev);
        }
        self.waits.extend(waits);
        self
    }

    /// A reset of `dev`: a pass-through device is reset too (its own task set holds the
    /// commands in flight), from [`PendingTmf::wait`], which may block.
    fn resetting(mut self, dev: &Arc<Device>) -> PendingTmf {
        if dev.backstore.passthrough().is_some() {
            self.resets.push(dev.clone());
        }
        self
    }

    /// Block until every task the TMF aborted has left its task set (SAM-5 §7.1: the TMF
    /// completes after them); the TMF's response.
    pub fn wait(self) -> TmfResponse {
        for dev in &self.resets {
            if let Some(Err(e)) = dev.backstore.passthrough().map(|pt| pt.reset()) {
                tracing::warn!(
                    "{}: reset of the pass-through device failed: {e}",
                    dev.name()
                );
            }
        }
        for (dev, tasks) in &self.waits {
            dev.tasks.wait(tasks);
        }
        self.response
    }
}

/// SAM-5 §6.3.3 logical unit reset: abort every task (other nexuses' per TAS), release the
/// SPC-2 reservation, and raise `ua` on every I_T nexus of the LU — the requester included.
/// Mode parameters are kept: MODE SELECT changes are the device's configuration here (no
/// saved pages), as in LIO. Returns the marked tasks; the caller waits for them.
fn lu_reset(dev: &Device, own: u64, ua: ironlun_scsi::Asc) -> Vec<u64> {
    let others = if dev.tas.load(Ordering::Relaxed) {
        Abort::TaskAborted
    } else {
        Abort::Silent
    };
    let m = dev.tasks.mark(Scope::All, own, others);
    dev.lu_reset_everywhere(ua);
    media::reset(dev);
    dev.raise_ua(ua, None);
    m.tasks
}
