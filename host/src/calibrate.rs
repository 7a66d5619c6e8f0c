//! Calibration and the integer-only model (`mote quantize --calib`).
//!
//! The f32 model runs over real samples with an observer
//! ([`mote_core::integer::Observe`]) that keeps, per layer and point
//! ([`Point`]), a histogram of `|x|` on a log scale (the top 16 bits of the
//! f32: 7 mantissa bits, so bins 0.8% wide over the whole f32 range). Each
//! int8 point's clip value `c` (scale `c / 127`) comes from that histogram:
//!
//! - `minmax`: the largest `|x|` seen;
//! - `percentile`: the 99th percentile of `|x|` (values beyond it take
//!   the core's exact outlier path);
//! - `mse`: the `c` among 200 candidates (0.5%–100% of the maximum) with
//!   the least expected squared error, counting rounding noise `(c/127)²/12`
//!   inside the range and `(|x| − c)²` for clipped values.
//!
//! The residual stream is `i32` in the core, so it takes the largest `|x|`
//! with 32× headroom (`max / 2^25`) whatever the method.
//!
//! Outliers: activations of transformer layers have a few channels far
//! larger than the rest (LLM.int8(), SmoothQuant). With one static scale
//! per tensor, `mse` and `percentile` clip the rare extreme values instead
//! of spending the whole int8 range on them (the core adds values beyond
//! the clip exactly); the residual stream, where the largest ones live, is
//! never int8. The query, key and value saturate, so they take their
//! maximum; before that, query/key equalization gives each cached key
//! channel and the query channels that meet it one shared range (factors
//! folded into the rows of `wq` and `wk`).

use crate::quantize::{quantize, Target, TensorReport};
use crate::writer::ModelBuilder;
use anyhow::{bail, Context, Result};
use mote_core::integer::{Observe, Point, GLOBAL_SCALES, LAYER_SCALES};
use mote_core::{Architecture, Input, Model, PositionKind, RunConfig, Session};
use std::collections::HashMap;

/// How an int8 point's clip value is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The largest magnitude seen.
    MinMax,
    /// The 99th percentile of magnitudes ([`PERCENTILE`]).
    Percentile,
    /// Least expected squared error.
    Mse,
}

impl std::str::FromStr for Method {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "minmax" => Ok(Method::MinMax),
            "percentile" => Ok(Method::Percentile),
            "mse" => Ok(Method::Mse),
            other => bail!("unknown --method {other:?} (minmax, percentile, mse)"),
        }
    }
}

/// One calibration input.
#[derive(Debug, Clone)]
pub enum Sample {
    /// Token ids.
    Ids(Vec<u32>),
    /// Feature rows, flattened.
    Features(Vec<f32>),
}

/// Bins: the top 16 bits of a non-negative f32.
const BINS: usize = 1 << 15;

/// Magnitudes seen at one point.
#[derive(Clone)]
struct Stats {
    hist: Vec<u64>,
    max: f32,
    count: u64,
}

impl Stats {
    fn new() -> Self {
        Stats {
            hist: vec![0; BINS],
            max: 0.0,
            count: 0,
        }
    }

    fn add(&mut self, x: &[f32]) {
        for &v in x {
            let a = v.abs();
            if !a.is_finite() {
                continue;
            }
            self.hist[(a.to_bits() >> 16) as usize] += 1;
            self.max = self.max.max(a);
            self.count += 1;
        }
    }

    /// The middle of bin `b`.
    fn value(b: usize) -> f64 {
        f32::from_bits(((b as u32) << 16) | 0x8000) as f64
    }

    fn percentile(&self, p: f64) -> f32 {
        let target = (self.count as f64 * p).ceil() as u64;
        let mut seen = 0;
        for (b, &n) in self.hist.iter().enumerate() {
            seen += n;
            if seen >= target && n > 0 {
                return (Stats::value(b) as f32).min(self.max);
            }
        }
        self.max
    }

    fn mse_clip(&self) -> f32 {
        let bins: Vec<(f64, f64)> = self
            .hist
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(b, &n)| (Stats::value(b).min(self.max as f64), n as f64))
            .collect();
        let max = self.max as f64;
        let mut best = (f64::INFINITY, max);
        for k in 0..200 {
            let c = max * (1.0 - k as f64 * 0.995 / 199.0);
            let noise = (c / 127.0).powi(2) / 12.0;
            let err: f64 = bins
                .iter()
                .map(|&(v, n)| n * if v <= c { noise } else { (v - c).powi(2) })
                .sum();
            if err < best.0 {
                best = (err, c);
            }
        }
        best.1 as f32
    }

    /// Fraction of values beyond `c`.
    fn clipped(&self, c: f32) -> f64 {
        let beyond: u64 = self
            .hist
            .iter()
            .enumerate()
            .filter(|(b, _)| Stats::value(*b) as f32 > c)
            .map(|(_, &n)| n)
            .sum();
        beyond as f64 / self.count.max(1) as f64
    }
}

/// Per (layer, input), the largest `|x|` of each channel.
type Channels = HashMap<(u32, usize), Vec<f32>>;

/// Collects [`Stats`] per (layer, point), and per-channel maxima of the
/// smoothed int8 matrix inputs and of the query and key; with `smooth` set,
/// those inputs are seen multiplied by their smoothing factors (and the
/// query and key by their equalization factors).
#[derive(Default)]
struct Collector {
    stats: HashMap<(u32, usize), Stats>,
    channels: Channels,
    smooth: Option<Vec<[Vec<f32>; 2]>>,
    /// With query/key equalization: per layer the factors `f` (one per
    /// cached key channel) and the head geometry `(head_dim, group)`.
    qk: Option<(Vec<Vec<f32>>, usize, usize)>,
}

/// Per-channel maxima are also kept of the (rotated) query and key rows,
/// under these input numbers, for query/key equalization.
const QUERY_CHANNELS: usize = 2;
const KEY_CHANNELS: usize = 3;

/// The cached key channel that query channel `c` meets in the scores.
fn key_channel(c: usize, hd: usize, group: usize) -> usize {
    (c / hd / group) * hd + c % hd
}

/// The smoothed matrix input a point is (`SMOOTH` order), if any: the
/// normed rows that enter attention and the feed-forward block, as in
/// SmoothQuant. (Smoothing `wo`'s and `w2`'s inputs as well made MiniLM
/// worse: mean cosine to f32 0.963 against 0.991.)
fn smoothed_input(p: Point) -> Option<usize> {
    match p {
        Point::AttnIn => Some(0),
        Point::FfnIn => Some(1),
        _ => None,
    }
}

/// The matrices that read each smoothed input.
const CONSUMERS: [&[&str]; 2] = [&["wq", "wk", "wv"], &["w1", "w3"]];

fn point_index(p: Point) -> usize {
    Point::ALL.iter().position(|&q| q == p).unwrap_or(0)
}

/// Keeps the largest `|x_c|` per channel of input `input` of `layer`.
fn track_channels(channels: &mut Channels, layer: u32, input: usize, x: &[f32]) {
    let ch = channels
        .entry((layer, input))
        .or_insert_with(|| vec![0.0; x.len()]);
    for (m, v) in ch.iter_mut().zip(x) {
        *m = m.max(v.abs());
    }
}

impl Collector {
    /// A collector with the same factors and nothing seen yet.
    fn empty_like(&self) -> Collector {
        Collector {
            smooth: self.smooth.clone(),
            qk: self.qk.clone(),
            ..Collector::default()
        }
    }

    /// Adds what `other` saw. Exact in any order: counts add as integers,
    /// maxima take the maximum.
    fn merge(&mut self, other: Collector) {
        for (k, st) in other.stats {
            match self.stats.get_mut(&k) {
                Some(mine) => {
                    for (a, b) in mine.hist.iter_mut().zip(&st.hist) {
                        *a += b;
                    }
                    mine.max = mine.max.max(st.max);
                    mine.count += st.count;
                }
                None => {
                    self.stats.insert(k, st);
                }
            }
        }
        for (k, ch) in other.channels {
            match self.channels.get_mut(&k) {
                Some(mine) => {
                    if mine.len() < ch.len() {
                        mine.resize(ch.len(), 0.0);
                    }
                    for (a, b) in mine.iter_mut().zip(&ch) {
                        *a = a.max(*b);
                    }
                }
                None => {
                    self.channels.insert(k, ch);
                }
            }
        }
    }
}

impl Observe for Collector {
    fn see(&mut self, layer: u32, point: Point, x: &[f32]) {
        let layer = if point.slot().0 { layer } else { 0 };
        let stats = self
            .stats
            .entry((layer, point_index(point)))
            .or_insert_with(Stats::new);
        let Some(input) = smoothed_input(point) else {
            let qk = match point {
                Point::Query => QUERY_CHANNELS,
                Point::Key => KEY_CHANNELS,
                _ => {
                    stats.add(x);
                    return;
                }
            };
            track_channels(&mut self.channels, layer, qk, x);
            match &self.qk {
                Some((f, hd, group)) => {
                    let f = f.get(layer as usize).map(Vec::as_slice).unwrap_or(&[]);
                    let y: Vec<f32> = x
                        .iter()
                        .enumerate()
                        .map(|(c, &v)| {
                            if qk == QUERY_CHANNELS {
                                v * f.get(key_channel(c, *hd, *group)).copied().unwrap_or(1.0)
                            } else {
                                v / f.get(c).copied().unwrap_or(1.0)
                            }
                        })
                        .collect();
                    stats.add(&y);
                }
                None => stats.add(x),
            }
            return;
        };
        track_channels(&mut self.channels, layer, input, x);
        match self.smooth.as_ref().and_then(|s| s.get(layer as usize)) {
            Some(k) => {
                let y: Vec<f32> = x.iter().zip(&k[input]).map(|(v, k)| v * k).collect();
                stats.add(&y);
            }
            None => stats.add(x),
        }
    }
}

/// One point's calibration result.
#[derive(Debug, Clone)]
pub struct PointReport {
    /// Layer (`None`: global).
    pub layer: Option<u32>,
    /// The point.
    pub point: Point,
    /// Values seen.
    pub count: u64,
    /// Largest magnitude seen.
    pub max: f32,
    /// Clip value chosen (the int8 range maps to `±clip`).
    pub clip: f32,
    /// The stored scale.
    pub scale: f32,
    /// Fraction of the values seen beyond the clip.
    pub clipped: f64,
}

/// Static scales for every point, and how they were chosen.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// The global `act` tensor.
    pub global: [f32; GLOBAL_SCALES],
    /// One `L<i>.act` per layer.
    pub layers: Vec<[f32; LAYER_SCALES]>,
    /// Per layer, the activation multipliers of the two smoothed int8
    /// matrix inputs (`mote_core::integer::SMOOTH` order); all 1 without smoothing.
    pub smooth: Vec<[Vec<f32>; 2]>,
    /// Per layer, query/key equalization factors `f`, one per cached key
    /// channel (equal within each rotated pair): the rows of `wk` (and
    /// `bk`) are divided by `f`, those of `wq` (and `bq`) multiplied by the
    /// factor of the key channel they meet, so every score is unchanged and
    /// the query and key channels share their range before the two are
    /// rounded to int8 at one scale each. All 1 without smoothing.
    pub qk: Vec<Vec<f32>>,
    /// The per-point table.
    pub report: Vec<PointReport>,
}

/// The `percentile` method's quantile of `|x|`: an outlier budget of 1%.
/// Values beyond the clip take the core's exact outlier path, so the clip
/// sits well below the tail and the other 99% get a finer step. (The query,
/// key and value saturate instead, so they take their maximum.) On held-out
/// data, with those three at their maximum and query/key equalization:
/// SmolLM2 top-1 agreement 94.3% at 99%, 92.2% at 99.9%, 94.9% at 98%,
/// 92.9% at 97%; MiniLM min cosine 0.9965, 0.9948, 0.9959, 0.9966.
pub const PERCENTILE: f64 = 0.99;

/// The residual stream's largest calibrated `|x|` maps to `2^RESIDUAL_BITS`
/// (the core saturates at 2^30: 32× headroom).
pub const RESIDUAL_BITS: u32 = 25;

/// SmoothQuant's migration strength `α` (the paper's default for most models).
pub const SMOOTH_ALPHA: f32 = 0.5;

/// Runs `model` over `samples` once, showing `collector` every activation.
/// The samples are split over `threads` threads, each with its own session
/// and collector; the collectors merge exactly (maxima and integer counts),
/// so the result does not depend on the number of threads.
fn observe(
    model: &Model,
    samples: &[Sample],
    collector: &mut Collector,
    progress: &mut impl FnMut(usize, usize),
    (done, total): (usize, usize),
    threads: usize,
) -> Result<()> {
    let cfg = *model.config();
    let w = (cfg.input_dim as usize).max(1);
    let rows = |s: &Sample| match s {
        Sample::Ids(ids) => ids.len(),
        Sample::Features(f) => f.len() / w,
    };
    // The arena holds the longest sample, not the model's whole context.
    let longest = samples.iter().map(rows).max().unwrap_or(1).max(1);
    let run = RunConfig {
        max_seq: cfg.max_seq.min(longest.min(u32::MAX as usize) as u32),
    };
    let arena_bytes = model
        .arena_bytes(&run)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        + 16;
    let chunk = samples
        .len()
        .div_ceil(threads.clamp(1, samples.len().max(1)));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let results: Vec<Result<Collector>> = std::thread::scope(|scope| {
        let handles: Vec<_> = samples
            .chunks(chunk.max(1))
            .enumerate()
            .map(|(c, part)| {
                let mut mine = collector.empty_like();
                let tx = tx.clone();
                scope.spawn(move || -> Result<Collector> {
                    let mut arena = vec![0u8; arena_bytes];
                    let mut s =
                        Session::new(model, &mut arena, run).map_err(|e| anyhow::anyhow!("{e}"))?;
                    s.set_observer(&mut mine);
                    for (i, sample) in part.iter().enumerate() {
                        s.reset();
                        let r = match sample {
                            Sample::Ids(ids) => {
                                let ids = &ids[..ids.len().min(run.max_seq as usize)];
                                s.run(Input::Ids(ids)).map(|_| ())
                            }
                            Sample::Features(f) => {
                                let rows = (f.len() / w).min(run.max_seq as usize);
                                s.run(Input::Features(&f[..rows * w])).map(|_| ())
                            }
                        };
                        r.map_err(|e| {
                            anyhow::anyhow!("calibration sample {}: {e}", c * chunk + i)
                        })?;
                        let _ = tx.send(());
                    }
                    Ok(mine)
                })
            })
            .collect();
        drop(tx);
        // Progress is reported here, on the caller's thread, as samples finish.
        progress(done, total);
        for (n, ()) in rx.iter().enumerate() {
            progress(done + n + 1, total);
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a calibration thread panicked")))
            })
            .collect()
    });
    for r in results {
        collector.merge(r?);
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

/// Runs the f32 `model` over `samples` and picks every static scale, on
/// every core this machine has (the result does not depend on how many).
pub fn calibrate(
    model: &Model,
    samples: &[Sample],
    method: Method,
    smooth: Option<f32>,
    progress: impl FnMut(usize, usize),
) -> Result<Calibration> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    calibrate_on(model, samples, method, smooth, progress, threads)
}

/// [`calibrate`] with the samples split over `threads` threads.
pub fn calibrate_on(
    model: &Model,
    samples: &[Sample],
    method: Method,
    smooth: Option<f32>,
    mut progress: impl FnMut(usize, usize),
    threads: usize,
) -> Result<Calibration> {
    let cfg = *model.config();
    if samples.is_empty() {
        bail!("no calibration samples");
    }
    let mut collector = Collector::default();
    let passes = if smooth.is_some() { 2 } else { 1 };
    let total = passes * samples.len();
    observe(
        model,
        samples,
        &mut collector,
        &mut progress,
        (0, total),
        threads,
    )?;
    let widths = |_: usize| cfg.d_model as usize;
    let mut factors: Vec<[Vec<f32>; 2]> = (0..cfg.n_layers)
        .map(|_| core::array::from_fn(|i| vec![1.0; widths(i)]))
        .collect();
    let hd = (cfg.head_dim as usize).max(1);
    let group = ((cfg.n_heads / cfg.n_kv_heads.max(1)) as usize).max(1);
    let mut qk: Vec<Vec<f32>> = (0..cfg.n_layers).map(|_| vec![1.0; cfg.kv_dim()]).collect();
    if let Some(alpha) = smooth {
        // s_j = max|X_j|^α / max|W_j|^(1-α); the input is multiplied by 1/s_j.
        for (l, f) in factors.iter_mut().enumerate() {
            for (input, k) in f.iter_mut().enumerate() {
                let (Some(xm), wm) = (
                    collector.channels.get(&(l as u32, input)),
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
        qk = qk_factors(&cfg, &collector);
        collector = Collector {
            smooth: Some(factors.clone()),
            qk: Some((qk.clone(), hd, group)),
            ..Collector::default()
        };
        observe(
            model,
            samples,
            &mut collector,
            &mut progress,
            (samples.len(), total),
            threads,
        )?;
    }
    progress(total, total);
    let mut global = [1.0f32; GLOBAL_SCALES];
    let mut layers = vec![[1.0f32; LAYER_SCALES]; cfg.n_layers as usize];
    let mut report = Vec::new();
    for l in 0..cfg.n_layers {
        for &p in &Point::ALL {
            let (per_layer, slot) = p.slot();
            if !per_layer && l > 0 {
                continue;
            }
            let Some(st) = collector.stats.get(&(l, point_index(p))) else {
                continue;
            };
            if st.count == 0 || st.max == 0.0 {
                continue;
            }
            let (clip, scale) = if p == Point::Residual {
                (st.max, st.max / (1u32 << RESIDUAL_BITS) as f32)
            } else if saturates(p) {
                (st.max, st.max / 127.0)
            } else {
                let c = match method {
                    Method::MinMax => st.max,
                    Method::Percentile => st.percentile(PERCENTILE),
                    Method::Mse => st.mse_clip(),
                };
                let c = c.max(st.max * 1e-3);
                (c, c / 127.0)
            };
            if per_layer {
                layers[l as usize][slot] = scale;
            } else {
                global[slot] = scale;
            }
            report.push(PointReport {
                layer: per_layer.then_some(l),
                point: p,
                count: st.count,
                max: st.max,
                clip,
                scale,
                clipped: st.clipped(clip),
            });
        }
    }
    Ok(Calibration {
        global,
        layers,
        smooth: factors,
        qk,
        report,
    })
}

/// Query/key equalization factors from the first pass's per-channel maxima:
/// `f_c = √(max|k_c| / max|q_c|)` over the query heads that meet key
/// channel `c` and over its rotated pair, so the rows after equalization
/// both reach `√(max|q_c| · max|k_c|)` (SmoothQuant's `α = 0.5` between the
/// two operands of the scores).
fn qk_factors(cfg: &mote_core::Config, collector: &Collector) -> Vec<Vec<f32>> {
    let hd = (cfg.head_dim as usize).max(1);
    let group = ((cfg.n_heads / cfg.n_kv_heads.max(1)) as usize).max(1);
    let kv = cfg.kv_dim();
    (0..cfg.n_layers)
        .map(|l| {
            let (Some(q), Some(k)) = (
                collector.channels.get(&(l, QUERY_CHANNELS)),
                collector.channels.get(&(l, KEY_CHANNELS)),
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

/// Points whose int8 values saturate instead of taking the exact outlier
/// path (the query and the cached keys and values): clipping them at a
/// percentile would cut exactly the heavy channels attention relies on, so
/// they are calibrated to their maximum whatever the method.
fn saturates(p: Point) -> bool {
    matches!(p, Point::Query | Point::Key | Point::Value)
}

/// Phase steps (`u32` turns per position) of sinusoidal or rotary positions.
pub fn phase_turns(cfg: &mote_core::Config) -> Option<Vec<i32>> {
    let turns = |freq: f64| {
        let t = freq / std::f64::consts::TAU;
        ((t - t.floor()) * 4294967296.0).round() as u64 as u32 as i32
    };
    match cfg.positions {
        PositionKind::Rope => {
            let hd = cfg.head_dim as f64;
            Some(
                (0..cfg.head_dim / 2)
                    .map(|i| turns((cfg.rope_theta as f64).powf(-2.0 * i as f64 / hd)))
                    .collect(),
            )
        }
        PositionKind::Sinusoidal => {
            let d = cfg.d_model as f64;
            Some(
                (0..cfg.d_model / 2)
                    .map(|i| turns(1.0 / 10000f64.powf(2.0 * i as f64 / d)))
                    .collect(),
            )
        }
        PositionKind::Learned => None,
    }
}

/// The integer-only model: int8 weights with one scale per row, the static
/// scales of `calib`, the phase table, config `integer` set.
pub fn integer_model(
    m: &Model,
    calib: &Calibration,
    progress: impl FnMut(usize, usize),
) -> Result<(ModelBuilder, Vec<TensorReport>)> {
    if m.has_i8() || m.has_f16() {
        bail!("calibrate an f32 model (this one is already quantized)");
    }
    let smoothed = smoothed_weights(m, calib)?;
    let sm = Model::from_bytes(smoothed.bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut b, report) = quantize(&sm, Target::Int8Row, progress)?;
    b.config_mut().integer = true;
    for (l, f) in calib.smooth.iter().enumerate() {
        for (k, name) in f.iter().zip(mote_core::integer::SMOOTH) {
            b.add_f32(&format!("L{l}.{name}"), &[k.len() as u32], k)?;
        }
    }
    b.add_f32("act", &[GLOBAL_SCALES as u32], &calib.global)?;
    for (l, s) in calib.layers.iter().enumerate() {
        b.add_f32(&format!("L{l}.act"), &[LAYER_SCALES as u32], s)?;
    }
    if let Some(t) = phase_turns(m.config()) {
        b.add_raw(
            "turns",
            mote_core::Dtype::I32,
            &[t.len() as u32],
            bytemuck::cast_slice(&t).to_vec(),
        )?;
    }
    Ok((b, report))
}

/// `m` with column `j` of every matrix that reads a smoothed input scaled
/// by `s_j` (the inverse of the input's multiplier), so `W·x` is unchanged.
fn smoothed_weights(m: &Model, calib: &Calibration) -> Result<crate::ModelFile> {
    let mut b = ModelBuilder::new(*m.config());
    if let Some(v) = crate::quantize::vocab_data(m) {
        b.set_vocab(v);
    }
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

/// Calibration samples from a file or a directory of files: `.txt` text
/// (one sample per non-empty line, tokenized with the model's vocabulary,
/// longer lines cut into windows of `window` tokens), `.json` (an array
/// of token-id arrays or of feature arrays) or `.csv` (one sample a line).
pub fn load_samples(model: &Model, path: &std::path::Path, window: usize) -> Result<Vec<Sample>> {
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        let mut v: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let cfg = model.config();
    let features = cfg.input_dim > 0;
    let mut out = Vec::new();
    for f in &files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        match f.extension().and_then(|e| e.to_str()) {
            Some("txt") => {
                if features {
                    bail!(
                        "{}: this model takes feature rows; give .json or .csv",
                        f.display()
                    );
                }
                let tok = crate::tokenizer::Tokenizer::from_model(model.vocab(), cfg)?;
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let ids = tok.encode(line)?;
                    for w in ids.chunks(window.max(1)) {
                        if w.len() > 1 || cfg.arch == Architecture::Encoder {
                            out.push(Sample::Ids(w.to_vec()));
                        }
                    }
                }
            }
            Some("json") => {
                let v: Vec<Vec<f64>> = serde_json::from_str(&text).with_context(|| {
                    format!("{}: expected an array of number arrays", f.display())
                })?;
                for s in v {
                    out.push(sample_of(&s, features, f)?);
                }
            }
            Some("csv") => {
                for (i, line) in text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                {
                    let s: Vec<f64> = line
                        .split(',')
                        .map(|v| v.trim().parse::<f64>())
                        .collect::<std::result::Result<_, _>>()
                        .with_context(|| format!("{} line {}: not numbers", f.display(), i + 1))?;
                    out.push(sample_of(&s, features, f)?);
                }
            }
            _ => bail!("{}: calibration files are .txt, .json or .csv", f.display()),
        }
    }
    if out.is_empty() {
        bail!("{}: no calibration samples", path.display());
    }
    Ok(out)
}

fn sample_of(s: &[f64], features: bool, f: &std::path::Path) -> Result<Sample> {
    if features {
        return Ok(Sample::Features(s.iter().map(|&v| v as f32).collect()));
    }
    s.iter()
        .map(|&v| {
            if v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
                Ok(v as u32)
            } else {
                bail!("{}: token id {v} is not a whole number", f.display())
            }
        })
        .collect::<Result<Vec<u32>>>()
        .map(Sample::Ids)
}

/// The per-point table as JSON.
pub fn report_json(c: &Calibration) -> serde_json::Value {
    serde_json::json!(c
        .report
        .iter()
        .map(|r| serde_json::json!({
            "layer": r.layer, "point": format!("{:?}", r.point), "count": r.count,
            "max": r.max, "clip": r.clip, "scale": r.scale, "clipped": r.clipped,
        }))
        .collect::<Vec<_>>())
}
