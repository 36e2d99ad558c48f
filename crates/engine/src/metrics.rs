//! What the metrics exporter reads at scrape time (docs/metrics.md): each LU's and each I_T
//! nexus' I/O counters (`crate::core::stats`), the tasks they have outstanding, an LU's
//! persistent reservation generation and holder (SPC-4 §5.13) and the access state of its
//! target port groups (SPC-4 §5.11.2.7). Reads only; nothing here is on the command path.

use std::sync::atomic::Ordering;

use ironlun_scsi::alua::AccessState;

use crate::core::device::Device;
use crate::core::port::nexus::Nexus;
pub use crate::core::stats::{
    IoSnapshot, LatencySnapshot, OpClass, ERROR_STATUSES, LATENCY_BOUNDS_NS, TMF_NAMES,
};

/// A persistent reservation summary of one LU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrSummary {
    /// PRgeneration (SPC-4 §6.15.2).
    pub generation: u32,
    pub registrations: usize,
    /// A persistent reservation is held.
    pub reserved: bool,
}

/// One target port group of one LU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AluaGroupState {
    pub name: String,
    pub id: u16,
    pub state: AccessState,
}

impl Device {
    /// Commands, bytes, errors and TMFs of this LU since it was created.
    pub fn io_stats(&self) -> IoSnapshot {
        self.stats.snapshot()
    }

    /// Tasks in the LU's task set (received, not yet answered).
    pub fn outstanding(&self) -> usize {
        self.tasks.len()
    }

    pub fn pr_summary(&self) -> PrSummary {
        let s = self.pr.load();
        PrSummary {
            generation: s.generation,
            registrations: s.registrations.len(),
            reserved: s.reservation.is_some(),
        }
    }

    /// Every target port group with its primary access state.
    pub fn alua_group_states(&self) -> Vec<AluaGroupState> {
        self.alua
            .groups
            .read()
            .iter()
            .map(|g| AluaGroupState {
                name: g.name.clone(),
                id: g.id,
                state: g.state(),
            })
            .collect()
    }
}

impl Nexus {
    /// Commands, bytes, errors and TMFs of this I_T nexus since it was opened.
    pub fn io_stats(&self) -> IoSnapshot {
        self.stats.snapshot()
    }

    /// Tasks of this nexus in the task sets of the LUs it reaches.
    pub fn outstanding(&self) -> usize {
        let view = self.view.load();
        // One LU may be mapped at several LUNs: count its task set once.
        let mut seen = std::collections::HashSet::with_capacity(view.luns.len());
        view.luns
            .values()
            .filter(|s| seen.insert(std::sync::Arc::as_ptr(&s.device)))
            .map(|s| s.device.tasks.count_of(self.id))
            .sum()
    }

    /// Ended (I_T nexus loss): no longer reported.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
