//! Striped range locks that make COMPARE AND WRITE atomic (SBC-3 §5.2: the read, compare and
//! write "shall be performed as an uninterrupted series of actions" with respect to every other
//! command that writes the same logical blocks, from any I_T nexus).
//!
//! The LU's byte space is cut into regions of [`REGION_BYTES`]; region `r` maps to stripe
//! `r % STRIPES`. Every command that changes the medium holds the stripes its range touches
//! *shared* while it writes, and every command that reads the medium while it reads;
//! COMPARE AND WRITE, ORWRITE and WRITE ATOMIC hold theirs *exclusive* from before their read
//! until after their write, so no read sees one of them half done (SBC-4 asks that of atomic
//! writes: all of the data or none of it). Stripes are always taken in ascending index order, so two commands
//! never wait for each other crosswise (no deadlock), whatever their ranges.
//!
//! The guards live on the stack of a small recursion (one frame per stripe), so a write
//! allocates nothing: a 4 KiB write takes one, at most two, uncontended read locks. The stripes
//! themselves (2 KiB) are made by the LU's first command that touches its medium: most LUs of
//! a target with thousands of them never see one.

use std::iter::Chain;
use std::ops::Range;
use std::sync::OnceLock;

use parking_lot::RwLock;

/// Number of stripes per LU.
pub(crate) const STRIPES: usize = 256;
/// Bytes of LU address space per region (a power of two).
pub(crate) const REGION_BYTES: u64 = 64 << 10;

/// The stripe locks of one LU, made on first use.
#[derive(Default)]
pub(crate) struct StripeLocks {
    stripes: OnceLock<Box<[RwLock<()>; STRIPES]>>,
}

/// The stripe indices covering bytes `[off, off + len)`, ascending.
fn indices(off: u64, len: u64) -> Chain<Range<usize>, Range<usize>> {
    let n = STRIPES as u64;
    let first = off / REGION_BYTES;
    let last = off.saturating_add(len.max(1) - 1) / REGION_BYTES;
    if last - first + 1 >= n {
        return (0..STRIPES).chain(STRIPES..STRIPES);
    }
    // Both below STRIPES, so the casts are lossless.
    let (a, b) = ((first % n) as usize, (last % n) as usize);
    if a <= b {
        (a..b + 1).chain(STRIPES..STRIPES)
    } else {
        // The range wraps around the stripe array: low indices first keeps the order ascending.
        (0..b + 1).chain(a..STRIPES)
    }
}

impl StripeLocks {
    fn locks(&self) -> &[RwLock<()>; STRIPES] {
        self.stripes
            .get_or_init(|| Box::new([const { RwLock::new(()) }; STRIPES]))
    }

    /// Run `f` while holding the stripes of `[off, off + len)` shared (a plain write).
    pub(crate) fn shared<R>(&self, off: u64, len: u64, f: impl FnOnce() -> R) -> R {
        self.nest(indices(off, len), false, f)
    }

    /// Run `f` while holding the stripes of `[off, off + len)` exclusive (COMPARE AND WRITE).
    pub(crate) fn exclusive<R>(&self, off: u64, len: u64, f: impl FnOnce() -> R) -> R {
        self.nest(indices(off, len), true, f)
    }

    fn nest<I: Iterator<Item = usize>, R>(
        &self,
        mut it: I,
        exclusive: bool,
        f: impl FnOnce() -> R,
    ) -> R {
        let Some(i) = it.next() else {
            return f();
        };
        let Some(lock) = self.locks().get(i) else {
            return self.nest(it, exclusive, f);
        };
        if exclusive {
            let _g = lock.write();
            self.nest(it, exclusive, f)
        } else {
            let _g = lock.read();
            self.nest(it, exclusive, f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(off: u64, len: u64) -> Vec<usize> {
        indices(off, len).collect()
    }

    #[test]
    fn small_ranges_take_one_or_two_stripes() {
        assert_eq!(list(0, 4096), vec![0]);
        assert_eq!(list(REGION_BYTES - 512, 1024), vec![0, 1]);
        assert_eq!(list(REGION_BYTES * 3 + 7, 0), vec![3]);
    }

    #[test]
    fn wrapping_ranges_are_ascending_and_huge_ranges_take_all() {
        let last = REGION_BYTES * (STRIPES as u64 - 1);
        assert_eq!(list(last, REGION_BYTES + 1), vec![0, STRIPES - 1]);
        assert_eq!(list(0, REGION_BYTES * STRIPES as u64).len(), STRIPES);
        let all = list(5, u64::MAX);
        assert_eq!(all, (0..STRIPES).collect::<Vec<_>>());
    }

    #[test]
    fn exclusive_excludes_shared_on_an_aliasing_region() {
        let l = StripeLocks::default();
        // Region STRIPES aliases stripe 0: a write there must wait for a CAW on region 0.
        let alias = REGION_BYTES * STRIPES as u64;
        l.exclusive(0, 512, || {
            assert!(l.locks()[0].try_read().is_none());
            assert!(l.locks()[1].try_read().is_some());
        });
        l.shared(alias, 512, || assert!(l.locks()[0].try_write().is_none()));
    }
}
