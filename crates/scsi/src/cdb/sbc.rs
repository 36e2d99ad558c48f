//! SBC-3 cache and capacity CDBs: PRE-FETCH (10)/(16) (§5.4-5.5), SYNCHRONIZE CACHE (10)/(16)
//! (§5.22-5.23) and READ CAPACITY (10)/(16) (§5.15-5.16; (16) is a SERVICE ACTION IN(16)
//! service action).

use super::{Blocks, Field, Lba};
use crate::opcode::{self as op, sai};

cdb! {
    /// PRE-FETCH(10) (SBC-3 §5.4).
    PreFetch10 = op::PRE_FETCH_10;
    [10] sa None;
    {
        /// IMMED: GOOD before the blocks are fetched.
        IMMED immed: bool = Field::flag(1, 1);
        LBA lba: Lba = Field::bytes(2, 4);
        GROUP_NUMBER group_number: u8 = Field::bits(6, 4, 5);
        PREFETCH_LENGTH prefetch_length: Blocks = Field::bytes(7, 2);
    }
}

cdb! {
    /// PRE-FETCH(16) (SBC-3 §5.5).
    PreFetch16 = op::PRE_FETCH_16;
    [16] sa None;
    {
        /// IMMED: GOOD before the blocks are fetched.
        IMMED immed: bool = Field::flag(1, 1);
        LBA lba: Lba = Field::bytes(2, 8);
        PREFETCH_LENGTH prefetch_length: Blocks = Field::bytes(10, 4);
        GROUP_NUMBER group_number: u8 = Field::bits(14, 4, 5);
    }
}

cdb! {
    /// SYNCHRONIZE CACHE(10) (SBC-3 §5.22); NUMBER OF LOGICAL BLOCKS 0 means to the end of the
    /// medium.
    SynchronizeCache10 = op::SYNCHRONIZE_CACHE_10;
    [10] sa None;
    {
        /// SYNC_NV (obsolete in SBC-4).
        SYNC_NV sync_nv: bool = Field::flag(1, 2);
        /// IMMED: GOOD before the cache is synchronized.
        IMMED immed: bool = Field::flag(1, 1);
        LBA lba: Lba = Field::bytes(2, 4);
        GROUP_NUMBER group_number: u8 = Field::bits(6, 4, 5);
        NUMBER_OF_LOGICAL_BLOCKS number_of_logical_blocks: Blocks = Field::bytes(7, 2);
    }
}

cdb! {
    /// SYNCHRONIZE CACHE(16) (SBC-3 §5.23); NUMBER OF LOGICAL BLOCKS 0 means to the end of the
    /// medium.
    SynchronizeCache16 = op::SYNCHRONIZE_CACHE_16;
    [16] sa None;
    {
        /// SYNC_NV (obsolete in SBC-4).
        SYNC_NV sync_nv: bool = Field::flag(1, 2);
        /// IMMED: GOOD before the cache is synchronized.
        IMMED immed: bool = Field::flag(1, 1);
        LBA lba: Lba = Field::bytes(2, 8);
        NUMBER_OF_LOGICAL_BLOCKS number_of_logical_blocks: Blocks = Field::bytes(10, 4);
        GROUP_NUMBER group_number: u8 = Field::bits(14, 4, 5);
    }
}

cdb! {
    /// READ CAPACITY(10) (SBC-3 §5.15): with PMI 0 the LBA shall be zero.
    ReadCapacity10 = op::READ_CAPACITY_10;
    [10] sa None;
    {
        LBA lba: Lba = Field::bytes(2, 4);
        /// PMI: partial medium indicator (obsolete in SBC-4).
        PMI pmi: bool = Field::flag(8, 0);
    }
}

cdb! {
    /// READ CAPACITY(16) (SBC-3 §5.16): with PMI 0 the LBA shall be zero.
    ReadCapacity16 = op::SERVICE_ACTION_IN_16;
    [16] sa Some(sai::READ_CAPACITY_16);
    {
        LBA lba: Lba = Field::bytes(2, 8);
        ALLOCATION_LENGTH allocation_length: u32 = Field::bytes(10, 4);
        /// PMI: partial medium indicator (obsolete in SBC-4).
        PMI pmi: bool = Field::flag(14, 0);
    }
}
