//! Medium CDBs: START STOP UNIT (SBC-3 §5.25), PREVENT ALLOW MEDIUM REMOVAL (§5.5), SANITIZE
//! (§5.19) and READ DEFECT DATA (10)/(12) (§5.12, §5.13).

use super::{with_service_action, Field, SERVICE_ACTION};
use crate::opcode as op;

cdb! {
    /// START STOP UNIT (SBC-3 §5.25).
    StartStopUnit = op::START_STOP_UNIT;
    [6] sa None;
    {
        /// IMMED: GOOD once the CDB is checked.
        IMMED immed: bool = Field::flag(1, 0);
        POWER_CONDITION_MODIFIER power_condition_modifier: u8 = Field::bits(3, 3, 4);
        /// POWER CONDITION: non-zero makes START and LOEJ ignored.
        POWER_CONDITION power_condition: u8 = Field::bits(4, 7, 4);
        /// NO_FLUSH: stop without synchronizing the cache.
        NO_FLUSH no_flush: bool = Field::flag(4, 2);
        /// LOEJ: load (START 1) or eject (START 0) the medium.
        LOEJ loej: bool = Field::flag(4, 1);
        START start: bool = Field::flag(4, 0);
    }
}

cdb! {
    /// PREVENT ALLOW MEDIUM REMOVAL (SBC-3 §5.5).
    PreventAllowMediumRemoval = op::PREVENT_ALLOW_MEDIUM_REMOVAL;
    [6] sa None;
    {
        /// PREVENT: 00b allow, 01b prevent; 1xb are obsolete.
        PREVENT prevent: u8 = Field::bits(4, 1, 2);
    }
}

cdb! {
    /// SANITIZE (SBC-3 §5.19); the service action is a field (OVERWRITE, BLOCK ERASE,
    /// CRYPTOGRAPHIC ERASE, EXIT FAILURE MODE: `opcode::sanitize`).
    Sanitize = op::SANITIZE;
    [10] sa None;
    {
        /// IMMED: GOOD once the parameters are checked and the sanitize started.
        IMMED immed: bool = Field::flag(1, 7);
        /// AUSE: allow EXIT FAILURE MODE after a failed sanitize.
        AUSE ause: bool = Field::flag(1, 5);
        SERVICE_ACTION service_action: u8 = SERVICE_ACTION;
        PARAMETER_LIST_LENGTH parameter_list_length: u16 = Field::bytes(7, 2);
    }
}

impl Sanitize {
    /// CDB usage data for one service action.
    pub const fn usage(sa: u8) -> [u8; 10] {
        with_service_action(Self::USAGE, sa)
    }
}

cdb! {
    /// READ DEFECT DATA(10) (SBC-3 §5.12).
    ReadDefectData10 = op::READ_DEFECT_DATA_10;
    [10] sa None;
    {
        /// REQ_PLIST: return the primary defect list.
        REQ_PLIST req_plist: bool = Field::flag(2, 4);
        /// REQ_GLIST: return the grown defect list.
        REQ_GLIST req_glist: bool = Field::flag(2, 3);
        DEFECT_LIST_FORMAT defect_list_format: u8 = Field::bits(2, 2, 3);
        ALLOCATION_LENGTH allocation_length: u16 = Field::bytes(7, 2);
    }
}

cdb! {
    /// READ DEFECT DATA(12) (SBC-3 §5.13).
    ReadDefectData12 = op::READ_DEFECT_DATA_12;
    [12] sa None;
    {
        /// REQ_PLIST: return the primary defect list.
        REQ_PLIST req_plist: bool = Field::flag(1, 4);
        /// REQ_GLIST: return the grown defect list.
        REQ_GLIST req_glist: bool = Field::flag(1, 3);
        DEFECT_LIST_FORMAT defect_list_format: u8 = Field::bits(1, 2, 3);
        ADDRESS_DESCRIPTOR_INDEX address_descriptor_index: u32 = Field::bytes(2, 4);
        ALLOCATION_LENGTH allocation_length: u32 = Field::bytes(6, 4);
    }
}
