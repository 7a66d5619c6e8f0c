//! Whole int8 models (f32 and int8 attention caches, and integer-only models) give byte-identical outputs on every integer backend
//! this machine runs (scalar, SSE4.1, AVX2 here; NEON is checked under
//! qemu-aarch64 by `cargo xtask test`).
#![allow(clippy::unwrap_used)]

use mote_core::quant::Backend;
use mote_core::{Architecture, Model, RunConfig, Session, Weight};
use mote_host::quantize::{quantize, Target};
use mote_host::ModelFile;
use mote_tests::*;

fn outputs(m: &Model, ids: &[u32], backend: Backend) -> Vec<u32> {
    let run = RunConfig {
        max_seq: ids.len() as u32 + 4,
    };
    let mut arena = vec![0u8; m.arena_bytes(&run).unwrap() + 15];
    let mut s = Session::new(m, &mut arena, run).unwrap();
    s.set_backend(backend).unwrap();
    assert_eq!(s.backend(), backend);
    let mut bits = Vec::new();
    match m.config().arch {
        Architecture::Encoder => bits.extend(s.embed(ids).unwrap().iter().map(|v| v.to_bits())),
        Architecture::Decoder => {
            let mut next = ids[0];
            for &id in ids {
                next = id;
                bits.extend(s.decode_step(next).unwrap().iter().map(|v| v.to_bits()));
            }
            for _ in 0..4 {
                let l = s.decode_step(next).unwrap();
                next = mote_core::kernels::argmax(l) as u32;
                bits.extend(l.iter().map(|v| v.to_bits()));
            }
        }
    }
    bits
}

#[test]
fn int8_models_are_bit_identical_on_every_backend() {
    let mut models = Vec::new();
    let configs = [
        (tiny_encoder_config(), 11),
        (tiny_decoder_config(), 12),
        (small_config(tiny_encoder_config()), 13),
        (small_config(tiny_decoder_config()), 14),
    ];
    for (cfg, seed) in configs {
        let f = random_model_file(cfg, seed);
        let m = Model::from_bytes(f.bytes()).unwrap();
        for t in [Target::Int8, Target::Int8Row, Target::Int4, Target::Int4Sym] {
            let f = ModelFile::from_vec(quantize(&m, t, |_, _| {}).unwrap().0.to_bytes());
            // Asymmetric int4 carries per-block offsets; symmetric does not.
            let q = Model::from_bytes(f.bytes()).unwrap();
            let wq = q.tensor("L0.wq").unwrap();
            assert_eq!(
                matches!(
                    q.weight(&wq).unwrap(),
                    Weight::I4 {
                        offsets: Some(_),
                        ..
                    }
                ),
                t == Target::Int4
            );
            models.push(f);
        }
        // An int8 attention cache: its scores go through the int8 dot kernels.
        let mut b = quantize(&m, Target::Int8, |_, _| {}).unwrap().0;
        b.config_mut().kv_cache = mote_core::KvCache::I8;
        models.push(ModelFile::from_vec(b.to_bytes()));
        // Integer-only: whole-row int8 products, requantized per row.
        models.push(integer_model_file(&m, seed));
    }
    let real = ModelFile::read(&minilm()).unwrap();
    let real_m = Model::from_bytes(real.bytes()).unwrap();
    models.push(ModelFile::from_vec(
        quantize(&real_m, Target::Int8, |_, _| {})
            .unwrap()
            .0
            .to_bytes(),
    ));
    let ids = [3u32, 1, 4, 1, 5, 9, 2, 6];
    let real_ids = [101u32, 1037, 2158, 2003, 5983, 2833, 1012, 102];
    let mut compared = 0;
    for (i, f) in models.iter().enumerate() {
        let m = Model::from_bytes(f.bytes()).unwrap();
        let ids: &[u32] = if i == models.len() - 1 {
            &real_ids
        } else {
            &ids
        };
        let want = outputs(&m, ids, Backend::Scalar);
        for b in Backend::ALL.into_iter().filter(|b| b.available()) {
            assert_eq!(outputs(&m, ids, b), want, "model {i} on {b:?}");
            compared += 1;
        }
    }
    for b in Backend::ALL {
        let what = if b.available() {
            "compared with scalar"
        } else {
            "skipped: not on this machine"
        };
        println!("whole models on {}: {what}", b.name());
    }
    assert!(
        compared >= 2 * models.len(),
        "fewer than two backends compared"
    );
}

/// Splitting products over two threads changes no bit (f32, int8, int4,
/// f16 and integer-only models), with either host `Join`.
#[test]
fn threads_do_not_change_bits() {
    let spin = mote_host::parallel::SpinJoin::new().unwrap();
    let rayon = mote_host::parallel::RayonJoin::new(2).unwrap();
    for join in [&spin as &dyn mote_core::Join, &rayon] {
        threads_do_not_change_bits_with(join);
    }
}

fn threads_do_not_change_bits_with(join: &dyn mote_core::Join) {
    let mut cfg = small_config(tiny_decoder_config());
    cfg.d_ff = 320;
    let f = random_model_file(cfg, 21);
    let m32 = Model::from_bytes(f.bytes()).unwrap();
    let files: Vec<ModelFile> = [Target::Int8, Target::Int4, Target::F16]
        .into_iter()
        .map(|t| ModelFile::from_vec(quantize(&m32, t, |_, _| {}).unwrap().0.to_bytes()))
        .chain([integer_model_file(&m32, 21)])
        .collect();
    let quantized: Vec<Model> = files
        .iter()
        .map(|q| Model::from_bytes(q.bytes()).unwrap())
        .collect();
    for m in std::iter::once(&m32).chain(&quantized) {
        let run = RunConfig { max_seq: 8 };
        let mut a1 = vec![0u8; m.arena_bytes(&run).unwrap() + 15];
        let mut a2 = a1.clone();
        let mut one = Session::new(m, &mut a1, run).unwrap();
        let mut two = Session::new(m, &mut a2, run).unwrap();
        two.set_join(join);
        for id in [5u32, 7, 9, 11, 2, 3] {
            let a: Vec<u32> = one
                .decode_step(id)
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            let b: Vec<u32> = two
                .decode_step(id)
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert_eq!(a, b);
        }
    }
}

/// The fused f16 dot product (F16C on this host when the CPU has it) gives
/// the bits of its scalar definition and of the f32 dot product of the
/// widened row, on random lengths with tails, including subnormal and
/// large halves.
#[test]
fn f16_dot_is_bit_identical_to_its_definition() {
    use half::f16;
    let mut s = 0x05ee_df16_u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for _ in 0..400 {
        let n = (next() % 300) as usize;
        let w: Vec<f16> = (0..n)
            .map(|_| {
                // Any finite half: random bits with the exponent kept below all-ones.
                let b = next() as u16;
                f16::from_bits(if b & 0x7c00 == 0x7c00 { b & !0x4000 } else { b })
            })
            .collect();
        let x: Vec<f32> = (0..n)
            .map(|_| (next() % 20001) as f32 / 1000.0 - 10.0)
            .collect();
        let widened: Vec<f32> = w.iter().map(|h| h.to_f32()).collect();
        let want = mote_core::kernels::dot(&widened, &x).to_bits();
        assert_eq!(
            mote_core::quant::dot_f16_scalar(&w, &x).to_bits(),
            want,
            "n {n}"
        );
        for b in Backend::ALL
            .into_iter()
            .filter(|&b| mote_core::quant::f16_simd(b))
        {
            let got = mote_core::quant::dot_f16_with(b, &w, &x).to_bits();
            assert_eq!(got, want, "n {n} on {b:?}");
        }
    }
    for b in Backend::ALL {
        let what = if mote_core::quant::f16_simd(b) {
            "compared with the definition"
        } else {
            "skipped: no f16 kernel of its own on this machine"
        };
        println!("f16 dot on {}: {what}", b.name());
    }
}

/// A backend this machine cannot run is refused, not replaced; a session
/// starts on the best one.
#[test]
fn unavailable_backends_are_refused() {
    let f = random_model_file(tiny_encoder_config(), 3);
    let m = Model::from_bytes(f.bytes()).unwrap();
    let run = RunConfig { max_seq: 4 };
    let mut arena = vec![0u8; m.arena_bytes(&run).unwrap() + 15];
    let mut s = Session::new(&m, &mut arena, run).unwrap();
    assert_eq!(s.backend(), Backend::best());
    for b in Backend::ALL {
        let r = s.set_backend(b);
        if b.available() {
            assert_eq!(r, Ok(()));
            assert_eq!(s.backend(), b);
        } else {
            assert_eq!(
                r,
                Err(mote_core::Error::BackendUnavailable { backend: b.name() })
            );
            assert_ne!(s.backend(), b);
        }
    }
}
