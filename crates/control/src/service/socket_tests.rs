//! The control socket's doors: who may use it, and what a slow or oversized request costs.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::tests::{ls, started};
use super::*;
use crate::progress::Unit;

/// A daemon on `dir` serving with `timeout`; the socket path and the server task.
async fn serving(dir: &Path, timeout: Duration) -> (PathBuf, tokio::task::JoinHandle<()>) {
    let sock = dir.join(SOCKET_FILE);
    let control = Arc::new(Mutex::new(started(dir).await));
    let listener = bind_socket(&sock).await.expect("bind");
    let policy = SocketPolicy {
        timeout,
        ..SocketPolicy::of_this_process()
    };
    (sock, tokio::spawn(serve(listener, control, policy)))
}

/// The one line the daemon sends on `stream` before closing it, and that it closes.
async fn last_line(stream: &mut UnixStream) -> Response {
    let mut buf = Vec::new();
    let mut rd = BufReader::new(stream);
    rd.read_until(b'\n', &mut buf).await.expect("read");
    let resp: Response = serde_json::from_slice(&buf).expect("one JSON line");
    let mut rest = Vec::new();
    rd.read_to_end(&mut rest).await.expect("read to the end");
    assert!(rest.is_empty(), "nothing after the refusal");
    resp
}

#[test]
fn root_and_the_daemon_user_are_the_only_peers() {
    let p = SocketPolicy {
        daemon_uid: 1000,
        timeout: SocketPolicy::TIMEOUT,
    };
    assert!(p.allows(0));
    assert!(p.allows(1000));
    for uid in [1, 999, 1001, 65534, u32::MAX] {
        assert!(!p.allows(uid), "uid {uid}");
    }
    let root = SocketPolicy {
        daemon_uid: 0,
        timeout: SocketPolicy::TIMEOUT,
    };
    assert!(root.allows(0));
    assert!(!root.allows(1000));
}

#[tokio::test]
async fn a_stalled_client_is_dropped_and_delays_no_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sock, server) = serving(dir.path(), Duration::from_secs(1)).await;
    let mut stalled = UnixStream::connect(&sock).await.expect("connect");
    stalled
        .write_all(b"{\"op\":\"ls\",")
        .await
        .expect("half a request");
    let stalled_at = Instant::now();

    // While it stalls, another client is served at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let r = ls(&sock, "core").await;
    assert!(r.ok, "{r:?}");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );

    let resp = tokio::time::timeout(Duration::from_secs(5), last_line(&mut stalled))
        .await
        .expect("the stalled client is dropped within its timeout");
    assert!(!resp.ok && resp.code == 2, "{resp:?}");
    assert!(
        resp.error.contains("no complete request line within 1 s"),
        "{resp:?}"
    );
    assert!(stalled_at.elapsed() >= Duration::from_millis(900));
    server.abort();
}

#[tokio::test]
async fn an_oversized_request_is_refused_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sock, server) = serving(dir.path(), Duration::from_secs(5)).await;
    let stream = UnixStream::connect(&sock).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let big = vec![b'x'; MAX_REQUEST as usize + 4096];
    // The daemon stops reading after the limit: write in the background.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&big).await;
        wr
    });
    let mut buf = Vec::new();
    let mut lines = BufReader::new(&mut rd);
    tokio::time::timeout(Duration::from_secs(5), lines.read_until(b'\n', &mut buf))
        .await
        .expect("answered")
        .expect("read");
    let resp: Response = serde_json::from_slice(&buf).expect("one JSON line");
    assert!(!resp.ok && resp.code == 2, "{resp:?}");
    assert!(
        resp.error
            .contains("request longer than 67108864 bytes refused"),
        "{resp:?}"
    );
    let _ = writer.await;
    // The daemon still serves.
    let r = ls(&sock, "").await;
    assert!(r.ok, "{r:?}");
    server.abort();
}

#[tokio::test]
async fn progress_lines_come_before_the_response_only_when_asked_for() {
    let dir = tempfile::tempdir().expect("tmp");
    let (sock, server) = serving(dir.path(), Duration::from_secs(5)).await;
    let thick = |name: &str, file: &str| Request::Create {
        path: format!("core/fileio_1/{name}"),
        args: vec![format!("path={file}"), "size=1G".into(), "sparse=0".into()],
    };
    let mut seen = Vec::new();
    let r = request_with_progress(&sock, &thick("a", "/srv/a.img"), &mut |m| {
        seen.push(m.clone())
    })
    .await
    .expect("request");
    assert!(r.ok, "{r:?}");
    assert!(
        r.output.contains("every block of its file allocated"),
        "{}",
        r.output
    );
    let firsts: Vec<(u64, u64)> = seen.iter().map(|m| (m.done, m.total)).collect();
    assert_eq!(firsts, [(0, 1 << 30), (1 << 30, 1 << 30)]);
    assert!(seen
        .iter()
        .all(|m| m.task == "preallocating /srv/a.img" && m.unit == Unit::Bytes));

    // Not asked for: the response is the first line.
    let r = request(&sock, &thick("b", "/srv/b.img"))
        .await
        .expect("request");
    assert!(r.ok, "{r:?}");

    // A plain change reports nothing, even when asked.
    let mut seen = Vec::new();
    let plain = Request::Create {
        path: "core/rd_mcp_1/r".into(),
        args: vec!["size=1M".into()],
    };
    let r = request_with_progress(&sock, &plain, &mut |m| seen.push(m.clone()))
        .await
        .expect("plain");
    assert!(r.ok && seen.is_empty(), "{r:?} {seen:?}");

    // A failed preallocation: the progress so far, then the refusal; nothing created.
    let mut seen = Vec::new();
    let r = request_with_progress(&sock, &thick("c", "/srv/full.img"), &mut |m| {
        seen.push(m.clone())
    })
    .await
    .expect("request");
    assert!(!r.ok && r.code == 2, "{r:?}");
    assert!(
        r.error.contains("No space left") && r.error.contains("nothing changed"),
        "{}",
        r.error
    );
    assert_eq!(seen.len(), 1);
    let r = ls(&sock, "core/fileio_1").await;
    assert!(
        r.output.contains("a/") && !r.output.contains("c/"),
        "{}",
        r.output
    );

    // The protocol, raw: the opt-in answer, progress lines, the response.
    let mut raw = UnixStream::connect(&sock).await.expect("connect");
    let text = format!(
        "{{\"op\":\"progress\"}}\n{}\n",
        serde_json::to_string(&thick("d", "/srv/d.img")).expect("json")
    );
    raw.write_all(text.as_bytes()).await.expect("write");
    let mut rd = BufReader::new(&mut raw);
    let mut lines = Vec::new();
    for _ in 0..4 {
        let mut buf = String::new();
        rd.read_line(&mut buf).await.expect("read");
        lines.push(buf);
    }
    assert_eq!(lines[0], "{\"ok\":true,\"output\":\"progress on\"}\n");
    assert!(
        lines[1].starts_with("{\"progress\":{\"task\":\"preallocating /srv/d.img\",\"done\":0,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("\"done\":1073741824,\"total\":1073741824,\"unit\":\"bytes\""),
        "{}",
        lines[2]
    );
    assert!(lines[3].starts_with("{\"ok\":true"), "{}", lines[3]);
    server.abort();
}
