//! Logical block provisioning (SBC-3 §4.7): UNMAP (§5.28), GET LBA STATUS (§5.8), and the
//! deallocation WRITE SAME with UNMAP (§5.45, §5.46) performs.
//!
//! Anchored blocks are not offered (VPD B2h ANC_SUP=0): an ANCHOR bit is INVALID FIELD IN CDB.
//! Deallocation goes to the backstore (hole punch, discard, freed RAM chunks) under the range's
//! shared stripe locks, so COMPARE AND WRITE stays atomic against it.

use std::sync::atomic::Ordering;

use ironlun_scsi::cdb::{be16, be32, be64, GetLbaStatus, Unmap};
use ironlun_scsi::sense::asc;
use ironlun_scsi::Sense;

use crate::core::device::Device;
use crate::handler::io_fail;
use crate::handler::{Ctx, Done, Fail, Outcome};
use ironlun_backstore::Provisioning;

/// UNMAP parameter list header length (SBC-3 §5.28.2 table 98).
const HEADER: usize = 8;
/// UNMAP block descriptor length (SBC-3 §5.28.3).
const DESCRIPTOR: usize = 16;
/// GET LBA STATUS: parameter data header and LBA status descriptor lengths (SBC-3 §5.8.2).
const STATUS_HEADER: usize = 8;
const STATUS_DESCRIPTOR: usize = 16;
/// Most LBA status descriptors one GET LBA STATUS returns (bounds the scan and the buffer).
const MAX_STATUS_DESCRIPTORS: usize = 1024;
/// PROVISIONING STATUS values (SBC-3 §5.8.3 table 38).
const STATUS_MAPPED: u8 = 0;
const STATUS_DEALLOCATED: u8 = 1;

/// Deallocates blocks `[lba, lba+n)` (range already checked) under the shared stripe locks.
pub(crate) fn deallocate(dev: &Device, lba: u64, n: u64) -> Result<(), Fail> {
    if n == 0 {
        return Ok(());
    }
    let bs = u64::from(dev.block_size());
    let (off, len) = (lba * bs, n * bs);
    dev.stripes
        .shared(off, len, || {
            dev.backstore.unmap(off, len)?;
            // With the write cache off (WCE=0) a completed command is durable, deallocation
            // included (the hole-punch is metadata a write-back store has not synced yet).
            if !dev.write_cache.load(Ordering::Relaxed) {
                dev.backstore.flush()?;
            }
            Ok(())
        })
        .map_err(|e: std::io::Error| io_fail(e, true))
}

/// UNMAP (SBC-3 §5.28). Every descriptor is checked before any is carried out, so a bad list
/// changes nothing (LIO unmaps as it goes; all-or-nothing is what the initiator can reason
/// about). Checks, in order:
/// * ANCHOR (CDB byte 1 bit 0) with ANC_SUP=0 → INVALID FIELD IN CDB;
/// * PARAMETER LIST LENGTH 0 → GOOD, nothing transferred; 1..7 → PARAMETER LIST LENGTH ERROR;
/// * UNMAP BLOCK DESCRIPTOR DATA LENGTH beyond what the list holds → PARAMETER LIST LENGTH
///   ERROR (the list is truncated, SPC-4 §4.5.3);
/// * UNMAP DATA LENGTH shorter than the block descriptors it must cover (+6) → INVALID FIELD IN
///   PARAMETER LIST at byte 0;
/// * more descriptors than MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT → INVALID FIELD IN PARAMETER
///   LIST at byte 2 (an incomplete trailing descriptor is ignored, §5.28.2);
/// * a range past the capacity → LBA OUT OF RANGE;
/// * a total of NUMBER OF LOGICAL BLOCKS above MAXIMUM UNMAP LBA COUNT → INVALID FIELD IN
///   PARAMETER LIST at the descriptor's count field.
pub(crate) fn unmap(c: &Ctx) -> Outcome {
    let dev = c.dev;
    let cdb = Unmap::parse(c.cdb)?;
    if cdb.anchor {
        return Err(Sense::invalid_cdb(Unmap::ANCHOR).into());
    }
    let plen = u64::from(cdb.parameter_list_length);
    let list = c.data_out(plen)?;
    if plen == 0 {
        return Ok(Done::good());
    }
    if list.len() < HEADER {
        return Err(Sense::illegal(asc::PARAMETER_LIST_LENGTH_ERROR).into());
    }
    let data_len = usize::from(be16(list, 0));
    let bd_len = usize::from(be16(list, 2));
    if bd_len > list.len() - HEADER {
        return Err(Sense::illegal(asc::PARAMETER_LIST_LENGTH_ERROR).into());
    }
    if data_len < bd_len + (HEADER - 2) {
        return Err(Sense::invalid_param_field(0, Some(7)).into());
    }
    let count = bd_len / DESCRIPTOR;
    if count as u64 > u64::from(dev.max_unmap_descriptors()) {
        return Err(Sense::invalid_param_field(2, Some(7)).into());
    }
    let max_lbas = u64::from(dev.max_unmap_lba());
    let mut total = 0u64;
    let mut ranges = Vec::with_capacity(count);
    for i in 0..count {
        let at = HEADER + i * DESCRIPTOR;
        let d = list.get(at..at + DESCRIPTOR).unwrap_or(&[]);
        let (lba, n) = (be64(d, 0), u64::from(be32(d, 8)));
        dev.check_range(lba, n)?;
        total += n;
        if total > max_lbas {
            return Err(Sense::invalid_param_field((at + 8) as u16, Some(7)).into());
        }
        ranges.push((lba, n));
    }
    for (lba, n) in ranges {
        deallocate(dev, lba, n)?;
    }
    Ok(Done::consumed(plen))
}

/// GET LBA STATUS (SBC-3 §5.8): LBA status descriptors from STARTING LOGICAL BLOCK ADDRESS on,
/// alternating mapped and deallocated, as many as the ALLOCATION LENGTH holds (at least one,
/// at most [`MAX_STATUS_DESCRIPTORS`]). A block is deallocated only if all of its bytes are.
pub(crate) fn get_lba_status(c: &Ctx) -> Outcome {
    let dev = c.dev;
    let cdb = GetLbaStatus::parse(c.cdb)?;
    let (lba, alloc) = (cdb.lba.0, u64::from(cdb.allocation_length));
    let blocks = dev.blocks();
    if lba >= blocks {
        return Err(Sense::illegal(asc::LOGICAL_BLOCK_ADDRESS_OUT_OF_RANGE).into());
    }
    let room = (alloc.saturating_sub(STATUS_HEADER as u64) / STATUS_DESCRIPTOR as u64)
        .clamp(1, MAX_STATUS_DESCRIPTORS as u64) as usize;
    let bs = u64::from(dev.block_size());
    let extents = dev
        .backstore
        .provisioning(lba * bs, (blocks - lba) * bs, room + 1)
        .map_err(|e| io_fail(e, false))?;
    let scanned_end = extents
        .last()
        .map(|e| (e.off + e.len) / bs)
        .unwrap_or(blocks)
        .clamp(lba + 1, blocks);
    // Whole deallocated blocks, then mapped runs filling the gaps.
    let mut runs: Vec<(u64, u64, u8)> = Vec::new();
    let mut cur = lba;
    for e in extents
        .iter()
        .filter(|e| e.state == Provisioning::Deallocated)
    {
        let (s, t) = (
            e.off.div_ceil(bs).max(cur),
            ((e.off + e.len) / bs).min(scanned_end),
        );
        if s >= t {
            continue;
        }
        if s > cur {
            push_run(&mut runs, cur, s - cur, STATUS_MAPPED);
        }
        push_run(&mut runs, s, t - s, STATUS_DEALLOCATED);
        cur = t;
    }
    if cur < scanned_end {
        push_run(&mut runs, cur, scanned_end - cur, STATUS_MAPPED);
    }
    let mut d = vec![0u8; STATUS_HEADER];
    for &(start, n, status) in runs.iter().take(room) {
        // NUMBER OF LOGICAL BLOCKS is 32 bits: a longer run is reported up to its first 2^32-1.
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        d.extend_from_slice(&start.to_be_bytes());
        d.extend_from_slice(&n.to_be_bytes());
        d.extend_from_slice(&[status, 0, 0, 0]);
    }
    let plen = (d.len() - 4) as u32;
    d[..4].copy_from_slice(&plen.to_be_bytes());
    Ok(Done::data(d, alloc))
}

fn push_run(runs: &mut Vec<(u64, u64, u8)>, start: u64, n: u64, status: u8) {
    if let Some(last) = runs.last_mut() {
        if last.2 == status && last.0 + last.1 == start {
            last.1 += n;
            return;
        }
    }
    runs.push((start, n, status));
}
