//! LIO's APTPL files (SPC-4 §5.13.5, "Activate Persist Through Power Loss") → ironlun's
//! [`PrState`]. LIO writes `<dbroot>/pr/aptpl_<unit serial>` from target_core_pr.c
//! `core_scsi3_update_and_write_aptpl` / `__core_scsi3_write_aptpl_to_file`: one block per
//! registration,
//!
//! ```text
//! PR_REG_START: 0
//! initiator_fabric=iSCSI
//! initiator_node=iqn.1994-05.com.redhat:host1
//! initiator_sid=23d000000001            (only when registered with an ISID)
//! sa_res_key=1311768467294899695        (decimal)
//! res_holder=1
//! res_type=03                           (hex, holder only)
//! res_scope=00                          (hex, holder only)
//! res_all_tg_pt=0
//! mapped_lun=0
//! target_fabric=iSCSI
//! target_node=iqn.2003-01.org.linux-iscsi.host:sn.1
//! tpgt=1
//! port_rtpi=1
//! target_lun=0
//! PR_REG_END: 0
//! ```
//!
//! or the text `No Registrations or Reservations`. The keys are the ones the kernel's
//! `res_aptpl_metadata` configfs store parses. A registration's target port is found by
//! target name and TPGT in the imported config, which gives it ironlun's RTPI.

use std::collections::BTreeMap;

use ironlun_engine::{PrRegistration, PrReservation, PrState};

use super::Report;
use crate::model::Config;

/// Registration keys this converter reads; others are reported.
const KEYS: &[&str] = &[
    "initiator_fabric",
    "initiator_node",
    "initiator_sid",
    "sa_res_key",
    "res_holder",
    "res_type",
    "res_scope",
    "res_all_tg_pt",
    "mapped_lun",
    "target_fabric",
    "target_node",
    "tpgt",
    "port_rtpi",
    "target_lun",
];

/// Parse the text of LIO's `aptpl_<serial>` (named `at` in messages). `Ok(None)`: nothing
/// registered. Err: one line naming the line or key.
pub fn parse(
    at: &str,
    text: &str,
    cfg: &Config,
    report: &mut Report,
) -> Result<Option<PrState>, String> {
    let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if text.is_empty() || text == "No Registrations or Reservations" {
        return Ok(None);
    }
    let mut blocks: Vec<BTreeMap<String, String>> = Vec::new();
    let mut cur: Option<BTreeMap<String, String>> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let lat = format!("{at} line {}", n + 1);
        if line.is_empty() {
            continue;
        }
        if line.starts_with("PR_REG_START:") {
            if cur.is_some() {
                return Err(format!(
                    "{lat}: PR_REG_START inside a registration (no PR_REG_END before it)"
                ));
            }
            cur = Some(BTreeMap::new());
        } else if line.starts_with("PR_REG_END:") {
            blocks.push(
                cur.take()
                    .ok_or_else(|| format!("{lat}: PR_REG_END without PR_REG_START"))?,
            );
        } else {
            let block = cur
                .as_mut()
                .ok_or_else(|| format!("{lat}: '{line}' is outside PR_REG_START/PR_REG_END"))?;
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("{lat}: expected key=value, found '{line}'"))?;
            block.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    if cur.is_some() {
        return Err(format!("{at}: the last registration has no PR_REG_END"));
    }
    let mut state = PrState {
        generation: 0,
        aptpl: true,
        registrations: Vec::new(),
        reservation: None,
    };
    for (i, b) in blocks.iter().enumerate() {
        let rat = format!("{at} registration {i}");
        for k in b.keys() {
            if !KEYS.contains(&k.as_str()) {
                report.push(&rat, format!("key '{k}' is unknown and not carried"));
            }
        }
        let get = |k: &str| {
            b.get(k)
                .map(String::as_str)
                .ok_or_else(|| format!("{rat}: {k} is missing"))
        };
        let fabric = get("initiator_fabric")?;
        let tfabric = b.get("target_fabric").map_or(fabric, String::as_str);
        if !fabric.eq_ignore_ascii_case("iscsi") || !tfabric.eq_ignore_ascii_case("iscsi") {
            report.push(
                &rat,
                format!("fabric {fabric}: ironlun serves iSCSI only; registration skipped"),
            );
            continue;
        }
        let initiator = get("initiator_node")?.to_string();
        let isid = match b.get("initiator_sid") {
            None => None,
            Some(s) => Some(
                parse_isid(s)
                    .ok_or_else(|| format!("{rat}: initiator_sid '{s}' is not 12 hex digits"))?,
            ),
        };
        let key = parse_num(get("sa_res_key")?, 10)
            .ok_or_else(|| format!("{rat}: sa_res_key is not a number"))?;
        let holder = flag(&rat, b, "res_holder")?;
        let all_tg_pt = flag(&rat, b, "res_all_tg_pt")?;
        let target = get("target_node")?.to_string();
        let tpgt = parse_num(get("tpgt")?, 10)
            .and_then(|t| u16::try_from(t).ok())
            .ok_or_else(|| format!("{rat}: tpgt is not 0-65535"))?;
        let Some(rtpi) = cfg
            .target(&target)
            .and_then(|t| t.tpg(tpgt))
            .map(|g| g.rtpi)
        else {
            report.push(&rat, format!("target port {target},t,0x{tpgt:04x} is not in the imported config; registration of {initiator} skipped{}", if holder { " and with it the reservation" } else { "" }));
            continue;
        };
        if holder {
            let kind = parse_num(get("res_type")?, 16)
                .and_then(|t| u8::try_from(t).ok())
                .filter(|t| matches!(t, 1 | 3 | 5 | 6 | 7 | 8))
                .ok_or_else(|| {
                    format!("{rat}: res_type is not a PR type (01, 03, 05, 06, 07 or 08)")
                })?;
            let scope = b
                .get("res_scope")
                .and_then(|s| parse_num(s, 16))
                .unwrap_or(0);
            if scope != 0 {
                return Err(format!("{rat}: res_scope {scope:02x} is not LU_SCOPE (00)"));
            }
            if state.reservation.is_some() {
                return Err(format!("{rat}: a second reservation holder"));
            }
            state.reservation = Some(PrReservation {
                holder: state.registrations.len(),
                kind,
            });
        }
        state.registrations.push(PrRegistration {
            key,
            initiator,
            isid,
            target,
            tpgt,
            rtpi,
            all_tg_pt,
        });
    }
    if state.registrations.is_empty() {
        return Ok(None);
    }
    Ok(Some(state))
}

fn flag(at: &str, b: &BTreeMap<String, String>, k: &str) -> Result<bool, String> {
    match b.get(k).map(String::as_str) {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(v) => Err(format!("{at}: {k}={v} is not 0 or 1")),
    }
}

/// A number as the kernel's kstrtoull(…, 0) reads it (0x… hex) or in `radix`.
fn parse_num(s: &str, radix: u32) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => u64::from_str_radix(s, radix).ok(),
    }
}

/// iSCSI's ISID as LIO prints it (`%6phN`: 12 hex digits), with or without `0x`.
fn parse_isid(s: &str) -> Option<[u8; 6]> {
    let h = s.strip_prefix("0x").unwrap_or(s);
    if h.len() != 12 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 6];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// One device's imported state, sent with [`crate::service::Request::ApplyConfig`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AptplImport {
    /// The device's unit serial (its `wwn`).
    pub serial: String,
    pub state: PrState,
}
