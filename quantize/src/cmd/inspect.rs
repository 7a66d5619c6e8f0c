//! `mote inspect`: a model's architecture, tensors, sizes and arena needs.

use crate::args::Kv;
use crate::open::{arch_name, core_err, Loaded};
use anyhow::Result;
use mote_core::RunConfig;
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The .mote model.
    model: PathBuf,
    /// Sequence length to plan the arena for (default: min(model max, 128)).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    seq: Option<u32>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let loaded = Loaded::open(&a.model)?;
    let m = loaded.model()?;
    let c = *m.config();
    let seq = a.seq.unwrap_or(c.max_seq.min(128));
    let arena = m
        .arena_bytes(&RunConfig { max_seq: seq })
        .map_err(core_err)?;
    let v = m.vocab();
    let labels: Vec<&str> = (0..m.labels().len())
        .filter_map(|i| m.labels().get(i))
        .collect();
    let audio = m.audio().ok().map(|fe| {
        json!({
            "variant": format!("{:?}", fe.variant).to_lowercase(), "sample_rate": fe.sample_rate,
            "frame_len": fe.frame_len, "hop": fe.hop, "n_fft": fe.n_fft, "n_mels": fe.n_mels,
            "log": format!("{:?}", fe.log), "floor": fe.floor, "dynamic_range": fe.dynamic_range,
            "offset": fe.offset, "scale": fe.scale, "window_frames": fe.window_frames,
        })
    });
    if a.json {
        let tensors: Vec<_> = (0..m.tensor_count())
            .filter_map(|i| m.tensor_at(i))
            .map(|t| json!({"name": t.name.as_str(), "dtype": t.dtype.name(), "shape": &t.dims[..t.rank as usize], "bytes": t.byte_len}))
            .collect();
        let report = json!({
            "file_bytes": m.file_len(), "payload_bytes": m.payload_len(),
            "architecture": arch_name(c.arch), "d_model": c.d_model, "n_layers": c.n_layers,
            "n_heads": c.n_heads, "n_kv_heads": c.n_kv_heads, "head_dim": c.head_dim, "d_ff": c.d_ff,
            "vocab_size": c.vocab_size, "max_seq": c.max_seq, "n_classes": c.n_classes, "input_dim": c.input_dim,
            "kv_cache": Kv::name_of(c.kv_cache), "integer": c.integer, "norm": format!("{:?}", c.norm),
            "pre_norm": c.pre_norm, "activation": format!("{:?}", c.activation),
            "positions": format!("{:?}", c.positions), "parameters": c.parameter_count(),
            "tokenizer": format!("{:?}", v.kind), "vocab_tokens": v.len(), "merges": v.merge_count(),
            "chat_template": !v.chat_template().is_empty(),
            "arena": {"seq": seq, "bytes": arena}, "tensors": tensors,
            "labels": labels, "audio": audio,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{}: {} bytes, {} {} ({} parameters)",
        a.model.display(),
        m.file_len(),
        arch_name(c.arch),
        format!("{:?}", c.positions).to_lowercase(),
        c.parameter_count()
    );
    println!(
        "  d_model {} · layers {} · heads {}/{} (q/kv) × {} · d_ff {} · vocab {} · max_seq {}",
        c.d_model, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff, c.vocab_size, c.max_seq
    );
    if c.n_classes > 0 || c.input_dim > 0 {
        println!(
            "  classifier head: {} classes · input: {}",
            c.n_classes,
            if c.input_dim > 0 {
                format!("feature rows of {}", c.input_dim)
            } else {
                "token ids".into()
            }
        );
    }
    println!(
        "  norm {:?} ({}) · activation {:?} · tied embeddings {} · {} attention cache",
        c.norm,
        if c.pre_norm { "pre" } else { "post" },
        c.activation,
        c.tied_embeddings,
        Kv::name_of(c.kv_cache)
    );
    if c.integer {
        println!(
            "  integer-only: static activation scales, integer norms, softmax and activations"
        );
    }
    println!(
        "  tokenizer {:?}: {} tokens, {} merges, chat template {}",
        v.kind,
        v.len(),
        v.merge_count(),
        !v.chat_template().is_empty()
    );
    if !labels.is_empty() {
        println!("  classes: {}", labels.join(", "));
    }
    if let Ok(fe) = m.audio() {
        println!(
            "  audio front end ({:?}): {} Hz, frames of {} every {} samples, {}-point FFT, {} mel bands, {:?} log; {} frames per window",
            fe.variant, fe.sample_rate, fe.frame_len, fe.hop, fe.n_fft, fe.n_mels, fe.log, fe.window_frames
        );
    }
    println!("  arena for seq {seq}: {arena} bytes");
    println!("  {} tensors:", m.tensor_count());
    for t in (0..m.tensor_count()).filter_map(|i| m.tensor_at(i)) {
        println!(
            "    {:<24} {:>4} {:?} {} bytes",
            t.name.as_str(),
            t.dtype.name(),
            &t.dims[..t.rank as usize],
            t.byte_len
        );
    }
    Ok(())
}
