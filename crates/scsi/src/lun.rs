//! The 8-byte LUN (SAM-5 §4.7) as ironlun writes and reads it: single-level LUNs only, with
//! peripheral device addressing (§4.7.7.3, method 00b, bus identifier 0) below 256 and flat
//! space addressing (§4.7.7.5, method 01b) up to [`MAX_LUN`]; bytes 2..8 (the second, third
//! and fourth levels) are zero.
//!
//! Used for the LUN field of an iSCSI PDU (RFC 7143 §11.2.1.3) and the LUN list of REPORT
//! LUNS (SPC-4 §6.33.2): [`encode`] writes, [`decode`] reads strictly, and [`decode_or_raw`]
//! is the target's lenient read of a PDU's LUN field.

/// The largest LUN a single-level address holds: 14 bits of flat space addressing.
pub const MAX_LUN: u64 = 0x3FFF;

/// ADDRESS METHOD (byte 0 bits 7..6) of peripheral device addressing.
const PERIPHERAL: u8 = 0b00;
/// ADDRESS METHOD of flat space addressing.
const FLAT_SPACE: u8 = 0b01;

/// Why 8 bytes are not a single-level LUN of one of the two forms above.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LunError {
    /// Logical unit addressing (10b) or extended logical unit addressing (11b).
    #[error("LUN address method {0:02b}b is neither peripheral device nor flat space")]
    AddressMethod(u8),
    /// Peripheral device addressing through a bus (a non-zero BUS IDENTIFIER).
    #[error("peripheral device addressing with bus identifier {0}")]
    Bus(u8),
    /// A second, third or fourth level (bytes 2..8) that is not zero.
    #[error("LUN bytes 2..8 are not zero (a second-level address)")]
    SecondLevel,
}

/// The 8-byte LUN of `lun`: peripheral device addressing below 256, flat space addressing up
/// to [`MAX_LUN`]. Above [`MAX_LUN`] it is the 8 bytes of the number itself (big-endian),
/// which [`decode`] refuses and [`decode_or_raw`] reads back (below 2^48), so a LUN out of
/// range never aliases one in range.
pub fn encode(lun: u64) -> [u8; 8] {
    let mut out = [0u8; 8];
    if lun < 256 {
        out[1] = lun as u8;
    } else if lun <= MAX_LUN {
        out[0] = (FLAT_SPACE << 6) | (lun >> 8) as u8;
        out[1] = lun as u8;
    } else {
        out = lun.to_be_bytes();
    }
    out
}

/// The LUN number of a single-level peripheral device (bus 0) or flat space address; any
/// other address method, a bus, or a non-zero byte in 2..8 is an error.
pub fn decode(b: [u8; 8]) -> Result<u64, LunError> {
    let lun = match b[0] >> 6 {
        PERIPHERAL if b[0] != 0 => return Err(LunError::Bus(b[0] & 0x3F)),
        PERIPHERAL => u64::from(b[1]),
        FLAT_SPACE => (u64::from(b[0] & 0x3F) << 8) | u64::from(b[1]),
        method => return Err(LunError::AddressMethod(method)),
    };
    if b[2..].iter().any(|&x| x != 0) {
        return Err(LunError::SecondLevel);
    }
    Ok(lun)
}

/// The target's read of a PDU's LUN field: [`decode`], or for anything it refuses the 8 bytes
/// as one big-endian number, which the port looks up like any LUN number (above [`MAX_LUN`]
/// it names no LUN, so the command gets LOGICAL UNIT NOT SUPPORTED). The inverse of
/// [`encode`] for every LUN below 2^48.
pub fn decode_or_raw(b: [u8; 8]) -> u64 {
    decode(b).unwrap_or_else(|_| u64::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn luns_use_peripheral_then_flat_space_addressing() {
        assert_eq!(encode(0), [0; 8]);
        assert_eq!(encode(1), [0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(255), [0, 0xFF, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(256), [0x41, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(300), [0x41, 0x2C, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(MAX_LUN), [0x7F, 0xFF, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(MAX_LUN + 1), [0, 0, 0, 0, 0, 0, 0x40, 0]);
    }

    #[test]
    fn decode_reads_both_single_level_forms() {
        assert_eq!(decode([0, 7, 0, 0, 0, 0, 0, 0]), Ok(7));
        assert_eq!(decode([0x41, 0x2C, 0, 0, 0, 0, 0, 0]), Ok(300));
        // Flat space addressing may also carry a LUN below 256.
        assert_eq!(decode([0x40, 0x05, 0, 0, 0, 0, 0, 0]), Ok(5));
    }

    #[test]
    fn decode_refuses_other_forms() {
        assert_eq!(
            decode([0x01, 0x00, 0, 0, 0, 0, 0, 0]),
            Err(LunError::Bus(1))
        );
        assert_eq!(
            decode([0x80, 0x01, 0, 0, 0, 0, 0, 0]),
            Err(LunError::AddressMethod(0b10))
        );
        // The REPORT LUNS well-known LUN (extended addressing).
        assert_eq!(
            decode([0xC1, 0x01, 0, 0, 0, 0, 0, 0]),
            Err(LunError::AddressMethod(0b11))
        );
        assert_eq!(decode([0, 1, 0, 2, 0, 0, 0, 0]), Err(LunError::SecondLevel));
    }

    #[test]
    fn decode_or_raw_keeps_what_it_cannot_decode() {
        assert_eq!(decode_or_raw([0x41, 0x2C, 0, 0, 0, 0, 0, 0]), 300);
        assert_eq!(
            decode_or_raw([0x01, 0x00, 0, 0, 0, 0, 0, 0]),
            0x0100_0000_0000_0000
        );
        assert_eq!(decode_or_raw([0, 0, 0, 0, 0, 0, 0x40, 0]), MAX_LUN + 1);
    }

    proptest! {
        #[test]
        fn single_level_luns_round_trip(lun in 0..=MAX_LUN) {
            prop_assert_eq!(decode(encode(lun)), Ok(lun));
            prop_assert_eq!(decode_or_raw(encode(lun)), lun);
        }

        #[test]
        fn luns_out_of_range_are_refused_and_kept_raw(lun in (MAX_LUN + 1)..(1u64 << 48)) {
            prop_assert!(decode(encode(lun)).is_err());
            prop_assert_eq!(decode_or_raw(encode(lun)), lun);
        }

        #[test]
        fn a_non_zero_second_level_is_refused(
            lun in 0..=MAX_LUN,
            at in 2usize..8,
            v in 1u8..=255,
        ) {
            let mut b = encode(lun);
            b[at] = v;
            prop_assert_eq!(decode(b), Err(LunError::SecondLevel));
        }
    }
}
