//! A device's attributes (LIO `attrib/`), each declared once in [`ATTRIBUTES`]: its schema
//! ([`AttrDef`]: name, values, default, frozen while exported or not, unit attention) beside
//! its behaviour (how the engine reads and stores the typed value). The control plane lists,
//! reads and sets them through [`Device::attribute_names`], [`Device::attribute`] and
//! [`Device::set_attribute`]; docs/cli.md's table is [`crate::attr::markdown_table`] of them.

use std::sync::atomic::Ordering;

use ironlun_scsi::sense::asc;

use super::*;
use crate::attr::{AttrDef, Default, Domain, WhileExported};

/// One device attribute: its schema and its behaviour.
pub(crate) struct DeviceAttr {
    pub def: AttrDef,
    /// The current value.
    get: fn(&Device) -> u32,
    /// Stores a value the schema accepted (further checks that depend on the device may still
    /// refuse it, with one line). `None` for read-only attributes and those LIO has and
    /// ironlun fixes.
    set: Option<SetFn>,
}

/// Stores a value (see [`DeviceAttr`]).
type SetFn = fn(&Device, u32) -> Result<(), String>;

fn flag(a: &AtomicBool) -> u32 {
    u32::from(a.load(Ordering::Relaxed))
}

const MODE_CHANGED: Option<(Asc, &str)> =
    Some((asc::MODE_PARAMETERS_CHANGED, "MODE PARAMETERS CHANGED"));

macro_rules! attr {
    ($name:literal, $domain:expr, $default:expr, $exported:ident, $ua:expr, $help:literal,
     get: $get:expr, set: $set:expr $(,)?) => {
        DeviceAttr {
            def: AttrDef {
                name: $name,
                domain: $domain,
                default: $default,
                while_exported: WhileExported::$exported,
                ua: $ua,
                help: $help,
            },
            get: $get,
            set: $set,
        }
    };
}

/// Every device attribute, in display order (LIO's names).
pub(crate) static ATTRIBUTES: &[DeviceAttr] = &[
    attr!("block_size", Domain::OneOf(&[512, 1024, 2048, 4096]), Default::Derived("hw_block_size"),
    Frozen, None, "logical block size (also a create parameter)",
    get: |d| d.block_size(),
    set: Some(|d, v| {
        d.block_size.store(v, Ordering::Relaxed);
        let hw = d.hw_max_sectors();
        d.optimal_sectors.fetch_min(hw, Ordering::Relaxed);
        Ok(())
    })),
    attr!("cluster", Domain::Flag, Default::Value(0), Frozen, None,
    "share this LU's persistent reservations and ALUA group states with the other gateways of `serve --cluster` that export an LU of the same wwn/vpd_unit_serial (docs/cluster.md)",
    get: |d| flag(&d.shared.clustered),
    set: Some(|d, v| {
        // A clustered LU serves nothing until the cluster layer has synced it.
        if (v != 0) != d.clustered() {
            d.set_serve_deadline((v != 0).then(std::time::Instant::now));
        }
        store_flag(&d.shared.clustered, v)
    })),
    attr!("emulate_3pc", Domain::Flag, Default::Value(1), Live, None,
        "EXTENDED COPY (LID1) and RECEIVE COPY RESULTS, INQUIRY 3PC. Copies run only between LUs the issuing I_T nexus can see (not every device of the system, the fix of CVE-2020-28374 in LIO)",
        get: |d| flag(&d.emulate_3pc),
        set: Some(|d, v| store_flag(&d.emulate_3pc, v))),
    attr!("emulate_caw", Domain::Flag, Default::Value(1), Live, None,
        "COMPARE AND WRITE (atomic against every concurrent write to the same blocks; up to 128 blocks, reported in VPD B0); 0 hides it (INVALID COMMAND OPERATION CODE)",
        get: |d| flag(&d.emulate_caw),
        set: Some(|d, v| store_flag(&d.emulate_caw, v))),
    attr!("emulate_dpo", Domain::Only(0, "the DPO cache hint is not emulated"), Default::Value(0),
        Live, None, "",
        get: |_| 0, set: None),
    attr!("emulate_fua_read", Domain::Only(0, "FUA on reads is not emulated"), Default::Value(0),
        Live, None, "",
        get: |_| 0, set: None),
    attr!("emulate_fua_write", Domain::Flag, Default::Value(1), Live, MODE_CHANGED,
        "honour FUA on writes",
        get: |d| flag(&d.fua_write),
        set: Some(|d, v| store_flag(&d.fua_write, v))),
    attr!("emulate_model_alias", Domain::Flag, Default::Value(0), Frozen, None,
        "product id = device name",
        get: |d| flag(&d.model_alias),
        set: Some(|d, v| store_flag(&d.model_alias, v))),
    attr!("emulate_pr", Domain::Flag, Default::Value(1), Frozen, None,
        "persistent reservations and SPC-2 RESERVE/RELEASE (0: those commands get INVALID COMMAND OPERATION CODE)",
        get: |d| flag(&d.emulate_pr),
        set: Some(|d, v| store_flag(&d.emulate_pr, v))),
    attr!("emulate_rest_reord", Domain::Only(0, "only unrestricted reordering is supported"),
        Default::Value(0), Live, None, "",
        get: |_| 0, set: None),
    attr!("emulate_rsoc", Domain::Flag, Default::Value(1), Live, None,
        "REPORT SUPPORTED OPERATION CODES",
        get: |d| flag(&d.rsoc),
        set: Some(|d, v| store_flag(&d.rsoc, v))),
    attr!("emulate_tas", Domain::Flag, Default::Value(1), Frozen, None,
        "TAS bit (aborted tasks of other nexuses get TASK ABORTED)",
        get: |d| flag(&d.tas),
        set: Some(|d, v| store_flag(&d.tas, v))),
    attr!("emulate_tpu", Domain::Flag, Default::Value(0), Live, None,
        "thin provisioning management: UNMAP and GET LBA STATUS, LBPU/LBPME, the unmap fields of the Block Limits VPD, SANITIZE BLOCK ERASE; refused (one line) on a backstore that cannot deallocate. Deallocation really frees space: punch-hole on a fileio file, BLKDISCARD on a block device, freed chunks on rd_mcp",
        get: |d| flag(&d.emulate_tpu),
        set: Some(|d, v| d.set_provisioning("emulate_tpu", &d.emulate_tpu, v))),
    attr!("emulate_tpws", Domain::Flag, Default::Value(0), Live, None,
        "WRITE SAME(10)/(16) with UNMAP (deallocates the range whatever the data block holds, as LIO) and NDOB; LBPWS/LBPWS10; same refusal",
        get: |d| flag(&d.emulate_tpws),
        set: Some(|d, v| d.set_provisioning("emulate_tpws", &d.emulate_tpws, v))),
    attr!("emulate_ua_intlck_ctrl", Domain::OneOf(&[0, 1, 2]), Default::Value(0), Frozen, None,
    "UA_INTLCK_CTRL of the control mode page",
    get: |d| u32::from(d.ua_intlck.load(Ordering::Relaxed)),
    set: Some(|d, v| {
        d.ua_intlck.store(v as u8, Ordering::Relaxed);
        Ok(())
    })),
    attr!("emulate_write_cache", Domain::Flag,
        Default::Derived("0 (1 if the backstore has a volatile cache)"), Live, MODE_CHANGED,
        "WCE bit of the caching mode page",
        get: |d| flag(&d.write_cache),
        set: Some(|d, v| store_flag(&d.write_cache, v))),
    attr!("emulate_wsnz", Domain::Flag, Default::Value(1), Live, None,
        "WSNZ of the Block Limits VPD. 0: WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 writes to the end of the medium (within MAXIMUM WRITE SAME LENGTH). ironlun extension",
        get: |d| flag(&d.emulate_wsnz),
        set: Some(|d, v| store_flag(&d.emulate_wsnz, v))),
    attr!("force_pr_aptpl", Domain::Flag, Default::Value(0), Frozen, None,
        "persist every PR change in the APTPL file as if each PERSISTENT RESERVE OUT had APTPL=1",
        get: |d| flag(&d.force_pr_aptpl),
        set: Some(|d, v| store_flag(&d.force_pr_aptpl, v))),
    attr!("hw_block_size", Domain::ReadOnly, Default::Derived("the backstore's"), Live, None,
        "the backstore's native block size",
        get: |d| d.backstore.hw_block_size(), set: None),
    attr!("hw_max_sectors", Domain::ReadOnly, Default::Derived("8 MiB of blocks"), Live, None,
        "the largest transfer, in blocks",
        get: |d| d.hw_max_sectors(), set: None),
    attr!("hw_queue_depth", Domain::ReadOnly, Default::Value(HW_QUEUE_DEPTH), Live, None,
        "the most tasks the engine holds per LU",
        get: |_| HW_QUEUE_DEPTH, set: None),
    attr!("is_nonrot", Domain::Flag, Default::Value(0), Live, None,
        "report a non-rotating medium (VPD B1)",
        get: |d| flag(&d.nonrot),
        set: Some(|d, v| store_flag(&d.nonrot, v))),
    attr!("max_unmap_block_desc_count", Domain::Range(0, u32::MAX), Default::Value(0), Live, None,
        "UNMAP descriptors per command; 0 = the backstore's default while thin (256); `ls` shows the effective value while emulate_tpu or emulate_tpws is on",
        get: |d| if d.thin() { d.max_unmap_descriptors() } else { d.max_unmap_block_desc_count.load(Ordering::Relaxed) },
        set: Some(|d, v| store_u32(&d.max_unmap_block_desc_count, v))),
    attr!("max_unmap_lba_count", Domain::Range(0, u32::MAX), Default::Value(0), Live, None,
        "blocks one UNMAP may deallocate; 0 = the backstore's default while thin (256 MiB of blocks); shown effective while thin",
        get: |d| if d.thin() { d.max_unmap_lba() } else { d.max_unmap_lba_count.load(Ordering::Relaxed) },
        set: Some(|d, v| store_u32(&d.max_unmap_lba_count, v))),
    // 65535: the largest WRITE SAME(10) count, as LIO's iblock and rd backends report.
    attr!("max_write_same_len", Domain::Range(0, u32::MAX), Default::Value(0xFFFF), Live, None,
        "MAXIMUM WRITE SAME LENGTH (Block Limits VPD)",
        get: |d| d.max_write_same_len.load(Ordering::Relaxed),
        set: Some(|d, v| store_u32(&d.max_write_same_len, v))),
    attr!("optimal_sectors", Domain::Bounded("1..hw_max_sectors"), Default::Derived("hw_max_sectors"),
    Live, None, "OPTIMAL TRANSFER LENGTH (Block Limits VPD)",
    get: |d| d.optimal_sectors(),
    set: Some(|d, v| {
        let hw = d.hw_max_sectors();
        if v == 0 || v > hw {
            return Err(format!(
                "optimal_sectors: invalid value {v}; valid values: 1..={hw} (hw_max_sectors)"
            ));
        }
        store_u32(&d.optimal_sectors, v)
    })),
    attr!("queue_depth", Domain::Bounded("1..hw_queue_depth"), Default::Value(HW_QUEUE_DEPTH),
    Live, None, "tasks before TASK SET FULL",
    get: |d| d.queue_depth(),
    set: Some(|d, v| {
        if v == 0 || v > HW_QUEUE_DEPTH {
            return Err(format!(
                "queue_depth: invalid value {v}; valid values: 1..={HW_QUEUE_DEPTH} (hw_queue_depth)"
            ));
        }
        store_u32(&d.queue_depth, v)
    })),
    attr!("removable", Domain::Flag, Default::Value(0), Frozen, None,
    "removable-medium emulation: INQUIRY RMB, PREVENT ALLOW MEDIUM REMOVAL (per I_T nexus; ends on nexus loss and resets), START STOP UNIT LOEJ eject/load (MEDIUM REMOVAL PREVENTED while prevented), NOT READY / MEDIUM NOT PRESENT while ejected. ironlun extension (tgt's `removable`)",
    get: |d| u32::from(d.media.removable()),
    set: Some(|d, v| {
        d.media.set_removable(v != 0);
        Ok(())
    })),
    attr!("unmap_granularity", Domain::Range(0, u32::MAX), Default::Value(0), Live, None,
        "OPTIMAL UNMAP GRANULARITY; 0 = the backstore's while thin (the filesystem block / discard granularity / 64 KiB RAM chunk); shown effective while thin",
        get: |d| if d.thin() { d.unmap_granularity_blocks() } else { d.unmap_granularity.load(Ordering::Relaxed) },
        set: Some(|d, v| store_u32(&d.unmap_granularity, v))),
    attr!("unmap_granularity_alignment", Domain::Range(0, u32::MAX), Default::Value(0), Live, None,
        "UNMAP GRANULARITY ALIGNMENT",
        get: |d| d.unmap_granularity_alignment.load(Ordering::Relaxed),
        set: Some(|d, v| store_u32(&d.unmap_granularity_alignment, v))),
    attr!("unmap_zeroes_data", Domain::Flag,
    Default::Derived("set from the backstore when thin provisioning is enabled"), Live, None,
    "LBPRZ (deallocated blocks read as zeroes); 1 is refused where the backstore cannot promise it",
    get: |d| flag(&d.unmap_zeroes_data),
    set: Some(|d, v| {
        if v != 0 && !d.backstore.unmap_zeroes() {
            return Err(
                "unmap_zeroes_data: deallocated blocks of this backstore do not read as zeroes; only 0 is accepted"
                    .to_string(),
            );
        }
        store_flag(&d.unmap_zeroes_data, v)
    })),
];

fn store_flag(a: &AtomicBool, v: u32) -> Result<(), String> {
    a.store(v != 0, Ordering::Relaxed);
    Ok(())
}

fn store_u32(a: &AtomicU32, v: u32) -> Result<(), String> {
    a.store(v, Ordering::Relaxed);
    Ok(())
}

fn find(name: &str) -> Option<&'static DeviceAttr> {
    ATTRIBUTES.iter().find(|a| a.def.name == name)
}

/// The schema of every device attribute, in display order.
pub fn device_attribute_defs() -> impl Iterator<Item = &'static AttrDef> {
    ATTRIBUTES.iter().map(|a| &a.def)
}

/// Gives a new device the fixed defaults its attributes declare.
pub(super) fn apply_defaults(dev: &Device) -> Result<(), String> {
    for a in ATTRIBUTES {
        if let (Default::Value(v), Some(set)) = (a.def.default, a.set) {
            set(dev, v).map_err(|e| format!("default of {}: {e}", a.def.name))?;
        }
    }
    Ok(())
}

impl Device {
    /// `attrib/<name>` names, in display order.
    pub fn attribute_names(&self) -> Vec<&'static str> {
        ATTRIBUTES.iter().map(|a| a.def.name).collect()
    }

    /// Current value of `attrib/<name>` as text (LIO formatting: integers in decimal).
    pub fn attribute(&self, name: &str) -> Option<String> {
        find(name).map(|a| (a.get)(self).to_string())
    }

    /// Set `attrib/<name>`. Err is one line naming the attribute and what is valid; no change
    /// on Err. A change to an attribute declared with a unit attention raises it on every
    /// I_T nexus of the LU.
    pub fn set_attribute(&self, name: &str, value: &str) -> Result<(), String> {
        let Some(a) = find(name) else {
            let names: Vec<&str> = ATTRIBUTES.iter().map(|a| a.def.name).collect();
            return Err(format!(
                "{name}: unknown attribute; valid: {}",
                names.join(", ")
            ));
        };
        let v = a.def.parse(value)?;
        let Some(set) = a.set else {
            // Only(v): the one accepted value is already the value.
            return Ok(());
        };
        if a.def.while_exported == WhileExported::Frozen {
            self.refuse_if_exported(name)?;
        }
        // Only an attribute that raises a unit attention needs its value before the change.
        let before = a.def.ua.map(|_| (a.get)(self));
        set(self, v)?;
        if let (Some((ua, _)), Some(before)) = (a.def.ua, before) {
            if (a.get)(self) != before {
                self.raise_ua(ua, None);
            }
        }
        Ok(())
    }

    /// `emulate_tpu` / `emulate_tpws`: refused where the backstore cannot deallocate (as LIO's
    /// configure_unmap: the feature would be a lie); enabling provisioning takes LBPRZ from
    /// what the backstore promises.
    fn set_provisioning(&self, name: &str, a: &AtomicBool, v: u32) -> Result<(), String> {
        if v != 0 && !self.backstore.supports_unmap() {
            return Err(format!(
                "{name}: the backstore cannot deallocate blocks ({}); only 0 is accepted",
                self.backstore_kind_hint()
            ));
        }
        if v != 0 && !self.thin() {
            self.unmap_zeroes_data
                .store(self.backstore.unmap_zeroes(), Ordering::Relaxed);
        }
        store_flag(a, v)
    }
}
