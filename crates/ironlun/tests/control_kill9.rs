//! `kill -9` during a stream of control changes (issue 16): a client sends changes of every
//! kind (devices, TPG LUNs, ACLs, mapped LUNs, attributes, deletes that cascade, batches, and
//! whole-tree changes that fold the journal into config.json) as fast as the daemon answers;
//! the daemon is SIGKILLed at a random moment and restarted. Every change answered OK must be
//! there, and the one in flight either wholly there or wholly absent (a batch or a cascade is
//! never half-applied). `IRONLUN_CONTROL_KILLS=N` rounds (default 10, the CI variant; the
//! documented long run is 100; `IRONLUN_SEED` replays a printed seed). Ports 4390-4394.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

use ironlun_control::service::{self, Request};
use support::*;

const PORTS: Range<u16> = 4390..4395;
const HOST: &str = "iqn.2026-12.org.ironlun.kill:h";
const OTHER: &str = "iqn.2026-12.org.ironlun.kill:t";

/// The objects this test makes, as it believes them to be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    /// `core/rd_mcp_1/<name>` → emulate_tpu.
    devs: BTreeMap<String, bool>,
    /// TPG LUN (≥ 100) → device name.
    luns: BTreeMap<u64, String>,
    /// ACL number → mapped LUN → TPG LUN.
    acls: BTreeMap<u64, BTreeMap<u64, u64>>,
    /// Other targets (whole-tree changes).
    targets: BTreeSet<u64>,
}

impl Model {
    fn drop_lun(&mut self, l: u64) {
        self.luns.remove(&l);
        for m in self.acls.values_mut() {
            m.retain(|_, t| *t != l);
        }
    }
}

/// The daemon's tree, read back as the model.
async fn observed(d: &Daemon) -> Model {
    let r = service::request(&d.state_dir().join("control.sock"), &Request::ShowConfig)
        .await
        .expect("show config");
    let cfg: serde_json::Value = serde_json::from_str(&r.output).expect("config json");
    let mut m = Model::default();
    for so in cfg["storage_objects"].as_array().expect("objects") {
        if so["hba"] == 1 {
            let tpu = so["attributes"]["emulate_tpu"].as_u64() == Some(1);
            m.devs
                .insert(so["name"].as_str().expect("name").into(), tpu);
        }
    }
    for t in cfg["targets"].as_array().expect("targets") {
        let wwn = t["wwn"].as_str().expect("wwn");
        if let Some(n) = wwn.strip_prefix(OTHER) {
            m.targets.insert(n.parse().expect("n"));
        }
        if wwn != TARGET {
            continue;
        }
        let g = &t["tpgs"][0];
        for l in g["luns"].as_array().expect("luns") {
            let i = l["index"].as_u64().expect("index");
            if i >= 100 {
                let dev = l["storage_object"].as_str().expect("so");
                m.luns
                    .insert(i, dev.trim_start_matches("core/rd_mcp_1/").into());
            }
        }
        for a in g["node_acls"].as_array().expect("acls") {
            let Some(n) = a["node_wwn"].as_str().and_then(|w| w.strip_prefix(HOST)) else {
                continue;
            };
            let mapped = (a["mapped_luns"].as_array().expect("mapped").iter())
                .map(|x| {
                    (
                        x["index"].as_u64().expect("i"),
                        x["tpg_lun"].as_u64().expect("t"),
                    )
                })
                .collect();
            m.acls.insert(n.parse().expect("n"), mapped);
        }
    }
    m
}

fn create(path: String, args: &[String]) -> Request {
    Request::Create {
        path,
        args: args.to_vec(),
    }
}

fn pick<T: Clone>(rng: &mut Rng, it: impl Iterator<Item = T>) -> Option<T> {
    let v: Vec<T> = it.collect();
    (!v.is_empty()).then(|| v[rng.below(v.len() as u64) as usize].clone())
}

/// One random change valid on `m`, and `m` as it will be once the change is made.
fn next_change(rng: &mut Rng, m: &Model, n: &mut u64) -> (Request, Model) {
    *n += 1;
    let mut after = m.clone();
    let dev_path = |d: &str| format!("core/rd_mcp_1/{d}");
    let lun_path = |l: u64| format!("{TPG}/lun/lun_{l}");
    let acl_path = |a: u64| format!("{TPG}/acls/{HOST}{a}");
    loop {
        match rng.below(11) {
            0 | 1 => {
                let d = format!("d{n}");
                after.devs.insert(d.clone(), false);
                return (create(dev_path(&d), &["size=1M".into()]), after);
            }
            2 => {
                let Some(d) = pick(rng, m.devs.keys().cloned()) else {
                    continue;
                };
                let l = 100 + *n;
                after.luns.insert(l, d.clone());
                return (
                    create(lun_path(l), &[format!("dev={}", dev_path(&d))]),
                    after,
                );
            }
            3 => {
                after.acls.insert(*n, BTreeMap::new());
                return (create(acl_path(*n), &[]), after);
            }
            4 => {
                let (Some(a), Some(l)) = (
                    pick(rng, m.acls.keys().copied()),
                    pick(rng, m.luns.keys().copied()),
                ) else {
                    continue;
                };
                let mapped = (0..).find(|i| !m.acls[&a].contains_key(i)).expect("free");
                after.acls.get_mut(&a).expect("acl").insert(mapped, l);
                let path = format!("{}/lun_{mapped}", acl_path(a));
                return (create(path, &[format!("tpg_lun={l}")]), after);
            }
            5 => {
                let Some((d, tpu)) = pick(rng, m.devs.iter().map(|(k, v)| (k.clone(), *v))) else {
                    continue;
                };
                after.devs.insert(d.clone(), !tpu);
                let path = format!("{}/attrib/emulate_tpu", dev_path(&d));
                return (
                    Request::Set {
                        path,
                        value: u8::from(!tpu).to_string(),
                    },
                    after,
                );
            }
            6 => {
                // The device and, cascading, its LUNs and the mapped LUNs on them.
                let Some(d) = pick(rng, m.devs.keys().cloned()) else {
                    continue;
                };
                after.devs.remove(&d);
                for l in m.luns.iter().filter(|(_, x)| **x == d).map(|(l, _)| *l) {
                    after.drop_lun(l);
                }
                return (Request::Delete { path: dev_path(&d) }, after);
            }
            7 => {
                let Some(l) = pick(rng, m.luns.keys().copied()) else {
                    continue;
                };
                after.drop_lun(l);
                return (Request::Delete { path: lun_path(l) }, after);
            }
            8 => {
                let Some(a) = pick(rng, m.acls.keys().copied()) else {
                    continue;
                };
                after.acls.remove(&a);
                return (Request::Delete { path: acl_path(a) }, after);
            }
            9 => {
                // A batch: a device exported and mapped to a new ACL, all or nothing.
                let (d, l, a) = (format!("b{n}"), 100 + *n, *n);
                after.devs.insert(d.clone(), false);
                after.luns.insert(l, d.clone());
                after.acls.insert(a, BTreeMap::from([(0, l)]));
                let ops = vec![
                    create(dev_path(&d), &["size=1M".into()]),
                    create(lun_path(l), &[format!("dev={}", dev_path(&d))]),
                    create(acl_path(a), &[]),
                    create(format!("{}/lun_0", acl_path(a)), &[format!("tpg_lun={l}")]),
                ];
                return (Request::Batch { ops }, after);
            }
            _ => {
                // A whole-tree change: config.json is written whole and the journal restarts.
                let path = |t: u64| format!("iscsi/{OTHER}{t}");
                return match pick(rng, m.targets.iter().copied()) {
                    Some(t) if rng.below(2) == 0 => {
                        after.targets.remove(&t);
                        (Request::Delete { path: path(t) }, after)
                    }
                    _ => {
                        after.targets.insert(*n);
                        (create(path(*n), &[]), after)
                    }
                };
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_change_survives_kill9_and_none_is_half_applied() {
    let rounds: usize = std::env::var("IRONLUN_CONTROL_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed = std::env::var("IRONLUN_SEED")
        .ok()
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("control_kill9: seed 0x{seed:x} (IRONLUN_SEED replays it), {rounds} rounds");
    let mut rng = Rng(seed);
    let mut d = Daemon::start_in(PORTS);
    let mut model = Model::default();
    let mut n = 0;
    let (mut answered, mut in_flight_landed) = (0, 0);
    for round in 0..rounds {
        let sock = d.state_dir().join("control.sock");
        let pid = d.pid() as i32;
        let delay = Duration::from_millis(30 + rng.below(400));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            // SAFETY: kill(2) on the daemon this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
        let pending = loop {
            let (req, after) = next_change(&mut rng, &model, &mut n);
            match service::request(&sock, &req).await {
                Ok(r) if r.ok => {
                    model = after;
                    answered += 1;
                }
                Ok(r) => panic!("round {round}: {req:?} refused: {}", r.error),
                Err(_) => break Some(after),
            }
        };
        killer.join().expect("killer");
        d.wait_exit();
        d.restart();
        let got = observed(&d).await;
        if Some(&got) == pending.as_ref() && got != model {
            in_flight_landed += 1;
            model = got;
        } else {
            assert_eq!(got, model, "round {round} (seed 0x{seed:x}): an answered change was lost or the one in flight half-applied; in flight: {pending:?}");
        }
    }
    eprintln!(
        "control_kill9: {rounds} kills, {answered} changes answered OK and all kept; the change in flight landed whole {in_flight_landed} time(s), else not at all; at the end {} devices, {} LUNs, {} ACLs",
        model.devs.len(),
        model.luns.len(),
        model.acls.len()
    );
}
