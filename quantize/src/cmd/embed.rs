//! `mote embed`: an encoder's sentence embedding (mean-pooled, L2-normalised).

use crate::open::{core_err, Arena, Loaded};
use anyhow::{bail, Result};
use mote_core::{Architecture, RunConfig};
use mote_host::tokenizer::Tokenizer;
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The .mote model.
    model: PathBuf,
    /// Text to embed (tokenized with the model's own vocabulary).
    #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
    text: Option<String>,
    /// Token ids, fed exactly as given (comma-separated).
    #[arg(long, value_delimiter = ',')]
    ids: Option<Vec<u32>>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let loaded = Loaded::open(&a.model)?;
    let m = loaded.model_of(Architecture::Encoder, "embed")?;
    let ids = match (a.text, a.ids) {
        (Some(t), _) => {
            if t.trim().is_empty() {
                bail!("--text is empty");
            }
            Tokenizer::from_model(m.vocab(), m.config())?.encode(&t)?
        }
        (None, Some(ids)) => ids,
        (None, None) => bail!("give --text or --ids"),
    };
    if ids.is_empty() {
        bail!("no token ids to embed");
    }
    let max = m.config().max_seq;
    if ids.len() > max as usize {
        bail!(
            "{} tokens exceed the model's maximum sequence of {max}",
            ids.len()
        );
    }
    let mut arena = Arena::new(
        &m,
        RunConfig {
            max_seq: ids.len() as u32,
        },
    )?;
    let mut s = arena.session(&m)?;
    let e = s.embed(&ids).map_err(core_err)?;
    if a.json {
        println!("{}", json!({"ids": ids, "embedding": e}));
    } else {
        println!("ids: {ids:?}");
        println!("embedding ({} dims): {:?}", e.len(), e);
    }
    Ok(())
}
