//! f32 reference kernels: plain loops, the definition every other path is
//! tested against. Written so LLVM can vectorise them (independent partial
//! sums) without changing what they compute between runs.

/// Lanes of independent partial sums in [`dot`].
const LANES: usize = 8;

/// Dot product of two equally long slices (extra elements of the longer are ignored).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..LANES {
            acc[k] += x[k] * y[k];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    let s01 = (acc[0] + acc[4]) + (acc[1] + acc[5]);
    let s23 = (acc[2] + acc[6]) + (acc[3] + acc[7]);
    s01 + s23 + tail
}

/// `out[r] = w[r, :] · x (+ bias[r])` for a row-major `w` of `out.len()` rows.
pub fn matvec(out: &mut [f32], w: &[f32], x: &[f32], bias: Option<&[f32]>) {
    let cols = x.len();
    if cols == 0 {
        out.fill(0.0);
        return;
    }
    for (r, (o, row)) in out.iter_mut().zip(w.chunks_exact(cols)).enumerate() {
        *o = dot(row, x) + bias.and_then(|b| b.get(r)).copied().unwrap_or(0.0);
    }
}

/// LayerNorm in place: `x = (x - mean) / sqrt(var + eps) * w + b`.
pub fn layer_norm(x: &mut [f32], w: &[f32], b: Option<&[f32]>, eps: f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / libm::sqrtf(var + eps);
    for (i, v) in x.iter_mut().enumerate() {
        let bias = b.and_then(|b| b.get(i)).copied().unwrap_or(0.0);
        *v = (*v - mean) * inv * w.get(i).copied().unwrap_or(1.0) + bias;
    }
}

/// RMSNorm in place: `x = x / sqrt(mean(x²) + eps) * w`.
pub fn rms_norm(x: &mut [f32], w: &[f32], eps: f32) {
    let ms = dot(x, x) / x.len() as f32;
    let inv = 1.0 / libm::sqrtf(ms + eps);
    for (v, g) in x.iter_mut().zip(w) {
        *v = *v * inv * g;
    }
}

/// GELU, exact erf form.
#[inline]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * core::f32::consts::FRAC_1_SQRT_2))
}

/// GELU, tanh approximation.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2/pi)
    0.5 * x * (1.0 + libm::tanhf(C * (x + 0.044_715 * x * x * x)))
}

/// SiLU: `x * sigmoid(x)`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// `e^x` in f32 arithmetic only (no f64, no table, no branch the compiler
/// cannot turn into a select), so it vectorizes on hosts and stays fast on
/// an FPU that has no double precision (Cortex-M4F). `x = n·ln2 + r` with
/// `n` rounded to nearest and `|r| ≤ ln2/2`, Cephes' degree-6 polynomial for
/// `e^r`, then `2^n` built in the exponent bits. Within 2 ulp of the true
/// value over the normal range; 0 below -87.33 (where `e^x` would be
/// subnormal), `e^88.3` above 88.3, NaN for NaN.
#[inline]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    // ln 2 split so that n·LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer (ties to even).
    const ROUND: f32 = 12_582_912.0;
    let c = x.clamp(-87.33, 88.3);
    let n = (c * LOG2E + ROUND) - ROUND;
    let r = (c - n * LN2_HI) - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let er = p * (r * r) + r + 1.0;
    // n is in [-126, 127]: 2^n is a normal f32.
    let two_n = f32::from_bits((((n as i32) + 127) as u32) << 23);
    let y = er * two_n;
    if x < -87.33 {
        0.0
    } else {
        y
    }
}

/// Fills `table` (length `head_dim`) with `cos, sin` pairs of RoPE angles
/// `pos * theta^(-2i/head_dim)` for `i in 0..head_dim/2`.
pub fn rope_table(table: &mut [f32], pos: usize, theta: f32) {
    let half = table.len() / 2;
    for (i, pair) in table.chunks_exact_mut(2).enumerate() {
        let freq = libm::powf(theta, -2.0 * i as f32 / (2 * half) as f32);
        let angle = pos as f32 * freq;
        pair[0] = libm::cosf(angle);
        pair[1] = libm::sinf(angle);
    }
}

/// Rotates consecutive pairs `(x[2i], x[2i+1])` of every head of `x` by the
/// angles in `table` (from [`rope_table`]).
pub fn rope(x: &mut [f32], table: &[f32]) {
    let head_dim = table.len();
    if head_dim == 0 {
        return;
    }
    for head in x.chunks_exact_mut(head_dim) {
        for (pair, cs) in head.chunks_exact_mut(2).zip(table.chunks_exact(2)) {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * cs[0] - b * cs[1];
            pair[1] = a * cs[1] + b * cs[0];
        }
    }
}

/// One attention head for one query row, with an online (streaming) softmax
/// so no score row is stored: `out = softmax(q·Kᵀ·scale) V` over `n` keys.
/// `keys`/`values` hold rows of `stride` floats; this head reads
/// `[offset, offset + q.len())` of each row.
#[allow(clippy::too_many_arguments)]
pub fn attend_head(
    out: &mut [f32],
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    n: usize,
    stride: usize,
    offset: usize,
    scale: f32,
) {
    let hd = q.len();
    attend(
        out,
        n,
        |j| {
            let at = j * stride + offset;
            keys.get(at..at + hd).map(|key| dot(q, key) * scale)
        },
        |j, p, out| {
            let at = j * stride + offset;
            let Some(v) = values.get(at..at + hd) else {
                return false;
            };
            for (o, vv) in out.iter_mut().zip(v) {
                *o += p * vv;
            }
            true
        },
    );
}

/// The online softmax behind [`attend_head`] and the int8 cache's
/// attention: `score(j)` is key `j`'s scaled score (`None`: no such key,
/// stop), and `add(j, p, out)` adds `p` times value `j` to `out` (false: no
/// such value, stop). Keys go in chunks: one max update per chunk and a run
/// of exps the compiler can vectorize. The order of every operation is
/// fixed, so the bits do not depend on the machine.
pub fn attend(
    out: &mut [f32],
    n: usize,
    mut score: impl FnMut(usize) -> Option<f32>,
    mut add: impl FnMut(usize, f32, &mut [f32]) -> bool,
) {
    out.fill(0.0);
    let mut max = f32::NEG_INFINITY;
    let mut denom = 0.0f32;
    const CHUNK: usize = 16;
    let mut p = [0.0f32; CHUNK];
    let mut j0 = 0;
    while j0 < n {
        let mut m = (n - j0).min(CHUNK);
        let mut chunk_max = f32::NEG_INFINITY;
        for (k, pk) in p.iter_mut().enumerate().take(m) {
            let Some(s) = score(j0 + k) else {
                m = k;
                break;
            };
            *pk = s;
            chunk_max = chunk_max.max(*pk);
        }
        if chunk_max > max {
            let correction = exp(max - chunk_max);
            denom *= correction;
            for o in out.iter_mut() {
                *o *= correction;
            }
            max = chunk_max;
        }
        for pk in p.iter_mut() {
            *pk = exp(*pk - max);
        }
        for (k, &pk) in p.iter().enumerate().take(m) {
            if !add(j0 + k, pk, out) {
                m = k;
                break;
            }
            denom += pk;
        }
        if m < CHUNK.min(n - j0) {
            break;
        }
        j0 += m;
    }
    if denom > 0.0 {
        let inv = 1.0 / denom;
        for o in out.iter_mut() {
            *o *= inv;
        }
    }
}

/// Scales `x` to unit L2 norm (left as is when its norm is zero).
pub fn l2_normalize(x: &mut [f32]) {
    let norm = libm::sqrtf(dot(x, x));
    if norm > 0.0 {
        for v in x.iter_mut() {
            *v /= norm;
        }
    }
}

/// Index of the largest element (first on ties); 0 for an empty slice.
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_softmax_matches_two_pass() {
        let hd = 4;
        let n = 41; // more than two chunks of keys
        let keys: Vec<f32> = (0..n * hd)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3)
            .collect();
        let values: Vec<f32> = (0..n * hd)
            .map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.5)
            .collect();
        let q = [0.5f32, -1.0, 2.0, 0.25];
        let mut out = [0.0f32; 4];
        attend_head(&mut out, &q, &keys, &values, n, hd, 0, 0.5);
        let scores: Vec<f32> = (0..n)
            .map(|j| dot(&q, &keys[j * hd..j * hd + hd]) * 0.5)
            .collect();
        let m = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = scores.iter().map(|s| (s - m).exp()).collect();
        let z: f32 = e.iter().sum();
        for d in 0..hd {
            let want: f32 = (0..n).map(|j| e[j] / z * values[j * hd + d]).sum();
            assert!((out[d] - want).abs() < 1e-5, "{d}: {} vs {want}", out[d]);
        }
    }

    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0u32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp() as f32;
            let got = exp(x);
            worst = worst.max(got.to_bits().abs_diff(want.to_bits()));
            x += 0.001_3;
        }
        assert!(worst <= 2, "{worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn rope_rotates_pairs_and_keeps_norm() {
        let mut table = [0.0f32; 4];
        rope_table(&mut table, 3, 10000.0);
        let mut x = [1.0f32, 0.0, 0.0, 1.0];
        rope(&mut x, &table);
        assert!((x[0] - 3.0f32.cos()).abs() < 1e-6 && (x[1] - 3.0f32.sin()).abs() < 1e-6);
        let n: f32 = x.iter().map(|v| v * v).sum();
        assert!((n - 2.0).abs() < 1e-5);
    }

    #[test]
    fn norms_match_definitions() {
        let mut x = [1.0f32, 2.0, 3.0, 4.0];
        layer_norm(&mut x, &[1.0; 4], Some(&[0.5; 4]), 0.0);
        let mean: f32 = x.iter().sum::<f32>() / 4.0;
        assert!((mean - 0.5).abs() < 1e-6);
        let mut y = [3.0f32, 4.0];
        rms_norm(&mut y, &[1.0, 2.0], 0.0);
        let r = (12.5f32).sqrt();
        assert!((y[0] - 3.0 / r).abs() < 1e-6 && (y[1] - 8.0 / r).abs() < 1e-6);
    }
}
