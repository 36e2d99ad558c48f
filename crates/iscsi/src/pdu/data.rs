//! SCSI Data-Out and Data-In (RFC 7143 §11.7) and Ready To Transfer (§11.8): the PDUs that
//! move a command's data.

use super::{
    bit, flag, get32, get_tags, get_target_sns, put32, put_tags, put_target_sns, Layout, Raw,
    EXP_STAT_SN, FINAL, FLAGS,
};

/// DataSN (§11.7.5) in Data-Out and Data-In, R2TSN (§11.8.4) in R2T.
const SN: usize = 36;
/// Buffer Offset (§11.7.6, §11.8.5).
const BUFFER_OFFSET: usize = 40;

/// SCSI Data-Out (§11.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataOut {
    pub final_: bool,
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub exp_stat_sn: u32,
    pub data_sn: u32,
    pub buffer_offset: u32,
}

impl Layout for DataOut {
    fn decode(b: &Raw) -> Self {
        let (lun, itt, ttt) = get_tags(b);
        DataOut {
            final_: flag(b[FLAGS], FINAL),
            lun,
            itt,
            ttt,
            exp_stat_sn: get32(b, EXP_STAT_SN),
            data_sn: get32(b, SN),
            buffer_offset: get32(b, BUFFER_OFFSET),
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[FLAGS] = bit(self.final_, FINAL);
        put_tags(b, &self.lun, self.itt, self.ttt);
        put32(b, EXP_STAT_SN, self.exp_stat_sn);
        put32(b, SN, self.data_sn);
        put32(b, BUFFER_OFFSET, self.buffer_offset);
    }
}

/// SCSI Data-In (§11.7).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DataIn {
    pub final_: bool,
    /// A: the target requests a DataACK (ERL > 0 only).
    pub ack: bool,
    pub overflow: bool,
    pub underflow: bool,
    /// S bit set with this status: the PDU carries the command's status.
    pub status: Option<u8>,
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub data_sn: u32,
    pub buffer_offset: u32,
    pub residual: u32,
}

impl DataIn {
    // Flags byte (§11.7.1): A, O, U, S.
    const ACK: u8 = 0x40;
    const OVERFLOW: u8 = 0x04;
    const UNDERFLOW: u8 = 0x02;
    const HAS_STATUS: u8 = 0x01;
    /// Status (§11.7.4), valid only with the S bit.
    const STATUS: usize = 3;
    /// Residual Count (§11.7.7).
    const RESIDUAL: usize = 44;
}

impl Layout for DataIn {
    fn decode(b: &Raw) -> Self {
        let (lun, itt, ttt) = get_tags(b);
        let (stat_sn, exp_cmd_sn, max_cmd_sn) = get_target_sns(b);
        let f = b[FLAGS];
        DataIn {
            final_: flag(f, FINAL),
            ack: flag(f, Self::ACK),
            overflow: flag(f, Self::OVERFLOW),
            underflow: flag(f, Self::UNDERFLOW),
            status: flag(f, Self::HAS_STATUS).then_some(b[Self::STATUS]),
            lun,
            itt,
            ttt,
            stat_sn,
            exp_cmd_sn,
            max_cmd_sn,
            data_sn: get32(b, SN),
            buffer_offset: get32(b, BUFFER_OFFSET),
            residual: get32(b, Self::RESIDUAL),
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[FLAGS] = bit(self.final_, FINAL)
            | bit(self.ack, Self::ACK)
            | bit(self.overflow, Self::OVERFLOW)
            | bit(self.underflow, Self::UNDERFLOW)
            | bit(self.status.is_some(), Self::HAS_STATUS);
        b[Self::STATUS] = self.status.unwrap_or(0);
        put_tags(b, &self.lun, self.itt, self.ttt);
        put_target_sns(b, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn);
        put32(b, SN, self.data_sn);
        put32(b, BUFFER_OFFSET, self.buffer_offset);
        put32(b, Self::RESIDUAL, self.residual);
    }
}

/// Ready To Transfer (§11.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct R2t {
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub r2t_sn: u32,
    pub buffer_offset: u32,
    pub desired_length: u32,
}

impl R2t {
    /// Desired Data Transfer Length (§11.8.6).
    const DESIRED_LENGTH: usize = 44;
}

impl Layout for R2t {
    fn decode(b: &Raw) -> Self {
        let (lun, itt, ttt) = get_tags(b);
        let (stat_sn, exp_cmd_sn, max_cmd_sn) = get_target_sns(b);
        R2t {
            lun,
            itt,
            ttt,
            stat_sn,
            exp_cmd_sn,
            max_cmd_sn,
            r2t_sn: get32(b, SN),
            buffer_offset: get32(b, BUFFER_OFFSET),
            desired_length: get32(b, Self::DESIRED_LENGTH),
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[FLAGS] = FINAL;
        put_tags(b, &self.lun, self.itt, self.ttt);
        put_target_sns(b, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn);
        put32(b, SN, self.r2t_sn);
        put32(b, BUFFER_OFFSET, self.buffer_offset);
        put32(b, Self::DESIRED_LENGTH, self.desired_length);
    }
}
