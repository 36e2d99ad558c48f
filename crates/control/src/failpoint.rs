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
//! `aptpl.dir-created` (the pr/ directory made, its parent not synced).

/// Abort here if `name` is the armed point.
#[cfg(feature = "failpoints")]
pub(crate) fn hit(name: &str) {
    let Some(file) = std::env::var_os("IRONLUN_FAILPOINTS") else {
        return;
    };
    let Ok(armed) = std::fs::read_to_string(file) else {
        return;
    };
    if armed.lines().next().map(str::trim) == Some(name) {
        eprintln!("ironlun: failpoint {name}: aborting");
        std::process::abort();
    }
}

/// Abort here if `name` is the armed point (never: built without `failpoints`).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn hit(_name: &str) {}

/// Is `name` armed? (Only for the step that must do something before aborting: writing
/// half the data.)
#[cfg(feature = "failpoints")]
pub(crate) fn armed(name: &str) -> bool {
    std::env::var_os("IRONLUN_FAILPOINTS")
        .and_then(|f| std::fs::read_to_string(f).ok())
        .is_some_and(|a| a.lines().next().map(str::trim) == Some(name))
}

/// Is `name` armed? (Never: built without `failpoints`.)
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn armed(_name: &str) -> bool {
    false
}
