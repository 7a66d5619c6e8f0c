//! Integer-only inference (config `integer`): every operation between the
//! token ids (or feature rows) and the output is integer arithmetic, so a
//! core without an FPU runs the whole model without soft-float calls.
//!
//! - **Static scales** come from calibration (`mote quantize --calib`): the
//!   global `act` tensor and one `L<i>.act` per layer hold the f32 scale of
//!   each quantized point ([`Point`]); the core reads their bits and builds
//!   fixed-point multipliers with integer operations ([`crate::fixed`]).
//! - **Residual stream**: `i32` at the model's residual scale.
//! - **Matrices**: int8 weights with one scale per row, int8 inputs at a
//!   static per-tensor scale (zero point 0), an exact `i32` dot product per
//!   row on the SIMD kernels, then one fixed-point requantization per row
//!   (`round(acc · s_row · s_x / s_out)`, TFLite's
//!   `MultiplyByQuantizedMultiplier`) plus the rounded bias.
//! - **Norms**: integer mean and variance, integer square root, one
//!   multiplier per channel for `γ / (σ · s_out)`.
//! - **Feed-forward activations** (GELU, SiLU, SwiGLU, ReLU) in Q16 with an
//!   integer `exp`; **RoPE** and sinusoidal positions rotate by Q30 sines of
//!   a phase `pos · turns[i]` (wrapping `u32` turns from the `turns` table).
//! - **Attention**: int8 query and cached keys/values at static scales,
//!   scores in Q16, an integer softmax (`exp` in Q30, probabilities in Q20),
//!   the weighted sum of int8 values in `i32`.
//!
//! Outputs leave as f32 only at the API: logits are produced in Q16 and
//! converted (`v / 2^16`), hidden rows as `v · s_residual`.

use super::lookup::{Layer, Lookup};
use super::scratch::{copy, span, span_mut, Exec, LinearScratch, Scratch, SPLIT_ROWS};
use crate::config::{Activation, Config, NormKind, PositionKind};
use crate::fixed::{self, sat_i8, Mult, Q16};
use crate::model::Weight;
use crate::quant;
use crate::tensors::NameBuf;
use crate::Result;

mod block;
mod io;

// The calibration names the host uses with the integer path.
pub use crate::session::observe::{Observe, Point};
pub use crate::tensors::{GLOBAL_SCALES, LAYER_SCALES, SMOOTH};
pub(in crate::session) use block::{block_row, project_kv};
pub(in crate::session) use io::*;

/// Largest residual magnitude kept (sums of squares stay inside `u64`).
const RESIDUAL_LIMIT: i32 = 1 << 30;

/// A static scale and its inverse.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scale {
    pub s: Mult,
    pub inv: Mult,
}

impl Scale {
    fn new(v: f32) -> Scale {
        let s = Mult::from_f32(v);
        Scale {
            s,
            inv: Mult::ONE.over(s),
        }
    }
}

/// Reads `n` scales from an f32 tensor (missing entries give zero scales).
fn scales<const N: usize>(t: &[f32]) -> [Scale; N] {
    core::array::from_fn(|i| Scale::new(t.get(i).copied().unwrap_or(0.0)))
}

/// The global static scales and the phase steps.
pub(super) struct Globals<'w> {
    pub g: [Scale; GLOBAL_SCALES],
    /// The residual scale as stored.
    pub residual_f32: f32,
    pub turns: &'w [i32],
}

pub(super) fn globals<'w>(cfg: &Config, lookup: &mut Lookup<'_, 'w>) -> Result<Globals<'w>> {
    let act = lookup.get(NameBuf::global("act"))?;
    let g = scales(act);
    let residual_f32 = act.first().copied().unwrap_or(0.0);
    let turns = match cfg.positions {
        PositionKind::Learned => &[][..],
        _ => {
            let info = lookup.info(NameBuf::global("turns"))?;
            lookup.model.tensor_i32(&info)?
        }
    };
    Ok(Globals {
        g,
        residual_f32,
        turns,
    })
}

/// A layer's static scales and smoothing multipliers.
pub(super) struct LayerScales<'w> {
    s: [Scale; LAYER_SCALES],
    smooth: [&'w [f32]; 2],
}

pub(super) fn layer_scales<'w>(lookup: &mut Lookup<'_, 'w>, l: u32) -> Result<LayerScales<'w>> {
    let s = scales(lookup.get(NameBuf::layer(l, "act"))?);
    let mut smooth = [&[][..]; 2];
    for (t, name) in smooth.iter_mut().zip(SMOOTH) {
        *t = lookup.get(NameBuf::layer(l, name))?;
    }
    Ok(LayerScales { s, smooth })
}

/// Which smoothing vector an int8 input uses.
#[derive(Clone, Copy)]
enum Input {
    Attn = 0,
    Ffn = 1,
}

fn residual(g: &Globals) -> Scale {
    g.g[Point::Residual.slot().1]
}

fn at(ls: &LayerScales, p: Point) -> Scale {
    ls.s[p.slot().1]
}

/// `i32` view of an arena buffer.
pub(super) fn ints(x: &mut [f32]) -> &mut [i32] {
    bytemuck::cast_slice_mut(x)
}

/// int8 view of an arena buffer.
fn bytes(x: &mut [f32]) -> &mut [i8] {
    bytemuck::cast_slice_mut(x)
}

/// `dst[i] = sat_i8(round(src[i] · m))`.
fn requant_i8(dst: &mut [i8], src: &[i32], m: Mult) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = sat_i8(m.apply(v));
    }
}

/// Extra fractional bits an outlier keeps (its value is `round(x / s · 2^8)`).
const FINE: i32 = 8;

/// Where an int8 matrix input puts the channels that do not fit in int8:
/// `(channel, round(x / s · 2^FINE))` pairs in `pairs[..2 * n]`.
struct Outliers<'o> {
    pairs: &'o mut [i32],
    n: usize,
}

impl Outliers<'_> {
    fn clear(&mut self) {
        self.n = 0;
    }

    fn used(&self) -> &[i32] {
        self.pairs.get(..2 * self.n).unwrap_or(&[])
    }
}

/// Rounds `src[j] · m · smooth[j]` (no `smooth`: `src[j] · m`) to int8
/// into `dst` (a matrix input at its static scale). A value beyond ±127 is
/// not clipped: it goes to `out` with 8 more bits (channel `base + j`) and
/// its int8 slot is 0, so the product adds it exactly. Only when `out` is
/// full does a value saturate.
#[inline(never)]
fn quantize_input(
    dst: &mut [i8],
    src: &[i32],
    m: Mult,
    smooth: Option<&[f32]>,
    base: usize,
    out: &mut Outliers,
) {
    let fine_m = m.times(Mult::pow2(FINE));
    for (j, (d, &v)) in dst.iter_mut().zip(src).enumerate() {
        let mj = match smooth {
            Some(k) => Mult::from_f32(k.get(j).copied().unwrap_or(1.0)).times(fine_m),
            None => fine_m,
        };
        let fine = mj.apply(v);
        let q = fine.saturating_add(1 << (FINE - 1)) >> FINE;
        if (-127..=127).contains(&q) {
            *d = q as i8;
            continue;
        }
        match out.pairs.get_mut(2 * out.n..2 * out.n + 2) {
            Some(pair) => {
                pair[0] = (base + j) as i32;
                pair[1] = fine;
                out.n += 1;
                *d = 0;
            }
            None => *d = sat_i8(q),
        }
    }
}

/// [`quantize_input`] of a whole normed row with per-channel smoothing.
fn quantize_smooth(dst: &mut [i8], src: &[i32], m: Mult, smooth: &[f32], out: &mut Outliers) {
    out.clear();
    quantize_input(dst, src, m, Some(smooth), 0, out);
}

/// `out[r] = round(Σ_c w[r,c]·x[c] · s_w[r] · sx_out) + round(b[r] / s_out)`
/// where `sx_out = s_x / s_out` and `out_inv = 1 / s_out`: an exact `i32`
/// dot product per row, then one requantization per row. Outlier channels
/// (`(c, x_c · 2^FINE)` pairs) add `Σ w[r,c]·x_c` exactly, in `i64`.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn linear(
    out: &mut [i32],
    w: Weight,
    x: &[i8],
    outliers: &[i32],
    sx_out: Mult,
    out_inv: Mult,
    bias: Option<&[f32]>,
    exec: Exec,
) {
    let Weight::I8 {
        q,
        scales,
        per_block: false,
    } = w
    else {
        // The model check admits only per-row int8 matrices.
        out.fill(0);
        return;
    };
    let cols = x.len();
    let rows = |o: &mut [i32], r0: usize| {
        // `exec.backend` was checked available when it was chosen.
        let _ = quant::gemv_i8_with(exec.backend, o, q.get(r0 * cols..).unwrap_or(&[]), x);
        for (i, o) in o.iter_mut().enumerate() {
            let r = r0 + i;
            let m = Mult::from_f32(scales.get(r).copied().unwrap_or(0.0)).times(sx_out);
            let b = bias
                .and_then(|b| b.get(r))
                .map_or(0, |&b| fixed::to_fixed(b, out_inv));
            let y = if outliers.is_empty() {
                m.apply(*o)
            } else {
                let row = q.get(r * cols..(r + 1) * cols).unwrap_or(&[]);
                let extra = outliers.chunks_exact(2).fold(0i64, |a, p| {
                    let w = row.get(p[0] as usize).copied().unwrap_or(0);
                    a + w as i64 * p[1] as i64
                });
                let total = ((*o as i64) << FINE) + extra;
                m.times(Mult::pow2(-FINE))
                    .apply64(total)
                    .clamp(i32::MIN as i64, i32::MAX as i64) as i32
            };
            *o = y.saturating_add(b);
        }
    };
    match exec.join {
        Some(j) if out.len() >= SPLIT_ROWS => {
            let mid = out.len() / 2;
            let (lo, hi) = out.split_at_mut(mid);
            j.join(&mut || rows(lo, 0), &mut || rows(hi, mid));
        }
        _ => rows(out, 0),
    }
}

/// Normalises the residual row `x` (units `s_r`) in place; the result is
/// in units of `1 / out_inv`. Integer mean and variance (after shifting the
/// deviations to about 20 bits), integer square root, one multiplier per
/// channel for `γ_c / (σ · s_out)`, the bias rounded to output units.
#[inline(never)]
fn norm(cfg: &Config, x: &mut [i32], w: (&[f32], Option<&[f32]>), s_r: Mult, out_inv: Mult) {
    let n = x.len() as i64;
    if n == 0 {
        return;
    }
    let mean = match cfg.norm {
        NormKind::LayerNorm => {
            let sum: i64 = x.iter().map(|&v| v as i64).sum();
            // Rounded to nearest.
            (2 * sum + n).checked_div_euclid(2 * n).unwrap_or(0)
        }
        NormKind::RmsNorm => 0,
    };
    let max_dev = x
        .iter()
        .map(|&v| (v as i64 - mean).unsigned_abs())
        .max()
        .unwrap_or(0);
    let k = (64 - max_dev.leading_zeros() as i32) - 20;
    let dev = |v: i32| -> i32 {
        let d = v as i64 - mean;
        (if k > 0 {
            (d + (1 << (k - 1))) >> k
        } else {
            d << -k
        }) as i32
    };
    let ss = x.iter().fold(0u64, |a, &v| {
        let d = dev(v) as i64;
        a.saturating_add((d * d) as u64)
    });
    let var = ss.checked_div(n as u64).unwrap_or(0);
    // eps in units of (s_r · 2^k)².
    let unit = s_r.times(Mult::pow2(k));
    let eps = Mult::from_f32(cfg.norm_eps)
        .times(Mult::ONE.over(unit.times(unit)))
        .apply64(1)
        .clamp(0, 1 << 62) as u64;
    let sigma = fixed::isqrt(var.saturating_add(eps)).max(1);
    let base = Mult::ONE.over(Mult::from_int(sigma)).times(out_inv);
    for (c, v) in x.iter_mut().enumerate() {
        let g = w.0.get(c).copied().unwrap_or(1.0);
        let y = Mult::from_f32(g).times(base).apply(dev(*v));
        let y = if g.is_sign_negative() {
            y.saturating_neg()
        } else {
            y
        };
        let b =
            w.1.and_then(|b| b.get(c))
                .map_or(0, |&b| fixed::to_fixed(b, out_inv));
        *v = y.saturating_add(b);
    }
}

/// `x += y`, kept within [`RESIDUAL_LIMIT`].
#[inline(never)]
fn add(x: &mut [i32], y: &[i32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a = a.saturating_add(b).clamp(-RESIDUAL_LIMIT, RESIDUAL_LIMIT);
    }
}

/// Fills `table` with Q30 `(cos, sin)` pairs of phase `pos · turns[i]`.
#[inline(never)]
fn rope_table(table: &mut [i32], turns: &[i32], pos: usize) {
    for (pair, &t) in table.chunks_exact_mut(2).zip(turns) {
        let phase = (pos as u32).wrapping_mul(t as u32);
        pair[0] = fixed::cos_turns_q30(phase);
        pair[1] = fixed::sin_turns_q30(phase);
    }
}

/// Rotates the pairs of every head of `x` (Q16) by `table` (Q30).
#[inline(never)]
fn rope(x: &mut [i32], table: &[i32]) {
    let hd = table.len();
    if hd == 0 {
        return;
    }
    for head in x.chunks_exact_mut(hd) {
        for (pair, cs) in head.chunks_exact_mut(2).zip(table.chunks_exact(2)) {
            let (a, b) = (pair[0] as i64, pair[1] as i64);
            let (c, s) = (cs[0] as i64, cs[1] as i64);
            pair[0] = ((a * c - b * s + (1 << 29)) >> 30) as i32;
            pair[1] = ((a * s + b * c + (1 << 29)) >> 30) as i32;
        }
    }
}

/// `1 / √n` as a multiplier.
fn inv_sqrt(n: usize) -> Mult {
    // √n · 2^20 (n ≤ 2^20, so n · 2^40 fits), then its inverse times 2^20.
    let r = fixed::isqrt((n.min(1 << 20) as u64) << 40);
    Mult::pow2(20).over(Mult::from_int(r))
}

/// The projection of `x` through `w` in Q16, rotated when the model uses
/// RoPE, then quantized to int8 at `to` (query or key).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn project_q16(
    cfg: &Config,
    s: &mut Scratch,
    w: Weight,
    bias: Option<&[f32]>,
    x_scale: Scale,
    to: Scale,
    out: &mut [i8],
    rope_on: bool,
) {
    let width = out.len();
    let q16 = span_mut(ints(s.q), 0, width);
    let x = &s.lin.xq[..];
    let xn = span(x, 0, cfg.d_model as usize);
    linear(
        q16,
        w,
        xn,
        outliers(s.lin.wrow, s.lin.n_outliers).used(),
        x_scale.s.times(Mult::pow2(Q16)),
        Mult::pow2(Q16),
        bias,
        s.lin.exec,
    );
    if rope_on && cfg.positions == PositionKind::Rope {
        rope(q16, ints(s.rope));
    }
    requant_i8(out, q16, Mult::pow2(-Q16).times(to.inv));
}

/// The normed row of `x` that enters attention (`AttnIn`), as int8 in
/// `s.lin.xq`.
#[inline(never)]
fn attn_input(cfg: &Config, lw: &Layer, ls: &LayerScales, g: &Globals, s: &mut Scratch, x: &[i32]) {
    let t = span_mut(ints(s.t), 0, x.len());
    copy(t, x);
    let to = at(ls, Point::AttnIn);
    let s_r = residual(g);
    let xq = &mut *s.lin.xq;
    let xq = span_mut(xq, 0, x.len());
    let smooth = ls.smooth[Input::Attn as usize];
    let mut out = outliers(s.lin.wrow, 0);
    if cfg.pre_norm {
        // Normed in Q16, then smoothed and rounded to int8.
        norm(cfg, t, lw.attn_norm, s_r.s, Mult::pow2(Q16));
        quantize_smooth(xq, t, Mult::pow2(-Q16).times(to.inv), smooth, &mut out);
    } else {
        quantize_smooth(xq, t, s_r.s.times(to.inv), smooth, &mut out);
    }
    s.lin.n_outliers = out.n;
}

/// The outlier pairs kept in the (otherwise unused) f32 row buffer.
fn outliers(buf: &mut [f32], n: usize) -> Outliers<'_> {
    Outliers {
        pairs: ints(buf),
        n,
    }
}
