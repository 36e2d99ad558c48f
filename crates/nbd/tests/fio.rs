//! fio's nbd engine (libnbd underneath) against the server: random 4 KiB writes at queue depth
//! 16 with crc32c verify, over TCP and over a Unix socket; no I/O errors, no verify failures.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;

use support::{have, run, Server};

fn fio_has_nbd() -> bool {
    if !have("fio") {
        return false;
    }
    let (_, text) = run("fio", &["--enghelp"]);
    let found = text.lines().any(|l| l.trim() == "nbd");
    if !found {
        if std::env::var_os("IRONLUN_REQUIRE_NBD_CLIENTS").is_some() {
            panic!("this fio has no nbd engine and IRONLUN_REQUIRE_NBD_CLIENTS is set");
        }
        eprintln!("note: this fio has no nbd engine; skipping");
    }
    found
}

fn fio_randwrite_verify(server: &Server) {
    let uri = format!("--uri={}", server.uri());
    let (out, text) = run(
        "fio",
        &[
            "--name=t",
            "--ioengine=nbd",
            &uri,
            "--rw=randwrite",
            "--bs=4k",
            "--iodepth=16",
            "--size=32M",
            "--verify=crc32c",
            "--verify_fatal=1",
            // No verify state file left in the crate directory.
            "--verify_state_save=0",
            "--runtime=5",
            "--time_based=0",
            "--output-format=json",
        ],
    );
    assert!(out.status.success(), "fio failed:\n{text}");
    let start = text.find('{').unwrap_or(0);
    let j: serde_json::Value = serde_json::from_str(&text[start..])
        .or_else(|_| serde_json::from_slice(&out.stdout))
        .unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let job = &j["jobs"][0];
    assert_eq!(job["error"], 0, "fio job error:\n{text}");
    let written = job["write"]["io_bytes"].as_u64().unwrap();
    let read = job["read"]["io_bytes"].as_u64().unwrap();
    assert_eq!(written, 32 << 20, "all of it written:\n{text}");
    assert_eq!(read, 32 << 20, "all of it read back and verified:\n{text}");
    assert!(server.disk.writes.load(Ordering::Relaxed) >= 8192);
}

#[test]
fn fio_random_writes_verify_over_tcp() {
    if !fio_has_nbd() {
        return;
    }
    let server = Server::tcp();
    fio_randwrite_verify(&server);
}

#[test]
fn fio_random_writes_verify_over_a_unix_socket() {
    if !fio_has_nbd() {
        return;
    }
    let server = Server::unix();
    fio_randwrite_verify(&server);
}
