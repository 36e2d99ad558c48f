//! The tree as values, for `ls` and `get`: every node under `core/` and `iscsi/` rendered from
//! a [`Config`] and the live values of an [`Inspect`] (device attributes, `info`, persistent
//! reservations, ALUA states), in LIO's configfs names and order.

use std::collections::BTreeMap;

use ironlun_engine::scsi::alua::status_code;

use super::Inspect;
use crate::model::alua::{self, group_attributes, AluaTpg};
use crate::model::{
    Chap, Config, DevKey, Kind, Member, StorageObject, Tpg, AUTH_NAMES, TPG_ATTRIBUTES,
};
use crate::pr;

/// One node of the rendered tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir {
        name: String,
        children: Vec<Node>,
    },
    Leaf {
        name: String,
        value: String,
        secret: bool,
    },
    Link {
        name: String,
        target: String,
        children: Vec<Node>,
    },
}

impl Node {
    pub fn name(&self) -> &str {
        match self {
            Node::Dir { name, .. } | Node::Leaf { name, .. } | Node::Link { name, .. } => name,
        }
    }
    pub fn children(&self) -> &[Node] {
        match self {
            Node::Dir { children, .. } | Node::Link { children, .. } => children,
            Node::Leaf { .. } => &[],
        }
    }
}

fn dir(name: impl Into<String>, children: Vec<Node>) -> Node {
    Node::Dir {
        name: name.into(),
        children,
    }
}
fn leaf(name: impl Into<String>, value: impl Into<String>) -> Node {
    Node::Leaf {
        name: name.into(),
        value: value.into(),
        secret: false,
    }
}
fn bool_text(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

/// The company id the engine puts in NAA designators (LIO's default OUI; not settable here).
pub const COMPANY_ID: &str = "0x001405";

/// Render the whole tree.
pub fn render(cfg: &Config, insp: &dyn Inspect) -> Node {
    render_branch(cfg, insp, &[])
}

/// Render the tree as far as the path `segs` needs it: below `core/<hba>/<dev>` or
/// `iscsi/<target>/tpgt_<n>` only that object, so reading one object of ten thousand costs
/// one object. Nodes the path does not lead through are left out; the ones it does are as
/// [`render`] has them.
pub fn render_branch(cfg: &Config, insp: &dyn Inspect, segs: &[&str]) -> Node {
    let seg = |i: usize| segs.get(i).copied();
    let mut children = Vec::new();
    if seg(0).is_none_or(|s| s == "core") {
        let hba = seg(1).and_then(|h| Kind::parse_hba(h).ok());
        children.push(render_core(
            cfg,
            insp,
            hba,
            seg(2).filter(|_| hba.is_some()),
        ));
    }
    if seg(0).is_none_or(|s| s == "iscsi") {
        let target = seg(1).filter(|t| *t != "discovery_auth");
        let tag = seg(2)
            .and_then(|t| t.strip_prefix("tpgt_"))
            .and_then(|n| n.parse::<u16>().ok());
        children.push(render_iscsi(
            cfg,
            insp,
            target,
            tag.filter(|_| target.is_some()),
        ));
    }
    dir("", children)
}

/// A TPG LUN exporting a device, and the device's target port group it is in.
type Export<'c> = (Member, &'c str);

/// The TPG LUNs exporting each device (`only`: that device path), by device path: one pass
/// over every LUN.
fn exports<'c>(cfg: &'c Config, only: Option<&str>) -> BTreeMap<&'c str, Vec<Export<'c>>> {
    let mut out: BTreeMap<&str, Vec<Export<'_>>> = BTreeMap::new();
    for t in &cfg.targets {
        for g in &t.tpgs {
            for l in g
                .luns
                .iter()
                .filter(|l| only.is_none_or(|o| o == l.storage_object))
            {
                let m = Member {
                    target: t.wwn.clone(),
                    tpgt: g.tag,
                    lun: l.index,
                    rtpi: g.rtpi,
                };
                out.entry(l.storage_object.as_str())
                    .or_default()
                    .push((m, l.tg_pt_gp()));
            }
        }
    }
    out
}

fn render_core(
    cfg: &Config,
    insp: &dyn Inspect,
    hba: Option<(Kind, u32)>,
    dev: Option<&str>,
) -> Node {
    let only = match (hba, dev) {
        (Some((k, n)), Some(d)) => Some(format!("core/{}_{n}/{d}", k.tree_name())),
        _ => None,
    };
    let exports = exports(cfg, only.as_deref());
    let mut hbas: BTreeMap<(Kind, u32), Vec<Node>> = BTreeMap::new();
    for so in &cfg.storage_objects {
        if hba.is_some_and(|h| h != (so.plugin, so.hba)) || dev.is_some_and(|d| d != so.name) {
            continue;
        }
        let path = so.key().to_string();
        let mine = exports.get(path.as_str()).map_or(&[][..], Vec::as_slice);
        hbas.entry((so.plugin, so.hba))
            .or_default()
            .push(render_device(so, mine, insp));
    }
    if hba.is_some() {
        let children = hbas
            .into_iter()
            .map(|((k, n), devs)| dir(format!("{}_{}", k.tree_name(), n), devs))
            .collect();
        return dir("core", children);
    }
    let mut children: Vec<Node> = hbas
        .into_iter()
        .map(|((k, n), devs)| dir(format!("{}_{}", k.tree_name(), n), devs))
        .collect();
    let lu_gps = cfg
        .lu_gps()
        .into_iter()
        .map(|g| {
            let members: Vec<String> = cfg
                .storage_objects
                .iter()
                .filter(|s| s.lu_gp() == g.name)
                .map(|s| format!("{}_{}/{}", s.plugin.tree_name(), s.hba, s.name))
                .collect();
            dir(
                g.name.clone(),
                vec![
                    leaf("lu_gp_id", g.lu_gp_id.to_string()),
                    leaf("members", members.join(" ")),
                ],
            )
        })
        .collect();
    children.push(dir("alua", vec![dir("lu_gps", lu_gps)]));
    dir("core", children)
}

fn render_device(so: &StorageObject, exports: &[Export<'_>], insp: &dyn Inspect) -> Node {
    let key = so.key();
    let mut attrs = insp.device_attributes(&key);
    if attrs.is_empty() {
        // Not running (no engine behind us): show what is configured.
        attrs = so
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
    }
    if so.plugin == Kind::PScsi {
        // The device decides the rest (docs/cli.md "SCSI pass-through"): not shown as if they
        // applied.
        attrs.retain(|(k, _)| crate::model::device::PSCSI_ATTRIBUTES.contains(&k.as_str()));
    }
    let luns: Vec<(String, u16, u64)> = exports
        .iter()
        .map(|(m, _)| (m.target.clone(), m.tpgt, m.lun))
        .collect();
    let exports_n = luns.len();
    let info = insp.device_info(&key).unwrap_or_else(|| {
        format!(
            "Status: {} Exports: {exports_n} {}",
            "CONFIGURED",
            so.control_text()
        )
    });
    let groups = so
        .alua_groups()
        .into_iter()
        .map(|g| render_alua_group(exports, &key, &g, insp))
        .collect();
    // A pass-through LU's ALUA and PR are the device's (docs/cli.md "SCSI pass-through").
    let pass = so.plugin == Kind::PScsi;
    let mut children = Vec::new();
    if !pass {
        children.push(dir("alua", groups));
        children.push(leaf("alua_lu_gp", so.lu_gp()));
    }
    children.extend([
        leaf("control", so.control_text()),
        leaf("enable", "1"),
        leaf("info", info),
        dir(
            "attrib",
            attrs.into_iter().map(|(k, v)| leaf(k, v)).collect(),
        ),
    ]);
    if let Some(view) = insp.device_pr(&key).filter(|_| !pass) {
        children.push(dir(
            "pr",
            pr::tree_leaves(&view, &luns)
                .into_iter()
                .map(|(k, v)| leaf(k, v))
                .collect(),
        ));
    }
    children.push(dir(
        "wwn",
        vec![
            leaf("company_id", COMPANY_ID),
            leaf("product_id", so.product_id.clone()),
            leaf("revision", so.revision.clone()),
            leaf("vendor_id", so.vendor_id.clone()),
            leaf("vpd_unit_serial", so.wwn.clone()),
        ],
    ));
    dir(so.name.clone(), children)
}

/// A group's attributes: saved values, with the engine's live state and status (a transition
/// in progress shows as 15, Transitioning), all as LIO's numbers.
fn render_alua_group(
    exports: &[Export<'_>],
    key: &DevKey,
    g: &AluaTpg,
    insp: &dyn Inspect,
) -> Node {
    let leaves = group_attributes()
        .iter()
        .map(|a| {
            let value = match *a {
                "members" => exports
                    .iter()
                    .filter(|(_, group)| *group == g.name)
                    .map(|(m, _)| format!("iscsi/{}/tpgt_{}/lun_{}", m.target, m.tpgt, m.lun))
                    .collect::<Vec<_>>()
                    .join("\n"),
                "alua_access_state" => insp
                    .alua_group_attribute(key, &g.name, a)
                    .and_then(|v| alua::parse_group_state(&v))
                    .unwrap_or(g.alua_access_state)
                    .to_string(),
                "alua_access_status" => insp
                    .alua_group_attribute(key, &g.name, a)
                    .and_then(|v| status_code::parse(&v))
                    .unwrap_or(g.alua_access_status)
                    .to_string(),
                _ => g.get(a).unwrap_or_default(),
            };
            leaf(*a, value)
        })
        .collect();
    dir(g.name.clone(), leaves)
}

fn auth_nodes(chap: &Chap) -> Vec<Node> {
    AUTH_NAMES
        .iter()
        .map(|n| Node::Leaf {
            name: (*n).to_string(),
            value: chap.get(n).unwrap_or_default().to_string(),
            secret: n.starts_with("password"),
        })
        .collect()
}

fn render_iscsi(cfg: &Config, insp: &dyn Inspect, target: Option<&str>, tag: Option<u16>) -> Node {
    let mut da = vec![leaf(
        "enforce_discovery_auth",
        bool_text(cfg.discovery_auth.enforce_discovery_auth),
    )];
    da.extend(auth_nodes(&cfg.discovery_auth.chap));
    let mut children = vec![dir("discovery_auth", da)];
    let defaults = insp.param_defaults();
    for t in cfg
        .targets
        .iter()
        .filter(|t| target.is_none_or(|x| x == t.wwn))
    {
        let tpgs = (t.tpgs.iter())
            .filter(|g| tag.is_none_or(|x| x == g.tag))
            .map(|g| render_tpg(g, &defaults))
            .collect();
        children.push(dir(t.wwn.clone(), tpgs));
    }
    dir("iscsi", children)
}

fn render_tpg(g: &Tpg, defaults: &[(String, String)]) -> Node {
    let attrib = TPG_ATTRIBUTES
        .iter()
        .map(|a| leaf(a.def.name, a.get(&g.attributes).to_string()))
        .collect();
    let param = defaults
        .iter()
        .map(|(k, d)| {
            leaf(
                k.clone(),
                g.parameters.get(k).cloned().unwrap_or_else(|| d.clone()),
            )
        })
        .collect();
    let np = g
        .portals
        .iter()
        .map(|p| dir(p.addr().to_string(), vec![]))
        .collect();
    let luns = g
        .luns
        .iter()
        .map(|l| Node::Link {
            name: format!("lun_{}", l.index),
            target: l.storage_object.clone(),
            children: vec![
                leaf("alua_tg_pt_gp", l.tg_pt_gp()),
                leaf("alua_tg_pt_offline", bool_text(l.alua_tg_pt_offline)),
                leaf("alua_tg_pt_status", l.alua_tg_pt_status.to_string()),
            ],
        })
        .collect();
    let acls = g
        .node_acls
        .iter()
        .map(|a| {
            let mut c = vec![dir("auth", auth_nodes(&a.chap))];
            for m in &a.mapped_luns {
                c.push(Node::Link {
                    name: format!("lun_{}", m.index),
                    target: format!("lun/lun_{}", m.tpg_lun),
                    children: vec![
                        leaf("tpg_lun", m.tpg_lun.to_string()),
                        leaf("write_protect", bool_text(m.write_protect)),
                    ],
                });
            }
            dir(a.node_wwn.clone(), c)
        })
        .collect();
    dir(
        format!("tpgt_{}", g.tag),
        vec![
            leaf("enable", bool_text(g.enable)),
            leaf("rtpi", g.rtpi.to_string()),
            dir("attrib", attrib),
            dir("auth", auth_nodes(&g.chap)),
            dir("param", param),
            dir("np", np),
            dir("lun", luns),
            dir("acls", acls),
        ],
    )
}
