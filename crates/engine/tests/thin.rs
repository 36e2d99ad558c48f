//! Logical block provisioning (SBC-3 §4.7) through the public surface on a RAM disk LU:
//! UNMAP parameter list checks with exact sense and pointers, deallocation seen by reads and
//! GET LBA STATUS, WRITE SAME with UNMAP / NDOB / ANCHOR, WSNZ=0, VPD B0h/B2h and READ
//! CAPACITY(16) bits, and the attribute refusals.

mod common;

use std::sync::Arc;

use common::*;
use ironlun_backstore::{Backstore, RamDisk};
use ironlun_engine::scsi::Sense;
use ironlun_engine::*;

struct Thin {
    ram: Arc<RamDisk>,
    dev: Arc<Device>,
    a: Arc<Nexus>,
    _port: Arc<TargetPort>,
}

fn thin_rig(tpu: bool) -> Thin {
    let ram = Arc::new(RamDisk::new((BS * BLOCKS) as u64).expect("ramdisk"));
    let dev = Device::new(config(), ram.clone()).expect("device");
    if tpu {
        dev.set_attribute("emulate_tpu", "1").expect("tpu");
        dev.set_attribute("emulate_tpws", "1").expect("tpws");
    }
    let port = TargetPort::new("iqn.2024-01.org.ironlun:thin", 1, 1);
    port.add_lun(0, dev.clone()).expect("lun");
    port.set_demo_mode(true, false);
    let a = port.open_nexus(initiator("iqn.a", 1)).expect("a");
    drain_ua(&a, 0);
    Thin {
        ram,
        dev,
        a,
        _port: port,
    }
}

fn unmap_list(ranges: &[(u64, u32)]) -> Vec<u8> {
    let mut d = vec![0u8; 8];
    for (lba, n) in ranges {
        d.extend_from_slice(&lba.to_be_bytes());
        d.extend_from_slice(&n.to_be_bytes());
        d.extend_from_slice(&[0; 4]);
    }
    let len = d.len() as u16;
    d[0..2].copy_from_slice(&(len - 2).to_be_bytes());
    d[2..4].copy_from_slice(&(len - 8).to_be_bytes());
    d
}

fn unmap_cdb(plen: u16, b1: u8) -> Vec<u8> {
    let mut c = vec![0x42, b1, 0, 0, 0, 0, 0];
    c.extend_from_slice(&plen.to_be_bytes());
    c.push(0);
    c
}

fn unmap_fail(t: &Thin, list: Vec<u8>) -> Sense {
    let c = unmap_cdb(list.len() as u16, 0);
    cmd_fail_with(&t.a, 0, &c, DataDirection::Write, list.len() as u32, list)
}

fn unmap(t: &Thin, ranges: &[(u64, u32)]) {
    let list = unmap_list(ranges);
    cmd_out(&t.a, &unmap_cdb(list.len() as u16, 0), list);
}

fn lba_status(t: &Thin, lba: u64, alloc: u32) -> Vec<(u64, u32, u8)> {
    let mut c = vec![0x9E, 0x12];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&alloc.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    let d = cmd_in(&t.a, &c, alloc);
    let plen = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    assert_eq!((plen - 4) % 16, 0);
    d[8..]
        .chunks_exact(16)
        .map(|x| {
            (
                u64::from_be_bytes(x[..8].try_into().unwrap_or([0; 8])),
                u32::from_be_bytes(x[8..12].try_into().unwrap_or([0; 4])),
                x[12],
            )
        })
        .collect()
}

fn fill(t: &Thin, lba: u32, n: u16, byte: u8) {
    cmd_out(&t.a, &write10(lba, n, 0), vec![byte; n as usize * BS]);
}

fn read(t: &Thin, lba: u32, n: u16) -> Vec<u8> {
    cmd_in(&t.a, &read10(lba, n), n as u32 * BS as u32)
}

const ILLEGAL: u8 = 0x05;

#[test]
fn unmap_deallocates_reads_zero_and_frees_ram() {
    let t = thin_rig(true);
    fill(&t, 0, 512, 0xAA);
    assert_eq!(t.ram.allocated_bytes(), 256 * 1024);
    // Chunks 1 and 2 whole (LBAs 128..384), plus 10 blocks of chunk 0.
    unmap(&t, &[(118, 266)]);
    assert_eq!(t.ram.allocated_bytes(), 2 * 64 * 1024);
    assert!(read(&t, 118, 266).iter().all(|b| *b == 0));
    assert!(read(&t, 0, 118).iter().all(|b| *b == 0xAA));
    assert!(read(&t, 384, 128).iter().all(|b| *b == 0xAA));
    let s = lba_status(&t, 0, 8 + 16 * 8);
    assert_eq!(
        s,
        vec![
            (0, 128, 0),
            (128, 256, 1),
            (384, 128, 0),
            (512, 2048 - 512, 1)
        ]
    );
    // Starting inside a run; allocation length for one descriptor.
    assert_eq!(lba_status(&t, 200, 24), vec![(200, 184, 1)]);
}

#[test]
fn unmap_parameter_list_checks() {
    let t = thin_rig(true);
    // Length 0: GOOD, nothing transferred.
    cmd_out(&t.a, &unmap_cdb(0, 0), vec![]);
    // ANCHOR without ANC_SUP.
    let list = unmap_list(&[(0, 1)]);
    let s = cmd_fail_with(&t.a, 0, &unmap_cdb(24, 1), DataDirection::Write, 24, list);
    assert_eq!(kaq(&s), (ILLEGAL, 0x24, 0));
    assert_eq!(pointer(&s), Some((true, 1, Some(0))));
    // Shorter than the header.
    let s = unmap_fail(&t, vec![0, 6, 0, 0, 0, 0]);
    assert_eq!(kaq(&s), (ILLEGAL, 0x1A, 0));
    // Block descriptor data length beyond the list.
    let mut list = unmap_list(&[(0, 1)]);
    list[2..4].copy_from_slice(&32u16.to_be_bytes());
    list[0..2].copy_from_slice(&38u16.to_be_bytes());
    assert_eq!(kaq(&unmap_fail(&t, list)), (ILLEGAL, 0x1A, 0));
    // UNMAP DATA LENGTH too short for the descriptors.
    let mut list = unmap_list(&[(0, 1)]);
    list[0..2].copy_from_slice(&6u16.to_be_bytes());
    let s = unmap_fail(&t, list);
    assert_eq!(kaq(&s), (ILLEGAL, 0x26, 0));
    assert_eq!(pointer(&s), Some((false, 0, Some(7))));
    // Too many descriptors.
    t.dev
        .set_attribute("max_unmap_block_desc_count", "2")
        .expect("attr");
    let s = unmap_fail(&t, unmap_list(&[(0, 1), (1, 1), (2, 1)]));
    assert_eq!(kaq(&s), (ILLEGAL, 0x26, 0));
    assert_eq!(pointer(&s), Some((false, 2, Some(7))));
    // Too many blocks in total: the pointer names the count that crossed the limit.
    t.dev
        .set_attribute("max_unmap_lba_count", "100")
        .expect("attr");
    let s = unmap_fail(&t, unmap_list(&[(0, 60), (100, 41)]));
    assert_eq!(kaq(&s), (ILLEGAL, 0x26, 0));
    assert_eq!(pointer(&s), Some((false, 32, Some(7))));
    // Past the end, and nothing of a failing list is done.
    fill(&t, 0, 1, 0x55);
    let s = unmap_fail(&t, unmap_list(&[(0, 1), (BLOCKS as u64 - 1, 2)]));
    assert_eq!(kaq(&s), (ILLEGAL, 0x21, 0));
    assert!(read(&t, 0, 1).iter().all(|b| *b == 0x55));
    // A trailing incomplete descriptor is ignored; zero-length ranges are fine.
    let mut list = unmap_list(&[(0, 1), (BLOCKS as u64, 0)]);
    list.extend_from_slice(&[0xFF; 8]);
    let len = list.len() as u16;
    list[0..2].copy_from_slice(&(len - 2).to_be_bytes());
    list[2..4].copy_from_slice(&(len - 8).to_be_bytes());
    cmd_out(&t.a, &unmap_cdb(len, 0), list);
    assert!(read(&t, 0, 1).iter().all(|b| *b == 0));
}

#[test]
fn unmap_and_get_lba_status_are_absent_without_tpu() {
    let t = thin_rig(false);
    let list = unmap_list(&[(0, 1)]);
    let s = cmd_fail_with(&t.a, 0, &unmap_cdb(24, 0), DataDirection::Write, 24, list);
    assert_eq!(kaq(&s), (ILLEGAL, 0x20, 0));
    let s = cmd_fail(
        &t.a,
        &cdb16(&[0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 24]),
    );
    assert_eq!(kaq(&s), (ILLEGAL, 0x24, 0));
    // Thick: VPD B2h all zero, RC16 byte 14 without LBPME.
    let d = cmd_in(&t.a, &[0x12, 1, 0xB2, 0, 64, 0], 64);
    assert_eq!(&d[4..8], &[0, 0, 0, 0]);
    let d = cmd_in(
        &t.a,
        &cdb16(&[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32]),
        32,
    );
    assert_eq!(d[14] & 0xC0, 0);
    let d = cmd_in(&t.a, &[0x12, 1, 0xB0, 0, 64, 0], 64);
    assert_eq!(&d[20..36], &[0u8; 16]);
}

#[test]
fn get_lba_status_beyond_the_end_is_lba_out_of_range() {
    let t = thin_rig(true);
    for lba in [BLOCKS as u64, u64::MAX, 1 << 63] {
        let mut c = vec![0x9E, 0x12];
        c.extend_from_slice(&lba.to_be_bytes());
        c.extend_from_slice(&[0, 0, 0, 24, 0, 0]);
        assert_eq!(kaq(&cmd_fail(&t.a, &c)), (ILLEGAL, 0x21, 0));
    }
    // The last block is fine; a short allocation length truncates.
    assert_eq!(lba_status(&t, BLOCKS as u64 - 1, 24), vec![(2047, 1, 1)]);
    let mut c = vec![0x9E, 0x12];
    c.extend_from_slice(&0u64.to_be_bytes());
    c.extend_from_slice(&[0, 0, 0, 8, 0, 0]);
    let d = cmd_in(&t.a, &c, 8);
    assert_eq!(d, vec![0, 0, 0, 20, 0, 0, 0, 0]);
}

#[test]
fn write_same_unmap_deallocates_whatever_the_data_block_holds() {
    let t = thin_rig(true);
    fill(&t, 0, 512, 0xAA);
    cmd_out(&t.a, &ws10(128, 256, 0x08), vec![0; BS]);
    assert_eq!(t.ram.allocated_bytes(), 2 * 64 * 1024);
    assert!(read(&t, 128, 256).iter().all(|b| *b == 0));
    // Non-zero data with UNMAP deallocates too (as LIO; reads then return LBPRZ zeroes).
    cmd_out(&t.a, &ws16(128, 2, 0), vec![7; BS]);
    assert!(read(&t, 128, 2).iter().all(|b| *b == 7));
    cmd_out(&t.a, &ws16(128, 2, 0x08), vec![7; BS]);
    assert!(read(&t, 128, 2).iter().all(|b| *b == 0));
    // NDOB: no Data-Out, zeroes; with UNMAP deallocated.
    cmd_out(&t.a, &ws16(0, 128, 0x09), vec![]);
    assert!(read(&t, 0, 128).iter().all(|b| *b == 0));
    assert_eq!(lba_status(&t, 0, 24), vec![(0, 384, 1)]);
    // NDOB without UNMAP writes zeroes.
    cmd_out(&t.a, &ws16(384, 1, 0x01), vec![]);
    assert!(read(&t, 384, 1).iter().all(|b| *b == 0));
    // NDOB with a Data-Out is a length mismatch.
    let s = cmd_fail_with(
        &t.a,
        0,
        &ws16(0, 1, 0x01),
        DataDirection::Write,
        BS as u32,
        vec![0; BS],
    );
    assert_eq!(kaq(&s), (ILLEGAL, 0x0E, 0x03));
    // ANCHOR (alone or with UNMAP): ANC_SUP=0.
    for b1 in [0x10, 0x18] {
        let s = cmd_fail_with(
            &t.a,
            0,
            &ws10(0, 1, b1),
            DataDirection::Write,
            BS as u32,
            vec![0; BS],
        );
        assert_eq!(kaq(&s), (ILLEGAL, 0x24, 0));
        assert_eq!(pointer(&s), Some((true, 1, Some(4))));
    }
}

/// The sense of a refused WRITE SAME(16) with NUMBER OF LOGICAL BLOCKS 0 at `lba`.
fn ws16_zero_blocks_refused(t: &Thin, lba: u64) -> Sense {
    cmd_fail_with(
        &t.a,
        0,
        &ws16(lba, 0, 0),
        DataDirection::Write,
        BS as u32,
        vec![0; BS],
    )
}

#[test]
fn write_same_zero_blocks_follows_wsnz() {
    let t = thin_rig(true);
    let s = ws16_zero_blocks_refused(&t, 0);
    assert_eq!(pointer(&s), Some((true, 10, Some(7))));
    t.dev.set_attribute("emulate_wsnz", "0").expect("wsnz");
    let d = cmd_in(&t.a, &[0x12, 1, 0xB0, 0, 64, 0], 64);
    assert_eq!(d[4] & 1, 0, "WSNZ clear");
    // To the end of the medium.
    fill(&t, 2000, 48, 0xAA);
    cmd_out(&t.a, &ws16(2000, 0, 0x08), vec![0; BS]);
    assert!(read(&t, 2000, 48).iter().all(|b| *b == 0));
    cmd_out(&t.a, &ws16(BLOCKS as u64 - 2, 0, 0), vec![9; BS]);
    assert!(read(&t, 2046, 2).iter().all(|b| *b == 9));
    // Past the end: LBA OUT OF RANGE before the length check.
    let s = ws16_zero_blocks_refused(&t, BLOCKS as u64 + 1);
    assert_eq!(kaq(&s), (ILLEGAL, 0x21, 0));
    // Still bounded by MAXIMUM WRITE SAME LENGTH.
    t.dev
        .set_attribute("max_write_same_len", "100")
        .expect("attr");
    let s = ws16_zero_blocks_refused(&t, 0);
    assert_eq!(pointer(&s), Some((true, 10, Some(7))));
    cmd_out(&t.a, &ws16(BLOCKS as u64 - 100, 0, 0), vec![1; BS]);
}

#[test]
fn vpd_and_read_capacity_report_thin_provisioning() {
    let t = thin_rig(true);
    let d = cmd_in(&t.a, &[0x12, 1, 0xB2, 0, 64, 0], 64);
    // LBPU | LBPWS | LBPWS10 | LBPRZ, ANC_SUP=0; PROVISIONING TYPE thin.
    assert_eq!(&d[3..8], &[4, 0, 0xE4, 0x02, 0]);
    let d = cmd_in(&t.a, &[0x12, 1, 0xB0, 0, 64, 0], 64);
    let be = |i: usize| u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
    assert_eq!(be(20), (256 << 20) / BS as u32, "MAXIMUM UNMAP LBA COUNT");
    assert_eq!(be(24), 256, "MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT");
    assert_eq!(
        be(28),
        64 * 1024 / BS as u32,
        "OPTIMAL UNMAP GRANULARITY: a RAM chunk"
    );
    assert_eq!(be(32), 0x8000_0000, "UGAVALID, alignment 0");
    let d = cmd_in(
        &t.a,
        &cdb16(&[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32]),
        32,
    );
    assert_eq!(d[14] & 0xC0, 0xC0, "LBPME | LBPRZ");
    // Without unmap_zeroes_data, LBPRZ goes and WRITE SAME UNMAP writes.
    t.dev.set_attribute("unmap_zeroes_data", "0").expect("attr");
    let d = cmd_in(
        &t.a,
        &cdb16(&[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32]),
        32,
    );
    assert_eq!(d[14] & 0xC0, 0x80);
    assert_eq!(
        t.dev.attribute("max_unmap_lba_count").as_deref(),
        Some("524288")
    );
}

#[test]
fn thin_attributes_are_refused_where_nothing_can_be_deallocated() {
    let mem = Mem::new(BS * BLOCKS, true);
    assert!(!mem.supports_unmap());
    let dev = Device::new(config(), mem).expect("device");
    for a in ["emulate_tpu", "emulate_tpws", "unmap_zeroes_data"] {
        let e = dev.set_attribute(a, "1").expect_err(a);
        assert!(e.starts_with(a) && !e.contains('\n'), "{e}");
        dev.set_attribute(a, "0").expect("0 is fine");
    }
}
