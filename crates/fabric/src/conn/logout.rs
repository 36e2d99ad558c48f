//! Logout (RFC 7143 §11.14, §11.15) at ErrorRecoveryLevel 0: closing the session or a
//! connection (this one or another of the session, by CID); removal for recovery is not
//! supported. Also the Asynchronous Message asking the initiator to log out (§11.9.1 event 1).

use std::sync::Arc;

use ironlun_iscsi::pdu::{self, async_event, logout, reject_reason, AsyncMessage};
use ironlun_iscsi::{Bhs, Pdu, BHS_LEN};
use tracing::info;

use super::wire::{Sn, Wire};
use super::Conn;

/// Ask the initiator to log out (shutdown).
pub(super) fn request_logout(wire: &Wire) {
    wire.send(
        Pdu::new(Bhs::AsyncMessage(AsyncMessage {
            lun: [0; 8],
            stat_sn: 0,
            exp_cmd_sn: 0,
            max_cmd_sn: 0,
            event: async_event::LOGOUT_REQUEST,
            vcode: 0,
            param1: 0,
            param2: 0,
            param3: 0,
        })),
        Sn::Advance,
    );
}

pub(super) fn logout_request(conn: &Arc<Conn>, l: pdu::LogoutRequest) {
    if !l.immediate {
        conn.session.finish_one();
    }
    let params = &conn.session.params;
    let respond = |code: u8| {
        conn.wire.send(
            Pdu::new(Bhs::LogoutResponse(pdu::LogoutResponse {
                response: code,
                itt: l.itt,
                stat_sn: 0,
                exp_cmd_sn: 0,
                max_cmd_sn: 0,
                time2wait: if code == logout::RESP_SUCCESS {
                    params.default_time2wait.min(3600) as u16
                } else {
                    0
                },
                time2retain: 0,
            })),
            Sn::Advance,
        );
    };
    info!(
        initiator = %conn.session.initiator,
        tsih = conn.session.tsih,
        reason = l.reason,
        "logout"
    );
    match l.reason {
        logout::CLOSE_SESSION => {
            respond(logout::RESP_SUCCESS);
            conn.wire.close_after_queued();
            conn.shared.registry.remove(&conn.session);
            conn.session.stop_others(conn.cid);
        }
        logout::CLOSE_CONNECTION => {
            if l.cid == conn.cid {
                respond(logout::RESP_SUCCESS);
                conn.wire.close_after_queued();
            } else if conn.session.stop_conn(l.cid) {
                respond(logout::RESP_SUCCESS);
            } else {
                respond(logout::RESP_CID_NOT_FOUND);
            }
        }
        // ERL 0: no connection recovery (§11.15.1).
        logout::REMOVE_CONNECTION_FOR_RECOVERY => respond(logout::RESP_RECOVERY_NOT_SUPPORTED),
        _ => {
            let mut h = [0u8; BHS_LEN];
            Bhs::LogoutRequest(l.clone()).encode(&mut h);
            conn.wire.reject(reject_reason::INVALID_PDU_FIELD, &h);
        }
    }
}
