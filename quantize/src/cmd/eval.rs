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
    /// Print the confusion matrix (rows: truth, columns: prediction) of
    /// every item of the split (classification tasks).
    #[arg(long)]
    confusion: bool,
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
    if (a.show == 0 && !a.confusion) || metric == Metric::Perplexity {
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
    if a.confusion {
        let n = classes.len();
        let mut matrix = vec![vec![0usize; n]; n];
        for (_, inputs, label) in task.samples(split, 0)? {
            let best = predict(&mut s, &inputs)?;
            if let Some(row) = matrix.get_mut(label) {
                if let Some(c) = row.get_mut(best) {
                    *c += 1;
                }
            }
        }
        if a.json {
            println!("{}", json!({"classes": classes, "confusion": matrix}));
        } else {
            print!("{}", confusion_text(&classes, &matrix));
        }
        if a.show == 0 {
            return Ok(());
        }
    }
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
        let best = predict(&mut s, &inputs)?;
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

/// The class a session gives an item (its inputs' logits averaged).
fn predict(s: &mut mote_core::Session, inputs: &[Example]) -> Result<usize> {
    let avg =
        mote_host::train::average_logits(inputs, &mut |ex| mote_host::train::run_mote(s, ex))?;
    Ok(avg
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i))
}

/// The confusion matrix as a text table: rows the truth, columns the
/// prediction, with each row's count and recall.
pub fn confusion_text(classes: &[String], matrix: &[Vec<usize>]) -> String {
    let w = classes.iter().map(|c| c.len()).max().unwrap_or(1).max(5);
    let mut out = format!("{:>w$} |", "truth");
    for c in classes {
        out += &format!(" {:>4}", c.chars().take(4).collect::<String>());
    }
    out += " | items recall\n";
    for (idx, (c, row)) in classes.iter().zip(matrix).enumerate() {
        out += &format!("{c:>w$} |");
        for v in row {
            out += &format!(" {v:>4}");
        }
        let total: usize = row.iter().sum();
        let recall = if total > 0 {
            format!(
                "{:.2}",
                row.get(idx).copied().unwrap_or(0) as f64 / total as f64
            )
        } else {
            "-".into()
        };
        out += &format!(" | {total:>5} {recall:>6}\n");
    }
    out
}
