//! `ironlun host rtpg`: REPORT TARGET PORT GROUPS (SPC-4 §6.36) read the way Linux's
//! scsi_dh_alua reads it, decoded with the fields of `sg_rtpg --decode`.

use clap::Args;

use crate::ctx::Ctx;
use crate::output::Output;
use crate::url::IscsiUrl;
use crate::{HostError, Result};

#[derive(Args, Debug)]
pub struct RtpgArgs {
    /// iscsi://[user[%secret]@]host[:port]/target-iqn/lun
    pub url: String,
}

pub async fn run(ctx: &Ctx, a: &RtpgArgs) -> Result<Output> {
    let _url = IscsiUrl::parse(&a.url)?;
    let _ = ctx;
    Err(HostError::new("rtpg: under construction in this branch"))
}
