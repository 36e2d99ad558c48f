//! Harnesses of the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer): each target's body is one
//! call of a function here, so every input libFuzzer found (the corpora in `fuzz/corpus/`) is
//! replayed on stable by this crate's `tests/replay.rs`. Each harness must never panic on
//! any input; where it can check more than "no panic", it asserts the property (named at the
//! assert).
//!
//! * [`pdu`]: iSCSI framing and every PDU's decoding, with each digest setting.
//! * [`login`]: whole login sequences against the fabric's login phase, in memory.
//! * [`engine`]: CDB sequences and task management from several I_T nexuses.
//! * [`config`]: `config.json` parsing and validation.
//! * [`control`]: control socket request lines applied to the object tree.

pub mod config;
pub mod control;
pub mod engine;
pub mod login;
pub mod pdu;
pub mod seeds;

mod input;

/// A harness: one fuzz input in, a panic if it found a bug.
pub type Harness = fn(&[u8]);

/// The fuzz targets, by name: the folder of each corpus and the harness that replays it.
pub const TARGETS: &[(&str, Harness)] = &[
    ("pdu", pdu::run),
    ("login", login::run),
    ("engine", engine::run),
    ("config", config::run),
    ("control", control::run),
];
