//! `cargo xtask demo`: what the project does, end to end, on real models.

use crate::cmd::{mote_bin, output, root, run};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// `cargo xtask demo`: MiniLM and SmolLM2 imported, quantized and run;
/// the task models of `models/` scored.
pub fn demo() -> Result<()> {
    let mote = mote_bin()?;
    let out = root().join("target/demo");
    std::fs::create_dir_all(&out)?;
    let fetch = |which: &str| -> Result<PathBuf> {
        Ok(PathBuf::from(
            output(Command::new(&mote).args(["fetch", which]))?.trim(),
        ))
    };
    let minilm = out.join("minilm.mote");
    let smollm2 = out.join("smollm2.mote");
    run(Command::new(&mote)
        .args(["import"])
        .arg(fetch("minilm")?)
        .arg("-o")
        .arg(&minilm))?;
    run(Command::new(&mote)
        .args(["import"])
        .arg(fetch("smollm2")?)
        .arg("-o")
        .arg(&smollm2))?;
    run(Command::new(&mote)
        .arg("inspect")
        .arg(&minilm)
        .args(["--seq", "32"])
        .stdout(std::process::Stdio::null()))?;

    let minilm8 = out.join("minilm-int8.mote");
    let smollm2_8 = out.join("smollm2-int8.mote");
    for (from, to) in [(&minilm, &minilm8), (&smollm2, &smollm2_8)] {
        run(Command::new(&mote)
            .arg("quantize")
            .arg(from)
            .arg("-o")
            .arg(to)
            .args(["--dtype", "int8", "--json"])
            .stdout(std::process::Stdio::null()))?;
    }

    // Integer-only MiniLM: static scales calibrated on the repository's
    // calibration sentences (none of them is shown below).
    let minilm_int = out.join("minilm-integer.mote");
    run(Command::new(&mote)
        .arg("quantize")
        .arg(&minilm)
        .arg("-o")
        .arg(&minilm_int)
        .args(["--dtype", "int8", "--json", "--calib"])
        .arg(root().join("tests/golden/calibration.txt"))
        .stdout(std::process::Stdio::null()))?;

    let sentences = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The girl is carrying a baby.",
        "A man is riding a horse.",
        "A monkey is playing drums.",
        "Someone in a gorilla costume is playing a set of drums.",
    ];
    for (label, model) in [
        ("f32", &minilm),
        ("int8", &minilm8),
        ("integer-only int8", &minilm_int),
    ] {
        let mut embs = Vec::new();
        for s in sentences {
            let j = output(
                Command::new(&mote)
                    .arg("embed")
                    .arg(model)
                    .args(["--text", s, "--json"]),
            )?;
            embs.push(parse_floats(&j, "embedding")?);
        }
        println!(
            "\nall-MiniLM-L6-v2 ({label}, {} bytes): cosine similarity\n",
            std::fs::metadata(model)?.len()
        );
        for (i, s) in sentences.iter().enumerate() {
            print!("{:<58}", s);
            for e in &embs {
                let c: f32 = embs[i].iter().zip(e).map(|(a, b)| a * b).sum();
                print!(" {c:5.2}");
            }
            println!();
        }
    }
    let q = "What is the capital of France?";
    for (label, model) in [("f32", &smollm2), ("int8", &smollm2_8)] {
        let t = std::time::Instant::now();
        let answer = output(Command::new(&mote).arg("generate").arg(model).args([
            "--prompt",
            q,
            "--max-tokens",
            "32",
            "--greedy",
        ]))?;
        let bytes = std::fs::metadata(model)?.len();
        println!(
            "\nSmolLM2-135M-Instruct ({label}, {bytes} bytes, {:.1} s)\n> {q}\n{}",
            t.elapsed().as_secs_f32(),
            answer.trim()
        );
    }
    // The task models trained on this machine and shipped in models/
    // (docs/TASKS.md), scored by mote-core int8 on their held-out test splits.
    for (task, title) in [
        ("digits", "8×8 handwritten digits, a tiny ViT"),
        ("bbc-news", "BBC News topics, a small encoder"),
    ] {
        println!("\n{title} (models/{task}-int8.mote)");
        run(Command::new(&mote)
            .arg("eval")
            .arg(root().join(format!("tasks/{task}.toml")))
            .arg(root().join(format!("models/{task}-int8.mote")))
            .args(["--show", "3"]))?;
    }
    let austen = root().join("models/austen-int8.mote");
    println!("\nJane Austen, a byte-level language model (models/austen-int8.mote)");
    run(Command::new(&mote)
        .arg("eval")
        .arg(root().join("tasks/austen.toml"))
        .arg(&austen)
        .args(["--limit", "200"]))?;
    let prompt = "It is a truth universally acknowledged, that";
    let text = output(Command::new(&mote).arg("generate").arg(&austen).args([
        "--prompt",
        prompt,
        "--max-tokens",
        "240",
        "--slide",
        "--temperature",
        "0.6",
        "--seed",
        "3",
    ]))?;
    println!("> {prompt}{}", text.trim_end());
    println!("\nmodels in {}", out.display());
    Ok(())
}

/// The array of numbers under `key` in the JSON object `json`.
fn parse_floats(json: &str, key: &str) -> Result<Vec<f32>> {
    let v: serde_json::Value = serde_json::from_str(json)?;
    v[key]
        .as_array()
        .with_context(|| format!("no array {key:?} in the JSON"))?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32).context("not a number"))
        .collect()
}
