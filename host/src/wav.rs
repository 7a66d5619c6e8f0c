//! Reading WAV files for the audio front end: RIFF/WAVE, integer PCM of 8,
//! 16, 24 or 32 bits or 32-bit float, any rate, any channel count → 16 kHz
//! mono `i16`, saying what was converted.
//!
//! Not `hound`: this module is a door for files from outside, and what it
//! must say about a bad file — a chunk that claims more bytes than the file
//! holds (and how many it holds), a `fmt ` chunk after `data`, a 2 GB claim
//! that must never become an allocation — needs the chunk walk done here,
//! with the file's length in hand. Once the chunks are known, decoding
//! little-endian PCM is a few lines, so no second parser is involved.
//!
//! Every chunk size is checked against the file's length before anything
//! is read or allocated; samples are read in fixed blocks ([`stream`]), so
//! a ten-hour recording is never held whole unless the caller asks
//! ([`read`]).

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The rate the front end and the device take.
pub const RATE: u32 = 16_000;

/// What is wrong with a WAV file. Each has its own test
/// (`host/tests/wav_doors.rs`).
// Each variant's doc says what it means; its fields are the numbers the
// message shows (offsets and lengths in bytes).
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WavError {
    /// The path could not be opened or read.
    Io(String),
    /// The file does not start with `RIFF` … `WAVE`.
    NotWave,
    /// The file ends inside the 12-byte RIFF header or a chunk header.
    HeaderTruncated { offset: u64, file_len: u64 },
    /// A chunk (not `data`) claims bytes past the end of the file.
    ChunkPastEnd {
        chunk: [u8; 4],
        offset: u64,
        claimed: u64,
        file_len: u64,
    },
    /// The `data` chunk claims more bytes than the file holds after it.
    DataTruncated { claimed: u64, present: u64 },
    /// No `fmt ` chunk before the `data` chunk.
    MissingFormat,
    /// No `data` chunk.
    MissingData,
    /// The `fmt ` chunk is shorter than its 16 bytes.
    FormatTooShort { len: u32 },
    /// A sample encoding this reader does not decode (A-law 6, µ-law 7, …).
    UnsupportedEncoding { tag: u16, name: &'static str },
    /// Integer PCM of a width other than 8, 16, 24 or 32 bits, or float of
    /// other than 32.
    UnsupportedBits { bits: u16, float: bool },
    /// Zero channels, or a block alignment that is not channels × bytes.
    BadChannels { channels: u16, block_align: u16 },
    /// A sample rate below 4 kHz or above 384 kHz (a resampler's output
    /// would be out of proportion to its input).
    BadRate { rate: u32 },
    /// A data chunk that is not a whole number of frames.
    PartialFrame { len: u64, frame: u16 },
    /// No samples at all.
    Empty,
    /// A device takes 16 kHz mono 16-bit PCM only.
    NotDeviceFormat {
        rate: u32,
        channels: u16,
        bits: u16,
        float: bool,
    },
}

impl fmt::Display for WavError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WavError::Io(e) => write!(f, "{e}"),
            WavError::NotWave => write!(f, "not a WAV file (no RIFF/WAVE header)"),
            WavError::HeaderTruncated { offset, file_len } => write!(
                f,
                "truncated header: the file ends at byte {file_len}, inside the header at byte {offset}"
            ),
            WavError::ChunkPastEnd { chunk, offset, claimed, file_len } => write!(
                f,
                "chunk {:?} at byte {offset} claims {claimed} bytes, past the end of the file ({file_len} bytes)",
                String::from_utf8_lossy(chunk)
            ),
            WavError::DataTruncated { claimed, present } => write!(
                f,
                "truncated data: the data chunk claims {claimed} bytes, the file holds {present}"
            ),
            WavError::MissingFormat => write!(f, "no fmt chunk before the data chunk"),
            WavError::MissingData => write!(f, "no data chunk"),
            WavError::FormatTooShort { len } => {
                write!(f, "the fmt chunk is {len} bytes, shorter than 16")
            }
            WavError::UnsupportedEncoding { tag, name } => write!(
                f,
                "{name} samples (format tag {tag}) are not supported: integer PCM (8, 16, 24, 32 bits) or 32-bit float are"
            ),
            WavError::UnsupportedBits { bits, float } => write!(
                f,
                "{bits}-bit {} samples are not supported: integer PCM of 8, 16, 24 or 32 bits or 32-bit float are",
                if *float { "float" } else { "integer" }
            ),
            WavError::BadChannels { channels, block_align } => write!(
                f,
                "bad channel layout: {channels} channels, block alignment {block_align}"
            ),
            WavError::BadRate { rate } => {
                write!(f, "sample rate {rate} Hz is not read (4,000 to 384,000 Hz are)")
            }
            WavError::PartialFrame { len, frame } => write!(
                f,
                "the data chunk's {len} bytes are not whole frames of {frame} bytes"
            ),
            WavError::Empty => write!(f, "no samples (the data chunk is empty)"),
            WavError::NotDeviceFormat { rate, channels, bits, float } => write!(
                f,
                "a device takes 16 kHz mono 16-bit PCM; this is {rate} Hz, {channels} channel(s), {bits}-bit {}",
                if *float { "float" } else { "PCM" }
            ),
        }
    }
}

impl std::error::Error for WavError {}

/// A file's sample format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// Frames per second.
    pub rate: u32,
    /// Channels per frame.
    pub channels: u16,
    /// Bits per sample.
    pub bits: u16,
    /// IEEE float samples (else integer PCM).
    pub float: bool,
    /// The data chunk's offset in bytes.
    pub data_offset: u64,
    /// The data chunk's length in bytes.
    pub data_len: u64,
}

impl Format {
    /// Bytes per frame (one sample of every channel).
    pub fn frame_bytes(&self) -> u16 {
        self.channels * (self.bits / 8)
    }

    /// Frames in the file.
    pub fn frames(&self) -> u64 {
        self.data_len / u64::from(self.frame_bytes())
    }

    /// Refuses anything but what a device takes: 16 kHz mono 16-bit PCM.
    pub fn check_device(&self) -> Result<(), WavError> {
        if self.rate == RATE && self.channels == 1 && self.bits == 16 && !self.float {
            Ok(())
        } else {
            Err(WavError::NotDeviceFormat {
                rate: self.rate,
                channels: self.channels,
                bits: self.bits,
                float: self.float,
            })
        }
    }
}

/// A clip at 16 kHz mono, and what was done to get it there.
#[derive(Debug, Clone)]
pub struct Clip {
    /// 16 kHz mono samples.
    pub samples: Vec<i16>,
    /// The file's own format.
    pub source: Format,
    /// What was converted, in order ("mixed 2 channels down to mono",
    /// "resampled 8000 Hz to 16000 Hz", "converted 24-bit PCM to 16-bit"):
    /// empty for a 16 kHz mono 16-bit file.
    pub conversions: Vec<String>,
}

fn io(path: &Path, e: std::io::Error) -> WavError {
    WavError::Io(format!("{}: {e}", path.display()))
}

/// Reads the chunk table of `file` (`file_len` bytes): the format and where
/// the data lies. Nothing is read past what a chunk header claims, and every
/// claim is checked against `file_len` first.
fn parse(file: &mut (impl Read + Seek), file_len: u64) -> Result<Format, WavError> {
    let mut riff = [0u8; 12];
    read_exact_at(file, 0, &mut riff, file_len)?;
    if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let mut offset = 12u64;
    let mut format: Option<(u16, u16, u32, u16, u16)> = None;
    loop {
        if offset >= file_len {
            return Err(match format {
                None => WavError::MissingFormat,
                Some(_) => WavError::MissingData,
            });
        }
        let mut head = [0u8; 8];
        read_exact_at(file, offset, &mut head, file_len)?;
        let id = [head[0], head[1], head[2], head[3]];
        let len = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        let body = offset + 8;
        let present = file_len - body;
        if &id == b"data" {
            let Some((tag, channels, rate, block_align, bits)) = format else {
                return Err(WavError::MissingFormat);
            };
            if len > present {
                return Err(WavError::DataTruncated {
                    claimed: len,
                    present,
                });
            }
            let f = check_format(tag, channels, rate, block_align, bits, body, len)?;
            if len == 0 {
                return Err(WavError::Empty);
            }
            if len % u64::from(f.frame_bytes()) != 0 {
                return Err(WavError::PartialFrame {
                    len,
                    frame: f.frame_bytes(),
                });
            }
            return Ok(f);
        }
        if len > present {
            return Err(WavError::ChunkPastEnd {
                chunk: id,
                offset,
                claimed: len,
                file_len,
            });
        }
        if &id == b"fmt " {
            if len < 16 {
                return Err(WavError::FormatTooShort { len: len as u32 });
            }
            let mut b = [0u8; 40];
            let take = len.min(40) as usize;
            read_exact_at(file, body, &mut b[..take], file_len)?;
            let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
            let mut tag = u16_at(0);
            // WAVE_FORMAT_EXTENSIBLE: the real tag is the sub-format GUID's
            // first two bytes (cbSize at 16 must cover the 22 extra bytes).
            if tag == 0xFFFE && take >= 40 && u16_at(16) >= 22 {
                tag = u16_at(24);
            }
            format = Some((
                tag,
                u16_at(2),
                u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
                u16_at(12),
                u16_at(14),
            ));
        }
        // Chunks are padded to an even length.
        offset = body + len + (len & 1);
    }
}

fn check_format(
    tag: u16,
    channels: u16,
    rate: u32,
    block_align: u16,
    bits: u16,
    data_offset: u64,
    data_len: u64,
) -> Result<Format, WavError> {
    let float = match tag {
        1 => false,
        3 => true,
        2 => return Err(WavError::UnsupportedEncoding { tag, name: "ADPCM" }),
        6 => return Err(WavError::UnsupportedEncoding { tag, name: "A-law" }),
        7 => {
            return Err(WavError::UnsupportedEncoding {
                tag, name: "µ-law"
            })
        }
        0x55 => return Err(WavError::UnsupportedEncoding { tag, name: "MP3" }),
        _ => {
            return Err(WavError::UnsupportedEncoding {
                tag,
                name: "an unknown encoding's",
            })
        }
    };
    let ok_bits = if float {
        bits == 32
    } else {
        matches!(bits, 8 | 16 | 24 | 32)
    };
    if !ok_bits {
        return Err(WavError::UnsupportedBits { bits, float });
    }
    if channels == 0 || u32::from(block_align) != u32::from(channels) * u32::from(bits / 8) {
        return Err(WavError::BadChannels {
            channels,
            block_align,
        });
    }
    if !(4_000..=384_000).contains(&rate) {
        return Err(WavError::BadRate { rate });
    }
    Ok(Format {
        rate,
        channels,
        bits,
        float,
        data_offset,
        data_len,
    })
}

fn read_exact_at(
    file: &mut (impl Read + Seek),
    offset: u64,
    buf: &mut [u8],
    file_len: u64,
) -> Result<(), WavError> {
    if offset + buf.len() as u64 > file_len {
        return Err(WavError::HeaderTruncated { offset, file_len });
    }
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(buf))
        .map_err(|e| WavError::Io(e.to_string()))
}

/// Opens `path` and reads its chunk table (a regular file only: a FIFO or a
/// device has no length to check claims against).
pub fn open(path: &Path) -> Result<(File, Format), WavError> {
    let mut file = File::open(path).map_err(|e| io(path, e))?;
    let meta = file.metadata().map_err(|e| io(path, e))?;
    if !meta.is_file() {
        return Err(WavError::Io(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    let format = parse(&mut file, meta.len())?;
    Ok((file, format))
}

/// One frame's channels decoded and averaged to one `f32` in [-1, 1).
fn frame_value(f: &Format, b: &[u8]) -> f32 {
    let w = usize::from(f.bits / 8);
    let mut sum = 0.0f64;
    for c in b.chunks_exact(w) {
        sum += match (f.float, f.bits) {
            (true, _) => f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            (false, 8) => (f64::from(c[0]) - 128.0) / 128.0,
            (false, 16) => f64::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0,
            (false, 24) => f64::from(i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8) / 8_388_608.0,
            _ => f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])) / 2_147_483_648.0,
        };
    }
    (sum / f64::from(f.channels)) as f32
}

fn to_i16(x: f32) -> i16 {
    // NaN (a float file may hold one) becomes 0; the rest rounds and clips.
    if x.is_nan() {
        0
    } else {
        (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
    }
}

/// Streams a file's samples in blocks of at most `block` mono frames
/// (channels mixed down, other widths converted to 16-bit), without holding
/// the file: memory is one block, whatever the length. The rate is the
/// file's ([`Format::rate`]): a streaming consumer at 16 kHz checks it.
pub fn stream(path: &Path, block: usize, mut each: impl FnMut(&[i16])) -> Result<Format, WavError> {
    let (mut file, f) = open(path)?;
    stream_from(&mut file, &f, block.max(1), &mut each).map_err(|e| io(path, e))?;
    Ok(f)
}

fn stream_from(
    file: &mut (impl Read + Seek),
    f: &Format,
    block: usize,
    each: &mut impl FnMut(&[i16]),
) -> std::io::Result<()> {
    let frame = usize::from(f.frame_bytes());
    let mut raw = vec![0u8; block * frame];
    let mut out = Vec::with_capacity(block);
    file.seek(SeekFrom::Start(f.data_offset))?;
    let mut left = f.data_len;
    while left > 0 {
        let n = (left.min(raw.len() as u64)) as usize;
        file.read_exact(&mut raw[..n])?;
        left -= n as u64;
        out.clear();
        if f.bits == 16 && f.channels == 1 && !f.float {
            out.extend(
                raw[..n]
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]])),
            );
        } else {
            out.extend(
                raw[..n]
                    .chunks_exact(frame)
                    .map(|b| to_i16(frame_value(f, b))),
            );
        }
        each(&out);
    }
    Ok(())
}

/// Reads a whole file to 16 kHz mono 16-bit samples: channels mixed down,
/// other widths converted, other rates resampled ([`resample`]); each step
/// listed in [`Clip::conversions`].
pub fn read(path: &Path) -> Result<Clip, WavError> {
    let (mut file, f) = open(path)?;
    decode(&mut file, f).map_err(|e| match e {
        WavError::Io(e) => WavError::Io(format!("{}: {e}", path.display())),
        e => e,
    })
}

/// [`read`] on a file's bytes already in memory (a flash image's input
/// area written by the host, the fuzz target).
pub fn read_bytes(bytes: &[u8]) -> Result<Clip, WavError> {
    let mut c = std::io::Cursor::new(bytes);
    let f = parse(&mut c, bytes.len() as u64)?;
    decode(&mut c, f)
}

fn decode(file: &mut (impl Read + Seek), f: Format) -> Result<Clip, WavError> {
    let mut samples = Vec::new();
    samples
        .try_reserve_exact(f.frames() as usize)
        .map_err(|_| WavError::Io(format!("{} frames do not fit in memory", f.frames())))?;
    stream_from(file, &f, 1 << 14, &mut |b: &[i16]| {
        samples.extend_from_slice(b)
    })
    .map_err(|e| WavError::Io(e.to_string()))?;
    let mut conversions = Vec::new();
    if f.channels != 1 {
        conversions.push(format!("mixed {} channels down to mono", f.channels));
    }
    if f.float || f.bits != 16 {
        conversions.push(format!(
            "converted {}-bit {} to 16-bit PCM",
            f.bits,
            if f.float { "float" } else { "PCM" }
        ));
    }
    if f.rate != RATE {
        samples = resample(&samples, f.rate, RATE);
        conversions.push(format!("resampled {} Hz to {RATE} Hz", f.rate));
    }
    Ok(Clip {
        samples,
        source: f,
        conversions,
    })
}

/// Band-limited resampling from `from` Hz to `to` Hz: each output sample is
/// the input convolved with a Hann-windowed sinc (16 zero crossings each
/// side of the lower rate's Nyquist frequency, cut at 0.95 of it), computed
/// in f64. Not bit-exact to any other resampler; what matters is that the
/// host's conversion is stated and deterministic.
pub fn resample(x: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || x.is_empty() {
        return x.to_vec();
    }
    let ratio = f64::from(to) / f64::from(from);
    let cutoff = 0.95 * ratio.min(1.0); // in cycles per input sample × 2
    const ZEROS: f64 = 16.0;
    let half = (ZEROS / cutoff).ceil() as i64;
    let n_out = ((x.len() as f64) * ratio).round() as usize;
    let mut out = Vec::with_capacity(n_out);
    for j in 0..n_out {
        let t = j as f64 / ratio;
        let centre = t.floor() as i64;
        let (mut acc, mut norm) = (0.0f64, 0.0f64);
        for i in (centre - half)..=(centre + half) {
            let d = t - i as f64;
            let u = d * cutoff;
            let sinc = if u.abs() < 1e-12 {
                1.0
            } else {
                (std::f64::consts::PI * u).sin() / (std::f64::consts::PI * u)
            };
            let w = 0.5 + 0.5 * (std::f64::consts::PI * d / (half as f64 + 1.0)).cos();
            let k = sinc * w;
            norm += k;
            if i >= 0 && (i as usize) < x.len() {
                acc += k * f64::from(x[i as usize]);
            }
        }
        let v = if norm != 0.0 { acc / norm } else { 0.0 };
        out.push(v.round().clamp(-32768.0, 32767.0) as i16);
    }
    out
}
