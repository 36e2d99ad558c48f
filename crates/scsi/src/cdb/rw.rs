//! SBC-3 transfer CDBs: READ (6)/(10)/(12)/(16) (§5.7-5.10), WRITE (6)/(10)/(12)/(16)
//! (§5.32-5.35), WRITE AND VERIFY (10)/(12)/(16) (§5.36-5.38), VERIFY (10)/(12)/(16)
//! (§5.27-5.29), ORWRITE(16), COMPARE AND WRITE (§5.2) and WRITE ATOMIC(16) (SBC-4 §5.48).
//!
//! The 10-, 12- and 16-byte forms share one layout each: LOGICAL BLOCK ADDRESS from byte 2,
//! then the length, with GROUP NUMBER in byte 6, 10 or 14. Protection information fields
//! (RDPROTECT, WRPROTECT, VRPROTECT, ORPROTECT) are not decoded: the engine offers no
//! protection information, so they are outside the CDB usage data.

use super::{Blocks, Field, Lba};
use crate::opcode as op;

cdb! {
    /// READ(6) (SBC-3 §5.7): a TRANSFER LENGTH of 0 means 256 blocks.
    Read6 = op::READ_6,
    /// WRITE(6) (SBC-3 §5.32): a TRANSFER LENGTH of 0 means 256 blocks.
    Write6 = op::WRITE_6;
    [6] sa None;
    {
        LBA lba: Lba = Field::bits(1, 4, 21);
        TRANSFER_LENGTH transfer_length: Blocks = Field::bytes(4, 1);
    }
}

cdb! {
    /// READ(10) (SBC-3 §5.8).
    Read10 = op::READ_10,
    /// WRITE(10) (SBC-3 §5.33).
    Write10 = op::WRITE_10;
    [10] sa None;
    {
        /// DPO: disable page out.
        DPO dpo: bool = Field::flag(1, 4);
        /// FUA: force unit access.
        FUA fua: bool = Field::flag(1, 3);
        /// FUA_NV (obsolete in SBC-4).
        FUA_NV fua_nv: bool = Field::flag(1, 1);
        LBA lba: Lba = Field::bytes(2, 4);
        GROUP_NUMBER group_number: u8 = Field::bits(6, 4, 5);
        TRANSFER_LENGTH transfer_length: Blocks = Field::bytes(7, 2);
    }
}

cdb! {
    /// READ(12) (SBC-3 §5.9).
    Read12 = op::READ_12,
    /// WRITE(12) (SBC-3 §5.34).
    Write12 = op::WRITE_12;
    [12] sa None;
    {
        /// DPO: disable page out.
        DPO dpo: bool = Field::flag(1, 4);
        /// FUA: force unit access.
        FUA fua: bool = Field::flag(1, 3);
        /// FUA_NV (obsolete in SBC-4).
        FUA_NV fua_nv: bool = Field::flag(1, 1);
        LBA lba: Lba = Field::bytes(2, 4);
        TRANSFER_LENGTH transfer_length: Blocks = Field::bytes(6, 4);
        GROUP_NUMBER group_number: u8 = Field::bits(10, 4, 5);
    }
}

cdb! {
    /// READ(16) (SBC-3 §5.10).
    Read16 = op::READ_16,
    /// WRITE(16) (SBC-3 §5.35).
    Write16 = op::WRITE_16;
    [16] sa None;
    {
        /// DPO: disable page out.
        DPO dpo: bool = Field::flag(1, 4);
        /// FUA: force unit access.
        FUA fua: bool = Field::flag(1, 3);
        /// FUA_NV (obsolete in SBC-4).
        FUA_NV fua_nv: bool = Field::flag(1, 1);
        LBA lba: Lba = Field::bytes(2, 8);
        TRANSFER_LENGTH transfer_length: Blocks = Field::bytes(10, 4);
        GROUP_NUMBER group_number: u8 = Field::bits(14, 4, 5);
    }
}

cdb! {
    /// WRITE AND VERIFY(10) (SBC-3 §5.36).
    WriteAndVerify10 = op::WRITE_AND_VERIFY_10,
    /// VERIFY(10) (SBC-3 §5.27); the length is the VERIFICATION LENGTH.
    Verify10 = op::VERIFY_10;
    [10] sa None;
    {
        /// DPO: disable page out.
        DPO dpo: bool = Field::flag(1, 4);
        /// BYTCHK: how the Data-Out is compared with the medium (SBC-3 table 73).
        BYTCHK bytchk: u8 = Field::bits(1, 2, 2);
        LBA lba: Lba = Field::bytes(2, 4);
        GROUP_NUMBER group_number: u8 = Field::bits(6, 4, 5);
        TRANSFER_LENGTH transfer_length: Blocks = Field::bytes(7, 2);
    }
}

cdb! {
    /// WRITE AND VERIFY(12) (SBC-3 §5.37).
    WriteAndVerify12 = op::WRITE_AND_VERIFY_12,
    /// VERIFY(12) (SBC-3 §5.28); the length is the VERIFICATION LENGTH.
    Verify12 = op::VERIFY_12;
    [12] sa None;
    {
        /// DPO: disable page out.
        DPO dpo: bool = Field::flag(1, 4);
        /// BYTCHK: how the Data-Out is compared with the medium (SBC-3 table 73).
        BYTCHK bytchk: u8 = Field::bits(1, 2, 2);
        LBA lba: Lba = Field::bytes(2, 4);
        TRANSFER_LENGTH transfer_length: Blocks = Field::bytes(6, 4);
        GROUP_NUMBER group_number: u8 = Field::bits(10, 4, 5);
    }
}

cdb! {
    /// WRITE AND VERIFY(16) (SBC-3 §5.38).
    WriteAndVerify16 = op::WRITE_AND_VERIFY_16,
    /// VERIFY(16) (SBC-3 §5.29); the length is the VERIFICATION LENGTH.
    Verify16 = op::VERIFY_16;
    [16] sa None;
    {
        /// DPO: disable page out.
        DPO dpo: bool = Field::flag(1, 4);
        /// BYTCHK: how the Data-Out is compared with the medium (SBC-3 table 73).
        BYTCHK bytchk: u8 = Field::bits(1, 2, 2);
        LBA lba: Lba = Field::bytes(2, 8);
        TRANSFER_LENGTH transfer_length: Blocks = Field::bytes(10, 4);
        GROUP_NUMBER group_number: u8 = Field::bits(14, 4, 5);
    }
}

cdb! {
    /// ORWRITE(16) (SBC-3).
    OrWrite16 = op::ORWRITE_16;
    [16] sa None;
    {
        /// DPO: disable page out.
        DPO dpo: bool = Field::flag(1, 4);
        /// FUA: force unit access.
        FUA fua: bool = Field::flag(1, 3);
        LBA lba: Lba = Field::bytes(2, 8);
        TRANSFER_LENGTH transfer_length: Blocks = Field::bytes(10, 4);
        GROUP_NUMBER group_number: u8 = Field::bits(14, 4, 5);
    }
}

cdb! {
    /// COMPARE AND WRITE (SBC-3 §5.2): the Data-Out holds NUMBER OF LOGICAL BLOCKS of verify
    /// data, then as many of write data.
    CompareAndWrite = op::COMPARE_AND_WRITE;
    [16] sa None;
    {
        /// DPO: disable page out.
        DPO dpo: bool = Field::flag(1, 4);
        /// FUA: force unit access.
        FUA fua: bool = Field::flag(1, 3);
        LBA lba: Lba = Field::bytes(2, 8);
        NUMBER_OF_LOGICAL_BLOCKS number_of_logical_blocks: Blocks = Field::bytes(13, 1);
        GROUP_NUMBER group_number: u8 = Field::bits(14, 4, 5);
    }
}

cdb! {
    /// WRITE ATOMIC(16) (SBC-4 §5.48).
    WriteAtomic16 = op::WRITE_ATOMIC_16;
    [16] sa None;
    {
        /// DPO: disable page out.
        DPO dpo: bool = Field::flag(1, 4);
        /// FUA: force unit access.
        FUA fua: bool = Field::flag(1, 3);
        LBA lba: Lba = Field::bytes(2, 8);
        ATOMIC_BOUNDARY atomic_boundary: u16 = Field::bytes(10, 2);
        TRANSFER_LENGTH transfer_length: Blocks = Field::bytes(12, 2);
        GROUP_NUMBER group_number: u8 = Field::bits(14, 4, 5);
    }
}
