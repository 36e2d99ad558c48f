//! ALUA on the engine (SPC-4 §5.11.2): a device's target port groups and LU
//! group, and each TPG LUN's group and offline flag, made to match the config; groups new to
//! the engine are restored without a transition.

use std::collections::BTreeMap;
use std::sync::Arc;

use ironlun_engine::{Device, LuGroup, TargetPort};

use super::{PortState, Undo};
use crate::model::alua::group_attributes;
use crate::model::{AluaTpg, DevKey, Lun, StorageObject, Tpg};

/// Settable group attributes other than state, status and preferred, in the engine's display
/// order, which is also the order they are given in (the supported states before anything
/// that depends on them).
fn group_settings() -> impl Iterator<Item = &'static str> {
    group_attributes().into_iter().filter(|a| {
        !matches!(
            *a,
            "alua_access_state" | "alua_access_status" | "preferred" | "tg_pt_gp_id" | "members"
        )
    })
}

/// Give a group that is new to the engine its saved attributes, then its state, status and
/// preferred bit as a restore (not a transition).
pub(super) fn restore_group(dev: &Device, g: &AluaTpg) -> Result<(), String> {
    for a in group_settings() {
        dev.set_alua_group_attribute(&g.name, a, &g.get(a).unwrap_or_default())?;
    }
    dev.restore_alua_group_state(
        &g.name,
        g.alua_access_state,
        g.alua_access_status,
        g.preferred == 1,
    )
}

/// Make `dev`'s groups and LU group match `so`. `old`: what `dev` was last given (`None`: the
/// device is new to the engine). Returns the groups to delete once no LUN is in them.
pub(super) fn sync_device_alua(
    dev: &Arc<Device>,
    key: &DevKey,
    old: Option<&StorageObject>,
    so: &StorageObject,
    lu_gps: &BTreeMap<String, Arc<LuGroup>>,
    undo: &mut Vec<Undo>,
) -> Result<Vec<AluaTpg>, String> {
    let live = dev.alua_groups();
    let old_groups = old.map(StorageObject::alua_groups).unwrap_or_default();
    for g in so.alua_groups() {
        let at = format!("{key}/alua/{}", g.name);
        let err = |e: String| format!("{at}: {e}");
        if !live.contains(&g.name) {
            dev.create_alua_group(&g.name, g.tg_pt_gp_id).map_err(err)?;
            let (d, name) = (dev.clone(), g.name.clone());
            undo.push(Box::new(move || {
                if let Err(e) = d.delete_alua_group(&name) {
                    tracing::error!("rollback of ALUA group {name}: {e}");
                }
            }));
        }
        let Some(before) = old_groups.iter().find(|x| x.name == g.name) else {
            // New to the engine (new device or new group): a restore, no transition.
            restore_group(dev, &g).map_err(err)?;
            continue;
        };
        // A live group: change what changed; the state last, as an implicit transition.
        let mut order: Vec<&str> = group_settings().collect();
        order.extend(["preferred", "alua_access_state"]);
        if before.alua_access_state == g.alua_access_state {
            order.push("alua_access_status");
        }
        for a in order {
            let (was, want) = (
                before.get(a).unwrap_or_default(),
                g.get(a).unwrap_or_default(),
            );
            if was == want {
                continue;
            }
            dev.set_alua_group_attribute(&g.name, a, &want)
                .map_err(err)?;
            let (d, name) = (dev.clone(), g.name.clone());
            undo.push(Box::new(move || {
                if let Err(e) = d.set_alua_group_attribute(&name, a, &was) {
                    tracing::error!("rollback of ALUA group {name} {a}: {e}");
                }
            }));
        }
    }
    let want_lu = so.alua_lu_gp.as_ref().and_then(|n| lu_gps.get(n)).cloned();
    let cur_lu = dev.lu_group();
    let same = match (&cur_lu, &want_lu) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    };
    if !same {
        dev.set_lu_group(want_lu);
        let d = dev.clone();
        undo.push(Box::new(move || d.set_lu_group(cur_lu)));
    }
    let wanted = so.alua_groups();
    Ok(old_groups
        .into_iter()
        .filter(|g| live.contains(&g.name) && !wanted.iter().any(|w| w.name == g.name))
        .collect())
}

/// Make each TPG LUN's group and offline flag match the config. A LUN new to the port gets
/// its saved offline flag and status restored; a live LUN's offline change is a secondary
/// state change by the administrator.
pub(super) fn sync_port_alua(
    port: &Arc<TargetPort>,
    tpg: &Tpg,
    before: &PortState,
    want: &PortState,
    undo: &mut Vec<Undo>,
) -> Result<(), String> {
    for l in &tpg.luns {
        let fresh = match (before.luns.get(&l.index), want.luns.get(&l.index)) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            _ => true,
        };
        sync_lun_alua(port, l, fresh, undo)?;
    }
    Ok(())
}

/// One TPG LUN's group and offline flag (`fresh`: the LUN is new to the port, or exports
/// another device object now: its saved flag and status are restored, not changed).
pub(super) fn sync_lun_alua(
    port: &Arc<TargetPort>,
    l: &Lun,
    fresh: bool,
    undo: &mut Vec<Undo>,
) -> Result<(), String> {
    let at = format!("lun/lun_{}", l.index);
    let cur = port.lun_alua_group(l.index);
    if cur.as_deref() != Some(l.tg_pt_gp()) {
        port.set_lun_alua_group(l.index, l.tg_pt_gp())
            .map_err(|e| format!("{at}/alua_tg_pt_gp: {e}"))?;
        if let Some(cur) = cur {
            let (p, idx) = (port.clone(), l.index);
            undo.push(Box::new(move || {
                if let Err(e) = p.set_lun_alua_group(idx, &cur) {
                    tracing::error!("rollback of LUN {idx} ALUA group: {e}");
                }
            }));
        }
    }
    let off = port.lun_alua_offline(l.index).unwrap_or(false);
    let status = port.lun_alua_offline_status(l.index).unwrap_or(0);
    if fresh {
        if off != l.alua_tg_pt_offline || status != l.alua_tg_pt_status {
            port.restore_lun_alua_offline(l.index, l.alua_tg_pt_offline, l.alua_tg_pt_status)
                .map_err(|e| format!("{at}/alua_tg_pt_offline: {e}"))?;
        }
    } else if off != l.alua_tg_pt_offline {
        port.set_lun_alua_offline(l.index, l.alua_tg_pt_offline)
            .map_err(|e| format!("{at}/alua_tg_pt_offline: {e}"))?;
        let (p, idx) = (port.clone(), l.index);
        undo.push(Box::new(move || {
            let back = p
                .set_lun_alua_offline(idx, off)
                .and_then(|()| p.restore_lun_alua_offline(idx, off, status));
            if let Err(e) = back {
                tracing::error!("rollback of LUN {idx} offline flag: {e}");
            }
        }));
    }
    Ok(())
}
