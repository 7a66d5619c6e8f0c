//! The scalar definitions every kernel family is held to: each SIMD
//! variant returns exactly these bits (the tests in `tests.rs` run every
//! available backend against them).

use super::{Activations, WeightScales, BLOCK};

/// The definition: `Σ a[i]·b[i]` over the shorter length, in `i32`
/// (wrapping, as every SIMD variant does, should a hostile model overflow it).
pub fn dot_i8_scalar(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .fold(0i32, |acc, (&x, &y)| acc.wrapping_add(x as i32 * y as i32))
}

/// Lanes of partial sums in [`dot_f16_scalar`]: those of [`crate::kernels::dot`].
pub(crate) const F16_LANES: usize = 8;

/// The definition of [`dot_f16`] (any target).
pub fn dot_f16_scalar(w: &[half::f16], x: &[f32]) -> f32 {
    let n = w.len().min(x.len());
    let (w, x) = (&w[..n], &x[..n]);
    let mut acc = [0.0f32; F16_LANES];
    let mut cw = w.chunks_exact(F16_LANES);
    let mut cx = x.chunks_exact(F16_LANES);
    for (a, b) in (&mut cw).zip(&mut cx) {
        for ((s, h), v) in acc.iter_mut().zip(a).zip(b) {
            *s += h.to_f32() * v;
        }
    }
    finish(&acc, cw.remainder(), cx.remainder())
}

/// The lane reduction and tail shared by the f16 dot products.
#[inline(always)]
pub(crate) fn finish(acc: &[f32; F16_LANES], w: &[half::f16], x: &[f32]) -> f32 {
    let mut tail = 0.0f32;
    for (h, v) in w.iter().zip(x) {
        tail += h.to_f32() * v;
    }
    let s01 = (acc[0] + acc[4]) + (acc[1] + acc[5]);
    let s23 = (acc[2] + acc[6]) + (acc[3] + acc[7]);
    s01 + s23 + tail
}

/// Adds the outlier channels' exact contribution to row `r`'s result:
/// `Σ_c dequantized(w[r, c]) · x[c]`, in channel order.
#[inline]
pub(crate) fn add_outliers(
    acc: f32,
    w: &[i8],
    scales: WeightScales,
    r: usize,
    nb: usize,
    a: &Activations,
) -> f32 {
    add_outliers_by(acc, |c| w.get(c).copied().unwrap_or(0), scales, r, nb, a)
}

/// [`add_outliers`] with the weight of channel `c` from `w(c)`.
#[inline]
pub(crate) fn add_outliers_by(
    mut acc: f32,
    w: impl Fn(usize) -> i8,
    scales: WeightScales,
    r: usize,
    nb: usize,
    a: &Activations,
) -> f32 {
    for &c in a.outliers {
        let c = c as usize;
        let s = match scales {
            WeightScales::Row(s) => s.get(r),
            WeightScales::Block(s) => s.get(r * nb + c / BLOCK),
        };
        acc += w(c) as f32 * s.copied().unwrap_or(0.0) * a.values.get(c).copied().unwrap_or(0.0);
    }
    acc
}

/// The scale block `b`'s integer sum is multiplied by.
#[inline]
pub(crate) fn block_scale(x_scale: f32, w_scales: Option<&[f32]>, b: usize) -> f32 {
    match w_scales {
        Some(ws) => x_scale * ws.get(b).copied().unwrap_or(0.0),
        None => x_scale,
    }
}

/// The fixed reduction of eight partial sums.
#[inline]
pub(crate) fn reduce8(p: [f32; 8]) -> f32 {
    ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]))
}

/// The definition of one blocked row, continuing from block `first` with
/// partial sums `p` (so SIMD code can hand its leftover blocks here).
pub(crate) fn blocked_row_scalar(
    w: &[i8],
    x: &[i8],
    x_scales: &[f32],
    w_scales: Option<&[f32]>,
    first: usize,
    p: [f32; 8],
) -> f32 {
    blocked_row_by(dot_i8_scalar, w, x, x_scales, w_scales, first, p)
}

/// [`blocked_row_scalar`] with the exact block sums from `dot` (any kernel
/// equal to [`dot_i8_scalar`]): the same floats in the same order.
pub(crate) fn blocked_row_by(
    dot: impl Fn(&[i8], &[i8]) -> i32,
    w: &[i8],
    x: &[i8],
    x_scales: &[f32],
    w_scales: Option<&[f32]>,
    first: usize,
    mut p: [f32; 8],
) -> f32 {
    let start = first * BLOCK;
    let (w, x) = (w.get(start..).unwrap_or(&[]), x.get(start..).unwrap_or(&[]));
    for (k, ((wb, xb), s)) in w
        .chunks(BLOCK)
        .zip(x.chunks(BLOCK))
        .zip(x_scales.get(first..).unwrap_or(&[]))
        .enumerate()
    {
        let b = first + k;
        p[b % 8] += dot(wb, xb) as f32 * block_scale(*s, w_scales, b);
    }
    reduce8(p)
}

/// Value `c` of a packed int4 row: two signed values per byte, the even
/// one in the low nibble.
#[inline]
pub fn nibble(packed: &[u8], c: usize) -> i8 {
    let b = packed.get(c / 2).copied().unwrap_or(0);
    if c.is_multiple_of(2) {
        ((b << 4) as i8) >> 4
    } else {
        (b as i8) >> 4
    }
}

/// Unpacks `out.len()` int4 values (see [`nibble`]) from `packed`; values
/// past the end of `packed` are 0, as [`nibble`] reads them.
pub fn unpack_i4(packed: &[u8], out: &mut [i8]) {
    // Whole pairs in fixed-size steps (the compiler vectorizes this), then
    // the odd last value.
    let even = out.len() & !1;
    let (pairs, last) = out.split_at_mut(even);
    for (pair, &b) in pairs.chunks_exact_mut(2).zip(packed) {
        pair[0] = ((b << 4) as i8) >> 4;
        pair[1] = (b as i8) >> 4;
    }
    let covered = (even / 2).min(packed.len()) * 2;
    if let Some(rest) = pairs.get_mut(covered..) {
        rest.fill(0);
    }
    if let Some(o) = last.first_mut() {
        *o = packed.get(even / 2).map_or(0, |&b| ((b << 4) as i8) >> 4);
    }
}
