//! `mote classify`: an encoder with a classifier head, on text, on feature
//! rows (an image's patches), or on a WAV file through the model's own
//! audio front end — one window, or `--stream` over a long recording as a
//! device hears it (sliding windows, smoothed posteriors, each detection
//! with its time).

use crate::open::{core_err, Arena, Loaded};
use anyhow::{bail, Context, Result};
use mote_core::audio::detect::{Detector, Settings, MAX_CLASSES};
use mote_core::audio::{FrontEnd, Scratch, Stream};
use mote_core::{Input, Model, RunConfig, Session};
use mote_host::tokenizer::Tokenizer;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The .mote model.
    model: PathBuf,
    /// Text, tokenized with the model's own vocabulary (cut to the model's maximum sequence).
    #[arg(long, conflicts_with_all = ["features", "wav"], required_unless_present_any = ["features", "wav"])]
    text: Option<String>,
    /// Feature values (rows × the model's input width), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        conflicts_with = "wav"
    )]
    features: Option<Vec<f32>>,
    /// A WAV file, through the model's audio front end (other rates are
    /// resampled to the model's, channels mixed down; each is said).
    #[arg(long)]
    wav: Option<PathBuf>,
    /// With --wav: slide a window over the whole recording and print each
    /// detection with its time.
    #[arg(long, requires = "wav")]
    stream: bool,
    /// --stream: frames between windows (at the keyword front end's 20 ms
    /// hop, 5 is a window every 100 ms).
    #[arg(long, default_value_t = 5, requires = "stream", value_parser = clap::value_parser!(u32).range(1..=1000))]
    every: u32,
    /// --stream: windows whose posteriors are averaged.
    #[arg(long, default_value_t = Settings::default().smoothing as u32, requires = "stream", value_parser = clap::value_parser!(u32).range(1..=8))]
    smoothing: u32,
    /// --stream: smoothed score a keyword must reach.
    #[arg(long, default_value_t = Settings::default().threshold, requires = "stream", value_parser = crate::args::unit_interval)]
    threshold: f32,
    /// --stream: seconds after a detection in which no other is reported.
    #[arg(long, default_value_t = 1.0, requires = "stream", value_parser = crate::args::non_negative)]
    refractory: f32,
    /// --stream: print as the device app does (`detection: <label> <score
    /// bits> at <ms> ms` lines, `windows: N`, the last window's `logits:`
    /// as 8 hex digits per f32): `cargo xtask parity` compares them.
    #[arg(long, requires = "stream", conflicts_with = "json")]
    bits: bool,
    /// Class names, comma-separated, in label order (default: the model's
    /// labels section).
    #[arg(long, value_delimiter = ',')]
    classes: Option<Vec<String>>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Class names: `--classes`, else the model's labels, else indices.
fn names(a: &Args, m: &Model) -> Vec<String> {
    let n = m.config().n_classes as usize;
    (0..n)
        .map(|i| {
            a.classes
                .as_ref()
                .and_then(|c| c.get(i).cloned())
                .or_else(|| m.labels().get(i).map(str::to_string))
                .unwrap_or_else(|| i.to_string())
        })
        .collect()
}

/// `label`, `score` and `scores` (softmax) of one window's logits, beside
/// the `class` index and raw `logits`.
fn verdict(logits: &[f32], names: &[String]) -> Value {
    let mut p = vec![0.0; logits.len()];
    Detector::softmax(logits, &mut p);
    let best = p
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    let scores: Map<String, Value> = names
        .iter()
        .zip(&p)
        .map(|(n, &s)| (n.clone(), json!(round4(s))))
        .collect();
    json!({
        "label": names.get(best),
        "score": round4(p[best]),
        "scores": scores,
        "class": best,
        "name": names.get(best),
        "logits": logits,
    })
}

fn round4(v: f32) -> f64 {
    (v as f64 * 1e4).round() / 1e4
}

pub fn run(a: Args) -> Result<()> {
    let loaded = Loaded::open(&a.model)?;
    let m = loaded.model()?;
    let cfg = *m.config();
    let no_head = || anyhow::anyhow!("{} has no classifier head", a.model.display());
    let names = names(&a, &m);
    if let Some(wav) = &a.wav {
        if cfg.n_classes == 0 {
            return Err(no_head());
        }
        return classify_wav(&a, &m, &names, wav);
    }
    // Text is tokenized first: a model without a vocabulary says so.
    let ids = match (&a.text, &a.features) {
        (Some(t), None) => {
            let mut ids = Tokenizer::from_model(m.vocab(), &cfg)?.encode(t)?;
            ids.truncate(cfg.max_seq as usize);
            ids
        }
        _ => Vec::new(),
    };
    if cfg.n_classes == 0 {
        return Err(no_head());
    }
    // clap requires one of the inputs; text is ids here.
    let input = match &a.features {
        Some(f) => Input::Features(f),
        None => Input::Ids(&ids),
    };
    let mut arena = Arena::new(
        &m,
        RunConfig {
            max_seq: (input.rows(&cfg) as u32).clamp(1, cfg.max_seq),
        },
    )?;
    let mut session = arena.session(&m)?;
    let logits = match input {
        Input::Features(f) => session.classify_features(f),
        Input::Ids(ids) => session.classify(ids),
    }
    .map_err(core_err)?
    .to_vec();
    print(&a, verdict(&logits, &names));
    Ok(())
}

fn print(a: &Args, v: Value) {
    if a.json {
        println!("{v}");
    } else {
        println!(
            "{} ({:.3}){}",
            v["label"].as_str().unwrap_or("?"),
            v["score"].as_f64().unwrap_or(0.0),
            v.get("time")
                .and_then(Value::as_f64)
                .map(|t| format!(" at {t:.2} s"))
                .unwrap_or_default()
        );
    }
}

/// The samples of a WAV file at the front end's rate (conversions said on
/// standard error).
fn samples(fe: &FrontEnd, wav: &std::path::Path) -> Result<Vec<i16>> {
    let clip = mote_host::wav::read(wav).with_context(|| format!("reading {}", wav.display()))?;
    for c in &clip.conversions {
        eprintln!("{}: {c}", wav.display());
    }
    if fe.sample_rate != mote_host::wav::RATE {
        bail!(
            "the model's front end hears {} Hz; the host reads WAV at {} Hz",
            fe.sample_rate,
            mote_host::wav::RATE
        );
    }
    Ok(clip.samples)
}

fn classify_wav(a: &Args, m: &Model, names: &[String], wav: &std::path::Path) -> Result<()> {
    let fe = m.audio().map_err(|e| {
        anyhow::anyhow!(
            "{}: {} (--wav needs a model trained on audio)",
            a.model.display(),
            e
        )
    })?;
    let pcm = samples(&fe, wav)?;
    let window = match fe.window_frames {
        0 => m.config().max_seq,
        w => w,
    } as usize;
    let mut arena = Arena::new(
        m,
        RunConfig {
            max_seq: window as u32,
        },
    )?;
    let mut session = arena.session(m)?;
    let width = fe.n_mels as usize;
    let mut scratch = Box::new(Scratch::new());
    if a.stream {
        return stream(a, &fe, &mut session, names, &pcm, window);
    }
    // One window: the clip centred in it (shorter), or the window with the
    // strongest keyword (longer; its time is printed).
    let window_samples = (window - 1) * fe.hop as usize + fe.frame_len as usize;
    let mut rows = vec![0.0; fe.frames(pcm.len().max(window_samples)) * width];
    let padded;
    let pcm = if pcm.len() < window_samples {
        let mut p = vec![0i16; window_samples];
        let at = (window_samples - pcm.len()) / 2;
        p[at..at + pcm.len()].copy_from_slice(&pcm);
        padded = p;
        &padded
    } else {
        &pcm
    };
    let frames = fe
        .features(pcm, &mut scratch, &mut rows)
        .map_err(core_err)?;
    let keywords = keyword_mask(names);
    let mut best: Option<(f32, usize, Vec<f32>)> = None;
    for start in (0..=frames - window).step_by(a.every as usize) {
        let mut w = rows[start * width..(start + window) * width].to_vec();
        fe.normalize_window(&mut w);
        let logits = session.classify_features(&w).map_err(core_err)?.to_vec();
        let mut p = vec![0.0; logits.len()];
        Detector::softmax(&logits, &mut p);
        let kw = p
            .iter()
            .enumerate()
            .filter(|(i, _)| keywords & (1 << i) != 0)
            .map(|(_, &v)| v)
            .fold(0.0, f32::max);
        if best.as_ref().is_none_or(|b| kw > b.0) {
            best = Some((kw, start, logits));
        }
    }
    let (_, start, logits) = best.context("no window")?;
    let mut v = verdict(&logits, names);
    if frames > window {
        v["time"] = json!(round4(start as f32 * fe.hop as f32 / fe.sample_rate as f32));
    }
    print(a, v);
    Ok(())
}

/// Classes that are keywords: all but `silence` and `unknown` (and
/// their `_silence_`/`_unknown_` spellings).
fn keyword_mask(names: &[String]) -> u32 {
    names
        .iter()
        .take(MAX_CLASSES)
        .enumerate()
        .filter(|(_, n)| !matches!(n.trim_matches('_'), "silence" | "unknown"))
        .fold(0, |m, (i, _)| m | 1 << i)
}

/// `--stream`: rows as a device computes them (hop by hop), a window every
/// `every` rows, each detection printed with the time its window ended.
fn stream(
    a: &Args,
    fe: &FrontEnd,
    session: &mut Session,
    names: &[String],
    pcm: &[i16],
    window: usize,
) -> Result<()> {
    let width = fe.n_mels as usize;
    let seconds_per_row = fe.hop as f32 / fe.sample_rate as f32;
    let settings = Settings {
        smoothing: a.smoothing as usize,
        threshold: a.threshold,
        refractory: (a.refractory / (seconds_per_row * a.every as f32)).round() as u32,
    };
    let mut detector = Detector::new(names.len(), keyword_mask(names), settings);
    let mut rows: Vec<f32> = Vec::new();
    let mut scratch = Box::new(Scratch::new());
    let mut s = Stream::new(*fe).map_err(core_err)?;
    let mut found = Vec::new();
    let mut windows = 0u32;
    let mut last: Vec<f32> = Vec::new();
    for block in pcm.chunks(fe.hop as usize) {
        let mut err = None;
        s.push::<mote_core::Error>(block, &mut scratch, |t, row| {
            rows.extend_from_slice(row);
            let n = rows.len() / width;
            if n > window {
                rows.drain(..width);
            }
            let due = (t as usize + 1) >= window
                && (t as usize + 1 - window).is_multiple_of(a.every as usize);
            if due {
                windows += 1;
                let mut w = rows.clone();
                fe.normalize_window(&mut w);
                match session.classify_features(&w) {
                    Ok(logits) => {
                        last = logits.to_vec();
                        if let Some(d) = detector.push(logits) {
                            let end = t as f32 * seconds_per_row
                                + fe.frame_len as f32 / fe.sample_rate as f32;
                            let ms = (t as u64 * fe.hop as u64 + fe.frame_len as u64) * 1000
                                / fe.sample_rate as u64;
                            found.push((d, end, ms));
                        }
                    }
                    Err(e) => err = Some(e),
                }
            }
            Ok(())
        })
        .map_err(core_err)?;
        if let Some(e) = err {
            return Err(core_err(e));
        }
    }
    if a.bits {
        for (d, _, ms) in &found {
            println!(
                "detection: {} {:08x} at {ms} ms",
                names[d.class],
                d.score.to_bits()
            );
        }
        println!("windows: {windows}");
        let hex: Vec<String> = last
            .iter()
            .map(|v| format!("{:08x}", v.to_bits()))
            .collect();
        println!("logits: {}", hex.join(" "));
        return Ok(());
    }
    let list: Vec<Value> = found
        .iter()
        .map(|(d, t, _)| {
            json!({"label": names.get(d.class), "score": round4(d.score), "time": round4(*t)})
        })
        .collect();
    if a.json {
        println!(
            "{}",
            json!({"detections": list, "windows": windows, "seconds": round4(pcm.len() as f32 / fe.sample_rate as f32)})
        );
    } else {
        for (d, t, _) in &found {
            println!("{:7.2} s  {} ({:.3})", t, names[d.class], d.score);
        }
        eprintln!(
            "{} detections in {:.1} s ({windows} windows)",
            found.len(),
            pcm.len() as f32 / fe.sample_rate as f32
        );
    }
    Ok(())
}
