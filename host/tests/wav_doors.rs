//! Bad audio gets its own error: each door of `mote_host::wav`, with the
//! malformed files written here byte by byte.
#![allow(clippy::unwrap_used)]

use mote_host::wav::{self, WavError};
use std::path::PathBuf;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("mote-wav-doors-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A WAV file: a `fmt ` chunk (tag, channels, rate, bits) and a data chunk
/// whose header claims `claim` bytes (`None`: the real length).
fn wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8], claim: Option<u32>) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVE");
    v.extend_from_slice(b"fmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    let align = channels * (bits / 8);
    v.extend_from_slice(&tag.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
    v.extend_from_slice(&align.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&claim.unwrap_or(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

fn pcm16(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn err_of(name: &str, bytes: &[u8]) -> WavError {
    let p = dir().join(name);
    std::fs::write(&p, bytes).unwrap();
    let e = wav::read(&p).unwrap_err();
    // The in-memory reader and the streaming one see the same door.
    assert_eq!(wav::read_bytes(bytes).unwrap_err(), e, "{name}");
    assert_eq!(wav::stream(&p, 160, |_| {}).unwrap_err(), e, "{name}");
    assert!(!e.to_string().is_empty());
    e
}

#[test]
fn a_good_file_reads_as_it_is() {
    let s: Vec<i16> = (0..1600).map(|i| ((i * 37) % 2000 - 1000) as i16).collect();
    let p = dir().join("good.wav");
    std::fs::write(&p, wav(1, 1, 16_000, 16, &pcm16(&s), None)).unwrap();
    let c = wav::read(&p).unwrap();
    assert_eq!(c.samples, s);
    assert!(c.conversions.is_empty());
    c.source.check_device().unwrap();
    let mut streamed = Vec::new();
    wav::stream(&p, 7, |b| {
        assert!(b.len() <= 7);
        streamed.extend_from_slice(b)
    })
    .unwrap();
    assert_eq!(streamed, s);
}

#[test]
fn not_riff_or_not_wave() {
    assert_eq!(
        err_of("text.wav", b"hello, this is no audio file at all"),
        WavError::NotWave
    );
    let mut avi = wav(1, 1, 16_000, 16, &[0; 4], None);
    avi[8..12].copy_from_slice(b"AVI ");
    assert_eq!(err_of("avi.wav", &avi), WavError::NotWave);
}

#[test]
fn truncated_header_and_data() {
    let full = wav(1, 1, 16_000, 16, &pcm16(&[1, 2, 3, 4]), None);
    assert!(matches!(
        err_of("h.wav", &full[..8]),
        WavError::HeaderTruncated { .. }
    ));
    assert!(matches!(
        err_of("h2.wav", &full[..40]),
        WavError::HeaderTruncated { .. }
    ));
    assert_eq!(
        err_of("d.wav", &full[..full.len() - 3]),
        WavError::DataTruncated {
            claimed: 8,
            present: 5
        }
    );
    assert!(err_of("d.wav", &full[..full.len() - 3])
        .to_string()
        .contains("holds 5"));
}

#[test]
fn unsupported_encodings_and_widths_are_named() {
    let e = err_of("alaw.wav", &wav(6, 1, 8_000, 8, &[0; 16], None));
    assert_eq!(
        e,
        WavError::UnsupportedEncoding {
            tag: 6,
            name: "A-law"
        }
    );
    assert!(e.to_string().contains("A-law"));
    let e = err_of("ulaw.wav", &wav(7, 1, 8_000, 8, &[0; 16], None));
    assert!(e.to_string().contains("µ-law"));
    assert_eq!(
        err_of("f64.wav", &wav(3, 1, 16_000, 64, &[0; 16], None)),
        WavError::UnsupportedBits {
            bits: 64,
            float: true
        }
    );
    assert_eq!(
        err_of("12.wav", &wav(1, 1, 16_000, 12, &[0; 16], None)),
        WavError::UnsupportedBits {
            bits: 12,
            float: false
        }
    );
}

#[test]
fn eight_24_bit_and_float_are_converted_and_said() {
    let d = dir();
    // 8-bit unsigned: 128 is 0, 192 is +0.5.
    let p = d.join("u8.wav");
    std::fs::write(&p, wav(1, 1, 16_000, 8, &[128, 192, 64], None)).unwrap();
    let c = wav::read(&p).unwrap();
    assert_eq!(c.samples, [0, 16384, -16384]);
    assert!(c.conversions[0].contains("8-bit"), "{:?}", c.conversions);
    assert!(c.source.check_device().is_err());
    // 24-bit: 0x400000 is +0.5.
    let p = d.join("s24.wav");
    std::fs::write(&p, wav(1, 1, 16_000, 24, &[0, 0, 0x40, 0, 0, 0xC0], None)).unwrap();
    assert_eq!(wav::read(&p).unwrap().samples, [16384, -16384]);
    // float, NaN becomes 0, out of range clips.
    let p = d.join("f32.wav");
    let f: Vec<u8> = [0.25f32, f32::NAN, 2.0, -2.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    std::fs::write(&p, wav(3, 1, 16_000, 32, &f, None)).unwrap();
    assert_eq!(wav::read(&p).unwrap().samples, [8192, 0, 32767, -32768]);
}

#[test]
fn stereo_and_other_rates_are_mixed_and_resampled_on_the_host_refused_on_a_device() {
    let d = dir();
    let p = d.join("stereo.wav");
    std::fs::write(
        &p,
        wav(1, 2, 16_000, 16, &pcm16(&[1000, 3000, -1000, -3000]), None),
    )
    .unwrap();
    let c = wav::read(&p).unwrap();
    assert_eq!(c.samples, [2000, -2000]);
    assert_eq!(c.conversions, ["mixed 2 channels down to mono"]);
    assert_eq!(
        c.source.check_device().unwrap_err(),
        WavError::NotDeviceFormat {
            rate: 16_000,
            channels: 2,
            bits: 16,
            float: false
        }
    );
    // An 8 kHz 500 Hz tone becomes a 16 kHz 500 Hz tone of twice the samples.
    let tone: Vec<i16> = (0..800)
        .map(|i| (10_000.0 * (2.0 * std::f64::consts::PI * 500.0 * i as f64 / 8000.0).sin()) as i16)
        .collect();
    let p = d.join("8k.wav");
    std::fs::write(&p, wav(1, 1, 8_000, 16, &pcm16(&tone), None)).unwrap();
    let c = wav::read(&p).unwrap();
    assert_eq!(c.samples.len(), 1600);
    assert_eq!(c.conversions, ["resampled 8000 Hz to 16000 Hz"]);
    assert!(c
        .source
        .check_device()
        .unwrap_err()
        .to_string()
        .contains("8000 Hz"));
    let worst = (100..1500)
        .map(|j| {
            let want = 10_000.0 * (2.0 * std::f64::consts::PI * 500.0 * j as f64 / 16000.0).sin();
            (f64::from(c.samples[j]) - want).abs()
        })
        .fold(0.0, f64::max);
    assert!(worst < 60.0, "resampled tone off by {worst}");
}

#[test]
fn empty_data_missing_chunks_and_bad_fields() {
    assert_eq!(
        err_of("empty.wav", &wav(1, 1, 16_000, 16, &[], None)),
        WavError::Empty
    );
    assert_eq!(
        err_of("partial.wav", &wav(1, 1, 16_000, 16, &[0; 3], None)),
        WavError::PartialFrame { len: 3, frame: 2 }
    );
    assert_eq!(
        err_of("ch0.wav", &wav(1, 0, 16_000, 16, &[0; 4], None)),
        WavError::BadChannels {
            channels: 0,
            block_align: 0
        }
    );
    assert_eq!(
        err_of("rate0.wav", &wav(1, 1, 0, 16, &[0; 4], None)),
        WavError::BadRate { rate: 0 }
    );
    assert_eq!(
        err_of("rate1.wav", &wav(1, 1, 1, 16, &[0; 4], None)),
        WavError::BadRate { rate: 1 }
    );
    // data before fmt
    let good = wav(1, 1, 16_000, 16, &[0; 4], None);
    let mut swapped = good[..12].to_vec();
    swapped.extend_from_slice(&good[36..]);
    swapped.extend_from_slice(&good[12..36]);
    assert_eq!(err_of("order.wav", &swapped), WavError::MissingFormat);
    // fmt and no data
    assert_eq!(err_of("nodata.wav", &good[..36]), WavError::MissingData);
    // a fmt chunk too short
    let mut short = good.clone();
    short[16..20].copy_from_slice(&8u32.to_le_bytes());
    assert!(matches!(
        err_of("short.wav", &short[..28]),
        WavError::FormatTooShort { len: 8 }
    ));
}

#[test]
fn claims_past_the_end_never_become_allocations() {
    // A 2 GB data claim on a tiny file.
    let e = err_of(
        "2g.wav",
        &wav(1, 1, 16_000, 16, &[0; 4], Some(2_000_000_000)),
    );
    assert_eq!(
        e,
        WavError::DataTruncated {
            claimed: 2_000_000_000,
            present: 4
        }
    );
    // Another chunk past the end.
    let mut v = wav(1, 1, 16_000, 16, &[0; 4], None);
    v.truncate(36);
    v.extend_from_slice(b"LIST");
    v.extend_from_slice(&u32::MAX.to_le_bytes());
    v.extend_from_slice(&[0; 10]);
    assert!(matches!(
        err_of("list.wav", &v),
        WavError::ChunkPastEnd {
            chunk: [b'L', b'I', b'S', b'T'],
            claimed: 4_294_967_295,
            ..
        }
    ));
}

/// A ten-hour 16 kHz recording (1.15 GB, a sparse file of silence) is
/// streamed in blocks, never read whole: every frame arrives, one block at
/// a time. Release builds only (a debug build takes minutes on it); the
/// debug run streams one hour.
#[test]
fn a_long_recording_is_streamed_not_read_whole() {
    let hours: u64 = if cfg!(debug_assertions) { 1 } else { 10 };
    let frames = hours * 3600 * 16_000;
    let p = dir().join("long.wav");
    let header = wav(1, 1, 16_000, 16, &[], Some((frames * 2) as u32));
    let f = std::fs::File::create(&p).unwrap();
    use std::io::Write;
    (&f).write_all(&header).unwrap();
    f.set_len(header.len() as u64 + frames * 2).unwrap();
    drop(f);
    let (mut seen, mut largest) = (0u64, 0usize);
    let fmt = wav::stream(&p, 4096, |b| {
        seen += b.len() as u64;
        largest = largest.max(b.len());
    })
    .unwrap();
    assert_eq!(seen, frames);
    assert_eq!(fmt.frames(), frames);
    assert_eq!(largest, 4096);
    let _ = std::fs::remove_file(&p);
}
