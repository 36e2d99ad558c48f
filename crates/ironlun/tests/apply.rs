//! `ironlun apply FILE`: the running tree becomes FILE with the fewest changes, the plan is
//! printed, `--dry-run` changes nothing, twice changes nothing, and a session doing I/O on a
//! LU the apply does not touch goes on through applies that add and remove other objects.

mod support;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use support::*;

const PORTS: Range<u16> = 3881..3890;
const T: &str = "iscsi/iqn.2026-11.org.ironlun:default/tpgt_1";

/// The running config saved to a file, as JSON to edit.
fn saved(d: &Daemon, name: &str) -> (PathBuf, serde_json::Value) {
    let file = d.state_dir().join(name);
    d.cli(&["config", "save", &file.display().to_string()]);
    let text = std::fs::read_to_string(&file).expect("saved config");
    (
        file,
        serde_json::from_str(&text).expect("saved config parses"),
    )
}

fn write(path: &Path, v: &serde_json::Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).expect("json")).expect("write");
}

/// `cfg` plus a 1 MiB RAM disk `name` exported as LUN `lun` of the default TPG, and an ACL
/// for `iqn(who)` mapping it.
fn with_extra(cfg: &serde_json::Value, name: &str, lun: u64, who: &str) -> serde_json::Value {
    let mut c = cfg.clone();
    c["storage_objects"]
        .as_array_mut()
        .expect("storage_objects")
        .push(serde_json::json!({
            "plugin": "ramdisk", "hba": 5, "name": name, "wwn": format!("wwn-{name}"),
            "vendor_id": "IRONLUN", "product_id": "RAMDISK-MCP", "revision": "1.0",
            "size": 1 << 20, "write_back": false, "readonly": false, "attributes": {},
        }));
    let tpg = &mut c["targets"][0]["tpgs"][0];
    tpg["luns"]
        .as_array_mut()
        .expect("luns")
        .push(serde_json::json!({"index": lun, "storage_object": format!("core/rd_mcp_5/{name}")}));
    tpg["node_acls"]
        .as_array_mut()
        .expect("node_acls")
        .push(serde_json::json!({
            "node_wwn": iqn(who),
            "mapped_luns": [{"index": 0, "tpg_lun": lun, "write_protect": false}],
        }));
    c
}

#[test]
fn plan_dry_run_apply_and_twice_changes_nothing() {
    let d = Daemon::start_in(PORTS);
    let (file, base) = saved(&d, "base.json");
    let mut want = with_extra(&base, "extra", 3, "host-b");
    want["storage_objects"][0]["attributes"]["emulate_tpu"] = serde_json::json!(1);
    write(&file, &want);
    let f = file.display().to_string();

    let plan = d.cli(&["apply", "--dry-run", &f]);
    for line in [
        "create core/rd_mcp_5/extra",
        &format!("create {T}/lun/lun_3"),
        &format!("create {T}/acls/{}", iqn("host-b")),
        &format!("create {T}/acls/{}/lun_0", iqn("host-b")),
        "set    core/rd_mcp_0/ramdisk0/attrib/emulate_tpu: (none) -> 1",
        "5 change(s) (dry run: nothing changed)",
    ] {
        assert!(plan.contains(line), "missing {line:?} in:\n{plan}");
    }
    assert!(
        !d.cli(&["ls", "core"]).contains("extra"),
        "dry run changed the tree"
    );

    let config = d.state_dir().join("config.json");
    let applied = d.cli(&["apply", &f]);
    assert!(applied.contains("5 change(s) applied"), "{applied}");
    assert!(d.cli(&["ls", "core"]).contains("extra"));
    assert_eq!(
        d.cli(&["get", &format!("{T}/lun/lun_3")]).trim(),
        "core/rd_mcp_5/extra"
    );
    assert_eq!(
        d.cli(&["get", "core/rd_mcp_0/ramdisk0/attrib/emulate_tpu"])
            .trim(),
        "1"
    );

    // Twice: nothing planned, nothing saved.
    let before = std::fs::metadata(&config)
        .and_then(|m| m.modified())
        .expect("mtime");
    let text = d.saved_files();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = d.cli(&["apply", &f]);
    assert_eq!(
        again.trim(),
        "no changes: the running configuration already equals the file"
    );
    assert_eq!(d.saved_files(), text);
    assert_eq!(
        std::fs::metadata(&config)
            .and_then(|m| m.modified())
            .expect("mtime"),
        before
    );

    // Back to the start: the extra objects go, the attribute is unset again.
    write(&file, &base);
    let back = d.cli(&["apply", &f]);
    assert!(back.contains("delete core/rd_mcp_5/extra"), "{back}");
    assert!(!d.cli(&["ls", "core"]).contains("extra"));

    // A bad file: one line, exit 2, nothing changed.
    std::fs::write(&file, "{\"version\": 1, \"storage_objects\": [{}]}").expect("write");
    let o = d.cli_output(&["apply", &f]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("nothing changed"), "{err}");
}

/// The unit attention a LUN inventory change raises (REPORTED LUNS DATA HAS CHANGED, 3F/0E,
/// SPC-4 §6.33): the only thing an apply that adds or removes other LUNs may show this
/// session, answered by sending the command again.
fn inventory_ua(r: &ironlun_initiator::CommandResult) -> bool {
    let k = r.sense.as_ref().map(|x| (x.key, x.asc.asc, x.asc.ascq));
    r.status == 2 && k == Some((6, 0x3f, 0x0e))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_on_an_untouched_lu_goes_on_across_applies() {
    let d = Daemon::start_in(PORTS);
    let (file, base) = saved(&d, "base.json");
    let grown = with_extra(&base, "other", 5, "host-c");
    let f = file.display().to_string();

    let s = Arc::new(login(&d, normal("a")).await);
    let stop = Arc::new(AtomicBool::new(false));
    let io = {
        let (s, stop) = (s.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut n, mut ua) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let lba = u64::from(n % 256) * 8;
                let data = pattern(n, 4096);
                let w = loop {
                    let w = guard("WRITE", s.write16(0, lba, data.clone(), 512, false))
                        .await
                        .expect("WRITE");
                    if !inventory_ua(&w) {
                        break w;
                    }
                    ua += 1;
                };
                assert_eq!(w.status, 0, "WRITE {n}: {w:?}");
                let r = loop {
                    let r = guard("READ", s.read16(0, lba, 8, 512)).await.expect("READ");
                    if !inventory_ua(&r) {
                        break r;
                    }
                    ua += 1;
                };
                assert_eq!(r.status, 0, "READ {n}: {r:?}");
                assert_eq!(&r.data_in[..], &data[..], "READ {n} differs");
                n += 1;
            }
            (n, ua)
        })
    };
    for round in 0..6 {
        write(&file, if round % 2 == 0 { &grown } else { &base });
        let out = d.cli(&["apply", &f]);
        assert!(out.contains("applied"), "round {round}: {out}");
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (n, ua) = io.await.expect("I/O task");
    assert!(n > 50, "only {n} verified writes");
    assert!(s.closed().is_none(), "session dropped: {:?}", s.closed());
    println!("apply: {n} verified write+read pairs across 6 applies, {ua} unit attentions 3F/0E");
    let _ = guard("logout", s.logout(0)).await;
}

/// `ironlun batch FILE`: the lines as one change, all or none; a refused line is named with
/// its file and number, and nothing of the lines before it stays (live or saved).
#[test]
fn a_batch_is_one_change_all_or_none() {
    let d = Daemon::start_in(PORTS);
    let file = d.state_dir().join("batch.txt");
    let good = format!(
        "# two LUs exported and mapped\ncreate core/rd_mcp_3/b0 size=1M\ncreate core/rd_mcp_3/b1 size=2M\n\
         create {T}/lun/lun_20 dev=core/rd_mcp_3/b0\nlink core/rd_mcp_3/b1 {T}/lun/lun_21\n\
         create {T}/acls/iqn.2026-12.org.ironlun:batch\ncreate {T}/acls/iqn.2026-12.org.ironlun:batch/lun_0 tpg_lun=21\n\
         set core/rd_mcp_3/b0/attrib/emulate_tpu 1\n"
    );
    std::fs::write(&file, &good).expect("write");
    let out = d.cli(&["batch", &file.display().to_string()]);
    assert!(out.contains("7 change(s) applied"), "{out}");
    assert_eq!(
        d.cli(&["get", &format!("{T}/lun/lun_21")]).trim(),
        "core/rd_mcp_3/b1"
    );
    assert_eq!(
        d.cli(&["get", "core/rd_mcp_3/b0/attrib/emulate_tpu"])
            .trim(),
        "1"
    );

    let (ls, saved) = (d.cli(&["ls"]), d.saved_files());
    let bad = format!(
        "create core/rd_mcp_3/b2 size=1M\ncreate {T}/lun/lun_22 dev=core/rd_mcp_3/b2\n\n\
         create {T}/lun/lun_23 dev=core/rd_mcp_3/nosuch\n"
    );
    std::fs::write(&file, &bad).expect("write");
    let err = d.refused(&["batch", &file.display().to_string()]);
    assert!(
        err.contains("batch op 3")
            && err.contains("no such device")
            && err.contains("nothing changed"),
        "{err}"
    );
    let unknown = "create core/rd_mcp_3/b3 size=1M\nfrobnicate core\n";
    std::fs::write(&file, unknown).expect("write");
    let err = d.refused(&["batch", &file.display().to_string()]);
    assert!(err.contains("line 2"), "{err}");
    std::fs::write(&file, "create core/rd_mcp_3/b4 size=1M\nls core\n").expect("write");
    let err = d.refused(&["batch", &file.display().to_string()]);
    assert!(
        err.contains("line 2") && err.contains("only set, create, delete and link"),
        "{err}"
    );
    assert_eq!((d.cli(&["ls"]), d.saved_files()), (ls, saved));
}
