//! COMPARE AND WRITE (SBC-3 §5.2) through the public surface: match and miscompare (with the
//! offset of the first differing byte), CDB checks, the `emulate_caw` switch, the VPD B0h
//! limit, REPORT SUPPORTED OPERATION CODES, and atomicity against concurrent writers.

mod common;

use ironlun_testkit::heartbeat::{self, first_diff, value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use common::*;
use ironlun_engine::scsi::{status, Sense};
use ironlun_engine::*;

fn caw(lba: u64, n: u8, flags: u8) -> Vec<u8> {
    let mut c = vec![0x89, flags];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&[0, 0, 0, n, 0, 0]);
    c
}

fn run_caw(n: &Nexus, lba: u64, blocks: u8, flags: u8, data: Vec<u8>) -> ScsiResponse {
    let dir = if data.is_empty() {
        DataDirection::None
    } else {
        DataDirection::Write
    };
    run(n, 0, &caw(lba, blocks, flags), dir, data.len() as u32, data)
}

fn read_blocks(n: &Nexus, lba: u32, blocks: u16) -> Vec<u8> {
    cmd_in(n, &read10(lba, blocks), (usize::from(blocks) * BS) as u32)
}

fn fill(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

fn miscompare_offset(r: &ScsiResponse) -> u64 {
    assert_eq!(r.status, status::CHECK_CONDITION);
    // Fixed format: VALID bit set, INFORMATION present.
    assert_eq!(r.sense.first().map(|b| b & 0x80), Some(0x80));
    let s = Sense::parse(&r.sense).expect("sense");
    assert_eq!(kaq(&s), (0x0E, 0x1D, 0x00));
    s.information.expect("INFORMATION")
}

#[test]
fn matching_compare_writes_the_second_half() {
    let r = rig();
    for (lba, n) in [(10u64, 1u8), (20, 3), (BLOCKS as u64 - 4, 4)] {
        let len = usize::from(n) * BS;
        let old = fill(len, 1);
        cmd_out(&r.a, &write10(lba as u32, u16::from(n), 0), old.clone());
        let new = fill(len, 99);
        let resp = run_caw(&r.a, lba, n, 0, [old, new.clone()].concat());
        assert_eq!(resp.status, status::GOOD);
        assert_eq!(resp.residual, Residual::None);
        assert_eq!(read_blocks(&r.b, lba as u32, u16::from(n)), new);
    }
}

#[test]
fn miscompare_reports_the_first_differing_byte_and_writes_nothing() {
    let r = rig();
    let n = 3usize;
    let old = fill(n * BS, 7);
    cmd_out(&r.a, &write10(40, n as u16, 0), old.clone());
    // First byte, a byte inside a later block, the last byte; two differences → the first.
    for diffs in [
        vec![0usize],
        vec![2 * BS + 100],
        vec![n * BS - 1],
        vec![BS + 3, 2 * BS],
    ] {
        let mut verify = old.clone();
        for &d in &diffs {
            verify[d] ^= 0x5A;
        }
        let resp = run_caw(&r.a, 40, n as u8, 0, [verify, vec![0xEE; n * BS]].concat());
        assert_eq!(miscompare_offset(&resp), diffs[0] as u64);
        assert_eq!(read_blocks(&r.a, 40, n as u16), old);
    }
}

#[test]
fn zero_blocks_is_good_and_transfers_nothing() {
    let r = rig();
    let resp = run_caw(&r.a, 5, 0, 0, vec![]);
    assert_eq!((resp.status, resp.residual), (status::GOOD, Residual::None));
    // A Data-Out offered anyway contradicts the field (e.g. a block count of 256 wrapped to
    // 0): INVALID FIELD IN CDB at NUMBER OF LOGICAL BLOCKS, nothing written.
    let resp = run_caw(&r.a, 5, 0, 0, vec![0xFF; 2 * BS]);
    let s = Sense::parse(&resp.sense).expect("sense");
    assert_eq!(kaq(&s), (5, 0x24, 0));
    assert_eq!(pointer(&s), Some((true, 13, Some(7))));
    assert_eq!(read_blocks(&r.a, 5, 1), vec![0; BS]);
}

#[test]
fn cdb_and_length_errors_are_precise() {
    let r = rig();
    // Above MAXIMUM COMPARE AND WRITE LENGTH (128): INVALID FIELD IN CDB at byte 13.
    let resp = run_caw(&r.a, 0, 129, 0, vec![0; 2 * 129 * BS]);
    let s = Sense::parse(&resp.sense).expect("sense");
    assert_eq!(kaq(&s), (5, 0x24, 0));
    assert_eq!(pointer(&s), Some((true, 13, Some(7))));
    // The maximum itself works.
    let resp = run_caw(&r.a, 0, 128, 0, vec![0; 2 * 128 * BS]);
    assert_eq!(resp.status, status::GOOD);
    // WRPROTECT (no protection information): INVALID FIELD IN CDB, byte 1 bit 7.
    let resp = run_caw(&r.a, 0, 1, 0x20, vec![0; 2 * BS]);
    let s = Sense::parse(&resp.sense).expect("sense");
    assert_eq!(pointer(&s), Some((true, 1, Some(5))));
    let resp = run_caw(&r.a, 0, 1, 0x02, vec![0; 2 * BS]);
    let s = Sense::parse(&resp.sense).expect("sense");
    assert_eq!(pointer(&s), Some((true, 1, Some(1))));
    // Beyond the end, and LBA wrap.
    for lba in [BLOCKS as u64 - 1, BLOCKS as u64, u64::MAX] {
        let resp = run_caw(&r.a, lba, 2, 0, vec![0; 4 * BS]);
        let s = Sense::parse(&resp.sense).expect("sense");
        assert_eq!(kaq(&s), (5, 0x21, 0), "lba {lba}");
    }
    // The Data-Out must hold exactly both halves; otherwise nothing happens.
    cmd_out(&r.a, &write10(0, 1, 0), vec![0x11; BS]);
    for (blocks, bytes) in [(1u8, 4 * BS), (3, 4 * BS), (1, BS), (2, 4 * BS - 1)] {
        let mut data = vec![0x11; bytes];
        if let Some(tail) = data.get_mut(BS..) {
            tail.fill(0x22);
        }
        let resp = run_caw(&r.a, 0, blocks, 0, data);
        assert_eq!(resp.status, status::CHECK_CONDITION, "{blocks} {bytes}");
        let s = Sense::parse(&resp.sense).expect("sense");
        assert_eq!(kaq(&s), (5, 0x24, 0));
        assert_eq!(pointer(&s), Some((true, 13, Some(7))));
        assert_eq!(read_blocks(&r.a, 0, 1), vec![0x11; BS]);
    }
}

#[test]
fn dpo_fua_follow_dpofua_and_fua_makes_the_write_durable() {
    let r = rig();
    let before = r.mem.fua_writes.load(Ordering::SeqCst);
    let resp = run_caw(&r.a, 0, 1, 0x10, vec![0; 2 * BS]);
    assert_eq!(resp.status, status::GOOD);
    assert_eq!(r.mem.fua_writes.load(Ordering::SeqCst), before);
    let resp = run_caw(&r.a, 0, 1, 0x08, vec![0; 2 * BS]);
    assert_eq!(resp.status, status::GOOD);
    assert_eq!(r.mem.fua_writes.load(Ordering::SeqCst), before + 1);
    // A miscompare writes nothing, durable or not.
    let writes = r.mem.writes.load(Ordering::SeqCst);
    let resp = run_caw(&r.a, 0, 1, 0x08, [vec![1; BS], vec![2; BS]].concat());
    assert_eq!(miscompare_offset(&resp), 0);
    assert_eq!(r.mem.writes.load(Ordering::SeqCst), writes);
    r.dev
        .set_attribute("emulate_fua_write", "0")
        .expect("fua off");
    drain_ua(&r.a, 0);
    let resp = run_caw(&r.a, 0, 1, 0x08, vec![0; 2 * BS]);
    let s = Sense::parse(&resp.sense).expect("sense");
    assert_eq!(pointer(&s), Some((true, 1, Some(3))));
}

#[test]
fn write_protected_lu_refuses_with_data_protect() {
    let r = rig_with(Mem::read_only(BS * BLOCKS));
    let resp = run_caw(&r.a, 0, 1, 0, vec![0; 2 * BS]);
    let s = Sense::parse(&resp.sense).expect("sense");
    assert_eq!(kaq(&s), (7, 0x27, 0));
}

fn rsoc_one(n: &Nexus) -> Vec<u8> {
    cmd_in(n, &[0xA3, 0x0C, 1, 0x89, 0, 0, 0, 0, 1, 0, 0, 0], 256)
}

fn rsoc_all_opcodes(n: &Nexus) -> Vec<u8> {
    let d = cmd_in(n, &[0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], 4096);
    d[4..].chunks(8).map(|c| c[0]).collect()
}

fn vpd_b0_max_caw(n: &Nexus) -> u8 {
    cmd_in(n, &[0x12, 1, 0xB0, 0, 255, 0], 255)[5]
}

#[test]
fn emulate_caw_switches_the_command_its_rsoc_entry_and_vpd_limit() {
    let r = rig();
    assert_eq!(vpd_b0_max_caw(&r.a), 128);
    assert!(rsoc_all_opcodes(&r.a).contains(&0x89));
    let d = rsoc_one(&r.a);
    assert_eq!(d[1] & 7, 3);
    assert_eq!(
        &d[4..],
        &[0x89, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0x1F, 0]
    );
    // Without DPOFUA the usage data hides DPO and FUA.
    r.dev.set_attribute("emulate_fua_write", "0").expect("fua");
    drain_ua(&r.a, 0);
    assert_eq!(rsoc_one(&r.a)[5], 0);

    r.dev.set_attribute("emulate_caw", "0").expect("off");
    let resp = run_caw(&r.a, 0, 1, 0, vec![0; 2 * BS]);
    let s = Sense::parse(&resp.sense).expect("sense");
    assert_eq!(kaq(&s), (5, 0x20, 0));
    assert!(!rsoc_all_opcodes(&r.a).contains(&0x89));
    assert_eq!(rsoc_one(&r.a)[1] & 7, 1);
    assert_eq!(vpd_b0_max_caw(&r.a), 0);

    r.dev.set_attribute("emulate_caw", "1").expect("on");
    assert_eq!(run_caw(&r.a, 0, 1, 0, vec![0; 2 * BS]).status, status::GOOD);
}

/// Heartbeat block for value `v` (ironlun_testkit::heartbeat).
fn beat(v: u64) -> Vec<u8> {
    heartbeat::beat(v, BS)
}

/// 8 nexuses update one heartbeat block with COMPARE AND WRITE (read v, CAW v → v+1, retry on
/// MISCOMPARE) while writers hammer the neighbouring blocks of the same stripe: no update is
/// lost, every miscompare names the first byte where the compare data differed from a value the
/// block really held, and neighbours are untouched by the CAWs. The first rounds run in
/// lockstep (all read the same v, then all CAW), so contention is certain, not left to the
/// scheduler: exactly one CAW per round wins and the other seven miscompare.
#[test]
fn concurrent_heartbeats_lose_no_update_and_report_exact_offsets() {
    let r = rig();
    const HB: u32 = 100;
    const LOCKSTEP: u64 = 40;
    const TARGET: u64 = 1600;
    const N: usize = 8;
    cmd_out(&r.a, &write10(HB, 1, 0), beat(0));
    let done = Arc::new(AtomicBool::new(false));
    let successes = Arc::new(AtomicU64::new(0));
    let nexuses: Vec<Arc<Nexus>> = (0..N)
        .map(|i| {
            let n = r
                .port
                .open_nexus(initiator("iqn.hb", 10 + i as u8))
                .expect("nexus");
            drain_ua(&n, 0);
            n
        })
        .collect();
    let start = Arc::new(Barrier::new(N + 3));
    let round = Arc::new(Barrier::new(N));
    let mut writers = Vec::new();
    for (w, lba) in [(0u8, HB - 1), (1, HB + 1)] {
        let (n, done, start) = (r.b.clone(), done.clone(), start.clone());
        writers.push(thread::spawn(move || {
            start.wait();
            let mut k = 0u8;
            while !done.load(Ordering::Relaxed) {
                k = k.wrapping_add(1);
                cmd_out(&n, &write10(lba, 1, 0), vec![k ^ w; BS]);
            }
            k ^ w
        }));
    }
    // One heartbeat attempt from value `v`: true when the CAW won. A miscompare must name the
    // first byte where beat(v) differs from some later value the block held.
    fn attempt(n: &Nexus, hb: u32, v: u64) -> bool {
        let resp = run_caw(n, u64::from(hb), 1, 0, [beat(v), beat(v + 1)].concat());
        if resp.status == status::GOOD {
            return true;
        }
        let off = miscompare_offset(&resp);
        let now = value(&read_blocks(n, hb, 1));
        assert!(now > v, "miscompare although the block still held {v}");
        assert!(
            (v + 1..=now).any(|w| first_diff(&beat(v), &beat(w)) == Some(off)),
            "offset {off} matches no value in {v}..={now}"
        );
        false
    }
    fn read_beat(n: &Nexus, hb: u32) -> u64 {
        let cur = read_blocks(n, hb, 1);
        let v = value(&cur);
        assert_eq!(cur, beat(v), "torn heartbeat block");
        v
    }
    let mut hbs = Vec::new();
    for n in nexuses {
        let (start, round, successes) = (start.clone(), round.clone(), successes.clone());
        hbs.push(thread::spawn(move || {
            start.wait();
            let (mut won, mut lost) = (0u64, 0u64);
            for _ in 0..LOCKSTEP {
                round.wait();
                let v = read_beat(&n, HB);
                round.wait();
                if attempt(&n, HB, v) {
                    won += 1;
                    successes.fetch_add(1, Ordering::SeqCst);
                } else {
                    lost += 1;
                }
            }
            let mut free = 0u64;
            while successes.load(Ordering::SeqCst) < TARGET {
                let v = read_beat(&n, HB);
                if attempt(&n, HB, v) {
                    free += 1;
                    successes.fetch_add(1, Ordering::SeqCst);
                }
            }
            (won, lost, free)
        }));
    }
    start.wait();
    let per: Vec<(u64, u64, u64)> = hbs.into_iter().map(|h| h.join().expect("hb")).collect();
    done.store(true, Ordering::Relaxed);
    let last: Vec<u8> = writers
        .into_iter()
        .map(|h| h.join().expect("writer"))
        .collect();
    let won: u64 = per.iter().map(|p| p.0).sum();
    let lost: u64 = per.iter().map(|p| p.1).sum();
    let total: u64 = won + per.iter().map(|p| p.2).sum::<u64>();
    assert_eq!(won, LOCKSTEP, "one winner per lockstep round");
    assert_eq!(
        lost,
        LOCKSTEP * (N as u64 - 1),
        "the rest of each round miscompare"
    );
    let final_block = read_blocks(&r.a, HB, 1);
    assert_eq!(final_block, beat(total), "lost update");
    assert_eq!(successes.load(Ordering::SeqCst), total);
    assert_eq!(read_blocks(&r.a, HB - 1, 1), vec![last[0]; BS]);
    assert_eq!(read_blocks(&r.a, HB + 1, 1), vec![last[1]; BS]);
}

/// Each nexus owns one block of a shared stripe: its CAWs compare with exactly what it wrote
/// last, so every one must succeed even with the others' CAWs and plain writes in the stripe.
#[test]
fn no_false_miscompare_under_concurrent_writes_to_the_stripe() {
    let r = rig();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (n, done) = (r.b.clone(), done.clone());
        thread::spawn(move || {
            let mut k = 0u8;
            while !done.load(Ordering::Relaxed) {
                k = k.wrapping_add(1);
                // Blocks 208..216 neighbour the owned blocks 200..208, same 64 KiB region.
                cmd_out(&n, &write10(208, 8, 0), vec![k; 8 * BS]);
            }
        })
    };
    let hbs: Vec<_> = (0..8u8)
        .map(|i| {
            let n = r
                .port
                .open_nexus(initiator("iqn.own", 40 + i))
                .expect("nexus");
            drain_ua(&n, 0);
            thread::spawn(move || {
                let lba = 200 + u64::from(i);
                cmd_out(&n, &write10(lba as u32, 1, 0), beat(0));
                for v in 0..300u64 {
                    let resp = run_caw(&n, lba, 1, 0, [beat(v), beat(v + 1)].concat());
                    assert_eq!(resp.status, status::GOOD, "false miscompare at {v}");
                }
            })
        })
        .collect();
    for h in hbs {
        h.join().expect("owner");
    }
    done.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    for i in 0..8 {
        assert_eq!(read_blocks(&r.a, 200 + i, 1), beat(300));
    }
}
