//! Persistent reservations in the control plane (SPC-4 §5.13; APTPL, "Activate Persist
//! Through Power Loss", §5.13.5): the per-device APTPL file, the read-only `pr/` view of the
//! object tree and the `ironlun pr show` / `pr clear` texts.
//!
//! The file is `<state-dir>/pr/aptpl_<unit serial>` (LIO names it the same way), JSON with a
//! format version:
//!
//! ```text
//! {"format":"ironlun-aptpl","version":1,"unit_serial":"…","state":{<PrState>}}
//! ```
//!
//! Unlike LIO (which truncates the file in place and does not create the directory) every
//! save is atomic and durable ([`crate::persist`]), and the directory is created (mode 0700)
//! when first needed. A file that cannot be read or understood is never skipped: the device,
//! and so the daemon at start, refuses to come up naming the file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironlun_engine::{AptplStore, PrRegistration, PrState};
use serde::{Deserialize, Serialize};

use crate::model::DevKey;
use crate::persist;

/// Directory of the APTPL files inside the state directory.
pub const PR_DIR: &str = "pr";
/// The `format` field of an APTPL file.
pub const APTPL_FORMAT: &str = "ironlun-aptpl";
/// The only file format version this build reads and writes.
pub const APTPL_VERSION: u32 = 1;

/// Largest APTPL file read (a state of thousands of registrations is far smaller).
const MAX_FILE: u64 = 64 << 20;

/// `aptpl_<serial>`, with every byte outside `A-Z a-z 0-9 . _ : -` written `%XX`: a unit
/// serial may hold any printable ASCII, including `/`. (Injective, since `%` is escaped too.)
pub fn aptpl_file_name(serial: &str) -> String {
    let mut name = String::from("aptpl_");
    for b in serial.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-') {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    name
}

#[derive(Serialize)]
struct FileOut<'a> {
    format: &'a str,
    version: u32,
    unit_serial: &'a str,
    state: &'a PrState,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    #[allow(dead_code)]
    format: String,
    #[allow(dead_code)]
    version: u32,
    unit_serial: String,
    state: PrState,
}

/// The APTPL file of one device: the engine's [`AptplStore`]. Clones share one allocation
/// (the runtime and the device each hold one, for every LU).
#[derive(Clone, Debug)]
pub struct AptplFile(Arc<Names>);

#[derive(Debug)]
struct Names {
    path: PathBuf,
    serial: String,
}

impl AptplFile {
    /// The store of the device with unit serial `serial`, under `pr_dir`.
    pub fn new(pr_dir: &Path, serial: &str) -> AptplFile {
        AptplFile(Arc::new(Names {
            path: pr_dir.join(aptpl_file_name(serial)),
            serial: serial.to_string(),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// Whether the file exists (for reports; a dangling or unreadable entry counts).
    pub fn exists(&self) -> bool {
        fs::symlink_metadata(&self.0.path).is_ok()
    }

    /// Serialise `state` in the file format.
    pub fn encode(&self, state: &PrState) -> String {
        let out = FileOut {
            format: APTPL_FORMAT,
            version: APTPL_VERSION,
            unit_serial: &self.0.serial,
            state,
        };
        // Plain structs, strings and integers: serialising cannot fail.
        let mut s = serde_json::to_string_pretty(&out).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parse a file's text. Err: one line saying what is wrong (without the file name).
    pub fn decode(&self, text: &str) -> Result<PrState, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let obj = v
            .as_object()
            .ok_or("not an APTPL file (expected a JSON object)")?;
        match obj.get("format").and_then(|f| f.as_str()) {
            Some(APTPL_FORMAT) => {}
            Some(other) => {
                return Err(format!(
                    "not an APTPL file (format \"{other}\", expected \"{APTPL_FORMAT}\")"
                ))
            }
            None => {
                return Err(format!(
                    "not an APTPL file (no \"format\": \"{APTPL_FORMAT}\")"
                ))
            }
        }
        match obj.get("version").and_then(|n| n.as_u64()) {
            Some(n) if n == u64::from(APTPL_VERSION) => {}
            Some(n) => {
                return Err(format!(
                    "format version {n} is not supported (this build reads version {APTPL_VERSION})"
                ))
            }
            None => return Err("no format version (expected \"version\": 1)".into()),
        }
        let f: FileIn = serde_json::from_value(v).map_err(|e| format!("invalid content: {e}"))?;
        if f.unit_serial != self.0.serial {
            return Err(format!(
                "holds the state of unit serial '{}', not of this device's '{}'",
                f.unit_serial, self.0.serial
            ));
        }
        check_state(&f.state)?;
        Ok(f.state)
    }

    /// Read the file. `Ok(None)`: there is none. Err: one line naming the file.
    pub fn load(&self) -> Result<Option<PrState>, String> {
        let at = self.0.path.display();
        let meta = match fs::metadata(&self.0.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {at}: {e}")),
        };
        if !meta.is_file() {
            return Err(format!("{at}: not a regular file"));
        }
        if meta.len() > MAX_FILE {
            return Err(format!(
                "{at}: {} bytes is too large for an APTPL file",
                meta.len()
            ));
        }
        let text =
            fs::read_to_string(&self.0.path).map_err(|e| format!("cannot read {at}: {e}"))?;
        self.decode(&text)
            .map(Some)
            .map_err(|e| format!("{at}: {e}"))
    }

    /// Create the directory (0700) if it is missing, durably.
    fn ensure_dir(&self) -> io::Result<()> {
        let Some(dir) = self.0.path.parent() else {
            return Ok(());
        };
        if dir.is_dir() {
            return Ok(());
        }
        persist::private_dir(dir).map_err(io::Error::other)?;
        crate::failpoint::hit("aptpl", "dir-created");
        // The new directory entry must survive a crash too.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    }
}

impl AptplStore for AptplFile {
    fn save(&self, state: &PrState) -> io::Result<()> {
        self.ensure_dir()?;
        persist::write_atomic(&self.0.path, self.encode(state).as_bytes(), "aptpl")
    }

    fn clear(&self) -> io::Result<()> {
        persist::remove_durable(&self.0.path, "aptpl")
    }
}

/// What the file alone can tell is inconsistent (the engine checks the rest on restore).
fn check_state(s: &PrState) -> Result<(), String> {
    for (i, r) in s.registrations.iter().enumerate() {
        if r.initiator.is_empty() || r.target.is_empty() {
            return Err(format!(
                "registration {i}: initiator and target names must not be empty"
            ));
        }
    }
    if let Some(res) = &s.reservation {
        if res.holder >= s.registrations.len() {
            return Err(format!(
                "reservation holder {} is not one of the {} registrations",
                res.holder,
                s.registrations.len()
            ));
        }
        if !matches!(res.kind, 1 | 3 | 5 | 6 | 7 | 8) {
            return Err(format!(
                "reservation type {} is not a valid PR type",
                res.kind
            ));
        }
    }
    Ok(())
}

/// Live PR state of one device, as the control plane shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrView {
    pub state: PrState,
    /// Device attribute `emulate_pr`.
    pub emulate_pr: bool,
    /// Device attribute `force_pr_aptpl`.
    pub force_aptpl: bool,
    /// SPC-2 RESERVE holder, if any.
    pub spc2_holder: Option<String>,
    /// The device's APTPL file and whether it exists.
    pub file: PathBuf,
    pub file_present: bool,
}

/// SPC-4 initiator port name: `<name>,i,0x<isid>` (ISID as 12 lower-case hex digits), or the
/// name alone for a registration without ISID.
pub fn initiator_port(r: &PrRegistration) -> String {
    match r.isid {
        Some(isid) => {
            let hex: String = isid.iter().map(|b| format!("{b:02x}")).collect();
            format!("{},i,0x{hex}", r.initiator)
        }
        None => r.initiator.clone(),
    }
}

/// SPC-4 target port name: `<target>,t,0x<tpgt>`.
pub fn target_port(r: &PrRegistration) -> String {
    format!("{},t,0x{:04x}", r.target, r.tpgt)
}

/// LIO's names of the PR types (`core_scsi3_pr_dump_type`).
pub fn type_name(kind: u8) -> &'static str {
    match kind {
        1 => "Write Exclusive Access",
        3 => "Exclusive Access",
        5 => "Write Exclusive Access, Registrants Only",
        6 => "Exclusive Access, Registrants Only",
        7 => "Write Exclusive Access, All Registrants",
        8 => "Exclusive Access, All Registrants",
        _ => "Unknown SPC-3 Reservation Type",
    }
}

/// All-registrants types: every registrant holds the reservation (SPC-4 §5.13.10.1).
fn all_registrants(kind: u8) -> bool {
    matches!(kind, 7 | 8)
}

const NO_HOLDER: &str = "No SPC-3 Reservation holder";

/// The TPG LUN through which `key` is exported on (target, tpgt), if any.
fn lun_on(exports: &[(String, u16, u64)], target: &str, tpgt: u16) -> Option<u64> {
    exports
        .iter()
        .find(|(t, g, _)| t == target && *g == tpgt)
        .map(|(_, _, l)| *l)
}

/// The leaves of `core/<kind>_<n>/<dev>/pr/`, in LIO's formats without
/// the trailing newline. `exports`: (target, tpgt, lun) of every TPG LUN exporting the device.
pub fn tree_leaves(v: &PrView, exports: &[(String, u16, u64)]) -> Vec<(&'static str, String)> {
    let s = &v.state;
    let holder = s
        .reservation
        .as_ref()
        .and_then(|r| s.registrations.get(r.holder).map(|reg| (r, reg)));
    let res_holder = if !v.emulate_pr {
        "SPC_RESERVATIONS_DISABLED".to_string()
    } else if let Some(h) = &v.spc2_holder {
        format!("SPC-2 Reservation: iSCSI Initiator: {h}")
    } else {
        match holder {
            Some((_, reg)) => format!(
                "SPC-3 Reservation: iSCSI Initiator: {}",
                initiator_port(reg)
            ),
            None => NO_HOLDER.to_string(),
        }
    };
    let res_type = if !v.emulate_pr {
        "SPC_RESERVATIONS_DISABLED"
    } else if v.spc2_holder.is_some() {
        "SPC2_RESERVATIONS"
    } else {
        "SPC3_PERSISTENT_RESERVATIONS"
    };
    let (all_tgt_pts, holder_tg_port, pr_type) = match holder {
        None => (
            NO_HOLDER.to_string(),
            NO_HOLDER.to_string(),
            NO_HOLDER.to_string(),
        ),
        Some((res, reg)) => {
            let lun = lun_on(exports, &reg.target, reg.tpgt)
                .map(|l| format!(" iSCSI Logical Unit: {l}"))
                .unwrap_or_default();
            (
                format!(
                    "SPC-3 Reservation: {} registration",
                    if reg.all_tg_pt {
                        "All Target Ports"
                    } else {
                        "Single Target Port"
                    }
                ),
                format!(
                    "SPC-3 Reservation: iSCSI Target Node Endpoint: {}\nSPC-3 Reservation: Relative Port Identifier Tag: {} iSCSI Portal Group Tag: {}{lun}",
                    reg.target, reg.rtpi, reg.tpgt
                ),
                format!("SPC-3 Reservation Type: {}", type_name(res.kind)),
            )
        }
    };
    let mut regs = String::from("SPC-3 PR Registrations:");
    if s.registrations.is_empty() {
        regs.push_str("\nNone");
    }
    for r in &s.registrations {
        regs.push_str(&format!(
            "\niSCSI Node: {} Key: 0x{:016x} Target Port: {} RTPI: {}{}",
            initiator_port(r),
            r.key,
            target_port(r),
            r.rtpi,
            if r.all_tg_pt { " All Target Ports" } else { "" }
        ));
    }
    vec![
        (
            "res_aptpl_active",
            format!(
                "APTPL Bit Status: {}",
                if s.aptpl { "Activated" } else { "Disabled" }
            ),
        ),
        ("res_holder", res_holder),
        ("res_pr_all_tgt_pts", all_tgt_pts),
        ("res_pr_generation", format!("0x{:08x}", s.generation)),
        ("res_pr_holder_tg_port", holder_tg_port),
        ("res_pr_registered_i_pts", regs),
        ("res_pr_type", pr_type),
        ("res_type", res_type.to_string()),
    ]
}

/// Names of the `pr/` leaves.
pub const TREE_LEAVES: &[&str] = &[
    "res_aptpl_active",
    "res_holder",
    "res_pr_all_tgt_pts",
    "res_pr_generation",
    "res_pr_holder_tg_port",
    "res_pr_registered_i_pts",
    "res_pr_type",
    "res_type",
];

/// The `ironlun pr show` report (in the spirit of LIO's `tcm_node --pr`).
pub fn report(key: &DevKey, serial: &str, v: &PrView, exports: &[(String, u16, u64)]) -> String {
    let s = &v.state;
    let mut out = format!("{key} (unit serial {serial})\n");
    let mode = if !v.emulate_pr {
        "disabled (attrib/emulate_pr=0): PERSISTENT RESERVE IN/OUT are refused"
    } else if v.spc2_holder.is_some() {
        "SPC-2 reserved: PERSISTENT RESERVE IN/OUT conflict until RELEASE"
    } else {
        "SPC-3 persistent reservations"
    };
    out.push_str(&format!("  Mode:           {mode}\n"));
    if let Some(h) = &v.spc2_holder {
        out.push_str(&format!("  SPC-2 holder:   {h}\n"));
    }
    out.push_str(&format!(
        "  APTPL:          {}{}\n",
        if s.aptpl {
            "activated"
        } else {
            "not activated"
        },
        if v.force_aptpl {
            " (attrib/force_pr_aptpl=1: every change is persisted)"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "  APTPL file:     {} ({})\n",
        v.file.display(),
        if v.file_present { "present" } else { "absent" }
    ));
    out.push_str(&format!("  PRgeneration:   0x{:08x}\n", s.generation));
    let res = s.reservation.as_ref();
    match res {
        None => out.push_str("  Reservation:    none\n"),
        Some(r) => {
            let who = match s.registrations.get(r.holder) {
                Some(reg) if all_registrants(r.kind) => {
                    format!("every registrant (established by {})", initiator_port(reg))
                }
                Some(reg) => initiator_port(reg),
                None => format!("registration #{} (missing)", r.holder + 1),
            };
            out.push_str(&format!(
                "  Reservation:    {} (type {}), scope LU, held by {who}\n",
                type_name(r.kind),
                r.kind
            ));
        }
    }
    out.push_str(&format!("  Registrations:  {}\n", s.registrations.len()));
    for (i, r) in s.registrations.iter().enumerate() {
        let holder = res.is_some_and(|x| x.holder == i || all_registrants(x.kind));
        let lun = lun_on(exports, &r.target, r.tpgt)
            .map(|l| format!(", LUN {l}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "    #{}{}\n      key:            0x{:016x}\n      initiator port: {}\n      target port:    {} (RTPI {}{lun})\n      all_tg_pt:      {}\n",
            i + 1,
            if holder { "  [reservation holder]" } else { "" },
            r.key,
            initiator_port(r),
            target_port(r),
            r.rtpi,
            u8::from(r.all_tg_pt),
        ));
    }
    out
}

/// The `pr clear` reply: what was dropped, one registration per line.
pub fn cleared_text(key: &DevKey, s: &PrState) -> String {
    let mut out = format!("cleared {key}: dropped {}", headline(s));
    for r in &s.registrations {
        out.push_str(&format!("\n  {}", registration_line(r)));
    }
    out
}

fn registration_line(r: &PrRegistration) -> String {
    format!(
        "{} via {} key 0x{:016x}{}",
        initiator_port(r),
        target_port(r),
        r.key,
        if r.all_tg_pt { " all_tg_pt" } else { "" }
    )
}

fn headline(s: &PrState) -> String {
    let res = match &s.reservation {
        None => "no reservation".to_string(),
        Some(r) => format!(
            "reservation {} (type {}) held by {}",
            type_name(r.kind),
            r.kind,
            s.registrations
                .get(r.holder)
                .map_or_else(|| format!("#{}", r.holder + 1), initiator_port)
        ),
    };
    format!(
        "PRgeneration 0x{:08x}, APTPL {}, {res}, {} registration(s)",
        s.generation,
        if s.aptpl { "on" } else { "off" },
        s.registrations.len(),
    )
}

/// One line describing `s`, for logs.
pub fn summary(s: &PrState) -> String {
    let regs: Vec<String> = s.registrations.iter().map(registration_line).collect();
    if regs.is_empty() {
        headline(s)
    } else {
        format!("{}: {}", headline(s), regs.join("; "))
    }
}

#[cfg(test)]
mod tests;
