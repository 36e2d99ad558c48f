//! EXTENDED COPY (LID1) and RECEIVE COPY RESULTS through the engine (SPC-4 §6.3, §6.18).

mod common;

use ironlun_testkit::xcopy::{self, naa_designator};
use std::sync::Arc;

use common::*;
use ironlun_engine::scsi::{status, Sense};
use ironlun_engine::*;

/// Three LUs (LUN 0, 1, 2 on port `all`), and a second port exporting only LUN 0's device.
struct Xr {
    mems: Vec<Arc<Mem>>,
    devs: Vec<Arc<Device>>,
    a: Arc<Nexus>,
    b: Arc<Nexus>,
    /// A nexus on the second port: it sees only the first LU.
    narrow: Arc<Nexus>,
    _ports: Vec<Arc<TargetPort>>,
}

const BLKS: [usize; 3] = [4096, 4096, 64];

fn xrig() -> Xr {
    let mut mems = Vec::new();
    let mut devs = Vec::new();
    for (i, blocks) in BLKS.iter().enumerate() {
        let mem = Mem::new(BS * blocks, true);
        let mut cfg = config();
        cfg.name = format!("xc{i}");
        cfg.unit_serial = format!("{i}{i}c5a8b2-1c4f-4e0a-9b3e-5f2d7c1a0b9{i}");
        devs.push(Device::new(cfg, mem.clone()).expect("device"));
        mems.push(mem);
    }
    let all = TargetPort::new("iqn.2024-01.org.ironlun:xc", 1, 1);
    for (i, d) in devs.iter().enumerate() {
        all.add_lun(i as u64, d.clone()).expect("lun");
    }
    all.set_demo_mode(true, false);
    let one = TargetPort::new("iqn.2024-01.org.ironlun:xc1", 1, 2);
    one.add_lun(0, devs[0].clone()).expect("lun");
    one.set_demo_mode(true, false);
    let a = all.open_nexus(initiator("iqn.a", 1)).expect("a");
    let b = all.open_nexus(initiator("iqn.b", 2)).expect("b");
    let narrow = one.open_nexus(initiator("iqn.c", 3)).expect("c");
    for lun in 0..3 {
        drain_ua(&a, lun);
        drain_ua(&b, lun);
    }
    drain_ua(&narrow, 0);
    Xr {
        mems,
        devs,
        a,
        b,
        narrow,
        _ports: vec![all, one],
    }
}

/// The LU's NAA designator from its Device Identification VPD page.
fn naa(n: &Nexus, lun: u64) -> Vec<u8> {
    let r = run(
        n,
        lun,
        &[0x12, 1, 0x83, 0, 255, 0],
        DataDirection::Read,
        255,
        vec![],
    );
    assert_eq!(r.status, status::GOOD);
    naa_designator(&r.data_in).expect("no NAA designator")
}

fn target_desc(designator: &[u8]) -> Vec<u8> {
    xcopy::target_desc(designator, BS as u32)
}

fn seg_desc(src: u16, dst: u16, n: u16, src_lba: u64, dst_lba: u64) -> Vec<u8> {
    let mut s = vec![0u8; 28];
    s[0] = 0x02;
    s[3] = 0x18;
    s[4..6].copy_from_slice(&src.to_be_bytes());
    s[6..8].copy_from_slice(&dst.to_be_bytes());
    s[10..12].copy_from_slice(&n.to_be_bytes());
    s[12..20].copy_from_slice(&src_lba.to_be_bytes());
    s[20..28].copy_from_slice(&dst_lba.to_be_bytes());
    s
}

fn plist(list_id: u8, usage: u8, tds: &[Vec<u8>], sds: &[Vec<u8>]) -> Vec<u8> {
    let t: Vec<u8> = tds.concat();
    let s: Vec<u8> = sds.concat();
    let mut p = vec![0u8; 16];
    p[0] = list_id;
    p[1] = usage << 3;
    p[2..4].copy_from_slice(&(t.len() as u16).to_be_bytes());
    p[8..12].copy_from_slice(&(s.len() as u32).to_be_bytes());
    p.extend(t);
    p.extend(s);
    p
}

fn xcopy_cdb(len: usize) -> Vec<u8> {
    let mut c = vec![0u8; 16];
    c[0] = 0x83;
    c[10..14].copy_from_slice(&(len as u32).to_be_bytes());
    c
}

fn xcopy(n: &Nexus, lun: u64, p: Vec<u8>) -> ScsiResponse {
    run(
        n,
        lun,
        &xcopy_cdb(p.len()),
        DataDirection::Write,
        p.len() as u32,
        p,
    )
}

fn xcopy_fail(n: &Nexus, lun: u64, p: Vec<u8>) -> Sense {
    let r = xcopy(n, lun, p);
    assert_eq!(
        r.status,
        status::CHECK_CONDITION,
        "expected CHECK CONDITION"
    );
    Sense::parse(&r.sense).expect("sense")
}

/// COPY ABORTED: the segment pointer (SPC-4 §4.5.2.4.5) of fixed-format sense, relative to
/// the parameter list (SD = 0).
fn aborted_pointer(n: &Nexus, lun: u64, p: Vec<u8>) -> ((u8, u8, u8), Option<u16>) {
    let r = xcopy(n, lun, p);
    assert_eq!(r.status, status::CHECK_CONDITION);
    let s = Sense::parse(&r.sense).expect("sense");
    let raw = &r.sense;
    assert_eq!(raw[0] & 0x7F, 0x70, "fixed format");
    let sks = (raw[15] & 0x80 != 0).then(|| {
        assert_eq!(raw[15] & 0x20, 0, "SD = 0");
        u16::from_be_bytes([raw[16], raw[17]])
    });
    (kaq(&s), sks)
}

fn rcr(n: &Nexus, lun: u64, sa: u8, list_id: u8) -> ScsiResponse {
    let mut c = vec![0u8; 16];
    c[0] = 0x84;
    c[1] = sa;
    c[2] = list_id;
    c[10..14].copy_from_slice(&1024u32.to_be_bytes());
    run(n, lun, &c, DataDirection::Read, 1024, vec![])
}

fn fill(mem: &Mem, seed: u8) {
    let mut d = mem.data.write();
    for (i, b) in d.iter_mut().enumerate() {
        *b = (i / 7) as u8 ^ seed;
    }
}

fn blocks(mem: &Mem, lba: usize, n: usize) -> Vec<u8> {
    mem.data.read()[lba * BS..(lba + n) * BS].to_vec()
}

#[test]
fn multi_segment_copy_between_two_lus() {
    let x = xrig();
    fill(&x.mems[0], 0x5A);
    let (t0, t1) = (target_desc(&naa(&x.a, 0)), target_desc(&naa(&x.a, 1)));
    // Copy issued to LUN 2 (neither source nor destination): any LU is a copy manager.
    let p = plist(
        7,
        0,
        &[t0, t1],
        &[seg_desc(0, 1, 3000, 0, 100), seg_desc(0, 1, 96, 3000, 3100)],
    );
    let r = xcopy(&x.a, 2, p);
    assert_eq!(r.status, status::GOOD, "{:?}", Sense::parse(&r.sense));
    assert_eq!(blocks(&x.mems[1], 100, 3096), blocks(&x.mems[0], 0, 3096));
    assert!(x.mems[1].data.read()[..100 * BS].iter().all(|&b| b == 0));
    // Copy status: completed without errors, two segments, bytes transferred.
    let s = rcr(&x.a, 2, 0x00, 7);
    assert_eq!(s.status, status::GOOD);
    let d = s.data_in;
    assert_eq!(&d[0..4], &[0, 0, 0, 8]);
    assert_eq!(d[4], 0x01);
    assert_eq!(u16::from_be_bytes([d[5], d[6]]), 2);
    assert_eq!(d[7], 0x00);
    assert_eq!(
        u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
        3096 * BS as u32
    );
    // No failed segment.
    let f = rcr(&x.a, 2, 0x04, 7);
    assert_eq!(f.status, status::GOOD);
    assert_eq!(f.data_in, vec![0, 0, 0, 0]);
}

#[test]
fn copy_within_one_lu_overlapping_upwards() {
    let x = xrig();
    fill(&x.mems[0], 0x11);
    let before = blocks(&x.mems[0], 0, 3000);
    let t0 = target_desc(&naa(&x.a, 0));
    let r = xcopy(&x.a, 0, plist(1, 2, &[t0], &[seg_desc(0, 0, 3000, 0, 500)]));
    assert_eq!(r.status, status::GOOD);
    assert_eq!(blocks(&x.mems[0], 500, 3000), before);
}

#[test]
fn dc_bit_counts_destination_blocks_and_zero_blocks_copy_nothing() {
    let x = xrig();
    fill(&x.mems[0], 0x33);
    let (t0, t1) = (target_desc(&naa(&x.a, 0)), target_desc(&naa(&x.a, 1)));
    let mut s = seg_desc(0, 1, 8, 0, 0);
    s[1] = 0x02;
    let r = xcopy(
        &x.a,
        0,
        plist(
            0,
            3,
            &[t0.clone(), t1.clone()],
            &[s, seg_desc(0, 1, 0, 0, 64)],
        ),
    );
    assert_eq!(r.status, status::GOOD);
    assert_eq!(blocks(&x.mems[1], 0, 8), blocks(&x.mems[0], 0, 8));
    assert!(blocks(&x.mems[1], 8, 100).iter().all(|&b| b == 0));
}

#[test]
fn parameter_list_length_zero_is_good_and_does_nothing() {
    let x = xrig();
    let r = run(&x.a, 0, &xcopy_cdb(0), DataDirection::None, 0, vec![]);
    assert_eq!(r.status, status::GOOD);
    assert_eq!(
        x.mems[0].writes.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[test]
fn truncated_parameter_lists_are_parameter_list_length_errors() {
    let x = xrig();
    let t0 = target_desc(&naa(&x.a, 0));
    let full = plist(1, 0, &[t0], &[seg_desc(0, 0, 8, 0, 100)]);
    for cut in [8, 16 + 31, full.len() - 1] {
        let s = xcopy_fail(&x.a, 0, full[..cut].to_vec());
        assert_eq!(kaq(&s), (0x05, 0x1A, 0x00), "cut at {cut}");
    }
    assert!(x.mems[0].data.read().iter().all(|&b| b == 0));
}

#[test]
fn descriptor_limits() {
    let x = xrig();
    let op = rcr(&x.a, 0, 0x03, 0).data_in;
    let max_t = u16::from_be_bytes([op[8], op[9]]) as usize;
    let max_s = u16::from_be_bytes([op[10], op[11]]) as usize;
    let max_list = u32::from_be_bytes([op[12], op[13], op[14], op[15]]) as usize;
    let t0 = target_desc(&naa(&x.a, 0));
    let seg = seg_desc(0, 0, 1, 0, 1);
    let s = xcopy_fail(
        &x.a,
        0,
        plist(
            1,
            0,
            &vec![t0.clone(); max_t + 1],
            std::slice::from_ref(&seg),
        ),
    );
    assert_eq!(kaq(&s), (0x05, 0x26, 0x06));
    let s = xcopy_fail(
        &x.a,
        0,
        plist(
            1,
            0,
            std::slice::from_ref(&t0),
            &vec![seg.clone(); max_s + 1],
        ),
    );
    assert_eq!(kaq(&s), (0x05, 0x26, 0x08));
    // Descriptors beyond MAXIMUM DESCRIPTOR LIST LENGTH.
    let n = (max_list - 32) / 28 + 1;
    let s = xcopy_fail(
        &x.a,
        0,
        plist(1, 0, std::slice::from_ref(&t0), &vec![seg; n]),
    );
    assert_eq!(kaq(&s), (0x05, 0x1A, 0x00));
    // Max target and segment descriptors at once are accepted.
    let r = xcopy(
        &x.a,
        0,
        plist(
            1,
            0,
            &vec![t0; max_t],
            &vec![seg_desc(0, 0, 1, 0, 1); max_s],
        ),
    );
    assert_eq!(r.status, status::GOOD, "{:?}", Sense::parse(&r.sense));
}

#[test]
fn unsupported_descriptor_types() {
    let x = xrig();
    let t0 = target_desc(&naa(&x.a, 0));
    let mut fc = t0.clone();
    fc[0] = 0xE0;
    let s = xcopy_fail(
        &x.a,
        0,
        plist(1, 0, &[t0.clone(), fc], &[seg_desc(0, 0, 1, 0, 1)]),
    );
    assert_eq!(kaq(&s), (0x05, 0x26, 0x07));
    assert_eq!(pointer(&s), Some((false, 48, Some(7))));
    let mut strm = vec![0u8; 20];
    strm[0] = 0x03;
    strm[3] = 0x10;
    let s = xcopy_fail(
        &x.a,
        0,
        plist(1, 0, &[t0], &[seg_desc(0, 0, 1, 0, 1), strm]),
    );
    assert_eq!(kaq(&s), (0x05, 0x26, 0x09));
    assert_eq!(pointer(&s), Some((false, 16 + 32 + 28, Some(7))));
}

#[test]
fn bad_fields_are_invalid_field_in_parameter_list_with_pointer() {
    let x = xrig();
    let t0 = target_desc(&naa(&x.a, 0));
    let seg = seg_desc(0, 0, 1, 0, 1);
    // LIST ID USAGE 01b is reserved.
    let s = xcopy_fail(
        &x.a,
        0,
        plist(1, 1, std::slice::from_ref(&t0), std::slice::from_ref(&seg)),
    );
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((0x05, 0x26, 0x00), Some((false, 1, Some(4))))
    );
    // LIST ID USAGE 11b with a list identifier.
    let s = xcopy_fail(
        &x.a,
        0,
        plist(9, 3, std::slice::from_ref(&t0), std::slice::from_ref(&seg)),
    );
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((0x05, 0x26, 0x00), Some((false, 0, Some(7))))
    );
    // Segment DESCRIPTOR LENGTH wrong.
    let mut bad = seg.clone();
    bad[3] = 0x14;
    let s = xcopy_fail(&x.a, 0, plist(1, 0, std::slice::from_ref(&t0), &[bad]));
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((0x05, 0x26, 0x00), Some((false, 48 + 2, Some(7))))
    );
    // DISK BLOCK LENGTH not the LU's.
    let mut t = t0.clone();
    t[30] = 0x10;
    let s = xcopy_fail(&x.a, 0, plist(1, 0, &[t], std::slice::from_ref(&seg)));
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((0x05, 0x26, 0x00), Some((false, 16 + 29, Some(7))))
    );
    // Inline data is not supported (MAXIMUM INLINE DATA LENGTH 0).
    let mut p = plist(1, 0, &[t0], &[seg]);
    p[15] = 4;
    p.extend([0u8; 4]);
    let s = xcopy_fail(&x.a, 0, p);
    assert_eq!(kaq(&s), (0x05, 0x26, 0x0B));
}

#[test]
fn unreachable_targets_and_ranges_abort_the_copy() {
    let x = xrig();
    fill(&x.mems[0], 0x77);
    let (t0, t1) = (target_desc(&naa(&x.a, 0)), target_desc(&naa(&x.a, 1)));
    // An NAA no LU has.
    let mut unknown = t0.clone();
    unknown[15] ^= 0xFF;
    let s = xcopy_fail(&x.a, 0, plist(1, 0, &[unknown], &[seg_desc(0, 0, 1, 0, 1)]));
    assert_eq!(kaq(&s), (0x0A, 0x0D, 0x02));
    // A segment naming a target descriptor that is not in the list.
    let got = aborted_pointer(
        &x.a,
        0,
        plist(1, 0, std::slice::from_ref(&t0), &[seg_desc(0, 1, 1, 0, 1)]),
    );
    assert_eq!(got, ((0x0A, 0x0D, 0x02), Some(48 + 6)));
    // Destination range past the end; source range past the end.
    let got = aborted_pointer(
        &x.a,
        0,
        plist(
            2,
            0,
            &[t0.clone(), t1.clone()],
            &[seg_desc(0, 1, 8, 0, 4090)],
        ),
    );
    assert_eq!(got, ((0x0A, 0x0D, 0x02), Some(80 + 20)));
    let got = aborted_pointer(
        &x.a,
        0,
        plist(3, 0, &[t0, t1], &[seg_desc(0, 1, 8, 4095, 0)]),
    );
    assert_eq!(got, ((0x0A, 0x0D, 0x02), Some(80 + 12)));
    // Nothing was written.
    assert!(x.mems[1].data.read().iter().all(|&b| b == 0));
    // Held results of the failed copy (list 2): completed with errors, its sense retrievable once.
    let d = rcr(&x.a, 0, 0x00, 2).data_in;
    assert_eq!((d[4], u16::from_be_bytes([d[5], d[6]])), (0x02, 0));
    let f = rcr(&x.a, 0, 0x04, 2).data_in;
    let len = u16::from_be_bytes([f[58], f[59]]) as usize;
    assert_eq!(
        u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize,
        56 + len
    );
    assert_eq!(f[56], status::CHECK_CONDITION);
    let fs = Sense::parse(&f[60..60 + len]).expect("sense");
    assert_eq!(kaq(&fs), (0x0A, 0x0D, 0x02));
    assert_eq!(rcr(&x.a, 0, 0x04, 2).data_in, vec![0, 0, 0, 0]);
}

#[test]
fn write_protected_destination_aborts_the_copy() {
    let mems = [Mem::new(BS * 64, true), Mem::read_only(BS * 64)];
    let port = TargetPort::new("iqn.2024-01.org.ironlun:wp", 1, 1);
    for (i, m) in mems.iter().enumerate() {
        let mut cfg = config();
        cfg.name = format!("wp{i}");
        cfg.unit_serial = format!("{i}5c5a8b2-1c4f-4e0a-9b3e-5f2d7c1a0b9{i}");
        port.add_lun(i as u64, Device::new(cfg, m.clone()).expect("dev"))
            .expect("lun");
    }
    port.set_demo_mode(true, false);
    let a = port.open_nexus(initiator("iqn.a", 1)).expect("a");
    drain_ua(&a, 0);
    drain_ua(&a, 1);
    let (t0, t1) = (target_desc(&naa(&a, 0)), target_desc(&naa(&a, 1)));
    let s = xcopy_fail(
        &a,
        0,
        plist(1, 0, &[t0.clone(), t1.clone()], &[seg_desc(0, 1, 4, 0, 0)]),
    );
    assert_eq!(kaq(&s), (0x0A, 0x27, 0x00));
    // The read-only LU as the source is fine.
    let r = xcopy(&a, 0, plist(1, 0, &[t1, t0], &[seg_desc(0, 1, 4, 0, 0)]));
    assert_eq!(r.status, status::GOOD);
}

#[test]
fn nexus_sees_only_its_own_lus() {
    let x = xrig();
    fill(&x.mems[1], 0x42);
    // The narrow nexus is on a port exporting only the first LU: naming LU 1 (whose NAA it
    // learned elsewhere) reaches nothing.
    let (t0, t1) = (target_desc(&naa(&x.a, 0)), target_desc(&naa(&x.a, 1)));
    let got = aborted_pointer(
        &x.narrow,
        0,
        plist(1, 0, &[t1.clone(), t0.clone()], &[seg_desc(0, 1, 8, 0, 0)]),
    );
    assert_eq!(got, ((0x0A, 0x0D, 0x02), Some(16 + 4)));
    assert!(x.mems[0].data.read().iter().all(|&b| b == 0));
    // The same list from a nexus that sees both LUs copies.
    let r = xcopy(&x.a, 0, plist(1, 0, &[t1, t0], &[seg_desc(0, 1, 8, 0, 0)]));
    assert_eq!(r.status, status::GOOD);
    assert_eq!(blocks(&x.mems[0], 0, 8), blocks(&x.mems[1], 0, 8));
}

#[test]
fn copy_status_is_per_nexus_and_list_id() {
    let x = xrig();
    let t0 = target_desc(&naa(&x.a, 0));
    // Unknown list identifier → INVALID FIELD IN CDB at byte 2.
    let r = rcr(&x.a, 0, 0x00, 5);
    assert_eq!(r.status, status::CHECK_CONDITION);
    let s = Sense::parse(&r.sense).expect("sense");
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((0x05, 0x24, 0x00), Some((true, 2, Some(7))))
    );
    let r = xcopy(
        &x.a,
        0,
        plist(5, 0, std::slice::from_ref(&t0), &[seg_desc(0, 0, 1, 0, 1)]),
    );
    assert_eq!(r.status, status::GOOD);
    assert_eq!(rcr(&x.a, 0, 0x00, 5).status, status::GOOD);
    // Another nexus has no copy with that list identifier.
    assert_eq!(rcr(&x.b, 0, 0x00, 5).status, status::CHECK_CONDITION);
    // LIST ID USAGE 10b: results are not held.
    let r = xcopy(&x.a, 0, plist(6, 2, &[t0], &[seg_desc(0, 0, 1, 0, 1)]));
    assert_eq!(r.status, status::GOOD);
    assert_eq!(rcr(&x.a, 0, 0x00, 6).status, status::CHECK_CONDITION);
    // Nexus loss drops its held results.
    x.a.close();
    let c = x._ports[0]
        .open_nexus(initiator("iqn.a", 1))
        .expect("a again");
    drain_ua(&c, 0);
    assert_eq!(rcr(&c, 0, 0x00, 5).status, status::CHECK_CONDITION);
}

#[test]
fn operating_parameters() {
    let x = xrig();
    let r = rcr(&x.a, 0, 0x03, 0);
    assert_eq!(r.status, status::GOOD);
    let d = r.data_in;
    assert_eq!(d.len(), 46);
    assert_eq!(u32::from_be_bytes([d[0], d[1], d[2], d[3]]), 42);
    assert_eq!(d[4] & 1, 1, "SNLID");
    let max_t = u16::from_be_bytes([d[8], d[9]]);
    let max_s = u16::from_be_bytes([d[10], d[11]]);
    let list = u32::from_be_bytes([d[12], d[13], d[14], d[15]]);
    let seg_len = u32::from_be_bytes([d[16], d[17], d[18], d[19]]);
    assert!(max_t >= 2 && max_s >= 16);
    assert!(list >= u32::from(max_t) * 32 + u32::from(max_s) * 28);
    assert!(seg_len >= 65535 * BS as u32);
    assert_eq!(&d[20..24], &[0, 0, 0, 0], "no inline data");
    assert!(u16::from_be_bytes([d[34], d[35]]) >= 1 && d[36] >= 1);
    assert_eq!(d[37], 9, "granularity: 512-byte blocks");
    assert_eq!(d[43], 2);
    assert_eq!(&d[44..46], &[0x02, 0xE4]);
    // Allocation length cuts it.
    let mut c = vec![0u8; 16];
    c[0] = 0x84;
    c[1] = 0x03;
    c[13] = 8;
    let r = run(&x.a, 0, &c, DataDirection::Read, 8, vec![]);
    assert_eq!(r.data_in.len(), 8);
}

#[test]
fn duplicate_list_id_in_progress_and_abort_stop_the_copy() {
    let x = xrig();
    fill(&x.mems[0], 0x19);
    let (t0, t1) = (target_desc(&naa(&x.a, 0)), target_desc(&naa(&x.a, 1)));
    let p = plist(4, 0, &[t0, t1], &[seg_desc(0, 1, 4096, 0, 0)]);
    // Hold the copy's first source read.
    x.mems[0].close_gate();
    let a = x.a.clone();
    let p2 = p.clone();
    let first = std::thread::spawn(move || {
        let mut req = request(
            0,
            &xcopy_cdb(p2.len()),
            DataDirection::Write,
            p2.len() as u32,
            p2,
        );
        req.tag = 77;
        a.execute(req)
    });
    while x.mems[0]
        .reads_waiting
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        std::thread::yield_now();
    }
    // In progress: COPY STATUS says so; the same list identifier again is refused.
    let d = rcr(&x.a, 1, 0x00, 4);
    assert_eq!(
        d.status,
        status::CHECK_CONDITION,
        "list ids belong to the copy manager LU"
    );
    let d = rcr(&x.a, 0, 0x00, 4).data_in;
    assert_eq!(d[4], 0x00);
    let s = xcopy_fail(&x.a, 0, p.clone());
    assert_eq!(kaq(&s), (0x05, 0x00, 0x16));
    // Another nexus may use the same list identifier.
    let mut small = p.clone();
    small[16 + 64 + 10..16 + 64 + 12].copy_from_slice(&0u16.to_be_bytes());
    assert_eq!(xcopy(&x.b, 0, small).status, status::GOOD);
    // ABORT TASK stops the copy after the chunk in flight.
    let tmf = {
        let a = x.a.clone();
        std::thread::spawn(move || a.task_management(0, TmfKind::AbortTask { tag: 77 }))
    };
    while x.devs[0].info().aborting == 0 {
        std::thread::yield_now();
    }
    x.mems[0].open_gate();
    assert_eq!(tmf.join().expect("tmf"), TmfResponse::FunctionComplete);
    let _ = first.join().expect("copy");
    let copied = x.mems[1].data.read().iter().filter(|&&b| b != 0).count();
    assert!(
        copied <= 1 << 20,
        "copy stopped after at most one chunk: {copied}"
    );
    let d = rcr(&x.a, 0, 0x00, 4).data_in;
    assert_eq!(d[4], 0x02, "aborted copy completed with errors");
}

#[test]
fn destination_write_cache_decides_fua() {
    use std::sync::atomic::Ordering::SeqCst;
    let x = xrig();
    fill(&x.mems[0], 0x21);
    let (t0, t1) = (target_desc(&naa(&x.a, 0)), target_desc(&naa(&x.a, 1)));
    let p = plist(1, 0, &[t0, t1], &[seg_desc(0, 1, 4096, 0, 0)]);
    assert_eq!(xcopy(&x.a, 0, p.clone()).status, status::GOOD);
    assert!(x.mems[1].writes.load(SeqCst) >= 2, "written in chunks");
    assert_eq!(x.mems[1].fua_writes.load(SeqCst), 0, "WCE=1: no FUA");
    x.devs[1]
        .set_attribute("emulate_write_cache", "0")
        .expect("WCE off");
    let before = x.mems[1].writes.load(SeqCst);
    assert_eq!(xcopy(&x.a, 0, p).status, status::GOOD);
    let (w, f) = (
        x.mems[1].writes.load(SeqCst) - before,
        x.mems[1].fua_writes.load(SeqCst),
    );
    assert!(w > 0 && f == w, "WCE=0: every write durable ({f} of {w})");
}

/// PERSISTENT RESERVE OUT on `lun`: REGISTER (SA 0) or RESERVE (SA 1) with reservation key /
/// service action reservation key.
fn prout(n: &Nexus, lun: u64, sa: u8, kind: u8, key: u64, sark: u64) {
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sark.to_be_bytes());
    let cdb = [0x5F, sa, kind, 0, 0, 0, 0, 0, 24, 0];
    let r = run(n, lun, &cdb, DataDirection::Write, 24, p);
    assert_eq!(r.status, status::GOOD, "{:?}", Sense::parse(&r.sense));
}

/// A copy must not write around a reservation another initiator holds: with nexus b holding
/// WRITE EXCLUSIVE on LU 1, a's copy into LU 1 is a RESERVATION CONFLICT and writes nothing,
/// while a's copy out of LU 1 (a read) is allowed.
#[test]
fn copies_meet_the_reservations_of_every_lu_they_touch() {
    let x = xrig();
    fill(&x.mems[0], 0x11);
    fill(&x.mems[1], 0x22);
    prout(&x.b, 1, 0x00, 0, 0, 0xB);
    prout(&x.b, 1, 0x01, 0x01, 0xB, 0);
    let (t0, t1) = (target_desc(&naa(&x.a, 0)), target_desc(&naa(&x.a, 1)));
    let before = blocks(&x.mems[1], 0, 64);
    let r = xcopy(
        &x.a,
        2,
        plist(1, 0, &[t0.clone(), t1.clone()], &[seg_desc(0, 1, 64, 0, 0)]),
    );
    assert_eq!(r.status, status::RESERVATION_CONFLICT);
    assert_eq!(blocks(&x.mems[1], 0, 64), before, "nothing written");
    let r = xcopy(&x.a, 2, plist(2, 0, &[t1, t0], &[seg_desc(0, 1, 64, 0, 0)]));
    assert_eq!(r.status, status::GOOD, "{:?}", Sense::parse(&r.sense));
    assert_eq!(blocks(&x.mems[0], 0, 64), before);
}
