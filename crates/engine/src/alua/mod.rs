//! Asymmetric logical unit access (SPC-4 §5.11): target port groups and their access states,
//! LU groups, the per-state command gate (§5.11.2.6), REPORT TARGET PORT GROUPS (§6.37),
//! SET TARGET PORT GROUPS (§6.46) and explicit / implicit transitions (§5.11.2.7).
//!
//! Every device has `default_tg_pt_gp` (id 0) and any number of further groups (ids
//! 1..=65535, unique per device). Every port LUN ([`PortLun`]) belongs to exactly one group of
//! its device; its I_T_L nexuses hold the `PortLun`, so the gate reads the group through an
//! `ArcSwap` and two atomics, with no lock on the command path.
//!
//! Here: [`admin`] the control plane's surface on `Device` and `TargetPort` (groups,
//! attributes, restore, LU groups, port LUN membership); [`transition`] the state changes and
//! their unit attentions; [`gate`] the command gate; [`report`] RTPG and STPG. The group state
//! itself is data the device holds, `crate::core::device::alua` (re-exported here), so that the
//! core depends on no command code. The vocabulary (states, status codes, access types) is
//! `ironlun_scsi::alua`.

pub(crate) mod admin;
pub(crate) mod attrs;
pub(crate) mod gate;
pub(crate) mod report;
pub(crate) mod transition;

pub(crate) use crate::core::device::alua::*;
pub use crate::core::device::alua::{AluaObserver, LuGroup, DEFAULT_GROUP_NAME};
pub use attrs::{alua_group_attribute_defs, settable_alua_states};
