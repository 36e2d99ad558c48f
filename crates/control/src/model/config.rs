//! The whole tree ([`Config`], `config.json`): lookups across it, RTPI allocation (SPC-4 §7.8.6
//! relative target port designator), the ALUA member ports of a group (SPC-4 §5.11.2), and
//! whole-tree validation.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::alua::{LuGp, DEFAULT_LU_GP};
use super::device::{DevKey, StorageObject};
use super::iscsi::{DiscoveryAuth, Target, Tpg};

/// Version written in `config.json`; files of other versions are refused.
pub const CONFIG_VERSION: u32 = 1;

/// The whole tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    #[serde(default)]
    pub storage_objects: Vec<StorageObject>,
    #[serde(default)]
    pub discovery_auth: DiscoveryAuth,
    #[serde(default)]
    pub targets: Vec<Target>,
    /// `core/alua/lu_gps/<name>` other than `default_lu_gp`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alua_lu_gps: Vec<LuGp>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: CONFIG_VERSION,
            storage_objects: Vec::new(),
            discovery_auth: DiscoveryAuth::default(),
            targets: Vec::new(),
            alua_lu_gps: Vec::new(),
        }
    }
}

/// Something that knows the fabric's `param/` keys (the fabric crate; a fake in tests).
pub trait ParamSchema {
    /// `param/` keys and their defaults, in display order.
    fn param_defaults(&self) -> Vec<(String, String)>;
    /// Err is one line naming the key and what is valid.
    fn validate_param(&self, key: &str, value: &str) -> Result<(), String>;
}

impl Config {
    pub fn device(&self, key: &DevKey) -> Option<&StorageObject> {
        self.storage_objects.iter().find(|s| s.is(key))
    }
    pub fn device_mut(&mut self, key: &DevKey) -> Option<&mut StorageObject> {
        self.storage_objects.iter_mut().find(|s| s.is(key))
    }
    pub fn target(&self, wwn: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.wwn == wwn)
    }
    pub fn target_mut(&mut self, wwn: &str) -> Option<&mut Target> {
        self.targets.iter_mut().find(|t| t.wwn == wwn)
    }
    pub fn tpg_mut(&mut self, wwn: &str, tag: u16) -> Option<&mut Tpg> {
        self.target_mut(wwn).and_then(|t| t.tpg_mut(tag))
    }

    /// Every TPG LUN that exports `key`, as (target, tpgt, lun).
    pub fn luns_of(&self, key: &DevKey) -> Vec<(String, u16, u64)> {
        let path = key.to_string();
        let mut out = Vec::new();
        for t in &self.targets {
            for g in &t.tpgs {
                for l in &g.luns {
                    if l.storage_object == path {
                        out.push((t.wwn.clone(), g.tag, l.index));
                    }
                }
            }
        }
        out
    }

    /// Lowest RTPI in 1..=65535 not used by any TPG (LIO allocates the lowest free one too).
    pub fn free_rtpi(&self) -> Option<u16> {
        let used: BTreeSet<u16> = self
            .targets
            .iter()
            .flat_map(|t| t.tpgs.iter().map(|g| g.rtpi))
            .collect();
        (1..=u16::MAX).find(|r| !used.contains(r))
    }

    /// Give every TPG with `rtpi == 0` (a file without pinned RTPIs) a free one.
    pub fn assign_missing_rtpis(&mut self) -> Result<(), String> {
        loop {
            let Some((ti, gi)) = self
                .targets
                .iter()
                .enumerate()
                .find_map(|(ti, t)| t.tpgs.iter().position(|g| g.rtpi == 0).map(|gi| (ti, gi)))
            else {
                return Ok(());
            };
            let r = self
                .free_rtpi()
                .ok_or("no free relative target port identifier (all 65535 used)")?;
            if let Some(g) = self.targets.get_mut(ti).and_then(|t| t.tpgs.get_mut(gi)) {
                g.rtpi = r;
            }
        }
    }
}

/// A member port of a target port group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub target: String,
    pub tpgt: u16,
    pub lun: u64,
    pub rtpi: u16,
}

impl Config {
    /// The LU groups, `default_lu_gp` first.
    pub fn lu_gps(&self) -> Vec<LuGp> {
        let mut out = vec![LuGp {
            name: DEFAULT_LU_GP.into(),
            lu_gp_id: 0,
        }];
        out.extend(self.alua_lu_gps.iter().cloned());
        out
    }

    /// TPG LUNs exporting `key` that are in its group `group`.
    pub fn alua_members(&self, key: &DevKey, group: &str) -> Vec<Member> {
        let path = key.to_string();
        let mut out = Vec::new();
        for t in &self.targets {
            for g in &t.tpgs {
                for l in &g.luns {
                    if l.storage_object == path && l.tg_pt_gp() == group {
                        out.push(Member {
                            target: t.wwn.clone(),
                            tpgt: g.tag,
                            lun: l.index,
                            rtpi: g.rtpi,
                        });
                    }
                }
            }
        }
        out
    }
}
