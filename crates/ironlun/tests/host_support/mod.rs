//! Shared helpers of host_ironlun and host_tgtd: the real `ironlun host …` binary run as a
//! person or a script would run it (text, then `--json` parsed with serde_json), the checks
//! every command's outcome gets (exit status 0 and nothing on stderr; or exit status 2 and
//! exactly one line on stderr), and small JSON and text look-ups.
//!
//! CHAP variables of the environment the tests run in are removed from every run, so only
//! what a test gives reaches the command.

// Each test binary uses only some of these helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_ironlun");

/// The environment variables the host commands read CHAP credentials from.
pub const CHAP_ENV: [&str; 6] = [
    "IRONLUN_CHAP_USER",
    "IRONLUN_CHAP_SECRET",
    "LIBISCSI_CHAP_PASSWORD",
    "IRONLUN_CHAP_TARGET_USER",
    "IRONLUN_CHAP_TARGET_SECRET",
    "LIBISCSI_CHAP_TARGET_PASSWORD",
];

/// One `ironlun host ARGS…` run with `env` added to a CHAP-free environment.
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.arg("host").args(args);
    for v in CHAP_ENV {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run ironlun host")
}

/// stdout and stderr as text.
pub fn texts(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A run that must succeed: exit status 0, nothing on stderr; its stdout.
pub fn ok_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let o = run_env(args, env);
    let (out, err) = texts(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "ironlun host {args:?}: exit {:?}\nstdout:\n{out}\nstderr:\n{err}",
        o.status
    );
    assert!(
        err.is_empty(),
        "ironlun host {args:?}: stderr on success: {err}"
    );
    out
}

pub fn ok(args: &[&str]) -> String {
    ok_env(args, &[])
}

/// The same command with `--json`: exit status 0 and one JSON object on stdout.
pub fn ok_json_env(args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = ok_env(&a, env);
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("ironlun host {a:?}: not JSON ({e}):\n{out}"));
    assert!(v.is_object(), "ironlun host {a:?}: not an object: {v}");
    v
}

pub fn ok_json(args: &[&str]) -> Value {
    ok_json_env(args, &[])
}

/// A run that must fail the way every host failure does: exit status 2 and exactly one line
/// on stderr (`ironlun host: …`); that line. Nothing but that line may be printed.
pub fn refused_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let o = run_env(args, env);
    let (out, err) = texts(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "ironlun host {args:?}: want exit 2, got {:?}\nstdout:\n{out}\nstderr:\n{err}",
        o.status
    );
    assert_eq!(
        err.lines().count(),
        1,
        "ironlun host {args:?}: not one line on stderr:\n{err}"
    );
    assert!(
        err.starts_with("ironlun host: "),
        "ironlun host {args:?}: {err}"
    );
    err.trim_end().to_string()
}

pub fn refused(args: &[&str]) -> String {
    refused_env(args, &[])
}

/// A refusal that must also hold in `--json` mode: the same one line, no JSON on stdout.
pub fn refused_both(args: &[&str]) -> String {
    let line = refused(args);
    let mut a = args.to_vec();
    a.push("--json");
    let o = run_env(&a, &[]);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(2), "{a:?}: {err}");
    assert_eq!(err.trim_end(), line, "{a:?}: a different line with --json");
    assert!(out.trim().is_empty(), "{a:?}: stdout on failure: {out}");
    line
}

/// `v[k1][k2]…` for object keys and array indexes given as numbers; Null when absent.
pub fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) if cur.is_array() => &cur[i],
            _ => &cur[*p],
        };
    }
    cur
}

/// Every value (at any depth) stored under a key named `key`.
pub fn all_under<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    fn walk<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if k == key {
                        out.push(x);
                    }
                    walk(x, key, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, key, out)),
            _ => {}
        }
    }
    walk(v, key, &mut out);
    out
}

/// Every string (at any depth) in `v`, keys excluded.
pub fn all_strings(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

/// Does some string of `v` contain `needle` (ASCII case ignored)?
pub fn json_mentions(v: &Value, needle: &str) -> bool {
    let n = needle.to_ascii_lowercase();
    all_strings(v)
        .iter()
        .any(|s| s.to_ascii_lowercase().contains(&n))
}

/// Does `text` contain `needle`, ASCII case ignored?
pub fn mentions(text: &str, needle: &str) -> bool {
    text.to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

/// A JSON number as u64 (fails the test otherwise).
pub fn num(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what}: not a number: {v}"))
}

/// The first line of `text` containing every one of `words`, if any.
pub fn line_with<'a>(text: &'a str, words: &[&str]) -> Option<&'a str> {
    text.lines().find(|l| words.iter().all(|w| l.contains(w)))
}
