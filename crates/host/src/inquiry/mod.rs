//! `ironlun host inq`: standard INQUIRY (SPC-4 §6.6.2) and the VPD pages 0x00, 0x80, 0x83,
//! 0xB0, 0xB1 and 0xB2 (SPC-4 §7.8, SBC-3 §6.6), decoded like sg_inq and sg_vpd.

use clap::Args;

use crate::ctx::Ctx;
use crate::output::Output;
use crate::url::IscsiUrl;
use crate::{HostError, Result};

#[derive(Args, Debug)]
pub struct InqArgs {
    /// iscsi://[user[%secret]@]host[:port]/target-iqn/lun
    pub url: String,
}

pub async fn run(ctx: &Ctx, a: &InqArgs) -> Result<Output> {
    let _url = IscsiUrl::parse(&a.url)?;
    let _ = ctx;
    Err(HostError::new("inq: under construction in this branch"))
}
