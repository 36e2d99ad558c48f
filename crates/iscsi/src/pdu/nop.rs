//! NOP-Out (RFC 7143 §11.18) and NOP-In (§11.19): ping and keep-alive in both directions.

use super::{
    bit, flag, get_initiator_sns, get_tags, get_target_sns, put_initiator_sns, put_tags,
    put_target_sns, Layout, Raw, FINAL, FLAGS, IMMEDIATE, OPCODE,
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
        let (lun, itt, ttt) = get_tags(b);
        let (cmd_sn, exp_stat_sn) = get_initiator_sns(b);
        NopOut {
            immediate: flag(b[OPCODE], IMMEDIATE),
            lun,
            itt,
            ttt,
            cmd_sn,
            exp_stat_sn,
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[OPCODE] |= bit(self.immediate, IMMEDIATE);
        b[FLAGS] = FINAL;
        put_tags(b, &self.lun, self.itt, self.ttt);
        put_initiator_sns(b, self.cmd_sn, self.exp_stat_sn);
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
        let (lun, itt, ttt) = get_tags(b);
        let (stat_sn, exp_cmd_sn, max_cmd_sn) = get_target_sns(b);
        NopIn {
            lun,
            itt,
            ttt,
            stat_sn,
            exp_cmd_sn,
            max_cmd_sn,
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[FLAGS] = FINAL;
        put_tags(b, &self.lun, self.itt, self.ttt);
        put_target_sns(b, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn);
    }
}
