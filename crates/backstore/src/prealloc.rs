//! Preallocation of a fileio backing file: `create … sparse=0` (targetcli's `sparse=false`)
//! and `control size=…,sparse=0`. A thick file cannot run out of space under an initiator's
//! write, which a sparse one can (ENOSPC then surfaces as a MEDIUM ERROR).
//!
//! Blocks are allocated with `fallocate` in [`PREALLOC_CHUNK`] steps, each step reported to a
//! progress callback as (bytes done, bytes in all). Where the filesystem cannot `fallocate`, a
//! new file (or a new extent) is written with zeroes instead, which is safe because nothing is
//! there yet; the holes of an existing file are never overwritten that way (a racing writer's
//! data could be lost), so that case is refused with the reason.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{check_size, CreateError};
use crate::sys::{self, PathKind};

/// Bytes allocated per step (and so per progress report).
pub const PREALLOC_CHUNK: u64 = 64 << 20;

/// Bytes written per `pwrite` of the zero-writing fallback.
const ZERO_CHUNK: usize = 1 << 20;

/// How the blocks are allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    /// `fallocate`, falling back to zeroes on EOPNOTSUPP where that is safe.
    Fallocate,
    /// Write zeroes (only for ranges nothing was written to yet).
    Zeroes,
}

/// Preallocate the fileio backing file at `path`. A missing file is created with `size` bytes
/// (required then; mode 0600), every block allocated, and made durable (file and directory
/// fsynced); on any error it is removed again. An existing regular file keeps its length and
/// data, and gets its holes allocated (a given `size` must equal its length, as at creation).
/// Returns whether the file was created here.
pub fn preallocate_file(
    path: &Path,
    size: Option<u64>,
    progress: &dyn Fn(u64, u64),
) -> Result<bool, CreateError> {
    preallocate_file_with(path, size, progress, Method::Fallocate)
}

fn preallocate_file_with(
    path: &Path,
    size: Option<u64>,
    progress: &dyn Fn(u64, u64),
    method: Method,
) -> Result<bool, CreateError> {
    let io_err = |op, e| CreateError::from_io(path, op, e);
    match sys::classify(path).map_err(|e| io_err("stat", e))? {
        PathKind::Missing => {
            let size = size.ok_or_else(|| CreateError::SizeRequired {
                path: path.to_path_buf(),
            })?;
            check_size(Some(path), size, 512)?;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => CreateError::MissingParent {
                        path: path.to_path_buf(),
                    },
                    _ => io_err("create", e),
                })?;
            let done = allocate_new(&file, 0, size, false, progress, method)
                .and_then(|()| file.set_len(size))
                .and_then(|()| sys::sync_all(&file))
                .and_then(|()| sync_parent(path));
            if let Err(e) = done {
                drop(file);
                // Nothing half-created: the file is ours, remove it.
                let _ = std::fs::remove_file(path);
                return Err(io_err("preallocate", e));
            }
            Ok(true)
        }
        PathKind::Regular => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| io_err("open", e))?;
            let len = file.metadata().map_err(|e| io_err("stat", e))?.len();
            if let Some(size) = size.filter(|s| *s != len) {
                return Err(CreateError::SizeMismatch {
                    path: path.to_path_buf(),
                    size,
                    file_size: len,
                });
            }
            allocate_existing(&file, len, progress)
                .and_then(|()| sys::sync_all(&file))
                .map_err(|e| io_err("preallocate", e))?;
            Ok(false)
        }
        PathKind::BlockDevice | PathKind::Other => Err(io_err(
            "preallocate",
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "sparse=0 is for a regular file (a block device has every block already)",
            ),
        )),
    }
}

/// Allocate `[from, to)` of an open regular file past its current end, without changing its
/// length (a resize then exposes the range; `fallocate(FALLOC_FL_KEEP_SIZE)`). Nothing is
/// there yet, so where `fallocate` is not offered the range is written with zeroes (which
/// does extend the file: the length is the backstore's business, not the initiator's).
pub(crate) fn allocate_extent(
    file: &File,
    from: u64,
    to: u64,
    progress: &dyn Fn(u64, u64),
) -> io::Result<()> {
    allocate_new(file, from, to, true, progress, Method::Fallocate)?;
    sys::sync_all(file)
}

/// Allocate a range nothing was written to: `fallocate`, or zeroes where it is not offered.
fn allocate_new(
    file: &File,
    from: u64,
    to: u64,
    keep_size: bool,
    progress: &dyn Fn(u64, u64),
    method: Method,
) -> io::Result<()> {
    let total = to.saturating_sub(from);
    progress(0, total);
    let mut off = from;
    let mut zeroes = method == Method::Zeroes;
    while off < to {
        let len = (to - off).min(PREALLOC_CHUNK);
        if !zeroes {
            match sys::allocate(file, off, len, keep_size) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => zeroes = true,
                Err(e) => return Err(e),
            }
        }
        if zeroes {
            write_zeroes(file, off, len)?;
        }
        off += len;
        progress(off - from, total);
    }
    Ok(())
}

/// Allocate the holes of the first `len` bytes of a file that may hold data: `fallocate` only.
fn allocate_existing(file: &File, len: u64, progress: &dyn Fn(u64, u64)) -> io::Result<()> {
    progress(0, len);
    let mut off = 0;
    while off < len {
        let step = (len - off).min(PREALLOC_CHUNK);
        sys::allocate(file, off, step, false).map_err(|e| {
            if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "this filesystem cannot preallocate (fallocate is not supported); the file was left as it is",
                )
            } else {
                e
            }
        })?;
        off += step;
        progress(off, len);
    }
    Ok(())
}

fn write_zeroes(file: &File, from: u64, len: u64) -> io::Result<()> {
    let zero = vec![0u8; ZERO_CHUNK];
    let mut off = from;
    let end = from + len;
    while off < end {
        let n = (end - off).min(ZERO_CHUNK as u64) as usize;
        sys::write_full_at(file, &zero[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

/// fsync the directory holding `path`, so a new file's name is durable too.
fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    sys::sync_all(&File::open(dir)?)
}

#[cfg(test)]
mod tests;
