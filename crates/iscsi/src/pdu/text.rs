//! Text Request (RFC 7143 §11.10) and Text Response (§11.11). The key=value payload is
//! `crate::text`'s.

use super::{
    bit, flag, get32, get_bytes, put32, put_bytes, Layout, Raw, CMD_SN, CONTINUE, EXP_CMD_SN,
    EXP_STAT_SN, FINAL, FLAGS, IMMEDIATE, ITT, LUN, MAX_CMD_SN, OPCODE, STAT_SN, TTT,
};

/// Text Request (§11.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextRequest {
    pub immediate: bool,
    pub final_: bool,
    pub cont: bool,
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl Layout for TextRequest {
    fn decode(b: &Raw) -> Self {
        TextRequest {
            immediate: flag(b[OPCODE], IMMEDIATE),
            final_: flag(b[FLAGS], FINAL),
            cont: flag(b[FLAGS], CONTINUE),
            lun: get_bytes(b, LUN),
            itt: get32(b, ITT),
            ttt: get32(b, TTT),
            cmd_sn: get32(b, CMD_SN),
            exp_stat_sn: get32(b, EXP_STAT_SN),
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[OPCODE] |= bit(self.immediate, IMMEDIATE);
        b[FLAGS] = bit(self.final_, FINAL) | bit(self.cont, CONTINUE);
        put_bytes(b, LUN, &self.lun);
        put32(b, ITT, self.itt);
        put32(b, TTT, self.ttt);
        put32(b, CMD_SN, self.cmd_sn);
        put32(b, EXP_STAT_SN, self.exp_stat_sn);
    }
}

/// Text Response (§11.11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextResponse {
    pub final_: bool,
    pub cont: bool,
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

impl Layout for TextResponse {
    fn decode(b: &Raw) -> Self {
        TextResponse {
            final_: flag(b[FLAGS], FINAL),
            cont: flag(b[FLAGS], CONTINUE),
            lun: get_bytes(b, LUN),
            itt: get32(b, ITT),
            ttt: get32(b, TTT),
            stat_sn: get32(b, STAT_SN),
            exp_cmd_sn: get32(b, EXP_CMD_SN),
            max_cmd_sn: get32(b, MAX_CMD_SN),
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[FLAGS] = bit(self.final_, FINAL) | bit(self.cont, CONTINUE);
        put_bytes(b, LUN, &self.lun);
        put32(b, ITT, self.itt);
        put32(b, TTT, self.ttt);
        put32(b, STAT_SN, self.stat_sn);
        put32(b, EXP_CMD_SN, self.exp_cmd_sn);
        put32(b, MAX_CMD_SN, self.max_cmd_sn);
    }
}
