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

/// What one path contributes: its map key and the path.
struct Examined {
    wwid: String,
    vendor: String,
    product: String,
    alua: bool,
    /// (group id, PREF) of every descriptor this path's RTPG returned (none when its port
    /// refused RTPG).
    reported: Vec<(u16, bool)>,
    path: PathJson,
}

async fn examine(ctx: &Ctx, url: IscsiUrl) -> Result<Examined> {
    let lu = ctx.open(&url).await?;
    let res = examine_lu(ctx, &lu).await;
    ctx.logout(&lu.session).await;
    res
}

async fn examine_lu(ctx: &Ctx, lu: &crate::ctx::Lu) -> Result<Examined> {
    let url = &lu.url;
    let view = read_alua(ctx, lu, OnTransitioning::Report).await?;
    let wwid = wwid(&view.ident).ok_or_else(|| {
        HostError::new(format!(
            "{url}: VPD 0x83 has no logical unit designator to name it by (NAA, EUI-64, SCSI \
             name or T10 vendor ID)"
        ))
    })?;
    let alua = view.tpgs.implicit || view.tpgs.explicit;
    let (state, pref) = if alua {
        let st = view.own_state().ok_or_else(|| {
            HostError::new(format!(
                "{url}: REPORT TARGET PORT GROUPS does not list this path's target port group \
                 {}",
                view.this_port
                    .target_port_group
                    .map_or("(none in VPD 0x83)".to_string(), |g| format!("{g:#x}"))
            ))
        })?;
        // A port refusing RTPG (state_from_sense) sent no descriptor: its PREF comes from
        // another path's report when the map is assembled.
        let pref = view.state_from_sense.is_none() && view.own_group().is_some_and(|g| g.pref);
        (Some(st), pref)
    } else {
        (None, false)
    };
    let checker = tur_checker(ctx, lu).await?;
    let priority = match state {
        Some(st) => alua_priority(st, pref, false),
        None => 1,
    };
    let dm_active = checker != Checker::Faulty;
    let reported = view
        .report
        .as_ref()
        .map(|r| r.groups.iter().map(|g| (g.group_id, g.pref)).collect())
        .unwrap_or_default();
    Ok(Examined {
        wwid,
        vendor: ascii_field(&lu.inquiry[8..16]),
        product: ascii_field(&lu.inquiry[16..32]),
        alua,
        reported,
        path: PathJson {
            url: url.to_string(),
            target_port_group: view.this_port.target_port_group,
            relative_target_port: view.this_port.relative_target_port,
            state: state.map_or("active/optimized", mp_state_name),
            state_code: state.map(AccessState::code),
            pref,
            priority,
            dm_state: if dm_active { "active" } else { "failed" },
            checker,
            in_service: dm_active,
        },
    })
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
        if r.status == status::GOOD || r.status == status::RESERVATION_CONFLICT {
            return Ok(Checker::Ready);
        }
        match r.sense {
            Some(s) if s.key == key::UNIT_ATTENTION => continue,
            Some(s) if s.key == key::NOT_READY && s.asc.asc == 0x04 && s.asc.ascq == 0x0B => {
                return Ok(Checker::Ghost)
            }
            _ => return Ok(Checker::Faulty),
        }
    }
    Ok(Checker::Faulty)
}

/// A path whose port refused RTPG learns its group's PREF from another path of the same LU
/// that reported the group, as scsi_dh_alua updates every port group an RTPG lists.
fn share_reports(mut paths: Vec<Examined>) -> Vec<Examined> {
    let known: Vec<(u16, bool)> = paths.iter().flat_map(|e| e.reported.clone()).collect();
    for e in paths.iter_mut().filter(|e| e.reported.is_empty()) {
        let (Some(g), Some(code)) = (e.path.target_port_group, e.path.state_code) else {
            continue;
        };
        if let Some(&(_, pref)) = known.iter().find(|(id, _)| *id == g) {
            e.path.pref = pref;
            e.path.priority = alua_priority(AccessState::from_code(code), pref, false);
        }
    }
    paths
}

/// Group examined paths into maps and path groups (module docs).
fn assemble(found: Vec<Examined>) -> Vec<MapJson> {
    let mut by_wwid: BTreeMap<String, Vec<Examined>> = BTreeMap::new();
    for e in found {
        by_wwid.entry(e.wwid.clone()).or_default().push(e);
    }
    let mut maps = Vec::new();
    for (wwid, paths) in by_wwid {
        let (vendor, product) = (paths[0].vendor.clone(), paths[0].product.clone());
        let alua = paths.iter().any(|p| p.alua);
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
        // One session per path, all open at once: each its own ISID (as open-iscsi gives each
        // session), so two portals of one portal group are two I_T nexuses, not a
        // reinstatement.
        let mut ctx = ctx.clone();
        let q = u16::try_from(i).unwrap_or(u16::MAX).wrapping_add(0x1000);
        ctx.isid[4..6].copy_from_slice(&q.to_be_bytes());
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
            wwid: "36001".into(),
            vendor: "V".into(),
            product: "P".into(),
            alua: true,
            reported: vec![(1, pref)],
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
        off.reported.clear();
        let mut east = path("e", AccessState::ActiveOptimized, false, Checker::Ready);
        east.path.target_port_group = Some(2);
        east.reported = vec![(1, true), (2, false)];
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
