//! The f32-activation path: f32, f16, int8 and int4 weights with f32
//! activations (int8 matrix inputs with per-block scales and exact outlier
//! channels), LayerNorm/RMSNorm, attention over an f32 or int8 cache.

use super::lookup::Layer;
use super::observe::Point;
use super::scratch::{copy, span_mut, split_rows, LinearScratch, Scratch};
use crate::config::{Activation, Config, KvCache, NormKind, PositionKind};
use crate::kernels;
use crate::model::Weight;
use crate::quant;

pub(super) fn norm(cfg: &Config, x: &mut [f32], w: (&[f32], Option<&[f32]>)) {
    match cfg.norm {
        NormKind::LayerNorm => kernels::layer_norm(x, w.0, w.1, cfg.norm_eps),
        NormKind::RmsNorm => kernels::rms_norm(x, w.0, cfg.norm_eps),
    }
}

/// Magnitude above which an activation channel is an outlier (LLM.int8()'s 6.0).
pub(super) const OUTLIER: f32 = quant::OUTLIER_LIMIT;

/// The int8 form of a matrix input: per-block int8 values and scales, with
/// outlier channels (LLM.int8()) kept out and added exactly, in f32, with
/// their dequantized weights by the kernel.
pub(super) fn int8_input<'x>(
    x: &'x [f32],
    xq: &'x mut [i8],
    xs: &'x mut [f32],
    inliers: &mut [f32],
    outliers: &'x mut [u32],
) -> quant::Activations<'x> {
    let n = x.len().min(xq.len()).min(inliers.len()).min(outliers.len());
    let nb = n.div_ceil(quant::BLOCK).min(xs.len());
    let k = quant::prepare_activations(
        &x[..n],
        OUTLIER,
        &mut inliers[..n],
        &mut xq[..n],
        &mut xs[..nb],
        outliers,
    );
    quant::Activations {
        q: &xq[..n],
        scales: &xs[..nb],
        outliers: outliers.get(..k).unwrap_or(&[]),
        values: &x[..n],
    }
}

/// `out = W x (+ bias)` for any stored weight type. int8 weights take an
/// int8 copy of `x` (symmetric, one scale per 32-element block) and integer
/// dot products; f16 rows are widened eight values at a time inside the dot
/// product ([`quant::dot_f16_with`]).
pub(super) fn linear(
    out: &mut [f32],
    w: Weight,
    x: &[f32],
    bias: Option<&[f32]>,
    s: &mut LinearScratch,
) {
    let LinearScratch {
        exec,
        xq,
        xs,
        wrow,
        outliers,
        unpack,
        ..
    } = s;
    let (join, backend) = (exec.join, exec.backend);
    let (xq, xs, wrow, outliers) = (&mut **xq, &mut **xs, &mut **wrow, &mut **outliers);
    let unpack = &mut **unpack;
    let cols = x.len();
    let bias_from = |r0: usize| bias.map(|b| b.get(r0..).unwrap_or(&[]));
    match w {
        Weight::F32(w) => split_rows(join, out, unpack, &|o, r0, _| {
            kernels::matvec(o, w.get(r0 * cols..).unwrap_or(&[]), x, bias_from(r0))
        }),
        Weight::F16(w) => split_rows(join, out, unpack, &|o, r0, _| {
            if cols == 0 {
                o.fill(0.0);
                return;
            }
            let rows = w.get(r0 * cols..).unwrap_or(&[]);
            for (i, (o, wr)) in o.iter_mut().zip(rows.chunks_exact(cols.max(1))).enumerate() {
                let b = bias.and_then(|b| b.get(r0 + i)).copied().unwrap_or(0.0);
                *o = quant::dot_f16_with(backend, wr, x) + b;
            }
        }),
        Weight::I8 {
            q,
            scales,
            per_block,
        } => {
            let act = int8_input(x, xq, xs, wrow, outliers);
            let (n, nb) = (act.q.len(), act.scales.len());
            split_rows(join, out, unpack, &|o, r0, _| {
                let ws = if per_block {
                    quant::WeightScales::Block(scales.get(r0 * nb..).unwrap_or(&[]))
                } else {
                    quant::WeightScales::Row(scales.get(r0..).unwrap_or(&[]))
                };
                // The backend was checked available when it was chosen.
                let w = q.get(r0 * n..).unwrap_or(&[]);
                let _ = quant::gemv_i8_blocked_with(backend, o, w, ws, &act, bias_from(r0));
            });
        }
        Weight::I4 { q, scales, offsets } => {
            let act = int8_input(x, xq, xs, wrow, outliers);
            let (n, nb) = (act.q.len(), act.scales.len());
            // Offsets multiply each block's exact f32 sum of `x` (the inlier
            // copy in `wrow` is no longer needed, so the sums go there).
            let width = nb.min(wrow.len());
            let sums = &mut wrow[..width];
            for (s, xb) in sums.iter_mut().zip(x.chunks(quant::BLOCK)) {
                *s = xb.iter().fold(0.0, |a, v| a + v);
            }
            let sums = &*sums;
            let packed = n.div_ceil(2);
            split_rows(join, out, unpack, &|o, r0, buf| {
                let done = quant::gemv_i4_blocked_with(
                    backend,
                    o,
                    q.get(r0 * packed..).unwrap_or(&[]),
                    scales.get(r0 * nb..).unwrap_or(&[]),
                    &act,
                    bias_from(r0),
                    buf,
                );
                if done.is_none() {
                    o.fill(0.0);
                }
                if let Some(m) = offsets {
                    for (i, o) in o.iter_mut().enumerate() {
                        let r = r0 + i;
                        let m = m.get(r * nb..(r + 1) * nb).unwrap_or(&[]);
                        *o += m.iter().zip(sums).fold(0.0, |a, (m, s)| a + m * s);
                    }
                }
            });
        }
    }
}

/// Row `i` of a `[rows, d]` embedding table, widened to f32 into `x`.
pub(super) fn embedding_row(x: &mut [f32], w: Weight, i: usize) {
    let d = x.len();
    let span = i * d..(i + 1) * d;
    match w {
        Weight::F32(t) => {
            for (o, v) in x.iter_mut().zip(t.get(span).unwrap_or(&[])) {
                *o = *v;
            }
        }
        Weight::I4 { q, scales, offsets } => {
            let nb = d.div_ceil(quant::BLOCK);
            let packed = d.div_ceil(2);
            let row = q.get(i * packed..(i + 1) * packed).unwrap_or(&[]);
            let row_scales = scales.get(i * nb..(i + 1) * nb).unwrap_or(&[]);
            let row_offsets = offsets.map(|m| m.get(i * nb..(i + 1) * nb).unwrap_or(&[]));
            for (c, o) in x.iter_mut().enumerate() {
                let v = quant::nibble(row, c);
                let b = c / quant::BLOCK;
                let m = row_offsets.map_or(0.0, |m| m.get(b).copied().unwrap_or(0.0));
                *o = v as f32 * row_scales.get(b).copied().unwrap_or(0.0) + m;
            }
        }
        Weight::F16(t) => {
            for (o, h) in x.iter_mut().zip(t.get(span).unwrap_or(&[])) {
                *o = h.to_f32();
            }
        }
        Weight::I8 {
            q,
            scales,
            per_block: false,
        } => {
            let s = scales.get(i).copied().unwrap_or(0.0);
            for (o, &v) in x.iter_mut().zip(q.get(span).unwrap_or(&[])) {
                *o = v as f32 * s;
            }
        }
        Weight::I8 {
            q,
            scales,
            per_block: true,
        } => {
            let nb = d.div_ceil(quant::BLOCK);
            let row_scales = scales.get(i * nb..(i + 1) * nb).unwrap_or(&[]);
            let blocks = q.get(span).unwrap_or(&[]).chunks(quant::BLOCK);
            for ((ob, qb), s) in x.chunks_mut(quant::BLOCK).zip(blocks).zip(row_scales) {
                for (o, &v) in ob.iter_mut().zip(qb) {
                    *o = v as f32 * s;
                }
            }
        }
    }
}

pub(super) fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Key and value of one row into the cache rows `k`/`v`
/// ([`Config::kv_row_floats`] slots each).
pub(super) fn project_kv(
    cfg: &Config,
    lw: &Layer,
    s: &mut Scratch,
    x: &[f32],
    k: &mut [f32],
    v: &mut [f32],
    pos: usize,
) {
    copy(s.t, x);
    if cfg.pre_norm {
        norm(cfg, s.t, lw.attn_norm);
    }
    s.watch.see(Point::AttnIn, s.t);
    // Computed in the query and attention buffers (free until `block_row`),
    // then stored in the cache's form.
    let kv = cfg.kv_dim();
    let (kf, vf) = (span_mut(s.q, 0, kv), span_mut(s.att, 0, kv));
    linear(kf, lw.wk, s.t, lw.bk, &mut s.lin);
    linear(vf, lw.wv, s.t, lw.bv, &mut s.lin);
    if cfg.positions == PositionKind::Rope {
        kernels::rope_table(s.rope, pos, cfg.rope_theta);
        kernels::rope(kf, s.rope);
    }
    s.watch.see(Point::Key, kf);
    s.watch.see(Point::Value, vf);
    store_row(cfg, k, kf);
    store_row(cfg, v, vf);
}

/// Writes one key or value row into its cache row: as is (f32 cache), or
/// per head as int8 with an absmax scale (the bytes first, then the scales).
pub(super) fn store_row(cfg: &Config, row: &mut [f32], x: &[f32]) {
    match cfg.kv_cache {
        KvCache::F32 => copy(row, x),
        KvCache::I8 => {
            let hd = (cfg.head_dim as usize).max(1);
            let (bytes, scales) = row.split_at_mut(cfg.kv_dim().div_ceil(4).min(row.len()));
            let q: &mut [i8] = bytemuck::cast_slice_mut(bytes);
            for ((xh, qh), sc) in x.chunks(hd).zip(q.chunks_mut(hd)).zip(scales.iter_mut()) {
                *sc = quant::quantize_symmetric(xh, qh);
            }
        }
    }
}

/// One attention head over an int8 cache: the query head is quantized
/// (absmax) once; each score is the int8 dot product with the cached key
/// head (the SIMD kernels, exact in i32) times both scales; values are
/// dequantized as they are added, in a fixed order.
#[allow(clippy::too_many_arguments)]
pub(super) fn attend_head_i8(
    cfg: &Config,
    backend: quant::Backend,
    out: &mut [f32],
    q: &[f32],
    qq: &mut [i8],
    kc: &[f32],
    vc: &[f32],
    n: usize,
    kv_head: usize,
    scale: f32,
) {
    let hd = q.len();
    let qq = match qq.get_mut(..hd) {
        Some(qq) => qq,
        None => return out.fill(0.0),
    };
    let sq = quant::quantize_symmetric(q, qq) * scale;
    let qq: &[i8] = qq;
    let row = cfg.kv_row_floats();
    let vals = cfg.kv_dim().div_ceil(4);
    // (int8 head, its scale) of cached row `j`.
    fn cached(
        c: &[f32],
        j: usize,
        row: usize,
        vals: usize,
        h: usize,
        hd: usize,
    ) -> Option<(&[i8], f32)> {
        let r = c.get(j * row..(j + 1) * row)?;
        let (bytes, scales) = r.split_at(vals.min(r.len()));
        let q: &[i8] = bytemuck::cast_slice(bytes);
        Some((q.get(h * hd..(h + 1) * hd)?, *scales.get(h)?))
    }
    let head = |cache, j| cached(cache, j, row, vals, kv_head, hd);
    kernels::attend(
        out,
        n,
        |j| {
            let (k, sk) = head(kc, j)?;
            Some(quant::dot_i8_with(backend, k, qq)? as f32 * (sq * sk))
        },
        |j, p, out| {
            let Some((v, sv)) = head(vc, j) else {
                return false;
            };
            let w = p * sv;
            for (o, &vi) in out.iter_mut().zip(v) {
                *o += w * vi as f32;
            }
            true
        },
    );
}

/// The rest of one block for one row: attention over `n_keys` cached rows,
/// projection, residual, norms and feed-forward, updating `x` in place.
#[allow(clippy::too_many_arguments)]
pub(super) fn block_row(
    cfg: &Config,
    lw: &Layer,
    s: &mut Scratch,
    x: &mut [f32],
    kc: &[f32],
    vc: &[f32],
    pos: usize,
    n_keys: usize,
) {
    copy(s.t, x);
    if cfg.pre_norm {
        norm(cfg, s.t, lw.attn_norm);
    }
    linear(s.q, lw.wq, s.t, lw.bq, &mut s.lin);
    if cfg.positions == PositionKind::Rope {
        kernels::rope_table(s.rope, pos, cfg.rope_theta);
        kernels::rope(s.q, s.rope);
    }
    s.watch.see(Point::Query, s.q);
    let hd = cfg.head_dim as usize;
    // Both counts are validated non-zero; `max(1)` keeps a division by zero out of the code.
    let group = ((cfg.n_heads / cfg.n_kv_heads.max(1)) as usize).max(1);
    let scale = 1.0 / libm::sqrtf(hd as f32);
    for (h, (out, q)) in s
        .att
        .chunks_exact_mut(hd.max(1))
        .zip(s.q.chunks_exact(hd.max(1)))
        .enumerate()
    {
        match cfg.kv_cache {
            KvCache::F32 => kernels::attend_head(
                out,
                q,
                kc,
                vc,
                n_keys,
                cfg.kv_dim(),
                (h / group) * hd,
                scale,
            ),
            KvCache::I8 => {
                let backend = s.lin.exec.backend;
                attend_head_i8(
                    cfg,
                    backend,
                    out,
                    q,
                    s.lin.xq,
                    kc,
                    vc,
                    n_keys,
                    h / group,
                    scale,
                )
            }
        }
    }
    s.watch.see(Point::Context, s.att);
    linear(s.o, lw.wo, s.att, lw.bo, &mut s.lin);
    add(x, s.o);
    s.watch.see(Point::Residual, x);
    if cfg.pre_norm {
        copy(s.t, x);
        norm(cfg, s.t, lw.ffn_norm);
    } else {
        norm(cfg, x, lw.attn_norm);
        s.watch.see(Point::Residual, x);
        copy(s.t, x);
    }
    s.watch.see(Point::FfnIn, s.t);
    linear(s.f1, lw.w1, s.t, lw.b1, &mut s.lin);
    match (cfg.activation, lw.w3) {
        (Activation::SwiGlu, Some(w3)) => {
            linear(s.f2, w3, s.t, lw.b3, &mut s.lin);
            for (a, b) in s.f1.iter_mut().zip(s.f2.iter()) {
                *a = kernels::silu(*a) * b;
            }
        }
        (act, _) => {
            for a in s.f1.iter_mut() {
                *a = match act {
                    Activation::Gelu => kernels::gelu(*a),
                    Activation::GeluTanh => kernels::gelu_tanh(*a),
                    Activation::Relu => a.max(0.0),
                    Activation::Silu | Activation::SwiGlu => kernels::silu(*a),
                };
            }
        }
    }
    s.watch.see(Point::Mid, s.f1);
    linear(s.o, lw.w2, s.f1, lw.b2, &mut s.lin);
    add(x, s.o);
    s.watch.see(Point::Residual, x);
    if !cfg.pre_norm {
        norm(cfg, x, lw.ffn_norm);
        s.watch.see(Point::Residual, x);
    }
}
