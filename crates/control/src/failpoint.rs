//! Crash points in the persistence steps, for the crash-consistency tests
//! (crates/ironlun/tests/crash_points.rs). Only with the `failpoints` feature; without it
//! [`hit`] is an empty function the compiler removes.
//!
//! With the feature, the daemon reads the file named by `IRONLUN_FAILPOINTS` (if that variable
//! is set) at every point: when the file's first line is the point's name, the process aborts
//! there, as a crash would stop it. The file is read at each point, so a test can arm a point
//! once the daemon is up and its start-up saves are done.
//!
//! The points, for `kind` `config` (config.json) and `aptpl` (a device's APTPL file):
//! `<kind>.tmp-created` (temp file open, empty), `<kind>.tmp-half` (half the data written),
//! `<kind>.tmp-written` (all written, not synced), `<kind>.tmp-synced` (synced, not renamed),
//! `<kind>.renamed` (renamed over the file, directory not synced), `<kind>.dir-synced` (all
//! done, not yet answered), `<kind>.removed` (file unlinked, directory not synced),
//! `aptpl.dir-created` (the pr/ directory made, its parent not synced); for the journal
//! (`config.journal`, [`crate::journal`]): `journal.half` (half a record written),
//! `journal.written` (all written, not synced), `journal.synced` (synced, not yet answered),
//! and its fresh file as kind `journal-head`.

/// Abort here if `<kind>.<step>` is the armed point.
pub(crate) fn hit(kind: &str, step: &str) {
    if armed(kind, step) {
        eprintln!("ironlun: failpoint {kind}.{step}: aborting");
        std::process::abort();
    }
}

/// Is `<kind>.<step>` the armed point? (Asked on its own by the step that must do something
/// before aborting: writing half the data.)
#[cfg(feature = "failpoints")]
pub(crate) fn armed(kind: &str, step: &str) -> bool {
    let Some(file) = std::env::var_os("IRONLUN_FAILPOINTS") else {
        return false;
    };
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    text.lines()
        .next()
        .map(str::trim)
        .and_then(|l| l.split_once('.'))
        .is_some_and(|(k, s)| k == kind && s == step)
}

/// Is `<kind>.<step>` the armed point? Never: built without `failpoints`.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn armed(_kind: &str, _step: &str) -> bool {
    false
}
