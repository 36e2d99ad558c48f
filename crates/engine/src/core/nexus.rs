//! I_T nexuses and the command pipeline (SAM-5 §5; the gates as docs/ARCHITECTURE.md lists them).
//!
//! [`Nexus::execute`] resolves the LUN through the nexus' view, enters the LU's task set, then
//! applies the gates in order — pending unit attention, opcode / CDB validation, ALUA state,
//! reservation conflict (SPC-2, then persistent), stopped / write-protected medium — before
//! the opcode handler. The
//! handler's outcome becomes a [`ScsiResponse`] in one place (`respond`), where data is cut to
//! the allocation length and the transport's expected length and the residual is computed
//! (RFC 7143 §11.4.5, SAM-5 §5.4.3).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use arc_swap::ArcSwap;
use ironlun_scsi::sense::asc;
use ironlun_scsi::{status, Sense};

use crate::cmd::{media, ops, respond, run, spc, xcopy, Ctx, Fail, OpInfo, Outcome};
use crate::core::device::Device;
use crate::core::port::{next_id, LunSlot, TargetPort, View};
use crate::core::tmf::{Abort, Entry, Refused, Scope};
use crate::pr::{self, NexusIdent};
use crate::{
    alua, InitiatorPortId, ScsiRequest, ScsiResponse, TaskAttr, TaskListener, TmfKind, TmfResponse,
};

/// An I_T nexus.
pub struct Nexus {
    pub(crate) id: u64,
    initiator: InitiatorPortId,
    initiator_port_name: String,
    pub(crate) port: Arc<TargetPort>,
    /// Initiator and target port names, as persistent reservations match them.
    pub(crate) ident: Arc<NexusIdent>,
    pub(crate) view: ArcSwap<View>,
    closed: AtomicBool,
    /// The transport told of aborts of the tasks it holds (see [`TaskListener`]).
    listener: OnceLock<Weak<dyn TaskListener>>,
}

/// A task received into its LU's task set and not run yet ([`Nexus::receive`]). Dropping it
/// without [`Nexus::execute_received`] withdraws the task (it never runs, nothing is sent).
pub struct Received {
    /// `None`: the LUN addresses no LU; the command is answered as such when executed.
    slot: Option<Arc<LunSlot>>,
    entry: Option<Entry>,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received")
            .field("lu", &self.slot.as_ref().map(|s| s.id))
            .field("entry", &self.entry)
            .finish()
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        if let (Some(slot), Some(e)) = (&self.slot, self.entry.take()) {
            slot.device.tasks.withdraw(e);
        }
    }
}

impl Nexus {
    pub(crate) fn new(initiator: InitiatorPortId, port: Arc<TargetPort>) -> Nexus {
        Nexus {
            id: next_id(),
            initiator_port_name: initiator.port_name(),
            ident: Arc::new(NexusIdent {
                initiator: initiator.clone(),
                target: port.target_name().to_string(),
                tpgt: port.tpgt(),
                rtpi: port.rtpi(),
            }),
            initiator,
            port,
            view: ArcSwap::from_pointee(View::default()),
            closed: AtomicBool::new(false),
            listener: OnceLock::new(),
        }
    }

    /// Register the transport's [`TaskListener`] for tasks it receives on this nexus (once;
    /// later calls are ignored). Held weakly: the transport's session owns the nexus.
    pub fn set_task_listener(&self, l: Weak<dyn TaskListener>) {
        let _ = self.listener.set(l);
    }

    pub fn initiator(&self) -> &InitiatorPortId {
        &self.initiator
    }

    pub fn port(&self) -> &Arc<TargetPort> {
        &self.port
    }

    /// LUNs this nexus can address, ascending.
    pub fn luns(&self) -> Vec<u64> {
        self.view.load().lun_list()
    }

    /// Whether the LU at `lun` wants descriptor-format sense data (control mode page D_SENSE,
    /// SPC-4 §7.5.8), for a transport that refuses a command itself; false where no LU is.
    pub fn descriptor_sense(&self, lun: u64) -> bool {
        self.view
            .load()
            .luns
            .get(&lun)
            .is_some_and(|s| s.device.d_sense.load(Ordering::Relaxed))
    }

    pub(crate) fn initiator_port_name(&self) -> &str {
        &self.initiator_port_name
    }

    /// Run one command to completion. Blocking.
    pub fn execute(&self, req: ScsiRequest) -> ScsiResponse {
        match self.receive(req.lun, &req.cdb, req.tag, req.attr) {
            Ok(r) => self.execute_received(r, req),
            Err(full) => full,
        }
    }

    /// Enter a task into its LU's task set when the transport receives the command in
    /// command order, before its Data-Out is in (SAM-5 §8.2; the task counts for ORDERED
    /// tasks and is reached by TMFs from then on). Never blocks. Err: the task set is full, and
    /// this is the command's response (TASK SET FULL, SAM-5 §5.3.1). Run the task with
    /// [`Nexus::execute_received`] (the same `lun` and `tag`); until then a TMF that aborts it
    /// tells this nexus' [`TaskListener`].
    pub fn receive(
        &self,
        lun: u64,
        cdb: &[u8],
        tag: u64,
        attr: TaskAttr,
    ) -> Result<Received, ScsiResponse> {
        let Some(slot) = self.view.load().luns.get(&lun).cloned() else {
            return Ok(Received {
                slot: None,
                entry: None,
            });
        };
        let dev = &*slot.device;
        let attr = match ops::lookup(cdb, dev.hidden_ops()) {
            Ok(o) if o.has(crate::cmd::F_HOQ) => TaskAttr::HeadOfQueue,
            _ => attr,
        };
        let limit = dev.queue_depth() as usize;
        let held_by = self.listener.get().cloned();
        match dev
            .tasks
            .insert(self.id, slot.id, tag, attr, limit, held_by)
        {
            Ok(e) => Ok(Received {
                slot: Some(slot),
                entry: Some(e),
            }),
            Err(_) => {
                let _ = self.after(&slot, Err(Fail::TaskSetFull));
                Err(ScsiResponse {
                    status: status::TASK_SET_FULL,
                    ..ScsiResponse::default()
                })
            }
        }
    }

    /// Run a task entered with [`Nexus::receive`] to completion (`req` now carries all of its
    /// Data-Out). Blocking. A task aborted meanwhile ends as [`ScsiResponse::aborted`].
    pub fn execute_received(&self, mut r: Received, req: ScsiRequest) -> ScsiResponse {
        let (Some(slot), Some(entry)) = (r.slot.clone(), r.entry.take()) else {
            return respond(&req, spc::no_lun(self, &req), false);
        };
        let dev = &*slot.device;
        let cdb = req.cdb.as_slice();
        let found = ops::lookup(cdb, dev.hidden_ops());
        let ticket = match dev.tasks.start(entry) {
            Ok(t) => t,
            Err(Refused::Aborted(a)) => return ScsiResponse::aborted(a),
            Err(Refused::Full) => {
                let outcome = self.after(&slot, Err(Fail::TaskSetFull));
                return respond(&req, outcome, false);
            }
        };
        let outcome = self.gates_and_run(&slot, &req, found, ticket.seq());
        let outcome = self.after(&slot, outcome);
        if let Some(a) = dev.tasks.leave(ticket) {
            return ScsiResponse::aborted(a);
        }
        respond(&req, outcome, dev.d_sense.load(Ordering::Relaxed))
    }

    fn gates_and_run(
        &self,
        slot: &LunSlot,
        req: &ScsiRequest,
        found: Result<&'static OpInfo, Sense>,
        task: u64,
    ) -> Outcome {
        let dev = &*slot.device;
        let cdb = req.cdb.as_slice();
        let exempt = found.as_ref().is_ok_and(|o| o.has(crate::cmd::F_UA_EXEMPT));
        // Gate 1: unit attention (SAM-5 §5.14). UA_INTLCK_CTRL 00b clears the reported
        // condition; 10b/11b keep it until REQUEST SENSE (SPC-4 §7.5.8).
        if !exempt && slot.ua.is_pending() {
            let clear = dev.ua_intlck.load(Ordering::Relaxed) == 0;
            if let Some(a) = slot.ua.take(clear) {
                return Err(Sense::unit_attention(a).into());
            }
        }
        // The ACA task attribute needs NACA support, which we do not offer (as LIO).
        if req.attr == TaskAttr::Aca {
            return Err(Sense::illegal(asc::INVALID_FIELD_IN_CDB).into());
        }
        let o = found?;
        ops::validate(o, cdb, dev.dpofua(), dev.tpws())?;
        // Gate 2: ALUA access state of the port's target port group.
        let nonop_ms = alua::gate::check(slot, o)?;
        // Gate 3: SPC-2 reservation held by another nexus.
        if !o.has(crate::cmd::F_RES_OK) && dev.spc2.conflicts(self.id) {
            return Err(Fail::ReservationConflict);
        }
        // Persistent reservation held (SPC-4 §5.13.1, SBC-3 §4.17).
        if !o.has(crate::cmd::F_PR_FREE) && pr::conflicts(dev, &self.ident, o, cdb) {
            return Err(Fail::ReservationConflict);
        }
        // Gate 4: medium state.
        if o.has(crate::cmd::F_MEDIA) {
            media::check_present(dev)?;
        }
        if o.has(crate::cmd::F_MEDIA) && dev.stopped.load(Ordering::Relaxed) {
            // SBC-3 §4.20: stopped LU → LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED.
            return Err(Sense::not_ready(asc::NOT_READY_INITIALIZING_COMMAND_REQUIRED).into());
        }
        if o.has(crate::cmd::F_WRITE) {
            if let Some(a) = slot.write_protection() {
                return Err(Sense::data_protect(a).into());
            }
        }
        alua::gate::nonop_delay(nonop_ms);
        let ctx = Ctx {
            nexus: self,
            slot,
            dev,
            cdb,
            req,
            op: o,
            task,
        };
        run(&ctx)
    }

    /// UA_INTLCK_CTRL 11b: a task ended with RESERVATION CONFLICT or TASK SET FULL leaves
    /// PREVIOUS RESERVATION CONFLICT STATUS (or the BUSY / TASK SET FULL variants) behind
    /// (SPC-4 §7.5.8).
    fn after(&self, slot: &LunSlot, outcome: Outcome) -> Outcome {
        if slot.device.ua_intlck.load(Ordering::Relaxed) == 2 {
            match outcome {
                Err(Fail::ReservationConflict) => {
                    slot.ua.raise(asc::PREVIOUS_RESERVATION_CONFLICT_STATUS);
                }
                Err(Fail::TaskSetFull) => slot.ua.raise(asc::PREVIOUS_TASK_SET_FULL_STATUS),
                _ => {}
            }
        }
        outcome
    }

    /// Run a task management function for `lun`. Blocking: returns once the affected tasks
    /// have completed (SAM-5 §7).
    pub fn task_management(&self, lun: u64, tmf: TmfKind) -> TmfResponse {
        self.begin_task_management(lun, tmf).wait()
    }

    /// The non-blocking first half of [`Nexus::task_management`], for a transport that must
    /// apply TMFs in command order (RFC 7143 §4.2.3.3): every affected task is marked aborted
    /// and every other effect (reservation release, unit attentions) applied before this
    /// returns, so a command received afterwards is not affected; tasks a transport still
    /// holds are handed to its [`TaskListener`]. [`PendingTmf::wait`] then blocks until the
    /// affected tasks have ended and gives the response.
    pub fn begin_task_management(&self, lun: u64, tmf: TmfKind) -> PendingTmf {
        let done = |response| PendingTmf {
            response,
            waits: Vec::new(),
        };
        match tmf {
            TmfKind::TargetWarmReset => {
                return done(TmfResponse::FunctionComplete)
                    .with_all(self.target_reset(asc::SCSI_BUS_RESET_OCCURRED));
            }
            TmfKind::TargetColdReset => {
                return done(TmfResponse::FunctionComplete)
                    .with_all(self.target_reset(asc::POWER_ON_OCCURRED));
            }
            _ => {}
        }
        let Some(slot) = self.view.load().luns.get(&lun).cloned() else {
            return done(TmfResponse::LunDoesNotExist);
        };
        let dev = &slot.device;
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
                    done(TmfResponse::TaskDoesNotExist)
                } else {
                    done(TmfResponse::FunctionComplete).with(dev, m.tasks)
                }
            }
            TmfKind::AbortTaskSet => {
                let m = dev.tasks.mark(Scope::Itl(slot.id), self.id, Abort::Silent);
                done(TmfResponse::FunctionComplete).with(dev, m.tasks)
            }
            // NACA is not supported, so there is never an ACA condition to clear.
            TmfKind::ClearAca => done(TmfResponse::NotSupported),
            TmfKind::ClearTaskSet => {
                let m = dev.tasks.mark(Scope::All, self.id, others);
                if others == Abort::Silent {
                    // SAM-5 §7.4: TAS=0 → the other nexuses learn it from a unit attention.
                    dev.raise_ua_for(asc::COMMANDS_CLEARED_BY_ANOTHER_INITIATOR, &m.owners);
                }
                done(TmfResponse::FunctionComplete).with(dev, m.tasks)
            }
            TmfKind::LogicalUnitReset => {
                let marked = lu_reset(dev, self.id, asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED);
                done(TmfResponse::FunctionComplete).with(dev, marked)
            }
            TmfKind::TargetWarmReset | TmfKind::TargetColdReset => {
                done(TmfResponse::FunctionComplete)
            }
        }
    }

    /// SAM-5 §6.3: a hard reset (warm) or power-on (cold) of every LU behind the port.
    fn target_reset(&self, ua: ironlun_scsi::Asc) -> Vec<(Arc<Device>, Vec<u64>)> {
        self.port
            .devices()
            .into_iter()
            .map(|dev| {
                let marked = lu_reset(&dev, self.id, ua);
                (dev, marked)
            })
            .collect()
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
            dev.spc2.release(self.id);
            dev.tasks
                .abort(Scope::Nexus(self.id), self.id, Abort::Silent);
            media::nexus_gone(dev, self.id);
            xcopy::nexus_gone(dev, self.id);
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
        self.waits.extend(waits);
        self
    }

    /// Block until every task the TMF aborted has left its task set (SAM-5 §7.1: the TMF
    /// completes after them); the TMF's response.
    pub fn wait(self) -> TmfResponse {
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
    dev.spc2.clear();
    media::reset(dev);
    dev.raise_ua(ua, None);
    m.tasks
}
