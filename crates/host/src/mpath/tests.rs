//! The policy without a network: outcomes, grouping and choosing, failback, explicit
//! failover's candidate, block limits and the CDBs of the block device.

use std::time::Duration;

use ironlun_initiator::{Bytes, CommandResult, Residual};
use ironlun_scsi::alua::AccessState::{self, *};
use ironlun_scsi::sense::{key, Asc};
use ironlun_scsi::{status, Sense};

use super::blockdev::{outcome, unmap_cdb, unmap_params, write_same16_cdb};
use super::lu::{limits_from, DEFAULT_MAX_REQUEST};
use super::policy::*;

fn check(k: u8, asc: u8, ascq: u8) -> CommandResult {
    CommandResult {
        response: 0,
        status: status::CHECK_CONDITION,
        sense: Some(Sense::new(k, Asc::new(asc, ascq))),
        sense_bytes: Bytes::new(),
        data_in: Bytes::new(),
        residual: Residual::None,
        data_in_pdus: 0,
    }
}

fn good() -> CommandResult {
    CommandResult {
        status: status::GOOD,
        sense: None,
        ..check(0, 0, 0)
    }
}

#[test]
fn outcomes_that_mean_the_alua_picture_is_stale() {
    for (a, q) in [(0x2A, 0x06), (0x2A, 0x07), (0x3F, 0x0E), (0x3F, 0x03)] {
        assert_eq!(classify(&check(key::UNIT_ATTENTION, a, q)), Verdict::Reread);
    }
    for q in [0x0B, 0x0C, 0x12] {
        assert_eq!(classify(&check(key::NOT_READY, 4, q)), Verdict::Reread);
    }
    assert_eq!(
        classify(&check(key::NOT_READY, 4, 0x0A)),
        Verdict::Transitioning
    );
    // A power-on reset or a reservation preempted: retried as it is.
    assert_eq!(
        classify(&check(key::UNIT_ATTENTION, 0x29, 0)),
        Verdict::Retry
    );
    assert_eq!(
        classify(&check(key::UNIT_ATTENTION, 0x2A, 0x03)),
        Verdict::Retry
    );
    // The command's own failures go back to the caller.
    assert_eq!(
        classify(&check(key::ILLEGAL_REQUEST, 0x21, 0)),
        Verdict::Done
    );
    assert_eq!(classify(&check(key::NOT_READY, 4, 0x02)), Verdict::Done);
    assert_eq!(classify(&check(key::MEDIUM_ERROR, 0x11, 0)), Verdict::Done);
    assert_eq!(classify(&good()), Verdict::Done);
    // The target cannot take it now: retried after a pause.
    for st in [status::BUSY, status::TASK_SET_FULL] {
        let r = CommandResult {
            status: st,
            sense: None,
            ..good()
        };
        assert_eq!(classify(&r), Verdict::Busy);
    }
    let r = CommandResult {
        status: status::RESERVATION_CONFLICT,
        sense: None,
        ..good()
    };
    assert_eq!(classify(&r), Verdict::Done);
}

#[test]
fn tur_checker_states() {
    assert_eq!(tur_verdict(&good()), Some(Checker::Ready));
    assert_eq!(
        tur_verdict(&check(key::NOT_READY, 4, 0x0B)),
        Some(Checker::Ghost)
    );
    assert_eq!(
        tur_verdict(&check(key::NOT_READY, 4, 0x0C)),
        Some(Checker::Faulty)
    );
    assert_eq!(tur_verdict(&check(key::UNIT_ATTENTION, 0x2A, 6)), None);
}

fn p(state: AccessState, pref: bool, up: bool) -> PathInfo {
    PathInfo {
        state: Some(state),
        pref,
        up,
    }
}

#[test]
fn io_goes_to_the_best_usable_group_round_robin() {
    let paths = [
        p(ActiveNonOptimized, false, true),
        p(ActiveOptimized, false, true),
        p(ActiveOptimized, false, true),
        p(Standby, false, true),
    ];
    let picks: Vec<usize> = (0..4).map(|t| choose(&paths, t).unwrap()).collect();
    assert_eq!(picks, vec![1, 2, 1, 2]);
    assert_eq!(active_priority(&paths), Some(50));
}

#[test]
fn non_optimized_only_when_no_optimized_path_is_usable() {
    let paths = [
        p(ActiveNonOptimized, false, true),
        p(ActiveOptimized, false, false),
        p(Standby, false, true),
    ];
    assert_eq!(choose(&paths, 0), Some(0));
    assert_eq!(choose(&paths, 1), Some(0));
}

#[test]
fn never_standby_unavailable_offline_or_transitioning() {
    for st in [Standby, Unavailable, Offline, Transitioning, LbaDependent] {
        let paths = [p(st, true, true), p(st, false, true)];
        assert_eq!(choose(&paths, 0), None, "{st:?}");
        assert_eq!(active_priority(&paths), None);
    }
}

#[test]
fn a_preferred_standby_group_does_not_take_io() {
    // Priority 81 > 50, but standby is never usable: I/O stays on the optimized group.
    let paths = [p(Standby, true, true), p(ActiveOptimized, false, true)];
    assert_eq!(choose(&paths, 0), Some(1));
    // Preferred non-optimized (90) beats unpreferred optimized (50), as multipath-tools has it.
    let paths = [
        p(ActiveNonOptimized, true, true),
        p(ActiveOptimized, false, true),
    ];
    assert_eq!(choose(&paths, 0), Some(0));
}

#[test]
fn without_tpgs_every_up_path_is_one_group() {
    let none = |up| PathInfo {
        state: None,
        pref: false,
        up,
    };
    let paths = [none(true), none(false), none(true)];
    let picks: Vec<usize> = (0..3).map(|t| choose(&paths, t).unwrap()).collect();
    assert_eq!(picks, vec![0, 2, 0]);
}

#[test]
fn transition_time_and_backoff() {
    let d = Duration::from_secs(10);
    assert_eq!(transition_time(Some(3), d), Duration::from_secs(3));
    assert_eq!(transition_time(Some(0), d), d);
    assert_eq!(transition_time(None, d), d);
    let cap = Duration::from_millis(500);
    let b: Vec<u128> = (0..6).map(|a| backoff(a, cap).as_millis()).collect();
    assert_eq!(b, vec![50, 100, 200, 400, 500, 500]);
    assert_eq!(backoff(u32::MAX, cap), cap);
}

#[test]
fn explicit_failover_picks_a_standby_group_only_when_nothing_is_usable() {
    let only_standby = [
        (Some(1), p(Standby, false, true)),
        (Some(2), p(Standby, true, true)),
        (Some(3), p(Unavailable, false, true)),
    ];
    assert_eq!(stpg_candidate(&only_standby, true), Some(2));
    assert_eq!(stpg_candidate(&only_standby, false), None);
    let with_active = [
        (Some(1), p(Standby, false, true)),
        (Some(2), p(ActiveNonOptimized, false, true)),
    ];
    assert_eq!(stpg_candidate(&with_active, true), None);
    let tie = [
        (Some(7), p(Standby, false, true)),
        (Some(4), p(Standby, false, true)),
        (Some(1), p(Standby, false, false)),
    ];
    assert_eq!(stpg_candidate(&tie, true), Some(4));
}

/// A Block Limits page (0x3C bytes) with these fields.
fn b0(mtl: u32, unmap_lbas: u32, unmap_descs: u32, ws: u64) -> Vec<u8> {
    let mut p = vec![0u8; 64];
    p[1] = 0xB0;
    p[3] = 0x3C;
    p[8..12].copy_from_slice(&mtl.to_be_bytes());
    p[20..24].copy_from_slice(&unmap_lbas.to_be_bytes());
    p[24..28].copy_from_slice(&unmap_descs.to_be_bytes());
    p[36..44].copy_from_slice(&ws.to_be_bytes());
    p
}

fn b2(lbpu: bool) -> Vec<u8> {
    vec![0, 0xB2, 0, 4, 0, if lbpu { 0x80 } else { 0 }, 0, 0]
}

#[test]
fn block_limits_from_the_vpd_pages() {
    let l = limits_from(Some(&b0(128, 4096, 1, 1024)), Some(&b2(true)), 512);
    assert_eq!(l.max_request, 64 * 1024);
    assert!(l.unmap);
    assert_eq!(l.max_unmap_blocks, 4096);
    assert_eq!(l.max_write_same_blocks, 1024);
    // No UNMAP without LBPU, without the page, or with a zero count.
    assert!(!limits_from(Some(&b0(128, 4096, 1, 0)), Some(&b2(false)), 512).unmap);
    assert!(!limits_from(Some(&b0(128, 4096, 1, 0)), None, 512).unmap);
    assert!(!limits_from(Some(&b0(128, 0, 0, 0)), Some(&b2(true)), 512).unmap);
    // No MAXIMUM TRANSFER LENGTH: 1 MiB.
    let l = limits_from(Some(&b0(0, 0, 0, 0)), None, 4096);
    assert_eq!(l.max_request, DEFAULT_MAX_REQUEST);
    assert_eq!(
        limits_from(None, None, 512).max_request,
        DEFAULT_MAX_REQUEST
    );
}

#[test]
fn block_device_cdbs() {
    assert_eq!(unmap_cdb(24), [0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0]);
    let p = unmap_params(0x0102, 8);
    assert_eq!(&p[0..4], &[0, 22, 0, 16]);
    assert_eq!(&p[8..16], &[0, 0, 0, 0, 0, 0, 1, 2]);
    assert_eq!(&p[16..20], &[0, 0, 0, 8]);
    let c = write_same16_cdb(5, 3);
    assert_eq!(c[0], 0x93);
    assert_eq!(c[1] & 0x08, 0, "UNMAP bit off");
    assert_eq!(&c[2..10], &5u64.to_be_bytes());
    assert_eq!(&c[10..14], &3u32.to_be_bytes());
}

#[test]
fn errors_as_the_nbd_server_reports_them() {
    assert!(outcome(&good(), &"READ").is_ok());
    let e = outcome(&check(key::ILLEGAL_REQUEST, 0x21, 0), &"READ").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let e = outcome(&check(key::MEDIUM_ERROR, 0x11, 0), &"READ (16) at LBA 9").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::Other);
    let m = e.to_string();
    assert!(
        m.contains("READ (16) at LBA 9") && m.contains("MEDIUM ERROR"),
        "{m}"
    );
}

fn async_msg(event: u8, param3: u16) -> ironlun_initiator::iscsi::AsyncMessage {
    ironlun_initiator::iscsi::AsyncMessage {
        lun: [0; 8],
        stat_sn: 0,
        exp_cmd_sn: 0,
        max_cmd_sn: 0,
        event,
        vcode: 0,
        param1: 0,
        param2: 0,
        param3,
    }
}

/// A SCSI asynchronous event's data segment: SenseLength, then the sense (RFC 7143 §11.9.4).
fn sense_segment(k: u8, asc: u8, ascq: u8, descriptor: bool) -> Vec<u8> {
    let sense = Sense::new(k, Asc::new(asc, ascq)).encode(descriptor);
    let mut d = (sense.len() as u16).to_be_bytes().to_vec();
    d.extend_from_slice(&sense);
    d
}

#[test]
fn asynchronous_messages_become_actions() {
    // ALUA news in either sense format re-reads the picture.
    for descriptor in [false, true] {
        let d = sense_segment(key::UNIT_ATTENTION, 0x2A, 0x06, descriptor);
        assert_eq!(on_async(&async_msg(0, 0), &d), AsyncAction::Reread);
    }
    let d = sense_segment(key::NOT_READY, 0x04, 0x0A, false);
    assert_eq!(on_async(&async_msg(0, 0), &d), AsyncAction::Reread);
    // Other events with sense, and malformed segments, change nothing.
    let d = sense_segment(key::UNIT_ATTENTION, 0x29, 0x00, false);
    assert_eq!(on_async(&async_msg(0, 0), &d), AsyncAction::Nothing);
    assert_eq!(on_async(&async_msg(0, 0), &[]), AsyncAction::Nothing);
    assert_eq!(
        on_async(&async_msg(0, 0), &[0, 200, 0x70]),
        AsyncAction::Nothing
    );
    // Logout requests and announced drops take the path out, naming why.
    match on_async(&async_msg(1, 5), &[]) {
        AsyncAction::Leave(why) => assert!(why.contains("logout within 5 s"), "{why}"),
        other => panic!("{other:?}"),
    }
    for ev in [2, 3] {
        assert!(matches!(
            on_async(&async_msg(ev, 0), &[]),
            AsyncAction::Leave(_)
        ));
    }
    assert_eq!(on_async(&async_msg(4, 0), &[]), AsyncAction::Negotiate);
    assert_eq!(on_async(&async_msg(255, 0), &[]), AsyncAction::Nothing);
}
