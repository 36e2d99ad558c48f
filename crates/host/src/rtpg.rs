//! `ironlun host rtpg`: REPORT TARGET PORT GROUPS (SPC-4 §6.36) read the way Linux's
//! scsi_dh_alua reads it (drivers/scsi/device_handler/scsi_dh_alua.c), decoded with the
//! fields `sg_rtpg --decode` prints.
//!
//! The procedure ([`read_alua`]): the TPGS field of standard INQUIRY (§6.6.2) says whether
//! the LU has ALUA at all (without it no RTPG is sent and every path counts as optimized);
//! the Device Identification VPD page (§7.8.6) names this path's relative target port and
//! target port group; then RTPG asks for the extended header (PARAMETER DATA FORMAT 001b) with
//! Linux's first allocation length of 128 bytes. A CHECK CONDITION with ILLEGAL REQUEST (any
//! ASC: some arrays answer ASC 00h) is retried once without the extended header; data longer
//! than the allocation length is asked for again with the length RETURN DATA LENGTH gives;
//! NOT READY 04h/0Ah means the group is transitioning; any other UNIT ATTENTION is retried.

use std::time::{Duration, Instant};

use clap::Args;
use ironlun_initiator::alua::{PortGroup, Rtpg, RtpgFormat, Tpgs};
use ironlun_scsi::alua::{status_code, AccessState};
use ironlun_scsi::sense::key;
use ironlun_scsi::status;
use serde::Serialize;

use crate::ctx::{Ctx, Lu};
use crate::error::scsi_failure;
use crate::inquiry::vpd_ident::DeviceIdentification;
use crate::output::Output;
use crate::url::IscsiUrl;
use crate::{HostError, Result};

#[derive(Args, Debug)]
pub struct RtpgArgs {
    /// iscsi://[user[%secret]@]host[:port]/target-iqn/lun
    pub url: String,
}

/// Linux's first REPORT TARGET PORT GROUPS allocation length (scsi_dh_alua's ALUA_RTPG_SIZE).
pub const FIRST_ALLOC: u32 = 128;
/// Resubmissions with a larger allocation length before the data counts as never complete.
pub const MAX_RESUBMITS: usize = 3;
/// Unit attentions taken (and the command retried) before giving up.
pub const MAX_UNIT_ATTENTIONS: usize = 5;
/// Pause between RTPGs while the target answers NOT READY 04h/0Ah.
pub const TRANSITION_POLL: Duration = Duration::from_millis(500);

/// What to do when RTPG answers NOT READY 04h/0Ah (transitioning) or another refusing state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnTransitioning {
    /// Ask again until `--timeout` has passed, then fail (the report is wanted).
    Wait,
    /// Take it as this path's state now, as scsi_dh_alua does for 04h/0Ah (the path view);
    /// standby, unavailable and offline refusals name their state too.
    Report,
}

/// This path's place in the ALUA picture, from VPD 0x83.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ThisPort {
    pub relative_target_port: Option<u16>,
    pub target_port_group: Option<u16>,
}

/// Everything [`read_alua`] learnt about one path.
#[derive(Clone, Debug)]
pub struct AluaView {
    pub tpgs: Tpgs,
    pub ident: DeviceIdentification,
    pub this_port: ThisPort,
    /// The report (None without TPGS, or when the target refused RTPG with a state and
    /// [`OnTransitioning::Report`] was asked for).
    pub report: Option<Rtpg>,
    /// The target refused the extended header (ILLEGAL REQUEST) and answered without it.
    pub extended_refused: bool,
    /// RTPG was refused with NOT READY and the ASCQ of a refusing state (04h/0Ah
    /// transitioning; 04h/0Bh, 0Ch, 12h: standby, unavailable, offline) under
    /// [`OnTransitioning::Report`]: that state is this path's.
    pub state_from_sense: Option<AccessState>,
    /// RTPG commands sent.
    pub commands: usize,
}

impl AluaView {
    /// This path's group descriptor in the report.
    pub fn own_group(&self) -> Option<&PortGroup> {
        let r = self.report.as_ref()?;
        let g = self.this_port.target_port_group?;
        r.group(g)
    }

    /// The report's groups as the JSON outputs carry them (none without a report).
    pub fn groups_json(&self) -> Vec<GroupJson> {
        self.report
            .as_ref()
            .map(|r| r.groups.iter().map(GroupJson::of).collect())
            .unwrap_or_default()
    }

    /// This path's access state as scsi_dh_alua holds it: the state a NOT READY refusal of
    /// RTPG names, else its group's state; `None` without TPGS or when the report lacks the
    /// group.
    pub fn own_state(&self) -> Option<AccessState> {
        self.state_from_sense
            .or_else(|| self.own_group().map(|g| g.state))
    }
}

/// Read one path's ALUA picture the way Linux does (module docs).
pub async fn read_alua(ctx: &Ctx, lu: &Lu, on_t: OnTransitioning) -> Result<AluaView> {
    let tpgs = Tpgs::from_inquiry(&lu.inquiry)
        .map_err(|e| HostError::new(format!("INQUIRY of {}: {e}", lu.url)))?;
    let ident = crate::inquiry::device_identification(ctx, lu).await?;
    let this_port = ThisPort {
        relative_target_port: ident.relative_target_port(),
        target_port_group: ident.target_port_group(),
    };
    let mut view = AluaView {
        tpgs,
        ident,
        this_port,
        report: None,
        extended_refused: false,
        state_from_sense: None,
        commands: 0,
    };
    if !tpgs.implicit && !tpgs.explicit {
        return Ok(view);
    }
    let what = format!("REPORT TARGET PORT GROUPS to {}", lu.url);
    let started = Instant::now();
    let mut extended = true;
    let mut alloc = FIRST_ALLOC;
    let (mut resubmits, mut attentions) = (0usize, 0usize);
    loop {
        view.commands += 1;
        let r = ctx
            .command(
                &lu.session,
                lu.url.lun,
                &ironlun_initiator::alua::rtpg_cdb(extended, alloc),
                None,
                alloc,
                &what,
            )
            .await?;
        if r.status == status::GOOD {
            let d = &r.data_in;
            let rtpg = Rtpg::parse(d, extended)
                .map_err(|e| HostError::new(format!("{what}: {}", crate::error::describe(&e))))?;
            let need = u64::from(rtpg.return_data_length) + 4;
            if rtpg.truncated && need > u64::from(alloc) {
                resubmits += 1;
                if resubmits > MAX_RESUBMITS {
                    return Err(HostError::new(format!(
                        "{what}: data still truncated after {MAX_RESUBMITS} resubmissions \
                         (RETURN DATA LENGTH {} with allocation length {alloc})",
                        rtpg.return_data_length
                    )));
                }
                alloc = u32::try_from(need).map_err(|_| {
                    HostError::new(format!(
                        "{what}: RETURN DATA LENGTH {} is beyond any allocation length",
                        rtpg.return_data_length
                    ))
                })?;
                continue;
            }
            if rtpg.truncated {
                return Err(HostError::new(format!(
                    "{what}: truncated data: RETURN DATA LENGTH {} needs {need} bytes, the \
                     target sent {} with allocation length {alloc}",
                    rtpg.return_data_length,
                    d.len()
                )));
            }
            view.report = Some(rtpg);
            return Ok(view);
        }
        let sense = r.sense.filter(|_| r.status == status::CHECK_CONDITION);
        match sense {
            Some(s) if s.key == key::ILLEGAL_REQUEST && extended => {
                // scsi_dh_alua: arrays that refuse the extended header (even with ASC 00h)
                // answer without it.
                extended = false;
                view.extended_refused = true;
            }
            Some(s) if on_t == OnTransitioning::Report && refusing_state(&s).is_some() => {
                // The path view takes the refusal as this port's state (the port answers
                // nothing else meanwhile); scsi_dh_alua does so for 04h/0Ah.
                view.state_from_sense = refusing_state(&s);
                return Ok(view);
            }
            Some(s) if s.key == key::NOT_READY && s.asc.asc == 0x04 && s.asc.ascq == 0x0A => {
                if started.elapsed() + TRANSITION_POLL > ctx.timeout {
                    return Err(HostError::new(format!(
                        "{what}: still transitioning (NOT READY, ASC/ASCQ 04h/0Ah) after {} s \
                         (--timeout)",
                        crate::ctx::fmt_secs(started.elapsed())
                    )));
                }
                tokio::time::sleep(TRANSITION_POLL).await;
            }
            Some(s) if s.key == key::UNIT_ATTENTION => {
                attentions += 1;
                if attentions > MAX_UNIT_ATTENTIONS {
                    return Err(HostError::new(format!(
                        "{what}: UNIT ATTENTION (ASC/ASCQ {:02X}h/{:02X}h) on {} tries in a row",
                        s.asc.asc, s.asc.ascq, attentions
                    )));
                }
            }
            _ => {
                let tail = if view.extended_refused {
                    " (also without the extended header)"
                } else {
                    ""
                };
                return Err(HostError::new(format!(
                    "{what}: {}{tail}",
                    scsi_failure(r.status, r.sense.as_ref())
                )));
            }
        }
    }
}

/// The access state a NOT READY refusal names by its ASCQ (SPC-4 §5.16.2.4), if any.
fn refusing_state(s: &ironlun_scsi::Sense) -> Option<AccessState> {
    if s.key != key::NOT_READY || s.asc.asc != 0x04 {
        return None;
    }
    [
        AccessState::Transitioning,
        AccessState::Standby,
        AccessState::Unavailable,
        AccessState::Offline,
    ]
    .into_iter()
    .find(|st| st.not_ready_ascq() == Some(s.asc.ascq))
}

/// sg_rtpg's words for an access state (`--decode`).
pub fn state_name(s: AccessState) -> &'static str {
    match s {
        AccessState::ActiveOptimized => "active/optimized",
        AccessState::ActiveNonOptimized => "active/non optimized",
        AccessState::Standby => "standby",
        AccessState::Unavailable => "unavailable",
        AccessState::LbaDependent => "lba dependent",
        AccessState::Offline => "offline",
        AccessState::Transitioning => "transitioning between states",
        AccessState::Reserved(_) => "unknown",
    }
}

/// sg_rtpg's words for a status code (`--decode`).
pub fn status_name(code: u8) -> &'static str {
    match code {
        status_code::NONE => "no status available",
        status_code::ALTERED_BY_STPG => {
            "target port asym. state changed by SET TARGET PORT GROUPS command"
        }
        status_code::ALTERED_BY_IMPLICIT => {
            "target port asym. state changed by implicit lu behaviour"
        }
        _ => "unknown status code",
    }
}

/// The supported states as flags (sg_rtpg's T/O/LBD/U/S/AN/AO).
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct SupportedJson {
    pub t: bool,
    pub o: bool,
    pub lbd: bool,
    pub u: bool,
    pub s: bool,
    pub an: bool,
    pub ao: bool,
}

/// One group descriptor as the JSON output carries it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct GroupJson {
    pub group_id: u16,
    pub pref: bool,
    pub state: &'static str,
    pub state_code: u8,
    pub supported: SupportedJson,
    pub status_code: u8,
    pub status: &'static str,
    pub vendor_specific: u8,
    pub target_port_count: usize,
    pub relative_target_ports: Vec<u16>,
}

impl GroupJson {
    pub fn of(g: &PortGroup) -> GroupJson {
        let s = g.supported;
        GroupJson {
            group_id: g.group_id,
            pref: g.pref,
            state: state_name(g.state),
            state_code: g.state.code(),
            supported: SupportedJson {
                t: s.transitioning,
                o: s.offline,
                lbd: s.lba_dependent,
                u: s.unavailable,
                s: s.standby,
                an: s.active_nonoptimized,
                ao: s.active_optimized,
            },
            status_code: g.status,
            status: status_name(g.status),
            vendor_specific: g.vendor_specific,
            target_port_count: g.ports.len(),
            relative_target_ports: g.ports.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
struct TpgsJson {
    implicit: bool,
    explicit: bool,
}

#[derive(Clone, Debug, Serialize)]
struct RtpgJson {
    url: String,
    tpgs: TpgsJson,
    this_port: ThisPort,
    /// "extended", "length-only", or null without TPGS.
    format: Option<&'static str>,
    implicit_transition_secs: Option<u8>,
    extended_header_refused: bool,
    commands: usize,
    groups: Vec<GroupJson>,
}

/// The report in `sg_rtpg --decode`'s layout, after a header of our own.
pub fn render(url: &IscsiUrl, v: &AluaView) -> String {
    let mut t = format!(
        "{url}\n  TPGS: {} ({})\n",
        u8::from(v.tpgs.implicit) | (u8::from(v.tpgs.explicit) << 1),
        tpgs_words(v.tpgs)
    );
    match (
        v.this_port.relative_target_port,
        v.this_port.target_port_group,
    ) {
        (Some(p), Some(g)) => t.push_str(&format!(
            "  this path: relative target port {p:#x} in target port group {g:#x}\n"
        )),
        (p, g) => t.push_str(&format!(
            "  this path: VPD 0x83 has {} and {}\n",
            p.map_or("no relative target port".into(), |p| format!(
                "relative target port {p:#x}"
            )),
            g.map_or("no target port group".into(), |g| format!(
                "target port group {g:#x}"
            ))
        )),
    }
    let Some(r) = &v.report else {
        if !v.tpgs.implicit && !v.tpgs.explicit {
            t.push_str(
                "  no asymmetric access (TPGS 0): REPORT TARGET PORT GROUPS not sent; every \
                 path counts as active/optimized\n",
            );
        }
        return t;
    };
    match r.format {
        RtpgFormat::Extended {
            implicit_transition_secs,
        } => t.push_str(&format!(
            "  format: extended header, implicit transition time {implicit_transition_secs} s\n"
        )),
        RtpgFormat::LengthOnly => t.push_str(&format!(
            "  format: length only{}\n",
            if v.extended_refused {
                " (the extended header was refused)"
            } else {
                ""
            }
        )),
    }
    let fmt = u8::from(matches!(r.format, RtpgFormat::Extended { .. }));
    t.push_str("Report target port groups:\n");
    for g in &r.groups {
        let s = g.supported;
        t.push_str(&format!(
            "  target port group id : {:#x} , Pref={}, Rtpg_fmt={fmt}\n",
            g.group_id,
            u8::from(g.pref)
        ));
        t.push_str(&format!(
            "    target port group asymmetric access state : {:#04x} ({})\n",
            g.state.code(),
            state_name(g.state)
        ));
        t.push_str(&format!(
            "    T_SUP : {}, O_SUP : {}, LBD_SUP : {}, U_SUP : {}, S_SUP : {}, AN_SUP : {}, \
             AO_SUP : {}\n",
            u8::from(s.transitioning),
            u8::from(s.offline),
            u8::from(s.lba_dependent),
            u8::from(s.unavailable),
            u8::from(s.standby),
            u8::from(s.active_nonoptimized),
            u8::from(s.active_optimized)
        ));
        t.push_str(&format!(
            "    status code : {:#04x} ({})\n",
            g.status,
            status_name(g.status)
        ));
        t.push_str(&format!(
            "    vendor unique status : {:#04x}\n",
            g.vendor_specific
        ));
        t.push_str(&format!("    target port count : {:02x}\n", g.ports.len()));
        if !g.ports.is_empty() {
            t.push_str("    Relative target port ids:\n");
            for p in &g.ports {
                t.push_str(&format!("      {p:#04x}\n"));
            }
        }
    }
    t
}

/// "implicit and explicit", "implicit only", …
pub fn tpgs_words(t: Tpgs) -> &'static str {
    match (t.implicit, t.explicit) {
        (true, true) => "implicit and explicit ALUA",
        (true, false) => "implicit ALUA only",
        (false, true) => "explicit ALUA only",
        (false, false) => "no ALUA",
    }
}

pub async fn run(ctx: &Ctx, a: &RtpgArgs) -> Result<Output> {
    let url = IscsiUrl::parse(&a.url)?;
    let lu = ctx.open(&url).await?;
    let view = read_alua(ctx, &lu, OnTransitioning::Wait).await;
    ctx.logout(&lu.session).await;
    let view = view?;
    let text = render(&url, &view);
    let (format, implicit_transition_secs) = match view.report.as_ref().map(|r| r.format) {
        None => (None, None),
        Some(RtpgFormat::LengthOnly) => (Some("length-only"), None),
        Some(RtpgFormat::Extended {
            implicit_transition_secs,
        }) => (Some("extended"), Some(implicit_transition_secs)),
    };
    let j = RtpgJson {
        url: url.to_string(),
        tpgs: TpgsJson {
            implicit: view.tpgs.implicit,
            explicit: view.tpgs.explicit,
        },
        this_port: view.this_port,
        format,
        implicit_transition_secs,
        extended_header_refused: view.extended_refused,
        commands: view.commands,
        groups: view.groups_json(),
    };
    Ok(Output::from_serialize(text, &j))
}
