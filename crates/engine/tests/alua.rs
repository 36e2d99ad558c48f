//! ALUA (SPC-4 §5.11): target port groups, the per-state gate, REPORT / SET TARGET PORT
//! GROUPS, transitions, unit attentions, LU groups, restore.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ironlun_engine::scsi::{status, Sense};
use ironlun_engine::{AluaObserver, DataDirection, Device, LuGroup, Nexus, TargetPort};

/// One device exported by two targets: port W (RTPI 1) in group `alua_west` (id 1), port E
/// (RTPI 2) in `alua_east` (id 2). Nexus `w` logs in through W, `e` and `e2` through E.
struct Two {
    dev: Arc<Device>,
    pw: Arc<TargetPort>,
    pe: Arc<TargetPort>,
    w: Arc<Nexus>,
    e: Arc<Nexus>,
    e2: Arc<Nexus>,
}

fn two() -> Two {
    let dev = Device::new(config(), Mem::new(BS * BLOCKS, true)).expect("device");
    dev.create_alua_group("alua_west", 1).expect("west");
    dev.create_alua_group("alua_east", 2).expect("east");
    let pw = TargetPort::new("iqn.2024-01.org.ironlun:west", 1, 1);
    let pe = TargetPort::new("iqn.2024-01.org.ironlun:east", 1, 2);
    for (p, g) in [(&pw, "alua_west"), (&pe, "alua_east")] {
        p.add_lun(0, dev.clone()).expect("lun");
        p.set_lun_alua_group(0, g).expect("group");
        p.set_demo_mode(true, false);
    }
    let w = pw.open_nexus(initiator("iqn.host1", 1)).expect("w");
    let e = pe.open_nexus(initiator("iqn.host1", 2)).expect("e");
    let e2 = pe.open_nexus(initiator("iqn.host2", 3)).expect("e2");
    for n in [&w, &e, &e2] {
        drain_ua(n, 0);
    }
    Two {
        dev,
        pw,
        pe,
        w,
        e,
        e2,
    }
}

const RTPG: [u8; 12] = [0xA3, 0x0A, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];

/// (group id → (byte0, supported, status, rtpis)) from a length-only RTPG.
fn rtpg(n: &Nexus) -> Vec<(u16, u8, u8, u8, Vec<u16>)> {
    let d = cmd_in(n, &RTPG, 256);
    let len = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    assert_eq!(len + 4, d.len());
    let mut v = Vec::new();
    let mut at = 4;
    while at + 8 <= d.len() {
        let count = d[at + 7] as usize;
        let ports = (0..count)
            .map(|i| u16::from_be_bytes([d[at + 10 + 4 * i], d[at + 11 + 4 * i]]))
            .collect();
        v.push((
            u16::from_be_bytes([d[at + 2], d[at + 3]]),
            d[at],
            d[at + 1],
            d[at + 5],
            ports,
        ));
        at += 8 + 4 * count;
    }
    v
}

fn group_byte0(n: &Nexus, id: u16) -> (u8, u8) {
    let g = rtpg(n)
        .into_iter()
        .find(|g| g.0 == id)
        .expect("group listed");
    (g.1, g.3)
}

fn stpg(n: &Nexus, descs: &[[u8; 4]]) -> ironlun_engine::ScsiResponse {
    let mut data = vec![0u8; 4];
    for d in descs {
        data.extend_from_slice(d);
    }
    let len = (data.len() as u32).to_be_bytes();
    let cdb = [0xA4, 0x0A, 0, 0, 0, 0, len[0], len[1], len[2], len[3], 0, 0];
    run(n, 0, &cdb, DataDirection::Write, data.len() as u32, data)
}

fn tur(n: &Nexus) -> ironlun_engine::ScsiResponse {
    run(n, 0, &[0u8; 6], DataDirection::None, 0, vec![])
}

/// The next command's unit attention, if any (then the command is retried to confirm the
/// queue is empty when `once`).
fn ua_of(n: &Nexus) -> Option<(u8, u8)> {
    let r = tur(n);
    if r.status != status::CHECK_CONDITION {
        return None;
    }
    let s = Sense::parse(&r.sense).expect("sense");
    (s.key == 6).then_some((s.asc.asc, s.asc.ascq))
}

/// Consume pending unit attentions in any access state.
fn drain(n: &Nexus) {
    for _ in 0..20 {
        if ua_of(n).is_none() {
            return;
        }
    }
    panic!("unit attentions did not drain");
}

fn set_state(dev: &Device, g: &str, s: &str) {
    dev.set_alua_group_attribute(g, "alua_access_state", s)
        .expect("state");
}

fn wait_state(dev: &Device, g: &str, want: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while dev.alua_group_attribute(g, "alua_access_state").as_deref() != Some(want) {
        assert!(
            Instant::now() < until,
            "group {g} never reached state {want}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum C {
    Inquiry,
    ReportLuns,
    Rtpg,
    Stpg,
    ReadCap10,
    ReadCap16,
    ModeSense6,
    ModeSense10,
    RequestSense,
    Tur,
    Read,
    Write,
    PrIn,
    PrOut,
    Reserve,
    Rsoc,
    SyncCache,
}

const ALL: [C; 17] = [
    C::Inquiry,
    C::ReportLuns,
    C::Rtpg,
    C::Stpg,
    C::ReadCap10,
    C::ReadCap16,
    C::ModeSense6,
    C::ModeSense10,
    C::RequestSense,
    C::Tur,
    C::Read,
    C::Write,
    C::PrIn,
    C::PrOut,
    C::Reserve,
    C::Rsoc,
    C::SyncCache,
];

fn issue(n: &Nexus, c: C) -> ironlun_engine::ScsiResponse {
    use DataDirection::{None as No, Read as In, Write as Out};
    let (cdb, dir, e, data): (Vec<u8>, _, u32, Vec<u8>) = match c {
        C::Inquiry => (vec![0x12, 0, 0, 0, 96, 0], In, 96, vec![]),
        C::ReportLuns => (vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], In, 256, vec![]),
        C::Rtpg => (RTPG.to_vec(), In, 256, vec![]),
        // An empty parameter list: a valid no-op.
        C::Stpg => (
            vec![0xA4, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            No,
            0,
            vec![],
        ),
        C::ReadCap10 => (vec![0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], In, 8, vec![]),
        C::ReadCap16 => (
            vec![0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
            In,
            32,
            vec![],
        ),
        C::ModeSense6 => (vec![0x1A, 0, 0x3F, 0, 255, 0], In, 255, vec![]),
        C::ModeSense10 => (vec![0x5A, 0, 0x3F, 0, 0, 0, 0, 1, 0, 0], In, 256, vec![]),
        C::RequestSense => (vec![0x03, 0, 0, 0, 18, 0], In, 18, vec![]),
        C::Tur => (vec![0; 6], No, 0, vec![]),
        C::Read => (read10(0, 1), In, 512, vec![]),
        C::Write => (write10(0, 1, 0), Out, 512, vec![0xAB; 512]),
        C::PrIn => (vec![0x5E, 0, 0, 0, 0, 0, 0, 0, 64, 0], In, 64, vec![]),
        C::PrOut => {
            // REGISTER key 0 → 0: a valid no-op for an unregistered nexus.
            (
                vec![0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0],
                Out,
                24,
                vec![0u8; 24],
            )
        }
        C::Reserve => (vec![0x16, 0, 0, 0, 0, 0], No, 0, vec![]),
        C::Rsoc => (
            vec![0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0],
            In,
            4096,
            vec![],
        ),
        C::SyncCache => (vec![0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], No, 0, vec![]),
    };
    let r = run(n, 0, &cdb, dir, e, data);
    if c == C::Reserve && r.status == status::GOOD {
        // Leave no reservation behind for the next class.
        run(n, 0, &[0x17, 0, 0, 0, 0, 0], No, 0, vec![]);
    }
    r
}

/// Every state × command class: allowed commands succeed, the rest get NOT READY with the
/// state's additional sense (SPC-4 §5.11.2.6).
#[test]
fn gate_per_state_and_command_class() {
    use C::*;
    let info = [Inquiry, ReportLuns, RequestSense, Rtpg, Rsoc];
    let table: Vec<(&str, Vec<C>, u8)> = vec![
        ("ao", ALL.to_vec(), 0),
        ("ano", ALL.to_vec(), 0),
        (
            "s",
            [
                &info[..],
                &[
                    Stpg,
                    ReadCap10,
                    ReadCap16,
                    ModeSense6,
                    ModeSense10,
                    PrIn,
                    PrOut,
                ],
            ]
            .concat(),
            0x0B,
        ),
        ("u", [&info[..], &[Stpg]].concat(), 0x0C),
        ("t", info.to_vec(), 0x0A),
        ("o", vec![Inquiry, ReportLuns, RequestSense], 0x12),
    ];
    for (state, allowed, ascq) in table {
        let t = two();
        t.dev
            .set_alua_group_attribute("alua_west", "nonop_delay_msecs", "0")
            .expect("nonop");
        set_state(&t.dev, "alua_west", state);
        drain(&t.w);
        drain(&t.e);
        for c in ALL {
            let r = issue(&t.w, c);
            if allowed.contains(&c) {
                assert_eq!(
                    r.status,
                    status::GOOD,
                    "state {state}, {c:?}: {:?}",
                    Sense::parse(&r.sense)
                );
            } else {
                assert_eq!(r.status, status::CHECK_CONDITION, "state {state}, {c:?}");
                let s = Sense::parse(&r.sense).expect("sense");
                assert_eq!(kaq(&s), (2, 0x04, ascq), "state {state}, {c:?}");
            }
        }
        // The other port's group is untouched.
        assert_eq!(issue(&t.e, Read).status, status::GOOD);
    }
    // Secondary Offline of one port LUN: 04/12 like the primary Offline.
    let t = two();
    t.pw.set_lun_alua_offline(0, true).expect("offline");
    assert_eq!(t.pw.lun_alua_offline(0), Some(true));
    drain(&t.w);
    drain(&t.e);
    for c in ALL {
        let r = issue(&t.w, c);
        if [Inquiry, ReportLuns, RequestSense].contains(&c) {
            assert_eq!(r.status, status::GOOD, "offline {c:?}");
        } else {
            let s = Sense::parse(&r.sense).expect("sense");
            assert_eq!(kaq(&s), (2, 0x04, 0x12), "offline {c:?}");
        }
    }
    assert_eq!(issue(&t.e, Read).status, status::GOOD);
    // LOG SENSE is not implemented in any state.
    let s = cmd_fail(&t.e, &[0x4D, 0, 0x40, 0, 0, 0, 0, 0, 64, 0]);
    assert_eq!(kaq(&s), (5, 0x20, 0));
}

#[test]
fn rtpg_both_formats_and_truncation() {
    let t = two();
    t.dev
        .set_alua_group_attribute("alua_east", "preferred", "1")
        .expect("pref");
    t.dev
        .set_alua_group_attribute("alua_west", "implicit_trans_secs", "7")
        .expect("secs");
    let d = cmd_in(&t.w, &RTPG, 256);
    // default_tg_pt_gp has no ports: not listed.
    let body = [
        0x00, 0xCF, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, // west
        0x80, 0xCF, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, // east, preferred
    ];
    assert_eq!(&d[..4], &[0, 0, 0, 24]);
    assert_eq!(&d[4..], &body);
    let x = cmd_in(&t.w, &[0xA3, 0x2A, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    // Extended header: RETURN DATA LENGTH is n - 3, so it counts header bytes 4-7 too.
    assert_eq!(&x[..8], &[0, 0, 0, 28, 0x10, 7, 0, 0]);
    assert_eq!(x.len(), 28 + 4);
    assert_eq!(&x[8..], &body);
    // Through east the implicit transition time is east's (0).
    let x = cmd_in(&t.e, &[0xA3, 0x2A, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(x[5], 0);
    // ALLOCATION LENGTH 10: the first 10 bytes, length field intact.
    let r = run(
        &t.w,
        0,
        &[0xA3, 0x0A, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0],
        DataDirection::Read,
        256,
        vec![],
    );
    assert_eq!(r.data_in, d[..10].to_vec());
    // Reserved PARAMETER DATA FORMAT 010b.
    let s = cmd_fail(&t.w, &[0xA3, 0x4A, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(kaq(&s), (5, 0x24, 0));
}

#[test]
fn stpg_changes_state_with_status_and_ua_once_to_other_nexuses() {
    let t = two();
    let calls = Arc::new(Count::default());
    t.dev.set_alua_observer(Some(calls.clone()));
    let r = stpg(&t.w, &[[0x01, 0, 0, 1]]);
    assert_eq!(r.status, status::GOOD, "{:?}", Sense::parse(&r.sense));
    assert_eq!(
        group_byte0(&t.w, 1),
        (0x01, 0x01),
        "west ANO, altered by STPG"
    );
    assert_eq!(group_byte0(&t.w, 2), (0x00, 0x00), "east AO");
    assert!(calls.0.load(Ordering::SeqCst) >= 1, "observer told");
    // The STPG sender (w) gets no UA; e and e2 exactly one.
    assert_eq!(ua_of(&t.w), None);
    for n in [&t.e, &t.e2] {
        assert_eq!(ua_of(n), Some((0x2A, 0x06)));
        assert_eq!(ua_of(n), None);
    }
    // Implicit (admin) change: status 0x02, UA to every nexus including w.
    t.dev
        .set_alua_group_attribute("alua_west", "nonop_delay_msecs", "0")
        .expect("nonop");
    set_state(&t.dev, "alua_east", "s");
    for n in [&t.w, &t.e, &t.e2] {
        assert_eq!(ua_of(n), Some((0x2A, 0x06)));
        assert_eq!(ua_of(n), None);
    }
    assert_eq!(group_byte0(&t.w, 2), (0x02, 0x02));
    // Standby port: READ refused, identification still works.
    let s = cmd_fail(&t.e, &read10(0, 1));
    assert_eq!(kaq(&s), (2, 0x04, 0x0B));
    // Back to AO with preferred: PREF=1.
    set_state(&t.dev, "alua_east", "ao");
    t.dev
        .set_alua_group_attribute("alua_east", "preferred", "1")
        .expect("pref");
    assert_eq!(ua_of(&t.w), Some((0x2A, 0x06)));
    assert_eq!(group_byte0(&t.w, 2), (0x80, 0x02));
}

#[derive(Default)]
struct Count(AtomicUsize);

impl AluaObserver for Count {
    fn alua_changed(&self, _device_name: &str) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn stpg_validation_errors_change_nothing() {
    let t = two();
    let check = |r: ironlun_engine::ScsiResponse| -> Sense {
        assert_eq!(r.status, status::CHECK_CONDITION);
        Sense::parse(&r.sense).expect("sense")
    };
    // Unknown group id in the second descriptor: pointer at its group id, first not applied.
    let s = check(stpg(&t.w, &[[0x02, 0, 0, 1], [0x02, 0, 0, 9]]));
    assert_eq!(kaq(&s), (5, 0x26, 0));
    assert_eq!(pointer(&s), Some((false, 10, None)));
    // Transitioning cannot be requested; LBA dependent is unsupported.
    for st in [0x0F, 0x04, 0x05] {
        let s = check(stpg(&t.w, &[[st, 0, 0, 1]]));
        assert_eq!(kaq(&s), (5, 0x26, 0));
        assert_eq!(pointer(&s), Some((false, 4, Some(3))), "state {st:#x}");
    }
    // Reserved bits in byte 0.
    let s = check(stpg(&t.w, &[[0x12, 0, 0, 1]]));
    assert_eq!(pointer(&s), Some((false, 4, Some(7))));
    // A state the group does not support.
    t.dev
        .set_alua_group_attribute("alua_west", "alua_support_standby", "0")
        .expect("sup");
    let s = check(stpg(&t.w, &[[0x02, 0, 0, 1]]));
    assert_eq!(pointer(&s), Some((false, 4, Some(3))));
    // Offline of an unknown RTPI.
    let s = check(stpg(&t.w, &[[0x0E, 0, 0, 7]]));
    assert_eq!(pointer(&s), Some((false, 6, None)));
    // Parameter list length not 4 + 4n.
    let data = vec![0u8; 6];
    let r = run(
        &t.w,
        0,
        &[0xA4, 0x0A, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0],
        DataDirection::Write,
        6,
        data,
    );
    assert_eq!(kaq(&check(r)), (5, 0x1A, 0));
    // Explicit ALUA off for the receiving group: INVALID FIELD IN CDB.
    t.dev
        .set_alua_group_attribute("alua_west", "alua_access_type", "1")
        .expect("type");
    drain_ua(&t.w, 0);
    let s = check(stpg(&t.w, &[[0x01, 0, 0, 2]]));
    assert_eq!(kaq(&s), (5, 0x24, 0));
    assert_eq!(pointer(&s), Some((true, 1, Some(4))));
    // Nothing changed, nobody got 2A/06.
    assert_eq!(group_byte0(&t.w, 1), (0, 0));
    assert_eq!(group_byte0(&t.w, 2), (0, 0));
    assert_eq!(ua_of(&t.e), None);
    assert_eq!(ua_of(&t.e2), None);
    assert_eq!(t.pe.lun_alua_offline(0), Some(false));
}

#[test]
fn stpg_offline_descriptor_sets_secondary_state() {
    let t = two();
    let r = stpg(&t.w, &[[0x0E, 0, 0, 2]]);
    assert_eq!(r.status, status::GOOD);
    assert_eq!(t.pe.lun_alua_offline(0), Some(true));
    assert_eq!(t.pe.lun_alua_offline_status(0), Some(1));
    assert_eq!(ua_of(&t.e), Some((0x2A, 0x06)));
    let s = cmd_fail(&t.e, &read10(0, 1));
    assert_eq!(kaq(&s), (2, 0x04, 0x12));
    assert_eq!(ua_of(&t.w), None);
}

#[test]
fn admin_transition_passes_through_transitioning() {
    let t = two();
    t.dev
        .set_alua_group_attribute("alua_east", "trans_delay_msecs", "200")
        .expect("delay");
    set_state(&t.dev, "alua_east", "s");
    // Right after the request the group is Transitioning (it lasts 200 ms).
    assert_eq!(ua_of(&t.w), Some((0x2A, 0x06)));
    assert_eq!(group_byte0(&t.w, 2), (0x0F, 0x02));
    assert_eq!(ua_of(&t.e), Some((0x2A, 0x06)));
    let r = run(&t.e, 0, &read10(0, 1), DataDirection::Read, 512, vec![]);
    if r.status == status::CHECK_CONDITION {
        let s = Sense::parse(&r.sense).expect("sense");
        // Either still transitioning or already standby; never anything else.
        assert!(matches!(kaq(&s), (2, 4, 0x0A) | (2, 4, 0x0B)), "{s:?}");
    }
    wait_state(&t.dev, "alua_east", "2");
    assert_eq!(group_byte0(&t.w, 2), (0x02, 0x02));
    let s = cmd_fail(&t.e, &read10(0, 1));
    assert_eq!(kaq(&s), (2, 0x04, 0x0B));
    // Exactly one 2A/06 per change.
    assert_eq!(ua_of(&t.e), None);
}

#[test]
fn stpg_transition_is_visible_to_others_while_it_runs() {
    let t = two();
    t.dev
        .set_alua_group_attribute("alua_west", "trans_delay_msecs", "200")
        .expect("delay");
    let calls = Arc::new(Count::default());
    t.dev.set_alua_observer(Some(calls.clone()));
    let w = t.w.clone();
    let h = std::thread::spawn(move || stpg(&w, &[[0x02, 0, 0, 1]]).status);
    let until = Instant::now() + Duration::from_secs(10);
    let mut saw = false;
    while !h.is_finished() && Instant::now() < until {
        if t.dev
            .alua_group_attribute("alua_west", "alua_access_state")
            .as_deref()
            == Some("15")
        {
            saw = true;
            // A command through west during the transition: 04/0A.
            let r = issue(&t.w, C::Read);
            if r.status == status::CHECK_CONDITION {
                let s = Sense::parse(&r.sense).expect("sense");
                assert!(matches!(kaq(&s), (2, 4, 0x0A) | (2, 4, 0x0B)), "{s:?}");
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(h.join().expect("stpg"), status::GOOD);
    assert!(saw, "Transitioning was visible during the 200 ms delay");
    // STPG completes after the transition: final state, observer told.
    assert_eq!(group_byte0(&t.w, 1), (0x02, 0x01));
    assert!(calls.0.load(Ordering::SeqCst) >= 1);
}

#[test]
fn group_change_raises_inquiry_data_changed() {
    let t = two();
    t.pw.set_lun_alua_group(0, "default_tg_pt_gp")
        .expect("move");
    assert_eq!(t.pw.lun_alua_group(0).as_deref(), Some("default_tg_pt_gp"));
    assert_eq!(ua_of(&t.w), Some((0x3F, 0x03)));
    assert_eq!(ua_of(&t.w), None);
    assert_eq!(ua_of(&t.e), None);
    // VPD 83h now names group 0.
    assert_eq!(designator(&t.w, 5), vec![0, 0, 0, 0]);
    // Unknown group and deleting a used group are refused.
    assert!(t.pw.set_lun_alua_group(0, "nope").is_err());
    assert!(t.dev.delete_alua_group("alua_east").is_err());
    assert!(t.dev.delete_alua_group("default_tg_pt_gp").is_err());
    t.dev.delete_alua_group("alua_west").expect("unused group");
    assert!(t.dev.create_alua_group("x", 2).is_err(), "duplicate id");
    assert!(
        t.dev.create_alua_group("x", 0).is_err(),
        "id 0 is the default's"
    );
}

#[test]
fn lu_group_members_transition_together() {
    let d1 = Device::new(config(), Mem::new(BS * BLOCKS, true)).expect("d1");
    let mut c2 = config();
    c2.name = "ramdisk1".into();
    let d2 = Device::new(c2, Mem::new(BS * BLOCKS, true)).expect("d2");
    let p = TargetPort::new("iqn.2024-01.org.ironlun:t", 1, 1);
    for (lun, d) in [(0, &d1), (1, &d2)] {
        d.create_alua_group("g", 1).expect("g");
        p.add_lun(lun, d.clone()).expect("lun");
        p.set_lun_alua_group(lun, "g").expect("join");
    }
    p.set_demo_mode(true, false);
    let n = p.open_nexus(initiator("iqn.h", 1)).expect("n");
    let other = p.open_nexus(initiator("iqn.o", 2)).expect("o");
    for lun in [0, 1] {
        drain_ua(&n, lun);
        drain_ua(&other, lun);
    }
    // default_lu_gp (id 0): only the device that received the STPG.
    let dflt = LuGroup::new("default_lu_gp", 0);
    d1.set_lu_group(Some(dflt.clone()));
    d2.set_lu_group(Some(dflt));
    assert_eq!(stpg(&n, &[[0x01, 0, 0, 1]]).status, status::GOOD);
    assert_eq!(
        d1.alua_group_attribute("g", "alua_access_state").as_deref(),
        Some("1")
    );
    assert_eq!(
        d2.alua_group_attribute("g", "alua_access_state").as_deref(),
        Some("0")
    );
    // A real LU group: group id 1 of both devices.
    let lg = LuGroup::new("lg", 5);
    d1.set_lu_group(Some(lg.clone()));
    d2.set_lu_group(Some(lg.clone()));
    assert_eq!(lg.members().len(), 2);
    assert_eq!(stpg(&n, &[[0x02, 0, 0, 1]]).status, status::GOOD);
    for d in [&d1, &d2] {
        assert_eq!(
            d.alua_group_attribute("g", "alua_access_state").as_deref(),
            Some("2")
        );
        assert_eq!(
            d.alua_group_attribute("g", "alua_access_status").as_deref(),
            Some("Altered by Explicit STPG")
        );
    }
    // The other nexus gets 2A/06 on both LUs; the sender on neither.
    let sense_on = |x: &Nexus, lun: u64, cdb: &[u8]| {
        let r = run(x, lun, cdb, DataDirection::Read, 512, vec![]);
        Sense::parse(&r.sense).map(|s| kaq(&s)).ok()
    };
    for lun in [0, 1] {
        assert_eq!(sense_on(&other, lun, &[0; 6]), Some((6, 0x2A, 0x06)));
        assert_eq!(sense_on(&other, lun, &read10(0, 1)), Some((2, 4, 0x0B)));
        assert_eq!(sense_on(&n, lun, &read10(0, 1)), Some((2, 4, 0x0B)));
    }
    // VPD 83h LU group designator.
    let r = run(
        &n,
        1,
        &[0x12, 1, 0x83, 0, 255, 0],
        DataDirection::Read,
        255,
        vec![],
    );
    assert_eq!(find_designator(&r.data_in, 6), vec![0, 0, 0, 5]);
}

#[test]
fn lu_group_ua_goes_to_every_other_nexus_once() {
    let t = two();
    let lg = LuGroup::new("lg", 3);
    t.dev.set_lu_group(Some(lg));
    assert_eq!(stpg(&t.e, &[[0x03, 0, 0, 1]]).status, status::GOOD);
    // Sender e: nothing; w and e2: one each.
    assert_eq!(ua_of(&t.e), None);
    for n in [&t.w, &t.e2] {
        assert_eq!(ua_of(n), Some((0x2A, 0x06)));
        assert_eq!(ua_of(n), None);
    }
    let s = cmd_fail(&t.w, &read10(0, 1));
    assert_eq!(kaq(&s), (2, 4, 0x0C));
}

#[test]
fn non_optimized_delays_commands() {
    let t = two();
    t.dev
        .set_alua_group_attribute("alua_west", "nonop_delay_msecs", "150")
        .expect("nonop");
    set_state(&t.dev, "alua_west", "ano");
    drain_ua(&t.w, 0);
    let start = Instant::now();
    assert_eq!(issue(&t.w, C::Read).status, status::GOOD);
    assert!(start.elapsed() >= Duration::from_millis(150));
    // Validation of the attribute.
    assert!(t
        .dev
        .set_alua_group_attribute("alua_west", "nonop_delay_msecs", "10001")
        .is_err());
}

#[test]
fn restore_sets_state_without_ua_or_transition() {
    let t = two();
    t.dev
        .set_alua_group_attribute("alua_east", "trans_delay_msecs", "5000")
        .expect("delay");
    t.dev
        .restore_alua_group_state("alua_east", 2, 1, true)
        .expect("restore");
    assert_eq!(group_byte0(&t.w, 2), (0x82, 0x01));
    for n in [&t.w, &t.e, &t.e2] {
        assert_eq!(ua_of(n), None);
    }
    assert_eq!(
        t.dev
            .alua_group_attribute("alua_east", "alua_access_state")
            .as_deref(),
        Some("2")
    );
    assert!(t
        .dev
        .restore_alua_group_state("alua_east", 4, 0, false)
        .is_err());
    assert!(t.dev.restore_alua_group_state("nope", 0, 0, false).is_err());
    t.pe.restore_lun_alua_offline(0, true, 1).expect("offline");
    assert_eq!(t.pe.lun_alua_offline(0), Some(true));
}

fn find_designator(d: &[u8], kind: u8) -> Vec<u8> {
    let mut at = 4;
    while at + 4 <= d.len() {
        let len = d[at + 3] as usize;
        if d[at + 1] & 0x0F == kind {
            return d[at + 4..at + 4 + len].to_vec();
        }
        at += 4 + len;
    }
    panic!("designator type {kind} missing");
}

fn designator(n: &Nexus, kind: u8) -> Vec<u8> {
    find_designator(&cmd_in(n, &[0x12, 1, 0x83, 0, 255, 0], 255), kind)
}

#[test]
fn vpd83_designators_and_tpgs_per_access_type() {
    let t = two();
    assert_eq!(designator(&t.w, 4), vec![0, 0, 0, 1]);
    assert_eq!(designator(&t.w, 5), vec![0, 0, 0, 1]);
    assert_eq!(designator(&t.e, 4), vec![0, 0, 0, 2]);
    assert_eq!(designator(&t.e, 5), vec![0, 0, 0, 2]);
    assert_eq!(designator(&t.e, 6), vec![0, 0, 0, 0]);
    for (ty, bits, name) in [
        ("0", 0x00, "None"),
        ("1", 0x10, "Implicit"),
        ("2", 0x20, "Explicit"),
        ("3", 0x30, "Implicit and Explicit"),
    ] {
        t.dev
            .set_alua_group_attribute("alua_west", "alua_access_type", ty)
            .expect("type");
        drain_ua(&t.w, 0);
        let d = cmd_in(&t.w, &[0x12, 0, 0, 0, 96, 0], 96);
        assert_eq!(d[5] & 0x30, bits, "type {ty}");
        assert_eq!(
            t.dev
                .alua_group_attribute("alua_west", "alua_access_type")
                .as_deref(),
            Some(name)
        );
    }
    // Implicit transitions need the implicit bit.
    t.dev
        .set_alua_group_attribute("alua_west", "alua_access_type", "2")
        .expect("type");
    assert!(t
        .dev
        .set_alua_group_attribute("alua_west", "alua_access_state", "s")
        .is_err());
    assert!(t
        .dev
        .set_alua_group_attribute("alua_west", "alua_support_lba_dependent", "1")
        .is_err());
    assert_eq!(
        t.dev
            .alua_group_attribute("alua_west", "members")
            .as_deref(),
        Some("iscsi/iqn.2024-01.org.ironlun:west/tpgt_1/lun_0")
    );
    assert_eq!(t.dev.alua_groups().len(), 3);
    assert_eq!(t.dev.alua_group_attribute_names().len(), 16);
}
