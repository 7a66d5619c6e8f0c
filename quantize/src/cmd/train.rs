//! `mote train`: a task model trained (f32, then quantization-aware
//! fine-tuning), exported and scored on the test split (docs/TASKS.md).

use crate::metric::Metric;
use crate::plot;
use anyhow::{Context, Result};
use mote_host::train::{Point, TrainConfig};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// The run's config (TOML: task, [model], [train], [qat], [data]).
    config: PathBuf,
    /// Output directory (default: target/tasks/<config file stem>).
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Continue from the last checkpoint in the output directory.
    #[arg(long)]
    resume: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Reads and checks a task config.
pub fn read_config(path: &Path) -> Result<TrainConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    TrainConfig::from_toml(&text).with_context(|| format!("{}", path.display()))
}

pub fn run(a: Args) -> Result<()> {
    let cfg = read_config(&a.config)?;
    let out = a.out.unwrap_or_else(|| {
        let stem = a.config.file_stem().unwrap_or_default();
        PathBuf::from("target").join("tasks").join(stem)
    });
    let metric = Metric::of(cfg.task);
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>4} {bar:30} {pos}/{len} steps  {msg}  eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut last_phase = "";
    let report = mote_host::train::run(&cfg, &out, a.resume, &mut |p| {
        if p.phase != last_phase {
            last_phase = p.phase;
            bar.set_length(p.steps as u64);
            bar.set_prefix(p.phase);
            bar.reset_eta();
        }
        bar.set_position(p.step as u64);
        bar.set_message(format!(
            "loss {:.4}  {:.0} {}",
            p.loss,
            p.rate,
            metric.rate_unit()
        ));
        if let Some(pt) = &p.point {
            let line = format!(
                "{} step {:>6}: train loss {:.4}, validation loss {:.4}, {} {:.4}",
                pt.phase,
                pt.step,
                pt.train_loss,
                pt.val_loss,
                metric.name(),
                pt.val_metric
            );
            // Logs (no terminal) get the validation lines too.
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
        true
    })?;
    bar.finish_and_clear();
    let history_path = out.join("history.json");
    let history: Vec<Point> = serde_json::from_slice(
        &std::fs::read(&history_path)
            .with_context(|| format!("reading {}", history_path.display()))?,
    )
    .with_context(|| format!("parsing {}", history_path.display()))?;
    let png = out.join("curves.png");
    if let Err(e) = plot::curves(&history, &png, metric) {
        eprintln!("warning: no curves plot: {e:#}");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} parameters, trained in {:.0} s; test split:",
        report.parameters, report.train_seconds
    );
    for s in &report.test {
        println!(
            "  {:<18} {} {:.4}  loss {:.4}  ({} items)",
            s.variant,
            metric.name(),
            s.metric,
            s.loss,
            s.items
        );
    }
    for (f, n) in &report.files {
        println!("  {} {n} bytes", out.join(f).display());
    }
    println!(
        "  arena {} bytes at the model's full sequence; curves in {}",
        report.arena_bytes,
        png.display()
    );
    Ok(())
}
