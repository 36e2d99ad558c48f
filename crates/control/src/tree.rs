//! The object tree as paths: `ls`, `get`, `set`, `create`, `delete`, `link`.
//!
//! Layout mirrors LIO's configfs (`/sys/kernel/config/target`):
//! `core/<kind>_<n>/<dev>/…`, `core/alua/lu_gps/default_lu_gp`, `iscsi/discovery_auth/…`,
//! `iscsi/<target>/tpgt_<n>/{enable,rtpi,attrib,auth,param,np,lun,acls}`. A running device
//! also shows its live persistent reservation state, read-only, under `pr/`.
//!
//! Everything here is pure: a mutation takes the current [`Config`] and returns the new one (or
//! one line of error and no change); applying it to the engine and the fabric is the runtime's
//! job.
//!
//! * [`path`] — the one path grammar: [`ObjPath`], parsed segment by segment; every verb uses it.
//! * [`render`](mod@render) — the tree as values ([`Node`]), for `ls` and `get` ([`ls`](mod@ls)).
//! * [`set`](mod@set), [`resize`] (a live `control` capacity change), [`create`](mod@create),
//!   [`delete`](mod@delete), [`link`](mod@link) — the mutations, one file per verb.
//! * Here: the [`Inspect`] view of live values, [`Op`], [`mutate`] and the lookups the
//!   mutations share.

pub mod create;
pub mod delete;
pub mod link;
pub mod ls;
pub mod path;
pub mod render;
pub mod resize;
pub mod scope;
pub mod set;

pub use create::preallocation;
pub use ls::{get, ls};
pub use path::ObjPath;
pub use render::{render, Node, COMPANY_ID};
pub use resize::{resize_request, resized, Resize};

use crate::model::{Config, DevKey, NodeAcl, ParamSchema, Snapshot, Touched, Tpg};
use crate::pr::PrView;

/// Live values the tree shows but does not own: the fabric's `param/` schema and the engine's
/// device attributes.
pub trait Inspect: ParamSchema {
    /// `attrib/` names and current values of a live device, in display order
    /// (empty if the device is not running).
    fn device_attributes(&self, key: &DevKey) -> Vec<(String, String)>;
    /// One-line `info` text of a live device.
    fn device_info(&self, key: &DevKey) -> Option<String>;
    /// Current capacity in bytes of a live device's backstore.
    fn device_size(&self, key: &DevKey) -> Option<u64>;
    /// Bytes of backing storage a live device uses, where that is known (sparse files, RAM
    /// disks).
    fn device_allocated(&self, _key: &DevKey) -> Option<u64> {
        None
    }
    /// Live persistent reservation state of a device (`None`: not running, and no `pr/`).
    fn device_pr(&self, _key: &DevKey) -> Option<PrView> {
        None
    }
    /// Live value of a running device's target port group attribute (the engine's
    /// `alua_group_attribute`); `None`: not running (the saved value is shown).
    fn alua_group_attribute(&self, _key: &DevKey, _group: &str, _attr: &str) -> Option<String> {
        None
    }
}

/// A mutation of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Set { path: String, value: String },
    Create { path: String, args: Vec<String> },
    Delete { path: String },
    Link { src: String, dst: String },
}

/// Apply one mutation to a copy of `cfg`. Ok: the new tree and a one-line message for the user.
/// Err: one line; `cfg` is untouched.
pub fn mutate(cfg: &Config, insp: &dyn Inspect, op: &Op) -> Result<(Config, String), String> {
    let mut new = cfg.clone();
    let r = mutate_in_place(&mut new, insp, op);
    // The unit tests hold every mutation to the whole-tree rules: a scoped check that lets
    // through what the whole check refuses, or a failed change not put back, is a bug.
    if cfg!(test) {
        match &r {
            Ok(_) => {
                if let Err(e) = new.validate(insp) {
                    panic!("{op:?}: the scoped validation let through: {e}");
                }
            }
            Err(e) => assert!(new == *cfg, "{op:?} failed ({e}) and was not put back"),
        }
    }
    let (msg, _, _) = r?;
    new.validate(insp)?;
    Ok((new, msg))
}

/// Apply one mutation to `cfg` in place, checking only what it touched ([`scope::touched_by`],
/// [`Config::validate_touched`]). Ok: the message, what it touched, and the [`Snapshot`] that
/// puts it back. Err: one line; `cfg` is as it was.
pub fn mutate_in_place(
    cfg: &mut Config,
    insp: &dyn Inspect,
    op: &Op,
) -> Result<(String, Touched, Snapshot), String> {
    let touched = scope::touched_by(cfg, op);
    let snap = Snapshot::capture(cfg, &touched);
    let r = match op {
        Op::Set { path, value } => set::set(cfg, insp, path, value),
        Op::Create { path, args } => create::create(cfg, path, args),
        Op::Delete { path } => delete::delete(cfg, path),
        Op::Link { src, dst } => link::link(cfg, src, dst),
    };
    match r.and_then(|msg| cfg.validate_touched(&touched, insp).map(|()| msg)) {
        Ok(msg) => Ok((msg, touched, snap)),
        Err(e) => {
            snap.restore(cfg);
            Err(e)
        }
    }
}

fn need_tpg<'c>(cfg: &'c mut Config, t: &str, g: u16) -> Result<&'c mut Tpg, String> {
    if cfg.target(t).is_none() {
        return Err(format!("iscsi/{t}: no such target"));
    }
    cfg.tpg_mut(t, g)
        .ok_or_else(|| format!("iscsi/{t}/tpgt_{g}: no such TPG"))
}

fn need_acl<'c>(cfg: &'c mut Config, t: &str, g: u16, i: &str) -> Result<&'c mut NodeAcl, String> {
    need_tpg(cfg, t, g)?
        .acl_mut(i)
        .ok_or_else(|| format!("iscsi/{t}/tpgt_{g}/acls/{i}: no such ACL"))
}

#[cfg(test)]
pub(crate) mod tests;
