//! Asymmetric logical unit access from the initiator side (SPC-4 §5.16). The vocabulary
//! (access states, supported-state bits, status codes, access types) is the one of
//! `ironlun_scsi::alua`, re-exported here. In dependency order:
//!
//! * `rtpg`: REPORT TARGET PORT GROUPS (§6.36, both parameter data formats) and SET TARGET
//!   PORT GROUPS (§6.44): CDBs, parameter lists, parser.
//! * `vpd`: the Device Identification VPD page (§7.8.6) and the TPGS field of standard
//!   INQUIRY data (§6.6.2).
//! * `commands`: those commands on a [`Session`](crate::Session).
//! * `path`: which outcomes ask for a re-read, path ranking and a path chooser in the spirit
//!   of Linux's scsi_dh_alua / multipath-tools' ALUA prioritizer.
//!
//! Parsers are strict (anything inconsistent is an [`Error::Protocol`](crate::Error)) because
//! their job is to judge a target; data cut short by the ALLOCATION LENGTH is not
//! inconsistent and is reported as truncated instead.

mod commands;
mod path;
mod rtpg;
#[cfg(test)]
mod tests;
mod vpd;

pub use ironlun_scsi::alua::{access_type, status_code, support, AccessState, SupportedStates};
pub use path::{alua_priority, needs_reread, rank, PathChooser, PathState};
pub use rtpg::{rtpg_cdb, stpg_cdb, stpg_params, PortGroup, Rtpg, RtpgFormat, StpgDescriptor};
pub use vpd::{Association, Designation, Designator, DeviceIdentification, Tpgs};
