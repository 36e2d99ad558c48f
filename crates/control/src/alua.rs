//! Asymmetric logical unit access, control side (SPC-4 §5.11.2; LIO configfs layout, research
//! lio.md §3.6-3.8): the saved target port groups of a device (`core/<kind>_<n>/<dev>/alua/`),
//! the LU groups (`core/alua/lu_gps/`), attribute parsing and validation, and the
//! `ironlun alua show` report.
//!
//! The saved form follows rtslib's `alua_tpgs` (lio.md §5.4) and also keeps the default group,
//! the access state and status, so that states survive restarts; a restart restores them
//! without a transition (no unit attention, no delay).

use serde::{Deserialize, Serialize};

use crate::model::{Config, DevKey, StorageObject};

/// The target port group every device has (id 0, LIO's auto-created group).
pub const DEFAULT_TG_PT_GP: &str = "default_tg_pt_gp";
/// The LU group every device is in unless it joined another one (id 0).
pub const DEFAULT_LU_GP: &str = "default_lu_gp";

/// Group attribute names in display order: the engine's list (LIO configfs names).
pub use ironlun_engine::ALUA_GROUP_ATTRIBUTES as GROUP_ATTRIBUTES;

/// Maxima of the delay attributes (LIO's limits, lio.md §3.1).
pub const MAX_NONOP_DELAY_MSECS: u32 = 10_000;
pub const MAX_TRANS_DELAY_MSECS: u32 = 30_000;
pub const MAX_IMPLICIT_TRANS_SECS: u32 = 255;

/// Primary access state codes (SPC-4 Table 161): code, short name, long name.
pub const STATES: &[(u8, &str, &str)] = &[
    (0x0, "ao", "Active/Optimized"),
    (0x1, "ano", "Active/NonOptimized"),
    (0x2, "s", "Standby"),
    (0x3, "u", "Unavailable"),
    (0xE, "o", "Offline"),
    (0xF, "t", "Transitioning"),
];
const STATE_CODE_TRANSITIONING: u8 = 0xF;

/// One target port group, rtslib `alua_tpgs[]` names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AluaTpg {
    pub name: String,
    pub tg_pt_gp_id: u16,
    pub alua_access_state: u8,
    pub alua_access_status: u8,
    pub alua_access_type: u8,
    pub preferred: u8,
    pub nonop_delay_msecs: u32,
    pub trans_delay_msecs: u32,
    pub implicit_trans_secs: u32,
    pub alua_support_transitioning: u8,
    pub alua_support_offline: u8,
    pub alua_support_lba_dependent: u8,
    pub alua_support_unavailable: u8,
    pub alua_support_standby: u8,
    pub alua_support_active_optimized: u8,
    pub alua_support_active_nonoptimized: u8,
}

/// One LU group (`core/alua/lu_gps/<name>`); `default_lu_gp` is implied, never saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuGp {
    pub name: String,
    pub lu_gp_id: u16,
}

impl AluaTpg {
    /// A new group with LIO's defaults: Active/Optimized, implicit and explicit ALUA, every
    /// state but LBA dependent supported, nonop delay 100 ms.
    pub fn new(name: &str, id: u16) -> AluaTpg {
        AluaTpg {
            name: name.to_string(),
            tg_pt_gp_id: id,
            alua_access_state: 0,
            alua_access_status: 0,
            alua_access_type: 3,
            preferred: 0,
            nonop_delay_msecs: 100,
            trans_delay_msecs: 0,
            implicit_trans_secs: 0,
            alua_support_transitioning: 1,
            alua_support_offline: 1,
            alua_support_lba_dependent: 0,
            alua_support_unavailable: 1,
            alua_support_standby: 1,
            alua_support_active_optimized: 1,
            alua_support_active_nonoptimized: 1,
        }
    }

    /// Value of a settable attribute as saved (decimal), `None` for `members`/unknown names.
    pub fn get(&self, attr: &str) -> Option<String> {
        Some(match attr {
            "alua_access_state" => self.alua_access_state.to_string(),
            "alua_access_status" => self.alua_access_status.to_string(),
            "alua_access_type" => self.alua_access_type.to_string(),
            "preferred" => self.preferred.to_string(),
            "nonop_delay_msecs" => self.nonop_delay_msecs.to_string(),
            "trans_delay_msecs" => self.trans_delay_msecs.to_string(),
            "implicit_trans_secs" => self.implicit_trans_secs.to_string(),
            "tg_pt_gp_id" => self.tg_pt_gp_id.to_string(),
            _ => self.support_flag(attr)?.to_string(),
        })
    }

    fn support_flag(&self, attr: &str) -> Option<u8> {
        Some(match attr {
            "alua_support_transitioning" => self.alua_support_transitioning,
            "alua_support_offline" => self.alua_support_offline,
            "alua_support_lba_dependent" => self.alua_support_lba_dependent,
            "alua_support_unavailable" => self.alua_support_unavailable,
            "alua_support_standby" => self.alua_support_standby,
            "alua_support_active_optimized" => self.alua_support_active_optimized,
            "alua_support_active_nonoptimized" => self.alua_support_active_nonoptimized,
            _ => return None,
        })
    }

    fn support_slot(&mut self, attr: &str) -> Option<&mut u8> {
        Some(match attr {
            "alua_support_transitioning" => &mut self.alua_support_transitioning,
            "alua_support_offline" => &mut self.alua_support_offline,
            "alua_support_lba_dependent" => &mut self.alua_support_lba_dependent,
            "alua_support_unavailable" => &mut self.alua_support_unavailable,
            "alua_support_standby" => &mut self.alua_support_standby,
            "alua_support_active_optimized" => &mut self.alua_support_active_optimized,
            "alua_support_active_nonoptimized" => &mut self.alua_support_active_nonoptimized,
            _ => return None,
        })
    }

    /// Whether the group supports access state `code` (its `alua_support_*` bit).
    pub fn supports(&self, code: u8) -> bool {
        let bit = match code {
            0x0 => self.alua_support_active_optimized,
            0x1 => self.alua_support_active_nonoptimized,
            0x2 => self.alua_support_standby,
            0x3 => self.alua_support_unavailable,
            0x4 => self.alua_support_lba_dependent,
            0xE => self.alua_support_offline,
            0xF => self.alua_support_transitioning,
            _ => 0,
        };
        bit == 1
    }

    /// The supported states as RTPG reports them (byte 1 of a descriptor, SPC-4 §6.37).
    pub fn supported_bits(&self) -> u8 {
        let mut b = 0;
        for (code, bit) in [
            (0xF, 0x80),
            (0xE, 0x40),
            (0x4, 0x10),
            (0x3, 0x08),
            (0x2, 0x04),
            (0x1, 0x02),
            (0x0, 0x01),
        ] {
            if self.supports(code) {
                b |= bit;
            }
        }
        b
    }

    /// Set one attribute from user text. `at` names the attribute in errors (one line naming
    /// it and what is valid). Setting the access state is an implicit (administrative)
    /// transition, so the status becomes "altered by implicit ALUA" (0x02) when it changes.
    pub fn set(&mut self, at: &str, attr: &str, value: &str) -> Result<(), String> {
        let flag = |v: &str| match v {
            "0" => Ok(0u8),
            "1" => Ok(1u8),
            _ => Err(format!("{at}: '{v}' is not valid; expected 0 or 1")),
        };
        let ranged = |v: &str, max: u32| {
            v.parse::<u32>()
                .ok()
                .filter(|n| *n <= max && (v == "0" || !v.starts_with('0')))
                .ok_or_else(|| format!("{at}: '{v}' is not valid; expected 0-{max}"))
        };
        match attr {
            "alua_access_state" => {
                let code = parse_state(value)
                    .ok_or_else(|| format!("{at}: '{value}' is not valid; expected {}", STATE_CHOICES))?;
                if self.alua_access_type & 1 == 0 {
                    return Err(format!(
                        "{at}: the group's alua_access_type is {} (no implicit ALUA), so an administrator cannot change its state; set alua_access_type to 1 or 3 first",
                        self.alua_access_type
                    ));
                }
                if !self.supports(code) {
                    return Err(format!(
                        "{at}: {} is not a supported state of this group; valid: {}",
                        state_name(code),
                        self.supported_choices()
                    ));
                }
                if code != self.alua_access_state {
                    self.alua_access_state = code;
                    self.alua_access_status = 2;
                }
            }
            "alua_access_status" => {
                self.alua_access_status = parse_status(value).ok_or_else(|| {
                    format!("{at}: '{value}' is not valid; expected 0 (none), 1 (altered by SET TARGET PORT GROUPS) or 2 (altered by implicit ALUA)")
                })?;
            }
            "alua_access_type" => {
                self.alua_access_type = parse_access_type(value).ok_or_else(|| {
                    format!("{at}: '{value}' is not valid; expected 0 (none), 1 (implicit), 2 (explicit) or 3 (implicit and explicit)")
                })?;
            }
            "preferred" => self.preferred = flag(value)?,
            "nonop_delay_msecs" => self.nonop_delay_msecs = ranged(value, MAX_NONOP_DELAY_MSECS)?,
            "trans_delay_msecs" => self.trans_delay_msecs = ranged(value, MAX_TRANS_DELAY_MSECS)?,
            "implicit_trans_secs" => {
                self.implicit_trans_secs = ranged(value, MAX_IMPLICIT_TRANS_SECS)?
            }
            "tg_pt_gp_id" => {
                return Err(format!(
                    "{at}: read-only (given when the group is created: create …/alua/<name> tg_pt_gp_id=<1-65535>)"
                ))
            }
            "members" => {
                return Err(format!(
                    "{at}: read-only (a TPG LUN joins with iscsi/<iqn>/tpgt_<n>/lun/lun_<m>/alua_tg_pt_gp)"
                ))
            }
            _ => {
                let v = flag(value);
                let slot = self.support_slot(attr).ok_or_else(|| {
                    format!("{at}: unknown attribute; valid: {}", GROUP_ATTRIBUTES.join(", "))
                })?;
                *slot = v?;
            }
        }
        Ok(())
    }

    fn supported_choices(&self) -> String {
        STATES
            .iter()
            .filter(|(c, ..)| self.supports(*c))
            .map(|(c, s, _)| format!("{s} ({c})"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whole-group checks (a loaded file): ranges and the state's code.
    pub fn validate(&self, at: &str) -> Result<(), String> {
        let at = format!("{at}/alua/{}", self.name);
        validate_group_name(&at, &self.name)?;
        if !STATES.iter().any(|(c, ..)| *c == self.alua_access_state) {
            return Err(format!(
                "{at}/alua_access_state: {} is not valid; expected {STATE_CHOICES}",
                self.alua_access_state
            ));
        }
        let checks: [(&str, u32, u32); 6] = [
            ("alua_access_status", self.alua_access_status.into(), 2),
            ("alua_access_type", self.alua_access_type.into(), 3),
            ("preferred", self.preferred.into(), 1),
            (
                "nonop_delay_msecs",
                self.nonop_delay_msecs,
                MAX_NONOP_DELAY_MSECS,
            ),
            (
                "trans_delay_msecs",
                self.trans_delay_msecs,
                MAX_TRANS_DELAY_MSECS,
            ),
            (
                "implicit_trans_secs",
                self.implicit_trans_secs,
                MAX_IMPLICIT_TRANS_SECS,
            ),
        ];
        for (name, v, max) in checks {
            if v > max {
                return Err(format!("{at}/{name}: {v} is not valid; expected 0-{max}"));
            }
        }
        for name in GROUP_ATTRIBUTES
            .iter()
            .filter(|n| n.starts_with("alua_support_"))
        {
            if self.support_flag(name).unwrap_or(0) > 1 {
                return Err(format!("{at}/{name}: expected 0 or 1"));
            }
        }
        let default = self.name == DEFAULT_TG_PT_GP;
        if default != (self.tg_pt_gp_id == 0) {
            return Err(format!(
                "{at}/tg_pt_gp_id: {} is not valid; {DEFAULT_TG_PT_GP} has id 0, other groups 1-65535",
                self.tg_pt_gp_id
            ));
        }
        Ok(())
    }
}

const STATE_CHOICES: &str = "ao (0), ano (1), s (2), u (3), o (14) or t (15)";

/// Parse an access state: a code (decimal or 0x hex), a short name (ao/ano/s/u/o/t) or the
/// long name (as the engine may display it).
pub fn parse_state(v: &str) -> Option<u8> {
    let v = v.trim();
    let code = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u8::from_str_radix(h, 16).ok()
    } else {
        v.parse::<u8>().ok()
    };
    let lower = v.to_ascii_lowercase();
    let by_name = STATES.iter().find(|(_, s, l)| {
        *s == lower
            || l.to_ascii_lowercase() == lower
            || l.to_ascii_lowercase().replace('/', "_") == lower
    });
    code.or(by_name.map(|(c, ..)| *c))
        .filter(|c| STATES.iter().any(|(s, ..)| s == c))
}

/// The long name of a state code ("Active/Optimized"); "Unknown" for others.
pub fn state_name(code: u8) -> &'static str {
    STATES
        .iter()
        .find(|(c, ..)| *c == code)
        .map_or("Unknown", |(_, _, l)| l)
}

/// Parse an access status: 0/1/2 or LIO's display strings.
pub fn parse_status(v: &str) -> Option<u8> {
    match v.trim() {
        "0" | "None" => Some(0),
        "1" | "Altered by Explicit STPG" => Some(1),
        "2" | "Altered by Implicit ALUA" => Some(2),
        _ => None,
    }
}

/// Status text (LIO's wording).
pub fn status_name(code: u8) -> &'static str {
    match code {
        1 => "Altered by Explicit STPG",
        2 => "Altered by Implicit ALUA",
        _ => "None",
    }
}

/// Parse an access type: 0-3 or LIO's display strings.
pub fn parse_access_type(v: &str) -> Option<u8> {
    match v.trim() {
        "0" | "None" => Some(0),
        "1" | "Implicit" => Some(1),
        "2" | "Explicit" => Some(2),
        "3" | "Implicit and Explicit" => Some(3),
        _ => None,
    }
}

/// Access type text (LIO's wording).
pub fn access_type_name(code: u8) -> &'static str {
    match code {
        1 => "Implicit",
        2 => "Explicit",
        3 => "Implicit and Explicit",
        _ => "None",
    }
}

/// Group names (target port and LU groups): like device names.
pub fn validate_group_name(at: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{at}: group name '{name}': use 1-64 characters A-Z a-z 0-9 _ - . (not starting with '.')"
        ))
    }
}

/// Parse a group id for `create`: 1-65535.
pub fn parse_group_id(at: &str, key: &str, v: &str) -> Result<u16, String> {
    v.parse::<u16>()
        .ok()
        .filter(|n| *n >= 1 && !v.starts_with('0'))
        .ok_or_else(|| format!("create {at}: {key} '{v}' is not valid; expected 1-65535"))
}

impl StorageObject {
    /// Every target port group of the device, `default_tg_pt_gp` first (with LIO's defaults
    /// when it was never changed and so is not saved).
    pub fn alua_groups(&self) -> Vec<AluaTpg> {
        let mut out = Vec::with_capacity(self.alua_tpgs.len() + 1);
        if !self.alua_tpgs.iter().any(|g| g.name == DEFAULT_TG_PT_GP) {
            out.push(AluaTpg::new(DEFAULT_TG_PT_GP, 0));
        }
        out.extend(self.alua_tpgs.iter().cloned());
        out.sort_by_key(|g| (g.name != DEFAULT_TG_PT_GP, g.name.clone()));
        out
    }

    pub fn alua_group(&self, name: &str) -> Option<AluaTpg> {
        self.alua_groups().into_iter().find(|g| g.name == name)
    }

    /// The saved group `name`, materialising `default_tg_pt_gp` on first change.
    pub fn alua_group_mut(&mut self, name: &str) -> Option<&mut AluaTpg> {
        if name == DEFAULT_TG_PT_GP && !self.alua_tpgs.iter().any(|g| g.name == name) {
            self.alua_tpgs.insert(0, AluaTpg::new(DEFAULT_TG_PT_GP, 0));
        }
        self.alua_tpgs.iter_mut().find(|g| g.name == name)
    }

    /// The LU group the device is in.
    pub fn lu_gp(&self) -> &str {
        self.alua_lu_gp.as_deref().unwrap_or(DEFAULT_LU_GP)
    }

    /// Whole-device ALUA checks: names and ids unique.
    pub fn validate_alua(&self) -> Result<(), String> {
        let at = self.key().to_string();
        let mut names = std::collections::BTreeSet::new();
        let mut ids = std::collections::BTreeMap::new();
        for g in &self.alua_tpgs {
            g.validate(&at)?;
            if !names.insert(g.name.as_str()) {
                return Err(format!("{at}/alua/{} is defined twice", g.name));
            }
            if let Some(other) = ids.insert(g.tg_pt_gp_id, g.name.as_str()) {
                return Err(format!(
                    "{at}/alua/{}/tg_pt_gp_id {} is already used by {other}; ids must be unique per device",
                    g.name, g.tg_pt_gp_id
                ));
            }
        }
        if self.alua_lu_gp.as_deref() == Some(DEFAULT_LU_GP) {
            return Err(format!("{at}/alua_lu_gp: save {DEFAULT_LU_GP} as no value"));
        }
        Ok(())
    }
}

/// A member port of a target port group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub target: String,
    pub tpgt: u16,
    pub lun: u64,
    pub rtpi: u16,
}

impl Config {
    /// The LU groups, `default_lu_gp` first.
    pub fn lu_gps(&self) -> Vec<LuGp> {
        let mut out = vec![LuGp {
            name: DEFAULT_LU_GP.into(),
            lu_gp_id: 0,
        }];
        out.extend(self.alua_lu_gps.iter().cloned());
        out
    }

    /// TPG LUNs exporting `key` that are in its group `group`.
    pub fn alua_members(&self, key: &DevKey, group: &str) -> Vec<Member> {
        let path = key.to_string();
        let mut out = Vec::new();
        for t in &self.targets {
            for g in &t.tpgs {
                for l in &g.luns {
                    if l.storage_object == path && l.tg_pt_gp() == group {
                        out.push(Member {
                            target: t.wwn.clone(),
                            tpgt: g.tag,
                            lun: l.index,
                            rtpi: g.rtpi,
                        });
                    }
                }
            }
        }
        out
    }

    /// LU groups: names and ids unique, device references exist, LUN groups exist.
    pub fn validate_alua(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        let mut ids = std::collections::BTreeMap::new();
        for g in &self.alua_lu_gps {
            let at = format!("core/alua/lu_gps/{}", g.name);
            validate_group_name(&at, &g.name)?;
            if g.name == DEFAULT_LU_GP || !names.insert(g.name.as_str()) {
                return Err(format!("{at} is defined twice"));
            }
            if g.lu_gp_id == 0 {
                return Err(format!(
                    "{at}/lu_gp_id: 0 is {DEFAULT_LU_GP}'s; expected 1-65535"
                ));
            }
            if let Some(other) = ids.insert(g.lu_gp_id, g.name.as_str()) {
                return Err(format!(
                    "{at}/lu_gp_id {} is already used by core/alua/lu_gps/{other}; ids must be unique",
                    g.lu_gp_id
                ));
            }
        }
        for so in &self.storage_objects {
            so.validate_alua()?;
            if let Some(lg) = &so.alua_lu_gp {
                if !names.contains(lg.as_str()) {
                    return Err(format!(
                        "{}/alua_lu_gp: LU group '{lg}' does not exist (core/alua/lu_gps/)",
                        so.key()
                    ));
                }
            }
        }
        for t in &self.targets {
            for g in &t.tpgs {
                for l in &g.luns {
                    let at = format!("iscsi/{}/tpgt_{}/lun/lun_{}", t.wwn, g.tag, l.index);
                    let dev = DevKey::parse(&l.storage_object)
                        .ok()
                        .and_then(|k| self.device(&k));
                    if let Some(so) = dev {
                        if so.alua_group(l.tg_pt_gp()).is_none() {
                            return Err(format!(
                                "{at}/alua_tg_pt_gp: group '{}' does not exist on {}",
                                l.tg_pt_gp(),
                                so.key()
                            ));
                        }
                    }
                    if l.alua_tg_pt_status > 2 {
                        return Err(format!("{at}/alua_tg_pt_status: expected 0, 1 or 2"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Live view of one group for `alua show`: the engine's current state and status when the
/// device is running (a transition in progress shows as Transitioning), else the saved ones.
pub struct LiveState {
    pub state: u8,
    pub status: u8,
}

/// The `ironlun alua show <dev>` report: every group with id, access type, primary state
/// (name and code), status, preferred bit, delays, supported states and member ports.
pub fn report(
    key: &DevKey,
    cfg: &Config,
    so: &StorageObject,
    live: &dyn Fn(&str) -> Option<LiveState>,
) -> String {
    let mut out = format!("{key}: LU group {}\n", so.lu_gp());
    for g in so.alua_groups() {
        let (state, status) = live(&g.name)
            .map_or((g.alua_access_state, g.alua_access_status), |l| {
                (l.state, l.status)
            });
        let supported: Vec<&str> = STATES
            .iter()
            .filter(|(c, ..)| g.supports(*c))
            .map(|(_, s, _)| *s)
            .chain(g.supports(0x4).then_some("lbd"))
            .collect();
        out.push_str(&format!(
            "{} (id {})\n  access type: {} ({})\n  primary state: {} (0x{state:02x})\n  status: {} (0x{status:02x})\n  preferred: {}\n  nonop_delay_msecs: {}  trans_delay_msecs: {}  implicit_trans_secs: {}\n  supported states: {} (0x{:02x})\n",
            g.name,
            g.tg_pt_gp_id,
            access_type_name(g.alua_access_type),
            g.alua_access_type,
            state_name(state),
            status_name(status),
            g.preferred,
            g.nonop_delay_msecs,
            g.trans_delay_msecs,
            g.implicit_trans_secs,
            supported.join(","),
            g.supported_bits(),
        ));
        let members = cfg.alua_members(key, &g.name);
        if members.is_empty() {
            out.push_str("  members: none\n");
        } else {
            out.push_str("  members:\n");
            for m in members {
                let offline = cfg
                    .target(&m.target)
                    .and_then(|t| t.tpg(m.tpgt))
                    .and_then(|tp| tp.lun(m.lun))
                    .is_some_and(|l| l.alua_tg_pt_offline);
                out.push_str(&format!(
                    "    iscsi/{}/tpgt_{}/lun_{} rtpi {}{}\n",
                    m.target,
                    m.tpgt,
                    m.lun,
                    m.rtpi,
                    if offline { " (offline)" } else { "" }
                ));
            }
        }
    }
    out
}

/// Whether the engine's live `alua_access_state` text means "in transition" (then the saved
/// target state is kept: the transition's end fires the observer again).
pub fn is_transitioning(code: u8) -> bool {
    code == STATE_CODE_TRANSITIONING
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_by_code_and_name() {
        for (v, c) in [
            ("ao", 0),
            ("ANO", 1),
            ("s", 2),
            ("u", 3),
            ("o", 14),
            ("t", 15),
            ("14", 14),
            ("0x0f", 15),
            ("Active/Optimized", 0),
            ("standby", 2),
        ] {
            assert_eq!(parse_state(v), Some(c), "{v}");
        }
        for bad in ["", "4", "16", "x", "lbd", "-1", "0x10"] {
            assert_eq!(parse_state(bad), None, "{bad}");
        }
    }

    #[test]
    fn setting_a_state_is_checked_and_marks_the_status_implicit() {
        let mut g = AluaTpg::new("west", 1);
        g.set("w", "alua_access_state", "s").expect("standby");
        assert_eq!((g.alua_access_state, g.alua_access_status), (2, 2));
        g.alua_access_status = 1;
        g.set("w", "alua_access_state", "2").expect("same state");
        assert_eq!(g.alua_access_status, 1, "same state is no transition");
        g.set("w", "alua_support_standby", "0").expect("flag");
        g.set("w", "alua_access_state", "ao").expect("ao");
        let e = g
            .set("w", "alua_access_state", "s")
            .expect_err("unsupported");
        assert!(
            e.contains("not a supported state") && e.starts_with("w:"),
            "{e}"
        );
        g.set("w", "alua_access_type", "2").expect("explicit only");
        let e = g
            .set("w", "alua_access_state", "u")
            .expect_err("no implicit");
        assert!(e.contains("alua_access_type"), "{e}");
        for (attr, v, needle) in [
            ("nonop_delay_msecs", "10001", "0-10000"),
            ("trans_delay_msecs", "30001", "0-30000"),
            ("implicit_trans_secs", "256", "0-255"),
            ("preferred", "2", "0 or 1"),
            ("alua_access_type", "4", "implicit and explicit"),
            ("alua_access_status", "3", "2 (altered"),
            ("tg_pt_gp_id", "4", "read-only"),
            ("members", "x", "read-only"),
            ("bogus", "1", "unknown attribute"),
        ] {
            let before = g.clone();
            let e = g.set("at", attr, v).expect_err(attr);
            assert!(e.contains(needle), "{attr}: {e}");
            assert_eq!(g, before);
        }
    }

    #[test]
    fn supported_bits_follow_the_flags() {
        let g = AluaTpg::new("g", 1);
        assert_eq!(g.supported_bits(), 0xCF);
    }
}
