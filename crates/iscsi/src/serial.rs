//! Serial number arithmetic for CmdSN / StatSN / DataSN (RFC 7143 §4.2.2.1, RFC 1982 with
//! SERIAL_BITS = 32). The 8-byte LUN field is `ironlun_scsi::lun` (SAM-5 §4.7).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_wraps() {
        assert!(sn_lt(0xffff_fff0, 5));
        assert!(sn_gt(5, 0xffff_fff0));
        assert!(sn_le(7, 7));
        assert!(!sn_lt(7, 7));
        assert!(sn_lt(1, 2));
        assert!(!sn_lt(2, 1));
    }
}
