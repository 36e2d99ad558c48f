//! NOP-Out (RFC 7143 §11.18) and NOP-In (§11.19): ping and keep-alive in both directions.

use super::{
    bit, flag, get32, get_bytes, put32, put_bytes, Layout, Raw, CMD_SN, EXP_CMD_SN, EXP_STAT_SN,
    FINAL, FLAGS, IMMEDIATE, ITT, LUN, MAX_CMD_SN, OPCODE, STAT_SN, TTT,
};

/// NOP-Out (§11.18).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NopOut {
    pub immediate: bool,
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl Layout for NopOut {
    fn decode(b: &Raw) -> Self {
        NopOut {
            immediate: flag(b[OPCODE], IMMEDIATE),
            lun: get_bytes(b, LUN),
            itt: get32(b, ITT),
            ttt: get32(b, TTT),
            cmd_sn: get32(b, CMD_SN),
            exp_stat_sn: get32(b, EXP_STAT_SN),
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[OPCODE] |= bit(self.immediate, IMMEDIATE);
        b[FLAGS] = FINAL;
        put_bytes(b, LUN, &self.lun);
        put32(b, ITT, self.itt);
        put32(b, TTT, self.ttt);
        put32(b, CMD_SN, self.cmd_sn);
        put32(b, EXP_STAT_SN, self.exp_stat_sn);
    }
}

/// NOP-In (§11.19).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NopIn {
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

impl Layout for NopIn {
    fn decode(b: &Raw) -> Self {
        NopIn {
            lun: get_bytes(b, LUN),
            itt: get32(b, ITT),
            ttt: get32(b, TTT),
            stat_sn: get32(b, STAT_SN),
            exp_cmd_sn: get32(b, EXP_CMD_SN),
            max_cmd_sn: get32(b, MAX_CMD_SN),
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[FLAGS] = FINAL;
        put_bytes(b, LUN, &self.lun);
        put32(b, ITT, self.itt);
        put32(b, TTT, self.ttt);
        put32(b, STAT_SN, self.stat_sn);
        put32(b, EXP_CMD_SN, self.exp_cmd_sn);
        put32(b, MAX_CMD_SN, self.max_cmd_sn);
    }
}
