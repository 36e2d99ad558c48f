//! Target port group CDBs: REPORT TARGET PORT GROUPS (SPC-4 §6.37, a MAINTENANCE IN service
//! action) and SET TARGET PORT GROUPS (§6.46, a MAINTENANCE OUT service action).

use super::Field;
use crate::opcode::{self as op, mi, mo};

cdb! {
    /// REPORT TARGET PORT GROUPS (SPC-4 §6.37).
    ReportTargetPortGroups = op::MAINTENANCE_IN;
    [12] sa Some(mi::REPORT_TARGET_PORT_GROUPS);
    {
        /// PARAMETER DATA FORMAT: 000b length-only header, 001b extended header.
        PARAMETER_DATA_FORMAT parameter_data_format: u8 = Field::bits(1, 7, 3);
        ALLOCATION_LENGTH allocation_length: u32 = Field::bytes(6, 4);
    }
}

cdb! {
    /// SET TARGET PORT GROUPS (SPC-4 §6.46).
    SetTargetPortGroups = op::MAINTENANCE_OUT;
    [12] sa Some(mo::SET_TARGET_PORT_GROUPS);
    {
        PARAMETER_LIST_LENGTH parameter_list_length: u32 = Field::bytes(6, 4);
    }
}
