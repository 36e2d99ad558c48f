//! Third-party copy CDBs: EXTENDED COPY (LID1) (SPC-4 §6.3) and RECEIVE COPY RESULTS (§6.18),
//! whose service action is a field (`opcode::rcr`).

use super::{with_service_action, Field, SERVICE_ACTION};
use crate::opcode::{self as op, rcr, xcopy};

cdb! {
    /// EXTENDED COPY (LID1) (SPC-4 §6.3).
    ExtendedCopy = op::EXTENDED_COPY;
    [16] sa Some(xcopy::EXTENDED_COPY_LID1);
    {
        PARAMETER_LIST_LENGTH parameter_list_length: u32 = Field::bytes(10, 4);
    }
}

cdb! {
    /// RECEIVE COPY RESULTS (SPC-4 §6.18).
    ReceiveCopyResults = op::RECEIVE_COPY_RESULTS;
    [16] sa None;
    {
        SERVICE_ACTION service_action: u8 = SERVICE_ACTION;
        /// LIST IDENTIFIER of the EXTENDED COPY asked about (none for OPERATING PARAMETERS).
        LIST_IDENTIFIER list_identifier: u8 = Field::bytes(2, 1);
        ALLOCATION_LENGTH allocation_length: u32 = Field::bytes(10, 4);
    }
}

impl ReceiveCopyResults {
    /// CDB usage data for one service action: OPERATING PARAMETERS has no LIST IDENTIFIER.
    pub const fn usage(sa: u8) -> [u8; 16] {
        let mut u = with_service_action(Self::USAGE, sa);
        if sa == rcr::OPERATING_PARAMETERS {
            Self::LIST_IDENTIFIER.set(&mut u, 0);
        }
        u
    }
}
