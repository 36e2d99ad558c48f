//! Logical block provisioning CDBs (SBC-3 §4.7): WRITE SAME (10)/(16) (§5.45-5.46), UNMAP
//! (§5.28) and GET LBA STATUS (a SERVICE ACTION IN(16) service action).
//!
//! WRITE SAME's WRPROTECT and the obsolete PBDATA / LBDATA are not decoded (no protection
//! information; outside the CDB usage data).

use super::{Blocks, Field, Lba};
use crate::opcode::{self as op, sai};

cdb! {
    /// WRITE SAME(10) (SBC-3 §5.45); NUMBER OF LOGICAL BLOCKS 0 means to the end of the medium
    /// unless WSNZ.
    WriteSame10 = op::WRITE_SAME_10;
    [10] sa None;
    {
        /// ANCHOR: anchor the blocks rather than deallocate them (with UNMAP).
        ANCHOR anchor: bool = Field::flag(1, 4);
        /// UNMAP: the blocks may be deallocated.
        UNMAP unmap: bool = Field::flag(1, 3);
        LBA lba: Lba = Field::bytes(2, 4);
        GROUP_NUMBER group_number: u8 = Field::bits(6, 4, 5);
        NUMBER_OF_LOGICAL_BLOCKS number_of_logical_blocks: Blocks = Field::bytes(7, 2);
    }
}

cdb! {
    /// WRITE SAME(16) (SBC-3 §5.46); NUMBER OF LOGICAL BLOCKS 0 means to the end of the medium
    /// unless WSNZ.
    WriteSame16 = op::WRITE_SAME_16;
    [16] sa None;
    {
        /// ANCHOR: anchor the blocks rather than deallocate them (with UNMAP).
        ANCHOR anchor: bool = Field::flag(1, 4);
        /// UNMAP: the blocks may be deallocated.
        UNMAP unmap: bool = Field::flag(1, 3);
        /// NDOB: no Data-Out buffer; the data block is zeroes.
        NDOB ndob: bool = Field::flag(1, 0);
        LBA lba: Lba = Field::bytes(2, 8);
        NUMBER_OF_LOGICAL_BLOCKS number_of_logical_blocks: Blocks = Field::bytes(10, 4);
        GROUP_NUMBER group_number: u8 = Field::bits(14, 4, 5);
    }
}

cdb! {
    /// UNMAP (SBC-3 §5.28): the Data-Out is the UNMAP parameter list.
    Unmap = op::UNMAP;
    [10] sa None;
    {
        /// ANCHOR: anchor the blocks rather than deallocate them.
        ANCHOR anchor: bool = Field::flag(1, 0);
        GROUP_NUMBER group_number: u8 = Field::bits(6, 4, 5);
        PARAMETER_LIST_LENGTH parameter_list_length: u16 = Field::bytes(7, 2);
    }
}

cdb! {
    /// GET LBA STATUS (SBC-3), a SERVICE ACTION IN(16) service action.
    GetLbaStatus = op::SERVICE_ACTION_IN_16;
    [16] sa Some(sai::GET_LBA_STATUS);
    {
        /// STARTING LOGICAL BLOCK ADDRESS.
        LBA lba: Lba = Field::bytes(2, 8);
        ALLOCATION_LENGTH allocation_length: u32 = Field::bytes(10, 4);
    }
}
