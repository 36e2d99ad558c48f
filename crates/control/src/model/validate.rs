//! Validation of the tree: the whole of it ([`Config::validate`], after a load or a change
//! that replaces the tree) or only what one change touched ([`Config::validate_touched`]), both
//! from the same per-object checks, so a change costs the same with ten objects or ten
//! thousand. Lookups go through maps built once, never a scan per reference.

use std::collections::{BTreeMap, BTreeSet};

use super::alua::{validate_group_name, DEFAULT_LU_GP};
use super::attrib::TPG_ATTRIBUTES;
use super::config::{Config, ParamSchema, CONFIG_VERSION};
use super::device::{validate_dev_name, validate_storage_object, DevKey, StorageObject};
use super::iscsi::{validate_portal, Chap, Lun, NodeAcl, Tpg, MAX_LUN};
use super::touched::Touched;
use crate::names::validate_iscsi_name;

/// A device's own checks: name and fields.
fn check_device(so: &StorageObject) -> Result<(), String> {
    validate_dev_name(&so.name)?;
    validate_storage_object(so)
}

/// A device's ALUA groups and its LU group, which must exist.
fn check_device_alua(
    so: &StorageObject,
    lu_gp_exists: &dyn Fn(&str) -> bool,
) -> Result<(), String> {
    so.validate_alua()?;
    if let Some(lg) = &so.alua_lu_gp {
        if !lu_gp_exists(lg) {
            return Err(format!(
                "{}/alua_lu_gp: LU group '{lg}' does not exist (core/alua/lu_gps/)",
                so.key()
            ));
        }
    }
    Ok(())
}

fn serial_clash(so: &StorageObject, other: &StorageObject) -> String {
    format!(
        "{}/wwn/vpd_unit_serial '{}' is already used by {}; serials must be unique",
        so.key(),
        so.wwn,
        other.key()
    )
}

/// A TPG's own settings: tag, RTPI, attributes, parameters, CHAP, portals.
fn check_tpg_settings(
    at: &str,
    g: &Tpg,
    params: &dyn ParamSchema,
    defaults: &BTreeSet<String>,
) -> Result<(), String> {
    if g.tag == 0 {
        return Err(format!("{at}: the portal group tag must be 1-65535"));
    }
    if g.rtpi == 0 {
        return Err(format!("{at}/rtpi must be 1-65535"));
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
        validate_portal(at, p.addr())?;
        if !portals.insert(p.addr()) {
            return Err(format!("{at}/np/{} is defined twice", p.addr()));
        }
    }
    Ok(())
}

/// A TPG LUN: its number and the device it exports, which must exist.
fn check_lun(at: &str, l: &Lun, device: &dyn Fn(&DevKey) -> bool) -> Result<(), String> {
    if l.index > MAX_LUN {
        return Err(format!("{at}/lun/lun_{}: LUN must be 0-{MAX_LUN}", l.index));
    }
    let key =
        DevKey::parse(&l.storage_object).map_err(|e| format!("{at}/lun/lun_{}: {e}", l.index))?;
    if l.storage_object != key.to_string() {
        return Err(format!(
            "{at}/lun/lun_{}: write the device as {key}",
            l.index
        ));
    }
    if !device(&key) {
        return Err(format!(
            "{at}/lun/lun_{}: device {key} does not exist",
            l.index
        ));
    }
    Ok(())
}

/// A TPG LUN's ALUA settings: its group exists on the device it exports.
fn check_lun_alua(at: &str, l: &Lun, dev: Option<&StorageObject>) -> Result<(), String> {
    let at = format!("{at}/lun/lun_{}", l.index);
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
    Ok(())
}

/// An ACL: initiator name, CHAP, mapped LUNs unique and pointing at TPG LUNs that exist.
fn check_acl(at: &str, a: &NodeAcl, tpg_lun: &dyn Fn(u64) -> bool) -> Result<(), String> {
    validate_iscsi_name("initiator name", &a.node_wwn)?;
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
        if !tpg_lun(m.tpg_lun) {
            return Err(format!(
                "{aat}/lun_{}: TPG LUN {} does not exist",
                m.index, m.tpg_lun
            ));
        }
    }
    Ok(())
}

impl Config {
    /// The `param/` keys the fabric knows.
    fn param_keys(params: &dyn ParamSchema) -> BTreeSet<String> {
        params
            .param_defaults()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    /// Check the whole tree: names, uniqueness, references, values. Used when a tree is
    /// loaded or replaced (restore, apply) and behind the changes that touch much of it.
    /// Device `attrib/` values are checked by the engine when applied.
    pub fn validate(&self, params: &dyn ParamSchema) -> Result<(), String> {
        if self.version != CONFIG_VERSION {
            return Err(format!(
                "config version {} is not supported (expected {CONFIG_VERSION})",
                self.version
            ));
        }
        let mut devices: BTreeMap<DevKey, &StorageObject> = BTreeMap::new();
        let mut serials: BTreeMap<&str, &StorageObject> = BTreeMap::new();
        for so in &self.storage_objects {
            let key = so.key();
            validate_dev_name(&so.name)?;
            if devices.insert(key.clone(), so).is_some() {
                return Err(format!("{key} is defined twice"));
            }
            validate_storage_object(so)?;
            if let Some(other) = serials.insert(&so.wwn, so) {
                return Err(serial_clash(so, other));
            }
        }
        self.validate_discovery_auth()?;
        let mut targets = BTreeSet::new();
        let mut rtpis: BTreeMap<u16, String> = BTreeMap::new();
        let defaults = Self::param_keys(params);
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
                if g.tag != 0 && !tags.insert(g.tag) {
                    return Err(format!("{at} is defined twice"));
                }
                check_tpg_settings(&at, g, params, &defaults)?;
                if let Some(other) = rtpis.insert(g.rtpi, at.clone()) {
                    return Err(format!(
                        "{at}/rtpi {} is already used by {other}; RTPIs must be unique",
                        g.rtpi
                    ));
                }
                let mut luns = BTreeSet::new();
                for l in &g.luns {
                    check_lun(&at, l, &|k| devices.contains_key(k))?;
                    if !luns.insert(l.index) {
                        return Err(format!("{at}/lun/lun_{} is defined twice", l.index));
                    }
                }
                let mut acls = BTreeSet::new();
                for a in &g.node_acls {
                    check_acl(&at, a, &|n| luns.contains(&n))?;
                    if !acls.insert(&a.node_wwn) {
                        return Err(format!("{at}/acls/{} is defined twice", a.node_wwn));
                    }
                }
            }
        }
        self.validate_chap_directions()?;
        let lu_gps = self.validate_lu_gps()?;
        for so in &self.storage_objects {
            check_device_alua(so, &|n| lu_gps.contains(n))?;
        }
        for t in &self.targets {
            for g in &t.tpgs {
                let at = format!("iscsi/{}/tpgt_{}", t.wwn, g.tag);
                for l in &g.luns {
                    let dev = DevKey::parse(&l.storage_object)
                        .ok()
                        .and_then(|k| devices.get(&k).copied());
                    check_lun_alua(&at, l, dev)?;
                }
            }
        }
        Ok(())
    }

    /// Check what one change (or one batch of them) touched, as [`Config::validate`] would
    /// for those objects: their own values, the references from and to them, and uniqueness
    /// against the rest (scans without allocation). A change marked `whole` is checked whole.
    pub fn validate_touched(
        &self,
        touched: &Touched,
        params: &dyn ParamSchema,
    ) -> Result<(), String> {
        if touched.whole {
            return self.validate(params);
        }
        for key in &touched.devices {
            let Some(so) = self.device(key) else { continue };
            check_device(so)?;
            if self.storage_objects.iter().filter(|s| s.is(key)).count() > 1 {
                return Err(format!("{key} is defined twice"));
            }
            if let Some(other) = self
                .storage_objects
                .iter()
                .find(|o| o.wwn == so.wwn && !o.is(key))
            {
                return Err(serial_clash(so, other));
            }
            check_device_alua(so, &|n| self.alua_lu_gps.iter().any(|g| g.name == n))?;
            // The TPG LUNs exporting it must still find their groups on it.
            let path = key.to_string();
            for t in &self.targets {
                for g in &t.tpgs {
                    let at = format!("iscsi/{}/tpgt_{}", t.wwn, g.tag);
                    for l in g.luns.iter().filter(|l| l.storage_object == path) {
                        check_lun_alua(&at, l, Some(so))?;
                    }
                }
            }
        }
        let defaults = Self::param_keys(params);
        let mut chap = touched.fabric;
        for ((t, tag), what) in &touched.tpgs {
            let Some(g) = self.target(t).and_then(|x| x.tpg(*tag)) else {
                continue;
            };
            let at = format!("iscsi/{t}/tpgt_{tag}");
            if what.settings {
                check_tpg_settings(&at, g, params, &defaults)?;
                chap = true;
            }
            let luns: Vec<&Lun> = if what.all {
                g.luns.iter().collect()
            } else {
                what.luns.iter().filter_map(|l| g.lun(*l)).collect()
            };
            for l in luns {
                check_lun(&at, l, &|k| self.device(k).is_some())?;
                if g.luns.iter().filter(|x| x.index == l.index).count() > 1 {
                    return Err(format!("{at}/lun/lun_{} is defined twice", l.index));
                }
                let dev = DevKey::parse(&l.storage_object)
                    .ok()
                    .and_then(|k| self.device(&k));
                check_lun_alua(&at, l, dev)?;
            }
            let acls: Vec<&NodeAcl> = if what.all {
                g.node_acls.iter().collect()
            } else {
                what.acls.iter().filter_map(|a| g.acl(a)).collect()
            };
            for a in acls {
                check_acl(&at, a, &|n| g.lun(n).is_some())?;
                if g.node_acls
                    .iter()
                    .filter(|x| x.node_wwn == a.node_wwn)
                    .count()
                    > 1
                {
                    return Err(format!("{at}/acls/{} is defined twice", a.node_wwn));
                }
                chap |= !a.chap.is_empty();
            }
        }
        if chap {
            self.validate_chap_directions()?;
        }
        Ok(())
    }

    fn validate_discovery_auth(&self) -> Result<(), String> {
        self.discovery_auth.chap.validate("iscsi/discovery_auth")?;
        if self.discovery_auth.enforce_discovery_auth
            && (self.discovery_auth.chap.chap_userid.is_empty()
                || self.discovery_auth.chap.chap_password.is_empty())
        {
            return Err(
                "iscsi/discovery_auth/enforce_discovery_auth=1 needs discovery_auth/userid and password set first".into()
            );
        }
        Ok(())
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
                let at = || format!("iscsi/{}/tpgt_{}", t.wwn, g.tag);
                if !g.chap.is_empty() {
                    sets.push((format!("{}/auth", at()), &g.chap));
                }
                for a in g.node_acls.iter().filter(|a| !a.chap.is_empty()) {
                    sets.push((format!("{}/acls/{}/auth", at(), a.node_wwn), &a.chap));
                }
            }
        }
        let passwords: BTreeMap<&str, &str> = sets
            .iter()
            .rev()
            .filter(|(_, c)| !c.chap_password.is_empty())
            .map(|(at, c)| (c.chap_password.as_str(), at.as_str()))
            .collect();
        for (mat, m) in &sets {
            if m.chap_mutual_password.is_empty() {
                continue;
            }
            if let Some(iat) = passwords.get(m.chap_mutual_password.as_str()) {
                return Err(format!(
                    "{mat}/password_mutual must differ from {iat}/password (RFC 7143 §12.1.3: a secret that authenticates initiators never authenticates the target)"
                ));
            }
        }
        Ok(())
    }

    /// LU groups: names and ids unique. Returns their names.
    fn validate_lu_gps(&self) -> Result<BTreeSet<&str>, String> {
        let mut names = BTreeSet::new();
        let mut ids = BTreeMap::new();
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
        Ok(names)
    }
}
