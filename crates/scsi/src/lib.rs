//! Pure SCSI encodings shared by the target engine and the initiator (SAM-5, SPC-4, SBC-3).
//! No I/O here.
//!
//! * [`status`] — SAM-5 §5.3 status codes.
//! * [`opcode`] — operation codes and service actions (SPC-4 Annex D, SBC-3 §5).
//! * [`sense`] — sense keys, additional sense codes and the [`sense::Sense`] value with its
//!   fixed / descriptor encodings and parser (SPC-4 §4.5).
//! * [`pr`] — persistent reservation codes and iSCSI TransportIDs (SPC-4 §6.15, §6.16, §7.6.4.6).
//! * [`alua`] — ALUA access states, supported-state bits, status codes and access types, with
//!   their names and the one parser for them (SPC-4 §5.11).
//! * [`lun`] — the 8-byte single-level LUN and [`lun::MAX_LUN`] (SAM-5 §4.7).
//! * [`cdb`] — CDB length by group code, field readers that never panic, and one typed struct
//!   per supported CDB: its field offsets, CDB usage data, `parse` and `encode` (SPC-4 §4.2,
//!   §6.35.3).

pub mod alua;
pub mod cdb;
pub mod lun;
pub mod opcode;
pub mod pr;
pub mod sense;

pub use sense::{Asc, FieldPointer, Sense, SenseParseError};

/// SAM-5 status codes.
pub mod status {
    pub const GOOD: u8 = 0x00;
    pub const CHECK_CONDITION: u8 = 0x02;
    pub const CONDITION_MET: u8 = 0x04;
    pub const BUSY: u8 = 0x08;
    pub const RESERVATION_CONFLICT: u8 = 0x18;
    pub const TASK_SET_FULL: u8 = 0x28;
    pub const ACA_ACTIVE: u8 = 0x30;
    pub const TASK_ABORTED: u8 = 0x40;
}

/// Peripheral device types (SPC-4 §6.4.2 table 140).
pub mod device_type {
    pub const DIRECT_ACCESS: u8 = 0x00;
    /// "Unknown or no device type", used with peripheral qualifier 011b for absent LUs.
    pub const UNKNOWN: u8 = 0x1F;
}

/// Version descriptors (SPC-4 §6.4.2 table 143) advertised in standard INQUIRY data.
pub mod version_descriptor {
    pub const SAM_5: u16 = 0x00A0;
    pub const SPC_4: u16 = 0x0460;
    pub const SBC_3: u16 = 0x04C0;
    pub const ISCSI: u16 = 0x0960;
}
