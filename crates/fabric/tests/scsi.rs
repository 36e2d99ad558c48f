//! SCSI commands through the fabric into the engine: Data-In segmentation and status,
//! immediate / unsolicited / R2T-solicited Data-Out, residuals, sense, task management
//! (RFC 7143 §11.3-§11.8, §11.5).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use ironlun_iscsi::pdu::{tmf_function, tmf_response, ScsiCommand};
use ironlun_iscsi::{Bhs, DataOut, Pdu, RESERVED_TAG};

#[derive(Default, Debug)]
struct Outcome {
    status: u8,
    data: Vec<u8>,
    sense: Vec<u8>,
    underflow: bool,
    overflow: bool,
    residual: u32,
    data_ins: usize,
    r2ts: Vec<(u32, u32)>,
    status_in_data_in: bool,
}

/// Run one command: `write` goes out as immediate data (up to `immediate`), unsolicited
/// Data-Out (up to `unsolicited`) and then in answer to R2Ts.
async fn exec(
    c: &mut Client,
    cdb: &[u8],
    read_len: u32,
    write: &[u8],
    immediate: usize,
    unsolicited: usize,
) -> Outcome {
    let itt = c.next_itt();
    let mut cdb16 = [0u8; 16];
    cdb16[..cdb.len()].copy_from_slice(cdb);
    let imm = immediate.min(write.len());
    let unsol_end = unsolicited.min(write.len()).max(imm);
    let cmd = ScsiCommand {
        immediate: false,
        final_: unsol_end == imm,
        read: read_len > 0,
        write: !write.is_empty(),
        attr: 1,
        lun: [0; 8],
        itt,
        expected_data_length: if write.is_empty() {
            read_len
        } else {
            write.len() as u32
        },
        cmd_sn: c.cmd_sn,
        exp_stat_sn: c.exp_stat_sn,
        cdb: cdb16,
    };
    c.cmd_sn = c.cmd_sn.wrapping_add(1);
    c.send(&Pdu::with_data(
        Bhs::ScsiCommand(cmd),
        Bytes::copy_from_slice(&write[..imm]),
    ))
    .await;
    // Unsolicited Data-Out in 512-byte PDUs.
    let mut off = imm;
    let mut sn = 0;
    while off < unsol_end {
        let end = (off + 512).min(unsol_end);
        let d = DataOut {
            final_: end == unsol_end,
            lun: [0; 8],
            itt,
            ttt: RESERVED_TAG,
            exp_stat_sn: c.exp_stat_sn,
            data_sn: sn,
            buffer_offset: off as u32,
        };
        c.send(&Pdu::with_data(
            Bhs::DataOut(d),
            Bytes::copy_from_slice(&write[off..end]),
        ))
        .await;
        sn += 1;
        off = end;
    }
    let mut out = Outcome::default();
    loop {
        let p = c.recv().await.expect("response");
        match p.bhs {
            Bhs::R2t(r) => {
                assert_eq!(r.itt, itt);
                out.r2ts.push((r.buffer_offset, r.desired_length));
                let mut o = r.buffer_offset as usize;
                let end = o + r.desired_length as usize;
                let mut dsn = 0;
                while o < end {
                    let e = (o + 4096).min(end);
                    let d = DataOut {
                        final_: e == end,
                        lun: r.lun,
                        itt,
                        ttt: r.ttt,
                        exp_stat_sn: c.exp_stat_sn,
                        data_sn: dsn,
                        buffer_offset: o as u32,
                    };
                    c.send(&Pdu::with_data(
                        Bhs::DataOut(d),
                        Bytes::copy_from_slice(&write[o..e]),
                    ))
                    .await;
                    dsn += 1;
                    o = e;
                }
            }
            Bhs::DataIn(d) => {
                assert_eq!(d.itt, itt);
                assert_eq!(d.data_sn as usize, out.data_ins, "DataSN in order");
                assert_eq!(d.buffer_offset as usize, out.data.len(), "offsets in order");
                out.data_ins += 1;
                out.data.extend_from_slice(&p.data);
                if let Some(s) = d.status {
                    c.exp_stat_sn = d.stat_sn.wrapping_add(1);
                    out.status = s;
                    out.underflow = d.underflow;
                    out.overflow = d.overflow;
                    out.residual = d.residual;
                    out.status_in_data_in = true;
                    return out;
                }
            }
            Bhs::ScsiResponse(r) => {
                assert_eq!(r.itt, itt);
                assert_eq!(r.exp_data_sn as usize, out.data_ins);
                c.exp_stat_sn = r.stat_sn.wrapping_add(1);
                out.status = r.status;
                out.underflow = r.underflow;
                out.overflow = r.overflow;
                out.residual = r.residual;
                if p.data.len() >= 2 {
                    let n = u16::from_be_bytes([p.data[0], p.data[1]]) as usize;
                    out.sense = p.data[2..2 + n].to_vec();
                }
                return out;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Consume the power-on unit attention of a new nexus (SAM-5 §5.14).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn inquiry_comes_back_in_data_in_with_status() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[]).await;
    let o = exec(&mut c, &[0x12, 0, 0, 0, 96, 0], 96, &[], 0, 0).await;
    assert_eq!(o.status, 0);
    assert!(o.status_in_data_in);
    assert_eq!(&o.data[8..16], b"LIO-ORG ");
    // Allocation length 36 with EDTL 96: an underflow residual.
    let o = exec(&mut c, &[0x12, 0, 0, 0, 36, 0], 96, &[], 0, 0).await;
    assert_eq!(o.data.len(), 36);
    assert!(o.underflow);
    assert_eq!(o.residual, 60);
}

#[tokio::test]
async fn write_then_read_through_r2t_with_several_outstanding() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_normal(
        TARGET,
        &[
            ("InitialR2T", "Yes"),
            ("ImmediateData", "No"),
            ("MaxBurstLength", "8192"),
            ("MaxOutstandingR2T", "4"),
            ("MaxRecvDataSegmentLength", "4096"),
        ],
    )
    .await;
    c.clear_ua().await;
    let data = pattern(64 * 1024, 7);
    let o = exec(&mut c, &write10(8, 128), 0, &data, 0, 0).await;
    assert_eq!(o.status, 0, "sense {:?}", o.sense);
    assert_eq!(o.r2ts.len(), 8, "64 KiB in 8 KiB bursts");
    let mut offs: Vec<u32> = o.r2ts.iter().map(|r| r.0).collect();
    offs.sort();
    assert_eq!(offs, (0..8).map(|i| i * 8192).collect::<Vec<u32>>());
    let o = exec(&mut c, &read10(8, 128), 64 * 1024, &[], 0, 0).await;
    assert_eq!(o.status, 0);
    assert_eq!(o.data, data);
    assert_eq!(
        o.data_ins, 16,
        "Data-In segmented by our MaxRecvDataSegmentLength"
    );
}

#[tokio::test]
async fn immediate_and_unsolicited_data_then_r2t_for_the_rest() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_normal(
        TARGET,
        &[
            ("InitialR2T", "No"),
            ("ImmediateData", "Yes"),
            ("FirstBurstLength", "8192"),
        ],
    )
    .await;
    c.clear_ua().await;
    let data = pattern(16 * 1024, 3);
    // 2 KiB immediate, unsolicited up to 8 KiB, the last 8 KiB by R2T.
    let o = exec(&mut c, &write10(100, 32), 0, &data, 2048, 8192).await;
    assert_eq!(o.status, 0, "sense {:?}", o.sense);
    assert_eq!(o.r2ts, vec![(8192, 8192)]);
    let o = exec(&mut c, &read10(100, 32), 16 * 1024, &[], 0, 0).await;
    assert_eq!(o.data, data);
    // All immediate: no R2T at all.
    let small = pattern(4096, 9);
    let o = exec(&mut c, &write10(200, 8), 0, &small, 4096, 0).await;
    assert_eq!(o.status, 0);
    assert!(o.r2ts.is_empty());
    let o = exec(&mut c, &read10(200, 8), 4096, &[], 0, 0).await;
    assert_eq!(o.data, small);
}

#[tokio::test]
async fn check_condition_comes_in_a_scsi_response_with_sense() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[]).await;
    // Unsupported opcode: ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE.
    let o = exec(&mut c, &[0xff, 0, 0, 0, 0, 0], 0, &[], 0, 0).await;
    assert_eq!(o.status, 0x02);
    assert!(!o.status_in_data_in);
    assert!(!o.sense.is_empty());
    // Reads beyond the end of the LU.
    let o = exec(&mut c, &read10(0x00ff_ffff, 1), 512, &[], 0, 0).await;
    assert_eq!(o.status, 0x02);
}

async fn tmf(c: &mut Client, function: u8, ref_tag: u32, ref_cmd_sn: u32) -> u8 {
    let itt = c.send_tmf(function, ref_tag, ref_cmd_sn).await;
    loop {
        let p = c.recv().await.expect("tmf response");
        if let Bhs::TaskMgmtResponse(r) = p.bhs {
            assert_eq!(r.itt, itt);
            c.exp_stat_sn = r.stat_sn.wrapping_add(1);
            return r.response;
        }
    }
}

#[tokio::test]
async fn abort_task_waiting_for_data_and_other_tmfs() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[("InitialR2T", "Yes"), ("ImmediateData", "No")])
        .await;
    // A write that will wait for its R2T data forever.
    let sn = c.cmd_sn;
    let itt = c.command(&write10(0, 1), 0, 512).await;
    let p = c.recv().await.expect("r2t");
    assert!(matches!(p.bhs, Bhs::R2t(_)));
    assert_eq!(
        tmf(&mut c, tmf_function::ABORT_TASK, itt, sn).await,
        tmf_response::FUNCTION_COMPLETE
    );
    // Already gone (RefCmdSN below ExpCmdSN): task does not exist.
    assert_eq!(
        tmf(&mut c, tmf_function::ABORT_TASK, itt, sn).await,
        tmf_response::TASK_DOES_NOT_EXIST
    );
    // RefCmdSN in the window but not yet received: function complete, and the slot is used.
    let ahead = c.cmd_sn;
    c.cmd_sn += 1;
    assert_eq!(
        tmf(&mut c, tmf_function::ABORT_TASK, 0x5555, ahead).await,
        tmf_response::FUNCTION_COMPLETE
    );
    assert_eq!(
        tmf(&mut c, tmf_function::TASK_REASSIGN, itt, sn).await,
        tmf_response::REASSIGNMENT_NOT_SUPPORTED
    );
    assert_eq!(tmf(&mut c, 0x55, 0, 0).await, tmf_response::REJECTED);
    assert_eq!(
        tmf(&mut c, tmf_function::LOGICAL_UNIT_RESET, 0, 0).await,
        tmf_response::FUNCTION_COMPLETE
    );
    // Commands still flow after all that (the window moved past the aborted slot).
    let o = exec(&mut c, &[0, 0, 0, 0, 0, 0], 0, &[], 0, 0).await;
    // TEST UNIT READY after a LUN reset reports the reset unit attention first.
    assert!(o.status == 0 || o.status == 0x02);
}

#[tokio::test]
async fn data_out_with_bad_offset_or_datasn_is_rejected() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[("InitialR2T", "Yes"), ("ImmediateData", "No")])
        .await;
    c.clear_ua().await;
    let itt = c.command(&write10(0, 2), 0, 1024).await;
    let Some(Pdu {
        bhs: Bhs::R2t(r), ..
    }) = c.recv().await
    else {
        panic!("no R2T")
    };
    let mk = |off: u32, dsn: u32| DataOut {
        final_: false,
        lun: [0; 8],
        itt,
        ttt: r.ttt,
        exp_stat_sn: 0,
        data_sn: dsn,
        buffer_offset: off,
    };
    c.send(&Pdu::with_data(Bhs::DataOut(mk(4096, 0)), vec![0u8; 512]))
        .await;
    let Some(Pdu {
        bhs: Bhs::Reject(j),
        ..
    }) = c.recv().await
    else {
        panic!("no reject")
    };
    assert_eq!(
        j.reason,
        ironlun_iscsi::pdu::reject_reason::INVALID_PDU_FIELD
    );
    c.send(&Pdu::with_data(Bhs::DataOut(mk(0, 27)), vec![0u8; 512]))
        .await;
    let Some(Pdu {
        bhs: Bhs::Reject(j),
        ..
    }) = c.recv().await
    else {
        panic!("no reject")
    };
    assert_eq!(j.reason, ironlun_iscsi::pdu::reject_reason::PROTOCOL_ERROR);
    // Correct data completes the command.
    let mut d = mk(0, 0);
    d.final_ = false;
    c.send(&Pdu::with_data(Bhs::DataOut(d), vec![1u8; 512]))
        .await;
    let mut d = mk(512, 1);
    d.final_ = true;
    c.send(&Pdu::with_data(Bhs::DataOut(d), vec![2u8; 512]))
        .await;
    let Some(Pdu {
        bhs: Bhs::ScsiResponse(s),
        ..
    }) = c.recv().await
    else {
        panic!("no response")
    };
    assert_eq!(s.status, 0);
}

#[tokio::test]
async fn huge_write_is_refused_without_buffering() {
    let (_f, addr) = fabric().await;
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[]).await;
    c.clear_ua().await;
    let itt = c.command(&write10(0, 0xffff), 0, 0xffff_0000).await;
    let Some(Pdu {
        bhs: Bhs::ScsiResponse(r),
        data,
        ..
    }) = c.recv().await
    else {
        panic!("no response")
    };
    assert_eq!(r.itt, itt);
    assert_eq!(r.status, 0x02);
    assert_eq!(data[2 + 2] & 0x0f, 0x05, "ILLEGAL REQUEST");
    // The session goes on.
    let o = exec(&mut c, &[0, 0, 0, 0, 0, 0], 0, &[], 0, 0).await;
    assert_eq!(o.status, 0);
}

#[tokio::test]
async fn target_cold_reset_closes_every_session_of_the_target() {
    let (_f, addr) = fabric().await;
    let mut a = Client::connect(addr).await;
    a.login_normal(TARGET, &[]).await;
    let mut b = Client::connect(addr).await;
    b.isid = [0x80, 0, 0, 0, 0, 2];
    b.login_normal(TARGET, &[]).await;
    b.clear_ua().await;

    assert_eq!(
        tmf(&mut a, tmf_function::TARGET_COLD_RESET, 0, 0).await,
        tmf_response::FUNCTION_COMPLETE
    );
    // RFC 7143 §11.5.1: a cold reset is a power-on event; the target closes all of its TCP
    // connections to all initiators, not only the requester's.
    assert!(
        a.closed_within(Duration::from_secs(5)).await,
        "requester still connected"
    );
    assert!(
        b.closed_within(Duration::from_secs(5)).await,
        "other initiator still connected"
    );

    // The target is still there: a new login works and reports the power-on UA.
    let mut c = Client::connect(addr).await;
    c.login_normal(TARGET, &[]).await;
    let o = exec(&mut c, &[0, 0, 0, 0, 0, 0], 0, &[], 0, 0).await;
    assert_eq!(
        o.status, 2,
        "TEST UNIT READY after the reset reports a unit attention"
    );
}
