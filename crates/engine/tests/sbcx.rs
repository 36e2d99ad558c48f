//! ORWRITE(16), WRITE ATOMIC(16), SANITIZE and READ DEFECT DATA through the public surface:
//! data results, CDB and parameter checks with their field pointers, atomicity against
//! concurrent writers (the read gate holds a read-modify-write inside its stripe locks) and
//! readers (a write held half landed), the sanitize in-progress and failure states.

#![allow(clippy::unwrap_used)]

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ironlun_backstore::Backstore;
use ironlun_engine::scsi::{status, Sense};
use ironlun_engine::*;

fn orwrite(lba: u64, n: u32, flags: u8) -> Vec<u8> {
    let mut c = vec![0x8B, flags];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&n.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

fn watomic(lba: u64, boundary: u16, n: u16, flags: u8) -> Vec<u8> {
    let mut c = vec![0x9C, flags];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&boundary.to_be_bytes());
    c.extend_from_slice(&n.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

fn sanitize(b1: u8, plen: u16) -> Vec<u8> {
    let mut c = vec![0x48, b1, 0, 0, 0, 0, 0];
    c.extend_from_slice(&plen.to_be_bytes());
    c.push(0);
    c
}

/// OVERWRITE parameter list: one pass of a 4-byte zero pattern (8 bytes).
fn zero_overwrite() -> Vec<u8> {
    overwrite_params(0x01, &[0u8; 4])
}

fn overwrite_params(b0: u8, pattern: &[u8]) -> Vec<u8> {
    let mut p = vec![b0, 0];
    p.extend_from_slice(&(pattern.len() as u16).to_be_bytes());
    p.extend_from_slice(pattern);
    p
}

fn out(n: &Nexus, cdb: &[u8], data: Vec<u8>) -> ScsiResponse {
    let dir = if data.is_empty() {
        DataDirection::None
    } else {
        DataDirection::Write
    };
    run(n, 0, cdb, dir, data.len() as u32, data)
}

fn out_fail(n: &Nexus, cdb: &[u8], data: Vec<u8>) -> Sense {
    let r = out(n, cdb, data);
    assert_eq!(r.status, status::CHECK_CONDITION, "cdb {cdb:02x?}");
    Sense::parse(&r.sense).expect("sense")
}

fn read_blocks(n: &Nexus, lba: u32, blocks: u16) -> Vec<u8> {
    cmd_in(n, &read10(lba, blocks), (usize::from(blocks) * BS) as u32)
}

fn tur(n: &Nexus) -> ScsiResponse {
    run(n, 0, &[0; 6], DataDirection::None, 0, vec![])
}

/// Poll (bounded) until `f` holds.
fn until(mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "condition not reached"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

const INVALID_CDB: (u8, u8, u8) = (0x05, 0x24, 0x00);
const INVALID_PARAM: (u8, u8, u8) = (0x05, 0x26, 0x00);

// ---- ORWRITE ----

#[test]
fn orwrite_ors_the_data_into_the_blocks() {
    let r = rig();
    cmd_out(&r.a, &write10(5, 2, 0), vec![0x0F; 2 * BS]);
    cmd_out(&r.a, &orwrite(5, 2, 0), vec![0x30; 2 * BS]);
    assert_eq!(read_blocks(&r.b, 5, 2), vec![0x3F; 2 * BS]);
    // Neighbours untouched.
    assert_eq!(read_blocks(&r.b, 4, 1), vec![0; BS]);
    assert_eq!(read_blocks(&r.b, 7, 1), vec![0; BS]);
}

#[test]
fn orwrite_checks_range_length_and_protect_and_zero_blocks_is_good() {
    let r = rig();
    cmd_out(&r.a, &orwrite(0, 0, 0), vec![]);
    let last = BLOCKS as u64;
    for (lba, n) in [(last + 1, 0), (last - 1, 2), (u64::MAX, 1), (1 << 63, 1)] {
        let data = vec![0u8; n as usize * BS];
        let s = out_fail(&r.a, &orwrite(lba, n, 0), data);
        assert_eq!(kaq(&s), (0x05, 0x21, 0x00), "lba {lba} n {n}");
    }
    // Above MAXIMUM TRANSFER LENGTH (16384 blocks of 512) on an LU large enough for it.
    let big = rig_with(Mem::new(BS * 20_000, true));
    let s = cmd_fail(&big.a, &orwrite(0, 16_385, 0));
    assert_eq!(kaq(&s), INVALID_CDB);
    assert_eq!(pointer(&s), Some((true, 10, Some(7))));
    for p in 1..8u8 {
        let s = out_fail(&r.a, &orwrite(0, 1, p << 5), vec![0; BS]);
        assert_eq!(kaq(&s), INVALID_CDB);
        assert_eq!(pointer(&s).map(|p| (p.0, p.1)), Some((true, 1)));
    }
}

#[test]
fn orwrite_fua_is_durable() {
    let r = rig();
    let before = r.mem.fua_writes.load(Ordering::SeqCst);
    cmd_out(&r.a, &orwrite(1, 1, 0x08), vec![1; BS]);
    assert_eq!(r.mem.fua_writes.load(Ordering::SeqCst), before + 1);
    cmd_out(&r.a, &orwrite(1, 1, 0), vec![2; BS]);
    assert_eq!(r.mem.fua_writes.load(Ordering::SeqCst), before + 1);
}

/// Hold `nexus`'s ORWRITE of blocks 0..4 inside its stripe locks (its read waits at the gate),
/// then send `cdb` with `data` from the other nexus; returns when both are done. A command that
/// respects the locks lands after the ORWRITE.
fn race_with_held_orwrite(r: &Rig, or: u8, cdb: Vec<u8>, data: Vec<u8>) {
    r.mem.close_gate();
    let a = r.a.clone();
    let t1 = thread::spawn(move || out(&a, &orwrite(0, 4, 0), vec![or; 4 * BS]).status);
    until(|| r.mem.reads_waiting.load(Ordering::SeqCst) == 1);
    let writes = r.mem.writes.load(Ordering::SeqCst);
    let b = r.b.clone();
    let t2 = thread::spawn(move || out(&b, &cdb, data).status);
    // The second command must not reach the medium while the ORWRITE holds the range. Give
    // an unlocked writer ample time to land (if it does, the final contents show it).
    let t = Instant::now();
    while r.mem.writes.load(Ordering::SeqCst) == writes && t.elapsed() < Duration::from_millis(300)
    {
        thread::sleep(Duration::from_millis(5));
    }
    r.mem.open_gate();
    assert_eq!(t1.join().unwrap(), status::GOOD);
    assert_eq!(t2.join().unwrap(), status::GOOD);
}

#[test]
fn orwrite_excludes_concurrent_writes_to_its_range() {
    let r = rig();
    cmd_out(&r.a, &write10(0, 4, 0), vec![0x01; 4 * BS]);
    race_with_held_orwrite(&r, 0x10, write10(2, 2, 0), vec![0x04; 2 * BS]);
    // The WRITE came after the whole ORWRITE: blocks 0-1 ORed, 2-3 exactly the WRITE.
    let got = read_blocks(&r.a, 0, 4);
    assert_eq!(&got[..2 * BS], &vec![0x11; 2 * BS][..]);
    assert_eq!(&got[2 * BS..], &vec![0x04; 2 * BS][..]);
}

// ---- WRITE ATOMIC ----

fn vpd_b0(n: &Nexus) -> Vec<u8> {
    cmd_in(n, &[0x12, 0x01, 0xB0, 0, 0xFF, 0], 255)
}

fn be32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

#[test]
fn write_atomic_limits_are_reported_and_enforced() {
    let r = rig_with(Mem::new(BS * 20_000, true));
    let b0 = vpd_b0(&r.a);
    let max_xfer = be32_at(&b0, 8);
    let max_atomic = be32_at(&b0, 44);
    assert!(
        max_atomic >= 256 && max_atomic <= max_xfer,
        "{max_atomic} {max_xfer}"
    );
    assert_eq!(be32_at(&b0, 48), 0, "ATOMIC ALIGNMENT");
    assert_eq!(be32_at(&b0, 52), 0, "ATOMIC TRANSFER LENGTH GRANULARITY");
    let max_boundary_len = be32_at(&b0, 56);
    let max_boundary = be32_at(&b0, 60);
    assert!(max_boundary_len > 0 && max_boundary > 0);
    // One past each limit is refused at its field, without touching the medium.
    let over = u16::try_from(max_atomic + 1).unwrap();
    let s = cmd_fail(&r.a, &watomic(0, 0, over, 0));
    assert_eq!(
        (kaq(&s), pointer(&s)),
        (INVALID_CDB, Some((true, 12, Some(7))))
    );
    let over = u16::try_from(max_boundary + 1).unwrap();
    let s = cmd_fail(&r.a, &watomic(0, over, 1, 0));
    assert_eq!(
        (kaq(&s), pointer(&s)),
        (INVALID_CDB, Some((true, 10, Some(7))))
    );
    let over = u16::try_from(max_boundary_len + 1).unwrap();
    let s = cmd_fail(&r.a, &watomic(0, 1, over, 0));
    assert_eq!(
        (kaq(&s), pointer(&s)),
        (INVALID_CDB, Some((true, 12, Some(7))))
    );
    // At the limits it works.
    let n = u16::try_from(max_atomic).unwrap();
    cmd_out(&r.a, &watomic(0, 0, n, 0), vec![7; usize::from(n) * BS]);
    cmd_out(&r.a, &watomic(0, 8, 16, 0), vec![9; 16 * BS]);
    assert_eq!(read_blocks(&r.b, 0, 16), vec![9; 16 * BS]);
    assert_eq!(read_blocks(&r.b, 16, 1), vec![7; BS]);
}

#[test]
fn write_atomic_range_protect_zero_length_and_data_length() {
    let r = rig();
    cmd_out(&r.a, &watomic(0, 0, 0, 0), vec![]);
    let end = BLOCKS as u64;
    for (lba, n) in [(end + 1, 0u16), (end - 1, 2), (u64::MAX, 1)] {
        let s = out_fail(&r.a, &watomic(lba, 0, n, 0), vec![0; usize::from(n) * BS]);
        assert_eq!(kaq(&s), (0x05, 0x21, 0x00));
    }
    for p in 1..8u8 {
        let s = out_fail(&r.a, &watomic(0, 0, 1, p << 5), vec![0; BS]);
        assert_eq!(kaq(&s), INVALID_CDB);
    }
    // A short Data-Out is not written in part.
    let s = out_fail(&r.a, &watomic(0, 0, 2, 0), vec![5; BS]);
    assert_eq!(kaq(&s), (0x05, 0x0E, 0x03));
    assert_eq!(read_blocks(&r.b, 0, 1), vec![0; BS]);
    let before = r.mem.fua_writes.load(Ordering::SeqCst);
    cmd_out(&r.a, &watomic(3, 0, 1, 0x18), vec![6; BS]);
    assert_eq!(r.mem.fua_writes.load(Ordering::SeqCst), before + 1);
    assert_eq!(read_blocks(&r.b, 3, 1), vec![6; BS]);
}

#[test]
fn write_atomic_is_excluded_while_a_read_modify_write_holds_its_range() {
    let r = rig();
    cmd_out(&r.a, &write10(0, 6, 0), vec![0x01; 6 * BS]);
    // WRITE ATOMIC of blocks 2..6 overlaps the held ORWRITE of 0..4: it must wait for it.
    race_with_held_orwrite(&r, 0x10, watomic(2, 0, 4, 0), vec![0x04; 4 * BS]);
    let got = read_blocks(&r.a, 0, 6);
    assert_eq!(&got[..2 * BS], &vec![0x11; 2 * BS][..]);
    assert_eq!(&got[2 * BS..], &vec![0x04; 4 * BS][..]);
}

// ---- SANITIZE ----

#[test]
fn sanitize_overwrite_fills_every_block_with_the_pattern() {
    let r = rig();
    cmd_out(&r.a, &write10(0, 4, 0), vec![0xEE; 4 * BS]);
    let p = overwrite_params(0x01, b"abc");
    let len = p.len() as u16;
    cmd_out(&r.a, &sanitize(0x01, len), p);
    let block: Vec<u8> = b"abc".iter().copied().cycle().take(BS).collect();
    assert_eq!(read_blocks(&r.b, 0, 1), block);
    assert_eq!(read_blocks(&r.b, BLOCKS as u32 - 1, 1), block);
    assert!(r.mem.data.read().chunks(BS).all(|b| b == &block[..]));
    assert!(r.mem.flushes.load(Ordering::SeqCst) > 0);
}

#[test]
fn sanitize_overwrite_invert_ends_with_the_pattern_and_counts_passes() {
    let r = rig();
    let writes = r.mem.writes.load(Ordering::SeqCst);
    let p = overwrite_params(0x80 | 0x02, &[0x5A; BS]);
    cmd_out(&r.a, &sanitize(0x01, p.len() as u16), p);
    assert!(r.mem.data.read().iter().all(|&b| b == 0x5A));
    let two = r.mem.writes.load(Ordering::SeqCst) - writes;
    let p = overwrite_params(0x01, &[0x11]);
    cmd_out(&r.a, &sanitize(0x01, p.len() as u16), p);
    let one = r.mem.writes.load(Ordering::SeqCst) - writes - two;
    assert_eq!(two, 2 * one, "two passes write twice");
}

/// BLOCK ERASE exists only on a thin LU (LBPME; the erase deallocates): hidden on a thick
/// one, and on a thin RAM disk every block reads back zero afterwards.
#[test]
fn sanitize_block_erase_zeroes_a_thin_lu() {
    let r = rig();
    let s = out_fail(&r.a, &sanitize(0x02, 0), vec![]);
    assert_eq!(
        (kaq(&s), pointer(&s)),
        (INVALID_CDB, Some((true, 1, Some(4))))
    );
    let ram = Arc::new(ironlun_backstore::RamDisk::new((BS * BLOCKS) as u64).expect("ram"));
    let dev = Device::new(config(), ram).expect("device");
    dev.set_attribute("emulate_tpu", "1").expect("tpu");
    let port = TargetPort::new("iqn.2024-01.org.ironlun:t8", 1, 1);
    port.add_lun(0, dev).expect("lun");
    port.set_demo_mode(true, false);
    let a = port.open_nexus(initiator("iqn.a", 1)).expect("a");
    drain_ua(&a, 0);
    cmd_out(&a, &write10(0, 8, 0), vec![0xAB; 8 * BS]);
    cmd_out(&a, &write10(BLOCKS as u32 - 8, 8, 0), vec![0xAB; 8 * BS]);
    cmd_out(&a, &sanitize(0x02, 0), vec![]);
    for lba in [0, BLOCKS as u32 - 8] {
        let d = cmd_in(&a, &read10(lba, 8), 8 * BS as u32);
        assert!(d.iter().all(|&b| b == 0), "LBA {lba}");
    }
}

#[test]
fn sanitize_field_checks_are_precise() {
    let r = rig();
    let bs = BS as u16;
    // PARAMETER LIST LENGTH outside 5..=block size + 4.
    for plen in [0u16, 1, 4, bs + 5] {
        let s = out_fail(&r.a, &sanitize(0x01, plen), vec![0x01; usize::from(plen)]);
        assert_eq!(
            (kaq(&s), pointer(&s)),
            (INVALID_CDB, Some((true, 7, Some(7)))),
            "{plen}"
        );
    }
    let bad = [
        (overwrite_params(0x00, &[1; 4]), (0u16, Some(4u8))), // OVERWRITE COUNT 0
        (overwrite_params(0x21, &[1; 4]), (0, Some(6))),      // TEST 01b
        (
            {
                let mut p = overwrite_params(0x01, &[1; 4]);
                p[1] = 1;
                p
            },
            (1, Some(7)),
        ),
        (
            {
                let mut p = overwrite_params(0x01, &[1; 8]);
                p[3] = 4; // pattern length disagrees with the list length
                p
            },
            (2, Some(7)),
        ),
        (
            {
                let mut p = overwrite_params(0x01, &[1; 8]);
                p[3] = 0;
                p
            },
            (2, Some(7)),
        ),
    ];
    for (p, (at, bit)) in bad {
        let s = out_fail(&r.a, &sanitize(0x01, p.len() as u16), p);
        assert_eq!(
            (kaq(&s), pointer(&s)),
            (INVALID_PARAM, Some((false, at, bit)))
        );
    }
    let mut p = overwrite_params(0x01, &vec![1; BS + 4]);
    p.truncate(BS + 4);
    let s = out_fail(&r.a, &sanitize(0x01, p.len() as u16), p);
    assert_eq!(kaq(&s), INVALID_PARAM);
    // EXIT FAILURE MODE takes no parameter list.
    let s = out_fail(&r.a, &sanitize(0x1F, 8), vec![0; 8]);
    assert_eq!(
        (kaq(&s), pointer(&s)),
        (INVALID_CDB, Some((true, 7, Some(7))))
    );
    // CRYPTOGRAPHIC ERASE and undefined service actions; reserved bit and bytes.
    for sa in [0x00u8, 0x03, 0x04, 0x1E] {
        let s = out_fail(&r.a, &sanitize(sa, 0), vec![]);
        assert_eq!(
            (kaq(&s), pointer(&s)),
            (INVALID_CDB, Some((true, 1, Some(4)))),
            "{sa}"
        );
    }
    let s = out_fail(&r.a, &sanitize(0x42, 0), vec![]);
    assert_eq!(kaq(&s), INVALID_CDB);
    for b in 2..7 {
        let mut c = sanitize(0x1F, 0);
        c[b] = 1;
        assert_eq!(kaq(&out_fail(&r.a, &c, vec![])), INVALID_CDB);
    }
    // Nothing was written by any of these.
    assert_eq!(r.mem.writes.load(Ordering::SeqCst), 0);
    // EXIT FAILURE MODE outside failure mode has nothing to do.
    cmd_out(&r.a, &sanitize(0x1F, 0), vec![]);
}

#[test]
fn sanitize_is_refused_on_a_write_protected_lu() {
    let r = rig_with(Mem::read_only(BS * BLOCKS));
    let s = out_fail(&r.a, &sanitize(0x01, 8), zero_overwrite());
    assert_eq!(kaq(&s), (0x07, 0x27, 0x00));
}

/// PROGRESS INDICATION of fixed-format sense (SKSV set, bytes 16-17).
fn progress(sense: &[u8]) -> u16 {
    assert_eq!(sense[0] & 0x7F, 0x70);
    assert_eq!(sense[15], 0x80, "SKSV with nothing else in byte 15");
    u16::from_be_bytes([sense[16], sense[17]])
}

#[test]
fn immediate_sanitize_reports_progress_and_blocks_medium_access_until_done() {
    let r = rig();
    // Hold stripe 0 with a read-modify-write so the sanitize cannot pass its first chunk.
    r.mem.close_gate();
    let b = r.b.clone();
    let held = thread::spawn(move || out(&b, &orwrite(0, 1, 0), vec![1; BS]).status);
    until(|| r.mem.reads_waiting.load(Ordering::SeqCst) == 1);
    cmd_out(&r.a, &sanitize(0x80 | 0x01, 8), zero_overwrite());
    let t = tur(&r.a);
    let s = Sense::parse(&t.sense).expect("sense");
    assert_eq!(kaq(&s), (0x02, 0x04, 0x1B));
    assert_eq!(progress(&t.sense), 0);
    let r10 = run(
        &r.a,
        0,
        &read10(0, 1),
        DataDirection::Read,
        BS as u32,
        vec![],
    );
    assert_eq!(kaq(&Sense::parse(&r10.sense).unwrap()), (0x02, 0x04, 0x1B));
    // Another SANITIZE and START STOP UNIT are refused the same way; INQUIRY works.
    let s = out_fail(&r.b, &sanitize(0x01, 8), zero_overwrite());
    assert_eq!(kaq(&s), (0x02, 0x04, 0x1B));
    let s = out_fail(&r.b, &[0x1B, 0, 0, 0, 1, 0], vec![]);
    assert_eq!(kaq(&s), (0x02, 0x04, 0x1B));
    cmd_in(&r.b, &[0x12, 0, 0, 0, 36, 0], 36);
    r.mem.open_gate();
    assert_eq!(held.join().unwrap(), status::GOOD);
    until(|| tur(&r.a).status == status::GOOD);
    assert!(r.mem.data.read().iter().all(|&b| b == 0));
}

/// A backstore over [`Mem`] whose writes fail while `fail` is set and, while `hold` is set,
/// land their first half and then wait until it is cleared before landing the rest (a reader
/// that does not respect the writer's range locks then sees a torn write).
struct Hooked {
    mem: Arc<Mem>,
    fail: AtomicBool,
    hold: parking_lot::Mutex<bool>,
    released: parking_lot::Condvar,
    parked: AtomicBool,
}

impl Hooked {
    fn new(fail: bool) -> Arc<Hooked> {
        Arc::new(Hooked {
            mem: Mem::new(BS * BLOCKS, true),
            fail: AtomicBool::new(fail),
            hold: parking_lot::Mutex::new(false),
            released: parking_lot::Condvar::new(),
            parked: AtomicBool::new(false),
        })
    }

    fn release(&self) {
        *self.hold.lock() = false;
        self.released.notify_all();
    }
}

impl Backstore for Hooked {
    fn size(&self) -> u64 {
        self.mem.size()
    }
    fn hw_block_size(&self) -> u32 {
        512
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.mem.read_at(buf, off)
    }
    fn write_at(&self, buf: &[u8], off: u64, fua: bool) -> io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected"));
        }
        let half = buf.len() / 2;
        self.mem.write_at(&buf[..half], off, fua)?;
        let mut g = self.hold.lock();
        while *g {
            self.parked.store(true, Ordering::SeqCst);
            self.released.wait(&mut g);
        }
        drop(g);
        self.mem.write_at(&buf[half..], off + half as u64, fua)
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn write_cache(&self) -> bool {
        true
    }
}

fn flaky_rig() -> (Arc<Hooked>, Arc<Nexus>) {
    let flaky = Hooked::new(true);
    let dev = Device::new(config(), flaky.clone()).expect("device");
    let port = TargetPort::new("iqn.2024-01.org.ironlun:t9", 1, 1);
    port.add_lun(0, dev).expect("lun");
    port.set_demo_mode(true, false);
    let a = port.open_nexus(initiator("iqn.a", 1)).expect("a");
    drain_ua(&a, 0);
    (flaky, a)
}

#[test]
fn failed_sanitize_leaves_the_lu_in_failure_mode() {
    let (_flaky, a) = flaky_rig();
    let s = out_fail(&a, &sanitize(0x01, 8), zero_overwrite());
    assert_eq!(kaq(&s), (0x03, 0x31, 0x03));
    let r10 = run(&a, 0, &read10(0, 1), DataDirection::Read, BS as u32, vec![]);
    assert_eq!(kaq(&Sense::parse(&r10.sense).unwrap()), (0x03, 0x31, 0x03));
    assert_eq!(
        kaq(&Sense::parse(&tur(&a).sense).unwrap()),
        (0x03, 0x31, 0x03)
    );
}

// A SANITIZE is allowed in sanitize failure mode (SBC-3 §4.11): its table entries are not
// F_MEDIA and the handler applies the other medium gates itself.
#[test]
fn only_a_successful_sanitize_ends_failure_mode_after_ause_0() {
    let (flaky, a) = flaky_rig();
    let s = out_fail(&a, &sanitize(0x01, 8), zero_overwrite());
    assert_eq!(kaq(&s), (0x03, 0x31, 0x03));
    let s = out_fail(&a, &sanitize(0x1F, 0), vec![]);
    assert_eq!(
        (kaq(&s), pointer(&s)),
        (INVALID_CDB, Some((true, 1, Some(4))))
    );
    flaky.fail.store(false, Ordering::SeqCst);
    cmd_out(&a, &sanitize(0x01, 8), zero_overwrite());
    assert_eq!(tur(&a).status, status::GOOD);
}

#[test]
fn exit_failure_mode_ends_failure_mode_after_an_ause_sanitize() {
    let (flaky, a) = flaky_rig();
    let s = out_fail(&a, &sanitize(0x20 | 0x01, 8), zero_overwrite());
    assert_eq!(kaq(&s), (0x03, 0x31, 0x03));
    flaky.fail.store(false, Ordering::SeqCst);
    cmd_out(&a, &sanitize(0x1F, 0), vec![]);
    assert_eq!(tur(&a).status, status::GOOD);
}

// ---- READ DEFECT DATA ----

#[test]
fn read_defect_data_returns_empty_lists_in_the_requested_format() {
    let r = rig();
    assert_eq!(
        cmd_in(&r.a, &[0x37, 0, 0x18 | 0x04, 0, 0, 0, 0, 0, 32, 0], 32),
        vec![0, 0x1C, 0, 0]
    );
    assert_eq!(
        cmd_in(&r.a, &[0x37, 0, 0x00, 0, 0, 0, 0, 0, 32, 0], 32),
        vec![0, 0, 0, 0]
    );
    assert_eq!(
        cmd_in(&r.a, &[0x37, 0, 0x0B, 0, 0, 0, 0, 0, 2, 0], 32),
        vec![0, 0x0B]
    );
    let rdd12 = [0xB7, 0x13, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
    assert_eq!(cmd_in(&r.a, &rdd12, 32), vec![0, 0x13, 0, 0, 0, 0, 0, 0]);
    let s = cmd_fail(&r.a, &[0x37, 0, 0x07, 0, 0, 0, 0, 0, 32, 0]);
    assert_eq!(
        (kaq(&s), pointer(&s)),
        (INVALID_CDB, Some((true, 2, Some(2))))
    );
    let s = cmd_fail(&r.a, &[0xB7, 0x1F, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]);
    assert_eq!(
        (kaq(&s), pointer(&s)),
        (INVALID_CDB, Some((true, 1, Some(2))))
    );
}

// ---- Atomic against concurrent reads ----

/// Blocks 0..4 hold 0x11; `cdb` from nexus a writes them with `data` and is held half done,
/// while nexus b READs them. Returns what the READ saw and whether it finished before the
/// write was let go.
fn read_during_half_write(cdb: Vec<u8>, data: Vec<u8>) -> (Vec<u8>, bool) {
    let hw = Hooked::new(false);
    let dev = Device::new(config(), hw.clone()).expect("device");
    let (_port, a, b) = export_two(&dev, "iqn.2024-01.org.ironlun:t8");
    cmd_out(&a, &write10(0, 4, 0), vec![0x11; 4 * BS]);
    *hw.hold.lock() = true;
    let writer = thread::spawn(move || out(&a, &cdb, data).status);
    until(|| hw.parked.load(Ordering::SeqCst));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        thread::spawn(move || {
            let got = read_blocks(&b, 0, 4);
            done.store(true, Ordering::SeqCst);
            got
        })
    };
    // An unlocked READ finishes at once; give it ample time before letting the write go.
    let t = Instant::now();
    while !done.load(Ordering::SeqCst) && t.elapsed() < Duration::from_millis(300) {
        thread::sleep(Duration::from_millis(5));
    }
    let early = done.load(Ordering::SeqCst);
    hw.release();
    assert_eq!(writer.join().unwrap(), status::GOOD);
    (reader.join().unwrap(), early)
}

#[test]
fn write_atomic_is_never_seen_half_done_by_a_read() {
    let (got, early) = read_during_half_write(watomic(0, 0, 4, 0), vec![0x22; 4 * BS]);
    assert!(!early, "the READ ran while the atomic write was half done");
    assert_eq!(got, vec![0x22; 4 * BS]);
}

#[test]
fn orwrite_is_never_seen_half_done_by_a_read() {
    let (got, early) = read_during_half_write(orwrite(0, 4, 0), vec![0x0C; 4 * BS]);
    assert!(!early, "the READ ran while the ORWRITE was half done");
    assert_eq!(got, vec![0x1D; 4 * BS]);
}

#[test]
fn compare_and_write_is_never_seen_half_done_by_a_read() {
    // COMPARE AND WRITE of blocks 0..4: compare with 0x11, write 0x33.
    let mut cdb = vec![0x89, 0];
    cdb.extend_from_slice(&0u64.to_be_bytes());
    cdb.extend_from_slice(&[0, 0, 0, 4, 0, 0]);
    let mut data = vec![0x11; 4 * BS];
    data.extend_from_slice(&[0x33; 4 * BS]);
    let (got, early) = read_during_half_write(cdb, data);
    assert!(
        !early,
        "the READ ran while the COMPARE AND WRITE was half done"
    );
    assert_eq!(got, vec![0x33; 4 * BS]);
}
