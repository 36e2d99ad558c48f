//! Third-party copy (SPC-4 §5.17, §6.3 EXTENDED COPY LID1, §6.18 RECEIVE COPY RESULTS).
//!
//! The LU that receives EXTENDED COPY is the copy manager. It understands identification
//! descriptor target descriptors (E4h, SPC-4 §6.3.6.2) naming an LU by its NAA designator and
//! block device to block device segment descriptors (02h, §6.3.7.5). The whole parameter list
//! is checked before any block moves; the copy then runs on the command's runner thread in
//! [`CHUNK_BYTES`] pieces, each written under the destination's shared stripe locks (so
//! COMPARE AND WRITE stays atomic), with no lock held between pieces, and stops when the task
//! is aborted. Results of copies whose LIST ID USAGE asks for it are held per I_T nexus and
//! list identifier for RECEIVE COPY RESULTS (COPY STATUS, FAILED SEGMENT DETAILS); the
//! copy manager's limits are reported by OPERATING PARAMETERS (§6.18.4).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ironlun_scsi::cdb::{be16, be32, be64, ExtendedCopy, ReceiveCopyResults};
use ironlun_scsi::opcode::rcr;
use ironlun_scsi::sense::{asc, FieldPointer};
use ironlun_scsi::{Asc, Sense};

use crate::core::device::copies::{Progress, MAX_CONCURRENT_COPIES};
use crate::core::device::slot::LunSlot;
use crate::core::device::Device;
use crate::handler::{Ctx, Done, Fail, Outcome};

/// MAXIMUM TARGET DESCRIPTOR COUNT.
pub(crate) const MAX_TARGET_DESCRIPTORS: u16 = 64;
/// MAXIMUM SEGMENT DESCRIPTOR COUNT: with at most 65535 blocks per segment this lets one
/// command move 32 GiB of 512-byte blocks.
pub(crate) const MAX_SEGMENT_DESCRIPTORS: u16 = 1024;
/// MAXIMUM DESCRIPTOR LIST LENGTH: room for the most target and segment descriptors at once.
pub(crate) const MAX_DESCRIPTOR_LIST_LENGTH: u32 = MAX_TARGET_DESCRIPTORS as u32
    * TARGET_DESC_LEN as u32
    + MAX_SEGMENT_DESCRIPTORS as u32 * SEGMENT_DESC_LEN as u32;
/// MAXIMUM SEGMENT LENGTH in bytes: 65535 blocks of up to 4 KiB fit.
pub(crate) const MAX_SEGMENT_LENGTH: u32 = 256 << 20;
/// MAXIMUM INLINE DATA LENGTH: no supported segment descriptor uses inline data.
pub(crate) const MAX_INLINE_DATA_LENGTH: u32 = 0;
/// Bytes read from the source and written to the destination per step.
pub(crate) const CHUNK_BYTES: u64 = 1 << 20;

const HEADER_LEN: usize = 16;
const TARGET_DESC_LEN: usize = 32;
const SEGMENT_DESC_LEN: usize = 28;
/// Identification descriptor target descriptor (SPC-4 table 117).
const TD_IDENTIFICATION: u8 = 0xE4;
/// Block device to block device segment descriptor.
const SD_BLOCK_TO_BLOCK: u8 = 0x02;

/// One resolved target descriptor: an LU this nexus can address.
struct Target {
    slot: Arc<LunSlot>,
    /// Offset of the descriptor in the parameter list.
    at: usize,
}

/// One validated block → block segment.
struct Segment {
    src: usize,
    dst: usize,
    src_lba: u64,
    dst_lba: u64,
    bytes: u64,
    /// Offset of the descriptor in the parameter list.
    at: usize,
}

fn param_len_error() -> Sense {
    Sense::illegal(asc::PARAMETER_LIST_LENGTH_ERROR)
}

fn illegal_at(a: Asc, at: usize, bit: Option<u8>) -> Sense {
    Sense::illegal(a).with_field_pointer(FieldPointer::param(pointer(at), bit))
}

/// COPY ABORTED pointing at a parameter list byte (segment pointer with SD = 0, SPC-4
/// §4.5.2.4.5: the same bit layout as a field pointer with C/D = 0).
fn aborted_at(a: Asc, at: usize) -> Sense {
    Sense::copy_aborted(a).with_field_pointer(FieldPointer::param(pointer(at), None))
}

fn pointer(at: usize) -> u16 {
    u16::try_from(at).unwrap_or(u16::MAX)
}

/// EXTENDED COPY (LID1): parse and check the whole parameter list, then copy.
pub(crate) fn extended_copy(c: &Ctx) -> Outcome {
    let len = u64::from(ExtendedCopy::parse(c.cdb)?.parameter_list_length);
    // SPC-4 §6.3.1: PARAMETER LIST LENGTH 0 is not an error; nothing is copied.
    if len == 0 {
        return Ok(Done::good());
    }
    let p = c.data_out(len)?;
    if p.len() < HEADER_LEN {
        return Err(param_len_error().into());
    }
    let list_id = p[0];
    let usage = (p[1] >> 3) & 0x03;
    let tdll = usize::from(be16(p, 2));
    let sdll = be32(p, 8) as usize;
    let inline = be32(p, 12);
    match usage {
        // 01b is reserved.
        1 => return Err(illegal_at(asc::INVALID_FIELD_IN_PARAMETER_LIST, 1, Some(4)).into()),
        // 11b: no list identifier; the field shall be zero.
        3 if list_id != 0 => {
            return Err(illegal_at(asc::INVALID_FIELD_IN_PARAMETER_LIST, 0, Some(7)).into())
        }
        _ => {}
    }
    if tdll as u64 + sdll as u64 > u64::from(MAX_DESCRIPTOR_LIST_LENGTH) {
        return Err(param_len_error().into());
    }
    if inline > MAX_INLINE_DATA_LENGTH {
        return Err(illegal_at(asc::INLINE_DATA_LENGTH_EXCEEDED, 12, Some(7)).into());
    }
    // The descriptors (and inline data) must all be in the Data-Out.
    if (HEADER_LEN + tdll + sdll) as u64 + u64::from(inline) > p.len() as u64 {
        return Err(param_len_error().into());
    }
    let targets = parse_targets(c, p, tdll)?;
    let segs = parse_segments(p, HEADER_LEN + tdll, sdll, &targets)?;
    check_access(c, &targets, &segs)?;

    // From here on the copy has begun: its outcome is held per LIST ID USAGE.
    let progress = match usage {
        3 => Arc::new(Progress::default()),
        _ => c.dev.copies.begin(c.nexus.id, list_id, usage == 0)?,
    };
    let result =
        check_targets(&targets, &segs).and_then(|()| run_copy(c, &targets, &segs, &progress));
    let failed = result
        .as_ref()
        .err()
        .map(|s| s.encode(c.dev.d_sense.load(Ordering::Relaxed)));
    if usage != 3 {
        c.dev.copies.end(&progress, failed);
    }
    result?;
    Ok(Done::consumed(len))
}

/// Target descriptors: only identification descriptors naming, by NAA designator, an LU that
/// the issuing I_T nexus can address.
fn parse_targets(c: &Ctx, p: &[u8], tdll: usize) -> Result<Vec<Target>, Sense> {
    if tdll / TARGET_DESC_LEN > usize::from(MAX_TARGET_DESCRIPTORS) {
        return Err(illegal_at(asc::TOO_MANY_TARGET_DESCRIPTORS, 2, Some(7)));
    }
    // Every supported target descriptor is 32 bytes.
    if !tdll.is_multiple_of(TARGET_DESC_LEN) {
        return Err(illegal_at(asc::INVALID_FIELD_IN_PARAMETER_LIST, 2, Some(7)));
    }
    // Only this nexus' own LUN view is searched, never every LU on the system: LIO's global
    // lookup let an initiator copy from or to LUs it was never given (CVE-2020-28374).
    let view = c.nexus.view.load();
    let mut out = Vec::with_capacity(tdll / TARGET_DESC_LEN);
    for at in (HEADER_LEN..HEADER_LEN + tdll).step_by(TARGET_DESC_LEN) {
        let d = p
            .get(at..at + TARGET_DESC_LEN)
            .ok_or_else(param_len_error)?;
        if d[0] != TD_IDENTIFICATION {
            return Err(illegal_at(
                asc::UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE,
                at,
                Some(7),
            ));
        }
        // d[1] bits 7:6 LU ID TYPE and bit 5 NUL are ignored (SPC-4: the LU is named by its
        // designator alone; NUL is obsolete), bytes 2..4 RELATIVE INITIATOR PORT IDENTIFIER
        // concern other SCSI devices.
        let desig_len = usize::from(d[7]);
        if desig_len > 20 {
            return Err(illegal_at(
                asc::INVALID_FIELD_IN_PARAMETER_LIST,
                at + 7,
                Some(7),
            ));
        }
        let code_set = d[4] & 0x0F;
        let assoc = (d[5] >> 4) & 0x03;
        let dtype = d[5] & 0x0F;
        let desig = &d[8..8 + desig_len];
        let found = if code_set == 1 && assoc == 0 && dtype == 3 && desig_len == 16 {
            view.luns.values().find(|s| {
                s.device.emulate_3pc.load(Ordering::Relaxed)
                    && crate::cmd::vpd::naa_designator(&s.device.serial()) == desig
            })
        } else {
            None
        };
        let Some(slot) = found else {
            return Err(aborted_at(asc::COPY_TARGET_DEVICE_NOT_REACHABLE, at + 4));
        };
        // PERIPHERAL DEVICE TYPE must say block device (what every LU here is).
        if d[1] & 0x1F != 0 {
            return Err(aborted_at(asc::INCORRECT_COPY_TARGET_DEVICE_TYPE, at + 1));
        }
        // Block device parameters (SPC-4 table 124): DISK BLOCK LENGTH must be the LU's.
        let disk_bl = u32::from(d[29]) << 16 | u32::from(d[30]) << 8 | u32::from(d[31]);
        if disk_bl != slot.device.block_size() {
            return Err(illegal_at(
                asc::INVALID_FIELD_IN_PARAMETER_LIST,
                at + 29,
                Some(7),
            ));
        }
        out.push(Target {
            slot: slot.clone(),
            at,
        });
    }
    Ok(out)
}

fn parse_segments(
    p: &[u8],
    start: usize,
    sdll: usize,
    targets: &[Target],
) -> Result<Vec<Segment>, Sense> {
    let end = start + sdll;
    let mut segs = Vec::new();
    let mut at = start;
    while at < end {
        if at + 4 > end {
            return Err(illegal_at(asc::INVALID_FIELD_IN_PARAMETER_LIST, 8, Some(7)));
        }
        if p[at] != SD_BLOCK_TO_BLOCK {
            return Err(illegal_at(
                asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE,
                at,
                Some(7),
            ));
        }
        if segs.len() >= usize::from(MAX_SEGMENT_DESCRIPTORS) {
            return Err(illegal_at(asc::TOO_MANY_SEGMENT_DESCRIPTORS, 8, Some(7)));
        }
        // DESCRIPTOR LENGTH excludes the first four bytes.
        if usize::from(be16(p, at + 2)) != SEGMENT_DESC_LEN - 4 {
            return Err(illegal_at(
                asc::INVALID_FIELD_IN_PARAMETER_LIST,
                at + 2,
                Some(7),
            ));
        }
        let d = p
            .get(at..at + SEGMENT_DESC_LEN)
            .filter(|_| at + SEGMENT_DESC_LEN <= end)
            .ok_or_else(|| illegal_at(asc::INVALID_FIELD_IN_PARAMETER_LIST, 8, Some(7)))?;
        let dc = d[1] & 0x02 != 0;
        let src = usize::from(be16(d, 4));
        let dst = usize::from(be16(d, 6));
        // A segment naming a target descriptor that is not in the list names nothing the
        // copy manager can reach (what libiscsi and LIO expect).
        let (Some(s), Some(t)) = (targets.get(src), targets.get(dst)) else {
            let field = if targets.get(src).is_none() {
                at + 4
            } else {
                at + 6
            };
            return Err(aborted_at(asc::COPY_TARGET_DEVICE_NOT_REACHABLE, field));
        };
        let (sbs, dbs) = (
            u64::from(s.slot.device.block_size()),
            u64::from(t.slot.device.block_size()),
        );
        // DC = 0: NUMBER OF BLOCKS counts source blocks; DC = 1: destination blocks.
        let bytes = u64::from(be16(d, 10)) * if dc { dbs } else { sbs };
        if !bytes.is_multiple_of(sbs)
            || !bytes.is_multiple_of(dbs)
            || bytes > u64::from(MAX_SEGMENT_LENGTH)
        {
            return Err(illegal_at(
                asc::INVALID_FIELD_IN_PARAMETER_LIST,
                at + 10,
                Some(7),
            ));
        }
        segs.push(Segment {
            src,
            dst,
            src_lba: be64(d, 12),
            dst_lba: be64(d, 20),
            bytes,
            at,
        });
        at += SEGMENT_DESC_LEN;
    }
    Ok(segs)
}

/// Every LU a segment reads or writes must let the issuing I_T nexus do what a READ(16) or
/// WRITE(16) sent to it directly would: its ALUA state through this port (else COPY ABORTED /
/// COPY TARGET DEVICE NOT REACHABLE, pointing at the target descriptor), and no SPC-2 or
/// persistent reservation another initiator holds (RESERVATION CONFLICT): a copy must not
/// write around a cluster's reservation. (LIO runs its copy I/O as internal commands that
/// meet the same reservation checks.)
fn check_access(c: &Ctx, targets: &[Target], segs: &[Segment]) -> Result<(), Fail> {
    let as_op = |opcode: u8| -> Result<([u8; 16], &'static crate::handler::OpInfo), Fail> {
        let mut cdb = [0u8; 16];
        cdb[0] = opcode;
        Ok((cdb, crate::cmd::ops::lookup(&cdb, 0)?))
    };
    let read = as_op(ironlun_scsi::opcode::READ_16)?;
    let write = as_op(ironlun_scsi::opcode::WRITE_16)?;
    for s in segs {
        for (t, (cdb, o)) in [(&targets[s.src], &read), (&targets[s.dst], &write)] {
            let dev = &t.slot.device;
            crate::alua::gate::check(&t.slot, o)
                .map_err(|_| aborted_at(asc::COPY_TARGET_DEVICE_NOT_REACHABLE, t.at))?;
            if dev.spc2.conflicts(c.nexus.id) || crate::pr::conflicts(dev, &c.nexus.ident, o, cdb) {
                return Err(Fail::ReservationConflict);
            }
        }
    }
    Ok(())
}

/// Before any block moves: every range fits its LU and every destination is writable.
fn check_targets(targets: &[Target], segs: &[Segment]) -> Result<(), Sense> {
    let fits = |dev: &Device, lba: u64, bytes: u64| {
        let n = bytes / u64::from(dev.block_size());
        lba.checked_add(n).is_some_and(|e| e <= dev.blocks())
    };
    for s in segs {
        let (src, dst) = (&targets[s.src].slot, &targets[s.dst].slot);
        // An LBA range beyond a copy target's capacity: COPY ABORTED / COPY TARGET DEVICE NOT
        // REACHABLE, as LIO reports every copy target failure (libiscsi accepts only that
        // family), pointing at the LBA field.
        if !fits(&src.device, s.src_lba, s.bytes) {
            return Err(aborted_at(asc::COPY_TARGET_DEVICE_NOT_REACHABLE, s.at + 12));
        }
        if !fits(&dst.device, s.dst_lba, s.bytes) {
            return Err(aborted_at(asc::COPY_TARGET_DEVICE_NOT_REACHABLE, s.at + 20));
        }
        for (slot, field) in [(src, s.at + 4), (dst, s.at + 6)] {
            let d = &slot.device;
            if d.stopped.load(Ordering::Relaxed) || crate::cmd::media::check_present(d).is_err() {
                return Err(aborted_at(asc::COPY_TARGET_DEVICE_NOT_REACHABLE, field));
            }
        }
        if let Some(a) = dst.write_protection() {
            return Err(aborted_at(a, targets[s.dst].at));
        }
    }
    Ok(())
}

/// Move the data, segment by segment, chunk by chunk.
fn run_copy(
    c: &Ctx,
    targets: &[Target],
    segs: &[Segment],
    progress: &Progress,
) -> Result<(), Sense> {
    let mut buf = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let (src, dst) = (&*targets[s.src].slot.device, &*targets[s.dst].slot.device);
        let from = s.src_lba * u64::from(src.block_size());
        let to = s.dst_lba * u64::from(dst.block_size());
        let chunks = s.bytes.div_ceil(CHUNK_BYTES);
        // Within one LU a destination overlapping the source from above is copied from the
        // end, so no block is overwritten before it has been read.
        let backwards = std::ptr::eq(src, dst) && to > from && to < from + s.bytes;
        let fua = !dst.write_cache.load(Ordering::Relaxed);
        for k in 0..chunks {
            let k = if backwards { chunks - 1 - k } else { k };
            if c.dev.tasks.is_aborted(c.task) {
                // The response becomes the abort's; the held status says the copy failed.
                return Err(Sense::aborted_command(asc::NO_ADDITIONAL_SENSE));
            }
            let off = k * CHUNK_BYTES;
            let n = CHUNK_BYTES.min(s.bytes - off);
            buf.resize(n as usize, 0);
            let at = from + off;
            src.stripes
                .shared(at, n, || src.backstore.read_at(&mut buf, at))
                .map_err(|e| {
                    tracing::warn!(error = %e, "EXTENDED COPY source read failed");
                    aborted_at(asc::UNRECOVERED_READ_ERROR, s.at + 12)
                })?;
            dst.stripes
                .shared(to + off, n, || dst.backstore.write_at(&buf, to + off, fua))
                .map_err(|e| {
                    tracing::warn!(error = %e, "EXTENDED COPY destination write failed");
                    aborted_at(asc::WRITE_ERROR, s.at + 20)
                })?;
            progress.bytes.fetch_add(n, Ordering::Relaxed);
        }
        progress
            .segments
            .store(u16::try_from(i + 1).unwrap_or(u16::MAX), Ordering::Relaxed);
    }
    Ok(())
}

/// RECEIVE COPY RESULTS: COPY STATUS, OPERATING PARAMETERS, FAILED SEGMENT DETAILS.
pub(crate) fn receive_copy_results(c: &Ctx) -> Outcome {
    let cdb = ReceiveCopyResults::parse(c.cdb)?;
    let (alloc, list_id) = (u64::from(cdb.allocation_length), cdb.list_identifier);
    let data = match cdb.service_action {
        rcr::OPERATING_PARAMETERS => operating_parameters(c.dev),
        rcr::COPY_STATUS => copy_status(c, list_id)?,
        rcr::FAILED_SEGMENT_DETAILS => failed_segment_details(c, list_id)?,
        // The opcode table admits no other service action.
        _ => return Err(Sense::invalid_cdb(ReceiveCopyResults::SERVICE_ACTION).into()),
    };
    Ok(Done::data(data, alloc))
}

/// SPC-4 §6.18.4 table 365.
fn operating_parameters(dev: &Device) -> Vec<u8> {
    let codes = [SD_BLOCK_TO_BLOCK, TD_IDENTIFICATION];
    let mut d = vec![0u8; 44];
    d[4] = 0x01; // SNLID: LIST ID USAGE 11b (no list identifier) is supported.
    d[8..10].copy_from_slice(&MAX_TARGET_DESCRIPTORS.to_be_bytes());
    d[10..12].copy_from_slice(&MAX_SEGMENT_DESCRIPTORS.to_be_bytes());
    d[12..16].copy_from_slice(&MAX_DESCRIPTOR_LIST_LENGTH.to_be_bytes());
    d[16..20].copy_from_slice(&MAX_SEGMENT_LENGTH.to_be_bytes());
    d[20..24].copy_from_slice(&MAX_INLINE_DATA_LENGTH.to_be_bytes());
    // 24..28 HELD DATA LIMIT and 28..32 MAXIMUM STREAM DEVICE TRANSFER SIZE: no held data
    // (no inline or stream segments).
    d[34..36].copy_from_slice(&(MAX_CONCURRENT_COPIES as u16).to_be_bytes());
    d[36] = MAX_CONCURRENT_COPIES as u8;
    // DATA SEGMENT GRANULARITY: log2 of the LU's block size (segments move whole blocks).
    d[37] = dev.block_size().trailing_zeros() as u8;
    // 38 INLINE DATA GRANULARITY, 39 HELD DATA GRANULARITY: none.
    d[43] = codes.len() as u8;
    d.extend_from_slice(&codes);
    let avail = (d.len() - 4) as u32;
    d[0..4].copy_from_slice(&avail.to_be_bytes());
    d
}

fn unknown_list_id() -> Fail {
    Sense::invalid_cdb(ReceiveCopyResults::LIST_IDENTIFIER).into()
}

/// SPC-4 §6.18.3 table 363 (LID1).
fn copy_status(c: &Ctx, list_id: u8) -> Result<Vec<u8>, Fail> {
    let g = c.dev.copies.held.lock();
    let h = g
        .iter()
        .find(|h| h.nexus == c.nexus.id && h.list_id == list_id)
        .ok_or_else(unknown_list_id)?;
    let mut d = vec![0u8; 12];
    d[3] = 8;
    // HDD stays 0: no held data is ever discarded (there is none).
    d[4] = h.status & 0x7F;
    d[5..7].copy_from_slice(&h.progress.segments.load(Ordering::Relaxed).to_be_bytes());
    // TRANSFER COUNT UNITS: bytes while the count fits, else the smallest binary unit that
    // makes it fit (01h KiB, 02h MiB, ...).
    let mut count = h.progress.bytes.load(Ordering::Relaxed);
    let mut units = 0u8;
    while count > u64::from(u32::MAX) {
        count >>= 10;
        units += 1;
    }
    d[7] = units;
    d[8..12].copy_from_slice(&(count as u32).to_be_bytes());
    Ok(d)
}

/// SPC-4 §6.18.5 table 366: the sense data of a failed copy, returned once.
fn failed_segment_details(c: &Ctx, list_id: u8) -> Result<Vec<u8>, Fail> {
    let mut g = c.dev.copies.held.lock();
    let h = g
        .iter_mut()
        .find(|h| h.nexus == c.nexus.id && h.list_id == list_id)
        .ok_or_else(unknown_list_id)?;
    // In progress or completed without error: AVAILABLE DATA 0, nothing more.
    let Some(sense) = h.failed.take() else {
        return Ok(vec![0u8; 4]);
    };
    let mut d = vec![0u8; 60];
    d[56] = ironlun_scsi::status::CHECK_CONDITION;
    d[58..60].copy_from_slice(&(sense.len() as u16).to_be_bytes());
    d.extend_from_slice(&sense);
    let avail = (d.len() - 4) as u32;
    d[0..4].copy_from_slice(&avail.to_be_bytes());
    Ok(d)
}
