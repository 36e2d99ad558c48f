//! The whole tree ([`Config`], `config.json`): lookups across it, RTPI allocation (SPC-4 §7.8.6
//! relative target port designator), the ALUA member ports of a group (SPC-4 §5.11.2), and
//! whole-tree validation.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::alua::{validate_group_name, LuGp, DEFAULT_LU_GP};
use super::attrib::TPG_ATTRIBUTES;
use super::device::{validate_dev_name, validate_storage_object, DevKey, StorageObject};
use super::iscsi::{validate_portal, Chap, DiscoveryAuth, Target, Tpg, MAX_LUN};
use crate::names::validate_iscsi_name;

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
        self.storage_objects.iter().find(|s| s.key() == *key)
    }
    pub fn device_mut(&mut self, key: &DevKey) -> Option<&mut StorageObject> {
        self.storage_objects.iter_mut().find(|s| s.key() == *key)
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

    /// Check the whole tree: names, uniqueness, references, values. Used after every mutation
    /// (as a safety net behind the per-operation checks) and before a restore.
    /// Device `attrib/` values are checked by the engine when applied.
    pub fn validate(&self, params: &dyn ParamSchema) -> Result<(), String> {
        if self.version != CONFIG_VERSION {
            return Err(format!(
                "config version {} is not supported (expected {CONFIG_VERSION})",
                self.version
            ));
        }
        let mut keys = BTreeSet::new();
        let mut serials: BTreeMap<&str, DevKey> = BTreeMap::new();
        for so in &self.storage_objects {
            let key = so.key();
            validate_dev_name(&so.name)?;
            if !keys.insert(key.clone()) {
                return Err(format!("{key} is defined twice"));
            }
            validate_storage_object(so)?;
            if let Some(other) = serials.insert(&so.wwn, key.clone()) {
                return Err(format!(
                    "{key}/wwn/vpd_unit_serial '{}' is already used by {other}; serials must be unique",
                    so.wwn
                ));
            }
        }
        self.discovery_auth.chap.validate("iscsi/discovery_auth")?;
        if self.discovery_auth.enforce_discovery_auth
            && (self.discovery_auth.chap.chap_userid.is_empty()
                || self.discovery_auth.chap.chap_password.is_empty())
        {
            return Err(
                "iscsi/discovery_auth/enforce_discovery_auth=1 needs discovery_auth/userid and password set first".into()
            );
        }
        let mut targets = BTreeSet::new();
        let mut rtpis: BTreeMap<u16, String> = BTreeMap::new();
        let defaults: BTreeSet<String> = params
            .param_defaults()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for t in &self.targets {
            validate_iscsi_name("target name", &t.wwn)?;
            if t.fabric != "iscsi" {
                return Err(format!(
                    "target {}: fabric '{}' is not supported (only iscsi)",
                    t.wwn, t.fabric
                ));
            }
            if !targets.insert(&t.wwn) {
                return Err(format!("iscsi/{} is defined twice", t.wwn));
            }
            let mut tags = BTreeSet::new();
            for g in &t.tpgs {
                let at = format!("iscsi/{}/tpgt_{}", t.wwn, g.tag);
                if g.tag == 0 {
                    return Err(format!("{at}: the portal group tag must be 1-65535"));
                }
                if !tags.insert(g.tag) {
                    return Err(format!("{at} is defined twice"));
                }
                if g.rtpi == 0 {
                    return Err(format!("{at}/rtpi must be 1-65535"));
                }
                if let Some(other) = rtpis.insert(g.rtpi, at.clone()) {
                    return Err(format!(
                        "{at}/rtpi {} is already used by {other}; RTPIs must be unique",
                        g.rtpi
                    ));
                }
                for a in TPG_ATTRIBUTES {
                    a.check(a.get(&g.attributes))
                        .map_err(|e| format!("{at}/attrib/{} {e}", a.def.name))?;
                }
                for (k, v) in &g.parameters {
                    if !defaults.contains(k) {
                        return Err(format!("{at}/param/{k}: unknown parameter"));
                    }
                    params
                        .validate_param(k, v)
                        .map_err(|e| format!("{at}/param/{k}: {e}"))?;
                }
                g.chap.validate(&format!("{at}/auth"))?;
                let mut portals = BTreeSet::new();
                for p in &g.portals {
                    validate_portal(&at, p.addr())?;
                    if !portals.insert(p.addr()) {
                        return Err(format!("{at}/np/{} is defined twice", p.addr()));
                    }
                }
                let mut luns = BTreeSet::new();
                for l in &g.luns {
                    if l.index > MAX_LUN {
                        return Err(format!("{at}/lun/lun_{}: LUN must be 0-{MAX_LUN}", l.index));
                    }
                    if !luns.insert(l.index) {
                        return Err(format!("{at}/lun/lun_{} is defined twice", l.index));
                    }
                    let key = DevKey::parse(&l.storage_object)
                        .map_err(|e| format!("{at}/lun/lun_{}: {e}", l.index))?;
                    if l.storage_object != key.to_string() {
                        return Err(format!(
                            "{at}/lun/lun_{}: write the device as {key}",
                            l.index
                        ));
                    }
                    if !keys.contains(&key) {
                        return Err(format!(
                            "{at}/lun/lun_{}: device {key} does not exist",
                            l.index
                        ));
                    }
                }
                let mut acls = BTreeSet::new();
                for a in &g.node_acls {
                    validate_iscsi_name("initiator name", &a.node_wwn)?;
                    if !acls.insert(&a.node_wwn) {
                        return Err(format!("{at}/acls/{} is defined twice", a.node_wwn));
                    }
                    let aat = format!("{at}/acls/{}", a.node_wwn);
                    a.chap.validate(&format!("{aat}/auth"))?;
                    let mut mapped = BTreeSet::new();
                    for m in &a.mapped_luns {
                        if m.index > MAX_LUN {
                            return Err(format!(
                                "{aat}/lun_{}: mapped LUN must be 0-{MAX_LUN}",
                                m.index
                            ));
                        }
                        if !mapped.insert(m.index) {
                            return Err(format!("{aat}/lun_{} is defined twice", m.index));
                        }
                        if !luns.contains(&m.tpg_lun) {
                            return Err(format!(
                                "{aat}/lun_{}: TPG LUN {} does not exist",
                                m.index, m.tpg_lun
                            ));
                        }
                    }
                }
            }
        }
        self.validate_chap_directions()?;
        self.validate_alua()
    }

    /// RFC 7143 §12.1.3: "Any CHAP secret used for initiator authentication MUST NOT be
    /// configured for authentication of any target". Every `password` (what initiators
    /// prove) against every `password_mutual` (what the target proves), anywhere in the tree:
    /// discovery, TPG and ACL credentials. The error names both fields, never the secret.
    fn validate_chap_directions(&self) -> Result<(), String> {
        let mut sets: Vec<(String, &Chap)> =
            vec![("iscsi/discovery_auth".into(), &self.discovery_auth.chap)];
        for t in &self.targets {
            for g in &t.tpgs {
                let at = format!("iscsi/{}/tpgt_{}", t.wwn, g.tag);
                sets.push((format!("{at}/auth"), &g.chap));
                for a in &g.node_acls {
                    sets.push((format!("{at}/acls/{}/auth", a.node_wwn), &a.chap));
                }
            }
        }
        for (mat, m) in &sets {
            if m.chap_mutual_password.is_empty() {
                continue;
            }
            if let Some((iat, _)) = sets
                .iter()
                .find(|(_, i)| i.chap_password == m.chap_mutual_password)
            {
                return Err(format!(
                    "{mat}/password_mutual must differ from {iat}/password (RFC 7143 §12.1.3: a secret that authenticates initiators never authenticates the target)"
                ));
            }
        }
        Ok(())
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

    /// LU groups: names and ids unique, device references exist, LUN groups exist.
    pub fn validate_alua(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        let mut ids = std::collections::BTreeMap::new();
        for g in &self.alua_lu_gps {
            let at = format!("core/alua/lu_gps/{}", g.name);
            validate_group_name(&at, &g.name)?;
            if g.name == DEFAULT_LU_GP || !names.insert(g.name.as_str()) {
                return Err(format!("{at} is defined twice"));
            }
            if g.lu_gp_id == 0 {
                return Err(format!(
                    "{at}/lu_gp_id: 0 is {DEFAULT_LU_GP}'s; expected 1-65535"
                ));
            }
            if let Some(other) = ids.insert(g.lu_gp_id, g.name.as_str()) {
                return Err(format!(
                    "{at}/lu_gp_id {} is already used by core/alua/lu_gps/{other}; ids must be unique",
                    g.lu_gp_id
                ));
            }
        }
        for so in &self.storage_objects {
            so.validate_alua()?;
            if let Some(lg) = &so.alua_lu_gp {
                if !names.contains(lg.as_str()) {
                    return Err(format!(
                        "{}/alua_lu_gp: LU group '{lg}' does not exist (core/alua/lu_gps/)",
                        so.key()
                    ));
                }
            }
        }
        for t in &self.targets {
            for g in &t.tpgs {
                for l in &g.luns {
                    let at = format!("iscsi/{}/tpgt_{}/lun/lun_{}", t.wwn, g.tag, l.index);
                    let dev = DevKey::parse(&l.storage_object)
                        .ok()
                        .and_then(|k| self.device(&k));
                    if let Some(so) = dev {
                        if so.alua_group(l.tg_pt_gp()).is_none() {
                            return Err(format!(
                                "{at}/alua_tg_pt_gp: group '{}' does not exist on {}",
                                l.tg_pt_gp(),
                                so.key()
                            ));
                        }
                    }
                    if l.alua_tg_pt_status > 2 {
                        return Err(format!("{at}/alua_tg_pt_status: expected 0, 1 or 2"));
                    }
                }
            }
        }
        Ok(())
    }
}
