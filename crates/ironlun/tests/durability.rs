//! Data durability across `kill -9` of the daemon (DESIGN "State and persistence"; SBC-3
//! WRITE(16) FUA and SYNCHRONIZE CACHE(16); the caching mode page WCE bit): writes acknowledged
//! as durable — WRITE(16) with FUA=1, or plain writes followed by SYNCHRONIZE CACHE — are
//! intact after the daemon is SIGKILLed and restarted on the same state directory, and the
//! saved configuration (the LUN, the backstore and its cache mode) comes back. Run for a
//! fileio LU in write-back mode (the default), in write-through mode, and for iblock on a
//! loop device.
//!
//! A process kill cannot lose what is in the page cache, so for fileio the test also asks
//! the kernel (cachestat(2), Linux 6.5+) whether the pages of an acknowledged-durable range
//! are still dirty right after the acknowledgement: they must not be. That check only runs
//! on a file system with writeback (not tmpfs) and a kernel that has cachestat.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use ironlun_initiator::iscsi::pdu::task_attr;
use ironlun_initiator::scsi::cdb;
use ironlun_initiator::Session;
use support::*;

/// Our daemons' ports (3420-3449 of helper H6's 3400-3449).
const PORTS: std::ops::Range<u16> = 3420..3450;
const LUN: u64 = 1;
/// 64 MiB backing store: 131072 blocks of 512.
const SIZE: u64 = 64 << 20;
const BLOCKS: u64 = SIZE / BLOCK as u64;

/// A range written and how it was made durable.
#[derive(Clone, Copy, Debug)]
struct Extent {
    lba: u64,
    blocks: u32,
    seed: u32,
}

impl Extent {
    fn data(&self) -> Vec<u8> {
        pattern(self.seed, self.blocks as usize * BLOCK as usize)
    }
    fn offset(&self) -> u64 {
        self.lba * u64::from(BLOCK)
    }
    fn len(&self) -> u64 {
        u64::from(self.blocks) * u64::from(BLOCK)
    }
}

const fn ext(lba: u64, blocks: u32, seed: u32) -> Extent {
    Extent { lba, blocks, seed }
}

/// Written with FUA=1 (the first one is overwritten by the second: the later data counts).
const FUA_FIRST: Extent = ext(0, 64, 10);
const FUA: [Extent; 3] = [ext(0, 64, 11), ext(5000, 8, 12), ext(BLOCKS - 16, 16, 13)];
/// Plain writes, then SYNCHRONIZE CACHE(16) of the whole LU.
const SYNC_ALL: [Extent; 2] = [ext(2048, 128, 21), ext(70_001, 1, 22)];
/// A plain write, then SYNCHRONIZE CACHE(16) of just its range.
const SYNC_RANGE: Extent = ext(90_000, 32, 23);
/// A plain write never synchronized: not required to survive in write-back mode.
const VOLATILE: Extent = ext(100_000, 8, 31);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    FileWriteBack,
    FileWriteThrough,
    Iblock,
}

#[tokio::test]
async fn fileio_write_back_survives_kill9() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("wb.img");
    let arg = format!("path={}", img.display());
    run(
        Mode::FileWriteBack,
        "core/fileio_0/wb",
        &[&arg, "size=64M"],
        &img,
    )
    .await;
}

#[tokio::test]
async fn fileio_write_through_survives_kill9() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("wt.img");
    let arg = format!("path={}", img.display());
    run(
        Mode::FileWriteThrough,
        "core/fileio_1/wt",
        &[&arg, "size=64M", "write_back=0"],
        &img,
    )
    .await;
}

/// Without loop devices the iblock test cannot run: say so, or fail where the environment
/// promises them (CI sets IRONLUN_REQUIRE_LOOP=1, as the backstore tests do).
fn skip(why: &str) {
    assert!(
        std::env::var_os("IRONLUN_REQUIRE_LOOP").is_none(),
        "iblock_survives_kill9 needs a loop device: {why}"
    );
    println!("SKIP iblock_survives_kill9: {why}");
}

#[tokio::test]
async fn iblock_survives_kill9() {
    let tmp = tempfile::tempdir().unwrap();
    let backing = tmp.path().join("loop.img");
    std::fs::File::create(&backing)
        .and_then(|f| f.set_len(SIZE))
        .unwrap();
    let lo = match LoopDevice::attach(&backing) {
        Ok(lo) => lo,
        Err(why) => return skip(&why),
    };
    let arg = format!("path={}", lo.dev.display());
    run(Mode::Iblock, "core/iblock_0/d0", &[&arg], &lo.dev).await;
    drop(lo);
}

/// Pages of `path` in `[off, off + len)` that are dirty or under writeback, per
/// cachestat(2); `None` when the kernel or file system cannot tell us (no cachestat, tmpfs).
fn unflushed_pages(path: &Path, off: u64, len: u64) -> Option<(u64, u64)> {
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    /// cachestat's number in the unified syscall table (all architectures).
    const SYS_CACHESTAT: libc::c_long = 451;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let f = std::fs::File::open(path).ok()?;
    use std::os::fd::AsRawFd;
    let mut fs: libc::statfs = unsafe {
        // SAFETY: statfs is plain data; all-zero is a valid value to be overwritten.
        std::mem::zeroed()
    };
    // SAFETY: a valid descriptor and a pointer to a properly sized statfs.
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut fs) } != 0 || fs.f_type as i64 == TMPFS_MAGIC {
        return None;
    }
    let range = Range { off, len };
    let mut st = Stat::default();
    // SAFETY: cachestat(fd, *range, *stat, flags=0) reads `range` and writes `st`, both
    // live and of the layout the kernel's uapi defines.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            f.as_raw_fd(),
            &range as *const Range,
            &mut st as *mut Stat,
            0u32,
        )
    };
    if r != 0 || st.nr_cache == 0 {
        // No cachestat, or nothing cached to judge by.
        return None;
    }
    Some((st.nr_dirty, st.nr_writeback))
}

/// An acknowledged-durable range of a fileio image must have no dirty or in-flight pages.
fn assert_flushed(mode: Mode, img: &Path, e: Extent, how: &str) {
    if mode == Mode::Iblock {
        return; // O_DIRECT: the page cache is not involved.
    }
    match unflushed_pages(img, e.offset(), e.len()) {
        Some((dirty, writeback)) => assert_eq!(
            (dirty, writeback),
            (0, 0),
            "{mode:?}: {how} at LBA {} acknowledged, but {dirty} pages are dirty and \
             {writeback} under writeback: the target did not make it durable",
            e.lba
        ),
        None => println!(
            "{mode:?}: cachestat unavailable here; durability of {how} checked by read-back only"
        ),
    }
}

async fn write(s: &Session, e: Extent, fua: bool) {
    good(
        guard("write", s.write16(LUN, e.lba, e.data(), BLOCK, fua)).await,
        &format!("WRITE(16) FUA={} at LBA {}", u8::from(fua), e.lba),
    );
}

async fn read(s: &Session, e: Extent) -> Vec<u8> {
    good(
        guard("read", s.read16(LUN, e.lba, e.blocks, BLOCK)).await,
        &format!("READ(16) at LBA {}", e.lba),
    )
    .to_vec()
}

/// WCE of the caching mode page (page 08h, SBC-3), current values.
async fn wce(s: &Session) -> bool {
    let d = good(
        guard("MODE SENSE(10)", s.mode_sense10(LUN, 0, 0x08, 0, 255)).await,
        "MODE SENSE(10) caching page",
    );
    let bdl = usize::from(u16::from_be_bytes([d[6], d[7]]));
    let page = &d[8 + bdl..];
    assert_eq!(page[0] & 0x3f, 0x08, "caching page expected: {d:02x?}");
    page[2] & 0x04 != 0
}

async fn run(mode: Mode, dev: &str, create: &[&str], backing: &Path) {
    let mut d = Daemon::start_in(PORTS);
    let mut args = vec!["create", dev];
    args.extend_from_slice(create);
    d.cli(&args);
    let lun_path = format!("{TPG}/lun/lun_{LUN}");
    d.cli(&["create", &lun_path, &format!("dev={dev}")]);

    let s = login_at(d.addr(), normal(&format!("durable-{}", d.port)), LUN).await;
    match mode {
        Mode::FileWriteBack => assert!(wce(&s).await, "write-back fileio must report WCE=1"),
        Mode::FileWriteThrough => assert!(!wce(&s).await, "write-through fileio must report WCE=0"),
        Mode::Iblock => {}
    }
    check_open_mode(&d, mode, backing);

    write(&s, FUA_FIRST, true).await;
    for e in FUA {
        write(&s, e, true).await;
        assert_flushed(mode, backing, e, "a FUA write");
    }
    for e in SYNC_ALL {
        write(&s, e, false).await;
    }
    good(
        guard("SYNCHRONIZE CACHE", s.sync_cache(LUN)).await,
        "SYNCHRONIZE CACHE(16) of the LU",
    );
    for e in SYNC_ALL {
        assert_flushed(mode, backing, e, "a write followed by SYNCHRONIZE CACHE");
    }
    write(&s, SYNC_RANGE, false).await;
    let sync = cdb::sync_cache16(SYNC_RANGE.lba, SYNC_RANGE.blocks);
    good(
        guard(
            "SYNCHRONIZE CACHE range",
            s.command(LUN, &sync, None, 0, task_attr::SIMPLE),
        )
        .await,
        "SYNCHRONIZE CACHE(16) of a range",
    );
    assert_flushed(
        mode,
        backing,
        SYNC_RANGE,
        "a write followed by a ranged SYNCHRONIZE CACHE",
    );
    write(&s, VOLATILE, false).await;
    match mode {
        // Write-through: every acknowledged write is durable, FUA or not.
        Mode::FileWriteThrough => assert_flushed(
            mode,
            backing,
            VOLATILE,
            "a plain write in write-through mode",
        ),
        // Write-back: the plain write may sit in the cache (shows the check can see dirt).
        Mode::FileWriteBack => println!(
            "{mode:?}: plain write without FUA: (dirty, writeback) pages = {:?}",
            unflushed_pages(backing, VOLATILE.offset(), VOLATILE.len())
        ),
        Mode::Iblock => {}
    }
    drop(s);

    let durable: Vec<Extent> = FUA
        .iter()
        .chain(SYNC_ALL.iter())
        .chain([SYNC_RANGE].iter())
        .copied()
        .collect();

    let st = d.kill9();
    assert_eq!(st.signal(), Some(libc::SIGKILL), "daemon exit: {st:?}");

    if mode != Mode::Iblock {
        // The data is where the LBAs say, in the image file itself.
        let f = std::fs::File::open(backing).unwrap();
        for e in &durable {
            let mut buf = vec![0u8; e.len() as usize];
            f.read_exact_at(&mut buf, e.offset()).unwrap();
            assert!(
                buf == e.data(),
                "{mode:?}: image file content differs at LBA {}",
                e.lba
            );
        }
    }

    d.restart();
    // The saved configuration came back: the LUN, the device, its cache mode.
    let luns = d.cli(&["ls", &format!("{TPG}/lun")]);
    assert!(
        luns.contains(&format!("lun_{LUN} -> {dev}")),
        "LUN {LUN} not restored: {luns}"
    );
    let control = d.cli(&["get", &format!("{dev}/control")]);
    match mode {
        Mode::FileWriteBack => assert!(control.contains("write_back=1"), "{control}"),
        Mode::FileWriteThrough => assert!(control.contains("write_back=0"), "{control}"),
        Mode::Iblock => assert!(
            control.contains(&backing.display().to_string()),
            "{control}"
        ),
    }
    check_open_mode(&d, mode, backing);

    let s = login_at(d.addr(), normal(&format!("durable-again-{}", d.port)), LUN).await;
    let cap = guard("READ CAPACITY(16)", s.read_capacity16(LUN))
        .await
        .unwrap();
    assert_eq!((cap.blocks(), cap.block_size), (BLOCKS, BLOCK));
    match mode {
        Mode::FileWriteBack => assert!(wce(&s).await, "WCE after restart"),
        Mode::FileWriteThrough => assert!(!wce(&s).await, "WCE after restart"),
        Mode::Iblock => {}
    }
    for e in &durable {
        let back = read(&s, *e).await;
        assert!(
            back == e.data(),
            "{mode:?}: acknowledged-durable data at LBA {} ({} blocks, seed {}) lost or \
             changed across kill -9",
            e.lba,
            e.blocks,
            e.seed
        );
    }
    // Not required in write-back mode; reported for information.
    let survived = read(&s, VOLATILE).await == VOLATILE.data();
    println!("{mode:?}: the never-synchronized plain write survived kill -9: {survived}");
    if mode == Mode::FileWriteThrough {
        assert!(
            survived,
            "write-through: an acknowledged plain write was lost"
        );
    }
    // Still a working LU after the restart.
    let e = ext(110_000, 16, 41);
    write(&s, e, true).await;
    assert!(read(&s, e).await == e.data());
}

/// The daemon's descriptor on the backing store is opened as the mode requires:
/// write-through fileio with O_DSYNC, write-back without it, iblock with O_DIRECT.
fn check_open_mode(d: &Daemon, mode: Mode, backing: &Path) {
    let Some(flags) = d.fd_flags(backing) else {
        panic!(
            "{mode:?}: the daemon has no open descriptor on {}",
            backing.display()
        );
    };
    let dsync = flags & libc::O_DSYNC as u32 != 0;
    match mode {
        Mode::FileWriteBack => assert!(!dsync, "write-back fileio opened O_DSYNC ({flags:o})"),
        Mode::FileWriteThrough => {
            assert!(dsync, "write-through fileio not opened O_DSYNC ({flags:o})")
        }
        Mode::Iblock => assert!(
            flags & libc::O_DIRECT as u32 != 0,
            "iblock not opened O_DIRECT ({flags:o})"
        ),
    }
}
