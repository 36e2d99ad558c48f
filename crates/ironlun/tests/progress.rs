//! Progress on long work, end to end (ports 4060-4069): the real CLI on a pseudo-terminal
//! (openpty(3)) against the real daemon shows a thick `create`'s preallocation, a thick
//! resize, an `apply` and an `import-lio` of many objects as one redrawn line, cleared before the answer; the
//! same commands piped print nothing but the answer. The files are really allocated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

mod support;
use support::{Daemon, BIN, RAMDISK};

const PORTS: std::ops::Range<u16> = 4060..4070;
const GIB: u64 = 1 << 30;

/// Run the CLI with stdout and stderr on a terminal; its exit success and all it wrote.
fn on_terminal(d: &Daemon, args: &[&str]) -> (bool, String) {
    let (mut m, mut s): (RawFd, RawFd) = (-1, -1);
    // SAFETY: openpty writes the two descriptors; no name, default termios and size.
    let rc = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned here.
    let (mut master, slave) = unsafe { (File::from_raw_fd(m), File::from_raw_fd(s)) };
    let mut child = Command::new(BIN)
        .arg("--state-dir")
        .arg(d.state_dir())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("spawn ironlun");
    // The child holds the only slave descriptors now: reading ends (EIO) when it exits.
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = master.read(&mut chunk) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    let ok = child.wait().unwrap().success();
    (ok, String::from_utf8_lossy(&out).into_owned())
}

fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn long_work_shows_progress_on_a_terminal_and_nothing_when_piped() {
    let d = Daemon::start_in(PORTS);
    let dir = d.dir.path();
    let thick = dir.join("thick.img");
    let path_arg = format!("path={}", thick.display());

    // A thick create on a terminal: the progress line, cleared, then the answer.
    let (ok, tty) = on_terminal(
        &d,
        &[
            "create",
            "core/fileio_1/thick",
            &path_arg,
            "size=2G",
            "sparse=0",
        ],
    );
    assert!(ok, "{tty}");
    let first = format!(
        "\r\x1b[Kpreallocating {}: 0% (0 B of 2.0 GiB)",
        thick.display()
    );
    let last = format!(
        "\r\x1b[Kpreallocating {}: 100% (2.0 GiB of 2.0 GiB)",
        thick.display()
    );
    assert!(tty.contains(&first), "{tty:?}");
    let after = tty.split_once(&last).expect("the last report").1;
    assert!(
        after
            .starts_with("\r\x1b[Kcreated core/fileio_1/thick (every block of its file allocated)"),
        "{tty:?}"
    );
    assert_eq!(std::fs::metadata(&thick).unwrap().len(), 2 * GIB);
    assert!(allocated(&thick) >= 2 * GIB, "{}", allocated(&thick));

    // Piped: only the answer, and the file is just as thick.
    let piped = dir.join("piped.img");
    let out = d.cli_output(&[
        "create",
        "core/fileio_1/piped",
        &format!("path={}", piped.display()),
        "size=1G",
        "sparse=0",
    ]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "created core/fileio_1/piped (every block of its file allocated)\n"
    );
    assert!(allocated(&piped) >= GIB);

    // A sparse create reports nothing, even on a terminal.
    let sparse = dir.join("sparse.img");
    let (ok, tty) = on_terminal(
        &d,
        &[
            "create",
            "core/fileio_1/sparse",
            &format!("path={}", sparse.display()),
            "size=1G",
        ],
    );
    assert!(
        ok && !tty.contains("preallocating") && !tty.contains("\x1b[K"),
        "{tty:?}"
    );
    assert!(allocated(&sparse) < GIB / 2);

    // A thick resize: the added 2 GiB allocated, with progress.
    let (ok, tty) = on_terminal(
        &d,
        &["set", "core/fileio_1/piped/control", "size=3G,sparse=0"],
    );
    assert!(ok, "{tty}");
    assert!(
        tty.contains("\r\x1b[Kpreallocating core/fileio_1/piped: 100% (2.0 GiB of 2.0 GiB)"),
        "{tty:?}"
    );
    assert_eq!(std::fs::metadata(&piped).unwrap().len(), 3 * GIB);
    assert!(allocated(&piped) >= 3 * GIB);
    // Refused where there is nothing to allocate, with no progress at all.
    let (ok, tty) = on_terminal(
        &d,
        &["set", &format!("{RAMDISK}/control"), "size=128M,sparse=0"],
    );
    assert!(
        !ok && tty.contains("sparse=0 is for fileio") && !tty.contains("\x1b[K"),
        "{tty:?}"
    );

    // apply of 200 more objects on a terminal: counted in objects; piped: quiet.
    let saved = dir.join("saved.json");
    d.cli(&["config", "save", saved.to_str().unwrap()]);
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let before = cfg["storage_objects"].as_array().unwrap().len();
    let tpgs = 1;
    for i in 0..200 {
        cfg["storage_objects"].as_array_mut().unwrap().push(serde_json::json!({
            "plugin": "ramdisk", "hba": 7, "name": format!("r{i}"), "wwn": format!("progress-{i}"),
            "vendor_id": "IRONLUN", "product_id": "RAMDISK", "revision": "1.0", "size": 1 << 20,
        }));
    }
    let more = dir.join("more.json");
    std::fs::write(&more, serde_json::to_string(&cfg).unwrap()).unwrap();
    let (ok, tty) = on_terminal(&d, &["apply", more.to_str().unwrap()]);
    assert!(ok, "{tty}");
    let total = before + 200 + tpgs;
    assert!(
        tty.contains(&format!("\r\x1b[Kapplying: 0 of {total} objects (0%)")),
        "{tty:?}"
    );
    assert!(
        tty.contains(&format!(
            "\r\x1b[Kapplying: {total} of {total} objects (100%)"
        )),
        "{tty:?}"
    );
    assert!(d.cli(&["ls", "core/rd_mcp_7"]).contains("r199/"));
    let out = d.cli_output(&["apply", saved.to_str().unwrap()]);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("applying:"));
    assert!(!d.cli(&["ls", "core"]).contains("rd_mcp_7"));

    // import-lio of LIO's saveconfig.json with 50 RAM disks: the same report on a terminal.
    let objects: Vec<serde_json::Value> = (0..50)
        .map(|i| {
            serde_json::json!({"plugin": "ramdisk", "name": format!("lio{i}"), "size": 1 << 20,
                "wwn": format!("5bd4c5b6-0000-4000-8000-{i:012}"), "nullio": false})
        })
        .collect();
    let lio = dir.join("saveconfig.json");
    let text = serde_json::json!({"fabric_modules": [], "storage_objects": objects, "targets": []});
    std::fs::write(&lio, text.to_string()).unwrap();
    let (ok, tty) = on_terminal(&d, &["config", "import-lio", lio.to_str().unwrap()]);
    assert!(ok, "{tty}");
    assert!(
        tty.contains("\r\x1b[Kapplying: 50 of 50 objects (100%)"),
        "{tty:?}"
    );
    assert!(d.cli(&["ls", "core"]).contains("lio49/"));
}
