//! CDB helpers (SPC-4 §4.2): CDB length by group code and big-endian field readers.
//!
//! Readers take any slice and treat bytes beyond its end as zero, so a short CDB never panics;
//! callers check the CDB length against [`cdb_len`] first where it matters.

/// The CDB length implied by the operation code's group code (SPC-4 §4.2.5.1), or `None` for
/// reserved / vendor-specific groups and the variable-length opcode 0x7F.
pub fn cdb_len(opcode: u8) -> Option<usize> {
    match opcode >> 5 {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        3 if opcode == crate::opcode::VARIABLE_LENGTH => None,
        _ => None,
    }
}

/// Byte `i` of `b`, zero beyond the end.
pub fn byte(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// Big-endian unsigned integer of `n` (≤ 8) bytes starting at `at`.
pub fn be(b: &[u8], at: usize, n: usize) -> u64 {
    (0..n.min(8)).fold(0u64, |acc, i| (acc << 8) | u64::from(byte(b, at + i)))
}

pub fn be16(b: &[u8], at: usize) -> u16 {
    be(b, at, 2) as u16
}

pub fn be24(b: &[u8], at: usize) -> u32 {
    be(b, at, 3) as u32
}

pub fn be32(b: &[u8], at: usize) -> u32 {
    be(b, at, 4) as u32
}

pub fn be64(b: &[u8], at: usize) -> u64 {
    be(b, at, 8)
}

/// Write `v` big-endian into `out[at..at + n]`, ignoring bytes past the end of `out`.
pub fn put_be(out: &mut [u8], at: usize, n: usize, v: u64) {
    for i in 0..n {
        let shift = 8 * (n - 1 - i);
        if let Some(slot) = out.get_mut(at + i) {
            *slot = if shift >= 64 { 0 } else { (v >> shift) as u8 };
        }
    }
}

/// Largest LUN [`encode_lun`] can represent (14-bit flat space addressing).
pub const MAX_LUN: u64 = 0x3FFF;

/// SAM-5 §4.7 single-level LUN: the 8-byte LUN field for a LUN number: peripheral device
/// addressing below 256, flat space addressing up to [`MAX_LUN`] (higher bits are dropped;
/// callers refuse larger LUNs).
pub fn encode_lun(lun: u64) -> [u8; 8] {
    let mut out = [0u8; 8];
    if lun < 256 {
        out[1] = lun as u8;
    } else {
        out[0] = 0x40 | ((lun >> 8) as u8 & 0x3F);
        out[1] = lun as u8;
    }
    out
}

/// Inverse of [`encode_lun`] for peripheral and flat space addressing of the first level.
/// Other address methods return `None`.
pub fn decode_lun(raw: &[u8; 8]) -> Option<u64> {
    match raw[0] >> 6 {
        0 if raw[0] == 0 => Some(u64::from(raw[1])),
        1 => Some((u64::from(raw[0] & 0x3F) << 8) | u64::from(raw[1])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_codes_give_cdb_lengths() {
        assert_eq!(cdb_len(0x12), Some(6));
        assert_eq!(cdb_len(0x28), Some(10));
        assert_eq!(cdb_len(0x5A), Some(10));
        assert_eq!(cdb_len(0x88), Some(16));
        assert_eq!(cdb_len(0xA8), Some(12));
        assert_eq!(cdb_len(0x7F), None);
        assert_eq!(cdb_len(0xC0), None);
    }

    #[test]
    fn readers_treat_missing_bytes_as_zero() {
        assert_eq!(be32(&[1, 2], 0), 0x0102_0000);
        assert_eq!(be16(&[], 5), 0);
        let mut out = [0u8; 3];
        put_be(&mut out, 1, 4, 0xAABB_CCDD);
        assert_eq!(out, [0, 0xAA, 0xBB]);
    }

    #[test]
    fn lun_encoding_round_trips() {
        for lun in [0u64, 1, 255, 256, 16383] {
            assert_eq!(decode_lun(&encode_lun(lun)), Some(lun));
        }
    }
}
