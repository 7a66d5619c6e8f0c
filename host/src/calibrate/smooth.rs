//! Smoothing before int8: SmoothQuant's migration of outlier channels from
//! the normed matrix inputs into the columns of the matrices that read them,
//! and query/key equalization folded into the rows of `wq` and `wk`; then
//! the f32 model with those factors folded into its weights.

use super::Calibration;
use crate::writer::ModelBuilder;
use anyhow::{bail, Context, Result};
use mote_core::integer::Point;
use mote_core::Model;
use std::collections::HashMap;

/// Per (layer, input), the largest `|x|` of each channel.
pub(super) type Channels = HashMap<(u32, usize), Vec<f32>>;

/// Per-channel maxima are also kept of the (rotated) query and key rows,
/// under these input numbers, for query/key equalization.
pub(super) const QUERY_CHANNELS: usize = 2;
pub(super) const KEY_CHANNELS: usize = 3;

/// The cached key channel that query channel `c` meets in the scores.
pub(super) fn key_channel(c: usize, hd: usize, group: usize) -> usize {
    (c / hd / group) * hd + c % hd
}

/// The smoothed matrix input a point is (`SMOOTH` order), if any: the
/// normed rows that enter attention and the feed-forward block, as in
/// SmoothQuant. (Smoothing `wo`'s and `w2`'s inputs as well made MiniLM
/// worse: mean cosine to f32 0.963 against 0.991.)
pub(super) fn smoothed_input(p: Point) -> Option<usize> {
    match p {
        Point::AttnIn => Some(0),
        Point::FfnIn => Some(1),
        _ => None,
    }
}

/// The matrices that read each smoothed input.
pub(super) const CONSUMERS: [&[&str]; 2] = [&["wq", "wk", "wv"], &["w1", "w3"]];

/// SmoothQuant's migration from the first pass's per-channel maxima:
/// `s_j = max|X_j|^α / max|W_j|^(1-α)`, and the input is multiplied by
/// `1/s_j` (written into `factors`, which start at 1; a channel never seen
/// keeps 1).
pub(super) fn migrate(
    model: &Model,
    channels: &Channels,
    alpha: f32,
    factors: &mut [[Vec<f32>; 2]],
) -> Result<()> {
    for (l, f) in factors.iter_mut().enumerate() {
        for (input, k) in f.iter_mut().enumerate() {
            let (Some(xm), wm) = (
                channels.get(&(l as u32, input)),
                column_max(model, l as u32, input)?,
            ) else {
                continue;
            };
            for ((k, &x), &w) in k.iter_mut().zip(xm).zip(&wm) {
                if x > 0.0 && w > 0.0 {
                    let s = (x.powf(alpha) / w.powf(1.0 - alpha)).clamp(1e-5, 1e5);
                    *k = 1.0 / s;
                }
            }
        }
    }
    Ok(())
}

/// Largest `|w|` of each input column over the matrices that read input
/// `input` of layer `l`.
fn column_max(model: &Model, l: u32, input: usize) -> Result<Vec<f32>> {
    let mut out: Vec<f32> = Vec::new();
    for name in CONSUMERS[input] {
        let Some(t) = model.tensor(&format!("L{l}.{name}")) else {
            continue;
        };
        let cols = t.dims[1] as usize;
        let w = match model.weight(&t).map_err(|e| anyhow::anyhow!("{e}"))? {
            mote_core::Weight::F32(w) => w,
            _ => bail!("calibrate an f32 model"),
        };
        out.resize(cols, 0.0);
        for row in w.chunks_exact(cols.max(1)) {
            for (m, v) in out.iter_mut().zip(row) {
                *m = m.max(v.abs());
            }
        }
    }
    Ok(out)
}

/// Query/key equalization factors from the first pass's per-channel maxima:
/// `f_c = √(max|k_c| / max|q_c|)` over the query heads that meet key
/// channel `c` and over its rotated pair, so the rows after equalization
/// both reach `√(max|q_c| · max|k_c|)` (SmoothQuant's `α = 0.5` between the
/// two operands of the scores).
pub(super) fn qk_factors(cfg: &mote_core::Config, channels: &Channels) -> Vec<Vec<f32>> {
    let hd = (cfg.head_dim as usize).max(1);
    let group = ((cfg.n_heads / cfg.n_kv_heads.max(1)) as usize).max(1);
    let kv = cfg.kv_dim();
    (0..cfg.n_layers)
        .map(|l| {
            let (Some(q), Some(k)) = (
                channels.get(&(l, QUERY_CHANNELS)),
                channels.get(&(l, KEY_CHANNELS)),
            ) else {
                return vec![1.0; kv];
            };
            let mut qm = vec![0.0f32; kv];
            for (c, &v) in q.iter().enumerate() {
                if let Some(m) = qm.get_mut(key_channel(c, hd, group)) {
                    *m = m.max(v);
                }
            }
            let mut f = vec![1.0f32; kv];
            // RoPE rotates adjacent pairs: both channels of a pair share one factor.
            let pair = if cfg.positions == mote_core::PositionKind::Rope {
                2
            } else {
                1
            };
            for ((fp, qp), kp) in f.chunks_mut(pair).zip(qm.chunks(pair)).zip(k.chunks(pair)) {
                let qx = qp.iter().copied().fold(0.0, f32::max);
                let kx = kp.iter().copied().fold(0.0, f32::max);
                if qx > 0.0 && kx > 0.0 {
                    let v = (kx / qx).sqrt().clamp(1e-4, 1e4);
                    fp.fill(v);
                }
            }
            f
        })
        .collect()
}

/// `m` with column `j` of every matrix that reads a smoothed input scaled
/// by `s_j` (the inverse of the input's multiplier), so `W·x` is unchanged.
pub(super) fn smoothed_weights(m: &Model, calib: &Calibration) -> Result<crate::ModelFile> {
    let mut b = ModelBuilder::like(m);
    for i in 0..m.tensor_count() {
        let t = m.tensor_at(i).context("tensor table")?;
        let name = t.name.as_str();
        let dims = &t.dims[..t.rank as usize];
        let bytes = m.tensor_bytes(&t).map_err(|e| anyhow::anyhow!("{e}"))?;
        let input = name.split_once('.').and_then(|(layer, rest)| {
            let l: usize = layer.strip_prefix('L')?.parse().ok()?;
            let i = CONSUMERS.iter().position(|c| c.contains(&rest))?;
            Some(&calib.smooth.get(l)?[i])
        });
        let rows = name.split_once('.').and_then(|(layer, rest)| {
            let l: usize = layer.strip_prefix('L')?.parse().ok()?;
            let f = calib.qk.get(l)?;
            let (hd, group) = (
                (m.config().head_dim as usize).max(1),
                ((m.config().n_heads / m.config().n_kv_heads.max(1)) as usize).max(1),
            );
            match rest {
                "wq" | "bq" => Some(
                    (0..dims[0] as usize)
                        .map(|r| f.get(key_channel(r, hd, group)).copied().unwrap_or(1.0))
                        .collect::<Vec<f32>>(),
                ),
                "wk" | "bk" => Some(
                    (0..dims[0] as usize)
                        .map(|r| 1.0 / f.get(r).copied().unwrap_or(1.0))
                        .collect(),
                ),
                _ => None,
            }
        });
        if let (Some(g), mote_core::Dtype::F32) = (&rows, t.dtype) {
            let w: &[f32] = bytemuck::cast_slice(bytes);
            let cols = w.len() / g.len().max(1);
            let scaled: Vec<f32> = w
                .iter()
                .enumerate()
                .map(|(e, &v)| v * g.get(e / cols.max(1)).copied().unwrap_or(1.0))
                .collect();
            // wq/wk also read the smoothed attention input: fold that too.
            let scaled = match input {
                Some(k) => scaled
                    .iter()
                    .enumerate()
                    .map(|(e, &v)| v / k.get(e % cols.max(1)).copied().unwrap_or(1.0))
                    .collect(),
                None => scaled,
            };
            b.add_f32(name, dims, &scaled)?;
            continue;
        }
        match input {
            Some(k) if t.dtype == mote_core::Dtype::F32 => {
                let w: &[f32] = bytemuck::cast_slice(bytes);
                let cols = dims[1] as usize;
                let scaled: Vec<f32> = w
                    .iter()
                    .enumerate()
                    .map(|(e, &v)| v / k.get(e % cols).copied().unwrap_or(1.0))
                    .collect();
                b.add_f32(name, dims, &scaled)?;
            }
            _ => b.add_raw(name, t.dtype, dims, bytes.to_vec())?,
        }
    }
    Ok(crate::ModelFile::from_vec(b.to_bytes()))
}
