//! The SIMD kernels against the scalar definition, under AddressSanitizer:
//! random shapes (tails included), weights, activations, scales (NaN and
//! infinities included) and outlier lists; every available backend must
//! return the scalar bits and read nothing out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mote_core::quant::{gemv_i8_blocked_with, Activations, Backend, WeightScales, BLOCK};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let rows = 1 + data[0] as usize % 9;
    let cols = 1 + (u16::from_le_bytes([data[1], data[2]]) as usize % 600);
    let per_block = data[3] & 1 == 1;
    let bytes = &data[4..];
    let at = |i: usize| bytes.get(i % bytes.len().max(1)).copied().unwrap_or(0);
    let nb = cols.div_ceil(BLOCK);
    let w: Vec<i8> = (0..rows * cols).map(|i| at(i) as i8).collect();
    // Activations must lie in [-127, 127] (the quantizers never produce -128).
    let x: Vec<i8> = (0..cols).map(|i| (at(i * 7 + 3) as i8).max(-127)).collect();
    let f = |i: usize| f32::from_bits(u32::from_le_bytes([at(i), at(i + 1), at(i + 2), at(i + 3)]));
    let xs: Vec<f32> = (0..nb).map(|i| f(i * 13 + 1)).collect();
    let ws: Vec<f32> = (0..if per_block { rows * nb } else { rows })
        .map(|i| f(i * 11 + 5))
        .collect();
    let values: Vec<f32> = (0..cols).map(|i| f(i * 5 + 2)).collect();
    let outliers: Vec<u32> = (0..at(9) as usize % 4)
        .map(|i| (at(i + 17) as usize % cols) as u32)
        .collect();
    let act = Activations {
        q: &x,
        scales: &xs,
        outliers: &outliers,
        values: &values,
    };
    let scales = if per_block {
        WeightScales::Block(&ws)
    } else {
        WeightScales::Row(&ws)
    };
    let mut want = vec![0f32; rows];
    let _ = gemv_i8_blocked_with(Backend::Scalar, &mut want, &w, scales, &act, None);
    for b in Backend::ALL.into_iter().filter(|b| b.available()) {
        let mut got = vec![0f32; rows];
        let _ = gemv_i8_blocked_with(b, &mut got, &w, scales, &act, None);
        // NaN results compare as NaN: which NaN payload survives depends on
        // operand order inside the hardware, not on the definition.
        let bits = |v: &[f32]| -> Vec<u32> {
            v.iter()
                .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
                .collect()
        };
        let (g, e) = (bits(&got), bits(&want));
        assert_eq!(g, e, "{b:?} differs from scalar on {rows}x{cols}");
    }
});
