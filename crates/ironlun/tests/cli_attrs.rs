//! CLI-level tests of attributes on their schema (crates/engine/src/core/device/attrs.rs,
//! crates/control/src/model/attrib.rs): a value the declaration refuses is one line naming
//! the attribute and changes nothing, live or in the saved tree; a saved config.json the
//! schema refuses stops the daemon before anything is applied. The real daemon on ports
//! 3790-3799.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ops::Range;

use support::{Daemon, RAMDISK, TPG};

const PORTS: Range<u16> = 3790..3800;

#[test]
fn an_attribute_lio_has_but_ironlun_fixes_takes_only_its_value() {
    let d = Daemon::start_in(PORTS);
    let attr = format!("{RAMDISK}/attrib/emulate_dpo");
    let before = (d.cli(&["ls"]), d.saved_files());
    let err = d.refused(&["set", &attr, "1"]);
    assert!(
        err.contains("emulate_dpo") && err.contains("only 0"),
        "{err}"
    );
    assert_eq!(
        (d.cli(&["ls"]), d.saved_files()),
        before,
        "a refused value changes nothing"
    );
    assert_eq!(d.cli(&["get", &attr]).trim(), "0");
    d.cli(&["set", &attr, "0"]);
    assert_eq!(d.cli(&["get", &attr]).trim(), "0");
}

#[test]
fn tpg_attributes_are_refused_by_their_declaration() {
    let d = Daemon::start_in(PORTS);
    for (name, bad, needle) in [
        ("authentication", "2", "expected 0 or 1"),
        ("nopin_timeout", "2", "0 (no NOP-In pings) or 3-60 seconds"),
        ("nopin_response_timeout", "x", "3-60 seconds"),
        (
            "frobnicate",
            "1",
            "unknown attribute; valid: authentication",
        ),
    ] {
        let err = d.refused(&["set", &format!("{TPG}/attrib/{name}"), bad]);
        assert!(err.contains(name) && err.contains(needle), "{err}");
    }
    d.cli(&["set", &format!("{TPG}/attrib/nopin_timeout"), "30"]);
    assert_eq!(
        d.cli(&["get", &format!("{TPG}/attrib/nopin_timeout")])
            .trim(),
        "30"
    );
}

/// A saved device attribute the schema refuses (unknown, or a value the declaration does not
/// take) stops the daemon with one line naming it.
#[test]
fn a_saved_attribute_the_schema_refuses_stops_the_daemon() {
    for (name, value) in [("emulate_dpo", 1), ("no_such_attribute", 1)] {
        let mut d = Daemon::start_in(PORTS);
        d.stop();
        let path = d.state_dir().join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("config")).expect("json");
        cfg["storage_objects"][0]["attributes"][name] = value.into();
        std::fs::write(&path, serde_json::to_vec_pretty(&cfg).expect("json")).expect("write");
        support::serve_refuses_config(&d.state_dir(), name);
    }
}
