//! Serial number arithmetic for CmdSN / StatSN / DataSN (RFC 7143 §4.2.2.1, RFC 1982 with
//! SERIAL_BITS = 32) and the 8-byte SAM LUN field (SAM-5 §4.7, as iSCSI carries it, §11.3.4).

/// `a < b` in 32-bit serial arithmetic.
pub fn sn_lt(a: u32, b: u32) -> bool {
    a != b && (b.wrapping_sub(a) as i32) > 0
}

/// `a <= b` in 32-bit serial arithmetic.
pub fn sn_le(a: u32, b: u32) -> bool {
    a == b || sn_lt(a, b)
}

/// `a > b` in 32-bit serial arithmetic.
pub fn sn_gt(a: u32, b: u32) -> bool {
    sn_lt(b, a)
}

/// Decode an 8-byte LUN field to a LUN number: peripheral (00b) and flat (01b) single-level
/// addressing give the 14-bit LUN; any other form is returned as the raw 64-bit value, which
/// maps to no configured LUN (so the engine reports LOGICAL UNIT NOT SUPPORTED).
pub fn lun_from_bytes(b: [u8; 8]) -> u64 {
    let single_level = b[2..].iter().all(|&x| x == 0);
    match b[0] >> 6 {
        0 if single_level && b[0] == 0 => u64::from(b[1]),
        1 if single_level => (u64::from(b[0] & 0x3f) << 8) | u64::from(b[1]),
        _ => u64::from_be_bytes(b),
    }
}

/// Encode a LUN number: peripheral addressing below 256, flat addressing up to 16383, the raw
/// 64-bit value above (the inverse of [`lun_from_bytes`]).
pub fn lun_to_bytes(lun: u64) -> [u8; 8] {
    let mut b = [0u8; 8];
    if lun < 256 {
        b[1] = lun as u8;
    } else if lun < 0x4000 {
        b[0] = 0x40 | (lun >> 8) as u8;
        b[1] = lun as u8;
    } else {
        b = lun.to_be_bytes();
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn serial_wraps() {
        assert!(sn_lt(0xffff_fff0, 5));
        assert!(sn_gt(5, 0xffff_fff0));
        assert!(sn_le(7, 7));
        assert!(!sn_lt(7, 7));
        assert!(sn_lt(1, 2));
        assert!(!sn_lt(2, 1));
    }

    #[test]
    fn lun_forms() {
        assert_eq!(lun_to_bytes(0), [0; 8]);
        assert_eq!(lun_to_bytes(5), [0, 5, 0, 0, 0, 0, 0, 0]);
        assert_eq!(lun_to_bytes(300), [0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
        assert_eq!(lun_from_bytes([0x41, 0x2c, 0, 0, 0, 0, 0, 0]), 300);
        // Peripheral addressing with a non-zero bus is not a single-level LUN we map.
        assert_ne!(lun_from_bytes([0x01, 0x00, 0, 0, 0, 0, 0, 0]), 0);
    }

    proptest! {
        #[test]
        fn lun_roundtrip(lun in 0u64..0x4000) {
            prop_assert_eq!(lun_from_bytes(lun_to_bytes(lun)), lun);
        }
    }
}
