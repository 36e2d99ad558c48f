//! Helpers shared by the backstore integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;

use ironlun_backstore::Backstore;

/// A recognisable 4 KiB-or-any-length pattern for block `lba` in round `seed`.
pub fn pattern(len: usize, lba: u64, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u64)
                .wrapping_mul(31)
                .wrapping_add(lba.wrapping_mul(7)) as u8
                ^ seed
        })
        .map(|b| if b == 0 { 1 } else { b })
        .collect()
}

/// Write a block, read it back, expect the same bytes; then check a neighbour is still zero.
pub fn check_read_after_write(store: &dyn Backstore) {
    let bs = store.hw_block_size() as usize;
    let data = pattern(8 * bs, 3, 0x5a);
    store.write_at(&data, 3 * bs as u64, false).expect("write");
    let mut back = vec![0u8; 8 * bs];
    store.read_at(&mut back, 3 * bs as u64).expect("read");
    assert_eq!(back, data);
    let mut before = vec![0xffu8; 3 * bs];
    store.read_at(&mut before, 0).expect("read head");
    assert!(
        before.iter().all(|b| *b == 0),
        "unwritten head reads as zeroes"
    );
    // The last block, never written, reads as zeroes.
    let mut last = vec![0xffu8; bs];
    store
        .read_at(&mut last, store.size() - bs as u64)
        .expect("read tail");
    assert!(
        last.iter().all(|b| *b == 0),
        "unwritten tail reads as zeroes"
    );
}

/// Many threads each write their own 4 KiB blocks (interleaved), then every block is verified.
pub fn check_concurrent_distinct_writes(store: Arc<dyn Backstore>, blocks: u64) {
    const THREADS: u64 = 8;
    const BLOCK: usize = 4096;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                for lba in (t..blocks).step_by(THREADS as usize) {
                    let data = pattern(BLOCK, lba, 0xa5);
                    store
                        .write_at(&data, lba * BLOCK as u64, lba % 5 == 0)
                        .expect("write");
                    // Read a block some other thread owns, to mix readers with writers.
                    let mut other = vec![0u8; BLOCK];
                    store
                        .read_at(&mut other, ((lba + 1) % blocks) * BLOCK as u64)
                        .expect("read");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer thread");
    }
    let mut back = vec![0u8; BLOCK];
    for lba in 0..blocks {
        store
            .read_at(&mut back, lba * BLOCK as u64)
            .expect("verify read");
        assert_eq!(back, pattern(BLOCK, lba, 0xa5), "block {lba}");
    }
}

/// Reads and writes outside the capacity fail with an error instead of panicking.
pub fn check_out_of_range(store: &dyn Backstore) {
    let bs = store.hw_block_size() as usize;
    let mut buf = vec![0u8; bs];
    assert!(store.read_at(&mut buf, store.size()).is_err());
    assert!(store.write_at(&buf, store.size(), false).is_err());
    assert!(store.read_at(&mut buf, u64::MAX - 10).is_err());
}

/// The environment switch that makes a test's missing system facility (a loop device, a sysfs
/// attribute) a failure instead of a skip; .ci/run sets it, running as root on a full Linux.
const REQUIRE_ENV: &str = "IRONLUN_REQUIRE_LOOP";

/// Called where the running test cannot do its work on this machine. With IRONLUN_REQUIRE_LOOP
/// set this panics, failing the test; otherwise the caller returns early and this says so on
/// stderr directly, past the test harness's output capture, so every skip shows in the output
/// of `cargo test` instead of passing silently.
pub fn skip_unless_required(reason: &str) {
    let current = thread::current();
    let test = current.name().unwrap_or("test");
    if std::env::var_os(REQUIRE_ENV).is_some() {
        panic!("{test}: {REQUIRE_ENV} is set but {reason}");
    }
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {reason}");
}

/// Serialises loop device set-up within this test binary (`losetup -f` picks and then binds).
static LOSETUP: Mutex<()> = Mutex::new(());

/// A loop device bound to a backing file; detached on drop, even when a test fails.
pub struct LoopDevice {
    pub dev: PathBuf,
}

impl LoopDevice {
    /// Binds `file` to a free loop device. Returns None where loop devices cannot be used, after
    /// `skip_unless_required` (a failure with IRONLUN_REQUIRE_LOOP set).
    pub fn attach(file: &Path, read_only: bool) -> Option<Self> {
        Self::attach_with(file, read_only, None)
    }

    /// As `attach`, optionally with a logical sector size (`losetup --sector-size`).
    pub fn attach_with(file: &Path, read_only: bool, sector_size: Option<u32>) -> Option<Self> {
        let _serial = LOSETUP.lock().unwrap_or_else(|p| p.into_inner());
        let mut cmd = Command::new("losetup");
        cmd.arg("-f").arg("--show");
        if read_only {
            cmd.arg("-r");
        }
        if let Some(ss) = sector_size {
            cmd.arg("--sector-size").arg(ss.to_string());
        }
        let out = cmd.arg(file).output();
        let reason = match out {
            Ok(o) if o.status.success() => {
                let dev = String::from_utf8_lossy(&o.stdout).trim().to_string();
                return Some(Self {
                    dev: PathBuf::from(dev),
                });
            }
            Ok(o) => format!(
                "losetup failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!("losetup unavailable: {e}"),
        };
        skip_unless_required(&format!(
            "no loop device: {reason} (needs root and util-linux)"
        ));
        None
    }
}

impl LoopDevice {
    /// `losetup -c`: make the loop device pick up its backing file's new length.
    pub fn refresh_capacity(&self) {
        let st = Command::new("losetup")
            .arg("-c")
            .arg(&self.dev)
            .status()
            .expect("run losetup -c");
        assert!(st.success(), "losetup -c {} failed", self.dev.display());
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// A sparse backing file of `size` bytes in `dir`.
pub fn backing_file(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).expect("create backing file");
    f.set_len(size).expect("size backing file");
    path
}
