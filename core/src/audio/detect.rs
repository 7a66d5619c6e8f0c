//! Keyword detection over a stream of window logits: softmax, the mean of
//! the last few windows' posteriors, a threshold and a refractory time, so
//! a keyword said once is reported once and said twice, twice. The same
//! f32 operations in the same order on host and device.

use heapless::HistoryBuf;

/// Most classes a detector follows.
pub const MAX_CLASSES: usize = 32;
/// Most windows averaged.
pub const MAX_SMOOTHING: usize = 8;

/// A keyword found: its class, smoothed score, and the window it ended on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// Class index.
    pub class: usize,
    /// Smoothed posterior, `0..=1`.
    pub score: f32,
    /// Index of the window (0-based, counted by [`Detector::push`]).
    pub window: u32,
}

/// Detection settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Windows averaged (1..=[`MAX_SMOOTHING`]).
    pub smoothing: usize,
    /// Smoothed score a keyword must reach.
    pub threshold: f32,
    /// Windows after a detection in which no other is reported.
    pub refractory: u32,
}

impl Default for Settings {
    /// Three windows, 0.6, and ten windows (at one window every 100 ms:
    /// 300 ms of smoothing, 1 s between reports).
    fn default() -> Self {
        Settings {
            smoothing: 3,
            threshold: 0.6,
            refractory: 10,
        }
    }
}

/// The detector's state.
pub struct Detector {
    settings: Settings,
    /// Bit `c` set: class `c` is a keyword (not silence, not unknown).
    keywords: u32,
    n_classes: usize,
    history: HistoryBuf<[f32; MAX_CLASSES], MAX_SMOOTHING>,
    windows: u32,
    quiet_until: u32,
}

impl Detector {
    /// A detector over `n_classes` logits (at most [`MAX_CLASSES`]) whose
    /// keyword classes are the set bits of `keywords`.
    pub fn new(n_classes: usize, keywords: u32, settings: Settings) -> Self {
        Detector {
            settings: Settings {
                smoothing: settings.smoothing.clamp(1, MAX_SMOOTHING),
                ..settings
            },
            keywords,
            n_classes: n_classes.min(MAX_CLASSES),
            history: HistoryBuf::new(),
            windows: 0,
            quiet_until: 0,
        }
    }

    /// The posteriors (softmax) of one window's logits.
    pub fn softmax(logits: &[f32], out: &mut [f32]) {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for (o, &l) in out.iter_mut().zip(logits) {
            *o = libm::expf(l - max);
            sum += *o;
        }
        for o in out.iter_mut() {
            *o /= sum;
        }
    }

    /// Takes the next window's logits; returns a detection when a keyword's
    /// smoothed score is the highest, reaches the threshold, and the last
    /// detection is more than the refractory time ago.
    pub fn push(&mut self, logits: &[f32]) -> Option<Detection> {
        let mut p = [0f32; MAX_CLASSES];
        let n = self.n_classes.min(logits.len());
        Self::softmax(&logits[..n], &mut p[..n]);
        self.history.write(p);
        let window = self.windows;
        self.windows += 1;
        let k = self.settings.smoothing;
        let mut mean = [0f32; MAX_CLASSES];
        let mut count = 0;
        for h in self.history.oldest_ordered().rev().take(k) {
            for (m, v) in mean.iter_mut().zip(h).take(n) {
                *m += v;
            }
            count += 1;
        }
        for m in mean.iter_mut().take(n) {
            *m /= count as f32;
        }
        let (best, score) = mean
            .iter()
            .take(n)
            .copied()
            .enumerate()
            .fold((0, f32::MIN), |b, (i, v)| if v > b.1 { (i, v) } else { b });
        let keyword = best < 32 && self.keywords & (1 << best) != 0;
        if keyword && score >= self.settings.threshold && window >= self.quiet_until {
            self.quiet_until = window + self.settings.refractory + 1;
            return Some(Detection {
                class: best,
                score,
                window,
            });
        }
        None
    }
}
