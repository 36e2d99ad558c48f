//! CHAP authentication for iSCSI (RFC 7143 §12.1.3, RFC 1994): algorithm selection (CHAP_A),
//! challenge / response computation, binary value encodings (§6.1: "0x" hex, "0b" base64)
//! and constant-time response checking.
//!
//! Response = H(CHAP_I as one octet || secret || challenge). Algorithms: 5 = MD5 (RFC 1994),
//! 7 = SHA-256 (the IANA PPP authentication-algorithm number RFC 7143 implementations use).
//! Randomness is the caller's: this crate does no I/O.

use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// CHAP digest algorithms we implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChapAlgorithm {
    Md5 = 5,
    Sha256 = 7,
}

impl ChapAlgorithm {
    pub fn from_code(code: u64) -> Option<ChapAlgorithm> {
        match code {
            5 => Some(ChapAlgorithm::Md5),
            7 => Some(ChapAlgorithm::Sha256),
            _ => None,
        }
    }
    pub fn code(self) -> u8 {
        self as u8
    }
    /// Digest length in bytes (also a sensible challenge length).
    pub fn digest_len(self) -> usize {
        match self {
            ChapAlgorithm::Md5 => 16,
            ChapAlgorithm::Sha256 => 32,
        }
    }
    /// The CHAP response for identifier `id`, `secret` and `challenge`.
    pub fn response(self, id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
        match self {
            ChapAlgorithm::Md5 => {
                let mut h = Md5::new();
                h.update([id]);
                h.update(secret);
                h.update(challenge);
                h.finalize().to_vec()
            }
            ChapAlgorithm::Sha256 => {
                let mut h = Sha256::new();
                h.update([id]);
                h.update(secret);
                h.update(challenge);
                h.finalize().to_vec()
            }
        }
    }
    /// Check a peer's response in constant time.
    pub fn verify(self, id: u8, secret: &[u8], challenge: &[u8], response: &[u8]) -> bool {
        let want = self.response(id, secret, challenge);
        want.len() == response.len() && bool::from(want.ct_eq(response))
    }
}

/// The responder's choice from a CHAP_A offer ("7,5"): the first offered code we support,
/// restricted to `allowed`, in the offerer's order of preference.
pub fn select_algorithm(offer: &str, allowed: &[ChapAlgorithm]) -> Option<ChapAlgorithm> {
    offer
        .split(',')
        .filter_map(crate::negotiation::parse_number)
        .filter_map(ChapAlgorithm::from_code)
        .find(|a| allowed.contains(a))
}

/// Largest binary value we decode (§6.1: values are at most 8192 bytes).
pub const MAX_BINARY_LEN: usize = 8192;

/// Why a binary value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    #[error("binary value lacks a 0x or 0b prefix")]
    NoPrefix,
    #[error("binary value has a bad digit")]
    BadDigit,
    #[error("binary value is empty")]
    Empty,
    #[error("binary value longer than 8192 bytes")]
    TooLong,
}

/// Decode a binary value: "0x"/"0X" + hex digits (an odd count gets a leading zero nibble) or
/// "0b"/"0B" + base64 (RFC 4648, with padding optional).
pub fn decode_binary(v: &str) -> Result<Vec<u8>, BinaryError> {
    let (Some(kind), Some(body)) = (v.get(..2), v.get(2..)) else {
        return Err(BinaryError::NoPrefix);
    };
    let out = match kind {
        "0x" | "0X" => decode_hex(body)?,
        "0b" | "0B" => decode_base64(body)?,
        _ => return Err(BinaryError::NoPrefix),
    };
    if out.is_empty() {
        return Err(BinaryError::Empty);
    }
    if out.len() > MAX_BINARY_LEN {
        return Err(BinaryError::TooLong);
    }
    Ok(out)
}

fn hex_val(c: u8) -> Result<u8, BinaryError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(BinaryError::BadDigit),
    }
}

fn decode_hex(s: &str) -> Result<Vec<u8>, BinaryError> {
    let b = s.as_bytes();
    if b.len() > MAX_BINARY_LEN * 2 {
        return Err(BinaryError::TooLong);
    }
    let mut out = Vec::with_capacity(b.len().div_ceil(2));
    let mut i = 0;
    if b.len() % 2 == 1 {
        out.push(hex_val(b[0])?);
        i = 1;
    }
    while i + 1 < b.len() {
        out.push((hex_val(b[i])? << 4) | hex_val(b[i + 1])?);
        i += 2;
    }
    Ok(out)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_val(c: u8) -> Result<u32, BinaryError> {
    match c {
        b'A'..=b'Z' => Ok(u32::from(c - b'A')),
        b'a'..=b'z' => Ok(u32::from(c - b'a') + 26),
        b'0'..=b'9' => Ok(u32::from(c - b'0') + 52),
        b'+' => Ok(62),
        b'/' => Ok(63),
        _ => Err(BinaryError::BadDigit),
    }
}

fn decode_base64(s: &str) -> Result<Vec<u8>, BinaryError> {
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2 || body.len() % 4 == 1 {
        return Err(BinaryError::BadDigit);
    }
    if body.len() > MAX_BINARY_LEN * 4 / 3 + 4 {
        return Err(BinaryError::TooLong);
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= b64_val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}

/// Encode as "0x" + lowercase hex.
pub fn encode_hex(data: &[u8]) -> String {
    let mut s = String::with_capacity(2 + data.len() * 2);
    s.push_str("0x");
    for b in data {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// Encode as "0b" + base64 with padding.
pub fn encode_base64(data: &[u8]) -> String {
    let mut s = String::with_capacity(2 + data.len().div_ceil(3) * 4);
    s.push_str("0b");
    for chunk in data.chunks(3) {
        let mut buf = [0u8; 3];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = (u32::from(buf[0]) << 16) | (u32::from(buf[1]) << 8) | u32::from(buf[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn md5_vector() {
        // MD5(0x01 || "secret" || 0x0102030405) computed independently (python hashlib).
        let r = ChapAlgorithm::Md5.response(1, b"secret", &[1, 2, 3, 4, 5]);
        assert_eq!(encode_hex(&r), "0xad554409dd428bd604dbd0241164a508");
    }

    #[test]
    fn sha256_vector() {
        // SHA-256(0x07 || "password1234" || 16 bytes 0x00..0x0f), python hashlib.
        let ch: Vec<u8> = (0u8..16).collect();
        let r = ChapAlgorithm::Sha256.response(7, b"password1234", &ch);
        assert_eq!(r.len(), 32);
        assert_eq!(
            encode_hex(&r),
            "0x7d9d4b35fee61f4e5be969ea785edbc09a00054cabcea59ce06d886aaafa3413"
        );
    }

    #[test]
    fn verify_accepts_right_and_refuses_wrong() {
        let ch = [9u8; 16];
        let good = ChapAlgorithm::Md5.response(3, b"s3cret", &ch);
        assert!(ChapAlgorithm::Md5.verify(3, b"s3cret", &ch, &good));
        assert!(!ChapAlgorithm::Md5.verify(4, b"s3cret", &ch, &good));
        assert!(!ChapAlgorithm::Md5.verify(3, b"other", &ch, &good));
        assert!(!ChapAlgorithm::Md5.verify(3, b"s3cret", &ch, &good[..15]));
    }

    #[test]
    fn algorithm_selection() {
        let both = [ChapAlgorithm::Sha256, ChapAlgorithm::Md5];
        assert_eq!(select_algorithm("7,5", &both), Some(ChapAlgorithm::Sha256));
        assert_eq!(select_algorithm("5,7", &both), Some(ChapAlgorithm::Md5));
        assert_eq!(select_algorithm("6,7", &[ChapAlgorithm::Md5]), None);
        assert_eq!(select_algorithm("junk,5", &both), Some(ChapAlgorithm::Md5));
    }

    #[test]
    fn binary_encodings() {
        assert_eq!(decode_binary("0x0aFF").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(decode_binary("0xabc").unwrap(), vec![0x0a, 0xbc]);
        assert_eq!(decode_binary("0bAQID").unwrap(), vec![1, 2, 3]);
        assert_eq!(decode_binary("0bAQI=").unwrap(), vec![1, 2]);
        assert_eq!(decode_binary("0bAQ==").unwrap(), vec![1]);
        assert_eq!(decode_binary("0bAQ").unwrap(), vec![1]);
        assert_eq!(decode_binary("abcd"), Err(BinaryError::NoPrefix));
        assert_eq!(decode_binary("0x"), Err(BinaryError::Empty));
        assert_eq!(decode_binary("0xzz"), Err(BinaryError::BadDigit));
        assert_eq!(decode_binary("0bA"), Err(BinaryError::BadDigit));
        assert_eq!(decode_binary("é"), Err(BinaryError::NoPrefix));
        assert_eq!(decode_binary("aé"), Err(BinaryError::NoPrefix));
        let big = format!("0x{}", "00".repeat(8193));
        assert_eq!(decode_binary(&big), Err(BinaryError::TooLong));
        assert_eq!(encode_base64(&[1, 2]), "0bAQI=");
    }

    proptest! {
        #[test]
        fn hex_roundtrip(data in proptest::collection::vec(any::<u8>(), 1..300)) {
            prop_assert_eq!(decode_binary(&encode_hex(&data)).unwrap(), data);
        }
        #[test]
        fn base64_roundtrip(data in proptest::collection::vec(any::<u8>(), 1..300)) {
            prop_assert_eq!(decode_binary(&encode_base64(&data)).unwrap(), data);
        }
        #[test]
        fn decode_never_panics(s in "\\PC{0,64}") {
            let _ = decode_binary(&s);
        }
    }
}
