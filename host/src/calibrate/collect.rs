//! Running the f32 model over the samples with an observer: the
//! [`Collector`] keeps [`Stats`] per (layer, point) and per-channel maxima
//! for smoothing, and [`observe`] splits the samples over threads whose
//! collectors merge exactly.

use super::smooth::{key_channel, smoothed_input, Channels, KEY_CHANNELS, QUERY_CHANNELS};
use super::stats::Stats;
use super::Sample;
use anyhow::Result;
use mote_core::integer::{Observe, Point};
use mote_core::{Input, Model, RunConfig, Session};
use std::collections::HashMap;

/// Collects [`Stats`] per (layer, point), and per-channel maxima of the
/// smoothed int8 matrix inputs and of the query and key; with `smooth` set,
/// those inputs are seen multiplied by their smoothing factors (and the
/// query and key by their equalization factors).
#[derive(Default)]
pub(super) struct Collector {
    pub(super) stats: HashMap<(u32, usize), Stats>,
    pub(super) channels: Channels,
    pub(super) smooth: Option<Vec<[Vec<f32>; 2]>>,
    /// With query/key equalization: per layer the factors `f` (one per
    /// cached key channel) and the head geometry `(head_dim, group)`.
    pub(super) qk: Option<(Vec<Vec<f32>>, usize, usize)>,
}

pub(super) fn point_index(p: Point) -> usize {
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
    pub(super) fn empty_like(&self) -> Collector {
        Collector {
            smooth: self.smooth.clone(),
            qk: self.qk.clone(),
            ..Collector::default()
        }
    }

    /// Adds what `other` saw. Exact in any order: counts add as integers,
    /// maxima take the maximum.
    pub(super) fn merge(&mut self, other: Collector) {
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

/// Runs `model` over `samples` once, showing `collector` every activation.
/// The samples are split over `threads` threads, each with its own session
/// and collector; the collectors merge exactly (maxima and integer counts),
/// so the result does not depend on the number of threads.
pub(super) fn observe(
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
