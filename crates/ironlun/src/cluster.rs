//! `serve --cluster ENDPOINTS --node NAME` (docs/cluster.md): this gateway's membership, from
//! crate `ironlun-cluster` when the binary is built with the feature `cluster` (etcd's client,
//! whose build needs protoc). Without it the options are refused with that reason.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ironlun_control::live::LiveObjects;

#[cfg(feature = "cluster")]
pub type Options = ironlun_cluster::ClusterOptions;
#[cfg(feature = "cluster")]
pub type Running = ironlun_cluster::Cluster;

#[cfg(not(feature = "cluster"))]
pub enum Options {}
#[cfg(not(feature = "cluster"))]
pub enum Running {}

/// The options of `--cluster`, `--node`, `--cluster-ttl`. Err: one line.
#[cfg(feature = "cluster")]
pub fn options(
    cluster: Option<String>,
    node: Option<String>,
    ttl: u64,
) -> Result<Option<Options>, String> {
    let Some(c) = cluster else {
        return Ok(None);
    };
    let o = Options {
        endpoints: c.split(',').map(str::to_string).collect(),
        node: node.unwrap_or_default(),
        ttl: Duration::from_secs(ttl),
    };
    o.validate()?;
    Ok(Some(o))
}

#[cfg(not(feature = "cluster"))]
pub fn options(
    cluster: Option<String>,
    _node: Option<String>,
    _ttl: u64,
) -> Result<Option<Options>, String> {
    let _ = Duration::ZERO;
    match cluster {
        None => Ok(None),
        Some(_) => Err(
            "--cluster: this ironlun was built without the feature `cluster`; \
             build it with `cargo build --release -p ironlun --features cluster` \
             (needs Debian's protobuf-compiler)"
                .into(),
        ),
    }
}

/// Join the cluster (after the control plane published the live objects: clustered LUs are
/// fenced from their creation until the cluster has synced them).
pub async fn start(o: Option<Options>, live: Arc<LiveObjects>) -> Result<Option<Running>, String> {
    let Some(o) = o else {
        if live.load().devices.iter().any(|(_, d)| d.clustered()) {
            tracing::warn!("LUs with attrib/cluster=1 serve no I/O without --cluster");
        }
        return Ok(None);
    };
    #[cfg(feature = "cluster")]
    return ironlun_cluster::Cluster::start(o, live).await.map(Some);
    #[cfg(not(feature = "cluster"))]
    match o {}
}

/// Apply this gateway's part of the cluster configuration through `control`, now and when
/// it changes.
pub async fn manage(
    c: Option<&Running>,
    control: &Arc<
        tokio::sync::Mutex<
            ironlun_control::service::Control<ironlun_control::runtime::EngineRuntime>,
        >,
    >,
) {
    #[cfg(feature = "cluster")]
    if let Some(c) = c {
        c.manage_config(control.clone()).await;
    }
    #[cfg(not(feature = "cluster"))]
    let _ = (c, control);
}

/// Leave the cluster at a clean stop: the others see this gateway gone at once.
pub async fn leave(c: Option<&Running>) {
    #[cfg(feature = "cluster")]
    if let Some(c) = c {
        c.leave().await;
    }
    #[cfg(not(feature = "cluster"))]
    let _ = c;
}

/// `ironlun cluster …`.
#[derive(clap::Args)]
pub struct ClusterArgs {
    /// etcd client URLs, comma-separated (as given to `serve --cluster`)
    #[arg(long, value_name = "URLS")]
    cluster: String,
    #[command(subcommand)]
    cmd: ClusterCmd,
}

#[derive(clap::Subcommand)]
enum ClusterCmd {
    /// Live gateways; every clustered LU with its persistent reservations, each gateway's
    /// ports and acknowledged PR revision, and the target port groups' states
    Status {
        /// As JSON
        #[arg(long)]
        json: bool,
    },
    /// Set a target port group's access state on every gateway (an implicit transition
    /// there: ASYMMETRIC ACCESS STATE CHANGED to every nexus)
    SetGroup {
        /// The LU's unit serial (wwn/vpd_unit_serial)
        serial: String,
        /// The group's id (tg_pt_gp_id)
        group: u16,
        /// ao, ano, s, u or o
        state: String,
    },
    /// Forget a gateway taken out of service: its port records (refused while it is live)
    Forget { node: String },
    /// Print a gateway's part of the cluster configuration (a config.json fragment)
    ConfigShow { node: String },
    /// Make FILE (a config.json fragment: the gateway's clustered storage objects, their ALUA
    /// groups, the TPGs exporting them) gateway NODE's part of the cluster configuration; the
    /// gateway applies it (fewest changes) and `status` shows the outcome
    ConfigSet { node: String, file: PathBuf },
}

#[cfg(feature = "cluster")]
pub fn run(args: ClusterArgs) -> ExitCode {
    use ironlun_cluster::admin;
    let eps: Vec<String> = args.cluster.split(',').map(str::to_string).collect();
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(1);
    let rt = match crate::runtime(b) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let r = rt.block_on(async {
        match args.cmd {
            ClusterCmd::Status { json } => {
                let st = admin::status(&eps).await?;
                if json {
                    serde_json::to_string_pretty(&st).map_err(|e| e.to_string())
                } else {
                    Ok(admin::render(&st).trim_end().to_string())
                }
            }
            ClusterCmd::SetGroup {
                serial,
                group,
                state,
            } => admin::set_group(&eps, &serial, group, &state)
                .await
                .map(|()| format!("LU {serial}: group {group} set to {state} on every gateway")),
            ClusterCmd::Forget { node } => admin::forget(&eps, &node)
                .await
                .map(|n| format!("forgot gateway {node} ({n} LU port record(s))")),
            ClusterCmd::ConfigShow { node } => admin::config_show(&eps, &node).await,
            ClusterCmd::ConfigSet { node, file } => {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                admin::config_set(&eps, &node, &text).await.map(|()| {
                    format!("configuration of {node} set; `status` shows when it is applied")
                })
            }
        }
    });
    match r {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ironlun: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(not(feature = "cluster"))]
pub fn run(args: ClusterArgs) -> ExitCode {
    let _ = (args.cluster, args.cmd);
    eprintln!(
        "ironlun: cluster: this ironlun was built without the feature `cluster`; build it with \
         `cargo build --release -p ironlun --features cluster` (needs Debian's protobuf-compiler)"
    );
    ExitCode::from(2)
}
