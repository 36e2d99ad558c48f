//! iblock (and fileio on a block device) against real loop devices. Each test binds its own
//! loop device and detaches it on drop, also when the test fails. Skipped with a printed reason
//! where loop devices are unavailable (set IRONLUN_REQUIRE_LOOP=1 to make that a failure).
mod common;

use std::sync::Arc;

use common::LoopDevice;
use ironlun_backstore::{
    Backstore, BackstoreSpec, CreateError, FileIo, FileIoOptions, IBlock, IBlockOptions,
};

const MIB: u64 = 1024 * 1024;

/// A temp dir holding a backing file bound to a loop device (dropped device-first).
struct Fixture {
    lo: LoopDevice,
    _dir: tempfile::TempDir,
}

fn fixture(size: u64, read_only: bool) -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::backing_file(dir.path(), "backing.img", size);
    let lo = LoopDevice::attach(&file, read_only)?;
    Some(Fixture { lo, _dir: dir })
}

fn open(fx: &Fixture) -> IBlock {
    IBlock::open(&IBlockOptions::new(&fx.lo.dev)).expect("open iblock")
}

#[test]
fn reports_device_geometry_and_cache() {
    let Some(fx) = fixture(32 * MIB, false) else {
        return;
    };
    let ib = open(&fx);
    assert_eq!(ib.size(), 32 * MIB);
    assert_eq!(ib.hw_block_size(), 512);
    assert!(!ib.read_only());
    // Loop devices announce a volatile cache ("write back" in sysfs).
    assert!(ib.write_cache());
    assert!(ib.info().starts_with("iblock"));
    ib.flush().expect("flush");
}

#[test]
fn read_after_write_with_aligned_buffers() {
    let Some(fx) = fixture(32 * MIB, false) else {
        return;
    };
    let ib = open(&fx);
    common::check_read_after_write(&ib);
    common::check_out_of_range(&ib);
}

#[test]
fn unaligned_caller_buffers_go_through_bounce_buffers() {
    let Some(fx) = fixture(32 * MIB, false) else {
        return;
    };
    let ib = open(&fx);
    // 3 MiB (more than one bounce buffer) starting one byte into an allocation.
    let len = 3 * MIB as usize;
    let data = common::pattern(len, 11, 0x33);
    let mut src = vec![0u8; len + 1];
    src[1..].copy_from_slice(&data);
    ib.write_at(&src[1..], 4 * MIB, true)
        .expect("unaligned write");
    let mut dst = vec![0u8; len + 3];
    ib.read_at(&mut dst[3..], 4 * MIB).expect("unaligned read");
    assert_eq!(&dst[3..], &data[..]);
    // Small unaligned I/O too.
    ib.write_at(&src[1..513], 512, false).expect("small write");
    let mut small = vec![0u8; 513];
    ib.read_at(&mut small[1..], 512).expect("small read");
    assert_eq!(&small[1..], &data[..512]);
}

#[test]
fn data_written_through_iblock_is_on_the_device() {
    let Some(fx) = fixture(8 * MIB, false) else {
        return;
    };
    {
        let ib = open(&fx);
        ib.write_at(&common::pattern(4096, 5, 9), 8192, true)
            .expect("fua write");
    }
    let raw = std::fs::read(&fx.lo.dev).expect("read device");
    assert_eq!(&raw[8192..12288], &common::pattern(4096, 5, 9)[..]);
}

#[test]
fn offsets_and_lengths_off_the_logical_block_are_rejected() {
    let Some(fx) = fixture(8 * MIB, false) else {
        return;
    };
    let ib = open(&fx);
    let mut buf = vec![0u8; 1024];
    let err = ib.read_at(&mut buf, 100).expect_err("unaligned offset");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let err = ib
        .write_at(&buf[..700], 0, false)
        .expect_err("unaligned length");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn concurrent_writers_to_distinct_blocks_all_land() {
    let Some(fx) = fixture(8 * MIB, false) else {
        return;
    };
    let ib: Arc<dyn Backstore> = Arc::new(open(&fx));
    common::check_concurrent_distinct_writes(ib, 2048);
}

#[test]
fn second_open_of_a_claimed_device_is_busy() {
    let Some(fx) = fixture(8 * MIB, false) else {
        return;
    };
    let first = open(&fx);
    let err = IBlock::open(&IBlockOptions::new(&fx.lo.dev)).expect_err("second open");
    assert!(matches!(err, CreateError::DeviceBusy { .. }), "{err}");
    assert!(err.to_string().contains("device busy"));
    // fileio on the same device is refused too: it claims block devices as well.
    let err = FileIo::open(&FileIoOptions::new(&fx.lo.dev)).expect_err("fileio while claimed");
    assert!(matches!(err, CreateError::DeviceBusy { .. }), "{err}");
    drop(first);
    IBlock::open(&IBlockOptions::new(&fx.lo.dev)).expect("open after release");
}

#[test]
fn readonly_option_opens_and_refuses_writes() {
    let Some(fx) = fixture(8 * MIB, false) else {
        return;
    };
    let mut o = IBlockOptions::new(&fx.lo.dev);
    o.readonly = true;
    let ib = IBlock::open(&o).expect("open readonly");
    assert!(ib.read_only());
    assert!(!ib.write_cache());
    let err = ib.write_at(&[0u8; 512], 0, false).expect_err("write");
    assert_eq!(err.raw_os_error(), Some(30)); // EROFS
    let mut buf = vec![1u8; 4096];
    ib.read_at(&mut buf, 0).expect("read");
    assert!(buf.iter().all(|b| *b == 0));
}

#[test]
fn read_only_device_opened_for_writing_is_reported() {
    let Some(fx) = fixture(8 * MIB, true) else {
        return;
    };
    let err = IBlock::open(&IBlockOptions::new(&fx.lo.dev)).expect_err("rw open of ro device");
    assert!(matches!(err, CreateError::ReadOnly { .. }), "{err}");
    assert!(err.to_string().contains("readonly=1"));
    let err =
        FileIo::open(&FileIoOptions::new(&fx.lo.dev)).expect_err("fileio rw open of ro device");
    assert!(matches!(err, CreateError::ReadOnly { .. }), "{err}");
    let mut o = IBlockOptions::new(&fx.lo.dev);
    o.readonly = true;
    IBlock::open(&o).expect("readonly open of ro device");
}

#[test]
fn missing_paths_and_non_devices_are_refused() {
    let err =
        IBlock::open(&IBlockOptions::new("/dev/ironlun-no-such-device")).expect_err("missing");
    assert!(matches!(err, CreateError::MissingPath { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "/dev/ironlun-no-such-device: no such file or device"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::backing_file(dir.path(), "plain.img", MIB);
    let err = IBlock::open(&IBlockOptions::new(&file)).expect_err("regular file");
    assert!(matches!(err, CreateError::NotBlockDevice { .. }), "{err}");
    let err = IBlock::open(&IBlockOptions::new("/dev/null")).expect_err("char device");
    assert!(matches!(err, CreateError::NotBlockDevice { .. }), "{err}");
}

#[test]
fn fileio_on_a_block_device_takes_its_size_or_a_prefix() {
    let Some(fx) = fixture(16 * MIB, false) else {
        return;
    };
    {
        let fio = FileIo::open(&FileIoOptions::new(&fx.lo.dev)).expect("fileio on device");
        assert_eq!(fio.size(), 16 * MIB);
        assert_eq!(fio.hw_block_size(), 512);
        common::check_read_after_write(&fio);
    }
    {
        let mut o = FileIoOptions::new(&fx.lo.dev);
        o.size = Some(4 * MIB);
        let fio = FileIo::open(&o).expect("prefix");
        assert_eq!(fio.size(), 4 * MIB);
    }
    let mut o = FileIoOptions::new(&fx.lo.dev);
    o.size = Some(32 * MIB);
    let err = FileIo::open(&o).expect_err("larger than device");
    assert!(
        matches!(err, CreateError::SizeTooLarge { size, device_size, .. } if size == 32 * MIB && device_size == 16 * MIB),
        "{err}"
    );
    assert!(err.to_string().contains("larger than the device"));
}

#[test]
fn spec_opens_iblock() {
    let Some(fx) = fixture(4 * MIB, false) else {
        return;
    };
    let spec = BackstoreSpec::IBlock(IBlockOptions::new(&fx.lo.dev));
    assert_eq!(spec.kind(), "iblock");
    assert_eq!(spec.path(), Some(&fx.lo.dev));
    let store = spec.open().expect("open");
    assert_eq!(store.size(), 4 * MIB);
}

#[test]
fn a_4096_byte_sector_device_reports_and_enforces_its_block_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::backing_file(dir.path(), "4k.img", 8 * MIB);
    let Some(lo) = LoopDevice::attach_with(&file, false, Some(4096)) else {
        return;
    };
    let ib = IBlock::open(&IBlockOptions::new(&lo.dev)).expect("open");
    assert_eq!(ib.hw_block_size(), 4096);
    common::check_read_after_write(&ib);
    // A 512-byte aligned but 4096-unaligned offset cannot be done with O_DIRECT here.
    let mut buf = vec![0u8; 4096];
    let err = ib
        .read_at(&mut buf, 512)
        .expect_err("512-aligned offset on 4K device");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    // Unaligned caller memory still works through the bounce buffers.
    let data = common::pattern(4096, 77, 1);
    let mut src = vec![0u8; 4096 + 512];
    src[512..].copy_from_slice(&data);
    ib.write_at(&src[512..], 8192, false)
        .expect("write from 512-aligned memory");
    ib.read_at(&mut buf, 8192).expect("read");
    assert_eq!(buf, data);
}
