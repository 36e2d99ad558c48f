//! REPORT TARGET PORT GROUPS (SPC-4 §6.37) and SET TARGET PORT GROUPS (§6.46).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ironlun_scsi::alua::{access_type, status_code, support, AccessState};
use ironlun_scsi::cdb::{ReportTargetPortGroups, SetTargetPortGroups, SERVICE_ACTION};
use ironlun_scsi::sense::{asc, FieldPointer};
use ironlun_scsi::Sense;

use super::transition::{finish, set_port_lun_offline, transition};
use super::PortLun;
use crate::core::device::Device;
use crate::handler::{Ctx, Done, Outcome};

/// REPORT TARGET PORT GROUPS: length-only header (PARAMETER DATA FORMAT 000b) or extended
/// header (001b, with the receiving group's IMPLICIT TRANSITION TIME); one descriptor per
/// group that has ports, listing their RTPIs. Cut to the ALLOCATION LENGTH (§4.2.5.6).
pub(crate) fn report_target_port_groups(c: &Ctx) -> Outcome {
    let cdb = ReportTargetPortGroups::parse(c.cdb)?;
    let alloc = u64::from(cdb.allocation_length);
    let format = cdb.parameter_data_format;
    let header = match format {
        0 => 4,
        1 => 8,
        _ => return Err(Sense::invalid_cdb(ReportTargetPortGroups::PARAMETER_DATA_FORMAT).into()),
    };
    let exports = c.dev.exports();
    let mut groups = c.dev.alua.groups.read().clone();
    // Ordered by id so the report does not change with creation order (e.g. across restarts).
    groups.sort_by_key(|g| g.id);
    let mut data = vec![0u8; header];
    if format == 1 {
        data[4] = 0x10; // FORMAT TYPE 001b
        let own = c.slot.alua.group.load();
        data[5] = own.implicit_trans_secs.load(Ordering::Relaxed).min(255) as u8;
    }
    // A clustered LU's groups also hold the other gateways' ports.
    let remote = c.dev.shared.remote();
    let fenced = c.dev.shared.fenced();
    for g in &groups {
        let mut rtpis: Vec<u16> = exports
            .iter()
            .filter(|e| e.alua.group.load().id == g.id)
            .map(|e| e.rtpi)
            .collect();
        let local = !rtpis.is_empty();
        rtpis.extend(remote.iter().filter(|r| r.group == g.id).map(|r| r.rtpi));
        if rtpis.is_empty() {
            continue; // LIO skips groups without ports.
        }
        // Cut off from the cluster, this gateway's own groups are in transition.
        let state = if fenced && local {
            AccessState::Transitioning
        } else {
            g.state()
        };
        rtpis.sort_unstable();
        rtpis.dedup();
        let pref = if g.preferred.load(Ordering::Relaxed) {
            0x80
        } else {
            0
        };
        data.push(pref | state.code());
        data.push(g.supported.load(Ordering::Relaxed) & !support::LBD);
        data.extend_from_slice(&g.id.to_be_bytes());
        data.push(0);
        data.push(g.status.load(Ordering::Relaxed));
        data.push(0);
        data.push(rtpis.len().min(255) as u8);
        for r in rtpis.iter().take(255) {
            data.extend_from_slice(&[0, 0]);
            data.extend_from_slice(&r.to_be_bytes());
        }
    }
    // RETURN DATA LENGTH is n - 3 in both formats (SPC-4 §6.37): every byte after byte 3, so
    // with the extended header it includes bytes 4-7. scsi_dh_alua and sg_rtpg end the list at
    // RETURN DATA LENGTH + 4. (LIO counts only the descriptors there; a quirk we do not copy.)
    let len = (data.len() - 4) as u32;
    data[..4].copy_from_slice(&len.to_be_bytes());
    Ok(Done::data(data, alloc))
}

fn bad_param(byte: usize, bit: Option<u8>) -> Sense {
    Sense::illegal(asc::INVALID_FIELD_IN_PARAMETER_LIST)
        .with_field_pointer(FieldPointer::param(byte.min(0xFFFF) as u16, bit))
}

enum Change {
    Primary(u16, AccessState),
    Offline(Arc<Device>, Arc<PortLun>),
}

/// SET TARGET PORT GROUPS (§6.46). Every descriptor is validated before anything changes;
/// primary descriptors (state AO/ANO/S/U) name a group id, secondary ones (Offline) a
/// relative target port id. Completes once the transitions have (the command sleeps the
/// transition delay, as LIO; other nexuses see Transitioning meanwhile).
pub(crate) fn set_target_port_groups(c: &Ctx) -> Outcome {
    let own = c.slot.alua.group.load_full();
    if own.access_type.load(Ordering::Relaxed) & access_type::EXPLICIT == 0 {
        // Explicit ALUA is off for the receiving port's group (TPGS lacks 10b).
        return Err(Sense::invalid_cdb(SERVICE_ACTION).into());
    }
    let len = u64::from(SetTargetPortGroups::parse(c.cdb)?.parameter_list_length);
    let data = c.data_out(len)?;
    if data.is_empty() {
        return Ok(Done::good());
    }
    if data.len() < 4 || (data.len() - 4) % 4 != 0 {
        return Err(Sense::illegal(asc::PARAMETER_LIST_LENGTH_ERROR).into());
    }
    let dev = c.slot.device.clone();
    let exports = dev.exports();
    let mut changes: Vec<Change> = Vec::new();
    let mut seen_groups: Vec<u16> = Vec::new();
    let mut seen_ports: Vec<u16> = Vec::new();
    for (i, d) in data[4..].chunks_exact(4).enumerate() {
        let at = 4 + 4 * i;
        if d[0] & 0xF0 != 0 {
            return Err(bad_param(at, Some(7)).into());
        }
        let id = u16::from_be_bytes([d[2], d[3]]);
        match AccessState::from_code(d[0] & 0x0F) {
            s @ (AccessState::ActiveOptimized
            | AccessState::ActiveNonOptimized
            | AccessState::Standby
            | AccessState::Unavailable) => {
                let Some(g) = dev.alua.by_id(id) else {
                    return Err(bad_param(at + 2, None).into());
                };
                if seen_groups.contains(&id) {
                    return Err(bad_param(at + 2, None).into());
                }
                if !g.supports(s) {
                    return Err(bad_param(at, Some(3)).into());
                }
                seen_groups.push(id);
                changes.push(Change::Primary(id, s));
            }
            AccessState::Offline => {
                let Some(e) = exports.iter().find(|e| e.rtpi == id) else {
                    return Err(bad_param(at + 2, None).into());
                };
                if seen_ports.contains(&id) {
                    return Err(bad_param(at + 2, None).into());
                }
                if !e.alua.group.load().supports(AccessState::Offline) {
                    return Err(bad_param(at, Some(3)).into());
                }
                seen_ports.push(id);
                changes.push(Change::Offline(dev.clone(), e.alua.clone()));
            }
            // Transitioning cannot be requested; logical block dependent is not supported.
            _ => return Err(bad_param(at, Some(3)).into()),
        }
    }
    let sender = Some(c.nexus.id);
    let mut plans = Vec::new();
    let mut offline_changed = false;
    for ch in changes {
        match ch {
            Change::Primary(id, s) => plans.push(transition(
                &dev,
                id,
                s,
                status_code::ALTERED_BY_STPG,
                sender,
            )),
            Change::Offline(d, pl) => {
                set_port_lun_offline(&d, &pl, true, status_code::ALTERED_BY_STPG, sender);
                offline_changed = true;
            }
        }
    }
    let busy = plans.iter().any(|p| !p.is_empty());
    for p in plans {
        finish(p);
    }
    if offline_changed && !busy {
        dev.alua.notify(dev.name());
    }
    Ok(Done::consumed(len))
}
