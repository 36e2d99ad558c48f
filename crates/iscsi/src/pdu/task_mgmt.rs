//! Task Management Function Request (RFC 7143 §11.5) and Response (§11.6), with their
//! function and response codes.

use super::{
    bit, flag, get32, get_bytes, get_initiator_sns, get_target_sns, put32, put_bytes,
    put_initiator_sns, put_target_sns, Layout, Raw, FINAL, FLAGS, IMMEDIATE, ITT, LUN, OPCODE,
};

/// Task management function codes (§11.5.1).
pub mod tmf_function {
    pub const ABORT_TASK: u8 = 1;
    pub const ABORT_TASK_SET: u8 = 2;
    pub const CLEAR_ACA: u8 = 3;
    pub const CLEAR_TASK_SET: u8 = 4;
    pub const LOGICAL_UNIT_RESET: u8 = 5;
    pub const TARGET_WARM_RESET: u8 = 6;
    pub const TARGET_COLD_RESET: u8 = 7;
    pub const TASK_REASSIGN: u8 = 8;
}

/// Task management response codes (§11.6.1).
pub mod tmf_response {
    pub const FUNCTION_COMPLETE: u8 = 0;
    pub const TASK_DOES_NOT_EXIST: u8 = 1;
    pub const LUN_DOES_NOT_EXIST: u8 = 2;
    pub const TASK_STILL_ALLEGIANT: u8 = 3;
    pub const REASSIGNMENT_NOT_SUPPORTED: u8 = 4;
    pub const NOT_SUPPORTED: u8 = 5;
    pub const AUTHORIZATION_FAILED: u8 = 6;
    pub const REJECTED: u8 = 255;
}

/// Task Management Function Request (§11.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskMgmtRequest {
    pub immediate: bool,
    /// Function code (7 bits), see [`tmf_function`].
    pub function: u8,
    pub lun: [u8; 8],
    pub itt: u32,
    pub referenced_task_tag: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub ref_cmd_sn: u32,
    pub exp_data_sn: u32,
}

impl TaskMgmtRequest {
    /// The function code: the flags byte below the F bit (§11.5.1).
    const FUNCTION_MASK: u8 = 0x7f;
    /// Referenced Task Tag (§11.5.2).
    const REFERENCED_TASK_TAG: usize = 20;
    /// RefCmdSN (§11.5.3).
    const REF_CMD_SN: usize = 32;
    /// ExpDataSN (§11.5.4).
    const EXP_DATA_SN: usize = 36;
}

impl Layout for TaskMgmtRequest {
    fn decode(b: &Raw) -> Self {
        let (cmd_sn, exp_stat_sn) = get_initiator_sns(b);
        TaskMgmtRequest {
            immediate: flag(b[OPCODE], IMMEDIATE),
            function: b[FLAGS] & Self::FUNCTION_MASK,
            lun: get_bytes(b, LUN),
            itt: get32(b, ITT),
            referenced_task_tag: get32(b, Self::REFERENCED_TASK_TAG),
            cmd_sn,
            exp_stat_sn,
            ref_cmd_sn: get32(b, Self::REF_CMD_SN),
            exp_data_sn: get32(b, Self::EXP_DATA_SN),
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[OPCODE] |= bit(self.immediate, IMMEDIATE);
        b[FLAGS] = FINAL | (self.function & Self::FUNCTION_MASK);
        put_bytes(b, LUN, &self.lun);
        put32(b, ITT, self.itt);
        put32(b, Self::REFERENCED_TASK_TAG, self.referenced_task_tag);
        put_initiator_sns(b, self.cmd_sn, self.exp_stat_sn);
        put32(b, Self::REF_CMD_SN, self.ref_cmd_sn);
        put32(b, Self::EXP_DATA_SN, self.exp_data_sn);
    }
}

/// Task Management Function Response (§11.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskMgmtResponse {
    /// See [`tmf_response`].
    pub response: u8,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

impl TaskMgmtResponse {
    /// Response (§11.6.1).
    const RESPONSE: usize = 2;
}

impl Layout for TaskMgmtResponse {
    fn decode(b: &Raw) -> Self {
        let (stat_sn, exp_cmd_sn, max_cmd_sn) = get_target_sns(b);
        TaskMgmtResponse {
            response: b[Self::RESPONSE],
            itt: get32(b, ITT),
            stat_sn,
            exp_cmd_sn,
            max_cmd_sn,
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[FLAGS] = FINAL;
        b[Self::RESPONSE] = self.response;
        put32(b, ITT, self.itt);
        put_target_sns(b, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn);
    }
}
