//! SPC-4 primary command CDBs: TEST UNIT READY (§6.47), REQUEST SENSE (§6.39), INQUIRY
//! (§6.6), MODE SELECT (6)/(10) (§6.11, §6.12), MODE SENSE (6)/(10) (§6.13, §6.14), REPORT
//! LUNS (§6.33), REPORT SUPPORTED OPERATION CODES (§6.35) and REPORT SUPPORTED TASK
//! MANAGEMENT FUNCTIONS (§6.36).

use super::Field;
use crate::opcode::{self as op, mi};

cdb! {
    /// TEST UNIT READY (SPC-4 §6.47).
    TestUnitReady = op::TEST_UNIT_READY;
    [6] sa None;
    {}
}

cdb! {
    /// REQUEST SENSE (SPC-4 §6.39).
    RequestSense = op::REQUEST_SENSE;
    [6] sa None;
    {
        /// DESC: descriptor format sense data.
        DESC desc: bool = Field::flag(1, 0);
        ALLOCATION_LENGTH allocation_length: u8 = Field::bytes(4, 1);
    }
}

cdb! {
    /// INQUIRY (SPC-4 §6.6).
    Inquiry = op::INQUIRY;
    [6] sa None;
    {
        /// EVPD: return the vital product data page PAGE CODE names.
        EVPD evpd: bool = Field::flag(1, 0);
        PAGE_CODE page_code: u8 = Field::bytes(2, 1);
        ALLOCATION_LENGTH allocation_length: u16 = Field::bytes(3, 2);
    }
}

cdb! {
    /// MODE SELECT(6) (SPC-4 §6.11).
    ModeSelect6 = op::MODE_SELECT_6;
    [6] sa None;
    {
        /// PF: the pages follow the page format.
        PF pf: bool = Field::flag(1, 4);
        /// SP: save the pages.
        SP sp: bool = Field::flag(1, 0);
        PARAMETER_LIST_LENGTH parameter_list_length: u8 = Field::bytes(4, 1);
    }
}

cdb! {
    /// MODE SELECT(10) (SPC-4 §6.12).
    ModeSelect10 = op::MODE_SELECT_10;
    [10] sa None;
    {
        /// PF: the pages follow the page format.
        PF pf: bool = Field::flag(1, 4);
        /// SP: save the pages.
        SP sp: bool = Field::flag(1, 0);
        PARAMETER_LIST_LENGTH parameter_list_length: u16 = Field::bytes(7, 2);
    }
}

cdb! {
    /// MODE SENSE(6) (SPC-4 §6.13).
    ModeSense6 = op::MODE_SENSE_6;
    [6] sa None;
    {
        /// DBD: no block descriptors.
        DBD dbd: bool = Field::flag(1, 3);
        /// PC: current, changeable, default or saved values (SPC-4 table 172).
        PC pc: u8 = Field::bits(2, 7, 2);
        PAGE_CODE page_code: u8 = Field::bits(2, 5, 6);
        SUBPAGE_CODE subpage_code: u8 = Field::bytes(3, 1);
        ALLOCATION_LENGTH allocation_length: u8 = Field::bytes(4, 1);
    }
}

cdb! {
    /// MODE SENSE(10) (SPC-4 §6.14).
    ModeSense10 = op::MODE_SENSE_10;
    [10] sa None;
    {
        /// LLBAA: long LBA block descriptors allowed.
        LLBAA llbaa: bool = Field::flag(1, 4);
        /// DBD: no block descriptors.
        DBD dbd: bool = Field::flag(1, 3);
        /// PC: current, changeable, default or saved values (SPC-4 table 172).
        PC pc: u8 = Field::bits(2, 7, 2);
        PAGE_CODE page_code: u8 = Field::bits(2, 5, 6);
        SUBPAGE_CODE subpage_code: u8 = Field::bytes(3, 1);
        ALLOCATION_LENGTH allocation_length: u16 = Field::bytes(7, 2);
    }
}

cdb! {
    /// REPORT LUNS (SPC-4 §6.33).
    ReportLuns = op::REPORT_LUNS;
    [12] sa None;
    {
        SELECT_REPORT select_report: u8 = Field::bytes(2, 1);
        ALLOCATION_LENGTH allocation_length: u32 = Field::bytes(6, 4);
    }
}

cdb! {
    /// REPORT SUPPORTED OPERATION CODES (SPC-4 §6.35), a MAINTENANCE IN service action.
    ReportSupportedOpcodes = op::MAINTENANCE_IN;
    [12] sa Some(mi::REPORT_SUPPORTED_OPERATION_CODES);
    {
        /// RCTD: return command timeouts descriptors.
        RCTD rctd: bool = Field::flag(2, 7);
        REPORTING_OPTIONS reporting_options: u8 = Field::bits(2, 2, 3);
        REQUESTED_OPERATION_CODE requested_operation_code: u8 = Field::bytes(3, 1);
        REQUESTED_SERVICE_ACTION requested_service_action: u16 = Field::bytes(4, 2);
        ALLOCATION_LENGTH allocation_length: u32 = Field::bytes(6, 4);
    }
}

cdb! {
    /// REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (SPC-4 §6.36), a MAINTENANCE IN service
    /// action.
    ReportSupportedTmfs = op::MAINTENANCE_IN;
    [12] sa Some(mi::REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS);
    {
        /// REPD: return the extended parameter data.
        REPD repd: bool = Field::flag(2, 7);
        ALLOCATION_LENGTH allocation_length: u32 = Field::bytes(6, 4);
    }
}
