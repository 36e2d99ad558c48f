//! End to end: every task management function (RFC 7143 §11.5, SAM-5 §7) against the real
//! daemon. Commands are kept outstanding deterministically by withholding the Data-Out an
//! R2T asks for (ImmediateData=No, InitialR2T=Yes): the target holds the write until then.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ironlun_initiator::iscsi::pdu::tmf_response;
use ironlun_initiator::scsi::cdb;
use ironlun_initiator::session::DataOutPolicy;
use ironlun_initiator::{Bytes, CommandOptions, Error, Event, PendingCommand, Session};
use ironlun_scsi::status;
use support::*;

const LEN: usize = 64 * 1024;

async fn held_session(d: &Daemon, who: &str) -> Session {
    login(
        d,
        normal(who)
            .offer("ImmediateData", "No")
            .offer("InitialR2T", "Yes"),
    )
    .await
}

/// Start a write whose data we withhold; returns once the target's R2T for it arrived (so
/// the target holds the task).
async fn held_write(s: &Session, lba: u64, seed: u32) -> PendingCommand {
    let before = s.stats().r2ts;
    let opts = CommandOptions {
        data_out: DataOutPolicy::Withhold,
        ..CommandOptions::default()
    };
    let data = Bytes::from(pattern(seed, LEN));
    let p = guard(
        "start write",
        s.start_command(
            0,
            &cdb::write16(lba, (LEN as u32) / BLOCK, false),
            Some(data),
            0,
            opts,
        ),
    )
    .await
    .unwrap();
    guard("R2T for the held write", s.until(|st| st.r2ts > before))
        .await
        .unwrap();
    p
}

/// The held command `p` ends as aborted by a task management function.
async fn assert_aborted(what: &str, p: PendingCommand) {
    let r = guard(what, p.wait()).await;
    assert!(matches!(r, Err(Error::TaskAborted)), "{what}: {r:?}");
}

/// Issue a multi-task TMF the way RFC 7143 has an initiator do it (RFC 3720 §10.6.2
/// initiator step b, kept by RFC 7143 §4.2.3): send the TMF, then keep answering the target
/// transfer tags of the affected tasks — here by releasing the withheld data once a NOP
/// after the TMF proves the target has the TMF. A target may answer the TMF before or after
/// that data arrives; either way the held tasks must end aborted and write nothing.
async fn multi_task_tmf<F>(s: &Session, held: &[&PendingCommand], tmf: F) -> u8
where
    F: std::future::Future<Output = Result<u8, Error>> + Send + 'static,
{
    let t = tokio::spawn(tmf);
    guard("ping after TMF", s.ping(Vec::new())).await.unwrap();
    for p in held {
        // The task may already be gone (the TMF response came first).
        let _ = s.release_data(p.itt);
    }
    guard("TMF response", t).await.unwrap().unwrap()
}

async fn read_region(s: &Session, lba: u64) -> Bytes {
    good(
        guard("read", s.read16(0, lba, (LEN as u32) / BLOCK, BLOCK)).await,
        "read region",
    )
}

fn zeros() -> Vec<u8> {
    vec![0u8; LEN]
}

async fn tur_status(s: &Session) -> (u8, Option<(u8, u8, u8)>) {
    let r = guard("TEST UNIT READY", s.test_unit_ready(0))
        .await
        .unwrap();
    (r.status, r.sense_triple())
}

#[tokio::test]
async fn abort_task_of_a_held_write_and_of_no_task() {
    let d = Daemon::start();
    let s = held_session(&d, "abort").await;
    let p = held_write(&s, 1000, 1).await;
    let r = guard("ABORT TASK", s.abort_task(0, p.itt)).await.unwrap();
    assert_eq!(r, tmf_response::FUNCTION_COMPLETE);
    assert_aborted("aborted write", p).await;
    // Never written; the session goes on without a unit attention.
    assert_eq!(&read_region(&s, 1000).await[..], &zeros()[..]);
    assert_eq!(tur_status(&s).await, (status::GOOD, None));
    // A tag that names no task (RefCmdSN = the TMF's own CmdSN, so not "in the window and
    // before it"): TASK DOES NOT EXIST.
    let r = guard("ABORT TASK (no task)", s.abort_task(0, 0x00C0_FFEE))
        .await
        .unwrap();
    assert_eq!(r, tmf_response::TASK_DOES_NOT_EXIST);
    // A command that already completed is no longer a task either.
    let done = guard(
        "TUR",
        s.start_command(
            0,
            &cdb::test_unit_ready(),
            None,
            0,
            CommandOptions::default(),
        ),
    )
    .await
    .unwrap();
    let itt = done.itt;
    guard("TUR", done.wait()).await.unwrap();
    let r = guard("ABORT TASK (done)", s.abort_task(0, itt))
        .await
        .unwrap();
    assert_eq!(r, tmf_response::TASK_DOES_NOT_EXIST);
    assert!(
        s.stats().violations.is_empty(),
        "{:?}",
        s.stats().violations
    );
}

/// ABORT TASK SET aborts the issuing I_T nexus' tasks only (SAM-5 §7.2).
#[tokio::test]
async fn abort_task_set_spares_other_sessions() {
    let d = Daemon::start();
    let a = held_session(&d, "ats-a").await;
    let b = held_session(&d, "ats-b").await;
    let a1 = held_write(&a, 2000, 11).await;
    let a2 = held_write(&a, 3000, 12).await;
    let b1 = held_write(&b, 4000, 13).await;
    let a_ = a.clone();
    let r = multi_task_tmf(&a, &[&a1, &a2], async move { a_.abort_task_set(0).await }).await;
    assert_eq!(r, tmf_response::FUNCTION_COMPLETE);
    assert_aborted("a1", a1).await;
    assert_aborted("a2", a2).await;
    b.release_data(b1.itt).unwrap();
    let r = guard("b1", b1.wait()).await.unwrap();
    assert_eq!(r.status, status::GOOD, "{r:?}");
    assert_eq!(&read_region(&a, 2000).await[..], &zeros()[..]);
    assert_eq!(&read_region(&a, 3000).await[..], &zeros()[..]);
    assert_eq!(&read_region(&a, 4000).await[..], &pattern(13, LEN)[..]);
    // No unit attention from ABORT TASK SET.
    assert_eq!(tur_status(&a).await, (status::GOOD, None));
    assert_eq!(tur_status(&b).await, (status::GOOD, None));
}

#[tokio::test]
async fn clear_task_set_of_own_tasks() {
    let d = Daemon::start();
    let a = held_session(&d, "cts-a").await;
    let b = held_session(&d, "cts-b").await;
    let a1 = held_write(&a, 5000, 21).await;
    let a2 = held_write(&a, 6000, 22).await;
    let a_ = a.clone();
    let r = multi_task_tmf(&a, &[&a1, &a2], async move { a_.clear_task_set(0).await }).await;
    assert_eq!(r, tmf_response::FUNCTION_COMPLETE);
    assert_aborted("a1", a1).await;
    assert_aborted("a2", a2).await;
    assert_eq!(&read_region(&b, 5000).await[..], &zeros()[..]);
    assert_eq!(&read_region(&b, 6000).await[..], &zeros()[..]);
    // B had no tasks, and TAS=1 (the default) means no 2F/00 unit attention anyway.
    assert_eq!(tur_status(&b).await, (status::GOOD, None));
    assert_eq!(tur_status(&a).await, (status::GOOD, None));
}

/// A TMF of another session that clears the whole task set (CLEAR TASK SET, LUN RESET) ends
/// this session's held write too; with TAS=1 (emulate_tas default) it completes with
/// status TASK ABORTED once its data is in, and nothing is written (SAM-5 §7.4, §7.7).
async fn third_party_write_is_aborted(who: &str, clear: bool) {
    let d = Daemon::start();
    let a = held_session(&d, &format!("{who}-a")).await;
    let b = held_session(&d, &format!("{who}-b")).await;
    let b1 = held_write(&b, 7000, 31).await;
    let a2 = a.clone();
    let tmf = tokio::spawn(async move {
        if clear {
            a2.clear_task_set(0).await
        } else {
            a2.lun_reset(0).await
        }
    });
    // A NOP after the TMF on A's connection: once answered, the target has the TMF.
    guard("ping after TMF", a.ping(Vec::new())).await.unwrap();
    b.release_data(b1.itt).unwrap();
    let r = guard("TMF", tmf).await.unwrap().unwrap();
    assert_eq!(r, tmf_response::FUNCTION_COMPLETE);
    let r = guard("third-party write", b1.wait()).await.unwrap();
    assert_eq!(
        r.status,
        status::TASK_ABORTED,
        "the other session's write: {r:?}"
    );
    clear_ua(&a, 0).await;
    assert_eq!(&read_region(&a, 7000).await[..], &zeros()[..]);
}

#[tokio::test]
async fn clear_task_set_aborts_other_sessions_held_write() {
    third_party_write_is_aborted("ctsx", true).await;
}

#[tokio::test]
async fn lun_reset_aborts_other_sessions_held_write() {
    third_party_write_is_aborted("lurx", false).await;
}

/// LUN RESET: own held tasks end, and the other session sees UNIT ATTENTION 29/03 (BUS
/// DEVICE RESET FUNCTION OCCURRED) on its next command, once.
#[tokio::test]
async fn lun_reset_then_unit_attention_on_the_other_session() {
    let d = Daemon::start();
    let a = held_session(&d, "lur-a").await;
    let b = held_session(&d, "lur-b").await;
    let a1 = held_write(&a, 8000, 41).await;
    let a_ = a.clone();
    let r = multi_task_tmf(&a, &[&a1], async move { a_.lun_reset(0).await }).await;
    assert_eq!(r, tmf_response::FUNCTION_COMPLETE);
    assert_aborted("a1", a1).await;
    assert_eq!(
        tur_status(&b).await,
        (status::CHECK_CONDITION, Some((0x06, 0x29, 0x03)))
    );
    assert_eq!(tur_status(&b).await, (status::GOOD, None));
    // The requester: a unit attention, if any, is the same one.
    match tur_status(&a).await {
        (status::GOOD, None) => {}
        other => {
            assert_eq!(other, (status::CHECK_CONDITION, Some((0x06, 0x29, 0x03))));
            assert_eq!(tur_status(&a).await, (status::GOOD, None));
        }
    }
    assert_eq!(&read_region(&b, 8000).await[..], &zeros()[..]);
    // A LUN that does not exist.
    let r = guard("LUN RESET lun 9", a.lun_reset(9)).await.unwrap();
    assert_eq!(r, tmf_response::LUN_DOES_NOT_EXIST);
}

/// TARGET WARM RESET: held tasks end, every nexus gets a 29h unit attention, sessions stay.
#[tokio::test]
async fn target_warm_reset() {
    let d = Daemon::start();
    let a = held_session(&d, "twr-a").await;
    let b = held_session(&d, "twr-b").await;
    let a1 = held_write(&a, 9000, 51).await;
    let a_ = a.clone();
    let r = multi_task_tmf(&a, &[&a1], async move { a_.target_warm_reset().await }).await;
    assert_eq!(r, tmf_response::FUNCTION_COMPLETE);
    assert_aborted("a1", a1).await;
    for s in [&b, &a] {
        let (st, sense) = tur_status(s).await;
        assert_eq!(st, status::CHECK_CONDITION);
        let (key, asc, _) = sense.unwrap();
        assert_eq!((key, asc), (0x06, 0x29), "{sense:?}");
        clear_ua(s, 0).await;
    }
    assert!(a.closed().is_none() && b.closed().is_none());
    assert_eq!(&read_region(&a, 9000).await[..], &zeros()[..]);
}

async fn wait_closed(s: &Session, what: &str) {
    loop {
        match guard(what, s.next_event()).await {
            Some(Event::Closed(_)) | None => return,
            Some(_) => {}
        }
    }
}

/// TARGET COLD RESET: FUNCTION COMPLETE, then the target closes all its connections to all
/// initiators (RFC 7143 §11.5.1); logging in again works.
#[tokio::test]
async fn target_cold_reset() {
    let d = Daemon::start();
    let a = held_session(&d, "tcr-a").await;
    let b = held_session(&d, "tcr-b").await;
    let r = guard("TARGET COLD RESET", a.target_cold_reset())
        .await
        .unwrap();
    assert_eq!(r, tmf_response::FUNCTION_COMPLETE);
    wait_closed(&a, "close of the requester's connection").await;
    wait_closed(&b, "close of the other session's connection").await;
    let c = login(&d, normal("tcr-a")).await;
    assert_eq!(tur_status(&c).await, (status::GOOD, None));
}
