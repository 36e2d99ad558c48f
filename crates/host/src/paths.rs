//! `ironlun host paths`: the multipath view of several URLs, like `multipath -ll`.

use clap::Args;

use crate::ctx::Ctx;
use crate::output::Output;
use crate::{HostError, Result};

#[derive(Args, Debug)]
pub struct PathsArgs {
    /// iscsi:// URLs, one per path
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,
}

pub async fn run(ctx: &Ctx, a: &PathsArgs) -> Result<Output> {
    let _ = (ctx, a);
    Err(HostError::new("paths: under construction in this branch"))
}
