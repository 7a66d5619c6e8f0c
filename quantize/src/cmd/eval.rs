//! `mote eval`: a trained task model scored with mote-core on a split of
//! its task's data (accuracy, or perplexity for the language model), and a
//! few predictions shown.

use super::train::read_config;
use crate::args::Split;
use crate::metric::Metric;
use crate::open::{Arena, Loaded};
use anyhow::Result;
use mote_core::RunConfig;
use mote_host::train::Example;
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The task's config (e.g. tasks/digits.toml).
    config: PathBuf,
    /// The .mote model (f32, int8, …).
    model: PathBuf,
    /// The split to score.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    split: Split,
    /// Score at most this many items (0: all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Show this many predictions (classification tasks).
    #[arg(long, default_value_t = 0)]
    show: usize,
    /// Write the first shown item's input here, as `cargo xtask firmware
    /// run --input` reads it (token ids, or `features:` and values).
    #[arg(long, requires = "show")]
    save_input: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let mut cfg = read_config(&a.config)?;
    cfg.data.eval_limit = a.limit;
    let split = a.split.data();
    if let Some(p) = &a.save_input {
        mote_host::writer::check_output(p)?;
    }
    let loaded = Loaded::open(&a.model)?;
    let m = loaded.model()?;
    let task = mote_host::train::Task::prepare_with(&cfg, mote_host::quantize::vocab_data(&m))?;
    let score = mote_host::train::evaluate_mote(&task, loaded.bytes(), split, "mote")?;
    let metric = Metric::of(cfg.task);
    if a.json {
        println!(
            "{}",
            json!({"split": split.name(), metric.name(): score.metric, "loss": score.loss, "items": score.items})
        );
    } else {
        println!(
            "{}: {} {:.4} (mean cross-entropy {:.4}) over {} {} items",
            a.model.display(),
            metric.name(),
            score.metric,
            score.loss,
            score.items,
            split.name()
        );
    }
    if a.show == 0 || metric == Metric::Perplexity {
        return Ok(());
    }
    let classes = task.classes();
    let mut arena = Arena::new(
        &m,
        RunConfig {
            max_seq: m.config().max_seq,
        },
    )?;
    let mut s = arena.session(&m)?;
    for (k, (desc, inputs, label)) in task.samples(split, a.show)?.into_iter().enumerate() {
        if let (0, Some(p), Some(first)) = (k, &a.save_input, inputs.first()) {
            let line = match first {
                Example::Features(f) => format!(
                    "features: {}",
                    f.iter().map(f32::to_string).collect::<Vec<_>>().join(" ")
                ),
                Example::Tokens(ids) => {
                    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
                }
            };
            mote_host::writer::write_atomic(p, (line + "\n").as_bytes())?;
        }
        let avg = mote_host::train::average_logits(&inputs, &mut |ex| {
            mote_host::train::run_mote(&mut s, ex)
        })?;
        let best = avg
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        let name = |i: usize| classes.get(i).cloned().unwrap_or_default();
        println!(
            "\n{desc}\n→ {} ({}){}",
            name(best),
            if best == label { "right" } else { "wrong" },
            if best == label {
                String::new()
            } else {
                format!(", truth: {}", name(label))
            }
        );
    }
    Ok(())
}
