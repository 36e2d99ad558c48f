//! docs/host.md describes the JSON output of every `ironlun host` command in a table between
//! `<!-- json NAME -->` and `<!-- end json -->`. This test runs each command with `--json`
//! against the real daemon and holds the tables to the output: every key a command prints is
//! listed, and every key listed without "(when …)" is printed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use support::{Daemon, BIN, TARGET};

const DOC: &str = include_str!("../../../docs/host.md");

/// `a.{b,c}.d` → `a.b.d`, `a.c.d` (any number of brace groups).
fn expand(key: &str) -> Vec<String> {
    let Some(open) = key.find('{') else {
        return vec![key.to_string()];
    };
    let close = open
        + key[open..]
            .find('}')
            .expect("unclosed brace in docs/host.md");
    key[open + 1..close]
        .split(',')
        .flat_map(|alt| expand(&format!("{}{}{}", &key[..open], alt, &key[close + 1..])))
        .collect()
}

/// (key, conditional) of each command's table.
fn documented() -> BTreeMap<String, Vec<(String, bool)>> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in DOC.lines() {
        if let Some(name) = line
            .strip_prefix("<!-- json ")
            .and_then(|r| r.strip_suffix(" -->"))
        {
            current = Some(name.to_string());
            out.insert(name.to_string(), Vec::new());
            continue;
        }
        if line.starts_with("<!-- end json") {
            current = None;
            continue;
        }
        let Some(cmd) = &current else { continue };
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let key = cells[1].trim_matches('`');
        let conditional = cells[2].starts_with("(when");
        for k in expand(key) {
            out.get_mut(cmd).unwrap().push((k, conditional));
        }
    }
    out
}

/// Every leaf path of a JSON value: `a.b`, `a[].c`; an empty array is `a[]`, a null or empty
/// object its own path.
fn flatten(v: &serde_json::Value, path: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(x, &p, out);
            }
        }
        serde_json::Value::Array(a) if !a.is_empty() => {
            for x in a {
                flatten(x, &format!("{path}[]"), out);
            }
        }
        serde_json::Value::Array(_) => {
            out.insert(format!("{path}[]"));
        }
        _ => {
            out.insert(path.to_string());
        }
    }
}

fn host_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["host", "--json", "--timeout", "5"];
    all.extend_from_slice(args);
    let out = std::process::Command::new(BIN).args(&all).output().unwrap();
    assert!(
        out.status.success(),
        "ironlun {all:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Is output path `p` described by the documented keys? (A list of numbers or strings,
/// `a[]`, is described by `a`.)
fn described(p: &str, doc: &BTreeSet<&str>) -> bool {
    doc.contains(p)
        || p.strip_suffix("[]").is_some_and(|list| doc.contains(list))
        || doc
            .iter()
            .any(|d| d.starts_with(&format!("{p}.")) || d.starts_with(&format!("{p}[]")))
}

#[test]
fn every_json_key_is_documented_and_every_documented_key_printed() {
    let d = Daemon::start_in(3450..3460);
    let url = format!("iscsi://127.0.0.1:{}/{TARGET}/0", d.port);
    let portal = format!("127.0.0.1:{}", d.port);
    let b = ["--initiator-name", "iqn.2026-11.org.ironlun:doc-b"];
    let mut outputs: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
    outputs.insert("discover", vec![host_json(&["discover", &portal])]);
    outputs.insert("inq", vec![host_json(&["inq", &url])]);
    outputs.insert("rtpg", vec![host_json(&["rtpg", &url])]);
    outputs.insert(
        "stpg",
        vec![host_json(&["stpg", &url, "-g", "0", "-s", "ano"])],
    );
    outputs.insert("paths", vec![host_json(&["paths", &url])]);
    let p = |extra: &[&str]| {
        let mut a = vec!["persist", "-n"];
        a.extend_from_slice(extra);
        a.push(&url);
        host_json(&a)
    };
    let pb = |extra: &[&str]| {
        let mut a = b.to_vec();
        a.extend_from_slice(&["persist", "-n"]);
        a.extend_from_slice(extra);
        a.push(&url);
        host_json(&a)
    };
    outputs.insert(
        "persist",
        vec![
            p(&["-o", "-G", "-S", "a1"]),
            pb(&["-o", "-G", "-S", "b1"]),
            p(&["-o", "-R", "-K", "a1", "-T", "1"]),
            p(&["-k"]),
            p(&["-r"]),
            p(&["-c"]),
            p(&["-s"]),
            // The holder moves its reservation to a third host.
            p(&[
                "-o",
                "-M",
                "-K",
                "a1",
                "-S",
                "c1",
                "-X",
                "iqn.2026-11.org.ironlun:doc-c",
            ]),
        ],
    );
    // serve-nbd's status socket, read by nbd-status.
    let sock = d.dir.path().join("nbd-status.sock");
    let mut nbd = std::process::Command::new(BIN)
        .args([
            "host",
            "serve-nbd",
            "--listen",
            "127.0.0.1:0",
            "--status-socket",
        ])
        .arg(&sock)
        .arg(&url)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !sock.exists() && t0.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = host_json(&["nbd-status", sock.to_str().unwrap()]);
    let _ = nbd.kill();
    let _ = nbd.wait();
    outputs.insert("nbd-status", vec![status]);
    let docs = documented();
    for cmd in docs.keys() {
        assert!(
            outputs.contains_key(cmd.as_str()),
            "docs/host.md has a JSON table for {cmd}, which this test does not run"
        );
    }
    let mut problems = Vec::new();
    for (cmd, outs) in &outputs {
        let table = docs
            .get(*cmd)
            .unwrap_or_else(|| panic!("docs/host.md has no JSON table for {cmd}"));
        let doc: BTreeSet<&str> = table.iter().map(|(k, _)| k.as_str()).collect();
        let mut printed = BTreeSet::new();
        for o in outs {
            flatten(o, "", &mut printed);
        }
        for p in &printed {
            if !described(p, &doc) {
                problems.push(format!(
                    "{cmd}: prints `{p}`, which docs/host.md does not list"
                ));
            }
        }
        for (k, conditional) in table {
            let seen = printed.iter().any(|p| {
                p == k
                    || p.starts_with(&format!("{k}."))
                    || p.starts_with(&format!("{k}[]"))
                    || k.starts_with(&format!("{p}."))
            });
            if !conditional && !seen {
                problems.push(format!(
                    "{cmd}: docs/host.md lists `{k}`, which it does not print"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn brace_groups_expand() {
    assert_eq!(expand("a.{b,c}.d"), vec!["a.b.d", "a.c.d"]);
    assert_eq!(expand("{x,y}.{1,2}"), vec!["x.1", "x.2", "y.1", "y.2"]);
    let mut s = BTreeSet::new();
    flatten(
        &serde_json::json!({"a": [{"b": 1}], "c": null, "d": []}),
        "",
        &mut s,
    );
    assert_eq!(s.into_iter().collect::<Vec<_>>(), vec!["a[].b", "c", "d[]"]);
}
