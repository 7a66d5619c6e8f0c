//! `mote import`: a checkpoint (BERT safetensors directory, GGUF Llama) into
//! an f32 `.mote` model.

use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory (config.json + model.safetensors) or .gguf file.
    checkpoint: PathBuf,
    /// Output .mote file (a new path or a regular file).
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    mote_host::writer::check_output(&a.output)?;
    let imported = mote_host::import::import_checkpoint(&a.checkpoint)?;
    let b = imported.model;
    // A model the reader refuses came from a value of the checkpoint.
    let n = b
        .write(&a.output)
        .with_context(|| format!("{}", a.checkpoint.display()))?;
    if !imported.skipped.is_empty() {
        // Only tensors a runtime never reads (BERT's position ids, pooler).
        println!(
            "left out {} checkpoint tensor(s) no runtime reads: {}",
            imported.skipped.len(),
            imported.skipped.join(", ")
        );
    }
    println!(
        "wrote {} ({} bytes, {} parameters)",
        a.output.display(),
        n,
        b.config().parameter_count()
    );
    Ok(())
}
