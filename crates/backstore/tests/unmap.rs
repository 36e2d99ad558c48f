//! Deallocation (SBC-3 §4.7 logical block provisioning) on every backstore kind: unmap frees
//! space (st_blocks of a file, RAM chunks, the loop device's backing file), the range reads as
//! zeroes, the rest is untouched, and `provisioning` reports the extents. iblock runs on a
//! loop device when one can be attached (IRONLUN_REQUIRE_LOOP=1 makes its absence a failure).
mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::LoopDevice;
use ironlun_backstore::{
    Backstore, Extent, FileIo, FileIoOptions, IBlock, IBlockOptions, Provisioning, RamDisk,
};

const MIB: u64 = 1024 * 1024;

fn allocated(p: &Path) -> u64 {
    std::fs::metadata(p).expect("stat").blocks() * 512
}

fn write(store: &dyn Backstore, off: u64, len: u64, byte: u8) {
    store
        .write_at(&vec![byte; len as usize], off, false)
        .expect("write");
}

fn read(store: &dyn Backstore, off: u64, len: u64) -> Vec<u8> {
    let mut b = vec![0xEEu8; len as usize];
    store.read_at(&mut b, off).expect("read");
    b
}

#[test]
fn fileio_regular_file_punches_holes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("thin.img");
    let mut o = FileIoOptions::new(&path);
    o.size = Some(16 * MIB);
    let f = FileIo::open(&o).expect("open");
    assert!(f.supports_unmap());
    assert!(f.unmap_zeroes());
    assert!(f.unmap_granularity() >= 512);
    write(&f, 0, 8 * MIB, 0xAB);
    f.flush().expect("flush");
    let before = allocated(&path);
    assert!(before >= 8 * MIB, "{before}");
    f.unmap(MIB, 4 * MIB).expect("unmap");
    let after = allocated(&path);
    assert!(before - after >= 4 * MIB, "freed only {}", before - after);
    assert!(read(&f, MIB, 4 * MIB).iter().all(|b| *b == 0));
    assert!(read(&f, 0, MIB).iter().all(|b| *b == 0xAB));
    assert!(read(&f, 5 * MIB, 3 * MIB).iter().all(|b| *b == 0xAB));
    let ext = f.provisioning(0, 16 * MIB, 16).expect("status");
    assert_eq!(
        ext,
        vec![
            Extent {
                off: 0,
                len: MIB,
                state: Provisioning::Mapped
            },
            Extent {
                off: MIB,
                len: 4 * MIB,
                state: Provisioning::Deallocated
            },
            Extent {
                off: 5 * MIB,
                len: 3 * MIB,
                state: Provisioning::Mapped
            },
            Extent {
                off: 8 * MIB,
                len: 8 * MIB,
                state: Provisioning::Deallocated
            },
        ]
    );
    // At most `max` extents; out of range refused.
    assert_eq!(f.provisioning(0, 16 * MIB, 2).expect("status").len(), 2);
    assert!(f.unmap(16 * MIB - 512, 1024).is_err());
    assert!(f.provisioning(16 * MIB, 512, 1).is_err());
    // A partial block in the middle is zeroed, its neighbours kept.
    f.unmap(100, 0).expect("empty");
    f.unmap(512, 512).expect("one sector");
    assert!(read(&f, 512, 512).iter().all(|b| *b == 0));
    assert!(read(&f, 0, 512).iter().all(|b| *b == 0xAB));
}

#[test]
fn fileio_read_only_cannot_unmap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ro.img");
    std::fs::write(&path, vec![1u8; MIB as usize]).expect("file");
    let mut o = FileIoOptions::new(&path);
    o.readonly = true;
    let f = FileIo::open(&o).expect("open");
    assert!(!f.supports_unmap());
    assert!(f.unmap(0, 512).is_err());
    assert_eq!(read(&f, 0, 512), vec![1u8; 512]);
}

#[test]
fn ramdisk_frees_whole_chunks_and_zeroes_partial_ones() {
    let r = RamDisk::new(4 * MIB + 512).expect("ramdisk");
    assert!(r.supports_unmap() && r.unmap_zeroes());
    write(&r, 0, 4 * MIB + 512, 0x11);
    let chunk = ironlun_backstore::RAMDISK_CHUNK as u64;
    let all = r.allocated_bytes();
    // Two whole chunks plus 512 bytes on either side.
    r.unmap(chunk - 512, 2 * chunk + 1024).expect("unmap");
    assert_eq!(r.allocated_bytes(), all - 2 * chunk);
    assert!(read(&r, chunk - 512, 2 * chunk + 1024)
        .iter()
        .all(|b| *b == 0));
    assert!(read(&r, 0, chunk - 512).iter().all(|b| *b == 0x11));
    assert!(read(&r, 3 * chunk + 512, 512).iter().all(|b| *b == 0x11));
    // The short last chunk counts as whole.
    r.unmap(4 * MIB, 512).expect("tail");
    assert_eq!(r.allocated_bytes(), all - 3 * chunk);
    let ext = r.provisioning(0, 4 * MIB + 512, 8).expect("status");
    assert_eq!(
        ext,
        vec![
            Extent {
                off: 0,
                len: chunk,
                state: Provisioning::Mapped
            },
            Extent {
                off: chunk,
                len: 2 * chunk,
                state: Provisioning::Deallocated
            },
            Extent {
                off: 3 * chunk,
                len: 4 * MIB - 3 * chunk,
                state: Provisioning::Mapped
            },
            Extent {
                off: 4 * MIB,
                len: 512,
                state: Provisioning::Deallocated
            },
        ]
    );
    // A chunk zeroed piecewise is freed once nothing in it is left.
    r.unmap(0, chunk / 2).expect("half");
    r.unmap(chunk / 2, chunk / 2).expect("other half");
    assert_eq!(r.allocated_bytes(), all - 4 * chunk);
}

#[test]
fn iblock_on_a_loop_device_discards_into_the_backing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::backing_file(dir.path(), "backing.img", 16 * MIB);
    let Some(lo) = LoopDevice::attach(&file, false) else {
        return;
    };
    let ib = IBlock::open(&IBlockOptions::new(&lo.dev)).expect("open iblock");
    assert!(ib.supports_unmap(), "loop devices accept discards");
    assert!(
        ib.unmap_zeroes(),
        "a loop device's discard punches its file"
    );
    write(&ib, 0, 8 * MIB, 0x5A);
    ib.flush().expect("flush");
    let before = allocated(&file);
    ib.unmap(0, 4 * MIB).expect("discard");
    assert!(read(&ib, 0, 4 * MIB).iter().all(|b| *b == 0));
    assert!(read(&ib, 4 * MIB, 4 * MIB).iter().all(|b| *b == 0x5A));
    let after = allocated(&file);
    assert!(before - after >= 4 * MIB, "freed only {}", before - after);
    // A block device does not say which blocks hold space: all mapped.
    let ext = ib.provisioning(0, 16 * MIB, 4).expect("status");
    assert_eq!(
        ext,
        vec![Extent {
            off: 0,
            len: 16 * MIB,
            state: Provisioning::Mapped
        }]
    );
    drop(ib);
    drop(lo);
}

#[test]
fn fileio_on_a_4k_block_device_zeroes_the_unaligned_edges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::backing_file(dir.path(), "backing4k.img", 16 * MIB);
    let Some(lo) = LoopDevice::attach_with(&file, false, Some(4096)) else {
        return;
    };
    let f = FileIo::open(&FileIoOptions::new(&lo.dev)).expect("open fileio on loop");
    assert_eq!(f.hw_block_size(), 4096);
    assert!(f.supports_unmap() && f.unmap_zeroes());
    write(&f, 0, 4 * MIB, 0x77);
    f.flush().expect("flush");
    // 512-byte aligned, not 4096-aligned, at both ends: BLKDISCARD alone would refuse it.
    f.unmap(512, 3 * MIB - 1024).expect("unaligned unmap");
    assert_eq!(read(&f, 0, 512), vec![0x77; 512]);
    assert!(read(&f, 512, 3 * MIB - 1024).iter().all(|b| *b == 0));
    assert_eq!(read(&f, 3 * MIB - 512, 512), vec![0x77; 512]);
    // Within one device block: only zeroes are written.
    f.unmap(3 * MIB + 1024, 1024).expect("sub-block unmap");
    assert!(read(&f, 3 * MIB + 1024, 1024).iter().all(|b| *b == 0));
    assert_eq!(read(&f, 3 * MIB, 1024), vec![0x77; 1024]);
    drop(f);
    drop(lo);
}
