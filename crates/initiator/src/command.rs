//! The outcome of a SCSI command as the session hands it back: SAM status, sense data, the
//! reassembled Data-In and the residual count of the SCSI Response (RFC 7143 §11.4; SAM-5
//! §5.3). The session produces it; the command helpers (`scsi`, `pr`, `alua`) read it.

use bytes::Bytes;
use ironlun_scsi::{status, Sense};

use crate::{Error, Result};

/// Residual count of a command (§11.4.5): the U / O bits with the count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Residual {
    #[default]
    None,
    /// Fewer bytes moved than the expected transfer length, by this many.
    Underflow(u32),
    /// The command wanted this many more bytes than expected.
    Overflow(u32),
}

impl Residual {
    /// From the U and O bits and the Residual Count of a SCSI Response or final Data-In
    /// (§11.4.5.1, §11.7.5).
    pub fn from_flags(underflow: bool, overflow: bool, count: u32) -> Residual {
        if underflow {
            Residual::Underflow(count)
        } else if overflow {
            Residual::Overflow(count)
        } else {
            Residual::None
        }
    }
}

/// The outcome of a SCSI command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandResult {
    /// iSCSI Response field (0 = command completed at target, §11.4.3).
    pub response: u8,
    /// SAM status.
    pub status: u8,
    /// Parsed sense data (fixed or descriptor format), if any was sent and parsed.
    pub sense: Option<Sense>,
    /// The raw sense bytes (after the SenseLength field).
    pub sense_bytes: Bytes,
    /// Data-In as reassembled (up to the highest byte the target sent).
    pub data_in: Bytes,
    pub residual: Residual,
    /// Data-In PDUs the command took.
    pub data_in_pdus: u32,
}

impl CommandResult {
    /// The data, if the status was GOOD (else [`Error::Scsi`] with the sense).
    pub fn good(self) -> Result<Bytes> {
        if self.status == status::GOOD && self.response == 0 {
            Ok(self.data_in)
        } else {
            Err(Error::Scsi {
                status: self.status,
                sense: self.sense,
            })
        }
    }

    /// Sense key / ASC / ASCQ, if there is sense.
    pub fn sense_triple(&self) -> Option<(u8, u8, u8)> {
        self.sense.map(|s| (s.key, s.asc.asc, s.asc.ascq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_maps_status_to_errors() {
        let r = CommandResult {
            response: 0,
            status: status::CHECK_CONDITION,
            sense: Some(Sense::illegal(
                ironlun_scsi::sense::asc::INVALID_FIELD_IN_CDB,
            )),
            sense_bytes: Bytes::new(),
            data_in: Bytes::new(),
            residual: Residual::None,
            data_in_pdus: 0,
        };
        assert_eq!(r.sense_triple(), Some((5, 0x24, 0)));
        assert!(matches!(
            r.good(),
            Err(Error::Scsi {
                status: 2,
                sense: Some(_)
            })
        ));
    }

    #[test]
    fn residual_takes_underflow_before_overflow() {
        assert_eq!(Residual::from_flags(true, false, 7), Residual::Underflow(7));
        assert_eq!(Residual::from_flags(false, true, 7), Residual::Overflow(7));
        assert_eq!(Residual::from_flags(false, false, 7), Residual::None);
    }
}
