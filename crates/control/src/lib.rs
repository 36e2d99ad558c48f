//! The control plane: the daemon-owned object tree (LIO configfs layout, research lio.md §5),
//! its persistence as `config.json`, and the control socket.
//!
//! Layers, from pure to effectful:
//! * [`names`] — iSCSI name rules (RFC 7143 §4.2.7).
//! * [`model`] — the tree's data ([`model::Config`]) and whole-tree validation.
//! * [`alua`] — target port groups and LU groups: saved form, attribute rules, `alua show`.
//! * [`tree`] — paths: `ls`/`get` and the mutations `set`/`create`/`delete`/`link`, each
//!   returning a new validated [`model::Config`] or one line of error.
//! * [`persist`] — atomic, durable `config.json`.
//! * [`pr`] — persistent reservations: the APTPL file (`<state-dir>/pr/aptpl_<serial>`), the
//!   `pr/` view and the `pr show` report.
//! * [`runtime`] — making the engine (ironlun-engine) and the fabric (ironlun-fabric) match a
//!   config, with rollback when a step fails.
//! * [`service`] — the daemon side: one mutation at a time, validate → apply → save, and the
//!   line-delimited JSON protocol on `<state-dir>/control.sock`.

pub mod alua;
pub mod model;
pub mod names;
pub mod persist;
pub mod pr;
pub mod runtime;
pub mod service;
pub mod tree;
