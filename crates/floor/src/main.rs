//! `iscsi-floor`: the benchmark floor (issue 11). A minimal iSCSI target (RFC 7143) that answers
//! READ and WRITE from a memory buffer with no engine, no task set, no backstore: what loopback
//! TCP and iSCSI framing alone cost on this machine. scripts/bench.sh measures it beside ironlun
//! and tgtd. One plain thread per connection, blocking sockets, reads and writes buffered and
//! flushed when no further request is already buffered. Not part of the daemon.
//!
//! Usage: iscsi-floor [--listen 127.0.0.1:3342] [--size 1G] [--stats FILE]
//! With `--stats`, each connection thread adds its context switches to FILE as it ends
//! (`/proc/<pid>/task` loses a thread's counts when it exits; bench.sh adds these).
//! Any target name logs in; LUN 0 is the disk. A peer that breaks the protocol loses its
//! connection, never the process.

mod login;
mod scsi;
mod session;
mod wire;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Context switches of the connection threads that have ended.
static ENDED_SWITCHES: AtomicU64 = AtomicU64::new(0);

/// Adds this thread's voluntary and involuntary switches to the total and rewrites `path`.
fn record_switches(path: &PathBuf) {
    let Ok(status) = std::fs::read_to_string("/proc/thread-self/status") else {
        return;
    };
    let mine: u64 = status
        .lines()
        .filter(|l| l.contains("ctxt_switches:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    let total = ENDED_SWITCHES.fetch_add(mine, Ordering::Relaxed) + mine;
    if let Err(e) = std::fs::write(path, format!("{total}\n")) {
        eprintln!("iscsi-floor: cannot write {}: {e}", path.display());
    }
}

/// The disk: one buffer shared by every connection.
pub struct Disk {
    pub bytes: Mutex<Vec<u8>>,
    pub size: u64,
}

fn parse_size(s: &str) -> Option<u64> {
    let (num, mul) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

fn main() -> ExitCode {
    let mut listen = "127.0.0.1:3342".to_string();
    let mut size = 1u64 << 30;
    let mut stats: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next();
        match (a.as_str(), v) {
            ("--listen", Some(v)) => listen = v,
            ("--stats", Some(v)) => stats = Some(PathBuf::from(v)),
            ("--size", Some(v)) => match parse_size(&v) {
                Some(s) if s >= scsi::BLOCK => size = s - s % scsi::BLOCK,
                _ => {
                    eprintln!("iscsi-floor: bad --size {v}");
                    return ExitCode::FAILURE;
                }
            },
            _ => {
                eprintln!(
                    "usage: iscsi-floor [--listen ADDR:PORT] [--size N[K|M|G]] [--stats FILE]"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let Ok(len) = usize::try_from(size) else {
        eprintln!("iscsi-floor: --size too large for memory");
        return ExitCode::FAILURE;
    };
    let disk = Arc::new(Disk {
        bytes: Mutex::new(vec![0u8; len]),
        size,
    });
    let listener = match TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("iscsi-floor: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("iscsi-floor: listening on {listen}, {size} bytes");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let disk = Arc::clone(&disk);
        let stats = stats.clone();
        std::thread::spawn(move || {
            let peer = stream.peer_addr().ok();
            if let Err(e) = session::serve(stream, &disk) {
                eprintln!("iscsi-floor: {peer:?}: connection dropped: {e}");
            }
            if let Some(path) = &stats {
                record_switches(path);
            }
        });
    }
    ExitCode::SUCCESS
}
