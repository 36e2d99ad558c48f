//! `kill -9` at random moments (issue 12): one initiator session writes 4 KiB slots of a fileio
//! LU, some with FUA, some plain and then made durable by SYNCHRONIZE CACHE, while it also
//! changes its persistent reservation key with APTPL; the daemon is SIGKILLed at a random moment,
//! restarted on the same state directory, and every acknowledged write and key change must be
//! there (a slot may also hold a write whose answer never came: its outcome was unknown).
//! `IRONLUN_KILL_LOOP=N` iterations (default 30, the CI variant; the documented long run is
//! 200). Ports 3810-3819.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ironlun_initiator::pr::RegisterFlags;
use ironlun_initiator::Session;
use support::*;

const PORTS: Range<u16> = 3810..3820;
const LUN: u64 = 1;
const SLOTS: u64 = 64;
/// Blocks per slot (4 KiB).
const SLOT_BLOCKS: u32 = 8;

/// One slot's content for generation `gen` (0: never written, all zeroes).
fn content(slot: u64, gen: u64) -> Vec<u8> {
    let mut v = vec![0u8; (SLOT_BLOCKS * BLOCK) as usize];
    if gen == 0 {
        return v;
    }
    for (b, block) in v.chunks_mut(BLOCK as usize).enumerate() {
        block[..8].copy_from_slice(&slot.to_be_bytes());
        block[8..16].copy_from_slice(&gen.to_be_bytes());
        for (i, x) in block[16..].iter_mut().enumerate() {
            *x = (gen as u8) ^ (b as u8).wrapping_mul(29) ^ (i as u8).wrapping_mul(7);
        }
    }
    v
}

/// What may be in one slot (or the key register) after a crash.
#[derive(Clone, Default, Debug)]
struct Versions {
    /// The last generation acknowledged as durable.
    acked: u64,
    /// Generations sent after it whose durability is unknown (no answer, or not yet synced).
    maybe: Vec<u64>,
}

impl Versions {
    fn allows(&self, gen: u64) -> bool {
        gen == self.acked || self.maybe.contains(&gen)
    }
    /// `gen` is known to be on the medium, unless a later generation already is.
    fn durable(&mut self, gen: u64) {
        if gen < self.acked {
            return;
        }
        self.acked = gen;
        self.maybe.retain(|&g| g > gen);
    }
}

#[derive(Default, Debug)]
struct Model {
    slots: Vec<Versions>,
    /// Slots written without FUA since the last SYNCHRONIZE CACHE: (slot, generation).
    unsynced: Vec<(u64, u64)>,
    key: Versions,
    next_gen: u64,
    acked_writes: u64,
    acked_syncs: u64,
    acked_keys: u64,
    /// Commands sent whose answer never came (the kill cut them short).
    unanswered: u64,
}

/// Writes and SYNCHRONIZE CACHE on `s` until a command fails (the daemon died).
async fn data_load(s: Arc<Session>, m: Arc<Mutex<Model>>, mut rng: Rng) {
    loop {
        let op = rng.below(10);
        if op == 0 {
            let Ok(r) = s.sync_cache(LUN).await else {
                m.lock().unwrap().unanswered += 1;
                return;
            };
            if r.status != 0 {
                return;
            }
            let mut m = m.lock().unwrap();
            let unsynced = std::mem::take(&mut m.unsynced);
            for (slot, gen) in unsynced {
                m.slots[slot as usize].durable(gen);
            }
            m.acked_syncs += 1;
            continue;
        }
        let fua = op < 5;
        let slot = rng.below(SLOTS);
        let gen = {
            let mut m = m.lock().unwrap();
            m.next_gen += 1;
            let g = m.next_gen;
            m.slots[slot as usize].maybe.push(g);
            g
        };
        let data = content(slot, gen);
        let lba = slot * u64::from(SLOT_BLOCKS);
        let Ok(r) = s.write16(LUN, lba, data, BLOCK, fua).await else {
            m.lock().unwrap().unanswered += 1;
            return;
        };
        if r.status != 0 {
            return;
        }
        let mut m = m.lock().unwrap();
        m.acked_writes += 1;
        if fua {
            m.slots[slot as usize].durable(gen);
        } else {
            m.unsynced.push((slot, gen));
        }
    }
}

/// REGISTER AND IGNORE EXISTING KEY with APTPL, a new key each time, until a command fails.
async fn key_load(s: Arc<Session>, m: Arc<Mutex<Model>>) {
    loop {
        let key = {
            let mut m = m.lock().unwrap();
            m.next_gen += 1;
            let k = m.next_gen;
            m.key.maybe.push(k);
            k
        };
        let Ok(r) = s
            .pr_register_ignore(LUN, key, &RegisterFlags::aptpl())
            .await
        else {
            return;
        };
        if r.status != 0 {
            return;
        }
        {
            let mut m = m.lock().unwrap();
            m.key.durable(key);
            m.acked_keys += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Every slot and the key hold an allowed version; then forget what can no longer be there.
async fn verify(s: &Session, m: &Mutex<Model>, round: usize) {
    for slot in 0..SLOTS {
        let lba = slot * u64::from(SLOT_BLOCKS);
        let got = good(
            guard("READ", s.read16(LUN, lba, SLOT_BLOCKS, BLOCK)).await,
            "READ(16) of a slot",
        );
        let mut m = m.lock().unwrap();
        let v = &mut m.slots[slot as usize];
        let found = std::iter::once(v.acked)
            .chain(v.maybe.iter().copied())
            .find(|&g| content(slot, g) == got.as_ref());
        let Some(gen) = found else {
            let seen: Vec<(u64, u64)> = got
                .chunks(BLOCK as usize)
                .map(|b| {
                    let word = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap());
                    (word(0), word(8))
                })
                .collect();
            panic!(
                "round {round}: slot {slot} holds neither acknowledged generation {} nor one of \
                 {:?}; its blocks hold (slot, generation) {seen:?}",
                v.acked, v.maybe
            );
        };
        // What is there now is what the medium holds.
        v.acked = gen;
        v.maybe.clear();
    }
    let keys = guard("READ KEYS", s.pr_read_keys(LUN))
        .await
        .expect("READ KEYS")
        .keys;
    let mut m = m.lock().unwrap();
    m.unsynced.clear();
    let k = &mut m.key;
    match keys.as_slice() {
        [] => assert_eq!(
            k.acked, 0,
            "round {round}: acknowledged key {} lost",
            k.acked
        ),
        [key] => {
            assert!(
                k.allows(*key),
                "round {round}: key {key:#x} is neither {:#x} nor one of {:?}",
                k.acked,
                k.maybe
            );
            k.acked = *key;
            k.maybe.clear();
        }
        more => panic!("round {round}: one registration expected, READ KEYS shows {more:x?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_and_keys_survive_kill9_at_random_moments() {
    let rounds: usize = std::env::var("IRONLUN_KILL_LOOP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let seed = Rng::seed();
    println!("kill loop: {rounds} rounds, seed {seed:#x}");
    let mut rng = Rng(seed);

    let mut d = Daemon::start_in(PORTS);
    let img = d.dir.path().join("kill.img");
    d.cli(&[
        "create",
        "core/fileio_0/kill",
        &format!("path={}", img.display()),
        "size=16M",
    ]);
    d.cli(&[
        "create",
        &format!("{TPG}/lun/lun_{LUN}"),
        "dev=core/fileio_0/kill",
    ]);
    let model = Arc::new(Mutex::new(Model {
        slots: vec![Versions::default(); SLOTS as usize],
        ..Model::default()
    }));
    let who = normal("killer");
    for round in 0..rounds {
        let s = Arc::new(login_at(d.addr(), who.clone(), LUN).await);
        verify(&s, &model, round).await;
        let data = tokio::spawn(data_load(s.clone(), model.clone(), Rng(rng.next() | 1)));
        let keys = tokio::spawn(key_load(s.clone(), model.clone()));
        tokio::time::sleep(Duration::from_millis(5 + rng.below(150))).await;
        let st = d.kill9();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&st),
            Some(9),
            "round {round}: the daemon was not running when killed ({st})"
        );
        guard("load ends", data).await.expect("data load");
        guard("load ends", keys).await.expect("key load");
        drop(s);
        d.restart();
    }
    let s = login_at(d.addr(), who, LUN).await;
    verify(&s, &model, rounds).await;
    let m = model.lock().unwrap();
    println!(
        "kill loop: {rounds} kills; acknowledged {} writes, {} SYNCHRONIZE CACHE, {} key changes, \
         all there; {} commands ended without an answer",
        m.acked_writes, m.acked_syncs, m.acked_keys, m.unanswered
    );
    assert!(
        m.acked_writes > 0 && m.acked_keys > 0,
        "the load did nothing"
    );
}
