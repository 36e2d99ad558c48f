//! `rd_mcp`: a RAM disk. Unlike LIO's rd_mcp, which allocates every page when the device is
//! configured, memory here is taken lazily in fixed chunks on the first non-zero write to them,
//! so a large RAM disk costs nothing until used. Never-written chunks read as zeroes.
//!
//! Concurrency: a two-level table (groups of chunks, each group created once via `OnceLock`)
//! and one reader-writer lock per 64 KiB chunk. The table itself sits behind one reader-writer
//! lock that I/O takes shared (readers never wait for each other) and only [`Backstore::resize`]
//! takes exclusive, so a resize waits for I/O in flight and never pulls a chunk from under it.

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
type Group = OnceLock<Box<[Chunk]>>;

/// A lazily allocated RAM-backed store of a fixed capacity.
pub struct RamDisk {
    /// Capacity in bytes; changes only under the `groups` write lock.
    size: AtomicU64,
    groups: RwLock<Vec<Group>>,
    allocated_chunks: AtomicU64,
}

impl std::fmt::Debug for RamDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RamDisk")
            .field("size", &self.size())
            .field("allocated_bytes", &self.allocated_bytes())
            .finish()
    }
}

impl RamDisk {
    /// Creates a RAM disk of `size` bytes (nonzero, a multiple of 512). Takes almost no memory
    /// until written.
    pub fn new(size: u64) -> Result<Self, CreateError> {
        check_size(None, size, RAMDISK_BLOCK)?;
        let groups =
            Self::group_count(size).ok_or(CreateError::SizeUnaddressable { path: None, size })?;
        let mut table = Vec::new();
        table
            .try_reserve_exact(groups)
            .map_err(|_| CreateError::SizeUnaddressable { path: None, size })?;
        table.resize_with(groups, OnceLock::new);
        Ok(Self {
            size: AtomicU64::new(size),
            groups: RwLock::new(table),
            allocated_chunks: AtomicU64::new(0),
        })
    }

    /// Groups needed to address `size` bytes, if that fits this machine's `usize`.
    fn group_count(size: u64) -> Option<usize> {
        let chunks = size.div_ceil(RAMDISK_CHUNK as u64);
        usize::try_from(chunks.div_ceil(CHUNKS_PER_GROUP as u64)).ok()
    }

    /// Bytes of RAM currently holding data (a multiple of [`RAMDISK_CHUNK`]).
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_chunks.load(Ordering::Relaxed) * RAMDISK_CHUNK as u64
    }

    /// The chunk holding byte `off`, if its group exists.
    fn chunk(groups: &[Group], off: u64) -> Option<&Chunk> {
        let (group, index) = Self::locate(off);
        groups.get(group)?.get()?.get(index)
    }

    /// The chunk holding byte `off`, creating its group if needed.
    fn chunk_or_create(groups: &[Group], off: u64) -> Option<&Chunk> {
        let (group, index) = Self::locate(off);
        let slot = groups.get(group)?;
        let chunks =
            slot.get_or_init(|| (0..CHUNKS_PER_GROUP).map(|_| RwLock::new(None)).collect());
        chunks.get(index)
    }

    /// Frees every chunk that lies wholly at or past byte `end` and zeroes the tail of the
    /// chunk `end` falls in, so that growing again later shows zeroes there as it does for
    /// any never-written region. The caller holds the table's write lock.
    fn discard_from(&self, groups: &[Group], end: u64) {
        let chunk = RAMDISK_CHUNK as u64;
        if !end.is_multiple_of(chunk) {
            if let Some(c) = Self::chunk(groups, end) {
                if let Some(data) = c.write().as_deref_mut() {
                    let within = (end % chunk) as usize;
                    data[within..].fill(0);
                }
            }
        }
        let first_free = end.div_ceil(chunk);
        let (group, index) = Self::locate(first_free * chunk);
        for (g, slot) in groups.iter().enumerate().skip(group) {
            let Some(chunks) = slot.get() else { continue };
            let from = if g == group { index } else { 0 };
            for c in chunks.iter().skip(from) {
                if c.write().take().is_some() {
                    self.allocated_chunks.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
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

/// Is every byte zero? Eight words at a time: a byte at a time costs five times as much, and
/// every write to a never-written chunk asks this.
fn all_zero(b: &[u8]) -> bool {
    let mut blocks = b.chunks_exact(64);
    for block in &mut blocks {
        let mut any = 0u64;
        for word in block.chunks_exact(8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            any |= u64::from_ne_bytes(w);
        }
        if any != 0 {
            return false;
        }
    }
    blocks.remainder().iter().all(|&x| x == 0)
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
        self.size.load(Ordering::Acquire)
    }

    fn hw_block_size(&self) -> u32 {
        RAMDISK_BLOCK
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let groups = self.groups.read();
        check_range(buf.len(), off, self.size())?;
        let mut done = 0usize;
        for (at, within, n) in Self::pieces(off, buf.len()) {
            let dst = &mut buf[done..done + n];
            match Self::chunk(&groups, at) {
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

    fn read_append(&self, out: &mut Vec<u8>, len: usize, off: u64) -> io::Result<()> {
        let groups = self.groups.read();
        check_range(len, off, self.size())?;
        out.reserve(len);
        for (at, within, n) in Self::pieces(off, len) {
            match Self::chunk(&groups, at) {
                Some(chunk) => match chunk.read().as_deref() {
                    Some(data) => out.extend_from_slice(&data[within..within + n]),
                    None => out.resize(out.len() + n, 0),
                },
                None => out.resize(out.len() + n, 0),
            }
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], off: u64, _fua: bool) -> io::Result<()> {
        let groups = self.groups.read();
        check_range(buf.len(), off, self.size())?;
        let mut done = 0usize;
        for (at, within, n) in Self::pieces(off, buf.len()) {
            let src = &buf[done..done + n];
            done += n;
            let chunk = match Self::chunk(&groups, at) {
                Some(chunk) => chunk,
                // Zeroes over a never-written region change nothing: keep it unallocated.
                None if all_zero(src) => continue,
                None => Self::chunk_or_create(&groups, at)
                    .ok_or_else(|| io::Error::other("ramdisk: chunk table out of range"))?,
            };
            let mut guard = chunk.write();
            if guard.is_none() {
                if all_zero(src) {
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

    fn supports_unmap(&self) -> bool {
        true
    }

    fn unmap_zeroes(&self) -> bool {
        true
    }

    fn unmap_granularity(&self) -> u64 {
        RAMDISK_CHUNK as u64
    }

    /// Frees every chunk the range covers whole (or up to the end of the disk) and zeroes the
    /// covered part of the others; a chunk left all zeroes is freed too.
    fn unmap(&self, off: u64, len: u64) -> io::Result<()> {
        let groups = self.groups.read();
        let size = self.size();
        crate::sys::check_span(off, len, size)?;
        let mut at = off;
        let end = off + len;
        while at < end {
            let within = (at % RAMDISK_CHUNK as u64) as usize;
            let n = ((RAMDISK_CHUNK - within) as u64).min(end - at) as usize;
            let whole = within == 0 && (n == RAMDISK_CHUNK || at + n as u64 == size);
            if let Some(chunk) = Self::chunk(&groups, at) {
                let mut guard = chunk.write();
                let free = match guard.as_deref_mut() {
                    Some(_) if whole => true,
                    Some(data) => {
                        data[within..within + n].fill(0);
                        all_zero(data)
                    }
                    None => false,
                };
                if free && guard.take().is_some() {
                    self.allocated_chunks.fetch_sub(1, Ordering::Relaxed);
                }
            }
            at += n as u64;
        }
        Ok(())
    }

    fn provisioning(&self, off: u64, len: u64, max: usize) -> io::Result<Vec<crate::Extent>> {
        use crate::Provisioning::{Deallocated, Mapped};
        let groups = self.groups.read();
        crate::sys::check_span(off, len, self.size())?;
        let chunk = RAMDISK_CHUNK as u64;
        let group_bytes = chunk * CHUNKS_PER_GROUP as u64;
        let end = off + len;
        let mut out = Vec::new();
        let mut at = off;
        while at < end && out.len() <= max.max(1) {
            let (group, _) = Self::locate(at);
            let (step, state) = match groups.get(group).and_then(|g| g.get()) {
                // A group never touched: skip all of it at once.
                None => (group_bytes - at % group_bytes, Deallocated),
                Some(_) => {
                    let mapped = Self::chunk(&groups, at).is_some_and(|c| c.read().is_some());
                    (
                        chunk - at % chunk,
                        if mapped { Mapped } else { Deallocated },
                    )
                }
            };
            let n = step.min(end - at);
            crate::sys::push_extent(&mut out, at, n, state);
            at += n;
        }
        out.truncate(max.max(1));
        Ok(out)
    }

    /// RAM has no cache to flush; data lives as long as the process.
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn write_cache(&self) -> bool {
        false
    }

    fn never_blocks(&self) -> bool {
        true
    }

    /// Grows or shrinks the chunk table; shrinking frees the chunks past the new end.
    fn resize(&self, new_size: u64) -> io::Result<u64> {
        check_size(None, new_size, RAMDISK_BLOCK).map_err(crate::sys::invalid)?;
        let too_big = || {
            crate::sys::invalid(CreateError::SizeUnaddressable {
                path: None,
                size: new_size,
            })
        };
        let count = Self::group_count(new_size).ok_or_else(too_big)?;
        let mut groups = self.groups.write();
        let old = self.size();
        if new_size < old {
            self.discard_from(&groups, new_size);
            groups.truncate(count);
            groups.shrink_to_fit();
        } else if count > groups.len() {
            let more = count - groups.len();
            groups.try_reserve_exact(more).map_err(|_| too_big())?;
            groups.resize_with(count, OnceLock::new);
        }
        self.size.store(new_size, Ordering::Release);
        Ok(new_size)
    }

    fn allocated(&self) -> Option<u64> {
        Some(self.allocated_bytes())
    }

    fn info(&self) -> String {
        format!(
            "rd_mcp size={} allocated={} chunk={}",
            self.size(),
            self.allocated_bytes(),
            RAMDISK_CHUNK
        )
    }
}
