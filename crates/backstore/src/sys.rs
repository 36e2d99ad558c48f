//! Thin wrappers over the Linux calls the file-backed stores need: block-device ioctls
//! (`BLKGETSIZE64`, `BLKSSZGET`), positional I/O loops that survive short transfers and EINTR,
//! and the sysfs look-up of a block device's volatile write cache.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// The architectures whose ioctl numbers have a 3-bit direction field (`_IOC_NONE` = 1,
/// `_IOC_READ` = 2 at bit 29) rather than the generic 2-bit one (`_IOC_READ` = 2 at bit 30).
const THREE_BIT_IOC_DIR: bool = cfg!(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "sparc",
    target_arch = "sparc64"
));

/// `_IOR(0x12, 114, size_t)` from `<linux/fs.h>`; the `libc` crate does not export it.
const BLKGETSIZE64: libc::Ioctl = if THREE_BIT_IOC_DIR {
    0x4008_1272
} else {
    0x8008_1272
};

/// `_IO(0x12, 94)` from `<linux/fs.h>`: is the block device read-only? (`_IO` carries no
/// direction bits, except the 1 of `_IOC_NONE` on the 3-bit-direction architectures.)
const BLKROGET: libc::Ioctl = if THREE_BIT_IOC_DIR {
    0x2000_125e
} else {
    0x125e
};

/// What a configured path points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathKind {
    Missing,
    Regular,
    BlockDevice,
    Other,
}

/// Classifies `path`, following symlinks (LIO users commonly give `/dev/disk/by-id/…` links).
pub(crate) fn classify(path: &Path) -> io::Result<PathKind> {
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(PathKind::Regular),
        Ok(m) if m.file_type().is_block_device() => Ok(PathKind::BlockDevice),
        Ok(_) => Ok(PathKind::Other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(PathKind::Missing),
        Err(e) => Err(e),
    }
}

/// Capacity of an open block device in bytes.
pub(crate) fn block_device_size(file: &File) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes exactly one u64 through the pointer, which points at a live,
    // properly aligned local; the fd is owned by `file` and open for the duration of the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

/// Logical block size of an open block device (the unit O_DIRECT I/O must be aligned to).
pub(crate) fn block_device_logical_block_size(file: &File) -> io::Result<u32> {
    let mut lbs: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which points at a live local;
    // the fd is owned by `file` and open for the duration of the call.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            libc::BLKSSZGET,
            &mut lbs as *mut libc::c_int,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    u32::try_from(lbs)
        .ok()
        .filter(|v| v.is_power_of_two() && *v >= 512)
        .ok_or_else(|| io::Error::other(format!("device reports logical block size {lbs}")))
}

/// Is the open block device read-only? Recent kernels let a read-only device be opened for
/// writing and fail the writes later, so the open alone does not tell.
pub(crate) fn block_device_read_only(file: &File) -> io::Result<bool> {
    let mut ro: libc::c_int = 0;
    // SAFETY: BLKROGET writes one int through the pointer, which points at a live local;
    // the fd is owned by `file` and open for the duration of the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKROGET, &mut ro as *mut libc::c_int) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ro != 0)
}

/// What an opened block device offers a backstore: its size in bytes and logical block size.
/// Refuses a device the kernel marks read-only when the backstore wants to write to it.
pub(crate) fn probe_block_device(
    file: &File,
    path: &Path,
    readonly: bool,
) -> Result<(u64, u32), crate::CreateError> {
    use crate::CreateError;
    let size =
        block_device_size(file).map_err(|e| CreateError::from_io(path, "BLKGETSIZE64", e))?;
    let block = block_device_logical_block_size(file)
        .map_err(|e| CreateError::from_io(path, "BLKSSZGET", e))?;
    if !readonly
        && block_device_read_only(file).map_err(|e| CreateError::from_io(path, "BLKROGET", e))?
    {
        return Err(CreateError::ReadOnly {
            path: path.to_path_buf(),
        });
    }
    Ok((size, block))
}

/// Does the block device behind `file` have a volatile write cache? Reads
/// `/sys/dev/block/<maj>:<min>/queue/write_cache` (a partition's queue is its parent's).
/// Unknown counts as "yes": telling an initiator to flush when it need not is only slower.
pub(crate) fn block_device_has_write_cache(file: &File) -> bool {
    let Ok(meta) = file.metadata() else {
        return true;
    };
    let rdev = meta.rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let base = format!("/sys/dev/block/{major}:{minor}");
    for candidate in [
        format!("{base}/queue/write_cache"),
        format!("{base}/../queue/write_cache"),
    ] {
        if let Ok(text) = std::fs::read_to_string(&candidate) {
            return text.trim() != "write through";
        }
    }
    true
}

/// Reads exactly `buf.len()` bytes at `off`, retrying short reads and EINTR. Reading past the
/// end of a regular file yields zeroes: a sparse or externally shortened file still has the
/// configured capacity, and never-written blocks read as zeroes.
pub(crate) fn read_full_at(file: &File, mut buf: &mut [u8], mut off: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, off) {
            Ok(0) => {
                buf.fill(0);
                return Ok(());
            }
            Ok(n) => {
                buf = &mut buf[n..];
                off += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` at `off`, retrying short writes and EINTR.
pub(crate) fn write_full_at(file: &File, mut buf: &[u8], mut off: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write_at(buf, off) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("write at byte {off} made no progress"),
                ))
            }
            Ok(n) => {
                buf = &buf[n..];
                off += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// fdatasync, retried on EINTR.
pub(crate) fn sync_data(file: &File) -> io::Result<()> {
    loop {
        match file.sync_data() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// fsync (data and metadata such as the length), retried on EINTR.
pub(crate) fn sync_all(file: &File) -> io::Result<()> {
    loop {
        match file.sync_all() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// A refused size change as an I/O error carrying the one-line reason.
pub(crate) fn invalid(e: crate::CreateError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

/// Rejects an access outside `[0, size)` so a caller's bug becomes an error, not a panic or a
/// write past the configured capacity.
pub(crate) fn check_range(len: usize, off: u64, size: u64) -> io::Result<()> {
    let end = off.checked_add(len as u64);
    match end {
        Some(end) if end <= size => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("I/O of {len} bytes at byte {off} exceeds capacity {size}"),
        )),
    }
}

/// The error a write to a read-only store returns.
pub(crate) fn read_only_error() -> io::Error {
    io::Error::from_raw_os_error(libc::EROFS)
}

/// `_IO(0x12, 119)` from `<linux/fs.h>`: discard a byte range of a block device. The `_IO`
/// direction bits are 1 (not 0) on the architectures with a 3-bit direction field.
const BLKDISCARD: libc::Ioctl = if THREE_BIT_IOC_DIR {
    0x2000_1277
} else {
    0x1277
};

fn to_off(v: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(v).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("byte offset {v} is too large"),
        )
    })
}

/// Deallocates `[off, off+len)` of a regular file without changing its length
/// (`fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`). Partial filesystem blocks at
/// either end are zeroed instead, so the whole range reads as zeroes afterwards.
pub(crate) fn punch_hole(file: &File, off: u64, len: u64) -> io::Result<()> {
    let (o, l) = (to_off(off)?, to_off(len)?);
    loop {
        // SAFETY: fallocate only reads its integer arguments; the fd is owned by `file` and
        // open for the duration of the call.
        let rc = unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                o,
                l,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Allocates blocks for `[off, off+len)` of a regular file (`fallocate` mode 0, or
/// `FALLOC_FL_KEEP_SIZE` to allocate past the end without changing the length). Data already
/// there is untouched; new blocks read as zeroes. EOPNOTSUPP where the filesystem cannot.
pub(crate) fn allocate(file: &File, off: u64, len: u64, keep_size: bool) -> io::Result<()> {
    let (o, l) = (to_off(off)?, to_off(len)?);
    let mode = if keep_size {
        libc::FALLOC_FL_KEEP_SIZE
    } else {
        0
    };
    loop {
        // SAFETY: fallocate only reads its integer arguments; the fd is owned by `file` and
        // open for the duration of the call.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), mode, o, l) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `lseek(fd, off, whence)` for SEEK_DATA / SEEK_HOLE; `None` when there is no data at or
/// after `off` (ENXIO: `off` is at or past the end of the file, or only a hole follows).
fn seek(file: &File, off: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let o = to_off(off)?;
    // SAFETY: lseek only reads its integer arguments; the fd is owned by `file`. It moves the
    // file position, which nothing here uses (all I/O is positional).
    let rc = unsafe { libc::lseek(file.as_raw_fd(), o, whence) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENXIO) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(rc as u64))
}

/// Start of the first data at or after `off` in a regular file (None: only holes follow).
pub(crate) fn seek_data(file: &File, off: u64) -> io::Result<Option<u64>> {
    seek(file, off, libc::SEEK_DATA)
}

/// Start of the first hole at or after `off` (the end of the file counts as a hole).
pub(crate) fn seek_hole(file: &File, off: u64) -> io::Result<Option<u64>> {
    seek(file, off, libc::SEEK_HOLE)
}

/// Discards `[off, off+len)` of a block device (`BLKDISCARD`). The kernel also drops the
/// range from the page cache, so buffered (fileio) readers see the device's new contents.
pub(crate) fn discard(file: &File, off: u64, len: u64) -> io::Result<()> {
    let range: [u64; 2] = [off, len];
    // SAFETY: BLKDISCARD reads two u64 (start, length) through the pointer, which points at a
    // live local array; the fd is owned by `file` and open for the duration of the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKDISCARD, range.as_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What a block device offers for deallocation, from sysfs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DiscardInfo {
    /// The device accepts discards (`queue/discard_max_bytes` > 0).
    pub supported: bool,
    /// `queue/discard_granularity` in bytes (0 unknown).
    pub granularity: u64,
    /// Discarded blocks are known to read back as zeroes. Only a loop device over a file
    /// promises that (its discard punches a hole in the file); the kernel no longer reports
    /// it for other devices, so we stay conservative.
    pub zeroes: bool,
}

/// Reads `/sys/dev/block/<maj>:<min>/…` for the device behind `file` (a partition's queue
/// limits are its parent's).
pub(crate) fn block_device_discard_info(file: &File) -> DiscardInfo {
    let Ok(meta) = file.metadata() else {
        return DiscardInfo::default();
    };
    let rdev = meta.rdev();
    let base = format!("/sys/dev/block/{}:{}", libc::major(rdev), libc::minor(rdev));
    let read_u64 = |name: &str| -> Option<u64> {
        [
            format!("{base}/queue/{name}"),
            format!("{base}/../queue/{name}"),
        ]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| t.trim().parse().ok())
    };
    let max = read_u64("discard_max_bytes").unwrap_or(0);
    let backing = std::fs::read_to_string(format!("{base}/loop/backing_file")).unwrap_or_default();
    DiscardInfo {
        supported: max > 0,
        granularity: read_u64("discard_granularity").unwrap_or(0),
        zeroes: max > 0 && !backing.trim().is_empty(),
    }
}

/// [`check_range`] for a byte span too long for a buffer (unmap, provisioning status).
pub(crate) fn check_span(off: u64, len: u64, size: u64) -> io::Result<()> {
    match off.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("range of {len} bytes at byte {off} exceeds capacity {size}"),
        )),
    }
}

/// Appends `(off, len, state)` to `out`, merging with the last extent when the states match.
pub(crate) fn push_extent(
    out: &mut Vec<crate::Extent>,
    off: u64,
    len: u64,
    state: crate::Provisioning,
) {
    if len == 0 {
        return;
    }
    if let Some(last) = out.last_mut() {
        if last.state == state && last.off + last.len == off {
            last.len += len;
            return;
        }
    }
    out.push(crate::Extent { off, len, state });
}

/// Data and holes of a regular file over `[off, off+len)` (at most `max` extents), from
/// SEEK_DATA / SEEK_HOLE. Past the end of the file is a hole (reads as zeroes).
pub(crate) fn file_extents(
    file: &File,
    off: u64,
    len: u64,
    max: usize,
) -> io::Result<Vec<crate::Extent>> {
    use crate::Provisioning::{Deallocated, Mapped};
    let end = off.saturating_add(len);
    let mut out = Vec::new();
    let mut at = off;
    while at < end && out.len() < max.max(1) {
        match seek_data(file, at)? {
            None => {
                push_extent(&mut out, at, end - at, Deallocated);
                break;
            }
            Some(d) if d > at => {
                let d = d.min(end);
                push_extent(&mut out, at, d - at, Deallocated);
                at = d;
            }
            Some(_) => {
                let h = seek_hole(file, at)?.unwrap_or(end).clamp(at + 1, end);
                push_extent(&mut out, at, h - at, Mapped);
                at = h;
            }
        }
    }
    out.truncate(max.max(1));
    Ok(out)
}

/// An anonymous private mapping (mmap(2)): page-aligned, zero-filled, its pages resident only
/// once touched, and given back to the kernel by munmap(2) on drop. Bounce buffers use it so
/// that a 1 MiB buffer freed past the pool's limit never stays behind in one of the
/// allocator's per-thread arenas (a slow RSS creep under a soak), and a 4 KiB staging touches
/// one page, not 1 MiB.
pub(crate) struct AnonMap {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned exclusively by this value (no aliasing pointers escape except
// through `&mut self`), so moving it to or sharing it with another thread is sound.
unsafe impl Send for AnonMap {}
unsafe impl Sync for AnonMap {}

impl AnonMap {
    pub(crate) fn new(len: usize) -> io::Result<AnonMap> {
        // SAFETY: a fresh anonymous private mapping at an address the kernel chooses; no
        // existing memory is affected. The result is checked for MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(AnonMap { ptr, len })
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live read-write mapping of `len` bytes owned by `self`, and the
        // `&mut self` borrow makes this the only reference to it for the slice's lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AnonMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` created; no slice of it outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
