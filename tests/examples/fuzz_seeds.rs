//! Writes the seed inputs for `cargo xtask fuzz` into `DIR`:
//! `DIR/model/` seeded tiny models (f32, int8, int4; encoder and decoder),
//! `DIR/vocab/` small models carrying the real vocabularies of MiniLM
//! (WordPiece) and SmolLM2 (byte-level BPE) for the tokenizer target,
//! `DIR/tokenizer/` held-out text, and `DIR/gguf/` the head of the real
//! SmolLM2 GGUF (header, metadata and tensor table) plus a few cut points,
//! and `DIR/safetensors/` a complete small BERT checkpoint (the config the
//! `safetensors` target fixes: hidden 16, 1 layer, 2 heads, vocab 50).
//! Usage: `fuzz_seeds DIR [--core]` (`--core`: the model seeds only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mote_core::Model;
use mote_host::quantize::{quantize, vocab_data, Target};
use mote_host::ModelFile;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: fuzz_seeds DIR [--core]"),
    );
    let core_only = std::env::args().nth(2).as_deref() == Some("--core");
    for sub in ["model", "vocab", "tokenizer", "gguf", "safetensors", "data"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for (name, cfg) in [
        ("encoder", mote_tests::tiny_encoder_config()),
        ("decoder", mote_tests::tiny_decoder_config()),
    ] {
        let f = mote_tests::random_model_file(cfg, 5);
        std::fs::write(dir.join(format!("model/{name}.mote")), f.bytes()).unwrap();
        let m = Model::from_bytes(f.bytes()).unwrap();
        for (t, tag) in [
            (Target::Int8, "int8"),
            (Target::Int8Row, "int8-row"),
            (Target::Int4, "int4"),
            (Target::F16, "f16"),
        ] {
            let q = quantize(&m, t, |_, _| {}).unwrap().0.to_bytes();
            std::fs::write(dir.join(format!("model/{name}-{tag}.mote")), q).unwrap();
        }
        // Integer-only: mutations reach the static scales, phase table and
        // the integer norms, softmax and outlier lists.
        let q = mote_tests::integer_model_file(&m, 5);
        std::fs::write(dir.join(format!("model/{name}-integer.mote")), q.bytes()).unwrap();
    }
    if core_only {
        println!("{}", dir.display());
        return;
    }
    // Real vocabularies on tiny models (the tokenizer target reads these).
    for (name, path, base) in [
        (
            "minilm",
            mote_tests::minilm(),
            mote_tests::tiny_encoder_config(),
        ),
        (
            "smollm2",
            mote_tests::smollm2(),
            mote_tests::tiny_decoder_config(),
        ),
    ] {
        let f = ModelFile::read(&path).unwrap();
        let m = Model::from_bytes(f.bytes()).unwrap();
        let mut cfg = base;
        cfg.vocab_size = m.config().vocab_size;
        cfg.bos = m.config().bos;
        cfg.eos = m.config().eos;
        let mut b = mote_tests::random_model(cfg, 9);
        b.set_vocab(vocab_data(&m).expect("the real model has a vocabulary"));
        b.write(&dir.join(format!("vocab/{name}.mote"))).unwrap();
    }
    let text = include_str!("../golden/heldout_text.txt");
    for (i, para) in text.split("\n\n").enumerate().take(8) {
        std::fs::write(dir.join(format!("tokenizer/{i}.txt")), para).unwrap();
    }
    std::fs::write(
        dir.join("tokenizer/special.txt"),
        "<|im_start|>user\nHi [CLS] ## ü 日本 \u{0}\t</s>",
    )
    .unwrap();
    let gguf = mote_host::fetch::ensure(&mote_host::fetch::SMOLLM2).unwrap();
    let bytes = std::fs::read(&gguf).unwrap();
    for cut in [64usize << 10, 16 << 10, 4 << 10, 512] {
        std::fs::write(
            dir.join(format!("gguf/head-{cut}.gguf")),
            &bytes[..cut.min(bytes.len())],
        )
        .unwrap();
    }
    std::fs::write(dir.join("safetensors/tiny.safetensors"), tiny_bert()).unwrap();
    data_seeds(&dir.join("data"));
    println!("{}", dir.display());
}

/// The training-data readers' seeds: the Austen database's index and the
/// start of one novel (decompressed R serialization), and digits CSV lines.
fn data_seeds(dir: &std::path::Path) {
    use std::io::Read;
    let gunzip = |b: &[u8]| {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .unwrap();
        out
    };
    let austen = mote_host::fetch::ensure(&mote_host::fetch::AUSTEN).unwrap();
    let rdx = gunzip(&std::fs::read(austen.join("Rdata.rdx")).unwrap());
    std::fs::write(dir.join("rdx.bin"), &rdx).unwrap();
    let rdb = std::fs::read(austen.join("Rdata.rdb")).unwrap();
    let mut novel = Vec::new();
    flate2::read::ZlibDecoder::new(&rdb[4..])
        .take(8 << 10)
        .read_to_end(&mut novel)
        .unwrap();
    std::fs::write(dir.join("novel-head.bin"), &novel).unwrap();
    let digits = mote_host::fetch::ensure(&mote_host::fetch::DIGITS).unwrap();
    let csv = gunzip(&std::fs::read(digits).unwrap());
    let head: Vec<&[u8]> = csv.split(|&b| b == b'\n').take(12).collect();
    std::fs::write(dir.join("digits.csv"), head.join(&b'\n')).unwrap();
}

/// A complete BERT checkpoint (HF names, f32) for the `safetensors` target's config.
fn tiny_bert() -> Vec<u8> {
    let (d, ff, vocab, pos, types) = (16usize, 32usize, 50usize, 16usize, 2usize);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![vocab, d]),
        ("embeddings.position_embeddings.weight".into(), vec![pos, d]),
        (
            "embeddings.token_type_embeddings.weight".into(),
            vec![types, d],
        ),
        ("embeddings.LayerNorm.weight".into(), vec![d]),
        ("embeddings.LayerNorm.bias".into(), vec![d]),
    ];
    for (name, shape) in [
        ("attention.self.query.weight", vec![d, d]),
        ("attention.self.query.bias", vec![d]),
        ("attention.self.key.weight", vec![d, d]),
        ("attention.self.key.bias", vec![d]),
        ("attention.self.value.weight", vec![d, d]),
        ("attention.self.value.bias", vec![d]),
        ("attention.output.dense.weight", vec![d, d]),
        ("attention.output.dense.bias", vec![d]),
        ("attention.output.LayerNorm.weight", vec![d]),
        ("attention.output.LayerNorm.bias", vec![d]),
        ("intermediate.dense.weight", vec![ff, d]),
        ("intermediate.dense.bias", vec![ff]),
        ("output.dense.weight", vec![d, ff]),
        ("output.dense.bias", vec![d]),
        ("output.LayerNorm.weight", vec![d]),
        ("output.LayerNorm.bias", vec![d]),
    ] {
        shapes.push((format!("encoder.layer.0.{name}"), shape));
    }
    let mut rng = mote_tests::Rng(17);
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .into_iter()
        .map(|(n, s)| {
            let count: usize = s.iter().product();
            let bytes = (0..count)
                .flat_map(|_| (rng.signed() * 0.1).to_le_bytes())
                .collect();
            (n, s, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}
