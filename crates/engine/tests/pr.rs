//! Persistent reservations through the public surface (SPC-4 §5.13, §6.15, §6.16): three
//! initiators over two target ports of one LU.

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use common::*;
use ironlun_engine::scsi::pr::IscsiTransportId;
use ironlun_engine::scsi::{status, Sense};
use ironlun_engine::*;
use parking_lot::Mutex;

const TARGET: &str = "iqn.2024-01.org.ironlun:t1";
const WE: u8 = 1;
const EA: u8 = 3;
const WE_RO: u8 = 5;
const EA_RO: u8 = 6;
const WE_AR: u8 = 7;
const EA_AR: u8 = 8;
const TYPES: [u8; 6] = [WE, EA, WE_RO, EA_RO, WE_AR, EA_AR];

// Service actions.
const REGISTER: u8 = 0;
const RESERVE: u8 = 1;
const RELEASE: u8 = 2;
const CLEAR: u8 = 3;
const PREEMPT: u8 = 4;
const PAA: u8 = 5;
const RIEK: u8 = 6;
const RAM: u8 = 7;

const SPEC_I_PT: u8 = 0x08;
const ALL_TG_PT: u8 = 0x04;
const APTPL: u8 = 0x01;

struct Pr {
    mem: Arc<Mem>,
    dev: Arc<Device>,
    p1: Arc<TargetPort>,
    p2: Arc<TargetPort>,
    /// iqn.a (ISID …01) and iqn.b (ISID …02) through port 1 (RTPI 1), iqn.c (ISID …03)
    /// through port 2 (RTPI 2).
    a: Arc<Nexus>,
    b: Arc<Nexus>,
    c: Arc<Nexus>,
}

fn pr_rig() -> Pr {
    pr_rig_with(|_| {})
}

fn pr_rig_with(setup: impl FnOnce(&Device)) -> Pr {
    let mem = Mem::new(BS * BLOCKS, true);
    let dev = Device::new(config(), mem.clone()).expect("device");
    setup(&dev);
    let p1 = TargetPort::new(TARGET, 1, 1);
    let p2 = TargetPort::new(TARGET, 2, 2);
    for p in [&p1, &p2] {
        p.add_lun(0, dev.clone()).expect("lun");
        p.set_demo_mode(true, false);
    }
    let a = p1.open_nexus(initiator("iqn.a", 1)).expect("a");
    let b = p1.open_nexus(initiator("iqn.b", 2)).expect("b");
    let c = p2.open_nexus(initiator("iqn.c", 3)).expect("c");
    for n in [&a, &b, &c] {
        drain_ua(n, 0);
    }
    Pr {
        mem,
        dev,
        p1,
        p2,
        a,
        b,
        c,
    }
}

fn params(key: u64, sa_key: u64, flags: u8) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = flags;
    p
}

fn prout_cdb(sa: u8, kind: u8, len: u32) -> Vec<u8> {
    let mut c = vec![0x5F, sa, kind, 0, 0];
    c.extend_from_slice(&len.to_be_bytes());
    c.push(0);
    c
}

fn prout(n: &Nexus, sa: u8, kind: u8, data: Vec<u8>) -> ScsiResponse {
    let cdb = prout_cdb(sa, kind, data.len() as u32);
    run(n, 0, &cdb, DataDirection::Write, data.len() as u32, data)
}

#[track_caller]
fn ok(r: ScsiResponse) {
    assert_eq!(
        r.status,
        status::GOOD,
        "sense {:?}",
        Sense::parse(&r.sense).ok()
    );
}

#[track_caller]
fn conflict(r: ScsiResponse) {
    assert_eq!(r.status, status::RESERVATION_CONFLICT);
    assert!(r.sense.is_empty(), "RESERVATION CONFLICT carries no sense");
}

#[track_caller]
fn check(r: ScsiResponse) -> Sense {
    assert_eq!(r.status, status::CHECK_CONDITION);
    Sense::parse(&r.sense).expect("sense")
}

fn register(n: &Nexus, key: u64) {
    ok(prout(n, RIEK, 0, params(0, key, 0)));
}

fn reserve(n: &Nexus, key: u64, kind: u8) {
    ok(prout(n, RESERVE, kind, params(key, 0, 0)));
}

fn prin(n: &Nexus, sa: u8, alloc: u16) -> Vec<u8> {
    let mut c = vec![0x5E, sa, 0, 0, 0, 0, 0];
    c.extend_from_slice(&alloc.to_be_bytes());
    c.push(0);
    cmd_in(n, &c, u32::from(alloc))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// (PRgeneration, keys)
fn read_keys(n: &Nexus) -> (u32, Vec<u64>) {
    let d = prin(n, 0, 1024);
    let len = be32(&d, 4) as usize;
    (
        be32(&d, 0),
        (0..len / 8).map(|i| be64(&d, 8 + 8 * i)).collect(),
    )
}

/// (key, type) of the reservation.
fn read_reservation(n: &Nexus) -> Option<(u64, u8)> {
    let d = prin(n, 1, 1024);
    (be32(&d, 4) == 16).then(|| (be64(&d, 8), d[21]))
}

fn tur(n: &Nexus) -> ScsiResponse {
    run(n, 0, &[0; 6], DataDirection::None, 0, vec![])
}

fn read(n: &Nexus) -> ScsiResponse {
    run(n, 0, &read10(0, 1), DataDirection::Read, BS as u32, vec![])
}

fn write(n: &Nexus) -> ScsiResponse {
    run(
        n,
        0,
        &write10(0, 1, 0),
        DataDirection::Write,
        BS as u32,
        vec![0xA5; BS],
    )
}

fn sync_cache(n: &Nexus) -> ScsiResponse {
    run(
        n,
        0,
        &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        DataDirection::None,
        0,
        vec![],
    )
}

fn mode_sense(n: &Nexus) -> ScsiResponse {
    run(
        n,
        0,
        &[0x1A, 0, 0x3F, 0, 255, 0],
        DataDirection::Read,
        255,
        vec![],
    )
}

/// Unit attentions pending on a nexus, in order (consumed).
fn uas(n: &Nexus) -> Vec<(u8, u8)> {
    let mut v = Vec::new();
    loop {
        let r = tur(n);
        if r.status != status::CHECK_CONDITION {
            return v;
        }
        let s = Sense::parse(&r.sense).expect("sense");
        assert_eq!(s.key, 6);
        v.push((s.asc.asc, s.asc.ascq));
    }
}

fn tid(name: &str, isid: Option<u8>) -> Vec<u8> {
    IscsiTransportId {
        name: name.into(),
        isid: isid.map(|i| [0x40, 0, 0, 0, 0, i]),
    }
    .encode()
}

fn spec_i_pt_params(key: u64, flags: u8, tids: &[Vec<u8>]) -> Vec<u8> {
    let mut p = params(0, key, flags | SPEC_I_PT);
    let body: Vec<u8> = tids.concat();
    p.extend_from_slice(&(body.len() as u32).to_be_bytes());
    p.extend_from_slice(&body);
    p
}

fn ram_params(key: u64, sa_key: u64, flags17: u8, rtpi: u16, t: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[17] = flags17;
    p[18..20].copy_from_slice(&rtpi.to_be_bytes());
    p[20..24].copy_from_slice(&(t.len() as u32).to_be_bytes());
    p.extend_from_slice(t);
    p
}

// ---- the conflict table ----

/// What a nexus may do under a reservation: (read, write, sync cache, TUR, MODE SENSE).
fn access(n: &Nexus) -> [bool; 5] {
    [
        read(n).status == status::GOOD,
        write(n).status == status::GOOD,
        sync_cache(n).status == status::GOOD,
        tur(n).status == status::GOOD,
        mode_sense(n).status == status::GOOD,
    ]
}

#[test]
fn conflict_table_by_type_and_registration() {
    // SPC-4 table 62 / SBC-3 table 13: expected [read, write, sync, tur, mode sense] for a
    // registered non-holder (b) and an unregistered nexus (c).
    let cases: [(u8, [bool; 5], [bool; 5]); 6] = [
        (
            WE,
            [true, false, false, true, true],
            [true, false, false, true, true],
        ),
        (
            EA,
            [false, false, false, true, false],
            [false, false, false, true, false],
        ),
        (
            WE_RO,
            [true, true, true, true, true],
            [true, false, false, true, true],
        ),
        (
            EA_RO,
            [true, true, true, true, true],
            [false, false, false, true, false],
        ),
        (
            WE_AR,
            [true, true, true, true, true],
            [true, false, false, true, true],
        ),
        (
            EA_AR,
            [true, true, true, true, true],
            [false, false, false, true, false],
        ),
    ];
    let r = pr_rig();
    for (kind, registered, unregistered) in cases {
        register(&r.a, 0xA);
        register(&r.b, 0xB);
        reserve(&r.a, 0xA, kind);
        assert_eq!(access(&r.a), [true; 5], "holder, type {kind}");
        assert_eq!(access(&r.b), registered, "registered, type {kind}");
        assert_eq!(access(&r.c), unregistered, "unregistered, type {kind}");
        // Commands every nexus may send: INQUIRY, REPORT LUNS, READ CAPACITY, PR IN.
        cmd_in(&r.c, &[0x12, 0, 0, 0, 36, 0], 36);
        cmd_in(&r.c, &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0], 64);
        cmd_in(&r.c, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
        prin(&r.c, 0, 64);
        // START STOP UNIT: START = 1 is allowed, START = 0 is write class.
        let start = run(
            &r.c,
            0,
            &[0x1B, 0, 0, 0, 1, 0],
            DataDirection::None,
            0,
            vec![],
        );
        ok(start);
        let stop = run(
            &r.c,
            0,
            &[0x1B, 0, 0, 0, 0, 0],
            DataDirection::None,
            0,
            vec![],
        );
        assert_eq!(stop.status == status::GOOD, unregistered[1]);
        ok(prout(&r.a, CLEAR, 0, params(0xA, 0, 0)));
        uas(&r.b);
    }
    // No reservation: registrations alone restrict nothing.
    register(&r.a, 0xA);
    assert_eq!(access(&r.c), [true; 5]);
}

// ---- service actions ----

#[test]
fn register_checks_keys_and_generation_counts_registration_changes() {
    let r = pr_rig();
    let gen = |n: &Nexus| read_keys(n).0;
    let g0 = gen(&r.a);
    // REGISTER from an unregistered nexus needs RESERVATION KEY 0.
    conflict(prout(&r.a, REGISTER, 0, params(5, 0xA, 0)));
    assert_eq!(gen(&r.a), g0, "a conflict does not count");
    ok(prout(&r.a, REGISTER, 0, params(0, 0xA, 0)));
    assert_eq!(read_keys(&r.a), (g0 + 1, vec![0xA]));
    // Registered: the key must match; REGISTER AND IGNORE EXISTING KEY does not care.
    conflict(prout(&r.a, REGISTER, 0, params(0xB, 0xC, 0)));
    ok(prout(&r.a, REGISTER, 0, params(0xA, 0xAA, 0)));
    ok(prout(&r.a, RIEK, 0, params(0x1234, 0xAB, 0)));
    assert_eq!(read_keys(&r.a), (g0 + 3, vec![0xAB]));
    // RESERVE and RELEASE leave PRgeneration alone.
    reserve(&r.a, 0xAB, WE);
    ok(prout(&r.a, RELEASE, WE, params(0xAB, 0, 0)));
    assert_eq!(gen(&r.a), g0 + 3);
    // Unregister.
    ok(prout(&r.a, REGISTER, 0, params(0xAB, 0, 0)));
    assert_eq!(read_keys(&r.a), (g0 + 4, vec![]));
    // Registered through one port only: iqn.a through port 2 is another I_T nexus.
    register(&r.a, 0xA);
    let a2 = r.p2.open_nexus(initiator("iqn.a", 1)).expect("a2");
    drain_ua(&a2, 0);
    conflict(prout(&a2, RESERVE, WE, params(0xA, 0, 0)));
}

#[test]
fn reserve_rules() {
    let r = pr_rig();
    // Unregistered → RESERVATION CONFLICT (LIO says 02/08/00; SPC-4 §5.13.9 conflict).
    conflict(prout(&r.a, RESERVE, WE, params(0, 0, 0)));
    register(&r.a, 0xA);
    register(&r.b, 0xB);
    conflict(prout(&r.a, RESERVE, WE, params(0xB, 0, 0)));
    reserve(&r.a, 0xA, WE);
    // Same type again: no change; another type or another nexus: conflict.
    reserve(&r.a, 0xA, WE);
    conflict(prout(&r.a, RESERVE, EA, params(0xA, 0, 0)));
    conflict(prout(&r.b, RESERVE, WE, params(0xB, 0, 0)));
    assert_eq!(read_reservation(&r.b), Some((0xA, WE)));
    // All registrants: every registrant holds it; READ RESERVATION shows key 0.
    ok(prout(&r.a, RELEASE, WE, params(0xA, 0, 0)));
    reserve(&r.a, 0xA, WE_AR);
    reserve(&r.b, 0xB, WE_AR);
    assert_eq!(read_reservation(&r.c), Some((0, WE_AR)));
}

#[test]
fn release_rules_and_reservations_released_attention() {
    let r = pr_rig();
    for kind in TYPES {
        register(&r.a, 0xA);
        register(&r.b, 0xB);
        reserve(&r.a, 0xA, kind);
        // A non-holder's RELEASE is GOOD and changes nothing (except for AR: b holds too).
        if kind < WE_AR {
            ok(prout(&r.b, RELEASE, kind, params(0xB, 0, 0)));
            assert!(read_reservation(&r.a).is_some());
        }
        // Wrong type from the holder: INVALID RELEASE OF PERSISTENT RESERVATION.
        let wrong = if kind == WE { EA } else { WE };
        let s = check(prout(&r.a, RELEASE, wrong, params(0xA, 0, 0)));
        assert_eq!(kaq(&s), (5, 0x26, 0x04));
        // Key mismatch.
        conflict(prout(&r.a, RELEASE, kind, params(0xB, 0, 0)));
        ok(prout(&r.a, RELEASE, kind, params(0xA, 0, 0)));
        assert_eq!(read_reservation(&r.a), None);
        // RO / AR types tell the other registrants; WE / EA tell nobody; never the sender
        // or an unregistered nexus.
        let expect = if kind >= WE_RO {
            vec![(0x2A, 0x04)]
        } else {
            vec![]
        };
        assert_eq!(uas(&r.b), expect, "type {kind}");
        assert_eq!(uas(&r.a), vec![]);
        assert_eq!(uas(&r.c), vec![]);
        ok(prout(&r.a, CLEAR, 0, params(0xA, 0, 0)));
        uas(&r.b);
    }
    // No reservation at all: GOOD.
    register(&r.a, 0xA);
    ok(prout(&r.a, RELEASE, WE, params(0xA, 0, 0)));
}

#[test]
fn unregistering_holder_releases_or_passes_the_reservation() {
    let r = pr_rig();
    // Registrants only: released, 2A/04 to the remaining registrants.
    register(&r.a, 0xA);
    register(&r.b, 0xB);
    reserve(&r.a, 0xA, WE_RO);
    ok(prout(&r.a, REGISTER, 0, params(0xA, 0, 0)));
    assert_eq!(read_reservation(&r.c), None);
    assert_eq!(uas(&r.b), vec![(0x2A, 0x04)]);
    assert_eq!(uas(&r.c), vec![]);
    // All registrants: the reservation stays with the others.
    register(&r.a, 0xA);
    reserve(&r.a, 0xA, EA_AR);
    ok(prout(&r.a, REGISTER, 0, params(0xA, 0, 0)));
    assert_eq!(read_reservation(&r.b), Some((0, EA_AR)));
    ok(write(&r.b));
    conflict(write(&r.a));
    ok(prout(&r.b, REGISTER, 0, params(0xB, 0, 0)));
    assert_eq!(read_reservation(&r.b), None, "last registrant gone");
}

#[test]
fn clear_drops_everything_and_tells_other_registrants() {
    let r = pr_rig();
    register(&r.a, 0xA);
    register(&r.b, 0xB);
    reserve(&r.b, 0xB, EA);
    let g = read_keys(&r.a).0;
    conflict(prout(&r.c, CLEAR, 0, params(0, 0, 0)));
    conflict(prout(&r.a, CLEAR, 0, params(0xB, 0, 0)));
    ok(prout(&r.a, CLEAR, 0, params(0xA, 0, 0)));
    assert_eq!(read_keys(&r.a), (g + 1, vec![]));
    assert_eq!(read_reservation(&r.a), None);
    assert_eq!(uas(&r.b), vec![(0x2A, 0x03)]);
    assert_eq!(uas(&r.a), vec![]);
    assert_eq!(uas(&r.c), vec![]);
}

#[test]
fn preempt_removes_registrations_and_takes_the_reservation() {
    let r = pr_rig();
    register(&r.a, 0xA);
    register(&r.b, 0xB);
    register(&r.c, 0xC);
    // No reservation: remove the registration with that key.
    let g = read_keys(&r.a).0;
    ok(prout(&r.a, PREEMPT, WE, params(0xA, 0xC, 0)));
    assert_eq!(read_keys(&r.a), (g + 1, vec![0xA, 0xB]));
    assert_eq!(uas(&r.c), vec![(0x2A, 0x05)]);
    assert_eq!(uas(&r.b), vec![]);
    // Unknown key: conflict; zero key without an all-registrants reservation: invalid.
    conflict(prout(&r.a, PREEMPT, WE, params(0xA, 0x77, 0)));
    let s = check(prout(&r.a, PREEMPT, WE, params(0xA, 0, 0)));
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((5, 0x26, 0), Some((false, 8, None)))
    );
    // Preempt the holder with another type: b's registration goes, a holds EA, and the
    // remaining registrants (c) learn RESERVATIONS RELEASED.
    register(&r.c, 0xC);
    reserve(&r.b, 0xB, WE);
    ok(prout(&r.a, PREEMPT, EA, params(0xA, 0xB, 0)));
    assert_eq!(read_reservation(&r.a), Some((0xA, EA)));
    assert_eq!(read_keys(&r.a).1, vec![0xA, 0xC]);
    assert_eq!(uas(&r.b), vec![(0x2A, 0x05)]);
    assert_eq!(uas(&r.c), vec![(0x2A, 0x04)]);
    // All registrants with key 0: every other registration goes, the sender holds.
    register(&r.b, 0xB);
    ok(prout(&r.a, RELEASE, EA, params(0xA, 0, 0)));
    reserve(&r.b, 0xB, WE_AR);
    ok(prout(&r.a, PREEMPT, EA_RO, params(0xA, 0, 0)));
    assert_eq!(read_reservation(&r.a), Some((0xA, EA_RO)));
    assert_eq!(read_keys(&r.a).1, vec![0xA]);
    assert_eq!(uas(&r.b), vec![(0x2A, 0x05)]);
    assert_eq!(uas(&r.c), vec![(0x2A, 0x05)]);
}

struct Held {
    received: Mutex<Option<Received>>,
    told: Mutex<Vec<(u64, Abort)>>,
}

impl TaskListener for Held {
    fn aborted(&self, tag: u64, how: Abort, _whole_set: bool) {
        self.told.lock().push((tag, how));
        self.received.lock().take();
    }
}

#[test]
fn preempt_and_abort_aborts_the_preempted_nexus_tasks() {
    let r = pr_rig();
    register(&r.a, 0xA);
    register(&r.b, 0xB);
    reserve(&r.b, 0xB, WE);
    // b: a running read (held in the backstore), an ORDERED task waiting behind it in the
    // task set, and a write its transport still holds (collecting Data-Out).
    let held = Arc::new(Held {
        received: Mutex::new(None),
        told: Mutex::new(Vec::new()),
    });
    let weak: Weak<dyn TaskListener> = Arc::downgrade(&held) as Weak<Held>;
    r.b.set_task_listener(weak);
    r.mem.close_gate();
    let b = r.b.clone();
    let running = thread::spawn(move || read(&b));
    while r.mem.reads_waiting.load(Ordering::SeqCst) == 0 {
        thread::sleep(Duration::from_millis(1));
    }
    let b = r.b.clone();
    let ordered = thread::spawn(move || {
        let mut q = request(0, &[0; 6], DataDirection::None, 0, vec![]);
        q.attr = TaskAttr::Ordered;
        q.tag = 2;
        b.execute(q)
    });
    while r.dev.info().tasks < 2 {
        thread::sleep(Duration::from_millis(1));
    }
    let rx =
        r.b.receive(0, &cdb16(&write10(0, 1, 0)), 3, TaskAttr::Simple)
            .expect("received");
    *held.received.lock() = Some(rx);
    // HEAD OF QUEUE: a SIMPLE task would wait behind b's ORDERED one (SAM-5 §8.6).
    let a = r.a.clone();
    let paa = thread::spawn(move || {
        let data = params(0xA, 0xB, 0);
        let mut q = request(0, &prout_cdb(PAA, EA, 24), DataDirection::Write, 24, data);
        q.attr = TaskAttr::HeadOfQueue;
        a.execute(q)
    });
    while held.told.lock().is_empty() {
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(Duration::from_millis(20));
    assert!(r.dev.info().aborting >= 1);
    assert!(!paa.is_finished(), "waits for the aborted tasks");
    r.mem.open_gate();
    ok(paa.join().expect("paa"));
    assert_eq!(running.join().expect("read").status, status::TASK_ABORTED);
    assert_eq!(
        ordered.join().expect("ordered").status,
        status::TASK_ABORTED
    );
    assert!(held.told.lock().contains(&(3, Abort::TaskAborted)));
    assert_eq!(r.dev.info().tasks, 0);
    assert_eq!(read_reservation(&r.a), Some((0xA, EA)));
    assert_eq!(uas(&r.b), vec![(0x2A, 0x05)]);
    // Tasks of other nexuses are untouched; the preempted nexus runs new commands normally.
    ok(read(&r.a));
}

#[test]
fn register_and_move_to_another_port() {
    let r = pr_rig();
    register(&r.a, 0xA);
    // SPC-4 §5.13.8: no persistent reservation to move → ILLEGAL REQUEST, INVALID FIELD IN
    // CDB, and nothing changes.
    let before = r.dev.pr_state();
    let s = check(prout(
        &r.a,
        RAM,
        0,
        ram_params(0xA, 0xC, 0, 2, &tid("iqn.c", Some(3))),
    ));
    assert_eq!(kaq(&s), (5, 0x24, 0));
    assert_eq!(r.dev.pr_state(), before);
    reserve(&r.a, 0xA, WE);
    let g = read_keys(&r.a).0;
    let dest = tid("iqn.c", Some(3));
    // UNREG = 1: a loses its registration, c (through port 2, RTPI 2) holds with key 0xC.
    ok(prout(&r.a, RAM, 0, ram_params(0xA, 0xC, 0x02, 2, &dest)));
    assert_eq!(read_reservation(&r.c), Some((0xC, WE)));
    assert_eq!(read_keys(&r.c), (g + 1, vec![0xC]));
    ok(write(&r.c));
    conflict(write(&r.a));
    let d = prin(&r.c, 3, 1024);
    assert_eq!(be64(&d, 8), 0xC);
    assert_eq!(d[8 + 12], 0x01, "R_HOLDER");
    assert_eq!(&d[8 + 18..8 + 20], &[0, 2], "RTPI of port 2");
    // Not the holder any more: conflict. Holder of an all-registrants type: conflict.
    register(&r.a, 0xA);
    conflict(prout(
        &r.a,
        RAM,
        0,
        ram_params(0xA, 0xB, 0, 1, &tid("iqn.b", Some(2))),
    ));
    // Keeping the source registration (UNREG = 0), moving to a name-only TransportID.
    ok(prout(
        &r.c,
        RAM,
        0,
        ram_params(0xC, 0xBB, 0, 1, &tid("iqn.b", None)),
    ));
    assert_eq!(read_reservation(&r.b), Some((0xBB, WE)));
    assert_eq!(read_keys(&r.b).1, vec![0xC, 0xA, 0xBB]);
    ok(write(&r.b));
}

#[test]
fn spec_i_pt_registers_every_transport_id_or_none() {
    let r = pr_rig();
    // Format 01b for iqn.b's port, format 00b (any ISID) for iqn.z.
    let list = [tid("iqn.b", Some(2)), tid("iqn.z", None)];
    ok(prout(&r.a, REGISTER, 0, spec_i_pt_params(0x5, 0, &list)));
    assert_eq!(read_keys(&r.a).1, vec![5, 5, 5]);
    ok(prout(&r.b, RESERVE, WE, params(5, 0, 0)));
    ok(prout(&r.b, RELEASE, WE, params(5, 0, 0)));
    let z = r.p1.open_nexus(initiator("iqn.z", 9)).expect("z");
    drain_ua(&z, 0);
    ok(prout(&z, RESERVE, EA, params(5, 0, 0)));
    ok(prout(&z, CLEAR, 0, params(5, 0, 0)));
    uas(&r.a);
    uas(&r.b);
    let before = r.dev.pr_state();
    // A malformed TransportID after a good one: nothing registered, pointer at the bad one.
    let mut bad = tid("iqn.x", Some(1));
    bad[0] = 0x85;
    let p = spec_i_pt_params(0x5, 0, &[tid("iqn.b", Some(2)), bad]);
    let at = 28 + tid("iqn.b", Some(2)).len() as u16;
    let s = check(prout(&r.a, REGISTER, 0, p));
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((5, 0x26, 0), Some((false, at, Some(7))))
    );
    assert_eq!(r.dev.pr_state(), before);
    // An already registered I_T nexus in the list: likewise.
    register(&r.b, 0xB);
    let before = r.dev.pr_state();
    let p = spec_i_pt_params(0x5, 0, &[tid("iqn.z", None), tid("iqn.b", Some(2))]);
    let at = 28 + tid("iqn.z", None).len() as u16;
    let s = check(prout(&r.a, REGISTER, 0, p));
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((5, 0x26, 0), Some((false, at, None)))
    );
    assert_eq!(r.dev.pr_state(), before);
}

#[test]
fn all_tg_pt_registers_through_every_port() {
    let r = pr_rig();
    ok(prout(&r.a, REGISTER, 0, params(0, 0xA, ALL_TG_PT)));
    let a2 = r.p2.open_nexus(initiator("iqn.a", 1)).expect("a2");
    drain_ua(&a2, 0);
    reserve(&a2, 0xA, EA);
    ok(write(&r.a));
    ok(write(&a2));
    conflict(read(&r.b));
    let d = prin(&r.b, 3, 1024);
    assert_eq!(be32(&d, 4), 24 + 28, "one descriptor");
    assert_eq!(d[8 + 12], 0x02 | 0x01, "ALL_TG_PT | R_HOLDER");
    assert_eq!(&d[8 + 18..8 + 20], &[0, 0], "no RTPI for all target ports");
}

#[test]
fn read_full_status_bytes_and_allocation_length() {
    let r = pr_rig();
    register(&r.a, 0x1122334455667788);
    register(&r.c, 0xC);
    reserve(&r.a, 0x1122334455667788, WE_RO);
    let d = prin(&r.b, 3, 1024);
    let total = be32(&d, 4) as usize;
    assert_eq!(d.len(), 8 + total);
    assert_eq!(be32(&d, 0), read_keys(&r.b).0);
    let mut desc = vec![0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0, 0, 0, 0];
    // R_HOLDER, scope 0 | type, reserved, RTPI 1, ADDITIONAL DESCRIPTOR LENGTH 28.
    desc.extend_from_slice(&[0x01, WE_RO, 0, 0, 0, 0, 0, 1, 0, 0, 0, 28]);
    // TransportID: format 01b, iSCSI, ADDITIONAL LENGTH 24, "name,i,0x<isid>" NUL-padded.
    desc.extend_from_slice(&[0x45, 0, 0, 24]);
    desc.extend_from_slice(b"iqn.a,i,0x400000000001\0\0");
    assert_eq!(&d[8..8 + desc.len()], &desc[..]);
    let want = [&[0u8; 8][..], &desc].concat();
    // c: not a holder, RTPI 2, format 01b for its ISID.
    assert_eq!(
        &d[want.len() + 12..want.len() + 20],
        &[0, 0, 0, 0, 0, 0, 0, 2]
    );
    // Truncated: ADDITIONAL LENGTH still reports everything.
    let short = prin(&r.b, 3, 30);
    assert_eq!(short.len(), 30);
    assert_eq!(be32(&short, 4) as usize, total);
    let keys = prin(&r.b, 0, 8);
    assert_eq!(keys.len(), 8);
    assert_eq!(be32(&keys, 4), 16);
    let keys = prin(&r.b, 0, 12);
    assert_eq!(&keys[8..12], &[0x11, 0x22, 0x33, 0x44]);
    let res = prin(&r.b, 1, 8);
    assert_eq!(be32(&res, 4), 16);
}

#[test]
fn report_capabilities() {
    let r = pr_rig();
    let d = prin(&r.a, 2, 8);
    // Length 8; CRH | SIP_C | ATP_C (no PTPL_C without a store); TMV | ALLOW COMMANDS 010b;
    // all six types.
    assert_eq!(d, vec![0, 8, 0x1C, 0xA0, 0xEA, 0x01, 0, 0]);
    r.dev.set_aptpl_store(Some(Arc::new(Store::default())));
    ok(prout(&r.a, RIEK, 0, params(0, 0xA, APTPL)));
    let d = prin(&r.a, 2, 8);
    assert_eq!((d[2], d[3]), (0x1D, 0xA1), "PTPL_C, PTPL_A");
}

// ---- parameter list and CDB errors: precise sense, no change ----

#[test]
fn bad_parameter_lists_change_nothing() {
    let r = pr_rig();
    register(&r.a, 0xA);
    reserve(&r.a, 0xA, WE);
    let before = r.dev.pr_state();
    let same = |what: &str| assert_eq!(r.dev.pr_state(), before, "{what}");
    // Short list.
    let s = check(prout(&r.b, RIEK, 0, vec![0; 20]));
    assert_eq!(kaq(&s), (5, 0x1A, 0));
    same("short");
    // 32 bytes without SPEC_I_PT.
    let mut p = params(0, 0xB, 0);
    p.resize(32, 0);
    let s = check(prout(&r.b, RIEK, 0, p));
    assert_eq!(kaq(&s), (5, 0x1A, 0));
    same("wrong length");
    // SPEC_I_PT list whose TRANSPORTID PARAMETER DATA LENGTH disagrees.
    let mut p = spec_i_pt_params(0xB, 0, &[tid("iqn.c", None)]);
    p[27] += 4;
    let s = check(prout(&r.b, REGISTER, 0, p));
    assert_eq!(kaq(&s), (5, 0x1A, 0));
    same("tid length");
    // SPEC_I_PT on a registered nexus: INVALID FIELD IN CDB (SPC-4 §5.13.7 table 41).
    let mut p = spec_i_pt_params(0xAA, 0, &[tid("iqn.c", None)]);
    p[0..8].copy_from_slice(&0xAu64.to_be_bytes());
    let s = check(prout(&r.a, REGISTER, 0, p));
    assert_eq!(kaq(&s), (5, 0x24, 0));
    same("spec_i_pt registered");
    // SPEC_I_PT with another service action.
    let s = check(prout(
        &r.b,
        RIEK,
        0,
        spec_i_pt_params(0xB, 0, &[tid("iqn.c", None)]),
    ));
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((5, 0x26, 0), Some((false, 20, Some(3))))
    );
    same("spec_i_pt riek");
    // REGISTER AND MOVE: unknown RTPI, malformed TransportID, zero key, itself.
    let s = check(prout(
        &r.a,
        RAM,
        0,
        ram_params(0xA, 0xC, 0, 9, &tid("iqn.c", Some(3))),
    ));
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((5, 0x26, 0), Some((false, 18, None)))
    );
    let mut t = tid("iqn.c", Some(3));
    let n = t.len();
    t[n - 1] = b'x';
    t[n - 2] = b'x';
    t[n - 3] = b'x';
    t[n - 4] = b'x';
    let s = check(prout(&r.a, RAM, 0, ram_params(0xA, 0xC, 0, 2, &t)));
    assert_eq!(
        (kaq(&s), pointer(&s).map(|p| (p.0, p.1))),
        ((5, 0x26, 0), Some((false, 26)))
    );
    let s = check(prout(
        &r.a,
        RAM,
        0,
        ram_params(0xA, 0, 0, 2, &tid("iqn.c", Some(3))),
    ));
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((5, 0x26, 0), Some((false, 8, None)))
    );
    let s = check(prout(
        &r.a,
        RAM,
        0,
        ram_params(0xA, 0xC, 0, 1, &tid("iqn.a", Some(1))),
    ));
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((5, 0x26, 0), Some((false, 24, None)))
    );
    let mut p = ram_params(0xA, 0xC, 0, 2, &tid("iqn.c", Some(3)));
    p.push(0);
    let s = check(prout(&r.a, RAM, 0, p));
    assert_eq!(kaq(&s), (5, 0x1A, 0));
    same("register and move");
    // Unknown service actions (REPLACE LOST RESERVATION is not supported), bad type, scope.
    for sa in [8u8, 9, 0x1F] {
        let s = check(prout(&r.a, sa, 0, params(0xA, 0, 0)));
        assert_eq!(
            (kaq(&s), pointer(&s)),
            ((5, 0x24, 0), Some((true, 1, Some(4))))
        );
    }
    let s = check(prout(&r.a, RESERVE, 2, params(0xA, 0, 0)));
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((5, 0x24, 0), Some((true, 2, Some(3))))
    );
    let s = check(prout(&r.a, PREEMPT, 0x10 | WE, params(0xA, 0xB, 0)));
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((5, 0x24, 0), Some((true, 2, Some(7))))
    );
    let s = cmd_fail(&r.a, &[0x5E, 4, 0, 0, 0, 0, 0, 0, 8, 0]);
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((5, 0x24, 0), Some((true, 1, Some(4))))
    );
    // APTPL = 1 with no store attached: not supported.
    let s = check(prout(&r.b, RIEK, 0, params(0, 0xB, APTPL)));
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((5, 0x26, 0), Some((false, 20, Some(0))))
    );
    same("all");
}

#[test]
fn insufficient_registration_resources() {
    let r = pr_rig();
    let names: Vec<String> = (0..1100).map(|i| format!("iqn.n{i}")).collect();
    let tids: Vec<Vec<u8>> = names.iter().map(|n| tid(n, None)).collect();
    let s = check(prout(&r.a, REGISTER, 0, spec_i_pt_params(0x5, 0, &tids)));
    assert_eq!(kaq(&s), (5, 0x55, 0x04));
    assert!(r.dev.pr_state().registrations.is_empty());
}

// ---- SPC-2 interplay, nexus loss, emulate_pr ----

#[test]
fn spc2_reserve_with_persistent_reservations() {
    let r = pr_rig();
    register(&r.a, 0xA);
    // Registrations exist: RESERVE(6) conflicts for everyone not exempt.
    conflict(run(
        &r.b,
        0,
        &[0x16, 0, 0, 0, 0, 0],
        DataDirection::None,
        0,
        vec![],
    ));
    conflict(run(
        &r.a,
        0,
        &[0x16, 0, 0, 0, 0, 0],
        DataDirection::None,
        0,
        vec![],
    ));
    // The PR holder: GOOD, nothing changes (CRH = 1).
    reserve(&r.a, 0xA, WE);
    ok(run(
        &r.a,
        0,
        &[0x16, 0, 0, 0, 0, 0],
        DataDirection::None,
        0,
        vec![],
    ));
    ok(run(
        &r.a,
        0,
        &[0x17, 0, 0, 0, 0, 0],
        DataDirection::None,
        0,
        vec![],
    ));
    assert_eq!(r.dev.info().spc2_holder, None);
    ok(prout(&r.a, CLEAR, 0, params(0xA, 0, 0)));
    // SPC-2 reservation held: other nexuses' PR commands conflict.
    ok(run(
        &r.b,
        0,
        &[0x16, 0, 0, 0, 0, 0],
        DataDirection::None,
        0,
        vec![],
    ));
    conflict(prout(&r.a, RIEK, 0, params(0, 0xA, 0)));
    conflict(run(
        &r.a,
        0,
        &[0x5E, 0, 0, 0, 0, 0, 0, 0, 8, 0],
        DataDirection::Read,
        8,
        vec![],
    ));
    ok(run(
        &r.b,
        0,
        &[0x17, 0, 0, 0, 0, 0],
        DataDirection::None,
        0,
        vec![],
    ));
}

#[test]
fn registrations_survive_nexus_loss() {
    let r = pr_rig();
    register(&r.a, 0xA);
    reserve(&r.a, 0xA, EA);
    r.a.close();
    let a = r.p1.open_nexus(initiator("iqn.a", 1)).expect("a again");
    drain_ua(&a, 0);
    ok(write(&a));
    conflict(read(&r.b));
    // Another ISID of the same initiator is another I_T nexus.
    let other = r.p1.open_nexus(initiator("iqn.a", 7)).expect("other");
    drain_ua(&other, 0);
    conflict(read(&other));
}

#[test]
fn emulate_pr_off_hides_the_commands() {
    let r = pr_rig_with(|d| d.set_attribute("emulate_pr", "0").expect("emulate_pr"));
    let s = cmd_fail(&r.a, &[0x5E, 0, 0, 0, 0, 0, 0, 0, 8, 0]);
    assert_eq!(kaq(&s), (5, 0x20, 0));
    let s = cmd_fail_with(
        &r.a,
        0,
        &[0x16, 0, 0, 0, 0, 0],
        DataDirection::None,
        0,
        vec![],
    );
    assert_eq!(kaq(&s), (5, 0x20, 0));
    assert_eq!(r.dev.attribute("emulate_pr").as_deref(), Some("0"));
    assert!(
        r.dev.set_attribute("emulate_pr", "1").is_err(),
        "not while exported"
    );
    // On (the default): RSOC lists PERSISTENT RESERVE IN and OUT service actions.
    let r = pr_rig();
    assert_eq!(r.dev.attribute("emulate_pr").as_deref(), Some("1"));
    let d = cmd_in(&r.a, &[0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], 4096);
    let has = |op: u8, sa: u16| {
        d[4..]
            .chunks(8)
            .any(|e| e[0] == op && u16::from_be_bytes([e[2], e[3]]) == sa && e[5] & 1 == 1)
    };
    assert!((0..4).all(|sa| has(0x5E, sa)));
    assert!((0..8).all(|sa| has(0x5F, sa)));
    assert!(!has(0x5F, 8));
}

// ---- APTPL ----

#[derive(Default)]
struct Store {
    saved: Mutex<Vec<PrState>>,
    cleared: Mutex<usize>,
    fail: AtomicBool,
}

impl AptplStore for Store {
    fn save(&self, state: &PrState) -> io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::other("disk full"));
        }
        self.saved.lock().push(state.clone());
        Ok(())
    }
    fn clear(&self) -> io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::other("disk full"));
        }
        *self.cleared.lock() += 1;
        Ok(())
    }
}

#[test]
fn aptpl_state_is_saved_before_good_and_failures_change_nothing() {
    let r = pr_rig();
    let store = Arc::new(Store::default());
    r.dev.set_aptpl_store(Some(store.clone()));
    ok(prout(&r.a, RIEK, 0, params(0, 0xA, APTPL)));
    reserve(&r.a, 0xA, WE);
    // Every change was saved, the last save is exactly the published state.
    let saved = store.saved.lock().clone();
    assert_eq!(saved.len(), 2);
    assert_eq!(saved.last(), Some(&r.dev.pr_state()));
    assert!(r.dev.pr_state().aptpl);
    // A store failure: INTERNAL TARGET FAILURE and the state is untouched.
    store.fail.store(true, Ordering::SeqCst);
    let before = r.dev.pr_state();
    let s = check(prout(&r.b, RIEK, 0, params(0, 0xB, APTPL)));
    assert_eq!(kaq(&s), (4, 0x44, 0));
    let s = check(prout(&r.a, PREEMPT, EA, params(0xA, 0xA, 0)));
    assert_eq!(kaq(&s), (4, 0x44, 0));
    assert_eq!(r.dev.pr_state(), before);
    // APTPL = 0 from a REGISTER turns it off: the store is cleared.
    store.fail.store(false, Ordering::SeqCst);
    ok(prout(&r.b, RIEK, 0, params(0, 0xB, 0)));
    assert_eq!(*store.cleared.lock(), 1);
    assert!(!r.dev.pr_state().aptpl);
    let n = store.saved.lock().len();
    ok(prout(&r.a, RELEASE, WE, params(0xA, 0, 0)));
    assert_eq!(store.saved.lock().len(), n, "APTPL off: nothing saved");
}

#[test]
fn force_pr_aptpl_persists_every_change() {
    let r = pr_rig_with(|d| d.set_attribute("force_pr_aptpl", "1").expect("force"));
    // Forced but no store: refused, nothing changes.
    let s = check(prout(&r.a, RIEK, 0, params(0, 0xA, 0)));
    assert_eq!(kaq(&s), (4, 0x44, 0));
    let store = Arc::new(Store::default());
    r.dev.set_aptpl_store(Some(store.clone()));
    ok(prout(&r.a, RIEK, 0, params(0, 0xA, 0)));
    assert_eq!(store.saved.lock().len(), 1);
    assert!(r.dev.pr_state().aptpl);
    assert_eq!(*store.cleared.lock(), 0);
}

#[test]
fn restore_validates_and_brings_registrations_back() {
    let mem = Mem::new(BS * BLOCKS, true);
    let dev = Device::new(config(), mem).expect("device");
    let reg = |name: &str, isid: u8, key: u64| PrRegistration {
        key,
        initiator: name.into(),
        isid: Some([0x40, 0, 0, 0, 0, isid]),
        target: TARGET.into(),
        tpgt: 1,
        rtpi: 1,
        all_tg_pt: false,
    };
    let good = PrState {
        generation: 7,
        aptpl: true,
        registrations: vec![reg("iqn.a", 1, 0xA), reg("iqn.b", 2, 0xB)],
        reservation: Some(PrReservation {
            holder: 0,
            kind: EA,
        }),
    };
    let mut bad = good.clone();
    bad.reservation = Some(PrReservation {
        holder: 2,
        kind: EA,
    });
    assert!(dev.restore_pr_state(bad).is_err());
    let mut bad = good.clone();
    bad.reservation = Some(PrReservation { holder: 0, kind: 2 });
    assert!(dev.restore_pr_state(bad).is_err());
    let mut bad = good.clone();
    bad.registrations.push(reg("IQN.A", 1, 0xC));
    assert!(dev.restore_pr_state(bad).is_err());
    assert_eq!(dev.pr_state(), PrState::default());
    dev.restore_pr_state(good.clone()).expect("restore");
    assert_eq!(dev.pr_state(), good);
    let p1 = TargetPort::new(TARGET, 1, 1);
    p1.add_lun(0, dev.clone()).expect("lun");
    p1.set_demo_mode(true, false);
    let a = p1.open_nexus(initiator("iqn.a", 1)).expect("a");
    let b = p1.open_nexus(initiator("iqn.b", 2)).expect("b");
    drain_ua(&a, 0);
    drain_ua(&b, 0);
    ok(write(&a));
    conflict(write(&b));
    assert_eq!(read_keys(&b), (7, vec![0xA, 0xB]));
    assert_eq!(read_reservation(&b), Some((0xA, EA)));
}

#[test]
fn admin_clear_tells_registrants_and_persists() {
    let r = pr_rig();
    let store = Arc::new(Store::default());
    r.dev.set_aptpl_store(Some(store.clone()));
    ok(prout(&r.a, RIEK, 0, params(0, 0xA, APTPL)));
    ok(prout(&r.b, RIEK, 0, params(0, 0xB, APTPL)));
    reserve(&r.a, 0xA, EA);
    let g = read_keys(&r.c).0;
    let dropped = r.dev.pr_clear().expect("clear");
    assert_eq!(dropped.registrations.len(), 2);
    assert_eq!(read_keys(&r.c), (g + 1, vec![]));
    assert_eq!(uas(&r.a), vec![(0x2A, 0x03)]);
    assert_eq!(uas(&r.b), vec![(0x2A, 0x03)]);
    assert_eq!(uas(&r.c), vec![]);
    assert_eq!(store.saved.lock().last(), Some(&r.dev.pr_state()));
    ok(write(&r.c));
}
