//! The pipeline of a pass-through LU (pscsi): the device is the device server. The engine
//! keeps what belongs to the target — the task set (so TMFs reach its tasks), its own unit
//! attentions (REPORTED LUNS DATA HAS CHANGED, resets), REPORT LUNS, and in VPD page 83h the
//! designators of the target port the command came through — and sends every other CDB to
//! the device as the initiator gave it, returning the device's status, sense and data as the
//! device gave them. PR, ALUA, medium state and write protection are the device's business:
//! no gate of the emulating pipeline applies (LIO too turns its PR emulation off for pscsi).

use std::io;
use std::time::Duration;

use ironlun_backstore::pscsi::{Failure, Passthrough, Reply, Xfer};
use ironlun_scsi::sense::asc;
use ironlun_scsi::{status, Sense};

use crate::cmd::{spc, vpd};
use crate::core::device::slot::LunSlot;
use crate::core::port::nexus::Nexus;
use crate::handler::{respond, Fail, F_UA_EXEMPT};
use crate::{DataDirection, Residual, ScsiRequest, ScsiResponse, TaskAttr};

const INQUIRY: u8 = 0x12;
const REPORT_LUNS: u8 = 0xa0;
/// How much of VPD page 83h is asked of the device before the port designators are added.
const VPD83_READ: u16 = 4096;

/// Run `req` on the pass-through LU of `slot` (its task already started).
pub(super) fn run(
    nexus: &Nexus,
    slot: &LunSlot,
    req: &ScsiRequest,
    pt: &dyn Passthrough,
) -> ScsiResponse {
    let dev = &*slot.device;
    let d_sense = dev.d_sense.load(std::sync::atomic::Ordering::Relaxed);
    let cdb = req.cdb.as_slice();
    let op = cdb.first().copied().unwrap_or(0);
    // The target's own unit attentions first (SAM-5 §5.14), except for the commands the
    // emulating pipeline exempts too (INQUIRY, REPORT LUNS, REQUEST SENSE).
    let exempt = crate::cmd::ops::lookup(cdb, 0).is_ok_and(|o| o.has(F_UA_EXEMPT));
    if !exempt && slot.ua.is_pending() {
        let clear = dev.ua_intlck.load(std::sync::atomic::Ordering::Relaxed) == 0;
        if let Some(a) = slot.ua.take(clear) {
            return respond(req, Err(Sense::unit_attention(a).into()), d_sense);
        }
    }
    if req.attr == TaskAttr::Aca {
        return respond(
            req,
            Err(Sense::illegal(asc::INVALID_FIELD_IN_CDB).into()),
            d_sense,
        );
    }
    if op == REPORT_LUNS {
        return respond(req, spc::report_luns(nexus, cdb), d_sense);
    }
    if op == INQUIRY && cdb.len() >= 6 && cdb[1] & 1 == 1 && cdb[2] == 0x83 {
        return device_identification(nexus, slot, req, pt, d_sense);
    }
    let xfer = match req.direction {
        DataDirection::None => Xfer::None,
        DataDirection::Read => Xfer::FromDevice(req.expected_len as usize),
        DataDirection::Write => Xfer::ToDevice(&req.data_out),
        DataDirection::Bidirectional => {
            // SG_IO (v3) moves data one way per command.
            return respond(
                req,
                Err(Sense::illegal(asc::INVALID_FIELD_IN_CDB).into()),
                d_sense,
            );
        }
    };
    let timeout = timeout_of(op, pt.identity().peripheral_type);
    reply(req, pt.execute(cdb, xfer, timeout), d_sense, dev.name())
}

/// The device's answer as the initiator's response: status, sense and data as they came; a
/// command the device never completed ends in CHECK CONDITION (below).
fn reply(req: &ScsiRequest, r: io::Result<Reply>, d_sense: bool, name: &str) -> ScsiResponse {
    let r = match r {
        Ok(r) if r.failure.is_none() => r,
        Ok(r) => return not_completed(req, r.failure, d_sense, name),
        Err(e) => {
            tracing::warn!("{name}: the pass-through device cannot be reached: {e}");
            return not_completed(req, Some(Failure::Gone), d_sense, name);
        }
    };
    let moved = match req.direction {
        DataDirection::Read => r.data.len() as u32,
        _ => req.data_out.len() as u32 - r.resid.min(req.data_out.len() as u32),
    };
    let residual = match req.expected_len.saturating_sub(moved) {
        0 => Residual::None,
        n => Residual::Underflow(n),
    };
    let mut data = r.data;
    data.truncate(req.expected_len as usize);
    ScsiResponse {
        status: r.status,
        sense: if r.status == status::CHECK_CONDITION {
            r.sense
        } else {
            Vec::new()
        },
        data_in: data,
        residual,
        suppressed: false,
    }
}

/// A command the device did not complete: it is gone (removed, unreachable) or the path
/// failed: HARDWARE ERROR / LOGICAL UNIT COMMUNICATION FAILURE; it timed out: ABORTED
/// COMMAND (the initiator may retry).
fn not_completed(req: &ScsiRequest, f: Option<Failure>, d_sense: bool, name: &str) -> ScsiResponse {
    let sense = match f {
        Some(Failure::Timeout) => {
            tracing::warn!("{name}: a command to the pass-through device timed out");
            Sense::aborted_command(asc::NO_ADDITIONAL_SENSE)
        }
        Some(Failure::Transport { host, driver }) => {
            tracing::warn!(
                "{name}: pass-through command failed (host {host:#x}, driver {driver:#x})"
            );
            Sense::hardware_error(asc::LOGICAL_UNIT_COMMUNICATION_FAILURE)
        }
        Some(Failure::Gone) | None => {
            Sense::hardware_error(asc::LOGICAL_UNIT_COMMUNICATION_FAILURE)
        }
    };
    respond(req, Err(Fail::from(sense)), d_sense)
}

/// INQUIRY VPD 83h: the device's own logical unit designators, then this target's port
/// designators in place of the device's port and target device ones.
fn device_identification(
    nexus: &Nexus,
    slot: &LunSlot,
    req: &ScsiRequest,
    pt: &dyn Passthrough,
    d_sense: bool,
) -> ScsiResponse {
    let alloc = usize::from(u16::from_be_bytes([req.cdb[3], req.cdb[4]]));
    let mut cdb = req.cdb[..6].to_vec();
    cdb[3..5].copy_from_slice(&VPD83_READ.to_be_bytes());
    let timeout = timeout_of(INQUIRY, pt.identity().peripheral_type);
    let r = pt.execute(&cdb, Xfer::FromDevice(usize::from(VPD83_READ)), timeout);
    let name = slot.device.name();
    let mut r = match r {
        Ok(r) if r.failure.is_none() && r.status == status::GOOD && r.data.len() >= 4 => r,
        other => return reply(req, other, d_sense, name),
    };
    let page = merge_port_designators(&r.data, &vpd::port_designators(nexus, slot));
    let want = page.len();
    r.data = page;
    r.data.truncate(alloc.min(req.expected_len as usize));
    let sent = r.data.len();
    ScsiResponse {
        status: status::GOOD,
        sense: Vec::new(),
        data_in: r.data,
        residual: match (req.expected_len as usize).cmp(&want.min(alloc)) {
            std::cmp::Ordering::Greater => {
                Residual::Underflow((req.expected_len as usize - sent) as u32)
            }
            std::cmp::Ordering::Less => {
                Residual::Overflow((want.min(alloc) - req.expected_len as usize) as u32)
            }
            std::cmp::Ordering::Equal => Residual::None,
        },
        suppressed: false,
    }
}

/// Page 83h `page` (header and descriptors) with its association-1 and -2 designators (the
/// device's own target port and target device) replaced by `ours`; the page length fixed.
pub(crate) fn merge_port_designators(page: &[u8], ours: &[u8]) -> Vec<u8> {
    let end = (4 + usize::from(u16::from_be_bytes([page[2], page[3]]))).min(page.len());
    let mut out = page[..4].to_vec();
    let mut i = 4;
    while i + 4 <= end {
        let len = 4 + usize::from(page[i + 3]);
        if i + len > end {
            break;
        }
        let assoc = (page[i + 1] >> 4) & 3;
        if assoc == 0 {
            out.extend_from_slice(&page[i..i + len]);
        }
        i += len;
    }
    out.extend_from_slice(ours);
    let n = u16::try_from(out.len() - 4).unwrap_or(u16::MAX);
    out[2..4].copy_from_slice(&n.to_be_bytes());
    out
}

/// How long a command may take at the device, by class (LIO uses 15 s for disks and 500 s
/// for other types; ours are longer where the standards' commands are known to be slow).
pub(crate) fn timeout_of(op: u8, peripheral_type: u8) -> Duration {
    let secs = match (peripheral_type, op) {
        // Quick everywhere: TEST UNIT READY, REQUEST SENSE, INQUIRY, MODE SENSE, LOG SENSE,
        // READ CAPACITY, REPORT LUNS and the 0x9E/0xA3 service actions.
        (_, 0x00 | 0x03 | 0x12 | 0x1a | 0x5a | 0x4d | 0x25 | 0x9e | 0xa0 | 0xa3) => 60,
        // Disk: READ / WRITE / VERIFY / COMPARE AND WRITE in all sizes.
        (
            0,
            0x08 | 0x0a | 0x28 | 0x2a | 0x2e | 0x2f | 0x88 | 0x8a | 0x8e | 0x8f | 0x89 | 0xa8
            | 0xaa | 0xae | 0xaf,
        ) => 30,
        // Disk: FORMAT UNIT, SANITIZE: hours on big drives.
        (0, 0x04 | 0x48) => 4 * 3600,
        // Disk: SYNCHRONIZE CACHE, WRITE SAME, UNMAP and the rest.
        (0, _) => 120,
        // Tapes, changers and others: rewind, locate, erase, move medium take long.
        _ => 4 * 3600,
    };
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desig(assoc: u8, kind: u8, id: &[u8]) -> Vec<u8> {
        let mut d = vec![0x01, (assoc << 4) | kind, 0, id.len() as u8];
        d.extend_from_slice(id);
        d
    }

    #[test]
    fn the_devices_port_designators_give_way_to_ours() {
        let lu = desig(0, 3, &[0x60, 1, 2, 3, 4, 5, 6, 7]);
        let their_port = desig(1, 4, &[0, 0, 0, 9]);
        let their_target = desig(2, 8, b"naa.5000\0\0\0\0");
        let body = [lu.clone(), their_port, their_target].concat();
        let mut page = vec![0x00, 0x83];
        page.extend_from_slice(&(body.len() as u16).to_be_bytes());
        page.extend_from_slice(&body);
        let ours = desig(1, 4, &[0, 0, 0, 2]);
        let out = merge_port_designators(&page, &ours);
        let want_body = [lu, ours].concat();
        assert_eq!(&out[4..], &want_body[..]);
        assert_eq!(
            u16::from_be_bytes([out[2], out[3]]) as usize,
            want_body.len()
        );
        assert_eq!(&out[..2], &[0x00, 0x83]);
        // A truncated last descriptor is dropped, not read past the end.
        let mut cut = page.clone();
        cut.truncate(page.len() - 3);
        let out = merge_port_designators(&cut, &[]);
        assert_eq!(&out[4..], &desig(0, 3, &[0x60, 1, 2, 3, 4, 5, 6, 7])[..]);
    }

    #[test]
    fn timeouts_follow_the_command_class() {
        assert_eq!(timeout_of(0x28, 0), Duration::from_secs(30));
        assert_eq!(timeout_of(0x35, 0), Duration::from_secs(120));
        assert_eq!(timeout_of(0x48, 0), Duration::from_secs(4 * 3600));
        assert_eq!(timeout_of(0x12, 1), Duration::from_secs(60));
        assert_eq!(timeout_of(0x01, 1), Duration::from_secs(4 * 3600));
    }
}
