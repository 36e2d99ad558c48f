//! iSCSI name validation (RFC 7143 §4.2.7 "iSCSI Names", RFC 3721, RFC 3722 stringprep profile).
//!
//! Three formats are accepted for target and initiator names:
//! * `iqn.yyyy-mm.<reversed domain>[:<anything>]` (§4.2.7.3),
//! * `eui.` + 16 hex digits (§4.2.7.4),
//! * `naa.` + 16 or 32 hex digits (§4.2.7.5, RFC 3980).
//!
//! Names are at most 223 bytes (§4.2.7.1). The RFC 3722 stringprep profile maps names to lower
//! case, so a conforming initiator always sends lower case; we refuse upper case in `iqn.` names
//! rather than silently fold it, so that what is configured is what is compared at login. Only
//! ASCII is accepted (the Unicode part of the profile is not implemented; say so in the error).

/// Longest iSCSI name in bytes (RFC 7143 §4.2.7.1).
pub const MAX_NAME_LEN: usize = 223;

/// Check an iSCSI name. `what` names the field in the error ("target name", "initiator name").
/// Err is one line saying what is wrong and what is valid.
pub fn validate_iscsi_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!(
            "{what} is empty; expected iqn.yyyy-mm.domain[:id], eui.<16 hex> or naa.<16|32 hex>"
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "{what} '{}…' is {} bytes; iSCSI names are at most {MAX_NAME_LEN} bytes (RFC 7143 §4.2.7.1)",
            &name[..name.char_indices().nth(40).map_or(name.len(), |(i, _)| i)],
            name.len()
        ));
    }
    if !name.is_ascii() {
        return Err(format!(
            "{what} '{name}' contains non-ASCII characters; only ASCII iSCSI names are supported"
        ));
    }
    if let Some(rest) = name.strip_prefix("iqn.") {
        validate_iqn(what, name, rest)
    } else if let Some(hex) = name.strip_prefix("eui.") {
        validate_hex(what, name, hex, &[16], "eui.")
    } else if let Some(hex) = name.strip_prefix("naa.") {
        validate_hex(what, name, hex, &[16, 32], "naa.")
    } else {
        Err(format!(
            "{what} '{name}' must start with iqn., eui. or naa. (e.g. iqn.2026-11.org.example:disk1)"
        ))
    }
}

fn validate_hex(
    what: &str,
    name: &str,
    hex: &str,
    lens: &[usize],
    prefix: &str,
) -> Result<(), String> {
    let ok_len = lens.contains(&hex.len());
    if !ok_len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let lens: Vec<String> = lens.iter().map(|l| l.to_string()).collect();
        return Err(format!(
            "{what} '{name}': {prefix} must be followed by exactly {} hex digits",
            lens.join(" or ")
        ));
    }
    Ok(())
}

fn validate_iqn(what: &str, name: &str, rest: &str) -> Result<(), String> {
    let bad_date = || {
        format!("{what} '{name}': iqn. must be followed by a date yyyy-mm and a dot (e.g. iqn.2026-11.org.example)")
    };
    // "yyyy-mm." — the month the naming authority owned the domain.
    let b = rest.as_bytes();
    if b.len() < 8 {
        return Err(bad_date());
    }
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if !digits(0..4) || b.get(4) != Some(&b'-') || !digits(5..7) || b.get(7) != Some(&b'.') {
        return Err(bad_date());
    }
    let month = (b[5] - b'0') * 10 + (b[6] - b'0');
    if !(1..=12).contains(&month) {
        return Err(format!("{what} '{name}': month {month:02} is not 01-12"));
    }
    let after_date = &rest[8..];
    let (authority, id) = match after_date.split_once(':') {
        Some((a, i)) => (a, Some(i)),
        None => (after_date, None),
    };
    if authority.is_empty() {
        return Err(format!(
            "{what} '{name}': the reversed domain name after the date is missing (e.g. iqn.2026-11.org.example)"
        ));
    }
    if authority.starts_with('.') || authority.ends_with('.') || authority.contains("..") {
        return Err(format!(
            "{what} '{name}': the reversed domain name '{authority}' has an empty label"
        ));
    }
    let allowed =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':');
    for part in std::iter::once(authority).chain(id) {
        if let Some(c) = part.chars().find(|&c| !allowed(c)) {
            let hint = if c.is_ascii_uppercase() {
                " (names are lower case; RFC 3722 maps them so)"
            } else {
                ""
            };
            return Err(format!(
                "{what} '{name}': character '{c}' is not allowed; use a-z, 0-9, '-', '.', ':'{hint}"
            ));
        }
    }
    if id == Some("") {
        return Err(format!("{what} '{name}': nothing follows ':'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_three_formats() {
        for n in [
            "iqn.2026-11.org.ironlun:default",
            "iqn.1994-05.com.redhat:5d8e3f2a1b",
            "iqn.2001-04.com.example",
            "iqn.2001-04.com.example:storage:diskarrays-sn-a8675309",
            "eui.02004567A425678D",
            "naa.52004567BA64678D",
            "naa.62004567BA64678D0123456789ABCDEF",
        ] {
            assert_eq!(validate_iscsi_name("target name", n), Ok(()), "{n}");
        }
    }

    #[test]
    fn refuses_malformed_names_with_one_line() {
        for (n, needle) in [
            ("", "empty"),
            ("foo.bar", "must start with"),
            ("iqn.26-11.org.x", "date"),
            ("iqn.2026-13.org.x", "month 13"),
            ("iqn.2026-11.", "missing"),
            ("iqn.2026-11.org..x", "empty label"),
            ("iqn.2026-11.org.x:Disk", "lower case"),
            ("iqn.2026-11.org.x:a b", "' '"),
            ("iqn.2026-11.org.x:", "nothing follows"),
            ("eui.1234", "16 hex"),
            ("eui.02004567A425678G", "16 hex"),
            ("naa.1234567890123456789", "16 or 32"),
            ("iqn.2026-11.org.é", "non-ASCII"),
        ] {
            let e = validate_iscsi_name("initiator name", n).expect_err(n);
            assert!(e.contains(needle), "{n}: {e}");
            assert!(!e.contains('\n'));
        }
        let long = format!("iqn.2026-11.org.x:{}", "a".repeat(220));
        assert!(validate_iscsi_name("t", &long)
            .expect_err("long")
            .contains("223"));
    }
}
