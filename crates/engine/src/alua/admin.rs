//! The control plane's surface on a device's ALUA configuration: target port groups (LIO
//! `alua/<group>/`), their attributes, the start-up restore, LU groups and the observer.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use ironlun_scsi::alua::{status_code, AccessState};
use ironlun_scsi::Asc;

use super::attrs::{find, GROUP_ATTRS};
use super::transition::{finish, transition};
use super::{AluaObserver, LuGroup, TgPtGroup, DEFAULT_GROUP, DEFAULT_GROUP_NAME};
use crate::core::device::Device;
use crate::core::port::TargetPort;

// ---- control-plane surface on Device ----

impl Device {
    /// The cluster changed group `id`'s state: an implicit transition here (ASYMMETRIC ACCESS
    /// STATE CHANGED to every nexus of the LU, the observer told so that the state is saved).
    /// False: no such group, or it is in that state already.
    pub fn apply_shared_group_state(&self, id: u16, state: u8) -> bool {
        let target = AccessState::from_code(state);
        let Some(me) = self.me.upgrade() else {
            return false;
        };
        let plan = transition(&me, id, target, status_code::ALTERED_BY_IMPLICIT, None);
        let changed = !plan.is_empty();
        finish(plan);
        changed
    }

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
        GROUP_ATTRS.iter().map(|a| a.def.name).collect()
    }

    /// Current value of a group attribute, formatted as LIO shows it.
    pub fn alua_group_attribute(&self, group: &str, attr: &str) -> Option<String> {
        let g = self.alua.by_name(group)?;
        find(attr).map(|a| (a.get)(self, &g))
    }

    /// Set one group attribute; no change on Err. Setting `alua_access_state` is an implicit
    /// (admin) transition: Transitioning for trans_delay_msecs (finished by a timer thread),
    /// status 0x02, UA 2A/06 to every I_T nexus of every affected LU. A change of an attribute
    /// declared with a unit attention raises it on the nexuses of the group's ports.
    pub fn set_alua_group_attribute(
        &self,
        group: &str,
        attr: &str,
        value: &str,
    ) -> Result<(), String> {
        let Some(g) = self.alua.by_name(group) else {
            return Err(format!("{group}: no such target port group"));
        };
        let Some(a) = find(attr) else {
            return Err(format!(
                "{attr}: unknown ALUA group attribute; valid: {}",
                self.alua_group_attribute_names().join(", ")
            ));
        };
        let v = a.def.parse(value)?;
        let Some(set) = a.set else {
            return Ok(());
        };
        // Only an attribute that raises a unit attention needs its value before the change.
        let before = a.def.ua.map(|_| (a.get)(self, &g));
        set(self, &g, v)?;
        if let (Some((ua, _)), Some(before)) = (a.def.ua, before) {
            if (a.get)(self, &g) != before {
                self.raise_ua_for_group(g.id, ua);
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
        if state > 0x0f || !super::attrs::settable(AccessState::from_code(state)) {
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
    pub(crate) fn alua_members(&self, group: &str) -> Vec<String> {
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
