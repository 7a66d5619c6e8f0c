//! Hostile and incomplete checkpoints at the import doors (issue 16): a
//! BERT `config.json` missing keys takes Hugging Face's defaults, a
//! checkpoint tensor the importer did not use is refused unless it is on
//! the short list no runtime needs (and then reported), and GGUF numbers
//! above `u32::MAX` are refused by key and value, never truncated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mote_core::config::{Activation, NO_TOKEN};
use mote_host::import::{import_checkpoint, Imported};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::path::{Path, PathBuf};

/// A fresh directory of this test's own.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mote-import-doors-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn error_of(r: anyhow::Result<Imported>) -> String {
    match r {
        Ok(_) => panic!("imported; expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

// ---- BERT --------------------------------------------------------------

const D: usize = 8;
const FF: usize = 16;
const VOCAB: usize = 10;
const POS: usize = 6;

/// Every key of a tiny BERT, as a Hugging Face export writes them.
const FULL_CONFIG: &str = r#"{"model_type": "bert", "hidden_act": "gelu", "hidden_size": 8,
"num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 16, "vocab_size": 10,
"max_position_embeddings": 6, "type_vocab_size": 2, "layer_norm_eps": 1e-12}"#;

/// The tensors of that BERT (values distinct per tensor), plus `extra`.
fn bert_tensors(extra: &[(&str, Dtype, Vec<usize>)]) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    let mut t: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![VOCAB, D]),
        ("embeddings.position_embeddings.weight".into(), vec![POS, D]),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, D]),
        ("embeddings.LayerNorm.weight".into(), vec![D]),
        ("embeddings.LayerNorm.bias".into(), vec![D]),
    ];
    for (name, shape) in [
        ("attention.self.query.weight", vec![D, D]),
        ("attention.self.query.bias", vec![D]),
        ("attention.self.key.weight", vec![D, D]),
        ("attention.self.key.bias", vec![D]),
        ("attention.self.value.weight", vec![D, D]),
        ("attention.self.value.bias", vec![D]),
        ("attention.output.dense.weight", vec![D, D]),
        ("attention.output.dense.bias", vec![D]),
        ("attention.output.LayerNorm.weight", vec![D]),
        ("attention.output.LayerNorm.bias", vec![D]),
        ("intermediate.dense.weight", vec![FF, D]),
        ("intermediate.dense.bias", vec![FF]),
        ("output.dense.weight", vec![D, FF]),
        ("output.dense.bias", vec![D]),
        ("output.LayerNorm.weight", vec![D]),
        ("output.LayerNorm.bias", vec![D]),
    ] {
        t.push((format!("encoder.layer.0.{name}"), shape));
    }
    let mut out: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = t
        .into_iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|i| (k * 100 + i) as f32 * 1e-3).collect();
            (name, Dtype::F32, shape, bytemuck::cast_slice(&v).to_vec())
        })
        .collect();
    for (name, dtype, shape) in extra {
        let n: usize = shape.iter().product::<usize>() * dtype.bitsize() / 8;
        out.push((name.to_string(), *dtype, shape.clone(), vec![0u8; n]));
    }
    out
}

/// A checkpoint directory: `config.json`, `model.safetensors`, `vocab.txt`.
fn bert_dir(name: &str, config: &str, extra: &[(&str, Dtype, Vec<usize>)]) -> PathBuf {
    let d = dir(name);
    std::fs::write(d.join("config.json"), config).unwrap();
    let tensors = bert_tensors(extra);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, dt, s, b)| (n.clone(), TensorView::new(*dt, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(
        d.join("model.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
    let vocab = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "c", "d", "e", "##s",
    ];
    std::fs::write(d.join("vocab.txt"), vocab.join("\n")).unwrap();
    d
}

/// Without `type_vocab_size` (nor `hidden_act`, `layer_norm_eps`), the
/// config takes `BertConfig`'s defaults: the token-type embeddings are
/// imported (they used to be dropped, changing every embedding), and the
/// model is byte for byte the one of the complete config.
#[test]
fn missing_bert_keys_take_hugging_face_defaults() {
    let full = import_checkpoint(&bert_dir("full", FULL_CONFIG, &[])).unwrap();
    let partial = r#"{"model_type": "bert", "hidden_size": 8, "num_attention_heads": 2,
        "num_hidden_layers": 1, "intermediate_size": 16, "vocab_size": 10,
        "max_position_embeddings": 6}"#;
    let part = import_checkpoint(&bert_dir("partial", partial, &[])).unwrap();
    let cfg = *part.model.config();
    assert_eq!(cfg.n_token_types, 2);
    assert_eq!(cfg.norm_eps, 1e-12);
    assert_eq!(cfg.activation, Activation::Gelu);
    assert_eq!((cfg.bos, cfg.eos), (2, 3));
    assert_ne!(cfg.bos, NO_TOKEN);
    assert_eq!(part.model.to_bytes(), full.model.to_bytes());
}

/// A missing dimension takes the default too (768 for `hidden_size`), and
/// the tensors then contradict it: the error names the checkpoint tensor,
/// its shape and the shape the config implies.
#[test]
fn a_default_the_tensors_contradict_names_the_tensor() {
    let cfg = FULL_CONFIG.replace(r#""hidden_size": 8,"#, "");
    let err = error_of(import_checkpoint(&bert_dir("no-hidden", &cfg, &[])));
    assert!(
        err.contains(
            "model.safetensors: embeddings.word_embeddings.weight has shape [10, 8], \
             config.json implies [10, 768]"
        ),
        "{err}"
    );
}

/// The position-id buffer and the pooler are skipped, and reported.
#[test]
fn tensors_no_runtime_needs_are_skipped_and_reported() {
    let extra = [
        ("embeddings.position_ids", Dtype::I64, vec![1, POS]),
        ("pooler.dense.weight", Dtype::F32, vec![D, D]),
        ("pooler.dense.bias", Dtype::F32, vec![D]),
    ];
    let with = import_checkpoint(&bert_dir("pooler", FULL_CONFIG, &extra)).unwrap();
    let mut skipped = with.skipped.clone();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            "embeddings.position_ids",
            "pooler.dense.bias",
            "pooler.dense.weight"
        ]
    );
    let without = import_checkpoint(&bert_dir("no-pooler", FULL_CONFIG, &[])).unwrap();
    assert!(without.skipped.is_empty());
    assert_eq!(with.model.to_bytes(), without.model.to_bytes());
}

/// Any other tensor the import did not use is refused by name: a
/// classifier head, or token-type embeddings a config says are absent.
#[test]
fn an_unused_tensor_is_refused_by_name() {
    let extra = [("classifier.weight", Dtype::F32, vec![3, D])];
    let err = error_of(import_checkpoint(&bert_dir("head", FULL_CONFIG, &extra)));
    assert!(
        err.contains("1 tensor(s) the BERT import does not use: classifier.weight"),
        "{err}"
    );
    let no_types = FULL_CONFIG.replace(r#""type_vocab_size": 2"#, r#""type_vocab_size": 0"#);
    let err = error_of(import_checkpoint(&bert_dir("types-0", &no_types, &[])));
    assert!(
        err.contains("embeddings.token_type_embeddings.weight"),
        "{err}"
    );
}

/// A key that is present must be right: its type, its range, its meaning.
#[test]
fn a_bad_bert_key_is_named() {
    for (from, to, want) in [
        (
            r#""hidden_size": 8"#,
            r#""hidden_size": "eight""#,
            r#"config.json: hidden_size = "eight" is not a whole number"#,
        ),
        (
            r#""num_hidden_layers": 1"#,
            r#""num_hidden_layers": 0"#,
            "config.json: num_hidden_layers = 0 is not a valid model (Mote's n_layers)",
        ),
        (
            r#""vocab_size": 10"#,
            r#""vocab_size": 4294967296"#,
            "config.json: vocab_size = 4294967296 is not a whole number in 0..2^32",
        ),
        (
            r#""layer_norm_eps": 1e-12"#,
            r#""layer_norm_eps": -1"#,
            "config.json: layer_norm_eps = -1 is not a valid model (Mote's norm_eps)",
        ),
        (
            r#""hidden_act": "gelu""#,
            r#""hidden_act": "gelu", "position_embedding_type": "relative_key""#,
            "position_embedding_type \"relative_key\" is not supported",
        ),
    ] {
        let cfg = FULL_CONFIG.replace(from, to);
        assert_ne!(cfg, FULL_CONFIG);
        let err = error_of(import_checkpoint(&bert_dir("bad-key", &cfg, &[])));
        assert!(err.contains(want), "{to}: {err}");
    }
}

/// A path that holds no checkpoint says what it holds.
#[test]
fn a_path_that_is_no_checkpoint_says_so() {
    let d = dir("mote");
    let m = d.join("model.mote");
    std::fs::write(&m, b"MOTE....").unwrap();
    assert!(error_of(import_checkpoint(&m)).contains("already a .mote model"));
    let g = d.join("x.gguf");
    std::fs::write(&g, b"GGUX").unwrap();
    assert!(error_of(import_checkpoint(&g)).contains("not a GGUF file"));
    let empty = d.join("empty.mote");
    std::fs::write(&empty, b"").unwrap();
    assert!(
        error_of(import_checkpoint(&empty)).contains("not a .mote model (empty, or no MOTE magic)")
    );
    assert_eq!(
        error_of(import_checkpoint(Path::new("/no/such/path"))),
        "/no/such/path does not exist"
    );
}

// ---- GGUF (Llama) ------------------------------------------------------

enum Meta {
    U32(u32),
    U64(u64),
    F32(f32),
    Str(&'static str),
    Strs(Vec<&'static str>),
}

/// A GGUF v3 file of these metadata and f32 tensors (`ne`: GGUF's order).
fn gguf(meta: &[(&str, Meta)], tensors: &[(&str, Vec<u64>)]) -> Vec<u8> {
    fn string(f: &mut Vec<u8>, s: &str) {
        f.extend_from_slice(&(s.len() as u64).to_le_bytes());
        f.extend_from_slice(s.as_bytes());
    }
    let mut f = Vec::new();
    f.extend_from_slice(b"GGUF");
    f.extend_from_slice(&3u32.to_le_bytes());
    f.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    f.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    for (k, v) in meta {
        string(&mut f, k);
        match v {
            Meta::U32(v) => {
                f.extend_from_slice(&4u32.to_le_bytes());
                f.extend_from_slice(&v.to_le_bytes());
            }
            Meta::U64(v) => {
                f.extend_from_slice(&10u32.to_le_bytes());
                f.extend_from_slice(&v.to_le_bytes());
            }
            Meta::F32(v) => {
                f.extend_from_slice(&6u32.to_le_bytes());
                f.extend_from_slice(&v.to_le_bytes());
            }
            Meta::Str(s) => {
                f.extend_from_slice(&8u32.to_le_bytes());
                string(&mut f, s);
            }
            Meta::Strs(v) => {
                f.extend_from_slice(&9u32.to_le_bytes());
                f.extend_from_slice(&8u32.to_le_bytes());
                f.extend_from_slice(&(v.len() as u64).to_le_bytes());
                for s in v {
                    string(&mut f, s);
                }
            }
        }
    }
    let mut offset = 0u64;
    let mut data = Vec::new();
    for (k, (name, ne)) in tensors.iter().enumerate() {
        string(&mut f, name);
        f.extend_from_slice(&(ne.len() as u32).to_le_bytes());
        for d in ne {
            f.extend_from_slice(&d.to_le_bytes());
        }
        f.extend_from_slice(&0u32.to_le_bytes()); // F32
        f.extend_from_slice(&offset.to_le_bytes());
        let n: u64 = ne.iter().product();
        for i in 0..n {
            data.extend_from_slice(&((k as f32) + i as f32 * 0.01).to_le_bytes());
        }
        while data.len() % 32 != 0 {
            data.push(0);
        }
        offset = data.len() as u64;
    }
    while f.len() % 32 != 0 {
        f.push(0);
    }
    f.extend_from_slice(&data);
    f
}

/// A one-layer Llama: d 4, 2 heads of 2, 1 key/value head, d_ff 8, 4 tokens.
fn llama_meta() -> Vec<(&'static str, Meta)> {
    vec![
        ("general.architecture", Meta::Str("llama")),
        ("llama.embedding_length", Meta::U32(4)),
        ("llama.attention.head_count", Meta::U32(2)),
        ("llama.attention.head_count_kv", Meta::U32(1)),
        ("llama.block_count", Meta::U32(1)),
        ("llama.feed_forward_length", Meta::U32(8)),
        ("llama.context_length", Meta::U32(16)),
        ("llama.rope.freq_base", Meta::F32(10000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Meta::F32(1e-5)),
        ("tokenizer.ggml.model", Meta::Str("gpt2")),
        (
            "tokenizer.ggml.tokens",
            Meta::Strs(vec!["a", "b", "c", "ab"]),
        ),
        ("tokenizer.ggml.merges", Meta::Strs(vec!["a b"])),
        ("tokenizer.ggml.bos_token_id", Meta::U32(0)),
        ("tokenizer.ggml.eos_token_id", Meta::U32(1)),
    ]
}

fn llama_tensors() -> Vec<(&'static str, Vec<u64>)> {
    vec![
        ("token_embd.weight", vec![4, 4]),
        ("blk.0.attn_norm.weight", vec![4]),
        ("blk.0.attn_q.weight", vec![4, 4]),
        ("blk.0.attn_k.weight", vec![4, 2]),
        ("blk.0.attn_v.weight", vec![4, 2]),
        ("blk.0.attn_output.weight", vec![4, 4]),
        ("blk.0.ffn_norm.weight", vec![4]),
        ("blk.0.ffn_gate.weight", vec![4, 8]),
        ("blk.0.ffn_up.weight", vec![4, 8]),
        ("blk.0.ffn_down.weight", vec![8, 4]),
        ("output_norm.weight", vec![4]),
    ]
}

fn import_gguf_bytes(name: &str, bytes: Vec<u8>) -> anyhow::Result<Imported> {
    let p = dir(name).join("m.gguf");
    std::fs::write(&p, bytes).unwrap();
    import_checkpoint(&p)
}

#[test]
fn a_small_llama_gguf_imports_and_loads() {
    let out = import_gguf_bytes("llama", gguf(&llama_meta(), &llama_tensors())).unwrap();
    assert!(out.skipped.is_empty());
    let cfg = *out.model.config();
    assert_eq!(
        (cfg.d_model, cfg.n_kv_heads, cfg.head_dim, cfg.max_seq),
        (4, 1, 2, 16)
    );
    assert!(cfg.tied_embeddings);
    let file = mote_host::ModelFile::from_vec(out.model.to_bytes());
    mote_core::Model::from_bytes(file.bytes()).unwrap();
}

/// Each u64 above `u32::MAX` is refused with its key and value (2^32 + 16
/// used to read as 16: a file could pass for a model it is not).
#[test]
fn gguf_numbers_above_u32_are_refused_by_key_and_value() {
    let big = (1u64 << 32) + 16;
    for key in [
        "llama.embedding_length",
        "llama.attention.head_count",
        "llama.attention.head_count_kv",
        "llama.block_count",
        "llama.feed_forward_length",
        "llama.context_length",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
    ] {
        let meta: Vec<(&str, Meta)> = llama_meta()
            .into_iter()
            .map(|(k, v)| {
                if k == key {
                    (k, Meta::U64(big))
                } else {
                    (k, v)
                }
            })
            .collect();
        let err = error_of(import_gguf_bytes("big", gguf(&meta, &llama_tensors())));
        assert_eq!(
            err,
            format!("GGUF metadata {key} = {big} is larger than 4294967295"),
            "{key}"
        );
    }
}

/// A tensor the Llama mapping does not read is refused by name (a
/// `rope_freqs.weight` would change every rotation if it were dropped).
#[test]
fn an_unused_gguf_tensor_is_refused_by_name() {
    let mut tensors = llama_tensors();
    tensors.push(("rope_freqs.weight", vec![1]));
    let err = error_of(import_gguf_bytes("extra", gguf(&llama_meta(), &tensors)));
    assert!(
        err.contains("1 tensor(s) the Llama import does not use: rope_freqs.weight"),
        "{err}"
    );
}

/// Metadata that would change the numerics Mote cannot follow is refused.
#[test]
fn gguf_metadata_mote_does_not_run_is_refused() {
    for (extra, want) in [
        (
            ("llama.rope.dimension_count", Meta::U32(1)),
            "llama.rope.dimension_count = 1",
        ),
        (
            ("llama.rope.scaling.type", Meta::Str("linear")),
            "llama.rope.scaling.type = \"linear\"",
        ),
        (
            ("llama.context_length", Meta::U32(0)),
            "llama.context_length = 0",
        ),
    ] {
        let mut meta = llama_meta();
        meta.retain(|(k, _)| *k != extra.0);
        meta.push(extra);
        let err = error_of(import_gguf_bytes("meta", gguf(&meta, &llama_tensors())));
        assert!(err.contains(want), "{want}: {err}");
    }
    // A tensor whose shape contradicts the metadata is named.
    let mut tensors = llama_tensors();
    tensors[3].1 = vec![4, 4];
    let err = error_of(import_gguf_bytes("shape", gguf(&llama_meta(), &tensors)));
    assert!(
        err.contains("blk.0.attn_k.weight has shape [4, 4], the metadata implies [2, 4]"),
        "{err}"
    );
}
