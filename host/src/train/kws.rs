//! Keyword spotting's data: the clips `cargo xtask data kws` builds
//! (`docs/DATA-KWS.md`), one-second windows with augmentation, and their
//! features through the model's own front end (`mote_core::audio`, the f32
//! variant the device's fixed-point variant approximates to 1.4e-3).
//!
//! Augmentation (training only), in this order: speed and pitch together
//! (resampling by 0.8–1.2, which also warps the formants like a vocal
//! tract 20% longer or shorter), gain (−24 to +6 dB around a normalised
//! level), a random place in the window, a spectral tilt (a first-order
//! filter: bright or dull microphones), telephone band-limiting (half the
//! clips: a 300 Hz to 3.4–3.95 kHz band-pass, what an 8 kHz recording
//! keeps, and half of those through 8-bit µ-law as telephone audio is), a few early reflections, and background noise or speech at 0–30
//! dB SNR (white, pink, brown, hum, alsa-utils' recordings). On features:
//! two frequency masks and two time masks (SpecAugment).
//!
//! "silence" windows are noise alone, at any level down to digital zero.
//! Validation windows are the validation voices' clips centred, and one
//! silence window per noise file (seeded, fixed); test windows are the real
//! speaker's recordings centred, never seen before the final report.

use super::data::Split;
use super::net::Rng;
use crate::audio::FrontEndSpec;
use crate::wav;
use anyhow::{bail, ensure, Context, Result};
use mote_core::audio::{FrontEnd, Scratch, Variant};
use std::path::{Path, PathBuf};

/// The twelve classes, in label order.
pub const CLASSES: [&str; 12] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "silence",
    "unknown",
];
/// The silence class.
pub const SILENCE: usize = 10;
/// Samples per model window (one second at 16 kHz).
pub const WINDOW: usize = 16_000;

/// The data set's directory (`$MOTE_CACHE/kws/v1`).
pub fn data_dir() -> PathBuf {
    crate::fetch::cache_dir().join("kws").join("v1")
}

/// One labelled clip.
pub struct Clip {
    /// 16 kHz mono samples.
    pub pcm: Vec<i16>,
    /// Index into [`CLASSES`].
    pub label: usize,
}

/// The loaded data set.
pub struct Kws {
    /// Train, validation, test clips.
    pub splits: [Vec<Clip>; 3],
    /// Background noise (`noise/*.wav`) and speech (`noise/speech/*.wav`).
    pub noise: Vec<Vec<i16>>,
    /// Background speech, never a keyword.
    pub speech: Vec<Vec<i16>>,
    /// The front end's section (f32 variant; offset and scale set from
    /// the training data).
    pub section: Vec<u8>,
    /// Band-pass filters for the telephone band (300 Hz to 3.4, 3.7 or
    /// 3.95 kHz: what an 8 kHz recording keeps).
    telephone: Vec<Vec<f32>>,
}

fn read(dir: &Path, rel: &str) -> Result<Vec<i16>> {
    let clip = wav::read(&dir.join(rel)).with_context(|| format!("reading {rel}"))?;
    ensure!(
        clip.conversions.is_empty(),
        "{rel}: not 16 kHz mono 16-bit ({:?}); rebuild with `cargo xtask data kws --force`",
        clip.conversions
    );
    Ok(clip.samples)
}

impl Kws {
    /// Reads the data set (its manifest and every clip) and fixes the front
    /// end's normalisation from the training split.
    pub fn load(dir: &Path) -> Result<Kws> {
        let manifest = dir.join("manifest.tsv");
        let text = std::fs::read_to_string(&manifest).with_context(|| {
            format!(
                "{} is missing: build the keyword data set with `cargo xtask data kws`",
                manifest.display()
            )
        })?;
        let mut kws = Kws {
            splits: Default::default(),
            noise: Vec::new(),
            speech: Vec::new(),
            section: Vec::new(),
            telephone: [3_400.0, 3_700.0, 3_950.0]
                .iter()
                .map(|&hi| band_pass(300.0, hi, 16_000.0, 101))
                .collect(),
        };
        for (n, line) in text.lines().enumerate().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            let [split, label, rel, ..] = f[..] else {
                bail!("{}:{}: fewer than 3 fields", manifest.display(), n + 1);
            };
            let pcm = read(dir, rel)?;
            match (split, label) {
                ("noise", "noise") => kws.noise.push(pcm),
                ("noise", "speech") => kws.speech.push(pcm),
                (s, l) => {
                    let i = match s {
                        "train" => 0,
                        "val" => 1,
                        "test" => 2,
                        _ => bail!("{}:{}: split {s:?}", manifest.display(), n + 1),
                    };
                    let label = CLASSES.iter().position(|c| *c == l).with_context(|| {
                        format!("{}:{}: label {l:?}", manifest.display(), n + 1)
                    })?;
                    kws.splits[i].push(Clip { pcm, label });
                }
            }
        }
        ensure!(
            !kws.splits[0].is_empty() && !kws.noise.is_empty(),
            "{}: no training clips or no noise",
            manifest.display()
        );
        kws.section = kws.fit_front_end()?;
        Ok(kws)
    }

    /// The keyword front end with its offset and scale chosen so augmented
    /// training windows' features (after the window's band means are
    /// subtracted) have mean 0 and deviation 1 (a deterministic sample of
    /// 256 windows).
    fn fit_front_end(&self) -> Result<Vec<u8>> {
        let plain = FrontEndSpec::kws(Variant::Float);
        let bytes = plain.to_bytes()?;
        let fe = FrontEnd::parse(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut rng = Rng(0x006b_7773);
        let (mut sum, mut sq, mut n) = (0f64, 0f64, 0f64);
        let mut scratch = Box::new(Scratch::new());
        for _ in 0..256 {
            let pcm = self.train_window(&mut rng);
            for v in features_with(&fe, &mut scratch, &pcm)? {
                sum += v as f64;
                sq += (v as f64) * (v as f64);
                n += 1.0;
            }
        }
        let mean = sum / n;
        let std = (sq / n - mean * mean).sqrt().max(1e-3);
        FrontEndSpec {
            offset: mean as f32,
            scale: (1.0 / std) as f32,
            ..plain
        }
        .to_bytes()
    }

    /// The front end of [`Kws::section`].
    pub fn front_end(&self) -> Result<FrontEnd<'_>> {
        FrontEnd::parse(&self.section).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// A random, augmented training window and its label, each class 1/12
    /// of the time (a larger share of unknown words made the model call
    /// unfamiliar voices unknown).
    pub fn train_example(&self, rng: &mut Rng) -> (Vec<i16>, usize) {
        let label = rng.below(CLASSES.len());
        if label == SILENCE {
            return (self.silence(rng), label);
        }
        let train = &self.splits[0];
        // Rejection-free: start at a random clip and take the next of this label.
        let start = rng.below(train.len());
        let clip = (0..train.len())
            .map(|k| &train[(start + k) % train.len()])
            .find(|c| c.label == label)
            .unwrap_or(&train[start]);
        (self.augment(&clip.pcm, rng), clip.label)
    }

    fn train_window(&self, rng: &mut Rng) -> Vec<i16> {
        self.train_example(rng).0
    }

    /// Noise alone: a random noise file's stretch at a random level (a
    /// quarter of them digital silence or nearly so).
    fn silence(&self, rng: &mut Rng) -> Vec<i16> {
        let mut out = vec![0f32; WINDOW];
        if rng.below(8) > 0 {
            let noise = &self.noise[rng.below(self.noise.len())];
            let level = db(-70.0 + 60.0 * rng.uniform());
            add_loop(
                &mut out,
                noise,
                rng.below(noise.len().max(1)),
                level / rms(noise),
            );
            if rng.below(3) == 0 {
                let speech = &self.speech[rng.below(self.speech.len().max(1))];
                add_loop(&mut out, speech, 0, level * 0.3 / rms(speech));
            }
        }
        to_pcm(&out)
    }

    /// The augmentation of the module notes.
    fn augment(&self, pcm: &[i16], rng: &mut Rng) -> Vec<i16> {
        let x: Vec<f32> = pcm.iter().map(|&s| s as f32 / 32768.0).collect();
        // Speed and pitch (and formants: a vocal tract 20% shorter or longer).
        let rate = 0.8 + 0.4 * rng.uniform();
        let x = stretch(&x, rate);
        // Gain around a peak of 0.3.
        let peak = x.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let gain = 0.3 / peak * db(-24.0 + 30.0 * rng.uniform());
        // Place.
        let mut out = vec![0f32; WINDOW];
        if x.len() >= WINDOW {
            let from = rng.below(x.len() - WINDOW + 1);
            out.copy_from_slice(&x[from..from + WINDOW]);
        } else {
            let at = rng.below(WINDOW - x.len() + 1);
            out[at..at + x.len()].copy_from_slice(&x);
        }
        out.iter_mut().for_each(|v| *v *= gain);
        // Tilt.
        let a = -0.5 + 1.4 * rng.uniform();
        for i in (1..WINDOW).rev() {
            out[i] -= a * out[i - 1] * 0.5;
        }
        // Telephone band.
        if rng.below(2) == 0 {
            let taps = &self.telephone[rng.below(self.telephone.len())];
            out = fir(&out, taps);
            // G.711 µ-law's 8-bit companding noise, half the time.
            if rng.below(2) == 0 {
                out.iter_mut().for_each(|v| *v = mu_law(*v));
            }
        }
        // Early reflections.
        if rng.below(3) == 0 {
            let dry = out.clone();
            for _ in 0..12 {
                let delay = 80 + rng.below(1_200);
                let g = 0.5 * rng.uniform() * (-(delay as f32) / 800.0).exp();
                for i in delay..WINDOW {
                    out[i] += g * dry[i - delay];
                }
            }
        }
        // Background.
        if rng.below(5) > 0 {
            let speech_rms = rms_f(&out).max(1e-6);
            let snr = db(-(30.0 * rng.uniform()));
            let (src, scale) = if rng.below(6) == 0 && !self.speech.is_empty() {
                let s = &self.speech[rng.below(self.speech.len())];
                (s, 0.5)
            } else {
                (&self.noise[rng.below(self.noise.len())], 1.0)
            };
            let at = rng.below(src.len().max(1));
            add_loop(&mut out, src, at, scale * speech_rms * snr / rms(src));
        }
        to_pcm(&out)
    }

    /// A clip centred in a window, not augmented (validation and test).
    pub fn centred(pcm: &[i16]) -> Vec<i16> {
        let mut out = vec![0i16; WINDOW];
        if pcm.len() >= WINDOW {
            let from = (pcm.len() - WINDOW) / 2;
            out.copy_from_slice(&pcm[from..from + WINDOW]);
        } else {
            let at = (WINDOW - pcm.len()) / 2;
            out[at..at + pcm.len()].copy_from_slice(pcm);
        }
        out
    }

    /// The windows and labels of an evaluation split: its clips centred,
    /// and (validation) one silence window per noise file.
    pub fn eval_windows(&self, split: Split) -> Vec<(Vec<i16>, usize)> {
        let i = split as usize;
        let mut v: Vec<(Vec<i16>, usize)> = self.splits[i]
            .iter()
            .map(|c| (Kws::centred(&c.pcm), c.label))
            .collect();
        if split == Split::Validation {
            let mut rng = Rng(0x0511_34ce);
            for _ in 0..4 * self.noise.len() {
                v.push((self.silence(&mut rng), SILENCE));
            }
        }
        v
    }

    /// A window's feature rows (`frames × n_mels`), normalised as the section says.
    pub fn features(&self, scratch: &mut Scratch, pcm: &[i16]) -> Result<Vec<f32>> {
        features_with(&self.front_end()?, scratch, pcm)
    }
}

fn features_with(fe: &FrontEnd, scratch: &mut Scratch, pcm: &[i16]) -> Result<Vec<f32>> {
    let mut out = vec![0.0; fe.frames(pcm.len()) * fe.n_mels as usize];
    fe.features(pcm, scratch, &mut out)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    fe.normalize_window(&mut out);
    Ok(out)
}

/// Two frequency masks (up to 6 bands) and two time masks (up to 6
/// frames), set to 0 (the features' mean).
pub fn spec_augment(f: &mut [f32], n_mels: usize, rng: &mut Rng) {
    let frames = f.len() / n_mels.max(1);
    for _ in 0..2 {
        let w = rng.below(7);
        let at = rng.below(n_mels.saturating_sub(w) + 1);
        for t in 0..frames {
            f[t * n_mels + at..t * n_mels + at + w].fill(0.0);
        }
        let w = rng.below(7);
        let at = rng.below(frames.saturating_sub(w) + 1);
        f[at * n_mels..(at + w) * n_mels].fill(0.0);
    }
}

fn db(d: f32) -> f32 {
    10f32.powf(d / 20.0)
}

fn rms(x: &[i16]) -> f32 {
    let s: f64 = x.iter().map(|&v| (v as f64 / 32768.0).powi(2)).sum();
    ((s / x.len().max(1) as f64).sqrt() as f32).max(1e-6)
}

fn rms_f(x: &[f32]) -> f32 {
    let s: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
    (s / x.len().max(1) as f64).sqrt() as f32
}

/// Adds `src` (looped, from `at`) times `gain` to `out`.
fn add_loop(out: &mut [f32], src: &[i16], at: usize, gain: f32) {
    if src.is_empty() {
        return;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o += gain * src[(at + i) % src.len()] as f32 / 32768.0;
    }
}

/// Plays `x` `rate` times faster (linear interpolation).
fn stretch(x: &[f32], rate: f32) -> Vec<f32> {
    let n = ((x.len() as f32) / rate) as usize;
    (0..n)
        .map(|i| {
            let p = i as f32 * rate;
            let k = p as usize;
            let f = p - k as f32;
            let a = x.get(k).copied().unwrap_or(0.0);
            let b = x.get(k + 1).copied().unwrap_or(0.0);
            a + (b - a) * f
        })
        .collect()
}

/// `x` through 8-bit µ-law (G.711, µ = 255) and back.
fn mu_law(x: f32) -> f32 {
    const MU: f32 = 255.0;
    let x = x.clamp(-1.0, 1.0);
    let y = x.signum() * (1.0 + MU * x.abs()).ln() / (1.0 + MU).ln();
    let y = (y * 127.0).round() / 127.0;
    y.signum() * ((1.0 + MU).powf(y.abs()) - 1.0) / MU
}

/// A windowed-sinc (Hann) band-pass FIR of `n` taps (odd) from `lo` to `hi` Hz.
fn band_pass(lo: f64, hi: f64, rate: f64, n: usize) -> Vec<f32> {
    let m = (n / 2) as f64;
    let sinc = |fc: f64, k: f64| {
        if k == 0.0 {
            2.0 * fc / rate
        } else {
            (2.0 * std::f64::consts::PI * fc / rate * k).sin() / (std::f64::consts::PI * k)
        }
    };
    (0..n)
        .map(|i| {
            let k = i as f64 - m;
            let w = 0.5 + 0.5 * (std::f64::consts::PI * k / (m + 1.0)).cos();
            ((sinc(hi, k) - sinc(lo, k)) * w) as f32
        })
        .collect()
}

/// `x` filtered by `taps` (centred: no delay), the same length.
fn fir(x: &[f32], taps: &[f32]) -> Vec<f32> {
    let half = taps.len() / 2;
    let mut padded = vec![0f32; x.len() + 2 * half];
    padded[half..half + x.len()].copy_from_slice(x);
    padded
        .windows(taps.len())
        .map(|w| w.iter().zip(taps).map(|(a, b)| a * b).sum())
        .collect()
}

fn to_pcm(x: &[f32]) -> Vec<i16> {
    x.iter()
        .map(|v| (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}
