//! What an LU shared by several gateways (`serve --cluster`) keeps of the others: the link
//! through which its persistent reservation changes become cluster-wide ([`PrShare`]), the
//! revision of the cluster's PR state it has applied, the target ports the other gateways
//! export it through (REPORT TARGET PORT GROUPS and REGISTER AND MOVE name them), and the
//! fence that stops its I/O while this gateway cannot reach the cluster.
//!
//! The engine knows nothing of etcd: the cluster layer (crate `ironlun-cluster`) implements
//! [`PrShare`], calls [`crate::Device::apply_shared_pr`] for every change it watches and sets
//! the remote ports and the fence.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Instant;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::pr::{NexusIdent, PrRegistration, PrState};

/// The I_T nexus that sent a PR OUT, by name (so that every gateway can tell it apart).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrSender {
    pub initiator: String,
    pub isid: [u8; 6],
    pub target: String,
    pub tpgt: u16,
}

impl PrSender {
    pub(crate) fn of(who: &NexusIdent) -> PrSender {
        PrSender {
            initiator: who.initiator.name.clone(),
            isid: who.initiator.isid,
            target: who.target.clone(),
            tpgt: who.tpgt,
        }
    }

    pub(crate) fn is(&self, who: &NexusIdent) -> bool {
        self.initiator.eq_ignore_ascii_case(&who.initiator.name)
            && self.isid == who.initiator.isid
            && self.tpgt == who.tpgt
            && self.target.eq_ignore_ascii_case(&who.target)
    }
}

/// A unit attention a PR change raises on the I_T_L nexuses of some registrations (the
/// sender's own nexus excepted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrUa {
    pub asc: u8,
    pub ascq: u8,
    pub to: Vec<PrRegistration>,
}

/// What a PR change does besides replacing the state, named so that any gateway can apply it
/// to its own nexuses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrEffects {
    pub uas: Vec<PrUa>,
    /// PREEMPT AND ABORT: the tasks of the nexuses of these registrations are aborted.
    pub abort: Vec<PrRegistration>,
    /// A LOGICAL UNIT RESET (or target reset) on another gateway: every task of the LU is
    /// aborted and this unit attention (ASC, ASCQ) goes to every I_T nexus (SAM-5 §6.3.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<(u8, u8)>,
}

/// One change of a clustered LU's PR state, as published to the other gateways.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrChange {
    pub state: PrState,
    pub effects: PrEffects,
    /// The nexus the PR OUT came through; `None` for an administrator's change.
    pub sender: Option<PrSender>,
    /// The SPC-2 RESERVE holder (one per LU, cluster-wide), carried by every change.
    #[serde(default)]
    pub spc2: Option<PrSender>,
}

/// Why a change could not be made cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareError {
    /// The cluster's state moved on since the revision the change was computed from: catch up
    /// and compute it again.
    Stale,
    /// This gateway cannot reach the cluster (or lost its membership): nothing was changed.
    Unavailable(String),
}

/// How a clustered LU makes its PR changes cluster-wide (implemented by the cluster layer).
/// Calls block (the engine runs commands on blocking threads).
pub trait PrShare: Send + Sync {
    /// Publish `change` if the cluster's state is still revision `base` (0: none yet) and this
    /// gateway is still a member. Ok: the revision the change got.
    fn commit(&self, base: u64, change: &PrChange) -> Result<u64, ShareError>;
    /// After this gateway applied revision `rev` of its own: return once every live gateway has
    /// applied it (or left the cluster).
    fn confirm(&self, rev: u64) -> Result<(), ShareError>;
    /// After [`ShareError::Stale`]: return once this gateway has applied the cluster's latest
    /// revision.
    fn catch_up(&self) -> Result<(), ShareError>;
}

/// A target port of another gateway that exports this LU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemotePort {
    pub rtpi: u16,
    pub target: String,
    pub tpgt: u16,
    /// Its target port group id.
    pub group: u16,
}

/// The cluster side of a device.
pub(crate) struct SharedUnit {
    pub(crate) share: Mutex<Option<Arc<dyn PrShare>>>,
    /// Revision of the cluster's PR state installed here.
    pub(crate) rev: AtomicU64,
    pub(crate) remote: Mutex<Arc<Vec<RemotePort>>>,
    /// Until when (ms on [`clock_ms`]) this gateway may serve the LU: 0 for an LU that is not
    /// clustered (never fenced). Set by the cluster layer from its lease keep-alives, and
    /// read by the command gate against the clock, so that a gateway that was stopped
    /// (SIGSTOP, a stalled VM) finds itself fenced the moment it runs again, before any
    /// command it had queued can reach the medium.
    pub(crate) deadline: AtomicU64,
    /// The `cluster` attribute.
    pub(crate) clustered: AtomicBool,
}

impl Default for SharedUnit {
    fn default() -> SharedUnit {
        // Every LU that is not clustered shares one empty list.
        static NONE: LazyLock<Arc<Vec<RemotePort>>> = LazyLock::new(Arc::default);
        SharedUnit {
            share: Mutex::new(None),
            rev: AtomicU64::new(0),
            remote: Mutex::new(NONE.clone()),
            deadline: AtomicU64::new(0),
            clustered: AtomicBool::new(false),
        }
    }
}

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Milliseconds on the monotonic clock since its first reading, plus 1 (so that 0 stays "no
/// deadline").
pub(crate) fn clock_ms() -> u64 {
    ms_of(Instant::now())
}

/// `at` on [`clock_ms`]'s scale (1 for an instant before its epoch: already past).
pub(crate) fn ms_of(at: Instant) -> u64 {
    let e = *EPOCH.get_or_init(Instant::now);
    at.checked_duration_since(e).map_or(1, |d| {
        u64::try_from(d.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    })
}

impl SharedUnit {
    pub(crate) fn share(&self) -> Option<Arc<dyn PrShare>> {
        self.share.lock().clone()
    }

    pub(crate) fn remote(&self) -> Arc<Vec<RemotePort>> {
        self.remote.lock().clone()
    }

    /// Cut off from the cluster: past the deadline of a clustered LU.
    pub(crate) fn fenced(&self) -> bool {
        let d = self.deadline.load(Ordering::Acquire);
        d != 0 && clock_ms() >= d
    }
}
