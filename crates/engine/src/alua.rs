//! Asymmetric logical unit access (SPC-4 §5.11): target port groups and their access states,
//! LU groups, the per-state command gate (§5.11.2.6), REPORT TARGET PORT GROUPS (§6.37),
//! SET TARGET PORT GROUPS (§6.46) and explicit / implicit transitions (§5.11.2.7).
//!
//! Every device has `default_tg_pt_gp` (id 0) and any number of further groups (ids
//! 1..=65535, unique per device). Every port LUN ([`PortLun`]) belongs to exactly one group of
//! its device; its I_T_L nexuses hold the `PortLun`, so the gate reads the group through an
//! `ArcSwap` and two atomics, with no lock on the command path.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use ironlun_scsi::cdb::{be32, byte};
use ironlun_scsi::sense::{asc, key, FieldPointer};
use ironlun_scsi::{opcode as op, Asc, Sense};
use parking_lot::{Mutex, RwLock};

use crate::device::Device;
use crate::nexus::{Ctx, Done, Outcome};
use crate::ops::{Cmd, OpInfo};
use crate::port::LunSlot;

/// Target port group id of `default_tg_pt_gp`.
pub(crate) const DEFAULT_GROUP: u16 = 0;
/// Name of the group every device has.
pub const DEFAULT_GROUP_NAME: &str = "default_tg_pt_gp";

/// Target port asymmetric access states (SPC-4 §5.11.2.6; RTPG / STPG field values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AccessState {
    ActiveOptimized = 0x0,
    ActiveNonOptimized = 0x1,
    Standby = 0x2,
    Unavailable = 0x3,
    Offline = 0xE,
    Transitioning = 0xF,
}

impl AccessState {
    fn from_code(v: u8) -> Option<AccessState> {
        Some(match v {
            0x0 => AccessState::ActiveOptimized,
            0x1 => AccessState::ActiveNonOptimized,
            0x2 => AccessState::Standby,
            0x3 => AccessState::Unavailable,
            0xE => AccessState::Offline,
            0xF => AccessState::Transitioning,
            _ => return None,
        })
    }

    /// LIO's numbers (0,1,2,3,14,15) or the tcm_node names ao/ano/s/u/o/t.
    fn parse(v: &str) -> Option<AccessState> {
        let v = v.trim();
        let code = match v.to_ascii_lowercase().as_str() {
            "ao" => 0,
            "ano" => 1,
            "s" => 2,
            "u" => 3,
            "o" => 14,
            "t" => 15,
            other => other.parse::<u8>().ok()?,
        };
        AccessState::from_code(code)
    }

    /// The group's supported-state bit for this state (RTPG byte 1).
    fn support_bit(self) -> u8 {
        match self {
            AccessState::ActiveOptimized => SUP_AO,
            AccessState::ActiveNonOptimized => SUP_AN,
            AccessState::Standby => SUP_S,
            AccessState::Unavailable => SUP_U,
            AccessState::Offline => SUP_O,
            AccessState::Transitioning => SUP_T,
        }
    }
}

// Supported-state bits (SPC-4 §6.37 table 179, RTPG descriptor byte 1).
const SUP_T: u8 = 0x80;
const SUP_O: u8 = 0x40;
const SUP_LBD: u8 = 0x10;
const SUP_U: u8 = 0x08;
const SUP_S: u8 = 0x04;
const SUP_AN: u8 = 0x02;
const SUP_AO: u8 = 0x01;

/// Access type bits (INQUIRY TPGS field, §6.4.2): implicit 01b, explicit 10b.
const TYPE_IMPLICIT: u8 = 1;
const TYPE_EXPLICIT: u8 = 2;

/// Status codes (RTPG descriptor byte 5).
const STATUS_NONE: u8 = 0;
const STATUS_EXPLICIT: u8 = 1;
const STATUS_IMPLICIT: u8 = 2;

// LIO limits (lio.md §3.1).
const MAX_NONOP_DELAY_MS: u32 = 10_000;
const MAX_TRANS_DELAY_MS: u32 = 30_000;
const MAX_IMPLICIT_TRANS_SECS: u32 = 255;

/// Observer the control plane attaches to persist ALUA changes the engine makes by itself
/// (SET TARGET PORT GROUPS, end of a transition). Called after the change, outside hot paths.
pub trait AluaObserver: Send + Sync {
    fn alua_changed(&self, device_name: &str);
}

/// An LU group (`core/alua/lu_gps/<name>`, `lu_gp_id`); `default_lu_gp` is id 0. Devices of
/// one LU group other than id 0 transition together (see [`transition`]).
pub struct LuGroup {
    name: String,
    id: u16,
    members: Mutex<Vec<Weak<Device>>>,
}

impl LuGroup {
    pub fn new(name: &str, id: u16) -> Arc<LuGroup> {
        Arc::new(LuGroup {
            name: name.to_string(),
            id,
            members: Mutex::new(Vec::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    /// Names of the live member devices.
    pub fn members(&self) -> Vec<String> {
        self.live().iter().map(|d| d.name().to_string()).collect()
    }

    fn live(&self) -> Vec<Arc<Device>> {
        self.members
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }
}

impl std::fmt::Debug for LuGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LuGroup({}, {})", self.name, self.id)
    }
}

/// One target port group of one device (LIO `alua/<name>`).
pub(crate) struct TgPtGroup {
    pub name: String,
    pub id: u16,
    state: AtomicU8,
    status: AtomicU8,
    access_type: AtomicU8,
    supported: AtomicU8,
    preferred: AtomicBool,
    nonop_delay_ms: AtomicU32,
    trans_delay_ms: AtomicU32,
    implicit_trans_secs: AtomicU32,
    /// Bumped by every transition so that a superseded one does not finish.
    generation: AtomicU64,
}

impl TgPtGroup {
    fn new(name: &str, id: u16) -> TgPtGroup {
        // LIO defaults for a new group (lio.md §3.6).
        TgPtGroup {
            name: name.to_string(),
            id,
            state: AtomicU8::new(AccessState::ActiveOptimized as u8),
            status: AtomicU8::new(STATUS_NONE),
            access_type: AtomicU8::new(TYPE_IMPLICIT | TYPE_EXPLICIT),
            supported: AtomicU8::new(SUP_T | SUP_O | SUP_U | SUP_S | SUP_AN | SUP_AO),
            preferred: AtomicBool::new(false),
            nonop_delay_ms: AtomicU32::new(100),
            trans_delay_ms: AtomicU32::new(0),
            implicit_trans_secs: AtomicU32::new(0),
            generation: AtomicU64::new(0),
        }
    }

    fn state(&self) -> AccessState {
        AccessState::from_code(self.state.load(Ordering::Acquire))
            .unwrap_or(AccessState::Transitioning)
    }

    fn supports(&self, s: AccessState) -> bool {
        self.supported.load(Ordering::Relaxed) & s.support_bit() != 0
    }
}

/// ALUA membership of one port LUN (`lun/lun_<n>/alua_tg_pt_gp`, `alua_tg_pt_offline`).
pub(crate) struct PortLun {
    pub group: ArcSwap<TgPtGroup>,
    /// Secondary state Offline.
    pub offline: AtomicBool,
    pub offline_status: AtomicU8,
}

impl PortLun {
    pub(crate) fn new(group: Arc<TgPtGroup>) -> PortLun {
        PortLun {
            group: ArcSwap::new(group),
            offline: AtomicBool::new(false),
            offline_status: AtomicU8::new(STATUS_NONE),
        }
    }
}

impl std::fmt::Debug for PortLun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PortLun(group {})", self.group.load().id)
    }
}

/// A device's ALUA configuration.
pub(crate) struct AluaUnit {
    groups: RwLock<Vec<Arc<TgPtGroup>>>,
    lu_group: Mutex<Option<Arc<LuGroup>>>,
    observer: RwLock<Option<Arc<dyn AluaObserver>>>,
}

impl Default for AluaUnit {
    fn default() -> AluaUnit {
        AluaUnit {
            groups: RwLock::new(vec![Arc::new(TgPtGroup::new(
                DEFAULT_GROUP_NAME,
                DEFAULT_GROUP,
            ))]),
            lu_group: Mutex::new(None),
            observer: RwLock::new(None),
        }
    }
}

impl AluaUnit {
    pub(crate) fn default_group(&self) -> Arc<TgPtGroup> {
        self.by_id(DEFAULT_GROUP)
            .unwrap_or_else(|| Arc::new(TgPtGroup::new(DEFAULT_GROUP_NAME, DEFAULT_GROUP)))
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<Arc<TgPtGroup>> {
        self.groups.read().iter().find(|g| g.name == name).cloned()
    }

    fn by_id(&self, id: u16) -> Option<Arc<TgPtGroup>> {
        self.groups.read().iter().find(|g| g.id == id).cloned()
    }

    fn lu_group_id(&self) -> u16 {
        self.lu_group.lock().as_ref().map_or(0, |g| g.id)
    }

    fn notify(&self, dev: &str) {
        let obs = self.observer.read().clone();
        if let Some(o) = obs {
            o.alua_changed(dev);
        }
    }
}

/// Group attribute names in display order (LIO `alua/<group>/`; `members` is read-only).
pub const GROUP_ATTRIBUTES: &[&str] = &[
    "alua_access_state",
    "alua_access_status",
    "alua_access_type",
    "alua_support_transitioning",
    "alua_support_offline",
    "alua_support_lba_dependent",
    "alua_support_unavailable",
    "alua_support_standby",
    "alua_support_active_optimized",
    "alua_support_active_nonoptimized",
    "preferred",
    "nonop_delay_msecs",
    "trans_delay_msecs",
    "implicit_trans_secs",
    "tg_pt_gp_id",
    "members",
];

fn support_attr(attr: &str) -> Option<u8> {
    Some(match attr {
        "alua_support_transitioning" => SUP_T,
        "alua_support_offline" => SUP_O,
        "alua_support_unavailable" => SUP_U,
        "alua_support_standby" => SUP_S,
        "alua_support_active_optimized" => SUP_AO,
        "alua_support_active_nonoptimized" => SUP_AN,
        _ => return None,
    })
}

fn status_name(s: u8) -> &'static str {
    match s {
        STATUS_EXPLICIT => "Altered by Explicit STPG",
        STATUS_IMPLICIT => "Altered by Implicit ALUA",
        _ => "None",
    }
}

fn type_name(t: u8) -> &'static str {
    match t & 3 {
        1 => "Implicit",
        2 => "Explicit",
        3 => "Implicit and Explicit",
        _ => "None",
    }
}

fn parse_status(v: &str) -> Option<u8> {
    match v.trim() {
        "0" | "None" => Some(STATUS_NONE),
        "1" | "Altered by Explicit STPG" => Some(STATUS_EXPLICIT),
        "2" | "Altered by Implicit ALUA" => Some(STATUS_IMPLICIT),
        _ => None,
    }
}

fn parse_type(v: &str) -> Option<u8> {
    match v.trim() {
        "0" | "None" => Some(0),
        "1" | "Implicit" => Some(1),
        "2" | "Explicit" => Some(2),
        "3" | "Implicit and Explicit" => Some(3),
        _ => None,
    }
}

fn parse_bounded(attr: &str, v: &str, max: u32) -> Result<u32, String> {
    match v.trim().parse::<u32>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!(
            "{attr}: invalid value {v:?}; valid values: 0..={max}"
        )),
    }
}

fn parse_flag(attr: &str, v: &str) -> Result<bool, String> {
    match v.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(format!("{attr}: invalid value {v:?}; valid values: 0, 1")),
    }
}

// ---- control-plane surface on Device ----

impl Device {
    /// Target port groups of this device by name; `default_tg_pt_gp` (id 0) always exists.
    pub fn alua_groups(&self) -> Vec<String> {
        self.alua
            .groups
            .read()
            .iter()
            .map(|g| g.name.clone())
            .collect()
    }

    /// Create a group (LIO: mkdir alua/<name>, then write tg_pt_gp_id). Err: one line.
    pub fn create_alua_group(&self, name: &str, id: u16) -> Result<(), String> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(format!(
                "{name:?}: invalid group name; use 1..64 characters of [A-Za-z0-9_.-]"
            ));
        }
        if id == DEFAULT_GROUP {
            return Err(format!(
                "{name}: tg_pt_gp_id 0 belongs to {DEFAULT_GROUP_NAME}; valid ids: 1..=65535"
            ));
        }
        let mut groups = self.alua.groups.write();
        if groups.iter().any(|g| g.name == name) {
            return Err(format!("{name}: target port group already exists"));
        }
        if let Some(g) = groups.iter().find(|g| g.id == id) {
            return Err(format!(
                "{name}: tg_pt_gp_id {id} is already used by group {} of this device",
                g.name
            ));
        }
        groups.push(Arc::new(TgPtGroup::new(name, id)));
        Ok(())
    }

    /// Delete (refused for default_tg_pt_gp and for a group that still has member ports).
    pub fn delete_alua_group(&self, name: &str) -> Result<(), String> {
        if name == DEFAULT_GROUP_NAME {
            return Err(format!("{DEFAULT_GROUP_NAME}: cannot be deleted"));
        }
        let mut groups = self.alua.groups.write();
        let Some(pos) = groups.iter().position(|g| g.name == name) else {
            return Err(format!("{name}: no such target port group"));
        };
        let n = self.alua_members(name).len();
        if n > 0 {
            return Err(format!(
                "{name}: still has {n} member port LUN(s); move them to another group first"
            ));
        }
        groups.remove(pos);
        Ok(())
    }

    /// LIO attribute names of a group, display order.
    pub fn alua_group_attribute_names(&self) -> Vec<&'static str> {
        GROUP_ATTRIBUTES.to_vec()
    }

    /// Current value of a group attribute, formatted as LIO shows it.
    pub fn alua_group_attribute(&self, group: &str, attr: &str) -> Option<String> {
        let g = self.alua.by_name(group)?;
        let flag = |b: bool| u8::from(b).to_string();
        Some(match attr {
            "alua_access_state" => (g.state() as u8).to_string(),
            "alua_access_status" => status_name(g.status.load(Ordering::Relaxed)).to_string(),
            "alua_access_type" => type_name(g.access_type.load(Ordering::Relaxed)).to_string(),
            "alua_support_lba_dependent" => "0".to_string(),
            "preferred" => flag(g.preferred.load(Ordering::Relaxed)),
            "nonop_delay_msecs" => g.nonop_delay_ms.load(Ordering::Relaxed).to_string(),
            "trans_delay_msecs" => g.trans_delay_ms.load(Ordering::Relaxed).to_string(),
            "implicit_trans_secs" => g.implicit_trans_secs.load(Ordering::Relaxed).to_string(),
            "tg_pt_gp_id" => g.id.to_string(),
            "members" => self.alua_members(group).join("\n"),
            a => {
                let bit = support_attr(a)?;
                flag(g.supported.load(Ordering::Relaxed) & bit != 0)
            }
        })
    }

    /// Set one group attribute; no change on Err. Setting `alua_access_state` is an implicit
    /// (admin) transition: Transitioning for trans_delay_msecs (finished by a timer thread),
    /// status 0x02, UA 2A/06 to every I_T nexus of every affected LU.
    pub fn set_alua_group_attribute(
        &self,
        group: &str,
        attr: &str,
        value: &str,
    ) -> Result<(), String> {
        let Some(g) = self.alua.by_name(group) else {
            return Err(format!("{group}: no such target port group"));
        };
        match attr {
            "alua_access_state" => {
                let Some(s) = AccessState::parse(value) else {
                    return Err(format!(
                        "alua_access_state: invalid value {value:?}; valid: 0 (ao), 1 (ano), 2 (s), 3 (u), 14 (o), 15 (t); 4 (lba dependent) is not supported"
                    ));
                };
                // LIO: implicit transitions need IMPLICIT in the access type.
                if g.access_type.load(Ordering::Relaxed) & TYPE_IMPLICIT == 0 {
                    return Err(format!(
                        "alua_access_state: group {group} has alua_access_type {:?}; implicit transitions need 1 or 3",
                        type_name(g.access_type.load(Ordering::Relaxed))
                    ));
                }
                if !g.supports(s) {
                    return Err(format!(
                        "alua_access_state: state {} is not supported by group {group} (see alua_support_*)",
                        s as u8
                    ));
                }
                let me = self.me.upgrade().ok_or("device is being removed")?;
                let plan = transition(&me, g.id, s, STATUS_IMPLICIT, None);
                if !plan.is_empty() {
                    std::thread::spawn(move || finish(plan));
                }
            }
            "alua_access_status" => {
                let s = parse_status(value).ok_or_else(|| {
                    format!("alua_access_status: invalid value {value:?}; valid values: 0, 1, 2")
                })?;
                g.status.store(s, Ordering::Relaxed);
            }
            "alua_access_type" => {
                let t = parse_type(value).ok_or_else(|| {
                    format!("alua_access_type: invalid value {value:?}; valid values: 0 (none), 1 (implicit), 2 (explicit), 3 (both)")
                })?;
                if g.access_type.swap(t, Ordering::Relaxed) != t {
                    // The INQUIRY TPGS field of the group's ports changed.
                    self.raise_ua_for_group(g.id, asc::INQUIRY_DATA_HAS_CHANGED);
                }
            }
            "alua_support_lba_dependent" => match value.trim() {
                "0" => {}
                _ => {
                    return Err(
                        "alua_support_lba_dependent: only 0 is accepted (the logical block dependent state is not supported)"
                            .to_string(),
                    )
                }
            },
            "preferred" => g
                .preferred
                .store(parse_flag(attr, value)?, Ordering::Relaxed),
            "nonop_delay_msecs" => g.nonop_delay_ms.store(
                parse_bounded(attr, value, MAX_NONOP_DELAY_MS)?,
                Ordering::Relaxed,
            ),
            "trans_delay_msecs" => g.trans_delay_ms.store(
                parse_bounded(attr, value, MAX_TRANS_DELAY_MS)?,
                Ordering::Relaxed,
            ),
            "implicit_trans_secs" => g.implicit_trans_secs.store(
                parse_bounded(attr, value, MAX_IMPLICIT_TRANS_SECS)?,
                Ordering::Relaxed,
            ),
            "tg_pt_gp_id" => {
                if value.trim() != g.id.to_string() {
                    return Err(format!(
                        "tg_pt_gp_id: is set once, at creation (group {group} has id {}); create a new group instead",
                        g.id
                    ));
                }
            }
            "members" => return Err("members: read-only attribute".to_string()),
            a => {
                let Some(bit) = support_attr(a) else {
                    return Err(format!(
                        "{a}: unknown ALUA group attribute; valid: {}",
                        GROUP_ATTRIBUTES.join(", ")
                    ));
                };
                if parse_flag(a, value)? {
                    g.supported.fetch_or(bit, Ordering::Relaxed);
                } else {
                    g.supported.fetch_and(!bit, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Start-up restore of a group's state (NOT a transition: no Transitioning, no UA, no
    /// observer call). `state`: 0,1,2,3,14,15; `status`: 0,1,2.
    pub fn restore_alua_group_state(
        &self,
        group: &str,
        state: u8,
        status: u8,
        preferred: bool,
    ) -> Result<(), String> {
        let Some(g) = self.alua.by_name(group) else {
            return Err(format!("{group}: no such target port group"));
        };
        if AccessState::from_code(state).is_none() {
            return Err(format!(
                "alua_access_state: invalid value {state}; valid values: 0, 1, 2, 3, 14, 15"
            ));
        }
        if status > STATUS_IMPLICIT {
            return Err(format!(
                "alua_access_status: invalid value {status}; valid values: 0, 1, 2"
            ));
        }
        g.generation.fetch_add(1, Ordering::AcqRel);
        g.state.store(state, Ordering::Release);
        g.status.store(status, Ordering::Relaxed);
        g.preferred.store(preferred, Ordering::Relaxed);
        Ok(())
    }

    /// `alua_lu_gp`: join an LU group (devices in one LU group other than `default_lu_gp`
    /// transition together); `None` leaves it.
    pub fn set_lu_group(&self, group: Option<Arc<LuGroup>>) {
        let mut cur = self.alua.lu_group.lock();
        if let Some(old) = cur.take() {
            old.members
                .lock()
                .retain(|w| w.strong_count() > 0 && !Weak::ptr_eq(w, &self.me));
        }
        if let Some(g) = &group {
            let mut m = g.members.lock();
            m.retain(|w| w.strong_count() > 0);
            m.push(self.me.clone());
        }
        *cur = group;
    }

    /// The LU group joined with [`Device::set_lu_group`].
    pub fn lu_group(&self) -> Option<Arc<LuGroup>> {
        self.alua.lu_group.lock().clone()
    }

    pub fn set_alua_observer(&self, obs: Option<Arc<dyn AluaObserver>>) {
        *self.alua.observer.write() = obs;
    }

    /// `members` lines of a group: `iscsi/<wwn>/tpgt_<n>/lun_<n>`.
    fn alua_members(&self, group: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .exports()
            .iter()
            .filter(|e| e.alua.group.load().name == group)
            .map(|e| format!("iscsi/{}/tpgt_{}/lun_{}", e.target, e.tpgt, e.lun))
            .collect();
        v.sort();
        v
    }

    /// UA to every I_T_L nexus reaching this LU through a port LUN of group `id`.
    fn raise_ua_for_group(&self, id: u16, a: Asc) {
        for s in self.live_slots() {
            if s.alua.group.load().id == id {
                s.ua.raise(a);
            }
        }
    }
}

/// Move a port LUN into `group` of its device: 3F/03 INQUIRY DATA HAS CHANGED to the
/// nexuses that see the LUN (its VPD 83h target port group designator changed).
pub(crate) fn set_port_lun_group(
    dev: &Device,
    pl: &Arc<PortLun>,
    group: &str,
) -> Result<(), String> {
    let Some(g) = dev.alua.by_name(group) else {
        return Err(format!(
            "alua_tg_pt_gp: device {} has no target port group {group:?}",
            dev.name()
        ));
    };
    if Arc::ptr_eq(&pl.group.load_full(), &g) {
        return Ok(());
    }
    pl.group.store(g);
    for s in dev.live_slots() {
        if Arc::ptr_eq(&s.alua, pl) {
            s.ua.raise(asc::INQUIRY_DATA_HAS_CHANGED);
        }
    }
    Ok(())
}

/// Set a port LUN's secondary Offline state. `status`: why (1 STPG, 2 admin). Other nexuses
/// of the LU get 2A/06 (SPC-4 §5.11.2.7; LIO raises none — Quirk).
pub(crate) fn set_port_lun_offline(
    dev: &Device,
    pl: &PortLun,
    offline: bool,
    status: u8,
    sender: Option<u64>,
) {
    if pl.offline.swap(offline, Ordering::AcqRel) != offline {
        pl.offline_status.store(status, Ordering::Relaxed);
        for s in dev.live_slots() {
            if Some(s.nexus) != sender {
                s.ua.raise(asc::ASYMMETRIC_ACCESS_STATE_CHANGED);
            }
        }
    }
}

pub(crate) const STATUS_BY_ADMIN: u8 = STATUS_IMPLICIT;

/// A transition under way: the groups now Transitioning and what they become.
pub(crate) struct Plan {
    steps: Vec<(Arc<Device>, Arc<TgPtGroup>, u64, AccessState)>,
    delay_ms: u32,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Begin moving group `id` of `dev` to `target`. LIO behaviour: when `dev` is in an LU group
/// other than `default_lu_gp`, group `id` of every device of that LU group transitions too.
/// Each group whose state changes enters Transitioning (when it has a trans_delay) with the
/// given status, and every I_T nexus of each affected LU except `sender` (the I_T nexus of
/// an STPG) gets one 2A/06 ASYMMETRIC ACCESS STATE CHANGED — once per change, not once on
/// entering and once on leaving Transitioning as LIO does. [`finish`] completes the plan.
fn transition(
    dev: &Arc<Device>,
    id: u16,
    target: AccessState,
    status: u8,
    sender: Option<u64>,
) -> Plan {
    let lu = dev.alua.lu_group.lock().clone();
    let devices = match lu {
        Some(l) if l.id != 0 => {
            let mut v = l.live();
            if !v.iter().any(|d| Arc::ptr_eq(d, dev)) {
                v.push(dev.clone());
            }
            v
        }
        _ => vec![dev.clone()],
    };
    let mut plan = Plan {
        steps: Vec::new(),
        delay_ms: 0,
    };
    for d in devices {
        let Some(g) = d.alua.by_id(id) else { continue };
        if g.state() == target {
            continue;
        }
        let delay = g.trans_delay_ms.load(Ordering::Relaxed);
        let gen = g.generation.fetch_add(1, Ordering::AcqRel) + 1;
        g.status.store(status, Ordering::Relaxed);
        if delay > 0 && target != AccessState::Transitioning {
            g.state
                .store(AccessState::Transitioning as u8, Ordering::Release);
            plan.delay_ms = plan.delay_ms.max(delay);
        } else {
            g.state.store(target as u8, Ordering::Release);
        }
        for s in d.live_slots() {
            if Some(s.nexus) != sender {
                s.ua.raise(asc::ASYMMETRIC_ACCESS_STATE_CHANGED);
            }
        }
        plan.steps.push((d, g, gen, target));
    }
    plan
}

/// Sleep the transition delay, then enter the target states (unless a later transition or a
/// restore superseded them) and tell each affected device's observer.
fn finish(plan: Plan) {
    if plan.delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(u64::from(plan.delay_ms)));
    }
    let mut told: Vec<u64> = Vec::new();
    for (d, g, gen, target) in &plan.steps {
        if g.generation.load(Ordering::Acquire) == *gen {
            g.state.store(*target as u8, Ordering::Release);
        }
        if !told.contains(&d.id) {
            told.push(d.id);
            d.alua.notify(d.name());
        }
    }
}

/// INQUIRY TPGS field (byte 5 bits 5..4) from the access type of the port LUN's group.
pub(crate) fn tpgs_bits(slot: &LunSlot) -> u8 {
    (slot.alua.group.load().access_type.load(Ordering::Relaxed) & 3) << 4
}

/// The group of the port through which this I_T_L nexus reaches its LU.
pub(crate) fn group_of(slot: &LunSlot) -> u16 {
    slot.alua.group.load().id
}

/// The LU group id of the device (VPD 83h LU group designator; 0 = `default_lu_gp`).
pub(crate) fn lu_group_of(dev: &Device) -> u16 {
    dev.alua.lu_group_id()
}

/// Gate 2 of the pipeline: commands allowed in the access state of the port LUN
/// (SPC-4 §5.11.2.6). Ok(delay): run after sleeping `delay` ms (Active/Non-optimized).
/// Beyond the commands SPC-4 lists per state, the informational REPORT SUPPORTED OPERATION
/// CODES / TASK MANAGEMENT FUNCTIONS run in every state but Offline, and READ CAPACITY in
/// Standby (as LIO); MODE SENSE/SELECT(10) run in Standby too (LIO only allows the 6-byte
/// forms — Quirk).
pub(crate) fn check(slot: &LunSlot, o: &OpInfo) -> Result<u32, Sense> {
    let pl = &*slot.alua;
    let not_ready = |a: Asc| Err(Sense::new(key::NOT_READY, a));
    if pl.offline.load(Ordering::Acquire) {
        return offline_gate(o);
    }
    let g = pl.group.load();
    let state = g.state();
    if state == AccessState::ActiveOptimized {
        return Ok(0);
    }
    let info = matches!(
        o.cmd,
        Cmd::Inquiry
            | Cmd::ReportLuns
            | Cmd::RequestSense
            | Cmd::ReportTargetPortGroups
            | Cmd::ReportSupportedOpcodes
            | Cmd::ReportSupportedTmfs
    );
    match state {
        AccessState::ActiveOptimized => Ok(0),
        // LIO delays every command through a non-optimized port.
        AccessState::ActiveNonOptimized => Ok(g.nonop_delay_ms.load(Ordering::Relaxed)),
        AccessState::Standby => {
            let ok = info
                || matches!(
                    o.cmd,
                    Cmd::SetTargetPortGroups
                        | Cmd::ModeSense6
                        | Cmd::ModeSense10
                        | Cmd::ModeSelect6
                        | Cmd::ModeSelect10
                        | Cmd::ReadCapacity10
                        | Cmd::ReadCapacity16
                        | Cmd::PersistentReserveIn
                        | Cmd::PersistentReserveOut
                );
            if ok {
                Ok(0)
            } else {
                not_ready(asc::NOT_READY_TARGET_PORT_IN_STANDBY_STATE)
            }
        }
        AccessState::Unavailable if info || o.cmd == Cmd::SetTargetPortGroups => Ok(0),
        AccessState::Unavailable => not_ready(asc::NOT_READY_TARGET_PORT_IN_UNAVAILABLE_STATE),
        AccessState::Transitioning if info => Ok(0),
        AccessState::Transitioning => not_ready(asc::NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION),
        AccessState::Offline => offline_gate(o),
    }
}

/// Offline: only identification (INQUIRY, REPORT LUNS) and REQUEST SENSE; the rest
/// 02/04/12 LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN OFFLINE STATE.
fn offline_gate(o: &OpInfo) -> Result<u32, Sense> {
    if o.opcode == op::INQUIRY || o.opcode == op::REPORT_LUNS || o.cmd == Cmd::RequestSense {
        Ok(0)
    } else {
        Err(Sense::new(key::NOT_READY, asc::NOT_READY_OFFLINE))
    }
}

/// REPORT TARGET PORT GROUPS: length-only header (PARAMETER DATA FORMAT 000b) or extended
/// header (001b, with the receiving group's IMPLICIT TRANSITION TIME); one descriptor per
/// group that has ports, listing their RTPIs. Cut to the ALLOCATION LENGTH (§4.2.5.6).
pub(crate) fn report_target_port_groups(c: &Ctx) -> Outcome {
    let format = byte(c.cdb, 1) >> 5;
    let alloc = u64::from(be32(c.cdb, 6));
    let header = match format {
        0 => 4,
        1 => 8,
        _ => return Err(Sense::invalid_cdb_field(1, Some(7)).into()),
    };
    let exports = c.dev.exports();
    let mut groups = c.dev.alua.groups.read().clone();
    // Ordered by id so the report does not change with creation order (e.g. across restarts).
    groups.sort_by_key(|g| g.id);
    let mut data = vec![0u8; header];
    if format == 1 {
        data[4] = 0x10; // FORMAT TYPE 001b
        let own = c.slot.alua.group.load();
        data[5] = own.implicit_trans_secs.load(Ordering::Relaxed).min(255) as u8;
    }
    for g in &groups {
        let mut rtpis: Vec<u16> = exports
            .iter()
            .filter(|e| e.alua.group.load().id == g.id)
            .map(|e| e.rtpi)
            .collect();
        if rtpis.is_empty() {
            continue; // LIO skips groups without ports.
        }
        rtpis.sort_unstable();
        rtpis.dedup();
        let pref = if g.preferred.load(Ordering::Relaxed) {
            0x80
        } else {
            0
        };
        data.push(pref | g.state() as u8);
        data.push(g.supported.load(Ordering::Relaxed) & !SUP_LBD);
        data.extend_from_slice(&g.id.to_be_bytes());
        data.push(0);
        data.push(g.status.load(Ordering::Relaxed));
        data.push(0);
        data.push(rtpis.len().min(255) as u8);
        for r in rtpis.iter().take(255) {
            data.extend_from_slice(&[0, 0]);
            data.extend_from_slice(&r.to_be_bytes());
        }
    }
    // RETURN DATA LENGTH is n - 3 in both formats (SPC-4 §6.37): every byte after byte 3, so
    // with the extended header it includes bytes 4-7. scsi_dh_alua and sg_rtpg end the list at
    // RETURN DATA LENGTH + 4. (LIO counts only the descriptors there; a quirk we do not copy.)
    let len = (data.len() - 4) as u32;
    data[..4].copy_from_slice(&len.to_be_bytes());
    Ok(Done::data(data, alloc))
}

fn bad_param(byte: usize, bit: Option<u8>) -> Sense {
    Sense::illegal(asc::INVALID_FIELD_IN_PARAMETER_LIST)
        .with_field_pointer(FieldPointer::param(byte.min(0xFFFF) as u16, bit))
}

enum Change {
    Primary(u16, AccessState),
    Offline(Arc<Device>, Arc<PortLun>),
}

/// SET TARGET PORT GROUPS (§6.46). Every descriptor is validated before anything changes;
/// primary descriptors (state AO/ANO/S/U) name a group id, secondary ones (Offline) a
/// relative target port id. Completes once the transitions have (the command sleeps the
/// transition delay, as LIO; other nexuses see Transitioning meanwhile).
pub(crate) fn set_target_port_groups(c: &Ctx) -> Outcome {
    let own = c.slot.alua.group.load_full();
    if own.access_type.load(Ordering::Relaxed) & TYPE_EXPLICIT == 0 {
        // Explicit ALUA is off for the receiving port's group (TPGS lacks 10b).
        return Err(Sense::invalid_cdb_field(1, Some(4)).into());
    }
    let len = u64::from(be32(c.cdb, 6));
    let data = c.data_out(len)?;
    if data.is_empty() {
        return Ok(Done::good());
    }
    if data.len() < 4 || (data.len() - 4) % 4 != 0 {
        return Err(Sense::illegal(asc::PARAMETER_LIST_LENGTH_ERROR).into());
    }
    let dev = c.slot.device.clone();
    let exports = dev.exports();
    let mut changes: Vec<Change> = Vec::new();
    let mut seen_groups: Vec<u16> = Vec::new();
    let mut seen_ports: Vec<u16> = Vec::new();
    for (i, d) in data[4..].chunks_exact(4).enumerate() {
        let at = 4 + 4 * i;
        if d[0] & 0xF0 != 0 {
            return Err(bad_param(at, Some(7)).into());
        }
        let id = u16::from_be_bytes([d[2], d[3]]);
        let state = AccessState::from_code(d[0] & 0x0F);
        match state {
            Some(
                s @ (AccessState::ActiveOptimized
                | AccessState::ActiveNonOptimized
                | AccessState::Standby
                | AccessState::Unavailable),
            ) => {
                let Some(g) = dev.alua.by_id(id) else {
                    return Err(bad_param(at + 2, None).into());
                };
                if seen_groups.contains(&id) {
                    return Err(bad_param(at + 2, None).into());
                }
                if !g.supports(s) {
                    return Err(bad_param(at, Some(3)).into());
                }
                seen_groups.push(id);
                changes.push(Change::Primary(id, s));
            }
            Some(AccessState::Offline) => {
                let Some(e) = exports.iter().find(|e| e.rtpi == id) else {
                    return Err(bad_param(at + 2, None).into());
                };
                if seen_ports.contains(&id) {
                    return Err(bad_param(at + 2, None).into());
                }
                if !e.alua.group.load().supports(AccessState::Offline) {
                    return Err(bad_param(at, Some(3)).into());
                }
                seen_ports.push(id);
                changes.push(Change::Offline(dev.clone(), e.alua.clone()));
            }
            // Transitioning cannot be requested; logical block dependent is not supported.
            _ => return Err(bad_param(at, Some(3)).into()),
        }
    }
    let sender = Some(c.nexus.id);
    let mut plans = Vec::new();
    let mut offline_changed = false;
    for ch in changes {
        match ch {
            Change::Primary(id, s) => plans.push(transition(&dev, id, s, STATUS_EXPLICIT, sender)),
            Change::Offline(d, pl) => {
                set_port_lun_offline(&d, &pl, true, STATUS_EXPLICIT, sender);
                offline_changed = true;
            }
        }
    }
    let busy = plans.iter().any(|p| !p.is_empty());
    for p in plans {
        finish(p);
    }
    if offline_changed && !busy {
        dev.alua.notify(dev.name());
    }
    Ok(Done::consumed(len))
}

/// Sleep of an Active/Non-optimized port (the engine is blocking: the worker thread waits).
pub(crate) fn nonop_delay(ms: u32) {
    if ms > 0 {
        std::thread::sleep(Duration::from_millis(u64::from(ms)));
    }
}
