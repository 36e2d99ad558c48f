//! `fileio`: a regular file or a block device used through the page cache, as LIO's
//! target_core_file does. Write-back (the default, like rtslib's `write_back=True`) reports a
//! volatile cache to initiators and makes FUA writes and SYNCHRONIZE CACHE durable with
//! fdatasync; write-through opens the file O_DSYNC so every write is durable on return.
//!
//! Sizing (our rule, stated once here): a missing file is created with the given size (sparse)
//! and a size is then required; an existing file's length is authoritative — a given size must
//! equal it, so a typo never truncates or grows someone's image; a block device's size is its
//! capacity, and a given size may export a prefix of it but not more.
//!
//! Resizing (see the crate docs): a regular file is `set_len` to the new size and fsynced
//! (the length is metadata, fdatasync would not cover it); a block device is re-read and the
//! same prefix rule applies. A reader-writer gate lets I/O run concurrently and makes a resize
//! wait for I/O in flight, so no write that passed the old range check lands past a new end.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::error::{check_size, CreateError};
use crate::sys::{self, PathKind};
use crate::Backstore;

/// Block size reported for files; LIO fileio uses 512 unless the backing device says otherwise.
const FILE_BLOCK: u32 = 512;

/// How to open a fileio store (saveconfig: `dev`, `size`, `write_back`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIoOptions {
    pub path: PathBuf,
    /// Capacity in bytes; required when the file does not exist yet.
    pub size: Option<u64>,
    /// Buffered with a volatile cache (true) or O_DSYNC write-through (false).
    pub write_back: bool,
    /// Open without write access; writes fail with EROFS.
    pub readonly: bool,
}

impl FileIoOptions {
    /// Defaults: size from the file, write-back, read-write.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            size: None,
            write_back: true,
            readonly: false,
        }
    }
}

/// A fileio store.
#[derive(Debug)]
pub struct FileIo {
    file: File,
    path: PathBuf,
    /// Capacity in bytes; changes only under the `gate` write lock.
    size: AtomicU64,
    /// Held shared by I/O, exclusive by a resize.
    gate: RwLock<()>,
    block: u32,
    write_back: bool,
    readonly: bool,
    is_block_device: bool,
    /// How this store deallocates (probed at open).
    unmap: UnmapKind,
}

/// How a fileio store gives space back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnmapKind {
    /// Read-only, or the filesystem / device cannot.
    None,
    /// Punch holes in the regular file; holes read as zeroes. The granularity is the
    /// filesystem's block size.
    PunchHole { granularity: u64 },
    /// BLKDISCARD on the block device.
    Discard(sys::DiscardInfo),
}

impl FileIo {
    /// Opens (or creates) the store described by `opts`.
    pub fn open(opts: &FileIoOptions) -> Result<Self, CreateError> {
        let path = opts.path.as_path();
        let kind = sys::classify(path).map_err(|e| CreateError::from_io(path, "stat", e))?;
        match kind {
            PathKind::Missing => Self::create_file(opts),
            PathKind::Regular => Self::open_file(opts),
            PathKind::BlockDevice => Self::open_block_device(opts),
            PathKind::Other => Err(CreateError::NotFileOrBlockDevice {
                path: path.to_path_buf(),
            }),
        }
    }

    /// The configured path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn options(opts: &FileIoOptions) -> OpenOptions {
        let mut o = OpenOptions::new();
        o.read(true).write(!opts.readonly);
        if !opts.write_back {
            o.custom_flags(libc::O_DSYNC);
        }
        o
    }

    fn create_file(opts: &FileIoOptions) -> Result<Self, CreateError> {
        let path = opts.path.as_path();
        let Some(size) = opts.size else {
            return Err(CreateError::SizeRequired {
                path: path.to_path_buf(),
            });
        };
        check_size(Some(path), size, FILE_BLOCK)?;
        if opts.readonly {
            // A new file would be all zeroes and could never be written: surely a mistake.
            return Err(CreateError::MissingPath {
                path: path.to_path_buf(),
            });
        }
        let file = Self::options(opts)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => CreateError::MissingParent {
                    path: path.to_path_buf(),
                },
                _ => CreateError::from_io(path, "create", e),
            })?;
        if let Err(e) = file.set_len(size) {
            drop(file);
            // Nothing half-created: the file is ours, remove it.
            let _ = std::fs::remove_file(path);
            return Err(CreateError::from_io(path, "set length", e));
        }
        Ok(Self::assemble(file, opts, size, FILE_BLOCK, false))
    }

    fn open_file(opts: &FileIoOptions) -> Result<Self, CreateError> {
        let path = opts.path.as_path();
        let file = Self::options(opts)
            .open(path)
            .map_err(|e| CreateError::from_io(path, "open", e))?;
        let file_size = file
            .metadata()
            .map_err(|e| CreateError::from_io(path, "stat", e))?
            .len();
        let size = match opts.size {
            Some(size) if size != file_size => {
                return Err(CreateError::SizeMismatch {
                    path: path.to_path_buf(),
                    size,
                    file_size,
                })
            }
            _ => file_size,
        };
        check_size(Some(path), size, FILE_BLOCK)?;
        Ok(Self::assemble(file, opts, size, FILE_BLOCK, false))
    }

    fn open_block_device(opts: &FileIoOptions) -> Result<Self, CreateError> {
        let path = opts.path.as_path();
        // O_EXCL on a block device fails with EBUSY if it is mounted or claimed. LIO fileio
        // does not claim the device; we do, so a mounted filesystem is never exported by mistake.
        let file = Self::options(opts)
            .custom_flags(if opts.write_back {
                libc::O_EXCL
            } else {
                libc::O_EXCL | libc::O_DSYNC
            })
            .open(path)
            .map_err(|e| CreateError::from_io(path, "open", e))?;
        let (device_size, block) = sys::probe_block_device(&file, path, opts.readonly)?;
        let size = match opts.size {
            Some(size) if size > device_size => {
                return Err(CreateError::SizeTooLarge {
                    path: path.to_path_buf(),
                    size,
                    device_size,
                })
            }
            Some(size) => size,
            None => device_size,
        };
        check_size(Some(path), size, block)?;
        Ok(Self::assemble(file, opts, size, block, true))
    }

    fn assemble(
        file: File,
        opts: &FileIoOptions,
        size: u64,
        block: u32,
        is_block_device: bool,
    ) -> Self {
        let unmap = Self::probe_unmap(&file, opts, size, is_block_device);
        Self {
            unmap,
            file,
            path: opts.path.clone(),
            size: AtomicU64::new(size),
            gate: RwLock::new(()),
            block,
            write_back: opts.write_back,
            readonly: opts.readonly,
            is_block_device,
        }
    }
}

impl FileIo {
    /// Finds out whether (and how) this store can deallocate. A regular file's filesystem is
    /// asked by punching a hole past the end of the file (KEEP_SIZE: nothing changes), which
    /// fails with EOPNOTSUPP where hole punching is not offered.
    fn probe_unmap(file: &File, opts: &FileIoOptions, size: u64, block_dev: bool) -> UnmapKind {
        if opts.readonly {
            return UnmapKind::None;
        }
        if block_dev {
            let info = sys::block_device_discard_info(file);
            return if info.supported {
                UnmapKind::Discard(info)
            } else {
                UnmapKind::None
            };
        }
        let granularity = file.metadata().map(|m| m.blksize()).unwrap_or(0);
        match sys::punch_hole(file, size, u64::from(FILE_BLOCK)) {
            Ok(()) => UnmapKind::PunchHole { granularity },
            Err(_) => UnmapKind::None,
        }
    }
}

impl FileIo {
    /// BLKDISCARD takes only whole device blocks: the aligned middle of the range is
    /// discarded, the partial device blocks at either end are written with zeroes (through
    /// the page cache, as any fileio write), so the whole range reads as zeroes when the
    /// device's discard does.
    fn discard(&self, off: u64, len: u64) -> io::Result<()> {
        let lbs = u64::from(self.block);
        let end = off + len;
        let (a, b) = (off.div_ceil(lbs) * lbs, end / lbs * lbs);
        let zero = |from: u64, to: u64| -> io::Result<()> {
            if to > from {
                let n = usize::try_from(to - from).map_err(io::Error::other)?;
                sys::write_full_at(&self.file, &vec![0u8; n], from)?;
            }
            Ok(())
        };
        if a >= b {
            return zero(off, end);
        }
        zero(off, a)?;
        zero(b, end)?;
        sys::discard(&self.file, a, b - a)
    }
}

impl Backstore for FileIo {
    fn supports_unmap(&self) -> bool {
        self.unmap != UnmapKind::None
    }

    fn unmap_zeroes(&self) -> bool {
        match self.unmap {
            UnmapKind::None => false,
            UnmapKind::PunchHole { .. } => true,
            UnmapKind::Discard(info) => info.zeroes,
        }
    }

    fn unmap_granularity(&self) -> u64 {
        match self.unmap {
            UnmapKind::None => 0,
            UnmapKind::PunchHole { granularity } => granularity,
            UnmapKind::Discard(info) => info.granularity,
        }
    }

    fn unmap(&self, off: u64, len: u64) -> io::Result<()> {
        let _io = self.gate.read();
        sys::check_span(off, len, self.size())?;
        if len == 0 {
            return Ok(());
        }
        match self.unmap {
            UnmapKind::None => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{}: cannot deallocate blocks", self.path.display()),
            )),
            UnmapKind::PunchHole { .. } => {
                sys::punch_hole(&self.file, off, len)?;
                // Write-through: O_DSYNC covers writes, not fallocate; sync the new extent map
                // so that deallocation is as durable as a write.
                if !self.write_back {
                    sys::sync_data(&self.file)?;
                }
                Ok(())
            }
            UnmapKind::Discard(_) => self.discard(off, len),
        }
    }

    fn provisioning(&self, off: u64, len: u64, max: usize) -> io::Result<Vec<crate::Extent>> {
        let _io = self.gate.read();
        sys::check_span(off, len, self.size())?;
        if self.is_block_device || len == 0 {
            // A block device does not tell which of its blocks hold space.
            let mut v = Vec::new();
            sys::push_extent(&mut v, off, len, crate::Provisioning::Mapped);
            return Ok(v);
        }
        sys::file_extents(&self.file, off, len, max)
    }

    fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    fn hw_block_size(&self) -> u32 {
        self.block
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let _io = self.gate.read();
        sys::check_range(buf.len(), off, self.size())?;
        sys::read_full_at(&self.file, buf, off)
    }

    fn write_at(&self, buf: &[u8], off: u64, fua: bool) -> io::Result<()> {
        if self.readonly {
            return Err(sys::read_only_error());
        }
        let _io = self.gate.read();
        sys::check_range(buf.len(), off, self.size())?;
        sys::write_full_at(&self.file, buf, off)?;
        // Write-through (O_DSYNC) writes are already durable.
        if fua && self.write_back {
            sys::sync_data(&self.file)?;
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        if self.readonly || !self.write_back {
            return Ok(());
        }
        sys::sync_data(&self.file)
    }

    fn write_cache(&self) -> bool {
        self.write_back && !self.readonly
    }

    fn read_only(&self) -> bool {
        self.readonly
    }

    fn resize(&self, new_size: u64) -> io::Result<u64> {
        let path = self.path.as_path();
        check_size(Some(path), new_size, self.block).map_err(sys::invalid)?;
        let _all = self.gate.write();
        if self.is_block_device {
            let device_size = sys::block_device_size(&self.file)?;
            if new_size > device_size {
                return Err(sys::invalid(CreateError::SizeTooLarge {
                    path: path.to_path_buf(),
                    size: new_size,
                    device_size,
                }));
            }
        } else {
            if self.readonly {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{}: opened read-only (readonly=1); a read-only file cannot be resized",
                        path.display()
                    ),
                ));
            }
            let old = self.size();
            self.file.set_len(new_size)?;
            if let Err(e) = sys::sync_all(&self.file) {
                // Not durable: put the old length back so that memory and disk agree.
                let _ = self.file.set_len(old);
                return Err(e);
            }
        }
        self.size.store(new_size, Ordering::Release);
        Ok(new_size)
    }

    fn resize_thick(&self, new_size: u64, progress: &dyn Fn(u64, u64)) -> io::Result<u64> {
        if self.is_block_device {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "{}: sparse=0 is for a regular file (a block device has every block already)",
                    self.path.display()
                ),
            ));
        }
        let old = self.size();
        if new_size > old && !self.readonly {
            // No gate: nothing reads or writes past the current end, and the control plane
            // makes one change at a time.
            let grown = crate::prealloc::allocate_extent(&self.file, old, new_size, progress);
            if let Err(e) = grown {
                // Give back what was allocated past the end (best effort).
                let _ = self.file.set_len(old);
                return Err(e);
            }
        }
        self.resize(new_size).inspect_err(|_| {
            let _ = self.file.set_len(self.size());
        })
    }

    fn rescan(&self) -> io::Result<u64> {
        if !self.is_block_device {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "{}: rescan is only for a block device; this is a regular file (use size=)",
                    self.path.display()
                ),
            ));
        }
        let _all = self.gate.write();
        let device_size = sys::block_device_size(&self.file)?;
        check_size(Some(&self.path), device_size, self.block).map_err(sys::invalid)?;
        self.size.store(device_size, Ordering::Release);
        Ok(device_size)
    }

    fn allocated(&self) -> Option<u64> {
        if self.is_block_device {
            return None;
        }
        use std::os::unix::fs::MetadataExt;
        // st_blocks counts 512-byte units whatever the file system's block size.
        self.file.metadata().ok().map(|m| m.blocks() * 512)
    }

    fn info(&self) -> String {
        format!(
            "fileio {} path={} size={} mode={}{}",
            if self.is_block_device {
                "block"
            } else {
                "file"
            },
            self.path.display(),
            self.size(),
            if self.write_back {
                "write-back"
            } else {
                "write-through"
            },
            if self.readonly { " readonly" } else { "" }
        )
    }
}
