//! `mote run`: the model once on token ids or feature rows — a classifier's
//! logits, an encoder's pooled embedding, or a decoder's logits after the
//! last id (the host twin of the firmware run, `--bits` as it prints them).

use crate::open::{core_err, Arena, Loaded};
use anyhow::{bail, Result};
use mote_core::{Input, RunConfig};
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The .mote model.
    model: PathBuf,
    /// Token ids (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "features",
        required_unless_present = "features"
    )]
    ids: Vec<u32>,
    /// Feature values, rows × the model's input width (comma-separated).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    features: Option<Vec<f32>>,
    /// Print `embedding:`/`logits:` and each f32's bits as 8 hex digits, as the firmware does.
    #[arg(long)]
    bits: bool,
}

pub fn run(a: Args) -> Result<()> {
    let loaded = Loaded::open(&a.model)?;
    let m = loaded.model()?;
    let input = match &a.features {
        Some(f) => Input::Features(f),
        None => Input::Ids(&a.ids),
    };
    let rows = input.rows(m.config());
    if rows == 0 || rows > m.config().max_seq as usize {
        bail!("give 1..={} token ids or feature rows", m.config().max_seq);
    }
    let mut arena = Arena::new(
        &m,
        RunConfig {
            max_seq: rows as u32,
        },
    )?;
    let mut s = arena.session(&m)?;
    let out = s.run(input).map_err(core_err)?;
    let (label, values) = (out.label(), out.values());
    if a.bits {
        let hex: Vec<String> = values
            .iter()
            .map(|v| format!("{:08x}", v.to_bits()))
            .collect();
        println!("{label}: {}", hex.join(" "));
    } else {
        println!("{}", json!({ label: values }));
    }
    Ok(())
}
