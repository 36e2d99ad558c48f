//! The control plane's surface on a device's ALUA configuration: target port groups (LIO
//! `alua/<group>/`), their attributes, the start-up restore, LU groups and the observer.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use ironlun_scsi::alua::{access_type, status_code, AccessState};
use ironlun_scsi::sense::asc;
use ironlun_scsi::Asc;

use super::transition::{finish, transition};
use super::{
    support_attr, AluaObserver, LuGroup, TgPtGroup, DEFAULT_GROUP, DEFAULT_GROUP_NAME,
    GROUP_ATTRIBUTES, MAX_IMPLICIT_TRANS_SECS, MAX_NONOP_DELAY_MS, MAX_TRANS_DELAY_MS,
};
use crate::core::device::Device;
use crate::core::port::TargetPort;

/// The states a group can be put in (logical block dependent is not supported).
fn settable(s: AccessState) -> bool {
    !matches!(s, AccessState::LbaDependent | AccessState::Reserved(_))
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

    /// Create a group (LIO: `mkdir alua/<name>`, then write tg_pt_gp_id). Err: one line.
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
            "alua_access_state" => g.state().code().to_string(),
            "alua_access_status" => status_code::name(g.status.load(Ordering::Relaxed)).to_string(),
            "alua_access_type" => {
                access_type::name(g.access_type.load(Ordering::Relaxed)).to_string()
            }
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
                let Some(s) = AccessState::parse(value).filter(|s| settable(*s)) else {
                    return Err(format!(
                        "alua_access_state: invalid value {value:?}; valid: 0 (ao), 1 (ano), 2 (s), 3 (u), 14 (o), 15 (t); 4 (lba dependent) is not supported"
                    ));
                };
                // LIO: implicit transitions need IMPLICIT in the access type.
                if g.access_type.load(Ordering::Relaxed) & access_type::IMPLICIT == 0 {
                    return Err(format!(
                        "alua_access_state: group {group} has alua_access_type {:?}; implicit transitions need 1 or 3",
                        access_type::name(g.access_type.load(Ordering::Relaxed))
                    ));
                }
                if !g.supports(s) {
                    return Err(format!(
                        "alua_access_state: state {} is not supported by group {group} (see alua_support_*)",
                        s.code()
                    ));
                }
                let me = self.me.upgrade().ok_or("device is being removed")?;
                let plan = transition(&me, g.id, s, status_code::ALTERED_BY_IMPLICIT, None);
                if !plan.is_empty() {
                    std::thread::spawn(move || finish(plan));
                }
            }
            "alua_access_status" => {
                let s = status_code::parse(value).ok_or_else(|| {
                    format!("alua_access_status: invalid value {value:?}; valid values: 0, 1, 2")
                })?;
                g.status.store(s, Ordering::Relaxed);
            }
            "alua_access_type" => {
                let t = access_type::parse(value).ok_or_else(|| {
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
        if state > 0x0f || !settable(AccessState::from_code(state)) {
            return Err(format!(
                "alua_access_state: invalid value {state}; valid values: 0, 1, 2, 3, 14, 15"
            ));
        }
        if status > status_code::ALTERED_BY_IMPLICIT {
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

impl TargetPort {
    /// `lun/lun_<n>/alua_tg_pt_gp`: put this port's LUN into a target port group of its
    /// device (INQUIRY DATA HAS CHANGED 3F/03 to the nexuses that see the LUN).
    pub fn set_lun_alua_group(&self, lun: u64, group: &str) -> Result<(), String> {
        let (dev, pl) = self.port_lun(lun)?;
        super::transition::set_port_lun_group(&dev, &pl, group)
    }

    /// `lun/lun_<n>/alua_tg_pt_offline`: the secondary state Offline of this port LUN (an
    /// admin change: status 0x02; other nexuses of the LU get 2A/06).
    pub fn set_lun_alua_offline(&self, lun: u64, offline: bool) -> Result<(), String> {
        let (dev, pl) = self.port_lun(lun)?;
        super::transition::set_port_lun_offline(
            &dev,
            &pl,
            offline,
            super::transition::STATUS_BY_ADMIN,
            None,
        );
        Ok(())
    }
}
