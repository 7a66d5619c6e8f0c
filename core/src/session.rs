//! `Session`: one model, one caller-provided arena, no other memory.
//!
//! The arena holds, in order (each rounded up to 16 bytes): the residual rows
//! (`max_seq` rows for an encoder, one for a decoder), the key and value
//! caches (every layer for a decoder, one layer at a time for an encoder),
//! per-row scratch (normed row, query, attention output, projection, two
//! feed-forward rows, the RoPE table) and the output (logits or the pooled
//! vector). Attention runs row by row with an online softmax, so nothing in
//! the arena grows with sequence².

use crate::config::{Activation, Architecture, Config, KvCache, NormKind, Pooling, PositionKind};
use crate::kernels;
use crate::model::{Model, NameBuf, Weight};
use crate::quant;
use crate::{Error, Result, TensorName};
use integer::{Observe, Point};

pub mod integer;

/// What one session must be able to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RunConfig {
    /// Longest sequence (encoder input, or decoder prompt + generated tokens).
    pub max_seq: u32,
}

/// One input to a model: token ids, or feature rows (`input_dim` values each).
#[derive(Debug, Clone, Copy)]
pub enum Input<'i> {
    /// Token ids.
    Ids(&'i [u32]),
    /// Feature rows, flattened.
    Features(&'i [f32]),
}

impl Input<'_> {
    /// Sequence rows this input makes for a model with `cfg` (what the
    /// [`RunConfig`] must allow).
    pub fn rows(&self, cfg: &Config) -> usize {
        match self {
            Input::Ids(ids) => ids.len(),
            Input::Features(f) => f.len() / (cfg.input_dim as usize).max(1),
        }
    }
}

/// Sizes (in `f32` elements, each a multiple of 4) of the arena's buffers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    sizes: [usize; 16],
}

const H: usize = 0;
const KC: usize = 1;
const VC: usize = 2;
const T: usize = 3;
const Q: usize = 4;
const ATT: usize = 5;
const O: usize = 6;
const F1: usize = 7;
const F2: usize = 8;
const ROPE: usize = 9;
const OUT: usize = 10;
const XQ: usize = 11;
const WROW: usize = 12;
const XS: usize = 13;
const OUTL: usize = 14;
const UNPACK: usize = 15;

impl Plan {
    pub(crate) fn total_bytes(&self) -> usize {
        self.sizes.iter().sum::<usize>() * 4
    }
}

fn arena_overflow() -> Error {
    Error::BadConfig {
        field: "arena size",
        value: u32::MAX,
    }
}

/// Plans the arena for `model` under `run`.
pub(crate) fn plan(model: &Model, run: &RunConfig) -> Result<Plan> {
    let cfg = model.config();
    if run.max_seq == 0 || run.max_seq > cfg.max_seq {
        return Err(Error::SequenceTooLong {
            max: cfg.max_seq,
            got: run.max_seq,
        });
    }
    let seq = run.max_seq as usize;
    let d = cfg.d_model as usize;
    let kv = cfg.kv_row_floats();
    let kv_i8 = cfg.kv_cache == KvCache::I8;
    let q = cfg.q_dim();
    let ff = cfg.d_ff as usize;
    let decoder = cfg.arch == Architecture::Decoder;
    let rows = if decoder { 1 } else { seq };
    let cache_layers = if decoder { cfg.n_layers as usize } else { 1 };
    let gated = cfg.activation == Activation::SwiGlu;
    // Widest input of any matrix: int8 activations and f16 row conversion need that much.
    let widest = d.max(q).max(ff).max(cfg.input_dim as usize);
    // The integer path has no per-block scales, inlier copies or int4
    // rows; its attention keeps one score per key in the outlier buffer.
    let int = cfg.integer;
    let raw: [Option<usize>; 16] = [
        rows.checked_mul(d),
        cache_layers
            .checked_mul(seq)
            .and_then(|x| x.checked_mul(kv)),
        cache_layers
            .checked_mul(seq)
            .and_then(|x| x.checked_mul(kv)),
        Some(d),
        Some(q),
        Some(q),
        Some(d),
        Some(ff),
        Some(if gated { ff } else { 0 }),
        Some(if cfg.positions == PositionKind::Rope {
            cfg.head_dim as usize
        } else {
            0
        }),
        Some(if decoder {
            cfg.vocab_size as usize
        } else {
            d.max(cfg.n_classes as usize)
        }),
        // int8 matrix inputs; the int8 cache's quantized query head.
        Some(if model.has_i8() || kv_i8 {
            widest.div_ceil(4)
        } else {
            0
        }),
        // Integer models keep their outlier pairs here.
        Some(if model.has_f16() || model.has_i8() {
            widest
        } else {
            0
        }),
        Some(if model.has_i8() && !int {
            widest.div_ceil(quant::BLOCK)
        } else {
            0
        }),
        Some(if int {
            widest.max(seq)
        } else if model.has_i8() {
            widest
        } else {
            0
        }),
        // Bytes for two unpacked rows, counted in f32 slots.
        Some(if model.has_i4() {
            (2 * widest).div_ceil(4)
        } else {
            0
        }),
    ];
    let mut sizes = [0usize; 16];
    let mut total: usize = 0;
    for (s, r) in sizes.iter_mut().zip(raw) {
        let floats = r
            .and_then(|v| v.checked_add(3))
            .ok_or_else(arena_overflow)?
            & !3;
        total = total.checked_add(floats).ok_or_else(arena_overflow)?;
        *s = floats;
    }
    // In `usize`: a plan whose byte count a pointer cannot hold fails here
    // on any target (every partial product is at most the total).
    total.checked_mul(4).ok_or_else(arena_overflow)?;
    Ok(Plan { sizes })
}

/// Per-row scratch buffers.
struct Scratch<'a> {
    t: &'a mut [f32],
    q: &'a mut [f32],
    att: &'a mut [f32],
    o: &'a mut [f32],
    f1: &'a mut [f32],
    f2: &'a mut [f32],
    rope: &'a mut [f32],
    lin: LinearScratch<'a>,
    watch: Watch<'a>,
}

/// Where the f32 path shows its activations during calibration.
struct Watch<'a> {
    obs: Option<&'a mut (dyn Observe + Send)>,
    layer: u32,
}

impl Watch<'_> {
    fn see(&mut self, point: Point, x: &[f32]) {
        if let Some(o) = self.obs.as_deref_mut() {
            o.see(self.layer, point, x);
        }
    }
}

/// The weights of one block, resolved from the tensor table.
struct Layer<'w> {
    attn_norm: (&'w [f32], Option<&'w [f32]>),
    ffn_norm: (&'w [f32], Option<&'w [f32]>),
    wq: Weight<'w>,
    wk: Weight<'w>,
    wv: Weight<'w>,
    wo: Weight<'w>,
    bq: Option<&'w [f32]>,
    bk: Option<&'w [f32]>,
    bv: Option<&'w [f32]>,
    bo: Option<&'w [f32]>,
    w1: Weight<'w>,
    w2: Weight<'w>,
    w3: Option<Weight<'w>>,
    b1: Option<&'w [f32]>,
    b2: Option<&'w [f32]>,
    b3: Option<&'w [f32]>,
}

struct Lookup<'m, 'w> {
    model: &'m Model<'w>,
    hint: u32,
}

impl<'w> Lookup<'_, 'w> {
    fn info(&mut self, name: NameBuf) -> Result<crate::TensorInfo> {
        let (i, info) =
            self.model
                .find(name.as_bytes(), self.hint)
                .ok_or(Error::MissingTensor {
                    tensor: TensorName::new(name.as_bytes()),
                })?;
        self.hint = i;
        Ok(info)
    }

    fn get(&mut self, name: NameBuf) -> Result<&'w [f32]> {
        let info = self.info(name)?;
        self.model.tensor_f32(&info)
    }

    fn matrix(&mut self, name: NameBuf) -> Result<Weight<'w>> {
        let info = self.info(name)?;
        self.model.weight_near(&info, self.hint)
    }

    fn opt(&mut self, name: NameBuf, present: bool) -> Result<Option<&'w [f32]>> {
        if present {
            self.get(name).map(Some)
        } else {
            Ok(None)
        }
    }

    fn layer(&mut self, cfg: &Config, l: u32) -> Result<Layer<'w>> {
        let ln = cfg.norm == NormKind::LayerNorm;
        let b = cfg.bias;
        let gated = cfg.activation == Activation::SwiGlu;
        let n = |s: &str| NameBuf::layer(l, s);
        Ok(Layer {
            attn_norm: (self.get(n("attn_norm.w"))?, self.opt(n("attn_norm.b"), ln)?),
            ffn_norm: (self.get(n("ffn_norm.w"))?, self.opt(n("ffn_norm.b"), ln)?),
            wq: self.matrix(n("wq"))?,
            wk: self.matrix(n("wk"))?,
            wv: self.matrix(n("wv"))?,
            wo: self.matrix(n("wo"))?,
            bq: self.opt(n("bq"), b)?,
            bk: self.opt(n("bk"), b)?,
            bv: self.opt(n("bv"), b)?,
            bo: self.opt(n("bo"), b)?,
            w1: self.matrix(n("w1"))?,
            w2: self.matrix(n("w2"))?,
            w3: if gated {
                Some(self.matrix(n("w3"))?)
            } else {
                None
            },
            b1: self.opt(n("b1"), b)?,
            b2: self.opt(n("b2"), b)?,
            b3: self.opt(n("b3"), b && gated)?,
        })
    }
}

fn norm(cfg: &Config, x: &mut [f32], w: (&[f32], Option<&[f32]>)) {
    match cfg.norm {
        NormKind::LayerNorm => kernels::layer_norm(x, w.0, w.1, cfg.norm_eps),
        NormKind::RmsNorm => kernels::rms_norm(x, w.0, cfg.norm_eps),
    }
}

/// Magnitude above which an activation channel is an outlier (LLM.int8()'s 6.0).
const OUTLIER: f32 = quant::OUTLIER_LIMIT;

/// Runs two closures, possibly in parallel (`rayon::join` on a host). A
/// session given one splits each large matrix–vector product in two halves
/// by rows; each output row is computed by the same code either way, so the
/// bits do not depend on it.
pub trait Join: Sync {
    /// Runs `a` and `b`, returning when both are done.
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send));
}

/// Computes a run of output rows: `(out, first_row, scratch)`.
type RowsFn<'f> = dyn Fn(&mut [f32], usize, &mut [i8]) + Sync + 'f;

/// Rows below which a product is not split.
const SPLIT_ROWS: usize = 64;

/// Computes `out` with `f(chunk, first_row)`, in two halves through `join` when given.
/// `f` also gets a private half of `scratch` (for unpacking int4 rows).
fn split_rows(join: Option<&dyn Join>, out: &mut [f32], scratch: &mut [i8], f: &RowsFn<'_>) {
    match join {
        Some(j) if out.len() >= SPLIT_ROWS => {
            let mid = out.len() / 2;
            let (lo, hi) = out.split_at_mut(mid);
            let half = scratch.len() / 2;
            let (s_lo, s_hi) = scratch.split_at_mut(half);
            j.join(&mut || f(lo, 0, s_lo), &mut || f(hi, mid, s_hi));
        }
        _ => f(out, 0, scratch),
    }
}

/// The int8 form of a matrix input: per-block int8 values and scales, with
/// outlier channels (LLM.int8()) kept out and added exactly, in f32, with
/// their dequantized weights by the kernel.
fn int8_input<'x>(
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

/// Scratch that [`linear`] needs.
struct LinearScratch<'s> {
    /// Optional parallelism for large products.
    join: Option<&'s dyn Join>,
    /// int8 copy of a matrix input.
    xq: &'s mut [i8],
    /// Its per-block scales.
    xs: &'s mut [f32],
    /// The inlier copy of an int8 input (integer-only models: outlier pairs).
    wrow: &'s mut [f32],
    /// Outlier channels of an int8 input.
    outliers: &'s mut [u32],
    /// Two rows' worth of unpacked int4 weights (one per thread half).
    unpack: &'s mut [i8],
    /// Outlier pairs in `wrow` (integer-only models).
    n_outliers: usize,
}

/// `out = W x (+ bias)` for any stored weight type. int8 weights take an
/// int8 copy of `x` (symmetric, one scale per 32-element block) and integer
/// dot products; f16 rows are widened eight values at a time inside the dot
/// product ([`quant::dot_f16`]).
fn linear(out: &mut [f32], w: Weight, x: &[f32], bias: Option<&[f32]>, s: &mut LinearScratch) {
    let LinearScratch {
        join,
        xq,
        xs,
        wrow,
        outliers,
        unpack,
        ..
    } = s;
    let join = *join;
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
                *o = quant::dot_f16(wr, x) + b;
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
                quant::gemv_i8_blocked(o, q.get(r0 * n..).unwrap_or(&[]), ws, &act, bias_from(r0));
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
                quant::gemv_i4_blocked(
                    o,
                    q.get(r0 * packed..).unwrap_or(&[]),
                    scales.get(r0 * nb..).unwrap_or(&[]),
                    &act,
                    bias_from(r0),
                    buf,
                );
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
fn embedding_row(x: &mut [f32], w: Weight, i: usize) {
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

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Key and value of one row into the cache rows `k`/`v`
/// ([`Config::kv_row_floats`] slots each).
fn project_kv(
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
fn store_row(cfg: &Config, row: &mut [f32], x: &[f32]) {
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
fn attend_head_i8(
    cfg: &Config,
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
            Some(quant::dot_i8(k, qq) as f32 * (sq * sk))
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
fn block_row(
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
            KvCache::I8 => attend_head_i8(cfg, out, q, s.lin.xq, kc, vc, n_keys, h / group, scale),
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

/// A model bound to an arena: runs encoder passes or decoder steps.
pub struct Session<'m, 'a> {
    model: &'m Model<'m>,
    cfg: Config,
    run: RunConfig,
    h: &'a mut [f32],
    kc: &'a mut [f32],
    vc: &'a mut [f32],
    scratch: Scratch<'a>,
    out: &'a mut [f32],
    pos: usize,
}

/// The LM head's tensor name.
fn lm_head(cfg: &Config) -> &'static str {
    if cfg.tied_embeddings {
        "tok_emb"
    } else {
        "lm_head"
    }
}

/// `s[at..at + len]`: in range by the arena plan; empty (never a panic) if not.
fn span<T>(s: &[T], at: usize, len: usize) -> &[T] {
    s.get(at..at.saturating_add(len)).unwrap_or(&[])
}

/// [`span`], mutable.
fn span_mut<T>(s: &mut [T], at: usize, len: usize) -> &mut [T] {
    s.get_mut(at..at.saturating_add(len)).unwrap_or(&mut [])
}

/// Copies the common length of `src` into `dst` (no length-mismatch panic).
fn copy<T: Copy>(dst: &mut [T], src: &[T]) {
    for (d, v) in dst.iter_mut().zip(src) {
        *d = *v;
    }
}

fn take<'a>(rest: &mut &'a mut [f32], n: usize, used: usize) -> &'a mut [f32] {
    let all = core::mem::take(rest);
    let (head, tail) = all.split_at_mut(n.min(all.len()));
    *rest = tail;
    let k = used.min(head.len());
    head.get_mut(..k).unwrap_or_default()
}

/// Whether this build has the f32-activation path (cargo feature `float`).
const FLOAT: bool = cfg!(feature = "float");
/// Whether this build has decoders (cargo feature `decoder`).
const DECODER: bool = cfg!(feature = "decoder");

impl<'m, 'a> Session<'m, 'a> {
    /// Binds `model` to `arena`. The arena should start on a 16-byte boundary;
    /// otherwise the padding up to one counts against its size.
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8], run: RunConfig) -> Result<Self> {
        let cfg = *model.config();
        if !cfg.integer && !FLOAT {
            return Err(Error::NotBuilt { feature: "float" });
        }
        if cfg.arch == Architecture::Decoder && !DECODER {
            return Err(Error::NotBuilt { feature: "decoder" });
        }
        let plan = plan(model, &run)?;
        let total = plan.total_bytes();
        let got = arena.len();
        let pad = arena.as_ptr().align_offset(16).min(got);
        let needed = total.saturating_add(pad);
        if got < needed {
            return Err(Error::ArenaTooSmall {
                needed: needed as u64,
                got: got as u64,
            });
        }
        let bytes = arena
            .get_mut(pad..pad.saturating_add(total))
            .ok_or(Error::ArenaTooSmall {
                needed: needed as u64,
                got: got as u64,
            })?;
        bytes.fill(0);
        let floats: &'a mut [f32] =
            bytemuck::try_cast_slice_mut(bytes).map_err(|_| Error::ArenaTooSmall {
                needed: needed as u64,
                got: got as u64,
            })?;
        let mut rest = floats;
        let s = plan.sizes;
        let d = cfg.d_model as usize;
        let used = |i: usize, n: usize| (s[i], n);
        let (n_h, u_h) = used(H, s[H]);
        let h = take(&mut rest, n_h, u_h);
        let kc = take(&mut rest, s[KC], s[KC]);
        let vc = take(&mut rest, s[VC], s[VC]);
        let scratch = Scratch {
            t: take(&mut rest, s[T], d),
            q: take(&mut rest, s[Q], cfg.q_dim()),
            att: take(&mut rest, s[ATT], cfg.q_dim()),
            o: take(&mut rest, s[O], d),
            f1: take(&mut rest, s[F1], cfg.d_ff as usize),
            f2: take(&mut rest, s[F2], cfg.d_ff as usize),
            rope: take(&mut rest, s[ROPE], cfg.head_dim as usize),
            lin: LinearScratch {
                join: None,
                xq: &mut [],
                xs: &mut [],
                wrow: &mut [],
                outliers: &mut [],
                unpack: &mut [],
                n_outliers: 0,
            },
            watch: Watch {
                obs: None,
                layer: 0,
            },
        };
        let out_len = if cfg.arch == Architecture::Decoder {
            cfg.vocab_size as usize
        } else {
            d.max(cfg.n_classes as usize)
        };
        let out = take(&mut rest, s[OUT], out_len);
        let xq_floats = take(&mut rest, s[XQ], s[XQ]);
        let scratch = Scratch {
            lin: LinearScratch {
                join: None,
                xq: bytemuck::cast_slice_mut(xq_floats),
                wrow: take(&mut rest, s[WROW], s[WROW]),
                xs: take(&mut rest, s[XS], s[XS]),
                outliers: bytemuck::cast_slice_mut(take(&mut rest, s[OUTL], s[OUTL])),
                unpack: bytemuck::cast_slice_mut(take(&mut rest, s[UNPACK], s[UNPACK])),
                n_outliers: 0,
            },
            ..scratch
        };
        Ok(Session {
            model,
            cfg,
            run,
            h,
            kc,
            vc,
            scratch,
            out,
            pos: 0,
        })
    }

    /// Whether the integer-only path runs. Always, in a build without the
    /// f32-activation path (`new` refused other models): the f32 branches
    /// are then dead code, and the linker leaves them out.
    #[inline(always)]
    fn integer(&self) -> bool {
        !FLOAT || self.cfg.integer
    }

    /// Lets large matrix–vector products run in two halves through `join`
    /// (threads on a host). Results are bit-identical with and without.
    pub fn set_join(&mut self, join: &'a dyn Join) {
        self.scratch.lin.join = Some(join);
    }

    /// Shows `obs` the activations of every later f32 run (calibration:
    /// see [`integer::Point`]). Integer models run without observing.
    pub fn set_observer(&mut self, obs: &'a mut (dyn Observe + Send)) {
        self.scratch.watch.obs = Some(obs);
    }

    /// The model's config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Tokens consumed so far by a decoder session.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Forgets the decoder's KV cache.
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    fn check_arch(&self, want: Architecture) -> Result<()> {
        if self.cfg.arch == want {
            Ok(())
        } else {
            Err(Error::WrongArchitecture {
                expected: want as u32,
                got: self.cfg.arch as u32,
            })
        }
    }

    /// Writes token embedding (+ absolute position, + token type) of `id` into `x`.
    fn embed_row(
        &self,
        lookup: &mut Lookup<'_, 'm>,
        x: &mut [f32],
        id: u32,
        pos: usize,
        ty: u32,
    ) -> Result<()> {
        let cfg = &self.cfg;
        if id >= cfg.vocab_size {
            return Err(Error::TokenOutOfRange {
                id,
                vocab: cfg.vocab_size,
            });
        }
        embedding_row(x, lookup.matrix(NameBuf::global("tok_emb"))?, id as usize);
        self.finish_embedding(lookup, x, pos, ty)
    }

    /// [`Session::embed_row`] for an integer model, in residual units.
    fn embed_row_i(
        &self,
        lookup: &mut Lookup<'_, 'm>,
        g: &integer::Globals,
        x: &mut [i32],
        id: u32,
        pos: usize,
        ty: u32,
    ) -> Result<()> {
        let cfg = &self.cfg;
        if id >= cfg.vocab_size {
            return Err(Error::TokenOutOfRange {
                id,
                vocab: cfg.vocab_size,
            });
        }
        let w = lookup.matrix(NameBuf::global("tok_emb"))?;
        integer::embedding_row(x, w, id as usize, g);
        self.finish_embedding_i(lookup, g, x, pos, ty)
    }

    /// [`Session::finish_embedding`] for an integer model.
    fn finish_embedding_i(
        &self,
        lookup: &mut Lookup<'_, 'm>,
        g: &integer::Globals,
        x: &mut [i32],
        pos: usize,
        ty: u32,
    ) -> Result<()> {
        let cfg = &self.cfg;
        let d = cfg.d_model as usize;
        let row = |t: &'m [f32], i: usize| t.get(i * d..(i + 1) * d).unwrap_or(&[]);
        match cfg.positions {
            PositionKind::Learned => {
                integer::add_constants(x, row(lookup.get(NameBuf::global("pos_emb"))?, pos), g)
            }
            PositionKind::Sinusoidal => integer::add_sinusoidal(x, pos, g),
            PositionKind::Rope => {}
        }
        if cfg.n_token_types > 0 {
            if ty >= cfg.n_token_types {
                return Err(Error::TokenOutOfRange {
                    id: ty,
                    vocab: cfg.n_token_types,
                });
            }
            let t = lookup.get(NameBuf::global("type_emb"))?;
            integer::add_constants(x, row(t, ty as usize), g);
        }
        if cfg.embedding_norm {
            let ln = cfg.norm == NormKind::LayerNorm;
            let w = lookup.get(NameBuf::global("emb_norm.w"))?;
            let b = lookup.opt(NameBuf::global("emb_norm.b"), ln)?;
            integer::norm_residual(cfg, x, (w, b), g);
        }
        Ok(())
    }

    /// Adds position and token type to an embedded row `x`, then the embedding norm.
    fn finish_embedding(
        &self,
        lookup: &mut Lookup<'_, 'm>,
        x: &mut [f32],
        pos: usize,
        ty: u32,
    ) -> Result<()> {
        let cfg = &self.cfg;
        let d = cfg.d_model as usize;
        let row = |t: &'m [f32], i: usize| t.get(i * d..(i + 1) * d).unwrap_or(&[]);
        match cfg.positions {
            PositionKind::Learned => add(x, row(lookup.get(NameBuf::global("pos_emb"))?, pos)),
            PositionKind::Sinusoidal => {
                for (i, pair) in x.chunks_exact_mut(2).enumerate() {
                    let angle = pos as f32 / libm::powf(10000.0, 2.0 * i as f32 / d as f32);
                    pair[0] += libm::sinf(angle);
                    pair[1] += libm::cosf(angle);
                }
            }
            PositionKind::Rope => {}
        }
        if cfg.n_token_types > 0 {
            if ty >= cfg.n_token_types {
                return Err(Error::TokenOutOfRange {
                    id: ty,
                    vocab: cfg.n_token_types,
                });
            }
            add(
                x,
                row(lookup.get(NameBuf::global("type_emb"))?, ty as usize),
            );
        }
        if cfg.embedding_norm {
            let ln = cfg.norm == NormKind::LayerNorm;
            let w = lookup.get(NameBuf::global("emb_norm.w"))?;
            let b = lookup.opt(NameBuf::global("emb_norm.b"), ln)?;
            norm(cfg, x, (w, b));
        }
        Ok(())
    }

    /// Checks an encoder call's input kind (`features`: feature rows, else
    /// token ids) and row count against the model and the run.
    fn check_encoder_input(&self, features: bool, n: usize) -> Result<()> {
        self.check_arch(Architecture::Encoder)?;
        if features != (self.cfg.input_dim > 0) {
            return Err(Error::WrongInputKind {
                input_dim: self.cfg.input_dim,
            });
        }
        if n == 0 {
            return Err(Error::EmptyInput);
        }
        if n > self.run.max_seq as usize {
            return Err(Error::SequenceTooLong {
                max: self.run.max_seq,
                got: n.min(u32::MAX as usize) as u32,
            });
        }
        Ok(())
    }

    /// Runs an encoder over `ids` (token types all 0 unless given) and returns
    /// the final hidden rows, `ids.len() × d_model`.
    pub fn encode(&mut self, ids: &[u32], types: Option<&[u32]>) -> Result<&[f32]> {
        let n = self.encode_rows(ids, types)?;
        self.hidden_f32(n)
    }

    /// The first `n` hidden rows as f32 (an integer model's are converted
    /// from residual units in place).
    fn hidden_f32(&mut self, n: usize) -> Result<&[f32]> {
        let d = self.cfg.d_model as usize;
        if self.integer() {
            let mut lookup = Lookup {
                model: self.model,
                hint: 0,
            };
            let g = integer::globals(&self.cfg, &mut lookup)?;
            integer::to_f32(span_mut(self.h, 0, n * d), &g);
        }
        Ok(span(self.h, 0, n * d))
    }

    /// [`Session::encode`] leaving the rows in the arena (residual units
    /// for an integer model); returns the row count.
    fn encode_rows(&mut self, ids: &[u32], types: Option<&[u32]>) -> Result<usize> {
        let n = ids.len();
        self.check_encoder_input(false, n)?;
        if let Some(t) = types {
            if t.len() != n {
                return Err(Error::SequenceTooLong {
                    max: n as u32,
                    got: t.len().min(u32::MAX as usize) as u32,
                });
            }
        }
        let d = self.cfg.d_model as usize;
        let model = self.model;
        let mut lookup = Lookup { model, hint: 0 };
        let h = core::mem::take(&mut self.h);
        let ty = |r: usize| types.and_then(|t| t.get(r)).copied().unwrap_or(0);
        let embedded = if self.integer() {
            integer::globals(&self.cfg, &mut lookup).and_then(|g| {
                let hi = integer::ints(h);
                ids.iter().enumerate().try_for_each(|(r, &id)| {
                    self.embed_row_i(&mut lookup, &g, span_mut(hi, r * d, d), id, r, ty(r))
                })
            })
        } else {
            ids.iter().enumerate().try_for_each(|(r, &id)| {
                self.embed_row(&mut lookup, span_mut(h, r * d, d), id, r, ty(r))
            })
        };
        // Put the rows back before reporting a bad token, so the session stays usable.
        self.h = h;
        embedded?;
        self.encoder_layers(&mut lookup, n)?;
        Ok(n)
    }

    /// Runs an encoder whose input is rows of `input_dim` features (image
    /// patches, audio frames; `in_proj` maps each to `d_model`) and returns
    /// the final hidden rows, `rows × d_model`.
    pub fn encode_features(&mut self, features: &[f32]) -> Result<&[f32]> {
        let n = self.encode_feature_rows(features)?;
        self.hidden_f32(n)
    }

    /// [`Session::encode_features`] leaving the rows in the arena.
    fn encode_feature_rows(&mut self, features: &[f32]) -> Result<usize> {
        let width = self.cfg.input_dim as usize;
        if width > 0 && !features.len().is_multiple_of(width) {
            return Err(Error::FeatureShape {
                width: width as u32,
                got: features.len().min(u32::MAX as usize) as u32,
            });
        }
        let n = features.len().checked_div(width).unwrap_or(0);
        self.check_encoder_input(true, n)?;
        let d = self.cfg.d_model as usize;
        let model = self.model;
        let mut lookup = Lookup { model, hint: 0 };
        let w = lookup.matrix(NameBuf::global("in_proj.w"))?;
        let b = lookup.get(NameBuf::global("in_proj.b"))?;
        let h = core::mem::take(&mut self.h);
        let rows = features.chunks_exact(width.max(1)).enumerate();
        let embedded = if self.integer() {
            integer::globals(&self.cfg, &mut lookup).and_then(|g| {
                let hi = integer::ints(h);
                rows.into_iter().try_for_each(|(r, f)| {
                    let x = span_mut(hi, r * d, d);
                    let fq = span_mut(self.scratch.lin.xq, 0, width);
                    integer::features_i8(fq, f, &g);
                    integer::input_projection(x, w, fq, b, &g, self.scratch.lin.join);
                    self.finish_embedding_i(&mut lookup, &g, x, r, 0)
                })
            })
        } else {
            rows.into_iter().try_for_each(|(r, f)| {
                let x = span_mut(h, r * d, d);
                self.scratch.watch.see(Point::Features, f);
                linear(x, w, f, Some(b), &mut self.scratch.lin);
                self.finish_embedding(&mut lookup, x, r, 0)
            })
        };
        self.h = h;
        embedded?;
        self.encoder_layers(&mut lookup, n)?;
        Ok(n)
    }

    /// The transformer blocks and final norm over `n` embedded rows.
    fn encoder_layers(&mut self, lookup: &mut Lookup<'_, 'm>, n: usize) -> Result<()> {
        let cfg = self.cfg;
        if self.integer() {
            return self.encoder_layers_i(lookup, n);
        }
        let d = cfg.d_model as usize;
        let kv = cfg.kv_row_floats();
        self.scratch.watch.layer = 0;
        for x in span(self.h, 0, n * d).chunks_exact(d.max(1)) {
            self.scratch.watch.see(Point::Residual, x);
        }
        for l in 0..cfg.n_layers {
            let lw = lookup.layer(&cfg, l)?;
            self.scratch.watch.layer = l;
            for r in 0..n {
                let (k, v) = (span_mut(self.kc, r * kv, kv), span_mut(self.vc, r * kv, kv));
                project_kv(
                    &cfg,
                    &lw,
                    &mut self.scratch,
                    span(self.h, r * d, d),
                    k,
                    v,
                    r,
                );
            }
            for r in 0..n {
                let n_keys = if cfg.causal { r + 1 } else { n };
                let x = span_mut(self.h, r * d, d);
                block_row(&cfg, &lw, &mut self.scratch, x, self.kc, self.vc, r, n_keys);
            }
        }
        self.scratch.watch.layer = 0;
        if cfg.pre_norm {
            let w = lookup.get(NameBuf::global("out_norm.w"))?;
            let b = lookup.opt(
                NameBuf::global("out_norm.b"),
                cfg.norm == NormKind::LayerNorm,
            )?;
            for x in span_mut(self.h, 0, n * d).chunks_exact_mut(d.max(1)) {
                norm(&cfg, x, (w, b));
                self.scratch.watch.see(Point::Residual, x);
            }
        }
        Ok(())
    }

    /// [`Session::encoder_layers`] for an integer model.
    fn encoder_layers_i(&mut self, lookup: &mut Lookup<'_, 'm>, n: usize) -> Result<()> {
        let cfg = self.cfg;
        let d = cfg.d_model as usize;
        let kv = cfg.kv_row_floats();
        let g = integer::globals(&cfg, lookup)?;
        for l in 0..cfg.n_layers {
            let lw = lookup.layer(&cfg, l)?;
            let ls = integer::layer_scales(lookup, l)?;
            for r in 0..n {
                let (k, v) = (span_mut(self.kc, r * kv, kv), span_mut(self.vc, r * kv, kv));
                let x = span_mut(integer::ints(self.h), r * d, d);
                integer::project_kv(&cfg, &lw, &ls, &g, &mut self.scratch, x, k, v, r);
            }
            for r in 0..n {
                let n_keys = if cfg.causal { r + 1 } else { n };
                let x = span_mut(integer::ints(self.h), r * d, d);
                integer::block_row(
                    &cfg,
                    &lw,
                    &ls,
                    &g,
                    &mut self.scratch,
                    x,
                    self.kc,
                    self.vc,
                    r,
                    n_keys,
                );
            }
        }
        if cfg.pre_norm {
            let w = lookup.get(NameBuf::global("out_norm.w"))?;
            let b = lookup.opt(
                NameBuf::global("out_norm.b"),
                cfg.norm == NormKind::LayerNorm,
            )?;
            for x in span_mut(integer::ints(self.h), 0, n * d).chunks_exact_mut(d.max(1)) {
                integer::norm_residual(&cfg, x, (w, b), &g);
            }
        }
        Ok(())
    }

    /// Pools the first `n` hidden rows into `out` (mean or first row).
    fn pool(&self, out: &mut [f32], n: usize) {
        let d = self.cfg.d_model as usize;
        match self.cfg.pooling {
            Pooling::Mean => {
                out.fill(0.0);
                for row in span(self.h, 0, n * d).chunks_exact(d.max(1)) {
                    add(out, row);
                }
                let inv = 1.0 / n as f32;
                for v in out.iter_mut() {
                    *v *= inv;
                }
            }
            Pooling::Cls => copy(out, span(self.h, 0, d)),
        }
    }

    /// Runs an encoder and pools its rows into one L2-normalised vector
    /// (mean over all tokens, or the first token), as sentence-transformers does.
    pub fn embed(&mut self, ids: &[u32]) -> Result<&[f32]> {
        let n = self.encode_rows(ids, None)?;
        Ok(self.pooled_embedding(n))
    }

    /// The first `n` hidden rows pooled into `out` and L2-normalised.
    fn pooled_embedding(&mut self, n: usize) -> &[f32] {
        let d = self.cfg.d_model as usize;
        let out = core::mem::take(&mut self.out);
        if self.integer() {
            let pooled = span_mut(integer::ints(self.scratch.t), 0, d);
            integer::pool(&self.cfg, pooled, integer::ints(self.h), n);
            integer::l2_normalize(span_mut(out, 0, d), pooled);
        } else {
            self.pool(span_mut(out, 0, d), n);
            kernels::l2_normalize(span_mut(out, 0, d));
        }
        self.out = out;
        span(self.out, 0, d)
    }

    /// Runs an encoder with a classifier head over token ids and returns the
    /// `n_classes` logits (`cls.w · pool(rows) + cls.b`, pooled without normalising).
    pub fn classify(&mut self, ids: &[u32]) -> Result<&[f32]> {
        self.check_head()?;
        let n = self.encode_rows(ids, None)?;
        self.head(n)
    }

    /// [`Session::classify`] for a feature-input encoder ([`Session::encode_features`]).
    pub fn classify_features(&mut self, features: &[f32]) -> Result<&[f32]> {
        self.check_head()?;
        let n = self.encode_feature_rows(features)?;
        self.head(n)
    }

    fn check_head(&self) -> Result<()> {
        self.check_arch(Architecture::Encoder)?;
        if self.cfg.n_classes == 0 {
            return Err(Error::NoClassifier);
        }
        Ok(())
    }

    fn head(&mut self, n: usize) -> Result<&[f32]> {
        let d = self.cfg.d_model as usize;
        let k = self.cfg.n_classes as usize;
        let mut lookup = Lookup {
            model: self.model,
            hint: 0,
        };
        let w = lookup.matrix(NameBuf::global("cls.w"))?;
        let b = lookup.get(NameBuf::global("cls.b"))?;
        if self.integer() {
            let g = integer::globals(&self.cfg, &mut lookup)?;
            let pooled = span_mut(integer::ints(self.scratch.t), 0, d);
            integer::pool(&self.cfg, pooled, integer::ints(self.h), n);
            let out = span_mut(self.out, 0, k);
            integer::head_logits(out, w, pooled, Some(b), &mut self.scratch.lin, &g);
            return Ok(span(self.out, 0, k));
        }
        let pooled = core::mem::take(&mut self.scratch.t);
        self.pool(span_mut(pooled, 0, d), n);
        self.scratch.watch.see(Point::HeadIn, span(pooled, 0, d));
        linear(
            span_mut(self.out, 0, k),
            w,
            span(pooled, 0, d),
            Some(b),
            &mut self.scratch.lin,
        );
        self.scratch.t = pooled;
        Ok(span(self.out, 0, k))
    }

    /// The model's main output for one input, as device apps print it:
    /// `("logits", …)` of a classifier head or of a decoder after the last
    /// token (from the current position), or `("embedding", …)`, the pooled
    /// vector of an encoder without a head.
    pub fn run(&mut self, input: Input) -> Result<(&'static str, &[f32])> {
        let cfg = self.cfg;
        match (cfg.arch, input) {
            (Architecture::Decoder, Input::Ids(ids)) => Ok(("logits", self.prefill(ids)?)),
            (Architecture::Decoder, Input::Features(_)) => {
                Err(Error::WrongInputKind { input_dim: 0 })
            }
            (Architecture::Encoder, Input::Ids(ids)) if cfg.n_classes > 0 => {
                Ok(("logits", self.classify(ids)?))
            }
            (Architecture::Encoder, Input::Features(f)) if cfg.n_classes > 0 => {
                Ok(("logits", self.classify_features(f)?))
            }
            (Architecture::Encoder, Input::Ids(ids)) => Ok(("embedding", self.embed(ids)?)),
            (Architecture::Encoder, Input::Features(f)) => {
                self.encode_features(f)?;
                Ok(("embedding", self.pooled_embedding(input.rows(&cfg))))
            }
        }
    }

    /// Feeds one token to a decoder and returns the logits for the next one.
    pub fn decode_step(&mut self, token: u32) -> Result<&[f32]> {
        if !DECODER {
            return Err(Error::NotBuilt { feature: "decoder" });
        }
        self.check_arch(Architecture::Decoder)?;
        let pos = self.pos;
        if pos >= self.run.max_seq as usize {
            return Err(Error::SequenceTooLong {
                max: self.run.max_seq,
                got: self.run.max_seq.saturating_add(1),
            });
        }
        let cfg = self.cfg;
        if self.integer() {
            return self.decode_step_i(token);
        }
        let d = cfg.d_model as usize;
        let kv = cfg.kv_row_floats();
        let layer_stride = self.run.max_seq as usize * kv;
        let model = self.model;
        let mut lookup = Lookup { model, hint: 0 };
        let h = core::mem::take(&mut self.h);
        let embedded = self.embed_row(&mut lookup, span_mut(h, 0, d), token, pos, 0);
        self.h = h;
        embedded?;
        self.scratch.watch.layer = 0;
        self.scratch.watch.see(Point::Residual, span(self.h, 0, d));
        for l in 0..cfg.n_layers as usize {
            let lw = lookup.layer(&cfg, l as u32)?;
            self.scratch.watch.layer = l as u32;
            let kc = span_mut(self.kc, l * layer_stride, layer_stride);
            let vc = span_mut(self.vc, l * layer_stride, layer_stride);
            let (k, v) = (span_mut(kc, pos * kv, kv), span_mut(vc, pos * kv, kv));
            project_kv(&cfg, &lw, &mut self.scratch, span(self.h, 0, d), k, v, pos);
            block_row(
                &cfg,
                &lw,
                &mut self.scratch,
                span_mut(self.h, 0, d),
                kc,
                vc,
                pos,
                pos + 1,
            );
        }
        if cfg.pre_norm {
            let w = lookup.get(NameBuf::global("out_norm.w"))?;
            let b = lookup.opt(
                NameBuf::global("out_norm.b"),
                cfg.norm == NormKind::LayerNorm,
            )?;
            norm(&cfg, span_mut(self.h, 0, d), (w, b));
        }
        self.scratch.watch.layer = 0;
        self.scratch.watch.see(Point::HeadIn, span(self.h, 0, d));
        let w = lookup.matrix(NameBuf::global(lm_head(&cfg)))?;
        linear(self.out, w, span(self.h, 0, d), None, &mut self.scratch.lin);
        self.pos = pos + 1;
        Ok(self.out)
    }

    /// [`Session::decode_step`] for an integer model.
    fn decode_step_i(&mut self, token: u32) -> Result<&[f32]> {
        let pos = self.pos;
        let cfg = self.cfg;
        let d = cfg.d_model as usize;
        let kv = cfg.kv_row_floats();
        let layer_stride = self.run.max_seq as usize * kv;
        let mut lookup = Lookup {
            model: self.model,
            hint: 0,
        };
        let g = integer::globals(&cfg, &mut lookup)?;
        let h = core::mem::take(&mut self.h);
        let x = span_mut(integer::ints(h), 0, d);
        let embedded = self.embed_row_i(&mut lookup, &g, x, token, pos, 0);
        self.h = h;
        embedded?;
        for l in 0..cfg.n_layers as usize {
            let lw = lookup.layer(&cfg, l as u32)?;
            let ls = integer::layer_scales(&mut lookup, l as u32)?;
            let kc = span_mut(self.kc, l * layer_stride, layer_stride);
            let vc = span_mut(self.vc, l * layer_stride, layer_stride);
            let (k, v) = (span_mut(kc, pos * kv, kv), span_mut(vc, pos * kv, kv));
            let x = span_mut(integer::ints(self.h), 0, d);
            integer::project_kv(&cfg, &lw, &ls, &g, &mut self.scratch, x, k, v, pos);
            let x = span_mut(integer::ints(self.h), 0, d);
            integer::block_row(
                &cfg,
                &lw,
                &ls,
                &g,
                &mut self.scratch,
                x,
                kc,
                vc,
                pos,
                pos + 1,
            );
        }
        let x = span_mut(integer::ints(self.h), 0, d);
        if cfg.pre_norm {
            let w = lookup.get(NameBuf::global("out_norm.w"))?;
            let b = lookup.opt(
                NameBuf::global("out_norm.b"),
                cfg.norm == NormKind::LayerNorm,
            )?;
            integer::norm_residual(&cfg, x, (w, b), &g);
        }
        let w = lookup.matrix(NameBuf::global(lm_head(&cfg)))?;
        integer::head_logits(self.out, w, x, None, &mut self.scratch.lin, &g);
        self.pos = pos + 1;
        Ok(self.out)
    }

    /// Feeds a whole prompt and returns the logits after its last token.
    pub fn prefill(&mut self, ids: &[u32]) -> Result<&[f32]> {
        self.check_arch(Architecture::Decoder)?;
        if ids.is_empty() {
            return Err(Error::EmptyInput);
        }
        let end = self.pos.saturating_add(ids.len());
        if end > self.run.max_seq as usize {
            return Err(Error::SequenceTooLong {
                max: self.run.max_seq,
                got: end.min(u32::MAX as usize) as u32,
            });
        }
        for &id in ids {
            self.decode_step(id)?;
        }
        Ok(self.out)
    }
}
