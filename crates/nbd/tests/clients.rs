//! The NBD server judged by real clients: nbdinfo (libnbd), qemu-io and qemu-img, over TCP and
//! a Unix socket, against an in-memory 64 MiB disk.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;

use support::{have, run, Server, BLOCK, DISK_SIZE, MAX_REQUEST};

fn nbdinfo_json(server: &Server) -> serde_json::Value {
    let (out, text) = run("nbdinfo", &["--json", &server.uri()]);
    assert!(out.status.success(), "nbdinfo --json failed:\n{text}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn check_export(server: &Server) {
    let j = nbdinfo_json(server);
    let exports = j["exports"].as_array().unwrap();
    assert_eq!(exports.len(), 1, "{j:#}");
    let e = &exports[0];
    assert_eq!(e["export-size"], DISK_SIZE as u64, "{j:#}");
    assert_eq!(e["block_size_minimum"], BLOCK, "{j:#}");
    assert_eq!(e["block_size_preferred"], 4096, "{j:#}");
    assert_eq!(e["block_size_maximum"], MAX_REQUEST, "{j:#}");
    for flag in [
        "can_flush",
        "can_fua",
        "can_trim",
        "can_zero",
        "can_multi_conn",
    ] {
        assert_eq!(e[flag], true, "{flag}: {j:#}");
    }
    assert_eq!(e["is_read_only"], false, "{j:#}");
}

#[test]
fn nbdinfo_sees_size_block_sizes_and_flags_over_tcp() {
    if !have("nbdinfo") {
        return;
    }
    let server = Server::tcp();
    check_export(&server);
    // The plain form and the default (empty) export name work too.
    let uri = format!("nbd://127.0.0.1:{}", server.port());
    let (out, text) = run("nbdinfo", &[&uri]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("67108864"), "{text}");
}

#[test]
fn nbdinfo_sees_the_export_over_a_unix_socket() {
    if !have("nbdinfo") {
        return;
    }
    let server = Server::unix();
    check_export(&server);
}

#[test]
fn nbdinfo_lists_the_export() {
    if !have("nbdinfo") {
        return;
    }
    let server = Server::tcp();
    let uri = format!("nbd://127.0.0.1:{}", server.port());
    let (out, text) = run("nbdinfo", &["--list", "--json", &uri]);
    assert!(out.status.success(), "{text}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<_> = j["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["export-name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec![support::EXPORT.to_owned()], "{j:#}");
}

fn qemu_io(server: &Server, cmds: &[&str]) -> String {
    let uri = server.uri();
    let mut args = vec!["-f", "raw"];
    for c in cmds {
        args.push("-c");
        args.push(c);
    }
    args.push(&uri);
    let (out, text) = run("qemu-io", &args);
    assert!(out.status.success(), "qemu-io {cmds:?} failed:\n{text}");
    assert!(
        !text.contains("fail") && !text.contains("error"),
        "qemu-io {cmds:?}:\n{text}"
    );
    text
}

fn qemu_io_round_trip(server: &Server) {
    qemu_io(
        server,
        &[
            "write -P 0xab 0 1M",
            "read -P 0xab 0 1M",
            "write -f -P 0xcd 1M 64k",
            "flush",
            "write -P 0x11 2M 1M",
            "write -z 2M 1M",
            "read -P 0 2M 1M",
            "write -P 0x22 4M 3M",
            "discard 4M 1M",
            "read -P 0x22 5M 2M",
            "read -P 0xcd 1M 64k",
        ],
    );
    let d = &server.disk;
    assert!(d.bytes(0, 1 << 20).iter().all(|&b| b == 0xab));
    assert!(d.bytes(1 << 20, 64 << 10).iter().all(|&b| b == 0xcd));
    assert!(d.bytes(2 << 20, 1 << 20).iter().all(|&b| b == 0));
    assert!(d.bytes(5 << 20, 2 << 20).iter().all(|&b| b == 0x22));
    assert!(
        d.fua_writes.load(Ordering::Relaxed) >= 1,
        "FUA reached the disk"
    );
    assert!(
        d.flushes.load(Ordering::Relaxed) >= 1,
        "FLUSH reached the disk"
    );
    assert!(
        d.zeroes.load(Ordering::Relaxed) >= 1,
        "WRITE_ZEROES reached it"
    );
    assert!(
        d.trims.load(Ordering::Relaxed) >= 1,
        "TRIM reached the disk"
    );
}

#[test]
fn qemu_io_writes_and_reads_back_patterns_over_tcp() {
    if !have("qemu-io") {
        return;
    }
    let server = Server::tcp();
    qemu_io_round_trip(&server);
}

#[test]
fn qemu_io_writes_and_reads_back_patterns_over_a_unix_socket() {
    if !have("qemu-io") {
        return;
    }
    let server = Server::unix();
    qemu_io_round_trip(&server);
}

#[test]
fn qemu_io_sees_data_written_behind_its_back_and_the_end_of_the_disk() {
    if !have("qemu-io") {
        return;
    }
    let server = Server::tcp();
    server.disk.fill(DISK_SIZE - 4096, 4096, 0x5a);
    qemu_io(&server, &["read -P 0x5a 67104768 4096"]);
    // Past the end: qemu refuses or the server does; either way not a success, no crash.
    let uri = server.uri();
    let (out, text) = run("qemu-io", &["-f", "raw", "-c", "read 64M 4096", &uri]);
    assert!(
        text.contains("rror") || !out.status.success(),
        "a read past the end must fail:\n{text}"
    );
    qemu_io(&server, &["read -P 0x5a 67104768 4096"]);
}

#[test]
fn qemu_img_copies_a_file_in_and_compares_it() {
    if !have("qemu-img") {
        return;
    }
    let server = Server::tcp();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.raw");
    let mut data = vec![0u8; 8 << 20];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i / 4096 % 251) as u8;
    }
    std::fs::write(&src, &data).unwrap();
    let src = src.to_str().unwrap();
    let uri = server.uri();
    let (out, text) = run(
        "qemu-img",
        &["convert", "-n", "-f", "raw", "-O", "raw", src, &uri],
    );
    assert!(out.status.success(), "qemu-img convert:\n{text}");
    assert_eq!(server.disk.bytes(0, 8 << 20), data);
    let (out, text) = run("qemu-img", &["info", "-f", "raw", &uri]);
    assert!(out.status.success(), "qemu-img info:\n{text}");
    assert!(text.contains("64 MiB"), "{text}");
}
