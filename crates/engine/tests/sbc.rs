//! SBC-3 commands through the public surface: READ/WRITE of every size, ranges, residuals,
//! durability (FUA, WCE, SYNCHRONIZE CACHE), VERIFY / WRITE AND VERIFY, PRE-FETCH, READ
//! CAPACITY, START STOP UNIT and write protection.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use ironlun_engine::scsi::{status, Sense};
use ironlun_engine::*;

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn write_then_read_back_with_every_cdb_size() {
    let r = rig();
    // (write cdb, read cdb) for 2 blocks at LBA 10.
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (vec![0x0A, 0, 0, 10, 2, 0], vec![0x08, 0, 0, 10, 2, 0]),
        (write10(10, 2, 0), read10(10, 2)),
        (
            vec![0xAA, 0, 0, 0, 0, 10, 0, 0, 0, 2, 0, 0],
            vec![0xA8, 0, 0, 0, 0, 10, 0, 0, 0, 2, 0, 0],
        ),
        (
            vec![0x8A, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 2, 0, 0],
            vec![0x88, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 2, 0, 0],
        ),
    ];
    for (i, (w, rd)) in cases.iter().enumerate() {
        let data = pattern(2 * BS, i as u8);
        cmd_out(&r.a, w, data.clone());
        assert_eq!(cmd_in(&r.a, rd, (2 * BS) as u32), data);
    }
}

#[test]
fn read6_length_zero_means_256_blocks() {
    let r = rig();
    let resp = run(
        &r.a,
        0,
        &[0x08, 0, 0, 0, 0, 0],
        DataDirection::Read,
        (256 * BS) as u32,
        vec![],
    );
    assert_eq!(resp.status, status::GOOD);
    assert_eq!(resp.data_in.len(), 256 * BS);
    assert_eq!(resp.residual, Residual::None);
}

#[test]
fn ranges_are_checked_including_zero_length() {
    let r = rig();
    let n = BLOCKS as u32;
    assert_eq!(kaq(&cmd_fail(&r.a, &read10(n - 1, 2))), (5, 0x21, 0));
    assert_eq!(kaq(&cmd_fail(&r.a, &read10(u32::MAX, 1))), (5, 0x21, 0));
    assert_eq!(kaq(&cmd_fail(&r.a, &read10(n + 1, 0))), (5, 0x21, 0));
    let resp = run(&r.a, 0, &read10(n, 0), DataDirection::None, 0, vec![]);
    assert_eq!(resp.status, status::GOOD);
    let mut c16 = vec![
        0x88, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1, 0, 0,
    ];
    assert_eq!(kaq(&cmd_fail(&r.a, &c16)), (5, 0x21, 0));
    // Above MAXIMUM TRANSFER LENGTH: invalid field pointing at TRANSFER LENGTH.
    c16 = vec![0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    let big = Device::new(config(), Mem::new(64 << 20, false)).expect("big");
    let port = TargetPort::new("iqn.x", 1, 1);
    port.add_lun(0, big).expect("lun");
    port.set_demo_mode(true, false);
    let n = port.open_nexus(initiator("iqn.c", 3)).expect("nexus");
    drain_ua(&n, 0);
    let s = cmd_fail(&n, &c16);
    assert_eq!(pointer(&s), Some((true, 10, Some(7))));
}

#[test]
fn read_residuals_follow_the_expected_length() {
    let r = rig();
    let cases = [
        (0u32, 1u16, 0usize, Residual::Overflow(BS as u32)),
        (10000, 1, BS, Residual::Underflow(10000 - BS as u32)),
        (200, 1, 200, Residual::Overflow(BS as u32 - 200)),
        (BS as u32, 2, BS, Residual::Overflow(BS as u32)),
    ];
    for (e, blocks, got, residual) in cases {
        let resp = run(&r.a, 0, &read10(0, blocks), DataDirection::Read, e, vec![]);
        assert_eq!(resp.status, status::GOOD);
        assert_eq!(
            (resp.data_in.len(), resp.residual),
            (got, residual),
            "edtl {e}"
        );
    }
    // READ flagged as a write by the transport: nothing to send back.
    let resp = run(
        &r.a,
        0,
        &read10(0, 1),
        DataDirection::Write,
        BS as u32,
        vec![0; BS],
    );
    assert_eq!(resp.status, status::GOOD);
    assert!(resp.data_in.is_empty());
}

#[test]
fn write_length_mismatch_moves_only_whole_blocks_within_both_lengths() {
    let r = rig();
    let a = vec![b'a'; 2 * BS];
    let b = vec![b'b'; 2 * BS];
    // (blocks in CDB, expected length, status, residual, blocks written with 'b')
    let cases = [
        (
            1u16,
            0usize,
            status::GOOD,
            Residual::Overflow(BS as u32),
            0usize,
        ),
        (1, 2 * BS, status::GOOD, Residual::Underflow(BS as u32), 1),
        (2, BS, status::GOOD, Residual::Overflow(BS as u32), 1),
        (
            1,
            200,
            status::CHECK_CONDITION,
            Residual::Overflow(BS as u32 - 200),
            0,
        ),
    ];
    for (blocks, e, st, residual, written) in cases {
        cmd_out(&r.a, &write10(0, 2, 0), a.clone());
        let resp = run(
            &r.a,
            0,
            &write10(0, blocks, 0),
            DataDirection::Write,
            e as u32,
            b[..e].to_vec(),
        );
        assert_eq!(
            (resp.status, resp.residual),
            (st, residual),
            "{blocks} blocks, edtl {e}"
        );
        if st == status::CHECK_CONDITION {
            let s = Sense::parse(&resp.sense).expect("sense");
            assert_eq!(kaq(&s), (5, 0x0E, 0x03));
        }
        let now = cmd_in(&r.a, &read10(0, 2), (2 * BS) as u32);
        let expect: Vec<u8> = [&b[..written * BS], &a[written * BS..]].concat();
        assert_eq!(now, expect, "{blocks} blocks, edtl {e}");
    }
}

#[test]
fn fua_and_write_cache_decide_durability() {
    let r = rig();
    cmd_out(&r.a, &write10(0, 1, 0), vec![1; BS]);
    assert_eq!(r.mem.fua_writes.load(Ordering::SeqCst), 0);
    cmd_out(&r.a, &write10(0, 1, 0x08), vec![1; BS]);
    assert_eq!(r.mem.fua_writes.load(Ordering::SeqCst), 1);
    // WRITE(6) has no FUA bit.
    cmd_out(&r.a, &[0x0A, 0, 0, 0, 1, 0], vec![1; BS]);
    assert_eq!(r.mem.fua_writes.load(Ordering::SeqCst), 1);
    // WCE=0: every write is durable before GOOD.
    r.dev
        .set_attribute("emulate_write_cache", "0")
        .expect("wce");
    drain_ua(&r.a, 0);
    cmd_out(&r.a, &write10(0, 1, 0), vec![1; BS]);
    assert_eq!(r.mem.fua_writes.load(Ordering::SeqCst), 2);
    // emulate_fua_write=0: no DPOFUA, so the bits are invalid.
    r.dev.set_attribute("emulate_fua_write", "0").expect("fua");
    drain_ua(&r.a, 0);
    let s = cmd_fail_with(
        &r.a,
        0,
        &write10(0, 1, 0x08),
        DataDirection::Write,
        BS as u32,
        vec![0; BS],
    );
    assert_eq!(pointer(&s), Some((true, 1, Some(3))));
}

#[test]
fn synchronize_cache_flushes_and_checks_its_range() {
    let r = rig();
    cmd_out(&r.a, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], vec![]);
    cmd_out(
        &r.a,
        &[0x91, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![],
    );
    assert_eq!(r.mem.flushes.load(Ordering::SeqCst), 2);
    let s = cmd_fail(&r.a, &[0x35, 0, 0, 0, 0x10, 0, 0, 0, 1, 0]);
    assert_eq!(kaq(&s), (5, 0x21, 0));
}

#[test]
fn verify_compares_and_reports_the_miscompare_offset() {
    let r = rig();
    let data = pattern(4 * BS, 7);
    cmd_out(&r.a, &write10(20, 4, 0), data.clone());
    let verify = |bytchk: u8, n: u16| {
        let mut c = read10(20, n);
        c[0] = 0x2F;
        c[1] = bytchk << 1;
        c
    };
    cmd_out(&r.a, &verify(1, 4), data.clone());
    cmd_out(&r.a, &verify(0, 4), vec![]);
    let mut bad = data.clone();
    bad[3 * BS + 5] ^= 0xFF;
    let s = cmd_fail_with(
        &r.a,
        0,
        &verify(1, 4),
        DataDirection::Write,
        bad.len() as u32,
        bad,
    );
    assert_eq!(kaq(&s), (0x0E, 0x1D, 0));
    assert_eq!(s.information, Some((3 * BS + 5) as u64));
    // BYTCHK 11b: one block compared with every block.
    cmd_out(&r.a, &write10(40, 2, 0), vec![9; 2 * BS]);
    let mut c = verify(3, 2);
    c[2..6].copy_from_slice(&40u32.to_be_bytes());
    cmd_out(&r.a, &c, vec![9; BS]);
    let s = cmd_fail(&r.a, &verify(2, 1));
    assert_eq!(pointer(&s), Some((true, 1, Some(2))));
}

#[test]
fn write_and_verify_writes_durably() {
    let r = rig();
    let data = pattern(2 * BS, 3);
    let mut c = write10(30, 2, 0x02);
    c[0] = 0x2E;
    cmd_out(&r.a, &c, data.clone());
    assert_eq!(r.mem.fua_writes.load(Ordering::SeqCst), 1);
    assert_eq!(cmd_in(&r.a, &read10(30, 2), (2 * BS) as u32), data);
}

#[test]
fn prefetch_reports_condition_met() {
    let r = rig();
    let resp = run(
        &r.a,
        0,
        &[0x34, 0x02, 0, 0, 0, 0, 0x03, 0, 8, 0],
        DataDirection::None,
        0,
        vec![],
    );
    assert_eq!(resp.status, status::CONDITION_MET);
    let s = cmd_fail(&r.a, &[0x34, 0, 0x80, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(kaq(&s), (5, 0x21, 0));
}

#[test]
fn read_capacity_10_and_16() {
    let r = rig();
    let d = cmd_in(&r.a, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert_eq!(
        d,
        [
            &(BLOCKS as u32 - 1).to_be_bytes()[..],
            &(BS as u32).to_be_bytes()[..]
        ]
        .concat()
    );
    let s = cmd_fail(&r.a, &[0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(pointer(&s), Some((true, 2, None)));
    let d = cmd_in(
        &r.a,
        &[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
        32,
    );
    assert_eq!(d.len(), 32);
    assert_eq!(&d[..8], &(BLOCKS as u64 - 1).to_be_bytes());
    assert_eq!(&d[8..12], &(BS as u32).to_be_bytes());
    let d = cmd_in(
        &r.a,
        &[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0],
        32,
    );
    assert_eq!(d.len(), 12);
}

#[test]
fn start_stop_unit_stops_media_access() {
    let r = rig();
    cmd_out(&r.a, &[0x1B, 0, 0, 0, 0x00, 0], vec![]);
    assert_eq!(r.mem.flushes.load(Ordering::SeqCst), 1);
    let s = cmd_fail(&r.a, &[0, 0, 0, 0, 0, 0]);
    assert_eq!(kaq(&s), (2, 0x04, 0x02));
    cmd_in(&r.a, &[0x12, 0, 0, 0, 36, 0], 36);
    cmd_out(&r.a, &[0x1B, 1, 0, 0, 0x01, 0], vec![]);
    cmd_out(&r.a, &[0, 0, 0, 0, 0, 0], vec![]);
    let s = cmd_fail(&r.a, &[0x1B, 0, 0, 0, 0x02, 0]);
    assert_eq!(pointer(&s), Some((true, 4, Some(1))));
    let s = cmd_fail(&r.a, &[0x1B, 0, 0, 0, 0x11, 0]);
    assert_eq!(pointer(&s), Some((true, 4, Some(7))));
}

#[test]
fn acl_write_protect_and_read_only_backstore() {
    let r = rig();
    r.port.set_acl(
        "iqn.a",
        vec![MappedLun {
            mapped_lun: 0,
            tpg_lun: 0,
            write_protect: true,
        }],
    );
    let s = cmd_fail_with(
        &r.a,
        0,
        &write10(0, 1, 0),
        DataDirection::Write,
        BS as u32,
        vec![0; BS],
    );
    assert_eq!(kaq(&s), (7, 0x27, 0));
    let d = cmd_in(&r.a, &[0x1A, 0x08, 0x3F, 0, 255, 0], 255);
    assert_eq!(d[2] & 0x80, 0x80);
    // The other initiator (demo mode) still writes.
    cmd_out(&r.b, &write10(0, 1, 0), vec![0; BS]);
    let rr = rig_with(Mem::read_only(BS * 16));
    let s = cmd_fail_with(
        &rr.a,
        0,
        &write10(0, 1, 0),
        DataDirection::Write,
        BS as u32,
        vec![0; BS],
    );
    assert_eq!(kaq(&s), (7, 0x27, 0));
}
