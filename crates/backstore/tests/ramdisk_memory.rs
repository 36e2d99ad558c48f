//! A 1 GiB RAM disk costs almost no resident memory until written. Alone in its own test binary
//! so no other test's allocations disturb the process's RSS.

use ironlun_backstore::{Backstore, RamDisk};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value");
    kib * 1024
}

#[test]
fn creating_a_1gib_ramdisk_keeps_memory_small() {
    let before = rss_bytes();
    let rd = RamDisk::new(1 << 30).expect("1 GiB ramdisk");
    // Touch a few spread-out blocks: only their chunks may be allocated.
    for i in 0..16u64 {
        rd.write_at(&[0xeeu8; 4096], i * (64 << 20), false)
            .expect("write");
    }
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 16 << 20,
        "RSS grew by {grown} bytes for a 1 GiB ramdisk with 16 blocks written"
    );
    assert_eq!(rd.allocated_bytes(), 16 * 64 * 1024);
}
