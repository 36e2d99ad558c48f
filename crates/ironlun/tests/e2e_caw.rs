//! End to end: COMPARE AND WRITE (SBC-3 §5.2) heartbeats from 8 iSCSI sessions against the
//! real daemon, as ESXi's ATS heartbeat does, with plain WRITEs to the neighbouring blocks from
//! a ninth session: no lost update, no false MISCOMPARE, every MISCOMPARE with the offset of the
//! first differing byte. Ports 3700-3719.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ironlun_testkit::heartbeat::{self, first_diff, value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Barrier;

use ironlun_initiator::iscsi::pdu::task_attr;
use ironlun_initiator::scsi_codes::{sense, status};
use ironlun_initiator::Session;
use support::*;

const HB: u64 = 64;
const SUCCESSES: u64 = 200;
const LOCKSTEP: u64 = 20;
const SESSIONS: usize = 8;
const BS: usize = BLOCK as usize;

fn caw_cdb(lba: u64) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x89;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[13] = 1;
    c
}

/// Heartbeat block for value `v` (ironlun_testkit::heartbeat).
fn beat(v: u64) -> Vec<u8> {
    heartbeat::beat(v, BS)
}

async fn read_hb(s: &Session) -> Vec<u8> {
    good(guard("read", s.read16(0, HB, 1, BLOCK)).await, "read").to_vec()
}

/// One heartbeat attempt from value `v`: true when the CAW won. A MISCOMPARE must carry the
/// offset where beat(v) first differs from some later value the block held (none exists for a
/// false miscompare, where the block still holds v).
async fn attempt(s: &Session, v: u64) -> bool {
    let data = [beat(v), beat(v + 1)].concat();
    let r = guard(
        "COMPARE AND WRITE",
        s.command(0, &caw_cdb(HB), Some(data), 0, task_attr::SIMPLE),
    )
    .await
    .unwrap();
    if r.status == status::GOOD {
        return true;
    }
    assert_eq!(r.status, status::CHECK_CONDITION, "{r:?}");
    let sn = r.sense.expect("sense");
    assert_eq!(sn.key, sense::key::MISCOMPARE, "{r:?}");
    assert_eq!((sn.asc.asc, sn.asc.ascq), (0x1D, 0x00), "{r:?}");
    let off = sn.information.expect("INFORMATION");
    let now = value(&read_hb(s).await);
    assert!(now > v, "miscompare although the block still held {v}");
    assert!(
        (v + 1..=now).any(|w| first_diff(&beat(v), &beat(w)) == Some(off)),
        "offset {off} matches no value in {v}..={now}"
    );
    false
}

async fn read_beat(s: &Session) -> u64 {
    let cur = read_hb(s).await;
    let v = value(&cur);
    assert_eq!(cur, beat(v), "torn heartbeat block");
    v
}

/// The first rounds run in lockstep (every session reads the same v, then every session sends
/// its CAW), so contention is certain rather than left to the scheduler: exactly one CAW per
/// round wins and the other seven miscompare. Then the sessions run free until SUCCESSES.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_from_eight_sessions_lose_nothing() {
    let d = Daemon::start_in(3700..3720);
    let init = login(&d, normal("caw-init")).await;
    good(
        guard("init", init.write16(0, HB, beat(0), BLOCK, false)).await,
        "init",
    );
    let done = Arc::new(AtomicBool::new(false));
    let successes = Arc::new(AtomicU64::new(0));
    let round = Arc::new(Barrier::new(SESSIONS));

    let writer = {
        let s = login(&d, normal("caw-writer")).await;
        let done = done.clone();
        tokio::spawn(async move {
            let mut k = 0u8;
            while !done.load(Ordering::Relaxed) {
                k = k.wrapping_add(1);
                for lba in [HB - 1, HB + 1] {
                    let w = s.write16(0, lba, vec![k; BS], BLOCK, false);
                    good(guard("neighbour write", w).await, "neighbour write");
                }
            }
            k
        })
    };
    let mut tasks = Vec::new();
    for i in 0..SESSIONS {
        let s = login(&d, normal(&format!("caw-{i}"))).await;
        let (successes, round) = (successes.clone(), round.clone());
        tasks.push(tokio::spawn(async move {
            let (mut won, mut lost) = (0u64, 0u64);
            for _ in 0..LOCKSTEP {
                round.wait().await;
                let v = read_beat(&s).await;
                round.wait().await;
                if attempt(&s, v).await {
                    won += 1;
                    successes.fetch_add(1, Ordering::SeqCst);
                } else {
                    lost += 1;
                }
            }
            let mut free = 0u64;
            while successes.load(Ordering::SeqCst) < SUCCESSES {
                let v = read_beat(&s).await;
                if attempt(&s, v).await {
                    free += 1;
                    successes.fetch_add(1, Ordering::SeqCst);
                }
            }
            (won, lost, free)
        }));
    }
    let (mut won, mut lost, mut total) = (0, 0, 0);
    for t in tasks {
        let (w, l, f) = guard("heartbeat session", t).await.unwrap();
        won += w;
        lost += l;
        total += w + f;
    }
    done.store(true, Ordering::Relaxed);
    let k = guard("writer", writer).await.unwrap();
    assert_eq!(won, LOCKSTEP, "one winner per lockstep round");
    assert_eq!(
        lost,
        LOCKSTEP * (SESSIONS as u64 - 1),
        "the rest of each round miscompare"
    );
    assert_eq!(read_hb(&init).await, beat(total), "lost update");
    assert!(total >= SUCCESSES);
    for lba in [HB - 1, HB + 1] {
        let back = good(guard("read", init.read16(0, lba, 1, BLOCK)).await, "read");
        assert_eq!(&back[..], &vec![k; BS][..], "neighbour {lba}");
    }
}
