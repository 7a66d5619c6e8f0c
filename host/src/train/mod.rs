//! Training on the workstation: f32 training of the transformer family
//! `mote-core` runs, then quantization-aware fine-tuning that rounds exactly
//! as the device does, export to `.mote`, and evaluation of every variant
//! (the training framework's own forward pass, `mote-core` f32, `mote-core`
//! int8 from post-training quantization and from QAT) on a held-out split.
//!
//! Autograd and tensors are candle's; this module adds what candle lacks for
//! us: an AdamW whose state goes into the checkpoint (so a run resumes
//! exactly), the schedule, gradient clipping, the datasets and the export.

pub mod data;
pub mod kws;
pub mod net;
pub mod qat;
mod task;

pub use task::{average_logits, Example, Task};

use crate::quantize::{quantize, Target};
use crate::writer::{ModelBuilder, ModelFile, VocabData};
use anyhow::{bail, ensure, Context, Result};
use candle_core::{Tensor, Var};
use mote_core::config::{Architecture, CONFIG_WORDS, MAX_DIM};
use mote_core::vocab::{PreTokenizer, TokenizerKind};
use mote_core::{Config, Model, RunConfig, Session};
use net::{Input, Net, Rng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Which task a config trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// scikit-learn's 8×8 digits, a tiny ViT over 2×2 patches.
    Digits,
    /// BBC News topics, an encoder over a WordPiece vocabulary trained here.
    BbcNews,
    /// A byte-level language model on Jane Austen's novels.
    Austen,
    /// Keyword spotting: twelve classes from one second of audio
    /// (`cargo xtask data kws`), a keyword transformer over log-mel frames.
    Kws,
}

/// The model's shape (the rest of the architecture is fixed: pre-norm
/// LayerNorm blocks with biases, GELU, learned positions).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSpec {
    /// Residual width.
    pub d_model: u32,
    /// Blocks.
    pub n_layers: u32,
    /// Query heads.
    pub n_heads: u32,
    /// Key/value heads (0: as many as query heads).
    pub n_kv_heads: u32,
    /// Feed-forward width.
    pub d_ff: u32,
    /// Longest sequence (tokens, patches or bytes).
    pub max_seq: u32,
    /// WordPiece vocabulary size to train (text classification).
    pub vocab_size: u32,
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec {
            d_model: 64,
            n_layers: 2,
            n_heads: 4,
            n_kv_heads: 0,
            d_ff: 128,
            max_seq: 64,
            vocab_size: 2000,
        }
    }
}

/// The optimisation schedule of one phase.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Schedule {
    /// Optimizer steps.
    pub steps: usize,
    /// Examples per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate as a fraction of the peak (cosine decay).
    pub min_lr_ratio: f64,
    /// Linear warm-up steps.
    pub warmup: usize,
    /// AdamW decoupled weight decay (matrices and embeddings only).
    pub weight_decay: f64,
    /// Global gradient-norm clip (0: none).
    pub clip: f64,
    /// Validation every this many steps (and at the end).
    pub eval_every: usize,
    /// Checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            steps: 1000,
            batch: 32,
            lr: 1e-3,
            min_lr_ratio: 0.1,
            warmup: 100,
            weight_decay: 0.01,
            clip: 1.0,
            eval_every: 200,
            checkpoint_every: 200,
        }
    }
}

impl Schedule {
    /// Learning rate at `step`: linear warm-up, then cosine to `min_lr_ratio`.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.steps.saturating_sub(self.warmup).max(1) as f64;
        let t = ((step - self.warmup) as f64 / span).min(1.0);
        let min = self.lr * self.min_lr_ratio;
        min + (self.lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// Data options.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSpec {
    /// Use at most this many training examples (smoke runs).
    pub train_limit: Option<usize>,
    /// Evaluate at most this many validation/test items (0: all).
    pub eval_limit: usize,
    /// Text classification: windows of `max_seq` tokens averaged per article.
    pub windows: usize,
    /// Digits: random ±1-pixel shifts while training.
    pub augment: bool,
}

impl Default for DataSpec {
    fn default() -> Self {
        DataSpec {
            train_limit: None,
            eval_limit: 0,
            windows: 8,
            augment: true,
        }
    }
}

/// A training run, as written in `config.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The task.
    pub task: TaskKind,
    /// Seed of initialisation, batches and augmentation.
    #[serde(default = "one")]
    pub seed: u64,
    /// Model shape.
    #[serde(default)]
    pub model: ModelSpec,
    /// f32 training.
    #[serde(default)]
    pub train: Schedule,
    /// Quantization-aware fine-tuning after f32 training (`steps = 0`: none).
    #[serde(default = "no_qat")]
    pub qat: Schedule,
    /// Data options.
    #[serde(default)]
    pub data: DataSpec,
    /// The int8 weight scales QAT simulates and the shipped model uses:
    /// `block` (one per row and 32 columns, `--dtype int8`) or `row`
    /// (`--dtype int8-row`: smaller files, coarser).
    #[serde(default)]
    pub weight_scales: WeightScales,
}

/// Granularity of int8 weight scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightScales {
    /// One scale per row and 32-column block.
    #[default]
    Block,
    /// One scale per row.
    Row,
}

fn one() -> u64 {
    1
}

fn no_qat() -> Schedule {
    Schedule {
        steps: 0,
        lr: 1e-4,
        warmup: 0,
        ..Schedule::default()
    }
}

impl TrainConfig {
    /// Parses a TOML config.
    pub fn from_toml(text: &str) -> Result<TrainConfig> {
        let c: TrainConfig = toml::from_str(text).map_err(|e| {
            // One line: where and what (toml's own text draws the line and a caret).
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(l) => anyhow::anyhow!("training config line {l}: {}", e.message().trim()),
                None => anyhow::anyhow!("training config: {}", e.message().trim()),
            }
        })?;
        c.validate()?;
        Ok(c)
    }

    /// Checks what can be checked before any data is read or any step is
    /// taken: every dimension of `[model]` in range, the heads dividing the
    /// width, batches of at least one. The error names the field.
    pub fn validate(&self) -> Result<()> {
        let m = &self.model;
        for (field, value) in [
            ("d_model", m.d_model),
            ("n_layers", m.n_layers),
            ("n_heads", m.n_heads),
            ("d_ff", m.d_ff),
            ("max_seq", m.max_seq),
        ] {
            ensure!(
                (1..=MAX_DIM).contains(&value),
                "training config: model.{field} = {value} is out of range (1..={MAX_DIM})"
            );
        }
        ensure!(
            m.d_model.is_multiple_of(m.n_heads),
            "training config: model.n_heads = {} does not divide model.d_model = {}",
            m.n_heads,
            m.d_model
        );
        ensure!(
            m.n_kv_heads == 0 || m.n_heads.is_multiple_of(m.n_kv_heads),
            "training config: model.n_kv_heads = {} does not divide model.n_heads = {} (0: as many)",
            m.n_kv_heads,
            m.n_heads
        );
        if self.task == TaskKind::BbcNews {
            ensure!(
                (1..=MAX_DIM).contains(&m.vocab_size),
                "training config: model.vocab_size = {} is out of range (1..={MAX_DIM})",
                m.vocab_size
            );
        }
        for (phase, s) in [("train", &self.train), ("qat", &self.qat)] {
            ensure!(
                s.batch > 0,
                "training config: {phase}.batch = 0: batch must be at least 1"
            );
            ensure!(
                s.lr.is_finite() && s.lr >= 0.0,
                "training config: {phase}.lr = {} is not a finite non-negative rate",
                s.lr
            );
        }
        Ok(())
    }
}

/// AdamW (decoupled weight decay) with its moments kept for checkpoints.
struct AdamW {
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: usize,
}

impl AdamW {
    const B1: f64 = 0.9;
    const B2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    fn new(params: &[(String, Var)]) -> Result<AdamW> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        Ok(AdamW {
            m: params
                .iter()
                .map(|(_, v)| zeros(v))
                .collect::<candle_core::Result<_>>()?,
            v: params
                .iter()
                .map(|(_, v)| zeros(v))
                .collect::<candle_core::Result<_>>()?,
            t: 0,
        })
    }

    /// One step; returns the gradient norm before clipping.
    fn step(
        &mut self,
        params: &[(String, Var)],
        grads: &candle_core::backprop::GradStore,
        lr: f64,
        s: &Schedule,
    ) -> Result<f64> {
        let mut sq = 0f64;
        for (_, v) in params {
            if let Some(g) = grads.get(v) {
                sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        let norm = sq.sqrt();
        let factor = if s.clip > 0.0 && norm > s.clip {
            s.clip / norm
        } else {
            1.0
        };
        self.t += 1;
        let t = self.t as i32;
        let (c1, c2) = (1.0 - Self::B1.powi(t), 1.0 - Self::B2.powi(t));
        for (i, (_, var)) in params.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            let g = (g * factor)?;
            self.m[i] = ((&self.m[i] * Self::B1)? + (&g * (1.0 - Self::B1))?)?;
            self.v[i] = ((&self.v[i] * Self::B2)? + (g.sqr()? * (1.0 - Self::B2))?)?;
            let mhat = (&self.m[i] / c1)?;
            let vhat = (&self.v[i] / c2)?;
            let mut theta = var.as_tensor().clone();
            if var.rank() >= 2 && s.weight_decay > 0.0 {
                theta = (theta * (1.0 - lr * s.weight_decay))?;
            }
            let update = (mhat / (vhat.sqrt()? + Self::EPS)?)?;
            var.set(&(theta - (update * lr)?)?)?;
        }
        Ok(norm)
    }
}

/// One point of the training curves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    /// Phase: `f32` or `qat`.
    pub phase: String,
    /// Optimizer step within the phase.
    pub step: usize,
    /// Mean training loss since the previous point.
    pub train_loss: f64,
    /// Validation metric (accuracy, or perplexity for the language model).
    pub val_metric: f64,
    /// Validation loss (mean cross-entropy).
    pub val_loss: f64,
}

/// What the progress callback sees.
#[derive(Debug, Clone)]
pub struct Progress {
    /// `f32` or `qat`.
    pub phase: &'static str,
    /// Steps done in this phase.
    pub step: usize,
    /// Steps in this phase.
    pub steps: usize,
    /// Latest training loss.
    pub loss: f64,
    /// Examples (or tokens, for the language model) per second.
    pub rate: f64,
    /// A validation point, when one was just computed.
    pub point: Option<Point>,
}

/// Training stopped because the progress callback asked; the checkpoint is
/// saved and `--resume` continues from it.
#[derive(Debug, Clone, Copy)]
pub struct Interrupted {
    /// Phase stopped in.
    pub phase: &'static str,
    /// Steps done.
    pub step: usize,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "training stopped after {} {} steps (checkpoint saved; --resume continues)",
            self.step, self.phase
        )
    }
}

impl std::error::Error for Interrupted {}

/// Metrics of one model variant on one split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Score {
    /// Variant name.
    pub variant: String,
    /// Accuracy (classification) or perplexity (language model).
    pub metric: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Items scored.
    pub items: usize,
}

fn checkpoint_names(out: &Path, phase: &str) -> (PathBuf, PathBuf) {
    (
        out.join(format!("checkpoint-{phase}.safetensors")),
        out.join(format!("model-{phase}.safetensors")),
    )
}

/// Vocabulary as JSON (checkpoint metadata).
pub fn vocab_to_json(v: &VocabData) -> serde_json::Value {
    json!({
        "kind": v.kind as u32,
        "flags": v.flags,
        "pre_tokenizer": v.pre_tokenizer as u32,
        "tokens": v.tokens.iter().map(|(t, k)| json!([String::from_utf8_lossy(t), k])).collect::<Vec<_>>(),
        "merges": v.merges,
        "unk_id": v.unk_id,
    })
}

/// The inverse of [`vocab_to_json`].
pub fn vocab_from_json(j: &serde_json::Value) -> Result<VocabData> {
    let u = |k: &str| {
        j.get(k)
            .and_then(|v| v.as_u64())
            .map(|v| v as u32)
            .with_context(|| format!("vocabulary metadata lacks {k}"))
    };
    let kind = match u("kind")? {
        1 => TokenizerKind::WordPiece,
        2 => TokenizerKind::ByteLevelBpe,
        k => bail!("vocabulary kind {k} in checkpoint"),
    };
    let pre_tokenizer = match u("pre_tokenizer")? {
        0 => PreTokenizer::Bert,
        1 => PreTokenizer::Gpt2,
        2 => PreTokenizer::Gpt2Digits,
        k => bail!("pre-tokenizer {k} in checkpoint"),
    };
    let tokens = j
        .get("tokens")
        .and_then(|t| t.as_array())
        .context("vocabulary metadata lacks tokens")?
        .iter()
        .map(|t| {
            let text = t.get(0).and_then(|s| s.as_str()).context("bad token")?;
            let kind = t
                .get(1)
                .and_then(|k| k.as_u64())
                .context("bad token kind")?;
            Ok((text.as_bytes().to_vec(), kind as u8))
        })
        .collect::<Result<_>>()?;
    let merges = serde_json::from_value(j.get("merges").cloned().unwrap_or(json!([])))?;
    Ok(VocabData {
        kind,
        flags: u("flags")?,
        pre_tokenizer,
        tokens,
        merges,
        unk_id: u("unk_id")?,
        chat_template: String::new(),
    })
}

/// Saves parameters (and optimizer moments, if given) with the config,
/// vocabulary and step in the safetensors metadata; atomically.
fn save(
    path: &Path,
    net: &Net,
    vocab: Option<&VocabData>,
    opt: Option<&AdamW>,
    step: usize,
) -> Result<()> {
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut add = |name: String, t: &Tensor| -> Result<()> {
        let v = t.flatten_all()?.to_vec1::<f32>()?;
        named.push((name, t.dims().to_vec(), bytemuck::cast_slice(&v).to_vec()));
        Ok(())
    };
    for (i, (name, var)) in net.params.iter().enumerate() {
        add(name.clone(), var.as_tensor())?;
        if let Some(o) = opt {
            add(format!("adam.m.{name}"), &o.m[i])?;
            add(format!("adam.v.{name}"), &o.v[i])?;
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = named
        .iter()
        .map(|(n, shape, bytes)| {
            Ok((
                n.clone(),
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    bytes,
                )?,
            ))
        })
        .collect::<Result<_>>()?;
    let mut meta = HashMap::new();
    meta.insert(
        "mote.config".to_string(),
        serde_json::to_string(&net.cfg.to_words().to_vec())?,
    );
    meta.insert("mote.step".to_string(), step.to_string());
    meta.insert(
        "mote.adam_t".to_string(),
        opt.map(|o| o.t).unwrap_or(0).to_string(),
    );
    if let Some(v) = vocab {
        meta.insert("mote.vocab".to_string(), vocab_to_json(v).to_string());
    }
    let bytes = safetensors::serialize(views, Some(meta))?;
    crate::writer::write_atomic(path, &bytes)
}

/// A loaded checkpoint.
pub struct Checkpoint {
    /// The model.
    pub net: Net,
    /// Its vocabulary, if it has one.
    pub vocab: Option<VocabData>,
    /// Optimizer step reached.
    pub step: usize,
    adam: Option<AdamW>,
}

/// Reads a checkpoint written by training (`model-*.safetensors` or `checkpoint-*.safetensors`).
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let words: Vec<u32> = serde_json::from_str(
        meta.get("mote.config")
            .with_context(|| format!("{} is not a Mote training checkpoint", path.display()))?,
    )?;
    let words: [u32; CONFIG_WORDS] = words
        .try_into()
        .map_err(|_| anyhow::anyhow!("checkpoint config has the wrong length"))?;
    let cfg = Config::from_words(&words).map_err(|e| anyhow::anyhow!("checkpoint config: {e}"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        ensure!(
            view.dtype() == safetensors::Dtype::F32,
            "tensor {name} is not f32"
        );
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(
            name,
            Tensor::from_vec(data, view.shape(), &candle_core::Device::Cpu)?,
        );
    }
    let net = Net::from_tensors(cfg, &tensors)?;
    let adam_t: usize = meta
        .get("mote.adam_t")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let adam = if adam_t > 0 {
        let mut m = Vec::new();
        let mut v = Vec::new();
        for (name, _) in &net.params {
            let get = |k: String| {
                tensors
                    .get(&k)
                    .cloned()
                    .context(format!("checkpoint lacks {k}"))
            };
            m.push(get(format!("adam.m.{name}"))?);
            v.push(get(format!("adam.v.{name}"))?);
        }
        Some(AdamW { m, v, t: adam_t })
    } else {
        None
    };
    Ok(Checkpoint {
        net,
        vocab: meta
            .get("mote.vocab")
            .map(|s| vocab_from_json(&serde_json::from_str(s)?))
            .transpose()?,
        step: meta
            .get("mote.step")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        adam,
    })
}

/// The f32 `.mote` model of a trained network.
pub fn export(net: &Net, vocab: Option<&VocabData>) -> Result<ModelBuilder> {
    let mut b = ModelBuilder::new(net.cfg);
    for (name, dims, data) in net.values()? {
        let dims: Vec<u32> = dims.iter().map(|&d| d as u32).collect();
        b.add_f32(&name, &dims, &data)?;
    }
    if let Some(v) = vocab {
        b.set_vocab(v.clone());
    }
    Ok(b)
}

/// Cross-entropy of a batch.
fn batch_loss(
    net: &Net,
    w: &[Tensor],
    input: &Input,
    targets: &Tensor,
    qat: bool,
) -> Result<Tensor> {
    let logits = net.logits(w, input, qat)?;
    let logits = if logits.rank() == 3 {
        let (b, s, v) = logits.dims3()?;
        logits.reshape((b * s, v))?
    } else {
        logits
    };
    Ok(candle_nn::loss::cross_entropy(
        &logits,
        &targets.flatten_all()?,
    )?)
}

/// Runs one phase (f32 or QAT), resuming from its checkpoint if asked.
#[allow(clippy::too_many_arguments)]
fn phase(
    task: &Task,
    mut net: Net,
    s: &Schedule,
    seed: u64,
    phase: &'static str,
    out: &Path,
    resume: bool,
    history: &mut Vec<Point>,
    progress: &mut dyn FnMut(&Progress) -> bool,
) -> Result<Net> {
    let qat = phase == "qat";
    let (ckpt, final_path) = checkpoint_names(out, phase);
    let mut start = 0;
    let mut opt = AdamW::new(&net.params)?;
    if resume && ckpt.exists() {
        let c = load(&ckpt)?;
        ensure!(
            c.net.cfg == net.cfg,
            "{} was written for another model shape",
            ckpt.display()
        );
        let row_scales = net.row_scales;
        net = c.net;
        net.row_scales = row_scales;
        start = c.step;
        if let Some(a) = c.adam {
            opt = a;
        }
        history.retain(|p| p.phase != phase || p.step <= start);
    }
    let vocab = task.vocab();
    let mut seen = 0usize;
    let mut loss_sum = 0f64;
    let mut loss_n = 0usize;
    let mut t0 = Instant::now();
    for step in start..s.steps {
        // Each step's batch depends only on (seed, phase, step): resuming replays it exactly.
        let mut rng = Rng(seed ^ (step as u64).wrapping_mul(0x2545_f491_4f6c_dd1d) ^ qat as u64);
        let (input, targets) = task.batch(&mut rng, s.batch)?;
        let w = net.weights(qat)?;
        let loss = batch_loss(&net, &w, &input, &targets, qat)?;
        let l = loss.to_scalar::<f32>()? as f64;
        ensure!(l.is_finite(), "training diverged at step {step} (loss {l})");
        let grads = loss.backward()?;
        opt.step(&net.params, &grads, s.lr_at(step), s)?;
        loss_sum += l;
        loss_n += 1;
        seen += targets.elem_count();
        let done = step + 1;
        let mut point = None;
        if done % s.eval_every.max(1) == 0 || done == s.steps {
            let score = task.evaluate_net(&net, data::Split::Validation, qat)?;
            let p = Point {
                phase: phase.to_string(),
                step: done,
                train_loss: loss_sum / loss_n.max(1) as f64,
                val_metric: score.metric,
                val_loss: score.loss,
            };
            history.push(p.clone());
            point = Some(p);
            loss_sum = 0.0;
            loss_n = 0;
        }
        if done % s.checkpoint_every.max(1) == 0 || done == s.steps {
            save(&ckpt, &net, vocab.as_ref(), Some(&opt), done)?;
            std::fs::write(
                out.join("history.json"),
                serde_json::to_string_pretty(&history)?,
            )?;
        }
        let secs = t0.elapsed().as_secs_f64();
        let go_on = progress(&Progress {
            phase,
            step: done,
            steps: s.steps,
            loss: l,
            rate: seen as f64 / secs.max(1e-9),
            point,
        });
        if !go_on {
            save(&ckpt, &net, vocab.as_ref(), Some(&opt), done)?;
            std::fs::write(
                out.join("history.json"),
                serde_json::to_string_pretty(&history)?,
            )?;
            bail!(Interrupted { phase, step: done });
        }
        if secs > 10.0 {
            t0 = Instant::now();
            seen = 0;
        }
    }
    save(&final_path, &net, vocab.as_ref(), None, s.steps)?;
    Ok(net)
}

/// Scores a `.mote` model with `mote-core` on a split.
pub fn evaluate_mote(
    task: &Task,
    bytes: &[u8],
    split: data::Split,
    variant: &str,
) -> Result<Score> {
    let model = Model::from_bytes(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let run = RunConfig {
        max_seq: model.config().max_seq,
    };
    let mut arena = vec![
        0u8;
        model
            .arena_bytes(&run)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            + 16
    ];
    let mut session = Session::new(&model, &mut arena, run).map_err(|e| anyhow::anyhow!("{e}"))?;
    task.score(split, variant, &mut |ex: &Example| {
        run_mote(&mut session, ex)
    })
}

/// One example through a `mote-core` session: a classifier's logits (one
/// row), or a decoder's next-token logits after each token from an empty context.
pub fn run_mote(session: &mut Session, ex: &Example) -> Result<Vec<Vec<f32>>> {
    let e = |e: mote_core::Error| anyhow::anyhow!("{e}");
    Ok(match ex {
        Example::Features(f) => vec![session.classify_features(f).map_err(e)?.to_vec()],
        Example::Tokens(ids) if session.config().arch == Architecture::Encoder => {
            vec![session.classify(ids).map_err(e)?.to_vec()]
        }
        Example::Tokens(ids) => {
            session.reset();
            let mut rows = Vec::with_capacity(ids.len());
            for &id in ids {
                rows.push(session.decode_step(id).map_err(e)?.to_vec());
            }
            rows
        }
    })
}

/// Everything a finished run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The task.
    pub task: TaskKind,
    /// Trainable parameters.
    pub parameters: usize,
    /// Test-split scores: candle f32, mote f32, mote int8 (PTQ), mote int8 (QAT).
    pub test: Vec<Score>,
    /// `.mote` files written, with their sizes.
    pub files: Vec<(String, u64)>,
    /// Arena bytes at the working sequence length.
    pub arena_bytes: usize,
    /// Training wall time in seconds.
    pub train_seconds: f64,
}

/// Trains (or resumes), fine-tunes with QAT, exports and evaluates; writes
/// checkpoints, `history.json`, the `.mote` files and `report.json` into `out`.
/// `progress` sees every step and returns false to stop (an [`Interrupted`] error).
pub fn run(
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    progress: &mut dyn FnMut(&Progress) -> bool,
) -> Result<Report> {
    // Before anything is written: a bad config leaves no output behind.
    cfg.validate()?;
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("config.toml"), toml::to_string(cfg)?)?;
    let t0 = Instant::now();
    let task = Task::prepare(cfg)?;
    let mut history: Vec<Point> = if resume {
        std::fs::read(out.join("history.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut net = Net::new(task.config(cfg)?, cfg.seed)?;
    net.row_scales = cfg.weight_scales == WeightScales::Row;
    let parameters = net.parameter_count();
    let net = phase(
        &task,
        net,
        &cfg.train,
        cfg.seed,
        "f32",
        out,
        resume,
        &mut history,
        progress,
    )?;
    let vocab = task.vocab();
    let export = |net: &Net| -> Result<ModelBuilder> {
        let mut b = export(net, vocab.as_ref())?;
        task.add_sections(&mut b)?;
        Ok(b)
    };
    let f32_file = ModelFile::from_vec(export(&net)?.to_bytes());
    let mut files = Vec::new();
    let mut write = |name: &str, bytes: &[u8]| -> Result<()> {
        // Only a model the reader accepts is written.
        Model::from_bytes(bytes).map_err(|e| anyhow::anyhow!("{name} would be invalid: {e}"))?;
        crate::writer::write_atomic(&out.join(name), bytes)?;
        files.push((name.to_string(), bytes.len() as u64));
        Ok(())
    };
    write("model-f32.mote", f32_file.bytes())?;
    let int8 = |bytes: &[u8]| -> Result<Vec<u8>> {
        let m = Model::from_bytes(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        let target = match cfg.weight_scales {
            WeightScales::Block => Target::Int8,
            WeightScales::Row => Target::Int8Row,
        };
        Ok(quantize(&m, target, |_, _| {})?.0.to_bytes())
    };
    let ptq = ModelFile::from_vec(int8(f32_file.bytes())?);
    write("model-int8-ptq.mote", ptq.bytes())?;
    let mut test = vec![
        task.evaluate_net(&net, data::Split::Test, false)?,
        evaluate_mote(&task, f32_file.bytes(), data::Split::Test, "mote f32")?,
        evaluate_mote(&task, ptq.bytes(), data::Split::Test, "mote int8 (PTQ)")?,
    ];
    if cfg.qat.steps > 0 {
        let qnet = phase(
            &task,
            net,
            &cfg.qat,
            cfg.seed,
            "qat",
            out,
            resume,
            &mut history,
            progress,
        )?;
        let qf = ModelFile::from_vec(int8(&export(&qnet)?.to_bytes())?);
        write("model-int8.mote", qf.bytes())?;
        test.push(task.evaluate_net(&qnet, data::Split::Test, true)?);
        test.push(evaluate_mote(
            &task,
            qf.bytes(),
            data::Split::Test,
            "mote int8 (QAT)",
        )?);
    } else {
        write("model-int8.mote", ptq.bytes())?;
    }
    std::fs::write(
        out.join("history.json"),
        serde_json::to_string_pretty(&history)?,
    )?;
    let m = Model::from_bytes(ptq.bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let arena_bytes = m
        .arena_bytes(&RunConfig {
            max_seq: m.config().max_seq,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = Report {
        task: cfg.task,
        parameters,
        test,
        files,
        arena_bytes,
        train_seconds: t0.elapsed().as_secs_f64(),
    };
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(report)
}
