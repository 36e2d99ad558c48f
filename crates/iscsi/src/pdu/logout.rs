//! Logout Request (RFC 7143 §11.14) and Logout Response (§11.15), with their reason codes
//! (§11.14.1) and response codes (§11.15.1) as this module's constants.

use super::{
    bit, flag, get16, get32, get_initiator_sns, get_target_sns, put16, put32, put_initiator_sns,
    put_target_sns, Layout, Raw, FINAL, FLAGS, IMMEDIATE, ITT, OPCODE,
};

pub const CLOSE_SESSION: u8 = 0;
pub const CLOSE_CONNECTION: u8 = 1;
pub const REMOVE_CONNECTION_FOR_RECOVERY: u8 = 2;

pub const RESP_SUCCESS: u8 = 0;
pub const RESP_CID_NOT_FOUND: u8 = 1;
pub const RESP_RECOVERY_NOT_SUPPORTED: u8 = 2;
pub const RESP_CLEANUP_FAILED: u8 = 3;

/// Logout Request (§11.14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutRequest {
    pub immediate: bool,
    /// Reason code (7 bits), see this module's constants.
    pub reason: u8,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl LogoutRequest {
    /// Reason code: the flags byte below the F bit (§11.14.1).
    const REASON_MASK: u8 = 0x7f;
    /// CID (§11.14.3).
    const CID: usize = 20;
}

impl Layout for LogoutRequest {
    fn decode(b: &Raw) -> Self {
        let (cmd_sn, exp_stat_sn) = get_initiator_sns(b);
        LogoutRequest {
            immediate: flag(b[OPCODE], IMMEDIATE),
            reason: b[FLAGS] & Self::REASON_MASK,
            itt: get32(b, ITT),
            cid: get16(b, Self::CID),
            cmd_sn,
            exp_stat_sn,
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[OPCODE] |= bit(self.immediate, IMMEDIATE);
        b[FLAGS] = FINAL | (self.reason & Self::REASON_MASK);
        put32(b, ITT, self.itt);
        put16(b, Self::CID, self.cid);
        put_initiator_sns(b, self.cmd_sn, self.exp_stat_sn);
    }
}

/// Logout Response (§11.15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutResponse {
    /// See this module's `RESP_*` constants.
    pub response: u8,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub time2wait: u16,
    pub time2retain: u16,
}

impl LogoutResponse {
    /// Response (§11.15.1).
    const RESPONSE: usize = 2;
    /// Time2Wait (§11.15.2).
    const TIME2WAIT: usize = 40;
    /// Time2Retain (§11.15.3).
    const TIME2RETAIN: usize = 42;
}

impl Layout for LogoutResponse {
    fn decode(b: &Raw) -> Self {
        let (stat_sn, exp_cmd_sn, max_cmd_sn) = get_target_sns(b);
        LogoutResponse {
            response: b[Self::RESPONSE],
            itt: get32(b, ITT),
            stat_sn,
            exp_cmd_sn,
            max_cmd_sn,
            time2wait: get16(b, Self::TIME2WAIT),
            time2retain: get16(b, Self::TIME2RETAIN),
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[FLAGS] = FINAL;
        b[Self::RESPONSE] = self.response;
        put32(b, ITT, self.itt);
        put_target_sns(b, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn);
        put16(b, Self::TIME2WAIT, self.time2wait);
        put16(b, Self::TIME2RETAIN, self.time2retain);
    }
}
