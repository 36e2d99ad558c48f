//! SNACK Request (RFC 7143 §11.16).

use super::{get32, get_tags, put32, put_tags, Layout, Raw, EXP_STAT_SN, FINAL, FLAGS};

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
        let (lun, itt, ttt) = get_tags(b);
        SnackRequest {
            snack_type: b[FLAGS] & Self::TYPE_MASK,
            lun,
            itt,
            ttt,
            exp_stat_sn: get32(b, EXP_STAT_SN),
            beg_run: get32(b, Self::BEG_RUN),
            run_length: get32(b, Self::RUN_LENGTH),
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[FLAGS] = FINAL | (self.snack_type & Self::TYPE_MASK);
        put_tags(b, &self.lun, self.itt, self.ttt);
        put32(b, EXP_STAT_SN, self.exp_stat_sn);
        put32(b, Self::BEG_RUN, self.beg_run);
        put32(b, Self::RUN_LENGTH, self.run_length);
    }
}
