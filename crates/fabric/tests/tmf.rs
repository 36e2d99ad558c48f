//! Task management across sessions (RFC 7143 §4.2.3.3, §11.5; SAM-5 §5.6, §7): a TMF that
//! clears a whole task set reaches the tasks other sessions still hold in the fabric (a write
//! collecting its R2T-solicited Data-Out), ends them per the LU's TAS bit, and answers only
//! after they ended; their late Data-Out is dropped without disturbing the session.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use ironlun_backstore::RamDisk;
use ironlun_engine::{Device, DeviceConfig, TargetPort};
use ironlun_iscsi::pdu::{tmf_function, tmf_response};
use ironlun_iscsi::{Bhs, DataOut, Pdu, R2t, RESERVED_TAG};

const HELD: [(&str, &str); 2] = [("InitialR2T", "Yes"), ("ImmediateData", "No")];
const LEN: u32 = 8192;
const LBA: u32 = 100;

async fn session(addr: std::net::SocketAddr, isid: u8) -> Client {
    let mut c = Client::connect(addr).await;
    c.isid = [0x80, 0, 0, 0, 0, isid];
    c.login_normal(TARGET, &HELD).await;
    c
}

/// Start a WRITE(10) of `LEN` bytes and wait for its R2T: the fabric now holds the task.
async fn held_write(c: &mut Client) -> (u32, R2t) {
    let itt = c.command(&write10(LBA, (LEN / 512) as u16), 0, LEN).await;
    let p = c.recv().await.expect("R2T");
    let Bhs::R2t(r) = p.bhs else {
        panic!("expected an R2T, got {:?}", p.bhs)
    };
    assert_eq!((r.itt, r.buffer_offset, r.desired_length), (itt, 0, LEN));
    (itt, r)
}

/// Answer an R2T in two Data-Out PDUs.
async fn answer(c: &mut Client, r: &R2t) {
    let half = r.desired_length / 2;
    for (i, off) in [0, half].into_iter().enumerate() {
        let d = DataOut {
            final_: i == 1,
            lun: r.lun,
            itt: r.itt,
            ttt: r.ttt,
            exp_stat_sn: c.exp_stat_sn,
            data_sn: i as u32,
            buffer_offset: r.buffer_offset + off,
        };
        c.send(&Pdu::with_data(
            Bhs::DataOut(d),
            vec![0xA5u8; half as usize],
        ))
        .await;
    }
}

async fn tmf_response(c: &mut Client, itt: u32) -> u8 {
    let p = c.recv().await.expect("TMF response");
    let Bhs::TaskMgmtResponse(r) = p.bhs else {
        panic!("expected the TMF response, got {:?}", p.bhs)
    };
    assert_eq!(r.itt, itt);
    c.exp_stat_sn = r.stat_sn.wrapping_add(1);
    r.response
}

/// A NOP-Out whose NOP-In must be the very next PDU (nothing else pending on `c`).
async fn nop_is_next(c: &mut Client, what: &str) {
    let p = c.nop(b"x").await;
    assert!(
        matches!(p.bhs, Bhs::NopIn(_)),
        "{what}: expected only the NOP-In, got {:?}",
        p.bhs
    );
}

async fn region(c: &mut Client) -> Vec<u8> {
    let itt = c.command(&read10(LBA, (LEN / 512) as u16), LEN, 0).await;
    let (s, _, data) = c.response(itt).await;
    assert_eq!(s, 0, "READ(10)");
    data
}

fn sense_key_asc(sense: &[u8]) -> (u8, u8, u8) {
    (
        sense.get(2).map_or(0, |k| k & 0x0f),
        sense.get(12).copied().unwrap_or(0),
        sense.get(13).copied().unwrap_or(0),
    )
}

/// B holds a write waiting for Data-Out; A's `function` clears the task set. A's NOP after
/// the TMF proves the target has it; B then answers its R2T (as RFC 7143 §4.2.3.3 has an
/// initiator do); A's TMF response comes only after that. Returns A, B and B's write's ITT.
async fn third_party_write(addr: std::net::SocketAddr, function: u8) -> (Client, Client, u32) {
    let mut a = session(addr, 1).await;
    let mut b = session(addr, 2).await;
    a.clear_ua().await;
    b.clear_ua().await;
    let (itt, r2t) = held_write(&mut b).await;
    let tmf = a.send_tmf(function, RESERVED_TAG, 0).await;
    // The TMF is not answered while B's affected write still has its R2T outstanding.
    nop_is_next(&mut a, "A before B's data").await;
    answer(&mut b, &r2t).await;
    assert_eq!(
        tmf_response(&mut a, tmf).await,
        tmf_response::FUNCTION_COMPLETE
    );
    // Data-Out after the task ended (a duplicate burst) is dropped: no Reject, session goes on.
    answer(&mut b, &r2t).await;
    (a, b, itt)
}

#[tokio::test]
async fn clear_task_set_aborts_another_sessions_collecting_write_with_task_aborted() {
    let (_f, addr) = fabric().await;
    let (mut a, mut b, itt) = third_party_write(addr, tmf_function::CLEAR_TASK_SET).await;
    // TAS=1 (the default): status TASK ABORTED, before the TMF's response went out.
    let (status, sense, _) = b.response(itt).await;
    assert_eq!((status, sense.is_empty()), (0x40, true));
    nop_is_next(&mut b, "B after its late Data-Out").await;
    // Nothing of the aborted write reached the medium; no unit attention with TAS=1.
    assert!(region(&mut a).await.iter().all(|&x| x == 0));
    assert_eq!(b.tur().await.0, 0);
    assert_eq!(a.tur().await.0, 0);
    // B's session still writes.
    let (itt, r2t) = held_write(&mut b).await;
    answer(&mut b, &r2t).await;
    assert_eq!(b.response(itt).await.0, 0);
    assert!(region(&mut a).await.iter().all(|&x| x == 0xA5));
}

#[tokio::test]
async fn lun_reset_aborts_another_sessions_collecting_write_with_task_aborted() {
    let (_f, addr) = fabric().await;
    let (mut a, mut b, itt) = third_party_write(addr, tmf_function::LOGICAL_UNIT_RESET).await;
    assert_eq!(b.response(itt).await.0, 0x40);
    nop_is_next(&mut b, "B after its late Data-Out").await;
    // The reset's unit attention, not a write that ran after it.
    let (s, sense) = b.tur().await;
    assert_eq!((s, sense_key_asc(&sense)), (0x02, (0x06, 0x29, 0x03)));
    a.clear_ua().await;
    assert!(region(&mut a).await.iter().all(|&x| x == 0));
}

/// A target whose LU has emulate_tas=0.
fn port_without_tas() -> Arc<TargetPort> {
    let p = TargetPort::new(TARGET, 1, 1);
    let dev = Device::new(
        DeviceConfig {
            name: "rd0".into(),
            unit_serial: "serialnotas".into(),
            vendor_id: "LIO-ORG".into(),
            product_id: "ramdisk".into(),
            revision: "4.0".into(),
            block_size: 512,
        },
        Arc::new(RamDisk::new(16 << 20).unwrap()),
    )
    .unwrap();
    dev.set_attribute("emulate_tas", "0").unwrap();
    p.add_lun(0, dev).unwrap();
    p.set_demo_mode(true, false);
    p.set_enabled(true);
    p
}

#[tokio::test]
async fn clear_task_set_without_tas_ends_the_other_write_silently_with_a_unit_attention() {
    let (_f, addr) = fabric_with(Default::default(), |g| g.port = port_without_tas()).await;
    let (mut a, mut b, _) = third_party_write(addr, tmf_function::CLEAR_TASK_SET).await;
    // TAS=0: no response for the write at all (SAM-5 §5.6) …
    nop_is_next(&mut b, "B after its aborted write").await;
    // … but COMMANDS CLEARED BY ANOTHER INITIATOR on its next command (SAM-5 §7.4).
    let (s, sense) = b.tur().await;
    assert_eq!((s, sense_key_asc(&sense)), (0x02, (0x06, 0x2F, 0x00)));
    assert_eq!(b.tur().await.0, 0);
    // The requester gets none.
    assert_eq!(a.tur().await.0, 0);
    assert!(region(&mut a).await.iter().all(|&x| x == 0));
}

/// The issuing session's own write: the target waits for the Data-Out of the R2T it already
/// sent (RFC 7143 §4.2.3.3 a), ends the write silently, then answers the TMF.
#[tokio::test]
async fn abort_task_set_waits_for_own_outstanding_r2t_then_ends_the_write_silently() {
    let (_f, addr) = fabric().await;
    let mut a = session(addr, 1).await;
    a.clear_ua().await;
    let (_, r2t) = held_write(&mut a).await;
    let tmf = a
        .send_tmf(tmf_function::ABORT_TASK_SET, RESERVED_TAG, 0)
        .await;
    nop_is_next(&mut a, "before the data").await;
    answer(&mut a, &r2t).await;
    // No SCSI Response for the write: the TMF response is next.
    assert_eq!(
        tmf_response(&mut a, tmf).await,
        tmf_response::FUNCTION_COMPLETE
    );
    answer(&mut a, &r2t).await;
    nop_is_next(&mut a, "after late Data-Out").await;
    assert!(region(&mut a).await.iter().all(|&x| x == 0));
    // A command sent after a TMF is not affected by it.
    let tmf = a
        .send_tmf(tmf_function::CLEAR_TASK_SET, RESERVED_TAG, 0)
        .await;
    assert_eq!(
        tmf_response(&mut a, tmf).await,
        tmf_response::FUNCTION_COMPLETE
    );
    let (itt, r2t) = held_write(&mut a).await;
    answer(&mut a, &r2t).await;
    assert_eq!(a.response(itt).await.0, 0);
}
