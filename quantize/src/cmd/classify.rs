//! `mote classify`: an encoder with a classifier head, on text or on
//! feature rows (e.g. an image's patches).

use crate::open::{core_err, Arena, Loaded};
use anyhow::Result;
use mote_core::{Input, RunConfig};
use mote_host::tokenizer::Tokenizer;
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The .mote model.
    model: PathBuf,
    /// Text, tokenized with the model's own vocabulary (cut to the model's maximum sequence).
    #[arg(
        long,
        conflicts_with = "features",
        required_unless_present = "features"
    )]
    text: Option<String>,
    /// Feature values (rows × the model's input width), comma-separated.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    features: Option<Vec<f32>>,
    /// Class names, comma-separated, in label order.
    #[arg(long, value_delimiter = ',')]
    classes: Option<Vec<String>>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let loaded = Loaded::open(&a.model)?;
    let m = loaded.model()?;
    let cfg = *m.config();
    let ids = match (&a.text, &a.features) {
        (Some(t), None) => {
            let mut ids = Tokenizer::from_model(m.vocab(), &cfg)?.encode(t)?;
            ids.truncate(cfg.max_seq as usize);
            ids
        }
        _ => Vec::new(),
    };
    // clap requires one of the two; text is ids here.
    let input = match &a.features {
        Some(f) => Input::Features(f),
        None => Input::Ids(&ids),
    };
    let mut arena = Arena::new(
        &m,
        RunConfig {
            max_seq: (input.rows(&cfg) as u32).clamp(1, cfg.max_seq),
        },
    )?;
    let mut session = arena.session(&m)?;
    let logits = match input {
        Input::Features(f) => session.classify_features(f),
        Input::Ids(ids) => session.classify(ids),
    }
    .map_err(core_err)?
    .to_vec();
    let best = logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    let name = |i: usize| {
        a.classes
            .as_ref()
            .and_then(|c| c.get(i).cloned())
            .unwrap_or_else(|| i.to_string())
    };
    if a.json {
        println!(
            "{}",
            json!({"class": best, "name": name(best), "logits": logits})
        );
    } else {
        println!("{} (logits {:?})", name(best), logits);
    }
    Ok(())
}
