//! The command pipeline (SAM-5 §5; the gates as docs/ARCHITECTURE.md lists them).
//!
//! [`Nexus::execute`] resolves the LUN through the nexus' view, enters the LU's task set, then
//! applies the gates in order — pending unit attention, opcode / CDB validation, ALUA state,
//! reservation conflict (SPC-2, then persistent), stopped / write-protected medium — before
//! the opcode handler ([`run`] dispatches by command kind). The handler's outcome becomes a
//! [`ScsiResponse`] in `crate::handler::respond`. Task management and I_T nexus loss are in
//! [`tmf`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use ironlun_scsi::sense::asc;
use ironlun_scsi::{status, Sense};

use crate::cmd::{atomic, defect, media, mode, ops, sanitize, sbc, spc, thin, xcopy};
use crate::core::device::slot::LunSlot;
use crate::core::port::nexus::Nexus;
use crate::core::stats::OpClass;
use crate::core::tmf::{Entry, Refused};
use crate::handler::{respond, Cmd, Ctx, Done, Fail, OpInfo, Outcome};
use crate::{alua, pr, ScsiRequest, ScsiResponse, TaskAttr};

mod passthrough;
pub(crate) mod tmf;

/// A task received into its LU's task set and not run yet ([`Nexus::receive`]). Dropping it
/// without [`Nexus::execute_received`] withdraws the task (it never runs, nothing is sent).
pub struct Received {
    /// `None`: the LUN addresses no LU; the command is answered as such when executed.
    slot: Option<Arc<LunSlot>>,
    entry: Option<Entry>,
    /// When the task entered the task set: its latency runs from here to its response.
    since: Instant,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received")
            .field("lu", &self.slot.as_ref().map(|s| s.id))
            .field("entry", &self.entry)
            .finish()
    }
}

/// The largest transfer [`Received::runs_at_once`] lets a transport run on its own task.
pub const INLINE_MAX_BYTES: u32 = 256 << 10;

impl Received {
    /// Whether this command may run on the transport's own task rather than on a thread
    /// that may block: a READ or WRITE of at most [`INLINE_MAX_BYTES`] (`expected_len`) on a
    /// LU whose backstore never blocks (memory), that its task set lets run at once (no older
    /// ORDERED task, no TMF since it was received). Such a command waits for nothing but
    /// short locks. Everything else goes to a thread.
    pub fn runs_at_once(&self, cdb: &[u8], expected_len: u32) -> bool {
        let (Some(slot), Some(e)) = (&self.slot, &self.entry) else {
            return false;
        };
        let rw = matches!(
            cdb.first(),
            Some(0x08 | 0x0a | 0x28 | 0x2a | 0xa8 | 0xaa | 0x88 | 0x8a)
        );
        rw && expected_len <= INLINE_MAX_BYTES
            && slot.device.backstore.never_blocks()
            && slot.device.tasks.starts_at_once(e)
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
    /// tells this nexus' [`TaskListener`](crate::TaskListener).
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
                since: Instant::now(),
            });
        };
        let dev = &*slot.device;
        let attr = match ops::lookup(cdb, dev.hidden_ops()) {
            Ok(o) if o.has(crate::handler::F_HOQ) => TaskAttr::HeadOfQueue,
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
                since: Instant::now(),
            }),
            Err(_) => {
                let _ = self.after(&slot, Err(Fail::TaskSetFull));
                self.count_unrun(Some(&slot), cdb, status::TASK_SET_FULL, &[]);
                Err(ScsiResponse {
                    status: status::TASK_SET_FULL,
                    ..ScsiResponse::default()
                })
            }
        }
    }

    /// A command the transport answered itself without running it (its limits: a write too
    /// large to gather, too many held tasks or buffered bytes): counted with the commands of
    /// this I_T nexus and of the LU `lun` addresses, like any other answered command.
    pub fn count_refused(&self, lun: u64, cdb: &[u8], status: u8, sense: &[u8]) {
        let slot = self.view.load().luns.get(&lun).cloned();
        self.count_unrun(slot.as_deref(), cdb, status, sense);
    }

    /// Count an answer given without running the command (no latency, no data).
    fn count_unrun(&self, slot: Option<&LunSlot>, cdb: &[u8], st: u8, sense: &[u8]) {
        let hidden = slot.map_or(0, |s| s.device.hidden_ops());
        let class = match ops::lookup(cdb, hidden) {
            Ok(o) if matches!(o.cmd, Cmd::Read) => OpClass::Read,
            Ok(o) if o.has(crate::handler::F_WRITE) => OpClass::Write,
            _ => OpClass::Other,
        };
        for s in slot
            .map(|s| &s.device.stats)
            .into_iter()
            .chain([&self.stats])
        {
            s.record(class, 0, 0, 0);
            s.error(st, sense);
        }
    }

    /// Run a task entered with [`Nexus::receive`] to completion (`req` now carries all of its
    /// Data-Out). Blocking. A task aborted meanwhile ends as [`ScsiResponse::aborted`].
    pub fn execute_received(&self, mut r: Received, req: ScsiRequest) -> ScsiResponse {
        let (Some(slot), Some(entry)) = (r.slot.clone(), r.entry.take()) else {
            return respond(&req, spc::no_lun(self, &req), false);
        };
        let found = ops::lookup(&req.cdb, slot.device.hidden_ops());
        let class = match found {
            Ok(o) if matches!(o.cmd, Cmd::Read) => OpClass::Read,
            Ok(o) if o.has(crate::handler::F_WRITE) => OpClass::Write,
            _ => OpClass::Other,
        };
        let resp = match slot.device.backstore.passthrough() {
            Some(pt) => self.run_passed_through(&slot, entry, &req, pt),
            None => self.run_entered(&slot, entry, &req, found),
        };
        // A task its own nexus aborted ends without a response and is not counted here
        // (the TMF is).
        if !resp.suppressed {
            let nanos = r.since.elapsed().as_nanos() as u64;
            let stats = [&slot.device.stats, &self.stats];
            for s in stats {
                s.record(class, nanos, resp.data_in.len(), req.data_out.len());
            }
            if !matches!(resp.status, status::GOOD | status::CONDITION_MET) {
                for s in stats {
                    s.error(resp.status, &resp.sense);
                }
            }
        }
        resp
    }

    fn run_entered(
        &self,
        slot: &LunSlot,
        entry: Entry,
        req: &ScsiRequest,
        found: Result<&'static OpInfo, Sense>,
    ) -> ScsiResponse {
        let dev = &*slot.device;
        self.in_task_set(slot, entry, req, |seq| {
            let outcome = self.gates_and_run(slot, req, found, seq);
            let outcome = self.after(slot, outcome);
            respond(req, outcome, dev.d_sense.load(Ordering::Relaxed))
        })
    }

    /// [`Nexus::run_entered`] for a pass-through LU ([`passthrough`]).
    fn run_passed_through(
        &self,
        slot: &LunSlot,
        entry: Entry,
        req: &ScsiRequest,
        pt: &dyn ironlun_backstore::Passthrough,
    ) -> ScsiResponse {
        self.in_task_set(slot, entry, req, |_| passthrough::run(self, slot, req, pt))
    }

    /// Start the task (its turn in the task set), `run` it with its sequence number, and
    /// leave: a task aborted meanwhile ends as [`ScsiResponse::aborted`] instead.
    fn in_task_set(
        &self,
        slot: &LunSlot,
        entry: Entry,
        req: &ScsiRequest,
        run: impl FnOnce(u64) -> ScsiResponse,
    ) -> ScsiResponse {
        let dev = &*slot.device;
        let ticket = match dev.tasks.start(entry) {
            Ok(t) => t,
            Err(Refused::Aborted(a)) => return ScsiResponse::aborted(a),
            Err(Refused::Full) => {
                let outcome = self.after(slot, Err(Fail::TaskSetFull));
                return respond(req, outcome, false);
            }
        };
        let resp = run(ticket.seq());
        if let Some(a) = dev.tasks.leave(ticket) {
            return ScsiResponse::aborted(a);
        }
        resp
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
        let exempt = found
            .as_ref()
            .is_ok_and(|o| o.has(crate::handler::F_UA_EXEMPT));
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
        if !o.has(crate::handler::F_RES_OK) && dev.spc2.conflicts(self.id) {
            return Err(Fail::ReservationConflict);
        }
        // Persistent reservation held (SPC-4 §5.13.1, SBC-3 §4.17).
        if !o.has(crate::handler::F_PR_FREE) && pr::conflicts(dev, &self.ident, o, cdb) {
            return Err(Fail::ReservationConflict);
        }
        // Gate 4: medium state.
        if o.has(crate::handler::F_MEDIA) {
            media::check_present(dev)?;
        }
        if o.has(crate::handler::F_MEDIA) && dev.stopped.load(Ordering::Relaxed) {
            // SBC-3 §4.20: stopped LU → LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED.
            return Err(Sense::not_ready(asc::NOT_READY_INITIALIZING_COMMAND_REQUIRED).into());
        }
        if o.has(crate::handler::F_WRITE) {
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
}

pub(crate) fn run(c: &Ctx) -> Outcome {
    match c.op.cmd {
        Cmd::TestUnitReady => Ok(Done::good()),
        Cmd::RequestSense => spc::request_sense(c),
        Cmd::Inquiry => spc::inquiry(c),
        Cmd::ReportLuns => spc::report_luns(c.nexus, c.cdb),
        Cmd::ReportSupportedOpcodes => spc::rsoc(c),
        Cmd::ReportSupportedTmfs => spc::rstmf(c),
        Cmd::ReportTargetPortGroups => alua::report::report_target_port_groups(c),
        Cmd::SetTargetPortGroups => alua::report::set_target_port_groups(c),
        Cmd::Reserve => spc::reserve(c),
        Cmd::Release => spc::release(c),
        Cmd::ModeSense6 | Cmd::ModeSense10 => mode::mode_sense(c),
        Cmd::ModeSelect6 | Cmd::ModeSelect10 => mode::mode_select(c),
        Cmd::Read => sbc::read(c),
        Cmd::Write => sbc::write(c),
        Cmd::WriteVerify => sbc::write_verify(c),
        Cmd::CompareAndWrite => sbc::compare_and_write(c),
        Cmd::WriteSame => sbc::write_same(c),
        Cmd::Verify => sbc::verify(c),
        Cmd::PreFetch => sbc::pre_fetch(c),
        Cmd::SyncCache => sbc::sync_cache(c),
        Cmd::StartStopUnit => media::start_stop_unit(c),
        Cmd::PreventAllow => media::prevent_allow(c),
        Cmd::Unmap => thin::unmap(c),
        Cmd::GetLbaStatus => thin::get_lba_status(c),
        Cmd::ExtendedCopy => xcopy::extended_copy(c),
        Cmd::ReceiveCopyResults => xcopy::receive_copy_results(c),
        Cmd::OrWrite => atomic::orwrite(c),
        Cmd::WriteAtomic => atomic::write_atomic(c),
        Cmd::Sanitize => sanitize::sanitize(c),
        Cmd::ReadDefectData => defect::read_defect_data(c),
        Cmd::ReadCapacity10 => sbc::read_capacity_10(c),
        Cmd::ReadCapacity16 => sbc::read_capacity_16(c),
        Cmd::PersistentReserveIn => pr::persistent_reserve_in(c),
        Cmd::PersistentReserveOut => pr::persistent_reserve_out(c),
    }
}
