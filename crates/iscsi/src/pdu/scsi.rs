//! SCSI Command (RFC 7143 §11.3) with its AHS (§11.2.1.2, §11.3.5), and SCSI Response (§11.4).

use super::frame::Pdu;
use super::{
    bit, flag, get32, get_bytes, get_initiator_sns, get_target_sns, put32, put_bytes,
    put_initiator_sns, put_target_sns, Bhs, Layout, Raw, FINAL, FLAGS, IMMEDIATE, ITT, LUN, OPCODE,
};

/// SCSI Command task attributes (§11.3.1.3, ATTR field).
pub mod task_attr {
    pub const UNTAGGED: u8 = 0;
    pub const SIMPLE: u8 = 1;
    pub const ORDERED: u8 = 2;
    pub const HEAD_OF_QUEUE: u8 = 3;
    pub const ACA: u8 = 4;
}

/// AHS types (§11.2.1.2).
pub mod ahs_type {
    pub const EXTENDED_CDB: u8 = 1;
    pub const BIDI_READ_LENGTH: u8 = 2;
}

/// SCSI Response "Response" field (§11.4.3).
pub mod scsi_response {
    pub const COMMAND_COMPLETED: u8 = 0x00;
    pub const TARGET_FAILURE: u8 = 0x01;
}

/// SCSI Command (§11.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScsiCommand {
    pub immediate: bool,
    /// F: no unsolicited Data-Out PDUs follow.
    pub final_: bool,
    pub read: bool,
    pub write: bool,
    /// ATTR, see [`task_attr`].
    pub attr: u8,
    pub lun: [u8; 8],
    pub itt: u32,
    pub expected_data_length: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub cdb: [u8; 16],
}

impl ScsiCommand {
    // Flags byte (§11.3.1): R, W and the 3-bit ATTR.
    const READ: u8 = 0x40;
    const WRITE: u8 = 0x20;
    const ATTR_MASK: u8 = 0x07;
    /// Expected Data Transfer Length (§11.3.4).
    const EXPECTED_DATA_LENGTH: usize = 20;
    /// The first 16 bytes of the CDB (§11.3.5).
    const CDB: usize = 32;
}

impl Layout for ScsiCommand {
    fn decode(b: &Raw) -> Self {
        let (cmd_sn, exp_stat_sn) = get_initiator_sns(b);
        let f = b[FLAGS];
        ScsiCommand {
            immediate: flag(b[OPCODE], IMMEDIATE),
            final_: flag(f, FINAL),
            read: flag(f, Self::READ),
            write: flag(f, Self::WRITE),
            attr: f & Self::ATTR_MASK,
            lun: get_bytes(b, LUN),
            itt: get32(b, ITT),
            expected_data_length: get32(b, Self::EXPECTED_DATA_LENGTH),
            cmd_sn,
            exp_stat_sn,
            cdb: get_bytes(b, Self::CDB),
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[OPCODE] |= bit(self.immediate, IMMEDIATE);
        b[FLAGS] = bit(self.final_, FINAL)
            | bit(self.read, Self::READ)
            | bit(self.write, Self::WRITE)
            | (self.attr & Self::ATTR_MASK);
        put_bytes(b, LUN, &self.lun);
        put32(b, ITT, self.itt);
        put32(b, Self::EXPECTED_DATA_LENGTH, self.expected_data_length);
        put_initiator_sns(b, self.cmd_sn, self.exp_stat_sn);
        put_bytes(b, Self::CDB, &self.cdb);
    }
}

/// The AHS a SCSI Command may carry (§11.2.1.2, §11.3.5).
impl Pdu {
    /// For a SCSI Command: the whole CDB, the 16 BHS bytes followed by any Extended CDB AHS
    /// (§11.3.5, whose first byte is reserved).
    pub fn full_cdb(&self) -> Result<Vec<u8>, &'static str> {
        let Bhs::ScsiCommand(c) = &self.bhs else {
            return Err("not a SCSI Command");
        };
        let mut cdb = c.cdb.to_vec();
        for a in self.ahs_segments()? {
            if a.ahs_type == ahs_type::EXTENDED_CDB {
                if a.data.is_empty() {
                    return Err("empty extended CDB AHS");
                }
                cdb.extend_from_slice(&a.data[1..]);
            }
        }
        Ok(cdb)
    }

    /// For a SCSI Command: the Bidirectional Read Expected Data Transfer Length AHS, if any.
    pub fn bidi_read_length(&self) -> Option<u32> {
        let segs = self.ahs_segments().ok()?;
        segs.iter()
            .find(|a| a.ahs_type == ahs_type::BIDI_READ_LENGTH && a.data.len() >= 5)
            .map(|a| u32::from_be_bytes([a.data[1], a.data[2], a.data[3], a.data[4]]))
    }
}

/// SCSI Response (§11.4). The data segment carries SenseLength + sense + response data.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ScsiResponse {
    pub bidi_overflow: bool,
    pub bidi_underflow: bool,
    pub overflow: bool,
    pub underflow: bool,
    pub response: u8,
    pub status: u8,
    pub itt: u32,
    pub snack_tag: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub exp_data_sn: u32,
    pub bidi_residual: u32,
    pub residual: u32,
}

impl ScsiResponse {
    // Flags byte (§11.4.1): o, u, O, U.
    const BIDI_OVERFLOW: u8 = 0x10;
    const BIDI_UNDERFLOW: u8 = 0x08;
    const OVERFLOW: u8 = 0x04;
    const UNDERFLOW: u8 = 0x02;
    /// Response (§11.4.3), see [`scsi_response`].
    const RESPONSE: usize = 2;
    /// Status (§11.4.2).
    const STATUS: usize = 3;
    /// SNACK Tag (§11.4.6).
    const SNACK_TAG: usize = 20;
    /// ExpDataSN (§11.4.8).
    const EXP_DATA_SN: usize = 36;
    /// Bidirectional Read Residual Count (§11.4.4).
    const BIDI_RESIDUAL: usize = 40;
    /// Residual Count (§11.4.5).
    const RESIDUAL: usize = 44;
}

impl Layout for ScsiResponse {
    fn decode(b: &Raw) -> Self {
        let (stat_sn, exp_cmd_sn, max_cmd_sn) = get_target_sns(b);
        let f = b[FLAGS];
        ScsiResponse {
            bidi_overflow: flag(f, Self::BIDI_OVERFLOW),
            bidi_underflow: flag(f, Self::BIDI_UNDERFLOW),
            overflow: flag(f, Self::OVERFLOW),
            underflow: flag(f, Self::UNDERFLOW),
            response: b[Self::RESPONSE],
            status: b[Self::STATUS],
            itt: get32(b, ITT),
            snack_tag: get32(b, Self::SNACK_TAG),
            stat_sn,
            exp_cmd_sn,
            max_cmd_sn,
            exp_data_sn: get32(b, Self::EXP_DATA_SN),
            bidi_residual: get32(b, Self::BIDI_RESIDUAL),
            residual: get32(b, Self::RESIDUAL),
        }
    }
    fn encode(&self, b: &mut Raw) {
        b[FLAGS] = FINAL
            | bit(self.bidi_overflow, Self::BIDI_OVERFLOW)
            | bit(self.bidi_underflow, Self::BIDI_UNDERFLOW)
            | bit(self.overflow, Self::OVERFLOW)
            | bit(self.underflow, Self::UNDERFLOW);
        b[Self::RESPONSE] = self.response;
        b[Self::STATUS] = self.status;
        put32(b, ITT, self.itt);
        put32(b, Self::SNACK_TAG, self.snack_tag);
        put_target_sns(b, self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn);
        put32(b, Self::EXP_DATA_SN, self.exp_data_sn);
        put32(b, Self::BIDI_RESIDUAL, self.bidi_residual);
        put32(b, Self::RESIDUAL, self.residual);
    }
}
