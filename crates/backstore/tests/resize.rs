//! Live capacity changes of every kind: rd_mcp grow/shrink (also under concurrent I/O),
//! fileio set_len on regular files, and rescans of loop devices resized underneath
//! (`truncate` the backing file, then `losetup -c`).
mod common;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use common::LoopDevice;
use ironlun_backstore::{
    Backstore, FileIo, FileIoOptions, IBlock, IBlockOptions, RamDisk, RAMDISK_CHUNK,
};

const MIB: u64 = 1024 * 1024;
const CHUNK: u64 = RAMDISK_CHUNK as u64;

fn read(store: &dyn Backstore, off: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0xeeu8; len];
    store.read_at(&mut buf, off).expect("read");
    buf
}

fn zeroes(v: &[u8]) -> bool {
    v.iter().all(|b| *b == 0)
}

#[test]
fn ramdisk_grows_keeping_data_and_the_new_space_reads_as_zeroes() {
    let rd = RamDisk::new(MIB).expect("ramdisk");
    let head = common::pattern(4096, 0, 1);
    rd.write_at(&head, 0, false).expect("write");
    let mut buf = [0u8; 512];
    assert!(
        rd.read_at(&mut buf, MIB).is_err(),
        "past the end before growing"
    );

    assert_eq!(rd.resize(64 * MIB).expect("grow"), 64 * MIB);
    assert_eq!(rd.size(), 64 * MIB);
    assert_eq!(read(&rd, 0, 4096), head);
    assert!(zeroes(&read(&rd, MIB, 4096)));
    assert!(zeroes(&read(&rd, 64 * MIB - 512, 512)));
    // The grown part spans groups that did not exist before.
    let far = common::pattern(8192, 9, 2);
    rd.write_at(&far, 63 * MIB, false)
        .expect("write past the old end");
    assert_eq!(read(&rd, 63 * MIB, 8192), far);
    assert!(rd.info().contains(&format!("size={}", 64 * MIB)));
}

#[test]
fn ramdisk_shrink_frees_dropped_chunks_and_regrowing_shows_zeroes() {
    let rd = RamDisk::new(32 * MIB).expect("ramdisk");
    for i in 0..8u64 {
        rd.write_at(&[0xa0 + i as u8; 4096], i * 4 * MIB, false)
            .expect("write");
    }
    // Fill a whole chunk, then cut it in the middle.
    rd.write_at(&vec![0x55u8; RAMDISK_CHUNK], 2 * CHUNK, false)
        .expect("write chunk");
    assert_eq!(rd.allocated_bytes(), 9 * CHUNK);

    let cut = 2 * CHUNK + 4096;
    assert_eq!(rd.resize(cut).expect("shrink"), cut);
    assert_eq!(rd.size(), cut);
    // Chunk 0 (offset 0) and chunk 2 (the cut one) remain.
    assert_eq!(rd.allocated_bytes(), 2 * CHUNK);
    let mut buf = [0u8; 4096];
    assert!(rd.read_at(&mut buf, cut).is_err());
    assert!(rd.write_at(&buf, cut, false).is_err());
    assert!(read(&rd, 2 * CHUNK, 4096).iter().all(|b| *b == 0x55));

    rd.resize(32 * MIB).expect("grow again");
    assert!(zeroes(&read(&rd, cut, RAMDISK_CHUNK - 4096)), "cut tail");
    assert!(zeroes(&read(&rd, 4 * MIB, 4096)), "freed chunk");
    assert!(read(&rd, 0, 4096).iter().all(|b| *b == 0xa0));
}

#[test]
fn ramdisk_refuses_zero_and_unaligned_sizes_and_keeps_its_size() {
    let rd = RamDisk::new(MIB).expect("ramdisk");
    for bad in [0, MIB + 1, 2 * MIB - 100] {
        let e = rd.resize(bad).expect_err("bad size");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().starts_with("ramdisk: size"), "{e}");
        assert_eq!(rd.size(), MIB);
    }
    let e = rd.rescan().expect_err("no device");
    assert_eq!(e.kind(), io::ErrorKind::Unsupported);
}

#[test]
fn ramdisk_grows_and_shrinks_under_concurrent_io() {
    const THREADS: u64 = 4;
    const BLOCK: usize = 4096;
    const OWN: u64 = 64; // blocks each thread owns below the smallest size
                         // The owned blocks fill the first MiB; the disk never gets smaller than 2 MiB, so the
                         // far-end writes below never touch them.
    const MIN: u64 = 2 * MIB;
    let rd: Arc<RamDisk> = Arc::new(RamDisk::new(MIN).expect("ramdisk"));
    let stop = Arc::new(AtomicBool::new(false));
    let rounds_done: Arc<Vec<AtomicU64>> =
        Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect());
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let rd = Arc::clone(&rd);
            let stop = Arc::clone(&stop);
            let rounds_done = Arc::clone(&rounds_done);
            thread::spawn(move || {
                let mut round = 0u8;
                while !stop.load(Ordering::Relaxed) {
                    round = round.wrapping_add(1);
                    for i in 0..OWN {
                        let lba = i * THREADS + t;
                        let off = lba * BLOCK as u64;
                        let data = common::pattern(BLOCK, lba, round);
                        rd.write_at(&data, off, false)
                            .expect("write below the old end");
                        let mut back = vec![0u8; BLOCK];
                        rd.read_at(&mut back, off).expect("read below the old end");
                        assert!(back == data, "block {lba} round {round} reads wrong");
                    }
                    // Also touch the far end of whatever size the disk has right now: it
                    // may shrink between the size check and the I/O, which must then fail
                    // cleanly rather than panic or corrupt anything.
                    let end = rd.size();
                    let _ = rd.write_at(&[round | 1; BLOCK], end - BLOCK as u64, false);
                    rounds_done[t as usize].fetch_add(1, Ordering::Relaxed);
                }
                round
            })
        })
        .collect();
    // Resize until every worker has run a few rounds across resizes.
    let mut step = 0u64;
    while step < 40 || rounds_done.iter().any(|r| r.load(Ordering::Relaxed) < 3) {
        step += 1;
        let size = if step.is_multiple_of(4) {
            MIN
        } else {
            (step % 40) * 3 * MIB + MIN
        };
        rd.resize(size).expect("resize while I/O runs");
        assert_eq!(rd.size(), size);
        thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    let rounds: Vec<u8> = workers
        .into_iter()
        .map(|w| w.join().expect("worker"))
        .collect();
    for t in 0..THREADS {
        for i in 0..OWN {
            let lba = i * THREADS + t;
            let expect = common::pattern(BLOCK, lba, rounds[t as usize]);
            assert!(
                read(&*rd, lba * BLOCK as u64, BLOCK) == expect,
                "block {lba} lost its data"
            );
        }
    }
    // Everything allocated lies inside the final size: shrinking to 1 MiB frees the rest.
    rd.resize(MIB).expect("final shrink");
    assert!(rd.allocated_bytes() <= MIB, "{}", rd.allocated_bytes());
}

fn file_opts(path: &std::path::Path, size: Option<u64>) -> FileIoOptions {
    FileIoOptions {
        size,
        ..FileIoOptions::new(path)
    }
}

#[test]
fn fileio_file_grows_with_set_len_and_a_reopen_sees_the_new_length() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lun.img");
    {
        let fio = FileIo::open(&file_opts(&path, Some(MIB))).expect("create");
        let head = common::pattern(4096, 0, 3);
        fio.write_at(&head, 0, false).expect("write");
        assert_eq!(fio.resize(8 * MIB).expect("grow"), 8 * MIB);
        assert_eq!(fio.size(), 8 * MIB);
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 8 * MIB);
        assert!(zeroes(&read(&fio, MIB, 4096)));
        let tail = common::pattern(4096, 7, 3);
        fio.write_at(&tail, 8 * MIB - 4096, true)
            .expect("write past the old end");
        assert_eq!(read(&fio, 0, 4096), head);
        assert!(fio.info().contains(&format!("size={}", 8 * MIB)));
    }
    let fio = FileIo::open(&file_opts(&path, Some(8 * MIB))).expect("reopen with new size");
    assert_eq!(fio.size(), 8 * MIB);
    assert_eq!(
        read(&fio, 8 * MIB - 4096, 4096),
        common::pattern(4096, 7, 3)
    );
}

#[test]
fn fileio_file_shrinks_discarding_the_tail_and_refuses_bad_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lun.img");
    let fio = FileIo::open(&file_opts(&path, Some(4 * MIB))).expect("create");
    fio.write_at(&[9u8; 4096], 3 * MIB, false).expect("write");
    assert_eq!(fio.resize(2 * MIB).expect("shrink"), 2 * MIB);
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), 2 * MIB);
    let mut buf = [0u8; 4096];
    assert!(fio.write_at(&buf, 3 * MIB, false).is_err());
    fio.resize(4 * MIB).expect("grow back");
    fio.read_at(&mut buf, 3 * MIB).expect("read");
    assert!(zeroes(&buf), "data past a shrink is gone");

    for bad in [0, 4 * MIB + 100] {
        let e = fio.resize(bad).expect_err("bad size");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(
            e.to_string().starts_with(&path.display().to_string()),
            "{e}"
        );
    }
    assert_eq!(fio.size(), 4 * MIB);
    let e = fio.rescan().expect_err("regular file");
    assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    assert!(e.to_string().contains("use size="), "{e}");
}

#[test]
fn readonly_fileio_file_cannot_be_resized() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::backing_file(dir.path(), "ro.img", MIB);
    let fio = FileIo::open(&FileIoOptions {
        readonly: true,
        ..FileIoOptions::new(&path)
    })
    .expect("open read-only");
    let e = fio.resize(2 * MIB).expect_err("read-only");
    assert!(e.to_string().contains("opened read-only"), "{e}");
    assert_eq!(fio.size(), MIB);
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), MIB);
}

/// A loop device over a backing file that the test can grow.
struct Fixture {
    lo: LoopDevice,
    file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn fixture(size: u64) -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::backing_file(dir.path(), "backing.img", size);
    let lo = LoopDevice::attach(&file, false)?;
    Some(Fixture {
        lo,
        file,
        _dir: dir,
    })
}

impl Fixture {
    /// `truncate -s <size>` on the backing file, then `losetup -c`.
    fn grow_device(&self, size: u64) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.file)
            .expect("open backing file");
        f.set_len(size).expect("truncate backing file");
        self.lo.refresh_capacity();
    }
}

#[test]
fn iblock_rescan_picks_up_a_grown_loop_device() {
    let Some(fx) = fixture(8 * MIB) else {
        return;
    };
    let ib = IBlock::open(&IBlockOptions::new(&fx.lo.dev)).expect("open iblock");
    ib.write_at(&common::pattern(4096, 0, 5), 0, false)
        .expect("write");
    fx.grow_device(16 * MIB);
    assert_eq!(ib.size(), 8 * MIB, "nothing changes until the rescan");
    let mut buf = vec![0u8; 4096];
    assert!(ib.read_at(&mut buf, 12 * MIB).is_err());

    let e = ib.resize(32 * MIB).expect_err("not the device's size");
    assert!(e.to_string().contains("differs from the device's"), "{e}");
    assert_eq!(ib.size(), 8 * MIB);

    assert_eq!(ib.rescan().expect("rescan"), 16 * MIB);
    assert_eq!(ib.size(), 16 * MIB);
    let data = common::pattern(4096, 3, 5);
    ib.write_at(&data, 12 * MIB, true)
        .expect("write past the old end");
    ib.read_at(&mut buf, 12 * MIB).expect("read back");
    assert_eq!(buf, data);
    ib.read_at(&mut buf, 0).expect("read head");
    assert_eq!(buf, common::pattern(4096, 0, 5));

    fx.grow_device(24 * MIB);
    assert_eq!(
        ib.resize(24 * MIB).expect("size equal to the device"),
        24 * MIB
    );
}

#[test]
fn fileio_on_a_loop_device_rescans_and_resizes_its_prefix() {
    let Some(fx) = fixture(8 * MIB) else {
        return;
    };
    let fio = FileIo::open(&FileIoOptions::new(&fx.lo.dev)).expect("fileio on device");
    fx.grow_device(16 * MIB);
    assert_eq!(fio.rescan().expect("rescan"), 16 * MIB);
    fio.write_at(&[4u8; 4096], 15 * MIB, false)
        .expect("write past the old end");
    assert_eq!(fio.resize(4 * MIB).expect("prefix"), 4 * MIB);
    let e = fio.resize(17 * MIB).expect_err("larger than the device");
    assert!(e.to_string().contains("larger than the device"), "{e}");
    assert_eq!(fio.size(), 4 * MIB);
}
