//! The control socket (`ironlun_control::service`): each line of the input is one request line
//! as the daemon reads it, parsed into a [`Request`] and applied to the object tree the way
//! `Control::handle` does, without a runtime: the pure `tree` verbs (`ls`, `get`, `set`,
//! `create`, `delete`, `link`, the resize check) and the `alua show` report on the tree the
//! earlier lines built. `save`, `restore` (files) and the live PR requests are parsed only.
//!
//! Properties: every mutation that succeeds leaves a configuration that saves and loads back
//! unchanged (the daemon saves after each one and loads the file at its next start); the
//! checks of what a change touched (`tree::mutate_in_place`) let through nothing the
//! whole-tree validation refuses; a refused change, or batch, puts the tree back exactly.

use ironlun_control::alua;
use ironlun_control::model::{Config, DevKey, Snapshot};
use ironlun_control::service::Request;
use ironlun_control::tree::{self, Op};

use ironlun_control::runtime::EngineRuntime;

use crate::config::{round_trip, with_runtime};

/// Request lines of one input.
pub const MAX_LINES: usize = 32;

pub fn run(data: &[u8]) {
    with_runtime(|rt| {
        let mut cfg = Config::default();
        for line in data.split(|b| *b == b'\n').take(MAX_LINES) {
            let Ok(req) = serde_json::from_slice::<Request>(line) else {
                continue;
            };
            if let Some(next) = handle(&cfg, rt, req) {
                round_trip(&next, rt);
                cfg = next;
            }
        }
    });
}

/// The configuration `requests` build from an empty one (those refused change nothing).
pub fn build(requests: &[Request]) -> Config {
    with_runtime(|rt| {
        let mut cfg = Config::default();
        for r in requests {
            if let Some(next) = handle(&cfg, rt, r.clone()) {
                cfg = next;
            }
        }
        cfg
    })
}

/// The mutation a request makes, as the daemon reads it (`None`: it makes none here).
fn op_of(cfg: &Config, rt: &EngineRuntime, req: Request) -> Option<Op> {
    Some(match req {
        Request::Set { path, value } => match tree::resize_request(cfg, rt, &path, &value) {
            // A live resize needs a running backstore.
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) => Op::Set { path, value },
        },
        Request::Create { path, args } => Op::Create { path, args },
        Request::Delete { path } => Op::Delete { path },
        Request::Link { src, dst } => Op::Link { src, dst },
        _ => return None,
    })
}

/// `ops` made in order on a copy of `cfg`, as the daemon makes a change or a batch: the new
/// configuration, or `None` when one is refused (and then the copy is back to `cfg`).
fn apply(cfg: &Config, rt: &EngineRuntime, ops: &[Op]) -> Option<Config> {
    let mut next = cfg.clone();
    let mut snaps = Vec::new();
    for op in ops {
        match tree::mutate_in_place(&mut next, rt, op) {
            Ok((_, _, snap)) => snaps.push(snap),
            Err(_) => {
                Snapshot::Many(snaps).restore(&mut next);
                assert!(next == *cfg, "a refused change was not put back: {ops:?}");
                return None;
            }
        }
    }
    if let Err(e) = next.validate(rt) {
        panic!("the scoped checks let through what the whole tree refuses ({e}): {ops:?}");
    }
    Some(next)
}

/// One request against `cfg`: the new configuration if it changed it.
fn handle(cfg: &Config, rt: &EngineRuntime, req: Request) -> Option<Config> {
    let op = match req {
        Request::Batch { ops } => {
            let mut list = Vec::new();
            for r in ops {
                list.push(op_of(cfg, rt, r)?);
            }
            return apply(cfg, rt, &list);
        }
        Request::Ls { path } => {
            let _ = tree::ls(cfg, rt, &path);
            return None;
        }
        Request::Get { path } => {
            let _ = tree::get(cfg, rt, &path);
            return None;
        }
        r @ (Request::Set { .. }
        | Request::Create { .. }
        | Request::Delete { .. }
        | Request::Link { .. }) => op_of(cfg, rt, r)?,
        Request::AluaShow { path } => {
            if let Ok(key) = DevKey::parse(&path) {
                if let Some(so) = cfg.device(&key) {
                    let _ = alua::report(&key, cfg, so, &|_| None);
                }
            }
            return None;
        }
        Request::PrShow { path } | Request::PrClear { path, .. } => {
            let _ = DevKey::parse(&path);
            return None;
        }
        Request::Save { .. }
        | Request::Restore { .. }
        | Request::Apply { .. }
        | Request::ApplyConfig { .. }
        | Request::ShowConfig => return None,
        Request::Sessions { .. } | Request::Status | Request::Progress { .. } => return None,
    };
    apply(cfg, rt, &[op])
}
