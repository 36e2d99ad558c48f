//! Removable medium (SBC-3 §5.5 PREVENT ALLOW MEDIUM REMOVAL, §5.25 START STOP UNIT LOEJ,
//! INQUIRY RMB) through the public surface: eject/load, NOT READY MEDIUM NOT PRESENT, the
//! load unit attention, prevention per I_T nexus and its end on nexus loss and resets, power
//! conditions; the non-removable behaviour of the same commands.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use ironlun_engine::scsi::{status, Sense};
use ironlun_engine::*;

struct Lu {
    port: Arc<TargetPort>,
    a: Arc<Nexus>,
    b: Arc<Nexus>,
}

/// A removable LU (attribute set before export) with two drained nexuses.
fn removable() -> Lu {
    let dev = Device::new(config(), Mem::new(BS * BLOCKS, true)).expect("device");
    dev.set_attribute("removable", "1").expect("removable");
    let (port, a, b) = export_two(&dev, "iqn.2024-01.org.ironlun:rm");
    Lu { port, a, b }
}

fn ssu(b4: u8) -> [u8; 6] {
    [0x1B, 0, 0, 0, b4, 0]
}

const EJECT: u8 = 0x02;
const LOAD: u8 = 0x03;

fn prevent(n: &Nexus, v: u8) {
    cmd_out(n, &[0x1E, 0, 0, 0, v, 0], vec![]);
}

fn nodata(n: &Nexus, cdb: &[u8]) -> ScsiResponse {
    run(n, 0, cdb, DataDirection::None, 0, vec![])
}

fn sense(r: &ScsiResponse) -> (u8, u8, u8) {
    assert_eq!(r.status, status::CHECK_CONDITION);
    kaq(&Sense::parse(&r.sense).expect("sense"))
}

const NO_MEDIUM: (u8, u8, u8) = (0x02, 0x3A, 0x00);
const PREVENTED: (u8, u8, u8) = (0x05, 0x53, 0x02);

#[test]
fn removable_lu_reports_rmb_and_offers_prevent_allow() {
    let lu = removable();
    assert_eq!(cmd_in(&lu.a, &[0x12, 0, 0, 0, 36, 0], 36)[1] & 0x80, 0x80);
    prevent(&lu.a, 1);
    prevent(&lu.a, 0);
    // PREVENT 1xb is the obsolete media changer form.
    let r = nodata(&lu.a, &[0x1E, 0, 0, 0, 2, 0]);
    let s = Sense::parse(&r.sense).unwrap();
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((0x05, 0x24, 0), Some((true, 4, Some(1))))
    );
}

#[test]
fn eject_makes_medium_access_not_ready_and_load_raises_ua_on_the_others() {
    let lu = removable();
    cmd_out(&lu.a, &write10(0, 1, 0), vec![0x42; BS]);
    cmd_out(&lu.a, &ssu(EJECT), vec![]);
    assert_eq!(sense(&nodata(&lu.a, &[0; 6])), NO_MEDIUM);
    let r = run(
        &lu.b,
        0,
        &read10(0, 1),
        DataDirection::Read,
        BS as u32,
        vec![],
    );
    assert_eq!(sense(&r), NO_MEDIUM);
    let r = run(
        &lu.a,
        0,
        &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        DataDirection::Read,
        8,
        vec![],
    );
    assert_eq!(sense(&r), NO_MEDIUM);
    let r = run(
        &lu.b,
        0,
        &write10(0, 1, 0),
        DataDirection::Write,
        BS as u32,
        vec![0; BS],
    );
    assert_eq!(sense(&r), NO_MEDIUM);
    // REQUEST SENSE-free commands still work.
    cmd_in(&lu.a, &[0x12, 0, 0, 0, 36, 0], 36);
    // Ejecting again is harmless; loading brings the medium back with its data.
    cmd_out(&lu.b, &ssu(EJECT), vec![]);
    cmd_out(&lu.a, &ssu(LOAD), vec![]);
    assert_eq!(nodata(&lu.a, &[0; 6]).status, status::GOOD);
    assert_eq!(sense(&nodata(&lu.b, &[0; 6])), (0x06, 0x28, 0x00));
    assert_eq!(nodata(&lu.b, &[0; 6]).status, status::GOOD);
    assert_eq!(cmd_in(&lu.b, &read10(0, 1), BS as u32), vec![0x42; BS]);
    // Loading a loaded medium raises nothing.
    cmd_out(&lu.a, &ssu(LOAD), vec![]);
    assert_eq!(nodata(&lu.b, &[0; 6]).status, status::GOOD);
}

#[test]
fn prevention_by_one_nexus_refuses_eject_and_load_by_any() {
    let lu = removable();
    prevent(&lu.a, 1);
    assert_eq!(sense(&nodata(&lu.a, &ssu(EJECT))), PREVENTED);
    assert_eq!(sense(&nodata(&lu.b, &ssu(EJECT))), PREVENTED);
    assert_eq!(nodata(&lu.b, &[0; 6]).status, status::GOOD);
    // ALLOW from the other nexus does not end a's prevention.
    prevent(&lu.b, 0);
    assert_eq!(sense(&nodata(&lu.b, &ssu(EJECT))), PREVENTED);
    prevent(&lu.a, 0);
    cmd_out(&lu.b, &ssu(EJECT), vec![]);
    // While prevented, loading is refused too.
    prevent(&lu.b, 1);
    assert_eq!(sense(&nodata(&lu.a, &ssu(LOAD))), PREVENTED);
    assert_eq!(sense(&nodata(&lu.a, &[0; 6])), NO_MEDIUM);
    prevent(&lu.b, 0);
    cmd_out(&lu.a, &ssu(LOAD), vec![]);
    assert_eq!(nodata(&lu.a, &[0; 6]).status, status::GOOD);
}

#[test]
fn nexus_loss_ends_its_prevention() {
    let lu = removable();
    prevent(&lu.b, 1);
    assert_eq!(sense(&nodata(&lu.a, &ssu(EJECT))), PREVENTED);
    lu.b.close();
    cmd_out(&lu.a, &ssu(EJECT), vec![]);
    assert_eq!(sense(&nodata(&lu.a, &[0; 6])), NO_MEDIUM);
    let _ = &lu.port;
}

#[test]
fn lun_reset_and_target_reset_end_every_prevention() {
    for tmf in [
        TmfKind::LogicalUnitReset,
        TmfKind::TargetWarmReset,
        TmfKind::TargetColdReset,
    ] {
        let lu = removable();
        prevent(&lu.a, 1);
        prevent(&lu.b, 1);
        assert_eq!(lu.a.task_management(0, tmf), TmfResponse::FunctionComplete);
        drain_ua(&lu.a, 0);
        cmd_out(&lu.a, &ssu(EJECT), vec![]);
        assert_eq!(sense(&nodata(&lu.a, &[0; 6])), NO_MEDIUM);
    }
}

#[test]
fn power_conditions_and_start_without_loej_keep_a_removable_medium_ready() {
    let lu = removable();
    for pc in 1..16u8 {
        // START=0 LOEJ=1 is ignored with a power condition.
        cmd_out(&lu.a, &ssu(pc << 4 | EJECT), vec![]);
        assert_eq!(nodata(&lu.a, &[0; 6]).status, status::GOOD, "pc {pc}");
    }
    for b4 in [0x00u8, 0x01, 0x04, 0x05] {
        cmd_out(&lu.a, &ssu(b4), vec![]);
        assert_eq!(nodata(&lu.a, &[0; 6]).status, status::GOOD, "b4 {b4:#x}");
    }
    let s = Sense::parse(&nodata(&lu.a, &[0x1B, 0, 0, 0x01, 0, 0]).sense).unwrap();
    assert_eq!(pointer(&s), Some((true, 3, Some(3))));
}

#[test]
fn non_removable_lu_keeps_stop_semantics_and_refuses_loej_and_prevent() {
    let r = rig();
    assert_eq!(cmd_in(&r.a, &[0x12, 0, 0, 0, 36, 0], 36)[1] & 0x80, 0);
    let s = Sense::parse(&nodata(&r.a, &ssu(EJECT)).sense).unwrap();
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((0x05, 0x24, 0), Some((true, 4, Some(1))))
    );
    let s = Sense::parse(&nodata(&r.a, &ssu(0x10 | 1)).sense).unwrap();
    assert_eq!(
        (kaq(&s), pointer(&s)),
        ((0x05, 0x24, 0), Some((true, 4, Some(7))))
    );
    let s = Sense::parse(&nodata(&r.a, &[0x1E, 0, 0, 0, 1, 0]).sense).unwrap();
    assert_eq!(kaq(&s), (0x05, 0x20, 0x00));
    cmd_out(&r.a, &ssu(0), vec![]);
    assert_eq!(sense(&nodata(&r.a, &[0; 6])), (0x02, 0x04, 0x02));
    cmd_out(&r.a, &ssu(1), vec![]);
    assert_eq!(nodata(&r.a, &[0; 6]).status, status::GOOD);
}
