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
//!
//! The rooms: `stats.rs` (one point's histogram and the clip each method
//! chooses), `collect.rs` (running the model over the samples with the
//! observer, on several threads), `smooth.rs` (SmoothQuant migration,
//! query/key equalization, the weights with both folded in), `integer.rs`
//! (the integer-only model file), `samples.rs` (reading calibration files);
//! this file chooses every static scale.

mod collect;
mod integer;
mod samples;
mod smooth;
mod stats;

pub use integer::{integer_model, phase_turns};
pub use samples::load_samples;

use anyhow::{bail, Result};
use collect::Collector;
use mote_core::integer::{Point, GLOBAL_SCALES, LAYER_SCALES};
use mote_core::Model;

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
    collect::observe(
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
        smooth::migrate(model, &collector.channels, alpha, &mut factors)?;
        qk = smooth::qk_factors(&cfg, &collector.channels);
        collector = Collector {
            smooth: Some(factors.clone()),
            qk: Some((qk.clone(), hd, group)),
            ..Collector::default()
        };
        collect::observe(
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
            let Some(st) = collector.stats.get(&(l, collect::point_index(p))) else {
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

/// Points whose int8 values saturate instead of taking the exact outlier
/// path (the query and the cached keys and values): clipping them at a
/// percentile would cut exactly the heavy channels attention relies on, so
/// they are calibrated to their maximum whatever the method.
fn saturates(p: Point) -> bool {
    matches!(p, Point::Query | Point::Key | Point::Value)
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
