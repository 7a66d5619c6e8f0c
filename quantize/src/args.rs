//! The flags' value types. Every enum-like flag is a [`clap::ValueEnum`]
//! spelled as scripts (xtask, docs/TASKS.md) pass it today, so clap lists
//! the choices in `--help` and refuses anything else; every number is
//! checked as it is parsed, so a command never sees an out-of-range value.

use clap::ValueEnum;
use mote_core::KvCache;
use mote_host::calibrate;
use mote_host::quantize::Target;
use mote_host::train::data;

/// `quantize --dtype`: the weight type written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dtype {
    /// int8, one f32 scale per row and 32-column block.
    #[value(alias = "i8")]
    Int8,
    /// int8, one f32 scale per row.
    #[value(name = "int8-row")]
    Int8Row,
    /// int4 in [-8, 7], one scale and one offset per row and 32-column block.
    #[value(alias = "i4")]
    Int4,
    /// int4 in [-8, 7], one scale per row and 32-column block, no offset.
    #[value(name = "int4-sym")]
    Int4Sym,
    /// IEEE half, f32 accumulation.
    F16,
}

impl Dtype {
    /// The quantizer's target.
    pub fn target(self) -> Target {
        match self {
            Dtype::Int8 => Target::Int8,
            Dtype::Int8Row => Target::Int8Row,
            Dtype::Int4 => Target::Int4,
            Dtype::Int4Sym => Target::Int4Sym,
            Dtype::F16 => Target::F16,
        }
    }

    /// True for the int8 types an integer-only (`--calib`) model can use.
    pub fn is_int8(self) -> bool {
        matches!(self, Dtype::Int8 | Dtype::Int8Row)
    }
}

/// `quantize --kv`: the attention cache's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kv {
    /// f32 keys and values.
    F32,
    /// int8 keys and values, one scale per row and head (a quarter of the bytes).
    Int8,
}

impl Kv {
    /// The config's value.
    pub fn cache(self) -> KvCache {
        match self {
            Kv::F32 => KvCache::F32,
            Kv::Int8 => KvCache::I8,
        }
    }

    /// How `--kv` and `inspect` name a model's cache storage.
    pub fn name_of(kv: KvCache) -> &'static str {
        match kv {
            KvCache::F32 => "f32",
            KvCache::I8 => "int8",
        }
    }
}

/// `quantize --method`: how an int8 activation's clip value is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// The largest magnitude seen.
    Minmax,
    /// The 99th percentile of magnitudes; values beyond it stay exact (outlier channels).
    Percentile,
    /// The least expected squared error.
    Mse,
}

impl Method {
    /// The calibrator's method.
    pub fn calibration(self) -> calibrate::Method {
        match self {
            Method::Minmax => calibrate::Method::MinMax,
            Method::Percentile => calibrate::Method::Percentile,
            Method::Mse => calibrate::Method::Mse,
        }
    }
}

/// `quantize --smooth`: SmoothQuant's migration strength, or off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Smooth {
    /// No smoothing.
    Off,
    /// Strength alpha in (0, 1].
    Alpha(f32),
}

impl Smooth {
    /// The calibrator's parameter.
    pub fn alpha(self) -> Option<f32> {
        match self {
            Smooth::Off => None,
            Smooth::Alpha(a) => Some(a),
        }
    }
}

/// Parses `--smooth`: `off` or a number in (0, 1].
pub fn smooth(s: &str) -> Result<Smooth, String> {
    if s == "off" {
        return Ok(Smooth::Off);
    }
    match s.parse::<f32>() {
        Ok(a) if a > 0.0 && a <= 1.0 => Ok(Smooth::Alpha(a)),
        _ => Err("expected a number in (0, 1] or off".into()),
    }
}

/// `eval --split`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Split {
    /// The held-out test split.
    Test,
    /// The validation split.
    Validation,
    /// The training split.
    Train,
}

impl Split {
    /// The data reader's split.
    pub fn data(self) -> data::Split {
        match self {
            Split::Test => data::Split::Test,
            Split::Validation => data::Split::Validation,
            Split::Train => data::Split::Train,
        }
    }
}

/// `fetch`: a pinned package of `mote_host::fetch::PACKAGES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Package {
    /// all-MiniLM-L6-v2, a BERT encoder (safetensors).
    Minilm,
    /// SmolLM2-135M-Instruct, a Llama decoder (GGUF).
    Smollm2,
    /// BBC News articles in 5 topics.
    BbcNews,
    /// scikit-learn's 8×8 digits.
    Digits,
    /// Jane Austen's novels.
    Austen,
    /// beckett.wav, ten seconds of speech (16 kHz).
    Beckett,
}

impl Package {
    /// The registry's key of this package.
    pub fn key(self) -> &'static str {
        match self {
            Package::Minilm => "minilm",
            Package::Smollm2 => "smollm2",
            Package::BbcNews => "bbc-news",
            Package::Digits => "digits",
            Package::Austen => "austen",
            Package::Beckett => "beckett",
        }
    }
}

/// Parses `--temperature`: a finite number above 0. NaN, infinities, 0 and
/// negative values are refused (they used to decode greedily, or sample
/// uniformly for `inf`, without a word).
pub fn temperature(s: &str) -> Result<f32, String> {
    let t: f32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !t.is_finite() || t <= 0.0 {
        return Err(format!(
            "{s}: expected a finite number above 0 (for greedy decoding, leave it out or pass --greedy)"
        ));
    }
    Ok(t)
}

/// Parses a score threshold: a number in `[0, 1]` (`--threshold`).
pub fn unit_interval(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(t) if (0.0..=1.0).contains(&t) => Ok(t),
        _ => Err(format!("{s:?}: expected a number from 0 to 1")),
    }
}

/// Parses a finite number of at least 0 (`--refractory` seconds).
pub fn non_negative(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err(format!("{s:?}: expected a finite number of at least 0")),
    }
}

/// Parses a count that must be at least 1 (`--threads`).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?}: expected a whole number of at least 1")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The spellings xtask and the docs pass stay accepted.
    #[test]
    fn scripts_spellings_parse() {
        for (s, d) in [
            ("int8", Dtype::Int8),
            ("i8", Dtype::Int8),
            ("int8-row", Dtype::Int8Row),
            ("int4", Dtype::Int4),
            ("i4", Dtype::Int4),
            ("int4-sym", Dtype::Int4Sym),
            ("f16", Dtype::F16),
        ] {
            assert_eq!(Dtype::from_str(s, false).unwrap(), d, "{s}");
        }
        assert_eq!(Kv::from_str("int8", false).unwrap(), Kv::Int8);
        assert_eq!(Kv::from_str("f32", false).unwrap(), Kv::F32);
        assert_eq!(
            Split::from_str("validation", false).unwrap(),
            Split::Validation
        );
        assert_eq!(Method::from_str("mse", false).unwrap(), Method::Mse);
        assert_eq!(smooth("off").unwrap(), Smooth::Off);
        assert_eq!(smooth("1").unwrap(), Smooth::Alpha(1.0));
        for bad in ["0", "1.5", "-0.5", "nan", "x"] {
            assert!(smooth(bad).is_err(), "{bad}");
        }
    }

    /// Every package the host pins has exactly one `fetch` name, its key.
    #[test]
    fn fetch_names_are_the_hosts_keys() {
        let ours: Vec<&str> = Package::value_variants().iter().map(|p| p.key()).collect();
        let theirs: Vec<&str> = mote_host::fetch::PACKAGES.iter().map(|p| p.key).collect();
        assert_eq!(ours, theirs);
        for p in Package::value_variants() {
            let name = p.to_possible_value().unwrap();
            assert_eq!(name.get_name(), p.key());
        }
    }

    #[test]
    fn sampling_parameters_are_checked() {
        assert_eq!(temperature("0.6").unwrap(), 0.6);
        for bad in ["nan", "NaN", "inf", "-inf", "-1", "0", "-0", "warm"] {
            assert!(temperature(bad).is_err(), "{bad}");
        }
        assert_eq!(at_least_one("2").unwrap(), 2);
        assert!(at_least_one("0").is_err());
    }
}
