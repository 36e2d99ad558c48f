//! `ironlun`: the daemon (`ironlun serve`), the CLI that drives it over the control socket
//! (docs/cli.md), and the host tools (`ironlun host`, docs/host.md).
//!
//! Exit status: 0 ok; 2 bad input (refused, nothing changed; also command-line usage errors);
//! 1 anything else (daemon not running, daemon failure).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use client::{client, client_runtime, exit_code, request_of, show, unreachable};
use first_run::{default_config, generated_secret, FirstRun, DEFAULT_CHAP_USER};
use ironlun_control::model::Config;
use ironlun_control::persist;
use ironlun_control::runtime::EngineRuntime;
use ironlun_control::service::{self, Control, CONFIG_FILE, SOCKET_FILE};
use ironlun_fabric::{Fabric, FabricOptions};
use limits::Limits;

mod client;
mod cluster;
mod first_run;
mod limits;
mod lio;
mod malloc;
mod metrics;
mod notify;
mod progress_line;
mod shell;

/// Default state directory for a first run.
const DEFAULT_STATE_DIR: &str = "./ironlun-state";
/// The target the embedded default config exports.
const DEFAULT_TARGET: &str = "iqn.2026-11.org.ironlun:default";

#[derive(Parser)]
#[command(
    name = "ironlun",
    version,
    about = "A userspace iSCSI target: daemon and CLI"
)]
struct Cli {
    /// State directory: config.json and control.sock live here [default: ./ironlun-state]
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Control socket to talk to (client commands; overrides --state-dir)
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the target daemon in the foreground
    Serve {
        /// Config to start from when the state directory has no config.json yet
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Portal of the built-in default config (used only on a first run without --config).
        /// Off loopback, initiators must log in with CHAP: a secret is generated and printed
        /// once, unless --insecure-demo
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:3260")]
        portal: SocketAddr,
        /// Serve the built-in default on a portal off loopback without CHAP: any host that
        /// reaches the portal may read and write the RAM disk
        #[arg(long)]
        insecure_demo: bool,
        /// Serve Prometheus / OpenMetrics metrics on http://ADDR/metrics (docs/metrics.md);
        /// off by default
        #[arg(long, value_name = "IP:PORT")]
        metrics: Option<SocketAddr>,
        /// Be one gateway of a cluster: etcd client URLs, comma-separated. LUs with
        /// attrib/cluster=1 share persistent reservations and ALUA group states with the other
        /// gateways (docs/cluster.md)
        #[arg(long, value_name = "URLS", requires = "node")]
        cluster: Option<String>,
        /// This gateway's name in the cluster
        #[arg(long, value_name = "NAME", requires = "cluster")]
        node: Option<String>,
        /// Lease TTL of the cluster membership, in seconds: a gateway that stopped is shown
        /// Unavailable within twice this
        #[arg(long, value_name = "SECS", default_value_t = 5)]
        cluster_ttl: u64,
        #[command(flatten)]
        limits: Limits,
    },
    /// List the object tree below PATH (default: everything), with attribute values
    Ls { path: Option<String> },
    /// Print one attribute's value (or a link's target)
    Get { path: String },
    /// Change one attribute
    Set {
        path: String,
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Create an object; parameters as key=value
    Create {
        path: String,
        #[arg(value_name = "KEY=VALUE")]
        args: Vec<String>,
    },
    /// Delete an object (and what depends on it, like targetcli)
    Delete { path: String },
    /// Create DST as a link to SRC (TPG LUN → device, ACL mapped LUN → TPG LUN)
    Link { src: String, dst: String },
    /// Run the set, create, delete and link commands of FILE ('-': stdin), one per line as on
    /// the command line ('#' starts a comment), as one change: all of them or none, saved once
    Batch { file: PathBuf },
    /// Make the running configuration equal to FILE (a config.json) with the fewest changes;
    /// prints the plan. Twice in a row changes nothing; sessions on untouched LUs go on
    Apply {
        file: PathBuf,
        /// Print the plan only; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Open sessions: initiator, ISID, target and TPG, mapped LUNs, connections (as
    /// targetcli's `sessions`); --detail adds the negotiated keys
    Sessions {
        #[arg(long)]
        detail: bool,
    },
    /// One screen: portals, targets, LUs with size and usage, sessions, PR and ALUA in brief
    Status,
    /// Save or restore the whole configuration
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Persistent reservations of a device: show them, or drop them after a host died
    Pr {
        #[command(subcommand)]
        cmd: PrCmd,
    },
    /// Asymmetric access (ALUA) of a device: list its target port groups, change a group's
    /// access state (an implicit transition) or preferred bit
    Alua {
        #[command(subcommand)]
        cmd: AluaCmd,
    },
    /// An interactive shell against the daemon, as targetcli's: cd, ls, pwd, get, set,
    /// create, delete, link and the other commands, with history and tab completion.
    /// Reads commands line by line when stdin is not a terminal
    Shell,
    /// Print a completion script for SHELL (bash, zsh, fish, ...) on stdout; see docs/cli.md
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Initiator tools against any iSCSI target (discover, inq, rtpg, stpg, persist, paths);
    /// no daemon, kernel or open-iscsi needed. See docs/host.md
    Host(Box<ironlun_host::cli::HostArgs>),
    /// The cluster of `serve --cluster` as etcd holds it: status, a group's state set on
    /// every gateway, a retired gateway forgotten. See docs/cluster.md
    Cluster(Box<cluster::ClusterArgs>),
}

#[derive(Subcommand)]
enum AluaCmd {
    /// Every target port group of a device: id, access type, primary state (name and code),
    /// status, preferred bit, delays, supported states and member ports (with RTPI)
    Show {
        /// The device, core/<kind>_<n>/<name>
        dev: String,
    },
    /// Change a group's primary access state (implicit transition; unit attention 2A/06)
    SetState {
        /// The device, core/<kind>_<n>/<name>
        dev: String,
        /// The target port group's name
        group: String,
        /// ao, ano, s, u, o or t (or the code: 0, 1, 2, 3, 14, 15)
        state: String,
    },
    /// Set or clear a group's preferred bit (PREF in REPORT TARGET PORT GROUPS)
    SetPref {
        /// The device, core/<kind>_<n>/<name>
        dev: String,
        /// The target port group's name
        group: String,
        /// on or off
        value: String,
    },
}

#[derive(Subcommand)]
enum PrCmd {
    /// Print a device's persistent reservations: APTPL, holder, type, PRgeneration and
    /// every registration (key, initiator port, target port)
    Show {
        /// The device, core/<kind>_<n>/<name>
        dev: String,
    },
    /// Drop every registration and the reservation of a device (logged; persisted if
    /// APTPL is active). Initiators lose their fencing: needs --force
    Clear {
        /// The device, core/<kind>_<n>/<name>
        dev: String,
        /// Really drop them
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Write the running configuration to FILE (default: the state directory's config.json)
    Save { file: Option<PathBuf> },
    /// Replace the running configuration with FILE (all or nothing)
    Restore { file: PathBuf },
    /// Make the running configuration the one of LIO's saveconfig.json FILE (rtslib-fb's
    /// format), with the fewest changes; prints what is not carried over, then the plan
    ImportLio {
        file: PathBuf,
        /// LIO's APTPL directory (`<dbroot>/pr`, e.g. /var/target/pr): persistent
        /// reservations of the imported devices are carried over
        #[arg(long, value_name = "DIR")]
        pr_dir: Option<PathBuf>,
        /// Print the report and the plan only; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the running configuration in LIO's saveconfig.json format to FILE (default:
    /// stdout); what LIO cannot hold is listed on stderr
    ExportLio { file: Option<PathBuf> },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let state_dir = cli
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(|| state_dir.join(SOCKET_FILE));
    let req = match cli.cmd {
        Cmd::Config {
            cmd: ConfigCmd::ExportLio { file },
        } => return lio::export_cmd(&socket, file.as_deref()),
        Cmd::Config {
            cmd:
                ConfigCmd::ImportLio {
                    file,
                    pr_dir,
                    dry_run,
                },
        } => return lio::import_cmd(&socket, &file, pr_dir.as_deref(), dry_run),
        Cmd::Serve {
            config,
            portal,
            insecure_demo,
            metrics,
            cluster,
            node,
            cluster_ttl,
            limits,
        } => {
            let cluster = match cluster::options(cluster, node, cluster_ttl) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ironlun: {e}");
                    return ExitCode::from(2);
                }
            };
            let first_run = FirstRun {
                portal,
                insecure_demo,
            };
            let opts = ServeOpts {
                config,
                first_run,
                metrics,
                cluster,
                options: limits.options(),
            };
            return serve_main(&state_dir, opts);
        }
        Cmd::Host(args) => {
            // The long-running export logs what happens to its clients and paths (RUST_LOG
            // overrides the level); the one-shot commands print only their result or error.
            if matches!(args.cmd, ironlun_host::cli::HostCmd::ServeNbd(_)) {
                init_log();
            }
            return ironlun_host::cli::run(*args);
        }
        Cmd::Cluster(args) => return cluster::run(*args),
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "ironlun", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Cmd::Shell => {
            let socket = cli.socket.unwrap_or_else(|| state_dir.join(SOCKET_FILE));
            return shell::run(&socket);
        }
        cmd => match request_of(cmd) {
            Ok(Some(req)) => req,
            Ok(None) => return ExitCode::from(2),
            Err(e) => {
                eprintln!("ironlun: {e}");
                return ExitCode::from(2);
            }
        },
    };
    client(&socket, &req)
}

/// Log to stderr at info (or RUST_LOG's levels).
fn init_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// What `serve` was started with.
struct ServeOpts {
    config: Option<PathBuf>,
    first_run: FirstRun,
    /// `--metrics`: where to serve `/metrics`.
    metrics: Option<SocketAddr>,
    /// `--cluster`: be one gateway of a cluster.
    cluster: Option<cluster::Options>,
    options: FabricOptions,
}

fn serve_main(state_dir: &Path, opts: ServeOpts) -> ExitCode {
    init_log();
    malloc::tune();
    let rt = match runtime(tokio::runtime::Builder::new_multi_thread()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(serve(state_dir, opts));
    // Sessions are drained and devices flushed by now; don't wait for stray tasks.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ironlun: {e}");
            ExitCode::from(1)
        }
    }
}

/// A tokio runtime from `b` with every driver; Err: the exit status after saying why.
fn runtime(mut b: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ExitCode> {
    b.enable_all().build().map_err(|e| {
        eprintln!("ironlun: cannot start the runtime: {e}");
        ExitCode::from(1)
    })
}

/// The state directory and its `pr/` (if there is one) are 0700: they hold CHAP secrets,
/// APTPL files and the control socket. A loose existing one is tightened, or warned about
/// where it is not the daemon's to change.
fn private_state_dir(dir: &Path) -> Result<(), String> {
    let pr = dir.join(ironlun_control::pr::PR_DIR);
    let dirs = if pr.is_dir() {
        vec![dir, &pr]
    } else {
        vec![dir]
    };
    for d in dirs {
        if let Some(warning) = persist::private_dir(d)? {
            tracing::warn!("{warning}");
        }
    }
    Ok(())
}

/// `iscsi://<portal>/<target>/<lun>` for every LUN of every enabled TPG.
fn urls(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for t in &cfg.targets {
        for g in t.tpgs.iter().filter(|g| g.enable) {
            for p in &g.portals {
                for l in &g.luns {
                    out.push(format!("iscsi://{}/{}/{}", p.addr(), t.wwn, l.index));
                }
            }
        }
    }
    out
}

async fn serve(state_dir: &Path, opts: ServeOpts) -> Result<(), String> {
    let ServeOpts {
        config,
        first_run,
        metrics,
        cluster,
        options,
    } = opts;
    let config = config.as_deref();
    let portal = first_run.portal;
    private_state_dir(state_dir)?;
    // Temp files of a save that a crash cut short (the saved file itself is whole: the old or
    // the new one).
    for dir in [
        state_dir.to_path_buf(),
        state_dir.join(ironlun_control::pr::PR_DIR),
    ] {
        let n = persist::remove_stale_temps(&dir);
        if n > 0 {
            tracing::info!(
                "removed {n} temp file(s) of an interrupted save in {}",
                dir.display()
            );
        }
    }
    // The runtime restores each device's APTPL file while building it, before any portal
    // is bound (Control::start → apply): an unreadable file stops the start here. ALUA
    // groups, states and offline flags are restored from config.json the same way.
    let mut runtime = EngineRuntime::new(Fabric::with_options(options), state_dir);
    let alua_events = runtime.take_alua_events();
    let live = runtime.live();
    let saved = state_dir.join(CONFIG_FILE);
    // The CHAP secret generated for the built-in default off loopback: shown once, on stderr,
    // after the start succeeded (never logged).
    let mut new_secret = None;
    let initial = if saved.exists() {
        if config.is_some() {
            tracing::warn!("{} exists; --config is ignored", saved.display());
        }
        tracing::info!("restoring {}", saved.display());
        // config.json and the changes journaled since it was last written whole.
        ironlun_control::journal::load(state_dir, &runtime)?
    } else if let Some(file) = config {
        tracing::info!("starting from {}", file.display());
        persist::load(file, &runtime)?
    } else {
        tracing::info!("first run: built-in default config (1 GiB RAM disk, demo mode, {portal})");
        if portal.ip().is_loopback() {
            default_config(&runtime, portal, None)?
        } else if first_run.insecure_demo {
            tracing::warn!(
                "--insecure-demo: {portal} is not loopback and needs no authentication: any host \
                 that reaches it may read and write the RAM disk"
            );
            default_config(&runtime, portal, None)?
        } else {
            let secret = generated_secret()?;
            let cfg = default_config(&runtime, portal, Some((DEFAULT_CHAP_USER, &secret)))?;
            new_secret = Some(secret);
            cfg
        }
    };
    // Catch SIGTERM / SIGINT before anything can reach the daemon: a stop that arrives as soon
    // as the control socket answers is still a clean shutdown, not the default signal death.
    let stop = ShutdownSignals::install()?;
    // Bind the socket first: a second daemon on the same state directory stops here.
    let socket = state_dir.join(SOCKET_FILE);
    let listener = service::bind_socket(&socket).await?;
    let metrics = match metrics {
        None => None,
        Some(addr) => match metrics::http::bind(addr).await {
            Ok(l) => Some((l, metrics::registry(runtime.live()))),
            Err(e) => {
                let _ = std::fs::remove_file(&socket);
                return Err(e);
            }
        },
    };
    let control = match Control::start(runtime, state_dir, initial).await {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&socket);
            return Err(e);
        }
    };
    // Clustered LUs are fenced from their creation until the cluster has synced them.
    let cluster = cluster::start(cluster, live).await?;
    for url in urls(control.config()) {
        println!("{url}");
    }
    if let Some(secret) = &new_secret {
        eprintln!(
            "ironlun: the default target listens on {portal}, beyond this host: initiators must \
             log in with CHAP\n\
             ironlun:   user:   {DEFAULT_CHAP_USER}\n\
             ironlun:   secret: {secret}\n\
             ironlun:   e.g. iscsi://{DEFAULT_CHAP_USER}%{secret}@<host>:{port}/{DEFAULT_TARGET}/0\n\
             ironlun: shown only now; kept in {} (mode 0600). `serve --insecure-demo` on a first \
             run serves it without CHAP.",
            saved.display(),
            port = portal.port()
        );
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tracing::info!(
        "serving; portals {:?}; control socket {}",
        control.runtime().listening(),
        socket.display()
    );
    let status = format!(
        "serving {} LU(s) on {:?}",
        control.config().storage_objects.len(),
        control.runtime().listening()
    );
    if let Some((l, registry)) = metrics {
        if let Ok(a) = l.local_addr() {
            tracing::info!("metrics on http://{a}/metrics");
        }
        tokio::spawn(metrics::http::serve(l, registry));
    }
    let control = Arc::new(tokio::sync::Mutex::new(control));
    cluster::manage(cluster.as_ref(), &control).await;
    if let Some(events) = alua_events {
        tokio::spawn(service::watch_alua(control.clone(), events));
    }
    notify::ready(&status);
    notify::spawn_watchdog();
    tokio::select! {
        () = service::serve(listener, control.clone(), service::SocketPolicy::of_this_process()) => {}
        () = stop.wait() => {}
    }
    tracing::info!("shutting down: draining sessions and flushing devices");
    notify::stopping();
    cluster::leave(cluster.as_ref()).await;
    control.lock().await.shutdown().await;
    let _ = std::fs::remove_file(&socket);
    tracing::info!("stopped");
    Ok(())
}

/// The signals that stop the daemon cleanly, caught from the moment they are installed.
struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> Result<ShutdownSignals, String> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignals {
            term: signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?,
            int: signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM"),
            _ = self.int.recv() => tracing::info!("SIGINT"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironlun_control::service::Request;

    fn parse(args: &[&str]) -> Result<Option<Request>, clap::Error> {
        let mut all = vec!["ironlun"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| request_of(c.cmd).ok().flatten())
    }

    #[test]
    fn alua_commands_are_tree_sets() {
        let dev = "core/rd_mcp_0/r0";
        assert_eq!(
            parse(&["alua", "show", dev]).ok().flatten(),
            Some(Request::AluaShow { path: dev.into() })
        );
        assert_eq!(
            parse(&["alua", "set-state", dev, "west", "ano"])
                .ok()
                .flatten(),
            Some(Request::Set {
                path: format!("{dev}/alua/west/alua_access_state"),
                value: "ano".into()
            })
        );
        assert_eq!(
            parse(&["alua", "set-pref", dev, "west", "on"])
                .ok()
                .flatten(),
            Some(Request::Set {
                path: format!("{dev}/alua/west/preferred"),
                value: "1".into()
            })
        );
        let bad = |args: &[&str]| {
            let mut all = vec!["ironlun"];
            all.extend_from_slice(args);
            let cli = Cli::try_parse_from(all).expect("parses");
            request_of(cli.cmd).expect_err("refused")
        };
        assert!(bad(&["alua", "set-pref", dev, "west", "yes"]).contains("expected on or off"));
        assert!(bad(&["alua", "set-state", "core/r0", "west", "s"]).contains("device"));
        assert!(bad(&["alua", "set-state", dev, "a/b", "s"]).contains("group"));
    }

    #[test]
    fn pr_commands_parse_to_their_requests() {
        let dev = "core/rd_mcp_0/ramdisk0";
        assert_eq!(
            parse(&["pr", "show", dev]).ok().flatten(),
            Some(Request::PrShow { path: dev.into() })
        );
        assert_eq!(
            parse(&["pr", "clear", dev]).ok().flatten(),
            Some(Request::PrClear {
                path: dev.into(),
                force: false
            })
        );
        assert_eq!(
            parse(&["pr", "clear", "--force", dev]).ok().flatten(),
            Some(Request::PrClear {
                path: dev.into(),
                force: true
            })
        );
        assert_eq!(
            parse(&["--state-dir", "/tmp/s", "pr", "clear", dev, "--force"])
                .ok()
                .flatten(),
            Some(Request::PrClear {
                path: dev.into(),
                force: true
            })
        );
    }

    #[test]
    fn pr_usage_errors_are_refused_by_the_parser() {
        for args in [
            &["pr"][..],
            &["pr", "show"],
            &["pr", "clear"],
            &["pr", "show", "a", "b"],
            &["pr", "drop", "core/rd_mcp_0/r0"],
            &["pr", "clear", "core/rd_mcp_0/r0", "--forse"],
        ] {
            let e = parse(args).expect_err("usage error");
            // clap exits 2 for usage errors, like a refused request.
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn serve_is_not_a_request() {
        assert_eq!(parse(&["serve"]).ok().flatten(), None);
    }
}
