//! `rd_mcp`: a RAM disk. Unlike LIO's rd_mcp, which allocates every page when the device is
//! configured, memory here is taken lazily in fixed chunks on the first non-zero write to them,
//! so a large RAM disk costs nothing until used. Never-written chunks read as zeroes.
//!
//! Concurrency: a two-level table (groups of chunks, each group created once via `OnceLock`)
//! and one reader-writer lock per 64 KiB chunk; there is no lock shared by the whole disk.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use parking_lot::RwLock;

use crate::error::{check_size, CreateError};
use crate::sys::check_range;
use crate::Backstore;

/// Allocation unit of a RAM disk, in bytes.
pub const RAMDISK_CHUNK: usize = 64 * 1024;
/// Chunks per lazily created group (16 MiB of address space per group).
const CHUNKS_PER_GROUP: usize = 256;
/// RAM disks report a 512-byte native block, as LIO's rd_mcp does.
const RAMDISK_BLOCK: u32 = 512;

type Chunk = RwLock<Option<Box<[u8]>>>;

/// A lazily allocated RAM-backed store of a fixed capacity.
pub struct RamDisk {
    size: u64,
    groups: Box<[OnceLock<Box<[Chunk]>>]>,
    allocated_chunks: AtomicU64,
}

impl std::fmt::Debug for RamDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RamDisk")
            .field("size", &self.size)
            .field("allocated_bytes", &self.allocated_bytes())
            .finish()
    }
}

impl RamDisk {
    /// Creates a RAM disk of `size` bytes (nonzero, a multiple of 512). Takes almost no memory
    /// until written.
    pub fn new(size: u64) -> Result<Self, CreateError> {
        check_size(None, size, RAMDISK_BLOCK)?;
        let too_big = || CreateError::SizeUnaddressable { path: None, size };
        let chunks = size.div_ceil(RAMDISK_CHUNK as u64);
        let groups =
            usize::try_from(chunks.div_ceil(CHUNKS_PER_GROUP as u64)).map_err(|_| too_big())?;
        let mut table = Vec::new();
        table.try_reserve_exact(groups).map_err(|_| too_big())?;
        table.resize_with(groups, OnceLock::new);
        Ok(Self {
            size,
            groups: table.into_boxed_slice(),
            allocated_chunks: AtomicU64::new(0),
        })
    }

    /// Bytes of RAM currently holding data (a multiple of [`RAMDISK_CHUNK`]).
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_chunks.load(Ordering::Relaxed) * RAMDISK_CHUNK as u64
    }

    /// The chunk holding byte `off`, if its group exists.
    fn chunk(&self, off: u64) -> Option<&Chunk> {
        let (group, index) = Self::locate(off);
        self.groups.get(group)?.get()?.get(index)
    }

    /// The chunk holding byte `off`, creating its group if needed.
    fn chunk_or_create(&self, off: u64) -> Option<&Chunk> {
        let (group, index) = Self::locate(off);
        let slot = self.groups.get(group)?;
        let chunks =
            slot.get_or_init(|| (0..CHUNKS_PER_GROUP).map(|_| RwLock::new(None)).collect());
        chunks.get(index)
    }

    fn locate(off: u64) -> (usize, usize) {
        let chunk = off / RAMDISK_CHUNK as u64;
        // Both fit in usize: the group count was checked against usize at creation.
        let group = (chunk / CHUNKS_PER_GROUP as u64) as usize;
        let index = (chunk % CHUNKS_PER_GROUP as u64) as usize;
        (group, index)
    }

    /// Splits `[off, off+len)` into per-chunk pieces: (byte offset, offset in chunk, length).
    fn pieces(off: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize)> {
        let mut pos = 0usize;
        std::iter::from_fn(move || {
            if pos >= len {
                return None;
            }
            let at = off + pos as u64;
            let within = (at % RAMDISK_CHUNK as u64) as usize;
            let n = (RAMDISK_CHUNK - within).min(len - pos);
            let piece = (at, within, n);
            pos += n;
            Some(piece)
        })
    }
}

fn allocate_chunk() -> io::Result<Box<[u8]>> {
    let mut v = Vec::new();
    v.try_reserve_exact(RAMDISK_CHUNK).map_err(|_| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            "ramdisk: cannot allocate a chunk",
        )
    })?;
    v.resize(RAMDISK_CHUNK, 0);
    Ok(v.into_boxed_slice())
}

impl Backstore for RamDisk {
    fn size(&self) -> u64 {
        self.size
    }

    fn hw_block_size(&self) -> u32 {
        RAMDISK_BLOCK
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        check_range(buf.len(), off, self.size)?;
        let mut done = 0usize;
        for (at, within, n) in Self::pieces(off, buf.len()) {
            let dst = &mut buf[done..done + n];
            match self.chunk(at) {
                Some(chunk) => match chunk.read().as_deref() {
                    Some(data) => dst.copy_from_slice(&data[within..within + n]),
                    None => dst.fill(0),
                },
                None => dst.fill(0),
            }
            done += n;
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], off: u64, _fua: bool) -> io::Result<()> {
        check_range(buf.len(), off, self.size)?;
        let mut done = 0usize;
        for (at, within, n) in Self::pieces(off, buf.len()) {
            let src = &buf[done..done + n];
            done += n;
            let chunk = match self.chunk(at) {
                Some(chunk) => chunk,
                // Zeroes over a never-written region change nothing: keep it unallocated.
                None if src.iter().all(|b| *b == 0) => continue,
                None => self
                    .chunk_or_create(at)
                    .ok_or_else(|| io::Error::other("ramdisk: chunk table out of range"))?,
            };
            let mut guard = chunk.write();
            if guard.is_none() {
                if src.iter().all(|b| *b == 0) {
                    continue;
                }
                *guard = Some(allocate_chunk()?);
                self.allocated_chunks.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(data) = guard.as_deref_mut() {
                data[within..within + n].copy_from_slice(src);
            }
        }
        Ok(())
    }

    /// RAM has no cache to flush; data lives as long as the process.
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn write_cache(&self) -> bool {
        false
    }

    fn info(&self) -> String {
        format!(
            "rd_mcp size={} allocated={} chunk={}",
            self.size,
            self.allocated_bytes(),
            RAMDISK_CHUNK
        )
    }
}
