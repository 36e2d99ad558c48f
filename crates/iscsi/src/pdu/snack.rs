//! SNACK Request (RFC 7143 §11.16).

use super::{
    get32, get_bytes, put32, put_bytes, Layout, Raw, EXP_STAT_SN, FINAL, FLAGS, ITT, LUN, TTT,
};

/// SNACK Request (§11.16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnackRequest {
    /// Type (4 bits): 0 Data/R2T, 1 Status, 2 DataACK, 3 R-Data.
    pub snack_type: u8,
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub exp_stat_sn: u32,
    pub beg_run: u32,
    pub run_length: u32,
}

impl SnackRequest {
    /// Type: the low 4 bits of the flags byte (§11.16.1).
    const TYPE_MASK: u8 = 0x0f;
    /// BegRun (§11.16.4).
    const BEG_RUN: usize = 40;
    /// RunLength (§11.16.5).
    const RUN_LENGTH: usize = 44;
}

impl Layout for SnackRequest {
    fn decode(b: &Raw) -> Self {
        SnackRequest {
            snack_type: b[FLAGS] & Self::TYPE_MASK,
            lun: get_bytes(b, LUN),
            itt: get32(b, ITT),
            ttt: get32(b, TTT),
            exp_stat_sn: get32(b, EXP_STAT_SN),
            beg_run: get32(b, Self::BEG_RUN),
            run_length: get32(b, Self::RUN_LENGTH),
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[FLAGS] = FINAL | (self.snack_type & Self::TYPE_MASK);
        put_bytes(b, LUN, &self.lun);
        put32(b, ITT, self.itt);
        put32(b, TTT, self.ttt);
        put32(b, EXP_STAT_SN, self.exp_stat_sn);
        put32(b, Self::BEG_RUN, self.beg_run);
        put32(b, Self::RUN_LENGTH, self.run_length);
    }
}
