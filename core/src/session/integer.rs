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

use super::{copy, span, span_mut, Join, Layer, LinearScratch, Lookup, Scratch, SPLIT_ROWS};
use crate::config::{Activation, Config, NormKind, PositionKind};
use crate::fixed::{self, sat_i8, Mult, Q16};
use crate::model::{NameBuf, Weight};
use crate::quant;
use crate::Result;

/// Scales in the global `act` tensor.
pub const GLOBAL_SCALES: usize = 4;
/// Scales in each layer's `L<i>.act` tensor.
pub const LAYER_SCALES: usize = 7;
/// Per-channel multipliers of each layer's normed int8 matrix inputs
/// (`L<i>.smooth_attn` for `wq`/`wk`/`wv`, `L<i>.smooth_ffn` for
/// `w1`/`w3`): SmoothQuant's migration. Input channel `j` is multiplied by
/// `smooth[j]` before it is rounded to int8, and the matrix's column `j`
/// was divided by it when the model was written, so outlier channels no
/// longer set the whole tensor's scale.
pub const SMOOTH: [&str; 2] = ["smooth_attn", "smooth_ffn"];

/// A point where the f32 path shows its activations to an [`Observe`]r
/// during calibration, and whose static scale an integer model stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// The residual stream (global; `i32`, so calibration leaves headroom).
    Residual,
    /// Input of the LM head or the classifier (global; int8).
    HeadIn,
    /// Encoder feature rows (global; int8).
    Features,
    /// Input of `wq`, `wk`, `wv` (int8).
    AttnIn,
    /// Query after RoPE (int8).
    Query,
    /// Key after RoPE, as cached (int8).
    Key,
    /// Value, as cached (int8).
    Value,
    /// Attention output, input of `wo` (int8).
    Context,
    /// Input of `w1` (and `w3`) (int8).
    FfnIn,
    /// Input of `w2`, after the activation (int8).
    Mid,
}

impl Point {
    /// Every point.
    pub const ALL: [Point; 10] = [
        Point::Residual,
        Point::HeadIn,
        Point::Features,
        Point::AttnIn,
        Point::Query,
        Point::Key,
        Point::Value,
        Point::Context,
        Point::FfnIn,
        Point::Mid,
    ];

    /// Whether the point has one scale per layer, and its index in `act`
    /// (global) or `L<i>.act` (per layer).
    pub fn slot(self) -> (bool, usize) {
        match self {
            Point::Residual => (false, 0),
            Point::HeadIn => (false, 1),
            Point::Features => (false, 2),
            Point::AttnIn => (true, 0),
            Point::Query => (true, 1),
            Point::Key => (true, 2),
            Point::Value => (true, 3),
            Point::Context => (true, 4),
            Point::FfnIn => (true, 5),
            Point::Mid => (true, 6),
        }
    }
}

/// Receives the f32 path's activations (see [`super::Session::set_observer`]).
pub trait Observe {
    /// `x` holds one row's values at `point` of `layer` (0 for global points).
    fn see(&mut self, layer: u32, point: Point, x: &[f32]);
}

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
    join: Option<&dyn Join>,
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
        quant::gemv_i8(o, q.get(r0 * cols..).unwrap_or(&[]), x);
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
    match join {
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
        s.lin.join,
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

/// Key and value of one row into the int8 cache rows `k`/`v` (bytes).
#[allow(clippy::too_many_arguments)]
pub(super) fn project_kv(
    cfg: &Config,
    lw: &Layer,
    ls: &LayerScales,
    g: &Globals,
    s: &mut Scratch,
    x: &[i32],
    k: &mut [f32],
    v: &mut [f32],
    pos: usize,
) {
    attn_input(cfg, lw, ls, g, s, x);
    if cfg.positions == PositionKind::Rope {
        rope_table(ints(s.rope), g.turns, pos);
    }
    let kv = cfg.kv_dim();
    let x_scale = at(ls, Point::AttnIn);
    let k = span_mut(bytes(k), 0, kv);
    project_q16(cfg, s, lw.wk, lw.bk, x_scale, at(ls, Point::Key), k, true);
    let v = span_mut(bytes(v), 0, kv);
    project_q16(
        cfg,
        s,
        lw.wv,
        lw.bv,
        x_scale,
        at(ls, Point::Value),
        v,
        false,
    );
}

/// One attention head for one query: int8 scores in Q16, an integer
/// softmax (probabilities in Q20), and `acc = Σ_j p_j · v_j` over the int8
/// values (below 2^27 in magnitude, as the probabilities sum to 2^20).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn attend_head(
    acc: &mut [i32],
    q: &[i8],
    kc: &[i8],
    vc: &[i8],
    n: usize,
    row: usize,
    offset: usize,
    score_m: Mult,
    scores: &mut [i32],
) {
    let hd = q.len();
    fn head(c: &[i8], j: usize, row: usize, offset: usize, hd: usize) -> &[i8] {
        let at = j * row + offset;
        c.get(at..at + hd).unwrap_or(&[])
    }
    let n = n.min(scores.len());
    let scores = &mut scores[..n];
    for (j, sc) in scores.iter_mut().enumerate() {
        *sc = score_m.apply(quant::dot_i8(head(kc, j, row, offset, hd), q));
    }
    let max = scores.iter().copied().max().unwrap_or(0);
    let mut sum = 0i64;
    for sc in scores.iter_mut() {
        let e = fixed::exp_q30(sc.saturating_sub(max));
        *sc = e as i32;
        sum += e;
    }
    let to_p = Mult::pow2(20).over(Mult::from_int(sum as u64));
    acc.fill(0);
    for (j, &e) in scores.iter().enumerate() {
        let p = to_p.apply(e);
        for (a, &vv) in acc.iter_mut().zip(head(vc, j, row, offset, hd)) {
            *a = a.wrapping_add(p.wrapping_mul(vv as i32));
        }
    }
}

/// The rest of one block for one row (see [`super::block_row`]), in integers.
#[allow(clippy::too_many_arguments)]
pub(super) fn block_row(
    cfg: &Config,
    lw: &Layer,
    ls: &LayerScales,
    g: &Globals,
    s: &mut Scratch,
    x: &mut [i32],
    kc: &[f32],
    vc: &[f32],
    pos: usize,
    n_keys: usize,
) {
    let d = x.len();
    let qd = cfg.q_dim();
    attn_input(cfg, lw, ls, g, s, x);
    if cfg.positions == PositionKind::Rope {
        rope_table(ints(s.rope), g.turns, pos);
    }
    // The int8 query goes into the attention buffer's bytes.
    let q8 = core::mem::take(&mut s.att);
    let x_scale = at(ls, Point::AttnIn);
    let q8b = span_mut(bytes(q8), 0, qd);
    project_q16(
        cfg,
        s,
        lw.wq,
        lw.bq,
        x_scale,
        at(ls, Point::Query),
        q8b,
        true,
    );
    let hd = (cfg.head_dim as usize).max(1);
    let group = ((cfg.n_heads / cfg.n_kv_heads.max(1)) as usize).max(1);
    let row = cfg.kv_row_floats() * 4;
    let (sq, sk, sv, sc) = (
        at(ls, Point::Query),
        at(ls, Point::Key),
        at(ls, Point::Value),
        at(ls, Point::Context),
    );
    let score_m = sq.s.times(sk.s).times(inv_sqrt(hd)).times(Mult::pow2(Q16));
    // Q20 probabilities times int8 values (scale s_v), to the context scale.
    let ctx_m = sv.s.times(Mult::pow2(-20)).times(sc.inv);
    let (kc, vc): (&[i8], &[i8]) = (bytemuck::cast_slice(kc), bytemuck::cast_slice(vc));
    let mut out = outliers(s.lin.wrow, 0);
    {
        let q8 = &span_mut(bytes(q8), 0, qd)[..];
        let ctx = span_mut(s.lin.xq, 0, qd);
        let acc = span_mut(ints(s.q), 0, hd);
        let scores: &mut [i32] = bytemuck::cast_slice_mut(s.lin.outliers);
        for (h, (c8, q)) in ctx
            .chunks_exact_mut(hd)
            .zip(q8.chunks_exact(hd))
            .enumerate()
        {
            attend_head(
                acc,
                q,
                kc,
                vc,
                n_keys,
                row,
                (h / group) * hd,
                score_m,
                scores,
            );
            quantize_input(c8, acc, ctx_m, None, h * hd, &mut out);
        }
    }
    let n_out = out.n;
    s.att = q8;
    let s_r = residual(g);
    let o = span_mut(ints(s.o), 0, d);
    let ctx = &span_mut(&mut *s.lin.xq, 0, qd)[..];
    let outl = outliers(s.lin.wrow, n_out);
    let (sx_out, join) = (sc.s.times(s_r.inv), s.lin.join);
    linear(o, lw.wo, ctx, outl.used(), sx_out, s_r.inv, lw.bo, join);
    add(x, o);
    // Feed-forward input.
    let fin = at(ls, Point::FfnIn);
    let smooth = ls.smooth[Input::Ffn as usize];
    let mut out = outliers(s.lin.wrow, 0);
    let xq = span_mut(&mut *s.lin.xq, 0, d);
    if cfg.pre_norm {
        let t = span_mut(ints(s.t), 0, d);
        copy(t, x);
        norm(cfg, t, lw.ffn_norm, s_r.s, Mult::pow2(Q16));
        quantize_smooth(xq, t, Mult::pow2(-Q16).times(fin.inv), smooth, &mut out);
    } else {
        norm(cfg, x, lw.attn_norm, s_r.s, s_r.inv);
        quantize_smooth(xq, x, s_r.s.times(fin.inv), smooth, &mut out);
    }
    let n_out = out.n;
    let ff = cfg.d_ff as usize;
    let to_q16 = fin.s.times(Mult::pow2(Q16));
    let xin = &span_mut(&mut *s.lin.xq, 0, d)[..];
    let outl = outliers(s.lin.wrow, n_out);
    let f1 = span_mut(ints(s.f1), 0, ff);
    let q16 = Mult::pow2(Q16);
    linear(f1, lw.w1, xin, outl.used(), to_q16, q16, lw.b1, s.lin.join);
    if let (Activation::SwiGlu, Some(w3)) = (cfg.activation, lw.w3) {
        let f2 = span_mut(ints(s.f2), 0, ff);
        linear(f2, w3, xin, outl.used(), to_q16, q16, lw.b3, s.lin.join);
        for (a, &b) in f1.iter_mut().zip(f2.iter()) {
            *a = ((fixed::silu_q16(*a) as i64 * b as i64 + (1 << 15)) >> Q16)
                .clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        }
    } else {
        for a in f1.iter_mut() {
            *a = match cfg.activation {
                Activation::Gelu | Activation::GeluTanh => fixed::gelu_q16(*a),
                Activation::Relu => (*a).max(0),
                Activation::Silu | Activation::SwiGlu => fixed::silu_q16(*a),
            };
        }
    }
    let mid = at(ls, Point::Mid);
    let mut out = outliers(s.lin.wrow, 0);
    let m = Mult::pow2(-Q16).times(mid.inv);
    quantize_input(span_mut(&mut *s.lin.xq, 0, ff), f1, m, None, 0, &mut out);
    let n_out = out.n;
    let xmid = &span_mut(&mut *s.lin.xq, 0, ff)[..];
    let outl = outliers(s.lin.wrow, n_out);
    let o = span_mut(ints(s.o), 0, d);
    let sx_out = mid.s.times(s_r.inv);
    linear(
        o,
        lw.w2,
        xmid,
        outl.used(),
        sx_out,
        s_r.inv,
        lw.b2,
        s.lin.join,
    );
    add(x, o);
    if !cfg.pre_norm {
        norm(cfg, x, lw.ffn_norm, s_r.s, s_r.inv);
    }
}

/// Row `id` of the int8 token embedding in residual units.
#[inline(never)]
pub(super) fn embedding_row(x: &mut [i32], w: Weight, id: usize, g: &Globals) {
    let d = x.len();
    let Weight::I8 {
        q,
        scales,
        per_block: false,
    } = w
    else {
        x.fill(0);
        return;
    };
    let m = Mult::from_f32(scales.get(id).copied().unwrap_or(0.0)).times(residual(g).inv);
    for (o, &v) in x.iter_mut().zip(q.get(id * d..(id + 1) * d).unwrap_or(&[])) {
        *o = m.apply(v as i32);
    }
}

/// Adds f32 constants (a position or token-type row) in residual units.
#[inline(never)]
pub(super) fn add_constants(x: &mut [i32], row: &[f32], g: &Globals) {
    let inv = residual(g).inv;
    for (o, &v) in x.iter_mut().zip(row) {
        *o = o.saturating_add(fixed::to_fixed(v, inv));
    }
}

/// Adds sinusoidal positions: `sin, cos` of phase `pos · turns[i]` to pair `i`.
#[inline(never)]
pub(super) fn add_sinusoidal(x: &mut [i32], pos: usize, g: &Globals) {
    let m = Mult::pow2(-30).times(residual(g).inv);
    for (pair, &t) in x.chunks_exact_mut(2).zip(g.turns) {
        let phase = (pos as u32).wrapping_mul(t as u32);
        pair[0] = pair[0].saturating_add(m.apply(fixed::sin_turns_q30(phase)));
        pair[1] = pair[1].saturating_add(m.apply(fixed::cos_turns_q30(phase)));
    }
}

/// A norm of a residual row that stays in residual units (embedding and
/// post-norms).
pub(super) fn norm_residual(cfg: &Config, x: &mut [i32], w: (&[f32], Option<&[f32]>), g: &Globals) {
    let s_r = residual(g);
    norm(cfg, x, w, s_r.s, s_r.inv);
}

/// Quantizes f32 feature values to int8 at the `Features` scale (from their
/// bits, integer operations only).
pub(super) fn features_i8(out: &mut [i8], f: &[f32], g: &Globals) {
    let inv = g.g[Point::Features.slot().1].inv;
    for (o, &v) in out.iter_mut().zip(f) {
        *o = sat_i8(fixed::to_fixed(v, inv));
    }
}

/// `in_proj` of int8 features into the residual row `x`.
pub(super) fn input_projection(
    x: &mut [i32],
    w: Weight,
    f: &[i8],
    b: &[f32],
    g: &Globals,
    join: Option<&dyn Join>,
) {
    let s_r = residual(g);
    let sf = g.g[Point::Features.slot().1];
    linear(x, w, f, &[], sf.s.times(s_r.inv), s_r.inv, Some(b), join);
}

/// Logits in Q16 of a head matrix over the residual row `x` (already normed
/// when the model has a final norm), converted to f32 (`v / 2^16`).
#[inline(never)]
pub(super) fn head_logits(
    out: &mut [f32],
    w: Weight,
    x: &[i32],
    bias: Option<&[f32]>,
    lin: &mut LinearScratch,
    g: &Globals,
) {
    let hin = g.g[Point::HeadIn.slot().1];
    let xq = span_mut(&mut *lin.xq, 0, x.len());
    let mut o = outliers(lin.wrow, 0);
    let m = residual(g).s.times(hin.inv);
    quantize_input(xq, x, m, None, 0, &mut o);
    let n_out = o.n;
    let logits: &mut [i32] = bytemuck::cast_slice_mut(out);
    let outl = outliers(lin.wrow, n_out);
    let (sx, q16) = (hin.s.times(Mult::pow2(Q16)), Mult::pow2(Q16));
    linear(logits, w, xq, outl.used(), sx, q16, bias, lin.join);
    for v in out.iter_mut() {
        *v = v.to_bits() as i32 as f32 / 65536.0;
    }
}

/// Mean (or first row) of `n` residual rows of `h`, in residual units.
#[inline(never)]
pub(super) fn pool(cfg: &Config, out: &mut [i32], h: &[i32], n: usize) {
    let d = out.len();
    match cfg.pooling {
        crate::config::Pooling::Mean => {
            for (c, o) in out.iter_mut().enumerate() {
                let sum: i64 = (0..n)
                    .map(|r| h.get(r * d + c).copied().unwrap_or(0) as i64)
                    .sum();
                let n = n.max(1) as i64;
                *o = (2 * sum + n).checked_div_euclid(2 * n).unwrap_or(0) as i32;
            }
        }
        crate::config::Pooling::Cls => copy(out, span(h, 0, d)),
    }
}

/// L2-normalises an integer row into f32 (`x / ‖x‖`, computed in Q30).
#[inline(never)]
pub(super) fn l2_normalize(out: &mut [f32], x: &[i32]) {
    let max = x.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0) as u64;
    let k = (64 - max.leading_zeros() as i32 - 20).max(0);
    let ss = x.iter().fold(0u64, |a, &v| {
        let d = (v >> k) as i64;
        a.saturating_add((d * d) as u64)
    });
    let norm = fixed::isqrt(ss).max(1);
    let m = Mult::pow2(30).over(Mult::from_int(norm));
    for (o, &v) in out.iter_mut().zip(x) {
        *o = m.apply(v >> k) as f32 / (1u32 << 30) as f32;
    }
}

/// Hidden rows from residual units to f32 (`v · s_r`), in place.
pub(super) fn to_f32(h: &mut [f32], g: &Globals) {
    for v in h.iter_mut() {
        *v = v.to_bits() as i32 as f32 * g.residual_f32;
    }
}
