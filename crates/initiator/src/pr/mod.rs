//! Persistent reservations from the initiator side (SPC-4 §5.13). In dependency order:
//!
//! * here: the reservation types (§6.15.3.4, Table 168) and the big-endian field readers of
//!   the parsers;
//! * `transport_id`: iSCSI TransportIDs (§7.6.4.6, formats 00b and 01b) and other
//!   protocols' kept raw;
//! * `prout`: PERSISTENT RESERVE OUT (§6.16): CDB, basic parameter list (§6.16.3) with
//!   SPEC_I_PT TransportIDs, REGISTER AND MOVE parameter list (§6.16.4);
//! * `prin`: PERSISTENT RESERVE IN (§6.15): CDB and the READ KEYS, READ RESERVATION, REPORT
//!   CAPABILITIES and READ FULL STATUS parsers;
//! * `commands`: the service actions on a [`Session`](crate::Session).
//!
//! The codes (service actions, type codes, the iSCSI protocol identifier) are the ones of
//! `ironlun_scsi::pr`, which the target uses too. Encoders produce exactly the bytes SPC-4
//! lays out; parsers are strict, because their job is to judge a target: anything
//! inconsistent is an [`Error::Protocol`].

use ironlun_scsi::pr::kind;

use crate::{Error, Result};

mod commands;
mod prin;
mod prout;
#[cfg(test)]
mod tests;
mod transport_id;

/// PERSISTENT RESERVE IN/OUT service actions and the iSCSI protocol identifier: the codes
/// the target uses too.
pub use ironlun_scsi::pr::{in_sa, out_sa, PROTOCOL_ISCSI};
pub use prin::{
    prin_cdb, Capabilities, FullStatus, FullStatusDescriptor, ReadKeys, ReadReservation,
    Reservation, PRIN_ALLOC,
};
pub use prout::{prout_cdb, ProutParams, RegisterAndMoveParams, RegisterFlags};
pub use transport_id::{isid_hex, TransportId};

/// The persistent reservation types (SPC-4 Table 168).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrType {
    WriteExclusive,
    ExclusiveAccess,
    WriteExclusiveRegistrantsOnly,
    ExclusiveAccessRegistrantsOnly,
    WriteExclusiveAllRegistrants,
    ExclusiveAccessAllRegistrants,
}

impl PrType {
    pub const ALL: [PrType; 6] = [
        PrType::WriteExclusive,
        PrType::ExclusiveAccess,
        PrType::WriteExclusiveRegistrantsOnly,
        PrType::ExclusiveAccessRegistrantsOnly,
        PrType::WriteExclusiveAllRegistrants,
        PrType::ExclusiveAccessAllRegistrants,
    ];

    /// The TYPE code.
    pub fn code(self) -> u8 {
        match self {
            PrType::WriteExclusive => kind::WRITE_EXCLUSIVE,
            PrType::ExclusiveAccess => kind::EXCLUSIVE_ACCESS,
            PrType::WriteExclusiveRegistrantsOnly => kind::WRITE_EXCLUSIVE_REGISTRANTS_ONLY,
            PrType::ExclusiveAccessRegistrantsOnly => kind::EXCLUSIVE_ACCESS_REGISTRANTS_ONLY,
            PrType::WriteExclusiveAllRegistrants => kind::WRITE_EXCLUSIVE_ALL_REGISTRANTS,
            PrType::ExclusiveAccessAllRegistrants => kind::EXCLUSIVE_ACCESS_ALL_REGISTRANTS,
        }
    }

    pub fn from_code(code: u8) -> Option<PrType> {
        PrType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Exclusive Access flavour (reads are restricted too), as opposed to Write Exclusive.
    pub fn exclusive_access(self) -> bool {
        matches!(
            self,
            PrType::ExclusiveAccess
                | PrType::ExclusiveAccessRegistrantsOnly
                | PrType::ExclusiveAccessAllRegistrants
        )
    }

    /// Registrants Only or All Registrants: every registered I_T nexus gets access.
    pub fn registrants_have_access(self) -> bool {
        !matches!(self, PrType::WriteExclusive | PrType::ExclusiveAccess)
    }

    /// All Registrants: every registrant is a reservation holder (SPC-4 §5.13.10).
    pub fn all_registrants(self) -> bool {
        matches!(
            self,
            PrType::WriteExclusiveAllRegistrants | PrType::ExclusiveAccessAllRegistrants
        )
    }

    /// The bit of this type in REPORT CAPABILITIES' PERSISTENT RESERVATION TYPE MASK
    /// (bytes 4..6 read as a big-endian u16; SPC-4 Table 169).
    pub fn mask_bit(self) -> u16 {
        match self {
            PrType::WriteExclusiveAllRegistrants => 0x8000,
            PrType::ExclusiveAccessRegistrantsOnly => 0x4000,
            PrType::WriteExclusiveRegistrantsOnly => 0x2000,
            PrType::ExclusiveAccess => 0x0800,
            PrType::WriteExclusive => 0x0200,
            PrType::ExclusiveAccessAllRegistrants => 0x0001,
        }
    }
}

/// Big-endian fields of parameter data; a field past the end is a protocol error.
pub(super) fn be16(b: &[u8], at: usize) -> Result<u16> {
    match b.get(at..at + 2) {
        Some(s) => Ok(u16::from_be_bytes([s[0], s[1]])),
        None => Err(Error::Protocol(format!("no 16-bit field at offset {at}"))),
    }
}

pub(super) fn be32(b: &[u8], at: usize) -> Result<u32> {
    match b.get(at..at + 4) {
        Some(s) => Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]])),
        None => Err(Error::Protocol(format!("no 32-bit field at offset {at}"))),
    }
}

pub(super) fn be64(b: &[u8], at: usize) -> Result<u64> {
    match b.get(at..at + 8) {
        Some(s) => {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            Ok(u64::from_be_bytes(a))
        }
        None => Err(Error::Protocol(format!("no 64-bit field at offset {at}"))),
    }
}
