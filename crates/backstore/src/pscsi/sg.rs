//! The Linux SCSI generic driver's ioctls (include/scsi/sg.h, v3 interface): SG_IO, the
//! version and id queries, and SG_SCSI_RESET.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// `sg_io_hdr_t`, the v3 SG_IO header.
#[repr(C)]
struct SgIoHdr {
    interface_id: libc::c_int,
    dxfer_direction: libc::c_int,
    cmd_len: u8,
    mx_sb_len: u8,
    iovec_count: u16,
    dxfer_len: u32,
    dxferp: *mut libc::c_void,
    cmdp: *const u8,
    sbp: *mut u8,
    timeout: u32,
    flags: u32,
    pack_id: libc::c_int,
    usr_ptr: *mut libc::c_void,
    status: u8,
    masked_status: u8,
    msg_status: u8,
    sb_len_wr: u8,
    host_status: u16,
    driver_status: u16,
    resid: libc::c_int,
    duration: u32,
    info: u32,
}

/// `struct sg_scsi_id` (SG_GET_SCSI_ID).
#[repr(C)]
#[derive(Default)]
struct SgScsiId {
    host_no: libc::c_int,
    channel: libc::c_int,
    scsi_id: libc::c_int,
    lun: libc::c_int,
    scsi_type: libc::c_int,
    h_cmd_per_lun: libc::c_short,
    d_queue_depth: libc::c_short,
    unused: [libc::c_int; 2],
}

const SG_IO: libc::c_ulong = 0x2285;
const SG_GET_VERSION_NUM: libc::c_ulong = 0x2282;
const SG_GET_SCSI_ID: libc::c_ulong = 0x2276;
const SG_SCSI_RESET: libc::c_ulong = 0x2284;
const SG_SCSI_RESET_DEVICE: libc::c_int = 1;
const SG_DXFER_NONE: libc::c_int = -1;
const SG_DXFER_TO_DEV: libc::c_int = -2;
const SG_DXFER_FROM_DEV: libc::c_int = -3;
/// Longest sense data asked for (SPC-4 allows 252 bytes).
const SENSE_MAX: usize = 252;

/// Host byte values (include/scsi/scsi_status.h `DID_*`) that mean the device is gone.
const DID_NO_CONNECT: u16 = 0x01;
const DID_BAD_TARGET: u16 = 0x04;
const DID_TIME_OUT: u16 = 0x03;
/// Driver byte: the command timed out (`DRIVER_TIMEOUT`).
const DRIVER_TIMEOUT: u16 = 0x06;

/// Where a command's data goes.
pub enum Xfer<'a> {
    None,
    /// Data-Out: these bytes to the device.
    ToDevice(&'a [u8]),
    /// Data-In: at most this many bytes from the device.
    FromDevice(usize),
}

/// How a command ended at the device.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reply {
    /// SAM status byte as the device gave it.
    pub status: u8,
    /// Sense data as the device gave it (with CHECK CONDITION).
    pub sense: Vec<u8>,
    /// Data-In the device sent (up to what it moved).
    pub data: Vec<u8>,
    /// Bytes of the transfer not moved (`dxfer_len - actual`).
    pub resid: u32,
    /// Set when the command did not complete at the device: the path or the device failed.
    pub failure: Option<Failure>,
}

/// Why a command did not complete at the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The device is gone (removed, or no longer reachable).
    Gone,
    /// It ran past its timeout and the kernel aborted it.
    Timeout,
    /// Another host adapter or driver error (the host and driver bytes).
    Transport { host: u16, driver: u16 },
}

/// The sg driver's version (e.g. 30536), or an error if `file` is not a SCSI generic node.
pub fn version(file: &File) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    // SAFETY: SG_GET_VERSION_NUM writes one int through the pointer, which is valid.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), SG_GET_VERSION_NUM, &mut v) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

/// The device's address (host, channel, target, LUN) and peripheral device type.
pub fn scsi_id(file: &File) -> io::Result<([u32; 4], u8)> {
    let mut id = SgScsiId::default();
    // SAFETY: SG_GET_SCSI_ID fills a `struct sg_scsi_id`, which `id` is (repr(C)).
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), SG_GET_SCSI_ID, &mut id) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let u = |v: libc::c_int| u32::try_from(v).unwrap_or(0);
    Ok((
        [u(id.host_no), u(id.channel), u(id.scsi_id), u(id.lun)],
        (id.scsi_type & 0x1f) as u8,
    ))
}

/// A LOGICAL UNIT RESET of the device (SG_SCSI_RESET, SG_SCSI_RESET_DEVICE).
pub fn reset_device(file: &File) -> io::Result<()> {
    let mut what: libc::c_int = SG_SCSI_RESET_DEVICE;
    // SAFETY: SG_SCSI_RESET reads one int through the pointer, which is valid.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), SG_SCSI_RESET, &mut what) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Run one CDB on the device (SG_IO; blocks until it ends or `timeout` passes).
/// Err: the ioctl itself failed (e.g. ENODEV once the device is removed).
pub fn execute(file: &File, cdb: &[u8], xfer: Xfer<'_>, timeout: Duration) -> io::Result<Reply> {
    let cmd_len = u8::try_from(cdb.len())
        .ok()
        .filter(|n| (6..=16).contains(n))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "CDB length must be 6-16"))?;
    // Data-In lands in a buffer of ours; Data-Out is read from the caller's slice in place
    // (no copy of every write).
    let mut data = match xfer {
        Xfer::FromDevice(n) => vec![0u8; n],
        _ => Vec::new(),
    };
    let direction = match xfer {
        Xfer::None => SG_DXFER_NONE,
        Xfer::ToDevice(_) => SG_DXFER_TO_DEV,
        Xfer::FromDevice(_) => SG_DXFER_FROM_DEV,
    };
    let (dxferp, len): (*mut libc::c_void, usize) = match xfer {
        // SG_DXFER_TO_DEV only reads the buffer, so the shared slice is never written.
        Xfer::ToDevice(d) => (d.as_ptr().cast_mut().cast(), d.len()),
        _ => (data.as_mut_ptr().cast(), data.len()),
    };
    let dxfer_len = u32::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "transfer too long"))?;
    let mut sense = [0u8; SENSE_MAX];
    let mut hdr = SgIoHdr {
        interface_id: libc::c_int::from(b'S'),
        dxfer_direction: direction,
        cmd_len,
        mx_sb_len: SENSE_MAX as u8,
        iovec_count: 0,
        dxfer_len,
        dxferp,
        cmdp: cdb.as_ptr(),
        sbp: sense.as_mut_ptr(),
        timeout: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX - 1),
        flags: 0,
        pack_id: 0,
        usr_ptr: std::ptr::null_mut(),
        status: 0,
        masked_status: 0,
        msg_status: 0,
        sb_len_wr: 0,
        host_status: 0,
        driver_status: 0,
        resid: 0,
        duration: 0,
        info: 0,
    };
    loop {
        // SAFETY: every pointer in `hdr` points into a live buffer of the length given
        // (`data` or the Data-Out slice: dxfer_len bytes, `cdb`: cmd_len bytes, `sense`: mx_sb_len bytes), all of
        // which outlive the call; SG_IO returns only when the command is over.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), SG_IO, &mut hdr) };
        if rc == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let resid = u32::try_from(hdr.resid.max(0)).unwrap_or(0).min(dxfer_len);
    let failure = match (hdr.host_status, hdr.driver_status & 0x0f) {
        (0, 0) | (0, 0x08) => None, // DRIVER_SENSE only says sense is there
        (DID_NO_CONNECT | DID_BAD_TARGET, _) => Some(Failure::Gone),
        (DID_TIME_OUT, _) | (_, DRIVER_TIMEOUT) => Some(Failure::Timeout),
        (host, driver) => Some(Failure::Transport { host, driver }),
    };
    if matches!(xfer, Xfer::FromDevice(_)) {
        data.truncate((dxfer_len - resid) as usize);
    }
    Ok(Reply {
        status: hdr.status,
        sense: sense[..usize::from(hdr.sb_len_wr).min(SENSE_MAX)].to_vec(),
        data,
        resid,
        failure,
    })
}
