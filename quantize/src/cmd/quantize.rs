//! `mote quantize`: a model's weights to int8, int4 or f16, or (with
//! `--calib`) an integer-only int8 model with static activation scales.

use crate::args::{self, Dtype, Kv, Method, Smooth};
use crate::open::Loaded;
use anyhow::{bail, Result};
use mote_host::calibrate::{self, Calibration};
use mote_host::quantize::TensorReport;
use mote_host::ModelFile;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Input: a .mote model, or a checkpoint (a directory, a .safetensors
    /// or .gguf file), imported first.
    input: PathBuf,
    /// Output .mote file (a new path or a regular file; it may be the input).
    #[arg(short, long)]
    output: PathBuf,
    /// Weight type.
    #[arg(long, value_enum, default_value_t = Dtype::Int8)]
    dtype: Dtype,
    /// Attention (KV) cache storage. Default: as the input model.
    #[arg(long, value_enum)]
    kv: Option<Kv>,
    /// Calibration samples (a file or a directory of .txt, .json or .csv
    /// files): writes an integer-only model (static activation scales,
    /// int8 weights with one scale per row; needs --dtype int8 or int8-row).
    #[arg(long)]
    calib: Option<PathBuf>,
    /// How each int8 activation's range is chosen from the calibration run.
    #[arg(long, value_enum, default_value_t = Method::Percentile, requires = "calib")]
    method: Method,
    /// SmoothQuant migration strength for the normed matrix inputs
    /// (0 < alpha ≤ 1), or "off".
    #[arg(long, default_value = "0.5", value_parser = args::smooth, requires = "calib")]
    smooth: Smooth,
    /// Print the per-tensor error report as JSON.
    #[arg(long)]
    json: bool,
}

/// A checkpoint is imported; anything else is read as a `.mote` model, and
/// what is wrong with it is the reader's error (empty, bad magic, …).
fn is_checkpoint(input: &Path) -> bool {
    input.is_dir()
        || matches!(
            input.extension().and_then(|e| e.to_str()),
            Some("gguf" | "safetensors")
        )
}

pub fn run(a: Args) -> Result<()> {
    if a.calib.is_some() && !a.dtype.is_int8() {
        bail!("--calib writes an integer-only int8 model: use --dtype int8");
    }
    mote_host::writer::check_output(&a.output)?;
    // The input is mapped once and read in place; an output onto it is a
    // new file renamed over it at the end.
    let loaded = if is_checkpoint(&a.input) {
        let b = mote_host::import::import(&a.input)?;
        Loaded::from_file(&a.input, ModelFile::from_vec(b.to_bytes()))
    } else {
        Loaded::open(&a.input)?
    };
    let m = loaded.model()?;
    let bar = if a.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(m.tensor_count() as u64)
    };
    let style = |t: &str| {
        indicatif::ProgressStyle::with_template(t)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    };
    bar.set_style(style("quantizing {bar:40} {pos}/{len} tensors {elapsed}"));
    let mut activations = None;
    let (mut b, report) = match &a.calib {
        None => {
            mote_host::quantize::quantize(&m, a.dtype.target(), |i, _| bar.set_position(i as u64))?
        }
        Some(path) => {
            let samples = calibrate::load_samples(&m, path, m.config().max_seq.min(128) as usize)?;
            bar.set_style(style("calibrating {bar:40} {pos}/{len} runs {elapsed}"));
            let c = calibrate::calibrate(
                &m,
                &samples,
                a.method.calibration(),
                a.smooth.alpha(),
                |i, n| {
                    bar.set_length(n as u64);
                    bar.set_position(i as u64);
                },
            )?;
            let out = calibrate::integer_model(&m, &c, |_, _| {})?;
            activations = Some(c);
            out
        }
    };
    if let Some(kv) = a.kv {
        b.config_mut().kv_cache = kv.cache();
    }
    bar.finish_and_clear();
    let bytes = b.write(&a.output)?;
    if a.json {
        let acts = activations.as_ref().map(calibrate::report_json);
        println!(
            "{}",
            serde_json::json!({"output": a.output, "bytes": bytes, "tensors": mote_host::quantize::report_json(&report), "activations": acts})
        );
    } else {
        print_report(activations.as_ref(), &report);
        println!(
            "wrote {} ({bytes} bytes, was {})",
            a.output.display(),
            m.file_len()
        );
    }
    Ok(())
}

fn print_report(activations: Option<&Calibration>, report: &[TensorReport]) {
    if let Some(c) = activations {
        println!(
            "{:<8} {:<10} {:>10} {:>10} {:>12} {:>9}",
            "layer", "point", "max |x|", "clip", "scale", "clipped"
        );
        for r in &c.report {
            let layer = r.layer.map_or("-".to_string(), |l| l.to_string());
            println!(
                "{:<8} {:<10} {:>10.4} {:>10.4} {:>12.4e} {:>8.4}%",
                layer,
                format!("{:?}", r.point),
                r.max,
                r.clip,
                r.scale,
                100.0 * r.clipped
            );
        }
    }
    println!(
        "{:<24} {:>5} {:>12} {:>12} {:>12}",
        "tensor", "dtype", "rel error", "max |err|", "bytes"
    );
    for t in report {
        println!(
            "{:<24} {:>5} {:>12.3e} {:>12.3e} {:>12}",
            t.name, t.dtype, t.rel_error, t.max_abs_error, t.bytes_after
        );
    }
}
