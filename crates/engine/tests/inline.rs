//! Which received commands a transport may run on its own task (`Received::runs_at_once`): a
//! READ or WRITE of at most `INLINE_MAX_BYTES` on a LU whose backstore never blocks, that its
//! task set lets run at once (SAM-5 §8: no older ORDERED task; no TMF since it arrived).
//! Everything else must go to a thread that may block.

mod common;

use common::*;
use ironlun_engine::*;

fn memory_rig() -> Rig {
    rig_with(Mem::nonblocking(BS * BLOCKS))
}

fn received(n: &Nexus, cdb: &[u8], tag: u64, attr: TaskAttr) -> Received {
    n.receive(0, &cdb16(cdb), tag, attr).expect("received")
}

#[test]
fn small_reads_and_writes_on_memory_run_at_once() {
    let r = memory_rig();
    let read = read10(0, 8);
    let rx = received(&r.a, &read, 1, TaskAttr::Simple);
    assert!(rx.runs_at_once(&cdb16(&read), 4096));
    let write = write10(0, 8, 0);
    let wx = received(&r.a, &write, 2, TaskAttr::Simple);
    assert!(wx.runs_at_once(&cdb16(&write), 4096));
    // Larger than the limit, or not a READ / WRITE: to a thread.
    assert!(!rx.runs_at_once(&cdb16(&read), INLINE_MAX_BYTES + 512));
    let tur = received(&r.a, &[0u8; 6], 3, TaskAttr::Simple);
    assert!(!tur.runs_at_once(&cdb16(&[0u8; 6]), 0));
}

#[test]
fn a_backstore_that_may_block_never_runs_at_once() {
    let r = rig();
    let read = read10(0, 8);
    let rx = received(&r.a, &read, 1, TaskAttr::Simple);
    assert!(!rx.runs_at_once(&cdb16(&read), 4096));
}

#[test]
fn a_task_behind_an_ordered_one_or_after_a_tmf_waits_for_a_thread() {
    let r = memory_rig();
    let read = read10(0, 8);
    // An older ORDERED task still in the set: a SIMPLE one may not start yet (SAM-5 §8.6).
    let ordered = received(&r.b, &[0u8; 6], 1, TaskAttr::Ordered);
    let rx = received(&r.a, &read, 2, TaskAttr::Simple);
    assert!(!rx.runs_at_once(&cdb16(&read), 4096));
    drop(ordered);
    // Received when it could run, then a TMF marked tasks (another LU task set): the slow path.
    let rx = received(&r.a, &read, 3, TaskAttr::Simple);
    assert!(rx.runs_at_once(&cdb16(&read), 4096));
    let other = received(&r.b, &read, 4, TaskAttr::Simple);
    let tmf = r.b.begin_task_management(0, TmfKind::AbortTask { tag: 4 });
    // The transport ends the aborted task it holds; then the TMF completes (SAM-5 §7.1).
    drop(other);
    assert_eq!(tmf.wait(), TmfResponse::FunctionComplete);
    assert!(!rx.runs_at_once(&cdb16(&read), 4096));
}
