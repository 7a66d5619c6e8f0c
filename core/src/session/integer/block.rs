//! One integer block for one row: the key/value projection into the int8
//! cache, attention with the integer softmax, the output projection,
//! residuals, norms and the integer feed-forward.

use super::*;

/// Key and value of one row into the int8 cache rows `k`/`v` (bytes).
#[allow(clippy::too_many_arguments)]
pub(in crate::session) fn project_kv(
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
    backend: quant::Backend,
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
        // The backend was checked available when it was chosen.
        let dot = quant::dot_i8_with(backend, head(kc, j, row, offset, hd), q).unwrap_or(0);
        *sc = score_m.apply(dot);
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
pub(in crate::session) fn block_row(
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
    let backend = s.lin.exec.backend;
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
                backend,
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
    let (sx_out, exec) = (sc.s.times(s_r.inv), s.lin.exec);
    linear(o, lw.wo, ctx, outl.used(), sx_out, s_r.inv, lw.bo, exec);
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
    linear(f1, lw.w1, xin, outl.used(), to_q16, q16, lw.b1, s.lin.exec);
    if let (Activation::SwiGlu, Some(w3)) = (cfg.activation, lw.w3) {
        let f2 = span_mut(ints(s.f2), 0, ff);
        linear(f2, w3, xin, outl.used(), to_q16, q16, lw.b3, s.lin.exec);
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
        s.lin.exec,
    );
    add(x, o);
    if !cfg.pre_norm {
        norm(cfg, x, lw.ffn_norm, s_r.s, s_r.inv);
    }
}
