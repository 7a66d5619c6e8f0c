//! SmolLM2-135M decode speed: f32, f16, int8 and int4 weights, and the
//! integer-only int8 model, one and two threads.
//! Throughput is in elements = forward passes (one token each): criterion's elem/s = tokens/s.
#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mote_core::{kernels::argmax, Model, RunConfig, Session};
use mote_host::quantize::{quantize, Target};
use mote_host::ModelFile;

const PROMPT: [u32; 8] = [1, 4093, 198, 504, 3575, 282, 4649, 314];
const TOKENS: usize = 32;

fn decode(c: &mut Criterion) {
    let f32_file = ModelFile::read(&mote_tests::smollm2()).unwrap();
    let f32_model = Model::from_bytes(f32_file.bytes()).unwrap();
    let files: Vec<(&str, ModelFile)> = vec![
        (
            "int8",
            ModelFile::from_vec(
                quantize(&f32_model, Target::Int8, |_, _| {})
                    .unwrap()
                    .0
                    .to_bytes(),
            ),
        ),
        (
            "int4",
            ModelFile::from_vec(
                quantize(&f32_model, Target::Int4, |_, _| {})
                    .unwrap()
                    .0
                    .to_bytes(),
            ),
        ),
        (
            "f16",
            ModelFile::from_vec(
                quantize(&f32_model, Target::F16, |_, _| {})
                    .unwrap()
                    .0
                    .to_bytes(),
            ),
        ),
        ("integer", integer(&f32_model)),
        ("f32", f32_file),
    ];
    let mut g = c.benchmark_group("smollm2_decode");
    g.sample_size(10);
    // Forward passes per iteration: the prompt, then TOKENS - 1 decode steps.
    g.throughput(Throughput::Elements((PROMPT.len() + TOKENS - 1) as u64));
    let join = mote_host::parallel::SpinJoin::new().unwrap();
    for (name, file) in &files {
        let m = Model::from_bytes(file.bytes()).unwrap();
        let run = RunConfig {
            max_seq: (PROMPT.len() + TOKENS) as u32,
        };
        let mut arena = vec![0u8; m.arena_bytes(&run).unwrap() + 15];
        for threads in [1, 2] {
            g.bench_function(format!("{name}/{threads}t"), |b| {
                b.iter(|| {
                    let mut s = Session::new(&m, &mut arena, run).unwrap();
                    if threads == 2 {
                        s.set_join(&join);
                    }
                    let mut next = argmax(s.prefill(&PROMPT).unwrap()) as u32;
                    for _ in 1..TOKENS {
                        next = argmax(s.decode_step(next).unwrap()) as u32;
                    }
                    next
                })
            });
        }
    }
    g.finish();
}

/// The integer-only form of `m`, calibrated as the accuracy test does
/// (`tests/golden/calibration.txt`, `percentile`, smoothing on).
fn integer(m: &Model) -> ModelFile {
    use mote_host::calibrate::{calibrate, integer_model, load_samples, Method, SMOOTH_ALPHA};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/calibration.txt");
    let samples = load_samples(m, &path, 64).unwrap();
    let calib = calibrate(
        m,
        &samples,
        Method::Percentile,
        Some(SMOOTH_ALPHA),
        |_, _| {},
    )
    .unwrap();
    ModelFile::from_vec(integer_model(m, &calib, |_, _| {}).unwrap().0.to_bytes())
}

criterion_group!(benches, decode);
criterion_main!(benches);
