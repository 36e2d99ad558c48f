//! Operation codes (SPC-4 Annex D.3.1, SBC-3 §5) and service actions.

pub const TEST_UNIT_READY: u8 = 0x00;
pub const REZERO_UNIT: u8 = 0x01;
pub const REQUEST_SENSE: u8 = 0x03;
pub const FORMAT_UNIT: u8 = 0x04;
pub const READ_6: u8 = 0x08;
pub const WRITE_6: u8 = 0x0A;
pub const SEEK_6: u8 = 0x0B;
pub const INQUIRY: u8 = 0x12;
pub const MODE_SELECT_6: u8 = 0x15;
pub const RESERVE_6: u8 = 0x16;
pub const RELEASE_6: u8 = 0x17;
pub const MODE_SENSE_6: u8 = 0x1A;
pub const START_STOP_UNIT: u8 = 0x1B;
pub const RECEIVE_DIAGNOSTIC_RESULTS: u8 = 0x1C;
pub const SEND_DIAGNOSTIC: u8 = 0x1D;
pub const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1E;
pub const READ_CAPACITY_10: u8 = 0x25;
pub const READ_10: u8 = 0x28;
pub const WRITE_10: u8 = 0x2A;
pub const SEEK_10: u8 = 0x2B;
pub const WRITE_AND_VERIFY_10: u8 = 0x2E;
pub const VERIFY_10: u8 = 0x2F;
pub const PRE_FETCH_10: u8 = 0x34;
pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
pub const READ_DEFECT_DATA_10: u8 = 0x37;
pub const WRITE_BUFFER: u8 = 0x3B;
pub const READ_BUFFER: u8 = 0x3C;
pub const WRITE_SAME_10: u8 = 0x41;
pub const UNMAP: u8 = 0x42;
pub const SANITIZE: u8 = 0x48;
pub const LOG_SELECT: u8 = 0x4C;
pub const LOG_SENSE: u8 = 0x4D;
pub const MODE_SELECT_10: u8 = 0x55;
pub const RESERVE_10: u8 = 0x56;
pub const RELEASE_10: u8 = 0x57;
pub const MODE_SENSE_10: u8 = 0x5A;
pub const PERSISTENT_RESERVE_IN: u8 = 0x5E;
pub const PERSISTENT_RESERVE_OUT: u8 = 0x5F;
pub const VARIABLE_LENGTH: u8 = 0x7F;
pub const EXTENDED_COPY: u8 = 0x83;
pub const RECEIVE_COPY_RESULTS: u8 = 0x84;
pub const READ_16: u8 = 0x88;
pub const COMPARE_AND_WRITE: u8 = 0x89;
pub const WRITE_16: u8 = 0x8A;
pub const ORWRITE_16: u8 = 0x8B;
pub const WRITE_AND_VERIFY_16: u8 = 0x8E;
pub const VERIFY_16: u8 = 0x8F;
pub const PRE_FETCH_16: u8 = 0x90;
pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
pub const WRITE_SAME_16: u8 = 0x93;
pub const WRITE_ATOMIC_16: u8 = 0x9C;
/// SERVICE ACTION IN(16); service action in CDB byte 1 bits 4..0.
pub const SERVICE_ACTION_IN_16: u8 = 0x9E;
pub const SERVICE_ACTION_OUT_16: u8 = 0x9F;
pub const REPORT_LUNS: u8 = 0xA0;
/// MAINTENANCE IN; service action in CDB byte 1 bits 4..0.
pub const MAINTENANCE_IN: u8 = 0xA3;
pub const MAINTENANCE_OUT: u8 = 0xA4;
pub const READ_12: u8 = 0xA8;
pub const WRITE_12: u8 = 0xAA;
pub const WRITE_AND_VERIFY_12: u8 = 0xAE;
pub const VERIFY_12: u8 = 0xAF;
pub const READ_DEFECT_DATA_12: u8 = 0xB7;

/// Service actions of SERVICE ACTION IN(16) (SBC-3 §5.16, §5.12).
pub mod sai {
    pub const READ_CAPACITY_16: u8 = 0x10;
    pub const GET_LBA_STATUS: u8 = 0x12;
}

/// Service actions of MAINTENANCE IN (SPC-4 §6.xx).
pub mod mi {
    pub const REPORT_TARGET_PORT_GROUPS: u8 = 0x0A;
    pub const REPORT_SUPPORTED_OPERATION_CODES: u8 = 0x0C;
    pub const REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS: u8 = 0x0D;
    pub const REPORT_TIMESTAMP: u8 = 0x0F;
}

/// Service actions of MAINTENANCE OUT.
pub mod mo {
    pub const SET_TARGET_PORT_GROUPS: u8 = 0x0A;
}

/// Service actions of SANITIZE (SBC-3 §5.19).
pub mod sanitize {
    pub const OVERWRITE: u8 = 0x01;
    pub const BLOCK_ERASE: u8 = 0x02;
    pub const CRYPTOGRAPHIC_ERASE: u8 = 0x03;
    pub const EXIT_FAILURE_MODE: u8 = 0x1F;
}

/// Service actions of EXTENDED COPY (SPC-4 §6.3: LID1 is 00h).
pub mod xcopy {
    pub const EXTENDED_COPY_LID1: u8 = 0x00;
}

/// Service actions of RECEIVE COPY RESULTS (SPC-4 §6.18).
pub mod rcr {
    pub const COPY_STATUS: u8 = 0x00;
    pub const RECEIVE_DATA: u8 = 0x01;
    pub const OPERATING_PARAMETERS: u8 = 0x03;
    pub const FAILED_SEGMENT_DETAILS: u8 = 0x04;
}
