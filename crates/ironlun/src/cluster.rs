//! `serve --cluster ENDPOINTS --node NAME` (docs/cluster.md): this gateway's membership, from
//! crate `ironlun-cluster` when the binary is built with the feature `cluster` (etcd's client,
//! whose build needs protoc). Without it the options are refused with that reason.

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

/// Leave the cluster at a clean stop: the others see this gateway gone at once.
pub async fn leave(c: Option<&Running>) {
    #[cfg(feature = "cluster")]
    if let Some(c) = c {
        c.leave().await;
    }
    #[cfg(not(feature = "cluster"))]
    let _ = c;
}
