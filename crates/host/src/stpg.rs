//! `ironlun host stpg`: SET TARGET PORT GROUPS (SPC-4 §6.44) like sg_stpg.

use clap::Args;

use crate::ctx::Ctx;
use crate::output::Output;
use crate::url::IscsiUrl;
use crate::{HostError, Result};

#[derive(Args, Debug)]
pub struct StpgArgs {
    /// iscsi://[user[%secret]@]host[:port]/target-iqn/lun
    pub url: String,
    /// Target port group id (repeat for several groups); with state o, a relative target
    /// port identifier
    #[arg(long = "group", short = 'g', value_name = "ID", required = true)]
    pub groups: Vec<String>,
    /// ao, ano, s, u or o: one per --group, or one for all
    #[arg(long = "state", short = 's', value_name = "STATE", required = true)]
    pub states: Vec<String>,
}

pub async fn run(ctx: &Ctx, a: &StpgArgs) -> Result<Output> {
    let _url = IscsiUrl::parse(&a.url)?;
    let _ = ctx;
    Err(HostError::new("stpg: under construction in this branch"))
}
