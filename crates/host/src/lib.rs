//! ironlun's host side: what a Linux host needs a kernel, open-iscsi and sg3_utils for, as one
//! CLI (`ironlun host …`) that runs in any machine or container against any iSCSI target.
//!
//! The modules in dependency order; each uses only those above it:
//!
//! * [`error`]: [`HostError`], one clear line per failure (the CLI's exit status 2).
//! * [`url`]: libiscsi's `iscsi://[user[%secret]@]host[:port]/iqn/lun` URLs and portals.
//! * [`output`]: a command's result, as text for people and JSON for scripts.
//! * [`ctx`]: how the host reaches a target: initiator name, CHAP (one-way and mutual, the
//!   secrets from the URL, the environment or files), a timeout on every network step, login
//!   redirects followed a bounded number of times.
//! * The commands, one module each: [`discover`] (SendTargets), [`inquiry`] (INQUIRY and the
//!   VPD pages), [`rtpg`] (REPORT TARGET PORT GROUPS the way Linux reads it), [`stpg`] (SET
//!   TARGET PORT GROUPS), [`persist`] (PERSISTENT RESERVE IN / OUT like sg_persist) and
//!   [`paths`] (the multipath view: maps by WWID, path groups by ALUA priority).
//! * [`mpath`]: the multipath engine (one LU over several paths, dm-multipath's choices);
//!   [`serve_nbd`] exports it as an NBD disk (`serve-nbd`) and reads its status (`nbd-status`).
//! * [`cli`]: the command line (clap) and the dispatch to the commands.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod error;
pub mod url;

pub mod output;

pub mod ctx;

pub mod discover;
pub mod inquiry;
pub mod persist;
pub mod rtpg;
pub mod stpg;

pub mod mpath;

pub mod paths;
pub mod serve_nbd;

pub mod cli;

pub use error::HostError;
pub type Result<T, E = HostError> = std::result::Result<T, E>;
