//! The soak (issue 12 item 4): one real daemon, two LUs (fileio, and iblock on a loop device)
//! exported through two TPGs that sit in two ALUA target port groups, 8 sessions (4 through
//! each TPG), each owning a disjoint region of both LUs and doing random 4-128 KiB READ(16) and
//! WRITE(16) at queue depth 4, every READ checked against a per-4-KiB generation map. Meanwhile,
//! at random moments: ABORT TASK of an in-flight command, LUN RESET, logout and login again, a
//! session that stops answering NOP-Ins until the target drops it (`nopin_timeout` and
//! `nopin_response_timeout` at their minimum, 3 s), persistent reservation changes (all
//! sessions registered, Write Exclusive - Registrants Only held by one of them, keys and holder
//! changing) and ALUA state changes (Active/Optimized <-> Active/Non-optimized, both keep I/O
//! possible) through the CLI. The daemon's RSS, descriptors and threads are sampled all along.
//!
//! Passes when: no READ returned data the model does not allow, no command ended in a way the
//! disturbances cannot explain, the daemon lived throughout, its RSS did not creep (see
//! [`RSS_SLACK_KIB`]) and its descriptors are back to the baseline with the same 8 sessions.
//!
//! `IRONLUN_SOAK_SECS` sets the length (default 60: the CI run; the documented long run is
//! 1800). Without loop devices (not root) the iblock LU is left out, unless
//! `IRONLUN_REQUIRE_LOOP` is set (CI), which makes that a failure. Ports 3820-3839.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironlun_initiator::iscsi::pdu::{logout, tmf_response};
use ironlun_initiator::pr::PrType;
use ironlun_initiator::scsi::cdb;
use ironlun_initiator::{Bytes, CommandOptions, CommandResult, Error, LoginConfig, Session};
use ironlun_scsi::status;
use support::*;
use tokio::sync::RwLock;

const PORTS: Range<u16> = 3820..3830;
const PORTS2: Range<u16> = 3830..3840;
const SESSIONS: usize = 8;
/// Commands each session keeps in flight.
const QUEUE_DEPTH: usize = 4;
/// The model's unit: 4 KiB.
const CHUNK: usize = 4096;
const CHUNK_BLOCKS: u64 = (CHUNK / BLOCK as usize) as u64;
/// Largest command: 32 chunks, 128 KiB.
const MAX_CHUNKS: u64 = 32;
const LU_SIZE: u64 = 64 << 20;
/// Chunks each session owns on each LU.
const REGION: u64 = LU_SIZE / CHUNK as u64 / SESSIONS as u64;
/// How far the RSS of the last third of the run may rise above the first third's peak. The
/// 60 s run does some 340,000 commands in a release build on 2 cores (about 110,000 a third;
/// a third of that in debug), so a leak of 0.5 KiB per command, or of a few KiB per aborted
/// command or relogin, shows as more than this between the thirds; the normal swing (the
/// blocking pool's threads, which grow with the Active/Non-optimized delay each command on
/// such a path sleeps, and 8 x 4 x 128 KiB buffers in flight) stayed within 3 MiB in the runs
/// recorded in docs/robustness.md.
const RSS_SLACK_KIB: u64 = 12 * 1024;
const SENSE_UA: u8 = 0x06;
const TRANSITIONING: (u8, u8, u8) = (0x02, 0x04, 0x0A);

/// One LU under test.
struct Lu {
    lun: u64,
    dev: String,
}

/// What each disturbance and the I/O did, and what went wrong.
#[derive(Default)]
struct Tally {
    reads: AtomicU64,
    writes: AtomicU64,
    bytes_verified: AtomicU64,
    bytes_written: AtomicU64,
    /// Writes whose outcome is unknown (aborted): old or new data allowed.
    writes_unknown: AtomicU64,
    reads_aborted: AtomicU64,
    /// Commands sent again after a unit attention, NOT READY (transitioning) or BUSY.
    retries: AtomicU64,
    aborts: AtomicU64,
    aborts_hit: AtomicU64,
    lun_resets: AtomicU64,
    relogins: AtomicU64,
    nop_drops: AtomicU64,
    pr_key_changes: AtomicU64,
    pr_holder_changes: AtomicU64,
    alua_changes: AtomicU64,
    failures: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Tally {
    fn fail(&self, what: String) {
        eprintln!("SOAK FAILURE: {what}");
        let mut f = self.failures.lock().unwrap();
        if f.len() < 20 {
            f.push(what);
        }
        self.stop.store(true, Relaxed);
    }
    fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }
}

/// The generations each chunk of a session's regions may hold (usually one; more after an
/// aborted write), and the chunks commands in flight use.
struct Model {
    /// `[lu][chunk]`.
    gens: Vec<Vec<Vec<u64>>>,
    busy: Vec<Vec<bool>>,
    next_gen: u64,
    /// In-flight commands: ITT → LUN.
    inflight: HashMap<u32, u64>,
}

/// A session slot: the session (replaced on relogin; commands hold the read side, a relogin
/// the write side, so it waits for the commands in flight), its model and login.
struct Slot {
    id: usize,
    s: RwLock<Session>,
    m: Mutex<Model>,
    addr: SocketAddr,
    cfg: LoginConfig,
}

/// The content of chunk `chunk` (absolute on LU index `lu`) at generation `gen` (0: zeroes,
/// the fresh image). Each 512-byte block starts with (LU and chunk, generation) so a
/// mismatch report can say what it found.
fn content(lu: usize, chunk: u64, gen: u64) -> Vec<u8> {
    let mut v = vec![0u8; CHUNK];
    if gen == 0 {
        return v;
    }
    for (b, block) in v.chunks_mut(BLOCK as usize).enumerate() {
        let tag = ((lu as u64) << 56) | chunk;
        block[..8].copy_from_slice(&tag.to_be_bytes());
        block[8..16].copy_from_slice(&gen.to_be_bytes());
        let mut x = (tag ^ gen.rotate_left(24) ^ ((b as u64) << 48)) | 1;
        for w in block[16..].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
    }
    v
}

/// The generation a chunk's data claims (its first block's header; 0 for zeroes).
fn claimed_gen(data: &[u8]) -> u64 {
    u64::from_be_bytes(data[8..16].try_into().unwrap())
}

/// How a command ended, as far as the model is concerned.
enum Outcome {
    Good(CommandResult),
    /// Not executed (reported before the medium is touched): send it again.
    Again,
    /// Ended by task management: a write may or may not have landed.
    Aborted,
    Broken(String),
}

fn classify(r: Result<CommandResult, Error>) -> Outcome {
    match r {
        Ok(r) if r.status == status::GOOD && r.response == 0 => Outcome::Good(r),
        Ok(r) if r.status == status::TASK_ABORTED => Outcome::Aborted,
        Ok(r) if r.status == status::BUSY || r.status == status::TASK_SET_FULL => Outcome::Again,
        Ok(r) if r.status == status::CHECK_CONDITION => match r.sense_triple() {
            Some((SENSE_UA, _, _)) => Outcome::Again,
            Some(t) if t == TRANSITIONING => Outcome::Again,
            _ => Outcome::Broken(format!("{r:?}")),
        },
        Ok(r) => Outcome::Broken(format!("{r:?}")),
        Err(Error::TaskAborted) => Outcome::Aborted,
        Err(e) => Outcome::Broken(e.to_string()),
    }
}

/// Send `cdb` until it is executed or aborted (unit attentions, transitions and BUSY are
/// answered by sending it again), recording its ITT while in flight for ABORT TASK.
async fn run_cmd(
    slot: &Slot,
    s: &Session,
    t: &Tally,
    lun: u64,
    cdb: &[u8],
    data: Option<Bytes>,
    expected_in: u32,
) -> Outcome {
    for attempt in 0..200 {
        if attempt > 0 {
            t.retries.fetch_add(1, Relaxed);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let p = s
            .start_command(
                lun,
                cdb,
                data.clone(),
                expected_in,
                CommandOptions::default(),
            )
            .await;
        let p = match p {
            Ok(p) => p,
            Err(e) => return Outcome::Broken(format!("start: {e}")),
        };
        let itt = p.itt;
        slot.m.lock().unwrap().inflight.insert(itt, lun);
        let r = tokio::time::timeout(Duration::from_secs(30), p.wait()).await;
        slot.m.lock().unwrap().inflight.remove(&itt);
        let Ok(r) = r else {
            return Outcome::Broken("no answer within 30 s".into());
        };
        match classify(r) {
            Outcome::Again => {}
            other => return other,
        }
    }
    Outcome::Broken("still refused after 200 attempts".into())
}

/// Reserve a random free range of chunks on a random LU: (LU index, first chunk, count).
fn pick(m: &mut Model, rng: &mut Rng, lus: usize) -> Option<(usize, u64, u64)> {
    for _ in 0..8 {
        let lu = rng.below(lus as u64) as usize;
        let n = 1 + rng.below(MAX_CHUNKS);
        let first = rng.below(REGION - n + 1);
        let span = first as usize..(first + n) as usize;
        if m.busy[lu][span.clone()].iter().any(|&b| b) {
            continue;
        }
        m.busy[lu][span].iter_mut().for_each(|b| *b = true);
        return Some((lu, first, n));
    }
    None
}

/// One of a session's [`QUEUE_DEPTH`] workers: random reads and writes until the stop.
async fn worker(slot: Arc<Slot>, lus: Arc<Vec<Lu>>, t: Arc<Tally>, mut rng: Rng) {
    while !t.stopped() {
        let s = slot.s.read().await;
        let picked = pick(&mut slot.m.lock().unwrap(), &mut rng, lus.len());
        let Some((lu, first, n)) = picked else {
            drop(s);
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let base = slot.id as u64 * REGION;
        let lba = (base + first) * CHUNK_BLOCKS;
        let blocks = (n * CHUNK_BLOCKS) as u32;
        let lun = lus[lu].lun;
        if rng.below(2) == 0 {
            let gen = {
                let mut m = slot.m.lock().unwrap();
                m.next_gen += 1;
                m.next_gen
            };
            let mut data = Vec::with_capacity(n as usize * CHUNK);
            for c in first..first + n {
                data.extend_from_slice(&content(lu, base + c, gen));
            }
            let cdb = cdb::write16(lba, blocks, false);
            let out = run_cmd(&slot, &s, &t, lun, &cdb, Some(Bytes::from(data)), 0).await;
            let mut m = slot.m.lock().unwrap();
            let chunks = &mut m.gens[lu][first as usize..(first + n) as usize];
            match out {
                Outcome::Good(_) => {
                    chunks.iter_mut().for_each(|g| *g = vec![gen]);
                    t.writes.fetch_add(1, Relaxed);
                    t.bytes_written.fetch_add(n * CHUNK as u64, Relaxed);
                }
                Outcome::Aborted => {
                    chunks.iter_mut().for_each(|g| g.push(gen));
                    t.writes_unknown.fetch_add(1, Relaxed);
                }
                Outcome::Again => unreachable!("run_cmd retries"),
                Outcome::Broken(e) => t.fail(format!(
                    "session {} WRITE lun {lun} lba {lba} x{blocks}: {e}",
                    slot.id
                )),
            }
        } else {
            let cdb = cdb::read16(lba, blocks, false);
            let len = blocks * BLOCK;
            match run_cmd(&slot, &s, &t, lun, &cdb, None, len).await {
                Outcome::Good(r) => {
                    let mut m = slot.m.lock().unwrap();
                    check(&slot, &mut m, &t, lu, first..first + n, &r.data_in, lun);
                }
                Outcome::Aborted => {
                    t.reads_aborted.fetch_add(1, Relaxed);
                }
                Outcome::Again => unreachable!("run_cmd retries"),
                Outcome::Broken(e) => t.fail(format!(
                    "session {} READ lun {lun} lba {lba} x{blocks}: {e}",
                    slot.id
                )),
            }
        }
        let mut m = slot.m.lock().unwrap();
        m.busy[lu][first as usize..(first + n) as usize]
            .iter_mut()
            .for_each(|b| *b = false);
    }
}

/// Check READ data of chunks `first..` against the model; what was read is what the medium
/// holds from now on.
fn check(
    slot: &Slot,
    m: &mut Model,
    t: &Tally,
    lu: usize,
    chunks: Range<u64>,
    data: &[u8],
    lun: u64,
) {
    let base = slot.id as u64 * REGION;
    let first = chunks.start;
    if data.len() as u64 != (chunks.end - chunks.start) * CHUNK as u64 {
        t.fail(format!(
            "session {}: READ of {chunks:?} returned {} bytes",
            slot.id,
            data.len()
        ));
        return;
    }
    for (i, got) in data.chunks(CHUNK).enumerate() {
        let c = first + i as u64;
        let allowed = &mut m.gens[lu][c as usize];
        let gen = claimed_gen(got);
        if !allowed.contains(&gen) || content(lu, base + c, gen) != got {
            let head: Vec<(u64, u64)> = got
                .chunks(BLOCK as usize)
                .map(|b| {
                    let w = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap());
                    (w(0), w(8))
                })
                .collect();
            t.fail(format!(
                "MISMATCH session {} lun {lun} chunk {} (lba {}): allowed generations {allowed:x?}, \
                 blocks hold (tag, generation) {head:x?}",
                slot.id,
                base + c,
                (base + c) * CHUNK_BLOCKS
            ));
            return;
        }
        *allowed = vec![gen];
    }
    t.reads.fetch_add(1, Relaxed);
    t.bytes_verified.fetch_add(data.len() as u64, Relaxed);
}

/// Read back every chunk of `slot`'s regions.
async fn verify_all(slot: Arc<Slot>, lus: Arc<Vec<Lu>>, t: Arc<Tally>) {
    let s = slot.s.read().await;
    let base = slot.id as u64 * REGION;
    for (lu, l) in lus.iter().enumerate() {
        for first in (0..REGION).step_by(MAX_CHUNKS as usize) {
            let blocks = (MAX_CHUNKS * CHUNK_BLOCKS) as u32;
            let lba = (base + first) * CHUNK_BLOCKS;
            let cdb = cdb::read16(lba, blocks, false);
            match run_cmd(&slot, &s, &t, l.lun, &cdb, None, blocks * BLOCK).await {
                Outcome::Good(r) => {
                    let mut m = slot.m.lock().unwrap();
                    check(
                        &slot,
                        &mut m,
                        &t,
                        lu,
                        first..first + MAX_CHUNKS,
                        &r.data_in,
                        l.lun,
                    );
                }
                _ => t.fail(format!("final READ of session {} lun {}", slot.id, l.lun)),
            }
        }
    }
}

/// Log in (no unit attentions cleared: the workers answer them).
async fn login_slot(addr: SocketAddr, cfg: &LoginConfig) -> Session {
    guard("login", Session::login(addr, cfg))
        .await
        .unwrap_or_else(|e| panic!("login: {e}"))
}

/// A non-I/O command that must end GOOD (unit attentions and transitions answered).
async fn must(
    slot: &Slot,
    s: &Session,
    t: &Tally,
    what: &str,
    lun: u64,
    cdb: &[u8],
    data: Vec<u8>,
) {
    let data = (!data.is_empty()).then(|| Bytes::from(data));
    match run_cmd(slot, s, t, lun, cdb, data, 0).await {
        Outcome::Good(_) => {}
        Outcome::Aborted => t.fail(format!("session {}: {what} aborted", slot.id)),
        Outcome::Again => unreachable!("run_cmd retries"),
        Outcome::Broken(e) => t.fail(format!("session {}: {what}: {e}", slot.id)),
    }
}

/// The PR state of one LU as the disturber keeps it.
struct PrModel {
    keys: Vec<u64>,
    holder: usize,
}

fn prout(sa: u8, t: u8, key: u64, sa_key: u64) -> ([u8; 10], Vec<u8>) {
    use ironlun_initiator::pr::{prout_cdb, ProutParams};
    let p = ProutParams::keys(key, sa_key).encode();
    (prout_cdb(sa, 0, t, p.len() as u32), p)
}

/// The disturbances, one at a time at random moments, until the deadline.
#[allow(clippy::too_many_arguments)]
async fn disturber(
    d: Arc<Daemon>,
    slots: Arc<Vec<Arc<Slot>>>,
    lus: Arc<Vec<Lu>>,
    t: Arc<Tally>,
    mut rng: Rng,
    deadline: Instant,
    mut pr: Vec<PrModel>,
    down: Arc<AtomicUsize>,
) {
    use ironlun_initiator::pr::out_sa;
    let wero = PrType::WriteExclusiveRegistrantsOnly.code();
    let mut alua: Vec<[bool; 2]> = vec![[true, true]; lus.len()];
    let mut nop: Option<tokio::task::JoinHandle<()>> = None;
    while Instant::now() < deadline && !t.stopped() {
        tokio::time::sleep(Duration::from_millis(100 + rng.below(400))).await;
        let slot = slots[rng.below(SESSIONS as u64) as usize].clone();
        let lu = rng.below(lus.len() as u64) as usize;
        let lun = lus[lu].lun;
        match rng.below(16) {
            0..=6 => {
                let s = slot.s.read().await;
                let victim = slot.m.lock().unwrap().inflight.keys().next().copied();
                let Some(itt) = victim else { continue };
                let vlun = slot
                    .m
                    .lock()
                    .unwrap()
                    .inflight
                    .get(&itt)
                    .copied()
                    .unwrap_or(lun);
                t.aborts.fetch_add(1, Relaxed);
                match guard("ABORT TASK", s.abort_task(vlun, itt)).await {
                    Ok(tmf_response::FUNCTION_COMPLETE) => {
                        t.aborts_hit.fetch_add(1, Relaxed);
                    }
                    Ok(tmf_response::TASK_DOES_NOT_EXIST) => {}
                    other => t.fail(format!("ABORT TASK: {other:?}")),
                }
            }
            7 => {
                let s = slot.s.read().await;
                t.lun_resets.fetch_add(1, Relaxed);
                match guard("LUN RESET", s.lun_reset(lun)).await {
                    Ok(tmf_response::FUNCTION_COMPLETE) => {}
                    other => t.fail(format!("LUN RESET: {other:?}")),
                }
            }
            8 => {
                let mut s = slot.s.write().await;
                down.fetch_add(1, Relaxed);
                match guard("logout", s.logout(logout::CLOSE_SESSION)).await {
                    Ok(r) if r.response == logout::RESP_SUCCESS => {}
                    other => t.fail(format!("logout: {other:?}")),
                }
                *s = login_slot(slot.addr, &slot.cfg).await;
                down.fetch_sub(1, Relaxed);
                t.relogins.fetch_add(1, Relaxed);
            }
            9 => {
                if nop.as_ref().is_some_and(|h| !h.is_finished()) {
                    continue;
                }
                let (t, down) = (t.clone(), down.clone());
                nop = Some(tokio::spawn(async move {
                    let mut s = slot.s.write().await;
                    down.fetch_add(1, Relaxed);
                    s.answer_nop_ins(false);
                    // Silent and deaf: pinged after nopin_timeout, dropped
                    // nopin_response_timeout later (3 + 3 s).
                    let gone = guard("the target dropping a deaf session", async {
                        while s.closed().is_none() {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    });
                    gone.await;
                    if s.stats().nop_ins_ignored == 0 {
                        t.fail(format!("session {} dropped without a ping", slot.id));
                    }
                    *s = login_slot(slot.addr, &slot.cfg).await;
                    down.fetch_sub(1, Relaxed);
                    t.nop_drops.fetch_add(1, Relaxed);
                }));
            }
            10..=12 => {
                let p = &mut pr[lu];
                let s = slot.s.read().await;
                if rng.below(2) == 0 {
                    // The session's key changes (REGISTER with its current key).
                    let new = ((slot.id as u64 + 1) << 32) | (rng.next() & 0xffff_fffe) | 1;
                    let (c, data) = prout(out_sa::REGISTER, 0, p.keys[slot.id], new);
                    must(&slot, &s, &t, "PR REGISTER (new key)", lun, &c, data).await;
                    p.keys[slot.id] = new;
                    t.pr_key_changes.fetch_add(1, Relaxed);
                } else if slot.id != p.holder {
                    // The holder releases, this session reserves.
                    let old = slots[p.holder].clone();
                    let os = old.s.read().await;
                    let (c, data) = prout(out_sa::RELEASE, wero, p.keys[p.holder], 0);
                    must(&old, &os, &t, "PR RELEASE", lun, &c, data).await;
                    drop(os);
                    let (c, data) = prout(out_sa::RESERVE, wero, p.keys[slot.id], 0);
                    must(&slot, &s, &t, "PR RESERVE", lun, &c, data).await;
                    p.holder = slot.id;
                    t.pr_holder_changes.fetch_add(1, Relaxed);
                }
            }
            _ => {
                let g = rng.below(2) as usize;
                alua[lu][g] = !alua[lu][g];
                let state = if alua[lu][g] { "ao" } else { "ano" };
                let group = ["west", "east"][g];
                let (d, dev) = (d.clone(), lus[lu].dev.clone());
                let o = tokio::task::spawn_blocking(move || {
                    d.cli_output(&["alua", "set-state", &dev, group, state])
                })
                .await
                .unwrap();
                if !o.status.success() {
                    t.fail(format!(
                        "alua set-state: {}",
                        String::from_utf8_lossy(&o.stderr)
                    ));
                }
                t.alua_changes.fetch_add(1, Relaxed);
            }
        }
    }
    if let Some(h) = nop {
        guard("the NOP timeout disturbance ends", h).await.unwrap();
    }
}

/// One sample of the daemon's footprint.
#[derive(Clone, Copy, Debug)]
struct Sample {
    secs: f64,
    rss_kib: u64,
    fds: usize,
    threads: u64,
    sessions_up: usize,
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn sample(d: &Daemon, start: Instant, down: &AtomicUsize) -> Sample {
    Sample {
        secs: start.elapsed().as_secs_f64(),
        rss_kib: d.rss_kib(),
        fds: fd_count(d.pid()),
        threads: threads(d.pid()),
        sessions_up: SESSIONS - down.load(Relaxed),
    }
}

/// Both LUs (or the fileio one alone without loop devices) in both TPGs, each TPG in its own
/// ALUA group on each device; keep-alive at its shortest. Returns the LUs, TPG2's address and
/// the loop device (detached when dropped).
fn setup(d: &Daemon) -> (Vec<Lu>, SocketAddr, Option<LoopDevice>) {
    let addr2 = d.add_tpg2(PORTS2);
    let img = d.dir.path().join("soak-file.img");
    let mut lus = vec![Lu {
        lun: 1,
        dev: "core/fileio_0/soakf".into(),
    }];
    d.cli(&[
        "create",
        &lus[0].dev,
        &format!("path={}", img.display()),
        "size=64M",
    ]);
    let backing = d.dir.path().join("soak-loop.img");
    std::fs::File::create(&backing)
        .and_then(|f| f.set_len(LU_SIZE))
        .unwrap();
    let lo = match LoopDevice::attach(&backing) {
        Ok(lo) => {
            lus.push(Lu {
                lun: 2,
                dev: "core/iblock_0/soakb".into(),
            });
            d.cli(&["create", &lus[1].dev, &format!("path={}", lo.dev.display())]);
            Some(lo)
        }
        Err(why) => {
            assert!(
                std::env::var_os("IRONLUN_REQUIRE_LOOP").is_none(),
                "the soak needs a loop device: {why}"
            );
            println!("soak: no iblock LU ({why}); fileio only");
            None
        }
    };
    for tpg in [TPG, TPG2] {
        for lu in &lus {
            d.cli(&[
                "create",
                &format!("{tpg}/lun/lun_{}", lu.lun),
                &format!("dev={}", lu.dev),
            ]);
        }
        d.cli(&["set", &format!("{tpg}/attrib/nopin_timeout"), "3"]);
        d.cli(&["set", &format!("{tpg}/attrib/nopin_response_timeout"), "3"]);
    }
    for lu in &lus {
        for (g, id, tpg) in [("west", 1, TPG), ("east", 2, TPG2)] {
            let gp = format!("{}/alua/{g}", lu.dev);
            d.cli(&["create", &gp, &format!("tg_pt_gp_id={id}")]);
            d.cli(&["set", &format!("{gp}/alua_access_type"), "3"]);
            d.cli(&["set", &format!("{tpg}/lun/lun_{}/alua_tg_pt_gp", lu.lun), g]);
        }
    }
    (lus, addr2, lo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_sessions_two_lus_under_disturbances_stay_consistent_and_flat() {
    let secs: u64 = env_number("IRONLUN_SOAK_SECS", 60);
    let seed = test_seed();
    println!("soak: {secs} s, seed {seed:#x}");
    let mut rng = Rng(seed);
    let d = Daemon::start_in(PORTS);
    let (lus, addr2, lo) = setup(&d);
    let lus = Arc::new(lus);

    // Sessions, each registered on every LU; session 0 holds WERO on each.
    let mut slots = Vec::new();
    for id in 0..SESSIONS {
        let addr = if id % 2 == 0 { d.addr() } else { addr2 };
        let cfg = LoginConfig::normal(&iqn(&format!("soak-{id}")), TARGET);
        let s = login_slot(addr, &cfg).await;
        slots.push(Arc::new(Slot {
            id,
            s: RwLock::new(s),
            m: Mutex::new(Model {
                gens: vec![vec![vec![0]; REGION as usize]; lus.len()],
                busy: vec![vec![false; REGION as usize]; lus.len()],
                next_gen: 0,
                inflight: HashMap::new(),
            }),
            addr,
            cfg,
        }));
    }
    let t = Arc::new(Tally::default());
    let mut pr = Vec::new();
    for lu in lus.iter() {
        let keys: Vec<u64> = (0..SESSIONS as u64).map(|i| (i + 1) << 32).collect();
        for slot in &slots {
            let s = slot.s.read().await;
            let (c, data) = prout(
                ironlun_initiator::pr::out_sa::REGISTER_AND_IGNORE_EXISTING_KEY,
                0,
                0,
                keys[slot.id],
            );
            must(slot, &s, &t, "PR REGISTER", lu.lun, &c, data).await;
        }
        let s = slots[0].s.read().await;
        let (c, data) = prout(
            ironlun_initiator::pr::out_sa::RESERVE,
            PrType::WriteExclusiveRegistrantsOnly.code(),
            keys[0],
            0,
        );
        must(&slots[0], &s, &t, "PR RESERVE", lu.lun, &c, data).await;
        pr.push(PrModel { keys, holder: 0 });
    }
    assert!(t.failures.lock().unwrap().is_empty(), "{:?}", t.failures);

    let d = Arc::new(d);
    let down = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let baseline = sample(&d, start, &down);
    let slots = Arc::new(slots);
    let mut workers = Vec::new();
    for slot in slots.iter() {
        for _ in 0..QUEUE_DEPTH {
            workers.push(tokio::spawn(worker(
                slot.clone(),
                lus.clone(),
                t.clone(),
                Rng(rng.next() | 1),
            )));
        }
    }
    let deadline = start + Duration::from_secs(secs);
    let dist = tokio::spawn(disturber(
        d.clone(),
        slots.clone(),
        lus.clone(),
        t.clone(),
        Rng(rng.next() | 1),
        deadline,
        pr,
        down.clone(),
    ));
    // Samples: about 30 over the run, at least every 2 s.
    let every = Duration::from_secs_f64((secs as f64 / 30.0).max(2.0));
    let mut samples = vec![baseline];
    while Instant::now() < deadline && !t.stopped() {
        tokio::time::sleep(every.min(deadline.saturating_duration_since(Instant::now()))).await;
        samples.push(sample(&d, start, &down));
    }
    guard("the disturbances end", dist).await.unwrap();
    t.stop.store(true, Relaxed);
    for w in workers {
        guard("a worker ends", w).await.unwrap();
    }

    // Both paths Active/Optimized again (no non-optimized delay), then every chunk of every
    // region read back once more, the sessions in parallel.
    for lu in lus.iter() {
        for g in ["west", "east"] {
            d.cli(&["alua", "set-state", &lu.dev, g, "ao"]);
        }
    }
    let mut finals = Vec::new();
    for slot in slots.iter() {
        finals.push(tokio::spawn(verify_all(
            slot.clone(),
            lus.clone(),
            t.clone(),
        )));
    }
    for f in finals {
        guard("the final read of a region", f).await.unwrap();
    }
    let end = sample(&d, start, &down);
    samples.push(end);
    // The descriptors of the same 8 sessions: back to the baseline (a connection the target
    // closed may take a moment to be released).
    let mut fds = end.fds;
    for _ in 0..100 {
        if fds == baseline.fds {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        fds = fd_count(d.pid());
    }

    println!("soak: curve (s, RSS MiB, fds, threads, sessions up)");
    for s in &samples {
        println!(
            "soak: {:7.1} {:8.1} {:4} {:4} {:2}",
            s.secs,
            s.rss_kib as f64 / 1024.0,
            s.fds,
            s.threads,
            s.sessions_up
        );
    }
    let c = |a: &AtomicU64| a.load(Relaxed);
    println!(
        "soak: {secs} s, {} sessions on {} LUs, seed {seed:#x}: {} reads ({} MiB verified), {} writes \
         ({} MiB), {} writes aborted (outcome unknown), {} reads aborted, {} commands sent again \
         (UA, transitioning, BUSY); ABORT TASK {} ({} hit), LUN RESET {}, logout+login {}, \
         NOP-timeout drops {}, PR key changes {}, PR holder changes {}, ALUA changes {}; \
         failures {}",
        SESSIONS,
        lus.len(),
        c(&t.reads),
        c(&t.bytes_verified) >> 20,
        c(&t.writes),
        c(&t.bytes_written) >> 20,
        c(&t.writes_unknown),
        c(&t.reads_aborted),
        c(&t.retries),
        c(&t.aborts),
        c(&t.aborts_hit),
        c(&t.lun_resets),
        c(&t.relogins),
        c(&t.nop_drops),
        c(&t.pr_key_changes),
        c(&t.pr_holder_changes),
        c(&t.alua_changes),
        t.failures.lock().unwrap().len()
    );

    let failures = t.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{failures:#?}");
    let mut d = Arc::try_unwrap(d).unwrap_or_else(|_| panic!("daemon still shared"));
    assert!(d.alive(), "the daemon died: {}", d.log_tail(30));
    assert!(c(&t.reads) > 0 && c(&t.writes) > 0, "no I/O");
    assert!(
        c(&t.lun_resets) + c(&t.relogins) + c(&t.alua_changes) > 0,
        "no disturbance"
    );
    assert_eq!(
        fds, baseline.fds,
        "descriptors with the same {SESSIONS} sessions: {} at the start, {fds} at the end",
        baseline.fds
    );
    // RSS: the last third's peak against the first third's, after a warm-up of a tenth.
    let run: Vec<&Sample> = samples[1..samples.len() - 1]
        .iter()
        .filter(|s| s.secs >= secs as f64 / 10.0)
        .collect();
    let third = run.len() / 3;
    if third > 0 {
        let peak = |v: &[&Sample]| v.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let first = peak(&run[..third]);
        let last = peak(&run[run.len() - third..]);
        println!("soak: RSS peak first third {first} KiB, last third {last} KiB");
        assert!(
            last <= first + RSS_SLACK_KIB,
            "RSS crept: first third's peak {first} KiB, last third's {last} KiB"
        );
    }
    for slot in slots.iter() {
        let s = slot.s.read().await;
        let _ = guard("logout", s.logout(logout::CLOSE_SESSION)).await;
    }
    drop(lo);
}
