//! `ironlun host persist`: the PERSISTENT RESERVE IN and OUT service actions (SPC-4 §6.15,
//! §6.16) with sg_persist's options and vocabulary.

use clap::Args;

use crate::ctx::Ctx;
use crate::output::Output;
use crate::url::IscsiUrl;
use crate::{HostError, Result};

#[derive(Args, Debug)]
pub struct PersistArgs {
    /// iscsi://[user[%secret]@]host[:port]/target-iqn/lun
    pub url: String,
}

pub async fn run(ctx: &Ctx, a: &PersistArgs) -> Result<Output> {
    let _url = IscsiUrl::parse(&a.url)?;
    let _ = ctx;
    Err(HostError::new("persist: under construction in this branch"))
}
