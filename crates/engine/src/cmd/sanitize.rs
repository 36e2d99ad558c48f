//! SANITIZE (SBC-3 §5.19, §4.11). A SANITIZE runs on its own thread; while it runs,
//! medium-access commands get NOT READY, SANITIZE IN PROGRESS with the progress indication
//! (`media::check_present`), and a failed one leaves the LU in sanitize failure mode until
//! EXIT FAILURE MODE (after AUSE=1) or a successful SANITIZE.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use ironlun_scsi::cdb::{self, be16, byte};
use ironlun_scsi::sense::asc;
use ironlun_scsi::{opcode::sanitize as sa, Sense};

use super::media;
use super::sbc::WRITE_SAME_CHUNK;
use crate::core::device::media::Sanitize;
use crate::core::device::Device;
use crate::handler::{Ctx, Done, Fail, Outcome};

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
    let x = cdb::Sanitize::parse(c.cdb)?;
    let (immed, ause, action) = (x.immed, x.ause, x.service_action);
    let plen = u64::from(x.parameter_list_length);
    let bs = u64::from(c.dev.block_size());
    match c.dev.media.sanitize_state() {
        Sanitize::Running { .. } => {
            return Err(media::state_sense(c.dev)
                .unwrap_or(Sense::not_ready(asc::NOT_READY_SANITIZE_IN_PROGRESS))
                .into())
        }
        Sanitize::Failed { .. } | Sanitize::Idle => {}
    }
    if !c.dev.media.loaded() {
        return Err(Sense::not_ready(asc::MEDIUM_NOT_PRESENT).into());
    }
    if c.dev.stopped.load(Ordering::Relaxed) {
        return Err(Sense::not_ready(asc::NOT_READY_INITIALIZING_COMMAND_REQUIRED).into());
    }
    let passes: Vec<Pass> = match action {
        sa::OVERWRITE => {
            // PARAMETER LIST LENGTH: a header and at most one block of pattern (§5.19.3.1).
            if plen < 5 || plen > bs + 4 {
                return Err(Sense::invalid_cdb(cdb::Sanitize::PARAMETER_LIST_LENGTH).into());
            }
            let p = c.data_out(plen)?;
            overwrite_passes(p, bs)?
        }
        sa::BLOCK_ERASE => {
            if plen != 0 {
                return Err(Sense::invalid_cdb(cdb::Sanitize::PARAMETER_LIST_LENGTH).into());
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
                return Err(Sense::invalid_cdb(cdb::Sanitize::PARAMETER_LIST_LENGTH).into());
            }
            // After a failed sanitize with AUSE=0 only a successful sanitize ends failure
            // mode (§5.19.1); outside failure mode there is nothing to exit.
            return match c.dev.media.sanitize_exit_failure() {
                Ok(()) => Ok(Done::good()),
                Err(()) => Err(Sense::invalid_cdb(cdb::Sanitize::SERVICE_ACTION).into()),
            };
        }
        // Unreachable through the opcode table (lookup refuses other service actions).
        _ => return Err(Sense::invalid_cdb(cdb::Sanitize::SERVICE_ACTION).into()),
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
        return Err(Sense::medium_error(asc::SANITIZE_COMMAND_FAILED).into());
    }
    if immed {
        return Ok(Done::consumed(consumed));
    }
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(true) => return Ok(Done::consumed(consumed)),
            Ok(false) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Sense::medium_error(asc::SANITIZE_COMMAND_FAILED).into())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // A TMF is aborting tasks of this LU (possibly this one): stop waiting so the
                // TMF completes; the sanitize goes on and the gate reports its progress.
                if c.dev.tasks.aborting() > 0 {
                    return Err(media::state_sense(c.dev)
                        .unwrap_or(Sense::not_ready(asc::NOT_READY_SANITIZE_IN_PROGRESS))
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
                Pass::Deallocate => crate::cmd::thin::deallocate(dev, done, k).is_ok(),
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
