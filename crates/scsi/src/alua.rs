//! The ALUA vocabulary (SPC-4 §5.11): target port asymmetric access states, the supported-state
//! bits, the access status codes and the TPGS access types, with the one set of names and the one
//! parser the engine, the control plane and the initiator all use.

/// A target port asymmetric access state (SPC-4 §5.11.2, table 164; the 4-bit field of REPORT
/// and SET TARGET PORT GROUPS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessState {
    ActiveOptimized,
    ActiveNonOptimized,
    Standby,
    Unavailable,
    LbaDependent,
    Offline,
    Transitioning,
    /// A reserved code: kept so that a report carrying one can be judged (initiator side).
    Reserved(u8),
}

/// Every defined state with its short name (LIO's tcm_node / targetcli spelling) and its long
/// name (as LIO displays it).
const NAMES: [(AccessState, &str, &str); 7] = [
    (AccessState::ActiveOptimized, "ao", "Active/Optimized"),
    (
        AccessState::ActiveNonOptimized,
        "ano",
        "Active/NonOptimized",
    ),
    (AccessState::Standby, "s", "Standby"),
    (AccessState::Unavailable, "u", "Unavailable"),
    (AccessState::LbaDependent, "lbd", "LBA Dependent"),
    (AccessState::Offline, "o", "Offline"),
    (AccessState::Transitioning, "t", "Transitioning"),
];

impl AccessState {
    /// The 4-bit code.
    pub fn code(self) -> u8 {
        match self {
            AccessState::ActiveOptimized => 0x0,
            AccessState::ActiveNonOptimized => 0x1,
            AccessState::Standby => 0x2,
            AccessState::Unavailable => 0x3,
            AccessState::LbaDependent => 0x4,
            AccessState::Offline => 0xE,
            AccessState::Transitioning => 0xF,
            AccessState::Reserved(c) => c & 0x0f,
        }
    }

    /// From the low 4 bits of `code` (a reserved code becomes [`AccessState::Reserved`]).
    pub fn from_code(code: u8) -> AccessState {
        match code & 0x0f {
            0x0 => AccessState::ActiveOptimized,
            0x1 => AccessState::ActiveNonOptimized,
            0x2 => AccessState::Standby,
            0x3 => AccessState::Unavailable,
            0x4 => AccessState::LbaDependent,
            0xE => AccessState::Offline,
            0xF => AccessState::Transitioning,
            c => AccessState::Reserved(c),
        }
    }

    /// The short name: `ao`, `ano`, `s`, `u`, `lbd`, `o`, `t` (`reserved` for a reserved code).
    pub fn short_name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(s, ..)| *s == self)
            .map_or("reserved", |(_, n, _)| n)
    }

    /// The long name, as LIO displays it ("Active/Optimized"; "Reserved" for a reserved code).
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(s, ..)| *s == self)
            .map_or("Reserved", |(.., n)| n)
    }

    /// Parses a state as administrators write it: a code (decimal, or hex with `0x`), a short
    /// name, or a long name (any case; `_` may stand for `/`). Reserved codes are refused.
    pub fn parse(v: &str) -> Option<AccessState> {
        let v = v.trim();
        let code = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
            Some(h) => u8::from_str_radix(h, 16).ok(),
            None => v.parse::<u8>().ok(),
        };
        if let Some(c) = code {
            return (c <= 0x0f)
                .then(|| AccessState::from_code(c))
                .filter(|s| !matches!(s, AccessState::Reserved(_)));
        }
        let lower = v.to_ascii_lowercase().replace('_', "/");
        NAMES
            .iter()
            .find(|(_, s, l)| *s == lower || l.to_ascii_lowercase() == lower)
            .map(|(s, ..)| *s)
    }

    /// The ASCQ of NOT READY / ASC 04h for a command this state refuses (SPC-4 §5.11.2.5..8), if
    /// the state refuses commands at all.
    pub fn not_ready_ascq(self) -> Option<u8> {
        match self {
            AccessState::Transitioning => Some(0x0A),
            AccessState::Standby => Some(0x0B),
            AccessState::Unavailable => Some(0x0C),
            AccessState::Offline => Some(0x12),
            _ => None,
        }
    }

    /// This state's bit in a target port group descriptor's supported states (byte 1).
    pub fn support_bit(self) -> u8 {
        match self {
            AccessState::Transitioning => support::T,
            AccessState::Offline => support::O,
            AccessState::LbaDependent => support::LBD,
            AccessState::Unavailable => support::U,
            AccessState::Standby => support::S,
            AccessState::ActiveNonOptimized => support::AN,
            AccessState::ActiveOptimized => support::AO,
            AccessState::Reserved(_) => 0,
        }
    }
}

/// Supported-state bits of a target port group descriptor (SPC-4 §6.37, table 163, byte 1).
pub mod support {
    pub const T: u8 = 0x80;
    pub const O: u8 = 0x40;
    pub const LBD: u8 = 0x10;
    pub const U: u8 = 0x08;
    pub const S: u8 = 0x04;
    pub const AN: u8 = 0x02;
    pub const AO: u8 = 0x01;
}

/// The supported-state bits of a target port group descriptor, one flag each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SupportedStates {
    /// T_SUP: Transitioning.
    pub transitioning: bool,
    /// O_SUP: Offline.
    pub offline: bool,
    /// LBD_SUP: LBA Dependent.
    pub lba_dependent: bool,
    /// U_SUP: Unavailable.
    pub unavailable: bool,
    /// S_SUP: Standby.
    pub standby: bool,
    /// AN_SUP: Active/Non-optimized.
    pub active_nonoptimized: bool,
    /// AO_SUP: Active/Optimized.
    pub active_optimized: bool,
}

impl SupportedStates {
    pub fn from_byte(b: u8) -> SupportedStates {
        SupportedStates {
            transitioning: b & support::T != 0,
            offline: b & support::O != 0,
            lba_dependent: b & support::LBD != 0,
            unavailable: b & support::U != 0,
            standby: b & support::S != 0,
            active_nonoptimized: b & support::AN != 0,
            active_optimized: b & support::AO != 0,
        }
    }

    pub fn to_byte(self) -> u8 {
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        bit(self.transitioning, support::T)
            | bit(self.offline, support::O)
            | bit(self.lba_dependent, support::LBD)
            | bit(self.unavailable, support::U)
            | bit(self.standby, support::S)
            | bit(self.active_nonoptimized, support::AN)
            | bit(self.active_optimized, support::AO)
    }

    /// Whether `state` is among the supported ones.
    pub fn supports(self, state: AccessState) -> bool {
        self.to_byte() & state.support_bit() != 0
    }
}

/// LIO's wording for `code` in a (code, name) table of [`status_code`] or [`access_type`];
/// "None" for a code the table lacks.
fn code_name(names: &[(u8, &'static str)], code: u8) -> &'static str {
    names
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("None", |(_, n)| n)
}

/// A code of such a table as administrators write it: its number or LIO's wording.
fn parse_code(names: &[(u8, &str)], v: &str) -> Option<u8> {
    let v = v.trim();
    names
        .iter()
        .find(|(c, n)| *n == v || c.to_string() == v)
        .map(|(c, _)| *c)
}

/// STATUS CODE of a target port group descriptor (SPC-4 table 165), with LIO's display names.
pub mod status_code {
    pub const NONE: u8 = 0x00;
    /// Altered by SET TARGET PORT GROUPS.
    pub const ALTERED_BY_STPG: u8 = 0x01;
    /// Altered by implicit asymmetric logical unit access behaviour.
    pub const ALTERED_BY_IMPLICIT: u8 = 0x02;

    const NAMES: [(u8, &str); 3] = [
        (NONE, "None"),
        (ALTERED_BY_STPG, "Altered by Explicit STPG"),
        (ALTERED_BY_IMPLICIT, "Altered by Implicit ALUA"),
    ];

    /// LIO's wording for a status code ("None" for an unknown one).
    pub fn name(code: u8) -> &'static str {
        super::code_name(&NAMES, code)
    }

    /// A status as administrators write it: its number or LIO's wording.
    pub fn parse(v: &str) -> Option<u8> {
        super::parse_code(&NAMES, v)
    }
}

/// The TPGS field of standard INQUIRY data and LIO's `alua_access_type` (SPC-4 §6.4.2): which
/// kinds of asymmetric access state changes a target supports.
pub mod access_type {
    pub const NONE: u8 = 0;
    /// Implicit ALUA (01b).
    pub const IMPLICIT: u8 = 1;
    /// Explicit ALUA: SET TARGET PORT GROUPS (10b).
    pub const EXPLICIT: u8 = 2;
    pub const BOTH: u8 = 3;

    const NAMES: [(u8, &str); 4] = [
        (NONE, "None"),
        (IMPLICIT, "Implicit"),
        (EXPLICIT, "Explicit"),
        (BOTH, "Implicit and Explicit"),
    ];

    /// LIO's wording for the two TPGS bits of `code`.
    pub fn name(code: u8) -> &'static str {
        super::code_name(&NAMES, code & 3)
    }

    /// An access type as administrators write it: 0-3 or LIO's wording.
    pub fn parse(v: &str) -> Option<u8> {
        super::parse_code(&NAMES, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_defined_states_parse_by_each_spelling() {
        for c in 0..16u8 {
            let s = AccessState::from_code(c);
            assert_eq!(s.code(), c);
            if matches!(s, AccessState::Reserved(_)) {
                assert_eq!(AccessState::parse(&c.to_string()), None);
                continue;
            }
            assert_eq!(AccessState::parse(&c.to_string()), Some(s));
            assert_eq!(AccessState::parse(&format!("0x{c:x}")), Some(s));
            assert_eq!(AccessState::parse(s.short_name()), Some(s));
            assert_eq!(AccessState::parse(s.name()), Some(s));
            assert_eq!(AccessState::parse(&s.name().to_uppercase()), Some(s));
        }
        assert_eq!(
            AccessState::parse("active_optimized"),
            Some(AccessState::ActiveOptimized)
        );
        assert_eq!(AccessState::parse("16"), None);
        assert_eq!(AccessState::parse("bogus"), None);
    }

    #[test]
    fn supported_states_byte_round_trips() {
        for b in 0..=255u8 {
            // Bit 5 is reserved and not kept.
            assert_eq!(SupportedStates::from_byte(b).to_byte(), b & !0x20);
        }
        let s = SupportedStates::from_byte(support::AO | support::S);
        assert!(s.supports(AccessState::Standby) && !s.supports(AccessState::Offline));
    }

    #[test]
    fn status_and_type_names_parse_back() {
        for c in 0..3 {
            assert_eq!(status_code::parse(status_code::name(c)), Some(c));
            assert_eq!(status_code::parse(&c.to_string()), Some(c));
        }
        for c in 0..4 {
            assert_eq!(access_type::parse(access_type::name(c)), Some(c));
        }
        assert_eq!(access_type::parse("4"), None);
    }
}
