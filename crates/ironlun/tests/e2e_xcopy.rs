//! End to end: EXTENDED COPY (SPC-4 §6.3, LID1) of 256 MiB between two LUs of the real daemon,
//! read back and compared, while another session keeps 4 KiB random reads going on a third
//! LU. The reads completed during the copy and during an equally long window without it are
//! printed (`--nocapture`); only behaviour is asserted: reads complete during the copy, the
//! data matches, the held COPY STATUS says so. Ports 3740-3759.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ironlun_testkit::xcopy::{self, naa_designator};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironlun_initiator::iscsi::pdu::task_attr::SIMPLE;
use ironlun_initiator::scsi_codes::status;
use ironlun_initiator::Session;
use support::*;

const PORTS: std::ops::Range<u16> = 3740..3760;
const MIB: usize = 1 << 20;
const COPY_MIB: usize = 256;
/// Blocks per segment descriptor (16 MiB); 8 segments per EXTENDED COPY.
const SEG_BLOCKS: u16 = 32768;
const SEGS_PER_CMD: usize = 8;
/// Destination offset, so source and destination LBAs differ.
const DST_LBA: u64 = 2048;
const READERS: usize = 4;
/// The random reads stay in the first 64 MiB of the third LU.
const READ_SPAN_BLOCKS: u64 = (64 * MIB / BLOCK as usize) as u64;

/// The LU's NAA designator (with its 4-byte header) from VPD page 83h.
async fn naa(s: &Session, lun: u64) -> Vec<u8> {
    let r = guard(
        "INQUIRY 83h",
        s.command(lun, &[0x12, 1, 0x83, 0, 255, 0], None, 255, SIMPLE),
    )
    .await;
    let d = good(r, "INQUIRY 83h");
    naa_designator(&d).unwrap_or_else(|| panic!("LUN {lun}: no NAA designator"))
}

fn target_desc(designator: &[u8]) -> Vec<u8> {
    xcopy::target_desc(designator, BLOCK)
}

/// An EXTENDED COPY parameter list: target descriptor 0 → 1, `segs` (src LBA, dst LBA).
fn plist(list_id: u8, src: &[u8], dst: &[u8], segs: &[(u64, u64)]) -> Vec<u8> {
    let mut p = vec![0u8; 16];
    p[0] = list_id;
    p[3] = 64;
    p[8..12].copy_from_slice(&((segs.len() * 28) as u32).to_be_bytes());
    p.extend(target_desc(src));
    p.extend(target_desc(dst));
    for &(s, d) in segs {
        let mut sd = vec![0u8; 28];
        sd[0] = 0x02;
        sd[3] = 0x18;
        sd[6..8].copy_from_slice(&1u16.to_be_bytes());
        sd[10..12].copy_from_slice(&SEG_BLOCKS.to_be_bytes());
        sd[12..20].copy_from_slice(&s.to_be_bytes());
        sd[20..28].copy_from_slice(&d.to_be_bytes());
        p.extend(sd);
    }
    p
}

fn xcopy_cdb(len: usize) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x83;
    c[10..14].copy_from_slice(&(len as u32).to_be_bytes());
    c
}

/// 4 KiB random reads, `READERS` at a time, until `stop`; every completion counted.
fn start_readers(
    s: Arc<Session>,
    lun: u64,
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..READERS)
        .map(|i| {
            let (s, done, stop) = (s.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let lba = (x % (READ_SPAN_BLOCKS / 8)) * 8;
                    let r = guard("random read", s.read16(lun, lba, 8, BLOCK)).await;
                    good(r, "random read");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn xcopy_256_mib_between_lus_while_a_third_lu_serves_reads() {
    let d = Daemon::start_in(PORTS);
    for (n, name) in [(1, "xsrc"), (2, "xdst")] {
        let dev = format!("core/rd_mcp_{n}/{name}");
        d.cli(&["create", &dev, "size=260M"]);
        d.cli(&[
            "create",
            &format!("{TPG}/lun/lun_{n}"),
            &format!("dev={dev}"),
        ]);
    }
    // LUN 0 (the default 1 GiB ramdisk) serves the random reads.
    let s = login(&d, normal("xcopy")).await;
    clear_ua(&s, 1).await;
    clear_ua(&s, 2).await;
    for k in 0..COPY_MIB {
        let lba = (k * MIB / BLOCK as usize) as u64;
        let r = guard(
            "fill",
            s.write16(1, lba, pattern(k as u32, MIB), BLOCK, false),
        )
        .await;
        good(r, "fill source");
    }
    let (src, dst) = (naa(&s, 1).await, naa(&s, 2).await);
    assert_ne!(src, dst);

    let reader = Arc::new(login(&d, normal("reader")).await);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = start_readers(reader.clone(), 0, done.clone(), stop.clone());
    // Let the readers get going.
    while done.load(Ordering::Relaxed) < 16 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The copy: 16 segments of 16 MiB in two commands, issued to LUN 0 (a third LU acts as
    // copy manager for the other two).
    let seg_bytes = u64::from(SEG_BLOCKS) * u64::from(BLOCK);
    let total_segs = COPY_MIB * MIB / seg_bytes as usize;
    let before = done.load(Ordering::Relaxed);
    let t0 = Instant::now();
    for (cmd, chunk) in (0..total_segs)
        .collect::<Vec<_>>()
        .chunks(SEGS_PER_CMD)
        .enumerate()
    {
        let segs: Vec<(u64, u64)> = chunk
            .iter()
            .map(|&i| {
                let lba = i as u64 * u64::from(SEG_BLOCKS);
                (lba, DST_LBA + lba)
            })
            .collect();
        let p = plist(cmd as u8 + 1, &src, &dst, &segs);
        let r = guard(
            "EXTENDED COPY",
            s.command(0, &xcopy_cdb(p.len()), Some(p), 0, SIMPLE),
        )
        .await
        .unwrap();
        assert_eq!(r.status, status::GOOD, "EXTENDED COPY: {r:?}");
    }
    let copy_time = t0.elapsed();
    let during = done.load(Ordering::Relaxed) - before;

    // An equally long window without the copy.
    let before = done.load(Ordering::Relaxed);
    tokio::time::sleep(copy_time).await;
    let idle = done.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("reader");
    }
    let secs = copy_time.as_secs_f64().max(1e-6);
    eprintln!(
        "EXTENDED COPY of {COPY_MIB} MiB took {copy_time:?}; 4 KiB random reads (QD {READERS}) \
         on a third LU: {during} during the copy ({:.0} IOPS), {idle} in an equal window \
         without it ({:.0} IOPS)",
        during as f64 / secs,
        idle as f64 / secs
    );
    assert!(during > 0, "no read completed while the copy ran");

    // The destination holds the source data, at its offset.
    for k in 0..COPY_MIB {
        let lba = DST_LBA + (k * MIB / BLOCK as usize) as u64;
        let r = guard(
            "read back",
            s.read16(2, lba, (MIB / BLOCK as usize) as u32, BLOCK),
        )
        .await;
        let got = good(r, "read back");
        assert!(got[..] == pattern(k as u32, MIB)[..], "MiB {k} differs");
    }
    // The blocks before the destination range were not touched.
    let head = good(
        guard("head", s.read16(2, 0, DST_LBA as u32, BLOCK)).await,
        "head",
    );
    assert!(head.iter().all(|&b| b == 0));

    // Held results (LIST ID USAGE 00b): both copies completed without errors.
    for list_id in 1..=2u8 {
        let mut c = [0u8; 16];
        c[0] = 0x84;
        c[2] = list_id;
        c[13] = 12;
        let st = good(
            guard("RCR", s.command(0, &c, None, 12, SIMPLE)).await,
            "COPY STATUS",
        );
        assert_eq!(st[4], 0x01, "copy {list_id}: {st:?}");
        assert_eq!(
            usize::from(u16::from_be_bytes([st[5], st[6]])),
            SEGS_PER_CMD
        );
        let count = u64::from(u32::from_be_bytes([st[8], st[9], st[10], st[11]])) << (10 * st[7]);
        assert_eq!(count, SEGS_PER_CMD as u64 * seg_bytes);
    }
}
