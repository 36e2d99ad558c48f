//! What one change touches ([`Touched`]): the devices, and per TPG its settings, LUNs and
//! ACLs, or the whole tree. The service validates, applies and persists only that, and keeps
//! a [`Snapshot`] of it to put back if a later step fails, so that a change costs the same
//! with ten objects or ten thousand.

use std::collections::{BTreeMap, BTreeSet};

use super::config::Config;
use super::device::{DevKey, StorageObject};
use super::iscsi::{Lun, NodeAcl, Tpg};

/// The parts of one TPG a change touched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TpgTouch {
    /// Its own settings: enable, attributes, parameters, CHAP, portals.
    pub settings: bool,
    /// Every LUN and ACL (a change of the TPG attributes that every ACL depends on).
    pub all: bool,
    pub luns: BTreeSet<u64>,
    pub acls: BTreeSet<String>,
}

/// What a change touched. `whole`: anything (targets or TPGs made or removed, LU groups,
/// discovery authentication, RTPIs): validated, applied and saved whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    pub whole: bool,
    pub devices: BTreeSet<DevKey>,
    pub tpgs: BTreeMap<(String, u16), TpgTouch>,
    /// The fabric's view changed (portals, CHAP, parameters, ACL names, enable).
    pub fabric: bool,
}

impl Touched {
    pub fn whole() -> Touched {
        Touched {
            whole: true,
            fabric: true,
            ..Touched::default()
        }
    }
    pub fn device(key: &DevKey) -> Touched {
        let mut t = Touched::default();
        t.devices.insert(key.clone());
        t
    }
    pub fn tpg(&mut self, target: &str, tag: u16) -> &mut TpgTouch {
        self.tpgs.entry((target.to_string(), tag)).or_default()
    }
    pub fn is_empty(&self) -> bool {
        !self.whole && self.devices.is_empty() && self.tpgs.is_empty() && !self.fabric
    }
    /// What differs between `old` and `new` (ALUA state the engine changed by itself):
    /// devices and TPG LUNs compared one by one; any other difference is `whole`.
    pub fn between(old: &Config, new: &Config) -> Touched {
        let mut t = Touched::default();
        let same_shape = old.version == new.version
            && old.discovery_auth == new.discovery_auth
            && old.alua_lu_gps == new.alua_lu_gps
            && old.storage_objects.len() == new.storage_objects.len()
            && old.targets.len() == new.targets.len();
        if !same_shape {
            return Touched::whole();
        }
        for (a, b) in old.storage_objects.iter().zip(&new.storage_objects) {
            if a.key() != b.key() {
                return Touched::whole();
            }
            if a != b {
                t.devices.insert(b.key());
            }
        }
        for (x, y) in old.targets.iter().zip(&new.targets) {
            if x.wwn != y.wwn || x.tpgs.len() != y.tpgs.len() {
                return Touched::whole();
            }
            for (g, h) in x.tpgs.iter().zip(&y.tpgs) {
                if tpg_shell(g) != tpg_shell(h)
                    || g.node_acls != h.node_acls
                    || g.luns.len() != h.luns.len()
                {
                    return Touched::whole();
                }
                for (l, m) in g.luns.iter().zip(&h.luns) {
                    if l.index != m.index {
                        return Touched::whole();
                    }
                    if l != m {
                        t.tpg(&y.wwn, h.tag).luns.insert(m.index);
                    }
                }
            }
        }
        t
    }

    /// Everything `other` touched too (a batch).
    pub fn merge(&mut self, other: &Touched) {
        self.whole |= other.whole;
        self.fabric |= other.fabric;
        self.devices.extend(other.devices.iter().cloned());
        for (id, o) in &other.tpgs {
            let t = self.tpgs.entry(id.clone()).or_default();
            t.settings |= o.settings;
            t.all |= o.all;
            t.luns.extend(o.luns.iter().copied());
            t.acls.extend(o.acls.iter().cloned());
        }
    }
    /// The TPG LUNs exporting `key` and the ACLs mapping them (a device removed or rebuilt).
    pub fn add_exports_of(&mut self, cfg: &Config, key: &DevKey) {
        let path = key.to_string();
        for t in &cfg.targets {
            for g in &t.tpgs {
                for l in g.luns.iter().filter(|l| l.storage_object == path) {
                    self.add_lun_cascade(g, &t.wwn, l.index);
                }
            }
        }
    }
    /// TPG LUN `l` of `g` and the ACLs that map it.
    pub fn add_lun_cascade(&mut self, g: &Tpg, target: &str, l: u64) {
        let acls: Vec<String> = g
            .node_acls
            .iter()
            .filter(|a| a.mapped_luns.iter().any(|m| m.tpg_lun == l))
            .map(|a| a.node_wwn.clone())
            .collect();
        let t = self.tpg(target, g.tag);
        t.luns.insert(l);
        t.acls.extend(acls);
    }
}

/// A TPG without its LUNs and ACLs.
pub fn tpg_shell(g: &Tpg) -> Tpg {
    Tpg {
        tag: g.tag,
        enable: g.enable,
        rtpi: g.rtpi,
        attributes: g.attributes.clone(),
        parameters: g.parameters.clone(),
        chap: g.chap.clone(),
        portals: g.portals.clone(),
        luns: Vec::new(),
        node_acls: Vec::new(),
    }
}

/// A TPG's settings from `shell`, its LUNs and ACLs kept.
pub fn set_tpg_settings(g: &mut Tpg, shell: &Tpg) {
    g.enable = shell.enable;
    g.rtpi = shell.rtpi;
    g.attributes = shell.attributes.clone();
    g.parameters = shell.parameters.clone();
    g.chap = shell.chap.clone();
    g.portals = shell.portals.clone();
}

/// A TPG, by target name and tag.
type TpgKey = (String, u16);
/// An element of a list as it was: its position and value, or absent.
type Was<T> = Option<(usize, T)>;

/// What the touched parts were before a change, to put back ([`Snapshot::restore`]).
#[derive(Clone, Debug)]
pub enum Snapshot {
    Whole(Box<Config>),
    /// The snapshots of a batch's changes, in order.
    Many(Vec<Snapshot>),
    Parts {
        devices: Vec<(DevKey, Was<StorageObject>)>,
        shells: Vec<(TpgKey, Tpg)>,
        /// Every LUN and ACL of a TPG (a [`TpgTouch::all`] change).
        lists: Vec<(TpgKey, Vec<Lun>, Vec<NodeAcl>)>,
        luns: Vec<(TpgKey, u64, Was<Lun>)>,
        acls: Vec<(TpgKey, String, Was<NodeAcl>)>,
    },
}

fn find<T>(v: &[T], f: impl Fn(&T) -> bool) -> Option<(usize, T)>
where
    T: Clone,
{
    v.iter().position(f).map(|i| (i, v[i].clone()))
}

/// Put `was` back where it was: replaced, removed (it did not exist) or inserted at its place.
fn put_back<T>(v: &mut Vec<T>, was: Option<(usize, T)>, f: impl Fn(&T) -> bool) {
    let now = v.iter().position(f);
    match (now, was) {
        (Some(i), Some((_, x))) => v[i] = x,
        (Some(i), None) => {
            v.remove(i);
        }
        (None, Some((i, x))) => v.insert(i.min(v.len()), x),
        (None, None) => {}
    }
}

impl Snapshot {
    /// The parts of `cfg` that `touched` names, as they are now.
    pub fn capture(cfg: &Config, touched: &Touched) -> Snapshot {
        if touched.whole {
            return Snapshot::Whole(Box::new(cfg.clone()));
        }
        let devices = touched
            .devices
            .iter()
            .map(|k| (k.clone(), find(&cfg.storage_objects, |s| s.is(k))))
            .collect();
        let (mut shells, mut lists) = (Vec::new(), Vec::new());
        let (mut luns, mut acls) = (Vec::new(), Vec::new());
        for ((t, tag), what) in &touched.tpgs {
            let id = (t.clone(), *tag);
            let Some(g) = cfg.target(t).and_then(|x| x.tpg(*tag)) else {
                continue;
            };
            shells.push((id.clone(), tpg_shell(g)));
            if what.all {
                lists.push((id.clone(), g.luns.clone(), g.node_acls.clone()));
                continue;
            }
            for l in &what.luns {
                luns.push((id.clone(), *l, find(&g.luns, |x| x.index == *l)));
            }
            for a in &what.acls {
                acls.push((
                    id.clone(),
                    a.clone(),
                    find(&g.node_acls, |x| x.node_wwn == *a),
                ));
            }
        }
        Snapshot::Parts {
            devices,
            shells,
            lists,
            luns,
            acls,
        }
    }

    /// Put the captured parts back into `cfg`.
    pub fn restore(self, cfg: &mut Config) {
        match self {
            Snapshot::Whole(c) => *cfg = *c,
            Snapshot::Many(list) => {
                for s in list.into_iter().rev() {
                    s.restore(cfg);
                }
            }
            Snapshot::Parts {
                devices,
                shells,
                lists,
                luns,
                acls,
            } => {
                for (k, was) in devices.into_iter().rev() {
                    put_back(&mut cfg.storage_objects, was, |s| s.is(&k));
                }
                for ((t, tag), n, was) in acls.into_iter().rev() {
                    if let Some(g) = cfg.tpg_mut(&t, tag) {
                        put_back(&mut g.node_acls, was, |x| x.node_wwn == n);
                    }
                }
                for ((t, tag), l, was) in luns.into_iter().rev() {
                    if let Some(g) = cfg.tpg_mut(&t, tag) {
                        put_back(&mut g.luns, was, |x| x.index == l);
                    }
                }
                for ((t, tag), l, a) in lists {
                    if let Some(g) = cfg.tpg_mut(&t, tag) {
                        g.luns = l;
                        g.node_acls = a;
                    }
                }
                for ((t, tag), shell) in shells.into_iter().rev() {
                    if let Some(g) = cfg.tpg_mut(&t, tag) {
                        set_tpg_settings(g, &shell);
                    }
                }
            }
        }
    }
}
