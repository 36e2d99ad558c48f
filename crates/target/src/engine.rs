//! Placeholder module: the engine helper replaces this with the real implementation,
//! keeping the public signatures below.

use std::sync::Arc;

use ironlun_backstore::Backstore;

use crate::*;

/// A logical unit.
pub struct Device {}

/// Device identity and attributes given at creation (LIO `wwn/` and `attrib/`).
#[derive(Clone, Debug)]
pub struct DeviceConfig {
    /// Name in the object tree, e.g. `ramdisk0` (used as product id alias when asked).
    pub name: String,
    /// `wwn/vpd_unit_serial`; the NAA 6 designator is derived from it (LIO: OUI 0x001405 + hex digits).
    pub unit_serial: String,
    pub vendor_id: String,
    pub product_id: String,
    pub revision: String,
    /// Logical block size presented to initiators (512, 1024, 2048, 4096).
    pub block_size: u32,
}

impl Device {
    pub fn new(_config: DeviceConfig, _backstore: Arc<dyn Backstore>) -> Result<Arc<Device>, String> {
        todo!()
    }
    /// `attrib/<name>` names this device supports, in display order.
    pub fn attribute_names(&self) -> Vec<&'static str> {
        todo!()
    }
    /// Current value of `attrib/<name>` as text (LIO formatting: integers in decimal).
    pub fn attribute(&self, _name: &str) -> Option<String> {
        todo!()
    }
    /// Set `attrib/<name>`. Err is one line naming the attribute and what is valid; no change on Err.
    /// Changing a mode-page-visible attribute raises UA 2A/01 MODE PARAMETERS CHANGED on other nexuses.
    pub fn set_attribute(&self, _name: &str, _value: &str) -> Result<(), String> {
        todo!()
    }
    /// The backstore changed size: raise UA 2A/09 CAPACITY DATA HAS CHANGED on every nexus.
    pub fn capacity_changed(&self) {
        todo!()
    }
    pub fn config(&self) -> DeviceConfig {
        todo!()
    }
}

/// An SPC-4 target port.
pub struct TargetPort {}

impl TargetPort {
    /// `target_name` is the iSCSI target IQN, `tpgt` the portal group tag, `rtpi` the relative
    /// target port identifier (unique per LU's ports).
    pub fn new(_target_name: &str, _tpgt: u16, _rtpi: u16) -> Arc<TargetPort> {
        todo!()
    }

    /// Open an I_T nexus for this initiator port (checks the ACLs / demo mode).
    pub fn open_nexus(self: &Arc<Self>, _initiator: InitiatorPortId) -> Result<Arc<Nexus>, LoginDenied> {
        todo!()
    }
}

/// One entry of an ACL: initiator-visible LUN `mapped_lun` → the port's LUN `tpg_lun`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedLun {
    pub mapped_lun: u64,
    pub tpg_lun: u64,
    pub write_protect: bool,
}

impl TargetPort {
    pub fn target_name(&self) -> &str {
        todo!()
    }
    pub fn tpgt(&self) -> u16 {
        todo!()
    }
    pub fn rtpi(&self) -> u16 {
        todo!()
    }
    /// Export `dev` as LUN `lun`. REPORTED LUNS DATA HAS CHANGED (3F/0E) to this port's nexuses.
    pub fn add_lun(&self, _lun: u64, _dev: Arc<Device>) -> Result<(), String> {
        todo!()
    }
    pub fn remove_lun(&self, _lun: u64) -> Result<(), String> {
        todo!()
    }
    /// Create or replace the ACL of `initiator_name` (an initiator node name, no ISID).
    pub fn set_acl(&self, _initiator_name: &str, _mapped: Vec<MappedLun>) {
        todo!()
    }
    pub fn remove_acl(&self, _initiator_name: &str) {
        todo!()
    }
    /// Demo mode (LIO `generate_node_acls=1`): any initiator may log in and sees every LUN
    /// (read-write unless `demo_write_protect`).
    pub fn set_demo_mode(&self, _on: bool, _write_protect: bool) {
        todo!()
    }
    pub fn set_enabled(&self, _on: bool) {
        todo!()
    }
}

/// An I_T nexus.
pub struct Nexus {}

impl Nexus {
    /// Run one command to completion. Blocking.
    pub fn execute(&self, _req: ScsiRequest) -> ScsiResponse {
        todo!()
    }

    /// Run a task management function for `lun`. Blocking.
    pub fn task_management(&self, _lun: u64, _tmf: TmfKind) -> TmfResponse {
        todo!()
    }

    /// I_T nexus loss (session ended): release SPC-2 reservations, forget its UAs, etc.
    pub fn close(&self) {}
}
