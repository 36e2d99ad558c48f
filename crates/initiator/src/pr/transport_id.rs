//! TransportIDs (SPC-4 §7.6.4): iSCSI ones (§7.6.4.6, format 00b names the initiator device,
//! 01b the initiator port) encoded as `ironlun_scsi::pr` encodes them for the target and
//! parsed strictly; other protocols' 24-byte ones kept raw.

use ironlun_scsi::pr::{IscsiTransportId, PROTOCOL_ISCSI};

use super::be16;
use crate::{Error, Result};

/// A TransportID (SPC-4 §7.6.4): an initiator port or device as named in parameter data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TransportId {
    /// iSCSI (§7.6.4.6): format 00b names the initiator device (`isid: None`), format 01b
    /// the initiator port (`name,i,0x<ISID>`).
    Iscsi { name: String, isid: Option<[u8; 6]> },
    /// Another protocol's TransportID, kept as received (FC, SAS, SRP, SBP: 24 bytes).
    Other { protocol: u8, bytes: Vec<u8> },
}

fn hex_isid(text: &str) -> Option<[u8; 6]> {
    if text.len() != 12 || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut isid = [0u8; 6];
    for (i, b) in isid.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(isid)
}

/// The ISID as the 12 lower-case hex digits of iSCSI initiator port names (RFC 7143 §4.2.7.2,
/// SPC-4 §7.6.4.6).
pub fn isid_hex(isid: [u8; 6]) -> String {
    isid.iter().map(|b| format!("{b:02x}")).collect()
}

impl TransportId {
    /// Format 00b: the iSCSI initiator device name.
    pub fn iscsi(name: &str) -> TransportId {
        TransportId::Iscsi {
            name: name.to_string(),
            isid: None,
        }
    }

    /// Format 01b: the iSCSI initiator port (name and ISID).
    pub fn iscsi_port(name: &str, isid: [u8; 6]) -> TransportId {
        TransportId::Iscsi {
            name: name.to_string(),
            isid: Some(isid),
        }
    }

    /// FORMAT CODE (bits 7..6 of byte 0).
    pub fn format(&self) -> u8 {
        match self {
            TransportId::Iscsi { isid: Some(_), .. } => 1,
            TransportId::Iscsi { isid: None, .. } => 0,
            TransportId::Other { bytes, .. } => bytes.first().map_or(0, |b| b >> 6),
        }
    }

    /// The bytes of the TransportID. iSCSI: the name (with `,i,0x<ISID>` for format 01b)
    /// NUL-terminated, padded with zeros to a multiple of 4 and to at least 20 bytes of
    /// ADDITIONAL LENGTH (SPC-4 Table 450), as `ironlun_scsi::pr` lays it out.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            TransportId::Iscsi { name, isid } => IscsiTransportId {
                name: name.clone(),
                isid: *isid,
            }
            .encode(),
            TransportId::Other { bytes, .. } => bytes.clone(),
        }
    }

    /// Parse one TransportID at the start of `b`; returns it and its length.
    pub fn parse(b: &[u8]) -> Result<(TransportId, usize)> {
        let b0 = *b
            .first()
            .ok_or_else(|| Error::Protocol("empty TransportID".into()))?;
        let protocol = b0 & 0x0f;
        let format = b0 >> 6;
        if protocol != PROTOCOL_ISCSI {
            // Every other protocol's TransportID is 24 bytes (SPC-4 §7.6.4.2-5, .7).
            let bytes = b
                .get(..24)
                .ok_or_else(|| Error::Protocol("TransportID shorter than 24 bytes".into()))?;
            return Ok((
                TransportId::Other {
                    protocol,
                    bytes: bytes.to_vec(),
                },
                24,
            ));
        }
        if b0 & 0x30 != 0 || format > 1 {
            return Err(Error::Protocol(format!(
                "iSCSI TransportID byte 0 {b0:#04x}: format {format} or reserved bits"
            )));
        }
        let add = usize::from(be16(b, 2)?);
        if add < 20 || add % 4 != 0 {
            return Err(Error::Protocol(format!(
                "iSCSI TransportID ADDITIONAL LENGTH {add} (must be >= 20, multiple of 4)"
            )));
        }
        let field = b
            .get(4..4 + add)
            .ok_or_else(|| Error::Protocol(format!("iSCSI TransportID of {add} bytes cut")))?;
        let nul = field
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| Error::Protocol("iSCSI TransportID name not NUL-terminated".into()))?;
        if field[nul..].iter().any(|&c| c != 0) {
            return Err(Error::Protocol(
                "iSCSI TransportID padding is not zero".into(),
            ));
        }
        let text = std::str::from_utf8(&field[..nul])
            .map_err(|_| Error::Protocol("iSCSI TransportID name is not UTF-8".into()))?;
        let tid = if format == 1 {
            let (name, isid) = text.rsplit_once(",i,0x").ok_or_else(|| {
                Error::Protocol(format!("format 01b TransportID {text:?} without ,i,0x"))
            })?;
            let isid = hex_isid(isid)
                .ok_or_else(|| Error::Protocol(format!("TransportID ISID {isid:?}")))?;
            TransportId::iscsi_port(name, isid)
        } else {
            TransportId::iscsi(text)
        };
        Ok((tid, 4 + add))
    }
}
