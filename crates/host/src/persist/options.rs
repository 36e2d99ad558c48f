//! What one `ironlun host persist` invocation asks for, checked before anything is sent: the
//! service action (PERSISTENT RESERVE IN, SPC-4 §6.15.1 Table 162; OUT, §6.16.1 Table 172)
//! chosen with sg_persist's options and safeguards (`--out` must accompany a PR OUT action;
//! one action per invocation; READ KEYS when none is given), and the PR OUT parameters
//! (§6.16.3 basic parameter list, §6.16.4 REGISTER AND MOVE) of the actions that use them.
//!
//! sg_persist sends whatever it is given; here an option the chosen service action would
//! ignore or reject (SPC-4 §6.16.2 Table 173 and the field rules of §6.16.3) is refused,
//! with one line naming the option and what is valid.

use ironlun_initiator::pr::{in_sa, out_sa, PrType, TransportId};

use super::tid::parse_transport_ids;
use super::PersistArgs;
use crate::{HostError, Result};

/// PERSISTENT RESERVE IN service actions (SPC-4 Table 162).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InAction {
    ReadKeys,
    ReadReservation,
    ReportCapabilities,
    ReadFullStatus,
}

/// PERSISTENT RESERVE OUT service actions (SPC-4 Table 172).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutAction {
    Register,
    RegisterIgnore,
    Reserve,
    Release,
    Clear,
    Preempt,
    PreemptAbort,
    RegisterMove,
    ReplaceLost,
}

/// The one service action of an invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    In(InAction),
    Out(OutAction),
}

impl InAction {
    pub const ALL: [InAction; 4] = [
        InAction::ReadKeys,
        InAction::ReadReservation,
        InAction::ReportCapabilities,
        InAction::ReadFullStatus,
    ];

    pub fn code(self) -> u8 {
        match self {
            InAction::ReadKeys => in_sa::READ_KEYS,
            InAction::ReadReservation => in_sa::READ_RESERVATION,
            InAction::ReportCapabilities => in_sa::REPORT_CAPABILITIES,
            InAction::ReadFullStatus => in_sa::READ_FULL_STATUS,
        }
    }

    /// The long option (without `--`), also the JSON `action`.
    pub fn option(self) -> &'static str {
        match self {
            InAction::ReadKeys => "read-keys",
            InAction::ReadReservation => "read-reservation",
            InAction::ReportCapabilities => "report-capabilities",
            InAction::ReadFullStatus => "read-full-status",
        }
    }

    /// sg_persist's name of the service action.
    pub fn title(self) -> &'static str {
        match self {
            InAction::ReadKeys => "Read keys",
            InAction::ReadReservation => "Read reservation",
            InAction::ReportCapabilities => "Report capabilities",
            InAction::ReadFullStatus => "Read full status",
        }
    }
}

impl OutAction {
    pub const ALL: [OutAction; 9] = [
        OutAction::Register,
        OutAction::RegisterIgnore,
        OutAction::Reserve,
        OutAction::Release,
        OutAction::Clear,
        OutAction::Preempt,
        OutAction::PreemptAbort,
        OutAction::RegisterMove,
        OutAction::ReplaceLost,
    ];

    pub fn code(self) -> u8 {
        match self {
            OutAction::Register => out_sa::REGISTER,
            OutAction::RegisterIgnore => out_sa::REGISTER_AND_IGNORE_EXISTING_KEY,
            OutAction::Reserve => out_sa::RESERVE,
            OutAction::Release => out_sa::RELEASE,
            OutAction::Clear => out_sa::CLEAR,
            OutAction::Preempt => out_sa::PREEMPT,
            OutAction::PreemptAbort => out_sa::PREEMPT_AND_ABORT,
            OutAction::RegisterMove => out_sa::REGISTER_AND_MOVE,
            OutAction::ReplaceLost => out_sa::REPLACE_LOST_RESERVATION,
        }
    }

    /// The long option (without `--`), also the JSON `action`.
    pub fn option(self) -> &'static str {
        match self {
            OutAction::Register => "register",
            OutAction::RegisterIgnore => "register-ignore",
            OutAction::Reserve => "reserve",
            OutAction::Release => "release",
            OutAction::Clear => "clear",
            OutAction::Preempt => "preempt",
            OutAction::PreemptAbort => "preempt-abort",
            OutAction::RegisterMove => "register-move",
            OutAction::ReplaceLost => "replace-lost",
        }
    }

    /// sg_persist's name of the service action.
    pub fn title(self) -> &'static str {
        match self {
            OutAction::Register => "Register",
            OutAction::RegisterIgnore => "Register and ignore existing key",
            OutAction::Reserve => "Reserve",
            OutAction::Release => "Release",
            OutAction::Clear => "Clear",
            OutAction::Preempt => "Preempt",
            OutAction::PreemptAbort => "Preempt and abort",
            OutAction::RegisterMove => "Register and move",
            OutAction::ReplaceLost => "Replace lost reservation",
        }
    }

    /// The CDB TYPE field must name a reservation type (§6.16.2: the actions that create,
    /// release or replace a reservation).
    fn needs_type(self) -> bool {
        matches!(
            self,
            OutAction::Reserve
                | OutAction::Release
                | OutAction::Preempt
                | OutAction::PreemptAbort
                | OutAction::ReplaceLost
        )
    }

    /// Which PR OUT parameters the action reads; the others it ignores (or rejects).
    fn uses(self, p: Param) -> bool {
        use OutAction as A;
        match p {
            // REGISTER AND IGNORE EXISTING KEY ignores the RESERVATION KEY (§6.16.3).
            Param::Rk => self != A::RegisterIgnore,
            // The new key (registrations), the victim's (preempts), the destination's (move).
            Param::Sark => matches!(
                self,
                A::Register | A::RegisterIgnore | A::Preempt | A::PreemptAbort | A::RegisterMove
            ),
            Param::Type => self.needs_type() || self == A::RegisterMove,
            Param::Aptpl => matches!(self, A::Register | A::RegisterIgnore | A::RegisterMove),
            // ALL_TG_PT is valid only for the two registrations (§6.16.3).
            Param::AllTgPt => matches!(self, A::Register | A::RegisterIgnore),
            // SPEC_I_PT is valid only for REGISTER (§6.16.3); a TransportID also names the
            // destination of REGISTER AND MOVE (§6.16.4).
            Param::TransportId => matches!(self, A::Register | A::RegisterMove),
            Param::SpecIPt => self == A::Register,
            Param::Unreg | Param::Rtpi => self == A::RegisterMove,
        }
    }
}

impl Action {
    pub fn option(self) -> &'static str {
        match self {
            Action::In(a) => a.option(),
            Action::Out(a) => a.option(),
        }
    }
}

/// The PR OUT parameter options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Param {
    Rk,
    Sark,
    Type,
    Aptpl,
    AllTgPt,
    TransportId,
    SpecIPt,
    Unreg,
    Rtpi,
}

impl Param {
    fn option(self) -> &'static str {
        match self {
            Param::Rk => "--param-rk",
            Param::Sark => "--param-sark",
            Param::Type => "--prout-type",
            Param::Aptpl => "--param-aptpl",
            Param::AllTgPt => "--param-alltgpt",
            Param::TransportId => "--transport-id",
            Param::SpecIPt => "--spec-i-pt",
            Param::Unreg => "--unreg",
            Param::Rtpi => "--relative-target-port",
        }
    }
}

/// A checked invocation: the service action and the parameters it uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub action: Action,
    /// Print the INQUIRY header lines as sg_persist does (off with `--no-inquiry`).
    pub inquiry: bool,
    /// RESERVATION KEY.
    pub rk: u64,
    /// SERVICE ACTION RESERVATION KEY.
    pub sark: u64,
    /// The CDB TYPE field (`None`: 0, for the actions that ignore it).
    pub prout_type: Option<PrType>,
    pub aptpl: bool,
    pub all_tg_pt: bool,
    /// SPEC_I_PT with [`transport_ids`](Self::transport_ids) (REGISTER).
    pub spec_i_pt: bool,
    /// SPEC_I_PT's initiator ports, or REGISTER AND MOVE's destination (exactly one).
    pub transport_ids: Vec<TransportId>,
    /// REGISTER AND MOVE: unregister the source I_T nexus.
    pub unreg: bool,
    /// REGISTER AND MOVE: the destination's RELATIVE TARGET PORT IDENTIFIER (`None`: the
    /// port this session came through, from VPD page 0x83).
    pub rtpi: Option<u16>,
}

/// The spellings of `--prout-type` names: `(name, type)`.
pub const TYPE_NAMES: [(&str, PrType); 6] = [
    ("wr-ex", PrType::WriteExclusive),
    ("ex-ac", PrType::ExclusiveAccess),
    ("wr-ex-ro", PrType::WriteExclusiveRegistrantsOnly),
    ("ex-ac-ro", PrType::ExclusiveAccessRegistrantsOnly),
    ("wr-ex-ar", PrType::WriteExclusiveAllRegistrants),
    ("ex-ac-ar", PrType::ExclusiveAccessAllRegistrants),
];

const VALID_TYPES: &str = "a type of SPC-4 Table 168: 1 or wr-ex (Write Exclusive), 3 or ex-ac \
     (Exclusive Access), 5 or wr-ex-ro, 6 or ex-ac-ro (registrants only), 7 or wr-ex-ar, 8 or \
     ex-ac-ar (all registrants)";

/// `--prout-type`: sg_persist's number (read as hex, `0x` optional; 1..8 read the same either
/// way) or a name.
pub fn parse_type(s: &str) -> Result<PrType> {
    let t = s.trim().to_ascii_lowercase().replace('_', "-");
    if let Some((_, ty)) = TYPE_NAMES.iter().find(|(n, _)| *n == t) {
        return Ok(*ty);
    }
    let digits = t.strip_prefix("0x").unwrap_or(&t);
    u8::from_str_radix(digits, 16)
        .ok()
        .and_then(PrType::from_code)
        .ok_or_else(|| HostError::bad_value("--prout-type", s, VALID_TYPES))
}

/// A hex number of at most `max_digits` digits, `0x` optional (sg_persist reads keys and the
/// relative target port in hex).
fn parse_hex(option: &str, s: &str, max_digits: usize, valid: &str) -> Result<u64> {
    let t = s.trim();
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if digits.is_empty()
        || digits.len() > max_digits
        || !digits.bytes().all(|c| c.is_ascii_hexdigit())
    {
        return Err(HostError::bad_value(option, s, valid));
    }
    u64::from_str_radix(digits, 16).map_err(|_| HostError::bad_value(option, s, valid))
}

/// `--param-rk` / `--param-sark`: a reservation key in hex.
pub fn parse_key(option: &str, s: &str) -> Result<u64> {
    parse_hex(
        option,
        s,
        16,
        "a reservation key in hex, at most 16 digits, 0x optional (as sg_persist: 1234 is 0x1234)",
    )
}

/// `--relative-target-port`: a RELATIVE TARGET PORT IDENTIFIER in hex (1..ffff; 0 is
/// reserved, SPC-4 §7.8.6.5).
pub fn parse_rtpi(s: &str) -> Result<u16> {
    let valid = "a relative target port identifier in hex, 1 to ffff (0x optional)";
    let v = parse_hex("--relative-target-port", s, 4, valid)?;
    match u16::try_from(v) {
        Ok(r) if r != 0 => Ok(r),
        _ => Err(HostError::bad_value("--relative-target-port", s, valid)),
    }
}

fn list(options: &[&str]) -> String {
    options
        .iter()
        .map(|o| format!("--{o}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Plan {
    /// Check the options as sg_persist does, and more strictly (see the module doc).
    pub fn from_args(a: &PersistArgs) -> Result<Plan> {
        let ins: Vec<InAction> = InAction::ALL
            .into_iter()
            .filter(|x| a.in_flag(*x))
            .collect();
        let outs: Vec<OutAction> = OutAction::ALL
            .into_iter()
            .filter(|x| a.out_flag(*x))
            .collect();
        let in_names: Vec<&str> = ins.iter().map(|x| x.option()).collect();
        let out_names: Vec<&str> = outs.iter().map(|x| x.option()).collect();
        let all_out = OutAction::ALL.map(OutAction::option);
        if a.r#in && a.out {
            return Err(HostError::new(
                "--in and --out: choose one (PERSISTENT RESERVE IN or OUT)",
            ));
        }
        let action = if a.out {
            if let Some(i) = in_names.first() {
                return Err(HostError::new(format!(
                    "--{i} is a PR IN service action; with --out choose one of {}",
                    list(&all_out)
                )));
            }
            match outs.as_slice() {
                [one] => Action::Out(*one),
                [] => {
                    return Err(HostError::new(format!(
                        "--out needs one PR OUT service action: {}",
                        list(&all_out)
                    )))
                }
                _ => {
                    return Err(HostError::new(format!(
                        "one service action per invocation, not {}",
                        list(&out_names)
                    )))
                }
            }
        } else {
            if let Some(o) = out_names.first() {
                return Err(HostError::new(format!(
                    "--{o} is a PR OUT service action: give --out (-o) too, as sg_persist \
                     requires (a safeguard)"
                )));
            }
            match ins.as_slice() {
                [] => Action::In(InAction::ReadKeys),
                [one] => Action::In(*one),
                _ => {
                    return Err(HostError::new(format!(
                        "one service action per invocation, not {}",
                        list(&in_names)
                    )))
                }
            }
        };
        let given = a.params_given();
        let out = match action {
            Action::In(i) => {
                if let Some(p) = given.first() {
                    return Err(HostError::new(format!(
                        "{} is a PR OUT parameter; --{} (PR IN) takes none",
                        p.option(),
                        i.option()
                    )));
                }
                return Ok(Plan::new(action, !a.no_inquiry));
            }
            Action::Out(o) => o,
        };
        if let Some(p) = given.iter().find(|p| !out.uses(**p)) {
            let users: Vec<&str> = OutAction::ALL
                .into_iter()
                .filter(|x| x.uses(*p))
                .map(OutAction::option)
                .collect();
            return Err(HostError::new(format!(
                "{} is not used by --{} (only by {})",
                p.option(),
                out.option(),
                list(&users)
            )));
        }
        let mut plan = Plan::new(action, !a.no_inquiry);
        if let Some(s) = &a.param_rk {
            plan.rk = parse_key("--param-rk", s)?;
        }
        if let Some(s) = &a.param_sark {
            plan.sark = parse_key("--param-sark", s)?;
        }
        if let Some(s) = &a.prout_type {
            plan.prout_type = Some(parse_type(s)?);
        }
        if let Some(s) = &a.relative_target_port {
            plan.rtpi = Some(parse_rtpi(s)?);
        }
        plan.transport_ids = parse_transport_ids(&a.transport_id)?;
        plan.aptpl = a.param_aptpl;
        plan.all_tg_pt = a.param_alltgpt;
        plan.unreg = a.unreg;
        if out.needs_type() && plan.prout_type.is_none() {
            return Err(HostError::new(format!(
                "--{} needs --prout-type (-T): {VALID_TYPES}",
                out.option()
            )));
        }
        match out {
            OutAction::Register => {
                if a.spec_i_pt && plan.transport_ids.is_empty() {
                    return Err(HostError::new(
                        "--spec-i-pt needs the initiator ports to register: --transport-id \
                         (-X) iqn.…[,i,0x<ISID>], several separated by ';' or repeated",
                    ));
                }
                // As sg_persist: TransportIDs with REGISTER mean SPEC_I_PT.
                plan.spec_i_pt = !plan.transport_ids.is_empty();
            }
            OutAction::RegisterMove => {
                if plan.transport_ids.len() != 1 {
                    return Err(HostError::new(format!(
                        "--register-move needs one (and only one) --transport-id, the \
                         destination initiator port; {} given",
                        plan.transport_ids.len()
                    )));
                }
                if plan.sark == 0 {
                    return Err(HostError::new(
                        "--register-move needs --param-sark (-S): the destination's new \
                         reservation key, not 0 (SPC-4 §6.16.4)",
                    ));
                }
            }
            _ => {}
        }
        Ok(plan)
    }

    fn new(action: Action, inquiry: bool) -> Plan {
        Plan {
            action,
            inquiry,
            rk: 0,
            sark: 0,
            prout_type: None,
            aptpl: false,
            all_tg_pt: false,
            spec_i_pt: false,
            transport_ids: Vec::new(),
            unreg: false,
            rtpi: None,
        }
    }
}

impl PersistArgs {
    fn in_flag(&self, x: InAction) -> bool {
        match x {
            InAction::ReadKeys => self.read_keys,
            InAction::ReadReservation => self.read_reservation,
            InAction::ReportCapabilities => self.report_capabilities,
            InAction::ReadFullStatus => self.read_full_status,
        }
    }

    fn out_flag(&self, x: OutAction) -> bool {
        match x {
            OutAction::Register => self.register,
            OutAction::RegisterIgnore => self.register_ignore,
            OutAction::Reserve => self.reserve,
            OutAction::Release => self.release,
            OutAction::Clear => self.clear,
            OutAction::Preempt => self.preempt,
            OutAction::PreemptAbort => self.preempt_abort,
            OutAction::RegisterMove => self.register_move,
            OutAction::ReplaceLost => self.replace_lost,
        }
    }

    /// The PR OUT parameter options given, in a fixed order.
    fn params_given(&self) -> Vec<Param> {
        [
            (Param::Rk, self.param_rk.is_some()),
            (Param::Sark, self.param_sark.is_some()),
            (Param::Type, self.prout_type.is_some()),
            (Param::Aptpl, self.param_aptpl),
            (Param::AllTgPt, self.param_alltgpt),
            (Param::TransportId, !self.transport_id.is_empty()),
            (Param::SpecIPt, self.spec_i_pt),
            (Param::Unreg, self.unreg),
            (Param::Rtpi, self.relative_target_port.is_some()),
        ]
        .into_iter()
        .filter_map(|(p, on)| on.then_some(p))
        .collect()
    }
}
