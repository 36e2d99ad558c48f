//! The daemon side of the control plane: one mutation at a time, each made in place and
//! validated where it touched ([`crate::tree::mutate_in_place`]), applied there
//! ([`Runtime::apply_touched`]) and recorded durably ([`crate::journal`]) before it is
//! acknowledged, or put back; requests that replace the tree (restore, apply) are validated,
//! applied and saved whole. And the control socket protocol.
//!
//! Protocol on `<state-dir>/control.sock` (mode 0600): one JSON request per line, one JSON
//! response per line, any number of requests per connection. Only root and the daemon's own
//! user are served (peer credentials, [`SocketPolicy`]); a request line must arrive within
//! 10 s and be at most 64 MiB (a batch or an inline config of tens of thousands of objects),
//! else the client gets one refusal line and the connection closes.
//!
//! ```text
//! {"op":"ls","path":"iscsi"}            {"op":"get","path":"…"}      {"op":"set","path":"…","value":"1"}
//! {"op":"create","path":"…","args":["size=1G"]}   {"op":"delete","path":"…"}
//! {"op":"link","src":"…","dst":"…"}     {"op":"save","file":null|"/abs"}  {"op":"restore","file":"/abs"}
//! {"op":"apply","file":"/abs","dry_run":false}   {"op":"batch","ops":[{"op":"create",…},…]}
//! {"op":"pr_show","path":"core/…/<dev>"}  {"op":"pr_clear","path":"core/…/<dev>","force":true}
//! {"op":"alua_show","path":"core/…/<dev>"}  {"op":"sessions","detail":false}  {"op":"status"}
//! {"op":"progress","on":true}
//! → {"ok":true,"output":"…"}  |  {"ok":false,"error":"one line","code":2}
//! ```
//! After `{"op":"progress","on":true}`, a request doing long work (a thick `create` or
//! resize, `apply`, `restore`, an inline apply) is preceded by progress lines
//! `{"progress":{"task":"…","done":N,"total":M,"unit":"bytes"|"objects"}}` (at most one per
//! 100 ms per task, the first and last always; [`crate::progress`]).
//! `code` is the CLI exit status: 2 = refused (bad input or could not be applied; nothing
//! changed), 1 = the daemon failed (e.g. the config could not be saved).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use ironlun_engine::scsi::alua::status_code;

use crate::alua;
use crate::journal::Store;
use crate::model::alua::parse_group_state;
use crate::model::{Config, DevKey, Snapshot, Touched};
use crate::persist;
use crate::pr;
use crate::progress::Progress;
use crate::runtime::Runtime;
use crate::tree::{self, Op};

pub use crate::persist::CONFIG_FILE;
/// Name of the control socket inside the state directory.
pub const SOCKET_FILE: &str = "control.sock";
/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 << 20;

/// A control request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Ls {
        #[serde(default)]
        path: String,
    },
    Get {
        path: String,
    },
    Set {
        path: String,
        value: String,
    },
    Create {
        path: String,
        #[serde(default)]
        args: Vec<String>,
    },
    Delete {
        path: String,
    },
    Link {
        src: String,
        dst: String,
    },
    Save {
        #[serde(default)]
        file: Option<String>,
    },
    Restore {
        file: String,
    },
    /// Several `set`, `create`, `delete` and `link` requests as one change: made in order,
    /// validated, applied and recorded once; all of them or none.
    Batch {
        ops: Vec<Request>,
    },
    /// Make the running tree equal to a config file with the fewest changes, and print the
    /// plan ([`crate::plan`]); with `dry_run`, only the plan.
    Apply {
        file: String,
        #[serde(default)]
        dry_run: bool,
    },
    /// [`Request::Apply`] with the config inline (`ironlun config import-lio`, which converts
    /// on the client side). `aptpl`: persistent reservation states for devices this apply
    /// creates, written to their APTPL files before the devices are created.
    ApplyConfig {
        config: Box<Config>,
        #[serde(default)]
        aptpl: Vec<crate::lio::aptpl::AptplImport>,
        #[serde(default)]
        dry_run: bool,
    },
    /// The running config as `config.json` text (`ironlun config export-lio` converts it on
    /// the client side).
    ShowConfig,
    /// The persistent reservation report of a device.
    PrShow {
        path: String,
    },
    /// Drop a device's registrations and reservation; refused unless `force`.
    PrClear {
        path: String,
        #[serde(default)]
        force: bool,
    },
    /// The ALUA report of a device: every target port group and its member ports.
    AluaShow {
        path: String,
    },
    /// Open sessions, as targetcli's `sessions` (`detail`: `sessions detail`).
    Sessions {
        #[serde(default)]
        detail: bool,
    },
    /// One screen: portals, targets, LUs, sessions, PR and ALUA in brief.
    Status,
    /// Progress lines on this connection from now on (`on`) or not ([`crate::progress`]);
    /// handled by the socket, not the tree.
    Progress {
        #[serde(default = "yes")]
        on: bool,
    },
}

/// Give the free pages of the heap back to the system: a request that built or replaced
/// thousands of objects leaves many small freed blocks that malloc keeps otherwise.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; no pointer is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn yes() -> bool {
    true
}

/// A control response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// Suggested exit status on error (2 refused, 1 failure).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl Response {
    pub fn ok(output: impl Into<String>) -> Response {
        Response {
            ok: true,
            output: output.into(),
            error: String::new(),
            code: 0,
        }
    }
    /// Refused: nothing changed (exit status 2).
    pub fn refused(error: impl Into<String>) -> Response {
        Response {
            ok: false,
            output: String::new(),
            error: one_line(error.into()),
            code: 2,
        }
    }
    /// The daemon failed (exit status 1).
    pub fn failed(error: impl Into<String>) -> Response {
        Response {
            ok: false,
            output: String::new(),
            error: one_line(error.into()),
            code: 1,
        }
    }
}

fn one_line(s: String) -> String {
    if s.contains('\n') {
        s.split('\n')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        s
    }
}

/// The object tree, owned by the daemon.
pub struct Control<R: Runtime> {
    cfg: Config,
    rt: R,
    state_dir: PathBuf,
    /// `config.json` and its journal.
    store: Store,
    /// Where the request being handled reports progress (off outside
    /// [`Control::handle_with_progress`]).
    progress: Progress,
}

impl<R: Runtime> Control<R> {
    /// Bring up `initial` on `rt` and save it as `<state_dir>/config.json` (with an empty
    /// journal: [`crate::journal`]).
    pub async fn start(mut rt: R, state_dir: &Path, initial: Config) -> Result<Control<R>, String> {
        initial.validate(&rt)?;
        rt.apply(&initial).await?;
        let mut control = Control {
            cfg: initial,
            rt,
            state_dir: state_dir.to_path_buf(),
            store: Store::new(state_dir),
            progress: Progress::default(),
        };
        control.store.fold(&control.cfg)?;
        Ok(control)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn runtime(&self) -> &R {
        &self.rt
    }
    pub fn config_path(&self) -> PathBuf {
        self.store.config_path().to_path_buf()
    }

    /// [`Control::handle`], long work reporting its progress to `progress`.
    pub async fn handle_with_progress(&mut self, req: Request, progress: Progress) -> Response {
        self.progress = progress;
        let resp = self.handle(req).await;
        self.progress = Progress::default();
        resp
    }

    /// [`Control::commit`] with the runtime reporting its progress per object (for the
    /// requests that replace the whole tree: `restore`, `apply`, an inline apply).
    async fn commit_showing_progress(&mut self, new: Config) -> Result<(), Response> {
        self.rt.set_progress(self.progress.clone());
        let r = self.commit(new).await;
        self.rt.set_progress(Progress::default());
        r
    }

    /// Handle one request. Mutations are serialised by `&mut self`.
    pub async fn handle(&mut self, req: Request) -> Response {
        let big = matches!(
            req,
            Request::Batch { .. }
                | Request::Apply { .. }
                | Request::ApplyConfig { .. }
                | Request::Restore { .. }
        );
        let resp = self.handle_one(req).await;
        // A listing of thousands of objects built its whole tree of nodes too.
        if big || resp.output.len() > 1 << 20 {
            trim_heap();
        }
        resp
    }

    async fn handle_one(&mut self, req: Request) -> Response {
        match req {
            Request::Ls { path } => {
                tree::ls(&self.cfg, &self.rt, &path).map_or_else(Response::refused, Response::ok)
            }
            Request::Get { path } => {
                tree::get(&self.cfg, &self.rt, &path).map_or_else(Response::refused, Response::ok)
            }
            Request::Set { path, value } => {
                match tree::resize_request(&self.cfg, &self.rt, &path, &value) {
                    Ok(Some(r)) => self.resize(r).await,
                    Ok(None) => self.mutate(Op::Set { path, value }).await,
                    Err(e) => Response::refused(e),
                }
            }
            Request::Create { path, args } => self.mutate(Op::Create { path, args }).await,
            Request::Delete { path } => self.mutate(Op::Delete { path }).await,
            Request::Link { src, dst } => self.mutate(Op::Link { src, dst }).await,
            Request::Batch { ops } => self.batch(ops).await,
            Request::Save { file } => {
                let path = match file {
                    Some(f) if !Path::new(&f).is_absolute() => {
                        return Response::refused(format!(
                            "config save: '{f}' must be an absolute path"
                        ))
                    }
                    Some(f) => PathBuf::from(f),
                    None => {
                        let path = self.config_path();
                        return match self.store.fold(&self.cfg) {
                            Ok(()) => Response::ok(format!("saved {}", path.display())),
                            Err(e) => Response::refused(e),
                        };
                    }
                };
                match persist::save(&path, &self.cfg) {
                    Ok(()) => Response::ok(format!("saved {}", path.display())),
                    Err(e) => Response::refused(e),
                }
            }
            Request::Restore { file } => {
                if !Path::new(&file).is_absolute() {
                    return Response::refused(format!(
                        "config restore: '{file}' must be an absolute path"
                    ));
                }
                match persist::load(Path::new(&file), &self.rt) {
                    Ok(new) => match self.commit_showing_progress(new).await {
                        Ok(()) => Response::ok(format!("restored {file}")),
                        Err(r) => r,
                    },
                    Err(e) => Response::refused(format!("{e}; nothing changed")),
                }
            }
            Request::Apply { file, dry_run } => self.apply_file(&file, dry_run).await,
            Request::ShowConfig => Response::ok(persist::to_json(&self.cfg)),
            Request::ApplyConfig {
                config,
                aptpl,
                dry_run,
            } => self.apply_config(*config, &aptpl, dry_run).await,
            Request::PrShow { path } => match self.pr_view(&path) {
                Ok((key, view)) => {
                    let serial = self
                        .cfg
                        .device(&key)
                        .map(|s| s.wwn.clone())
                        .unwrap_or_default();
                    Response::ok(pr::report(&key, &serial, &view, &self.cfg.luns_of(&key)))
                }
                Err(e) => Response::refused(e),
            },
            Request::PrClear { path, force } => self.pr_clear(&path, force),
            Request::AluaShow { path } => self.alua_show(&path),
            Request::Sessions { detail } => Response::ok(crate::status::sessions(
                &self.cfg,
                &self.rt.sessions(),
                detail,
            )),
            Request::Status => Response::ok(crate::status::status(
                &self.cfg,
                &self.rt,
                &self.rt.sessions(),
            )),
            Request::Progress { .. } => {
                Response::refused("progress: only on the control socket (it is per connection)")
            }
        }
    }

    /// The device at `path` and its live PR state; Err (refused): bad path, no such device,
    /// not running.
    fn pr_view(&self, path: &str) -> Result<(DevKey, pr::PrView), String> {
        let key = DevKey::parse(path)?;
        if key.kind == crate::model::Kind::PScsi {
            return Err(format!("{key}: persistent reservations are the device's on a pass-through LU (PR commands go to it: use sg_persist through the LUN)"));
        }
        if self.cfg.device(&key).is_none() {
            return Err(format!("{key}: no such device"));
        }
        let view = self
            .rt
            .device_pr(&key)
            .ok_or_else(|| format!("{key}: the device is not running"))?;
        Ok((key, view))
    }

    /// `pr clear`: an administrator drops a stale reservation (e.g. its host died). Logged
    /// loudly with everything that was dropped.
    fn pr_clear(&mut self, path: &str, force: bool) -> Response {
        let (key, view) = match self.pr_view(path) {
            Ok(x) => x,
            Err(e) => return Response::refused(e),
        };
        if !force {
            return Response::refused(format!(
                "pr clear {key}: refusing without --force: it drops every registration and the reservation ({}), taking away the fencing of the initiators that hold them",
                pr::summary(&view.state)
            ));
        }
        match self.rt.pr_clear(&key) {
            Ok(dropped) => {
                let summary = pr::summary(&dropped);
                tracing::warn!(
                    "{key}: persistent reservations cleared by the administrator (pr clear --force); dropped {summary}"
                );
                Response::ok(pr::cleared_text(&key, &dropped))
            }
            Err(e) => Response::failed(e),
        }
    }

    /// `alua show`: groups with their live state and status (saved ones if not running).
    fn alua_show(&self, path: &str) -> Response {
        let key = match DevKey::parse(path) {
            Ok(k) => k,
            Err(e) => return Response::refused(format!("alua show: {e}")),
        };
        let Some(so) = self.cfg.device(&key) else {
            return Response::refused(format!("alua show: {key}: no such device"));
        };
        let live = |g: &str| {
            let state = self.rt.alua_group_attribute(&key, g, "alua_access_state");
            let status = self.rt.alua_group_attribute(&key, g, "alua_access_status");
            Some(alua::LiveState {
                state: parse_group_state(&state?)?,
                status: status_code::parse(&status?)?,
            })
        };
        Response::ok(alua::report(&key, &self.cfg, so, &live))
    }

    /// Fold the ALUA changes the engine made by itself (SET TARGET PORT GROUPS, the end of a
    /// transition) into the config and save it, so that states survive a restart.
    pub fn sync_alua(&mut self) {
        let next = self.rt.alua_refresh(&self.cfg);
        if next == self.cfg {
            return;
        }
        let touched = Touched::between(&self.cfg, &next);
        // Kept in memory even if the record fails: the next successful change carries it.
        self.cfg = next;
        match self.store.record(&self.cfg, &touched) {
            Ok(()) => tracing::info!("saved ALUA state changed by the engine"),
            Err(e) => tracing::error!("{e}"),
        }
    }

    async fn mutate(&mut self, op: Op) -> Response {
        let (mut msg, touched, snap) = match tree::mutate_in_place(&mut self.cfg, &self.rt, &op) {
            Ok(x) => x,
            Err(e) => return Response::refused(e),
        };
        // `create … sparse=0`: the file is made (and every block allocated) before the device
        // opens it, as targetcli does; a file made here goes again if the creation fails.
        let thick = match &op {
            Op::Create { path, args } => match tree::preallocation(&self.cfg, path, args) {
                Ok(t) => t,
                Err(e) => {
                    snap.restore(&mut self.cfg);
                    return Response::refused(e);
                }
            },
            _ => None,
        };
        let mut made = None;
        if let Some((file, size)) = thick {
            self.rt.set_progress(self.progress.clone());
            let r = self.rt.preallocate_file(&file, size).await;
            self.rt.set_progress(Progress::default());
            match r {
                Ok(created) => made = created.then_some(file),
                Err(e) => {
                    snap.restore(&mut self.cfg);
                    return Response::refused(format!("{e}; nothing changed"));
                }
            }
            msg.push_str(" (every block of its file allocated)");
        }
        match self.commit_touched(&touched, snap).await {
            Ok(()) => {
                tracing::info!("{msg}");
                Response::ok(msg)
            }
            Err(r) => {
                if let Some(file) = made {
                    if let Err(e) = std::fs::remove_file(&file) {
                        tracing::warn!("{file}: removing the file made for a failed create: {e}");
                    }
                }
                r
            }
        }
    }

    /// The change already made to `self.cfg` (what `touched` names; `snap` puts it back):
    /// apply it, then record it durably; if either fails, put the config and the running
    /// system back.
    async fn commit_touched(&mut self, touched: &Touched, snap: Snapshot) -> Result<(), Response> {
        if touched.whole {
            let Snapshot::Whole(old) = snap else {
                return Err(Response::failed(
                    "internal: a whole change without its snapshot",
                ));
            };
            let new = std::mem::replace(&mut self.cfg, *old);
            return self.commit(new).await;
        }
        if touched.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.rt.apply_touched(&self.cfg, touched).await {
            snap.restore(&mut self.cfg);
            return Err(Response::refused(format!("{e}; nothing changed")));
        }
        // An implicit transition has just set its group's status: record what the engine has.
        self.rt.alua_refresh_touched(&mut self.cfg, touched);
        if let Err(e) = self.store.record(&self.cfg, touched) {
            snap.restore(&mut self.cfg);
            if let Err(back) = self.rt.apply_touched(&self.cfg, touched).await {
                tracing::error!("could not restore the running config after a failed save: {back}");
            }
            return Err(Response::failed(format!("{e}; change undone")));
        }
        Ok(())
    }

    /// A live capacity change: resize the backstore (which raises the unit attention), then
    /// record and save the new size; if that fails, size the backstore back.
    async fn resize(&mut self, r: tree::Resize) -> Response {
        let done = match (r.thick, r.size) {
            (true, Some(size)) => {
                self.rt.set_progress(self.progress.clone());
                let x = self.rt.resize_thick(&r.key, size).await;
                self.rt.set_progress(Progress::default());
                x
            }
            _ => self.rt.resize(&r.key, r.size),
        };
        let (old, new) = match done {
            Ok(x) => x,
            Err(e) => return Response::refused(format!("{e}; nothing changed")),
        };
        let undo = |rt: &mut R| {
            if old != new {
                if let Err(e) = rt.resize(&r.key, Some(old)) {
                    tracing::error!("{}: could not restore size {old}: {e}", r.key);
                }
            }
        };
        let (next, msg) = match tree::resized(&self.cfg, &self.rt, &r.key, old, new) {
            Ok(x) => x,
            Err(e) => {
                undo(&mut self.rt);
                return Response::refused(format!("{e}; nothing changed"));
            }
        };
        if next != self.cfg {
            if let Err(e) = self.store.record(&next, &Touched::device(&r.key)) {
                undo(&mut self.rt);
                return Response::failed(format!("{e}; change undone"));
            }
            self.cfg = next;
        }
        tracing::info!("{msg}");
        Response::ok(msg)
    }

    /// Apply, then save; if the save fails, put the running system back.
    /// `ironlun apply FILE`: load and validate FILE in full, plan against the running tree,
    /// and (unless `dry_run`) apply it as one change. Nothing is applied or saved when the plan
    /// is empty.
    async fn apply_file(&mut self, file: &str, dry_run: bool) -> Response {
        if !Path::new(file).is_absolute() {
            return Response::refused(format!("apply: '{file}' must be an absolute path"));
        }
        let new = match persist::load(Path::new(file), &self.rt) {
            Ok(new) => new,
            Err(e) => return Response::refused(format!("{e}; nothing changed")),
        };
        let mut new = new;
        crate::plan::adopt_engine_owned(&self.cfg, &mut new);
        let changes = crate::plan::plan(&self.cfg, &new);
        let text = crate::plan::render(&changes);
        if dry_run || changes.is_empty() {
            return Response::ok(if dry_run && !changes.is_empty() {
                format!("{text} (dry run: nothing changed)")
            } else {
                text
            });
        }
        match self.commit_showing_progress(new).await {
            Ok(()) => Response::ok(format!("{text} applied")),
            Err(r) => r,
        }
    }

    async fn commit(&mut self, new: Config) -> Result<(), Response> {
        if new == self.cfg {
            return Ok(());
        }
        if let Err(e) = self.rt.apply(&new).await {
            return Err(Response::refused(format!("{e}; nothing changed")));
        }
        // An implicit transition has just set its group's status (and maybe the states of
        // devices in the same LU group): save what the engine now has.
        let new = self.rt.alua_refresh(&new);
        if let Err(e) = self.store.fold(&new) {
            if let Err(back) = self.rt.apply(&self.cfg).await {
                tracing::error!("could not restore the running config after a failed save: {back}");
            }
            return Err(Response::failed(format!("{e}; change undone")));
        }
        self.cfg = new;
        Ok(())
    }

    pub async fn shutdown(&mut self) {
        self.rt.shutdown().await;
        // Stopped cleanly, config.json alone holds everything (a file to read or edit).
        if let Err(e) = self.store.fold(&self.cfg) {
            tracing::error!("folding the journal at shutdown: {e}");
        }
    }
}

/// Save ALUA changes the engine reports (device names from
/// [`crate::runtime::EngineRuntime::take_alua_events`]) until the sender is gone. A burst of
/// reports costs one save.
pub async fn watch_alua<R: Runtime + 'static>(
    control: Arc<Mutex<Control<R>>>,
    mut events: tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    while events.recv().await.is_some() {
        while events.try_recv().is_ok() {}
        control.lock().await.sync_alua();
    }
}

mod apply_inline;
mod batch;
mod socket;
pub use socket::{bind_socket, request, request_with_progress, serve, ServerLine, SocketPolicy};
#[cfg(test)]
mod socket_tests;
#[cfg(test)]
mod tests;
