//! Thin wrappers over the Linux calls the file-backed stores need: block-device ioctls
//! (`BLKGETSIZE64`, `BLKSSZGET`), positional I/O loops that survive short transfers and EINTR,
//! and the sysfs look-up of a block device's volatile write cache.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// `_IOR(0x12, 114, size_t)` from `<linux/fs.h>`; the `libc` crate does not export it.
/// The direction bits sit differently on the architectures with a 3-bit direction field.
#[cfg(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "sparc",
    target_arch = "sparc64"
))]
const BLKGETSIZE64: libc::Ioctl = 0x4008_1272;
#[cfg(not(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
const BLKGETSIZE64: libc::Ioctl = 0x8008_1272;

/// `_IO(0x12, 94)` from `<linux/fs.h>`: is the block device read-only? (No direction bits.)
const BLKROGET: libc::Ioctl = 0x125e;

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
