//! `mote export`: a training checkpoint (safetensors) into an f32 `.mote` model.

use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// `model-f32.safetensors`, `model-qat.safetensors` or a `checkpoint-*.safetensors`.
    checkpoint: PathBuf,
    /// Output .mote file (a new path or a regular file).
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    mote_host::writer::check_output(&a.output)?;
    let c = mote_host::train::load(&a.checkpoint)?;
    let n = mote_host::train::export(&c.net, c.vocab.as_ref())?
        .write(&a.output)
        .with_context(|| format!("{}", a.checkpoint.display()))?;
    println!(
        "wrote {} ({n} bytes, {} parameters, step {})",
        a.output.display(),
        c.net.parameter_count(),
        c.step
    );
    Ok(())
}
