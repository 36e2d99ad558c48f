//! End to end: thin provisioning gives space back (SBC-3 §4.7). A fileio LU on a regular file
//! with `emulate_tpu=1`: 64 MiB written over iSCSI occupy the file, one UNMAP of that range
//! frees them (the file's allocated blocks shrink by about 64 MiB) and GET LBA STATUS reports
//! the range deallocated; it reads back as zeroes (LBPRZ). Ports 3720-3739.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ironlun_initiator::iscsi::pdu::task_attr;
use ironlun_scsi::status;
use support::{clear_ua, good, guard, login_at, normal, pattern, Daemon, BLOCK, TPG};

const MIB: u64 = 1 << 20;
const PORTS: Range<u16> = 3720..3740;
/// Where the 64 MiB go: not at LBA 0, so the extent boundaries are exercised.
const START: u64 = 8 * MIB / BLOCK as u64;
const BLOCKS: u64 = 64 * MIB / BLOCK as u64;

fn allocated(img: &Path) -> u64 {
    std::fs::metadata(img).expect("stat image").blocks() * 512
}

fn unmap_cdb(plen: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = 0x42;
    c[7..9].copy_from_slice(&plen.to_be_bytes());
    c
}

fn get_lba_status_cdb(lba: u64, alloc: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x9E;
    c[1] = 0x12;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&alloc.to_be_bytes());
    c
}

/// LBA status descriptors: (lba, blocks, provisioning status).
fn descriptors(d: &[u8]) -> Vec<(u64, u32, u8)> {
    d[8..]
        .chunks_exact(16)
        .map(|x| {
            (
                u64::from_be_bytes(x[..8].try_into().unwrap()),
                u32::from_be_bytes(x[8..12].try_into().unwrap()),
                x[12] & 0x0F,
            )
        })
        .collect()
}

#[tokio::test]
async fn unmap_of_64_mib_gives_the_space_back() {
    let d = Daemon::start_in(PORTS);
    let img = d.state_dir().join("thin.img");
    d.cli(&[
        "create",
        "core/fileio_0/thin",
        &format!("path={}", img.display()),
        "size=128M",
    ]);
    d.cli(&["set", "core/fileio_0/thin/attrib/emulate_tpu", "1"]);
    d.cli(&["set", "core/fileio_0/thin/attrib/emulate_tpws", "1"]);
    d.cli(&[
        "create",
        &format!("{TPG}/lun/lun_1"),
        "dev=core/fileio_0/thin",
    ]);
    let s = login_at(d.addr(), normal("thin-e2e"), 1).await;
    clear_ua(&s, 0).await;

    // READ CAPACITY(16): LBPME and LBPRZ.
    let rc = good(
        guard(
            "READ CAPACITY(16)",
            s.command(
                1,
                &ironlun_initiator::scsi::cdb::read_capacity16(32),
                None,
                32,
                task_attr::SIMPLE,
            ),
        )
        .await,
        "rc16",
    );
    assert_eq!(rc[14] & 0xC0, 0xC0, "LBPME|LBPRZ: {:x?}", &rc[..16]);

    let empty = allocated(&img);
    let chunk = 8 * MIB as usize;
    for i in 0..(64 * MIB as usize / chunk) {
        let lba = START + (i * chunk / BLOCK as usize) as u64;
        let w = s.write16(1, lba, pattern(i as u32 + 1, chunk), BLOCK, false);
        good(guard("write", w).await, "write");
    }
    good(guard("sync", s.sync_cache(1)).await, "sync");
    let before = allocated(&img);
    println!("allocated: empty {empty} B, after writing 64 MiB {before} B");
    assert!(
        before >= empty + 64 * MIB,
        "the writes did not allocate: {before}"
    );

    let mut list = vec![0u8; 24];
    list[0..2].copy_from_slice(&22u16.to_be_bytes());
    list[2..4].copy_from_slice(&16u16.to_be_bytes());
    list[8..16].copy_from_slice(&START.to_be_bytes());
    list[16..20].copy_from_slice(&(BLOCKS as u32).to_be_bytes());
    let r = guard(
        "UNMAP",
        s.command(1, &unmap_cdb(24), Some(list), 0, task_attr::SIMPLE),
    )
    .await
    .unwrap();
    assert_eq!(r.status, status::GOOD, "{r:?}");
    let after = allocated(&img);
    println!(
        "allocated: after UNMAP of 64 MiB {after} B (freed {} B)",
        before.saturating_sub(after)
    );
    // "About 64 MiB": within one filesystem block of the range at each end.
    assert!(
        before - after >= 64 * MIB - 64 * 1024,
        "UNMAP freed only {} bytes",
        before.saturating_sub(after)
    );

    let st = good(
        guard(
            "GET LBA STATUS",
            s.command(
                1,
                &get_lba_status_cdb(START, 8 + 16 * 4),
                None,
                8 + 16 * 4,
                task_attr::SIMPLE,
            ),
        )
        .await,
        "get lba status",
    );
    let ds = descriptors(&st);
    // Nothing after the range was ever written: one deallocated run to the end of the LU.
    let total = 128 * MIB / BLOCK as u64;
    assert_eq!(ds, vec![(START, (total - START) as u32, 1)], "{ds:?}");
    // The block before the range was never written: a hole, deallocated too.
    let st = good(
        guard(
            "GET LBA STATUS",
            s.command(
                1,
                &get_lba_status_cdb(START - 1, 24),
                None,
                24,
                task_attr::SIMPLE,
            ),
        )
        .await,
        "get lba status before the range",
    );
    assert_eq!(
        descriptors(&st).first().map(|x| (x.0, x.2)),
        Some((START - 1, 1))
    );

    // The range reads back as zeroes (LBPRZ).
    let data = good(guard("read", s.read16(1, START, 2048, BLOCK)).await, "read");
    assert!(data.iter().all(|b| *b == 0));
}
