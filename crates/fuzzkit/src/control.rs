//! The control socket (`ironlun_control::service`): each line of the input is one request line
//! as the daemon reads it, parsed into a [`Request`] and applied to the object tree the way
//! `Control::handle` does, without a runtime: the pure `tree` verbs (`ls`, `get`, `set`,
//! `create`, `delete`, `link`, the resize check) and the `alua show` report on the tree the
//! earlier lines built. `save`, `restore` (files) and the live PR requests are parsed only.
//!
//! Properties: every mutation that succeeds leaves a configuration that saves and loads back
//! unchanged (the daemon saves after each one and loads the file at its next start).

use ironlun_control::alua;
use ironlun_control::model::{Config, DevKey};
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

/// One request against `cfg`: the new configuration if it changed it.
fn handle(cfg: &Config, rt: &EngineRuntime, req: Request) -> Option<Config> {
    let op = match req {
        Request::Ls { path } => {
            let _ = tree::ls(cfg, rt, &path);
            return None;
        }
        Request::Get { path } => {
            let _ = tree::get(cfg, rt, &path);
            return None;
        }
        Request::Set { path, value } => match tree::resize_request(cfg, rt, &path, &value) {
            // A live resize needs a running backstore.
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) => Op::Set { path, value },
        },
        Request::Create { path, args } => Op::Create { path, args },
        Request::Delete { path } => Op::Delete { path },
        Request::Link { src, dst } => Op::Link { src, dst },
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
    tree::mutate(cfg, rt, &op).ok().map(|(next, _)| next)
}
