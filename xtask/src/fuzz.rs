//! `cargo xtask fuzz [--minutes N] [TARGET…]`: cargo-fuzz (nightly,
//! AddressSanitizer) on the model reader + inference, the SIMD kernels, the
//! audio front end, the GGUF and safetensors importers, the tokenizers, the
//! training-data readers and the WAV reader, seeded from real files.

use crate::cmd::{cargo, root, run, two_at_a_time};
use anyhow::{bail, Context, Result};
use std::process::Command;

/// Targets that need only `mote-core`.
pub const CORE_TARGETS: [&str; 3] = ["model", "kernels", "audio"];
/// Targets that need `mote-host` (the `host` feature of the fuzz crate;
/// mote-host without training, so no candle under AddressSanitizer).
pub const HOST_TARGETS: [&str; 5] = ["gguf", "safetensors", "tokenizer", "data", "wav"];
/// Every target (the CI smoke runs them all).
pub const ALL_TARGETS: [&str; 8] = [
    "model",
    "kernels",
    "audio",
    "gguf",
    "safetensors",
    "tokenizer",
    "data",
    "wav",
];

/// Installs cargo-fuzz from crates.io when it is missing.
fn ensure_cargo_fuzz() -> Result<()> {
    let ok = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        run(Command::new("cargo").args([
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            "0.13.2",
        ]))?;
    }
    Ok(())
}

/// Writes the seed corpora (`tests/examples/fuzz_seeds.rs`) unless present;
/// the host targets' seeds need the real models (fetched and imported).
fn seeds(host: bool) -> Result<()> {
    let dir = root().join("fuzz/corpus");
    let marker = if host {
        "data/rdx.bin"
    } else {
        "model/decoder-int4.mote"
    };
    if dir.join(marker).exists() {
        return Ok(());
    }
    // The dev profile (optimised dependencies and mote-core): `cargo xtask
    // test` has built it already, where a release build would compile
    // candle and the rest again.
    let mut c = cargo();
    c.args([
        "run",
        "-q",
        "-p",
        "mote-tests",
        "--example",
        "fuzz_seeds",
        "--",
    ])
    .arg(&dir);
    if !host {
        c.arg("--core");
    }
    run(&mut c)
}

/// Builds every target once (AddressSanitizer, `-O`, overflow checks), then runs each for
/// `seconds`, two at a time (libFuzzer runs one thread; this machine has two
/// cores); fails on any crash, leak, timeout or OOM (libFuzzer exits
/// non-zero and leaves the input in `fuzz/artifacts/<target>/`).
pub fn fuzz(targets: &[&str], seconds: u64) -> Result<()> {
    ensure_cargo_fuzz()?;
    if let Some(t) = targets
        .iter()
        .find(|t| !HOST_TARGETS.contains(t) && !CORE_TARGETS.contains(t))
    {
        bail!("unknown fuzz target {t:?} (one of {ALL_TARGETS:?})");
    }
    let host = targets.iter().any(|t| HOST_TARGETS.contains(t));
    seeds(host)?;
    let fuzz_dir = root().join("fuzz");
    let mut c = Command::new("cargo");
    c.current_dir(&fuzz_dir)
        // `-a`: debug assertions and overflow checks in the optimised build,
        // so an arithmetic overflow on hostile input is a crash, not a wrap.
        .args(["+nightly", "fuzz", "build", "-O", "-a"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO");
    if host {
        c.args(["--features", "host"]);
    }
    run(&mut c)?;
    let bins = fuzz_dir.join("target/x86_64-unknown-linux-gnu/release");
    let failures: Vec<String> = two_at_a_time(targets, |t| {
        run_target(&bins, &fuzz_dir, t, seconds).map_err(|e| format!("{e:#}"))
    })
    .into_iter()
    .filter_map(Result::err)
    .collect();
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

/// One libFuzzer run of target `t` on its corpus; prints its final
/// statistics, or its whole output when it fails.
fn run_target(
    bins: &std::path::Path,
    fuzz_dir: &std::path::Path,
    t: &str,
    seconds: u64,
) -> Result<()> {
    let corpus = fuzz_dir.join("corpus").join(t);
    let artifacts = fuzz_dir.join("artifacts").join(t);
    std::fs::create_dir_all(&corpus)?;
    std::fs::create_dir_all(&artifacts)?;
    let out = Command::new(bins.join(t))
        .current_dir(fuzz_dir)
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .args([
            format!("-max_total_time={seconds}"),
            "-max_len=65536".into(),
            "-rss_limit_mb=4096".into(),
            "-timeout=10".into(),
            "-print_final_stats=1".into(),
        ])
        .arg(&corpus)
        .output()
        .with_context(|| format!("starting fuzz target {t}"))?;
    let text = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("fuzz target {t} found a failure (see fuzz/artifacts/{t}/):\n{text}");
    }
    let stats: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("stat::"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    eprintln!("fuzz {t}: {seconds} s, no failure; {}", stats.join(", "));
    Ok(())
}

/// `cargo xtask fuzz [--minutes N] [TARGET…]` (default: every target, 1 minute each).
pub fn main(args: &[String]) -> Result<()> {
    let mut minutes = 1.0f64;
    let mut targets: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--minutes" {
            minutes = args
                .get(i + 1)
                .context("--minutes needs a number")?
                .parse()
                .context("--minutes needs a number")?;
            i += 2;
        } else {
            targets.push(&args[i]);
            i += 1;
        }
    }
    if targets.is_empty() {
        targets = ALL_TARGETS.to_vec();
    }
    fuzz(&targets, (minutes * 60.0).round().max(1.0) as u64)
}
