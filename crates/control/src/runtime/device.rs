//! Backstores and engine devices: the backstore a storage object asks for, and a new engine
//! device with its identity (SPC-4 §7.8 VPD pages), `attrib/` values and persistent
//! reservation state (SPC-4 §5.13.5 APTPL) restored.

use std::sync::Arc;

use ironlun_backstore::{Backstore, BackstoreSpec, FileIoOptions, IBlockOptions, PscsiOptions};
use ironlun_engine::{Device, DeviceConfig, PrState};

use crate::model::{at_path, DevKey, Kind, StorageObject};
use crate::pr::{self, AptplFile};

pub(super) fn spec(so: &StorageObject) -> BackstoreSpec {
    let path = so.dev.clone().unwrap_or_default();
    match so.plugin {
        Kind::RdMcp => BackstoreSpec::RamDisk {
            size: so.size.unwrap_or(0),
        },
        Kind::FileIo => BackstoreSpec::FileIo(FileIoOptions {
            size: so.size,
            write_back: so.write_back,
            readonly: so.readonly,
            ..FileIoOptions::new(path)
        }),
        Kind::IBlock => BackstoreSpec::IBlock(IBlockOptions {
            readonly: so.readonly,
            ..IBlockOptions::new(path)
        }),
        Kind::PScsi => BackstoreSpec::Pscsi(PscsiOptions { dev: path }),
    }
}

/// A new engine device on `backstore` with the identity and attributes of `so`, its APTPL
/// store attached and its persistent reservation state restored: `carry` (the state of the
/// live device this one replaces, same unit serial) or else the APTPL file, if there is one.
pub(super) fn build_device(
    so: &StorageObject,
    backstore: Arc<dyn Backstore>,
    aptpl: &AptplFile,
    carry: Option<PrState>,
) -> Result<Arc<Device>, String> {
    let key = so.key();
    let block_size = match so.attributes.get("block_size") {
        Some(&v) => v,
        None => backstore.hw_block_size(),
    };
    let config = DeviceConfig {
        name: so.name.clone(),
        unit_serial: so.wwn.clone(),
        vendor_id: so.vendor_id.clone(),
        product_id: so.product_id.clone(),
        revision: so.revision.clone(),
        block_size,
    };
    let device = Device::new(config, backstore).map_err(|e| format!("{key}: {e}"))?;
    // Restore before the store is attached (nothing to write back) and before attributes
    // such as force_pr_aptpl are set (which may persist the current state).
    const FIX: &str =
        "fix or remove the file (removing it drops the saved registrations and reservation)";
    let carried = carry.is_some();
    let state = match carry {
        Some(s) => Some(s),
        None => aptpl
            .load()
            .map_err(|e| format!("{key}: persistent reservations: {e}; {FIX}"))?,
    };
    if let Some(state) = state.filter(|s| *s != PrState::default()) {
        let summary = pr::summary(&state);
        if carried {
            device.restore_pr_state(state).map_err(|e| {
                format!("{key}: persistent reservations of the replaced device: {e}")
            })?;
        } else {
            let file = aptpl.path().display();
            device
                .restore_pr_state(state)
                .map_err(|e| format!("{key}: persistent reservations: {file}: {e}; {FIX}"))?;
            tracing::info!("{key}: restored persistent reservations from {file}: {summary}");
        }
    }
    device.set_aptpl_store(Some(Arc::new(aptpl.clone())));
    for (name, value) in &so.attributes {
        if name != "block_size" {
            device
                .set_attribute(name, &value.to_string())
                .map_err(|e| attr_error(&key, name, &e))?;
        }
    }
    Ok(device)
}

/// `core/…/attrib/<name>: <engine reason>`, without the engine's own `<name>: ` prefix.
pub(super) fn attr_error(key: &DevKey, name: &str, e: &str) -> String {
    at_path(&format!("{key}/attrib/{name}"), name, e)
}
