//! Reservation CDBs: PERSISTENT RESERVE IN (SPC-4 §6.15) and OUT (§6.16), whose service
//! actions are fields (`pr::in_sa`, `pr::out_sa`), and SPC-2 RESERVE / RELEASE (6)/(10)
//! (SPC-2 §7.21-7.22), of which no field is supported (third-party and extent reservations).

use super::{with_service_action, Field, SERVICE_ACTION};
use crate::opcode as op;

cdb! {
    /// PERSISTENT RESERVE IN (SPC-4 §6.15).
    PersistentReserveIn = op::PERSISTENT_RESERVE_IN;
    [10] sa None;
    {
        SERVICE_ACTION service_action: u8 = SERVICE_ACTION;
        ALLOCATION_LENGTH allocation_length: u16 = Field::bytes(7, 2);
    }
}

impl PersistentReserveIn {
    /// CDB usage data for one service action.
    pub const fn usage(sa: u8) -> [u8; 10] {
        with_service_action(Self::USAGE, sa)
    }
}

cdb! {
    /// PERSISTENT RESERVE OUT (SPC-4 §6.16).
    PersistentReserveOut = op::PERSISTENT_RESERVE_OUT;
    [10] sa None;
    {
        SERVICE_ACTION service_action: u8 = SERVICE_ACTION;
        /// SCOPE: only logical unit scope (0h) exists.
        SCOPE scope: u8 = Field::bits(2, 7, 4);
        /// TYPE: the persistent reservation type (`pr::kind`).
        TYPE kind: u8 = Field::bits(2, 3, 4);
        PARAMETER_LIST_LENGTH parameter_list_length: u32 = Field::bytes(5, 4);
    }
}

impl PersistentReserveOut {
    /// CDB usage data for one service action.
    pub const fn usage(sa: u8) -> [u8; 10] {
        with_service_action(Self::USAGE, sa)
    }
}

cdb! {
    /// RESERVE(6) (SPC-2).
    Reserve6 = op::RESERVE_6,
    /// RELEASE(6) (SPC-2).
    Release6 = op::RELEASE_6;
    [6] sa None;
    {}
}

cdb! {
    /// RESERVE(10) (SPC-2).
    Reserve10 = op::RESERVE_10,
    /// RELEASE(10) (SPC-2).
    Release10 = op::RELEASE_10;
    [10] sa None;
    {}
}
