//! SPC-4 commands that are not about the medium: INQUIRY (§6.6, VPD in [`crate::cmd::vpd`]),
//! REQUEST SENSE (§6.39), REPORT LUNS (§6.33), REPORT SUPPORTED OPERATION CODES (§6.35),
//! REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (§6.36), SPC-2 RESERVE / RELEASE, and the
//! answers for a LUN that is not mapped (SPC-4 §4.6.3 / SAM-5 §5.9.1).

use std::sync::atomic::Ordering;

use ironlun_scsi::cdb::{
    byte, Inquiry, ReportLuns, ReportSupportedOpcodes, ReportSupportedTmfs, RequestSense,
};
use ironlun_scsi::sense::asc;
use ironlun_scsi::{opcode as op, Sense};

use super::table::OPS;
use super::{ops, vpd};
use crate::core::port::nexus::Nexus;
use crate::handler::{Ctx, Done, Fail, OpInfo, Outcome};
use crate::ScsiRequest;

/// A command addressed to a LUN this nexus cannot reach (SPC-4 §4.6.4 / SAM-5 §5.9.1
/// incorrect logical unit): INQUIRY returns peripheral qualifier 011b / type 1Fh, REPORT LUNS
/// works, REQUEST SENSE returns LOGICAL UNIT NOT SUPPORTED as its parameter data, and every
/// other command gets CHECK CONDITION, LOGICAL UNIT NOT SUPPORTED.
pub(crate) fn no_lun(nexus: &Nexus, req: &ScsiRequest) -> Outcome {
    let cdb = req.cdb.as_slice();
    let not_supported = Sense::illegal(asc::LOGICAL_UNIT_NOT_SUPPORTED);
    let opcode = byte(cdb, 0);
    let Ok(o) = ops::lookup(cdb, 0) else {
        return Err(not_supported.into());
    };
    match opcode {
        op::INQUIRY => {
            ops::validate(o, cdb, true, true)?;
            let q = Inquiry::parse(cdb)?;
            if q.evpd {
                return Err(not_supported.into());
            }
            if q.page_code != 0 {
                return Err(Sense::invalid_cdb(Inquiry::PAGE_CODE).into());
            }
            Ok(Done::data(
                vpd::absent_lun_inquiry(),
                u64::from(q.allocation_length),
            ))
        }
        op::REPORT_LUNS => {
            ops::validate(o, cdb, true, true)?;
            report_luns(nexus, cdb)
        }
        op::REQUEST_SENSE => {
            ops::validate(o, cdb, true, true)?;
            let q = RequestSense::parse(cdb)?;
            Ok(Done::data(
                not_supported.encode(q.desc),
                u64::from(q.allocation_length),
            ))
        }
        _ => Err(not_supported.into()),
    }
}

/// REQUEST SENSE: report (and clear) the highest-priority unit attention, else the LU state.
/// DESC selects descriptor format (SPC-4 §6.39; LIO refuses DESC=1, we support it).
pub(crate) fn request_sense(c: &Ctx) -> Outcome {
    let cdb = RequestSense::parse(c.cdb)?;
    let sense = if let Some(a) = c.slot.ua.take(true) {
        Sense::unit_attention(a)
    } else if let Some(s) = crate::cmd::media::state_sense(c.dev) {
        // Sanitize in progress (with progress indication), sanitize failure mode, no medium.
        s
    } else if c.dev.stopped.load(Ordering::Relaxed) {
        Sense::not_ready(asc::NOT_READY_INITIALIZING_COMMAND_REQUIRED)
    } else {
        Sense::no_sense()
    };
    Ok(Done::data(
        sense.encode(cdb.desc),
        u64::from(cdb.allocation_length),
    ))
}

/// INQUIRY: standard data or a VPD page.
pub(crate) fn inquiry(c: &Ctx) -> Outcome {
    let cdb = Inquiry::parse(c.cdb)?;
    let (page, alloc) = (cdb.page_code, u64::from(cdb.allocation_length));
    if !cdb.evpd {
        if page != 0 {
            return Err(Sense::invalid_cdb(Inquiry::PAGE_CODE).into());
        }
        return Ok(Done::data(vpd::standard_inquiry(c), alloc));
    }
    let data = vpd::page(c, page).ok_or(Sense::invalid_cdb(Inquiry::PAGE_CODE))?;
    Ok(Done::data(data, alloc))
}

/// REPORT LUNS. SELECT REPORT 00h/02h list every LUN of the nexus, 01h the well-known LUNs
/// (none here). With nothing mapped LUN 0 is listed, as LIO does, since LUN 0 answers
/// INQUIRY (peripheral qualifier 011b) and REPORT LUNS anyway. Clears REPORTED LUNS DATA HAS
/// CHANGED on every LU of the nexus (SPC-4 §6.33).
pub(crate) fn report_luns(nexus: &Nexus, cdb: &[u8]) -> Outcome {
    let cdb = ReportLuns::parse(cdb)?;
    let (select, alloc) = (cdb.select_report, u64::from(cdb.allocation_length));
    let view = nexus.view.load();
    let mut luns = match select {
        0x00 | 0x02 => view.lun_list(),
        0x01 => Vec::new(),
        _ => return Err(Sense::invalid_cdb(ReportLuns::SELECT_REPORT).into()),
    };
    if luns.is_empty() && select != 0x01 {
        luns.push(0);
    }
    for s in view.luns.values() {
        s.ua.clear(asc::REPORTED_LUNS_DATA_HAS_CHANGED);
    }
    let mut data = Vec::with_capacity(8 + 8 * luns.len());
    data.extend_from_slice(&((8 * luns.len()) as u32).to_be_bytes());
    data.extend_from_slice(&[0; 4]);
    for l in luns {
        data.extend_from_slice(&ironlun_scsi::lun::encode(l));
    }
    Ok(Done::data(data, alloc))
}

fn visible(o: &OpInfo, hidden: u16) -> bool {
    o.flags & hidden == 0
}

fn timeouts(o: &OpInfo) -> [u8; 12] {
    let mut t = [0u8; 12];
    t[1] = 0x0A;
    t[4..8].copy_from_slice(&o.timeout.to_be_bytes());
    t[8..12].copy_from_slice(&o.timeout.to_be_bytes());
    t
}

/// REPORT SUPPORTED OPERATION CODES (SPC-4 §6.35), from the same table that dispatches.
pub(crate) fn rsoc(c: &Ctx) -> Outcome {
    let cdb = ReportSupportedOpcodes::parse(c.cdb)?;
    let (rctd, options) = (cdb.rctd, cdb.reporting_options);
    let (req_op, req_sa) = (cdb.requested_operation_code, cdb.requested_service_action);
    let alloc = u64::from(cdb.allocation_length);
    let hidden = c.dev.hidden_ops();
    let dpofua = c.dev.dpofua();
    if options == 0 {
        let mut data = vec![0u8; 4];
        for o in OPS.iter().filter(|o| visible(o, hidden)) {
            let sa = u16::from(o.sa.unwrap_or(0));
            let mut flags = 0u8;
            if rctd {
                flags |= 0x02;
            }
            if o.sa.is_some() {
                flags |= 0x01;
            }
            data.extend_from_slice(&[o.opcode, 0]);
            data.extend_from_slice(&sa.to_be_bytes());
            data.extend_from_slice(&[0, flags]);
            data.extend_from_slice(&(o.usage.len() as u16).to_be_bytes());
            if rctd {
                data.extend_from_slice(&timeouts(o));
            }
        }
        let len = (data.len() - 4) as u32;
        data[..4].copy_from_slice(&len.to_be_bytes());
        return Ok(Done::data(data, alloc));
    }
    let list: Vec<&OpInfo> = ops::entries(req_op)
        .iter()
        .filter(|o| visible(o, hidden))
        .collect();
    let has_sa = ops::entries(req_op).iter().any(|o| o.sa.is_some());
    let found = match options {
        1 if has_sa => {
            return Err(Sense::invalid_cdb(ReportSupportedOpcodes::REPORTING_OPTIONS).into())
        }
        1 => list.first().copied(),
        2 if !has_sa && !list.is_empty() => {
            return Err(Sense::invalid_cdb(ReportSupportedOpcodes::REPORTING_OPTIONS).into())
        }
        2 => list
            .iter()
            .copied()
            .find(|o| o.sa.map(u16::from) == Some(req_sa)),
        3 if has_sa => list
            .iter()
            .copied()
            .find(|o| o.sa.map(u16::from) == Some(req_sa)),
        3 => list.first().copied(),
        _ => return Err(Sense::invalid_cdb(ReportSupportedOpcodes::REPORTING_OPTIONS).into()),
    };
    let mut data = vec![0u8; 4];
    match found {
        // SUPPORT 011b: supported in conformance with a standard.
        Some(o) => {
            data[1] = 0x03;
            let usage = o.usage_for(dpofua, c.dev.tpws());
            data[2..4].copy_from_slice(&(usage.len() as u16).to_be_bytes());
            data.extend_from_slice(&usage);
            if rctd {
                data[1] |= 0x80;
                data.extend_from_slice(&timeouts(o));
            }
        }
        // SUPPORT 001b: not supported.
        None => data[1] = 0x01,
    }
    Ok(Done::data(data, alloc))
}

/// REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (SPC-4 §6.36): ABORT TASK, ABORT TASK SET,
/// CLEAR TASK SET, LOGICAL UNIT RESET and (warm) TARGET RESET.
pub(crate) fn rstmf(c: &Ctx) -> Outcome {
    let cdb = ReportSupportedTmfs::parse(c.cdb)?;
    let (repd, alloc) = (cdb.repd, u64::from(cdb.allocation_length));
    // ATS | ATSS | CTSS | LURS | TRS
    let mut data = vec![0x80 | 0x40 | 0x10 | 0x08 | 0x02, 0, 0, 0];
    if repd {
        data[3] = 0x0C;
        data.resize(16, 0);
    }
    Ok(Done::data(data, alloc))
}

/// SPC-2 RESERVE(6)/(10): a logical-unit reservation for this I_T nexus.
/// With persistent reservations (CRH = 1, SPC-4 §5.13.3): GOOD without effect for a PR
/// holder or a registrant under a registrants-only / all-registrants reservation; otherwise
/// RESERVATION CONFLICT while any registration exists.
pub(crate) fn reserve(c: &Ctx) -> Outcome {
    match crate::pr::spc2_exemption(c.dev, &c.nexus.ident) {
        Some(true) => return Ok(Done::good()),
        Some(false) => return Err(Fail::ReservationConflict),
        None => {}
    }
    c.dev
        .spc2_reserve(c.nexus.id, c.nexus.initiator_port_name(), &c.nexus.ident)
}

/// SPC-2 RELEASE(6)/(10): GOOD whether or not this nexus held the reservation.
/// The CRH exemptions of RESERVE leave any SPC-2 reservation alone (SPC-4 §5.13.3).
pub(crate) fn release(c: &Ctx) -> Outcome {
    if crate::pr::spc2_exemption(c.dev, &c.nexus.ident) == Some(true) {
        return Ok(Done::good());
    }
    c.dev.spc2_release(c.nexus.id);
    Ok(Done::good())
}
