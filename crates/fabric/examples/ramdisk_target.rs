//! A test target: one ramdisk LUN (or more) in demo mode on a loopback portal, for running
//! libiscsi clients against the fabric.
//!
//! `cargo run -p ironlun-fabric --example ramdisk_target -- 127.0.0.1:3301 [size_mib] [luns]`
//! Target name: iqn.2024-01.org.ironlun:ramdisk

use std::collections::BTreeMap;
use std::sync::Arc;

use ironlun_backstore::RamDisk;
use ironlun_engine::{Device, DeviceConfig, TargetPort};
use ironlun_fabric::{AuthConfig, Fabric, FabricConfig, TargetConfig, TpgConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args: Vec<String> = std::env::args().collect();
    let portal = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("127.0.0.1:3301")
        .parse()?;
    let size_mib: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(256);
    let luns: u64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let name = "iqn.2024-01.org.ironlun:ramdisk";
    let port = TargetPort::new(name, 1, 1);
    for lun in 0..luns {
        let disk = Arc::new(RamDisk::new(size_mib << 20)?);
        let dev = Device::new(
            DeviceConfig {
                name: format!("rd{lun}"),
                unit_serial: format!("ironlun-rd-{lun}"),
                vendor_id: "LIO-ORG".into(),
                product_id: "ramdisk".into(),
                revision: "4.0".into(),
                block_size: 512,
            },
            disk,
        )?;
        port.add_lun(lun, dev)?;
    }
    port.set_demo_mode(true, false);
    port.set_enabled(true);
    let fabric = Fabric::new();
    fabric
        .apply(FabricConfig {
            targets: vec![TargetConfig {
                name: name.into(),
                tpgs: vec![TpgConfig {
                    tpgt: 1,
                    enabled: true,
                    portals: vec![portal],
                    port,
                    authentication: false,
                    auth: AuthConfig::default(),
                    acl_auth: BTreeMap::new(),
                    params: BTreeMap::new(),
                    nopin: None,
                }],
            }],
            discovery_auth: None,
        })
        .await?;
    println!("listening on {:?} as {name}", fabric.listening());
    tokio::signal::ctrl_c().await?;
    fabric.shutdown().await;
    Ok(())
}
