//! Unit attentions, SPC-2 reservations, task attributes and task management through the
//! public surface.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use ironlun_engine::scsi::{status, Sense};
use ironlun_engine::*;

const TUR: [u8; 6] = [0; 6];

fn tur(n: &Nexus) -> ScsiResponse {
    run(n, 0, &TUR, DataDirection::None, 0, vec![])
}

fn ua_of(n: &Nexus) -> Option<(u8, u8)> {
    let r = tur(n);
    if r.status != status::CHECK_CONDITION {
        return None;
    }
    let s = Sense::parse(&r.sense).expect("sense");
    assert_eq!(s.key, 6);
    Some((s.asc.asc, s.asc.ascq))
}

#[test]
fn new_nexus_sees_power_on_once_and_inquiry_is_not_blocked() {
    let r = rig();
    let c = r.port.open_nexus(initiator("iqn.c", 3)).expect("c");
    // INQUIRY and REPORT LUNS neither fail nor clear the condition.
    cmd_in(&c, &[0x12, 0, 0, 0, 36, 0], 36);
    cmd_in(&c, &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0], 64);
    assert_eq!(ua_of(&c), Some((0x29, 0x00)));
    assert_eq!(ua_of(&c), None);
}

#[test]
fn request_sense_returns_and_clears_the_unit_attention() {
    let r = rig();
    let c = r.port.open_nexus(initiator("iqn.c", 3)).expect("c");
    let d = cmd_in(&c, &[0x03, 0, 0, 0, 18, 0], 18);
    let s = Sense::parse(&d).expect("sense");
    assert_eq!(kaq(&s), (6, 0x29, 0));
    assert_eq!(tur(&c).status, status::GOOD);
}

#[test]
fn ua_interlock_keeps_the_condition_until_request_sense() {
    let mem = Mem::new(BS * 64, false);
    let dev = Device::new(config(), mem).expect("dev");
    dev.set_attribute("emulate_ua_intlck_ctrl", "1")
        .expect("intlck");
    let port = TargetPort::new("iqn.t", 1, 1);
    port.add_lun(0, dev.clone()).expect("lun");
    port.set_demo_mode(true, false);
    let n = port.open_nexus(initiator("iqn.a", 1)).expect("n");
    assert_eq!(ua_of(&n), Some((0x29, 0)));
    assert_eq!(
        ua_of(&n),
        Some((0x29, 0)),
        "10b does not clear on CHECK CONDITION"
    );
    let d = cmd_in(&n, &[0x03, 0, 0, 0, 18, 0], 18);
    assert_eq!(d[12], 0x29);
    assert_eq!(tur(&n).status, status::GOOD);
    // Exported: the attribute is frozen.
    assert!(dev.set_attribute("emulate_ua_intlck_ctrl", "0").is_err());
    let d = cmd_in(&n, &[0x1A, 0x08, 0x0A, 0, 255, 0], 255);
    assert_eq!(d[4 + 4] & 0x30, 0x20);
}

#[test]
fn capacity_change_and_lun_table_changes_raise_their_conditions() {
    let r = rig();
    r.dev.capacity_changed();
    assert_eq!(ua_of(&r.a), Some((0x2A, 0x09)));
    let dev2 = Device::new(config(), Mem::new(BS * 8, false)).expect("dev2");
    r.port.add_lun(1, dev2).expect("lun 1");
    assert_eq!(ua_of(&r.b), Some((0x2A, 0x09)));
    assert_eq!(ua_of(&r.b), Some((0x3F, 0x0E)));
    // REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED for the nexus.
    assert_eq!(ua_of(&r.a), Some((0x3F, 0x0E)));
    cmd_in(&r.b, &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0], 64);
    let lun1 = run(&r.b, 1, &TUR, DataDirection::None, 0, vec![]);
    assert_eq!(lun1.status, status::GOOD);
    r.port.remove_lun(1).expect("remove");
    assert_eq!(ua_of(&r.a), Some((0x3F, 0x0E)));
    let s = cmd_fail_with(&r.a, 1, &TUR, DataDirection::None, 0, vec![]);
    assert_eq!(kaq(&s), (5, 0x25, 0));
}

#[test]
fn acls_and_demo_mode_gate_logins() {
    let port = TargetPort::new("iqn.t", 1, 7);
    assert_eq!(
        port.open_nexus(initiator("iqn.x", 1)).err(),
        Some(LoginDenied::NotAuthorized("iqn.x".into()))
    );
    port.set_acl("iqn.x", vec![]);
    assert!(port.open_nexus(initiator("iqn.x", 1)).is_ok());
    port.set_enabled(false);
    assert_eq!(
        port.open_nexus(initiator("iqn.x", 2)).err(),
        Some(LoginDenied::Disabled)
    );
    port.set_enabled(true);
    port.set_demo_mode(true, true);
    let dev = Device::new(config(), Mem::new(BS * 8, false)).expect("dev");
    port.add_lun(3, dev).expect("lun");
    let y = port.open_nexus(initiator("iqn.y", 1)).expect("demo");
    assert_eq!(y.luns(), vec![3]);
    drain_ua(&y, 3);
    let s = cmd_fail_with(
        &y,
        3,
        &write10(0, 1, 0),
        DataDirection::Write,
        BS as u32,
        vec![0; BS],
    );
    assert_eq!(kaq(&s), (7, 0x27, 0));
}

#[test]
fn spc2_reservation_between_two_nexuses() {
    let r = rig();
    cmd_out(&r.a, &[0x16, 0, 0, 0, 0, 0], vec![]);
    cmd_out(&r.a, &[0x16, 0, 0, 0, 0, 0], vec![]);
    assert_eq!(tur(&r.b).status, status::RESERVATION_CONFLICT);
    let ms = run(
        &r.b,
        0,
        &[0x1A, 0, 0x3F, 0, 255, 0],
        DataDirection::Read,
        255,
        vec![],
    );
    assert_eq!(ms.status, status::RESERVATION_CONFLICT);
    assert!(ms.sense.is_empty());
    let rs = run(
        &r.b,
        0,
        &[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        DataDirection::None,
        0,
        vec![],
    );
    assert_eq!(rs.status, status::RESERVATION_CONFLICT);
    cmd_in(&r.b, &[0x12, 0, 0, 0, 36, 0], 36);
    // RELEASE from the non-holder is a no-op.
    cmd_out(&r.b, &[0x17, 0, 0, 0, 0, 0], vec![]);
    assert_eq!(tur(&r.b).status, status::RESERVATION_CONFLICT);
    assert_eq!(
        r.dev.info().spc2_holder.as_deref(),
        Some("iqn.a,i,0x400000000001")
    );
    cmd_out(&r.a, &[0x17, 0, 0, 0, 0, 0], vec![]);
    cmd_out(&r.b, &[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0], vec![]);
    assert_eq!(tur(&r.a).status, status::RESERVATION_CONFLICT);
    // I_T nexus loss releases it.
    r.b.close();
    assert_eq!(tur(&r.a).status, status::GOOD);
    let s = cmd_fail(&r.b, &TUR);
    assert_eq!(kaq(&s), (5, 0x25, 0));
}

#[test]
fn lun_reset_releases_the_reservation_and_tells_every_nexus() {
    let r = rig();
    cmd_out(&r.a, &[0x16, 0, 0, 0, 0, 0], vec![]);
    assert_eq!(
        r.b.task_management(0, TmfKind::LogicalUnitReset),
        TmfResponse::FunctionComplete
    );
    assert_eq!(ua_of(&r.a), Some((0x29, 0x03)));
    assert_eq!(ua_of(&r.b), Some((0x29, 0x03)));
    assert_eq!(tur(&r.b).status, status::GOOD);
    assert_eq!(
        r.a.task_management(9, TmfKind::LogicalUnitReset),
        TmfResponse::LunDoesNotExist
    );
    assert_eq!(
        r.a.task_management(0, TmfKind::ClearAca),
        TmfResponse::NotSupported
    );
    assert_eq!(
        r.a.task_management(0, TmfKind::AbortTask { tag: 77 }),
        TmfResponse::TaskDoesNotExist
    );
}

#[test]
fn target_resets_raise_hard_reset_and_power_on() {
    let r = rig();
    cmd_out(&r.a, &[0x16, 0, 0, 0, 0, 0], vec![]);
    assert_eq!(
        r.a.task_management(0, TmfKind::TargetWarmReset),
        TmfResponse::FunctionComplete
    );
    assert_eq!(ua_of(&r.b), Some((0x29, 0x02)));
    assert_eq!(tur(&r.b).status, status::GOOD);
    assert_eq!(
        r.a.task_management(0, TmfKind::TargetColdReset),
        TmfResponse::FunctionComplete
    );
    assert_eq!(ua_of(&r.a), Some((0x29, 0x02)));
    assert_eq!(ua_of(&r.a), Some((0x29, 0x01)));
}

fn spawn_read(n: &Arc<Nexus>, tag: u64, attr: TaskAttr) -> thread::JoinHandle<ScsiResponse> {
    let n = n.clone();
    thread::spawn(move || {
        let mut req = request(0, &read10(0, 1), DataDirection::Read, BS as u32, vec![]);
        req.tag = tag;
        req.attr = attr;
        n.execute(req)
    })
}

fn spawn_tur(n: &Arc<Nexus>, tag: u64, attr: TaskAttr) -> thread::JoinHandle<ScsiResponse> {
    let n = n.clone();
    thread::spawn(move || {
        let mut req = request(0, &TUR, DataDirection::None, 0, vec![]);
        req.tag = tag;
        req.attr = attr;
        n.execute(req)
    })
}

fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..5000 {
        if cond() {
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
    panic!("condition not reached");
}

#[test]
fn abort_task_of_a_task_blocked_behind_an_ordered_task() {
    let r = rig();
    r.mem.close_gate();
    let first = spawn_read(&r.a, 1, TaskAttr::Simple);
    wait_for(|| r.mem.reads_waiting.load(Ordering::SeqCst) == 1);
    let ordered = spawn_tur(&r.a, 2, TaskAttr::Ordered);
    wait_for(|| r.dev.info().tasks == 2);
    let blocked = spawn_tur(&r.b, 3, TaskAttr::Simple);
    wait_for(|| r.dev.info().tasks == 3);
    assert!(!blocked.is_finished() && !ordered.is_finished());
    // Aborted by its own nexus: no response at all.
    assert_eq!(
        r.b.task_management(0, TmfKind::AbortTask { tag: 3 }),
        TmfResponse::FunctionComplete
    );
    let resp = blocked.join().expect("blocked");
    assert!(resp.suppressed);
    r.mem.open_gate();
    assert_eq!(first.join().expect("first").status, status::GOOD);
    assert_eq!(ordered.join().expect("ordered").status, status::GOOD);
    assert_eq!(r.dev.info().tasks, 0);
}

#[test]
fn head_of_queue_passes_an_ordered_task() {
    let r = rig();
    r.mem.close_gate();
    let first = spawn_read(&r.a, 1, TaskAttr::Ordered);
    wait_for(|| r.mem.reads_waiting.load(Ordering::SeqCst) == 1);
    let hoq = spawn_tur(&r.b, 2, TaskAttr::HeadOfQueue);
    assert_eq!(hoq.join().expect("hoq").status, status::GOOD);
    r.mem.open_gate();
    assert_eq!(first.join().expect("first").status, status::GOOD);
}

#[test]
fn clear_task_set_waits_for_running_tasks_and_aborts_others_with_tas() {
    let r = rig();
    r.mem.close_gate();
    let theirs = spawn_read(&r.a, 1, TaskAttr::Simple);
    wait_for(|| r.mem.reads_waiting.load(Ordering::SeqCst) == 1);
    let b = r.b.clone();
    let tmf = thread::spawn(move || b.task_management(0, TmfKind::ClearTaskSet));
    wait_for(|| r.dev.info().aborting == 1);
    thread::sleep(Duration::from_millis(5));
    assert!(!tmf.is_finished(), "the TMF waits for the running task");
    r.mem.open_gate();
    assert_eq!(tmf.join().expect("tmf"), TmfResponse::FunctionComplete);
    let resp = theirs.join().expect("theirs");
    assert_eq!(resp.status, status::TASK_ABORTED);
    assert!(!resp.suppressed);
}

#[test]
fn clear_task_set_without_tas_raises_commands_cleared() {
    let mem = Mem::new(BS * 64, false);
    let dev = Device::new(config(), mem.clone()).expect("dev");
    dev.set_attribute("emulate_tas", "0").expect("tas");
    let (port, a, b) = export_two(&dev, "iqn.t");
    mem.close_gate();
    let theirs = spawn_read(&a, 1, TaskAttr::Simple);
    wait_for(|| mem.reads_waiting.load(Ordering::SeqCst) == 1);
    let b2 = b.clone();
    let tmf = thread::spawn(move || b2.task_management(0, TmfKind::ClearTaskSet));
    let dev = port.luns()[0].1.clone();
    wait_for(|| dev.info().aborting == 1);
    mem.open_gate();
    assert_eq!(tmf.join().expect("tmf"), TmfResponse::FunctionComplete);
    assert!(theirs.join().expect("theirs").suppressed);
    assert_eq!(ua_of(&a), Some((0x2F, 0x00)));
    assert_eq!(ua_of(&b), None);
}

#[test]
fn abort_task_set_and_lun_reset_suppress_own_tasks() {
    let r = rig();
    r.mem.close_gate();
    let own = spawn_read(&r.a, 5, TaskAttr::Simple);
    wait_for(|| r.mem.reads_waiting.load(Ordering::SeqCst) == 1);
    let a = r.a.clone();
    let tmf = thread::spawn(move || a.task_management(0, TmfKind::AbortTaskSet));
    wait_for(|| r.dev.info().aborting == 1);
    r.mem.open_gate();
    assert_eq!(tmf.join().expect("tmf"), TmfResponse::FunctionComplete);
    assert!(own.join().expect("own").suppressed);
    // LUN reset from the same nexus while a task runs.
    r.mem.close_gate();
    let own = spawn_read(&r.a, 6, TaskAttr::Simple);
    let other = spawn_read(&r.b, 7, TaskAttr::Simple);
    wait_for(|| r.mem.reads_waiting.load(Ordering::SeqCst) == 2);
    let a = r.a.clone();
    let tmf = thread::spawn(move || a.task_management(0, TmfKind::LogicalUnitReset));
    wait_for(|| r.dev.info().aborting == 2);
    r.mem.open_gate();
    assert_eq!(tmf.join().expect("tmf"), TmfResponse::FunctionComplete);
    assert!(own.join().expect("own").suppressed);
    assert_eq!(other.join().expect("other").status, status::TASK_ABORTED);
}

#[test]
fn task_set_full_beyond_queue_depth() {
    let r = rig();
    r.dev.set_attribute("queue_depth", "1").expect("qd");
    r.mem.close_gate();
    let first = spawn_read(&r.a, 1, TaskAttr::Simple);
    wait_for(|| r.mem.reads_waiting.load(Ordering::SeqCst) == 1);
    assert_eq!(tur(&r.b).status, status::TASK_SET_FULL);
    r.mem.open_gate();
    assert_eq!(first.join().expect("first").status, status::GOOD);
    assert_eq!(tur(&r.b).status, status::GOOD);
}

#[test]
fn many_threads_read_and_write_concurrently() {
    let r = rig();
    let handles: Vec<_> = (0..8u8)
        .map(|t| {
            let n = if t % 2 == 0 { r.a.clone() } else { r.b.clone() };
            thread::spawn(move || {
                for i in 0..50u32 {
                    let lba = u32::from(t) * 100 + i;
                    let data = vec![t.wrapping_add(i as u8); BS];
                    cmd_out(&n, &write10(lba, 1, 0), data.clone());
                    assert_eq!(cmd_in(&n, &read10(lba, 1), BS as u32), data);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker");
    }
    assert_eq!(r.dev.info().tasks, 0);
}

#[test]
fn interlock_11b_reports_previous_reservation_conflict() {
    let mem = Mem::new(BS * 64, false);
    let dev = Device::new(config(), mem).expect("dev");
    dev.set_attribute("emulate_ua_intlck_ctrl", "2")
        .expect("intlck");
    let port = TargetPort::new("iqn.t", 1, 1);
    port.add_lun(0, dev).expect("lun");
    port.set_demo_mode(true, false);
    let a = port.open_nexus(initiator("iqn.a", 1)).expect("a");
    let b = port.open_nexus(initiator("iqn.b", 2)).expect("b");
    for n in [&a, &b] {
        cmd_in(n, &[0x03, 0, 0, 0, 18, 0], 18);
    }
    cmd_out(&a, &[0x16, 0, 0, 0, 0, 0], vec![]);
    assert_eq!(tur(&b).status, status::RESERVATION_CONFLICT);
    cmd_out(&a, &[0x17, 0, 0, 0, 0, 0], vec![]);
    assert_eq!(ua_of(&b), Some((0x2C, 0x09)));
    let d = cmd_in(&b, &[0x03, 0, 0, 0, 18, 0], 18);
    assert_eq!((d[12], d[13]), (0x2C, 0x09));
    assert_eq!(tur(&b).status, status::GOOD);
}
