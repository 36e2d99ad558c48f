//! The access-state gate (SPC-4 §5.11.2.6): which commands a port LUN lets through in each
//! asymmetric access state, the Active/Non-optimized delay, and the INQUIRY / VPD 83h fields
//! that name a port's groups.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ironlun_scsi::alua::AccessState;
use ironlun_scsi::sense::asc;
use ironlun_scsi::{opcode as op, Asc, Sense};

use crate::core::device::slot::LunSlot;
use crate::core::device::Device;
use crate::handler::{Cmd, OpInfo};

/// INQUIRY TPGS field (byte 5 bits 5..4) from the access type of the port LUN's group.
pub(crate) fn tpgs_bits(slot: &LunSlot) -> u8 {
    (slot.alua.group.load().access_type.load(Ordering::Relaxed) & 3) << 4
}

/// The group of the port through which this I_T_L nexus reaches its LU.
pub(crate) fn group_of(slot: &LunSlot) -> u16 {
    slot.alua.group.load().id
}

/// The LU group id of the device (VPD 83h LU group designator; 0 = `default_lu_gp`).
pub(crate) fn lu_group_of(dev: &Device) -> u16 {
    dev.alua.lu_group_id()
}

/// Gate 2 of the pipeline: commands allowed in the access state of the port LUN
/// (SPC-4 §5.11.2.6). Ok(delay): run after sleeping `delay` ms (Active/Non-optimized).
/// Beyond the commands SPC-4 lists per state, the informational REPORT SUPPORTED OPERATION
/// CODES / TASK MANAGEMENT FUNCTIONS run in every state but Offline, and READ CAPACITY in
/// Standby (as LIO); MODE SENSE/SELECT(10) run in Standby too (LIO only allows the 6-byte
/// forms — Quirk).
pub(crate) fn check(slot: &LunSlot, o: &OpInfo) -> Result<u32, Sense> {
    let pl = &*slot.alua;
    let not_ready = |a: Asc| Err(Sense::not_ready(a));
    if pl.offline.load(Ordering::Acquire) {
        return offline_gate(o);
    }
    let g = pl.group.load();
    // A clustered LU on a gateway cut off from the cluster: in transition until it is back.
    let state = if slot.device.shared.fenced() {
        AccessState::Transitioning
    } else {
        g.state()
    };
    if state == AccessState::ActiveOptimized {
        return Ok(0);
    }
    let info = matches!(
        o.cmd,
        Cmd::Inquiry
            | Cmd::ReportLuns
            | Cmd::RequestSense
            | Cmd::ReportTargetPortGroups
            | Cmd::ReportSupportedOpcodes
            | Cmd::ReportSupportedTmfs
    );
    match state {
        AccessState::ActiveOptimized => Ok(0),
        // LIO delays every command through a non-optimized port.
        AccessState::ActiveNonOptimized => Ok(g.nonop_delay_ms.load(Ordering::Relaxed)),
        AccessState::Standby => {
            let ok = info
                || matches!(
                    o.cmd,
                    Cmd::SetTargetPortGroups
                        | Cmd::ModeSense6
                        | Cmd::ModeSense10
                        | Cmd::ModeSelect6
                        | Cmd::ModeSelect10
                        | Cmd::ReadCapacity10
                        | Cmd::ReadCapacity16
                        | Cmd::PersistentReserveIn
                        | Cmd::PersistentReserveOut
                );
            if ok {
                Ok(0)
            } else {
                not_ready(asc::NOT_READY_TARGET_PORT_IN_STANDBY_STATE)
            }
        }
        AccessState::Unavailable if info || o.cmd == Cmd::SetTargetPortGroups => Ok(0),
        AccessState::Unavailable => not_ready(asc::NOT_READY_TARGET_PORT_IN_UNAVAILABLE_STATE),
        AccessState::Transitioning if info => Ok(0),
        AccessState::Transitioning => not_ready(asc::NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION),
        AccessState::Offline => offline_gate(o),
        AccessState::LbaDependent | AccessState::Reserved(_) => {
            not_ready(asc::NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION)
        }
    }
}

/// Offline: only identification (INQUIRY, REPORT LUNS) and REQUEST SENSE; the rest
/// 02/04/12 LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN OFFLINE STATE.
fn offline_gate(o: &OpInfo) -> Result<u32, Sense> {
    if o.opcode == op::INQUIRY || o.opcode == op::REPORT_LUNS || o.cmd == Cmd::RequestSense {
        Ok(0)
    } else {
        Err(Sense::not_ready(asc::NOT_READY_OFFLINE))
    }
}

/// Sleep of an Active/Non-optimized port (the engine is blocking: the worker thread waits).
pub(crate) fn nonop_delay(ms: u32) {
    if ms > 0 {
        std::thread::sleep(Duration::from_millis(u64::from(ms)));
    }
}
