//! What calibration keeps of one point: a histogram of `|x|` on a log
//! scale (the top 16 bits of the f32), its maximum and count, and the clip
//! values the methods choose from it.

/// Bins: the top 16 bits of a non-negative f32.
pub(super) const BINS: usize = 1 << 15;

/// Magnitudes seen at one point.
#[derive(Clone)]
pub(super) struct Stats {
    pub(super) hist: Vec<u64>,
    pub(super) max: f32,
    pub(super) count: u64,
}

impl Stats {
    pub(super) fn new() -> Self {
        Stats {
            hist: vec![0; BINS],
            max: 0.0,
            count: 0,
        }
    }

    pub(super) fn add(&mut self, x: &[f32]) {
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

    pub(super) fn percentile(&self, p: f64) -> f32 {
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

    pub(super) fn mse_clip(&self) -> f32 {
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
    pub(super) fn clipped(&self, c: f32) -> f64 {
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
