//! Calibration samples from files: text tokenized with the model's own
//! vocabulary, or token ids and feature rows as JSON or CSV.

use super::Sample;
use anyhow::{bail, Context, Result};
use mote_core::{Architecture, Model};

/// Calibration samples from a file or a directory of files: `.txt` text
/// (one sample per non-empty line, tokenized with the model's vocabulary,
/// longer lines cut into windows of `window` tokens), `.json` (an array
/// of token-id arrays or of feature arrays) or `.csv` (one sample a line).
pub fn load_samples(model: &Model, path: &std::path::Path, window: usize) -> Result<Vec<Sample>> {
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        let mut v: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let cfg = model.config();
    let features = cfg.input_dim > 0;
    let mut out = Vec::new();
    for f in &files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        match f.extension().and_then(|e| e.to_str()) {
            Some("txt") => {
                if features {
                    bail!(
                        "{}: this model takes feature rows; give .json or .csv",
                        f.display()
                    );
                }
                let tok = crate::tokenizer::Tokenizer::from_model(model.vocab(), cfg)?;
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let ids = tok.encode(line)?;
                    for w in ids.chunks(window.max(1)) {
                        if w.len() > 1 || cfg.arch == Architecture::Encoder {
                            out.push(Sample::Ids(w.to_vec()));
                        }
                    }
                }
            }
            Some("json") => {
                let v: Vec<Vec<f64>> = serde_json::from_str(&text).with_context(|| {
                    format!("{}: expected an array of number arrays", f.display())
                })?;
                for s in v {
                    out.push(sample_of(&s, features, f)?);
                }
            }
            Some("csv") => {
                for (i, line) in text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                {
                    let s: Vec<f64> = line
                        .split(',')
                        .map(|v| v.trim().parse::<f64>())
                        .collect::<std::result::Result<_, _>>()
                        .with_context(|| format!("{} line {}: not numbers", f.display(), i + 1))?;
                    out.push(sample_of(&s, features, f)?);
                }
            }
            _ => bail!("{}: calibration files are .txt, .json or .csv", f.display()),
        }
    }
    if out.is_empty() {
        bail!("{}: no calibration samples", path.display());
    }
    Ok(out)
}

fn sample_of(s: &[f64], features: bool, f: &std::path::Path) -> Result<Sample> {
    if features {
        return Ok(Sample::Features(s.iter().map(|&v| v as f32).collect()));
    }
    s.iter()
        .map(|&v| {
            if v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
                Ok(v as u32)
            } else {
                bail!("{}: token id {v} is not a whole number", f.display())
            }
        })
        .collect::<Result<Vec<u32>>>()
        .map(Sample::Ids)
}
