//! The audio front end: 16-bit PCM in, log-mel feature rows out, with no
//! heap and no panic on any section bytes or samples.
//!
//! A model that hears carries an audio section ([`crate::SectionKind::Audio`],
//! layout in `docs/FORMAT.md`): the frame length and hop, the FFT size, the
//! window and a sparse mel filter bank (computed by the writer, so host and
//! device use the same numbers), the log and the normalisation. The section
//! names one of two variants:
//!
//! - [`Variant::Float`] ([`float`]): f32 arithmetic, `microfft`'s real FFT
//!   and `libm`'s logarithms. The same operations in the same order on every
//!   target: the same bits everywhere.
//! - [`Variant::Fixed`] ([`integer`]): integer arithmetic only, for cores
//!   without an FPU (RV32IMC): a Q15 window, a block-scaled 32-bit FFT, a
//!   64-bit mel accumulator and an integer logarithm. Its output is a Q16
//!   value converted exactly to f32.
//!
//! Frame `t` of a clip covers samples `t·hop .. t·hop + frame_len`
//! ([`FrontEnd::frames`]); [`FrontEnd::features`] computes every frame of a
//! clip, [`Stream`] the same frames hop by hop as samples arrive, with the
//! same bits (both call [`FrontEnd::frame`]).
//!
//! Per frame: `x = pcm / 32768`, windowed and zero-padded to `n_fft`;
//! `P[k] = |X[k]|²` for `k ≤ n_fft/2`; `mel[m] = Σ_k W[m][k] · P[k]`;
//! `v = log(max(mel, floor))` (natural or base 10); `(v − offset) · scale`.
//! A nonzero `dynamic_range` (Whisper's 8) first clamps every value of a
//! clip at `max − dynamic_range`, which needs the whole clip: a stream
//! refuses it ([`Error::AudioStreaming`]).

pub mod detect;
#[cfg(feature = "float")]
pub mod float;
pub mod integer;
mod stream;

pub use stream::Stream;

use crate::format::{read_u16, read_u32, Field};
use crate::{Error, Result};

/// Largest FFT this reader computes (power-of-two sizes only; Whisper's
/// 400-point DFT is expressible in the section but refused for now).
pub const MAX_N_FFT: usize = 512;
/// Most mel bands.
pub const MAX_MELS: usize = 128;
/// Length of the section's fixed header.
pub const HEADER_LEN: usize = 64;

/// Byte offsets of the audio section's header fields (all little-endian).
pub mod field {
    use super::Field;
    /// `u32`: [`super::Variant`] (0 f32, 1 fixed-point).
    pub const VARIANT: Field = 0..4;
    /// `u32`: samples per second of the PCM this model hears.
    pub const SAMPLE_RATE: Field = 4..8;
    /// `u32`: samples per frame (the window's length), `2..=n_fft`.
    pub const FRAME_LEN: Field = 8..12;
    /// `u32`: samples between frame starts, `1..=frame_len`.
    pub const HOP: Field = 12..16;
    /// `u32`: FFT length, a power of two in `16..=512`.
    pub const N_FFT: Field = 16..20;
    /// `u32`: mel bands, `1..=128`.
    pub const N_MELS: Field = 20..24;
    /// `u32`: 2 (the power spectrum; 1, magnitude, is reserved).
    pub const POWER: Field = 24..28;
    /// `u32`: [`super::LogBase`] (0 natural, 1 base 10).
    pub const LOG: Field = 28..32;
    /// `f32`: the floor below which a mel value is raised, `> 0`.
    pub const FLOOR: Field = 32..36;
    /// `f32`: 0, or the clip-wide clamp at `max − dynamic_range` (Whisper: 8).
    pub const DYNAMIC_RANGE: Field = 36..40;
    /// `f32`: subtracted after the log.
    pub const OFFSET: Field = 40..44;
    /// `f32`: multiplied after the offset, finite and `> 0`.
    pub const SCALE: Field = 44..48;
    /// `u32`: frames per model input window (0: the whole clip).
    pub const WINDOW_FRAMES: Field = 48..52;
    /// `u32`: [`super::WindowNorm`] applied to each model window.
    pub const WINDOW_NORM: Field = 52..56;
    /// `u32` × 2: reserved, 0 (a newer writer's fields).
    pub const RESERVED: Field = 56..64;
}

/// The arithmetic a front end computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Variant {
    /// f32 (`microfft`, `libm`).
    Float = 0,
    /// Integer only: Q15 tables, a block-scaled FFT, an integer log.
    Fixed = 1,
}

/// The logarithm applied to mel values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LogBase {
    /// Natural log.
    E = 0,
    /// Base 10 (Whisper).
    Ten = 1,
}

/// What is done to a model window's rows before the model reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WindowNorm {
    /// Nothing.
    None = 0,
    /// Each band's mean over the window subtracted (cepstral mean
    /// normalisation: a gain or a microphone's colour is a constant per
    /// band in log units, so it cancels).
    BandMean = 1,
}

/// A parsed audio section: its parameters and borrowed tables.
///
/// Tables (after the 64-byte header, each padded to 4 bytes):
/// the window (`frame_len` values), the filter index (`n_mels` pairs of
/// `u16` first bin, `u16` bin count), the filter weights (the counts'
/// sum), and for the fixed variant one `i32` Q16 log gain per band. Window
/// and weights are f32 for [`Variant::Float`] and `u16` Q15 for
/// [`Variant::Fixed`] (each band's weights scaled so its largest is 1; the
/// band's gain is then `exp(gain_q16 / 65536)`).
#[derive(Debug, Clone, Copy)]
pub struct FrontEnd<'a> {
    /// Arithmetic.
    pub variant: Variant,
    /// Samples per second.
    pub sample_rate: u32,
    /// Samples per frame.
    pub frame_len: u32,
    /// Samples between frames.
    pub hop: u32,
    /// FFT length.
    pub n_fft: u32,
    /// Mel bands (the width of a feature row).
    pub n_mels: u32,
    /// Logarithm.
    pub log: LogBase,
    /// Mel floor.
    pub floor: f32,
    /// Clip-wide dynamic range clamp (0: none).
    pub dynamic_range: f32,
    /// Subtracted after the log.
    pub offset: f32,
    /// Multiplied after the offset.
    pub scale: f32,
    /// Frames per model input window (0: the whole clip).
    pub window_frames: u32,
    /// Normalisation of each model window.
    pub window_norm: WindowNorm,
    window: &'a [u8],
    index: &'a [u8],
    weights: &'a [u8],
    gains: &'a [u8],
    fixed: integer::Constants,
}

/// Working memory of one front end call (about 4.6 KiB): the FFT buffer,
/// the fixed variant's twiddle table and one feature row. Lent to every
/// call, so a device places it where it likes (a static, the stack).
pub struct Scratch {
    pub(crate) buf: [u32; MAX_N_FFT + 2],
    pub(crate) twiddles: [i32; MAX_N_FFT],
    pub(crate) twiddles_for: u32,
    pub(crate) row: [f32; MAX_MELS],
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    /// Empty working memory.
    pub const fn new() -> Self {
        Scratch {
            buf: [0; MAX_N_FFT + 2],
            twiddles: [0; MAX_N_FFT],
            twiddles_for: 0,
            row: [0.0; MAX_MELS],
        }
    }
}

fn bad(field: &'static str, value: u32) -> Error {
    Error::BadAudio { field, value }
}

fn word(bytes: &[u8], f: Field) -> u32 {
    read_u32(bytes, f.start).unwrap_or(0)
}

fn real(bytes: &[u8], f: Field) -> f32 {
    f32::from_bits(word(bytes, f))
}

/// Rounds `n` up to a multiple of 4.
const fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

impl<'a> FrontEnd<'a> {
    /// Parses and checks an audio section: every field in range, every
    /// band inside the spectrum, the length exactly what the fields imply;
    /// each malformed field is [`Error::BadAudio`] naming it.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < HEADER_LEN {
            return Err(bad(
                "section length",
                bytes.len().min(u32::MAX as usize) as u32,
            ));
        }
        let variant = match word(bytes, field::VARIANT) {
            0 => Variant::Float,
            1 => Variant::Fixed,
            v => return Err(bad("variant", v)),
        };
        let sample_rate = word(bytes, field::SAMPLE_RATE);
        if !(4_000..=192_000).contains(&sample_rate) {
            return Err(bad("sample_rate", sample_rate));
        }
        let n_fft = word(bytes, field::N_FFT);
        if !n_fft.is_power_of_two() || !(16..=MAX_N_FFT as u32).contains(&n_fft) {
            return Err(bad("n_fft", n_fft));
        }
        let frame_len = word(bytes, field::FRAME_LEN);
        if !(2..=n_fft).contains(&frame_len) {
            return Err(bad("frame_len", frame_len));
        }
        let hop = word(bytes, field::HOP);
        if !(1..=frame_len).contains(&hop) {
            return Err(bad("hop", hop));
        }
        let n_mels = word(bytes, field::N_MELS);
        if !(1..=MAX_MELS as u32).contains(&n_mels) {
            return Err(bad("n_mels", n_mels));
        }
        let power = word(bytes, field::POWER);
        if power != 2 {
            return Err(bad("power", power));
        }
        let log = match word(bytes, field::LOG) {
            0 => LogBase::E,
            1 => LogBase::Ten,
            v => return Err(bad("log", v)),
        };
        let floor = real(bytes, field::FLOOR);
        if !(floor.is_finite() && floor > 0.0) {
            return Err(bad("floor", floor.to_bits()));
        }
        let dynamic_range = real(bytes, field::DYNAMIC_RANGE);
        if !(dynamic_range.is_finite() && dynamic_range >= 0.0) {
            return Err(bad("dynamic_range", dynamic_range.to_bits()));
        }
        let offset = real(bytes, field::OFFSET);
        if !offset.is_finite() {
            return Err(bad("offset", offset.to_bits()));
        }
        let scale = real(bytes, field::SCALE);
        if !(scale.is_finite() && scale > 0.0) {
            return Err(bad("scale", scale.to_bits()));
        }
        let window_frames = word(bytes, field::WINDOW_FRAMES);
        if window_frames > 1 << 20 {
            return Err(bad("window_frames", window_frames));
        }
        let window_norm = match word(bytes, field::WINDOW_NORM) {
            0 => WindowNorm::None,
            1 => WindowNorm::BandMean,
            v => return Err(bad("window_norm", v)),
        };
        for at in field::RESERVED.step_by(4) {
            let v = read_u32(bytes, at).unwrap_or(0);
            if v != 0 {
                return Err(bad("reserved", v));
            }
        }

        let value_len = match variant {
            Variant::Float => 4,
            Variant::Fixed => 2,
        };
        let (frame, mels) = (frame_len as usize, n_mels as usize);
        let index_at = HEADER_LEN + pad4(frame * value_len);
        let weights_at = index_at + 4 * mels;
        let index = bytes.get(index_at..weights_at).unwrap_or(&[]);
        if index.len() != 4 * mels {
            return Err(bad(
                "section length",
                bytes.len().min(u32::MAX as usize) as u32,
            ));
        }
        let bins = n_fft / 2 + 1;
        let mut n_weights = 0usize;
        for m in 0..mels {
            let first = read_u16(index, 4 * m).unwrap_or(0) as u32;
            let count = read_u16(index, 4 * m + 2).unwrap_or(0) as u32;
            if count == 0 {
                return Err(bad("band bin count", m as u32));
            }
            if first + count > bins {
                return Err(bad("band past the spectrum", m as u32));
            }
            n_weights += count as usize;
        }
        let gains_at = weights_at + pad4(n_weights * value_len);
        let end = gains_at
            + match variant {
                Variant::Float => 0,
                Variant::Fixed => 4 * mels,
            };
        if bytes.len() != end {
            return Err(bad(
                "section length",
                bytes.len().min(u32::MAX as usize) as u32,
            ));
        }
        let fe = FrontEnd {
            variant,
            sample_rate,
            frame_len,
            hop,
            n_fft,
            n_mels,
            log,
            floor,
            dynamic_range,
            offset,
            scale,
            window_frames,
            window_norm,
            window: bytes
                .get(HEADER_LEN..HEADER_LEN + frame * value_len)
                .unwrap_or(&[]),
            index,
            weights: bytes
                .get(weights_at..weights_at + n_weights * value_len)
                .unwrap_or(&[]),
            gains: bytes.get(gains_at..end).unwrap_or(&[]),
            fixed: integer::Constants::default(),
        };
        fe.check_tables()?;
        let fixed = match variant {
            Variant::Fixed => integer::Constants::new(&fe),
            Variant::Float => integer::Constants::default(),
        };
        Ok(FrontEnd { fixed, ..fe })
    }

    /// Values the tables must hold: finite f32 weights and window values
    /// in `[0, 1]` (f32), Q15 values at most 1.0, and a fixed band's
    /// weights summing to less than 2^23 (its accumulator's headroom).
    fn check_tables(&self) -> Result<()> {
        match self.variant {
            Variant::Float => {
                for (i, w) in self.window.chunks_exact(4).enumerate() {
                    let v = f32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                    if !(v.is_finite() && (-1.0..=1.0).contains(&v)) {
                        return Err(bad("window value", i as u32));
                    }
                }
                for (i, w) in self.weights.chunks_exact(4).enumerate() {
                    let v = f32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                    if !(v.is_finite() && v >= 0.0) {
                        return Err(bad("band weight", i as u32));
                    }
                }
            }
            Variant::Fixed => {
                for (i, w) in self.window.chunks_exact(2).enumerate() {
                    if u16::from_le_bytes([w[0], w[1]]) > 1 << 15 {
                        return Err(bad("window value", i as u32));
                    }
                }
                let mut at = 0;
                for m in 0..self.n_mels as usize {
                    let count = read_u16(self.index, 4 * m + 2).unwrap_or(0) as usize;
                    let mut sum = 0u32;
                    for k in 0..count {
                        let v = read_u16(self.weights, 2 * (at + k)).unwrap_or(0) as u32;
                        if v > 1 << 15 {
                            return Err(bad("band weight", (at + k) as u32));
                        }
                        sum += v;
                    }
                    if sum >= 1 << 23 {
                        return Err(bad("band weight sum", m as u32));
                    }
                    at += count;
                }
                for (m, g) in self.gains.chunks_exact(4).enumerate() {
                    let v = i32::from_le_bytes([g[0], g[1], g[2], g[3]]);
                    // |ln gain| < 64: any real filter bank is far inside.
                    if v.unsigned_abs() >= 64 << 16 {
                        return Err(bad("band gain", m as u32));
                    }
                }
            }
        }
        Ok(())
    }

    /// Frames in a clip of `samples` samples (0 when shorter than a frame).
    pub fn frames(&self, samples: usize) -> usize {
        match samples.checked_sub(self.frame_len as usize) {
            Some(rest) => rest / self.hop as usize + 1,
            None => 0,
        }
    }

    /// Band `m`'s first bin and bin count.
    pub(crate) fn band(&self, m: usize) -> (usize, usize) {
        (
            read_u16(self.index, 4 * m).unwrap_or(0) as usize,
            read_u16(self.index, 4 * m + 2).unwrap_or(0) as usize,
        )
    }

    /// Computes the feature row of one frame, whose samples are `a` then
    /// `b` (a ring buffer's two halves; `b` may be empty), into
    /// `scratch`'s row, and returns it (`n_mels` values). The two slices
    /// hold exactly `frame_len` samples ([`Error::AudioFrame`] otherwise).
    pub fn frame<'s>(&self, a: &[i16], b: &[i16], scratch: &'s mut Scratch) -> Result<&'s [f32]> {
        if a.len() + b.len() != self.frame_len as usize {
            return Err(Error::AudioFrame {
                expected: self.frame_len,
                got: (a.len() + b.len()).min(u32::MAX as usize) as u32,
            });
        }
        match self.variant {
            #[cfg(feature = "float")]
            Variant::Float => float::frame(self, a, b, scratch),
            #[cfg(not(feature = "float"))]
            Variant::Float => return Err(Error::NotBuilt { feature: "float" }),
            Variant::Fixed => integer::frame(self, a, b, scratch),
        }
        Ok(scratch.row.get(..self.n_mels as usize).unwrap_or(&[]))
    }

    /// Every frame of a clip into `out` (`frames × n_mels` values), then the
    /// clip-wide dynamic-range clamp when the section asks for it; returns
    /// the number of frames. `out` too short is [`Error::AudioOutput`]; a
    /// clip shorter than one frame is [`Error::EmptyFeatures`].
    pub fn features(&self, pcm: &[i16], scratch: &mut Scratch, out: &mut [f32]) -> Result<usize> {
        let frames = self.frames(pcm.len());
        if frames == 0 {
            return Err(Error::EmptyFeatures);
        }
        let width = self.n_mels as usize;
        let needed = frames.saturating_mul(width);
        if out.len() < needed {
            return Err(Error::AudioOutput {
                needed: needed.min(u32::MAX as usize) as u32,
                got: out.len().min(u32::MAX as usize) as u32,
            });
        }
        let (hop, len) = (self.hop as usize, self.frame_len as usize);
        for (t, row) in out.chunks_exact_mut(width).take(frames).enumerate() {
            let samples = pcm.get(t * hop..t * hop + len).unwrap_or(&[]);
            row.copy_from_slice(self.frame(samples, &[], scratch)?);
        }
        if let Some(out) = out.get_mut(..needed) {
            self.clamp_clip(out);
        }
        Ok(frames)
    }

    /// Applies [`FrontEnd::window_norm`] to one model window's rows
    /// (`frames × n_mels` values, in place). Sums run frame by frame in
    /// f32, so every target gives the same bits.
    pub fn normalize_window(&self, rows: &mut [f32]) {
        if self.window_norm == WindowNorm::None {
            return;
        }
        let width = self.n_mels as usize;
        let frames = rows.len() / width.max(1);
        if frames == 0 {
            return;
        }
        for m in 0..width {
            let mut sum = 0.0f32;
            for t in 0..frames {
                sum += rows.get(t * width + m).copied().unwrap_or(0.0);
            }
            let mean = sum / frames as f32;
            for t in 0..frames {
                if let Some(v) = rows.get_mut(t * width + m) {
                    *v -= mean;
                }
            }
        }
    }

    /// The clip-wide clamp at `max − dynamic_range` (after the offset and
    /// scale, with `scale > 0`: `max(v, max − dynamic_range)` before them is
    /// `max(v', max' − dynamic_range · scale)` after); nothing when
    /// `dynamic_range` is 0.
    pub fn clamp_clip(&self, values: &mut [f32]) {
        if self.dynamic_range == 0.0 {
            return;
        }
        let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let low = max - self.dynamic_range * self.scale;
        for v in values.iter_mut() {
            *v = v.max(low);
        }
    }
}
