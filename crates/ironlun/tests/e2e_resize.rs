//! End to end: live resize of an exported LU (SBC-3 §4.9 CAPACITY DATA HAS CHANGED) through
//! the real CLI against the real daemon, seen by two initiator sessions; the new size
//! survives a restart. Also the CLI's refusals, and an iblock rescan over a loop device.
//! Daemons listen on ports 3470-3489.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ops::Range;
use std::path::PathBuf;
use std::process::Command;

use ironlun_initiator::scsi::cdb;
use ironlun_initiator::Session;
use ironlun_scsi::status;
use support::{clear_ua, good, guard, login_at, normal, pattern, Daemon, BLOCK, TPG};

const MIB: u64 = 1 << 20;
const PORTS: Range<u16> = 3470..3490;
/// UNIT ATTENTION / CAPACITY DATA HAS CHANGED.
const CAPACITY_CHANGED: (u8, u8, u8) = (0x06, 0x2A, 0x09);

async fn tur(s: &Session, lun: u64) -> ironlun_initiator::CommandResult {
    guard("TEST UNIT READY", s.test_unit_ready(lun))
        .await
        .unwrap()
}

async fn capacity(s: &Session, lun: u64) -> u64 {
    guard("READ CAPACITY(16)", s.read_capacity16(lun))
        .await
        .unwrap()
        .blocks()
}

/// READ CAPACITY(16) that must end in CHECK CONDITION; its sense triple.
async fn capacity_fails(s: &Session, lun: u64) -> Option<(u8, u8, u8)> {
    let r = guard(
        "READ CAPACITY(16)",
        s.command(lun, &cdb::read_capacity16(32), None, 32, 0),
    )
    .await
    .unwrap();
    assert_eq!(r.status, status::CHECK_CONDITION, "{r:?}");
    r.sense_triple()
}

/// Add a fileio LU of `size` bytes as LUN 1 of the default TPG; returns its image path.
fn add_fileio_lun(d: &Daemon, size: &str) -> PathBuf {
    let img = d.state_dir().join("disk0.img");
    d.cli(&[
        "create",
        "core/fileio_0/disk0",
        &format!("path={}", img.display()),
        &format!("size={size}"),
    ]);
    d.cli(&[
        "create",
        &format!("{TPG}/lun/lun_1"),
        "dev=core/fileio_0/disk0",
    ]);
    img
}

const CONTROL: &str = "core/fileio_0/disk0/control";

#[tokio::test]
async fn growing_a_fileio_lu_is_announced_to_every_session_and_persists() {
    let mut d = Daemon::start_in(PORTS);
    let img = add_fileio_lun(&d, "8M");
    let a = login_at(d.addr(), normal("resize-a"), 1).await;
    let b = login_at(d.addr(), normal("resize-b"), 1).await;
    clear_ua(&a, 0).await;
    clear_ua(&b, 0).await;
    let old_blocks = 8 * MIB / u64::from(BLOCK);
    assert_eq!(capacity(&a, 1).await, old_blocks);
    // Before the resize the block after the end is out of range.
    let r = guard("read past the end", a.read16(1, old_blocks, 1, BLOCK))
        .await
        .unwrap();
    assert_eq!(r.sense_triple(), Some((0x05, 0x21, 0x00)), "{r:?}");

    let out = d.cli(&["set", CONTROL, "size=16M"]);
    assert!(out.contains("8388608 -> 16777216"), "{out}");
    let new_blocks = 16 * MIB / u64::from(BLOCK);
    assert_eq!(std::fs::metadata(&img).expect("stat image").len(), 16 * MIB);

    // Session A: the next command reports the unit attention, exactly once.
    let r = tur(&a, 1).await;
    assert_eq!(r.status, status::CHECK_CONDITION, "{r:?}");
    assert_eq!(r.sense_triple(), Some(CAPACITY_CHANGED));
    assert_eq!(tur(&a, 1).await.status, status::GOOD);
    assert_eq!(capacity(&a, 1).await, new_blocks);
    // Session B: its own, on its next command (here READ CAPACITY itself), exactly once.
    assert_eq!(capacity_fails(&b, 1).await, Some(CAPACITY_CHANGED));
    assert_eq!(capacity(&b, 1).await, new_blocks);
    assert_eq!(tur(&b, 1).await.status, status::GOOD);
    // The other LU did not change: no unit attention there.
    assert_eq!(tur(&a, 0).await.status, status::GOOD);
    assert_eq!(tur(&b, 0).await.status, status::GOOD);

    // Write past the old end from B, read it back from A; the new last block is in range.
    let data = pattern(77, 8 * BLOCK as usize);
    let lba = old_blocks + 100;
    let r = guard(
        "write past the old end",
        b.write16(1, lba, data.clone(), BLOCK, true),
    )
    .await
    .unwrap();
    assert_eq!(r.status, status::GOOD, "{r:?}");
    let back = good(guard("read", a.read16(1, lba, 8, BLOCK)).await, "read back");
    assert_eq!(&back[..], &data[..]);
    good(
        guard("read last", a.read16(1, new_blocks - 1, 1, BLOCK)).await,
        "read the new last block",
    );
    let r = guard("read past the new end", a.read16(1, new_blocks, 1, BLOCK))
        .await
        .unwrap();
    assert_eq!(r.sense_triple(), Some((0x05, 0x21, 0x00)), "{r:?}");

    // The new size is in the tree and in config.json.
    let control = d.cli(&["get", CONTROL]);
    assert!(control.contains("size=16777216"), "{control}");
    let saved = d.saved_config();
    let json: serde_json::Value = serde_json::from_str(&saved).expect("config.json parses");
    let so = json["storage_objects"]
        .as_array()
        .and_then(|v| v.iter().find(|s| s["name"] == "disk0"))
        .expect("disk0 saved");
    assert_eq!(so["size"], serde_json::json!(16 * MIB));

    // Restart: the LU comes back with the new size and the data past the old end.
    drop((a, b));
    d.stop();
    d.restart();
    let c = login_at(d.addr(), normal("resize-c"), 1).await;
    assert_eq!(capacity(&c, 1).await, new_blocks);
    let back = good(
        guard("read", c.read16(1, lba, 8, BLOCK)).await,
        "read after restart",
    );
    assert_eq!(&back[..], &data[..]);
    assert!(d.cli(&["get", CONTROL]).contains("size=16777216"));
}

#[tokio::test]
async fn refused_resizes_change_nothing_and_shrink_needs_asking() {
    let d = Daemon::start_in(PORTS);
    let img = add_fileio_lun(&d, "8M");
    let s = login_at(d.addr(), normal("resize-refused"), 1).await;
    let blocks = 8 * MIB / u64::from(BLOCK);
    let saved_before = d.saved_files();

    for (value, needle) in [
        ("size=0", "size must not be zero"),
        (
            "size=16777300",
            "not a multiple of the 512-byte logical block size",
        ),
        ("size=4M", "add shrink=1"),
        ("size=lots", "size: invalid size"),
        ("rescan=1", "rescan is only for a block device"),
        ("size=16M,rescan=1", "not both"),
        ("write_back=0", "write_back cannot be changed"),
        ("colour=blue", "unknown key 'colour'"),
    ] {
        let err = d.refused(&["set", CONTROL, value]);
        assert!(err.contains(needle), "{value}: {err}");
        assert!(err.contains(CONTROL), "{value}: names the field: {err}");
    }
    let err = d.refused(&["set", "core/rd_mcp_0/ramdisk0/control", "rescan=1"]);
    assert!(err.contains("rd_mcp takes size="), "{err}");
    let err = d.refused(&["set", "core/fileio_0/nosuch/control", "size=1G"]);
    assert!(err.contains("no such device"), "{err}");
    // Nothing changed: size, file, saved config, and no unit attention.
    assert_eq!(std::fs::metadata(&img).expect("stat").len(), 8 * MIB);
    assert_eq!(d.saved_files(), saved_before);
    assert_eq!(tur(&s, 1).await.status, status::GOOD);
    assert_eq!(capacity(&s, 1).await, blocks);

    // Same size: accepted, no change, no unit attention.
    let out = d.cli(&["set", CONTROL, "size=8M"]);
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(tur(&s, 1).await.status, status::GOOD);

    // An explicit shrink: announced, and the dropped blocks are out of range.
    let out = d.cli(&["set", CONTROL, "size=4M,shrink=1"]);
    assert!(out.contains("8388608 -> 4194304"), "{out}");
    assert_eq!(std::fs::metadata(&img).expect("stat").len(), 4 * MIB);
    assert_eq!(capacity_fails(&s, 1).await, Some(CAPACITY_CHANGED));
    assert_eq!(capacity(&s, 1).await, blocks / 2);
    let r = guard("read past the new end", s.read16(1, blocks / 2, 1, BLOCK))
        .await
        .unwrap();
    assert_eq!(r.sense_triple(), Some((0x05, 0x21, 0x00)), "{r:?}");

    // A ramdisk grows too.
    let out = d.cli(&["set", "core/rd_mcp_0/ramdisk0/control", "size=2G"]);
    assert!(out.contains("-> 2147483648"), "{out}");
    clear_ua(&s, 0).await;
    assert_eq!(capacity(&s, 0).await, 2 * 1024 * MIB / u64::from(BLOCK));
}

/// A loop device over a sparse file, detached on drop (also when the test fails).
struct Loop {
    dev: String,
    file: PathBuf,
}

impl Loop {
    fn attach(file: PathBuf) -> Option<Loop> {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&file)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Loop {
                dev: String::from_utf8_lossy(&o.stdout).trim().to_string(),
                file,
            }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                if std::env::var_os("IRONLUN_REQUIRE_LOOP").is_some() {
                    panic!("loop device required: {why}");
                }
                eprintln!("SKIP: losetup: {why} (needs root and util-linux)");
                None
            }
        }
    }

    /// `truncate -s` the backing file, then `losetup -c`.
    fn grow(&self, size: u64) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.file)
            .expect("open backing file");
        f.set_len(size).expect("grow backing file");
        let st = Command::new("losetup")
            .arg("-c")
            .arg(&self.dev)
            .status()
            .expect("losetup -c");
        assert!(st.success(), "losetup -c {}", self.dev);
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

#[tokio::test]
async fn iblock_rescan_after_the_device_grew() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("lo.img");
    std::fs::File::create(&file)
        .and_then(|f| f.set_len(8 * MIB))
        .expect("backing file");
    let Some(lo) = Loop::attach(file) else {
        return;
    };
    let mut d = Daemon::start_in(PORTS);
    d.cli(&["create", "core/iblock_0/lo0", &format!("path={}", lo.dev)]);
    d.cli(&[
        "create",
        &format!("{TPG}/lun/lun_1"),
        "dev=core/iblock_0/lo0",
    ]);
    let s = login_at(d.addr(), normal("resize-iblock"), 1).await;
    assert_eq!(capacity(&s, 1).await, 8 * MIB / u64::from(BLOCK));

    lo.grow(12 * MIB);
    // The size given must be the device's; a size for iblock is only a check.
    let err = d.refused(&["set", "core/iblock_0/lo0/control", "size=16M"]);
    assert!(
        err.contains("differs from the device's 12582912 bytes"),
        "{err}"
    );
    assert_eq!(tur(&s, 1).await.status, status::GOOD, "nothing changed");

    let out = d.cli(&["set", "core/iblock_0/lo0/control", "rescan=1"]);
    assert!(out.contains("8388608 -> 12582912"), "{out}");
    assert_eq!(capacity_fails(&s, 1).await, Some(CAPACITY_CHANGED));
    assert_eq!(capacity(&s, 1).await, 12 * MIB / u64::from(BLOCK));
    let data = pattern(5, BLOCK as usize * 2);
    let lba = 10 * MIB / u64::from(BLOCK);
    let r = guard(
        "write past the old end",
        s.write16(1, lba, data.clone(), BLOCK, true),
    )
    .await
    .unwrap();
    assert_eq!(r.status, status::GOOD, "{r:?}");
    let back = good(guard("read", s.read16(1, lba, 2, BLOCK)).await, "read back");
    assert_eq!(&back[..], &data[..]);
    drop(s);
    d.stop();
    drop(lo);
}
