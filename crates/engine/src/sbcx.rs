//! SBC-3/SBC-4 commands beyond the basic set: ORWRITE(16) (SBC-3 §5.10), WRITE ATOMIC(16)
//! (SBC-4 §5.48), SANITIZE (SBC-3 §5.19, §4.11), READ DEFECT DATA (10)/(12) (SBC-3 §5.12,
//! §5.13).
//!
//! ORWRITE and WRITE ATOMIC hold their range's stripe locks exclusive (as COMPARE AND WRITE),
//! so no other write to an overlapping range interleaves. A SANITIZE runs on its own thread;
//! while it runs, medium-access commands get NOT READY, SANITIZE IN PROGRESS with the progress
//! indication (`media::check_present`), and a failed one leaves the LU in sanitize failure
//! mode until EXIT FAILURE MODE (after AUSE=1) or a successful SANITIZE.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use ironlun_scsi::cdb::{be16, be32, be64, byte};
use ironlun_scsi::sense::key;
use ironlun_scsi::{opcode::sanitize as sa, Sense};

use crate::device::Device;
use crate::media::{self, Sanitize};
use crate::nexus::{Ctx, Done, Fail, Outcome};
use crate::sbc::{check_range, fua_bit, io_fail, write_args, WRITE_SAME_CHUNK};

/// ORWRITE(16): under the range's exclusive stripe locks the blocks are read, ORed with the
/// Data-Out and written back (durably with FUA or WCE=0). ORPROTECT is outside the CDB usage
/// data (no protection information), so `ops::validate` rejects it. TRANSFER LENGTH 0 is
/// not an error (§5.10).
pub(crate) fn orwrite(c: &Ctx) -> Outcome {
    let (lba, n, data) = write_args(c)?;
    let bs = u64::from(c.dev.block_size());
    if !data.is_empty() {
        let fua = fua_bit(c.cdb) || !c.dev.write_cache.load(Ordering::Relaxed);
        let off = lba * bs;
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
    Ok(Done::consumed(n * bs))
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
pub(crate) fn atomic_limits(dev: &crate::device::Device) -> [u8; 20] {
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

/// WRITE ATOMIC(16) (SBC-4 §5.48): LBA bytes 2-9, ATOMIC BOUNDARY 10-11, TRANSFER LENGTH
/// 12-13. A TRANSFER LENGTH above MAXIMUM ATOMIC TRANSFER LENGTH (ATOMIC BOUNDARY 0) or above
/// MAXIMUM ATOMIC TRANSFER LENGTH WITH ATOMIC BOUNDARY, an ATOMIC BOUNDARY above MAXIMUM
/// ATOMIC BOUNDARY SIZE, a misaligned LBA or a length off the granularity are INVALID FIELD IN
/// CDB pointing at the field. The Data-Out must be the whole transfer (a partial atomic write
/// has no meaning); it is written under the range's exclusive stripe locks, so every command
/// that takes them sees all of it or none.
pub(crate) fn write_atomic(c: &Ctx) -> Outcome {
    let lba = be64(c.cdb, 2);
    let boundary = u32::from(be16(c.cdb, 10));
    let n = u32::from(be16(c.cdb, 12));
    check_range(c.dev, lba, u64::from(n))?;
    let l = limits(c.dev);
    if boundary == 0 {
        if n > l.max_len {
            return Err(Sense::invalid_cdb_field(12, Some(7)).into());
        }
    } else {
        if boundary > l.max_boundary {
            return Err(Sense::invalid_cdb_field(10, Some(7)).into());
        }
        if n > l.max_len_boundary {
            return Err(Sense::invalid_cdb_field(12, Some(7)).into());
        }
    }
    if l.align > 1 && !lba.is_multiple_of(u64::from(l.align)) {
        return Err(Sense::invalid_cdb_field(2, Some(7)).into());
    }
    if l.gran > 1 && !n.is_multiple_of(l.gran) {
        return Err(Sense::invalid_cdb_field(12, Some(7)).into());
    }
    let bs = u64::from(c.dev.block_size());
    let len = u64::from(n) * bs;
    let data = c.data_out(len)?;
    if n == 0 {
        return Ok(Done::good());
    }
    let fua = fua_bit(c.cdb) || !c.dev.write_cache.load(Ordering::Relaxed);
    let off = lba * bs;
    c.dev
        .stripes
        .exclusive(off, len, || c.dev.backstore.write_at(data, off, fua))
        .map_err(|e| io_fail(e, true))?;
    Ok(Done::consumed(len))
}

/// SANITIZE (SBC-3 §5.19). OVERWRITE (parameter list §5.19.3.1), BLOCK ERASE and EXIT FAILURE
/// MODE; CRYPTOGRAPHIC ERASE is not in the opcode table (no encryption) and is refused there.
/// IMMED=1 returns GOOD once the parameters are checked and the sanitize has started;
/// otherwise the command ends with the sanitize (GOOD, or MEDIUM ERROR, SANITIZE COMMAND
/// FAILED). Either way the sanitize runs on its own thread and outlives task aborts, resets and
/// I_T nexus loss (§4.11).
///
/// The medium gates are applied here rather than at the nexus gate because a SANITIZE, unlike
/// other medium-access commands, is allowed in sanitize failure mode.
pub(crate) fn sanitize(c: &Ctx) -> Outcome {
    let b1 = byte(c.cdb, 1);
    let immed = b1 & 0x80 != 0;
    let ause = b1 & 0x20 != 0;
    let action = b1 & 0x1F;
    let plen = u64::from(be16(c.cdb, 7));
    let bs = u64::from(c.dev.block_size());
    match c.dev.media.sanitize_state() {
        Sanitize::Running { .. } => {
            return Err(media::state_sense(c.dev)
                .unwrap_or(Sense::new(key::NOT_READY, media::SANITIZE_IN_PROGRESS))
                .into())
        }
        Sanitize::Failed { .. } | Sanitize::Idle => {}
    }
    if !c.dev.media.loaded() {
        return Err(Sense::new(key::NOT_READY, media::MEDIUM_NOT_PRESENT).into());
    }
    if c.dev.stopped.load(Ordering::Relaxed) {
        return Err(Sense::new(key::NOT_READY, ironlun_scsi::Asc::new(0x04, 0x02)).into());
    }
    let passes: Vec<Pass> = match action {
        sa::OVERWRITE => {
            // PARAMETER LIST LENGTH: a header and at most one block of pattern (§5.19.3.1).
            if plen < 5 || plen > bs + 4 {
                return Err(Sense::invalid_cdb_field(7, Some(7)).into());
            }
            let p = c.data_out(plen)?;
            overwrite_passes(p, bs)?
        }
        sa::BLOCK_ERASE => {
            if plen != 0 {
                return Err(Sense::invalid_cdb_field(7, Some(7)).into());
            }
            // Every LBA reads back as zeroes afterwards (VPD B1h WABEREQ 01b): deallocated
            // on a thin LU whose store zeroes what it deallocates, else overwritten.
            if c.dev.thin() && c.dev.backstore.unmap_zeroes() {
                vec![Pass::Deallocate]
            } else {
                vec![Pass::Fill(vec![0u8; bs as usize])]
            }
        }
        sa::EXIT_FAILURE_MODE => {
            if plen != 0 {
                return Err(Sense::invalid_cdb_field(7, Some(7)).into());
            }
            // After a failed sanitize with AUSE=0 only a successful sanitize ends failure
            // mode (§5.19.1); outside failure mode there is nothing to exit.
            return match c.dev.media.sanitize_exit_failure() {
                Ok(()) => Ok(Done::good()),
                Err(()) => Err(Sense::invalid_cdb_field(1, Some(4)).into()),
            };
        }
        // Unreachable through the opcode table (lookup refuses other service actions).
        _ => return Err(Sense::invalid_cdb_field(1, Some(4)).into()),
    };
    let consumed = if action == sa::OVERWRITE { plen } else { 0 };
    let blocks = c.dev.blocks();
    let total = blocks * bs * passes.len() as u64;
    c.dev.media.sanitize_begin(total)?;
    let (tx, rx) = mpsc::channel();
    let dev = c.slot.device.clone();
    let job = move || {
        let ok = run_sanitize(&dev, &passes, blocks);
        dev.media.sanitize_end(ok, ause);
        let _ = tx.send(ok);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("sanitize".into())
        .spawn(job)
    {
        tracing::warn!(error = %e, "cannot start the sanitize thread");
        c.dev.media.sanitize_end(false, ause);
        return Err(Sense::new(key::MEDIUM_ERROR, media::SANITIZE_COMMAND_FAILED).into());
    }
    if immed {
        return Ok(Done::consumed(consumed));
    }
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(true) => return Ok(Done::consumed(consumed)),
            Ok(false) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Sense::new(key::MEDIUM_ERROR, media::SANITIZE_COMMAND_FAILED).into())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // A TMF is aborting tasks of this LU (possibly this one): stop waiting so the
                // TMF completes; the sanitize goes on and the gate reports its progress.
                if c.dev.tasks.aborting() > 0 {
                    return Err(media::state_sense(c.dev)
                        .unwrap_or(Sense::new(key::NOT_READY, media::SANITIZE_IN_PROGRESS))
                        .into());
                }
            }
        }
    }
}

/// Check the OVERWRITE parameter list (§5.19.3.1 table 61) and build one block image per
/// pass: the INITIALIZATION PATTERN repeated to fill the block, inverted on every other pass
/// with INVERT=1 (the last pass writing the pattern as sent when OVERWRITE COUNT is odd).
fn overwrite_passes(p: &[u8], bs: u64) -> Result<Vec<Pass>, Fail> {
    let b0 = byte(p, 0);
    let invert = b0 & 0x80 != 0;
    if b0 & 0x60 != 0 {
        // TEST 00b is the only value for normal operation.
        return Err(Sense::invalid_param_field(0, Some(6)).into());
    }
    let count = b0 & 0x1F;
    if count == 0 {
        return Err(Sense::invalid_param_field(0, Some(4)).into());
    }
    if byte(p, 1) != 0 {
        return Err(Sense::invalid_param_field(1, Some(7)).into());
    }
    let plen = u64::from(be16(p, 2));
    if plen == 0 || plen > bs || plen + 4 != p.len() as u64 {
        return Err(Sense::invalid_param_field(2, Some(7)).into());
    }
    let pattern = p.get(4..).unwrap_or(&[]);
    let image: Vec<u8> = pattern.iter().copied().cycle().take(bs as usize).collect();
    let inverted: Vec<u8> = image.iter().map(|b| !b).collect();
    Ok((0..count)
        .map(|i| {
            // Passes count down to the last, which writes the pattern itself.
            if invert && (count - 1 - i) % 2 == 1 {
                Pass::Fill(inverted.clone())
            } else {
                Pass::Fill(image.clone())
            }
        })
        .collect())
}

/// One pass of a sanitize over the whole LU.
enum Pass {
    /// Write this block image to every block.
    Fill(Vec<u8>),
    /// Deallocate every block (thin LU whose store reads deallocated blocks as zeroes).
    Deallocate,
}

/// Run every pass over the whole LU in chunks, each under its range's shared stripe locks,
/// then flush. Reports progress in bytes done; false on any I/O error.
fn run_sanitize(dev: &Device, passes: &[Pass], blocks: u64) -> bool {
    let bs = u64::from(dev.block_size());
    let per = (WRITE_SAME_CHUNK / bs).clamp(1, blocks.max(1));
    let mut progress = 0u64;
    for pass in passes {
        let chunk = match pass {
            Pass::Fill(image) => image.repeat(per as usize),
            Pass::Deallocate => Vec::new(),
        };
        let mut done = 0;
        while done < blocks {
            let k = per.min(blocks - done);
            let ok = match pass {
                Pass::Fill(_) => {
                    let piece = chunk.get(..(k * bs) as usize).unwrap_or(&chunk);
                    let off = done * bs;
                    dev.stripes
                        .shared(off, k * bs, || dev.backstore.write_at(piece, off, false))
                        .map_err(|e| tracing::warn!(error = %e, "sanitize write failed"))
                        .is_ok()
                }
                Pass::Deallocate => crate::thin::deallocate(dev, done, k).is_ok(),
            };
            if !ok {
                return false;
            }
            done += k;
            progress += k * bs;
            dev.media.sanitize_progress(progress);
        }
    }
    if let Err(e) = dev.backstore.flush() {
        tracing::warn!(error = %e, "sanitize flush failed");
        return false;
    }
    true
}

/// READ DEFECT DATA (10)/(12): no defects are kept, so the requested list(s) come back empty,
/// marked valid (PLISTV/GLISTV) and in the requested DEFECT LIST FORMAT (reserved 111b
/// refused). (10): 4-byte header, allocation length bytes 7-8; (12): 8-byte header with
/// GENERATION CODE 0 (not supported), allocation length bytes 6-9.
pub(crate) fn read_defect_data(c: &Ctx) -> Outcome {
    let ten = byte(c.cdb, 0) == ironlun_scsi::opcode::READ_DEFECT_DATA_10;
    let at = if ten { 2 } else { 1 };
    let req = byte(c.cdb, at);
    if req & 0x07 == 0x07 {
        return Err(Sense::invalid_cdb_field(at as u16, Some(2)).into());
    }
    // PLISTV, GLISTV and the format echo the request.
    let b1 = req & 0x1F;
    let (data, alloc) = if ten {
        (vec![0, b1, 0, 0], u64::from(be16(c.cdb, 7)))
    } else {
        (vec![0, b1, 0, 0, 0, 0, 0, 0], u64::from(be32(c.cdb, 6)))
    };
    Ok(Done::data(data, alloc))
}
