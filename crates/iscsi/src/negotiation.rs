//! Login and text parameter negotiation (RFC 7143 §6.2-§6.6 and the key catalogue of §13,
//! plus iSCSIProtocolLevel from RFC 7144 §2.1).
//!
//! The catalogue [`KEYS`] gives each key its type, result function, default, scope and who may
//! send it. [`respond`] is the responder's side (compute the answer to an offer given our own
//! value or limit), [`conclude`] the originator's side (the agreed value given our offer and
//! the peer's answer). Both sides share [`OperationalParams`], the typed result.

use crate::text::MAX_SIMPLE_VALUE_LEN;

/// Result function of a Boolean key (§6.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoolFn {
    And,
    Or,
}

/// Result function of a numerical key (§6.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumFn {
    Min,
    Max,
}

/// How a key's value is formed and negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// `Yes` / `No`, negotiated by AND or OR.
    Boolean(BoolFn),
    /// A number in `min..=max`, negotiated by minimum or maximum.
    Numeric { min: u64, max: u64, f: NumFn },
    /// A declared number in `min..=max` (no answer expected).
    DeclarativeNumeric { min: u64, max: u64 },
    /// A list of values in order of preference; the responder answers with the first value
    /// of the offer it accepts (§6.2.1). The slice lists the values RFC 7143 defines.
    List(&'static [&'static str]),
    /// A declared string (names, aliases, addresses).
    Declarative,
    /// A declared value out of an enumeration (SessionType).
    DeclarativeEnum(&'static [&'static str]),
    /// Keys with their own exchange: SendTargets (§7.3 / Appendix C), CHAP_* (§12.1.3).
    Special,
    /// Obsoleted by RFC 7143 §13.26 (IFMarkInt, OFMarkInt): the answer is Reject.
    Obsolete,
}

/// Which party may send a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    Initiator,
    Target,
    Both,
}

/// Where a key may be negotiated (§13 "Use").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// Login only, on any connection ("IO").
    LoginOnly,
    /// Login only, on the leading connection ("LO"): a session-wide parameter.
    LeadingOnly,
    /// Login and full feature phase ("ALL").
    Any,
    /// Full feature phase (or discovery) only ("FFPO", SendTargets).
    FullFeatureOnly,
    /// Security negotiation stage only (AuthMethod, CHAP keys).
    Security,
}

/// One entry of the key catalogue.
#[derive(Clone, Copy, Debug)]
pub struct KeyDef {
    pub name: &'static str,
    pub ty: KeyType,
    /// RFC 7143 default (the value in force if never negotiated).
    pub default: &'static str,
    pub usage: Usage,
    pub sender: Sender,
    /// The key also applies to discovery sessions (others are Irrelevant there, §13).
    pub discovery: bool,
}

const DIGESTS: &[&str] = &["CRC32C", "None"];
const AUTH_METHODS: &[&str] = &["KRB5", "SPKM1", "SPKM2", "SRP", "CHAP", "None"];
const SESSION_TYPES: &[&str] = &["Discovery", "Normal"];
const TASK_REPORTING: &[&str] = &["RFC3720", "ResponseFence", "FastAbort"];
const MAX_24: u64 = 16_777_215;

macro_rules! key {
    ($n:expr, $t:expr, $d:expr, $u:expr, $s:expr, $disc:expr) => {
        KeyDef {
            name: $n,
            ty: $t,
            default: $d,
            usage: $u,
            sender: $s,
            discovery: $disc,
        }
    };
}

use KeyType::*;
use Sender::*;
use Usage::*;

/// Every key of RFC 7143 §13 (and §12.1 / RFC 7144), in RFC order.
pub static KEYS: &[KeyDef] = &[
    key!(
        "AuthMethod",
        List(AUTH_METHODS),
        "None",
        Security,
        Both,
        true
    ),
    key!("CHAP_A", Special, "", Security, Both, true),
    key!("CHAP_I", Special, "", Security, Target, true),
    key!("CHAP_C", Special, "", Security, Both, true),
    key!("CHAP_N", Special, "", Security, Both, true),
    key!("CHAP_R", Special, "", Security, Both, true),
    key!("HeaderDigest", List(DIGESTS), "None", LoginOnly, Both, true),
    key!("DataDigest", List(DIGESTS), "None", LoginOnly, Both, true),
    key!(
        "MaxConnections",
        Numeric {
            min: 1,
            max: 65535,
            f: NumFn::Min
        },
        "1",
        LeadingOnly,
        Both,
        false
    ),
    key!("SendTargets", Special, "", FullFeatureOnly, Initiator, true),
    key!("TargetName", Declarative, "", LoginOnly, Initiator, true),
    key!("InitiatorName", Declarative, "", LoginOnly, Initiator, true),
    key!("TargetAlias", Declarative, "", Any, Target, true),
    key!("InitiatorAlias", Declarative, "", Any, Initiator, true),
    key!("TargetAddress", Declarative, "", Any, Target, true),
    key!(
        "TargetPortalGroupTag",
        DeclarativeNumeric { min: 0, max: 65535 },
        "",
        LoginOnly,
        Target,
        true
    ),
    key!(
        "InitialR2T",
        Boolean(BoolFn::Or),
        "Yes",
        LeadingOnly,
        Both,
        false
    ),
    key!(
        "ImmediateData",
        Boolean(BoolFn::And),
        "Yes",
        LeadingOnly,
        Both,
        false
    ),
    key!(
        "MaxRecvDataSegmentLength",
        DeclarativeNumeric {
            min: 512,
            max: MAX_24
        },
        "8192",
        Any,
        Both,
        true
    ),
    key!(
        "MaxBurstLength",
        Numeric {
            min: 512,
            max: MAX_24,
            f: NumFn::Min
        },
        "262144",
        LeadingOnly,
        Both,
        false
    ),
    key!(
        "FirstBurstLength",
        Numeric {
            min: 512,
            max: MAX_24,
            f: NumFn::Min
        },
        "65536",
        LeadingOnly,
        Both,
        false
    ),
    key!(
        "DefaultTime2Wait",
        Numeric {
            min: 0,
            max: 3600,
            f: NumFn::Max
        },
        "2",
        LeadingOnly,
        Both,
        true
    ),
    key!(
        "DefaultTime2Retain",
        Numeric {
            min: 0,
            max: 3600,
            f: NumFn::Min
        },
        "20",
        LeadingOnly,
        Both,
        true
    ),
    key!(
        "MaxOutstandingR2T",
        Numeric {
            min: 1,
            max: 65535,
            f: NumFn::Min
        },
        "1",
        LeadingOnly,
        Both,
        false
    ),
    key!(
        "DataPDUInOrder",
        Boolean(BoolFn::Or),
        "Yes",
        LeadingOnly,
        Both,
        false
    ),
    key!(
        "DataSequenceInOrder",
        Boolean(BoolFn::Or),
        "Yes",
        LeadingOnly,
        Both,
        false
    ),
    key!(
        "ErrorRecoveryLevel",
        Numeric {
            min: 0,
            max: 2,
            f: NumFn::Min
        },
        "0",
        LeadingOnly,
        Both,
        true
    ),
    key!(
        "SessionType",
        DeclarativeEnum(SESSION_TYPES),
        "Normal",
        LeadingOnly,
        Initiator,
        true
    ),
    key!(
        "TaskReporting",
        List(TASK_REPORTING),
        "RFC3720",
        LeadingOnly,
        Both,
        false
    ),
    key!(
        "iSCSIProtocolLevel",
        Numeric {
            min: 0,
            max: 31,
            f: NumFn::Min
        },
        "1",
        LeadingOnly,
        Both,
        true
    ),
    key!(
        "IFMarker",
        Boolean(BoolFn::And),
        "No",
        LoginOnly,
        Both,
        true
    ),
    key!(
        "OFMarker",
        Boolean(BoolFn::And),
        "No",
        LoginOnly,
        Both,
        true
    ),
    key!("IFMarkInt", Obsolete, "", LoginOnly, Both, true),
    key!("OFMarkInt", Obsolete, "", LoginOnly, Both, true),
];

/// Look a key up (names are case-sensitive, §6.1).
pub fn key(name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.name == name)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: &str) -> &'static KeyDef {
        key(n).unwrap()
    }

    #[test]
    fn catalogue_is_complete_and_defaults_valid() {
        for name in [
            "HeaderDigest",
            "DataDigest",
            "MaxConnections",
            "SendTargets",
            "TargetName",
            "InitiatorName",
            "TargetAlias",
            "InitiatorAlias",
            "TargetAddress",
            "TargetPortalGroupTag",
            "InitialR2T",
            "ImmediateData",
            "MaxRecvDataSegmentLength",
            "MaxBurstLength",
            "FirstBurstLength",
            "DefaultTime2Wait",
            "DefaultTime2Retain",
            "MaxOutstandingR2T",
            "DataPDUInOrder",
            "DataSequenceInOrder",
            "ErrorRecoveryLevel",
            "SessionType",
            "AuthMethod",
            "TaskReporting",
            "iSCSIProtocolLevel",
        ] {
            assert!(key(name).is_some(), "{name}");
        }
        for d in KEYS {
            if !d.default.is_empty() && d.ty != Obsolete {
                assert!(valid_value(d, d.default), "{}", d.name);
            }
        }
        assert!(key("headerdigest").is_none(), "names are case-sensitive");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("8192"), Some(8192));
        assert_eq!(parse_number("0x2000"), Some(8192));
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("-1"), None);
        assert_eq!(parse_number("12a"), None);
        assert_eq!(parse_number("99999999999999999999999"), None);
    }

    #[test]
    fn boolean_and_or() {
        assert!(bool_result(BoolFn::And, true, true));
        assert!(!bool_result(BoolFn::And, true, false));
        assert!(!bool_result(BoolFn::And, false, true));
        assert!(bool_result(BoolFn::Or, false, true));
        assert!(!bool_result(BoolFn::Or, false, false));
        assert_eq!(
            respond(k("ImmediateData"), "Yes", "No"),
            Answer::Value("No".into())
        );
        assert_eq!(
            respond(k("ImmediateData"), "Yes", "Yes"),
            Answer::Value("Yes".into())
        );
        assert_eq!(
            respond(k("InitialR2T"), "No", "No"),
            Answer::Value("No".into())
        );
        assert_eq!(
            respond(k("InitialR2T"), "No", "Yes"),
            Answer::Value("Yes".into())
        );
        assert_eq!(respond(k("InitialR2T"), "Maybe", "Yes"), Answer::Reject);
    }

    #[test]
    fn numeric_min_max() {
        assert_eq!(numeric_result(NumFn::Min, 5, 3), 3);
        assert_eq!(numeric_result(NumFn::Max, 5, 3), 5);
        assert_eq!(
            respond(k("MaxBurstLength"), "16776192", "1048576"),
            Answer::Value("1048576".into())
        );
        assert_eq!(
            respond(k("DefaultTime2Wait"), "0", "2"),
            Answer::Value("2".into())
        );
        assert_eq!(
            respond(k("ErrorRecoveryLevel"), "2", "0"),
            Answer::Value("0".into())
        );
        assert_eq!(
            respond(k("MaxBurstLength"), "100", "262144"),
            Answer::Reject
        );
        assert_eq!(
            respond(k("MaxBurstLength"), "16777216", "262144"),
            Answer::Reject
        );
        assert_eq!(respond(k("MaxOutstandingR2T"), "0", "16"), Answer::Reject);
    }

    #[test]
    fn list_first_acceptable() {
        assert_eq!(list_result("CRC32C,None", &["None"]), Some("None"));
        assert_eq!(
            list_result("Foo,CRC32C,None", &["CRC32C", "None"]),
            Some("CRC32C")
        );
        assert_eq!(list_result("CRC32C", &["None"]), None);
        assert_eq!(
            respond(k("HeaderDigest"), "None,CRC32C", "CRC32C,None"),
            Answer::Value("None".into())
        );
        assert_eq!(respond(k("DataDigest"), "CRC32C", "None"), Answer::Reject);
        assert_eq!(
            respond(k("AuthMethod"), "CHAP,None", "CHAP"),
            Answer::Value("CHAP".into())
        );
    }

    #[test]
    fn declarative_and_obsolete() {
        assert_eq!(
            respond(k("MaxRecvDataSegmentLength"), "65536", ""),
            Answer::Accepted
        );
        assert_eq!(
            respond(k("MaxRecvDataSegmentLength"), "100", ""),
            Answer::Reject
        );
        assert_eq!(respond(k("SessionType"), "Discovery", ""), Answer::Accepted);
        assert_eq!(respond(k("SessionType"), "Other", ""), Answer::Reject);
        assert_eq!(respond(k("IFMarkInt"), "2048", ""), Answer::Reject);
        assert_eq!(
            respond(k("IFMarker"), "Yes", "No"),
            Answer::Value("No".into())
        );
        let long = "x".repeat(256);
        assert_eq!(respond(k("InitiatorAlias"), &long, ""), Answer::Reject);
    }

    #[test]
    fn originator_conclusions() {
        assert_eq!(
            conclude(k("MaxBurstLength"), "262144", "65536").unwrap(),
            "65536"
        );
        assert!(conclude(k("MaxBurstLength"), "65536", "262144").is_err());
        assert_eq!(conclude(k("DefaultTime2Wait"), "2", "5").unwrap(), "5");
        assert!(conclude(k("DefaultTime2Wait"), "5", "2").is_err());
        assert_eq!(conclude(k("ImmediateData"), "No", "Yes").unwrap(), "No");
        assert_eq!(conclude(k("InitialR2T"), "Yes", "No").unwrap(), "Yes");
        assert_eq!(conclude(k("InitialR2T"), "No", "Yes").unwrap(), "Yes");
        assert_eq!(
            conclude(k("HeaderDigest"), "CRC32C,None", "None").unwrap(),
            "None"
        );
        assert!(conclude(k("HeaderDigest"), "None", "CRC32C").is_err());
        assert_eq!(
            conclude(k("HeaderDigest"), "CRC32C", "Reject"),
            Err(NegotiationError::Rejected("HeaderDigest"))
        );
        assert_eq!(
            conclude(k("FirstBurstLength"), "65536", "Irrelevant"),
            Err(NegotiationError::Irrelevant("FirstBurstLength"))
        );
    }

    #[test]
    fn params_record_results() {
        let mut p = OperationalParams::default();
        assert!(p.set("HeaderDigest", "CRC32C"));
        assert!(p.set("MaxRecvDataSegmentLength", "65536"));
        assert!(p.set("InitialR2T", "No"));
        assert!(!p.set("Bogus", "1"));
        assert!(!p.set("MaxBurstLength", "lots"));
        assert!(p.header_digest);
        assert_eq!(p.max_xmit_data_segment_length, 65536);
        assert!(!p.initial_r2t);
        assert!(!p.first_burst_irrelevant());
    }
}
