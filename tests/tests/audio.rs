//! The audio front end against librosa, streaming against whole clips, and
//! every malformed field of the audio section.
//!
//! Golden files: `tests/golden/audio/beckett_{kws,alt}.{f32,json}`, made by
//! `python3 tools/audio_golden.py BECKETT_WAV tests/golden/audio` with
//! librosa 0.11.0 / numpy 2.4.6 (its STFT and `filters.mel`, in float64)
//! from three seconds of `beckett.wav` (useful-moonshine-onnx==20251121,
//! fetched and checked by sha256 here). The JSON beside each names its
//! parameters; [`spec`] builds the same front end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mote_core::audio::{field, FrontEnd, Scratch, Stream, Variant};
use mote_core::Error;
use mote_host::audio::{FrontEndSpec, MelScale, Window};
use std::path::PathBuf;

/// Worst absolute error allowed against librosa, in log units (natural
/// log for `kws`, log10 × 0.5 for `alt`), f32 variant (measured: 9.5e-6 on
/// `kws`, 8.6e-6 on `alt`).
const TOL_FLOAT: f32 = 1e-4;
/// The same for the fixed-point variant (measured: 1.4e-3 worst, 4.6e-5
/// mean on `kws`; 6.0e-4 and 2.1e-5 on `alt`).
const TOL_FIXED: f32 = 3e-3;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/audio")
}

/// The golden's parameters as a spec.
fn spec(name: &str, variant: Variant) -> (FrontEndSpec, serde_json::Value) {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(golden_dir().join(format!("beckett_{name}.json"))).unwrap(),
    )
    .unwrap();
    let u = |k: &str| meta[k].as_u64().unwrap() as u32;
    let f = |k: &str| meta[k].as_f64().unwrap();
    let spec = FrontEndSpec {
        variant,
        sample_rate: 16_000,
        frame_len: u("frame_len"),
        hop: u("hop"),
        n_fft: u("n_fft"),
        n_mels: u("n_mels"),
        fmin: f("fmin"),
        fmax: f("fmax"),
        mel_scale: if meta["htk"].as_bool().unwrap() {
            MelScale::Htk
        } else {
            MelScale::Slaney
        },
        slaney_norm: meta["norm"].as_str() == Some("slaney"),
        window: match meta["window"].as_str().unwrap() {
            "hann" => Window::Hann,
            "hamming" => Window::Hamming,
            w => panic!("window {w}"),
        },
        log10: meta["log10"].as_bool().unwrap(),
        floor: f("floor") as f32,
        dynamic_range: 0.0,
        offset: f("offset") as f32,
        scale: f("scale") as f32,
        window_frames: 0,
        window_norm: mote_core::audio::WindowNorm::None,
    };
    (spec, meta)
}

/// The golden's samples of beckett.wav.
fn samples(meta: &serde_json::Value) -> Vec<i16> {
    let wav = mote_host::fetch::ensure(&mote_host::fetch::BECKETT).expect("fetching beckett.wav");
    let clip = mote_host::wav::read(&wav).unwrap();
    assert!(clip.conversions.is_empty(), "{:?}", clip.conversions);
    let start = meta["start_sample"].as_u64().unwrap() as usize;
    let n = meta["samples"].as_u64().unwrap() as usize;
    clip.samples[start..start + n].to_vec()
}

fn golden(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(golden_dir().join(format!("beckett_{name}.f32"))).unwrap();
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Features of the golden's clip for `variant`, and the golden values.
fn compute(name: &str, variant: Variant) -> (Vec<f32>, Vec<f32>) {
    let (spec, meta) = spec(name, variant);
    let bytes = spec.to_bytes().unwrap();
    let fe = FrontEnd::parse(&bytes).unwrap();
    let pcm = samples(&meta);
    let frames = meta["frames"].as_u64().unwrap() as usize;
    assert_eq!(fe.frames(pcm.len()), frames);
    let mut out = vec![0.0; frames * fe.n_mels as usize];
    let mut scratch = Box::new(Scratch::new());
    assert_eq!(fe.features(&pcm, &mut scratch, &mut out).unwrap(), frames);
    (out, golden(name))
}

fn worst(ours: &[f32], reference: &[f32]) -> (f32, usize) {
    assert_eq!(ours.len(), reference.len());
    ours.iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold(
            (0.0, 0),
            |(w, wi), (i, e)| if e > w { (e, i) } else { (w, wi) },
        )
}

#[test]
fn float_matches_librosa() {
    for name in ["kws", "alt"] {
        let (ours, reference) = compute(name, Variant::Float);
        let (err, at) = worst(&ours, &reference);
        eprintln!("{name} f32: worst |error| {err:.2e} at value {at}");
        assert!(
            err <= TOL_FLOAT,
            "{name}: {err} at {at}: {} vs {}",
            ours[at],
            reference[at]
        );
    }
}

#[test]
fn fixed_point_matches_librosa() {
    for name in ["kws", "alt"] {
        let (ours, reference) = compute(name, Variant::Fixed);
        let (err, at) = worst(&ours, &reference);
        let mean = ours
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / ours.len() as f32;
        eprintln!("{name} fixed: worst |error| {err:.2e} at value {at}, mean {mean:.2e}");
        assert!(
            err <= TOL_FIXED,
            "{name}: {err} at {at}: {} vs {}",
            ours[at],
            reference[at]
        );
    }
}

/// A stream fed in uneven pieces gives the whole clip's rows, bit for bit.
#[test]
fn streaming_gives_the_clips_bits() {
    for variant in [Variant::Float, Variant::Fixed] {
        let (spec, meta) = spec("kws", variant);
        let bytes = spec.to_bytes().unwrap();
        let fe = FrontEnd::parse(&bytes).unwrap();
        let pcm = samples(&meta);
        let mut scratch = Box::new(Scratch::new());
        let mut clip = vec![0.0; fe.frames(pcm.len()) * fe.n_mels as usize];
        fe.features(&pcm, &mut scratch, &mut clip).unwrap();
        let mut stream = Stream::new(fe).unwrap();
        let mut rows: Vec<u32> = Vec::new();
        let mut at = 0;
        for piece in [1usize, 7, 333, 160, 4000, 2, 999].iter().cycle() {
            let end = (at + piece).min(pcm.len());
            stream
                .push::<Error>(&pcm[at..end], &mut scratch, |t, row| {
                    assert_eq!(t as usize * row.len(), rows.len());
                    rows.extend(row.iter().map(|v| v.to_bits()));
                    Ok(())
                })
                .unwrap();
            at = end;
            if at == pcm.len() {
                break;
            }
        }
        let clip: Vec<u32> = clip.iter().map(|v| v.to_bits()).collect();
        assert_eq!(rows, clip, "{variant:?}");
        assert_eq!(stream.rows() as usize, fe.frames(pcm.len()));
    }
}

/// Silence (all zeros) is the floor, exactly, in both variants.
#[test]
fn silence_is_the_floor() {
    for variant in [Variant::Float, Variant::Fixed] {
        let bytes = FrontEndSpec::kws(variant).to_bytes().unwrap();
        let fe = FrontEnd::parse(&bytes).unwrap();
        let mut scratch = Scratch::new();
        let row = fe.frame(&[0; 480], &[], &mut scratch).unwrap();
        let floor = 1e-6f32.ln();
        for &v in row {
            assert!((v - floor).abs() < 1e-4, "{variant:?}: {v} vs {floor}");
        }
    }
}

/// Full-scale square waves (the largest values the FFT sees) stay finite
/// and ordered: no overflow in the fixed-point path.
#[test]
fn full_scale_does_not_overflow() {
    let pcm: Vec<i16> = (0..480)
        .map(|i| if (i / 8) % 2 == 0 { i16::MAX } else { i16::MIN })
        .collect();
    let dc = vec![i16::MIN; 480];
    for variant in [Variant::Float, Variant::Fixed] {
        let bytes = FrontEndSpec::kws(variant).to_bytes().unwrap();
        let fe = FrontEnd::parse(&bytes).unwrap();
        let mut scratch = Scratch::new();
        for x in [&pcm, &dc] {
            let f: Vec<f32> = fe.frame(x, &[], &mut scratch).unwrap().to_vec();
            let mut fl = Scratch::new();
            let fbytes = FrontEndSpec::kws(Variant::Float).to_bytes().unwrap();
            let reference = FrontEnd::parse(&fbytes).unwrap();
            let r = reference.frame(x, &[], &mut fl).unwrap();
            for (a, b) in f.iter().zip(r) {
                assert!(
                    a.is_finite() && (a - b).abs() < 0.05,
                    "{variant:?}: {a} vs {b}"
                );
            }
        }
    }
}

fn kws_bytes(variant: Variant) -> Vec<u8> {
    FrontEndSpec::kws(variant).to_bytes().unwrap()
}

fn set(bytes: &mut [u8], f: std::ops::Range<usize>, v: u32) {
    bytes[f].copy_from_slice(&v.to_le_bytes());
}

fn refused(bytes: &[u8]) -> (&'static str, u32) {
    match FrontEnd::parse(bytes) {
        Err(Error::BadAudio { field, value }) => (field, value),
        other => panic!("expected BadAudio, got {other:?}"),
    }
}

/// Each header field out of range is refused, naming the field.
#[test]
fn every_header_field_has_its_error() {
    let nan = f32::NAN.to_bits();
    let cases: &[(std::ops::Range<usize>, u32, &str)] = &[
        (field::VARIANT, 2, "variant"),
        (field::SAMPLE_RATE, 0, "sample_rate"),
        (field::SAMPLE_RATE, 1_000_000, "sample_rate"),
        (field::N_FFT, 400, "n_fft"),
        (field::N_FFT, 1024, "n_fft"),
        (field::N_FFT, 8, "n_fft"),
        (field::FRAME_LEN, 1, "frame_len"),
        (field::FRAME_LEN, 513, "frame_len"),
        (field::HOP, 0, "hop"),
        (field::HOP, 481, "hop"),
        (field::N_MELS, 0, "n_mels"),
        (field::N_MELS, 129, "n_mels"),
        (field::POWER, 1, "power"),
        (field::LOG, 2, "log"),
        (field::FLOOR, 0, "floor"),
        (field::FLOOR, nan, "floor"),
        (field::FLOOR, (-1.0f32).to_bits(), "floor"),
        (field::DYNAMIC_RANGE, (-1.0f32).to_bits(), "dynamic_range"),
        (
            field::DYNAMIC_RANGE,
            f32::INFINITY.to_bits(),
            "dynamic_range",
        ),
        (field::OFFSET, nan, "offset"),
        (field::SCALE, 0, "scale"),
        (field::SCALE, (-2.0f32).to_bits(), "scale"),
        (field::WINDOW_FRAMES, u32::MAX, "window_frames"),
        (field::WINDOW_NORM, 2, "window_norm"),
        (56..60, 1, "reserved"),
        (60..64, 7, "reserved"),
    ];
    for variant in [Variant::Float, Variant::Fixed] {
        for (f, v, name) in cases {
            let mut b = kws_bytes(variant);
            set(&mut b, f.clone(), *v);
            assert_eq!(refused(&b).0, *name, "{variant:?} {f:?} = {v}");
        }
    }
}

/// The tables: a section too short or too long, an empty band, a band
/// past the spectrum, bad window values and weights, a fixed band's gain.
#[test]
fn every_table_has_its_error() {
    for variant in [Variant::Float, Variant::Fixed] {
        let good = kws_bytes(variant);
        assert_eq!(refused(&good[..40]).0, "section length");
        assert_eq!(refused(&good[..good.len() - 4]).0, "section length");
        let mut long = good.clone();
        long.extend([0; 4]);
        assert_eq!(refused(&long).0, "section length");
        // The band index follows the window (480 values).
        let value_len: usize = if variant == Variant::Float { 4 } else { 2 };
        let index = 64 + (480 * value_len).div_ceil(4) * 4;
        let mut b = good.clone();
        b[index + 2..index + 4].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(refused(&b), ("band bin count", 0));
        let mut b = good.clone();
        b[index + 4 * 3..index + 4 * 3 + 2].copy_from_slice(&256u16.to_le_bytes());
        assert_eq!(refused(&b), ("band past the spectrum", 3));
        let mut b = good.clone();
        if variant == Variant::Float {
            b[64 + 4 * 5..64 + 4 * 6].copy_from_slice(&f32::NAN.to_le_bytes());
        } else {
            b[64 + 2 * 5..64 + 2 * 6].copy_from_slice(&40000u16.to_le_bytes());
        }
        assert_eq!(refused(&b), ("window value", 5));
        let weights = index + 4 * 40;
        let mut b = good.clone();
        if variant == Variant::Float {
            b[weights + 4..weights + 8].copy_from_slice(&(-0.5f32).to_le_bytes());
        } else {
            b[weights + 2..weights + 4].copy_from_slice(&40000u16.to_le_bytes());
        }
        assert_eq!(refused(&b), ("band weight", 1));
        if variant == Variant::Fixed {
            let mut b = good.clone();
            let gains = b.len() - 4 * 40;
            b[gains + 8..gains + 12].copy_from_slice(&(100i32 << 16).to_le_bytes());
            assert_eq!(refused(&b), ("band gain", 2));
        }
    }
}

/// Calls with the wrong shapes get their own errors, and a clip-normalised
/// front end refuses to stream.
#[test]
fn calls_with_wrong_shapes() {
    let bytes = kws_bytes(Variant::Fixed);
    let fe = FrontEnd::parse(&bytes).unwrap();
    let mut s = Scratch::new();
    assert_eq!(
        fe.frame(&[0; 100], &[0; 100], &mut s).unwrap_err(),
        Error::AudioFrame {
            expected: 480,
            got: 200
        }
    );
    let mut out = [0.0; 10];
    assert_eq!(
        fe.features(&[0; 479], &mut s, &mut out).unwrap_err(),
        Error::EmptyFeatures
    );
    assert_eq!(
        fe.features(&[0; 1120], &mut s, &mut out).unwrap_err(),
        Error::AudioOutput {
            needed: 120,
            got: 10
        }
    );
    let spec = FrontEndSpec {
        dynamic_range: 8.0,
        ..FrontEndSpec::kws(Variant::Float)
    };
    let bytes = spec.to_bytes().unwrap();
    let fe = FrontEnd::parse(&bytes).unwrap();
    assert!(matches!(Stream::new(fe), Err(Error::AudioStreaming)));
}

/// The clip-wide clamp (Whisper's `max − 8`): no value ends below it.
#[test]
fn dynamic_range_clamps_the_clip() {
    let spec = FrontEndSpec {
        dynamic_range: 2.0,
        scale: 0.5,
        ..FrontEndSpec::kws(Variant::Float)
    };
    let bytes = spec.to_bytes().unwrap();
    let fe = FrontEnd::parse(&bytes).unwrap();
    let pcm: Vec<i16> = (0..4000)
        .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
        .collect();
    let mut out = vec![0.0; fe.frames(pcm.len()) * 40];
    fe.features(&pcm, &mut Scratch::new(), &mut out).unwrap();
    let max = out.iter().copied().fold(f32::MIN, f32::max);
    let min = out.iter().copied().fold(f32::MAX, f32::min);
    assert_eq!(min, max - 2.0 * 0.5);
}

/// A model carries its front end: the section is optional-flagged, read at
/// load, and its bands must be the model's feature rows.
#[test]
fn a_model_carries_its_front_end() {
    use mote_core::{Model, SectionKind};
    use mote_tests::{random_model, tiny_encoder_config};
    let mut cfg = tiny_encoder_config();
    cfg.input_dim = 40;
    cfg.n_classes = 12;
    let mut b = random_model(cfg, 3);
    let plain = aligned(&b.to_bytes());
    let m = Model::from_bytes(plain.bytes()).unwrap();
    assert_eq!(m.audio().unwrap_err(), Error::NoAudio);

    b.set_audio(kws_bytes(Variant::Fixed));
    let bytes = aligned(&b.to_bytes());
    let m = Model::from_bytes(bytes.bytes()).unwrap();
    let fe = m.audio().unwrap();
    assert_eq!(
        (fe.variant, fe.n_mels, fe.window_frames),
        (Variant::Fixed, 40, 49)
    );
    let entry = (0..6)
        .map(|i| mote_core::format::section(bytes.bytes(), i).unwrap())
        .find(|s| s.kind == SectionKind::Audio as u32)
        .unwrap();
    assert!(entry.optional());

    // 40 bands for a model that takes rows of 16.
    let mut cfg = tiny_encoder_config();
    cfg.input_dim = 16;
    let mut b = random_model(cfg, 3);
    b.set_audio(kws_bytes(Variant::Float));
    let e = Model::from_bytes(aligned(&b.to_bytes()).bytes()).unwrap_err();
    assert!(matches!(e, Error::BadAudio { value: 40, .. }), "{e:?}");
}

fn aligned(bytes: &[u8]) -> mote_host::ModelFile {
    mote_host::ModelFile::from_vec(bytes.to_vec())
}
