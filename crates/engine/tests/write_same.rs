//! WRITE SAME(10)/(16) without unmap (SBC-3 §5.45-5.46) through the public surface: the block
//! lands on every LBA (also across the handler's internal chunks), CDB checks with exact sense
//! and pointers, Data-Out length, write protection, WCE=0 durability, VPD B0h MAXIMUM WRITE
//! SAME LENGTH / WSNZ, REPORT SUPPORTED OPERATION CODES, and COMPARE AND WRITE atomicity while
//! WRITE SAME overlaps it.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use common::*;
use ironlun_engine::scsi::{status, Sense};
use ironlun_engine::*;

fn block(seed: u8) -> Vec<u8> {
    (0..BS)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

fn ws(n: &Nexus, cdb: &[u8], data: Vec<u8>) -> ScsiResponse {
    run(n, 0, cdb, DataDirection::Write, data.len() as u32, data)
}

fn fails(n: &Nexus, cdb: &[u8]) -> Sense {
    let r = ws(n, cdb, block(1));
    assert_eq!(r.status, status::CHECK_CONDITION, "cdb {cdb:02x?}");
    Sense::parse(&r.sense).expect("sense")
}

fn content(r: &Rig, lba: usize, blocks: usize) -> Vec<u8> {
    r.mem.data.read()[lba * BS..(lba + blocks) * BS].to_vec()
}

#[test]
fn the_block_is_written_to_every_lba_and_nothing_else() {
    let r = rig();
    cmd_out(&r.a, &write10(9, 1, 0), block(50));
    cmd_out(&r.a, &write10(15, 1, 0), block(51));
    let resp = ws(&r.a, &ws10(10, 5, 0), block(3));
    assert_eq!(resp.status, status::GOOD);
    assert_eq!(resp.residual, Residual::None);
    assert_eq!(content(&r, 10, 5), block(3).repeat(5));
    assert_eq!(content(&r, 9, 1), block(50));
    assert_eq!(content(&r, 15, 1), block(51));

    let last = BLOCKS as u64 - 7;
    cmd_out(&r.a, &ws16(last, 7, 0), block(4));
    assert_eq!(content(&r, last as usize, 7), block(4).repeat(7));
    // Readable through the other nexus too.
    assert_eq!(
        cmd_in(&r.b, &read10(last as u32, 7), 7 * BS as u32),
        block(4).repeat(7)
    );
}

#[test]
fn ranges_crossing_chunk_boundaries_are_filled_completely() {
    // 1 MiB chunks are 2048 blocks of 512 bytes: cover three chunks, starting mid-way.
    let blocks = 8192;
    let r = rig_with(Mem::new(BS * blocks, true));
    let (lba, n) = (1000usize, 5000usize);
    cmd_out(&r.a, &ws16(lba as u64, n as u32, 0), block(9));
    let d = r.mem.data.read();
    for (i, b) in d.chunks(BS).enumerate() {
        if (lba..lba + n).contains(&i) {
            assert_eq!(b, &block(9)[..], "block {i}");
        } else {
            assert!(b.iter().all(|&x| x == 0), "block {i} touched");
        }
    }
}

#[test]
fn zero_or_too_many_blocks_is_an_invalid_field_at_the_count() {
    let r = rig();
    let s = fails(&r.a, &ws10(0, 0, 0));
    assert_eq!(kaq(&s), (5, 0x24, 0));
    assert_eq!(pointer(&s), Some((true, 7, Some(7))));
    let s = fails(&r.a, &ws16(0, 0, 0));
    assert_eq!(pointer(&s), Some((true, 10, Some(7))));

    r.dev
        .set_attribute("max_write_same_len", "8")
        .expect("attr");
    let s = fails(&r.a, &ws10(0, 9, 0));
    assert_eq!(kaq(&s), (5, 0x24, 0));
    assert_eq!(pointer(&s), Some((true, 7, Some(7))));
    let s = fails(&r.a, &ws16(0, 9, 0));
    assert_eq!(pointer(&s), Some((true, 10, Some(7))));
    cmd_out(&r.a, &ws10(0, 8, 0), block(2));
    assert_eq!(
        content(&r, 0, 9),
        [block(2).repeat(8), vec![0; BS]].concat()
    );
}

#[test]
fn ranges_beyond_the_end_are_lba_out_of_range() {
    let r = rig();
    let end = BLOCKS as u64;
    for cdb in [
        ws10(end as u32, 1, 0),
        ws10(end as u32 - 1, 2, 0),
        ws10(u32::MAX, 1, 0),
        ws16(end - 3, 4, 0),
        ws16(u64::MAX, 2, 0),
        ws16(1 << 63, 1, 0),
    ] {
        assert_eq!(kaq(&fails(&r.a, &cdb)), (5, 0x21, 0), "cdb {cdb:02x?}");
    }
    assert!(r.mem.data.read().iter().all(|&x| x == 0));
}

#[test]
fn unsupported_byte_1_bits_point_at_their_bit() {
    let r = rig();
    // (bit value, bit number): ANCHOR, UNMAP, PBDATA, LBDATA, and WRPROTECT (highest bit set).
    for (b1, bit) in [
        (0x10u8, 4u8),
        (0x08, 3),
        (0x04, 2),
        (0x02, 1),
        (0x20, 5),
        (0x60, 6),
        (0xE0, 7),
    ] {
        let s = fails(&r.a, &ws10(0, 1, b1));
        assert_eq!(kaq(&s), (5, 0x24, 0), "b1 {b1:#x}");
        assert_eq!(pointer(&s), Some((true, 1, Some(bit))), "b1 {b1:#x}");
        let s = fails(&r.a, &ws16(0, 1, b1));
        assert_eq!(pointer(&s), Some((true, 1, Some(bit))), "b1 {b1:#x}");
    }
    // NDOB exists only in WRITE SAME(16); bit 0 is reserved in WRITE SAME(10).
    let s = fails(&r.a, &ws16(0, 1, 0x01));
    assert_eq!(pointer(&s), Some((true, 1, Some(0))));
    let s = fails(&r.a, &ws10(0, 1, 0x01));
    assert_eq!(pointer(&s), Some((true, 1, Some(0))));
    assert!(r.mem.data.read().iter().all(|&x| x == 0));
}

#[test]
fn data_out_must_be_exactly_one_block() {
    let r = rig();
    for len in [0usize, BS / 2, BS - 1, BS + 1, 2 * BS] {
        let dir = if len == 0 {
            DataDirection::None
        } else {
            DataDirection::Write
        };
        let resp = run(&r.a, 0, &ws10(0, 4, 0), dir, len as u32, vec![0xAB; len]);
        assert_eq!(resp.status, status::CHECK_CONDITION, "len {len}");
        let s = Sense::parse(&resp.sense).expect("sense");
        // INVALID FIELD IN COMMAND INFORMATION UNIT, nothing written.
        assert_eq!(kaq(&s), (5, 0x0E, 0x03), "len {len}");
    }
    assert!(r.mem.data.read().iter().all(|&x| x == 0));
}

#[test]
fn write_protected_lu_refuses_with_data_protect() {
    let r = rig_with(Mem::read_only(BS * BLOCKS));
    for cdb in [ws10(0, 2, 0), ws16(0, 2, 0)] {
        assert_eq!(kaq(&fails(&r.a, &cdb)), (7, 0x27, 0));
    }
}

#[test]
fn with_the_write_cache_off_every_write_is_durable() {
    let r = rig_with(Mem::new(BS * 8192, false));
    cmd_out(&r.a, &ws16(0, 5000, 0), block(1));
    let writes = r.mem.writes.load(Ordering::SeqCst);
    assert!(writes >= 3);
    assert_eq!(r.mem.fua_writes.load(Ordering::SeqCst), writes);

    let r = rig();
    cmd_out(&r.a, &ws10(0, 4, 0), block(1));
    assert_eq!(r.mem.fua_writes.load(Ordering::SeqCst), 0);
}

#[test]
fn vpd_b0_reports_wsnz_and_the_maximum_write_same_length() {
    let r = rig();
    let max = |n: &Nexus| {
        let d = cmd_in(n, &[0x12, 1, 0xB0, 0, 255, 0], 255);
        assert_eq!(d[4] & 1, 1, "WSNZ");
        u64::from_be_bytes(d[36..44].try_into().expect("8 bytes"))
    };
    assert_eq!(max(&r.a), 0xFFFF);
    assert_eq!(
        r.dev.attribute("max_write_same_len").as_deref(),
        Some("65535")
    );
    r.dev
        .set_attribute("max_write_same_len", "100")
        .expect("attr");
    assert_eq!(max(&r.a), 100);
    // Logical block provisioning VPD: LBPWS and LBPWS10 stay 0 (no unmap through WRITE SAME).
    let b2 = cmd_in(&r.a, &[0x12, 1, 0xB2, 0, 255, 0], 255);
    assert_eq!(b2[5] & 0x60, 0);
}

#[test]
fn rsoc_lists_both_with_their_usage_data() {
    let r = rig();
    let one = |opcode: u8| cmd_in(&r.a, &[0xA3, 0x0C, 1, opcode, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    let d = one(0x41);
    assert_eq!(d[1] & 7, 3);
    assert_eq!(
        &d[4..],
        &[0x41, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0]
    );
    let d = one(0x93);
    assert_eq!(d[1] & 7, 3);
    assert_eq!(
        &d[4..],
        &[
            0x93, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F,
            0
        ]
    );
}

/// A COMPARE AND WRITE holds its stripes from the read to the write: a WRITE SAME over the
/// same range issued while the CAW's read is held waits for it, so the CAW compares against
/// the old data and succeeds, and the WRITE SAME lands afterwards (its data is what remains).
#[test]
fn compare_and_write_stays_atomic_against_overlapping_write_same() {
    let r = rig();
    let (lba, n) = (64u64, 4usize);
    let old = block(0x11).repeat(n);
    cmd_out(&r.a, &ws16(lba, n as u32, 0), block(0x11));
    let writes_before = r.mem.writes.load(Ordering::SeqCst);
    r.mem.close_gate();
    let caw = {
        let (b, data) = (r.b.clone(), [old, block(0x33).repeat(n)].concat());
        thread::spawn(move || {
            let mut c = vec![0x89, 0];
            c.extend_from_slice(&lba.to_be_bytes());
            c.extend_from_slice(&[0, 0, 0, n as u8, 0, 0]);
            run(&b, 0, &c, DataDirection::Write, data.len() as u32, data)
        })
    };
    while r.mem.reads_waiting.load(Ordering::SeqCst) == 0 {
        thread::yield_now();
    }
    let started = Arc::new(AtomicBool::new(false));
    let same = {
        let (a, started) = (r.a.clone(), started.clone());
        thread::spawn(move || {
            started.store(true, Ordering::SeqCst);
            ws(&a, &ws16(lba - 8, 20, 0), block(0x22))
        })
    };
    while !started.load(Ordering::SeqCst) {
        thread::yield_now();
    }
    thread::sleep(std::time::Duration::from_millis(50));
    // Nothing may be written inside the CAW's range while it is between read and write.
    assert_eq!(r.mem.writes.load(Ordering::SeqCst), writes_before);
    r.mem.open_gate();
    let c = caw.join().expect("caw");
    assert_eq!(c.status, status::GOOD, "{:?}", Sense::parse(&c.sense));
    assert_eq!(same.join().expect("ws").status, status::GOOD);
    assert_eq!(content(&r, lba as usize - 8, 20), block(0x22).repeat(20));
}
