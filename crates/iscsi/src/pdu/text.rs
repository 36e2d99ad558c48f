//! Text Request (RFC 7143 §11.10) and Text Response (§11.11). The key=value payload is
//! `crate::text`'s.

use super::{
    bit, flag, get_initiator_sns, get_tags, get_target_sns, put_initiator_sns, put_tags,
    put_target_sns, Layout, Raw, CONTINUE, FINAL, FLAGS, IMMEDIATE, OPCODE,
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
        let (lun, itt, ttt) = get_tags(b);
        let (cmd_sn, exp_stat_sn) = get_initiator_sns(b);
        TextRequest {
            immediate: flag(b[OPCODE], IMMEDIATE),
            final_: flag(b[FLAGS], FINAL),
            cont: flag(b[FLAGS], CONTINUE),
            lun,
            itt,
            ttt,
            cmd_sn,
            exp_stat_sn,
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[OPCODE] |= bit(self.immediate, IMMEDIATE);
        b[FLAGS] = bit(self.final_, FINAL) | bit(self.cont, CONTINUE);
        put_tags(b, &self.lun, self.itt, self.ttt);
        put_initiator_sns(b, self.cmd_sn, self.exp_stat_sn);
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
        let (lun, itt, ttt) = get_tags(b);
        let (stat_sn, exp_cmd_sn, max_cmd_sn) = get_target_sns(b);
        TextResponse {
            final_: flag(b[FLAGS], FINAL),
            cont: flag(b[FLAGS], CONTINUE),
            lun,
            itt,
            ttt,
            stat_sn,
            exp_cmd_sn,
            max_cmd_sn,
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[FLAGS] = bit(self.final_, FINAL) | bit(self.cont, CONTINUE);
        put_tags(b, &self.lun, self.itt, self.ttt);
        put_target_sns(b, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn);
    }
}
