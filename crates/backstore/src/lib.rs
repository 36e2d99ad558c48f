//! Backstores: where a logical unit's blocks live. One trait, three kinds (LIO names):
//! `rd_mcp` (RAM), `fileio` (regular file or block device path), `iblock` (block device, O_DIRECT).

use std::io;

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
    /// Write `buf` at byte offset `off`. With `fua`, the data is durable when this returns.
    fn write_at(&self, buf: &[u8], off: u64, fua: bool) -> io::Result<()>;
    /// Make every completed write durable (SYNCHRONIZE CACHE; fdatasync).
    fn flush(&self) -> io::Result<()>;
    /// True if completed writes may sit in a volatile cache (fileio write-back).
    /// Reported to initiators as the caching mode page WCE bit.
    fn write_cache(&self) -> bool;
    /// Is the backing store read-only (opened without write access)?
    fn read_only(&self) -> bool {
        false
    }
}
