//! Folding the ALUA state the engine changed by itself (SET TARGET PORT GROUPS, the end of a
//! transition, a secondary state change) back into the config ([`super::Runtime::alua_refresh`]).

use ironlun_engine::scsi::alua::{status_code, AccessState};
use ironlun_engine::TargetPort;

use super::EngineRuntime;
use crate::model::alua::parse_group_state;
use crate::model::{Lun, StorageObject};

impl EngineRuntime {
    /// Fold the ALUA state the engine changed by itself into device `so` (each group's
    /// state, kept as saved while a transition is under way, its status and preferred bit),
    /// and into the entry's own record.
    pub(super) fn refresh_device_alua(&mut self, so: &mut StorageObject) {
        let key = so.key();
        let Some(e) = self.devices.get_mut(&key) else {
            return;
        };
        for g in so.alua_groups() {
            let live = |a: &str| e.device.alua_group_attribute(&g.name, a);
            let state = live("alua_access_state").and_then(|v| parse_group_state(&v));
            let status = live("alua_access_status").and_then(|v| status_code::parse(&v));
            let preferred = live("preferred").and_then(|v| v.parse::<u8>().ok());
            let mut want = g.clone();
            if let Some(st) =
                state.filter(|st| AccessState::from_code(*st) != AccessState::Transitioning)
            {
                want.alua_access_state = st;
            }
            if let Some(st) = status {
                want.alua_access_status = st;
            }
            if let Some(p) = preferred.filter(|p| *p <= 1) {
                want.preferred = p;
            }
            if want != g {
                if let Some(slot) = so.alua_group_mut(&g.name) {
                    *slot = want;
                }
            }
        }
        e.so.alua_tpgs = so.alua_tpgs.clone();
    }
}

/// Fold a TPG LUN's offline flag and its status, as the engine has them, into `l`.
pub(super) fn refresh_lun_alua(port: &TargetPort, l: &mut Lun) {
    if let Some(off) = port.lun_alua_offline(l.index) {
        l.alua_tg_pt_offline = off;
    }
    if let Some(st) = port.lun_alua_offline_status(l.index) {
        l.alua_tg_pt_status = st.min(2);
    }
}
