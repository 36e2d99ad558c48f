//! The smallest HTTP/1.1 responder the exporter needs (RFC 9112): one request per connection,
//! `GET /metrics` (a query string is ignored) answered with the scrape, everything else with
//! 404 (400 for what is not an HTTP request, 431 for a head over [`MAX_HEAD`]), then the
//! connection closes. Content negotiation (RFC 9110 §12.5.1): OpenMetrics 1.0.0 text when the
//! `Accept` header names `application/openmetrics-text`, else the Prometheus text format 0.0.4.
//! A client has [`HEAD_DEADLINE`] for its whole request head (a slow or silent one is then
//! dropped) and [`READ_TIMEOUT`] to take the response; at most [`MAX_CLIENTS`] are served at
//! once, further ones get 503 at once, so no client can hurt the daemon or hold the endpoint
//! for long.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Largest request head read (request line and headers).
pub const MAX_HEAD: usize = 8 << 10;
/// Time a client has to send its whole request head (not per read: a byte now and then does
/// not keep a connection).
pub const HEAD_DEADLINE: Duration = Duration::from_secs(2);
/// Time a client has to take the response.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Clients served at once (an idle socket costs little; the deadline frees places fast).
pub const MAX_CLIENTS: usize = 64;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Bind `addr` (Err: one line naming the flag).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--metrics {addr}: cannot listen: {e}"))
}

/// Serve scrapes until the task is dropped.
pub async fn serve(listener: TcpListener, registry: Registry) {
    let registry = Arc::new(registry);
    let clients = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(permit) = clients.clone().try_acquire_owned() else {
            tokio::spawn(busy(stream));
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout(HEAD_DEADLINE + READ_TIMEOUT, answer(stream, &registry)).await;
            drop(permit);
        });
    }
}

/// All places taken: 503 without reading the request (bounded, like every write here).
async fn busy(mut stream: TcpStream) {
    let msg = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(msg.as_bytes()).await;
        let _ = stream.shutdown().await;
        // Take what the client sent until it closes: closing on unread bytes would reset the
        // connection and could cost it the answer.
        let mut sink = [0u8; 1024];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    /// `GET /metrics`; true: OpenMetrics wanted.
    Metrics(bool),
    NotFound,
    Bad,
    TooLarge,
}

/// Judge a request head (`head` holds at least the request line).
fn parse(head: &[u8]) -> Asked {
    let Ok(head) = std::str::from_utf8(head) else {
        return Asked::Bad;
    };
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Asked::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Asked::Bad;
    }
    let path = target.split('?').next().unwrap_or_default();
    if method != "GET" || path != "/metrics" {
        return Asked::NotFound;
    }
    let openmetrics = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("accept") && v.contains("application/openmetrics-text")
        })
    });
    Asked::Metrics(openmetrics)
}

/// Read one request head and answer it.
async fn answer(mut stream: TcpStream, registry: &Registry) {
    let mut buf = Vec::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + HEAD_DEADLINE;
    let asked = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break parse(&buf[..end]);
        }
        if buf.len() >= MAX_HEAD {
            break Asked::TooLarge;
        }
        let mut chunk = [0u8; 1024];
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        buf.extend_from_slice(&chunk[..n]);
    };
    let (status, ctype, body) = match asked {
        Asked::Metrics(om) => {
            let mut body = String::new();
            let (ok, ctype) = if om {
                (text::encode(&mut body, registry).is_ok(), OPENMETRICS)
            } else {
                (
                    prometheus_text::encode(&mut body, registry).is_ok(),
                    prometheus_text::CONTENT_TYPE,
                )
            };
            if ok {
                ("200 OK", ctype, body)
            } else {
                (
                    "500 Internal Server Error",
                    "text/plain",
                    "encoding failed\n".into(),
                )
            }
        }
        Asked::NotFound => ("404 Not Found", "text/plain", "only GET /metrics\n".into()),
        Asked::Bad => ("400 Bad Request", "text/plain", "bad request\n".into()),
        Asked::TooLarge => (
            "431 Request Header Fields Too Large",
            "text/plain",
            "request head too large\n".into(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(READ_TIMEOUT, async {
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nHost: x"),
            Asked::Metrics(false)
        );
        assert_eq!(parse(b"GET /metrics?x=1 HTTP/1.0"), Asked::Metrics(false));
        assert_eq!(parse(b"POST /metrics HTTP/1.1"), Asked::NotFound);
        assert_eq!(parse(b"GET / HTTP/1.1"), Asked::NotFound);
        assert_eq!(parse(b"GET /metrics/x HTTP/1.1"), Asked::NotFound);
        assert_eq!(parse(b"GET /metrics"), Asked::Bad);
        assert_eq!(parse(b"GET /metrics SPDY/3"), Asked::Bad);
        assert_eq!(parse(b"\xff\xfe"), Asked::Bad);
    }

    #[test]
    fn accept_picks_openmetrics() {
        let h = b"GET /metrics HTTP/1.1\r\nACCEPT: application/openmetrics-text;version=1.0.0,text/plain;q=0.5";
        assert_eq!(parse(h), Asked::Metrics(true));
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nAccept: text/plain"),
            Asked::Metrics(false)
        );
    }
}
