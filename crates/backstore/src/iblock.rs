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
//!
//! The capacity follows the device: [`Backstore::rescan`] re-reads it after the device was
//! resized underneath (lvextend, `losetup -c`); I/O holds a reader-writer gate shared so a
//! rescan waits for I/O in flight.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

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
    /// Capacity in bytes; changes only under the `gate` write lock.
    size: AtomicU64,
    /// Held shared by I/O, exclusive by a rescan.
    gate: RwLock<()>,
    block: u32,
    readonly: bool,
    write_cache: bool,
    bounce: BouncePool,
    /// Discard support of the device (sysfs, read at open).
    discard: sys::DiscardInfo,
}

impl std::fmt::Debug for IBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IBlock")
            .field("path", &self.path)
            .field("size", &self.size())
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
        let (size, block) = sys::probe_block_device(&file, path, opts.readonly)?;
        check_size(Some(path), size, block)?;
        let write_cache = !opts.readonly && sys::block_device_has_write_cache(&file);
        let discard = if opts.readonly {
            sys::DiscardInfo::default()
        } else {
            sys::block_device_discard_info(&file)
        };
        Ok(Self {
            discard,
            file,
            path: path.to_path_buf(),
            size: AtomicU64::new(size),
            gate: RwLock::new(()),
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
        sys::check_range(len, off, self.size())?;
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

impl IBlock {
    /// Takes `device_size` as the capacity (the caller holds the gate exclusively).
    fn adopt(&self, device_size: u64) -> io::Result<u64> {
        check_size(Some(&self.path), device_size, self.block).map_err(sys::invalid)?;
        self.size.store(device_size, Ordering::Release);
        Ok(device_size)
    }
}

impl Backstore for IBlock {
    fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    fn hw_block_size(&self) -> u32 {
        self.block
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let _io = self.gate.read();
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
        let _io = self.gate.read();
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

    /// The size of a block device is the device's: `new_size` must be what it has now.
    fn resize(&self, new_size: u64) -> io::Result<u64> {
        let _all = self.gate.write();
        let device_size = sys::block_device_size(&self.file)?;
        if new_size != device_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: size {new_size} differs from the device's {device_size} bytes (resize the device itself, then rescan)",
                    self.path.display()
                ),
            ));
        }
        self.adopt(device_size)
    }

    fn supports_unmap(&self) -> bool {
        self.discard.supported
    }

    fn unmap_zeroes(&self) -> bool {
        self.discard.zeroes
    }

    fn unmap_granularity(&self) -> u64 {
        self.discard.granularity
    }

    fn unmap(&self, off: u64, len: u64) -> io::Result<()> {
        let _io = self.gate.read();
        sys::check_span(off, len, self.size())?;
        if len == 0 {
            return Ok(());
        }
        if !self.discard.supported {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "{}: the device does not accept discards",
                    self.path.display()
                ),
            ));
        }
        sys::discard(&self.file, off, len)
    }

    fn rescan(&self) -> io::Result<u64> {
        let _all = self.gate.write();
        let device_size = sys::block_device_size(&self.file)?;
        self.adopt(device_size)
    }

    fn info(&self) -> String {
        format!(
            "iblock path={} size={} block={} write_cache={}{}",
            self.path.display(),
            self.size(),
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
