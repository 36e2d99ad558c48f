//! Backstores: where a logical unit's blocks live. One trait, three kinds (LIO names):
//! `rd_mcp` (RAM), `fileio` (regular file or block device path), `iblock` (block device, O_DIRECT).
//!
//! Capacity and block-size rules follow SBC-3 §4.4 (logical blocks; capacity is a whole number
//! of them) and the creation parameters follow rtslib's saveconfig plugin fields
//! (fileio: dev/size/write_back; block: dev/readonly; ramdisk: size).
//!
//! Capacity is live: [`Backstore::resize`] and [`Backstore::rescan`] change it while I/O runs
//! (the engine then raises CAPACITY DATA HAS CHANGED, SBC-3 §4.9 / SPC-4 §5.14). Per kind:
//! * `rd_mcp`: grow or shrink to any size (shrinking frees the dropped chunks).
//! * `fileio` on a regular file: `set_len` then fsync; shrinking discards the data past the new
//!   end, so the control plane asks for it explicitly (`shrink=1`).
//! * on a block device (`iblock`, `fileio`): the device is resized underneath (lvextend,
//!   `losetup -c`); `rescan` adopts its new capacity, `resize(n)` does the same but only if the
//!   device now has `n` bytes (fileio may also export a prefix of it, as at creation).
//!
//! Logical block provisioning (SBC-3 §4.7): [`Backstore::unmap`] gives a byte range's space
//! back and [`Backstore::provisioning`] tells which ranges hold space. Per kind:
//! * `fileio` on a regular file: `fallocate(PUNCH_HOLE | KEEP_SIZE)`; status from
//!   `lseek(SEEK_DATA / SEEK_HOLE)`; holes read as zeroes.
//! * `fileio` / `iblock` on a block device: `BLKDISCARD` when the queue accepts discards;
//!   zeroes are promised only for a loop device (its discard punches the backing file);
//!   status is "mapped" (a block device does not say).
//! * `rd_mcp`: whole chunks are freed, partial ones zeroed; status from allocated chunks.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

mod aligned;
mod error;
mod fileio;
mod iblock;
pub mod prealloc;
pub mod pscsi;
mod ramdisk;
mod size;
mod sys;

pub use error::CreateError;
pub use fileio::{FileIo, FileIoOptions};
pub use iblock::{IBlock, IBlockOptions};
pub use pscsi::{Passthrough, Pscsi, PscsiOptions};
pub use ramdisk::{RamDisk, RAMDISK_CHUNK};
pub use size::parse_size;

/// Provisioning status of an extent (SBC-3 §4.7.1): holding space or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioning {
    Mapped,
    Deallocated,
}

/// A byte extent and its provisioning status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub off: u64,
    pub len: u64,
    pub state: Provisioning,
}

fn no_unmap() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "this backstore cannot deallocate blocks",
    )
}

/// Positional block storage. All offsets and lengths are in bytes and are multiples of the
/// LU block size (the engine checks ranges before calling). Implementations are blocking and
/// must be safe to call from many threads at once.
pub trait Backstore: Send + Sync + 'static {
    /// Capacity in bytes.
    fn size(&self) -> u64;
    /// Native block size (512 or 4096 for iblock; 512 default for others).
    fn hw_block_size(&self) -> u32;
    /// Fill `buf` from byte offset `off`. Regions never written read as zeroes.
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()>;
    /// Append `len` bytes read from byte offset `off` to `out`, as [`Self::read_at`] reads them.
    /// On Err `out` is as it was. The default zero-fills the new tail and reads into it; a
    /// backstore that can fill the tail without zeroing it first (one copy, not a memset and a
    /// copy) overrides it.
    fn read_append(&self, out: &mut Vec<u8>, len: usize, off: u64) -> io::Result<()> {
        let start = out.len();
        out.resize(start + len, 0);
        let read = self.read_at(&mut out[start..], off);
        if read.is_err() {
            out.truncate(start);
        }
        read
    }
    /// Write `buf` at byte offset `off`. With `fua`, the data is durable when this returns.
    fn write_at(&self, buf: &[u8], off: u64, fua: bool) -> io::Result<()>;
    /// Make every completed write durable (SYNCHRONIZE CACHE; fdatasync).
    fn flush(&self) -> io::Result<()>;
    /// Reads and writes are memory copies that never wait for a device or the page cache: a
    /// transport may run small ones on its own task instead of handing them to a thread.
    fn never_blocks(&self) -> bool {
        false
    }
    /// True if completed writes may sit in a volatile cache (fileio write-back).
    /// Reported to initiators as the caching mode page WCE bit.
    fn write_cache(&self) -> bool;
    /// Is the backing store read-only (opened without write access)?
    fn read_only(&self) -> bool {
        false
    }
    /// One-line human summary (kind, path, size, mode) for the device's `info` attribute.
    /// Bytes of backing storage in use (a sparse file's allocated blocks, a RAM disk's
    /// allocated chunks); `None` where every byte is always backed (a block device).
    fn allocated(&self) -> Option<u64> {
        None
    }

    fn info(&self) -> String {
        String::new()
    }
    /// Change the capacity to `new_size` bytes (nonzero, a multiple of [`Self::hw_block_size`])
    /// while I/O may be running; returns the new capacity. I/O in flight when the size shrinks
    /// completes first; later I/O past the new end fails. On Err nothing changed.
    fn resize(&self, new_size: u64) -> io::Result<u64> {
        let _ = new_size;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this backstore cannot be resized",
        ))
    }
    /// [`Self::resize`] to `new_size` with the added range's backing space allocated first
    /// (`control size=…,sparse=0`), reporting (bytes done, bytes in all) to `progress`. Only a
    /// fileio on a regular file has space to allocate; elsewhere it is refused.
    fn resize_thick(&self, new_size: u64, progress: &dyn Fn(u64, u64)) -> io::Result<u64> {
        let _ = (new_size, progress);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "sparse=0 is only for fileio on a regular file (nothing to preallocate here)",
        ))
    }
    /// Can [`Self::unmap`] deallocate blocks here (filesystem hole punching, device discard)?
    fn supports_unmap(&self) -> bool {
        false
    }
    /// Do deallocated bytes read back as zeroes (SBC-3 LBPRZ)?
    fn unmap_zeroes(&self) -> bool {
        false
    }
    /// The unit in which deallocation really frees space, in bytes (filesystem block, discard
    /// granularity, RAM chunk); 0 when unknown.
    fn unmap_granularity(&self) -> u64 {
        0
    }
    /// Deallocate `[off, off+len)`. Space not freed whole (a partial granule) is zeroed when
    /// [`Self::unmap_zeroes`] holds, so the range always reads as it promises.
    fn unmap(&self, off: u64, len: u64) -> io::Result<()> {
        let _ = (off, len);
        Err(no_unmap())
    }
    /// Provisioning status of `[off, off+len)` as consecutive extents in order from `off`,
    /// at most `max` of them (the last may then end before `off+len`). A store that cannot
    /// tell reports everything mapped.
    fn provisioning(&self, off: u64, len: u64, max: usize) -> io::Result<Vec<Extent>> {
        sys::check_span(off, len, self.size())?;
        let _ = max;
        Ok(vec![Extent {
            off,
            len,
            state: Provisioning::Mapped,
        }])
    }
    /// A pass-through store (pscsi): the engine sends every command to the device instead
    /// of emulating it.
    fn passthrough(&self) -> Option<&dyn Passthrough> {
        None
    }
    /// Re-read the capacity of the block device underneath and adopt it (for when it was
    /// resized outside: `lvextend`, `losetup -c`); returns the new capacity.
    fn rescan(&self) -> io::Result<u64> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "rescan is only for a block device (use size= to resize)",
        ))
    }
}

/// Creation parameters of any backstore kind, as the control plane holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackstoreSpec {
    /// `core/rd_mcp_N/<dev> size=…`
    RamDisk { size: u64 },
    /// `core/fileio_N/<dev> path=… size=… write_back=…`
    FileIo(FileIoOptions),
    /// `core/iblock_N/<dev> path=/dev/… readonly=…`
    IBlock(IBlockOptions),
    /// `core/pscsi_N/<dev> dev=/dev/sgN|/dev/sdX|H:C:T:L`
    Pscsi(PscsiOptions),
}

impl BackstoreSpec {
    /// LIO's plugin directory prefix for this kind (`core/<kind>_N/`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RamDisk { .. } => "rd_mcp",
            Self::FileIo(_) => "fileio",
            Self::IBlock(_) => "iblock",
            Self::Pscsi(_) => "pscsi",
        }
    }

    /// The backing path, if the kind has one.
    pub fn path(&self) -> Option<&PathBuf> {
        match self {
            Self::RamDisk { .. } | Self::Pscsi(_) => None,
            Self::FileIo(o) => Some(&o.path),
            Self::IBlock(o) => Some(&o.path),
        }
    }

    /// Creates (or opens) the backstore.
    pub fn open(&self) -> Result<Arc<dyn Backstore>, CreateError> {
        Ok(match self {
            Self::RamDisk { size } => Arc::new(RamDisk::new(*size)?),
            Self::FileIo(o) => Arc::new(FileIo::open(o)?),
            Self::IBlock(o) => Arc::new(IBlock::open(o)?),
            Self::Pscsi(o) => Arc::new(Pscsi::open(o)?),
        })
    }
}
