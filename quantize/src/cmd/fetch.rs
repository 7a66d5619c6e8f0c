//! `mote fetch`: a pinned package from its registry into the cache.

use crate::args::Package;
use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Which package.
    #[arg(value_enum)]
    which: Package,
}

pub fn run(a: Args) -> Result<()> {
    let key = a.which.key();
    let pkg = mote_host::fetch::PACKAGES
        .iter()
        .find(|p| p.key == key)
        .with_context(|| format!("mote-host pins no package {key:?}"))?;
    println!("{}", mote_host::fetch::ensure(pkg)?.display());
    Ok(())
}
