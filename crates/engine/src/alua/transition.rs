//! Access state changes (SPC-4 §5.11.2.7): explicit (SET TARGET PORT GROUPS) and implicit
//! (administrator) transitions through Transitioning, LU groups that move together, port LUN
//! membership and the secondary Offline state, with the unit attentions each raises.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ironlun_scsi::alua::{status_code, AccessState};
use ironlun_scsi::sense::asc;

use super::{PortLun, TgPtGroup};
use crate::core::device::Device;

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

pub(crate) const STATUS_BY_ADMIN: u8 = status_code::ALTERED_BY_IMPLICIT;

/// A transition under way: the groups now Transitioning and what they become.
pub(crate) struct Plan {
    steps: Vec<(Arc<Device>, Arc<TgPtGroup>, u64, AccessState)>,
    delay_ms: u32,
}

impl Plan {
    pub(crate) fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Begin moving group `id` of `dev` to `target`. LIO behaviour: when `dev` is in an LU group
/// other than `default_lu_gp`, group `id` of every device of that LU group transitions too.
/// Each group whose state changes enters Transitioning (when it has a trans_delay) with the
/// given status, and every I_T nexus of each affected LU except `sender` (the I_T nexus of
/// an STPG) gets one 2A/06 ASYMMETRIC ACCESS STATE CHANGED — once per change, not once on
/// entering and once on leaving Transitioning as LIO does. [`finish`] completes the plan.
pub(crate) fn transition(
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
                .store(AccessState::Transitioning.code(), Ordering::Release);
            plan.delay_ms = plan.delay_ms.max(delay);
        } else {
            g.state.store(target.code(), Ordering::Release);
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
pub(crate) fn finish(plan: Plan) {
    if plan.delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(u64::from(plan.delay_ms)));
    }
    let mut told: Vec<u64> = Vec::new();
    for (d, g, gen, target) in &plan.steps {
        if g.generation.load(Ordering::Acquire) == *gen {
            g.state.store(target.code(), Ordering::Release);
        }
        if !told.contains(&d.id) {
            told.push(d.id);
            d.alua.notify(d.name());
        }
    }
}
