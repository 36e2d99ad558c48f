//! Login and text parameter negotiation (RFC 7143 §6.2-§6.6 and the key catalogue of §13,
//! plus iSCSIProtocolLevel from RFC 7144 §2.1).
//!
//! Where things live:
//! * `keys.rs`: the catalogue [`KEYS`], which gives each key its type, result function,
//!   default, scope and who may send it (§13), and [`key`] to look one up.
//! * this file: the value syntax (§6.1), the result functions (§6.2.2), [`respond`] (the
//!   responder's side: the answer to an offer given our own value or limit), [`conclude`] (the
//!   originator's side: the agreed value given our offer and the peer's answer), and
//!   [`OperationalParams`], the typed result both sides share.
//! * `tests.rs`: unit tests of both sides against the catalogue.

mod keys;
#[cfg(test)]
mod tests;

pub use keys::{key, BoolFn, KeyDef, KeyType, NumFn, Sender, Usage, KEYS};

use crate::text::MAX_SIMPLE_VALUE_LEN;
use KeyType::*;

/// The special answer values of §6.2.
pub const REJECT: &str = "Reject";
pub const IRRELEVANT: &str = "Irrelevant";
pub const NOT_UNDERSTOOD: &str = "NotUnderstood";

/// `Yes` / `No` (§6.2.1: boolean-value).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

pub fn bool_str(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

/// A numerical value: decimal-constant or hex-constant (§6.1), at most 64 bits.
pub fn parse_number(v: &str) -> Option<u64> {
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        if h.is_empty() || h.len() > 16 {
            return None;
        }
        return u64::from_str_radix(h, 16).ok();
    }
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Boolean result function.
pub fn bool_result(f: BoolFn, offered: bool, ours: bool) -> bool {
    match f {
        BoolFn::And => offered && ours,
        BoolFn::Or => offered || ours,
    }
}

/// Numerical result function.
pub fn numeric_result(f: NumFn, offered: u64, ours: u64) -> u64 {
    match f {
        NumFn::Min => offered.min(ours),
        NumFn::Max => offered.max(ours),
    }
}

/// List result: the first value of the offer (in the offerer's order of preference) that is
/// in `acceptable`. Values we do not know are skipped (§6.2.1).
pub fn list_result<'a>(offered: &'a str, acceptable: &[&str]) -> Option<&'a str> {
    offered.split(',').find(|v| acceptable.contains(v))
}

/// A responder's answer to one offered key (§6.2, §6.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Send `key=value`; the value is the negotiated result.
    Value(String),
    /// Send `key=Reject` (bad value or nothing acceptable); the key keeps its current value.
    Reject,
    /// Send `key=Irrelevant`.
    Irrelevant,
    /// Send `key=NotUnderstood` (unknown key, X- vendor keys we do not implement).
    NotUnderstood,
    /// A declaration, accepted: no answer is sent.
    Accepted,
}

impl Answer {
    /// The text value to send, if any.
    pub fn text(&self) -> Option<&str> {
        match self {
            Answer::Value(v) => Some(v),
            Answer::Reject => Some(REJECT),
            Answer::Irrelevant => Some(IRRELEVANT),
            Answer::NotUnderstood => Some(NOT_UNDERSTOOD),
            Answer::Accepted => None,
        }
    }
}

/// Check that `value` is well formed for `def` (used for offers and for configuration).
pub fn valid_value(def: &KeyDef, value: &str) -> bool {
    if value.len() > MAX_SIMPLE_VALUE_LEN && !matches!(def.ty, Special) {
        return false;
    }
    match def.ty {
        Boolean(_) => parse_bool(value).is_some(),
        Numeric { min, max, .. } | DeclarativeNumeric { min, max } => {
            parse_number(value).is_some_and(|n| (min..=max).contains(&n))
        }
        List(_) => !value.is_empty() && value.split(',').all(|v| !v.is_empty()),
        DeclarativeEnum(vals) => vals.contains(&value),
        Declarative | Special => true,
        Obsolete => false,
    }
}

/// The responder's side of negotiating one key: `offered` is the peer's value, `ours` our
/// value, limit or (for lists) our acceptable values, comma-separated, in our order.
/// Declarative and special keys are [`Answer::Accepted`] when well formed: the caller acts on
/// them.
pub fn respond(def: &KeyDef, offered: &str, ours: &str) -> Answer {
    if def.ty == Obsolete {
        // RFC 7143 §13.26: IFMarkInt / OFMarkInt MUST be answered with Reject.
        return Answer::Reject;
    }
    if !valid_value(def, offered) {
        return Answer::Reject;
    }
    match def.ty {
        Boolean(f) => {
            let o = parse_bool(offered).unwrap_or(false);
            let l = parse_bool(ours).unwrap_or(false);
            Answer::Value(bool_str(bool_result(f, o, l)).to_string())
        }
        Numeric { f, min, max } => {
            let o = parse_number(offered).unwrap_or(min);
            let l = parse_number(ours).unwrap_or(o).clamp(min, max);
            Answer::Value(numeric_result(f, o, l).to_string())
        }
        List(_) => {
            let acceptable: Vec<&str> = ours.split(',').collect();
            match list_result(offered, &acceptable) {
                Some(v) => Answer::Value(v.to_string()),
                None => Answer::Reject,
            }
        }
        DeclarativeNumeric { .. } | Declarative | DeclarativeEnum(_) | Special => Answer::Accepted,
        Obsolete => Answer::Reject,
    }
}

/// Why an originator could not conclude a negotiation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("{0}: the peer answered Reject")]
    Rejected(&'static str),
    #[error("{0}: the peer answered Irrelevant")]
    Irrelevant(&'static str),
    #[error("{0}: the peer answered NotUnderstood")]
    NotUnderstood(&'static str),
    #[error("{key}: answer {answer:?} is not a legal result for the offer")]
    BadAnswer { key: &'static str, answer: String },
}

/// The originator's side: the agreed value given what we offered and what the peer answered.
/// An answer the result function cannot produce (e.g. a larger value for a Min key) is an
/// error (§6.2.2: the originator must reset the negotiation).
pub fn conclude(def: &KeyDef, offered: &str, answer: &str) -> Result<String, NegotiationError> {
    match answer {
        REJECT => return Err(NegotiationError::Rejected(def.name)),
        IRRELEVANT => return Err(NegotiationError::Irrelevant(def.name)),
        NOT_UNDERSTOOD => return Err(NegotiationError::NotUnderstood(def.name)),
        _ => {}
    }
    let bad = || NegotiationError::BadAnswer {
        key: def.name,
        answer: answer.to_string(),
    };
    match def.ty {
        Boolean(f) => {
            let a = parse_bool(answer).ok_or_else(bad)?;
            let o = parse_bool(offered).ok_or_else(bad)?;
            // AND with our No (or OR with our Yes) is decided without the peer.
            let decided = match f {
                BoolFn::And => (!o).then_some(false),
                BoolFn::Or => o.then_some(true),
            };
            match decided {
                Some(v) => Ok(bool_str(v).to_string()),
                None => Ok(bool_str(a).to_string()),
            }
        }
        Numeric { min, max, f } => {
            let a = parse_number(answer).ok_or_else(bad)?;
            let o = parse_number(offered).ok_or_else(bad)?;
            let legal = (min..=max).contains(&a)
                && match f {
                    NumFn::Min => a <= o,
                    NumFn::Max => a >= o,
                };
            if legal {
                Ok(a.to_string())
            } else {
                Err(bad())
            }
        }
        List(_) => {
            if offered.split(',').any(|v| v == answer) {
                Ok(answer.to_string())
            } else {
                Err(bad())
            }
        }
        DeclarativeNumeric { .. } | Declarative | DeclarativeEnum(_) | Special => {
            if valid_value(def, answer) {
                Ok(answer.to_string())
            } else {
                Err(bad())
            }
        }
        Obsolete => Err(NegotiationError::Rejected(def.name)),
    }
}

/// The operational parameters in force on a session / connection (RFC 7143 defaults until
/// negotiated). Lengths are bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationalParams {
    pub header_digest: bool,
    pub data_digest: bool,
    pub max_connections: u32,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    /// What this side declared: the largest data segment it receives.
    pub max_recv_data_segment_length: u32,
    /// What the peer declared: the largest data segment this side may send.
    pub max_xmit_data_segment_length: u32,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub default_time2wait: u32,
    pub default_time2retain: u32,
    pub max_outstanding_r2t: u32,
    pub data_pdu_in_order: bool,
    pub data_sequence_in_order: bool,
    pub error_recovery_level: u32,
}

impl Default for OperationalParams {
    fn default() -> Self {
        OperationalParams {
            header_digest: false,
            data_digest: false,
            max_connections: 1,
            initial_r2t: true,
            immediate_data: true,
            max_recv_data_segment_length: 8192,
            max_xmit_data_segment_length: 8192,
            max_burst_length: 262_144,
            first_burst_length: 65_536,
            default_time2wait: 2,
            default_time2retain: 20,
            max_outstanding_r2t: 1,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            error_recovery_level: 0,
        }
    }
}

impl OperationalParams {
    /// Record an agreed value. `MaxRecvDataSegmentLength` here is the *peer's* declaration
    /// (it sets [`Self::max_xmit_data_segment_length`]); set our own field directly.
    /// Returns false for keys that are not operational parameters or bad values.
    pub fn set(&mut self, key: &str, value: &str) -> bool {
        let num = || parse_number(value).and_then(|n| u32::try_from(n).ok());
        let b = || parse_bool(value);
        let slot: Option<()> = match key {
            "HeaderDigest" => (value == "CRC32C" || value == "None")
                .then(|| self.header_digest = value == "CRC32C"),
            "DataDigest" => {
                (value == "CRC32C" || value == "None").then(|| self.data_digest = value == "CRC32C")
            }
            "MaxConnections" => num().map(|n| self.max_connections = n),
            "InitialR2T" => b().map(|v| self.initial_r2t = v),
            "ImmediateData" => b().map(|v| self.immediate_data = v),
            "MaxRecvDataSegmentLength" => num().map(|n| self.max_xmit_data_segment_length = n),
            "MaxBurstLength" => num().map(|n| self.max_burst_length = n),
            "FirstBurstLength" => num().map(|n| self.first_burst_length = n),
            "DefaultTime2Wait" => num().map(|n| self.default_time2wait = n),
            "DefaultTime2Retain" => num().map(|n| self.default_time2retain = n),
            "MaxOutstandingR2T" => num().map(|n| self.max_outstanding_r2t = n),
            "DataPDUInOrder" => b().map(|v| self.data_pdu_in_order = v),
            "DataSequenceInOrder" => b().map(|v| self.data_sequence_in_order = v),
            "ErrorRecoveryLevel" => num().map(|n| self.error_recovery_level = n),
            _ => None,
        };
        slot.is_some()
    }

    /// FirstBurstLength is irrelevant when neither immediate nor unsolicited data is allowed
    /// (§13.14).
    pub fn first_burst_irrelevant(&self) -> bool {
        self.initial_r2t && !self.immediate_data
    }
}
