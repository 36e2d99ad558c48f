//! CRC32C header and data digests (RFC 7143 §12.1, polynomial 0x1EDC6F41, RFC 3385).

/// CRC32C of `data`, as put in the HeaderDigest / DataDigest fields (sent little-endian).
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// Continue a CRC32C over another piece (for scattered buffers).
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        // The CRC-32C check value for "123456789" (RFC 3385 / CRC catalogue).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn rfc3720_appendix_b4_vectors() {
        // RFC 3720 B.4: 32 bytes of zeros / ones / incrementing, CRC as stored little-endian.
        assert_eq!(crc32c(&[0u8; 32]).to_le_bytes(), [0xaa, 0x36, 0x91, 0x8a]);
        assert_eq!(
            crc32c(&[0xffu8; 32]).to_le_bytes(),
            [0x43, 0xab, 0xa8, 0x62]
        );
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&inc).to_le_bytes(), [0x4e, 0x79, 0xdd, 0x46]);
    }

    #[test]
    fn append_matches_whole() {
        let a = b"hello ";
        let b = b"world";
        assert_eq!(crc32c_append(crc32c(a), b), crc32c(b"hello world"));
    }
}
