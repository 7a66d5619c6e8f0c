//! Hugging Face BERT-family encoders (BERT, MiniLM): `model.safetensors`
//! with `config.json`, and the WordPiece vocabulary of `tokenizer.json` or
//! `vocab.txt`.
//!
//! A key missing from `config.json` takes the default of Hugging Face's
//! `BertConfig` (what `transformers` itself would build), never "absent":
//! without `type_vocab_size` the token-type embeddings are still there and
//! still added to every row.

use super::{check_config, check_shape, Imported, Uses};
use crate::family::{bert, Shape};
use crate::writer::{ModelBuilder, VocabData};
use anyhow::{bail, ensure, Context, Result};
use mote_core::config::{Activation, NO_TOKEN};
use mote_core::vocab::{kind, PreTokenizer, TokenizerKind, FLAG_LOWERCASE, FLAG_STRIP_ACCENTS};
use serde_json::Value as Json;
use std::path::Path;

/// `BertConfig`'s defaults (transformers' `configuration_bert.py`).
mod defaults {
    pub const VOCAB_SIZE: u32 = 30522;
    pub const HIDDEN_SIZE: u32 = 768;
    pub const NUM_HIDDEN_LAYERS: u32 = 12;
    pub const NUM_ATTENTION_HEADS: u32 = 12;
    pub const INTERMEDIATE_SIZE: u32 = 3072;
    pub const HIDDEN_ACT: &str = "gelu";
    pub const MAX_POSITION_EMBEDDINGS: u32 = 512;
    pub const TYPE_VOCAB_SIZE: u32 = 2;
    pub const LAYER_NORM_EPS: f64 = 1e-12;
    pub const POSITION_EMBEDDING_TYPE: &str = "absolute";
}

/// Checkpoint tensors a runtime never needs: the position-id buffer
/// (`0..max_position_embeddings`, which is what the rows are anyway) and the
/// pooler (a dense layer over `[CLS]` that sentence embeddings do not use).
/// The import reports the ones it skipped.
pub const SKIPPABLE: [&str; 2] = ["embeddings.position_ids", "pooler.*"];

fn skippable(name: &str) -> bool {
    let name = name.strip_prefix("bert.").unwrap_or(name);
    SKIPPABLE.iter().any(|s| match s.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == *s,
    })
}

/// `config.json`, read with `BertConfig`'s defaults for missing keys; a key
/// that is present must have the right type.
struct Keys<'a>(&'a Json);

impl Keys<'_> {
    fn u32_or(&self, key: &str, default: u32) -> Result<u32> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .with_context(|| {
                    format!("config.json: {key} = {v} is not a whole number in 0..2^32")
                }),
        }
    }

    fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .with_context(|| format!("config.json: {key} = {v} is not a number")),
        }
    }

    fn str_or<'s>(&'s self, key: &str, default: &'s str) -> Result<&'s str> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_str()
                .with_context(|| format!("config.json: {key} = {v} is not a string")),
        }
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .with_context(|| format!("config.json: {key} = {v} is not true or false")),
        }
    }
}

/// Mote's config fields and the `config.json` keys they come from.
const KEYS: [(&str, &str); 9] = [
    ("d_model", "hidden_size"),
    ("n_layers", "num_hidden_layers"),
    ("n_heads", "num_attention_heads"),
    ("n_kv_heads", "num_attention_heads"),
    ("d_ff", "intermediate_size"),
    ("vocab_size", "vocab_size"),
    ("max_seq", "max_position_embeddings"),
    ("n_token_types", "type_vocab_size"),
    ("norm_eps", "layer_norm_eps"),
];

/// Imports a BERT-family encoder from a checkpoint directory, keeping the model.
pub fn import_bert_dir(dir: &Path) -> Result<ModelBuilder> {
    Ok(import_bert(dir)?.model)
}

/// Imports a BERT-family encoder from a checkpoint directory.
pub fn import_bert(dir: &Path) -> Result<Imported> {
    let cfg_path = dir.join("config.json");
    let json: Json = serde_json::from_slice(
        &std::fs::read(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?,
    )
    .with_context(|| format!("parsing {}", cfg_path.display()))?;
    ensure!(json.is_object(), "config.json: not a JSON object");
    let keys = Keys(&json);
    let model_type = keys.str_or("model_type", "bert")?;
    ensure!(
        model_type == "bert",
        "config.json: model_type {model_type:?} is not supported (bert is)"
    );
    let act = match keys.str_or("hidden_act", defaults::HIDDEN_ACT)? {
        "gelu" => Activation::Gelu,
        "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
        "relu" => Activation::Relu,
        "silu" | "swish" => Activation::Silu,
        other => bail!("config.json: hidden_act {other:?} is not supported"),
    };
    let positions = keys.str_or("position_embedding_type", defaults::POSITION_EMBEDDING_TYPE)?;
    ensure!(
        positions == "absolute",
        "config.json: position_embedding_type {positions:?} is not supported (absolute is)"
    );
    for key in ["is_decoder", "add_cross_attention"] {
        ensure!(
            !keys.bool_or(key, false)?,
            "config.json: {key} = true is not supported (a bidirectional encoder is)"
        );
    }
    let d = keys.u32_or("hidden_size", defaults::HIDDEN_SIZE)?;
    let heads = keys.u32_or("num_attention_heads", defaults::NUM_ATTENTION_HEADS)?;
    ensure!(
        heads > 0 && d.is_multiple_of(heads),
        "config.json: hidden_size {d} is not a multiple of num_attention_heads {heads}"
    );
    let vocab_size = keys.u32_or("vocab_size", defaults::VOCAB_SIZE)?;
    let vocab = bert_vocab(dir, vocab_size)?;
    let find = |tok: &str| {
        vocab
            .as_ref()
            .and_then(|v| v.tokens.iter().position(|(t, _)| t == tok.as_bytes()))
            .map_or(NO_TOKEN, |i| i as u32)
    };
    let shape = Shape::mha(
        d,
        keys.u32_or("num_hidden_layers", defaults::NUM_HIDDEN_LAYERS)?,
        heads,
        keys.u32_or("intermediate_size", defaults::INTERMEDIATE_SIZE)?,
    )
    .vocab(vocab_size)
    .max_seq(keys.u32_or("max_position_embeddings", defaults::MAX_POSITION_EMBEDDINGS)?);
    let config = mote_core::Config {
        n_token_types: keys.u32_or("type_vocab_size", defaults::TYPE_VOCAB_SIZE)?,
        activation: act,
        norm_eps: keys.f64_or("layer_norm_eps", defaults::LAYER_NORM_EPS)? as f32,
        bos: find("[CLS]"),
        eos: find("[SEP]"),
        ..bert(shape)
    };
    check_config(&config, &cfg_path.display().to_string(), &KEYS)?;

    let st_path = dir.join("model.safetensors");
    let st_bytes =
        std::fs::read(&st_path).with_context(|| format!("reading {}", st_path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&st_bytes)
        .with_context(|| format!("parsing {}", st_path.display()))?;
    // In the order of their data in the file (the crate's `names()` has a
    // hash map's order), so the skipped and refused lists read the same
    // every run.
    let mut names: Vec<(usize, String)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (t.data().as_ptr() as usize, n))
        .collect();
    names.sort();
    let names: Vec<String> = names.into_iter().map(|(_, n)| n).collect();
    let prefix = if names.iter().any(|n| n.starts_with("bert.")) {
        "bert."
    } else {
        ""
    };
    let mut uses = Uses::new(names);
    let mut b = ModelBuilder::new(config);
    let mut put = |ours: &str, theirs: &str, want: &[u32]| -> Result<()> {
        let full = format!("{prefix}{theirs}");
        let t = st
            .tensor(&full)
            .with_context(|| format!("model.safetensors: tensor {full} missing"))?;
        ensure!(
            t.dtype() == safetensors::Dtype::F32,
            "model.safetensors: {full} has dtype {:?}, expected F32",
            t.dtype()
        );
        let dims: Vec<u32> = t
            .shape()
            .iter()
            .map(|&s| u32::try_from(s).unwrap_or(u32::MAX))
            .collect();
        check_shape("model.safetensors", &full, &dims, want, "config.json")?;
        let data: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        uses.mark(&full);
        b.add_f32(ours, &dims, &data)
    };
    let (d, ff) = (config.d_model, config.d_ff);
    put(
        "tok_emb",
        "embeddings.word_embeddings.weight",
        &[config.vocab_size, d],
    )?;
    put(
        "pos_emb",
        "embeddings.position_embeddings.weight",
        &[config.max_seq, d],
    )?;
    if config.n_token_types > 0 {
        put(
            "type_emb",
            "embeddings.token_type_embeddings.weight",
            &[config.n_token_types, d],
        )?;
    }
    put("emb_norm.w", "embeddings.LayerNorm.weight", &[d])?;
    put("emb_norm.b", "embeddings.LayerNorm.bias", &[d])?;
    for l in 0..config.n_layers {
        let p = format!("encoder.layer.{l}.");
        for (ours, theirs, want) in [
            ("wq", "attention.self.query.weight", &[d, d][..]),
            ("bq", "attention.self.query.bias", &[d]),
            ("wk", "attention.self.key.weight", &[d, d]),
            ("bk", "attention.self.key.bias", &[d]),
            ("wv", "attention.self.value.weight", &[d, d]),
            ("bv", "attention.self.value.bias", &[d]),
            ("wo", "attention.output.dense.weight", &[d, d]),
            ("bo", "attention.output.dense.bias", &[d]),
            ("attn_norm.w", "attention.output.LayerNorm.weight", &[d]),
            ("attn_norm.b", "attention.output.LayerNorm.bias", &[d]),
            ("w1", "intermediate.dense.weight", &[ff, d]),
            ("b1", "intermediate.dense.bias", &[ff]),
            ("w2", "output.dense.weight", &[d, ff]),
            ("b2", "output.dense.bias", &[d]),
            ("ffn_norm.w", "output.LayerNorm.weight", &[d]),
            ("ffn_norm.b", "output.LayerNorm.bias", &[d]),
        ] {
            put(&format!("L{l}.{ours}"), &format!("{p}{theirs}"), want)?;
        }
    }
    let skipped = uses.finish("model.safetensors", "BERT", skippable)?;
    if let Some(v) = vocab {
        b.set_vocab(v);
    }
    Ok(Imported { model: b, skipped })
}

/// The WordPiece vocabulary from `tokenizer.json` (or `vocab.txt`), if present.
fn bert_vocab(dir: &Path, vocab_size: u32) -> Result<Option<VocabData>> {
    let tj = dir.join("tokenizer.json");
    let (tokens, lowercase, strip, unk): (Vec<String>, bool, bool, String) = if tj.exists() {
        let j: Json =
            serde_json::from_slice(&std::fs::read(&tj)?).context("parsing tokenizer.json")?;
        let model = j.get("model").context("tokenizer.json: no model")?;
        let ty = model.get("type").and_then(Json::as_str).unwrap_or("");
        ensure!(
            ty == "WordPiece",
            "tokenizer.json: model type {ty:?} (expected WordPiece for BERT)"
        );
        let map = model
            .get("vocab")
            .and_then(Json::as_object)
            .context("tokenizer.json: no vocab")?;
        let mut tokens = vec![String::new(); map.len()];
        for (t, id) in map {
            let id = id
                .as_u64()
                .context("tokenizer.json: vocab id not an integer")? as usize;
            ensure!(
                id < tokens.len(),
                "tokenizer.json: vocab id {id} out of range"
            );
            tokens[id] = t.clone();
        }
        let norm = j.get("normalizer").cloned().unwrap_or(Json::Null);
        let lowercase = norm
            .get("lowercase")
            .and_then(Json::as_bool)
            .unwrap_or(true);
        let strip = norm
            .get("strip_accents")
            .and_then(Json::as_bool)
            .unwrap_or(lowercase);
        let unk = model
            .get("unk_token")
            .and_then(Json::as_str)
            .unwrap_or("[UNK]")
            .to_string();
        (tokens, lowercase, strip, unk)
    } else if dir.join("vocab.txt").exists() {
        let text = std::fs::read_to_string(dir.join("vocab.txt"))?;
        (
            text.lines().map(str::to_string).collect(),
            true,
            true,
            "[UNK]".to_string(),
        )
    } else {
        return Ok(None);
    };
    ensure!(
        tokens.len() == vocab_size as usize,
        "tokenizer has {} tokens, config.json says {vocab_size}",
        tokens.len()
    );
    let is_special = |t: &str| {
        t.starts_with('[')
            && t.ends_with(']')
            && t.len() > 2
            && !t.contains(' ')
            && t[1..t.len() - 1]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
    };
    let unk_id = tokens
        .iter()
        .position(|t| *t == unk)
        .map_or(NO_TOKEN, |i| i as u32);
    Ok(Some(VocabData {
        kind: TokenizerKind::WordPiece,
        flags: if lowercase { FLAG_LOWERCASE } else { 0 }
            | if strip { FLAG_STRIP_ACCENTS } else { 0 },
        pre_tokenizer: PreTokenizer::Bert,
        tokens: tokens
            .into_iter()
            .map(|t| {
                let k = if is_special(&t) {
                    kind::SPECIAL
                } else {
                    kind::NORMAL
                };
                (t.into_bytes(), k)
            })
            .collect(),
        merges: Vec::new(),
        unk_id,
        chat_template: String::new(),
    }))
}
