//! `config.json` loading (`ironlun_control::persist`): the input is the file's contents, given
//! to [`persist::from_json`], the parse-and-validate step of [`persist::load`], with the daemon's own schema (which only
//! reads the file first; a file that is not UTF-8 fails there with an error, before parsing).
//!
//! Properties: a configuration that loads renders as a tree (`ls`) and saves to JSON that
//! loads back to the same configuration.

use std::path::Path;

use ironlun_control::model::Config;
use ironlun_control::persist;
use ironlun_control::runtime::EngineRuntime;
use ironlun_control::tree;
use ironlun_fabric::Fabric;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    with_runtime(|rt| {
        let Ok(cfg) = persist::from_json(text, rt) else {
            return;
        };
        let _ = tree::ls(&cfg, rt, "");
        let _ = tree::render(&cfg, rt);
        round_trip(&cfg, rt);
    });
}

/// What the daemon saves must load back unchanged.
pub(crate) fn round_trip(cfg: &Config, rt: &EngineRuntime) {
    let saved = persist::to_json(cfg);
    match persist::from_json(&saved, rt) {
        Ok(again) => assert!(&again == cfg, "a saved config loads back unchanged"),
        Err(e) => panic!("a saved config must load: {e}\n{saved}"),
    }
}

/// The daemon's own runtime with nothing applied: the fabric's real `param/` schema and the
/// engine's view of devices (none running). One per thread, built on first use.
pub(crate) fn with_runtime<T>(f: impl FnOnce(&EngineRuntime) -> T) -> T {
    thread_local! {
        static RT: Option<(tokio::runtime::Runtime, EngineRuntime)> = {
            let rt = tokio::runtime::Builder::new_current_thread().build().ok();
            rt.map(|rt| {
                let er = {
                    let _in = rt.enter();
                    EngineRuntime::new(Fabric::new(), Path::new("/nonexistent/fuzz"))
                };
                (rt, er)
            })
        };
    }
    // The harness's own setup, not input: if it cannot be built, nothing is tested.
    RT.with(|x| f(&x.as_ref().expect("the daemon's runtime builds").1))
}
