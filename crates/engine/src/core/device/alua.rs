//! The ALUA state of an LU (SPC-4 §5.11), kept by the device: its target port groups with their
//! access state and attributes, the ALUA membership of each port LUN, its LU group. What
//! changes it and what it gates is `crate::alua`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use ironlun_scsi::alua::{access_type, status_code, support, AccessState};
use parking_lot::{Mutex, RwLock};

use super::Device;

/// Target port group id of `default_tg_pt_gp`.
pub(crate) const DEFAULT_GROUP: u16 = 0;
/// Name of the group every device has.
pub const DEFAULT_GROUP_NAME: &str = "default_tg_pt_gp";

// Limits of LIO's group attributes.
pub(crate) const MAX_NONOP_DELAY_MS: u32 = 10_000;
pub(crate) const MAX_TRANS_DELAY_MS: u32 = 30_000;
pub(crate) const MAX_IMPLICIT_TRANS_SECS: u32 = 255;

/// Observer the control plane attaches to persist ALUA changes the engine makes by itself
/// (SET TARGET PORT GROUPS, end of a transition). Called after the change, outside hot paths.
pub trait AluaObserver: Send + Sync {
    fn alua_changed(&self, device_name: &str);
}

/// An LU group (`core/alua/lu_gps/<name>`, `lu_gp_id`); `default_lu_gp` is id 0. Devices of
/// one LU group other than id 0 transition together (see `crate::alua::transition`).
pub struct LuGroup {
    pub(crate) name: String,
    pub(crate) id: u16,
    pub(crate) members: Mutex<Vec<Weak<Device>>>,
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

    pub(crate) fn live(&self) -> Vec<Arc<Device>> {
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
    pub(crate) state: AtomicU8,
    pub(crate) status: AtomicU8,
    pub(crate) access_type: AtomicU8,
    pub(crate) supported: AtomicU8,
    pub(crate) preferred: AtomicBool,
    pub(crate) nonop_delay_ms: AtomicU32,
    pub(crate) trans_delay_ms: AtomicU32,
    pub(crate) implicit_trans_secs: AtomicU32,
    /// Bumped by every transition so that a superseded one does not finish.
    pub(crate) generation: AtomicU64,
}

impl TgPtGroup {
    pub(crate) fn new(name: &str, id: u16) -> TgPtGroup {
        // LIO's defaults for a new group.
        TgPtGroup {
            name: name.to_string(),
            id,
            state: AtomicU8::new(AccessState::ActiveOptimized.code()),
            status: AtomicU8::new(status_code::NONE),
            access_type: AtomicU8::new(access_type::IMPLICIT | access_type::EXPLICIT),
            supported: AtomicU8::new(
                support::T | support::O | support::U | support::S | support::AN | support::AO,
            ),
            preferred: AtomicBool::new(false),
            nonop_delay_ms: AtomicU32::new(100),
            trans_delay_ms: AtomicU32::new(0),
            implicit_trans_secs: AtomicU32::new(0),
            generation: AtomicU64::new(0),
        }
    }

    pub(crate) fn state(&self) -> AccessState {
        // Only settable states are stored; anything else reads as Transitioning.
        match AccessState::from_code(self.state.load(Ordering::Acquire)) {
            AccessState::LbaDependent | AccessState::Reserved(_) => AccessState::Transitioning,
            s => s,
        }
    }

    pub(crate) fn supports(&self, s: AccessState) -> bool {
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
            offline_status: AtomicU8::new(status_code::NONE),
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
    pub(crate) groups: RwLock<Vec<Arc<TgPtGroup>>>,
    pub(crate) lu_group: Mutex<Option<Arc<LuGroup>>>,
    pub(crate) observer: RwLock<Option<Arc<dyn AluaObserver>>>,
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

    pub(crate) fn by_id(&self, id: u16) -> Option<Arc<TgPtGroup>> {
        self.groups.read().iter().find(|g| g.id == id).cloned()
    }

    pub(crate) fn lu_group_id(&self) -> u16 {
        self.lu_group.lock().as_ref().map_or(0, |g| g.id)
    }

    pub(crate) fn notify(&self, dev: &str) {
        let obs = self.observer.read().clone();
        if let Some(o) = obs {
            o.alua_changed(dev);
        }
    }
}
