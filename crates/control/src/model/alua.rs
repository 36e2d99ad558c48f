//! Asymmetric logical unit access, saved form (SPC-4 §5.11.2, in LIO's configfs layout): a device's target port groups (`core/<kind>_<n>/<dev>/alua/<group>`) and
//! the LU groups (`core/alua/lu_gps/<group>`), their attribute rules and checks.
//!
//! The saved form follows rtslib's `alua_tpgs` and also keeps the default group,
//! the access state and status, so that states survive restarts; a restart restores them
//! without a transition (no unit attention, no delay). States, status codes and access types
//! are spelled with the one ALUA vocabulary, `ironlun_scsi::alua`.

use ironlun_engine::scsi::alua::AccessState;
use serde::{Deserialize, Serialize};

use super::attrib::at_path;
use super::is_object_name;

/// The target port group every device has (id 0, LIO's auto-created group).
pub const DEFAULT_TG_PT_GP: &str = "default_tg_pt_gp";
/// The LU group every device is in unless it joined another one (id 0).
pub const DEFAULT_LU_GP: &str = "default_lu_gp";

/// Group attribute names in display order, from the engine's declarations (LIO configfs names).
pub fn group_attributes() -> Vec<&'static str> {
    ironlun_engine::alua_group_attribute_defs()
        .map(|d| d.name)
        .collect()
}

/// `value` of group attribute `attr` parsed by the engine's declaration of it; errors are one
/// line at `at`, the attribute's path.
fn parse_attr(at: &str, attr: &str, value: &str) -> Result<u32, String> {
    let def = ironlun_engine::alua_group_attribute_defs()
        .find(|d| d.name == attr)
        .ok_or_else(|| {
            format!(
                "{at}: unknown attribute; valid: {}",
                group_attributes().join(", ")
            )
        })?;
    def.parse(value).map_err(|e| at_path(at, attr, &e))
}

/// The primary access states a group can be put in (SPC-4 table 164 less LBA Dependent, which
/// LIO does not offer), in the order messages list them.
pub const GROUP_STATES: [AccessState; 6] = [
    AccessState::ActiveOptimized,
    AccessState::ActiveNonOptimized,
    AccessState::Standby,
    AccessState::Unavailable,
    AccessState::Offline,
    AccessState::Transitioning,
];

/// A group's access state from user or engine text (a code, a short or a long name); `None`
/// for text that names no state a group can be in.
pub fn parse_group_state(v: &str) -> Option<u8> {
    AccessState::parse(v)
        .filter(|s| GROUP_STATES.contains(s))
        .map(AccessState::code)
}

/// `states` as messages list them: `ao (0), ano (1), s (2)`, the last one after `last_sep`
/// (`" or "` for the choices of a setting).
fn state_choices(states: impl Iterator<Item = AccessState>, last_sep: &str) -> String {
    let all: Vec<String> = states
        .map(|s| format!("{} ({})", s.short_name(), s.code()))
        .collect();
    match all.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{}{last_sep}{last}", rest.join(", ")),
        _ => all.concat(),
    }
}

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

    pub(crate) fn support_slot(&mut self, attr: &str) -> Option<&mut u8> {
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

    /// The `alua_support_*` flag of `state` (0 for a reserved code).
    fn support_flag_of(&self, state: AccessState) -> u8 {
        match state {
            AccessState::ActiveOptimized => self.alua_support_active_optimized,
            AccessState::ActiveNonOptimized => self.alua_support_active_nonoptimized,
            AccessState::Standby => self.alua_support_standby,
            AccessState::Unavailable => self.alua_support_unavailable,
            AccessState::LbaDependent => self.alua_support_lba_dependent,
            AccessState::Offline => self.alua_support_offline,
            AccessState::Transitioning => self.alua_support_transitioning,
            AccessState::Reserved(_) => 0,
        }
    }

    /// Whether the group supports access state `code` (its `alua_support_*` bit).
    pub fn supports(&self, code: u8) -> bool {
        code <= 0x0f && self.support_flag_of(AccessState::from_code(code)) == 1
    }

    /// The supported states as RTPG reports them (byte 1 of a descriptor, SPC-4 §6.37).
    pub fn supported_bits(&self) -> u8 {
        GROUP_STATES
            .iter()
            .chain([&AccessState::LbaDependent])
            .filter(|s| self.support_flag_of(**s) == 1)
            .fold(0, |b, s| b | s.support_bit())
    }

    /// Set one attribute from user text. `at` names the attribute in errors (one line naming
    /// it and what is valid). Setting the access state is an implicit (administrative)
    /// transition, so the status becomes "altered by implicit ALUA" (0x02) when it changes.
    pub fn set(&mut self, at: &str, attr: &str, value: &str) -> Result<(), String> {
        // Every value but the state and the read-only ones, as the engine declares it.
        let as_u8 = |v: u32| u8::try_from(v).unwrap_or(u8::MAX);
        match attr {
            "alua_access_state" => {
                let code = parse_group_state(value).ok_or_else(|| {
                    format!(
                        "{at}: '{value}' is not valid; expected {}",
                        state_choices(GROUP_STATES.into_iter(), " or ")
                    )
                })?;
                if self.alua_access_type & 1 == 0 {
                    return Err(format!(
                        "{at}: the group's alua_access_type is {} (no implicit ALUA), so an administrator cannot change its state; set alua_access_type to 1 or 3 first",
                        self.alua_access_type
                    ));
                }
                if !self.supports(code) {
                    return Err(format!(
                        "{at}: {} is not a supported state of this group; valid: {}",
                        AccessState::from_code(code).name(),
                        self.supported_choices()
                    ));
                }
                if code != self.alua_access_state {
                    self.alua_access_state = code;
                    self.alua_access_status = 2;
                }
            }
            "alua_access_status" => {
                self.alua_access_status = as_u8(parse_attr(at, attr, value)?);
            }
            "alua_access_type" => self.alua_access_type = as_u8(parse_attr(at, attr, value)?),
            "preferred" => self.preferred = as_u8(parse_attr(at, attr, value)?),
            "nonop_delay_msecs" => self.nonop_delay_msecs = parse_attr(at, attr, value)?,
            "trans_delay_msecs" => self.trans_delay_msecs = parse_attr(at, attr, value)?,
            "implicit_trans_secs" => self.implicit_trans_secs = parse_attr(at, attr, value)?,
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
                let v = as_u8(parse_attr(at, attr, value)?);
                let slot = self.support_slot(attr).ok_or_else(|| {
                    format!("{at}: unknown attribute; valid: {}", group_attributes().join(", "))
                })?;
                *slot = v;
            }
        }
        Ok(())
    }

    fn supported_choices(&self) -> String {
        state_choices(
            GROUP_STATES
                .into_iter()
                .filter(|s| self.support_flag_of(*s) == 1),
            ", ",
        )
    }

    /// Whole-group checks (a loaded file): ranges and the state's code.
    pub fn validate(&self, at: &str) -> Result<(), String> {
        let at = format!("{at}/alua/{}", self.name);
        validate_group_name(&at, &self.name)?;
        if !GROUP_STATES
            .iter()
            .any(|s| s.code() == self.alua_access_state)
        {
            return Err(format!(
                "{at}/alua_access_state: {} is not valid; expected {}",
                self.alua_access_state,
                state_choices(GROUP_STATES.into_iter(), " or ")
            ));
        }
        let values: [(&str, u32); 6] = [
            ("alua_access_status", self.alua_access_status.into()),
            ("alua_access_type", self.alua_access_type.into()),
            ("preferred", self.preferred.into()),
            ("nonop_delay_msecs", self.nonop_delay_msecs),
            ("trans_delay_msecs", self.trans_delay_msecs),
            ("implicit_trans_secs", self.implicit_trans_secs),
        ];
        let supports = group_attributes()
            .into_iter()
            .filter(|n| n.starts_with("alua_support_"))
            .map(|n| (n, u32::from(self.support_flag(n).unwrap_or(0))));
        for (name, v) in values.into_iter().chain(supports) {
            parse_attr(&format!("{at}/{name}"), name, &v.to_string())?;
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

/// Group names (target port and LU groups): like device names.
pub fn validate_group_name(at: &str, name: &str) -> Result<(), String> {
    if is_object_name(name) {
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
