//! `--transport-id` values: TransportIDs (SPC-4 §7.6.4) in sg_persist's forms. iSCSI ones
//! (§7.6.4.6) by name: `iqn.…` (format 00b, the initiator device) or `iqn.…,i,0x<ISID>`
//! (format 01b, one initiator port; the ISID is 12 hex digits, RFC 7143 §4.2.7.2); `eui.`
//! and `naa.` names likewise. Or any protocol's TransportID as hex bytes separated by commas
//! or spaces (or one run of hex digits). Several TransportIDs: separated by `;`, names also
//! by `,`, or the option repeated.

use ironlun_initiator::pr::TransportId;
use ironlun_scsi::pr::MAX_ISCSI_NAME;

use crate::{HostError, Result};

/// The prefixes of iSCSI names (RFC 7143 §4.2.7.3).
const NAME_PREFIXES: [&str; 3] = ["iqn.", "eui.", "naa."];

const FORMS: &str = "iqn.…[,i,0x<12 hex digit ISID>] (also eui./naa. names) or hex bytes \
     (45,00,00,14,…); several separated by ';'";

fn bad(value: &str, why: &str) -> HostError {
    HostError::new(format!("--transport-id '{value}': {why}; valid: {FORMS}"))
}

fn is_name(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    NAME_PREFIXES.iter().any(|p| l.starts_with(p))
}

/// Every TransportID of the `--transport-id` values, in order.
pub fn parse_transport_ids(values: &[String]) -> Result<Vec<TransportId>> {
    let mut out = Vec::new();
    for v in values {
        for piece in v.split(';').map(str::trim) {
            if piece.is_empty() {
                return Err(bad(v, "an empty TransportID"));
            }
            if is_name(piece) {
                for name in split_names(piece) {
                    out.push(parse_name(v, &name)?);
                }
            } else {
                out.push(parse_hex(v, piece)?);
            }
        }
    }
    Ok(out)
}

/// `a,b,i,0x…` → `a`, `b,i,0x…`: a comma starts a new TransportID where a name follows it.
fn split_names(piece: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for part in piece.split(',') {
        match names.last_mut() {
            Some(cur) if !is_name(part.trim()) => {
                cur.push(',');
                cur.push_str(part);
            }
            _ => names.push(part.trim().to_string()),
        }
    }
    names
}

fn parse_name(value: &str, text: &str) -> Result<TransportId> {
    let (name, isid) = match text.split_once(",i,") {
        Some((n, i)) => (n, Some(i)),
        None => (text, None),
    };
    if name.len() > MAX_ISCSI_NAME {
        return Err(bad(
            value,
            &format!(
                "an iSCSI name of {} bytes (at most {MAX_ISCSI_NAME})",
                name.len()
            ),
        ));
    }
    // RFC 7143 §4.2.7.1: a name (after stringprep) holds letters, digits, '-', '.' and ':';
    // the TransportID carries it as ASCII.
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':')))
    {
        return Err(bad(value, &format!("'{c}' in the iSCSI name '{name}'")));
    }
    let Some(isid) = isid else {
        return Ok(TransportId::iscsi(name));
    };
    let digits = isid
        .strip_prefix("0x")
        .or_else(|| isid.strip_prefix("0X"))
        .ok_or_else(|| bad(value, &format!("ISID '{isid}' without 0x")))?;
    let isid = parse_isid(digits).ok_or_else(|| {
        bad(
            value,
            &format!("ISID '{digits}' is not 12 hex digits (6 bytes)"),
        )
    })?;
    Ok(TransportId::iscsi_port(name, isid))
}

fn parse_isid(digits: &str) -> Option<[u8; 6]> {
    let bytes = hex_run(digits)?;
    bytes.try_into().ok()
}

/// An even run of hex digits as bytes.
fn hex_run(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// A TransportID as hex bytes: `45,00,00,14,…`, `45 00 00 14 …` or `45000014…`.
fn parse_hex(value: &str, piece: &str) -> Result<TransportId> {
    let tokens: Vec<&str> = piece
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .collect();
    let bytes: Option<Vec<u8>> = match tokens.as_slice() {
        [run] if run.len() > 2 => hex_run(run),
        _ => tokens
            .iter()
            .map(|t| {
                (t.len() <= 2)
                    .then(|| u8::from_str_radix(t, 16).ok())
                    .flatten()
            })
            .collect(),
    };
    let bytes = bytes.ok_or_else(|| bad(value, "neither an iSCSI name nor hex bytes"))?;
    let (tid, used) =
        TransportId::parse(&bytes).map_err(|e| bad(value, &format!("not a TransportID: {e}")))?;
    if used != bytes.len() {
        return Err(bad(
            value,
            &format!(
                "{} bytes given but the TransportID is {used} bytes",
                bytes.len()
            ),
        ));
    }
    Ok(tid)
}
