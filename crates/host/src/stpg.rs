//! `ironlun host stpg`: SET TARGET PORT GROUPS (SPC-4 §6.44) like sg_stpg: one descriptor per
//! `--group`/`--state` pair, sent in one command, then the report read back.

use clap::Args;
use ironlun_initiator::alua::StpgDescriptor;
use ironlun_scsi::alua::AccessState;
use ironlun_scsi::sense::key;
use ironlun_scsi::status;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::error::scsi_failure;
use crate::output::Output;
use crate::rtpg::{read_alua, render, state_name, GroupJson, OnTransitioning, MAX_UNIT_ATTENTIONS};
use crate::url::IscsiUrl;
use crate::{HostError, Result};

#[derive(Args, Debug)]
pub struct StpgArgs {
    /// iscsi://[user[%secret]@]host[:port]/target-iqn/lun
    pub url: String,
    /// Target port group id, decimal or 0x-hex (repeat for several groups); with state o,
    /// a relative target port identifier (SPC-4 Table 246)
    #[arg(long = "group", short = 'g', value_name = "ID", required = true)]
    pub groups: Vec<String>,
    /// ao, ano, s, u, lbd or o (or the code): one per --group, or one for all
    #[arg(long = "state", short = 's', value_name = "STATE", required = true)]
    pub states: Vec<String>,
}

/// The descriptors the arguments ask for; Err: one line naming the bad value.
pub fn descriptors(groups: &[String], states: &[String]) -> Result<Vec<StpgDescriptor>> {
    if states.len() != 1 && states.len() != groups.len() {
        return Err(HostError::new(format!(
            "--state: {} given for {} --group; give one state for all or one per group",
            states.len(),
            groups.len()
        )));
    }
    let mut out = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let id = parse_id(g)?;
        let st = &states[if states.len() == 1 { 0 } else { i }];
        let state = parse_state(st)?;
        out.push(match state {
            AccessState::Offline => StpgDescriptor::Offline { rtpi: id },
            state => StpgDescriptor::Primary { group: id, state },
        });
    }
    Ok(out)
}

fn parse_id(v: &str) -> Result<u16> {
    let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u16::from_str_radix(h, 16).ok(),
        None => v.parse::<u16>().ok(),
    };
    n.ok_or_else(|| HostError::bad_value("--group", v, "valid: 0-65535 (decimal or 0x-hex)"))
}

/// A state sg_stpg's way (`an` for active/non-optimized too) or ours.
fn parse_state(v: &str) -> Result<AccessState> {
    let valid = "valid: ao, ano (an), s, u, lbd, o, or their codes 0, 1, 2, 3, 4, 14";
    let s = match v.to_ascii_lowercase().as_str() {
        "an" | "active" => Some(AccessState::ActiveNonOptimized),
        "optimized" => Some(AccessState::ActiveOptimized),
        "standby" => Some(AccessState::Standby),
        "unavailable" => Some(AccessState::Unavailable),
        "offline" => Some(AccessState::Offline),
        _ => AccessState::parse(v),
    }
    .ok_or_else(|| HostError::bad_value("--state", v, valid))?;
    if s == AccessState::Transitioning {
        return Err(HostError::bad_value(
            "--state",
            v,
            "transitioning cannot be requested (SPC-4 §6.44); valid: ao, ano, s, u, lbd, o",
        ));
    }
    Ok(s)
}

#[derive(Serialize)]
struct DescJson {
    /// Target port group id (primary states) ...
    group: Option<u16>,
    /// ... or relative target port identifier (offline).
    relative_target_port: Option<u16>,
    state: &'static str,
    state_code: u8,
}

#[derive(Serialize)]
struct StpgJson {
    url: String,
    descriptors: Vec<DescJson>,
    done: bool,
    groups_after: Vec<GroupJson>,
}

pub async fn run(ctx: &Ctx, a: &StpgArgs) -> Result<Output> {
    let descs = descriptors(&a.groups, &a.states)?;
    let url = IscsiUrl::parse(&a.url)?;
    let lu = ctx.open(&url).await?;
    let res = async {
        let tpgs = ironlun_initiator::alua::Tpgs::from_inquiry(&lu.inquiry)
            .map_err(|e| HostError::new(format!("INQUIRY of {url}: {e}")))?;
        if !tpgs.explicit {
            return Err(HostError::new(format!(
                "{url}: the LU does not support explicit ALUA (TPGS {}: {}); nothing sent",
                u8::from(tpgs.implicit) | (u8::from(tpgs.explicit) << 1),
                crate::rtpg::tpgs_words(tpgs)
            )));
        }
        let what = format!("SET TARGET PORT GROUPS to {url}");
        let params = ironlun_initiator::alua::stpg_params(&descs);
        let len = u32::try_from(params.len()).unwrap_or(u32::MAX);
        let mut attentions = 0;
        loop {
            let r = ctx
                .command(
                    &lu.session,
                    url.lun,
                    &ironlun_initiator::alua::stpg_cdb(len),
                    Some(params.clone()),
                    0,
                    &what,
                )
                .await?;
            if r.status == status::GOOD {
                break;
            }
            match r.sense {
                Some(s) if s.key == key::UNIT_ATTENTION && attentions < MAX_UNIT_ATTENTIONS => {
                    attentions += 1;
                }
                _ => {
                    return Err(HostError::new(format!(
                        "{what}: {}",
                        scsi_failure(r.status, r.sense.as_ref())
                    )))
                }
            }
        }
        read_alua(ctx, &lu, OnTransitioning::Wait).await
    }
    .await;
    ctx.logout(&lu.session).await;
    let view = res?;
    let mut text = String::new();
    let mut dj = Vec::new();
    for d in &descs {
        let (g, p, st) = match *d {
            StpgDescriptor::Primary { group, state } => (Some(group), None, state),
            StpgDescriptor::Offline { rtpi } => (None, Some(rtpi), AccessState::Offline),
        };
        match (g, p) {
            (Some(g), _) => text.push_str(&format!(
                "SET TARGET PORT GROUPS: group {g:#x} -> {} ({:#04x}): done\n",
                state_name(st),
                st.code()
            )),
            (_, Some(p)) => text.push_str(&format!(
                "SET TARGET PORT GROUPS: relative target port {p:#x} -> {} ({:#04x}): done\n",
                state_name(st),
                st.code()
            )),
            _ => {}
        }
        dj.push(DescJson {
            group: g,
            relative_target_port: p,
            state: state_name(st),
            state_code: st.code(),
        });
    }
    text.push_str("after:\n");
    text.push_str(&render(&url, &view));
    let j = StpgJson {
        url: url.to_string(),
        descriptors: dj,
        done: true,
        groups_after: view.groups_json(),
    };
    Ok(Output::from_serialize(text, &j))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn pairs_and_one_state_for_all() {
        let d = descriptors(&s(&["1", "0x2"]), &s(&["ao", "an"])).unwrap();
        assert_eq!(
            d,
            vec![
                StpgDescriptor::Primary {
                    group: 1,
                    state: AccessState::ActiveOptimized
                },
                StpgDescriptor::Primary {
                    group: 2,
                    state: AccessState::ActiveNonOptimized
                },
            ]
        );
        let d = descriptors(&s(&["1", "2"]), &s(&["s"])).unwrap();
        assert!(d.iter().all(|x| matches!(
            x,
            StpgDescriptor::Primary {
                state: AccessState::Standby,
                ..
            }
        )));
        let d = descriptors(&s(&["5"]), &s(&["o"])).unwrap();
        assert_eq!(d, vec![StpgDescriptor::Offline { rtpi: 5 }]);
    }

    #[test]
    fn refusals_name_the_option() {
        for (g, st, why) in [
            (&["1"][..], &["t"][..], "transitioning cannot be requested"),
            (&["1"], &["bogus"], "--state 'bogus'"),
            (&["70000"], &["ao"], "--group '70000'"),
            (&["1", "2", "3"], &["ao", "s"], "2 given for 3 --group"),
        ] {
            let e = descriptors(&s(g), &s(st)).unwrap_err().0;
            assert!(e.contains(why), "{e}");
        }
    }
}
