//! Persistent reservation encodings shared by target and initiator: PERSISTENT RESERVE IN /
//! OUT service actions and reservation types (SPC-4 §6.15, §6.16), and iSCSI TransportIDs
//! (SPC-4 §7.6.4.6: format 00b `name`, format 01b `name,i,0x<ISID>`).

/// PERSISTENT RESERVE IN service actions (SPC-4 §6.15.1 table 164).
pub mod in_sa {
    pub const READ_KEYS: u8 = 0x00;
    pub const READ_RESERVATION: u8 = 0x01;
    pub const REPORT_CAPABILITIES: u8 = 0x02;
    pub const READ_FULL_STATUS: u8 = 0x03;
}

/// PERSISTENT RESERVE OUT service actions (SPC-4 §6.16.2 table 183).
pub mod out_sa {
    pub const REGISTER: u8 = 0x00;
    pub const RESERVE: u8 = 0x01;
    pub const RELEASE: u8 = 0x02;
    pub const CLEAR: u8 = 0x03;
    pub const PREEMPT: u8 = 0x04;
    pub const PREEMPT_AND_ABORT: u8 = 0x05;
    pub const REGISTER_AND_IGNORE_EXISTING_KEY: u8 = 0x06;
    pub const REGISTER_AND_MOVE: u8 = 0x07;
    pub const REPLACE_LOST_RESERVATION: u8 = 0x08;
}

/// Persistent reservation type codes (SPC-4 §6.15.3.4 table 168).
pub mod kind {
    pub const WRITE_EXCLUSIVE: u8 = 0x1;
    pub const EXCLUSIVE_ACCESS: u8 = 0x3;
    pub const WRITE_EXCLUSIVE_REGISTRANTS_ONLY: u8 = 0x5;
    pub const EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: u8 = 0x6;
    pub const WRITE_EXCLUSIVE_ALL_REGISTRANTS: u8 = 0x7;
    pub const EXCLUSIVE_ACCESS_ALL_REGISTRANTS: u8 = 0x8;

    /// One of the six defined types.
    pub fn is_valid(t: u8) -> bool {
        matches!(t, 1 | 3 | 5 | 6 | 7 | 8)
    }

    /// Registrants-only types (every registrant may access, one holder).
    pub fn is_registrants_only(t: u8) -> bool {
        matches!(t, 5 | 6)
    }

    /// All-registrants types (every registrant is a reservation holder).
    pub fn is_all_registrants(t: u8) -> bool {
        matches!(t, 7 | 8)
    }
}

/// SCSI protocol identifier of iSCSI (SPC-4 §7.6.1 table 362).
pub const PROTOCOL_ISCSI: u8 = 0x5;

/// An iSCSI TransportID: an initiator device (format 00b, `isid == None`) or an initiator
/// port (format 01b).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IscsiTransportId {
    pub name: String,
    pub isid: Option<[u8; 6]>,
}

/// Why a TransportID could not be parsed: `offset` is the byte within the buffer handed to
/// [`IscsiTransportId::parse`] that is wrong (for a field pointer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportIdError {
    pub offset: usize,
    pub bit: Option<u8>,
}

/// Longest iSCSI name (RFC 7143 §4.2.7.1: 223 bytes).
pub const MAX_ISCSI_NAME: usize = 223;

impl IscsiTransportId {
    /// Encode: protocol identifier 5, format 01b with an ISID else 00b; the name string is
    /// NUL-terminated and padded with NULs to a multiple of 4 bytes, at least 20 bytes
    /// (SPC-4 §7.6.4.6).
    pub fn encode(&self) -> Vec<u8> {
        let mut s = self.name.clone().into_bytes();
        if let Some(isid) = self.isid {
            s.extend_from_slice(b",i,0x");
            for b in isid {
                s.extend_from_slice(format!("{b:02x}").as_bytes());
            }
        }
        s.push(0);
        let padded = s.len().next_multiple_of(4).max(20);
        s.resize(padded, 0);
        let fmt = if self.isid.is_some() { 0x40 } else { 0x00 };
        let mut out = vec![fmt | PROTOCOL_ISCSI, 0];
        out.extend_from_slice(&(padded as u16).to_be_bytes());
        out.extend_from_slice(&s);
        out
    }

    /// Parse one TransportID at the start of `b`; returns it and its length in bytes.
    pub fn parse(b: &[u8]) -> Result<(IscsiTransportId, usize), TransportIdError> {
        let err = |offset, bit| TransportIdError { offset, bit };
        let (Some(&b0), Some(&hi), Some(&lo)) = (b.first(), b.get(2), b.get(3)) else {
            return Err(err(b.len().min(2), None));
        };
        if b0 & 0x0F != PROTOCOL_ISCSI {
            return Err(err(0, Some(3)));
        }
        let format = b0 >> 6;
        if format > 1 || b0 & 0x30 != 0 {
            return Err(err(0, Some(7)));
        }
        let add = usize::from(u16::from_be_bytes([hi, lo]));
        let total = 4 + add;
        let Some(body) = b.get(4..total) else {
            return Err(err(2, None));
        };
        // The string ends at its first NUL, which must lie within the descriptor.
        let Some(nul) = body.iter().position(|&c| c == 0) else {
            return Err(err(2, None));
        };
        let text = &body[..nul];
        if !text.iter().all(|c| (0x21..=0x7E).contains(c)) {
            return Err(err(4, None));
        }
        let text = std::str::from_utf8(text).map_err(|_| err(4, None))?;
        let (name, isid) = if format == 1 {
            let lower = text.to_ascii_lowercase();
            let Some(at) = lower.rfind(",i,0x") else {
                return Err(err(4, None));
            };
            let hex = &text[at + 5..];
            let isid = parse_isid(hex).ok_or(err(4 + at + 5, None))?;
            (&text[..at], Some(isid))
        } else {
            (text, None)
        };
        if name.is_empty() || name.len() > MAX_ISCSI_NAME || name.contains(',') {
            return Err(err(4, None));
        }
        Ok((
            IscsiTransportId {
                name: name.to_string(),
                isid,
            },
            total,
        ))
    }
}

fn parse_isid(hex: &str) -> Option<[u8; 6]> {
    if hex.len() != 12 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 6];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_round_trip_and_pad_to_four() {
        for isid in [None, Some([0x40, 0, 1, 2, 3, 0xAB])] {
            let t = IscsiTransportId {
                name: "iqn.2024-01.org.example:host".into(),
                isid,
            };
            let e = t.encode();
            assert_eq!(e.len() % 4, 0);
            assert_eq!(e[0] >> 6, u8::from(isid.is_some()));
            assert_eq!(IscsiTransportId::parse(&e), Ok((t, e.len())));
        }
        let short = IscsiTransportId {
            name: "iqn.a".into(),
            isid: None,
        };
        assert_eq!(short.encode().len(), 24);
    }

    #[test]
    fn isid_is_case_insensitive_and_malformed_ids_point_at_the_fault() {
        let mut raw = vec![0x45, 0, 0, 24];
        raw.extend_from_slice(b"iqn.x,I,0X40000000ABcd\0\0");
        raw.truncate(28);
        let (t, n) = IscsiTransportId::parse(&raw).expect("parses");
        assert_eq!(n, 28);
        assert_eq!(t.isid, Some([0x40, 0, 0, 0, 0xAB, 0xCD]));
        // Wrong protocol, reserved format, no NUL, bad ISID, truncated.
        assert_eq!(
            IscsiTransportId::parse(&[0x06, 0, 0, 4, b'a', 0, 0, 0])
                .map(|x| x.1)
                .err()
                .map(|e| e.offset),
            Some(0)
        );
        assert!(IscsiTransportId::parse(&[0x85, 0, 0, 4, b'a', 0, 0, 0]).is_err());
        assert!(IscsiTransportId::parse(&[0x05, 0, 0, 4, b'a', b'b', b'c', b'd']).is_err());
        let mut bad = vec![0x45, 0, 0, 12];
        bad.extend_from_slice(b"iqn.x,i,0x1\0");
        assert!(IscsiTransportId::parse(&bad).is_err());
        assert!(IscsiTransportId::parse(&[0x05, 0, 0, 40, b'a', 0]).is_err());
        assert!(IscsiTransportId::parse(&[0x05, 0, 0, 4, 0, 0, 0, 0]).is_err());
    }
}
