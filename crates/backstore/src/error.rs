//! Why a backstore could not be created. Each variant's Display is one line naming the path
//! (where there is one) and the problem, fit to show a CLI user as is.

use std::io;
use std::path::PathBuf;

/// Failure to create or open a backstore. Nothing is left behind: a file created by the
/// failing call is removed before the error is returned.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{path}: no such file or device")]
    MissingPath { path: PathBuf },
    #[error("{path}: parent directory does not exist")]
    MissingParent { path: PathBuf },
    #[error("{path}: not a regular file or block device")]
    NotFileOrBlockDevice { path: PathBuf },
    #[error("{path}: not a block device")]
    NotBlockDevice { path: PathBuf },
    #[error("{path}: file does not exist and no size was given")]
    SizeRequired { path: PathBuf },
    #[error("{}: size must not be zero", display_opt(.path))]
    ZeroSize { path: Option<PathBuf> },
    #[error("{}: size {size} is not a multiple of the {block}-byte block size", display_opt(.path))]
    UnalignedSize {
        path: Option<PathBuf>,
        size: u64,
        block: u32,
    },
    #[error("{path}: size {size} is larger than the device ({device_size} bytes)")]
    SizeTooLarge {
        path: PathBuf,
        size: u64,
        device_size: u64,
    },
    #[error("{path}: file exists with {file_size} bytes but size {size} was given (omit size to use the file's)")]
    SizeMismatch {
        path: PathBuf,
        size: u64,
        file_size: u64,
    },
    #[error("{}: size {size} is too large for this machine's address space", display_opt(.path))]
    SizeUnaddressable { path: Option<PathBuf>, size: u64 },
    #[error("{path}: permission denied")]
    PermissionDenied { path: PathBuf },
    #[error("{path}: device busy (mounted or opened exclusively by another user)")]
    DeviceBusy { path: PathBuf },
    #[error("{path}: read-only (open it with readonly=1)")]
    ReadOnly { path: PathBuf },
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

fn display_opt(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => p.display().to_string(),
        None => "ramdisk".to_string(),
    }
}

impl CreateError {
    /// Maps a failed system call `op` on `path` to the precise variant.
    pub(crate) fn from_io(path: &std::path::Path, op: &'static str, err: io::Error) -> Self {
        let path = path.to_path_buf();
        match err.raw_os_error() {
            Some(libc::ENOENT) => Self::MissingPath { path },
            Some(libc::EACCES) | Some(libc::EPERM) => Self::PermissionDenied { path },
            Some(libc::EBUSY) => Self::DeviceBusy { path },
            Some(libc::EROFS) => Self::ReadOnly { path },
            _ => Self::Io {
                path,
                op,
                source: err,
            },
        }
    }
}

/// Checks a configured capacity: nonzero and a whole number of `block`-byte blocks.
pub(crate) fn check_size(
    path: Option<&std::path::Path>,
    size: u64,
    block: u32,
) -> Result<(), CreateError> {
    let path = path.map(|p| p.to_path_buf());
    if size == 0 {
        return Err(CreateError::ZeroSize { path });
    }
    if !size.is_multiple_of(u64::from(block)) {
        return Err(CreateError::UnalignedSize { path, size, block });
    }
    Ok(())
}
