use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::*;
use crate::model::{DevKey, ParamSchema};
use crate::progress::Unit;
use crate::tree::tests::Fake;
use crate::tree::Inspect;

/// A runtime that accepts everything except portals on port 3339 ("cannot bind").
#[derive(Default)]
pub(super) struct FakeRuntime {
    applied: Vec<Config>,
    shut_down: bool,
    /// Live capacities: a configured size, or 8 MiB for a device without one; a rescan
    /// finds every device 1 MiB larger (block devices only).
    sizes: std::collections::BTreeMap<DevKey, u64>,
    /// Live PR state of every running device.
    pr: std::collections::BTreeMap<DevKey, ironlun_engine::PrState>,
    /// A state the "engine" put group `west` of every device in by itself (as after SET
    /// TARGET PORT GROUPS), with status 1.
    stpg_state: Option<u8>,
    /// Files "preallocated" (path, size); a path containing `full` fails as a full disk.
    pub(super) preallocated: Vec<(String, Option<u64>)>,
    progress: Progress,
}

impl ParamSchema for FakeRuntime {
    fn param_defaults(&self) -> Vec<(String, String)> {
        Fake.param_defaults()
    }
    fn validate_param(&self, key: &str, value: &str) -> Result<(), String> {
        Fake.validate_param(key, value)
    }
}

impl Inspect for FakeRuntime {
    fn device_attributes(&self, key: &DevKey) -> Vec<(String, String)> {
        Fake.device_attributes(key)
    }
    fn device_info(&self, _key: &DevKey) -> Option<String> {
        None
    }
    fn device_size(&self, key: &DevKey) -> Option<u64> {
        self.sizes.get(key).copied()
    }
    fn device_pr(&self, key: &DevKey) -> Option<crate::pr::PrView> {
        Some(crate::pr::PrView {
            state: self.pr.get(key)?.clone(),
            emulate_pr: true,
            force_aptpl: false,
            spc2_holder: None,
            file: format!("/fake/pr/aptpl_{}", key.name).into(),
            file_present: false,
        })
    }
}

impl Runtime for FakeRuntime {
    async fn apply(&mut self, new: &Config) -> Result<(), String> {
        let busy = new
            .targets
            .iter()
            .flat_map(|t| &t.tpgs)
            .flat_map(|g| &g.portals)
            .find(|p| p.port == 3339);
        if let Some(p) = busy {
            return Err(format!("{}: address in use", p.addr()));
        }
        self.sizes.retain(|k, _| new.device(k).is_some());
        self.pr.retain(|k, _| new.device(k).is_some());
        for so in &new.storage_objects {
            self.pr.entry(so.key()).or_default();
        }
        for so in &new.storage_objects {
            self.sizes
                .entry(so.key())
                .or_insert(so.size.unwrap_or(8 << 20));
        }
        self.applied.push(new.clone());
        Ok(())
    }
    fn resize(&mut self, key: &DevKey, size: Option<u64>) -> Result<(u64, u64), String> {
        let old = *self
            .sizes
            .get(key)
            .ok_or_else(|| format!("{key}: no such device"))?;
        let new = match size {
            Some(n) => n,
            None if key.kind == crate::model::Kind::IBlock => old + (1 << 20),
            None => return Err(format!("{key}/control: rescan is only for a block device")),
        };
        self.sizes.insert(key.clone(), new);
        Ok((old, new))
    }
    async fn resize_thick(&mut self, key: &DevKey, size: u64) -> Result<(u64, u64), String> {
        let t = self
            .progress
            .task(format!("preallocating {key}"), Unit::Bytes);
        t.set(0, size);
        let r = self.resize(key, Some(size));
        t.set(size, size);
        r
    }
    async fn preallocate_file(&mut self, path: &str, size: Option<u64>) -> Result<bool, String> {
        let total = size.unwrap_or(1 << 20);
        let t = self
            .progress
            .task(format!("preallocating {path}"), Unit::Bytes);
        t.set(0, total);
        if path.contains("full") {
            return Err(format!(
                "{path}: preallocate: No space left on device (os error 28)"
            ));
        }
        t.set(total, total);
        self.preallocated.push((path.to_string(), size));
        Ok(true)
    }
    fn set_progress(&mut self, progress: Progress) {
        self.progress = progress;
    }
    async fn shutdown(&mut self) {
        self.shut_down = true;
    }
    fn alua_refresh(&mut self, cfg: &Config) -> Config {
        let mut next = cfg.clone();
        if let Some(st) = self.stpg_state {
            for so in &mut next.storage_objects {
                if let Some(g) = so.alua_group_mut("west") {
                    g.alua_access_state = st;
                    g.alua_access_status = 1;
                }
            }
        }
        next
    }
    fn pr_clear(&mut self, key: &DevKey) -> Result<ironlun_engine::PrState, String> {
        let s = self
            .pr
            .get_mut(key)
            .ok_or_else(|| format!("{key}: no such device"))?;
        let generation = s.generation.wrapping_add(1);
        Ok(std::mem::replace(
            s,
            ironlun_engine::PrState {
                generation,
                ..Default::default()
            },
        ))
    }
}

const T: &str = "iqn.2026-11.org.ironlun:svc";

pub(super) async fn started(dir: &Path) -> Control<FakeRuntime> {
    Control::start(FakeRuntime::default(), dir, Config::default())
        .await
        .expect("start")
}

/// `ls PATH` over the socket at `sock`.
pub(super) async fn ls(sock: &Path, path: &str) -> Response {
    request(sock, &Request::Ls { path: path.into() })
        .await
        .expect("ls")
}

fn create(path: &str, args: &[&str]) -> Request {
    Request::Create {
        path: path.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
    }
}

fn saved(dir: &Path) -> Config {
    crate::journal::load(dir, &Fake).expect("saved config")
}

#[tokio::test]
async fn every_change_is_applied_and_saved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = started(dir.path()).await;
    let r = c.handle(create("core/rd_mcp_0/r0", &["size=1M"])).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.output, "created core/rd_mcp_0/r0");
    let r = c.handle(create(&format!("iscsi/{T}/tpgt_1"), &[])).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(&saved(dir.path()), c.config());
    assert_eq!(c.runtime().applied.last(), Some(c.config()));
    assert_eq!(
        c.handle(Request::Get {
            path: format!("iscsi/{T}/tpgt_1/rtpi")
        })
        .await,
        Response::ok("1")
    );
}

#[tokio::test]
async fn refused_changes_leave_config_and_file_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = started(dir.path()).await;
    assert!(c.handle(create(&format!("iscsi/{T}/tpgt_1"), &[])).await.ok);
    let before = c.config().clone();
    let applies = c.runtime().applied.len();

    let r = c
        .handle(Request::Set {
            path: format!("iscsi/{T}/tpgt_1/enable"),
            value: "2".into(),
        })
        .await;
    assert_eq!((r.ok, r.code), (false, 2));
    assert!(r.error.contains("expected 0 or 1"), "{r:?}");
    assert_eq!(
        c.runtime().applied.len(),
        applies,
        "validation failures never reach the runtime"
    );

    let r = c
        .handle(create(&format!("iscsi/{T}/tpgt_1/np/127.0.0.1:3339"), &[]))
        .await;
    assert_eq!((r.ok, r.code), (false, 2));
    assert!(
        r.error.contains("address in use") && r.error.contains("nothing changed"),
        "{r:?}"
    );
    assert_eq!(c.config(), &before);
    assert_eq!(saved(dir.path()), before);
}

#[tokio::test]
async fn save_and_restore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = started(dir.path()).await;
    assert!(c.handle(create("core/rd_mcp_0/r0", &["size=1M"])).await.ok);
    let copy = dir.path().join("copy.json");
    let copy_s = copy.to_string_lossy().into_owned();
    let r = c
        .handle(Request::Save {
            file: Some(copy_s.clone()),
        })
        .await;
    assert!(r.ok, "{r:?}");
    let snapshot = c.config().clone();

    assert!(
        c.handle(Request::Delete {
            path: "core/rd_mcp_0/r0".into()
        })
        .await
        .ok
    );
    assert!(c.config().storage_objects.is_empty());

    // A broken file is refused whole.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        persist::to_json(&snapshot).replace("\"size\"", "\"sise\""),
    )
    .expect("write");
    let r = c
        .handle(Request::Restore {
            file: bad.to_string_lossy().into_owned(),
        })
        .await;
    assert_eq!((r.ok, r.code), (false, 2));
    assert!(
        r.error.contains("unknown field") && r.error.contains("nothing changed"),
        "{r:?}"
    );
    assert!(c.config().storage_objects.is_empty());

    let r = c.handle(Request::Restore { file: copy_s }).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(c.config(), &snapshot);
    assert_eq!(saved(dir.path()), snapshot);

    let r = c
        .handle(Request::Save {
            file: Some("relative.json".into()),
        })
        .await;
    assert!(!r.ok && r.error.contains("absolute"), "{r:?}");
}

#[tokio::test]
async fn socket_round_trip_and_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join(SOCKET_FILE);
    let control = Arc::new(Mutex::new(started(dir.path()).await));
    let listener = bind_socket(&sock).await.expect("bind");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    let server = tokio::spawn(serve(
        listener,
        control.clone(),
        SocketPolicy::of_this_process(),
    ));

    assert!(bind_socket(&sock)
        .await
        .expect_err("second daemon")
        .contains("another ironlun daemon"));

    let r = request(&sock, &create("core/rd_mcp_0/r0", &["size=1M"]))
        .await
        .expect("request");
    assert!(r.ok, "{r:?}");
    let r = ls(&sock, "core").await;
    assert!(
        r.output.starts_with("core/\n  rd_mcp_0/\n    r0/\n"),
        "{}",
        r.output
    );

    // Garbage gets an error response, not a dropped daemon.
    let mut raw = UnixStream::connect(&sock).await.expect("connect");
    raw.write_all(b"{\"op\":\"explode\"}\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    BufReader::new(&mut raw)
        .read_until(b'\n', &mut buf)
        .await
        .expect("read");
    let resp: Response = serde_json::from_slice(&buf).expect("json");
    assert!(
        !resp.ok && resp.error.starts_with("bad request"),
        "{resp:?}"
    );

    server.abort();
    control.lock().await.shutdown().await;
    assert!(control.lock().await.runtime().shut_down);
}

fn set_req(path: &str, value: &str) -> Request {
    Request::Set {
        path: path.into(),
        value: value.into(),
    }
}

#[tokio::test]
async fn control_size_resizes_the_live_device_and_saves_the_new_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = started(dir.path()).await;
    assert!(c.handle(create("core/rd_mcp_0/r0", &["size=1M"])).await.ok);
    assert!(
        c.handle(create("core/iblock_0/b0", &["path=/dev/loop9"]))
            .await
            .ok
    );
    let key = DevKey::parse("core/rd_mcp_0/r0").expect("key");
    let applies = c.runtime().applied.len();

    let r = c
        .handle(set_req("core/rd_mcp_0/r0/control", "size=4M"))
        .await;
    assert!(r.ok, "{r:?}");
    assert!(r.output.contains("1048576 -> 4194304"), "{r:?}");
    assert_eq!(c.runtime().device_size(&key), Some(4 << 20));
    assert_eq!(c.config().device(&key).and_then(|s| s.size), Some(4 << 20));
    assert_eq!(&saved(dir.path()), c.config());
    // The backstore is resized in place, never rebuilt by an apply.
    assert_eq!(c.runtime().applied.len(), applies);

    // Shrinking needs shrink=1; refused requests change nothing.
    let before = c.config().clone();
    let r = c
        .handle(set_req("core/rd_mcp_0/r0/control", "size=2M"))
        .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.error.contains("add shrink=1"), "{r:?}");
    assert_eq!(c.runtime().device_size(&key), Some(4 << 20));
    let r = c
        .handle(set_req("core/rd_mcp_0/r0/control", "rescan=1"))
        .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(c.config(), &before);
    assert_eq!(&saved(dir.path()), &before);

    let r = c
        .handle(set_req("core/rd_mcp_0/r0/control", "size=2M,shrink=1"))
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        saved(dir.path()).device(&key).and_then(|s| s.size),
        Some(2 << 20)
    );

    // A rescan of an iblock device changes the live size; its size is not saved.
    let before = c.config().clone();
    let ib = DevKey::parse("core/iblock_0/b0").expect("key");
    let r = c
        .handle(set_req("core/iblock_0/b0/control", "rescan=1"))
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(c.runtime().device_size(&ib), Some(9 << 20));
    assert_eq!(c.config(), &before);
    // The runtime's own refusal (here: rescan of a device that is not a block device)
    // comes back as a refusal.
    assert!(
        c.handle(create("core/fileio_0/f0", &["path=/srv/f0.img", "size=1M"]))
            .await
            .ok
    );
    let r = c
        .handle(set_req("core/fileio_0/f0/control", "rescan=1"))
        .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.error.ends_with("nothing changed"), "{r:?}");
}

#[tokio::test]
async fn pr_show_and_pr_clear() {
    use ironlun_engine::{PrRegistration, PrReservation, PrState};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = started(dir.path()).await;
    assert!(c.handle(create("core/rd_mcp_0/r0", &["size=1M"])).await.ok);
    let key = DevKey::parse("core/rd_mcp_0/r0").expect("key");
    let show = |p: &str| Request::PrShow { path: p.into() };
    let clear = |p: &str, force| Request::PrClear {
        path: p.into(),
        force,
    };

    let r = c.handle(show("core/rd_mcp_0/r0")).await;
    assert!(r.ok, "{r:?}");
    assert!(r.output.contains("Registrations:  0"), "{}", r.output);

    // Bad paths and unknown devices are refused (exit 2), whatever the force.
    for (req, needle) in [
        (show("core/rd_mcp_0/nope"), "no such device"),
        (show("iscsi/x"), "not a device path"),
        (clear("core/rd_mcp_0/nope", true), "no such device"),
        (clear("core/fileio_0/r0", false), "no such device"),
    ] {
        let r = c.handle(req).await;
        assert!(!r.ok && r.code == 2 && r.error.contains(needle), "{r:?}");
    }

    let state = PrState {
        generation: 3,
        aptpl: false,
        registrations: vec![PrRegistration {
            key: 0x42,
            initiator: "iqn.2026-11.org.example:dead".into(),
            isid: Some([0x40, 0, 1, 0x37, 0, 0]),
            target: "iqn.2026-11.org.ironlun:svc".into(),
            tpgt: 1,
            rtpi: 1,
            all_tg_pt: false,
        }],
        reservation: Some(PrReservation { holder: 0, kind: 1 }),
    };
    c.rt.pr.insert(key.clone(), state.clone());

    // Without force: refused with one line saying what would go, nothing changes.
    let r = c.handle(clear("core/rd_mcp_0/r0", false)).await;
    assert!(!r.ok && r.code == 2, "{r:?}");
    assert!(
        r.error.contains("--force") && r.error.contains("dead,i,0x400001370000"),
        "{r:?}"
    );
    assert_eq!(c.rt.pr.get(&key), Some(&state));

    let r = c.handle(clear("core/rd_mcp_0/r0", true)).await;
    assert!(r.ok, "{r:?}");
    assert!(
        r.output
            .starts_with("cleared core/rd_mcp_0/r0: dropped PRgeneration 0x00000003"),
        "{}",
        r.output
    );
    assert!(r.output.contains("key 0x0000000000000042"), "{}", r.output);
    assert_eq!(c.rt.pr.get(&key).map(|s| s.registrations.len()), Some(0));

    // The request protocol: op names and the force default.
    let req: Request =
        serde_json::from_str(r#"{"op":"pr_clear","path":"core/rd_mcp_0/r0"}"#).expect("json");
    assert_eq!(req, clear("core/rd_mcp_0/r0", false));
    let req: Request = serde_json::from_str(r#"{"op":"pr_show","path":"p"}"#).expect("json");
    assert_eq!(req, show("p"));
}

#[tokio::test]
async fn alua_changes_of_the_engine_are_saved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = started(dir.path()).await;
    let dev = "core/rd_mcp_0/r0";
    for req in [
        create(dev, &["size=1M"]),
        create(&format!("{dev}/alua/west"), &["tg_pt_gp_id=1"]),
    ] {
        let r = c.handle(req).await;
        assert!(r.ok, "{r:?}");
    }
    let key = DevKey::parse(dev).expect("key");
    let west = |cfg: &Config| {
        cfg.device(&key)
            .and_then(|s| s.alua_group("west"))
            .expect("west")
    };
    // Nothing changed by the engine: nothing to save.
    let files = || {
        [CONFIG_FILE, crate::journal::JOURNAL_FILE]
            .map(|f| std::fs::read(dir.path().join(f)).expect("file"))
    };
    let before = files();
    c.sync_alua();
    assert_eq!(files(), before);
    // The engine moved west to Standby by itself (STPG): folded in and saved.
    c.rt.stpg_state = Some(2);
    c.sync_alua();
    let g = west(&saved(dir.path()));
    assert_eq!((g.alua_access_state, g.alua_access_status), (2, 1));
    assert_eq!(west(c.config()), g);
    // `alua show` reports it; an unknown device is refused.
    let r = c.handle(Request::AluaShow { path: dev.into() }).await;
    assert!(
        r.ok && r.output.contains("west (id 1)\n") && r.output.contains("Standby (0x02)"),
        "{r:?}"
    );
    assert!(
        r.output.contains("Altered by Explicit STPG (0x01)"),
        "{r:?}"
    );
    let r = c
        .handle(Request::AluaShow {
            path: "core/rd_mcp_0/nope".into(),
        })
        .await;
    assert_eq!(r.code, 2, "{r:?}");
}
