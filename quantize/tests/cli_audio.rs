//! `mote classify --wav` (one window, and `--stream`) on a model with an
//! audio front end and class names, and its doors: a model without a
//! front end, a broken WAV, conversions said.
#![allow(clippy::unwrap_used)]

use mote_core::audio::Variant;
use mote_host::audio::FrontEndSpec;
use mote_tests::{random_model, tiny_encoder_config, work_dir};
use std::path::{Path, PathBuf};
use std::process::Command;

const NAMES: [&str; 12] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "silence",
    "unknown",
];

fn mote(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mote"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A seeded keyword-shaped model: 40-band rows, 49 per window, 12 named classes.
fn kws_model(with_audio: bool, test: &str) -> PathBuf {
    let p = work_dir().join(format!(
        "cli-audio-{test}-{with_audio}-{}.mote",
        std::process::id()
    ));
    let mut cfg = tiny_encoder_config();
    cfg.input_dim = 40;
    cfg.n_classes = 12;
    cfg.max_seq = 49;
    cfg.n_token_types = 0;
    let mut b = random_model(cfg, 7);
    if with_audio {
        b.set_audio(FrontEndSpec::kws(Variant::Float).to_bytes().unwrap());
    }
    b.set_labels(&NAMES).unwrap();
    b.write(&p).unwrap();
    p
}

/// A 16-bit PCM WAV of `channels` × `frames` samples (a chirp).
fn wav(path: &Path, rate: u32, channels: u16, frames: usize) {
    let mut data = Vec::new();
    for i in 0..frames {
        let t = i as f32 / rate as f32;
        let v = ((t * (300.0 + 800.0 * t) * std::f32::consts::TAU).sin() * 9000.0) as i16;
        for _ in 0..channels {
            data.extend(v.to_le_bytes());
        }
    }
    let mut b = b"RIFF".to_vec();
    b.extend((36 + data.len() as u32).to_le_bytes());
    b.extend(b"WAVEfmt ");
    b.extend(16u32.to_le_bytes());
    b.extend(1u16.to_le_bytes());
    b.extend(channels.to_le_bytes());
    b.extend(rate.to_le_bytes());
    b.extend((rate * 2 * channels as u32).to_le_bytes());
    b.extend((2 * channels).to_le_bytes());
    b.extend(16u16.to_le_bytes());
    b.extend(b"data");
    b.extend((data.len() as u32).to_le_bytes());
    b.extend(data);
    std::fs::write(path, b).unwrap();
}

fn tmp(name: &str) -> PathBuf {
    work_dir().join(format!("cli-audio-{}-{name}", std::process::id()))
}

#[test]
fn classify_a_wav_prints_label_score_and_scores() {
    let m = kws_model(true, "one");
    let w = tmp("one.wav");
    wav(&w, 16_000, 1, 12_000);
    let (ok, out, err) = mote(&[
        "classify",
        m.to_str().unwrap(),
        "--wav",
        w.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let label = v["label"].as_str().unwrap();
    assert!(NAMES.contains(&label), "{v}");
    let scores = v["scores"].as_object().unwrap();
    assert_eq!(scores.len(), 12);
    let sum: f64 = scores.values().map(|s| s.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-3, "{sum}");
    assert_eq!(scores[label].as_f64(), v["score"].as_f64());
    assert_eq!(v["logits"].as_array().unwrap().len(), 12);
    assert!(err.is_empty(), "{err}");

    // 8 kHz stereo: converted, and each conversion said.
    let w8 = tmp("stereo8k.wav");
    wav(&w8, 8_000, 2, 8_000);
    let (ok, _, err) = mote(&[
        "classify",
        m.to_str().unwrap(),
        "--wav",
        w8.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("mixed 2 channels down") && err.contains("resampled 8000 Hz"),
        "{err}"
    );

    // Text-free models print the same keys for --features, names from the labels section.
    let feats = vec!["0.5"; 40 * 3].join(",");
    let (ok, out, err) = mote(&[
        "classify",
        m.to_str().unwrap(),
        "--features",
        &feats,
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        NAMES.contains(&v["label"].as_str().unwrap()) && v["scores"].is_object(),
        "{v}"
    );
    for p in [m, w, w8] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn stream_slides_a_window_every_hop() {
    let m = kws_model(true, "stream");
    let w = tmp("five.wav");
    wav(&w, 16_000, 1, 80_000);
    let (ok, out, err) = mote(&[
        "classify",
        m.to_str().unwrap(),
        "--wav",
        w.to_str().unwrap(),
        "--stream",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    // 249 frames of 20 ms; a 49-frame window every 5 frames: 41 windows.
    assert_eq!(v["windows"].as_u64(), Some(41), "{v}");
    assert_eq!(v["seconds"].as_f64(), Some(5.0));
    let mut last = -1.0;
    for d in v["detections"].as_array().unwrap() {
        let t = d["time"].as_f64().unwrap();
        assert!(t > last + 1.0 - 1e-3 && t <= 5.0, "refractory: {v}");
        assert!(!["silence", "unknown"].contains(&d["label"].as_str().unwrap()));
        last = t;
    }
    let _ = std::fs::remove_file(&w);
    let _ = std::fs::remove_file(&m);
}

#[test]
fn audio_doors() {
    let plain = kws_model(false, "doors");
    let m = kws_model(true, "doors");
    let w = tmp("ok.wav");
    wav(&w, 16_000, 1, 16_000);
    let one_line = |args: &[&str], needle: &str| {
        let (ok, _, err) = mote(args);
        assert!(!ok, "{args:?} succeeded");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    };
    one_line(
        &[
            "classify",
            plain.to_str().unwrap(),
            "--wav",
            w.to_str().unwrap(),
        ],
        "no audio section",
    );
    let bytes = std::fs::read(&w).unwrap();
    let cut = tmp("cut.wav");
    std::fs::write(&cut, &bytes[..30]).unwrap();
    one_line(
        &[
            "classify",
            m.to_str().unwrap(),
            "--wav",
            cut.to_str().unwrap(),
        ],
        "past the end of the file",
    );
    let missing = tmp("missing.wav");
    one_line(
        &[
            "classify",
            m.to_str().unwrap(),
            "--wav",
            missing.to_str().unwrap(),
        ],
        "missing.wav",
    );
    let (ok, _, err) = mote(&[
        "classify",
        m.to_str().unwrap(),
        "--wav",
        w.to_str().unwrap(),
        "--stream",
        "--threshold",
        "2",
    ]);
    assert!(!ok && err.contains("from 0 to 1"), "{err}");
    for p in [plain, m, w, cut] {
        let _ = std::fs::remove_file(p);
    }
}
