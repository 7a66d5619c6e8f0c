//! Post-training weight quantization of a `.mote` model: f32 matrices to
//! int8 (symmetric; one scale per row and 32-column block, or one per row),
//! int4 (one scale, and for the asymmetric form one offset, per row and
//! 32-column block) or f16, with a per-tensor error report. Norms, biases
//! and position tables stay f32.
//!
//! Activations are quantized at run time by `mote-core`: int8 with one
//! symmetric scale per 32-element block, computed from that block, and the
//! outlier channels (`|x|` above `mote_core::quant::OUTLIER_LIMIT`, as in
//! LLM.int8()) kept out and added exactly in f32. So no calibration set is
//! needed for this path; the integer-only path's static scales come from
//! [`crate::calibrate`].

use crate::writer::{ModelBuilder, VocabData};
use anyhow::{bail, Result};
use mote_core::format::Dtype;
use mote_core::{Model, Weight};
use serde_json::json;

/// Target weight type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// IEEE half weights, f32 accumulation.
    F16,
    /// int8 weights, one f32 scale per row and 32-column block (the default:
    /// an outlier weight only coarsens its own block).
    Int8,
    /// int8 weights, one f32 scale per row (what an integer-only
    /// requantization needs).
    Int8Row,
    /// int4 weights in `[-8, 7]`, one f32 scale and one f32 offset per row
    /// and 32-column block (asymmetric, as GGUF's Q4_1; weight-only:
    /// activations are int8 at run time, as for int8).
    Int4,
    /// int4 weights in `[-8, 7]`, one f32 scale per row and 32-column block, no offset.
    Int4Sym,
}

impl std::str::FromStr for Target {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f16" => Ok(Target::F16),
            "int8" | "i8" => Ok(Target::Int8),
            "int8-row" => Ok(Target::Int8Row),
            "int4" | "i4" => Ok(Target::Int4),
            "int4-sym" => Ok(Target::Int4Sym),
            other => bail!("unknown --dtype {other:?} (int8, int8-row, int4, int4-sym, f16)"),
        }
    }
}

/// The error one tensor picked up.
#[derive(Debug, Clone)]
pub struct TensorReport {
    /// Tensor name.
    pub name: String,
    /// Dtype written.
    pub dtype: &'static str,
    /// ‖W − Ŵ‖ / ‖W‖.
    pub rel_error: f64,
    /// max |W − Ŵ|.
    pub max_abs_error: f32,
    /// Bytes before.
    pub bytes_before: u64,
    /// Bytes after (including scales).
    pub bytes_after: u64,
}

/// True for the tensors this pass quantizes: the token embedding, the LM head,
/// the feature projection, the classifier head and every layer's projection matrices.
pub fn is_quantizable(name: &str) -> bool {
    if matches!(name, "tok_emb" | "lm_head" | "in_proj.w" | "cls.w") {
        return true;
    }
    match name.split_once('.') {
        Some((layer, suffix)) => {
            layer.starts_with('L')
                && matches!(suffix, "wq" | "wk" | "wv" | "wo" | "w1" | "w2" | "w3")
        }
        None => false,
    }
}

/// The vocabulary of a model, as writer input ([`VocabData::of`]).
pub fn vocab_data(m: &Model) -> Option<VocabData> {
    VocabData::of(m)
}

/// Symmetric per-row int8: returns (q, scales).
pub fn quantize_rows_i8(w: &[f32], cols: usize) -> (Vec<i8>, Vec<f32>) {
    let mut q = vec![0i8; w.len()];
    let mut scales = Vec::with_capacity(w.len() / cols.max(1));
    for (row, qr) in w.chunks_exact(cols).zip(q.chunks_exact_mut(cols)) {
        scales.push(mote_core::quant::quantize_symmetric(row, qr));
    }
    (q, scales)
}

/// Symmetric int8 with one scale per row and [`mote_core::quant::BLOCK`]-column
/// block: returns (q, scales as `[rows, ceil(cols / BLOCK)]`).
pub fn quantize_blocks_i8(w: &[f32], cols: usize) -> (Vec<i8>, Vec<f32>) {
    let nb = cols.div_ceil(mote_core::quant::BLOCK);
    let mut q = vec![0i8; w.len()];
    let mut scales = vec![0f32; w.len() / cols.max(1) * nb];
    for ((row, qr), sr) in w
        .chunks_exact(cols)
        .zip(q.chunks_exact_mut(cols))
        .zip(scales.chunks_exact_mut(nb))
    {
        mote_core::quant::quantize_blocks(row, qr, sr);
    }
    (q, scales)
}

/// An int4 matrix: packed rows of `ceil(cols / 2)` bytes (signed nibbles,
/// low first), the dequantized values, scales and (asymmetric) offsets as
/// `[rows, ceil(cols / 32)]`.
pub struct Int4 {
    /// Packed nibbles.
    pub q: Vec<u8>,
    /// `q · scale (+ offset)`, as `mote-core` computes it.
    pub deq: Vec<f32>,
    /// One scale per row and block.
    pub scales: Vec<f32>,
    /// One offset per row and block (asymmetric only).
    pub offsets: Option<Vec<f32>>,
}

/// Symmetric block: the scale, among `max/7 · α` for α in 0.70..=1.00, with
/// the least squared error over the block (levels -8..=7). Returns (scale, 0).
fn fit_symmetric(v: &[f32]) -> (f32, f32) {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if !(max > 0.0 && max.is_finite()) {
        return (1.0, 0.0);
    }
    let sse = |s: f32| -> f32 {
        v.iter()
            .map(|&x| (x - (x / s).round().clamp(-8.0, 7.0) * s).powi(2))
            .sum()
    };
    let mut best = (f32::INFINITY, max / 7.0);
    for k in 0..=30 {
        let s = max / 7.0 * (0.70 + 0.01 * k as f32);
        let e = sse(s);
        if e < best.0 {
            best = (e, s);
        }
    }
    (best.1, 0.0)
}

/// Asymmetric block `x ≈ d·q + m`, q in `[-8, 7]`: start from min–max
/// (`d = (max − min)/15`, which reproduces a Q4_1 grid exactly), then
/// alternate rounding and a least-squares refit of `(d, m)`; keep the fit
/// with the least squared error. Returns (d, m).
fn fit_asymmetric(v: &[f32]) -> (f32, f32) {
    let (lo, hi) = v
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &x| {
            (l.min(x), h.max(x))
        });
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return (0.0, if lo.is_finite() { lo } else { 0.0 });
    }
    let level = |x: f32, d: f32, m: f32| ((x - m) / d).round().clamp(-8.0, 7.0);
    let sse = |d: f32, m: f32| -> f32 {
        v.iter()
            .map(|&x| (x - (level(x, d, m) * d + m)).powi(2))
            .sum()
    };
    let d0 = (hi - lo) / 15.0;
    let mut fit = (d0, lo + 8.0 * d0);
    let mut best = (sse(fit.0, fit.1), fit);
    for _ in 0..4 {
        let (d, m) = fit;
        // Least squares of x on q: d = cov(q, x) / var(q), m = mean(x) − d·mean(q).
        let n = v.len() as f64;
        let (mut sq, mut sqq, mut sx, mut sqx) = (0f64, 0f64, 0f64, 0f64);
        for &x in v {
            let q = level(x, d, m) as f64;
            sq += q;
            sqq += q * q;
            sx += x as f64;
            sqx += q * x as f64;
        }
        let var = n * sqq - sq * sq;
        if var <= 0.0 {
            break;
        }
        let d = ((n * sqx - sq * sx) / var) as f32;
        let m = ((sx - d as f64 * sq) / n) as f32;
        if !(d > 0.0 && d.is_finite() && m.is_finite()) {
            break;
        }
        fit = (d, m);
        let e = sse(d, m);
        if e < best.0 {
            best = (e, fit);
        }
    }
    best.1
}

/// int4 with one scale (and, when `asymmetric`, one offset) per row and
/// 32-column block, each block fitted for least squared error.
pub fn quantize_blocks_i4(w: &[f32], cols: usize, asymmetric: bool) -> Int4 {
    let block = mote_core::quant::BLOCK;
    let nb = cols.div_ceil(block);
    let packed = cols.div_ceil(2);
    let rows = w.len() / cols.max(1);
    let mut q = vec![0u8; rows * packed];
    let mut deq = vec![0f32; w.len()];
    let mut scales = vec![0f32; rows * nb];
    let mut offsets = vec![0f32; rows * nb];
    for r in 0..rows {
        let row = &w[r * cols..(r + 1) * cols];
        for (b, chunk) in row.chunks(block).enumerate() {
            let (s, m) = if asymmetric {
                fit_asymmetric(chunk)
            } else {
                fit_symmetric(chunk)
            };
            scales[r * nb + b] = s;
            offsets[r * nb + b] = m;
            for (k, &v) in chunk.iter().enumerate() {
                let c = b * block + k;
                let n = if s > 0.0 {
                    ((v - m) / s).round().clamp(-8.0, 7.0) as i8
                } else {
                    0
                };
                deq[r * cols + c] = n as f32 * s + m;
                let byte = &mut q[r * packed + c / 2];
                *byte |= if c.is_multiple_of(2) {
                    (n as u8) & 0x0f
                } else {
                    (n as u8) << 4
                };
            }
        }
    }
    Int4 {
        q,
        deq,
        scales,
        offsets: asymmetric.then_some(offsets),
    }
}

/// Quantizes every quantizable f32 matrix of `m` to `target`.
pub fn quantize(
    m: &Model,
    target: Target,
    mut progress: impl FnMut(usize, usize),
) -> Result<(ModelBuilder, Vec<TensorReport>)> {
    let mut b = ModelBuilder::like(m);
    let mut report = Vec::new();
    let n = m.tensor_count() as usize;
    for i in 0..n {
        progress(i, n);
        let t = m
            .tensor_at(i as u32)
            .ok_or_else(|| anyhow::anyhow!("tensor {i} unreadable"))?;
        let name = t.name.as_str().to_string();
        let dims = &t.dims[..t.rank as usize];
        let w = match m.weight(&t) {
            Ok(Weight::F32(w)) if is_quantizable(&name) && dims.len() == 2 => w,
            _ => {
                if name.ends_with(".s")
                    || name.ends_with(".m")
                    || !is_quantizable(&name)
                    || t.dtype != Dtype::F32
                {
                    b.add_raw(
                        &name,
                        t.dtype,
                        dims,
                        m.tensor_bytes(&t)
                            .map_err(|e| anyhow::anyhow!("{e}"))?
                            .to_vec(),
                    )?;
                    continue;
                }
                bail!("tensor {name} has an unexpected layout");
            }
        };
        let cols = dims[1] as usize;
        // int4 files keep the token embedding and output matrix in int8, as
        // llama.cpp's Q4 files do: every logit goes through them, and int4
        // there costs ~10 points of top-1 agreement on SmolLM2.
        let target = match target {
            Target::Int4 | Target::Int4Sym if name == "tok_emb" || name == "lm_head" => {
                Target::Int8
            }
            t => t,
        };
        let (deq, bytes_after, dtype): (Vec<f32>, u64, &'static str) = match target {
            Target::Int8 | Target::Int8Row => {
                let block = mote_core::quant::BLOCK;
                let nb = cols.div_ceil(block);
                let (q, scales, sdims) = if target == Target::Int8 {
                    let (q, s) = quantize_blocks_i8(w, cols);
                    (q, s, vec![dims[0], nb as u32])
                } else {
                    let (q, s) = quantize_rows_i8(w, cols);
                    (q, s, vec![dims[0]])
                };
                let per_row = sdims.len() == 1;
                let deq = q
                    .chunks_exact(cols)
                    .enumerate()
                    .flat_map(|(r, row)| {
                        let scales = &scales;
                        row.iter().enumerate().map(move |(c, &v)| {
                            v as f32
                                * if per_row {
                                    scales[r]
                                } else {
                                    scales[r * nb + c / block]
                                }
                        })
                    })
                    .collect();
                b.add_raw(&name, Dtype::I8, dims, bytemuck::cast_slice(&q).to_vec())?;
                b.add_f32(&format!("{name}.s"), &sdims, &scales)?;
                (deq, q.len() as u64 + 4 * scales.len() as u64, "i8")
            }
            Target::Int4 | Target::Int4Sym => {
                let t = quantize_blocks_i4(w, cols, target == Target::Int4);
                let nb = cols.div_ceil(mote_core::quant::BLOCK) as u32;
                b.add_raw(&name, Dtype::I4, dims, t.q.clone())?;
                b.add_f32(&format!("{name}.s"), &[dims[0], nb], &t.scales)?;
                let mut bytes = t.q.len() as u64 + 4 * t.scales.len() as u64;
                if let Some(m) = &t.offsets {
                    b.add_f32(&format!("{name}.m"), &[dims[0], nb], m)?;
                    bytes += 4 * m.len() as u64;
                }
                (t.deq, bytes, "i4")
            }
            Target::F16 => {
                let h: Vec<half::f16> = w.iter().map(|&v| half::f16::from_f32(v)).collect();
                let deq = h.iter().map(|v| v.to_f32()).collect();
                b.add_raw(&name, Dtype::F16, dims, bytemuck::cast_slice(&h).to_vec())?;
                (deq, 2 * h.len() as u64, "f16")
            }
        };
        let (mut num, mut den, mut max) = (0f64, 0f64, 0f32);
        for (a, q) in w.iter().zip(&deq) {
            let e = a - q;
            num += (e as f64).powi(2);
            den += (*a as f64).powi(2);
            max = max.max(e.abs());
        }
        report.push(TensorReport {
            name,
            dtype,
            rel_error: if den > 0.0 { (num / den).sqrt() } else { 0.0 },
            max_abs_error: max,
            bytes_before: t.byte_len,
            bytes_after,
        });
    }
    progress(n, n);
    Ok((b, report))
}

/// The report as JSON.
pub fn report_json(r: &[TensorReport]) -> serde_json::Value {
    json!(r.iter().map(|t| json!({"name": t.name, "dtype": t.dtype, "rel_error": t.rel_error,
        "max_abs_error": t.max_abs_error, "bytes_before": t.bytes_before, "bytes_after": t.bytes_after})).collect::<Vec<_>>())
}
