//! `ironlun host serve-nbd`: one logical unit over several paths ([`crate::mpath`]) exported
//! as an NBD disk ([`ironlun_nbd`]) on TCP and / or a Unix socket, with a status socket that
//! `ironlun host nbd-status` reads for a live view of the paths.
//!
//! The status socket speaks one thing: on connect the server writes the map's status as one
//! JSON object and closes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ctx::Ctx;
use crate::mpath::{MpathOptions, MultipathLu};
use crate::output::Output;
use crate::url::IscsiUrl;
use crate::{HostError, Result};

#[derive(Args, Debug)]
pub struct ServeNbdArgs {
    /// TCP address to serve NBD on (repeatable), e.g. 127.0.0.1:10809
    #[arg(long = "listen", value_name = "IP:PORT")]
    pub listen: Vec<std::net::SocketAddr>,
    /// Unix socket to serve NBD on
    #[arg(long = "unix", value_name = "PATH")]
    pub unix: Option<PathBuf>,
    /// The export's name (clients ask for it; an empty name is also accepted)
    #[arg(long, default_value = "ironlun")]
    pub name: String,
    /// Unix socket for `ironlun host nbd-status`
    #[arg(long, value_name = "PATH")]
    pub status_socket: Option<PathBuf>,
    /// Seconds to queue I/O while no path is usable, then fail it
    #[arg(long, value_name = "SECS", default_value = "30")]
    pub no_path_retry: f64,
    /// Seconds between path checks (TEST UNIT READY on failed and standby paths)
    #[arg(long, value_name = "SECS", default_value = "2")]
    pub checker_interval: f64,
    /// Seconds a better group must be usable before I/O goes back to it
    #[arg(long, value_name = "SECS", default_value = "0")]
    pub failback_delay: f64,
    /// Send SET TARGET PORT GROUPS when only Standby paths are left (explicit ALUA)
    #[arg(long)]
    pub explicit_failover: bool,
    /// Register this persistent reservation key (hex) on every path at start (mpathpersist)
    #[arg(long, value_name = "KEY")]
    pub register_key: Option<String>,
    /// iscsi:// URLs of the paths (one LU)
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NbdStatusArgs {
    /// The status socket of a running `serve-nbd` (its --status-socket)
    pub socket: PathBuf,
}

fn secs(what: &str, v: f64) -> Result<Duration> {
    if v.is_finite() && (0.0..=86400.0).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(HostError::bad_value(
            what,
            &v.to_string(),
            "valid: 0-86400 seconds",
        ))
    }
}

/// Serve until SIGINT / SIGTERM.
pub async fn run(ctx: &Ctx, a: &ServeNbdArgs) -> Result<Output> {
    if a.listen.is_empty() && a.unix.is_none() {
        return Err(HostError::new(
            "serve-nbd: give --listen IP:PORT and / or --unix PATH",
        ));
    }
    let opts = MpathOptions {
        no_path_retry: secs("--no-path-retry", a.no_path_retry)?,
        checker_interval: secs("--checker-interval", a.checker_interval)?
            .max(Duration::from_millis(100)),
        failback_delay: secs("--failback-delay", a.failback_delay)?,
        explicit_failover: a.explicit_failover,
        ..MpathOptions::default()
    };
    let key = match &a.register_key {
        None => None,
        Some(k) => Some(
            u64::from_str_radix(k.trim_start_matches("0x"), 16)
                .map_err(|_| HostError::bad_value("--register-key", k, "valid: a hex key"))?,
        ),
    };
    let urls = a
        .urls
        .iter()
        .map(|u| IscsiUrl::parse(u))
        .collect::<Result<Vec<_>>>()?;
    let lu = Arc::new(MultipathLu::open(ctx, &urls, opts).await?);
    if let Some(k) = key {
        lu.register_all(k).await?;
    }
    let st = lu.status();
    eprintln!(
        "serve-nbd: {} ({} bytes, {} paths) as export '{}'",
        st.wwid,
        st.size_bytes,
        st.paths.len(),
        a.name
    );
    let mut tasks = tokio::task::JoinSet::new();
    for addr in &a.listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| HostError::new(format!("serve-nbd: cannot listen on {addr}: {e}")))?;
        eprintln!(
            "serve-nbd: nbd://{}/{}",
            l.local_addr().map_err(|e| HostError::new(e.to_string()))?,
            a.name
        );
        let (lu, name) = (lu.clone(), a.name.clone());
        tasks.spawn(async move { ironlun_nbd::serve(l, lu, &name, std::future::pending()).await });
    }
    if let Some(p) = &a.unix {
        let _ = std::fs::remove_file(p);
        let l = tokio::net::UnixListener::bind(p).map_err(|e| {
            HostError::new(format!("serve-nbd: cannot listen on {}: {e}", p.display()))
        })?;
        eprintln!("serve-nbd: nbd+unix:///{}?socket={}", a.name, p.display());
        let (lu, name) = (lu.clone(), a.name.clone());
        tasks.spawn(async move { ironlun_nbd::serve(l, lu, &name, std::future::pending()).await });
    }
    if let Some(p) = &a.status_socket {
        let _ = std::fs::remove_file(p);
        let l = tokio::net::UnixListener::bind(p).map_err(|e| {
            HostError::new(format!("serve-nbd: cannot listen on {}: {e}", p.display()))
        })?;
        let lu = lu.clone();
        tasks.spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let body = serde_json::to_vec(&lu.status()).unwrap_or_default();
                let _ = s.write_all(&body).await;
            }
            Ok::<(), std::io::Error>(())
        });
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| HostError::new(format!("serve-nbd: signals: {e}")))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        Some(r) = tasks.join_next() => {
            if let Ok(Err(e)) = r {
                return Err(HostError::new(format!("serve-nbd: {e}")));
            }
        }
    }
    tasks.abort_all();
    for p in [a.unix.as_deref(), a.status_socket.as_deref()]
        .into_iter()
        .flatten()
    {
        let _ = std::fs::remove_file(p);
    }
    if let Ok(lu) = Arc::try_unwrap(lu) {
        lu.close().await;
    }
    Ok(Output::new(
        String::new(),
        serde_json::json!({"stopped": true}),
    ))
}

/// `nbd-status SOCKET`: the running export's paths.
pub async fn status(ctx: &Ctx, a: &NbdStatusArgs) -> Result<Output> {
    let v = read_status(&a.socket, ctx.timeout).await?;
    Ok(Output::new(render_status(&v), v))
}

async fn read_status(p: &Path, limit: Duration) -> Result<serde_json::Value> {
    let what = format!("status socket {}", p.display());
    let fut = async {
        let mut s = tokio::net::UnixStream::connect(p)
            .await
            .map_err(|e| HostError::new(format!("{what}: {e}")))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)
            .await
            .map_err(|e| HostError::new(format!("{what}: {e}")))?;
        serde_json::from_slice(&buf)
            .map_err(|e| HostError::new(format!("{what}: not a status: {e}")))
    };
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| HostError::new(format!("{what}: no answer within the timeout")))?
}

/// The status like `multipath -ll` with counters.
pub fn render_status(v: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let mut t = format!(
        "{} size={} block={} active prio={} groups={} alua rereads={}\n",
        s(&v["wwid"]),
        v["size_bytes"],
        v["block_size"],
        v["active_priority"],
        v["active_groups"],
        v["alua_rereads"]
    );
    for p in v["paths"].as_array().into_iter().flatten() {
        t.push_str(&format!(
            "  {} tpg={} {}{} prio={} {} {} {} ios={} errors={} failovers={}\n",
            s(&p["url"]),
            p["target_port_group"],
            s(&p["state"]),
            if p["pref"].as_bool() == Some(true) {
                " pref"
            } else {
                ""
            },
            p["priority"],
            s(&p["checker"]),
            if p["connected"].as_bool() == Some(true) {
                "connected"
            } else {
                "disconnected"
            },
            if p["in_use"].as_bool() == Some(true) {
                "in use"
            } else {
                "idle"
            },
            p["counters"]["ios"],
            p["counters"]["errors"],
            p["counters"]["failovers"]
        ));
        if let Some(e) = p["last_error"].as_str() {
            t.push_str(&format!("    last error: {e}\n"));
        }
    }
    t
}
