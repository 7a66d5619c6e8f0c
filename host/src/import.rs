//! Checkpoint import: HF BERT-family safetensors (+ `config.json`,
//! `tokenizer.json`) and Llama-family GGUF, to a [`ModelBuilder`] in f32.

use crate::gguf::{Gguf, Value};
use crate::writer::{ModelBuilder, VocabData};
use anyhow::{bail, ensure, Context, Result};
use mote_core::config::{
    Activation, Architecture, Config, NormKind, Pooling, PositionKind, NO_TOKEN,
};
use mote_core::vocab::{kind, PreTokenizer, TokenizerKind, FLAG_LOWERCASE, FLAG_STRIP_ACCENTS};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::Path;

/// Imports a checkpoint: a directory with `model.safetensors` + `config.json`
/// (+ `tokenizer.json`), a `.safetensors` file inside such a directory, or a `.gguf` file.
pub fn import(path: &Path) -> Result<ModelBuilder> {
    if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    if path.is_dir() {
        return import_bert_dir(path);
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "gguf" => import_gguf(&Gguf::read(path)?),
        "safetensors" => {
            import_bert_dir(path.parent().context("safetensors file has no directory")?)
        }
        _ => bail!(
            "{}: expected a checkpoint directory, a .safetensors or a .gguf file",
            path.display()
        ),
    }
}

fn json_u32(cfg: &Json, key: &str) -> Result<u32> {
    cfg.get(key)
        .and_then(Json::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .with_context(|| format!("config.json: `{key}` missing or not an integer"))
}

/// Imports a BERT-family encoder (BERT, MiniLM) from an HF checkpoint directory.
pub fn import_bert_dir(dir: &Path) -> Result<ModelBuilder> {
    let cfg_path = dir.join("config.json");
    let cfg: Json = serde_json::from_slice(
        &std::fs::read(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?,
    )
    .with_context(|| format!("parsing {}", cfg_path.display()))?;
    let model_type = cfg
        .get("model_type")
        .and_then(Json::as_str)
        .unwrap_or("bert");
    ensure!(
        model_type == "bert",
        "config.json: model_type {model_type:?} is not supported (bert is)"
    );
    let act = match cfg
        .get("hidden_act")
        .and_then(Json::as_str)
        .unwrap_or("gelu")
    {
        "gelu" => Activation::Gelu,
        "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
        "relu" => Activation::Relu,
        other => bail!("config.json: hidden_act {other:?} is not supported"),
    };
    let d = json_u32(&cfg, "hidden_size")?;
    let heads = json_u32(&cfg, "num_attention_heads")?;
    ensure!(
        heads > 0 && d.is_multiple_of(heads),
        "hidden_size {d} is not a multiple of num_attention_heads {heads}"
    );
    let vocab_size = json_u32(&cfg, "vocab_size")?;

    let st_path = dir.join("model.safetensors");
    let st_bytes =
        std::fs::read(&st_path).with_context(|| format!("reading {}", st_path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&st_bytes)
        .with_context(|| format!("parsing {}", st_path.display()))?;
    let prefix = if st.names().iter().any(|n| n.starts_with("bert.")) {
        "bert."
    } else {
        ""
    };
    let get = |name: &str| -> Result<(Vec<u32>, Vec<f32>)> {
        let full = format!("{prefix}{name}");
        let t = st
            .tensor(&full)
            .with_context(|| format!("safetensors: tensor {full} missing"))?;
        ensure!(
            t.dtype() == safetensors::Dtype::F32,
            "tensor {full}: dtype {:?}, expected F32",
            t.dtype()
        );
        let data = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((t.shape().iter().map(|&s| s as u32).collect(), data))
    };

    let vocab = bert_vocab(dir, vocab_size)?;
    let find = |tok: &str| {
        vocab
            .as_ref()
            .and_then(|v| v.tokens.iter().position(|(t, _)| t == tok.as_bytes()))
    };
    let config = Config {
        arch: Architecture::Encoder,
        d_model: d,
        n_layers: json_u32(&cfg, "num_hidden_layers")?,
        n_heads: heads,
        n_kv_heads: heads,
        head_dim: d / heads,
        d_ff: json_u32(&cfg, "intermediate_size")?,
        vocab_size,
        max_seq: json_u32(&cfg, "max_position_embeddings")?,
        n_token_types: json_u32(&cfg, "type_vocab_size").unwrap_or(0),
        norm: NormKind::LayerNorm,
        pre_norm: false,
        activation: act,
        positions: PositionKind::Learned,
        rope_theta: 10000.0,
        norm_eps: cfg
            .get("layer_norm_eps")
            .and_then(Json::as_f64)
            .unwrap_or(1e-12) as f32,
        tied_embeddings: false,
        causal: false,
        pooling: Pooling::Mean,
        bos: find("[CLS]").map_or(NO_TOKEN, |i| i as u32),
        eos: find("[SEP]").map_or(NO_TOKEN, |i| i as u32),
        bias: true,
        embedding_norm: true,
        n_classes: 0,
        input_dim: 0,
        kv_cache: mote_core::KvCache::F32,
        integer: false,
    };
    let mut b = ModelBuilder::new(config);
    let mut put = |ours: &str, theirs: &str| -> Result<()> {
        let (dims, data) = get(theirs)?;
        b.add_f32(ours, &dims, &data)
    };
    put("tok_emb", "embeddings.word_embeddings.weight")?;
    put("pos_emb", "embeddings.position_embeddings.weight")?;
    if config.n_token_types > 0 {
        put("type_emb", "embeddings.token_type_embeddings.weight")?;
    }
    put("emb_norm.w", "embeddings.LayerNorm.weight")?;
    put("emb_norm.b", "embeddings.LayerNorm.bias")?;
    for l in 0..config.n_layers {
        let p = format!("encoder.layer.{l}.");
        for (ours, theirs) in [
            ("wq", "attention.self.query.weight"),
            ("bq", "attention.self.query.bias"),
            ("wk", "attention.self.key.weight"),
            ("bk", "attention.self.key.bias"),
            ("wv", "attention.self.value.weight"),
            ("bv", "attention.self.value.bias"),
            ("wo", "attention.output.dense.weight"),
            ("bo", "attention.output.dense.bias"),
            ("attn_norm.w", "attention.output.LayerNorm.weight"),
            ("attn_norm.b", "attention.output.LayerNorm.bias"),
            ("w1", "intermediate.dense.weight"),
            ("b1", "intermediate.dense.bias"),
            ("w2", "output.dense.weight"),
            ("b2", "output.dense.bias"),
            ("ffn_norm.w", "output.LayerNorm.weight"),
            ("ffn_norm.b", "output.LayerNorm.bias"),
        ] {
            put(&format!("L{l}.{ours}"), &format!("{p}{theirs}"))?;
        }
    }
    if let Some(v) = vocab {
        b.set_vocab(v);
    }
    Ok(b)
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

/// Imports a Llama-family decoder from GGUF, dequantising every tensor to f32.
pub fn import_gguf(g: &Gguf) -> Result<ModelBuilder> {
    let arch = g
        .get("general.architecture")
        .and_then(Value::as_str)
        .unwrap_or("");
    ensure!(
        arch == "llama",
        "GGUF architecture {arch:?} is not supported (llama is)"
    );
    let key = |k: &str| format!("{arch}.{k}");
    let d = g.u64(&key("embedding_length"))? as u32;
    let heads = g.u64(&key("attention.head_count"))? as u32;
    let kv_heads = g
        .get(&key("attention.head_count_kv"))
        .and_then(Value::as_u64)
        .unwrap_or(heads as u64) as u32;
    ensure!(
        heads > 0 && d.is_multiple_of(heads),
        "embedding_length {d} not a multiple of head_count {heads}"
    );
    let head_dim = g
        .get(&key("attention.key_length"))
        .and_then(Value::as_u64)
        .map_or(d / heads, |v| v as u32);
    let tokens = g
        .get("tokenizer.ggml.tokens")
        .and_then(Value::as_array)
        .context("GGUF has no tokenizer.ggml.tokens")?;
    let emb = g
        .tensor("token_embd.weight")
        .context("GGUF has no token_embd.weight")?;
    let vocab_size = *emb
        .dims()
        .first()
        .context("token_embd.weight has no dims")?;
    ensure!(
        tokens.len() == vocab_size as usize,
        "tokenizer has {} tokens, embedding has {vocab_size} rows",
        tokens.len()
    );
    let tok_id = |k: &str| {
        g.get(k)
            .and_then(Value::as_u64)
            .map_or(NO_TOKEN, |v| v as u32)
    };
    let config = Config {
        arch: Architecture::Decoder,
        d_model: d,
        n_layers: g.u64(&key("block_count"))? as u32,
        n_heads: heads,
        n_kv_heads: kv_heads,
        head_dim,
        d_ff: g.u64(&key("feed_forward_length"))? as u32,
        vocab_size,
        max_seq: g.u64(&key("context_length"))? as u32,
        n_token_types: 0,
        norm: NormKind::RmsNorm,
        pre_norm: true,
        activation: Activation::SwiGlu,
        positions: PositionKind::Rope,
        rope_theta: g
            .get(&key("rope.freq_base"))
            .and_then(Value::as_f64)
            .unwrap_or(10000.0) as f32,
        norm_eps: g
            .get(&key("attention.layer_norm_rms_epsilon"))
            .and_then(Value::as_f64)
            .unwrap_or(1e-5) as f32,
        tied_embeddings: g.tensor("output.weight").is_none(),
        causal: true,
        pooling: Pooling::Mean,
        bos: tok_id("tokenizer.ggml.bos_token_id"),
        eos: tok_id("tokenizer.ggml.eos_token_id"),
        bias: false,
        embedding_norm: false,
        n_classes: 0,
        input_dim: 0,
        kv_cache: mote_core::KvCache::F32,
        integer: false,
    };
    let mut b = ModelBuilder::new(config);
    let mut put = |ours: &str, theirs: &str| -> Result<()> {
        let t = g
            .tensor(theirs)
            .with_context(|| format!("GGUF tensor {theirs} missing"))?;
        b.add_f32(ours, &t.dims(), &g.dequantize(t)?)
    };
    put("tok_emb", "token_embd.weight")?;
    for l in 0..config.n_layers {
        for (ours, theirs) in [
            ("attn_norm.w", "attn_norm.weight"),
            ("wq", "attn_q.weight"),
            ("wk", "attn_k.weight"),
            ("wv", "attn_v.weight"),
            ("wo", "attn_output.weight"),
            ("ffn_norm.w", "ffn_norm.weight"),
            ("w1", "ffn_gate.weight"),
            ("w3", "ffn_up.weight"),
            ("w2", "ffn_down.weight"),
        ] {
            put(&format!("L{l}.{ours}"), &format!("blk.{l}.{theirs}"))?;
        }
    }
    put("out_norm.w", "output_norm.weight")?;
    if !config.tied_embeddings {
        put("lm_head", "output.weight")?;
    }
    b.set_vocab(gguf_vocab(g, tokens)?);
    Ok(b)
}

fn gguf_vocab(g: &Gguf, tokens: &[Value]) -> Result<VocabData> {
    let model = g
        .get("tokenizer.ggml.model")
        .and_then(Value::as_str)
        .unwrap_or("");
    ensure!(
        model == "gpt2",
        "GGUF tokenizer model {model:?} is not supported (gpt2 byte-level BPE is)"
    );
    let types = g
        .get("tokenizer.ggml.token_type")
        .and_then(Value::as_array)
        .unwrap_or(&[]);
    let mut ids = HashMap::with_capacity(tokens.len());
    let mut out = Vec::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        let s = t.as_str().context("GGUF token is not a string")?;
        ids.insert(s, i as u32);
        // GGUF token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
        let ty = types.get(i).and_then(Value::as_u64).unwrap_or(1);
        let k = if ty == 3 || ty == 4 {
            kind::SPECIAL
        } else {
            kind::NORMAL
        };
        out.push((s.as_bytes().to_vec(), k));
    }
    let mut merges = Vec::new();
    for m in g
        .get("tokenizer.ggml.merges")
        .and_then(Value::as_array)
        .unwrap_or(&[])
    {
        let m = m.as_str().context("GGUF merge is not a string")?;
        let (a, b) = m
            .split_once(' ')
            .with_context(|| format!("GGUF merge {m:?} has no space"))?;
        let (Some(&ia), Some(&ib)) = (ids.get(a), ids.get(b)) else {
            bail!("GGUF merge {m:?} names a token not in the vocabulary");
        };
        merges.push((ia, ib));
    }
    let pre = match g
        .get("tokenizer.ggml.pre")
        .and_then(Value::as_str)
        .unwrap_or("gpt2")
    {
        "smollm" | "starcoder" | "refact" => PreTokenizer::Gpt2Digits,
        "gpt2" | "default" => PreTokenizer::Gpt2,
        other => {
            bail!("GGUF pre-tokenizer {other:?} is not supported (gpt2, smollm, starcoder are)")
        }
    };
    Ok(VocabData {
        kind: TokenizerKind::ByteLevelBpe,
        flags: 0,
        pre_tokenizer: pre,
        tokens: out,
        merges,
        unk_id: NO_TOKEN,
        chat_template: g
            .get("tokenizer.chat_template")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}
