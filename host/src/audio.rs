//! The audio section's writer side: a front end described by its
//! parameters ([`FrontEndSpec`]), its window and mel filter bank computed
//! here in f64 (the definitions librosa uses, so a reference can rebuild
//! them), and laid out as `mote_core::audio` reads them (`docs/FORMAT.md`).

use anyhow::{bail, ensure, Result};
use mote_core::audio::{field, Variant, WindowNorm, HEADER_LEN, MAX_MELS};

/// How Hz map to mels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MelScale {
    /// Slaney's (librosa's default, Whisper's): linear below 1 kHz, log above.
    Slaney,
    /// HTK's `2595 · log10(1 + f/700)`.
    Htk,
}

/// The window function (periodic, as `torch.hann_window` and
/// `scipy.signal.get_window` make it for spectra).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// `0.5 − 0.5·cos(2πn/N)`.
    Hann,
    /// `0.54 − 0.46·cos(2πn/N)`.
    Hamming,
}

/// A front end's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontEndSpec {
    /// f32 or fixed-point.
    pub variant: Variant,
    /// Samples per second.
    pub sample_rate: u32,
    /// Samples per frame.
    pub frame_len: u32,
    /// Samples between frames.
    pub hop: u32,
    /// FFT length (a power of two `≤ 512` for today's reader).
    pub n_fft: u32,
    /// Mel bands.
    pub n_mels: u32,
    /// Lowest band edge, Hz.
    pub fmin: f64,
    /// Highest band edge, Hz.
    pub fmax: f64,
    /// Mel scale.
    pub mel_scale: MelScale,
    /// Slaney area normalisation of each band (`2 / (f_hi − f_lo)`).
    pub slaney_norm: bool,
    /// The window.
    pub window: Window,
    /// Base-10 log (Whisper) instead of the natural log.
    pub log10: bool,
    /// Mel floor.
    pub floor: f32,
    /// Clip-wide clamp at `max − dynamic_range` (0: none).
    pub dynamic_range: f32,
    /// Subtracted after the log.
    pub offset: f32,
    /// Multiplied after the offset.
    pub scale: f32,
    /// Frames per model window (0: the whole clip).
    pub window_frames: u32,
    /// Normalisation of each model window.
    pub window_norm: WindowNorm,
}

impl FrontEndSpec {
    /// Keyword spotting's front end: 30 ms frames every 20 ms at 16 kHz, a
    /// 512-point FFT, 40 Slaney mel bands from 60 Hz to 7.6 kHz, natural log
    /// with a floor of 1e-6, one-second windows (49 frames), each band's
    /// mean over the window subtracted.
    pub fn kws(variant: Variant) -> Self {
        FrontEndSpec {
            variant,
            sample_rate: 16_000,
            frame_len: 480,
            hop: 320,
            n_fft: 512,
            n_mels: 40,
            fmin: 60.0,
            fmax: 7_600.0,
            mel_scale: MelScale::Slaney,
            slaney_norm: true,
            window: Window::Hann,
            log10: false,
            floor: 1e-6,
            dynamic_range: 0.0,
            offset: 0.0,
            scale: 1.0,
            window_frames: 49,
            window_norm: WindowNorm::BandMean,
        }
    }

    /// Whisper's 80-band log-mel (n_fft 400, hop 160, Hann, power,
    /// `log10(max(x, 1e-10))`, clamp at max − 8, `(x + 4) / 4`). Expressible
    /// in the section; today's reader refuses its 400-point FFT.
    pub fn whisper() -> Self {
        FrontEndSpec {
            variant: Variant::Float,
            sample_rate: 16_000,
            frame_len: 400,
            hop: 160,
            n_fft: 400,
            n_mels: 80,
            fmin: 0.0,
            fmax: 8_000.0,
            mel_scale: MelScale::Slaney,
            slaney_norm: true,
            window: Window::Hann,
            log10: true,
            floor: 1e-10,
            dynamic_range: 8.0,
            offset: -4.0,
            scale: 0.25,
            window_frames: 0,
            window_norm: WindowNorm::None,
        }
    }

    /// The window, `frame_len` values.
    pub fn window_values(&self) -> Vec<f64> {
        let n = self.frame_len as f64;
        let (a0, a1) = match self.window {
            Window::Hann => (0.5, 0.5),
            Window::Hamming => (0.54, 0.46),
        };
        (0..self.frame_len)
            .map(|i| a0 - a1 * (2.0 * std::f64::consts::PI * i as f64 / n).cos())
            .collect()
    }

    /// The mel filter bank, `n_mels × (n_fft/2 + 1)` (librosa's
    /// `filters.mel` definition).
    pub fn filter_bank(&self) -> Vec<Vec<f64>> {
        let bins = self.n_fft as usize / 2 + 1;
        let to_mel = |f: f64| match self.mel_scale {
            MelScale::Htk => 2595.0 * (1.0 + f / 700.0).log10(),
            MelScale::Slaney => {
                let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
                let min_log_mel = min_log_hz / f_sp;
                let logstep = 6.4f64.ln() / 27.0;
                if f >= min_log_hz {
                    min_log_mel + (f / min_log_hz).ln() / logstep
                } else {
                    f / f_sp
                }
            }
        };
        let to_hz = |m: f64| match self.mel_scale {
            MelScale::Htk => 700.0 * (10f64.powf(m / 2595.0) - 1.0),
            MelScale::Slaney => {
                let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
                let min_log_mel = min_log_hz / f_sp;
                let logstep = 6.4f64.ln() / 27.0;
                if m >= min_log_mel {
                    min_log_hz * (logstep * (m - min_log_mel)).exp()
                } else {
                    f_sp * m
                }
            }
        };
        let (lo, hi) = (to_mel(self.fmin), to_mel(self.fmax));
        let n = self.n_mels as usize;
        let edges: Vec<f64> = (0..n + 2)
            .map(|i| to_hz(lo + (hi - lo) * i as f64 / (n + 1) as f64))
            .collect();
        let freq = |k: usize| k as f64 * self.sample_rate as f64 / self.n_fft as f64;
        (0..n)
            .map(|m| {
                let (f0, f1, f2) = (edges[m], edges[m + 1], edges[m + 2]);
                let norm = if self.slaney_norm {
                    2.0 / (f2 - f0)
                } else {
                    1.0
                };
                (0..bins)
                    .map(|k| {
                        let lower = (freq(k) - f0) / (f1 - f0);
                        let upper = (f2 - freq(k)) / (f2 - f1);
                        lower.min(upper).max(0.0) * norm
                    })
                    .collect()
            })
            .collect()
    }

    /// Checks the fields the reader checks, with the reason.
    fn check(&self) -> Result<()> {
        let n = self.n_fft;
        // Any n_fft is written (Whisper's 400 is expressible); the reader
        // refuses what it cannot compute (`BadAudio { field: "n_fft" }`).
        ensure!((16..=1 << 15).contains(&n), "n_fft {n} must be 16..=32768");
        ensure!(
            (2..=n).contains(&self.frame_len),
            "frame_len {} must be 2..=n_fft ({n})",
            self.frame_len
        );
        ensure!(
            (1..=self.frame_len).contains(&self.hop),
            "hop {} must be 1..=frame_len",
            self.hop
        );
        ensure!(
            (1..=MAX_MELS as u32).contains(&self.n_mels),
            "n_mels {} must be 1..={MAX_MELS}",
            self.n_mels
        );
        ensure!(
            0.0 <= self.fmin && self.fmin < self.fmax && self.fmax <= self.sample_rate as f64 / 2.0,
            "band edges {}..{} Hz must lie in 0..{} Hz",
            self.fmin,
            self.fmax,
            self.sample_rate / 2
        );
        ensure!(
            self.floor > 0.0 && self.floor.is_finite(),
            "floor must be > 0"
        );
        ensure!(
            self.scale > 0.0 && self.scale.is_finite(),
            "scale must be > 0"
        );
        Ok(())
    }

    /// The section's bytes, as `mote_core::audio::FrontEnd::parse` reads them.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.check()?;
        let bank = self.filter_bank();
        let mut bands = Vec::with_capacity(bank.len());
        for (m, row) in bank.iter().enumerate() {
            let Some(first) = row.iter().position(|&w| w > 0.0) else {
                bail!(
                    "mel band {m} covers no FFT bin: {} bands are too many for a {}-point FFT from {} to {} Hz",
                    self.n_mels,
                    self.n_fft,
                    self.fmin,
                    self.fmax
                );
            };
            let last = row.iter().rposition(|&w| w > 0.0).unwrap_or(first);
            bands.push((first, &row[first..=last]));
        }
        let mut out = vec![0u8; HEADER_LEN];
        let mut put = |f: std::ops::Range<usize>, v: u32| out[f].copy_from_slice(&v.to_le_bytes());
        put(field::VARIANT, self.variant as u32);
        put(field::SAMPLE_RATE, self.sample_rate);
        put(field::FRAME_LEN, self.frame_len);
        put(field::HOP, self.hop);
        put(field::N_FFT, self.n_fft);
        put(field::N_MELS, self.n_mels);
        put(field::POWER, 2);
        put(field::LOG, u32::from(self.log10));
        put(field::FLOOR, self.floor.to_bits());
        put(field::DYNAMIC_RANGE, self.dynamic_range.to_bits());
        put(field::OFFSET, self.offset.to_bits());
        put(field::SCALE, self.scale.to_bits());
        put(field::WINDOW_FRAMES, self.window_frames);
        put(field::WINDOW_NORM, self.window_norm as u32);
        let pad = |out: &mut Vec<u8>| out.resize(out.len().div_ceil(4) * 4, 0);
        let q15 = |v: f64| ((v * 32768.0).round().clamp(0.0, 32768.0) as u16).to_le_bytes();
        match self.variant {
            Variant::Float => {
                for w in self.window_values() {
                    out.extend((w as f32).to_le_bytes());
                }
            }
            Variant::Fixed => {
                for w in self.window_values() {
                    out.extend(q15(w));
                }
            }
        }
        pad(&mut out);
        for (first, w) in &bands {
            out.extend((*first as u16).to_le_bytes());
            out.extend((w.len() as u16).to_le_bytes());
        }
        let peak = |w: &[f64]| w.iter().copied().fold(0.0, f64::max);
        for (_, w) in &bands {
            match self.variant {
                Variant::Float => w.iter().for_each(|&v| out.extend((v as f32).to_le_bytes())),
                Variant::Fixed => {
                    let p = peak(w);
                    w.iter().for_each(|&v| out.extend(q15(v / p)));
                }
            }
        }
        pad(&mut out);
        if self.variant == Variant::Fixed {
            for (_, w) in &bands {
                let gain = (peak(w).ln() * 65536.0).round() as i32;
                out.extend(gain.to_le_bytes());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mote_core::audio::FrontEnd;

    #[test]
    fn both_variants_parse() {
        for v in [Variant::Float, Variant::Fixed] {
            let bytes = FrontEndSpec::kws(v).to_bytes().unwrap();
            let fe = FrontEnd::parse(&bytes).unwrap();
            assert_eq!((fe.variant, fe.n_mels, fe.hop), (v, 40, 320));
        }
    }

    #[test]
    fn whisper_is_expressible_but_refused_today() {
        let bytes = FrontEndSpec::whisper().to_bytes().unwrap();
        assert_eq!(
            FrontEnd::parse(&bytes).unwrap_err(),
            mote_core::Error::BadAudio {
                field: "n_fft",
                value: 400
            }
        );
    }

    #[test]
    fn too_many_bands_for_the_fft_is_named() {
        let spec = FrontEndSpec {
            n_fft: 64,
            frame_len: 64,
            hop: 32,
            n_mels: 60,
            ..FrontEndSpec::kws(Variant::Float)
        };
        let e = spec.to_bytes().unwrap_err().to_string();
        assert!(e.contains("covers no FFT bin"), "{e}");
    }
}
