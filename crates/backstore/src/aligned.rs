//! Memory-aligned bounce buffers for O_DIRECT, which needs buffer addresses, offsets and lengths
//! aligned to the device's logical block size. Callers' buffers (e.g. from `bytes`) usually are
//! not, so unaligned I/O is staged through a small pool of aligned buffers. Alignment is found
//! from an anonymous mapping (page-aligned), else with `align_offset` inside an over-allocated
//! `Vec`.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

/// Alignment and size of every bounce buffer. 4096 covers 512- and 4096-byte devices.
pub(crate) const BOUNCE_ALIGN: usize = 4096;
/// Bytes per bounce buffer; larger I/Os are staged in pieces of this size.
pub(crate) const BOUNCE_SIZE: usize = 1024 * 1024;
/// Pool shards, so concurrent I/Os rarely contend on one mutex.
const SHARDS: usize = 8;
/// Buffers kept per shard; more are freed on return.
const KEEP_PER_SHARD: usize = 4;

/// A `BOUNCE_SIZE`-byte window aligned to `BOUNCE_ALIGN`: an anonymous mapping (page-aligned;
/// see [`crate::sys::AnonMap`]), or, if mapping fails, a window inside an over-allocated `Vec`.
pub(crate) enum AlignedBuf {
    Mapped(crate::sys::AnonMap),
    Heap { storage: Vec<u8>, start: usize },
}

impl AlignedBuf {
    fn new() -> Self {
        if let Ok(m) = crate::sys::AnonMap::new(BOUNCE_SIZE) {
            return AlignedBuf::Mapped(m);
        }
        let storage = vec![0u8; BOUNCE_SIZE + BOUNCE_ALIGN];
        let start = storage.as_ptr().align_offset(BOUNCE_ALIGN);
        // align_offset on a u8 pointer always succeeds and is < BOUNCE_ALIGN.
        let start = if start < BOUNCE_ALIGN { start } else { 0 };
        AlignedBuf::Heap { storage, start }
    }

    /// The first `len` bytes of the aligned window (`len` ≤ `BOUNCE_SIZE`).
    pub(crate) fn slice_mut(&mut self, len: usize) -> &mut [u8] {
        let len = len.min(BOUNCE_SIZE);
        match self {
            AlignedBuf::Mapped(m) => &mut m.as_mut_slice()[..len],
            AlignedBuf::Heap { storage, start } => &mut storage[*start..*start + len],
        }
    }
}

pub(crate) struct BouncePool {
    shards: [Mutex<Vec<AlignedBuf>>; SHARDS],
    next: AtomicUsize,
}

impl BouncePool {
    pub(crate) fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(Vec::new())),
            next: AtomicUsize::new(0),
        }
    }

    /// Takes a buffer (from any shard that has one without waiting, else freshly allocated).
    pub(crate) fn take(&self) -> AlignedBuf {
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..SHARDS {
            if let Some(mut shard) = self.shards[(first + i) % SHARDS].try_lock() {
                if let Some(buf) = shard.pop() {
                    return buf;
                }
            }
        }
        AlignedBuf::new()
    }

    /// Returns a buffer to the pool (or frees it if the pool is full).
    pub(crate) fn give(&self, buf: AlignedBuf) {
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..SHARDS {
            if let Some(mut shard) = self.shards[(first + i) % SHARDS].try_lock() {
                if shard.len() < KEEP_PER_SHARD {
                    shard.push(buf);
                    return;
                }
            }
        }
    }
}

/// Is `buf` usable for O_DIRECT as is with the given alignment?
pub(crate) fn is_aligned(buf: &[u8], align: usize) -> bool {
    buf.as_ptr().align_offset(align) == 0 && buf.len().is_multiple_of(align)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_buffers_are_aligned_zeroed_and_reused() {
        let pool = BouncePool::new();
        let mut b = pool.take();
        let s = b.slice_mut(BOUNCE_SIZE);
        assert_eq!(s.len(), BOUNCE_SIZE);
        assert!(is_aligned(s, BOUNCE_ALIGN));
        assert!(s.iter().all(|&x| x == 0));
        s[BOUNCE_SIZE - 1] = 7;
        assert!(matches!(b, AlignedBuf::Mapped(_)));
        assert_eq!(b.slice_mut(10).len(), 10);
        pool.give(b);
        let mut again = pool.take();
        assert_eq!(
            again.slice_mut(BOUNCE_SIZE)[BOUNCE_SIZE - 1],
            7,
            "not reused"
        );
    }
}
