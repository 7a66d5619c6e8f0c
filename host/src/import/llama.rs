//! The Llama mapping of a GGUF file (SmolLM2, TinyLlama, Llama 2): the
//! `llama.*` metadata to a [`Config`](mote_core::Config), the `blk.N.*`
//! tensors to Mote's names (dequantised to f32), and the GPT-2 byte-level
//! BPE vocabulary. The container itself is read by [`super::gguf`].

use super::gguf::{Gguf, Value};
use super::{check_config, check_shape, Imported, Uses};
use crate::family::{llama, Shape};
use crate::writer::{ModelBuilder, VocabData};
use anyhow::{bail, ensure, Context, Result};
use mote_core::config::NO_TOKEN;
use mote_core::vocab::{kind, PreTokenizer, TokenizerKind};
use std::collections::HashMap;

/// Imports a Llama-family decoder from GGUF, keeping the model.
pub fn import_gguf(g: &Gguf) -> Result<ModelBuilder> {
    Ok(import_llama(g)?.model)
}

/// Imports a Llama-family decoder from GGUF, dequantising every tensor to
/// f32. Every tensor of the file is used (none is on a skip list: a
/// `rope_freqs.weight`, say, changes every rotation).
pub fn import_llama(g: &Gguf) -> Result<Imported> {
    let arch = g.opt_str("general.architecture")?.unwrap_or("");
    ensure!(
        arch == "llama",
        "GGUF architecture {arch:?} is not supported (llama is)"
    );
    let key = |k: &str| format!("{arch}.{k}");
    // Every number first, so a bad one is reported before any tensor is read.
    let d = g.u32(&key("embedding_length"))?;
    let heads = g.u32(&key("attention.head_count"))?;
    let kv_heads = g.opt_u32(&key("attention.head_count_kv"))?.unwrap_or(heads);
    ensure!(
        heads > 0 && d.is_multiple_of(heads),
        "GGUF: embedding_length {d} not a multiple of head_count {heads}"
    );
    let head_dim = g
        .opt_u32(&key("attention.key_length"))?
        .unwrap_or(d / heads);
    if let Some(v) = g.opt_u32(&key("attention.value_length"))? {
        ensure!(
            v == head_dim,
            "GGUF: {} = {v} differs from the key length {head_dim} (not supported)",
            key("attention.value_length")
        );
    }
    if let Some(r) = g.opt_u32(&key("rope.dimension_count"))? {
        ensure!(
            r == head_dim,
            "GGUF: {} = {r}: rotating part of a head is not supported (all {head_dim} channels are)",
            key("rope.dimension_count")
        );
    }
    if let Some(s) = g.opt_str(&key("rope.scaling.type"))? {
        ensure!(
            s == "none",
            "GGUF: {} = {s:?}: scaled rotary positions are not supported",
            key("rope.scaling.type")
        );
    }
    let n_layers = g.u32(&key("block_count"))?;
    let d_ff = g.u32(&key("feed_forward_length"))?;
    let max_seq = g.u32(&key("context_length"))?;
    let rope_theta = g.opt_f64(&key("rope.freq_base"))?.unwrap_or(10000.0);
    let norm_eps = g
        .opt_f64(&key("attention.layer_norm_rms_epsilon"))?
        .unwrap_or(1e-5);
    let bos = g
        .opt_u32("tokenizer.ggml.bos_token_id")?
        .unwrap_or(NO_TOKEN);
    let eos = g
        .opt_u32("tokenizer.ggml.eos_token_id")?
        .unwrap_or(NO_TOKEN);
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
        "GGUF: the tokenizer has {} tokens, token_embd.weight has {vocab_size} rows",
        tokens.len()
    );
    if let Some(v) = g.opt_u32(&key("vocab_size"))? {
        ensure!(
            v == vocab_size,
            "GGUF: {} = {v}, token_embd.weight has {vocab_size} rows",
            key("vocab_size")
        );
    }
    let shape = Shape {
        d_model: d,
        n_layers,
        n_heads: heads,
        n_kv_heads: kv_heads,
        head_dim,
        d_ff,
        vocab_size,
        max_seq,
    };
    let config = mote_core::Config {
        rope_theta: rope_theta as f32,
        norm_eps: norm_eps as f32,
        tied_embeddings: g.tensor("output.weight").is_none(),
        bos,
        eos,
        ..llama(shape)
    };
    let keys = [
        ("d_model", key("embedding_length")),
        ("n_layers", key("block_count")),
        ("n_heads", key("attention.head_count")),
        ("n_kv_heads", key("attention.head_count_kv")),
        ("head_dim", key("attention.key_length")),
        ("d_ff", key("feed_forward_length")),
        ("max_seq", key("context_length")),
        ("rope_theta", key("rope.freq_base")),
        ("norm_eps", key("attention.layer_norm_rms_epsilon")),
        ("bos", "tokenizer.ggml.bos_token_id".to_string()),
        ("eos", "tokenizer.ggml.eos_token_id".to_string()),
    ];
    let keys: Vec<(&str, &str)> = keys.iter().map(|(f, k)| (*f, k.as_str())).collect();
    check_config(&config, "GGUF", &keys)?;

    let mut uses = Uses::new(g.tensors.iter().map(|t| t.name.clone()).collect());
    let mut b = ModelBuilder::new(config);
    let mut put = |ours: &str, theirs: &str, want: &[u32]| -> Result<()> {
        let t = g
            .tensor(theirs)
            .with_context(|| format!("GGUF tensor {theirs} missing"))?;
        check_shape("GGUF", theirs, &t.dims(), want, "the metadata")?;
        uses.mark(theirs);
        b.add_f32(ours, &t.dims(), &g.dequantize(t)?)
    };
    let (q, kv) = (config.q_dim() as u32, config.kv_dim() as u32);
    put("tok_emb", "token_embd.weight", &[vocab_size, d])?;
    for l in 0..n_layers {
        for (ours, theirs, want) in [
            ("attn_norm.w", "attn_norm.weight", &[d][..]),
            ("wq", "attn_q.weight", &[q, d]),
            ("wk", "attn_k.weight", &[kv, d]),
            ("wv", "attn_v.weight", &[kv, d]),
            ("wo", "attn_output.weight", &[d, q]),
            ("ffn_norm.w", "ffn_norm.weight", &[d]),
            ("w1", "ffn_gate.weight", &[d_ff, d]),
            ("w3", "ffn_up.weight", &[d_ff, d]),
            ("w2", "ffn_down.weight", &[d, d_ff]),
        ] {
            put(&format!("L{l}.{ours}"), &format!("blk.{l}.{theirs}"), want)?;
        }
    }
    put("out_norm.w", "output_norm.weight", &[d])?;
    if !config.tied_embeddings {
        put("lm_head", "output.weight", &[vocab_size, d])?;
    }
    let skipped = uses.finish("GGUF", "Llama", |_| false)?;
    b.set_vocab(gguf_vocab(g, tokens)?);
    Ok(Imported { model: b, skipped })
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
