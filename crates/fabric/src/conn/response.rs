//! A command's outcome on the wire: Data-In PDUs of at most the initiator's
//! MaxRecvDataSegmentLength, never crossing a MaxBurstLength boundary, with the status in the
//! last one when there is no sense data (RFC 7143 §11.7, §11.7.4), otherwise a SCSI Response
//! carrying the sense data and residuals (§11.4).

use bytes::Bytes;
use ironlun_engine::{DataDirection, Residual, ScsiResponse as EngineResponse};
use ironlun_iscsi::pdu::{self, scsi_response};
use ironlun_iscsi::{Bhs, DataIn, Pdu, RESERVED_TAG};

use super::wire::Sn;
use super::Conn;

/// Turn an engine outcome into Data-In / SCSI Response PDUs.
pub(super) fn send_response(
    conn: &Conn,
    itt: u32,
    lun: [u8; 8],
    edtl: u32,
    dir: DataDirection,
    resp: EngineResponse,
) {
    if resp.suppressed {
        return;
    }
    let (over, under, residual) = match resp.residual {
        Residual::None => (false, false, 0),
        Residual::Overflow(n) => (true, false, n),
        Residual::Underflow(n) => (false, true, n),
    };
    let data_in = Bytes::from(resp.data_in);
    let reads = matches!(dir, DataDirection::Read | DataDirection::Bidirectional);
    let mut data_sn = 0u32;
    let total = if reads {
        data_in.len().min(edtl as usize)
    } else {
        0
    };
    if total > 0 {
        let seg = conn.wire.max_xmit();
        let burst = conn.session.params.max_burst_length.max(512) as usize;
        let status_in_data = resp.sense.is_empty();
        let mut off = 0usize;
        while off < total {
            // Segments never cross a burst boundary, so F marks each sequence's end.
            let burst_end = (off / burst + 1) * burst;
            let end = (off + seg).min(total).min(burst_end);
            let last = end == total;
            let with_status = last && status_in_data;
            let din = DataIn {
                final_: last || end == burst_end,
                ack: false,
                overflow: with_status && over,
                underflow: with_status && under,
                status: with_status.then_some(resp.status),
                lun,
                itt,
                ttt: RESERVED_TAG,
                stat_sn: 0,
                exp_cmd_sn: 0,
                max_cmd_sn: 0,
                data_sn,
                buffer_offset: off as u32,
                residual: if with_status { residual } else { 0 },
            };
            conn.wire.send(
                Pdu::with_data(Bhs::DataIn(din), data_in.slice(off..end)),
                if with_status { Sn::Advance } else { Sn::Keep },
            );
            data_sn = data_sn.wrapping_add(1);
            off = end;
        }
        if status_in_data {
            return;
        }
    }
    let mut seg = Vec::new();
    if !resp.sense.is_empty() {
        let n = resp.sense.len().min(0xffff);
        seg.extend_from_slice(&(n as u16).to_be_bytes());
        seg.extend_from_slice(&resp.sense[..n]);
    }
    let r = pdu::ScsiResponse {
        bidi_overflow: false,
        bidi_underflow: false,
        overflow: over,
        underflow: under,
        response: scsi_response::COMMAND_COMPLETED,
        status: resp.status,
        itt,
        snack_tag: 0,
        stat_sn: 0,
        exp_cmd_sn: 0,
        max_cmd_sn: 0,
        exp_data_sn: data_sn,
        bidi_residual: 0,
        residual,
    };
    conn.wire
        .send(Pdu::with_data(Bhs::ScsiResponse(r), seg), Sn::Advance);
}
