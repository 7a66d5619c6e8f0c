//! `mote-edge MODEL.mote INPUT [BACKEND]`: loads a model from a file, runs it
//! once on INPUT — comma-separated token ids, or `features:` and
//! comma-separated feature values — (a classifier's logits, an encoder's
//! pooled embedding, or a decoder's logits after the last id) and prints
//! `logits:`/`embedding:` with each f32's bits as 8 hex digits, exactly as
//! `mote run --bits` and the MCU firmware do. BACKEND pins the integer
//! kernels (`scalar`, `neon`, `neon-dot`).
//!
//! `mote-edge --check-kernels` runs the kernel self-check the device app
//! runs (`mote_core::selfcheck`: every integer backend this CPU runs, and
//! the NEON f16 dot product, against the scalar definition on seeded odd
//! shapes) and prints how many shape/backend pairs gave the same bits; exit
//! 1 on any difference.
#![deny(unsafe_code)]

use mote_core::quant::Backend;
use mote_core::{Input, Model, RunConfig, Session};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--check-kernels") {
        return check_kernels();
    }
    let (path, ids) = match (args.get(1), args.get(2)) {
        (Some(p), Some(i)) => (p, i),
        _ => return Err("usage: mote-edge MODEL.mote INPUT [BACKEND]".into()),
    };
    let backend = match args.get(3) {
        Some(name) => {
            let b = Backend::from_name(name).ok_or(format!("unknown backend {name:?}"))?;
            if !b.available() {
                return Err(format!("backend {name} does not run here"));
            }
            b
        }
        None => Backend::best(),
    };
    let feats: Option<Vec<f32>> = ids
        .strip_prefix("features:")
        .map(|f| {
            f.split(',')
                .map(|s| s.trim().parse().map_err(|_| format!("bad feature value {s:?}")))
                .collect::<Result<_, _>>()
        })
        .transpose()?;
    let ids: Vec<u32> = match feats {
        Some(_) => Vec::new(),
        None => ids
            .split(',')
            .map(|s| s.trim().parse().map_err(|_| format!("bad token id {s:?}")))
            .collect::<Result<_, _>>()?,
    };
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    // Model::from_bytes needs 16-byte alignment: copy into u128 storage.
    let mut store = vec![0u128; bytes.len().div_ceil(16)];
    let view: &mut [u8] = bytemuck::cast_slice_mut(&mut store);
    view[..bytes.len()].copy_from_slice(&bytes);
    let model = Model::from_bytes(&view[..bytes.len()]).map_err(|e| format!("{path}: {e}"))?;
    let input = match &feats {
        Some(f) => Input::Features(f),
        None => Input::Ids(&ids),
    };
    let run = RunConfig { max_seq: input.rows(model.config()).max(1) as u32 };
    let need = model.arena_bytes(&run).map_err(|e| e.to_string())?;
    let mut arena = vec![0u8; need + 15];
    let mut s = Session::new(&model, &mut arena, run).map_err(|e| e.to_string())?;
    s.set_backend(backend).map_err(|e| e.to_string())?;
    let out = s.run(input).map_err(|e| e.to_string())?;
    let label = out.label();
    let hex: Vec<String> = out.values().iter().map(|v| format!("{:08x}", v.to_bits())).collect();
    Ok(format!("{label}: {}", hex.join(" ")))
}

/// `mote_core::selfcheck`: every backend this CPU runs against the scalar
/// definition, bit for bit (the check the device app runs at start).
fn check_kernels() -> Result<String, String> {
    let mut ws = Box::new(mote_core::selfcheck::Workspace::new());
    mote_core::selfcheck::check_kernels(&mut ws).map(|report| report.to_string()).map_err(|e| e.to_string())
}
