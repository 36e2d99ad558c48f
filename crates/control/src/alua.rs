//! `ironlun alua show`: the report of a device's target port groups and LU group (SPC-4
//! §5.11.2, §6.37 REPORT TARGET PORT GROUPS fields), with the engine's live state when the
//! device runs. The saved groups and their rules are in [`crate::model::alua`].

use ironlun_engine::scsi::alua::{access_type, status_code, AccessState};

use crate::model::alua::GROUP_STATES;
use crate::model::{Config, DevKey, StorageObject};

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
        let supported: Vec<&str> = GROUP_STATES
            .into_iter()
            .chain([AccessState::LbaDependent])
            .filter(|s| g.supports(s.code()))
            .map(AccessState::short_name)
            .collect();
        out.push_str(&format!(
            "{} (id {})\n  access type: {} ({})\n  primary state: {} (0x{state:02x})\n  status: {} (0x{status:02x})\n  preferred: {}\n  nonop_delay_msecs: {}  trans_delay_msecs: {}  implicit_trans_secs: {}\n  supported states: {} (0x{:02x})\n",
            g.name,
            g.tg_pt_gp_id,
            access_type::name(g.alua_access_type),
            g.alua_access_type,
            AccessState::from_code(state).name(),
            status_code::name(status),
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
