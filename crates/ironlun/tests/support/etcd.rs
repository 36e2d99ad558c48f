//! A real 3-member etcd cluster on loopback for the cluster tests (Debian's `etcd-server`,
//! etcd 3.4: `/usr/bin/etcd`, `/usr/bin/etcdctl`), killed and reaped on drop.
//!
//! [`EtcdCluster::start`]`(base)` uses client ports `base`, `base+1`, `base+2` and peer ports
//! `base+10`, `base+11`, `base+12` on 127.0.0.1; [`EtcdCluster::spare_ports`] are `base+13` ..
//! `base+19`, for what else the test runs (gateways): a test reserves `base..base+20`, so tests
//! running in parallel never take each other's ports (a killed daemon's port stays its own).
//! Members are `m0`, `m1`, `m2`, each with its own data dir and log (`m<i>.log`) in one temp
//! dir; heartbeat 50 ms and election timeout 500 ms, so a new leader is elected quickly.
//! Everything talks plain HTTP/1.0 to the members (`/health` and the JSON gRPC gateway under
//! `/v3/`); keys and values in that JSON are base64.
//!
//! Ports in use: etcd_support 4100-4112.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const MEMBERS: usize = 3;

/// Is etcd (with etcdctl) installed?
pub fn etcd_available() -> bool {
    [("etcd", "--version"), ("etcdctl", "version")]
        .iter()
        .all(|(b, arg)| {
            Command::new(b)
                .arg(arg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// True if the test can run: etcd is installed. Else prints "skipped: etcd not installed" and
/// returns false, or panics when IRONLUN_REQUIRE_ETCD=1.
pub fn etcd_or_skip() -> bool {
    if etcd_available() {
        return true;
    }
    assert!(
        std::env::var("IRONLUN_REQUIRE_ETCD").as_deref() != Ok("1"),
        "etcd not installed and IRONLUN_REQUIRE_ETCD=1"
    );
    eprintln!("skipped: etcd not installed");
    false
}

pub struct EtcdCluster {
    dir: tempfile::TempDir,
    base: u16,
    token: String,
    children: Vec<Option<Child>>,
    paused: Vec<Cell<bool>>,
}

impl EtcdCluster {
    /// Start the cluster (ports: see the module doc) and wait until every member is healthy.
    pub fn start(base: u16) -> EtcdCluster {
        for p in (0..MEMBERS as u16).flat_map(|i| [base + i, base + 10 + i]) {
            if let Err(e) = TcpListener::bind(("127.0.0.1", p)) {
                panic!("etcd cluster: port 127.0.0.1:{p} is busy ({e})");
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut c = EtcdCluster {
            dir: tempfile::tempdir().expect("etcd temp dir"),
            base,
            token: format!("ironlun-{}-{nanos}", std::process::id()),
            children: (0..MEMBERS).map(|_| None).collect(),
            paused: (0..MEMBERS).map(|_| Cell::new(false)).collect(),
        };
        for i in 0..MEMBERS {
            c.spawn(i);
        }
        c.wait_healthy(&[0, 1, 2]);
        c
    }

    /// "http://127.0.0.1:p0,http://127.0.0.1:p1,http://127.0.0.1:p2"
    pub fn endpoints(&self) -> String {
        let urls: Vec<String> = (0..MEMBERS)
            .map(|i| format!("http://127.0.0.1:{}", self.client_port(i)))
            .collect();
        urls.join(",")
    }

    /// Ports of this test's block the cluster does not use (`base+13..base+20`): a test's
    /// daemons take theirs from here, not from a range other tests share.
    pub fn spare_ports(&self) -> std::ops::Range<u16> {
        self.base + 10 + MEMBERS as u16..self.base + 20
    }

    pub fn client_port(&self, i: usize) -> u16 {
        assert!(i < MEMBERS, "no etcd member {i}");
        self.base + i as u16
    }

    fn peer_port(&self, i: usize) -> u16 {
        self.client_port(i) + 10
    }

    fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("m{i}.log")))
            .expect("etcd member log");
        let cluster: Vec<String> = (0..MEMBERS)
            .map(|j| format!("m{j}=http://127.0.0.1:{}", self.peer_port(j)))
            .collect();
        let client = format!("http://127.0.0.1:{}", self.client_port(i));
        let peer = format!("http://127.0.0.1:{}", self.peer_port(i));
        let child = Command::new("etcd")
            .arg(format!("--name=m{i}"))
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("m{i}.etcd")))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={}", cluster.join(",")))
            .arg("--initial-cluster-state=new")
            .arg(format!("--initial-cluster-token={}", self.token))
            .args(["--heartbeat-interval=50", "--election-timeout=500"])
            .args(["--logger=zap", "--log-outputs=stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone etcd log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn etcd");
        self.children[i] = Some(child);
        self.paused[i].set(false);
    }

    fn wait_healthy(&mut self, members: &[usize]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut pending: Vec<usize> = members.to_vec();
        loop {
            for &i in &pending {
                assert!(self.alive(i), "etcd m{i} exited:\n{}", self.log_tails());
            }
            pending.retain(|&i| {
                !matches!(http(self.client_port(i), "GET", "/health", ""),
                    Ok(b) if b.replace(' ', "").contains(r#""health":"true""#))
            });
            if pending.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd members {pending:?} not healthy within 20 s:\n{}",
                self.log_tails()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A member to ask: started, not paused.
    fn usable(&self, i: usize) -> bool {
        self.children[i].is_some() && !self.paused[i].get()
    }

    /// POST `body` to `path` (e.g. `/v3/kv/range`) of member `i`'s JSON gateway.
    pub fn post(&self, i: usize, path: &str, body: &str) -> Result<Value, String> {
        let text = http(self.client_port(i), "POST", path, body)?;
        serde_json::from_str(&text).map_err(|e| format!("m{i} {path}: {e}: {text}"))
    }

    /// Index of the current leader: the member that at least two live members report as
    /// leader (`/v3/maintenance/status`). Retries up to 10 s while there is none.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut ids = vec![None; MEMBERS];
            let mut votes = Vec::new();
            for i in (0..MEMBERS).filter(|&i| self.usable(i)) {
                if let Ok(v) = self.post(i, "/v3/maintenance/status", "{}") {
                    ids[i] = v["header"]["member_id"].as_str().map(str::to_string);
                    votes.extend(v["leader"].as_str().map(str::to_string));
                }
            }
            let winner = (0..MEMBERS).find(|&i| {
                ids[i]
                    .as_ref()
                    .is_some_and(|id| votes.iter().filter(|v| *v == id).count() >= 2)
            });
            if let Some(i) = winner {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no etcd leader within 10 s (ids {ids:?}, votes {votes:?}):\n{}",
                self.log_tails()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9 member `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        let mut c = self.children[i].take().expect("etcd member running");
        c.kill().expect("SIGKILL etcd member");
        c.wait().expect("reap etcd member");
        self.paused[i].set(false);
    }

    /// Start member `i` again on its data dir (the same command line) and wait for its health.
    pub fn restart(&mut self, i: usize) {
        assert!(self.children[i].is_none(), "restart of running etcd m{i}");
        self.spawn(i);
        self.wait_healthy(&[i]);
    }

    fn signal(&self, i: usize, sig: libc::c_int) {
        let c = self.children[i].as_ref().expect("etcd member running");
        let pid = libc::pid_t::try_from(c.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on the pid of our own child process, not yet reaped.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "signal {sig} to etcd m{i}");
    }

    /// SIGSTOP member `i`.
    pub fn pause(&self, i: usize) {
        self.signal(i, libc::SIGSTOP);
        self.paused[i].set(true);
    }

    /// SIGCONT member `i`.
    pub fn resume(&self, i: usize) {
        self.signal(i, libc::SIGCONT);
        self.paused[i].set(false);
    }

    /// The last `n` lines of member `i`'s log.
    pub fn log_tail(&self, i: usize, n: usize) -> String {
        let s =
            std::fs::read_to_string(self.dir.path().join(format!("m{i}.log"))).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn log_tails(&self) -> String {
        (0..MEMBERS)
            .map(|i| format!("--- etcd m{i} log (tail) ---\n{}\n", self.log_tail(i, 20)))
            .collect()
    }

    /// Member `i` started and not exited?
    pub fn alive(&mut self, i: usize) -> bool {
        match self.children[i].as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Every (key, value) under `prefix`, as strings, from any live member.
    pub fn get_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        // The range end is the prefix with its last byte + 1 (UTF-8 has no 0xff byte).
        let mut end = prefix.as_bytes().to_vec();
        match end.last_mut() {
            Some(b) => *b += 1,
            None => end.push(0), // empty prefix: every key
        }
        let body = format!(
            r#"{{"key":"{}","range_end":"{}"}}"#,
            b64(prefix.as_bytes()),
            b64(&end)
        );
        let mut errors = Vec::new();
        for i in (0..MEMBERS).filter(|&i| self.usable(i)) {
            match self.post(i, "/v3/kv/range", &body) {
                Ok(v) => {
                    let kvs = v["kvs"].as_array().cloned().unwrap_or_default();
                    let text = |x: &Value| {
                        let raw = unb64(x.as_str().unwrap_or(""));
                        String::from_utf8_lossy(&raw).into_owned()
                    };
                    return kvs
                        .iter()
                        .map(|kv| (text(&kv["key"]), text(&kv["value"])))
                        .collect();
                }
                Err(e) => errors.push(e),
            }
        }
        panic!("get_prefix({prefix:?}): no member answered: {errors:?}");
    }

    /// Put `key` = `value` through any live member.
    pub fn put(&self, key: &str, value: &str) {
        let body = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            b64(key.as_bytes()),
            b64(value.as_bytes())
        );
        let ok = (0..MEMBERS)
            .filter(|&i| self.usable(i))
            .any(|i| self.post(i, "/v3/kv/put", &body).is_ok());
        assert!(ok, "put({key:?}): no member accepted it");
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails());
        }
        for mut c in self.children.iter_mut().filter_map(Option::take) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One HTTP/1.0 request to 127.0.0.1:`port`; the body of a 200 answer.
fn http(port: u16, method: &str, path: &str, body: &str) -> Result<String, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let err = |e: std::io::Error| format!("{method} {path} on port {port}: {e}");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(err)?;
    s.set_write_timeout(Some(Duration::from_secs(3)))
        .map_err(err)?;
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(err)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(err)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{method} {path} on port {port}: no HTTP header: {text}"))?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("{method} {path} on port {port}: {status}: {rest}"));
    }
    Ok(rest.to_string())
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn b64(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (k, &b)| n | (u32::from(b) << (16 - 8 * k)));
        for k in 0..4 {
            let c = B64[((n >> (18 - 6 * k)) & 63) as usize] as char;
            out.push(if k <= chunk.len() { c } else { '=' });
        }
    }
    out
}

/// Decode standard base64 (padding and unknown characters are skipped).
pub fn unb64(text: &str) -> Vec<u8> {
    let (mut acc, mut bits, mut out) = (0u32, 0, Vec::new());
    for c in text.bytes() {
        let Some(v) = B64.iter().position(|&x| x == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
