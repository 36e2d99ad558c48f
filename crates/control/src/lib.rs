//! The control plane: the daemon-owned object tree (LIO configfs layout),
//! its persistence as `config.json`, and the control socket.
//!
//! Layers, from pure to effectful; each uses only those above it:
//! * [`names`] — iSCSI name rules (RFC 7143 §4.2.7).
//! * [`model`] — the tree's data ([`model::Config`]) and its validation: storage objects
//!   (`model/device.rs`), iSCSI targets (`model/iscsi.rs`), ALUA target port groups and LU
//!   groups with their attribute rules (`model/alua.rs`, SPC-4 §5.11.2, spelled with the one
//!   ALUA vocabulary `ironlun_scsi::alua`), the whole tree (`model/config.rs`).
//! * [`alua`] — the `ironlun alua show` report.
//! * [`persist`] — atomic, durable `config.json`; [`journal`] — each change appended to
//!   `config.journal` (durable before it is answered) and folded into `config.json`.
//! * [`lio`] — rtslib-fb's `saveconfig.json` and LIO's APTPL files converted to and from the
//!   model, with a report of what does not carry over.
//! * [`pr`] — persistent reservations (SPC-4 §5.13): the APTPL file
//!   (`<state-dir>/pr/aptpl_<serial>`), the `pr/` view and the `pr show` report.
//! * [`tree`] — paths: one grammar (`tree/path.rs`, [`tree::ObjPath`]) for `ls`/`get` and the
//!   mutations `set`/`create`/`delete`/`link` (one file each), each mutation returning a new
//!   validated [`model::Config`] or one line of error.
//! * [`runtime`] — making the engine (ironlun-engine) and the fabric (ironlun-fabric) match a
//!   config, with rollback when a step fails: devices, ports and ALUA in `runtime/`.
//! * [`service`] — the daemon side: one mutation at a time, validate → apply → save, and the
//!   line-delimited JSON protocol on `<state-dir>/control.sock`.

pub mod alua;
mod failpoint;
pub mod journal;
pub mod lio;
pub mod live;
pub mod model;
pub mod names;
pub mod persist;
pub mod plan;
pub mod pr;
pub mod progress;
pub mod runtime;
pub mod service;
pub mod status;
pub mod tree;
