//! An I_T nexus (SAM-5 §4.6): one initiator port logged in through one target port, and the
//! LUNs it can address ([`View`], rebuilt by the port when its configuration changes). What a
//! nexus does with commands is `crate::pipeline`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use arc_swap::ArcSwap;

use super::{next_id, TargetPort};
use crate::core::device::pr::NexusIdent;
use crate::core::device::slot::LunSlot;
use crate::core::stats::IoStats;
use crate::{InitiatorPortId, TaskListener};

/// The LUNs one I_T nexus can address.
#[derive(Default)]
pub(crate) struct View {
    pub luns: HashMap<u64, Arc<LunSlot>>,
}

impl View {
    /// LUN numbers in ascending order (REPORT LUNS).
    pub(crate) fn lun_list(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.luns.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

/// An I_T nexus.
pub struct Nexus {
    pub(crate) id: u64,
    initiator: InitiatorPortId,
    initiator_port_name: String,
    pub(crate) port: Arc<TargetPort>,
    /// Initiator and target port names, as persistent reservations match them.
    pub(crate) ident: Arc<NexusIdent>,
    pub(crate) view: ArcSwap<View>,
    pub(crate) closed: AtomicBool,
    /// The transport told of aborts of the tasks it holds (see [`TaskListener`]).
    pub(crate) listener: OnceLock<Weak<dyn TaskListener>>,
    /// Commands, bytes, errors and TMFs of this nexus (the metrics exporter).
    pub(crate) stats: IoStats,
}

impl Nexus {
    pub(crate) fn new(initiator: InitiatorPortId, port: Arc<TargetPort>) -> Nexus {
        Nexus {
            id: next_id(),
            initiator_port_name: initiator.port_name(),
            ident: Arc::new(NexusIdent {
                initiator: initiator.clone(),
                target: port.target_name().to_string(),
                tpgt: port.tpgt(),
                rtpi: port.rtpi(),
            }),
            initiator,
            port,
            view: ArcSwap::from_pointee(View::default()),
            closed: AtomicBool::new(false),
            listener: OnceLock::new(),
            stats: IoStats::default(),
        }
    }

    /// Register the transport's [`TaskListener`] for tasks it receives on this nexus (once;
    /// later calls are ignored). Held weakly: the transport's session owns the nexus.
    pub fn set_task_listener(&self, l: Weak<dyn TaskListener>) {
        let _ = self.listener.set(l);
    }

    pub fn initiator(&self) -> &InitiatorPortId {
        &self.initiator
    }

    pub fn port(&self) -> &Arc<TargetPort> {
        &self.port
    }

    /// LUNs this nexus can address, ascending.
    pub fn luns(&self) -> Vec<u64> {
        self.view.load().lun_list()
    }

    /// Whether the LU at `lun` wants descriptor-format sense data (control mode page D_SENSE,
    /// SPC-4 §7.5.8), for a transport that refuses a command itself; false where no LU is.
    pub fn descriptor_sense(&self, lun: u64) -> bool {
        self.view
            .load()
            .luns
            .get(&lun)
            .is_some_and(|s| s.device.d_sense.load(Ordering::Relaxed))
    }

    pub(crate) fn initiator_port_name(&self) -> &str {
        &self.initiator_port_name
    }
}
