//! The object tree as paths: `ls`, `get`, `set`, `create`, `delete`, `link`.
//!
//! Layout mirrors LIO's configfs (`/sys/kernel/config/target`, see research lio.md §5.1):
//! `core/<kind>_<n>/<dev>/…`, `core/alua/lu_gps/default_lu_gp`, `iscsi/discovery_auth/…`,
//! `iscsi/<target>/tpgt_<n>/{enable,rtpi,attrib,auth,param,np,lun,acls}`. A running device
//! also shows its live persistent reservation state, read-only, under `pr/` ([`crate::pr`]).
//!
//! Everything here is pure: a mutation takes the current [`Config`] and returns the new one (or
//! one line of error and no change). Applying the new tree to the engine and the fabric is the
//! job of [`crate::runtime`].
//!
//! Deletion cascades like targetcli: deleting a device removes the TPG LUNs that export it,
//! deleting a TPG LUN removes the ACL mapped LUNs that point at it, deleting a TPG or target
//! removes everything below. The reply names every object removed along the way.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use ironlun_engine::scsi::alua::status_code;

use crate::model::alua::{self, AluaTpg, LuGp, DEFAULT_LU_GP, DEFAULT_TG_PT_GP, GROUP_ATTRIBUTES};
use crate::model::*;
use crate::names::validate_iscsi_name;
use crate::pr::{self, PrView};

/// Live values the tree shows but does not own: the fabric's `param/` schema and the engine's
/// device attributes.
pub trait Inspect: ParamSchema {
    /// `attrib/` names and current values of a live device, in display order
    /// (empty if the device is not running).
    fn device_attributes(&self, key: &DevKey) -> Vec<(String, String)>;
    /// One-line `info` text of a live device.
    fn device_info(&self, key: &DevKey) -> Option<String>;
    /// Current capacity in bytes of a live device's backstore.
    fn device_size(&self, key: &DevKey) -> Option<u64>;
    /// Live persistent reservation state of a device (`None`: not running, and no `pr/`).
    fn device_pr(&self, _key: &DevKey) -> Option<PrView> {
        None
    }
    /// Live value of a running device's target port group attribute (the engine's
    /// `alua_group_attribute`); `None`: not running (the saved value is shown).
    fn alua_group_attribute(&self, _key: &DevKey, _group: &str, _attr: &str) -> Option<String> {
        None
    }
}

/// A mutation of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Set { path: String, value: String },
    Create { path: String, args: Vec<String> },
    Delete { path: String },
    Link { src: String, dst: String },
}

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
    fn name(&self) -> &str {
        match self {
            Node::Dir { name, .. } | Node::Leaf { name, .. } | Node::Link { name, .. } => name,
        }
    }
    fn children(&self) -> &[Node] {
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
    dir("", vec![render_core(cfg, insp), render_iscsi(cfg, insp)])
}

fn render_core(cfg: &Config, insp: &dyn Inspect) -> Node {
    let mut hbas: BTreeMap<(Kind, u32), Vec<Node>> = BTreeMap::new();
    for so in &cfg.storage_objects {
        hbas.entry((so.plugin, so.hba))
            .or_default()
            .push(render_device(cfg, so, insp));
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

fn render_device(cfg: &Config, so: &StorageObject, insp: &dyn Inspect) -> Node {
    let key = so.key();
    let mut attrs = insp.device_attributes(&key);
    if attrs.is_empty() {
        // Not running (no engine behind us): show what is configured.
        attrs = so
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.text()))
            .collect();
    }
    let exports = cfg.luns_of(&key).len();
    let info = insp.device_info(&key).unwrap_or_else(|| {
        format!(
            "Status: {} Exports: {exports} {}",
            "CONFIGURED",
            so.control_text()
        )
    });
    let groups = so
        .alua_groups()
        .into_iter()
        .map(|g| render_alua_group(cfg, &key, &g, insp))
        .collect();
    let mut children = vec![
        dir("alua", groups),
        leaf("alua_lu_gp", so.lu_gp()),
        leaf("control", so.control_text()),
        leaf("enable", "1"),
        leaf("info", info),
        dir(
            "attrib",
            attrs.into_iter().map(|(k, v)| leaf(k, v)).collect(),
        ),
    ];
    if let Some(view) = insp.device_pr(&key) {
        let exports = cfg.luns_of(&key);
        children.push(dir(
            "pr",
            pr::tree_leaves(&view, &exports)
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
fn render_alua_group(cfg: &Config, key: &DevKey, g: &AluaTpg, insp: &dyn Inspect) -> Node {
    let leaves = GROUP_ATTRIBUTES
        .iter()
        .map(|a| {
            let value = match *a {
                "members" => cfg
                    .alua_members(key, &g.name)
                    .iter()
                    .map(|m| format!("iscsi/{}/tpgt_{}/lun_{}", m.target, m.tpgt, m.lun))
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

fn render_iscsi(cfg: &Config, insp: &dyn Inspect) -> Node {
    let mut da = vec![leaf(
        "enforce_discovery_auth",
        bool_text(cfg.discovery_auth.enforce_discovery_auth),
    )];
    da.extend(auth_nodes(&cfg.discovery_auth.chap));
    let mut children = vec![dir("discovery_auth", da)];
    let defaults = insp.param_defaults();
    for t in &cfg.targets {
        let tpgs = t.tpgs.iter().map(|g| render_tpg(g, &defaults)).collect();
        children.push(dir(t.wwn.clone(), tpgs));
    }
    dir("iscsi", children)
}

fn render_tpg(g: &Tpg, defaults: &[(String, String)]) -> Node {
    let attrib = TPG_ATTRIBUTES
        .iter()
        .map(|n| leaf(*n, g.attributes.get(n).unwrap_or(0).to_string()))
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

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

fn find<'a>(root: &'a Node, path: &str) -> Result<&'a Node, String> {
    let mut node = root;
    let mut walked = String::new();
    for seg in segments(path) {
        if !walked.is_empty() {
            walked.push('/');
        }
        walked.push_str(seg);
        node = node
            .children()
            .iter()
            .find(|c| c.name() == seg)
            .ok_or_else(|| format!("{walked}: no such object"))?;
    }
    Ok(node)
}

/// `ls PATH`: the subtree below PATH, two spaces per level, leaves as `name = value`,
/// links as `name -> target`; secrets shown as `********` (use `get` to read one).
pub fn ls(cfg: &Config, insp: &dyn Inspect, path: &str) -> Result<String, String> {
    let root = render(cfg, insp);
    let node = find(&root, path)?;
    let mut out = String::new();
    match node {
        Node::Dir { name, children } if name.is_empty() => {
            for c in children {
                write_node(&mut out, c, 0);
            }
        }
        _ => write_node(&mut out, node, 0),
    }
    Ok(out)
}

fn write_node(out: &mut String, node: &Node, depth: usize) {
    let pad = "  ".repeat(depth);
    match node {
        Node::Dir { name, children } => {
            out.push_str(&format!("{pad}{name}/\n"));
            for c in children {
                write_node(out, c, depth + 1);
            }
        }
        Node::Leaf {
            name,
            value,
            secret,
        } => {
            let shown = if *secret && !value.is_empty() {
                "********"
            } else {
                value.as_str()
            };
            // Multi-line values (pr/ registrations) continue indented under their name.
            let cont = format!("\n{pad}    ");
            out.push_str(&format!("{pad}{name} = {}\n", shown.replace('\n', &cont)));
        }
        Node::Link {
            name,
            target,
            children,
        } => {
            out.push_str(&format!("{pad}{name} -> {target}\n"));
            for c in children {
                write_node(out, c, depth + 1);
            }
        }
    }
}

/// `get PATH`: a leaf's value or a link's target.
pub fn get(cfg: &Config, insp: &dyn Inspect, path: &str) -> Result<String, String> {
    let root = render(cfg, insp);
    match find(&root, path)? {
        Node::Leaf { value, .. } => Ok(value.clone()),
        Node::Link { target, .. } => Ok(target.clone()),
        Node::Dir { .. } => Err(format!(
            "{}: is a directory; use ls",
            path.trim_matches('/')
        )),
    }
}

/// A parsed object path for mutations.
#[derive(Debug)]
enum Loc<'a> {
    Device(DevKey),
    DeviceLeaf(DevKey, &'a str),
    DeviceAttr(DevKey, &'a str),
    DeviceWwn(DevKey, &'a str),
    DevicePr(DevKey, &'a str),
    AluaGroup(DevKey, String),
    AluaGroupAttr(DevKey, String, &'a str),
    LuGp(String),
    LuGpAttr(String, &'a str),
    LunAttr(String, u16, u64, &'a str),
    DiscoveryAuth(&'a str),
    Target(String),
    Tpg(String, u16),
    TpgLeaf(String, u16, &'a str),
    TpgAttrib(String, u16, &'a str),
    TpgAuth(String, u16, &'a str),
    TpgParam(String, u16, &'a str),
    Np(String, u16, SocketAddr),
    Lun(String, u16, u64),
    Acl(String, u16, String),
    AclAuth(String, u16, String, &'a str),
    MappedLun(String, u16, String, u64),
    MappedLunAttr(String, u16, String, u64, &'a str),
    /// A container or read-only part of the tree (`core`, `iscsi/<t>/tpgt_1/lun`, …).
    Fixed(String),
}

fn parse_tpgt(at: &str, seg: &str) -> Result<u16, String> {
    seg.strip_prefix("tpgt_")
        .and_then(parse_index)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n >= 1)
        .ok_or_else(|| format!("{at}/{seg}: expected tpgt_<n> with n 1-65535"))
}

fn parse_lun(at: &str, seg: &str) -> Result<u64, String> {
    seg.strip_prefix("lun_")
        .and_then(parse_index)
        .map(u64::from)
        .filter(|&n| n <= MAX_LUN)
        .ok_or_else(|| format!("{at}/{seg}: expected lun_<n> with n 0-{MAX_LUN}"))
}

fn parse_portal(at: &str, seg: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = seg.parse().map_err(|_| {
        format!("{at}/{seg}: expected <IPv4>:<port> or [<IPv6>]:<port> (e.g. 127.0.0.1:3260)")
    })?;
    validate_portal(at, addr)?;
    Ok(addr)
}

fn locate(path: &str) -> Result<Loc<'_>, String> {
    let s = segments(path);
    let fixed = || Loc::Fixed(s.join("/"));
    Ok(match s.as_slice() {
        [] | ["core"] | ["iscsi"] => fixed(),
        ["core", "alua"] | ["core", "alua", "lu_gps"] => fixed(),
        ["core", "alua", "lu_gps", name, rest @ ..] => {
            let at = format!("core/alua/lu_gps/{name}");
            alua::validate_group_name(&at, name)?;
            match rest {
                [] => Loc::LuGp((*name).to_string()),
                [attr] => Loc::LuGpAttr((*name).to_string(), attr),
                _ => return Err(format!("{}: no such object", s.join("/"))),
            }
        }
        ["core", "alua", ..] => {
            return Err(format!(
                "{}: no such object; core/alua has lu_gps/<name>",
                s.join("/")
            ))
        }
        ["core", hba] => {
            Kind::parse_hba(hba)?;
            fixed()
        }
        ["core", hba, dev, rest @ ..] => {
            let (kind, n) = Kind::parse_hba(hba)?;
            validate_dev_name(dev)?;
            let key = DevKey {
                kind,
                hba: n,
                name: (*dev).to_string(),
            };
            match rest {
                [] => Loc::Device(key),
                [leaf @ ("control" | "enable" | "info" | "alua_lu_gp")] => {
                    Loc::DeviceLeaf(key, leaf)
                }
                ["attrib"] | ["wwn"] | ["pr"] | ["alua"] => fixed(),
                ["alua", g, rest @ ..] => {
                    alua::validate_group_name(&format!("{key}/alua"), g)?;
                    match rest {
                        [] => Loc::AluaGroup(key, (*g).to_string()),
                        [attr] => Loc::AluaGroupAttr(key, (*g).to_string(), attr),
                        _ => return Err(format!("{}: no such object", s.join("/"))),
                    }
                }
                ["attrib", name] => Loc::DeviceAttr(key, name),
                ["wwn", name] => Loc::DeviceWwn(key, name),
                ["pr", name] => Loc::DevicePr(key, name),
                _ => return Err(format!("{}: no such object", s.join("/"))),
            }
        }
        ["iscsi", "discovery_auth"] => fixed(),
        ["iscsi", "discovery_auth", name] => Loc::DiscoveryAuth(name),
        ["iscsi", t, rest @ ..] => {
            validate_iscsi_name("target name", t)?;
            let t = (*t).to_string();
            let at = format!("iscsi/{t}");
            match rest {
                [] => Loc::Target(t),
                [tpgt, rest @ ..] => {
                    let g = parse_tpgt(&at, tpgt)?;
                    let at = format!("{at}/{tpgt}");
                    match rest {
                        [] => Loc::Tpg(t, g),
                        [leaf @ ("enable" | "rtpi")] => Loc::TpgLeaf(t, g, leaf),
                        ["attrib" | "auth" | "param" | "np" | "lun" | "acls"] => fixed(),
                        ["attrib", n] => Loc::TpgAttrib(t, g, n),
                        ["auth", n] => Loc::TpgAuth(t, g, n),
                        ["param", n] => Loc::TpgParam(t, g, n),
                        ["np", a] => Loc::Np(t, g, parse_portal(&at, a)?),
                        ["lun", l] => Loc::Lun(t, g, parse_lun(&at, l)?),
                        ["lun", l, attr] => Loc::LunAttr(t, g, parse_lun(&at, l)?, attr),
                        ["acls", i, rest @ ..] => {
                            validate_iscsi_name("initiator name", i)?;
                            let i = (*i).to_string();
                            let at = format!("{at}/acls/{i}");
                            match rest {
                                [] => Loc::Acl(t, g, i),
                                ["auth"] => fixed(),
                                ["auth", n] => Loc::AclAuth(t, g, i, n),
                                ["attrib", ..] => {
                                    return Err(format!(
                                        "{at}/attrib: per-ACL attributes are not available in this build"
                                    ))
                                }
                                [m] => Loc::MappedLun(t, g, i, parse_lun(&at, m)?),
                                [m, n] => Loc::MappedLunAttr(t, g, i, parse_lun(&at, m)?, n),
                                _ => return Err(format!("{}: no such object", s.join("/"))),
                            }
                        }
                        _ => return Err(format!("{}: no such object", s.join("/"))),
                    }
                }
            }
        }
        _ => {
            return Err(format!(
                "{}: no such object; the tree has core/ and iscsi/",
                s.join("/")
            ))
        }
    })
}

/// Apply one mutation to a copy of `cfg`. Ok: the new tree and a one-line message for the user.
/// Err: one line; `cfg` is untouched.
pub fn mutate(cfg: &Config, insp: &dyn Inspect, op: &Op) -> Result<(Config, String), String> {
    let mut new = cfg.clone();
    let msg = match op {
        Op::Set { path, value } => set(&mut new, insp, path, value)?,
        Op::Create { path, args } => create(&mut new, path, &parse_args(args)?)?,
        Op::Delete { path } => delete(&mut new, path)?,
        Op::Link { src, dst } => link(&mut new, src, dst)?,
    };
    // Safety net: whatever the operation did, the tree as a whole must be valid.
    new.validate(insp)?;
    Ok((new, msg))
}

fn parse_args(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| format!("argument '{a}': expected key=value"))?;
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("argument '{k}' given twice"));
        }
    }
    Ok(out)
}

fn only_keys(at: &str, args: &BTreeMap<String, String>, valid: &[&str]) -> Result<(), String> {
    if let Some(k) = args.keys().find(|k| !valid.contains(&k.as_str())) {
        let valid = if valid.is_empty() {
            "none".to_string()
        } else {
            valid.join(", ")
        };
        return Err(format!(
            "create {at}: unknown argument '{k}'; valid: {valid}"
        ));
    }
    Ok(())
}

fn need_tpg<'c>(cfg: &'c mut Config, t: &str, g: u16) -> Result<&'c mut Tpg, String> {
    if cfg.target(t).is_none() {
        return Err(format!("iscsi/{t}: no such target"));
    }
    cfg.tpg_mut(t, g)
        .ok_or_else(|| format!("iscsi/{t}/tpgt_{g}: no such TPG"))
}

fn need_acl<'c>(cfg: &'c mut Config, t: &str, g: u16, i: &str) -> Result<&'c mut NodeAcl, String> {
    need_tpg(cfg, t, g)?
        .acl_mut(i)
        .ok_or_else(|| format!("iscsi/{t}/tpgt_{g}/acls/{i}: no such ACL"))
}

fn set(cfg: &mut Config, insp: &dyn Inspect, path: &str, value: &str) -> Result<String, String> {
    let loc = locate(path)?;
    let at = segments(path).join("/");
    match loc {
        Loc::DeviceAttr(key, name) => {
            if cfg.device(&key).is_none() {
                return Err(format!("{key}: no such device"));
            }
            let live = insp.device_attributes(&key);
            if !live.is_empty() && !live.iter().any(|(n, _)| n == name) {
                let names: Vec<&str> = live.iter().map(|(n, _)| n.as_str()).collect();
                return Err(format!(
                    "{at}: unknown attribute; valid: {}",
                    names.join(", ")
                ));
            }
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!("{at}: value must be a number or printable text"));
            }
            if let Some(so) = cfg.device_mut(&key) {
                so.attributes
                    .insert(name.to_string(), AttrValue::from_text(value));
            }
        }
        Loc::DeviceWwn(key, name) => {
            if cfg.device(&key).is_none() {
                return Err(format!("{key}: no such device"));
            }
            if name == "company_id" {
                return Err(format!(
                    "{at}: read-only in this build (the engine uses OUI {COMPANY_ID})"
                ));
            }
            validate_wwn_field(&key.to_string(), name, value)?;
            // LIO refuses identity changes while exported; initiators cache them.
            if let Some((t, g, l)) = cfg.luns_of(&key).first() {
                return Err(format!(
                    "{at}: cannot change while the device is exported by iscsi/{t}/tpgt_{g}/lun/lun_{l}"
                ));
            }
            if let Some(so) = cfg.device_mut(&key) {
                match name {
                    "vendor_id" => so.vendor_id = value.to_string(),
                    "product_id" => so.product_id = value.to_string(),
                    "revision" => so.revision = value.to_string(),
                    _ => so.wwn = value.to_string(),
                }
            }
        }
        Loc::DeviceLeaf(key, "alua_lu_gp") => {
            let names: Vec<String> = cfg.lu_gps().into_iter().map(|g| g.name).collect();
            if !names.iter().any(|n| n == value) {
                return Err(format!(
                    "{at}: LU group '{value}' does not exist; valid: {} (create core/alua/lu_gps/<name> lu_gp_id=<n> first)",
                    names.join(", ")
                ));
            }
            let so = cfg
                .device_mut(&key)
                .ok_or_else(|| format!("{key}: no such device"))?;
            so.alua_lu_gp = (value != DEFAULT_LU_GP).then(|| value.to_string());
        }
        Loc::AluaGroupAttr(key, g, attr) => {
            let so = cfg
                .device_mut(&key)
                .ok_or_else(|| format!("{key}: no such device"))?;
            let names: Vec<String> = so.alua_groups().into_iter().map(|x| x.name).collect();
            let group = so.alua_group_mut(&g).ok_or_else(|| {
                format!(
                    "{key}/alua/{g}: no such group; groups: {}",
                    names.join(", ")
                )
            })?;
            group.set(&at, attr, value)?;
        }
        Loc::LuGpAttr(name, attr) => {
            if !cfg.lu_gps().iter().any(|x| x.name == name) {
                return Err(format!("core/alua/lu_gps/{name}: no such LU group"));
            }
            return Err(match attr {
                "lu_gp_id" => format!("{at}: read-only (given when the group is created)"),
                "members" => format!(
                    "{at}: read-only (a device joins with core/<kind>_<n>/<dev>/alua_lu_gp)"
                ),
                _ => format!("{at}: unknown attribute; valid: lu_gp_id, members (both read-only)"),
            });
        }
        Loc::LunAttr(t, g, l, attr) => {
            let devs = cfg.clone();
            let tpg = need_tpg(cfg, &t, g)?;
            let lun = tpg
                .luns
                .iter_mut()
                .find(|x| x.index == l)
                .ok_or_else(|| format!("iscsi/{t}/tpgt_{g}/lun/lun_{l}: no such LUN"))?;
            match attr {
                "alua_tg_pt_gp" => {
                    let so = DevKey::parse(&lun.storage_object)
                        .ok()
                        .and_then(|k| devs.device(&k))
                        .ok_or_else(|| format!("{at}: the LUN's device does not exist"))?;
                    // LIO: writing NULL puts the LUN back into the default group.
                    let name = if value == "NULL" { DEFAULT_TG_PT_GP } else { value };
                    if so.alua_group(name).is_none() {
                        let names: Vec<String> =
                            so.alua_groups().into_iter().map(|x| x.name).collect();
                        return Err(format!(
                            "{at}: '{value}' is not a target port group of {}; valid: {}",
                            so.key(),
                            names.join(", ")
                        ));
                    }
                    lun.alua_tg_pt_gp_name = (name != DEFAULT_TG_PT_GP).then(|| name.to_string());
                }
                "alua_tg_pt_offline" => {
                    let on = parse_bool(&at, value)?;
                    if on != lun.alua_tg_pt_offline {
                        lun.alua_tg_pt_offline = on;
                        // Changed by the administrator: implicit (LIO's configfs write).
                        lun.alua_tg_pt_status = 2;
                    }
                }
                "alua_tg_pt_status" => {
                    return Err(format!(
                        "{at}: read-only (0 none, 1 changed by SET TARGET PORT GROUPS, 2 changed by the administrator)"
                    ))
                }
                _ => {
                    return Err(format!(
                        "{at}: unknown attribute; valid: alua_tg_pt_gp, alua_tg_pt_offline, alua_tg_pt_status (read-only)"
                    ))
                }
            }
        }
        Loc::DeviceLeaf(key, leaf) => {
            if cfg.device(&key).is_none() {
                return Err(format!("{key}: no such device"));
            }
            match leaf {
                "enable" if value == "1" => return Ok(format!("{at} is 1 (devices are enabled when created)")),
                "enable" => {
                    return Err(format!("{at}: a configured device cannot be disabled; delete it instead (only 1 is valid)"))
                }
                "control" => {
                    // A capacity change acts on the running backstore; the daemon routes it
                    // through `resize_request` before any plain mutation.
                    let r = resize_request(cfg, insp, path, value)?;
                    return Err(format!(
                        "{at}: {} is a live capacity change; send it to the daemon",
                        if r.is_some() { value } else { "this" }
                    ));
                }
                _ => return Err(format!("{at}: read-only (creation parameters are given to create)")),
            }
        }
        Loc::DevicePr(key, name) => {
            if cfg.device(&key).is_none() {
                return Err(format!("{key}: no such device"));
            }
            if pr::TREE_LEAVES.contains(&name) {
                return Err(format!(
                    "{at}: read-only (live persistent reservation state; initiators change it with PERSISTENT RESERVE OUT, an administrator drops it with `ironlun pr clear {key} --force`)"
                ));
            }
            return Err(format!(
                "{at}: unknown attribute; pr/ has (read-only) {}",
                pr::TREE_LEAVES.join(", ")
            ));
        }
        Loc::DiscoveryAuth(name) => {
            let da = &mut cfg.discovery_auth;
            if name == "enforce_discovery_auth" {
                da.enforce_discovery_auth = parse_bool(&at, value)?;
            } else {
                let slot = da.chap.slot(name).ok_or_else(|| {
                    format!(
                        "{at}: unknown attribute; valid: enforce_discovery_auth, {}",
                        AUTH_NAMES.join(", ")
                    )
                })?;
                validate_chap_value(&at, value)?;
                *slot = value.to_string();
            }
        }
        Loc::TpgLeaf(t, g, "enable") => {
            let on = parse_bool(&at, value)?;
            need_tpg(cfg, &t, g)?.enable = on;
        }
        Loc::TpgLeaf(t, g, _) => {
            let rtpi = value
                .parse::<u16>()
                .ok()
                .filter(|&r| r >= 1)
                .ok_or_else(|| format!("{at}: '{value}' is not valid; expected 1-65535"))?;
            let owner = cfg.targets.iter().find_map(|tt| {
                tt.tpgs
                    .iter()
                    .find(|gg| gg.rtpi == rtpi && !(tt.wwn == t && gg.tag == g))
                    .map(|gg| format!("iscsi/{}/tpgt_{}", tt.wwn, gg.tag))
            });
            let tpg = need_tpg(cfg, &t, g)?;
            if tpg.enable {
                return Err(format!(
                    "{at}: can only change while the TPG is disabled (set enable 0 first)"
                ));
            }
            if let Some(owner) = owner {
                return Err(format!(
                    "{at}: {rtpi} is already used by {owner}; RTPIs must be unique"
                ));
            }
            tpg.rtpi = rtpi;
        }
        Loc::TpgAttrib(t, g, name) => {
            let tpg = need_tpg(cfg, &t, g)?;
            let slot = tpg.attributes.slot(name).ok_or_else(|| {
                format!(
                    "{at}: unknown attribute; valid: {}",
                    TPG_ATTRIBUTES.join(", ")
                )
            })?;
            *slot = if name.starts_with("nopin") {
                let v = value
                    .trim()
                    .parse::<u8>()
                    .map_err(|_| format!("{at}: invalid value {value:?}; expected seconds"))?;
                crate::model::check_tpg_attribute(name, v).map_err(|e| format!("{at}: {e}"))?;
                v
            } else {
                u8::from(parse_bool(&at, value)?)
            };
        }
        Loc::TpgAuth(t, g, name) => {
            validate_chap_value(&at, value)?;
            let tpg = need_tpg(cfg, &t, g)?;
            let slot = tpg.chap.slot(name).ok_or_else(|| {
                format!("{at}: unknown attribute; valid: {}", AUTH_NAMES.join(", "))
            })?;
            *slot = value.to_string();
        }
        Loc::AclAuth(t, g, i, name) => {
            validate_chap_value(&at, value)?;
            let acl = need_acl(cfg, &t, g, &i)?;
            let slot = acl.chap.slot(name).ok_or_else(|| {
                format!("{at}: unknown attribute; valid: {}", AUTH_NAMES.join(", "))
            })?;
            *slot = value.to_string();
        }
        Loc::TpgParam(t, g, key) => {
            let defaults = insp.param_defaults();
            let default = defaults
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, d)| d.clone())
                .ok_or_else(|| {
                    let names: Vec<&str> = defaults.iter().map(|(k, _)| k.as_str()).collect();
                    format!("{at}: unknown parameter; valid: {}", names.join(", "))
                })?;
            insp.validate_param(key, value)
                .map_err(|e| format!("{at}: {e}"))?;
            let tpg = need_tpg(cfg, &t, g)?;
            if value == default {
                tpg.parameters.remove(key);
            } else {
                tpg.parameters.insert(key.to_string(), value.to_string());
            }
        }
        Loc::MappedLunAttr(t, g, i, m, name) => {
            let tpg = need_tpg(cfg, &t, g)?;
            let tpg_luns: Vec<u64> = tpg.luns.iter().map(|l| l.index).collect();
            let acl = tpg
                .acl_mut(&i)
                .ok_or_else(|| format!("iscsi/{t}/tpgt_{g}/acls/{i}: no such ACL"))?;
            let ml = acl
                .mapped_luns
                .iter_mut()
                .find(|x| x.index == m)
                .ok_or_else(|| {
                    format!("iscsi/{t}/tpgt_{g}/acls/{i}/lun_{m}: no such mapped LUN")
                })?;
            match name {
                "write_protect" => ml.write_protect = parse_bool(&at, value)?,
                "tpg_lun" => {
                    let n = value
                        .parse::<u64>()
                        .ok()
                        .filter(|n| tpg_luns.contains(n))
                        .ok_or_else(|| {
                            format!("{at}: '{value}' is not a LUN of iscsi/{t}/tpgt_{g}/lun")
                        })?;
                    ml.tpg_lun = n;
                }
                _ => {
                    return Err(format!(
                        "{at}: unknown attribute; valid: tpg_lun, write_protect"
                    ))
                }
            }
        }
        Loc::Lun(..) => {
            return Err(format!(
                "{at}: a LUN link cannot be changed; delete it and create it again"
            ))
        }
        Loc::Fixed(_) if matches!(find(&render(cfg, insp), path), Ok(Node::Leaf { .. })) => {
            return Err(format!("{at}: read-only"));
        }
        Loc::Fixed(_)
        | Loc::Device(_)
        | Loc::Target(_)
        | Loc::Tpg(..)
        | Loc::Np(..)
        | Loc::Acl(..)
        | Loc::AluaGroup(..)
        | Loc::LuGp(_)
        | Loc::MappedLun(..) => {
            return Err(format!(
                "{at}: not an attribute (set takes a leaf such as …/enable)"
            ))
        }
    }
    // The reply is echoed and logged: never repeat a secret.
    let secret = at.ends_with("/password") || at.ends_with("/password_mutual");
    Ok(format!(
        "{at} = {}",
        if secret { "********" } else { value }
    ))
}

/// A live capacity change asked for with `set core/<kind>_<n>/<dev>/control size=…` or
/// `… rescan=1` (LIO's `control` is a comma separated `key=value` list; we accept the keys
/// `size`, `shrink` and `rescan`, plus the creation keys `path`, `write_back`, `readonly`
/// when they repeat the current value, so a full `control` line can be written back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resize {
    pub key: DevKey,
    /// The new capacity in bytes; `None`: rescan the block device and take its capacity.
    pub size: Option<u64>,
}

/// Parse and check a `control` write. `Ok(None)`: `path` is not a device's `control` leaf.
/// Err: one line naming the field; nothing is to change.
///
/// Rules: `size=` for rd_mcp and fileio (for a block device it must be what the device has
/// now, or for fileio a prefix of it: the backstore checks that); `rescan=1` for iblock and
/// fileio on a block device; the size is nonzero and a multiple of the LU block size; a size
/// below the current one discards data and needs `shrink=1`. A rescan follows the device
/// whatever its new size: the device is the authority on what it holds.
pub fn resize_request(
    cfg: &Config,
    insp: &dyn Inspect,
    path: &str,
    value: &str,
) -> Result<Option<Resize>, String> {
    let key = match locate(path)? {
        Loc::DeviceLeaf(key, "control") => key,
        _ => return Ok(None),
    };
    let at = format!("{key}/control");
    let so = cfg
        .device(&key)
        .ok_or_else(|| format!("{key}: no such device"))?;
    let mut size = None;
    let mut shrink = false;
    let mut rescan = false;
    let mut seen = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            format!("{at}: '{part}' is not key=value; expected size=<bytes|K|M|G|T>[,shrink=1] or rescan=1")
        })?;
        let (k, v) = (k.trim(), v.trim());
        if seen.contains(&k) {
            return Err(format!("{at}: {k} given twice"));
        }
        seen.push(k);
        match k {
            "size" => size = Some(parse_size(&format!("{at}: size"), v)?),
            "shrink" => shrink = parse_bool(&format!("{at}: shrink"), v)?,
            "rescan" if v == "1" => rescan = true,
            "rescan" => {
                return Err(format!(
                    "{at}: rescan: '{v}' is not valid; only 1 (rescan now)"
                ))
            }
            "path" | "write_back" | "readonly" => {
                let current = so.control_text().split(',').find_map(|p| {
                    p.strip_prefix(k)
                        .and_then(|r| r.strip_prefix('='))
                        .map(str::to_string)
                });
                let same = match (current.as_deref(), k) {
                    (Some(c), "path") => c == v,
                    (Some(c), _) => parse_bool(&format!("{at}: {k}"), v)? == (c == "1"),
                    (None, _) => false,
                };
                if !same {
                    return Err(format!(
                        "{at}: {k} cannot be changed on a configured device (delete it and create it again)"
                    ));
                }
            }
            _ => {
                return Err(format!(
                    "{at}: unknown key '{k}'; valid: size, shrink, rescan"
                ))
            }
        }
    }
    let kind = key.kind.tree_name();
    match (size, rescan) {
        (None, false) => {
            return Err(format!(
                "{at}: expected size=<bytes|K|M|G|T>[,shrink=1] or rescan=1"
            ))
        }
        (Some(_), true) => {
            return Err(format!("{at}: give size= or rescan=1, not both"));
        }
        (None, true) if key.kind == Kind::RdMcp => {
            return Err(format!(
                "{at}: rescan=1 is for a block device (iblock, fileio on a block device); {kind} takes size="
            ));
        }
        (None, true) if shrink => {
            return Err(format!(
                "{at}: shrink=1 goes with size= (a rescan follows the device)"
            ));
        }
        (None, true) => return Ok(Some(Resize { key, size: None })),
        (Some(_), false) => {}
    }
    let size = size.unwrap_or_default();
    if size == 0 {
        return Err(format!("{at}: size must not be zero"));
    }
    let block_size = insp
        .device_attributes(&key)
        .into_iter()
        .find(|(n, _)| n == "block_size")
        .map(|(_, v)| v)
        .or_else(|| so.attributes.get("block_size").map(AttrValue::text))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(512);
    if !size.is_multiple_of(block_size) {
        return Err(format!(
            "{at}: size {size} is not a multiple of the {block_size}-byte logical block size"
        ));
    }
    let current = insp.device_size(&key).or(so.size).ok_or_else(|| {
        format!("{at}: the device is not running, so its current size is unknown")
    })?;
    if size < current && !shrink {
        return Err(format!(
            "{at}: size {size} is smaller than the current {current} bytes; shrinking discards the data past the new end: add shrink=1 to do it"
        ));
    }
    Ok(Some(Resize {
        key,
        size: Some(size),
    }))
}

/// The tree after a live resize of `key` from `old` to `new` bytes, and the reply line.
pub fn resized(
    cfg: &Config,
    insp: &dyn Inspect,
    key: &DevKey,
    old: u64,
    new: u64,
) -> Result<(Config, String), String> {
    let mut next = cfg.clone();
    next.device_mut(key)
        .ok_or_else(|| format!("{key}: no such device"))?
        .record_size(new);
    next.validate(insp)?;
    let msg = if old == new {
        format!("{key}/control: size unchanged ({new} bytes)")
    } else {
        format!(
            "{key}/control: size {old} -> {new} bytes; initiators get CAPACITY DATA HAS CHANGED"
        )
    };
    Ok((next, msg))
}

fn create(cfg: &mut Config, path: &str, args: &BTreeMap<String, String>) -> Result<String, String> {
    let loc = locate(path)?;
    let at = segments(path).join("/");
    let arg = |k: &str| args.get(k).map(String::as_str);
    match loc {
        Loc::Device(key) => {
            const VALID: &[&str] = &[
                "size", "path", "write_back", "readonly", "wwn", "vendor_id", "product_id", "revision", "block_size",
            ];
            only_keys(&at, args, VALID)?;
            if cfg.device(&key).is_some() {
                return Err(format!("{at}: already exists"));
            }
            let size = arg("size").map(|s| parse_size(&format!("{at}: size"), s)).transpose()?;
            let mut attributes = BTreeMap::new();
            if let Some(bs) = arg("block_size") {
                match bs {
                    "512" | "1024" | "2048" | "4096" => {
                        attributes.insert("block_size".to_string(), AttrValue::from_text(bs));
                    }
                    _ => return Err(format!("{at}: block_size '{bs}' is not valid; expected 512, 1024, 2048 or 4096")),
                }
            }
            let so = StorageObject {
                plugin: key.kind,
                hba: key.hba,
                name: key.name.clone(),
                wwn: arg("wwn").map_or_else(generate_serial, str::to_string),
                vendor_id: arg("vendor_id").unwrap_or("IRONLUN").to_string(),
                product_id: arg("product_id").unwrap_or(key.kind.default_product_id()).to_string(),
                revision: arg("revision").unwrap_or("1.0").to_string(),
                dev: arg("path").map(str::to_string),
                size,
                write_back: match arg("write_back") {
                    Some(v) => parse_bool(&format!("{at}: write_back"), v)?,
                    None => key.kind == Kind::FileIo,
                },
                readonly: arg("readonly").map(|v| parse_bool(&format!("{at}: readonly"), v)).transpose()?.unwrap_or(false),
                attributes,
                alua_tpgs: Vec::new(),
                alua_lu_gp: None,
            };
            if key.kind == Kind::RdMcp && (args.contains_key("write_back") || args.contains_key("readonly")) {
                return Err(format!("create {at}: rd_mcp takes size= only (write_back/readonly are for fileio/iblock)"));
            }
            if key.kind == Kind::IBlock && args.contains_key("write_back") {
                return Err(format!("create {at}: iblock takes path= and readonly= (write_back is for fileio)"));
            }
            validate_storage_object(&so)?;
            cfg.storage_objects.push(so);
            Ok(format!("created {at}"))
        }
        Loc::Target(t) => {
            only_keys(&at, args, &[])?;
            if cfg.target(&t).is_some() {
                return Err(format!("{at}: already exists"));
            }
            cfg.targets.push(Target { wwn: t, fabric: "iscsi".into(), tpgs: Vec::new() });
            Ok(format!("created {at}"))
        }
        Loc::Tpg(t, g) => {
            only_keys(&at, args, &["rtpi"])?;
            let rtpi = match arg("rtpi") {
                Some(v) => {
                    let r = v
                        .parse::<u16>()
                        .ok()
                        .filter(|&r| r >= 1)
                        .ok_or_else(|| format!("create {at}: rtpi '{v}' is not valid; expected 1-65535"))?;
                    if cfg.targets.iter().any(|tt| tt.tpgs.iter().any(|gg| gg.rtpi == r)) {
                        return Err(format!("create {at}: rtpi {r} is already used; RTPIs must be unique"));
                    }
                    r
                }
                None => cfg.free_rtpi().ok_or("no free relative target port identifier (all 65535 used)")?,
            };
            let mut msg = format!("created {at} (rtpi {rtpi})");
            if cfg.target(&t).is_none() {
                cfg.targets.push(Target { wwn: t.clone(), fabric: "iscsi".into(), tpgs: Vec::new() });
                msg = format!("created iscsi/{t} and {at} (rtpi {rtpi})");
            }
            let target = cfg.target_mut(&t).ok_or_else(|| format!("iscsi/{t}: no such target"))?;
            if target.tpg(g).is_some() {
                return Err(format!("{at}: already exists"));
            }
            target.tpgs.push(Tpg::new(g, rtpi));
            target.tpgs.sort_by_key(|x| x.tag);
            Ok(msg)
        }
        Loc::Np(t, g, addr) => {
            only_keys(&at, args, &[])?;
            let tpg = need_tpg(cfg, &t, g)?;
            if tpg.portals.iter().any(|p| p.addr() == addr) {
                return Err(format!("{at}: already exists"));
            }
            tpg.portals.push(Portal { ip_address: addr.ip(), port: addr.port() });
            Ok(format!("created {at}"))
        }
        Loc::Lun(t, g, l) => {
            only_keys(&at, args, &["dev"])?;
            let dev = arg("dev").ok_or_else(|| format!("create {at}: dev=core/<kind>_<n>/<name> is required"))?;
            add_lun(cfg, &t, g, l, dev)
        }
        Loc::Acl(t, g, i) => {
            only_keys(&at, args, &[])?;
            let tpg = need_tpg(cfg, &t, g)?;
            if tpg.acl(&i).is_some() {
                return Err(format!("{at}: already exists"));
            }
            tpg.node_acls.push(NodeAcl { node_wwn: i, chap: Chap::default(), mapped_luns: Vec::new() });
            Ok(format!("created {at}"))
        }
        Loc::MappedLun(t, g, i, m) => {
            only_keys(&at, args, &["tpg_lun", "write_protect"])?;
            let tpg_lun = arg("tpg_lun").ok_or_else(|| format!("create {at}: tpg_lun=<n> is required"))?;
            let tpg_lun = tpg_lun
                .parse::<u64>()
                .map_err(|_| format!("create {at}: tpg_lun '{tpg_lun}' is not a number"))?;
            let wp = arg("write_protect").map(|v| parse_bool(&format!("create {at}: write_protect"), v)).transpose()?;
            add_mapped_lun(cfg, &t, g, &i, m, tpg_lun, wp.unwrap_or(false))
        }
        Loc::AluaGroup(key, name) => {
            only_keys(&at, args, &["tg_pt_gp_id"])?;
            let so = cfg.device_mut(&key).ok_or_else(|| format!("{key}: no such device"))?;
            if so.alua_group(&name).is_some() {
                return Err(format!("{at}: already exists"));
            }
            let used: Vec<u16> = so.alua_groups().iter().map(|g| g.tg_pt_gp_id).collect();
            let id = match arg("tg_pt_gp_id") {
                Some(v) => {
                    let id = alua::parse_group_id(&at, "tg_pt_gp_id", v)?;
                    if let Some(other) = so.alua_groups().into_iter().find(|g| g.tg_pt_gp_id == id) {
                        return Err(format!(
                            "create {at}: tg_pt_gp_id {id} is already used by {key}/alua/{}; ids must be unique per device",
                            other.name
                        ));
                    }
                    id
                }
                None => (1..=u16::MAX)
                    .find(|i| !used.contains(i))
                    .ok_or_else(|| format!("create {at}: no free tg_pt_gp_id"))?,
            };
            so.alua_tpgs.push(AluaTpg::new(&name, id));
            Ok(format!("created {at} (tg_pt_gp_id {id})"))
        }
        Loc::LuGp(name) => {
            only_keys(&at, args, &["lu_gp_id"])?;
            if cfg.lu_gps().iter().any(|g| g.name == name) {
                return Err(format!("{at}: already exists"));
            }
            let used: Vec<u16> = cfg.lu_gps().iter().map(|g| g.lu_gp_id).collect();
            let id = match arg("lu_gp_id") {
                Some(v) => {
                    let id = alua::parse_group_id(&at, "lu_gp_id", v)?;
                    if let Some(other) = cfg.lu_gps().into_iter().find(|g| g.lu_gp_id == id) {
                        return Err(format!(
                            "create {at}: lu_gp_id {id} is already used by core/alua/lu_gps/{}; ids must be unique",
                            other.name
                        ));
                    }
                    id
                }
                None => (1..=u16::MAX)
                    .find(|i| !used.contains(i))
                    .ok_or_else(|| format!("create {at}: no free lu_gp_id"))?,
            };
            cfg.alua_lu_gps.push(LuGp { name, lu_gp_id: id });
            Ok(format!("created {at} (lu_gp_id {id})"))
        }
        Loc::Fixed(p) if p.is_empty() || p == "core" || p == "iscsi" => Err(format!("{at}: already exists")),
        _ => Err(format!(
            "{at}: cannot be created; create a device, target, tpgt_<n>, np/<ip>:<port>, lun/lun_<n>, acls/<iqn>, acls/<iqn>/lun_<n>, core/<kind>_<n>/<dev>/alua/<group> or core/alua/lu_gps/<group>"
        )),
    }
}

fn add_lun(cfg: &mut Config, t: &str, g: u16, l: u64, dev: &str) -> Result<String, String> {
    let key = DevKey::parse(dev)?;
    if cfg.device(&key).is_none() {
        return Err(format!("{key}: no such device"));
    }
    let tpg = need_tpg(cfg, t, g)?;
    if tpg.lun(l).is_some() {
        return Err(format!("iscsi/{t}/tpgt_{g}/lun/lun_{l}: already exists"));
    }
    tpg.luns.push(Lun::new(l, key.to_string()));
    tpg.luns.sort_by_key(|x| x.index);
    Ok(format!("created iscsi/{t}/tpgt_{g}/lun/lun_{l} -> {key}"))
}

fn add_mapped_lun(
    cfg: &mut Config,
    t: &str,
    g: u16,
    i: &str,
    m: u64,
    tpg_lun: u64,
    wp: bool,
) -> Result<String, String> {
    let tpg = need_tpg(cfg, t, g)?;
    if tpg.lun(tpg_lun).is_none() {
        return Err(format!("iscsi/{t}/tpgt_{g}/lun/lun_{tpg_lun}: no such LUN (tpg_lun must name an existing TPG LUN)"));
    }
    let acl = tpg
        .acl_mut(i)
        .ok_or_else(|| format!("iscsi/{t}/tpgt_{g}/acls/{i}: no such ACL"))?;
    if acl.mapped_luns.iter().any(|x| x.index == m) {
        return Err(format!(
            "iscsi/{t}/tpgt_{g}/acls/{i}/lun_{m}: already exists"
        ));
    }
    acl.mapped_luns.push(MappedLunCfg {
        index: m,
        tpg_lun,
        write_protect: wp,
    });
    acl.mapped_luns.sort_by_key(|x| x.index);
    Ok(format!(
        "created iscsi/{t}/tpgt_{g}/acls/{i}/lun_{m} -> lun/lun_{tpg_lun}"
    ))
}

/// Remove mapped LUNs pointing at TPG LUN `l`; returns their paths.
fn drop_mapped_of(tpg: &mut Tpg, at: &str, l: u64) -> Vec<String> {
    let mut gone = Vec::new();
    for a in &mut tpg.node_acls {
        a.mapped_luns.retain(|m| {
            let keep = m.tpg_lun != l;
            if !keep {
                gone.push(format!("{at}/acls/{}/lun_{}", a.node_wwn, m.index));
            }
            keep
        });
    }
    gone
}

fn with_cascade(at: &str, gone: Vec<String>) -> String {
    if gone.is_empty() {
        format!("deleted {at}")
    } else {
        format!("deleted {at}; also removed {}", gone.join(", "))
    }
}

fn delete(cfg: &mut Config, path: &str) -> Result<String, String> {
    let loc = locate(path)?;
    let at = segments(path).join("/");
    match loc {
        Loc::Device(key) => {
            if cfg.device(&key).is_none() {
                return Err(format!("{at}: no such device"));
            }
            let mut gone = Vec::new();
            for (t, g, l) in cfg.luns_of(&key) {
                if let Some(tpg) = cfg.tpg_mut(&t, g) {
                    let tat = format!("iscsi/{t}/tpgt_{g}");
                    tpg.luns.retain(|x| x.index != l);
                    gone.push(format!("{tat}/lun/lun_{l}"));
                    gone.extend(drop_mapped_of(tpg, &tat, l));
                }
            }
            cfg.storage_objects.retain(|s| s.key() != key);
            Ok(with_cascade(&at, gone))
        }
        Loc::Target(t) => {
            let before = cfg.targets.len();
            cfg.targets.retain(|x| x.wwn != t);
            if cfg.targets.len() == before {
                return Err(format!("{at}: no such target"));
            }
            Ok(format!("deleted {at} and everything below it"))
        }
        Loc::Tpg(t, g) => {
            let target = cfg.target_mut(&t).ok_or_else(|| format!("iscsi/{t}: no such target"))?;
            let before = target.tpgs.len();
            target.tpgs.retain(|x| x.tag != g);
            if target.tpgs.len() == before {
                return Err(format!("{at}: no such TPG"));
            }
            Ok(format!("deleted {at} and everything below it"))
        }
        Loc::Np(t, g, addr) => {
            let tpg = need_tpg(cfg, &t, g)?;
            let before = tpg.portals.len();
            tpg.portals.retain(|p| p.addr() != addr);
            if tpg.portals.len() == before {
                return Err(format!("{at}: no such portal"));
            }
            Ok(format!("deleted {at}"))
        }
        Loc::Lun(t, g, l) => {
            let tpg = need_tpg(cfg, &t, g)?;
            if tpg.lun(l).is_none() {
                return Err(format!("{at}: no such LUN"));
            }
            tpg.luns.retain(|x| x.index != l);
            let gone = drop_mapped_of(tpg, &format!("iscsi/{t}/tpgt_{g}"), l);
            Ok(with_cascade(&at, gone))
        }
        Loc::Acl(t, g, i) => {
            let tpg = need_tpg(cfg, &t, g)?;
            if tpg.acl(&i).is_none() {
                return Err(format!("{at}: no such ACL"));
            }
            tpg.node_acls.retain(|a| a.node_wwn != i);
            Ok(format!("deleted {at}"))
        }
        Loc::MappedLun(t, g, i, m) => {
            let acl = need_acl(cfg, &t, g, &i)?;
            let before = acl.mapped_luns.len();
            acl.mapped_luns.retain(|x| x.index != m);
            if acl.mapped_luns.len() == before {
                return Err(format!("{at}: no such mapped LUN"));
            }
            Ok(format!("deleted {at}"))
        }
        Loc::AluaGroup(key, name) => {
            let so = cfg.device(&key).ok_or_else(|| format!("{key}: no such device"))?;
            if name == DEFAULT_TG_PT_GP {
                return Err(format!("{at}: {DEFAULT_TG_PT_GP} always exists and cannot be deleted"));
            }
            if so.alua_group(&name).is_none() {
                return Err(format!("{at}: no such group"));
            }
            let members = cfg.alua_members(&key, &name);
            if let Some(m) = members.first() {
                return Err(format!(
                    "{at}: the group still has {} member port(s), e.g. iscsi/{}/tpgt_{}/lun/lun_{}; move them to another group (…/alua_tg_pt_gp) first",
                    members.len(), m.target, m.tpgt, m.lun
                ));
            }
            if let Some(so) = cfg.device_mut(&key) {
                so.alua_tpgs.retain(|g| g.name != name);
            }
            Ok(format!("deleted {at}"))
        }
        Loc::LuGp(name) => {
            if name == DEFAULT_LU_GP {
                return Err(format!("{at}: {DEFAULT_LU_GP} always exists and cannot be deleted"));
            }
            if !cfg.alua_lu_gps.iter().any(|g| g.name == name) {
                return Err(format!("{at}: no such LU group"));
            }
            if let Some(so) = cfg.storage_objects.iter().find(|s| s.lu_gp() == name) {
                return Err(format!(
                    "{at}: {} is still in it; set its alua_lu_gp to another group first",
                    so.key()
                ));
            }
            cfg.alua_lu_gps.retain(|g| g.name != name);
            Ok(format!("deleted {at}"))
        }
        _ => Err(format!(
            "{at}: cannot be deleted; delete a device, target, tpgt_<n>, np/<ip>:<port>, lun/lun_<n>, acls/<iqn>, acls/<iqn>/lun_<n>, core/<kind>_<n>/<dev>/alua/<group> or core/alua/lu_gps/<group>"
        )),
    }
}

/// `link SRC DST`, `ln -s` order: DST is the new link, SRC what it points at.
fn link(cfg: &mut Config, src: &str, dst: &str) -> Result<String, String> {
    match (locate(src)?, locate(dst)?) {
        (Loc::Device(key), Loc::Lun(t, g, l)) => add_lun(cfg, &t, g, l, &key.to_string()),
        (Loc::Lun(st, sg, l), Loc::MappedLun(t, g, i, m)) => {
            if st != t || sg != g {
                return Err(format!(
                    "link: a mapped LUN can only point at a LUN of its own TPG (iscsi/{t}/tpgt_{g}/lun/…)"
                ));
            }
            add_mapped_lun(cfg, &t, g, &i, m, l, false)
        }
        _ => Err(format!(
            "link {src} {dst}: expected link core/<kind>_<n>/<dev> iscsi/<iqn>/tpgt_<n>/lun/lun_<l>, or link iscsi/<iqn>/tpgt_<n>/lun/lun_<l> iscsi/<iqn>/tpgt_<n>/acls/<initiator>/lun_<m>"
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests;
