//! Backstores and engine devices: the backstore a storage object asks for, and a new engine
//! device with its identity (SPC-4 §7.8 VPD pages), `attrib/` values and persistent
//! reservation state (SPC-4 §5.13.5 APTPL) restored.

use std::sync::Arc;

use ironlun_backstore::{Backstore, BackstoreSpec, FileIoOptions, IBlockOptions, PscsiOptions};
use ironlun_engine::{Device, DeviceConfig, PrState};

use super::DevEntry;
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

/// A device entry leaves the runtime (deleted, or replaced by `now`): its backstore flushed
/// unless `now` keeps it; a replaced device object stops writing its APTPL file and reporting
/// ALUA changes. `serial_lives_on`: another device has its unit serial.
pub(super) fn retire_device(
    key: &DevKey,
    old: &DevEntry,
    now: Option<&DevEntry>,
    serial_lives_on: bool,
) {
    if !now.is_some_and(|d| Arc::ptr_eq(&d.backstore, &old.backstore)) {
        if let Err(e) = old.backstore.flush() {
            tracing::warn!("{key}: flush on removal: {e}");
        }
    }
    if !now.is_some_and(|d| Arc::ptr_eq(&d.device, &old.device)) {
        // A retired device object must not write the file any more (a replacement
        // with the same serial has its own store), nor report ALUA changes.
        old.device.set_aptpl_store(None);
        old.device.set_alua_observer(None);
        old.device.set_lu_group(None);
    }
    if !serial_lives_on && old.aptpl.exists() {
        // Kept on purpose (as LIO does): deleting a device is not a reason to forget
        // the reservations initiators made persistent. See docs/cli.md.
        tracing::warn!(
            "{key}: no device has unit serial '{1}' any more; its persistent reservation state stays in {0} and is restored if a device with that serial is created again (`ironlun pr clear --force` before deleting drops it)",
            old.aptpl.path().display(),
            old.so.wwn
        );
    }
}
