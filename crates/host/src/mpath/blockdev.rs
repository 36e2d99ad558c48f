//! The multipath LU as an NBD block device ([`BlockDev`]): byte requests become SBC-4
//! commands: READ (16) (§5.16), WRITE (16) with FUA (§5.46), SYNCHRONIZE CACHE (16) (§5.28),
//! UNMAP (§5.30, only when VPD 0xB0/0xB2 offer it) and WRITE SAME (16) with UNMAP off
//! (§5.50). Errors: a request outside the LU or not block-aligned, and ILLEGAL REQUEST
//! LOGICAL BLOCK ADDRESS OUT OF RANGE, are `InvalidInput`; any other failure is EIO with the
//! sense in the message.

use std::fmt;
use std::io;

use ironlun_initiator::scsi::cdb;
use ironlun_initiator::{Bytes, CommandResult};
use ironlun_nbd::BlockDev;
use ironlun_scsi::sense::key;
use ironlun_scsi::status;

use super::lu::MultipathLu;
use crate::HostError;

/// UNMAP (SBC-4 §5.30): the CDB for a parameter list of `param_len` bytes.
pub fn unmap_cdb(param_len: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = 0x42;
    c[7..9].copy_from_slice(&param_len.to_be_bytes());
    c
}

/// The UNMAP parameter list with one block descriptor (§5.30.2).
pub fn unmap_params(lba: u64, blocks: u32) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    p[0..2].copy_from_slice(&22u16.to_be_bytes());
    p[2..4].copy_from_slice(&16u16.to_be_bytes());
    p[8..16].copy_from_slice(&lba.to_be_bytes());
    p[16..20].copy_from_slice(&blocks.to_be_bytes());
    p
}

/// WRITE SAME (16) (§5.50) of `blocks` blocks at `lba`, UNMAP bit off (the blocks are
/// written with the one block of data sent).
pub fn write_same16_cdb(lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x93;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// A READ (16) or WRITE (16) named for messages: formatted only when one is needed.
struct Rw {
    op: &'static str,
    lba: u64,
    blocks: u32,
}

impl fmt::Display for Rw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at LBA {}, {} blocks", self.op, self.lba, self.blocks)
    }
}

/// A command's outcome as an NBD request's result (module docs).
pub fn outcome(r: &CommandResult, what: &(dyn fmt::Display + Sync)) -> io::Result<()> {
    if r.status == status::GOOD {
        return Ok(());
    }
    let msg = format!(
        "{what}: {}",
        crate::error::scsi_failure(r.status, r.sense.as_ref())
    );
    let lba_range = r
        .sense
        .is_some_and(|s| s.key == key::ILLEGAL_REQUEST && s.asc.asc == 0x21 && s.asc.ascq == 0);
    let kind = if lba_range {
        io::ErrorKind::InvalidInput
    } else {
        io::ErrorKind::Other
    };
    Err(io::Error::new(kind, msg))
}

fn eio(e: HostError) -> io::Error {
    io::Error::other(e.0)
}

impl MultipathLu {
    /// `(lba, blocks)` of a byte range, or `InvalidInput` if it is not inside the LU on block
    /// boundaries.
    fn range(&self, offset: u64, len: u64) -> io::Result<(u64, u64)> {
        let bs = u64::from(self.block_size());
        let size = self.blocks() * bs;
        let end = offset.checked_add(len);
        if !offset.is_multiple_of(bs) || !len.is_multiple_of(bs) || end.is_none_or(|e| e > size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "request at byte {offset} of {len} bytes: outside the LU ({size} bytes) or \
                     not a multiple of the block size {bs}"
                ),
            ));
        }
        Ok((offset / bs, len / bs))
    }

    async fn run(
        &self,
        cdb: &[u8],
        data: Option<Bytes>,
        alloc: u32,
        what: &(dyn fmt::Display + Sync),
    ) -> io::Result<CommandResult> {
        let r = self.execute(cdb, data, alloc, what).await.map_err(eio)?;
        outcome(&r, what)?;
        Ok(r)
    }
}

impl BlockDev for MultipathLu {
    fn size(&self) -> u64 {
        self.blocks() * u64::from(self.block_size())
    }

    fn block_size(&self) -> u32 {
        MultipathLu::block_size(self)
    }

    fn max_request(&self) -> u32 {
        self.limits.max_request
    }

    fn can_trim(&self) -> bool {
        self.limits.unmap
    }

    fn can_write_zeroes(&self) -> bool {
        true
    }

    async fn read(&self, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        let (lba, n) = self.range(offset, u64::from(len))?;
        let n = u32::try_from(n).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let what = Rw {
            op: "READ (16)",
            lba,
            blocks: n,
        };
        let r = self
            .run(&cdb::read16(lba, n, false), None, len, &what)
            .await?;
        if r.data_in.len() != len as usize {
            return Err(io::Error::other(format!(
                "{what}: {} bytes came back, {len} asked",
                r.data_in.len()
            )));
        }
        // The session's buffer, not a copy, when nothing else holds it.
        Ok(Vec::from(r.data_in))
    }

    async fn write(&self, offset: u64, data: Vec<u8>, fua: bool) -> io::Result<()> {
        let (lba, n) = self.range(offset, data.len() as u64)?;
        let n = u32::try_from(n).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let what = Rw {
            op: "WRITE (16)",
            lba,
            blocks: n,
        };
        self.run(&cdb::write16(lba, n, fua), Some(data.into()), 0, &what)
            .await
            .map(|_| ())
    }

    async fn flush(&self) -> io::Result<()> {
        self.run(&cdb::sync_cache16(0, 0), None, 0, &"SYNCHRONIZE CACHE (16)")
            .await
            .map(|_| ())
    }

    async fn trim(&self, offset: u64, len: u32) -> io::Result<()> {
        if !self.limits.unmap {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the LU does not offer UNMAP (VPD 0xB0/0xB2)",
            ));
        }
        let (mut lba, mut left) = self.range(offset, u64::from(len))?;
        let step = u64::from(self.limits.max_unmap_blocks.max(1));
        while left > 0 {
            let n = left.min(step);
            let n32 = u32::try_from(n).unwrap_or(u32::MAX);
            let p = unmap_params(lba, n32);
            let what = format!("UNMAP at LBA {lba}, {n} blocks");
            self.run(&unmap_cdb(24), Some(p.into()), 0, &what).await?;
            lba += n;
            left -= n;
        }
        Ok(())
    }

    async fn write_zeroes(&self, offset: u64, len: u32, fua: bool) -> io::Result<()> {
        let (mut lba, mut left) = self.range(offset, u64::from(len))?;
        let cap = match self.limits.max_write_same_blocks {
            0 => u64::from(u32::MAX),
            m => m.min(u64::from(u32::MAX)),
        };
        let zero = Bytes::from(vec![0u8; self.block_size() as usize]);
        while left > 0 {
            let n = left.min(cap);
            let n32 = u32::try_from(n).unwrap_or(u32::MAX);
            let what = format!("WRITE SAME (16) at LBA {lba}, {n} blocks");
            self.run(&write_same16_cdb(lba, n32), Some(zero.clone()), 0, &what)
                .await?;
            lba += n;
            left -= n;
        }
        if fua {
            self.flush().await?;
        }
        Ok(())
    }
}
