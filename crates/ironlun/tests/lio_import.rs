//! `ironlun config import-lio` / `config export-lio` end to end (docs/cli.md "Moving from
//! LIO"): each saveconfig.json under tests/data/lio/ (in the shape rtslib-fb writes) is
//! imported into a running daemon, served (a real iSCSI session logs in, with CHAP where the
//! file asks, and READs and WRITEs), exported back equal to the file modulo the documented
//! differences, and importing the export changes nothing. A host sees the NAA designator LIO
//! derives from the `wwn` (target_core_spc.c `spc_gen_naa_6h_vendor_specific`); LIO's APTPL
//! files bring their registrations and reservation along; bad files are refused with one line
//! and change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{SocketAddr, TcpListener};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};

use ironlun_initiator::session::Session;
use ironlun_initiator::{ChapConfig, LoginConfig};
use ironlun_scsi::status;
use serde_json::{json, Value};
use support::*;

/// Helper lio2's ports: the daemon in 4000-4009, the imported portals in 4010-4019.
const PORTS: Range<u16> = 4000..4010;
const PORTAL_PORTS: Range<u16> = 4010..4020;
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/lio");

/// A loop device over a 4 MiB file (root with a working losetup), detached on drop.
struct Loop {
    dev: String,
}

impl Loop {
    fn new(dir: &Path, name: &str) -> Option<Loop> {
        let file = dir.join(format!("{name}.loop"));
        std::fs::write(&file, vec![0u8; 4 << 20]).ok()?;
        let o = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&file)
            .output()
            .ok()?;
        let dev = String::from_utf8_lossy(&o.stdout).trim().to_string();
        (o.status.success() && dev.starts_with("/dev/")).then_some(Loop { dev })
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// Two free ports for the fixture's portals (3260 and 3261 in the files).
/// Tests run in parallel: each takes the next ports of [`PORTAL_PORTS`] that are free.
fn free_ports() -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let n = PORTAL_PORTS.end - PORTAL_PORTS.start;
    let mut free = (0..4 * n)
        .map(|_| PORTAL_PORTS.start + NEXT.fetch_add(1, Ordering::Relaxed) % n)
        .filter(|p| {
            TcpListener::bind(("0.0.0.0", *p)).is_ok() && TcpListener::bind(("::", *p)).is_ok()
        });
    (
        free.next().expect("free port"),
        free.next().expect("free port"),
    )
}

/// A fixture made runnable here: portal ports, file and block device paths replaced. Block
/// objects get a loop device, or (without root or losetup) become fileio objects on a file.
struct Fixture {
    file: PathBuf,
    json: Value,
    port: u16,
    port2: u16,
    _loops: Vec<Loop>,
}

fn fixture(d: &Daemon, name: &str) -> Fixture {
    let text = std::fs::read_to_string(format!("{DATA}/{name}.json")).unwrap();
    let mut json: Value = serde_json::from_str(&text).unwrap();
    let (port, port2) = free_ports();
    let dir = d.state_dir();
    let mut loops = Vec::new();
    let mut to_fileio = Vec::new();
    for so in json["storage_objects"].as_array_mut().unwrap() {
        let dev = so["dev"].as_str().unwrap_or_default().to_string();
        if let Some(f) = dev.strip_prefix("/var/lib/lio/") {
            so["dev"] = json!(dir.join(f).display().to_string());
        } else if dev.starts_with("/dev/vg0/") {
            let name = so["name"].as_str().unwrap().to_string();
            match Loop::new(d.dir.path(), &name) {
                Some(l) => {
                    so["dev"] = json!(l.dev.clone());
                    loops.push(l);
                }
                None => {
                    // A fileio given a block device (LIO sizes it by the device) gets a file.
                    so["plugin"] = json!("fileio");
                    so["size"] = json!(4 << 20);
                    so["dev"] = json!(dir.join(format!("{name}.img")).display().to_string());
                    to_fileio.push(name);
                }
            }
        }
    }
    for t in json["targets"].as_array_mut().unwrap() {
        for g in t["tpgs"].as_array_mut().unwrap() {
            for p in g["portals"].as_array_mut().into_iter().flatten() {
                p["port"] = json!(if p["port"] == 3261 { port2 } else { port });
            }
            for l in g["luns"].as_array_mut().into_iter().flatten() {
                for n in &to_fileio {
                    for alias in ["block", "iblock"] {
                        if l["storage_object"] == format!("/backstores/{alias}/{n}") {
                            l["storage_object"] = json!(format!("/backstores/fileio/{n}"));
                        }
                    }
                }
            }
        }
    }
    let file = d.dir.path().join(format!("{name}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    Fixture {
        file,
        json,
        port,
        port2,
        _loops: loops,
    }
}

/// Import `f`, checking the report names `expect_reported`; returns the CLI's output.
fn import(d: &Daemon, f: &Fixture, extra: &[&str], expect_reported: &[&str]) -> String {
    let path = f.file.display().to_string();
    let mut args = vec!["config", "import-lio", path.as_str()];
    args.extend_from_slice(extra);
    let dry = {
        let mut a = args.clone();
        a.push("--dry-run");
        d.cli(&a)
    };
    assert!(dry.contains("(dry run: nothing changed)"), "{dry}");
    assert!(
        d.cli(&["ls", "iscsi"])
            .contains("iqn.2026-11.org.ironlun:default"),
        "dry run changed the tree"
    );
    let out = d.cli(&args);
    for r in expect_reported {
        assert!(
            out.lines().any(|l| l.starts_with("  ") && l.contains(r)),
            "report does not name {r:?}:\n{out}"
        );
    }
    assert!(out.contains(" change(s) applied"), "{out}");
    out
}

/// The running config exported, and what `export-lio` says LIO cannot hold.
fn export(d: &Daemon) -> Value {
    let file = d.dir.path().join("exported.json");
    // An existing, world-readable file is narrowed to 0600 before the secrets go in.
    std::fs::write(&file, "old").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let o = d.cli_output(&["config", "export-lio", &file.display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the export holds CHAP secrets");
    // Stdout gets the same text.
    assert_eq!(d.cli(&["config", "export-lio"]), text);
    serde_json::from_str(&text).unwrap()
}

/// Export, compare with the fixture modulo the documented differences, and import the export:
/// nothing changes.
fn round_trip(d: &Daemon, f: &Fixture) {
    let exported = export(d);
    assert_eq!(normalize(&f.json), normalize(&exported));
    let back = d.dir.path().join("exported.json").display().to_string();
    let again = d.cli(&["config", "import-lio", &back]);
    assert!(
        again.contains("no changes: the running configuration already equals the file"),
        "importing the export changed something:\n{again}"
    );
}

/// Device attributes both LIO and ironlun have and that take LIO's default values (the rest
/// are named in the report).
const KEPT_ATTRS: &[&str] = &[
    "block_size",
    "emulate_3pc",
    "emulate_caw",
    "emulate_fua_write",
    "emulate_model_alias",
    "emulate_pr",
    "emulate_tas",
    "emulate_tpu",
    "emulate_tpws",
    "emulate_ua_intlck_ctrl",
    "emulate_write_cache",
    "force_pr_aptpl",
    "is_nonrot",
    "max_unmap_block_desc_count",
    "max_unmap_lba_count",
    "max_write_same_len",
    "optimal_sectors",
    "queue_depth",
    "unmap_granularity",
    "unmap_granularity_alignment",
];

/// A saveconfig.json reduced to what carries over both ways (docs/cli.md "Moving from LIO").
fn normalize(v: &Value) -> Value {
    let plugin = |p: &str| match p {
        "iblock" => "block".to_string(),
        "rd_mcp" => "ramdisk".to_string(),
        p => p.to_string(),
    };
    let mut sos = Vec::new();
    for so in v["storage_objects"].as_array().unwrap() {
        let p = plugin(so["plugin"].as_str().unwrap());
        if p == "pscsi" || p == "user" {
            continue;
        }
        let attrs: serde_json::Map<String, Value> = so["attributes"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| KEPT_ATTRS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut groups: Vec<Value> = so["alua_tpgs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let mut g = g.clone();
                g.as_object_mut().unwrap().remove("alua_write_metadata");
                g
            })
            .collect();
        // Order is not meaningful (rtslib lists configfs directories).
        groups.sort_by_key(|g| g["tg_pt_gp_id"].as_u64());
        let mut n = json!({"name": so["name"], "plugin": p, "wwn": so["wwn"],
            "attributes": attrs, "alua_tpgs": groups});
        match p.as_str() {
            "block" => n["readonly"] = so["readonly"].clone(),
            "fileio" => {
                n["dev"] = so["dev"].clone();
                n["size"] = so["size"].clone();
                n["write_back"] = so["write_back"].clone();
            }
            _ => n["size"] = so["size"].clone(),
        }
        if p == "block" {
            n["dev"] = so["dev"].clone();
        }
        sos.push(n);
    }
    let mut targets = Vec::new();
    for t in v["targets"].as_array().unwrap() {
        if t["fabric"] != "iscsi" {
            continue;
        }
        let mut tpgs = Vec::new();
        for g in t["tpgs"].as_array().unwrap() {
            let a = &g["attributes"];
            let portals: Vec<Value> = g["portals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let ip = p["ip_address"].as_str().unwrap();
                    let ip: std::net::IpAddr = ip
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse()
                        .unwrap();
                    json!({"ip": ip.to_string(), "port": p["port"]})
                })
                .collect();
            let luns: Vec<Value> = g["luns"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|l| {
                    let s = l["storage_object"].as_str().unwrap();
                    !s.contains("/pscsi/") && !s.contains("/user/")
                })
                .map(|l| {
                    let so = l["storage_object"].as_str().unwrap();
                    let (p, name) = so.trim_start_matches("/backstores/").split_once('/').unwrap();
                    let gp = l.get("alua_tg_pt_gp_name").cloned().unwrap_or(json!("default_tg_pt_gp"));
                    json!({"index": l["index"], "storage_object": format!("/backstores/{}/{name}", plugin(p)), "alua_tg_pt_gp_name": gp})
                })
                .collect();
            let acls: Vec<Value> = g["node_acls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    let mut n = json!({"node_wwn": a["node_wwn"],
                        "nopin": [a["attributes"]["nopin_timeout"], a["attributes"]["nopin_response_timeout"]],
                        "mapped_luns": a["mapped_luns"].as_array().unwrap().iter()
                            .map(|m| json!({"index": m["index"], "tpg_lun": m["tpg_lun"], "write_protect": m["write_protect"]}))
                            .collect::<Vec<_>>()});
                    for k in ["chap_userid", "chap_password", "chap_mutual_userid", "chap_mutual_password"] {
                        n[k] = a.get(k).cloned().unwrap_or(json!(""));
                    }
                    n
                })
                .collect();
            let mut n = json!({"tag": g["tag"], "enable": g["enable"], "parameters": g["parameters"],
                "attributes": [a["authentication"], a["demo_mode_write_protect"], a["generate_node_acls"], a["prod_mode_write_protect"]],
                "portals": portals, "luns": luns, "node_acls": acls});
            for k in [
                "chap_userid",
                "chap_password",
                "chap_mutual_userid",
                "chap_mutual_password",
            ] {
                n[k] = g.get(k).cloned().unwrap_or(json!(""));
            }
            tpgs.push(n);
        }
        // rtslib restores a naa.6… name as naa.5… (the name LIO served); so does the import.
        let wwn = t["wwn"].as_str().unwrap().replacen("naa.6", "naa.5", 1);
        targets.push(json!({"wwn": wwn, "tpgs": tpgs}));
    }
    let discovery: Vec<Value> = v["fabric_modules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == "iscsi")
        .filter(|m| {
            m["discovery_enable_auth"] == true
                || ["discovery_userid", "discovery_password"]
                    .iter()
                    .any(|k| m[*k] != "")
        })
        .cloned()
        .collect();
    json!({"storage_objects": sos, "targets": targets, "fabric_modules": discovery})
}

/// The NAA IEEE Registered Extended designator as LIO builds it from the unit serial
/// (target_core_spc.c `spc_gen_naa_6h_vendor_specific`, company id 0x001405), written out
/// from the kernel's loop: byte 3's low nibble first, then whole bytes, hex digits only.
fn lio_naa(serial: &str) -> [u8; 16] {
    let company: u32 = 0x001405;
    let mut buf = [0u8; 16];
    buf[0] = 0x60 | ((company >> 20) & 0xf) as u8;
    buf[1] = ((company >> 12) & 0xff) as u8;
    buf[2] = ((company >> 4) & 0xff) as u8;
    buf[3] = ((company & 0xf) << 4) as u8;
    let (mut off, mut next) = (3usize, true);
    for c in serial.chars() {
        if off >= 16 {
            break;
        }
        let Some(v) = c.to_digit(16) else { continue };
        if next {
            next = false;
            buf[off] |= v as u8;
            off += 1;
        } else {
            next = true;
            buf[off] = (v as u8) << 4;
        }
    }
    buf
}

/// The LU's NAA designator from INQUIRY EVPD page 83h, and the unit serial from page 80h.
async fn identity(s: &Session, lun: u64) -> ([u8; 16], String) {
    let p83 = good(s.inquiry(lun, true, 0x83, 512).await, "INQUIRY VPD 83h");
    let mut i = 4;
    let mut naa = None;
    while i + 4 <= p83.len() {
        let len = usize::from(p83[i + 3]);
        let (assoc, kind) = ((p83[i + 1] >> 4) & 3, p83[i + 1] & 0xf);
        if assoc == 0 && kind == 3 && len == 16 {
            naa = Some(<[u8; 16]>::try_from(&p83[i + 4..i + 20]).unwrap());
        }
        i += 4 + len;
    }
    let p80 = good(s.inquiry(lun, true, 0x80, 255).await, "INQUIRY VPD 80h");
    let n = usize::from(p80[3]);
    let serial = String::from_utf8_lossy(&p80[4..4 + n])
        .trim_end_matches('\0')
        .to_string();
    (naa.expect("an NAA designator for the LU"), serial)
}

/// WRITE then READ 8 blocks at LBA 16 of `lun`, and the identity check against `wwn`.
async fn serve_lun(s: &Session, lun: u64, wwn: &str, seed: u32) {
    clear_ua(s, lun).await;
    let data = pattern(seed, 8 * 512);
    good(
        s.write16(lun, 16, data.clone(), 512, false).await,
        "WRITE(16)",
    );
    let back = good(s.read16(lun, 16, 8, 512).await, "READ(16)");
    assert_eq!(
        &back[..],
        &data[..],
        "LUN {lun}: read back what was written"
    );
    let (naa, serial) = identity(s, lun).await;
    assert_eq!(serial, wwn, "LUN {lun}: VPD 80h unit serial is LIO's wwn");
    assert_eq!(
        naa,
        lio_naa(wwn),
        "LUN {lun}: the NAA designator LIO showed"
    );
    assert_eq!(&naa[..4], &[0x60, 0x01, 0x40, 0x50 | (naa[3] & 0xf)]);
}

fn wwn_of(f: &Fixture, name: &str) -> String {
    f.json["storage_objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["wwn"].as_str())
        .unwrap()
        .to_string()
}

async fn login_to(addr: SocketAddr, cfg: LoginConfig, lun: u64) -> Session {
    login_at(addr, cfg, lun).await
}

fn at(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

#[tokio::test]
async fn demo_mode_block_fileio_ramdisk() {
    let d = Daemon::start_in(PORTS);
    let f = fixture(&d, "demo");
    import(
        &d,
        &f,
        &[],
        &[
            "fileio/file1.aio",
            "alias",
            "attributes.emulate_dpo",
            "cache_dynamic_acls=1",
        ],
    );
    let target = f.json["targets"][0]["wwn"].as_str().unwrap();
    // [::0] serves IPv6 (and, dual-stack, IPv4).
    let s = login_to(
        at("[::1]", f.port),
        LoginConfig::normal(&iqn("any-host"), target),
        0,
    )
    .await;
    let luns = s.report_luns(0).await.unwrap();
    assert_eq!(luns, vec![0, 1, 2, 3]);
    serve_lun(&s, 0, &wwn_of(&f, "disk1"), 1).await;
    serve_lun(&s, 1, &wwn_of(&f, "file1"), 2).await;
    serve_lun(&s, 2, &wwn_of(&f, "ram1"), 3).await;
    serve_lun(&s, 3, &wwn_of(&f, "fblock"), 8).await;
    if f._loops.len() == 2 {
        // fileio on a block device: sized by the device (4 MiB), as LIO does.
        let cap = s.read_capacity16(3).await.unwrap();
        assert_eq!(cap.last_lba + 1, (4 << 20) / 512);
    }
    s.logout(0).await.ok();
    round_trip(&d, &f);
}

fn chap(user: &str, secret: &str, mutual: Option<(&str, &str)>) -> ChapConfig {
    let c = ChapConfig::new(user, secret.as_bytes().to_vec());
    match mutual {
        Some((u, s)) => c.mutual(Some(u), s.as_bytes().to_vec()),
        None => c,
    }
}

#[tokio::test]
async fn acls_with_one_way_and_mutual_chap() {
    let d = Daemon::start_in(PORTS);
    let f = fixture(&d, "chap");
    import(
        &d,
        &f,
        &[],
        &["mutual.tag", "mapped_lun3.alias", "dataout_timeout=3"],
    );
    let target = f.json["targets"][0]["wwn"].as_str().unwrap();
    let addr = at("127.0.0.1", f.port);
    // No CHAP: refused (authentication=1).
    let plain = LoginConfig::normal("iqn.1994-05.com.redhat:oneway", target);
    assert!(
        Session::login(addr, &plain).await.is_err(),
        "login without CHAP must fail"
    );
    // One-way CHAP: mapped LUN 0 (TPG LUN 0) and 3 (TPG LUN 5, write-protected).
    let one = plain
        .clone()
        .chap(chap("oneway-user", "oneway-secret-123", None));
    let s = login_to(addr, one, 0).await;
    assert_eq!(s.report_luns(0).await.unwrap(), vec![0, 3]);
    serve_lun(&s, 0, &wwn_of(&f, "data"), 4).await;
    clear_ua(&s, 3).await;
    let r = s.write16(3, 0, vec![0u8; 512], 512, false).await.unwrap();
    assert_eq!(r.status, status::CHECK_CONDITION, "write_protect: {r:?}");
    assert_eq!(
        r.sense.map(|s| s.key),
        Some(ironlun_scsi::sense::key::DATA_PROTECT)
    );
    s.logout(0).await.ok();
    // Mutual CHAP: mapped LUN 7 is TPG LUN 0.
    let mutual = LoginConfig::normal("iqn.1994-05.com.redhat:mutual", target).chap(chap(
        "mutual-user",
        "mutual-secret-456",
        Some(("target-name", "target-secret-789")),
    ));
    let s = login_to(addr, mutual, 7).await;
    assert_eq!(s.report_luns(7).await.unwrap(), vec![7]);
    serve_lun(&s, 7, &wwn_of(&f, "data"), 5).await;
    s.logout(0).await.ok();
    let disc = d.cli(&["ls", "iscsi"]);
    assert!(disc.contains("enforce_discovery_auth"), "{disc}");
    round_trip(&d, &f);
}

#[tokio::test]
async fn alua_groups_and_two_portal_groups() {
    let d = Daemon::start_in(PORTS);
    let f = fixture(&d, "alua");
    import(&d, &f, &[], &["alua_write_metadata"]);
    let show = d.cli(&["alua", "show", "core/rd_mcp_0/shared"]);
    for want in ["west", "east", "default_tg_pt_gp"] {
        assert!(show.contains(want), "{show}");
    }
    let target = f.json["targets"][0]["wwn"].as_str().unwrap();
    let wwn = wwn_of(&f, "shared");
    let west = login_to(
        at("127.0.0.1", f.port),
        LoginConfig::normal(&iqn("w"), target),
        0,
    )
    .await;
    serve_lun(&west, 0, &wwn, 6).await;
    // East is Active/Non-optimized: I/O still flows, and the NAA is the same LU's.
    let east = login_to(
        at("127.0.0.2", f.port2),
        LoginConfig::normal(&iqn("e"), target),
        0,
    )
    .await;
    serve_lun(&east, 0, &wwn, 7).await;
    west.logout(0).await.ok();
    east.logout(0).await.ok();
    round_trip(&d, &f);
}

#[tokio::test]
async fn other_fabrics_eui_naa_pscsi_user() {
    let d = Daemon::start_in(PORTS);
    let mut f = fixture(&d, "fabrics");
    // The pscsi object is imported as one (dev=/dev/sg3, its LUN 1), so on this host, which
    // has no such device, the import is refused whole, naming the device, and nothing changes.
    let path = f.file.display().to_string();
    let dry = d.cli(&["config", "import-lio", &path, "--dry-run"]);
    assert!(dry.contains("core/pscsi_0/tape0"), "{dry}");
    let before = d.cli(&["config", "export-lio"]);
    let o = d.cli_output(&["config", "import-lio", &path]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("core/pscsi_0/tape0")
            && err.contains("/dev/sg3")
            && err.contains("nothing changed"),
        "{err}"
    );
    assert_eq!(d.cli(&["config", "export-lio"]), before);
    // Without it, the rest imports and serves.
    f.json["storage_objects"]
        .as_array_mut()
        .unwrap()
        .retain(|so| so["plugin"] != "pscsi");
    for t in f.json["targets"].as_array_mut().unwrap() {
        for g in t["tpgs"].as_array_mut().unwrap() {
            if let Some(luns) = g["luns"].as_array_mut() {
                luns.retain(|l| l["storage_object"] != "/backstores/pscsi/tape0");
            }
        }
    }
    std::fs::write(&f.file, serde_json::to_vec_pretty(&f.json).unwrap()).unwrap();
    import(
        &d,
        &f,
        &[],
        &[
            "/loopback/naa.5001405abcdef123: fabric 'loopback'",
            "/qla2xxx/21:00:00:24:ff:31:4c:48",
            "/backstores/user/gluster1: user (TCMU)",
            "named naa.5001405abcdef0123456789abcdef012, as rtslib's restore renames naa.6",
            "portals[1].iser",
            "fcdisk.nullio",
            "cmd_completion_affinity",
        ],
    );
    let ls = d.cli(&["ls", "iscsi"]);
    assert!(
        ls.contains("eui.02004567A425678D") && ls.contains("naa.5001405abcdef0123456789abcdef012"),
        "{ls}"
    );
    // The object only a loopback and a qla2xxx target exported is imported all the same.
    assert!(d.cli(&["ls", "core"]).contains("fcdisk"));
    let s = login_to(
        at("127.0.0.1", f.port),
        LoginConfig::normal(&iqn("h"), "eui.02004567A425678D"),
        0,
    )
    .await;
    assert_eq!(s.report_luns(0).await.unwrap(), vec![0]);
    let wwn = wwn_of(&f, "vol1");
    let (naa, serial) = identity(&s, 0).await;
    assert_eq!((naa, serial.as_str()), (lio_naa(&wwn), wwn.as_str()));
    if f.json["storage_objects"][0]["plugin"] == "iblock" {
        // readonly=true on the block device: WRITE is refused.
        let r = s.write16(0, 0, vec![0u8; 512], 512, false).await.unwrap();
        assert_eq!(r.status, status::CHECK_CONDITION, "{r:?}");
    }
    good(s.read16(0, 0, 8, 512).await, "READ(16)");
    s.logout(0).await.ok();
    round_trip(&d, &f);
}

#[tokio::test]
async fn aptpl_registrations_and_reservation_come_along() {
    let mut d = Daemon::start_in(PORTS);
    let f = fixture(&d, "aptpl");
    let pr_dir = format!("{DATA}/pr");
    import(
        &d,
        &f,
        &["--pr-dir", &pr_dir],
        &[
            "registration 2: fabric FC",
            "aptpl_deadbeef-no-such-device: no imported storage object",
        ],
    );
    let wwn = wwn_of(&f, "pr1");
    assert!(d
        .state_dir()
        .join("pr")
        .join(format!("aptpl_{wwn}"))
        .is_file());
    let target = f.json["targets"][0]["wwn"].as_str().unwrap();
    let addr = at("127.0.0.1", f.port);
    let mut holder = LoginConfig::normal("iqn.2026-11.org.example:pr-holder", target);
    holder.isid = [0x40, 0x00, 0x01, 0x37, 0x00, 0x00];
    let h = login_to(addr, holder, 0).await;
    let mut keys = h.pr_read_keys(0).await.unwrap().keys;
    keys.sort();
    assert_eq!(keys, vec![3054, 11_259_375]);
    let res = h
        .pr_read_reservation(0)
        .await
        .unwrap()
        .reservation
        .expect("a reservation");
    assert_eq!((res.key, res.pr_type), (11_259_375, 3));
    good(
        h.write16(0, 0, vec![7u8; 512], 512, false).await,
        "holder WRITE",
    );
    let other = login_to(addr, LoginConfig::normal(&iqn("stranger"), target), 0).await;
    let r = other.read16(0, 0, 1, 512).await.unwrap();
    assert_eq!(
        r.status,
        status::RESERVATION_CONFLICT,
        "Exclusive Access keeps others out"
    );
    h.logout(0).await.ok();
    other.logout(0).await.ok();
    round_trip(&d, &f);
    // The state is ironlun's own now: a restart reads it back from <state-dir>/pr.
    d.stop();
    d.port = f.port;
    d.restart();
    let other = login_to(addr, LoginConfig::normal(&iqn("stranger"), target), 0).await;
    let after = other.pr_read_reservation(0).await.unwrap().reservation;
    assert_eq!(after.map(|r| (r.key, r.pr_type)), Some((11_259_375, 3)));
    other.logout(0).await.ok();
}

#[test]
fn bad_input_is_one_line_exit_2_and_changes_nothing() {
    let d = Daemon::start_in(PORTS);
    let before = d.cli(&["ls"]);
    let cases: &[(&str, &str)] = &[
        ("{\"storage_objects\": [", "not valid JSON"),
        (
            r#"{"storage_objects":[{"plugin":"tcmu_magic","name":"x"}]}"#,
            "storage_objects[0].plugin: unknown plugin 'tcmu_magic'",
        ),
        (
            r#"{"storage_objects":[{"plugin":"ramdisk","name":"r","wwn":"abc"}]}"#,
            "/backstores/ramdisk/r.size: missing",
        ),
        (
            r#"{"storage_objects":[{"plugin":"fileio","name":"f","wwn":"abc"}]}"#,
            "/backstores/fileio/f.dev: missing",
        ),
        (
            r#"{"targets":[{"fabric":"iscsi","wwn":"iqn.2003-01.org.x:t","tpgs":[{"enable":true}]}]}"#,
            "tpgs[0].tag: missing",
        ),
        (
            r#"{"targets":[{"fabric":"iscsi","wwn":"iqn.2003-01.org.x:t","tpgs":[{"tag":1,"luns":[{"index":0,"storage_object":"/backstores/block/nope"}]}]}]}"#,
            "storage_object: '/backstores/block/nope' is not in storage_objects",
        ),
        (
            r#"{"targets":[{"wwn":"iqn.2003-01.org.x:t"}]}"#,
            "targets[0].fabric: missing",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let file = d.dir.path().join(format!("bad{i}.json"));
        std::fs::write(&file, text).unwrap();
        let err = d.refused(&["config", "import-lio", &file.display().to_string()]);
        assert!(err.contains(want), "case {i}: {err:?} should name {want:?}");
    }
    let missing = d.refused(&["config", "import-lio", "/nonexistent/saveconfig.json"]);
    assert!(
        missing.contains("cannot read /nonexistent/saveconfig.json"),
        "{missing}"
    );
    assert_eq!(d.cli(&["ls"]), before, "a refused import changed the tree");
}
