//! SBC-3 block commands: READ/WRITE(6/10/12/16) (§5.7-5.10, §5.32-5.35), WRITE AND VERIFY
//! (§5.36-5.38), VERIFY (§5.27-5.29), COMPARE AND WRITE (§5.2), PRE-FETCH (§5.4-5.5),
//! SYNCHRONIZE CACHE (§5.22-5.23), READ CAPACITY (§5.15-5.16) and
//! WRITE SAME(10)/(16) (§5.45-5.46; its UNMAP bit deallocates through `thin`).
//!
//! [`Xfer`] decodes the CDB of the transfer family once, from whichever of its 6-, 10-, 12- or
//! 16-byte forms it has (the layouts are `ironlun_scsi::cdb`'s).
//!
//! Durability: FUA, or a write with the write cache disabled (WCE=0), is made durable before
//! GOOD (`write_at(fua = true)`); SYNCHRONIZE CACHE flushes the backstore.
//!
//! Atomicity: every write holds its range's stripe locks shared, COMPARE AND WRITE holds them
//! exclusive across read, compare and write (`stripe`).

use std::sync::atomic::Ordering;

use ironlun_scsi::cdb::*;
use ironlun_scsi::sense::asc;
use ironlun_scsi::{opcode as op, status, Sense};

use crate::core::device::{Device, MAX_IO_BYTES};
use crate::handler::{io_fail, Ctx, Done, Fail, Outcome};

/// A transfer CDB (READ, WRITE, WRITE AND VERIFY, VERIFY, ORWRITE, PRE-FETCH, SYNCHRONIZE
/// CACHE, WRITE SAME), decoded once from whichever form it has.
pub(crate) struct Xfer {
    pub lba: u64,
    /// Blocks: READ(6)/WRITE(6)'s TRANSFER LENGTH 0 already made 256 (SBC-3 §5.7).
    pub n: u64,
    /// The field holding the block count, where INVALID FIELD IN CDB points.
    pub len_field: Field,
    /// FUA, in the forms that have it.
    pub fua: bool,
    /// BYTCHK and its field, in WRITE AND VERIFY and VERIFY (always there for those).
    pub bytchk: Option<(u8, Field)>,
    /// WRITE SAME's ANCHOR, UNMAP and NDOB (NDOB only in the 16-byte form).
    pub anchor: bool,
    pub unmap: bool,
    pub ndob: bool,
}

impl Xfer {
    fn new(lba: Lba, n: Blocks, len_field: Field) -> Xfer {
        Xfer {
            lba: lba.0,
            n: u64::from(n.0),
            len_field,
            fua: false,
            bytchk: None,
            anchor: false,
            unmap: false,
            ndob: false,
        }
    }

    pub(crate) fn parse(cdb: &[u8]) -> Result<Xfer, CdbError> {
        // Each arm decodes one form: the struct's own fields, nothing read by offset.
        macro_rules! rw {
            ($t:ident) => {{
                let x = $t::parse(cdb)?;
                Xfer {
                    fua: x.fua,
                    ..Xfer::new(x.lba, x.transfer_length, $t::TRANSFER_LENGTH)
                }
            }};
        }
        macro_rules! verify {
            ($t:ident) => {{
                let x = $t::parse(cdb)?;
                Xfer {
                    bytchk: Some((x.bytchk, $t::BYTCHK)),
                    ..Xfer::new(x.lba, x.transfer_length, $t::TRANSFER_LENGTH)
                }
            }};
        }
        macro_rules! six {
            ($t:ident) => {{
                let x = $t::parse(cdb)?;
                // SBC-3 §5.7: a TRANSFER LENGTH of 0 in READ(6)/WRITE(6) means 256 blocks.
                let n = match x.transfer_length.0 {
                    0 => Blocks(256),
                    n => Blocks(n),
                };
                Xfer::new(x.lba, n, $t::TRANSFER_LENGTH)
            }};
        }
        macro_rules! ranged {
            ($t:ident) => {{
                let x = $t::parse(cdb)?;
                Xfer::new(
                    x.lba,
                    x.number_of_logical_blocks,
                    $t::NUMBER_OF_LOGICAL_BLOCKS,
                )
            }};
        }
        Ok(match byte(cdb, 0) {
            op::READ_6 => six!(Read6),
            op::WRITE_6 => six!(Write6),
            op::READ_10 => rw!(Read10),
            op::READ_12 => rw!(Read12),
            op::READ_16 => rw!(Read16),
            op::WRITE_10 => rw!(Write10),
            op::WRITE_12 => rw!(Write12),
            op::WRITE_16 => rw!(Write16),
            op::ORWRITE_16 => rw!(OrWrite16),
            op::WRITE_AND_VERIFY_10 => verify!(WriteAndVerify10),
            op::WRITE_AND_VERIFY_12 => verify!(WriteAndVerify12),
            op::WRITE_AND_VERIFY_16 => verify!(WriteAndVerify16),
            op::VERIFY_10 => verify!(Verify10),
            op::VERIFY_12 => verify!(Verify12),
            op::VERIFY_16 => verify!(Verify16),
            op::SYNCHRONIZE_CACHE_10 => ranged!(SynchronizeCache10),
            op::SYNCHRONIZE_CACHE_16 => ranged!(SynchronizeCache16),
            op::PRE_FETCH_10 => {
                let x = PreFetch10::parse(cdb)?;
                Xfer::new(x.lba, x.prefetch_length, PreFetch10::PREFETCH_LENGTH)
            }
            op::PRE_FETCH_16 => {
                let x = PreFetch16::parse(cdb)?;
                Xfer::new(x.lba, x.prefetch_length, PreFetch16::PREFETCH_LENGTH)
            }
            op::WRITE_SAME_10 => {
                let x = WriteSame10::parse(cdb)?;
                let f = WriteSame10::NUMBER_OF_LOGICAL_BLOCKS;
                Xfer {
                    anchor: x.anchor,
                    unmap: x.unmap,
                    ..Xfer::new(x.lba, x.number_of_logical_blocks, f)
                }
            }
            // WRITE SAME(16), or an operation code its parse refuses.
            _ => {
                let x = WriteSame16::parse(cdb)?;
                let f = WriteSame16::NUMBER_OF_LOGICAL_BLOCKS;
                Xfer {
                    anchor: x.anchor,
                    unmap: x.unmap,
                    ndob: x.ndob,
                    ..Xfer::new(x.lba, x.number_of_logical_blocks, f)
                }
            }
        })
    }
}

/// TRANSFER LENGTH above the block limits VPD MAXIMUM TRANSFER LENGTH → INVALID FIELD IN CDB
/// (SBC-3 §6.5.3).
pub(crate) fn check_max(dev: &Device, x: &Xfer) -> Result<(), Sense> {
    if x.n > u64::from(dev.hw_max_sectors()) {
        return Err(Sense::invalid_cdb(x.len_field));
    }
    Ok(())
}

pub(crate) fn read(c: &Ctx) -> Outcome {
    let x = Xfer::parse(c.cdb)?;
    let (lba, n) = (x.lba, x.n);
    c.dev.check_range(lba, n)?;
    check_max(c.dev, &x)?;
    let bs = u64::from(c.dev.block_size());
    let total = n * bs;
    // Read only what the initiator accepts, rounded up to whole blocks.
    let room = c.read_room().min(total);
    let blocks = room.div_ceil(bs);
    let mut buf = Vec::new();
    if blocks > 0 {
        // Shared stripes: a READ waits out COMPARE AND WRITE, ORWRITE and WRITE ATOMIC on its
        // range (they hold them exclusive), so it sees all of one or none of it.
        let (off, len) = (lba * bs, blocks * bs);
        c.dev
            .stripes
            .shared(off, len, || {
                c.dev.backstore.read_append(&mut buf, len as usize, off)
            })
            .map_err(|e| io_fail(e, false))?;
    }
    buf.truncate(room as usize);
    Ok(Done {
        status: status::GOOD,
        data: buf,
        want: total,
    })
}

/// The decoded CDB and the Data-Out of a write-class command, after the range and transfer
/// length checks every write makes.
pub(crate) fn write_args<'a>(c: &Ctx<'a>) -> Result<(Xfer, &'a [u8]), Fail> {
    let x = Xfer::parse(c.cdb)?;
    c.dev.check_range(x.lba, x.n)?;
    check_max(c.dev, &x)?;
    let bs = u64::from(c.dev.block_size());
    let data = c.write_data(x.n * bs, bs)?;
    Ok((x, data))
}

/// Write the Data-Out, durably with `durable`, FUA or WCE=0.
pub(crate) fn do_write<'a>(c: &Ctx<'a>, durable: bool) -> Result<(Xfer, &'a [u8]), Fail> {
    let (x, data) = write_args(c)?;
    let bs = u64::from(c.dev.block_size());
    if !data.is_empty() {
        let fua = durable || x.fua || !c.dev.write_cache.load(Ordering::Relaxed);
        let off = x.lba * bs;
        c.dev
            .stripes
            .shared(off, data.len() as u64, || {
                c.dev.backstore.write_at(data, off, fua)
            })
            .map_err(|e| io_fail(e, true))?;
    }
    Ok((x, data))
}

pub(crate) fn write(c: &Ctx) -> Outcome {
    let (x, _) = do_write(c, false)?;
    Ok(Done::consumed(x.n * u64::from(c.dev.block_size())))
}

/// Read `n` blocks from `lba` in bounded chunks, handing each chunk and its byte offset to `f`.
pub(crate) fn read_chunks(
    dev: &Device,
    lba: u64,
    n: u64,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), Fail>,
) -> Result<(), Fail> {
    let bs = u64::from(dev.block_size());
    let per = u64::from(MAX_IO_BYTES) / bs;
    let mut done = 0;
    let mut buf = Vec::new();
    while done < n {
        let k = per.min(n - done);
        buf.resize((k * bs) as usize, 0);
        let off = (lba + done) * bs;
        dev.stripes
            .shared(off, k * bs, || dev.backstore.read_at(&mut buf, off))
            .map_err(|e| io_fail(e, false))?;
        f(done * bs, &buf)?;
        done += k;
    }
    Ok(())
}

pub(crate) fn miscompare(offset: u64) -> Fail {
    Sense::miscompare(asc::MISCOMPARE_DURING_VERIFY_OPERATION)
        .with_information(offset)
        .into()
}

/// Compare `expected` (at byte offset `base` of the Data-Out buffer) with `got`.
pub(crate) fn compare(base: u64, expected: &[u8], got: &[u8]) -> Result<(), Fail> {
    match expected.iter().zip(got).position(|(a, b)| a != b) {
        Some(i) => Err(miscompare(base + i as u64)),
        None => Ok(()),
    }
}

pub(crate) fn write_verify(c: &Ctx) -> Outcome {
    let (bytchk, bytchk_field) = Xfer::parse(c.cdb)?.bytchk.unwrap_or((0, Verify10::BYTCHK));
    if bytchk > 1 {
        return Err(Sense::invalid_cdb(bytchk_field).into());
    }
    // The data must be on the medium before it is verified.
    let (Xfer { lba, n, .. }, data) = do_write(c, true)?;
    let bs = u64::from(c.dev.block_size());
    // Verify what was written (fewer blocks than `n` after a short Data-Out).
    read_chunks(c.dev, lba, data.len() as u64 / bs, |off, got| {
        if bytchk == 1 {
            let end = (off as usize + got.len()).min(data.len());
            compare(off, data.get(off as usize..end).unwrap_or(&[]), got)
        } else {
            Ok(())
        }
    })?;
    Ok(Done::consumed(n * bs))
}

/// VERIFY: BYTCHK 00b reads the medium, 01b compares the Data-Out with it, 11b compares one
/// Data-Out block with every block (SBC-3 §5.27 table 73); MISCOMPARE carries the Data-Out
/// offset of the first difference in INFORMATION.
pub(crate) fn verify(c: &Ctx) -> Outcome {
    let x = Xfer::parse(c.cdb)?;
    let (bytchk, bytchk_field) = x.bytchk.unwrap_or((0, Verify10::BYTCHK));
    let (lba, n) = (x.lba, x.n);
    let bs = u64::from(c.dev.block_size());
    let want = match bytchk {
        0 => 0,
        1 => n * bs,
        3 if n == 0 => 0,
        3 => bs,
        _ => return Err(Sense::invalid_cdb(bytchk_field).into()),
    };
    c.dev.check_range(lba, n)?;
    if bytchk == 1 {
        check_max(c.dev, &x)?;
    }
    let data = c.data_out(want)?;
    read_chunks(c.dev, lba, n, |off, got| match bytchk {
        1 => {
            let end = (off as usize + got.len()).min(data.len());
            compare(off, data.get(off as usize..end).unwrap_or(&[]), got)
        }
        3 => {
            // Every block is compared with the one Data-Out block; INFORMATION is the
            // offset within that block.
            got.chunks(bs as usize)
                .try_for_each(|blk| compare(0, data, blk))
        }
        _ => Ok(()),
    })?;
    Ok(Done::consumed(want))
}

/// COMPARE AND WRITE (SBC-3 §5.2): the Data-Out holds NUMBER OF LOGICAL BLOCKS of verify data
/// then as many of write data. Under the range's exclusive stripe locks the blocks are read and
/// compared with the verify data; any difference ends in MISCOMPARE with INFORMATION = the
/// Data-Out offset of the first differing byte and nothing written, otherwise the write data is
/// written (durably with FUA or WCE=0).
pub(crate) fn compare_and_write(c: &Ctx) -> Outcome {
    let cdb = CompareAndWrite::parse(c.cdb)?;
    let lba = cdb.lba.0;
    let n = u64::from(cdb.number_of_logical_blocks.0);
    let n_field = CompareAndWrite::NUMBER_OF_LOGICAL_BLOCKS;
    if n > u64::from(c.dev.max_caw_blocks()) {
        return Err(Sense::invalid_cdb(n_field).into());
    }
    c.dev.check_range(lba, n)?;
    let bs = u64::from(c.dev.block_size());
    let len = n * bs;
    // The Data-Out must be exactly both halves: a partial compare-and-write has no meaning.
    // A different length contradicts NUMBER OF LOGICAL BLOCKS → INVALID FIELD IN CDB pointing
    // at it, nothing done (as LIO rejects any length mismatch of a write CDB; this also catches
    // initiators whose block count wrapped the one-byte field to 0).
    let data = c.data_out(2 * len).map_err(|_| Fail::Check {
        sense: Sense::invalid_cdb(n_field),
        want: Some(2 * len),
    })?;
    // "A NUMBER OF LOGICAL BLOCKS field set to zero specifies that no read operations shall be
    // performed, no logical block data shall be transferred ... not considered an error."
    if n == 0 {
        return Ok(Done::good());
    }
    let (verify, new) = data.split_at(len as usize);
    let fua = cdb.fua || !c.dev.write_cache.load(Ordering::Relaxed);
    let off = lba * bs;
    c.dev.stripes.exclusive(off, len, || {
        let mut cur = vec![0u8; len as usize];
        c.dev
            .backstore
            .read_at(&mut cur, off)
            .map_err(|e| io_fail(e, false))?;
        compare(0, verify, &cur)?;
        c.dev
            .backstore
            .write_at(new, off, fua)
            .map_err(|e| io_fail(e, true))
    })?;
    Ok(Done::consumed(2 * len))
}

/// Bytes WRITE SAME writes per backstore call (and per shared stripe-lock hold).
pub(crate) const WRITE_SAME_CHUNK: u64 = 1 << 20;

/// WRITE SAME(10)/(16) (SBC-3 §5.45, §5.46): the one Data-Out block is written to every LBA of
/// the range, in chunks of repeated copies, each under its range's shared stripe locks so a
/// concurrent COMPARE AND WRITE sees either none or all of a chunk.
/// * NUMBER OF LOGICAL BLOCKS 0: INVALID FIELD IN CDB while WSNZ (`emulate_wsnz`, VPD B0h);
///   otherwise "to the end of the medium" (an LBA past the end is LBA OUT OF RANGE first).
///   Either way more than MAXIMUM WRITE SAME LENGTH is INVALID FIELD IN CDB.
/// * UNMAP (with `emulate_tpws`): the blocks are deallocated whatever the data block holds,
///   as LIO does (SBC-3 lets the device server deallocate when UNMAP is one; libiscsi's
///   WriteSame*.UnmapUntilEnd sends 0xFF with UNMAP and expects LBPRZ zeroes back).
/// * NDOB (WRITE SAME(16)): no Data-Out; the data block is zeroes.
/// * ANCHOR: anchored blocks are not offered (ANC_SUP=0) → INVALID FIELD IN CDB.
/// * The obsolete PBDATA/LBDATA and WRPROTECT are outside the CDB usage data and rejected by
///   `ops::validate` with their bit pointer, as are ANCHOR/UNMAP/NDOB without `emulate_tpws`.
///
/// The Data-Out must be exactly one block (none with NDOB).
pub(crate) fn write_same(c: &Ctx) -> Outcome {
    let x = Xfer::parse(c.cdb)?;
    let (lba, mut n, ndob, unmap) = (x.lba, x.n, x.ndob, x.unmap);
    if x.anchor {
        // ANCHOR lies at the same place in both forms.
        return Err(Sense::invalid_cdb(WriteSame10::ANCHOR).into());
    }
    let max = u64::from(c.dev.max_write_same_blocks());
    if n == 0 {
        if c.dev.wsnz() {
            return Err(Sense::invalid_cdb(x.len_field).into());
        }
        c.dev.check_range(lba, 0)?;
        n = c.dev.blocks().saturating_sub(lba);
    }
    // MAXIMUM WRITE SAME LENGTH 0 means "no limit reported" (SBC-3 §6.5.3).
    if max != 0 && n > max {
        return Err(Sense::invalid_cdb(x.len_field).into());
    }
    c.dev.check_range(lba, n)?;
    let bs = u64::from(c.dev.block_size());
    let zeroes;
    let (block, want): (&[u8], u64) = if ndob {
        c.data_out(0)?;
        zeroes = vec![0u8; bs as usize];
        (&zeroes, 0)
    } else {
        (c.data_out(bs)?, bs)
    };
    if n == 0 {
        return Ok(Done::consumed(want));
    }
    if unmap {
        crate::cmd::thin::deallocate(c.dev, lba, n)?;
        return Ok(Done::consumed(want));
    }
    let per = (WRITE_SAME_CHUNK / bs).clamp(1, n);
    let pattern = block.repeat(per as usize);
    let fua = !c.dev.write_cache.load(Ordering::Relaxed);
    let mut done = 0;
    while done < n {
        let k = per.min(n - done);
        let piece = pattern.get(..(k * bs) as usize).unwrap_or(&pattern);
        let off = (lba + done) * bs;
        c.dev
            .stripes
            .shared(off, k * bs, || c.dev.backstore.write_at(piece, off, fua))
            .map_err(|e| io_fail(e, true))?;
        done += k;
    }
    Ok(Done::consumed(want))
}

/// PRE-FETCH: reads the range into the backstore's cache (the page cache for fileio).
/// CONDITION MET when the whole range was fetched, GOOD when it exceeded what one fetch
/// covers (SBC-3 §5.4: "not enough cache").
pub(crate) fn pre_fetch(c: &Ctx) -> Outcome {
    let Xfer { lba, n, .. } = Xfer::parse(c.cdb)?;
    c.dev.check_range(lba, n)?;
    // Saturating: the LU may have shrunk since the range check (live resize).
    let n = if n == 0 {
        c.dev.blocks().saturating_sub(lba)
    } else {
        n
    };
    let bs = u64::from(c.dev.block_size());
    let per = u64::from(MAX_IO_BYTES) / bs;
    read_chunks(c.dev, lba, n.min(per), |_, _| Ok(()))?;
    let mut d = Done::good();
    if n <= per {
        d.status = status::CONDITION_MET;
    }
    Ok(d)
}

pub(crate) fn sync_cache(c: &Ctx) -> Outcome {
    let Xfer { lba, n, .. } = Xfer::parse(c.cdb)?;
    c.dev.check_range(lba, n)?;
    c.dev.backstore.flush().map_err(|e| io_fail(e, true))?;
    Ok(Done::good())
}

/// SBC-3 §5.15: with PMI=0 the LOGICAL BLOCK ADDRESS field (`lba_field`) shall be zero.
fn check_pmi(pmi: bool, lba: Lba, lba_field: Field) -> Result<(), Sense> {
    if !pmi && lba.0 != 0 {
        return Err(Sense::invalid_cdb_field(lba_field.byte, None));
    }
    Ok(())
}

pub(crate) fn read_capacity_10(c: &Ctx) -> Outcome {
    let cdb = ReadCapacity10::parse(c.cdb)?;
    check_pmi(cdb.pmi, cdb.lba, ReadCapacity10::LBA)?;
    let last = c.dev.blocks().saturating_sub(1);
    let mut d = Vec::with_capacity(8);
    d.extend_from_slice(&u32::try_from(last).unwrap_or(u32::MAX).to_be_bytes());
    d.extend_from_slice(&c.dev.block_size().to_be_bytes());
    Ok(Done::data(d, 8))
}

pub(crate) fn read_capacity_16(c: &Ctx) -> Outcome {
    let cdb = ReadCapacity16::parse(c.cdb)?;
    check_pmi(cdb.pmi, cdb.lba, ReadCapacity16::LBA)?;
    let alloc = u64::from(cdb.allocation_length);
    let bs = c.dev.block_size();
    let mut d = vec![0u8; 32];
    d[..8].copy_from_slice(&c.dev.blocks().saturating_sub(1).to_be_bytes());
    d[8..12].copy_from_slice(&bs.to_be_bytes());
    let hw = c.dev.backstore.hw_block_size();
    if hw > bs && hw / bs * bs == hw {
        // LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT
        d[13] = (hw / bs).trailing_zeros() as u8;
    }
    if c.dev.thin() {
        d[14] |= 0x80; // LBPME
        if c.dev.lbprz() {
            d[14] |= 0x40; // LBPRZ
        }
    }
    Ok(Done::data(d, alloc))
}

#[cfg(test)]
mod tests;
