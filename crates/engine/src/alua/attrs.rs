//! The attributes of a target port group (LIO `alua/<group>/`), each declared once in
//! [`GROUP_ATTRS`]: its schema ([`AttrDef`]) beside its behaviour (how it is shown and how a
//! value the schema accepted is stored). docs/cli.md's table of them is generated from here.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ironlun_scsi::alua::{access_type, status_code, support, AccessState};
use ironlun_scsi::sense::asc;
use ironlun_scsi::Asc;

use super::transition::{finish, transition};
use super::{TgPtGroup, MAX_IMPLICIT_TRANS_SECS, MAX_NONOP_DELAY_MS, MAX_TRANS_DELAY_MS};
use crate::attr::{AttrDef, Default, Domain, WhileExported};
use crate::core::device::Device;

/// One group attribute: its schema and its behaviour.
pub(crate) struct GroupAttr {
    pub def: AttrDef,
    /// The value as LIO shows it.
    pub get: fn(&Device, &TgPtGroup) -> String,
    /// Stores a value the schema accepted (checks that depend on the group may still refuse
    /// it). `None` for read-only attributes and those fixed at one value.
    pub set: Option<SetFn>,
}

/// Stores a value (see [`GroupAttr`]).
pub(crate) type SetFn = fn(&Device, &Arc<TgPtGroup>, u32) -> Result<(), String>;

const TPGS_CHANGED: Option<(Asc, &str)> = Some((
    asc::INQUIRY_DATA_HAS_CHANGED,
    "INQUIRY DATA HAS CHANGED to the nexuses of the group's ports",
));

/// A state an administrator may put a group in (logical block dependent is not supported).
fn parse_state(v: &str) -> Option<u32> {
    AccessState::parse(v)
        .filter(|s| settable(*s))
        .map(|s| u32::from(s.code()))
}

/// The states a group can be put in.
pub(crate) fn settable(s: AccessState) -> bool {
    !matches!(s, AccessState::LbaDependent | AccessState::Reserved(_))
}

fn flag(on: bool) -> String {
    u8::from(on).to_string()
}

fn has(g: &TgPtGroup, bit: u8) -> String {
    flag(g.supported.load(Ordering::Relaxed) & bit != 0)
}

fn set_bit(g: &TgPtGroup, bit: u8, on: u32) -> Result<(), String> {
    if on != 0 {
        g.supported.fetch_or(bit, Ordering::Relaxed);
    } else {
        g.supported.fetch_and(!bit, Ordering::Relaxed);
    }
    Ok(())
}

macro_rules! group_attr {
    ($name:literal, $domain:expr, $default:expr, $ua:expr, $help:literal,
     get: $get:expr, set: $set:expr $(,)?) => {
        GroupAttr {
            def: AttrDef {
                name: $name,
                domain: $domain,
                default: $default,
                // Every group attribute may change while the device is exported (LIO).
                while_exported: WhileExported::Live,
                ua: $ua,
                help: $help,
            },
            get: $get,
            set: $set,
        }
    };
}

/// Every group attribute, in LIO's display order (`members` is read-only).
pub(crate) static GROUP_ATTRS: &[GroupAttr] = &[
    group_attr!("alua_access_state",
        Domain::Parsed(parse_state, "0 (ao), 1 (ano), 2 (s), 3 (u), 14 (o), 15 (t); 4 (lba dependent) is not supported"),
        Default::Value(0), None,
        "the primary access state; setting it is an implicit transition (through Transitioning for trans_delay_msecs, status 2, ASYMMETRIC ACCESS STATE CHANGED to every I_T nexus of the LU and of its LU group); the state must be supported and alua_access_type must include implicit",
        get: |_, g| g.state().code().to_string(),
        set: Some(|d, g, v| d.implicit_transition(g, AccessState::from_code(v as u8)))),
    group_attr!("alua_access_status",
    Domain::Parsed(|v| status_code::parse(v).map(u32::from), "0 (None), 1 (Altered by Explicit STPG), 2 (Altered by Implicit ALUA)"),
    Default::Value(0), None, "the STATUS CODE of RTPG; shown as LIO words it",
    get: |_, g| status_code::name(g.status.load(Ordering::Relaxed)).to_string(),
    set: Some(|_, g, v| {
        g.status.store(v as u8, Ordering::Relaxed);
        Ok(())
    })),
    group_attr!("alua_access_type",
    Domain::Parsed(|v| access_type::parse(v).map(u32::from), "0 (None), 1 (Implicit), 2 (Explicit), 3 (Implicit and Explicit)"),
    Default::Value(3), TPGS_CHANGED,
    "the TPGS field of INQUIRY for the group's ports: which transitions are allowed (explicit = SET TARGET PORT GROUPS)",
    get: |_, g| access_type::name(g.access_type.load(Ordering::Relaxed)).to_string(),
    set: Some(|_, g, v| {
        g.access_type.store(v as u8, Ordering::Relaxed);
        Ok(())
    })),
    group_attr!("alua_support_transitioning", Domain::Flag, Default::Value(1), None,
        "T_SUP: Transitioning reported as supported",
        get: |_, g| has(g, support::T), set: Some(|_, g, v| set_bit(g, support::T, v))),
    group_attr!("alua_support_offline", Domain::Flag, Default::Value(1), None,
        "O_SUP: Offline may be set",
        get: |_, g| has(g, support::O), set: Some(|_, g, v| set_bit(g, support::O, v))),
    group_attr!("alua_support_lba_dependent",
        Domain::Only(0, "the logical block dependent state is not supported"),
        Default::Value(0), None, "",
        get: |_, _| flag(false), set: None),
    group_attr!("alua_support_unavailable", Domain::Flag, Default::Value(1), None,
        "U_SUP: Unavailable may be set",
        get: |_, g| has(g, support::U), set: Some(|_, g, v| set_bit(g, support::U, v))),
    group_attr!("alua_support_standby", Domain::Flag, Default::Value(1), None,
        "S_SUP: Standby may be set",
        get: |_, g| has(g, support::S), set: Some(|_, g, v| set_bit(g, support::S, v))),
    group_attr!("alua_support_active_optimized", Domain::Flag, Default::Value(1), None,
        "AO_SUP: Active/Optimized may be set",
        get: |_, g| has(g, support::AO), set: Some(|_, g, v| set_bit(g, support::AO, v))),
    group_attr!("alua_support_active_nonoptimized", Domain::Flag, Default::Value(1), None,
        "AN_SUP: Active/Non-optimized may be set",
        get: |_, g| has(g, support::AN), set: Some(|_, g, v| set_bit(g, support::AN, v))),
    group_attr!("preferred", Domain::Flag, Default::Value(0), None,
    "the PREF bit of REPORT TARGET PORT GROUPS",
    get: |_, g| flag(g.preferred.load(Ordering::Relaxed)),
    set: Some(|_, g, v| {
        g.preferred.store(v != 0, Ordering::Relaxed);
        Ok(())
    })),
    group_attr!("nonop_delay_msecs", Domain::Range(0, MAX_NONOP_DELAY_MS), Default::Value(100),
    None, "how long every command through an Active/Non-optimized port waits (as LIO)",
    get: |_, g| g.nonop_delay_ms.load(Ordering::Relaxed).to_string(),
    set: Some(|_, g, v| {
        g.nonop_delay_ms.store(v, Ordering::Relaxed);
        Ok(())
    })),
    group_attr!("trans_delay_msecs", Domain::Range(0, MAX_TRANS_DELAY_MS), Default::Value(0),
    None, "how long a transition stays in Transitioning",
    get: |_, g| g.trans_delay_ms.load(Ordering::Relaxed).to_string(),
    set: Some(|_, g, v| {
        g.trans_delay_ms.store(v, Ordering::Relaxed);
        Ok(())
    })),
    group_attr!("implicit_trans_secs", Domain::Range(0, MAX_IMPLICIT_TRANS_SECS),
    Default::Value(0), None,
    "IMPLICIT TRANSITION TIME of the extended RTPG header, in seconds",
    get: |_, g| g.implicit_trans_secs.load(Ordering::Relaxed).to_string(),
    set: Some(|_, g, v| {
        g.implicit_trans_secs.store(v, Ordering::Relaxed);
        Ok(())
    })),
    group_attr!("tg_pt_gp_id", Domain::Bounded("1-65535, set once, at creation"),
    Default::Derived("given at creation (default_tg_pt_gp: 0)"), None,
    "the TARGET PORT GROUP of RTPG and VPD 83h",
    get: |_, g| g.id.to_string(),
    set: Some(|_, g, v| {
        if v == u32::from(g.id) {
            Ok(())
        } else {
            Err(format!(
                "tg_pt_gp_id: is set once, at creation (group {} has id {}); create a new group instead",
                g.name, g.id
            ))
        }
    })),
    group_attr!("members", Domain::ReadOnly, Default::Derived("—"), None,
        "the TPG LUNs in the group, `iscsi/<iqn>/tpgt_<t>/lun_<l>` one per line",
        get: |d, g| d.alua_members(&g.name).join("\n"), set: None),
];

/// The states an administrator may put a group in ([`settable`]), in code order.
pub fn settable_alua_states() -> impl Iterator<Item = AccessState> {
    (0..=0x0f_u8)
        .map(AccessState::from_code)
        .filter(|s| settable(*s))
}

/// The schema of every target port group attribute, in display order.
pub fn alua_group_attribute_defs() -> impl Iterator<Item = &'static AttrDef> {
    GROUP_ATTRS.iter().map(|a| &a.def)
}

pub(crate) fn find(name: &str) -> Option<&'static GroupAttr> {
    GROUP_ATTRS.iter().find(|a| a.def.name == name)
}

impl Device {
    /// An administrator's change of a group's primary state (implicit ALUA, SPC-4 §5.11.2.7).
    fn implicit_transition(&self, g: &Arc<TgPtGroup>, s: AccessState) -> Result<(), String> {
        // LIO: implicit transitions need IMPLICIT in the access type.
        let t = g.access_type.load(Ordering::Relaxed);
        if t & access_type::IMPLICIT == 0 {
            return Err(format!(
                "alua_access_state: group {} has alua_access_type {:?}; implicit transitions need 1 or 3",
                g.name,
                access_type::name(t)
            ));
        }
        if !g.supports(s) {
            return Err(format!(
                "alua_access_state: state {} is not supported by group {} (see alua_support_*)",
                s.code(),
                g.name
            ));
        }
        let me = self.me.upgrade().ok_or("device is being removed")?;
        let plan = transition(&me, g.id, s, status_code::ALTERED_BY_IMPLICIT, None);
        if !plan.is_empty() {
            std::thread::spawn(move || finish(plan));
        }
        Ok(())
    }
}
