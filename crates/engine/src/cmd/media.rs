//! Medium state of an LU: removable-medium emulation (SBC-3 §4.20, §5.5 PREVENT ALLOW MEDIUM
//! REMOVAL, §5.25 START STOP UNIT LOEJ; SPC-4 INQUIRY RMB), a test-lab LU option
//! (`removable`), and the sanitize state (SBC-3 §4.11: in progress, failure mode) that gates
//! medium access while a SANITIZE runs or after one failed.

use std::sync::atomic::Ordering;

use ironlun_scsi::cdb::{PreventAllowMediumRemoval, StartStopUnit};
use ironlun_scsi::sense::asc;
use ironlun_scsi::Sense;

use crate::core::device::media::{in_progress, Sanitize};
use crate::core::device::Device;
use crate::handler::io_fail;
use crate::handler::{Ctx, Done, Outcome};

/// The sense a medium-access command gets from the medium state, if any: sanitize in
/// progress, sanitize failure mode, medium not present (in that order). Also what REQUEST
/// SENSE reports when no unit attention is pending.
pub(crate) fn state_sense(dev: &Device) -> Option<Sense> {
    match dev.media.sanitize_state() {
        Sanitize::Running { done, total } => return Some(in_progress(done, total)),
        Sanitize::Failed { .. } => return Some(Sense::medium_error(asc::SANITIZE_COMMAND_FAILED)),
        Sanitize::Idle => {}
    }
    if !dev.media.loaded() {
        return Some(Sense::not_ready(asc::MEDIUM_NOT_PRESENT));
    }
    None
}

/// Gate for commands that access the medium (nexus gate 4).
pub(crate) fn check_present(dev: &Device) -> Result<(), Sense> {
    match state_sense(dev) {
        Some(s) => Err(s),
        None => Ok(()),
    }
}

/// I_T nexus loss: the nexus' medium removal prevention ends (SBC-3 §5.5).
pub(crate) fn nexus_gone(dev: &Device, nexus: u64) {
    dev.media.preventing.lock().remove(&nexus);
}

/// Logical unit reset / hard reset: every prevention ends (SBC-3 §5.5). A running sanitize
/// continues (SBC-3 §4.11: it survives resets).
pub(crate) fn reset(dev: &Device) {
    dev.media.preventing.lock().clear();
}

/// PREVENT ALLOW MEDIUM REMOVAL (SBC-3 §5.5): PREVENT 01b adds this I_T nexus to those
/// preventing removal, 00b removes it; 1xb are obsolete (media changer) values.
pub(crate) fn prevent_allow(c: &Ctx) -> Outcome {
    let prevent = PreventAllowMediumRemoval::parse(c.cdb)?.prevent;
    let mut set = c.dev.media.preventing.lock();
    match prevent {
        0 => {
            set.remove(&c.nexus.id);
        }
        1 => {
            set.insert(c.nexus.id);
        }
        _ => return Err(Sense::invalid_cdb(PreventAllowMediumRemoval::PREVENT).into()),
    }
    Ok(Done::good())
}

/// START STOP UNIT (SBC-3 §5.25). Not removable: START=1 makes the LU ready, START=0 stops
/// it (flushing unless NO_FLUSH); POWER CONDITION and LOEJ are refused. Removable: LOEJ=1
/// ejects (START=0) or loads (START=1) the medium, refused with MEDIUM REMOVAL PREVENTED
/// while any I_T nexus prevents removal; loading raises MEDIUM MAY HAVE CHANGED on the other
/// I_T nexuses. LOEJ=0 START=0 flushes and leaves the medium loaded and ready (as
/// iscsi-test-cu StartStopUnit.NoLoej requires of a removable unit). A non-zero POWER
/// CONDITION is accepted and START/LOEJ ignored (§5.25: "the START and LOEJ bits are ignored");
/// the unit has no power conditions to enter.
pub(crate) fn start_stop_unit(c: &Ctx) -> Outcome {
    // START STOP UNIT is not a medium-access command for the gate, but a sanitize forbids it.
    if let Sanitize::Running { done, total } = c.dev.media.sanitize_state() {
        return Err(in_progress(done, total).into());
    }
    let cdb = StartStopUnit::parse(c.cdb)?;
    let removable = c.dev.media.removable();
    if cdb.power_condition != 0 && !removable {
        return Err(Sense::invalid_cdb(StartStopUnit::POWER_CONDITION).into());
    }
    if cdb.power_condition_modifier != 0 {
        return Err(Sense::invalid_cdb(StartStopUnit::POWER_CONDITION_MODIFIER).into());
    }
    let (loej, start, no_flush) = (cdb.loej, cdb.start, cdb.no_flush);
    if !removable {
        if loej {
            return Err(Sense::invalid_cdb(StartStopUnit::LOEJ).into());
        }
        if start {
            c.dev.stopped.store(false, Ordering::Relaxed);
        } else {
            if !no_flush {
                c.dev.backstore.flush().map_err(|e| io_fail(e, true))?;
            }
            c.dev.stopped.store(true, Ordering::Relaxed);
        }
        return Ok(Done::good());
    }
    if cdb.power_condition != 0 {
        return Ok(Done::good());
    }
    if loej {
        // Hold the prevention set so a PREVENT cannot slip in between check and eject.
        let set = c.dev.media.preventing.lock();
        if !set.is_empty() {
            return Err(Sense::illegal(asc::MEDIUM_REMOVAL_PREVENTED).into());
        }
        let m = &c.dev.media;
        if start {
            if !m.loaded.swap(true, Ordering::AcqRel) {
                c.dev
                    .raise_ua(asc::MEDIUM_MAY_HAVE_CHANGED, Some(c.slot.id));
            }
            c.dev.stopped.store(false, Ordering::Relaxed);
        } else if m.loaded.load(Ordering::Acquire) {
            if !no_flush {
                c.dev.backstore.flush().map_err(|e| io_fail(e, true))?;
            }
            m.loaded.store(false, Ordering::Release);
        }
        drop(set);
        return Ok(Done::good());
    }
    if start {
        c.dev.stopped.store(false, Ordering::Relaxed);
    } else if !no_flush && c.dev.media.loaded() {
        c.dev.backstore.flush().map_err(|e| io_fail(e, true))?;
    }
    Ok(Done::good())
}
