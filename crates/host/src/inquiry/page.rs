//! The VPD page header every page shares (SPC-4 §7.8.1, Table 588): byte 0 peripheral
//! qualifier and device type, byte 1 PAGE CODE, bytes 2..4 PAGE LENGTH (the bytes after the
//! header); how much of a page the target sent; and big-endian field readers.

/// Bytes of the VPD page header.
pub const HEADER: usize = 4;

/// The largest allocation length INQUIRY's CDB can carry (SPC-4 §6.6.1).
pub const MAX_ALLOC: u16 = u16::MAX;

/// The page's bytes after the header, as long as PAGE LENGTH says (bytes past it are
/// ignored). Errors say what is malformed and where (offsets count from the page's byte 0).
pub fn body(page: &[u8], code: u8) -> Result<&[u8], String> {
    let end = end(page, code)?;
    if end > page.len() {
        return Err(format!(
            "bytes 2..4 (PAGE LENGTH {}) say the page ends at byte {end}, beyond the {} bytes \
             returned",
            end - HEADER,
            page.len()
        ));
    }
    Ok(&page[HEADER..end])
}

/// Where the page ends by its PAGE LENGTH, once the header is there with the right code.
fn end(page: &[u8], code: u8) -> Result<usize, String> {
    if page.len() < HEADER {
        return Err(format!(
            "{} bytes returned, less than the 4-byte page header",
            page.len()
        ));
    }
    if page[1] != code {
        return Err(format!(
            "byte 1 (PAGE CODE) is {:#04x}, not {code:#04x}",
            page[1]
        ));
    }
    Ok(HEADER + usize::from(u16::from_be_bytes([page[2], page[3]])))
}

/// What to do with one INQUIRY answer for VPD page `code` asked with allocation length
/// `alloc`.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetch {
    /// The whole page is there: its first `n` bytes.
    Complete(usize),
    /// PAGE LENGTH says more than the allocation length allowed: ask again with this one.
    Again(u16),
    /// The page is longer than INQUIRY can return (65535 bytes).
    TooLong(usize),
    /// The answer is malformed (header short, wrong page code, fewer bytes than PAGE LENGTH
    /// although the allocation length allowed them).
    Malformed(String),
}

/// Judge one answer: `got` is the data the target sent for allocation length `alloc`.
pub fn judge(got: &[u8], code: u8, alloc: u16) -> Fetch {
    let need = match end(got, code) {
        Ok(n) => n,
        Err(m) => return Fetch::Malformed(m),
    };
    if need <= got.len() {
        return Fetch::Complete(need);
    }
    if got.len() < usize::from(alloc) {
        // The allocation length allowed more: the target sent less than it says it has.
        return Fetch::Malformed(format!(
            "bytes 2..4 (PAGE LENGTH {}) say the page ends at byte {need}, but only {} bytes \
             came with an allocation length of {alloc}",
            need - HEADER,
            got.len()
        ));
    }
    match u16::try_from(need) {
        Ok(n) if n > alloc => Fetch::Again(n),
        _ if alloc < MAX_ALLOC => Fetch::Again(MAX_ALLOC),
        _ => Fetch::TooLong(need),
    }
}

/// The big-endian number in `b[off..off + n]` (`n` at most 8; bytes past the end read 0,
/// callers check lengths first).
pub fn be(b: &[u8], off: usize, n: usize) -> u64 {
    (off..off + n).fold(0u64, |acc, i| {
        (acc << 8) | u64::from(b.get(i).copied().unwrap_or(0))
    })
}

pub fn be16(b: &[u8], off: usize) -> u16 {
    be(b, off, 2) as u16
}

pub fn be32(b: &[u8], off: usize) -> u32 {
    be(b, off, 4) as u32
}

/// Printable text of an ASCII or UTF-8 field: trailing spaces and NULs removed, control
/// characters shown as `\xNN`.
pub fn text(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s = s.trim_end_matches([' ', '\0']);
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if ch.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(ch)));
        } else {
            out.push(ch);
        }
    }
    out
}
