//! Where the residual stream enters and leaves the integer path: token and
//! feature rows in, positions and types added, pooling, the heads' Q16
//! logits and the conversion back to f32 at the API.

use super::*;

/// Row `id` of the int8 token embedding in residual units.
#[inline(never)]
pub(in crate::session) fn embedding_row(x: &mut [i32], w: Weight, id: usize, g: &Globals) {
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
pub(in crate::session) fn add_constants(x: &mut [i32], row: &[f32], g: &Globals) {
    let inv = residual(g).inv;
    for (o, &v) in x.iter_mut().zip(row) {
        *o = o.saturating_add(fixed::to_fixed(v, inv));
    }
}

/// Adds sinusoidal positions: `sin, cos` of phase `pos · turns[i]` to pair `i`.
#[inline(never)]
pub(in crate::session) fn add_sinusoidal(x: &mut [i32], pos: usize, g: &Globals) {
    let m = Mult::pow2(-30).times(residual(g).inv);
    for (pair, &t) in x.chunks_exact_mut(2).zip(g.turns) {
        let phase = (pos as u32).wrapping_mul(t as u32);
        pair[0] = pair[0].saturating_add(m.apply(fixed::sin_turns_q30(phase)));
        pair[1] = pair[1].saturating_add(m.apply(fixed::cos_turns_q30(phase)));
    }
}

/// A norm of a residual row that stays in residual units (embedding and
/// post-norms).
pub(in crate::session) fn norm_residual(
    cfg: &Config,
    x: &mut [i32],
    w: (&[f32], Option<&[f32]>),
    g: &Globals,
) {
    let s_r = residual(g);
    norm(cfg, x, w, s_r.s, s_r.inv);
}

/// Quantizes f32 feature values to int8 at the `Features` scale (from their
/// bits, integer operations only).
pub(in crate::session) fn features_i8(out: &mut [i8], f: &[f32], g: &Globals) {
    let inv = g.g[Point::Features.slot().1].inv;
    for (o, &v) in out.iter_mut().zip(f) {
        *o = sat_i8(fixed::to_fixed(v, inv));
    }
}

/// `in_proj` of int8 features into the residual row `x`.
pub(in crate::session) fn input_projection(
    x: &mut [i32],
    w: Weight,
    f: &[i8],
    b: &[f32],
    g: &Globals,
    exec: Exec,
) {
    let s_r = residual(g);
    let sf = g.g[Point::Features.slot().1];
    linear(x, w, f, &[], sf.s.times(s_r.inv), s_r.inv, Some(b), exec);
}

/// Logits in Q16 of a head matrix over the residual row `x` (already normed
/// when the model has a final norm), converted to f32 (`v / 2^16`).
#[inline(never)]
pub(in crate::session) fn head_logits(
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
    linear(logits, w, xq, outl.used(), sx, q16, bias, lin.exec);
    for v in out.iter_mut() {
        *v = v.to_bits() as i32 as f32 / 65536.0;
    }
}

/// Mean (or first row) of `n` residual rows of `h`, in residual units.
#[inline(never)]
pub(in crate::session) fn pool(cfg: &Config, out: &mut [i32], h: &[i32], n: usize) {
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
pub(in crate::session) fn l2_normalize(out: &mut [f32], x: &[i32]) {
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
pub(in crate::session) fn to_f32(h: &mut [f32], g: &Globals) {
    for v in h.iter_mut() {
        *v = v.to_bits() as i32 as f32 * g.residual_f32;
    }
}
