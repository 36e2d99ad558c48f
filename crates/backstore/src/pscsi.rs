//! `pscsi`: a real SCSI device (a disk, a tape drive, a changer) exported by passing every
//! CDB through SG_IO on its SCSI generic node, as LIO's target_core_pscsi does.
//!
//! The device is named by `dev=`: a `/dev/sgN`, a `/dev/sdX` (or any block device of a SCSI
//! disk, such as a `/dev/disk/by-id/` link: resolved through sysfs to its sg node), or
//! `H:C:T:L`. At open it is asked who it is (SG_GET_SCSI_ID, standard INQUIRY) and, for a
//! disk, its capacity (READ CAPACITY); the engine then sends every command through
//! [`Passthrough::execute`]. [`Backstore::read_at`] and friends work too (READ(16), WRITE(16)
//! and SYNCHRONIZE CACHE through the same path), for the engine's own copies (EXTENDED COPY).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::CreateError;
use crate::Backstore;

pub mod sg;

pub use sg::{Failure, Reply, Xfer};

/// The sg character devices' major number.
const SG_MAJOR: u64 = 21;
/// Timeout of the commands the backstore sends itself (INQUIRY, READ CAPACITY, I/O).
const OWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Creation parameters of a pscsi backstore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PscsiOptions {
    /// `/dev/sgN`, a SCSI disk's block device, or `H:C:T:L`.
    pub dev: String,
}

/// Who the device says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The sg node used (`/dev/sgN`).
    pub node: PathBuf,
    /// Host, channel, target, LUN.
    pub hctl: [u32; 4],
    /// Peripheral device type (0 disk, 1 tape, 8 changer, …).
    pub peripheral_type: u8,
    pub vendor: String,
    pub product: String,
    pub revision: String,
}

/// Running CDBs on the device: what the engine uses for a pass-through LU.
pub trait Passthrough: Send + Sync {
    /// Run `cdb` with its data; blocks until the device answers or `timeout` passes.
    /// Err: the request could not be made at all (the device node is gone).
    fn execute(&self, cdb: &[u8], xfer: Xfer<'_>, timeout: Duration) -> io::Result<Reply>;
    /// LOGICAL UNIT RESET of the device (the engine's LUN RESET passed on).
    fn reset(&self) -> io::Result<()>;
    fn identity(&self) -> &Identity;
}

/// A pscsi store.
#[derive(Debug)]
pub struct Pscsi {
    file: File,
    id: Identity,
    /// Capacity in bytes (disks; 0 for other types), and the logical block length.
    size: AtomicU64,
    block: u32,
}

impl Pscsi {
    /// Open the device `opts.dev` names.
    pub fn open(opts: &PscsiOptions) -> Result<Pscsi, CreateError> {
        Self::open_in(opts, Path::new("/sys"))
    }

    fn open_in(opts: &PscsiOptions, sys: &Path) -> Result<Pscsi, CreateError> {
        let node = resolve(&opts.dev, sys)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&node)
            .map_err(|e| CreateError::from_io(&node, "open", e))?;
        sg::version(&file).map_err(|_| not_sg(&node))?;
        let (hctl, ptype) =
            sg::scsi_id(&file).map_err(|e| CreateError::from_io(&node, "SG_GET_SCSI_ID", e))?;
        let inq = own(&file, &[0x12, 0, 0, 0, 96, 0], 96)
            .map_err(|e| CreateError::from_io(&node, "INQUIRY", e))?;
        if inq.len() < 36 {
            return Err(CreateError::from_io(
                &node,
                "INQUIRY",
                io::Error::other(format!("the device answered {} bytes", inq.len())),
            ));
        }
        let text = |r: std::ops::Range<usize>| String::from_utf8_lossy(&inq[r]).trim().to_string();
        let id = Identity {
            node: node.clone(),
            hctl,
            peripheral_type: ptype,
            vendor: text(8..16),
            product: text(16..32),
            revision: text(32..36),
        };
        let p = Pscsi {
            file,
            id,
            size: AtomicU64::new(0),
            block: 512,
        };
        let (size, block) = if ptype == 0 { p.capacity()? } else { (0, 512) };
        p.size.store(size, Ordering::Relaxed);
        Ok(Pscsi { block, ..p })
    }

    /// READ CAPACITY(16), or (10) where (16) is refused: (bytes, logical block length).
    fn capacity(&self) -> Result<(u64, u32), CreateError> {
        let node = &self.id.node;
        let err = |e| CreateError::from_io(node, "READ CAPACITY", e);
        let rc16 = [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
        if let Ok(d) = own(&self.file, &rc16, 32) {
            if d.len() >= 12 {
                let last = u64::from_be_bytes(d[0..8].try_into().unwrap_or_default());
                let bl = u32::from_be_bytes(d[8..12].try_into().unwrap_or_default());
                return Ok((
                    last.saturating_add(1).saturating_mul(u64::from(bl)),
                    bl.max(1),
                ));
            }
        }
        let d = own(&self.file, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8).map_err(err)?;
        if d.len() < 8 {
            return Err(err(io::Error::other("short READ CAPACITY(10) data")));
        }
        let last = u64::from(u32::from_be_bytes(d[0..4].try_into().unwrap_or_default()));
        let bl = u32::from_be_bytes(d[4..8].try_into().unwrap_or_default());
        Ok(((last + 1) * u64::from(bl), bl.max(1)))
    }

    /// One READ(16) / WRITE(16) of `len` bytes at byte offset `off` (whole blocks).
    fn rw(&self, write: Option<&[u8]>, len: usize, off: u64, fua: bool) -> io::Result<Vec<u8>> {
        let bl = u64::from(self.block);
        if !off.is_multiple_of(bl) || !(len as u64).is_multiple_of(bl) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "pscsi I/O must be whole logical blocks",
            ));
        }
        crate::sys::check_range(len, off, self.size())?;
        let blocks = u32::try_from(len as u64 / bl)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "transfer too long"))?;
        let mut cdb = [0u8; 16];
        cdb[0] = if write.is_some() { 0x8a } else { 0x88 };
        cdb[1] = if fua { 0x08 } else { 0 };
        cdb[2..10].copy_from_slice(&(off / bl).to_be_bytes());
        cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
        let xfer = match write {
            Some(d) => Xfer::ToDevice(d),
            None => Xfer::FromDevice(len),
        };
        let r = sg::execute(&self.file, &cdb, xfer, OWN_TIMEOUT)?;
        checked(r, len, write.is_none())
    }
}

/// A command the backstore sends itself: its Data-In, or an error naming what went wrong.
fn own(file: &File, cdb: &[u8], len: usize) -> io::Result<Vec<u8>> {
    checked(
        sg::execute(file, cdb, Xfer::FromDevice(len), OWN_TIMEOUT)?,
        len,
        false,
    )
}

/// Err unless the command completed with GOOD (and, if `whole`, moved all `len` bytes).
fn checked(r: Reply, len: usize, whole: bool) -> io::Result<Vec<u8>> {
    if let Some(f) = r.failure {
        return Err(io::Error::other(format!(
            "the device did not complete the command: {f:?}"
        )));
    }
    if r.status != 0 {
        let sk = sense_key(&r.sense).map_or_else(String::new, |k| format!(", sense key {k:#x}"));
        return Err(io::Error::other(format!(
            "device status {:#04x}{sk}",
            r.status
        )));
    }
    if whole && r.data.len() != len {
        return Err(io::Error::other(format!(
            "the device moved {} of {len} bytes",
            r.data.len()
        )));
    }
    Ok(r.data)
}

/// The sense key of fixed (0x70/0x71) or descriptor (0x72/0x73) sense data.
pub fn sense_key(sense: &[u8]) -> Option<u8> {
    match sense.first().map(|b| b & 0x7f)? {
        0x70 | 0x71 => sense.get(2).map(|b| b & 0x0f),
        0x72 | 0x73 => sense.get(1).map(|b| b & 0x0f),
        _ => None,
    }
}

fn not_sg(node: &Path) -> CreateError {
    CreateError::from_io(
        node,
        "open",
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a SCSI generic node (give /dev/sgN, a SCSI disk /dev/sdX or H:C:T:L)",
        ),
    )
}

/// The sg node `dev` names, looked up under the sysfs root `sys`.
fn resolve(dev: &str, sys: &Path) -> Result<PathBuf, CreateError> {
    if let Some(hctl) = parse_hctl(dev) {
        let dir = sys
            .join("class/scsi_device")
            .join(&hctl)
            .join("device/scsi_generic");
        return sg_in(&dir).ok_or_else(|| CreateError::MissingPath {
            path: PathBuf::from(format!("SCSI device {hctl}")),
        });
    }
    let path = Path::new(dev);
    if !path.is_absolute() {
        return Err(not_sg(path));
    }
    let meta = std::fs::metadata(path).map_err(|e| CreateError::from_io(path, "stat", e))?;
    let ft = meta.file_type();
    if ft.is_char_device() {
        use std::os::unix::fs::MetadataExt;
        if libc::major(meta.rdev()) as u64 != SG_MAJOR {
            return Err(not_sg(path));
        }
        return Ok(path.to_path_buf());
    }
    if ft.is_block_device() {
        let real =
            std::fs::canonicalize(path).map_err(|e| CreateError::from_io(path, "resolve", e))?;
        let name = real
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let block = sys.join("block").join(name);
        if !block.exists() {
            // A partition has no directory of its own under /sys/block.
            return Err(CreateError::from_io(
                path,
                "open",
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a partition or a device without a SCSI generic node; give the whole SCSI disk or its /dev/sgN",
                ),
            ));
        }
        return sg_in(&block.join("device/scsi_generic")).ok_or_else(|| {
            CreateError::from_io(
                path,
                "open",
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a SCSI device (no SCSI generic node; is the sg module loaded?)",
                ),
            )
        });
    }
    Err(not_sg(path))
}

/// `H:C:T:L` with four decimal numbers, normalised.
fn parse_hctl(s: &str) -> Option<String> {
    let parts: Vec<u64> = s
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    (parts.len() == 4).then(|| format!("{}:{}:{}:{}", parts[0], parts[1], parts[2], parts[3]))
}

/// The `/dev/sgN` of the one `sgN` entry in a sysfs `scsi_generic` directory.
fn sg_in(dir: &Path) -> Option<PathBuf> {
    let entry = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("sg")))?;
    Some(Path::new("/dev").join(entry.file_name()))
}

impl Passthrough for Pscsi {
    fn execute(&self, cdb: &[u8], xfer: Xfer<'_>, timeout: Duration) -> io::Result<Reply> {
        sg::execute(&self.file, cdb, xfer, timeout)
    }
    fn reset(&self) -> io::Result<()> {
        sg::reset_device(&self.file)
    }
    fn identity(&self) -> &Identity {
        &self.id
    }
}

impl Backstore for Pscsi {
    fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }
    fn hw_block_size(&self) -> u32 {
        // The engine's LU block size (its own accounting); the device answers READ CAPACITY
        // itself, so an unusual length (e.g. 520) only changes what the engine counts in.
        if matches!(self.block, 512 | 1024 | 2048 | 4096) {
            self.block
        } else {
            512
        }
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let data = self.rw(None, buf.len(), off, false)?;
        buf.copy_from_slice(&data);
        Ok(())
    }
    fn write_at(&self, buf: &[u8], off: u64, fua: bool) -> io::Result<()> {
        self.rw(Some(buf), buf.len(), off, fua).map(drop)
    }
    fn flush(&self) -> io::Result<()> {
        if self.id.peripheral_type != 0 {
            return Ok(());
        }
        let r = sg::execute(
            &self.file,
            &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            Xfer::None,
            OWN_TIMEOUT,
        )?;
        checked(r, 0, false).map(drop)
    }
    fn never_blocks(&self) -> bool {
        false
    }
    fn write_cache(&self) -> bool {
        // The device reports its own cache (MODE SENSE passes through); flush covers both.
        true
    }
    fn info(&self) -> String {
        let [h, c, t, l] = self.id.hctl;
        format!(
            "pscsi {} ({h}:{c}:{t}:{l}) type {} {} {} {}, {} bytes",
            self.id.node.display(),
            self.id.peripheral_type,
            self.id.vendor,
            self.id.product,
            self.id.revision,
            self.size()
        )
    }
    fn passthrough(&self) -> Option<&dyn Passthrough> {
        Some(self)
    }
}

#[cfg(test)]
mod tests;
