//! `mote-edge MODEL.mote INPUT [BACKEND]`: loads a model from a file, runs it
//! once on INPUT — comma-separated token ids, or `features:` and
//! comma-separated feature values — (a classifier's logits, an encoder's
//! pooled embedding, or a decoder's logits after the last id) and prints
//! `logits:`/`embedding:` with each f32's bits as 8 hex digits, exactly as
//! `mote run --bits` and the MCU firmware do. BACKEND pins the integer
//! kernels (`scalar`, `neon`, `neon-dot`).
//!
//! `mote-edge --check-kernels` compares every integer backend this CPU runs
//! with the scalar definition on seeded odd shapes (row and column tails,
//! per-row and per-block scales, outlier channels) and prints how many
//! shape/backend pairs gave the same bits (and the NEON f16 dot product
//! against its definition on the same widths); exit 1 on any difference.
#![deny(unsafe_code)]

use mote_core::quant::Backend;
use mote_core::{Input, Model, RunConfig, Session};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--check-kernels") {
        return check_kernels();
    }
    let (path, ids) = match (args.get(1), args.get(2)) {
        (Some(p), Some(i)) => (p, i),
        _ => return Err("usage: mote-edge MODEL.mote INPUT [BACKEND]".into()),
    };
    let backend = match args.get(3) {
        Some(name) => {
            let b = Backend::from_name(name).ok_or(format!("unknown backend {name:?}"))?;
            if !b.available() {
                return Err(format!("backend {name} does not run here"));
            }
            b
        }
        None => Backend::best(),
    };
    let feats: Option<Vec<f32>> = ids
        .strip_prefix("features:")
        .map(|f| {
            f.split(',')
                .map(|s| s.trim().parse().map_err(|_| format!("bad feature value {s:?}")))
                .collect::<Result<_, _>>()
        })
        .transpose()?;
    let ids: Vec<u32> = match feats {
        Some(_) => Vec::new(),
        None => ids
            .split(',')
            .map(|s| s.trim().parse().map_err(|_| format!("bad token id {s:?}")))
            .collect::<Result<_, _>>()?,
    };
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    // Model::from_bytes needs 16-byte alignment: copy into u128 storage.
    let mut store = vec![0u128; bytes.len().div_ceil(16)];
    let view: &mut [u8] = bytemuck::cast_slice_mut(&mut store);
    view[..bytes.len()].copy_from_slice(&bytes);
    let model = Model::from_bytes(&view[..bytes.len()]).map_err(|e| format!("{path}: {e}"))?;
    let input = match &feats {
        Some(f) => Input::Features(f),
        None => Input::Ids(&ids),
    };
    let run = RunConfig { max_seq: input.rows(model.config()).max(1) as u32 };
    let need = model.arena_bytes(&run).map_err(|e| e.to_string())?;
    let mut arena = vec![0u8; need + 15];
    let mut s = Session::new(&model, &mut arena, run).map_err(|e| e.to_string())?;
    s.set_backend(backend).map_err(|e| e.to_string())?;
    let out = s.run(input).map_err(|e| e.to_string())?;
    let label = out.label();
    let hex: Vec<String> = out.values().iter().map(|v| format!("{:08x}", v.to_bits())).collect();
    Ok(format!("{label}: {}", hex.join(" ")))
}

/// Every available backend against the scalar definition, bit for bit.
fn check_kernels() -> Result<String, String> {
    use mote_core::quant::{gemv_i8_blocked_with, gemv_i8_with, Activations, WeightScales, BLOCK};
    let mut state = 0x9e37_79b9u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let mut pairs = 0;
    for (rows, cols) in [(1usize, 1usize), (3, 15), (5, 17), (7, 31), (2, 33), (9, 100), (4, 255), (6, 256), (3, 1000)] {
        let w: Vec<i8> = (0..rows * cols).map(|_| (next() >> 24) as i8).collect();
        let x: Vec<i8> = (0..cols).map(|_| ((next() >> 24) as i8).max(-127)).collect();
        let values: Vec<f32> = x.iter().map(|&v| v as f32 * 0.05).collect();
        let nb = cols.div_ceil(BLOCK);
        let xs: Vec<f32> = (0..nb).map(|b| 0.01 + 0.003 * b as f32).collect();
        let ws: Vec<f32> = (0..rows * nb).map(|i| 0.02 - 0.0001 * i as f32).collect();
        // One outlier channel (added in f32) when there is room for it.
        let outliers: Vec<u32> = if cols > 7 { vec![7] } else { Vec::new() };
        let act = Activations { q: &x, scales: &xs, outliers: &outliers, values: &values };
        let bias: Vec<f32> = (0..rows).map(|r| r as f32 * 0.5).collect();
        let mut want_i = vec![0i32; rows];
        let _ = gemv_i8_with(Backend::Scalar, &mut want_i, &w, &x);
        for per_block in [false, true] {
            let scales = if per_block { WeightScales::Block(&ws) } else { WeightScales::Row(&ws[..rows]) };
            let mut want = vec![0f32; rows];
            let _ = gemv_i8_blocked_with(Backend::Scalar, &mut want, &w, scales, &act, Some(&bias));
            for b in Backend::ALL.into_iter().filter(|b| b.available()) {
                let mut got = vec![0f32; rows];
                let _ = gemv_i8_blocked_with(b, &mut got, &w, scales, &act, Some(&bias));
                let mut got_i = vec![0i32; rows];
                let _ = gemv_i8_with(b, &mut got_i, &w, &x);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                if bits(&got) != bits(&want) || got_i != want_i {
                    return Err(format!("kernel check: {} differs from scalar at {rows}x{cols}", b.name()));
                }
                pairs += 1;
            }
        }
        // The f16 dot product (NEON widening) against its definition, on a
        // row of `cols` halves: finite values of every exponent, both signs.
        let h: Vec<half::f16> = (0..cols)
            .map(|_| {
                let b = (next() >> 16) as u16;
                // Exponent 31 (inf/NaN) folded to 30.
                half::f16::from_bits(if b & 0x7c00 == 0x7c00 { b & !0x0400 } else { b })
            })
            .collect();
        let xf: Vec<f32> = (0..cols).map(|_| (next() as i32) as f32 * 1e-9).collect();
        let want = mote_core::quant::dot_f16_scalar(&h, &xf);
        for b in Backend::ALL.into_iter().filter(|&b| mote_core::quant::f16_simd(b)) {
            let got = mote_core::quant::dot_f16_with(b, &h, &xf);
            if got.to_bits() != want.to_bits() {
                return Err(format!("kernel check: the f16 dot product on {} differs from its definition at {cols}: {got} vs {want}", b.name()));
            }
            pairs += 1;
        }
    }
    let names: Vec<&str> = Backend::ALL.into_iter().filter(|b| b.available()).map(Backend::name).collect();
    Ok(format!("kernel check: {pairs} shape/backend pairs equal the scalar bits ({})", names.join(", ")))
}
