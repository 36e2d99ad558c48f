//! Asymmetric logical unit access (SPC-4 §5.11): target port groups, their access states,
//! the per-state command gate and REPORT TARGET PORT GROUPS (§6.37).
//!
//! For now every LU has exactly one group, `default_tg_pt_gp` (id 0), holding all the ports
//! that export it, in state Active/Optimized with implicit ALUA; explicit ALUA (SET TARGET PORT
//! GROUPS), more groups and transitions build on this module.

use ironlun_scsi::cdb::{be32, byte};
use ironlun_scsi::sense::{asc, key};
use ironlun_scsi::{opcode as op, Asc, Sense};

use crate::nexus::{Ctx, Done, Outcome};
use crate::ops::{Cmd, OpInfo};
use crate::port::LunSlot;

/// Target port group id of `default_tg_pt_gp`.
pub(crate) const DEFAULT_GROUP: u16 = 0;

/// Primary target port asymmetric access states (SPC-4 §5.11.2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // only Active/Optimized is reachable until groups are configurable
pub(crate) enum AccessState {
    ActiveOptimized = 0x0,
    ActiveNonOptimized = 0x1,
    Standby = 0x2,
    Unavailable = 0x3,
    Offline = 0xE,
    Transitioning = 0xF,
}

/// Supported-state bits of the groups we can present (RTPG byte 1): Active/Optimized.
const SUPPORTED_STATES: u8 = 0x01;

/// INQUIRY TPGS field: 01b implicit ALUA.
pub(crate) fn tpgs_bits() -> u8 {
    0x10
}

/// The group of the port through which this I_T_L nexus reaches its LU.
pub(crate) fn group_of(_slot: &LunSlot) -> u16 {
    DEFAULT_GROUP
}

fn state_of(_slot: &LunSlot) -> AccessState {
    AccessState::ActiveOptimized
}

/// Gate 2 of the pipeline: commands allowed in the port group's state (SPC-4 §5.11.2.6,
/// LIO `target_alua_state_check`; MODE SENSE/SELECT(10) allowed in standby too, unlike LIO).
pub(crate) fn check(slot: &LunSlot, o: &OpInfo) -> Result<(), Sense> {
    let always = matches!(
        o.cmd,
        Cmd::Inquiry | Cmd::ReportLuns | Cmd::RequestSense | Cmd::ReportTargetPortGroups
    );
    let not_ready = |q: u8| Err(Sense::new(key::NOT_READY, Asc::new(0x04, q)));
    match state_of(slot) {
        AccessState::ActiveOptimized | AccessState::ActiveNonOptimized => Ok(()),
        AccessState::Standby => {
            let ok = always
                || matches!(
                    o.cmd,
                    Cmd::ModeSense6
                        | Cmd::ModeSense10
                        | Cmd::ModeSelect6
                        | Cmd::ModeSelect10
                        | Cmd::ReadCapacity10
                        | Cmd::ReadCapacity16
                        | Cmd::ReportSupportedOpcodes
                        | Cmd::ReportSupportedTmfs
                );
            if ok {
                Ok(())
            } else {
                not_ready(asc::NOT_READY_TARGET_PORT_IN_STANDBY_STATE.ascq)
            }
        }
        AccessState::Unavailable if always => Ok(()),
        AccessState::Unavailable => not_ready(asc::NOT_READY_TARGET_PORT_IN_UNAVAILABLE_STATE.ascq),
        AccessState::Transitioning if always => Ok(()),
        AccessState::Transitioning => {
            not_ready(asc::NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION.ascq)
        }
        AccessState::Offline if o.opcode == op::INQUIRY || o.opcode == op::REPORT_LUNS => Ok(()),
        AccessState::Offline => not_ready(asc::NOT_READY_OFFLINE.ascq),
    }
}

/// REPORT TARGET PORT GROUPS: length-only header (PARAMETER DATA FORMAT 000b) or extended
/// header (001b); one descriptor per group listing the RTPIs of its ports.
pub(crate) fn report_target_port_groups(c: &Ctx) -> Outcome {
    let format = byte(c.cdb, 1) >> 5;
    let alloc = u64::from(be32(c.cdb, 6));
    let header = match format {
        0 => 4,
        1 => 8,
        _ => return Err(Sense::invalid_cdb_field(1, Some(7)).into()),
    };
    let mut rtpis: Vec<u16> = c.dev.exports().iter().map(|e| e.rtpi).collect();
    rtpis.sort_unstable();
    rtpis.dedup();
    let mut data = vec![0u8; header];
    if format == 1 {
        data[4] = 0x10; // FORMAT TYPE 001b
        data[5] = 0; // IMPLICIT TRANSITION TIME
    }
    data.push(state_of(c.slot) as u8);
    data.push(SUPPORTED_STATES);
    data.extend_from_slice(&group_of(c.slot).to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, rtpis.len().min(255) as u8]);
    for r in rtpis.iter().take(255) {
        data.extend_from_slice(&[0, 0]);
        data.extend_from_slice(&r.to_be_bytes());
    }
    // RETURN DATA LENGTH counts the descriptor list only, in both formats.
    let len = (data.len() - header) as u32;
    data[..4].copy_from_slice(&len.to_be_bytes());
    Ok(Done::data(data, alloc))
}
