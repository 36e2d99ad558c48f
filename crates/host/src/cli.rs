//! `ironlun host …`: the command line of the host tools and its dispatch. Every failure is one
//! line on stderr (`ironlun host: …`) and exit status 2; usage errors are clap's (also 2).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::ctx::{Credentials, Ctx, DEFAULT_INITIATOR, ENV_SECRET, ENV_TARGET_SECRET};
use crate::output::Output;
use crate::{discover, inquiry, paths, persist, rtpg, serve_nbd, stpg, Result};

/// `ironlun host`: initiator tools against any iSCSI target, no kernel needed.
#[derive(Args, Debug)]
pub struct HostArgs {
    /// Print JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds each network step (connect, login, each command) may take
    #[arg(long, global = true, value_name = "SECS", default_value = "10",
          value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Our iSCSI initiator name
    #[arg(long, global = true, value_name = "IQN", default_value = DEFAULT_INITIATOR)]
    pub initiator_name: String,
    /// CHAP user name (or user@ in the URL, or IRONLUN_CHAP_USER); the secret comes from
    /// the URL, IRONLUN_CHAP_SECRET (or LIBISCSI_CHAP_PASSWORD) or --chap-secret-file
    #[arg(long, global = true, value_name = "NAME")]
    pub chap_user: Option<String>,
    /// File holding the CHAP secret (one line)
    #[arg(long, global = true, value_name = "FILE")]
    pub chap_secret_file: Option<PathBuf>,
    /// Mutual CHAP: the name the target must answer with (or IRONLUN_CHAP_TARGET_USER); its
    /// secret comes from IRONLUN_CHAP_TARGET_SECRET (or LIBISCSI_CHAP_TARGET_PASSWORD) or
    /// --target-secret-file
    #[arg(long, global = true, value_name = "NAME")]
    pub target_user: Option<String>,
    /// File holding the secret the target must prove (mutual CHAP)
    #[arg(long, global = true, value_name = "FILE")]
    pub target_secret_file: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: HostCmd,
}

#[derive(Subcommand, Debug)]
pub enum HostCmd {
    /// SendTargets discovery at a portal: every target with its portals and TPGTs
    /// (like iscsiadm -m discovery -t st)
    Discover(discover::DiscoverArgs),
    /// Standard INQUIRY and the VPD pages 0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2, decoded
    /// (like sg_inq and sg_vpd)
    Inq(inquiry::InqArgs),
    /// REPORT TARGET PORT GROUPS read the way Linux reads it, decoded like sg_rtpg --decode
    Rtpg(rtpg::RtpgArgs),
    /// SET TARGET PORT GROUPS: move one or more groups to a state (like sg_stpg)
    Stpg(stpg::StpgArgs),
    /// PERSISTENT RESERVE IN / OUT (like sg_persist)
    Persist(persist::PersistArgs),
    /// The multipath view: logical units grouped by WWID, path groups by ALUA priority
    /// (like multipath -ll)
    Paths(paths::PathsArgs),
    /// One LU over several paths (multipath with ALUA) exported as an NBD disk
    ServeNbd(serve_nbd::ServeNbdArgs),
    /// The paths of a running serve-nbd export, from its status socket
    NbdStatus(serve_nbd::NbdStatusArgs),
}

fn parse_timeout(s: &str) -> std::result::Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("'{s}' is not a number of seconds in (0, 3600]")),
    }
}

impl HostArgs {
    /// The context: options, then the environment, then secret files.
    pub fn ctx(&self) -> Result<Ctx> {
        let mut c = Credentials {
            user: self.chap_user.clone().or_else(|| {
                std::env::var("IRONLUN_CHAP_USER")
                    .ok()
                    .filter(|v| !v.is_empty())
            }),
            secret: Credentials::from_env(&ENV_SECRET),
            target_user: self.target_user.clone().or_else(|| {
                std::env::var("IRONLUN_CHAP_TARGET_USER")
                    .ok()
                    .filter(|v| !v.is_empty())
            }),
            target_secret: Credentials::from_env(&ENV_TARGET_SECRET),
        };
        if let Some(f) = &self.chap_secret_file {
            c.secret = Some(Credentials::from_file(f, "--chap-secret-file")?);
        }
        if let Some(f) = &self.target_secret_file {
            c.target_secret = Some(Credentials::from_file(f, "--target-secret-file")?);
        }
        Ok(Ctx {
            timeout: self.timeout,
            initiator_name: self.initiator_name.clone(),
            credentials: c,
            ..Ctx::default()
        })
    }
}

/// Run one host command: its output on stdout, or one error line on stderr and status 2.
pub fn run(args: HostArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ironlun host: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let json = args.json;
    match rt.block_on(dispatch(args)) {
        Ok(out) => {
            print!("{}", out.render(json));
            for f in &out.failures {
                eprintln!("ironlun host: {f}");
            }
            if out.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("ironlun host: {e}");
            ExitCode::from(2)
        }
    }
}

/// Run the command and produce its output.
pub async fn dispatch(args: HostArgs) -> Result<Output> {
    let ctx = args.ctx()?;
    match &args.cmd {
        HostCmd::Discover(a) => discover::run(&ctx, a).await,
        HostCmd::Inq(a) => inquiry::run(&ctx, a).await,
        HostCmd::Rtpg(a) => rtpg::run(&ctx, a).await,
        HostCmd::Stpg(a) => stpg::run(&ctx, a).await,
        HostCmd::Persist(a) => persist::run(&ctx, a).await,
        HostCmd::Paths(a) => paths::run(&ctx, a).await,
        HostCmd::ServeNbd(a) => serve_nbd::run(&ctx, a).await,
        HostCmd::NbdStatus(a) => serve_nbd::status(&ctx, a).await,
    }
}
