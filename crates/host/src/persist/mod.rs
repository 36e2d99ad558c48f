//! `ironlun host persist`: the PERSISTENT RESERVE IN and OUT service actions (SPC-4 §6.15,
//! §6.16) with sg_persist's options and vocabulary.
//!
//! * [`options`]: the invocation checked before anything is sent ([`Plan`]);
//! * `tid`: `--transport-id` values as TransportIDs (SPC-4 §7.6.4);
//! * [`format`]: the reports as sg_persist's text and as JSON;
//! * here: the command line, and one command per invocation on a session, retried after a
//!   UNIT ATTENTION (SAM-5 §5.14: PR IN and OUT are not among the commands that bypass it, so
//!   the first one after login draws the new nexus' 29h/00h and any pending condition, such
//!   as 2Ah/05h REGISTRATIONS PREEMPTED; a UA-drawing command was not performed, so sending
//!   it again is safe).

use clap::Args;
use ironlun_initiator::alua::DeviceIdentification;
use ironlun_initiator::pr::{prin_cdb, prout_cdb, ProutParams, RegisterAndMoveParams, PRIN_ALLOC};
use ironlun_initiator::pr::{Capabilities, FullStatus, ReadKeys, ReadReservation, TransportId};
use ironlun_initiator::CommandResult;
use ironlun_scsi::sense::key;
use ironlun_scsi::{status, Sense};

use crate::ctx::{Ctx, Lu};
use crate::error::{describe, scsi_failure};
use crate::output::Output;
use crate::url::IscsiUrl;
use crate::{HostError, Result};

pub mod format;
pub mod options;
#[cfg(test)]
mod tests;
mod tid;

pub use format::Report;
pub use options::{Action, InAction, OutAction, Plan};

/// Options as sg_persist names them (long names also with '_', as sg_persist accepts). PR
/// OUT needs `--out`; with no service action, `--in --read-keys`.
#[derive(Args, Debug, Default)]
pub struct PersistArgs {
    /// iscsi://[user[%secret]@]host[:port]/target-iqn/lun
    pub url: String,

    /// PERSISTENT RESERVE IN (the default)
    #[arg(short = 'i', long = "in")]
    pub r#in: bool,
    /// PERSISTENT RESERVE OUT (required with its service actions, a safeguard)
    #[arg(short = 'o', long)]
    pub out: bool,

    /// PR IN: Read Keys (the default)
    #[arg(short = 'k', long, alias = "read_keys")]
    pub read_keys: bool,
    /// PR IN: Read Reservation
    #[arg(short = 'r', long, alias = "read_reservation")]
    pub read_reservation: bool,
    /// PR IN: Report Capabilities
    #[arg(short = 'c', long, alias = "report_capabilities")]
    pub report_capabilities: bool,
    /// PR IN: Read Full Status
    #[arg(short = 's', long, aliases = ["read_full_status", "read-status", "read_status"])]
    pub read_full_status: bool,

    /// PR OUT: Register (--param-rk: current key or 0, --param-sark: new key, 0 unregisters)
    #[arg(short = 'G', long)]
    pub register: bool,
    /// PR OUT: Register and Ignore existing key (--param-sark: the new key)
    #[arg(short = 'I', long, alias = "register_ignore")]
    pub register_ignore: bool,
    /// PR OUT: Reserve (--param-rk, --prout-type)
    #[arg(short = 'R', long)]
    pub reserve: bool,
    /// PR OUT: Release (--param-rk, --prout-type: the reservation's type)
    #[arg(short = 'L', long)]
    pub release: bool,
    /// PR OUT: Clear every registration and the reservation (--param-rk)
    #[arg(short = 'C', long)]
    pub clear: bool,
    /// PR OUT: Preempt (--param-rk: ours, --param-sark: the victim's key, --prout-type)
    #[arg(short = 'P', long)]
    pub preempt: bool,
    /// PR OUT: Preempt and Abort (as --preempt; the preempted nexuses' tasks are aborted)
    #[arg(short = 'A', long, alias = "preempt_abort")]
    pub preempt_abort: bool,
    /// PR OUT: Register and Move the reservation to --transport-id (--param-rk, --param-sark:
    /// the destination's key, --relative-target-port, --unreg)
    #[arg(short = 'M', long, alias = "register_move")]
    pub register_move: bool,
    /// PR OUT: Replace Lost Reservation (--param-rk, --prout-type)
    #[arg(short = 'z', long, alias = "replace_lost")]
    pub replace_lost: bool,

    /// PR OUT RESERVATION KEY, in hex (0x optional)
    #[arg(short = 'K', long, value_name = "RK", alias = "param_rk")]
    pub param_rk: Option<String>,
    /// PR OUT SERVICE ACTION RESERVATION KEY, in hex (0x optional)
    #[arg(short = 'S', long, value_name = "SARK", alias = "param_sark")]
    pub param_sark: Option<String>,
    /// PR OUT TYPE: 1 wr-ex, 3 ex-ac, 5 wr-ex-ro, 6 ex-ac-ro, 7 wr-ex-ar, 8 ex-ac-ar
    #[arg(short = 'T', long, value_name = "TYPE", alias = "prout_type")]
    pub prout_type: Option<String>,
    /// PR OUT APTPL: persist through power loss
    #[arg(short = 'Z', long, alias = "param_aptpl")]
    pub param_aptpl: bool,
    /// PR OUT ALL_TG_PT: register through every target port
    #[arg(short = 'Y', long, alias = "param_alltgpt")]
    pub param_alltgpt: bool,
    /// PR OUT SPEC_I_PT: --register also registers the --transport-id initiator ports
    /// (implied by --transport-id with --register, as sg_persist)
    #[arg(long, alias = "spec_i_pt")]
    pub spec_i_pt: bool,
    /// TransportID: iqn.…[,i,0x<ISID>] or hex bytes; several separated by ';' or repeated
    #[arg(short = 'X', long, value_name = "TIDS", alias = "transport_id")]
    pub transport_id: Vec<String>,
    /// Register and Move: unregister the source I_T nexus (UNREG)
    #[arg(short = 'U', long, aliases = ["param-unreg", "param_unreg"])]
    pub unreg: bool,
    /// Register and Move: the destination's relative target port identifier, in hex (default:
    /// the port this session uses, from VPD page 0x83)
    #[arg(short = 'Q', long, value_name = "RTPI", alias = "relative_target_port")]
    pub relative_target_port: Option<String>,
    /// Do not print the INQUIRY header lines (vendor, product, device type)
    #[arg(short = 'n', long, alias = "no_inquiry")]
    pub no_inquiry: bool,
}

/// Retries of a command that drew a UNIT ATTENTION (each reports and clears one condition).
pub const UA_RETRIES: usize = 2;

pub async fn run(ctx: &Ctx, a: &PersistArgs) -> Result<Output> {
    let plan = Plan::from_args(a)?;
    let url = IscsiUrl::parse(&a.url)?;
    let lu = ctx.open(&url).await?;
    let report = execute(ctx, &lu, &plan).await;
    ctx.logout(&lu.session).await;
    let report = report?;
    let header = plan.inquiry.then(|| format::inquiry_header(&lu.inquiry));
    Ok(format::output(
        &url.to_string(),
        plan.action,
        header.as_deref(),
        &report,
    ))
}

/// Send the planned service action and decode what came back.
pub async fn execute(ctx: &Ctx, lu: &Lu, plan: &Plan) -> Result<Report> {
    match plan.action {
        Action::In(a) => {
            let what = format!("PR in ({})", a.title());
            let cdb = prin_cdb(a.code(), PRIN_ALLOC);
            let r = send(ctx, lu, &cdb, None, u32::from(PRIN_ALLOC), &what).await?;
            let data = good(&what, r)?;
            let malformed = |e: ironlun_initiator::Error| {
                HostError::new(format!("{what}: malformed response: {}", describe(&e)))
            };
            Ok(match a {
                InAction::ReadKeys => Report::Keys(ReadKeys::parse(&data).map_err(malformed)?),
                InAction::ReadReservation => {
                    Report::Reservation(ReadReservation::parse(&data).map_err(malformed)?)
                }
                InAction::ReportCapabilities => {
                    Report::Capabilities(Capabilities::parse(&data).map_err(malformed)?)
                }
                InAction::ReadFullStatus => {
                    Report::FullStatus(FullStatus::parse(&data).map_err(malformed)?)
                }
            })
        }
        Action::Out(a) => {
            let what = format!("PR out ({})", a.title());
            let (params, rtpi) = if a == OutAction::RegisterMove {
                // `Plan::from_args` let REGISTER AND MOVE through with exactly one.
                let Some(dest) = plan.transport_ids.first() else {
                    return Err(HostError::new(format!("{what}: no --transport-id")));
                };
                let rtpi = match plan.rtpi {
                    Some(r) => r,
                    None => own_rtpi(ctx, lu).await?,
                };
                (register_move_params(plan, dest, rtpi), Some(rtpi))
            } else {
                (basic_params(plan), None)
            };
            let len = u32::try_from(params.len())
                .map_err(|_| HostError::new(format!("{what}: parameter list over 4 GiB")))?;
            let pr_type = plan.prout_type.map_or(0, |t| t.code());
            let cdb = prout_cdb(a.code(), 0, pr_type, len);
            let r = send(ctx, lu, &cdb, Some(params), 0, &what).await?;
            good(&what, r)?;
            Ok(Report::Done { rtpi })
        }
    }
}

/// The basic PR OUT parameter list (SPC-4 §6.16.3) of the plan.
pub fn basic_params(plan: &Plan) -> Vec<u8> {
    ProutParams {
        key: plan.rk,
        sa_key: plan.sark,
        spec_i_pt: plan.spec_i_pt,
        all_tg_pt: plan.all_tg_pt,
        aptpl: plan.aptpl,
        transport_ids: plan.transport_ids.clone(),
    }
    .encode()
}

/// The REGISTER AND MOVE parameter list (SPC-4 §6.16.4) of the plan: to initiator port
/// `dest` through target port `rtpi`.
pub fn register_move_params(plan: &Plan, dest: &TransportId, rtpi: u16) -> Vec<u8> {
    RegisterAndMoveParams {
        key: plan.rk,
        sa_key: plan.sark,
        unreg: plan.unreg,
        aptpl: plan.aptpl,
        rtpi,
        transport_id: dest.clone(),
    }
    .encode()
}

/// The relative target port this session came through (VPD page 0x83, SPC-4 §7.8.6.5).
async fn own_rtpi(ctx: &Ctx, lu: &Lu) -> Result<u16> {
    let what = "INQUIRY VPD page 0x83 (for --register-move's relative target port)";
    let cdb = ironlun_initiator::scsi::cdb::inquiry(true, 0x83, 1024);
    let r = send(ctx, lu, &cdb, None, 1024, what).await?;
    let data = good(what, r)?;
    let id = DeviceIdentification::parse(&data)
        .map_err(|e| HostError::new(format!("{what}: malformed response: {}", describe(&e))))?;
    id.relative_target_port().ok_or_else(|| {
        HostError::new(format!(
            "{what}: no relative target port designator; give --relative-target-port=RTPI"
        ))
    })
}

/// One command, sent again (at most [`UA_RETRIES`] times) while it draws a UNIT ATTENTION.
async fn send(
    ctx: &Ctx,
    lu: &Lu,
    cdb: &[u8],
    data_out: Option<Vec<u8>>,
    alloc: u32,
    what: &str,
) -> Result<CommandResult> {
    let mut retries = 0;
    loop {
        let r = ctx
            .command(&lu.session, lu.url.lun, cdb, data_out.clone(), alloc, what)
            .await?;
        if retries < UA_RETRIES && is_unit_attention(&r) {
            retries += 1;
            continue;
        }
        return Ok(r);
    }
}

pub fn is_unit_attention(r: &CommandResult) -> bool {
    r.status == status::CHECK_CONDITION && r.sense.is_some_and(|s| s.key == key::UNIT_ATTENTION)
}

/// The data of a GOOD outcome; any other is one line naming the status and sense.
fn good(what: &str, r: CommandResult) -> Result<ironlun_initiator::Bytes> {
    if r.response != 0 {
        // RFC 7143 §11.4.3: the command did not complete at the target; no status.
        return Err(HostError::new(format!(
            "{what}: iSCSI response {:#04x} (target failure)",
            r.response
        )));
    }
    if r.status == status::GOOD {
        return Ok(r.data_in);
    }
    Err(HostError::new(failure_line(
        what,
        r.status,
        r.sense.as_ref(),
    )))
}

/// `PR out (Reserve): SCSI status RESERVATION CONFLICT (0x18)`, with the additional sense in
/// words and the field pointer ([`scsi_failure`]).
pub fn failure_line(what: &str, st: u8, sense: Option<&Sense>) -> String {
    format!("{what}: {}", scsi_failure(st, sense))
}
