//! Progress of long work (preallocating a file, a thick resize, an apply, import or restore
//! of many objects), reported while the request runs.
//!
//! A client that asks for it on its connection (`{"op":"progress","on":true}`) gets
//! `{"progress":{"task":…,"done":…,"total":…,"unit":"bytes"|"objects"}}` lines before the
//! response line of each request. The CLI asks only when its stderr is a terminal, so piped
//! output stays quiet (docs/cli.md, "Progress").

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// What a count is of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    #[default]
    Bytes,
    Objects,
}

/// One progress line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressMsg {
    /// What is being done, e.g. `preallocating /srv/disk0.img`.
    pub task: String,
    pub done: u64,
    pub total: u64,
    #[serde(default)]
    pub unit: Unit,
}

/// Where progress goes: nowhere (the default), or a sink set for one request.
#[derive(Clone, Default)]
pub struct Progress {
    sink: Option<Arc<dyn Fn(ProgressMsg) + Send + Sync>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.sink.is_some() {
            "Progress(on)"
        } else {
            "Progress(off)"
        })
    }
}

/// Reports of one task closer together than this are dropped (the last one never is).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

impl Progress {
    pub fn new(sink: impl Fn(ProgressMsg) + Send + Sync + 'static) -> Progress {
        Progress {
            sink: Some(Arc::new(sink)),
        }
    }

    pub fn is_on(&self) -> bool {
        self.sink.is_some()
    }

    /// A task whose reports go to this sink, at most one per [`MIN_INTERVAL`] besides the
    /// first and the last.
    pub fn task(&self, task: impl Into<String>, unit: Unit) -> Ticker {
        Ticker {
            progress: self.clone(),
            task: task.into(),
            unit,
            last: Mutex::new(None),
        }
    }
}

/// One task's reporter.
pub struct Ticker {
    progress: Progress,
    task: String,
    unit: Unit,
    /// When the last report went out, and its `done`.
    last: Mutex<Option<(Instant, u64)>>,
}

impl Ticker {
    /// Report `done` of `total`; true if a line went out.
    pub fn set(&self, done: u64, total: u64) -> bool {
        let Some(sink) = &self.progress.sink else {
            return false;
        };
        let now = Instant::now();
        {
            let mut last = self.last.lock();
            let due = match *last {
                None => true,
                Some((_, d)) if d == done => false,
                Some(_) if done >= total => true,
                Some((at, _)) => now.duration_since(at) >= MIN_INTERVAL,
            };
            if !due {
                return false;
            }
            *last = Some((now, done));
        }
        sink(ProgressMsg {
            task: self.task.clone(),
            done,
            total,
            unit: self.unit,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_and_last_reports_always_go_out_and_the_rest_are_spaced() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let p = Progress::new(move |m| s.lock().push((m.done, m.total)));
        let t = p.task("preallocating /x", Unit::Bytes);
        assert!(t.set(0, 100));
        for d in 1..100 {
            t.set(d, 100);
        }
        assert!(t.set(100, 100));
        assert!(!t.set(100, 100), "the same count twice is one report");
        let seen = seen.lock().clone();
        assert_eq!(seen.first(), Some(&(0, 100)));
        assert_eq!(seen.last(), Some(&(100, 100)));
        assert!(seen.len() < 10, "spaced by {MIN_INTERVAL:?}: {seen:?}");
        std::thread::sleep(MIN_INTERVAL);
        let t2 = p.task("again", Unit::Objects);
        assert!(t2.set(0, 3));
        std::thread::sleep(MIN_INTERVAL);
        assert!(t2.set(1, 3), "due after the interval");
    }

    #[test]
    fn off_reports_nothing() {
        let t = Progress::default().task("x", Unit::Bytes);
        assert!(!t.set(0, 1));
        assert!(!Progress::default().is_on());
    }

    #[test]
    fn lines_round_trip() {
        let m = ProgressMsg {
            task: "applying".into(),
            done: 3,
            total: 9,
            unit: Unit::Objects,
        };
        let text = serde_json::to_string(&m).expect("json");
        assert_eq!(
            text,
            r#"{"task":"applying","done":3,"total":9,"unit":"objects"}"#
        );
        assert_eq!(
            serde_json::from_str::<ProgressMsg>(&text).expect("parse"),
            m
        );
    }
}
