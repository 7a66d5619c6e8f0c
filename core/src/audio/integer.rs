//! The fixed-point front end: integer arithmetic only, for cores without
//! an FPU. The same integer operations on every target: the same bits.
//!
//! Per frame:
//! 1. `x·w` with a Q15 window (`|x·w| ≤ 2^30`), then one block shift `k`
//!    (rounding) so the frame's peak is below 2^21: quiet frames keep
//!    every bit, loud ones lose only what is below the peak's 21 bits.
//! 2. A real FFT as a half-length complex radix-2 FFT of the packed
//!    even/odd samples, Q30 twiddles, rounding, then the split into
//!    `n/2 + 1` bins. `|X| ≤ Σ|x| ≤ 2^21 · 512 = 2^30`: no stage overflows.
//! 3. `P = (2X)²` in `u64`, one block shift `s` so the frame's largest is
//!    below 2^40, and `Σ P·v` per band with Q15 weights `v` (each band's
//!    largest is 1, sums checked `< 2^23` at parse): below 2^63.
//! 4. `log2` from the leading zeros and a 65-entry table (linear
//!    interpolation, error below 4e-5), the exponents `k`, `s` and the
//!    weights' scale taken back exactly, `ln 2`, the band's log gain, the
//!    floor, the base and the offset and scale in Q16, and the Q16 value
//!    made an f32 exactly.

use super::{FrontEnd, LogBase, Scratch};
use crate::fixed::{self, Mult};

/// Q30 one.
const ONE_Q30: i64 = 1 << 30;
/// `ln 2` in Q30 (computed at compile time; no float at run time).
const LN2_Q30: i64 = (core::f64::consts::LN_2 * ONE_Q30 as f64 + 0.5) as i64;
/// `1 / ln 10` in Q30.
const INV_LN10_Q30: i64 = (core::f64::consts::LOG10_E * ONE_Q30 as f64 + 0.5) as i64;

/// `log2(1 + i/64)` in Q30 for `i` in `0..=64`, computed at compile time
/// (`ln x = 2·atanh((x−1)/(x+1))`, a series that converges fast on [1, 2]).
const LOG2_TABLE: [u32; 65] = {
    let mut t = [0u32; 65];
    let mut i = 0;
    while i <= 64 {
        let x = 1.0 + i as f64 / 64.0;
        let z = (x - 1.0) / (x + 1.0);
        let z2 = z * z;
        let (mut term, mut sum, mut k) = (z, 0.0, 1.0);
        while k < 60.0 {
            sum += term / k;
            term *= z2;
            k += 2.0;
        }
        let log2 = 2.0 * sum / core::f64::consts::LN_2;
        t[i] = (log2 * ONE_Q30 as f64 + 0.5) as u32;
        i += 1;
    }
    t
};

/// Q16 constants of a fixed section, derived once from its f32 fields
/// with integer operations only.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Constants {
    /// `ln(floor)`, Q16.
    floor_ln: i32,
    /// The offset, Q16.
    offset: i32,
    /// The scale as a Q31 multiplier.
    scale: Mult,
}

impl Default for Constants {
    fn default() -> Self {
        Constants {
            floor_ln: 0,
            offset: 0,
            scale: Mult::ONE,
        }
    }
}

impl Constants {
    pub(crate) fn new(fe: &FrontEnd) -> Self {
        Constants {
            floor_ln: ln_f32_q16(fe.floor),
            offset: fixed::to_fixed(fe.offset, Mult::pow2(16)),
            scale: Mult::from_f32(fe.scale),
        }
    }
}

/// `log2(v)` in Q24 for `v > 0` (0 for 0).
pub fn log2_q24(v: u64) -> i64 {
    if v == 0 {
        return 0;
    }
    let lz = v.leading_zeros();
    let e = 63 - lz as i64;
    let mant = ((v << lz) >> 32) as u32; // [2^31, 2^32)
    let f = mant - (1 << 31);
    let idx = (f >> 25) as usize;
    let frac = (f & ((1 << 25) - 1)) as u64;
    let t0 = LOG2_TABLE.get(idx).copied().unwrap_or(0) as u64;
    let t1 = LOG2_TABLE.get(idx + 1).copied().unwrap_or(0) as u64;
    let q30 = t0 + (((t1 - t0) * frac) >> 25);
    (e << 24) + (q30 >> 6) as i64
}

/// `ln` of a positive finite f32 from its bits, Q16.
fn ln_f32_q16(v: f32) -> i32 {
    let bits = v.to_bits();
    let exp = ((bits >> 23) & 0xff) as i64;
    let frac = (bits & 0x7f_ffff) as u64;
    let (mant, exp) = if exp == 0 {
        (frac, 1)
    } else {
        (frac | 1 << 23, exp)
    };
    let log2 = log2_q24(mant) + ((exp - 150) << 24);
    ((log2 * LN2_Q30) >> 38) as i32
}

/// A Q16 value as an f32, exactly (every `|v| < 2^24` is representable;
/// larger ones are rounded toward zero), with integer operations only.
pub fn q16_to_f32(v: i32) -> f32 {
    if v == 0 {
        return 0.0;
    }
    let sign = (v as u32) & 0x8000_0000;
    let mut m = v.unsigned_abs();
    let top = 31 - m.leading_zeros(); // highest set bit
                                      // value = m · 2^-16; normalise m to 24 bits with the leading one.
    let exp = top as i32 - 16 + 127;
    if top > 23 {
        m >>= top - 23;
    } else {
        m <<= 23 - top;
    }
    f32::from_bits(sign | (exp as u32) << 23 | (m & 0x7f_ffff))
}

/// Fills the Q30 twiddle table (`cos`, `sin` of `2πk/n` for `k < n/2`)
/// the first time a size is used.
fn prepare_twiddles(s: &mut Scratch, n: usize) {
    if s.twiddles_for == n as u32 {
        return;
    }
    let shift = 32 - n.trailing_zeros();
    for (k, pair) in s.twiddles.chunks_exact_mut(2).take(n / 2).enumerate() {
        let phase = (k as u32) << shift;
        pair[0] = fixed::cos_turns_q30(phase);
        pair[1] = fixed::sin_turns_q30(phase);
    }
    s.twiddles_for = n as u32;
}

/// `(a·b + 2^29) >> 30`.
#[inline(always)]
fn mul_q30(a: i64, b: i64) -> i64 {
    (a * b + (1 << 29)) >> 30
}

/// One frame (`a` then `b`, `frame_len` samples in all) into `s.row`.
pub(super) fn frame(fe: &FrontEnd, a: &[i16], b: &[i16], s: &mut Scratch) {
    let n = fe.n_fft as usize;
    let half = n / 2;
    prepare_twiddles(s, n);
    let Scratch {
        buf, twiddles, row, ..
    } = s;
    let Some(buf) = buf.get_mut(..n + 2) else {
        return;
    };
    // 1. Window, and the block shift that puts the peak below 2^21.
    let mut peak = 0u32;
    let mut len = 0;
    for ((x, &pcm), w) in buf
        .iter_mut()
        .zip(a.iter().chain(b))
        .zip(fe.window.chunks_exact(2))
    {
        let v = pcm as i32 * u16::from_le_bytes([w[0], w[1]]) as i32;
        peak |= v.unsigned_abs();
        *x = v as u32;
        len += 1;
    }
    if let Some(pad) = buf.get_mut(len..) {
        pad.fill(0);
    }
    let k = (32 - peak.leading_zeros()).saturating_sub(21);
    if k > 0 {
        for x in buf.iter_mut().take(len) {
            *x = ((*x as i32 + (1 << (k - 1))) >> k) as u32;
        }
    }
    // 2. The packed complex FFT of half length, then the split.
    let z: &mut [u32] = buf;
    fft(z, half, twiddles);
    let tw = |i: usize| -> (i64, i64) {
        (
            twiddles.get(2 * i).copied().unwrap_or(0) as i64,
            twiddles.get(2 * i + 1).copied().unwrap_or(0) as i64,
        )
    };
    let get = |z: &[u32], j: usize| -> (i64, i64) {
        (
            z.get(2 * j).copied().unwrap_or(0) as i32 as i64,
            z.get(2 * j + 1).copied().unwrap_or(0) as i32 as i64,
        )
    };
    let put = |z: &mut [u32], j: usize, p: u64| {
        if let Some(w) = z.get_mut(2 * j..2 * j + 2) {
            w[0] = p as u32;
            w[1] = (p >> 32) as u32;
        }
    };
    let square = |re: i64, im: i64| (re * re) as u64 + (im * im) as u64;
    // Bins 0 and n/2 from Z[0]; (2X) values throughout.
    let (r0, i0) = get(z, 0);
    put(z, 0, square(2 * (r0 + i0), 0));
    put(z, half, square(2 * (r0 - i0), 0));
    let mut top = 0u64;
    for j in 1..=half / 2 {
        let (ar, ai) = get(z, j);
        let (br, bi) = get(z, half - j);
        let (c, sn) = tw(j);
        // 2E and 2O for bin j; bin n/2 − j swaps a and b, and its
        // twiddle is (−c, s).
        let (er, ei, or, oi) = (ar + br, ai - bi, ai + bi, br - ar);
        let xj = (
            er + mul_q30(or, c) + mul_q30(oi, sn),
            ei + mul_q30(oi, c) - mul_q30(or, sn),
        );
        let (er2, ei2, or2, oi2) = (br + ar, bi - ai, bi + ai, ar - br);
        let xk = (
            er2 - mul_q30(or2, c) + mul_q30(oi2, sn),
            ei2 - mul_q30(oi2, c) - mul_q30(or2, sn),
        );
        let (pj, pk) = (square(xj.0, xj.1), square(xk.0, xk.1));
        put(z, j, pj);
        put(z, half - j, pk);
        top |= pj | pk;
    }
    let power = |z: &[u32], j: usize| -> u64 {
        let lo = z.get(2 * j).copied().unwrap_or(0) as u64;
        let hi = z.get(2 * j + 1).copied().unwrap_or(0) as u64;
        lo | hi << 32
    };
    top |= power(z, 0) | power(z, half);
    // 3. The power block shift, and the bands.
    let sh = (64 - top.leading_zeros()).saturating_sub(40);
    // acc = 2^(77 − 2k − s) · Σ v·P (P of x = pcm/32768, v the real weight).
    let exponent = (77 - 2 * k as i64 - sh as i64) << 24;
    let mut weights = fe.weights.chunks_exact(2);
    let mut gains = fe.gains.chunks_exact(4);
    for (m, out) in row.iter_mut().take(fe.n_mels as usize).enumerate() {
        let (first, count) = fe.band(m);
        let mut acc = 0u64;
        for (j, w) in (first..first + count).zip(weights.by_ref()) {
            acc += (power(z, j) >> sh) * u16::from_le_bytes([w[0], w[1]]) as u64;
        }
        let gain = gains
            .next()
            .map_or(0, |g| i32::from_le_bytes([g[0], g[1], g[2], g[3]]));
        let fe_c = &fe.fixed;
        // 4. The log, Q16.
        let ln = if acc == 0 {
            fe_c.floor_ln
        } else {
            let log2 = log2_q24(acc) - exponent;
            ((((log2 * LN2_Q30) >> 38) as i32).saturating_add(gain)).max(fe_c.floor_ln)
        };
        let v = match fe.log {
            LogBase::E => ln,
            LogBase::Ten => ((ln as i64 * INV_LN10_Q30) >> 30) as i32,
        };
        let v = fe_c.scale.apply(v.saturating_sub(fe_c.offset));
        *out = q16_to_f32(v);
    }
}

/// In-place radix-2 decimation-in-time FFT of `half` complex values
/// (interleaved `i32` pairs in `z`), forward (`e^{−iθ}`), with the Q30
/// twiddles of a `2·half`-point table (`tw[2i]`, `tw[2i+1]` = `cos`, `sin`
/// of `2πi / (2·half)`). Values stay below 2^30 (see the module notes).
fn fft(z: &mut [u32], half: usize, tw: &[i32]) {
    let bits = half.trailing_zeros();
    if bits == 0 {
        return;
    }
    for i in 0..half {
        let j = i.reverse_bits() >> (usize::BITS - bits);
        if j > i && 2 * j + 1 < z.len() {
            z.swap(2 * i, 2 * j);
            z.swap(2 * i + 1, 2 * j + 1);
        }
    }
    let mut len = 2;
    while len <= half {
        // Twiddle j of this stage: e^{−2πi j/len} = table entry j·(2·half/len).
        let stride = 2 * half / len;
        for start in (0..half).step_by(len) {
            for j in 0..len / 2 {
                let (u, v) = (start + j, start + j + len / 2);
                let c = tw.get(2 * j * stride).copied().unwrap_or(0) as i64;
                let sn = tw.get(2 * j * stride + 1).copied().unwrap_or(0) as i64;
                let (Some(&ur), Some(&ui), Some(&vr), Some(&vi)) = (
                    z.get(2 * u),
                    z.get(2 * u + 1),
                    z.get(2 * v),
                    z.get(2 * v + 1),
                ) else {
                    return;
                };
                let (ur, ui, vr, vi) = (
                    ur as i32 as i64,
                    ui as i32 as i64,
                    vr as i32 as i64,
                    vi as i32 as i64,
                );
                let tr = mul_q30(vr, c) + mul_q30(vi, sn);
                let ti = mul_q30(vi, c) - mul_q30(vr, sn);
                if let Some(w) = z.get_mut(2 * u..2 * u + 2) {
                    w[0] = (ur + tr) as i32 as u32;
                    w[1] = (ui + ti) as i32 as u32;
                }
                if let Some(w) = z.get_mut(2 * v..2 * v + 2) {
                    w[0] = (ur - tr) as i32 as u32;
                    w[1] = (ui - ti) as i32 as u32;
                }
            }
        }
        len *= 2;
    }
}
