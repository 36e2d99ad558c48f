//! Text keys (RFC 7143 §6.1): `key=value` pairs, each terminated by NUL, carried in Login and
//! Text PDU data segments, possibly split over several PDUs with the C bit (§6.1, §11.10.2).
//!
//! Limits: a key is at most 63 bytes of `a-zA-Z0-9.-+@_`; a simple value is at most 255 bytes;
//! any value (binary values such as CHAP_C in hex) at most [`MAX_VALUE_LEN`] encoded bytes; the
//! whole text is bounded by the caller through [`TextCollector`].

/// Longest key name (§6.1).
pub const MAX_KEY_LEN: usize = 63;
/// Longest simple value (§6.1: "255 bytes" if not otherwise specified).
pub const MAX_SIMPLE_VALUE_LEN: usize = 255;
/// Longest encoded value we accept: an 8192-byte binary value in hex ("0x" + 16384 digits).
pub const MAX_VALUE_LEN: usize = 2 + 2 * 8192;

/// Why a text data segment is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("text pair without '='")]
    MissingEquals,
    #[error("empty key name")]
    EmptyKey,
    #[error("key name longer than 63 bytes")]
    KeyTooLong,
    #[error("key name with a character outside a-zA-Z0-9.-+@_")]
    BadKeyChar,
    #[error("value of {key} longer than allowed")]
    ValueTooLong { key: String },
    #[error("value of {key} is not UTF-8")]
    NotUtf8 { key: String },
    #[error("text exceeds {0} bytes")]
    TooLarge(usize),
}

fn key_char_ok(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'@' | b'_')
}

/// Parse a complete text (all continuation PDUs joined) into pairs, in order. Empty strings
/// between NULs (padding some initiators add) are skipped; a final pair without its NUL is
/// accepted.
pub fn parse(data: &[u8]) -> Result<Vec<(String, String)>, TextError> {
    let mut out = Vec::new();
    for item in data.split(|&b| b == 0) {
        if item.is_empty() {
            continue;
        }
        let eq = item
            .iter()
            .position(|&b| b == b'=')
            .ok_or(TextError::MissingEquals)?;
        let (k, v) = (&item[..eq], &item[eq + 1..]);
        if k.is_empty() {
            return Err(TextError::EmptyKey);
        }
        if k.len() > MAX_KEY_LEN {
            return Err(TextError::KeyTooLong);
        }
        if !k.iter().all(|&c| key_char_ok(c)) {
            return Err(TextError::BadKeyChar);
        }
        // Key characters are ASCII (checked above).
        let key = String::from_utf8_lossy(k).into_owned();
        if v.len() > MAX_VALUE_LEN {
            return Err(TextError::ValueTooLong { key });
        }
        let value = match std::str::from_utf8(v) {
            Ok(s) => s.to_owned(),
            Err(_) => return Err(TextError::NotUtf8 { key }),
        };
        out.push((key, value));
    }
    Ok(out)
}

/// Append `key=value\0` to `out`.
pub fn encode_pair(out: &mut Vec<u8>, key: &str, value: &str) {
    out.reserve(key.len() + value.len() + 2);
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value.as_bytes());
    out.push(0);
}

/// Encode pairs as a text data segment.
pub fn encode<'a, I>(pairs: I) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut out = Vec::new();
    for (k, v) in pairs {
        encode_pair(&mut out, k, v);
    }
    out
}

/// Gathers the data segments of a text sequence split with the C (continue) bit, refusing to
/// grow beyond a bound so a peer cannot make us buffer without end.
#[derive(Debug)]
pub struct TextCollector {
    buf: Vec<u8>,
    limit: usize,
}

impl TextCollector {
    pub fn new(limit: usize) -> TextCollector {
        TextCollector {
            buf: Vec::new(),
            limit,
        }
    }
    /// Add one PDU's data segment.
    pub fn push(&mut self, data: &[u8]) -> Result<(), TextError> {
        if self.buf.len() + data.len() > self.limit {
            return Err(TextError::TooLarge(self.limit));
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }
    /// Parse what was gathered and start over.
    pub fn finish(&mut self) -> Result<Vec<(String, String)>, TextError> {
        let r = parse(&self.buf);
        self.buf.clear();
        r
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

/// Splits an outgoing text into pieces of at most `max` bytes for a sequence of PDUs with the
/// C bit set on all but the last (§6.1: a pair may be split anywhere).
pub fn split_for_pdus(text: &[u8], max: usize) -> Vec<&[u8]> {
    if text.is_empty() || max == 0 {
        return vec![text];
    }
    text.chunks(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_pairs() {
        let t = b"InitiatorName=iqn.x\0SessionType=Normal\0\0\0";
        let p = parse(t).unwrap();
        assert_eq!(
            p,
            vec![
                ("InitiatorName".into(), "iqn.x".into()),
                ("SessionType".into(), "Normal".into())
            ]
        );
    }

    #[test]
    fn value_may_contain_equals_and_be_empty() {
        let p = parse(b"A=b=c\0B=\0").unwrap();
        assert_eq!(p[0], ("A".into(), "b=c".into()));
        assert_eq!(p[1], ("B".into(), "".into()));
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(parse(b"NoEquals\0"), Err(TextError::MissingEquals));
        assert_eq!(parse(b"=v\0"), Err(TextError::EmptyKey));
        assert_eq!(parse(b"a b=v\0"), Err(TextError::BadKeyChar));
        let long_key = format!("{}=v", "k".repeat(64));
        assert_eq!(parse(long_key.as_bytes()), Err(TextError::KeyTooLong));
        let ok_key = format!("{}=v", "k".repeat(63));
        assert!(parse(ok_key.as_bytes()).is_ok());
        let huge = format!("K={}", "v".repeat(1 << 20));
        assert!(matches!(
            parse(huge.as_bytes()),
            Err(TextError::ValueTooLong { .. })
        ));
        assert!(matches!(
            parse(b"K=\xff\xfe\0"),
            Err(TextError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn collector_is_bounded() {
        let mut c = TextCollector::new(10);
        c.push(b"A=1\0B").unwrap();
        c.push(b"=2\0").unwrap();
        assert!(c.push(b"C=3\0").is_err());
        let mut c = TextCollector::new(100);
        c.push(b"A=1\0B").unwrap();
        c.push(b"=2\0").unwrap();
        assert_eq!(c.finish().unwrap().len(), 2);
        assert!(c.is_empty());
    }

    #[test]
    fn split_keeps_bytes() {
        let t = encode([("A", "1"), ("LongerKey", "value")]);
        let parts = split_for_pdus(&t, 4);
        assert!(parts.iter().all(|p| p.len() <= 4));
        assert_eq!(parts.concat(), t);
    }

    proptest! {
        #[test]
        fn roundtrip(pairs in proptest::collection::vec(("[A-Za-z0-9.+@_-]{1,63}", "[ -~]{0,255}"), 0..20)) {
            let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let enc = encode(refs);
            let dec = parse(&enc).unwrap();
            prop_assert_eq!(dec, pairs);
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&data);
        }
    }
}
