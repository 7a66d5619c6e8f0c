//! The activation quantizers: symmetric int8 (per vector and per
//! [`BLOCK`]-element block) and the split into int8 blocks and exact outlier
//! channels (LLM.int8()) that the blocked kernels take.

use super::BLOCK;

/// Quantizes `x` block by block ([`BLOCK`] elements, the last may be short)
/// with [`quantize_symmetric`]; writes one scale per block into `scales`.
pub fn quantize_blocks(x: &[f32], q: &mut [i8], scales: &mut [f32]) {
    for ((xb, qb), s) in x
        .chunks(BLOCK)
        .zip(q.chunks_mut(BLOCK))
        .zip(scales.iter_mut())
    {
        *s = quantize_symmetric(xb, qb);
    }
}

/// Splits `x` into int8 blocks (into `q`, `scales`) and outlier channels
/// (`|x| > limit`, indices into `outliers`); returns how many outliers.
/// `inliers` is f32 scratch as long as `x`.
pub fn prepare_activations(
    x: &[f32],
    limit: f32,
    inliers: &mut [f32],
    q: &mut [i8],
    scales: &mut [f32],
    outliers: &mut [u32],
) -> usize {
    let mut k = 0;
    for (c, (o, &v)) in inliers.iter_mut().zip(x).enumerate() {
        if v.abs() > limit && k < outliers.len() {
            outliers[k] = c as u32;
            k += 1;
            *o = 0.0;
        } else {
            *o = v;
        }
    }
    quantize_blocks(&inliers[..x.len().min(inliers.len())], q, scales);
    k
}

/// Symmetric per-vector quantization: `q = round(x / s)` in `[-127, 127]`
/// with `s = max|x| / 127` (1 when `x` is all zero). Returns `s`.
pub fn quantize_symmetric(x: &[f32], q: &mut [i8]) -> f32 {
    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 && max.is_finite() {
        max / 127.0
    } else {
        1.0
    };
    let inv = 1.0 / scale;
    for (o, v) in q.iter_mut().zip(x) {
        *o = libm::roundf(v * inv).clamp(-127.0, 127.0) as i8;
    }
    scale
}
