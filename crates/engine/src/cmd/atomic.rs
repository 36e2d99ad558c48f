//! ORWRITE(16) (SBC-3 §5.10) and WRITE ATOMIC(16) (SBC-4 §5.48): both hold their range's
//! stripe locks exclusive (as COMPARE AND WRITE), so no other write to an overlapping range
//! interleaves and no read sees them half done.

use std::sync::atomic::Ordering;

use ironlun_scsi::cdb::WriteAtomic16;
use ironlun_scsi::Sense;

use super::sbc::write_args;
use crate::core::device::Device;
use crate::handler::io_fail;
use crate::handler::{Ctx, Done, Outcome};

/// ORWRITE(16): under the range's exclusive stripe locks the blocks are read, ORed with the
/// Data-Out and written back (durably with FUA or WCE=0). ORPROTECT is outside the CDB usage
/// data (no protection information), so `ops::validate` rejects it. TRANSFER LENGTH 0 is
/// not an error (§5.10).
pub(crate) fn orwrite(c: &Ctx) -> Outcome {
    let (x, data) = write_args(c)?;
    let bs = u64::from(c.dev.block_size());
    if !data.is_empty() {
        let fua = x.fua || !c.dev.write_cache.load(Ordering::Relaxed);
        let off = x.lba * bs;
        c.dev.stripes.exclusive(off, data.len() as u64, || {
            let mut cur = vec![0u8; data.len()];
            c.dev
                .backstore
                .read_at(&mut cur, off)
                .map_err(|e| io_fail(e, false))?;
            cur.iter_mut().zip(data).for_each(|(a, b)| *a |= b);
            c.dev
                .backstore
                .write_at(&cur, off, fua)
                .map_err(|e| io_fail(e, true))
        })?;
    }
    Ok(Done::consumed(x.n * bs))
}

/// The WRITE ATOMIC(16) limits of an LU, in logical blocks.
struct AtomicLimits {
    max_len: u32,
    /// 0: no alignment requirement.
    align: u32,
    /// 0: no granularity requirement.
    gran: u32,
    max_len_boundary: u32,
    max_boundary: u32,
}

/// Every atomic write is performed whole under exclusive stripe locks, so the only limit is
/// the largest transfer (MAXIMUM TRANSFER LENGTH, capped to the 16-bit TRANSFER LENGTH field);
/// a non-zero ATOMIC BOUNDARY is honoured trivially (the whole transfer is one atomic unit).
fn limits(dev: &Device) -> AtomicLimits {
    let max = dev.hw_max_sectors().min(u32::from(u16::MAX));
    AtomicLimits {
        max_len: max,
        align: 0,
        gran: 0,
        max_len_boundary: max,
        max_boundary: max,
    }
}

/// VPD B0h bytes 44..64 (SBC-4 §6.6.4): MAXIMUM ATOMIC TRANSFER LENGTH, ATOMIC ALIGNMENT,
/// ATOMIC TRANSFER LENGTH GRANULARITY, MAXIMUM ATOMIC TRANSFER LENGTH WITH ATOMIC BOUNDARY,
/// MAXIMUM ATOMIC BOUNDARY SIZE.
pub(crate) fn atomic_limits(dev: &crate::core::device::Device) -> [u8; 20] {
    let l = limits(dev);
    let mut out = [0u8; 20];
    for (i, v) in [
        l.max_len,
        l.align,
        l.gran,
        l.max_len_boundary,
        l.max_boundary,
    ]
    .into_iter()
    .enumerate()
    {
        out[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// WRITE ATOMIC(16) (SBC-4 §5.48). A TRANSFER LENGTH above MAXIMUM ATOMIC TRANSFER LENGTH (ATOMIC BOUNDARY 0) or above
/// MAXIMUM ATOMIC TRANSFER LENGTH WITH ATOMIC BOUNDARY, an ATOMIC BOUNDARY above MAXIMUM
/// ATOMIC BOUNDARY SIZE, a misaligned LBA or a length off the granularity are INVALID FIELD IN
/// CDB pointing at the field. The Data-Out must be the whole transfer (a partial atomic write
/// has no meaning); it is written under the range's exclusive stripe locks, so every command
/// that takes them sees all of it or none.
pub(crate) fn write_atomic(c: &Ctx) -> Outcome {
    let cdb = WriteAtomic16::parse(c.cdb)?;
    let lba = cdb.lba.0;
    let boundary = u32::from(cdb.atomic_boundary);
    let n = cdb.transfer_length.0;
    c.dev.check_range(lba, u64::from(n))?;
    let l = limits(c.dev);
    if boundary == 0 {
        if n > l.max_len {
            return Err(Sense::invalid_cdb(WriteAtomic16::TRANSFER_LENGTH).into());
        }
    } else {
        if boundary > l.max_boundary {
            return Err(Sense::invalid_cdb(WriteAtomic16::ATOMIC_BOUNDARY).into());
        }
        if n > l.max_len_boundary {
            return Err(Sense::invalid_cdb(WriteAtomic16::TRANSFER_LENGTH).into());
        }
    }
    if l.align > 1 && !lba.is_multiple_of(u64::from(l.align)) {
        return Err(Sense::invalid_cdb(WriteAtomic16::LBA).into());
    }
    if l.gran > 1 && !n.is_multiple_of(l.gran) {
        return Err(Sense::invalid_cdb(WriteAtomic16::TRANSFER_LENGTH).into());
    }
    let bs = u64::from(c.dev.block_size());
    let len = u64::from(n) * bs;
    let data = c.data_out(len)?;
    if n == 0 {
        return Ok(Done::good());
    }
    let fua = cdb.fua || !c.dev.write_cache.load(Ordering::Relaxed);
    let off = lba * bs;
    c.dev
        .stripes
        .exclusive(off, len, || c.dev.backstore.write_at(data, off, fua))
        .map_err(|e| io_fail(e, true))?;
    Ok(Done::consumed(len))
}
