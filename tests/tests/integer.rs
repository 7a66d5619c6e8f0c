//! The integer-only path on seeded models: close to f32 on inputs not used
//! for calibration, for every architecture feature (post-norm LayerNorm
//! encoders with GELU, learned positions and token types; pre-norm RMSNorm
//! decoders with RoPE, SwiGLU and GQA), and bad integer models refused.
#![allow(clippy::unwrap_used)]

use mote_core::{Architecture, Config, Model, RunConfig, Session};
use mote_host::calibrate::Sample;
use mote_tests::*;

/// Output rows of `m` on `ids`: the pooled embedding of an encoder (one
/// row), or a decoder's logits after every token.
fn outputs(m: &Model, ids: &[u32]) -> Vec<Vec<f32>> {
    let run = RunConfig {
        max_seq: ids.len() as u32,
    };
    let mut arena = vec![0u8; m.arena_bytes(&run).unwrap() + 15];
    let mut s = Session::new(m, &mut arena, run).unwrap();
    match m.config().arch {
        Architecture::Encoder => vec![s.embed(ids).unwrap().to_vec()],
        Architecture::Decoder => ids
            .iter()
            .map(|&id| s.decode_step(id).unwrap().to_vec())
            .collect(),
    }
}

/// (mean cosine, min cosine, top-1 agreement) of the integer model against
/// f32 on held-out random inputs.
fn agreement(cfg: Config, seed: u64) -> (f64, f64, f64) {
    let f = random_model_file(cfg, seed);
    let m = Model::from_bytes(f.bytes()).unwrap();
    let qf = integer_model_file(&m, seed);
    let q = Model::from_bytes(qf.bytes()).unwrap();
    assert!(q.config().integer);
    let (mut sum, mut min, mut same, mut n) = (0.0, 1.0f64, 0, 0);
    // Held out: another seed than calibration's.
    for sample in random_samples(&cfg, 4, cfg.max_seq as usize, seed + 1000) {
        let Sample::Ids(ids) = sample else {
            unreachable!()
        };
        for (a, b) in outputs(&m, &ids).iter().zip(outputs(&q, &ids)) {
            let c = cosine(a, &b);
            sum += c;
            min = min.min(c);
            same += usize::from(mote_core::kernels::argmax(a) == mote_core::kernels::argmax(&b));
            n += 1;
        }
    }
    (sum / n as f64, min, same as f64 / n as f64)
}

#[test]
fn integer_models_track_f32() {
    let mut t = tiny_encoder_config();
    t.pre_norm = true;
    t.norm = mote_core::NormKind::RmsNorm;
    t.activation = mote_core::Activation::Relu;
    let mut sinus = kws_config();
    sinus.positions = mote_core::PositionKind::Sinusoidal;
    sinus.n_token_types = 0;
    let mut silu = decoder_100k_config();
    silu.activation = mote_core::Activation::Silu;
    silu.norm = mote_core::NormKind::LayerNorm;
    silu.bias = true;
    for (name, cfg, seed) in [
        ("tiny encoder", tiny_encoder_config(), 1),
        ("pre-norm RMSNorm ReLU encoder", t, 6),
        ("kws encoder", kws_config(), 3),
        ("sinusoidal kws encoder", sinus, 7),
        ("text encoder", textcls_config(), 4),
        ("tiny decoder", tiny_decoder_config(), 2),
        ("decoder", decoder_100k_config(), 5),
        ("LayerNorm SiLU decoder with biases", silu, 8),
    ] {
        let (mean, min, top1) = agreement(cfg, seed);
        println!("{name}: cosine mean {mean:.5} min {min:.5}, top-1 {top1:.3}");
        // Encoders: one pooled vector per input. Decoders: logits at every
        // step; a random decoder's SwiGLU outputs are heavy-tailed (max ≈ 50
        // against a typical 1), so one int8 scale per tensor costs more there
        // than on trained models (the real-model budgets are in mote-quantize's
        // tests). A wrong scale or index anywhere gives cosines near 0.
        let (floor, mean_floor) = match cfg.arch {
            Architecture::Encoder => (0.99, 0.995),
            Architecture::Decoder => (0.9, 0.99),
        };
        assert!(
            mean >= mean_floor && min >= floor,
            "{name}: cosine mean {mean} min {min}"
        );
        if cfg.arch == Architecture::Decoder {
            assert!(top1 >= 0.8, "{name}: top-1 {top1}");
        }
    }
}

/// Calibration splits its samples over threads; the scales, smoothing and
/// equalization factors and the report are the same bits on 1, 2 or 3
/// threads (the per-thread statistics merge exactly).
#[test]
fn calibration_does_not_depend_on_threads() {
    use mote_host::calibrate::{calibrate_on, Method, SMOOTH_ALPHA};
    for cfg in [tiny_encoder_config(), tiny_decoder_config()] {
        let file = random_model_file(cfg, 5);
        let m = Model::from_bytes(file.bytes()).unwrap();
        // Seven samples of different lengths: uneven chunks per thread.
        let samples: Vec<Sample> = (0..7)
            .flat_map(|i| random_samples(&cfg, 1, 3 + 2 * i, 40 + i as u64))
            .collect();
        let bits = |threads: usize| {
            let mut seen = 0;
            let c = calibrate_on(
                &m,
                &samples,
                Method::Percentile,
                Some(SMOOTH_ALPHA),
                |done, _| seen = seen.max(done),
                threads,
            )
            .unwrap();
            // Every sample of both passes is reported.
            assert_eq!(seen, 2 * samples.len());
            let mut v: Vec<u32> = c.global.iter().map(|x| x.to_bits()).collect();
            for l in &c.layers {
                v.extend(l.iter().map(|x| x.to_bits()));
            }
            for s in c.smooth.iter().flatten().chain(c.qk.iter()) {
                v.extend(s.iter().map(|x| x.to_bits()));
            }
            for r in &c.report {
                v.extend([r.clip.to_bits(), r.max.to_bits(), r.count as u32]);
            }
            v
        };
        let one = bits(1);
        assert!(one.len() > 50, "{} values", one.len());
        assert_eq!(one, bits(2), "{:?}: 2 threads", cfg.arch);
        assert_eq!(one, bits(3), "{:?}: 3 threads", cfg.arch);
    }
}
