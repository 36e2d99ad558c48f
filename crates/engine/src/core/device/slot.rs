//! The I_T_L nexuses of a logical unit (SAM-5 §4.7): the LU as one I_T nexus sees it through
//! one port LUN, with its unit-attention queue, its ALUA port LUN and its write protection.
//! The device keeps them (weakly) to reach every nexus that can see it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ironlun_scsi::sense::asc;

use super::alua::PortLun;
use super::pr::NexusIdent;
use super::Device;
use crate::core::ua::UaQueue;

/// One I_T_L nexus: a LUN as one I_T nexus sees it.
pub(crate) struct LunSlot {
    /// Unique id of this I_T_L nexus.
    pub id: u64,
    /// The I_T nexus id.
    pub nexus: u64,
    /// Who the I_T nexus is (persistent reservations address nexuses by name).
    pub ident: Arc<NexusIdent>,
    pub device: Arc<Device>,
    /// ALUA membership of the port LUN this nexus reaches the LU through.
    pub alua: Arc<PortLun>,
    pub write_protect: AtomicBool,
    pub ua: UaQueue,
}

impl LunSlot {
    /// Why writes through this I_T_L nexus are refused, if they are (SBC-3 §4.11): a read-only
    /// backstore or write-protected LUN mapping (WRITE PROTECTED), or the control mode page's
    /// SWP (SOFTWARE WRITE PROTECTED).
    pub(crate) fn write_protection(&self) -> Option<ironlun_scsi::Asc> {
        if self.device.backstore.read_only() || self.write_protect.load(Ordering::Relaxed) {
            Some(asc::WRITE_PROTECTED)
        } else if self.device.swp.load(Ordering::Relaxed) {
            Some(asc::SOFTWARE_WRITE_PROTECTED)
        } else {
            None
        }
    }
}
