//! Configuration swaps: portals bound and closed by `Fabric::apply`, failures leave the old
//! configuration in force; `param_defaults` / `validate_param` for the control plane.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ironlun_fabric::{param_defaults, validate_param, Fabric, FabricConfig, TargetConfig};

fn config(
    portals: &[std::net::SocketAddr],
    port: std::sync::Arc<ironlun_engine::TargetPort>,
) -> FabricConfig {
    let mut g = tpg(port, 1, portals[0]);
    g.portals = portals.to_vec();
    FabricConfig {
        targets: vec![TargetConfig {
            name: TARGET.into(),
            tpgs: vec![g],
        }],
        discovery_auth: None,
    }
}

#[tokio::test]
async fn apply_binds_new_portals_and_closes_removed_ones() {
    let p = port(TARGET, 1, 1, 1);
    let a: std::net::SocketAddr = "127.0.0.1:3310".parse().unwrap();
    let b: std::net::SocketAddr = "127.0.0.1:3311".parse().unwrap();
    let f = Fabric::new();
    f.apply(config(&[a], p.clone())).await.unwrap();
    assert_eq!(f.listening(), vec![a]);
    f.apply(config(&[a, b], p.clone())).await.unwrap();
    assert_eq!(f.listening(), vec![a, b]);
    // A live session survives a reconfiguration that keeps its portal.
    let mut c = Client::connect(a).await;
    c.login_normal(TARGET, &[]).await;
    f.apply(config(&[b], p.clone())).await.unwrap();
    assert_eq!(f.listening(), vec![b]);
    assert!(
        tokio::net::TcpStream::connect(a).await.is_err(),
        "removed portal is closed"
    );
    let mut d = Client::connect(b).await;
    d.login_normal(TARGET, &[]).await;
    f.shutdown().await;
}

#[tokio::test]
async fn failed_bind_keeps_the_previous_configuration() {
    let p = port(TARGET, 1, 1, 1);
    let good: std::net::SocketAddr = "127.0.0.1:3312".parse().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:3313").unwrap();
    let f = Fabric::new();
    f.apply(config(&[good], p.clone())).await.unwrap();
    let err = f
        .apply(config(&[taken.local_addr().unwrap()], p.clone()))
        .await
        .unwrap_err();
    assert!(err.contains("3313"), "{err}");
    assert_eq!(f.listening(), vec![good]);
    let mut c = Client::connect(good).await;
    c.login_normal(TARGET, &[]).await;
}

#[test]
fn params_for_the_control_plane() {
    let d = param_defaults();
    let names: Vec<&str> = d.iter().map(|(k, _)| *k).collect();
    for k in [
        "AuthMethod",
        "HeaderDigest",
        "DataDigest",
        "MaxConnections",
        "TargetAlias",
        "InitialR2T",
        "ImmediateData",
        "MaxRecvDataSegmentLength",
        "MaxXmitDataSegmentLength",
        "MaxBurstLength",
        "FirstBurstLength",
        "DefaultTime2Wait",
        "DefaultTime2Retain",
        "MaxOutstandingR2T",
        "DataPDUInOrder",
        "DataSequenceInOrder",
        "ErrorRecoveryLevel",
        "IFMarker",
        "OFMarker",
        "IFMarkInt",
        "OFMarkInt",
    ] {
        assert!(names.contains(&k), "{k}");
    }
    for (k, v) in &d {
        assert_eq!(validate_param(k, v), Ok(()));
    }
    assert!(validate_param("MaxRecvDataSegmentLength", "511").is_err());
    assert!(validate_param("ImmediateData", "yes").is_err());
    assert!(validate_param("NoSuchKey", "1").is_err());
}
