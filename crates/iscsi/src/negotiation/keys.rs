//! The key catalogue of RFC 7143 §13 (with the CHAP keys of §12.1.3 and iSCSIProtocolLevel
//! of RFC 7144 §2.1): each key's type, result function, default, scope and sender.

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
