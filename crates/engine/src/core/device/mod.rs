//! A logical unit (SAM-5 §4.6): a backstore plus identity (LIO `wwn/`), attributes (LIO
//! `attrib/`), mode parameters, the task
//! set, SPC-2 reservation state and the unit-attention queues of every I_T_L nexus that can
//! reach it. Its attributes (LIO `attrib/`) are read and set in [`attrs`].

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use ironlun_backstore::Backstore;
use ironlun_scsi::sense::asc;
use ironlun_scsi::Asc;
use parking_lot::{Mutex, RwLock};

use crate::core::stats::IoStats;
use crate::core::stripe::StripeLocks;
use crate::core::tmf::TaskSet;
use reservation::Spc2Reservation;

pub(crate) mod alua;
mod attrs;
pub(crate) mod copies;
pub(crate) mod media;
pub(crate) mod pr;
pub(crate) mod reservation;
pub(crate) mod shared;
pub(crate) mod slot;

use alua::{AluaUnit, PortLun};
use media::MediaState;
use pr::PrUnit;
use shared::SharedUnit;
use slot::LunSlot;

pub use attrs::device_attribute_defs;

/// Largest single data transfer, in bytes (VPD B0h MAXIMUM TRANSFER LENGTH; bounds the
/// buffers one command can make us allocate).
pub(crate) const MAX_IO_BYTES: u32 = 8 << 20;
/// Default MAXIMUM UNMAP LBA COUNT, in bytes: 256 MiB (524288 blocks of 512, within
/// libiscsi's "sane" bound of 2^20). Hole punching and discard cost per extent, not per byte,
/// so one descriptor frees 64 MiB and one command a few such ranges; LIO's fileio default
/// (0x2000 blocks, 4 MiB) would take 16 commands for 64 MiB.
const DEFAULT_MAX_UNMAP_BYTES: u32 = 256 << 20;
/// Default MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT: 256 descriptors fit a 4 KiB parameter list.
const DEFAULT_MAX_UNMAP_DESCRIPTORS: u32 = 256;
/// `hw_queue_depth`: tasks one LU accepts before TASK SET FULL.
pub(crate) const HW_QUEUE_DEPTH: u32 = 128;
/// Largest COMPARE AND WRITE, in logical blocks (VPD B0h MAXIMUM COMPARE AND WRITE LENGTH; a
/// one-byte field). More than LIO's 1: ESXi uses one block, other initiators update larger
/// on-disk structures atomically. Capped so that the Data-Out (twice this) stays within
/// [`MAX_IO_BYTES`] at every block size.
pub(crate) const MAX_CAW_BLOCKS: u32 = 128;

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

/// Live state of a device for the control plane's read-only views.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub block_size: u32,
    /// Number of logical blocks (backstore size / block size).
    pub blocks: u64,
    /// Number of (target port, LUN) pairs exporting the device.
    pub exports: usize,
    /// Tasks currently in the task set.
    pub tasks: usize,
    /// Of those, tasks being aborted by a task management function.
    pub aborting: usize,
    /// SPC-2 reservation holder (initiator port name), if any.
    pub spc2_holder: Option<String>,
    /// Stopped by START STOP UNIT (START=0).
    pub stopped: bool,
}

#[derive(Clone, Debug)]
struct Wwn {
    vendor: String,
    product: String,
    revision: String,
    serial: String,
}

/// Company id used for the NAA designator (LIO's default, IEEE OUI 00-14-05).
pub(crate) const COMPANY_ID: u32 = 0x001405;

/// Where the device is exported, for MULTIP, REPORT TARGET PORT GROUPS and "not while exported".
#[derive(Clone, Debug)]
pub(crate) struct Export {
    pub port: u64,
    pub rtpi: u16,
    pub lun: u64,
    /// The port's target name and TPGT (REGISTER AND MOVE names its destination by RTPI).
    pub target: String,
    pub tpgt: u16,
    /// The port LUN's target port group and secondary state.
    pub alua: Arc<PortLun>,
}

/// A logical unit.
pub struct Device {
    pub(crate) id: u64,
    /// Itself, for LU group membership.
    pub(crate) me: Weak<Device>,
    name: String,
    wwn: RwLock<Wwn>,
    pub(crate) backstore: Arc<dyn Backstore>,
    block_size: AtomicU32,
    // Attributes (attrib/…).
    pub(crate) write_cache: AtomicBool,
    write_cache_default: bool,
    pub(crate) fua_write: AtomicBool,
    pub(crate) ua_intlck: AtomicU8,
    pub(crate) tas: AtomicBool,
    pub(crate) rsoc: AtomicBool,
    pub(crate) nonrot: AtomicBool,
    model_alias: AtomicBool,
    queue_depth: AtomicU32,
    optimal_sectors: AtomicU32,
    max_write_same_len: AtomicU32,
    max_unmap_lba_count: AtomicU32,
    max_unmap_block_desc_count: AtomicU32,
    unmap_granularity: AtomicU32,
    unmap_granularity_alignment: AtomicU32,
    unmap_zeroes_data: AtomicBool,
    // Mode parameters changeable by MODE SELECT besides WCE (control mode page).
    pub(crate) d_sense: AtomicBool,
    pub(crate) swp: AtomicBool,
    pub(crate) stopped: AtomicBool,
    pub(crate) emulate_pr: AtomicBool,
    pub(crate) emulate_caw: AtomicBool,
    /// Logical block provisioning management: UNMAP, GET LBA STATUS (`emulate_tpu`) and
    /// WRITE SAME with UNMAP (`emulate_tpws`); either makes the LU thin provisioned.
    pub(crate) emulate_tpu: AtomicBool,
    pub(crate) emulate_tpws: AtomicBool,
    /// EXTENDED COPY / RECEIVE COPY RESULTS and INQUIRY 3PC (`emulate_3pc`).
    pub(crate) emulate_3pc: AtomicBool,
    /// VPD B0h WSNZ: WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 is refused (1, as LIO) or
    /// means "to the end of the medium" (0). ironlun extension.
    pub(crate) emulate_wsnz: AtomicBool,
    /// Removable-medium emulation (RMB, PREVENT ALLOW MEDIUM REMOVAL, load/eject).
    pub(crate) media: MediaState,
    /// Held EXTENDED COPY results (RECEIVE COPY RESULTS).
    pub(crate) copies: copies::CopyResults,
    /// Makes COMPARE AND WRITE atomic against every write to its blocks.
    pub(crate) stripes: StripeLocks,
    pub(crate) force_pr_aptpl: AtomicBool,
    pub(crate) tasks: TaskSet,
    pub(crate) spc2: Spc2Reservation,
    pub(crate) pr: PrUnit,
    pub(crate) alua: AluaUnit,
    /// The other gateways of a clustered LU (`serve --cluster`).
    pub(crate) shared: SharedUnit,
    /// Commands, bytes, errors and TMFs of this LU (the metrics exporter).
    pub(crate) stats: IoStats,
    slots: Mutex<Vec<Weak<LunSlot>>>,
    exports: Mutex<Vec<Export>>,
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn check_ascii(field: &str, v: &str, max: usize) -> Result<(), String> {
    if v.len() > max || !v.bytes().all(|b| (0x20..=0x7E).contains(&b)) {
        return Err(format!(
            "{field}: must be at most {max} printable ASCII characters"
        ));
    }
    Ok(())
}

impl Device {
    pub fn new(config: DeviceConfig, backstore: Arc<dyn Backstore>) -> Result<Arc<Device>, String> {
        if !matches!(config.block_size, 512 | 1024 | 2048 | 4096) {
            return Err(format!(
                "block_size: invalid value {}; valid values: 512, 1024, 2048, 4096",
                config.block_size
            ));
        }
        let vendor = if config.vendor_id.is_empty() {
            "IRONLUN".to_string()
        } else {
            config.vendor_id.clone()
        };
        let product = if config.product_id.is_empty() {
            config.name.chars().take(16).collect()
        } else {
            config.product_id.clone()
        };
        let revision = if config.revision.is_empty() {
            "4.0".to_string()
        } else {
            config.revision.clone()
        };
        check_ascii("vendor_id", &vendor, 8)?;
        check_ascii("product_id", &product, 16)?;
        check_ascii("revision", &revision, 4)?;
        check_ascii("vpd_unit_serial", &config.unit_serial, 253)?;
        let wc = backstore.write_cache();
        let bs = config.block_size;
        let dev = Arc::new_cyclic(|me| Device {
            id: next_id(),
            me: me.clone(),
            name: config.name,
            wwn: RwLock::new(Wwn {
                vendor,
                product,
                revision,
                serial: config.unit_serial,
            }),
            backstore,
            block_size: AtomicU32::new(bs),
            write_cache: AtomicBool::new(wc),
            write_cache_default: wc,
            // Attributes with a fixed default get it from their declaration below.
            fua_write: AtomicBool::new(false),
            ua_intlck: AtomicU8::new(0),
            tas: AtomicBool::new(false),
            rsoc: AtomicBool::new(false),
            nonrot: AtomicBool::new(false),
            model_alias: AtomicBool::new(false),
            queue_depth: AtomicU32::new(0),
            optimal_sectors: AtomicU32::new(MAX_IO_BYTES / bs),
            max_write_same_len: AtomicU32::new(0),
            max_unmap_lba_count: AtomicU32::new(0),
            max_unmap_block_desc_count: AtomicU32::new(0),
            unmap_granularity: AtomicU32::new(0),
            unmap_granularity_alignment: AtomicU32::new(0),
            unmap_zeroes_data: AtomicBool::new(false),
            d_sense: AtomicBool::new(false),
            swp: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            emulate_pr: AtomicBool::new(false),
            emulate_caw: AtomicBool::new(false),
            emulate_tpu: AtomicBool::new(false),
            emulate_tpws: AtomicBool::new(false),
            emulate_3pc: AtomicBool::new(false),
            emulate_wsnz: AtomicBool::new(false),
            media: MediaState::default(),
            copies: copies::CopyResults::default(),
            stripes: StripeLocks::default(),
            force_pr_aptpl: AtomicBool::new(false),
            tasks: TaskSet::default(),
            spc2: Spc2Reservation::default(),
            pr: PrUnit::default(),
            alua: AluaUnit::default(),
            shared: SharedUnit::default(),
            stats: IoStats::default(),
            slots: Mutex::new(Vec::new()),
            exports: Mutex::new(Vec::new()),
        });
        attrs::apply_defaults(&dev)?;
        Ok(dev)
    }

    /// The device's name in the object tree.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> DeviceConfig {
        let w = self.wwn.read();
        DeviceConfig {
            name: self.name.clone(),
            unit_serial: w.serial.clone(),
            vendor_id: w.vendor.clone(),
            product_id: w.product.clone(),
            revision: w.revision.clone(),
            block_size: self.block_size(),
        }
    }

    /// Set a `wwn/` field: `vendor_id`, `product_id`, `revision` or `vpd_unit_serial`.
    /// Refused while exported (initiators cache identity), as LIO does.
    pub fn set_wwn(&self, field: &str, value: &str) -> Result<(), String> {
        let (max, slot): (usize, fn(&mut Wwn) -> &mut String) = match field {
            "vendor_id" => (8, |w| &mut w.vendor),
            "product_id" => (16, |w| &mut w.product),
            "revision" => (4, |w| &mut w.revision),
            "vpd_unit_serial" => (253, |w| &mut w.serial),
            _ => {
                return Err(format!(
                    "{field}: unknown wwn field; valid: vendor_id, product_id, revision, vpd_unit_serial"
                ))
            }
        };
        check_ascii(field, value, max)?;
        self.refuse_if_exported(field)?;
        *slot(&mut self.wwn.write()) = value.to_string();
        Ok(())
    }

    /// Live state for read-only views.
    pub fn info(&self) -> DeviceInfo {
        DeviceInfo {
            block_size: self.block_size(),
            blocks: self.blocks(),
            exports: self.exports.lock().len(),
            tasks: self.tasks.len(),
            aborting: self.tasks.aborting(),
            spc2_holder: self.spc2.holder_name(),
            stopped: self.stopped.load(Ordering::Relaxed),
        }
    }

    /// The backstore changed size: raise UA 2A/09 CAPACITY DATA HAS CHANGED on every nexus
    /// (SBC-3 §4.9; SPC-4 §5.14: reported once per I_T nexus, on its next command).
    /// Nothing here caches the capacity: READ CAPACITY, the mode parameter block descriptor
    /// and every LBA range check read the backstore's size when they run, so they see the
    /// new size as soon as the backstore has it; call this after resizing the backstore.
    pub fn capacity_changed(&self) {
        self.raise_ua(asc::CAPACITY_DATA_HAS_CHANGED, None);
    }

    fn refuse_if_exported(&self, name: &str) -> Result<(), String> {
        if self.exports.lock().is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{name}: cannot be changed while the device is exported (remove its LUNs first)"
            ))
        }
    }

    // ---- engine-internal accessors ----

    pub(crate) fn block_size(&self) -> u32 {
        self.block_size.load(Ordering::Relaxed)
    }

    /// LBA OUT OF RANGE unless `lba + n` fits the capacity (SBC-3 §4.5).
    pub(crate) fn check_range(&self, lba: u64, n: u64) -> Result<(), ironlun_scsi::Sense> {
        match lba.checked_add(n) {
            Some(end) if end <= self.blocks() => Ok(()),
            _ => Err(ironlun_scsi::Sense::illegal(
                asc::LOGICAL_BLOCK_ADDRESS_OUT_OF_RANGE,
            )),
        }
    }

    /// Number of logical blocks, read live from the backstore (it can be resized at any time).
    pub(crate) fn blocks(&self) -> u64 {
        self.backstore.size() / u64::from(self.block_size())
    }

    pub(crate) fn hw_max_sectors(&self) -> u32 {
        MAX_IO_BYTES / self.block_size()
    }

    /// MAXIMUM WRITE SAME LENGTH in blocks (VPD B0h); 0 = no limit reported.
    pub(crate) fn max_write_same_blocks(&self) -> u32 {
        self.max_write_same_len.load(Ordering::Relaxed)
    }

    /// MAXIMUM COMPARE AND WRITE LENGTH in blocks; 0 while `emulate_caw` is off.
    pub(crate) fn max_caw_blocks(&self) -> u32 {
        if self.emulate_caw.load(Ordering::Relaxed) {
            MAX_CAW_BLOCKS.min(self.hw_max_sectors() / 2)
        } else {
            0
        }
    }

    pub(crate) fn optimal_sectors(&self) -> u32 {
        self.optimal_sectors.load(Ordering::Relaxed)
    }

    pub(crate) fn queue_depth(&self) -> u32 {
        self.queue_depth.load(Ordering::Relaxed)
    }

    pub(crate) fn write_cache_default(&self) -> bool {
        self.write_cache_default
    }

    /// DPO and FUA are offered (mode parameter header DPOFUA) when `emulate_fua_write` is on.
    pub(crate) fn dpofua(&self) -> bool {
        self.fua_write.load(Ordering::Relaxed)
    }

    /// Thin provisioned: logical block provisioning management is on (`emulate_tpu` or
    /// `emulate_tpws`; RC16 LBPME, VPD B2h PROVISIONING TYPE 010b).
    pub(crate) fn thin(&self) -> bool {
        self.emulate_tpu.load(Ordering::Relaxed) || self.emulate_tpws.load(Ordering::Relaxed)
    }

    /// Deallocated blocks read as zeroes (LBPRZ): only while thin and `unmap_zeroes_data`.
    pub(crate) fn lbprz(&self) -> bool {
        self.thin() && self.unmap_zeroes_data.load(Ordering::Relaxed)
    }

    /// WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 is refused (WSNZ).
    pub(crate) fn wsnz(&self) -> bool {
        self.emulate_wsnz.load(Ordering::Relaxed)
    }

    /// MAXIMUM UNMAP LBA COUNT in effect (attribute, or the default when it is 0).
    pub(crate) fn max_unmap_lba(&self) -> u32 {
        match self.max_unmap_lba_count.load(Ordering::Relaxed) {
            0 => DEFAULT_MAX_UNMAP_BYTES / self.block_size(),
            v => v,
        }
    }

    /// MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT in effect.
    pub(crate) fn max_unmap_descriptors(&self) -> u32 {
        match self.max_unmap_block_desc_count.load(Ordering::Relaxed) {
            0 => DEFAULT_MAX_UNMAP_DESCRIPTORS,
            v => v,
        }
    }

    /// OPTIMAL UNMAP GRANULARITY in blocks: the attribute, else the backstore's granule.
    pub(crate) fn unmap_granularity_blocks(&self) -> u32 {
        match self.unmap_granularity.load(Ordering::Relaxed) {
            0 => {
                let g = self.backstore.unmap_granularity() / u64::from(self.block_size());
                u32::try_from(g).unwrap_or(u32::MAX).max(1)
            }
            v => v,
        }
    }

    /// UNMAP GRANULARITY ALIGNMENT in blocks.
    pub(crate) fn unmap_alignment(&self) -> u32 {
        self.unmap_granularity_alignment.load(Ordering::Relaxed)
    }

    fn backstore_kind_hint(&self) -> String {
        let info = self.backstore.info();
        if info.is_empty() {
            "no hole punching or discard".to_string()
        } else {
            format!("{info}: no hole punching or discard")
        }
    }

    /// WRITE SAME may carry UNMAP / ANCHOR / NDOB (`emulate_tpws`).
    pub(crate) fn tpws(&self) -> bool {
        self.emulate_tpws.load(Ordering::Relaxed)
    }

    pub(crate) fn vendor(&self) -> String {
        self.wwn.read().vendor.clone()
    }

    pub(crate) fn product(&self) -> String {
        if self.model_alias.load(Ordering::Relaxed) {
            self.name.chars().take(16).collect()
        } else {
            self.wwn.read().product.clone()
        }
    }

    pub(crate) fn revision(&self) -> String {
        self.wwn.read().revision.clone()
    }

    pub(crate) fn serial(&self) -> String {
        self.wwn.read().serial.clone()
    }

    /// Every live I_T_L nexus of this LU.
    pub(crate) fn live_slots(&self) -> Vec<Arc<LunSlot>> {
        self.slots.lock().iter().filter_map(Weak::upgrade).collect()
    }

    pub(crate) fn register_slot(&self, slot: &Arc<LunSlot>) {
        let mut s = self.slots.lock();
        s.retain(|w| w.strong_count() > 0);
        s.push(Arc::downgrade(slot));
    }

    /// Raise a unit attention on every I_T_L nexus of this LU except `except` (a slot id).
    pub(crate) fn raise_ua(&self, a: Asc, except: Option<u64>) {
        let slots: Vec<Arc<LunSlot>> = self.slots.lock().iter().filter_map(Weak::upgrade).collect();
        for s in slots {
            if Some(s.id) != except {
                s.ua.raise(a);
            }
        }
    }

    /// Raise a unit attention on the I_T_L nexuses belonging to `nexuses`.
    pub(crate) fn raise_ua_for(&self, a: Asc, nexuses: &[u64]) {
        let slots: Vec<Arc<LunSlot>> = self.slots.lock().iter().filter_map(Weak::upgrade).collect();
        for s in slots {
            if nexuses.contains(&s.nexus) {
                s.ua.raise(a);
            }
        }
    }

    pub(crate) fn add_export(&self, e: Export) {
        let mut x = self.exports.lock();
        // Most LUs have one or two exports: grow one at a time rather than to Vec's first four.
        x.reserve_exact(1);
        x.push(e);
    }

    pub(crate) fn remove_export(&self, port: u64, lun: u64) {
        let mut x = self.exports.lock();
        x.retain(|e| !(e.port == port && e.lun == lun));
    }

    pub(crate) fn exports(&self) -> Vec<Export> {
        self.exports.lock().clone()
    }
}
