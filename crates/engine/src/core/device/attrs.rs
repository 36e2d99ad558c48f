//! A device's attributes as the control plane sees them (LIO `attrib/`): their names in
//! display order, their values as text, and setting one with its validation and effect.

use std::sync::atomic::Ordering;

use ironlun_scsi::sense::asc;

use super::*;

fn parse_bool(name: &str, v: &str) -> Result<bool, String> {
    match v.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(format!("{name}: invalid value {v:?}; valid values: 0, 1")),
    }
}

fn parse_u32(name: &str, v: &str) -> Result<u32, String> {
    v.trim()
        .parse::<u32>()
        .map_err(|_| format!("{name}: invalid value {v:?}; expected an integer 0..=4294967295"))
}

/// Attribute names in display order (LIO `attrib/` names).
const ATTRIBUTES: &[&str] = &[
    "block_size",
    "emulate_3pc",
    "emulate_caw",
    "emulate_fua_write",
    "emulate_model_alias",
    "emulate_pr",
    "emulate_rest_reord",
    "emulate_rsoc",
    "emulate_tas",
    "emulate_tpu",
    "emulate_tpws",
    "emulate_ua_intlck_ctrl",
    "emulate_write_cache",
    "emulate_wsnz",
    "force_pr_aptpl",
    "hw_block_size",
    "hw_max_sectors",
    "hw_queue_depth",
    "is_nonrot",
    "max_unmap_block_desc_count",
    "max_unmap_lba_count",
    "max_write_same_len",
    "optimal_sectors",
    "queue_depth",
    "removable",
    "unmap_granularity",
    "unmap_granularity_alignment",
    "unmap_zeroes_data",
];

/// Attributes fixed at 0 until the feature exists, and why.
fn not_yet(name: &str) -> Option<&'static str> {
    Some(match name {
        "emulate_rest_reord" => "only unrestricted reordering (0) is supported",
        _ => return None,
    })
}

impl Device {
    /// `attrib/<name>` names this device supports, in display order.
    pub fn attribute_names(&self) -> Vec<&'static str> {
        ATTRIBUTES.to_vec()
    }

    /// Current value of `attrib/<name>` as text (LIO formatting: integers in decimal).
    pub fn attribute(&self, name: &str) -> Option<String> {
        let b = |a: &AtomicBool| u32::from(a.load(Ordering::Relaxed));
        let u = |a: &AtomicU32| a.load(Ordering::Relaxed);
        let v: u32 = match name {
            "block_size" => self.block_size(),
            "emulate_fua_write" => b(&self.fua_write),
            "emulate_model_alias" => b(&self.model_alias),
            "emulate_rsoc" => b(&self.rsoc),
            "emulate_pr" => b(&self.emulate_pr),
            "emulate_caw" => b(&self.emulate_caw),
            "emulate_3pc" => b(&self.emulate_3pc),
            "emulate_tpu" => b(&self.emulate_tpu),
            "emulate_wsnz" => b(&self.emulate_wsnz),
            "emulate_tpws" => b(&self.emulate_tpws),
            "removable" => u32::from(self.media.removable()),
            "force_pr_aptpl" => b(&self.force_pr_aptpl),
            "emulate_tas" => b(&self.tas),
            "emulate_ua_intlck_ctrl" => u32::from(self.ua_intlck.load(Ordering::Relaxed)),
            "emulate_write_cache" => b(&self.write_cache),
            "hw_block_size" => self.backstore.hw_block_size(),
            "hw_max_sectors" => self.hw_max_sectors(),
            "hw_queue_depth" => HW_QUEUE_DEPTH,
            "is_nonrot" => b(&self.nonrot),
            "max_unmap_block_desc_count" if self.thin() => self.max_unmap_descriptors(),
            "max_unmap_lba_count" if self.thin() => self.max_unmap_lba(),
            "unmap_granularity" if self.thin() => self.unmap_granularity_blocks(),
            "max_unmap_block_desc_count" => u(&self.max_unmap_block_desc_count),
            "max_unmap_lba_count" => u(&self.max_unmap_lba_count),
            "max_write_same_len" => u(&self.max_write_same_len),
            "optimal_sectors" => self.optimal_sectors(),
            "queue_depth" => self.queue_depth(),
            "unmap_granularity" => u(&self.unmap_granularity),
            "unmap_granularity_alignment" => u(&self.unmap_granularity_alignment),
            "unmap_zeroes_data" => b(&self.unmap_zeroes_data),
            other if not_yet(other).is_some() => 0,
            _ => return None,
        };
        Some(v.to_string())
    }

    /// Set `attrib/<name>`. Err is one line naming the attribute and what is valid; no change on Err.
    /// Changing a mode-page-visible attribute raises UA 2A/01 MODE PARAMETERS CHANGED on other nexuses.
    pub fn set_attribute(&self, name: &str, value: &str) -> Result<(), String> {
        if let Some(why) = not_yet(name) {
            return match value.trim() {
                "0" => Ok(()),
                _ => Err(format!("{name}: only 0 is accepted ({why})")),
            };
        }
        let set_u32 = |a: &AtomicU32, v: &str| -> Result<(), String> {
            a.store(parse_u32(name, v)?, Ordering::Relaxed);
            Ok(())
        };
        match name {
            "block_size" => {
                let v = parse_u32(name, value)?;
                if !matches!(v, 512 | 1024 | 2048 | 4096) {
                    return Err(format!(
                        "block_size: invalid value {v}; valid values: 512, 1024, 2048, 4096"
                    ));
                }
                self.refuse_if_exported(name)?;
                self.block_size.store(v, Ordering::Relaxed);
                let hw = self.hw_max_sectors();
                self.optimal_sectors.fetch_min(hw, Ordering::Relaxed);
            }
            "emulate_write_cache" => {
                let v = parse_bool(name, value)?;
                if self.write_cache.swap(v, Ordering::Relaxed) != v {
                    self.raise_ua(asc::MODE_PARAMETERS_CHANGED, None);
                }
            }
            "emulate_fua_write" => {
                let v = parse_bool(name, value)?;
                if self.fua_write.swap(v, Ordering::Relaxed) != v {
                    self.raise_ua(asc::MODE_PARAMETERS_CHANGED, None);
                }
            }
            "emulate_ua_intlck_ctrl" => {
                let v = match value.trim() {
                    "0" => 0,
                    "1" => 1,
                    "2" => 2,
                    _ => {
                        return Err(format!(
                            "{name}: invalid value {value:?}; valid values: 0, 1, 2"
                        ))
                    }
                };
                self.refuse_if_exported(name)?;
                self.ua_intlck.store(v, Ordering::Relaxed);
            }
            "emulate_tas" => {
                let v = parse_bool(name, value)?;
                self.refuse_if_exported(name)?;
                self.tas.store(v, Ordering::Relaxed);
            }
            "emulate_model_alias" => {
                let v = parse_bool(name, value)?;
                self.refuse_if_exported(name)?;
                self.model_alias.store(v, Ordering::Relaxed);
            }
            "emulate_rsoc" => self.rsoc.store(parse_bool(name, value)?, Ordering::Relaxed),
            // Live, as in LIO: COMPARE AND WRITE (and its RSOC entry, VPD B0h limit) come and go.
            "emulate_caw" => self
                .emulate_caw
                .store(parse_bool(name, value)?, Ordering::Relaxed),
            "emulate_3pc" => self
                .emulate_3pc
                .store(parse_bool(name, value)?, Ordering::Relaxed),
            "emulate_tpu" | "emulate_tpws" => {
                let v = parse_bool(name, value)?;
                if v && !self.backstore.supports_unmap() {
                    // As LIO's configure_unmap refusal: the feature would be a lie.
                    return Err(format!(
                        "{name}: the backstore cannot deallocate blocks ({}); only 0 is accepted",
                        self.backstore_kind_hint()
                    ));
                }
                let a = if name == "emulate_tpu" {
                    &self.emulate_tpu
                } else {
                    &self.emulate_tpws
                };
                if v && !self.thin() {
                    // LBPRZ follows what the backstore promises once provisioning is on.
                    self.unmap_zeroes_data
                        .store(self.backstore.unmap_zeroes(), Ordering::Relaxed);
                }
                a.store(v, Ordering::Relaxed);
            }
            "emulate_wsnz" => self
                .emulate_wsnz
                .store(parse_bool(name, value)?, Ordering::Relaxed),
            // Initiators read RMB once, at discovery: frozen while exported.
            "removable" => {
                let v = parse_bool(name, value)?;
                self.refuse_if_exported(name)?;
                self.media.set_removable(v);
            }
            // Both are frozen while exported (LIO refuses force_pr_aptpl then; emulate_pr
            // likewise here so that reservations initiators hold never silently stop
            // being enforced).
            "emulate_pr" | "force_pr_aptpl" => {
                let v = parse_bool(name, value)?;
                self.refuse_if_exported(name)?;
                let a = if name == "emulate_pr" {
                    &self.emulate_pr
                } else {
                    &self.force_pr_aptpl
                };
                a.store(v, Ordering::Relaxed);
            }
            "is_nonrot" => self
                .nonrot
                .store(parse_bool(name, value)?, Ordering::Relaxed),
            "unmap_zeroes_data" => {
                let v = parse_bool(name, value)?;
                if v && !self.backstore.unmap_zeroes() {
                    return Err(format!(
                        "{name}: deallocated blocks of this backstore do not read as zeroes; only 0 is accepted"
                    ));
                }
                self.unmap_zeroes_data.store(v, Ordering::Relaxed);
            }
            "queue_depth" => {
                let v = parse_u32(name, value)?;
                if v == 0 || v > HW_QUEUE_DEPTH {
                    return Err(format!(
                        "queue_depth: invalid value {v}; valid values: 1..={HW_QUEUE_DEPTH} (hw_queue_depth)"
                    ));
                }
                self.queue_depth.store(v, Ordering::Relaxed);
            }
            "optimal_sectors" => {
                let v = parse_u32(name, value)?;
                let hw = self.hw_max_sectors();
                if v == 0 || v > hw {
                    return Err(format!(
                        "optimal_sectors: invalid value {v}; valid values: 1..={hw} (hw_max_sectors)"
                    ));
                }
                self.optimal_sectors.store(v, Ordering::Relaxed);
            }
            "max_write_same_len" => set_u32(&self.max_write_same_len, value)?,
            "max_unmap_lba_count" => set_u32(&self.max_unmap_lba_count, value)?,
            "max_unmap_block_desc_count" => set_u32(&self.max_unmap_block_desc_count, value)?,
            "unmap_granularity" => set_u32(&self.unmap_granularity, value)?,
            "unmap_granularity_alignment" => set_u32(&self.unmap_granularity_alignment, value)?,
            "hw_block_size" | "hw_max_sectors" | "hw_queue_depth" => {
                return Err(format!("{name}: read-only attribute"))
            }
            _ => {
                return Err(format!(
                    "{name}: unknown attribute; valid: {}",
                    ATTRIBUTES.join(", ")
                ))
            }
        }
        Ok(())
    }
}
