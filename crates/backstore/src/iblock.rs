//! `iblock`: a block device opened O_DIRECT, bypassing the page cache, as LIO's
//! target_core_iblock submits bios straight to the device. The device is claimed with O_EXCL
//! so a mounted or otherwise claimed device is refused as busy.
//!
//! O_DIRECT needs the buffer address, offset and length aligned to the logical block size.
//! Offsets and lengths come from the engine in LU blocks (the LU block size is this device's
//! logical block size); caller buffers that are not aligned in memory are staged through a
//! pool of aligned bounce buffers. The write cache state (WCE) is the device's own, read from
//! sysfs; with a volatile cache, FUA writes and SYNCHRONIZE CACHE end in fdatasync, which
//! flushes the device cache.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::aligned::{is_aligned, BouncePool, BOUNCE_SIZE};
use crate::error::{check_size, CreateError};
use crate::sys::{self, PathKind};
use crate::Backstore;

/// How to open an iblock store (saveconfig: `dev`, `readonly`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IBlockOptions {
    pub path: PathBuf,
    /// Open without write access; writes fail with EROFS.
    pub readonly: bool,
}

impl IBlockOptions {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            readonly: false,
        }
    }
}

/// An iblock store.
pub struct IBlock {
    file: File,
    path: PathBuf,
    size: u64,
    block: u32,
    readonly: bool,
    write_cache: bool,
    bounce: BouncePool,
}

impl std::fmt::Debug for IBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IBlock")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("block", &self.block)
            .field("readonly", &self.readonly)
            .field("write_cache", &self.write_cache)
            .finish()
    }
}

impl IBlock {
    /// Opens the block device described by `opts`, exclusively.
    pub fn open(opts: &IBlockOptions) -> Result<Self, CreateError> {
        let path = opts.path.as_path();
        match sys::classify(path).map_err(|e| CreateError::from_io(path, "stat", e))? {
            PathKind::BlockDevice => {}
            PathKind::Missing => {
                return Err(CreateError::MissingPath {
                    path: path.to_path_buf(),
                })
            }
            PathKind::Regular | PathKind::Other => {
                return Err(CreateError::NotBlockDevice {
                    path: path.to_path_buf(),
                })
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .write(!opts.readonly)
            .custom_flags(libc::O_DIRECT | libc::O_EXCL)
            .open(path)
            .map_err(|e| CreateError::from_io(path, "open", e))?;
        let size = sys::block_device_size(&file)
            .map_err(|e| CreateError::from_io(path, "BLKGETSIZE64", e))?;
        let block = sys::block_device_logical_block_size(&file)
            .map_err(|e| CreateError::from_io(path, "BLKSSZGET", e))?;
        if !opts.readonly
            && sys::block_device_read_only(&file)
                .map_err(|e| CreateError::from_io(path, "BLKROGET", e))?
        {
            return Err(CreateError::ReadOnly {
                path: path.to_path_buf(),
            });
        }
        check_size(Some(path), size, block)?;
        let write_cache = !opts.readonly && sys::block_device_has_write_cache(&file);
        Ok(Self {
            file,
            path: path.to_path_buf(),
            size,
            block,
            readonly: opts.readonly,
            write_cache,
            bounce: BouncePool::new(),
        })
    }

    /// The configured path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks range and block alignment of offset and length (O_DIRECT would fail with EINVAL).
    fn check(&self, len: usize, off: u64) -> io::Result<()> {
        sys::check_range(len, off, self.size)?;
        let block = u64::from(self.block);
        if !off.is_multiple_of(block) || !(len as u64).is_multiple_of(block) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: I/O of {len} bytes at byte {off} is not aligned to the {block}-byte logical block",
                    self.path.display()
                ),
            ));
        }
        Ok(())
    }
}

impl Backstore for IBlock {
    fn size(&self) -> u64 {
        self.size
    }

    fn hw_block_size(&self) -> u32 {
        self.block
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.check(buf.len(), off)?;
        if is_aligned(buf, self.block as usize) {
            return sys::read_full_at(&self.file, buf, off);
        }
        let mut bounce = self.bounce.take();
        let mut result = Ok(());
        for (i, piece) in buf.chunks_mut(BOUNCE_SIZE).enumerate() {
            let staged = bounce.slice_mut(piece.len());
            result = sys::read_full_at(&self.file, staged, off + (i * BOUNCE_SIZE) as u64);
            if result.is_err() {
                break;
            }
            piece.copy_from_slice(staged);
        }
        self.bounce.give(bounce);
        result
    }

    fn write_at(&self, buf: &[u8], off: u64, fua: bool) -> io::Result<()> {
        if self.readonly {
            return Err(sys::read_only_error());
        }
        self.check(buf.len(), off)?;
        if is_aligned(buf, self.block as usize) {
            sys::write_full_at(&self.file, buf, off)?;
        } else {
            let mut bounce = self.bounce.take();
            let mut result = Ok(());
            for (i, piece) in buf.chunks(BOUNCE_SIZE).enumerate() {
                let staged = bounce.slice_mut(piece.len());
                staged.copy_from_slice(piece);
                result = sys::write_full_at(&self.file, staged, off + (i * BOUNCE_SIZE) as u64);
                if result.is_err() {
                    break;
                }
            }
            self.bounce.give(bounce);
            result?;
        }
        if fua && self.write_cache {
            sys::sync_data(&self.file)?;
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        if self.readonly {
            return Ok(());
        }
        sys::sync_data(&self.file)
    }

    fn write_cache(&self) -> bool {
        self.write_cache
    }

    fn read_only(&self) -> bool {
        self.readonly
    }

    fn info(&self) -> String {
        format!(
            "iblock path={} size={} block={} write_cache={}{}",
            self.path.display(),
            self.size,
            self.block,
            if self.write_cache {
                "write-back"
            } else {
                "write-through"
            },
            if self.readonly { " readonly" } else { "" }
        )
    }
}
