//! Durable, atomic saving of `config.json` (DESIGN.md "State and persistence"): write a temp
//! file in the same directory, fsync it, rename it over the old file, fsync the directory.
//! A crash leaves either the old or the new file, never a torn one. Mode 0600: the file holds
//! CHAP secrets.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::failpoint;
use crate::model::{Config, ParamSchema};

/// Name of the saved tree inside the state directory.
pub const CONFIG_FILE: &str = "config.json";

/// Serialise `cfg` as pretty JSON (the `config.json` format, docs/cli.md).
pub fn to_json(cfg: &Config) -> String {
    // Serialising plain structs and maps to a String cannot fail.
    let mut s = serde_json::to_string_pretty(cfg).unwrap_or_default();
    s.push('\n');
    s
}

/// Parse and fully validate a config file's text. Err is one line.
pub fn from_json(text: &str, params: &dyn ParamSchema) -> Result<Config, String> {
    let mut cfg: Config = serde_json::from_str(text).map_err(|e| format!("invalid config: {e}"))?;
    // Files written by hand (or by older tools) may leave RTPIs out: allocate them.
    cfg.assign_missing_rtpis()?;
    cfg.validate(params)
        .map_err(|e| format!("invalid config: {e}"))?;
    Ok(cfg)
}

/// Read and validate a config file.
pub fn load(path: &Path, params: &dyn ParamSchema) -> Result<Config, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    from_json(&text, params).map_err(|e| format!("{}: {e}", path.display()))
}

/// Write `cfg` to `path` atomically and durably.
pub fn save(path: &Path, cfg: &Config) -> Result<(), String> {
    write_atomic(path, to_json(cfg).as_bytes(), "config")
        .map_err(|e| format!("cannot save {}: {e}", path.display()))
}

/// Write `data` to `path` atomically and durably, mode 0600: a temp file in the same
/// directory, written and fsynced, renamed over `path`, then the directory fsynced. After a
/// crash `path` holds the old or the new content, never a mix. Shared by `config.json` and
/// the persistent reservation APTPL files; `kind` names them in the crash points
/// (`failpoint`, tests only).
pub(crate) fn write_atomic(path: &Path, data: &[u8], kind: &str) -> std::io::Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    // Unique per process and call: two writers in one daemon never share a temp file.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp.{}.{seq}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        failpoint::hit(kind, "tmp-created");
        if failpoint::armed(kind, "tmp-half") {
            f.write_all(&data[..data.len() / 2])?;
            failpoint::hit(kind, "tmp-half");
        }
        f.write_all(data)?;
        failpoint::hit(kind, "tmp-written");
        f.sync_all()?;
        drop(f);
        failpoint::hit(kind, "tmp-synced");
        fs::rename(&tmp, path)?;
        failpoint::hit(kind, "renamed");
        File::open(dir)?.sync_all()?;
        failpoint::hit(kind, "dir-synced");
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Remove `path` durably (the directory is fsynced after the unlink). A missing file is not
/// an error.
pub(crate) fn remove_durable(path: &Path, kind: &str) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {
            failpoint::hit(kind, "removed");
            File::open(parent_dir(path))?.sync_all()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Remove the temp files [`write_atomic`] leaves in `dir` when the process dies before its
/// rename (`.<name>.tmp.<pid>.<n>`), except this process' own. Returns how many it removed.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let own = format!(".tmp.{}.", std::process::id());
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with('.') && is_temp_name(&name);
        if ours && !name.contains(&own) && fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// `.<name>.tmp.<digits>.<digits>`, as [`write_atomic`] names its temp files.
fn is_temp_name(name: &str) -> bool {
    let Some((_, tail)) = name.rsplit_once(".tmp.") else {
        return false;
    };
    let mut parts = tail.split('.');
    let digits =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

/// The effective uid of this process: who owns what the daemon writes.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Make `dir` a directory only its owner can enter (mode 0700): create it (and missing
/// parents) so, or tighten an existing one that lets group or others in. An existing
/// directory that is not the daemon's (another owner, or a shared one with the sticky bit
/// such as /tmp) is left as it is. Ok(Some(line)): what was found and done, to log as a
/// warning. Err: one line.
pub fn private_dir(dir: &Path) -> Result<Option<String>, String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let at = dir.display();
    let meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map(|()| None)
                .map_err(|e| format!("cannot create directory {at}: {e}"));
        }
        Err(e) => return Err(format!("{at}: {e}")),
    };
    if !meta.is_dir() {
        return Err(format!("{at}: not a directory"));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    if meta.uid() != effective_uid() || mode & 0o1000 != 0 {
        return Ok(Some(format!(
            "{at}: mode {mode:04o} lets other users in and the directory is not the daemon's to change (owner uid {}); it holds CHAP secrets and the control socket: use a directory only its owner can enter (0700)",
            meta.uid()
        )));
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("{at}: cannot change mode {mode:04o} to 0700: {e}"))?;
    Ok(Some(format!(
        "{at}: mode {mode:04o} let other users in; changed to 0700 (the directory holds CHAP secrets and the control socket)"
    )))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temps_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |n: &str| dir.path().join(n);
        write_atomic(&p("config.json"), b"{}", "config").expect("save");
        for n in [
            ".config.json.tmp.4242.0",
            ".aptpl_x.tmp.1.17",
            ".config.json.tmp.12.x",
            "config.json.tmp.1.2",
            ".notes",
            "keep.tmp.1.2.3",
        ] {
            std::fs::write(p(n), b"x").expect("write");
        }
        let own = format!(".config.json.tmp.{}.9", std::process::id());
        std::fs::write(p(&own), b"x").expect("write");
        assert_eq!(remove_stale_temps(dir.path()), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = vec![
            ".config.json.tmp.12.x".to_string(),
            ".notes".into(),
            "config.json".into(),
            "config.json.tmp.1.2".into(),
            "keep.tmp.1.2.3".into(),
            own,
        ];
        want.sort();
        assert_eq!(left, want);
    }
    use crate::model::{
        generate_serial, Kind, Lun, ParamSchema, Portal, StorageObject, Target, Tpg,
    };
    use std::os::unix::fs::PermissionsExt;

    /// A fabric without `param/` keys: enough for a tree that sets none.
    struct Fake;

    impl ParamSchema for Fake {
        fn param_defaults(&self) -> Vec<(String, String)> {
            Vec::new()
        }
        fn validate_param(&self, key: &str, _value: &str) -> Result<(), String> {
            Err(format!("{key}: unknown parameter"))
        }
    }

    /// A ramdisk exported as LUN 0 of a TPG with one portal (what `create` makes of it).
    fn sample() -> Config {
        let mut tpg = Tpg::new(1, 1);
        tpg.portals.push(Portal {
            ip_address: [127, 0, 0, 1].into(),
            port: 3260,
        });
        tpg.luns.push(Lun::new(0, "core/rd_mcp_0/ramdisk0".into()));
        Config {
            storage_objects: vec![StorageObject {
                plugin: Kind::RdMcp,
                hba: 0,
                name: "ramdisk0".into(),
                wwn: generate_serial(),
                vendor_id: "IRONLUN".into(),
                product_id: Kind::RdMcp.default_product_id().into(),
                revision: "1.0".into(),
                dev: None,
                size: Some(1 << 30),
                write_back: false,
                readonly: false,
                attributes: Default::default(),
                alua_tpgs: Vec::new(),
                alua_lu_gp: None,
            }],
            targets: vec![Target {
                wwn: "iqn.2026-11.org.ironlun:default".into(),
                fabric: "iscsi".into(),
                tpgs: vec![tpg],
            }],
            ..Config::default()
        }
    }

    #[test]
    fn save_then_load_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        let c = sample();
        save(&path, &c).expect("save");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&path, &Fake), Ok(c));
        let leftovers: Vec<_> = fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn json_has_the_documented_shape() {
        let v: serde_json::Value = serde_json::from_str(&to_json(&sample())).expect("json");
        assert_eq!(v["version"], 1);
        assert_eq!(v["storage_objects"][0]["plugin"], "ramdisk");
        assert_eq!(v["storage_objects"][0]["size"], 1u64 << 30);
        let tpg = &v["targets"][0]["tpgs"][0];
        assert_eq!(v["targets"][0]["wwn"], "iqn.2026-11.org.ironlun:default");
        assert_eq!(tpg["tag"], 1);
        assert_eq!(tpg["rtpi"], 1);
        assert_eq!(tpg["attributes"]["generate_node_acls"], 0);
        assert_eq!(tpg["portals"][0]["ip_address"], "127.0.0.1");
        assert_eq!(tpg["portals"][0]["port"], 3260);
        assert_eq!(tpg["luns"][0]["storage_object"], "core/rd_mcp_0/ramdisk0");
    }

    #[test]
    fn bad_files_are_refused_with_one_line() {
        let good = to_json(&sample());
        for (text, needle) in [
            ("{".to_string(), "invalid config"),
            (
                good.replace("\"version\": 1", "\"version\": 7"),
                "version 7",
            ),
            (
                good.replace("\"tag\": 1", "\"tag\": 1, \"colour\": 2"),
                "unknown field",
            ),
            (
                good.replace("core/rd_mcp_0/ramdisk0\"", "core/rd_mcp_0/other\""),
                "does not exist",
            ),
            (
                good.replace("iqn.2026-11.org.ironlun:default", "iqn.bogus"),
                "target name",
            ),
            (
                good.replace("\"port\": 3260", "\"port\": 0"),
                "port must be",
            ),
            (
                good.replace("\"core/rd_mcp_0/ramdisk0\"", "\"/core/rd_mcp_0/ramdisk0\""),
                "write the device as",
            ),
        ] {
            let e = from_json(&text, &Fake).expect_err(needle);
            assert!(e.contains(needle), "{needle}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn private_dirs_are_created_0700_and_loose_ones_tightened() {
        let base = tempfile::tempdir().expect("tempdir");
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o7777;
        let fresh = base.path().join("a/b");
        assert_eq!(private_dir(&fresh), Ok(None));
        assert_eq!(mode(&fresh), 0o700);
        assert_eq!(
            private_dir(&fresh),
            Ok(None),
            "already private: nothing to say"
        );

        let loose = base.path().join("loose");
        fs::create_dir(&loose).expect("mkdir");
        fs::set_permissions(&loose, fs::Permissions::from_mode(0o755)).expect("chmod");
        let said = private_dir(&loose).expect("tightened").expect("a warning");
        assert!(
            said.contains("mode 0755") && said.contains("changed to 0700"),
            "{said}"
        );
        assert_eq!(mode(&loose), 0o700);

        // A shared sticky directory is not ours to change: only a warning.
        let shared = base.path().join("shared");
        fs::create_dir(&shared).expect("mkdir");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).expect("chmod");
        let said = private_dir(&shared)
            .expect("left alone")
            .expect("a warning");
        assert!(said.contains("not the daemon's to change"), "{said}");
        assert_eq!(mode(&shared), 0o1777);

        let file = base.path().join("file");
        fs::write(&file, b"x").expect("write");
        assert!(private_dir(&file)
            .expect_err("a file")
            .contains("not a directory"));
    }

    #[test]
    fn missing_rtpis_are_allocated_on_load() {
        let text = to_json(&sample()).replace("\"rtpi\": 1,", "");
        let c = from_json(&text, &Fake).expect("load");
        assert_eq!(c.targets[0].tpgs[0].rtpi, 1);
    }
}
