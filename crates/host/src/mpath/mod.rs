//! The multipath engine (issue 10): one logical unit over N paths, each path its own session
//! and I_T nexus (RFC 7143 §4.4.1), I/O sent the way Linux's dm-multipath does with
//! `group_by_prio`, the alua prioritizer, scsi_dh_alua and the tur checker (SPC-4 §5.16:
//! asymmetric logical unit access).
//!
//! The modules in dependency order; each uses only those above it:
//!
//! * [`policy`]: pure decisions: what an outcome means, priorities, the path chosen, the
//!   status types (unit-tested without a network).
//! * [`path`]: one path's session, its ALUA view, commands with transport failures named.
//! * [`engine`]: the shared state: open, execute with failover, the one-for-all RTPG
//!   re-read, reconnect with backoff, the path checker, explicit failover.
//! * [`lu`]: [`MultipathLu`], the public handle: open, execute, `register_all`, `status`.
//! * [`blockdev`]: [`MultipathLu`] as an `ironlun_nbd::BlockDev`.

pub mod policy;

pub mod path;

pub mod engine;

pub mod lu;

pub mod blockdev;

#[cfg(test)]
mod tests;

pub use engine::MpathOptions;
/// The block-device trait [`MultipathLu`] implements (for callers without the nbd crate).
pub use ironlun_nbd::BlockDev;
pub use lu::{Limits, MultipathLu};
pub use policy::{Checker, Counters, MultipathStatus, PathStatus};
