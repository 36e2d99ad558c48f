//! Reject (RFC 7143 §11.17) and its reason codes.

use super::{
    get32, get_target_sns, put32, put_target_sns, Layout, Raw, FINAL, FLAGS, ITT, RESERVED_TAG,
};

/// Reject reasons (§11.17.1).
pub mod reject_reason {
    pub const DATA_DIGEST_ERROR: u8 = 0x02;
    pub const SNACK_REJECT: u8 = 0x03;
    pub const PROTOCOL_ERROR: u8 = 0x04;
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x05;
    pub const IMMEDIATE_COMMAND_REJECT: u8 = 0x06;
    pub const TASK_IN_PROGRESS: u8 = 0x07;
    pub const INVALID_DATA_ACK: u8 = 0x08;
    pub const INVALID_PDU_FIELD: u8 = 0x09;
    pub const LONG_OPERATION_REJECT: u8 = 0x0a;
    pub const NEGOTIATION_RESET: u8 = 0x0b;
    pub const WAITING_FOR_LOGOUT: u8 = 0x0c;
}

/// Reject (§11.17). ITT is always 0xffffffff; the data segment is the rejected PDU's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// See [`reject_reason`].
    pub reason: u8,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub data_sn_r2t_sn: u32,
}

impl Reject {
    /// Reason (§11.17.1).
    const REASON: usize = 2;
    /// DataSN/R2TSN (§11.17.2).
    const DATA_SN_R2T_SN: usize = 36;
}

impl Layout for Reject {
    fn decode(b: &Raw) -> Self {
        let (stat_sn, exp_cmd_sn, max_cmd_sn) = get_target_sns(b);
        Reject {
            reason: b[Self::REASON],
            stat_sn,
            exp_cmd_sn,
            max_cmd_sn,
            data_sn_r2t_sn: get32(b, Self::DATA_SN_R2T_SN),
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[FLAGS] = FINAL;
        b[Self::REASON] = self.reason;
        put32(b, ITT, RESERVED_TAG);
        put_target_sns(b, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn);
        put32(b, Self::DATA_SN_R2T_SN, self.data_sn_r2t_sn);
    }
}
