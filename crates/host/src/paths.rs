//! `ironlun host paths`: the multipath view of several URLs, like `multipath -ll`.
//!
//! Each URL is one path. Paths whose logical units carry the same identity are one map, named
//! the way Linux names a WWID (udev's scsi_id on VPD 0x83, SPC-4 §7.8.6: the designator type
//! as a hex digit, then the designator: `3` + NAA in hex, `2` + EUI-64, `8` + SCSI name
//! string, `1` + T10 vendor ID). Within a map the paths are grouped by priority, as
//! multipath-tools' `group_by_prio` does with the ALUA prioritizer
//! ([`alua_priority`]); a group's priority is the mean over its paths that are up or ghost,
//! and the best group is the active one. Each path's checker state is what multipath-tools'
//! `tur` checker makes of TEST UNIT READY: GOOD (or RESERVATION CONFLICT) is ready, NOT READY
//! 04h/0Bh (standby) is ghost, anything else is faulty; a faulty path is failed in the map. A
//! path whose LU has no TPGS gets the constant prioritizer's 1 and no hardware handler.

use std::collections::BTreeMap;

use clap::Args;
use ironlun_initiator::alua::alua_priority;
use ironlun_initiator::scsi::cdb;
use ironlun_scsi::alua::AccessState;
use ironlun_scsi::sense::key;
use ironlun_scsi::status;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::inquiry::vpd_ident::{Designation, Designator, DeviceIdentification};
use crate::output::ascii_field;
use crate::rtpg::{read_alua, OnTransitioning};
use crate::url::IscsiUrl;
use crate::{HostError, Result};

#[derive(Args, Debug)]
pub struct PathsArgs {
    /// iscsi:// URLs, one per path
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,
}

/// multipath-tools' checker states as `multipath -ll` prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Checker {
    Ready,
    Ghost,
    Faulty,
}

/// What TEST UNIT READY's outcome makes of a path (the tur checker): GOOD or RESERVATION
/// CONFLICT ready, NOT READY 04h/0Bh ghost (standby), a UNIT ATTENTION `None` (ask again),
/// anything else faulty.
pub fn tur_verdict(r: &ironlun_initiator::CommandResult) -> Option<Checker> {
    if r.status == status::GOOD || r.status == status::RESERVATION_CONFLICT {
        return Some(Checker::Ready);
    }
    match r.sense {
        Some(s) if s.key == key::UNIT_ATTENTION => None,
        Some(s) if s.key == key::NOT_READY && s.asc.asc == 0x04 && s.asc.ascq == 0x0B => {
            Some(Checker::Ghost)
        }
        _ => Some(Checker::Faulty),
    }
}

/// One examined path.
#[derive(Clone, Debug, Serialize)]
pub struct PathJson {
    pub url: String,
    pub target_port_group: Option<u16>,
    pub relative_target_port: Option<u16>,
    /// The access state in multipath-tools' words ("active/optimized", "standby", …);
    /// "active/optimized" without TPGS.
    pub state: &'static str,
    pub state_code: Option<u8>,
    pub pref: bool,
    pub priority: u32,
    /// "active" or "failed" (the device-mapper path state).
    pub dm_state: &'static str,
    pub checker: Checker,
    pub in_service: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct PathGroupJson {
    pub priority: u32,
    /// "active" for the group in use, "enabled" for the others.
    pub status: &'static str,
    pub paths: Vec<PathJson>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MapJson {
    pub wwid: String,
    pub vendor: String,
    pub product: String,
    /// "alua" when the LU reports TPGS, else "none".
    pub hwhandler: &'static str,
    pub path_groups: Vec<PathGroupJson>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FailedJson {
    pub url: String,
    pub error: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PathsJson {
    pub maps: Vec<MapJson>,
    pub failed: Vec<FailedJson>,
}

/// The LU's WWID as Linux names it (module docs), from the designators of association
/// "logical unit"; `None` if it has none usable.
pub fn wwid(id: &DeviceIdentification) -> Option<String> {
    // udev's scsi_id order: NAA IEEE Registered Extended, IEEE Registered, any NAA, EUI-64,
    // then (newer udev) the SCSI name string, then T10 vendor identification.
    for want in [Some(6u8), Some(5), None] {
        for d in id.with_association(0) {
            if let Designator::Naa { naa, .. } = d.designator {
                if want.is_none_or(|w| w == naa) {
                    return Some(format!("3{}", d.hex));
                }
            }
        }
    }
    let first = |f: &dyn Fn(&Designation) -> Option<String>| id.with_association(0).find_map(f);
    first(&|d| matches!(d.designator, Designator::Eui64 { .. }).then(|| format!("2{}", d.hex)))
        .or_else(|| {
            first(&|d| match &d.designator {
                Designator::ScsiNameString { name } => Some(format!("8{name}")),
                _ => None,
            })
        })
        .or_else(|| {
            first(&|d| match &d.designator {
                Designator::T10VendorId {
                    vendor_id,
                    vendor_specific,
                } => Some(format!(
                    "1{}{}",
                    vendor_id.trim_end(),
                    vendor_specific.trim_end().replace(' ', "_")
                )),
                _ => None,
            })
        })
}

/// multipath-tools' words for an access state (libmultipath/prioritizers/alua.c).
pub fn mp_state_name(s: AccessState) -> &'static str {
    match s {
        AccessState::ActiveOptimized => "active/optimized",
        AccessState::ActiveNonOptimized => "active/non-optimized",
        AccessState::Standby => "standby",
        AccessState::Unavailable => "unavailable",
        AccessState::LbaDependent => "lba dependent",
        AccessState::Offline => "offline",
        AccessState::Transitioning => "transitioning between states",
        AccessState::Reserved(_) => "invalid/reserved",
    }
}

/// What one path contributes: its view (the map key is its WWID) and the path.
struct Examined {
    vendor: String,
    product: String,
    view: View,
    path: PathJson,
}

async fn examine(ctx: &Ctx, url: IscsiUrl) -> Result<Examined> {
    let lu = ctx.open(&url).await?;
    let res = examine_lu(ctx, &lu).await;
    ctx.logout(&lu.session).await;
    res
}

async fn examine_lu(ctx: &Ctx, lu: &crate::ctx::Lu) -> Result<Examined> {
    let v = read_view(ctx, lu).await?;
    let checker = tur_checker(ctx, lu).await?;
    let priority = match v.state {
        Some(st) => alua_priority(st, v.pref, false),
        None => 1,
    };
    let dm_active = checker != Checker::Faulty;
    Ok(Examined {
        vendor: ascii_field(&lu.inquiry[8..16]),
        product: ascii_field(&lu.inquiry[16..32]),
        path: PathJson {
            url: lu.url.to_string(),
            target_port_group: v.group,
            relative_target_port: v.relative_target_port,
            state: v.state.map_or("active/optimized", mp_state_name),
            state_code: v.state.map(AccessState::code),
            pref: v.pref,
            priority,
            dm_state: if dm_active { "active" } else { "failed" },
            checker,
            in_service: dm_active,
        },
        view: v,
    })
}

/// What one path learnt from VPD 0x83 and REPORT TARGET PORT GROUPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub wwid: String,
    pub alua: bool,
    pub explicit: bool,
    pub group: Option<u16>,
    pub relative_target_port: Option<u16>,
    /// `None` without TPGS.
    pub state: Option<AccessState>,
    pub pref: bool,
    /// The IMPLICIT TRANSITION TIME of the extended header, if the target sent it.
    pub transition_secs: Option<u8>,
    /// Every (group, state, PREF) the report listed.
    pub reported: Vec<(u16, AccessState, bool)>,
    /// The port refused RTPG with its state (no descriptor from it).
    pub refused: bool,
}

/// Read one path's view: its LU's WWID, its group and relative port, the access state (from
/// the report, or from a NOT READY refusal of it), PREF and every group the report listed.
pub async fn read_view(ctx: &Ctx, lu: &crate::ctx::Lu) -> Result<View> {
    let v = read_alua(ctx, lu, OnTransitioning::Report).await?;
    let wwid = wwid(&v.ident).ok_or_else(|| {
        HostError::new(format!(
            "{}: VPD 0x83 has no logical unit designator to name it by (NAA, EUI-64, SCSI \
             name or T10 vendor ID)",
            lu.url
        ))
    })?;
    let alua = v.tpgs.implicit || v.tpgs.explicit;
    let transition_secs = v.report.as_ref().and_then(|r| match r.format {
        ironlun_initiator::alua::RtpgFormat::Extended {
            implicit_transition_secs,
        } => Some(implicit_transition_secs),
        ironlun_initiator::alua::RtpgFormat::LengthOnly => None,
    });
    let state = if alua {
        Some(v.own_state().ok_or_else(|| {
            HostError::new(format!(
                "{}: REPORT TARGET PORT GROUPS does not list this path's target port group {}",
                lu.url,
                v.this_port
                    .target_port_group
                    .map_or("(none in VPD 0x83)".to_string(), |g| format!("{g:#x}"))
            ))
        })?)
    } else {
        None
    };
    Ok(View {
        wwid,
        alua,
        explicit: v.tpgs.explicit,
        group: v.this_port.target_port_group,
        relative_target_port: v.this_port.relative_target_port,
        state,
        pref: v.state_from_sense.is_none() && v.own_group().is_some_and(|g| g.pref),
        transition_secs,
        reported: v
            .report
            .as_ref()
            .map(|r| {
                r.groups
                    .iter()
                    .map(|g| (g.group_id, g.state, g.pref))
                    .collect()
            })
            .unwrap_or_default(),
        refused: v.state_from_sense.is_some(),
    })
}

/// The PREF of `group` as another path's report gives it: a port that refused RTPG learns
/// its group's PREF so, as scsi_dh_alua updates every port group an RTPG lists.
pub fn reported_pref(group: Option<u16>, known: &[(u16, AccessState, bool)]) -> Option<bool> {
    let g = group?;
    known
        .iter()
        .find(|(id, ..)| *id == g)
        .map(|&(.., pref)| pref)
}

/// multipath-tools' tur checker: TEST UNIT READY, unit attentions retried (up to 5 tries).
async fn tur_checker(ctx: &Ctx, lu: &crate::ctx::Lu) -> Result<Checker> {
    let what = format!("TEST UNIT READY to {}", lu.url);
    for _ in 0..5 {
        let r = ctx
            .command(
                &lu.session,
                lu.url.lun,
                &cdb::test_unit_ready(),
                None,
                0,
                &what,
            )
            .await?;
        if let Some(c) = tur_verdict(&r) {
            return Ok(c);
        }
    }
    Ok(Checker::Faulty)
}

/// A path whose port refused RTPG learns its group's PREF from another path of the same LU
/// that reported the group, as scsi_dh_alua updates every port group an RTPG lists.
fn share_reports(mut paths: Vec<Examined>) -> Vec<Examined> {
    let known: Vec<(u16, AccessState, bool)> =
        paths.iter().flat_map(|e| e.view.reported.clone()).collect();
    for e in paths.iter_mut().filter(|e| e.view.refused) {
        let (Some(st), Some(pref)) = (e.view.state, reported_pref(e.view.group, &known)) else {
            continue;
        };
        e.path.pref = pref;
        e.path.priority = alua_priority(st, pref, false);
    }
    paths
}

/// Group examined paths into maps and path groups (module docs).
fn assemble(found: Vec<Examined>) -> Vec<MapJson> {
    let mut by_wwid: BTreeMap<String, Vec<Examined>> = BTreeMap::new();
    for e in found {
        by_wwid.entry(e.view.wwid.clone()).or_default().push(e);
    }
    let mut maps = Vec::new();
    for (wwid, paths) in by_wwid {
        let (vendor, product) = (paths[0].vendor.clone(), paths[0].product.clone());
        let alua = paths.iter().any(|p| p.view.alua);
        let paths = share_reports(paths);
        let mut by_prio: BTreeMap<u32, Vec<PathJson>> = BTreeMap::new();
        for e in paths {
            by_prio.entry(e.path.priority).or_default().push(e.path);
        }
        let mut groups: Vec<PathGroupJson> = by_prio
            .into_values()
            .map(|paths| {
                let up: Vec<u32> = paths
                    .iter()
                    .filter(|p| p.in_service)
                    .map(|p| p.priority)
                    .collect();
                let priority = if up.is_empty() {
                    0
                } else {
                    up.iter().sum::<u32>() / u32::try_from(up.len()).unwrap_or(1)
                };
                PathGroupJson {
                    priority,
                    status: "enabled",
                    paths,
                }
            })
            .collect();
        // multipath-tools sorts path groups by priority, then by usable paths, best first.
        groups.sort_by_key(|g| {
            let usable = g.paths.iter().filter(|p| p.in_service).count();
            (std::cmp::Reverse(g.priority), std::cmp::Reverse(usable))
        });
        if let Some(first) = groups
            .iter_mut()
            .find(|g| g.paths.iter().any(|p| p.in_service))
        {
            first.status = "active";
        }
        maps.push(MapJson {
            wwid,
            vendor,
            product,
            hwhandler: if alua { "alua" } else { "none" },
            path_groups: groups,
        });
    }
    maps
}

/// `multipath -ll`'s layout, with URLs where it has devices.
pub fn render(v: &PathsJson) -> String {
    let mut t = String::new();
    for m in &v.maps {
        t.push_str(&format!("{} {},{}\n", m.wwid, m.vendor, m.product));
        let hw = if m.hwhandler == "alua" { "1 alua" } else { "0" };
        t.push_str(&format!("hwhandler='{hw}'\n"));
        let ng = m.path_groups.len();
        for (gi, g) in m.path_groups.iter().enumerate() {
            let last_g = gi + 1 == ng;
            t.push_str(&format!(
                "{}-+- prio={} status={}\n",
                if last_g { "`" } else { "|" },
                g.priority,
                g.status
            ));
            let np = g.paths.len();
            for (pi, p) in g.paths.iter().enumerate() {
                let lead = if last_g { " " } else { "|" };
                let branch = if pi + 1 == np { "`" } else { "|" };
                let ids = match (p.target_port_group, p.relative_target_port) {
                    (Some(g), Some(r)) => format!(" tpg={g:#x} rtpi={r:#x}"),
                    _ => String::new(),
                };
                t.push_str(&format!(
                    "{lead} {branch}- {}{ids} {}{} prio={} {} {}\n",
                    p.url,
                    p.state,
                    if p.pref { " pref" } else { "" },
                    p.priority,
                    p.dm_state,
                    match p.checker {
                        Checker::Ready => "ready",
                        Checker::Ghost => "ghost",
                        Checker::Faulty => "faulty",
                    }
                ));
            }
        }
    }
    if v.maps.is_empty() {
        t.push_str("no path could be examined\n");
    }
    // Failed paths go to stderr, one line each (the CLI prints `failures`).
    t
}

pub async fn run(ctx: &Ctx, a: &PathsArgs) -> Result<crate::output::Output> {
    let urls = a
        .urls
        .iter()
        .map(|u| IscsiUrl::parse(u))
        .collect::<Result<Vec<_>>>()?;
    let mut set = tokio::task::JoinSet::new();
    for (i, u) in urls.iter().enumerate() {
        let ctx = ctx.for_path(0x1000, i);
        let u = u.clone();
        set.spawn(async move { (i, examine(&ctx, u).await) });
    }
    let mut results: Vec<Option<Result<Examined>>> = (0..urls.len()).map(|_| None).collect();
    while let Some(j) = set.join_next().await {
        match j {
            Ok((i, r)) => results[i] = Some(r),
            Err(e) => return Err(HostError::new(format!("paths: a path task failed: {e}"))),
        }
    }
    let (mut found, mut failed) = (Vec::new(), Vec::new());
    for (u, r) in urls.iter().zip(results) {
        match r {
            Some(Ok(e)) => found.push(e),
            Some(Err(e)) => failed.push(FailedJson {
                url: u.to_string(),
                error: e.0,
            }),
            None => failed.push(FailedJson {
                url: u.to_string(),
                error: "not examined".into(),
            }),
        }
    }
    let v = PathsJson {
        maps: assemble(found),
        failed,
    };
    let mut out = crate::output::Output::from_serialize(render(&v), &v);
    out.failures = v
        .failed
        .iter()
        .map(|f| format!("path {}: {}", f.url, f.error))
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inquiry::vpd_ident::decode_device_id;

    /// A VPD 0x83 page of these (code set, PIV/association/type byte, designator) descriptors.
    fn page(descs: &[(u8, u8, &[u8])]) -> DeviceIdentification {
        let mut p = vec![0, 0x83, 0, 0];
        for (cs, kind, d) in descs {
            p.extend_from_slice(&[*cs, *kind, 0, u8::try_from(d.len()).unwrap()]);
            p.extend_from_slice(d);
        }
        let n = u16::try_from(p.len() - 4).unwrap().to_be_bytes();
        p[2..4].copy_from_slice(&n);
        decode_device_id(&p).unwrap()
    }

    #[test]
    fn wwid_prefers_registered_extended_naa_of_the_lu() {
        let naa6 = [
            0x60, 0x01, 0x40, 0x05, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ];
        let naa3 = [0x30, 1, 2, 3, 4, 5, 6, 7];
        let name = b"iqn.x:lu\0\0\0\0";
        let id = page(&[
            (0x03, 0x08, name),
            (0x01, 0x03, &naa3),
            // A target port's NAA never names the LU.
            (0x51, 0x93, &[0x6f; 16]),
            (0x01, 0x03, &naa6),
        ]);
        assert_eq!(wwid(&id).unwrap(), "3600140050102030405060708090a0b0c");
        let id = page(&[(0x03, 0x08, name), (0x01, 0x03, &naa3)]);
        assert_eq!(wwid(&id).unwrap(), "33001020304050607");
        let id = page(&[(0x03, 0x08, b"naa.6001405\0")]);
        assert_eq!(wwid(&id).unwrap(), "8naa.6001405");
        let id = page(&[(
            0x01,
            0x02,
            &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
        )]);
        assert_eq!(wwid(&id).unwrap(), "21122334455667788");
        assert_eq!(wwid(&page(&[(0x51, 0x94, &[0, 0, 0, 1])])), None);
    }

    fn path(url: &str, state: AccessState, pref: bool, checker: Checker) -> Examined {
        Examined {
            vendor: "V".into(),
            product: "P".into(),
            view: View {
                wwid: "36001".into(),
                alua: true,
                explicit: false,
                group: Some(1),
                relative_target_port: Some(1),
                state: Some(state),
                pref,
                transition_secs: None,
                reported: vec![(1, state, pref)],
                refused: false,
            },
            path: PathJson {
                url: url.into(),
                target_port_group: Some(1),
                relative_target_port: Some(1),
                state: mp_state_name(state),
                state_code: Some(state.code()),
                pref,
                priority: alua_priority(state, pref, false),
                dm_state: if checker == Checker::Faulty {
                    "failed"
                } else {
                    "active"
                },
                checker,
                in_service: checker != Checker::Faulty,
            },
        }
    }

    #[test]
    fn groups_by_priority_best_first_and_failed_paths_weigh_nothing() {
        let maps = assemble(vec![
            path("a", AccessState::ActiveNonOptimized, false, Checker::Ready),
            path("b", AccessState::ActiveOptimized, false, Checker::Ready),
            path("c", AccessState::ActiveOptimized, false, Checker::Ready),
            path("d", AccessState::Unavailable, false, Checker::Faulty),
        ]);
        assert_eq!(maps.len(), 1);
        let g = &maps[0].path_groups;
        let summary: Vec<(u32, &str, Vec<&str>)> = g
            .iter()
            .map(|g| {
                (
                    g.priority,
                    g.status,
                    g.paths.iter().map(|p| p.url.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (50, "active", vec!["b", "c"]),
                (10, "enabled", vec!["a"]),
                (0, "enabled", vec!["d"]),
            ]
        );
        assert_eq!(maps[0].hwhandler, "alua");
    }

    #[test]
    fn a_preferred_standby_group_outranks_an_unpreferred_optimized_one() {
        // multipath-tools: standby 1 + PREF 80 = 81 > 50 (AO without PREF).
        let maps = assemble(vec![
            path("s", AccessState::Standby, true, Checker::Ghost),
            path("o", AccessState::ActiveOptimized, false, Checker::Ready),
        ]);
        let g = &maps[0].path_groups;
        assert_eq!((g[0].priority, g[0].paths[0].url.as_str()), (81, "s"));
        assert_eq!(g[0].status, "active");
    }

    #[test]
    fn a_port_refusing_rtpg_takes_its_groups_pref_from_another_paths_report() {
        let mut off = path("w", AccessState::Offline, false, Checker::Faulty);
        off.view.reported.clear();
        off.view.refused = true;
        let mut east = path("e", AccessState::ActiveOptimized, false, Checker::Ready);
        east.path.target_port_group = Some(2);
        east.view.group = Some(2);
        east.view.reported = vec![
            (1, AccessState::Offline, true),
            (2, AccessState::ActiveOptimized, false),
        ];
        let maps = assemble(vec![off, east]);
        let w = maps[0]
            .path_groups
            .iter()
            .flat_map(|g| &g.paths)
            .find(|p| p.url == "w")
            .unwrap();
        assert!(w.pref);
        assert_eq!(w.priority, 80);
    }
}
