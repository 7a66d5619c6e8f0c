//! `cargo xtask bench`: the host benches (criterion, `mote-tests`), or with
//! `--firmware` the cost table of the QEMU boards (instructions counted by
//! the `tools/qemu-icount` plugin between the app's markers).

use crate::cmd::{cargo, mote_bin, root, run};
use crate::firmware::{
    arena_for, build, elf_sizes, flash_image, qemu, qemu_command, rows_for, Board, Input,
    SlotContent, BOARDS,
};
use crate::parity;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// `cargo xtask bench [--firmware | criterion filter…]`.
pub fn main(args: &[String]) -> Result<()> {
    if args.first().map(String::as_str) != Some("--firmware") {
        return run(cargo().args(["bench", "-p", "mote-tests"]).args(args));
    }
    let mote = mote_bin()?;
    let models = parity::parity_models(&mote)?;
    let pick: Vec<PathBuf> = [
        "kws-int8",
        "textcls-int8",
        "decoder-100k-int8",
        "kws-integer",
        "textcls-integer",
        "decoder-100k-integer",
    ]
    .iter()
    .filter_map(|n| {
        models
            .iter()
            .find(|(m, _)| m.ends_with(format!("{n}.mote")))
            .map(|(m, _)| m.clone())
    })
    .collect();
    let ids = Input::Ids((1..=8).collect());
    let table = cost_table(&mote, &pick, &ids)?;
    println!("{table}");
    let audio: Vec<(PathBuf, Input)> = models
        .into_iter()
        .filter_map(|(m, i)| match i {
            Some(i @ Input::Pcm(..)) => Some((m, i)),
            _ => None,
        })
        .collect();
    if !audio.is_empty() {
        println!("{}", audio_cost_table(&mote, &audio)?);
    }
    Ok(())
}

/// Matrix multiply–accumulates of one run of `model` on `n` tokens: every
/// layer matrix once per token, and for a decoder the output head once per
/// token (`prefill` computes logits at every step).
pub fn matrix_macs(model: &[u8], n: u64) -> Result<u64> {
    let mut store = vec![0u128; model.len().div_ceil(16)];
    let view: &mut [u8] = bytemuck::cast_slice_mut(&mut store);
    view[..model.len()].copy_from_slice(model);
    let m =
        mote_core::Model::from_bytes(&view[..model.len()]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut layer = 0u64;
    for i in 0..m.tensor_count() {
        let Some(t) = m.tensor_at(i) else { continue };
        let name = t.name.as_str();
        let is_matrix = name.starts_with('L')
            && ["wq", "wk", "wv", "wo", "w1", "w2", "w3"]
                .iter()
                .any(|s| name.ends_with(&format!(".{s}")));
        if is_matrix {
            layer += t.dims[0] as u64 * t.dims[1] as u64;
        }
    }
    let c = m.config();
    let head = if c.arch == mote_core::Architecture::Decoder {
        c.vocab_size as u64 * c.d_model as u64
    } else {
        0
    };
    Ok(n * (layer + head))
}

/// Builds the instruction-counting plugin; returns the `.so`.
pub fn icount_plugin() -> Result<PathBuf> {
    let manifest = root().join("tools/qemu-icount/Cargo.toml");
    run(cargo()
        .args(["build", "-q", "--release", "--manifest-path"])
        .arg(&manifest))?;
    Ok(root().join("tools/qemu-icount/target/release/libqemu_icount.so"))
}

/// Instructions QEMU executed between entering `start` and entering `end`.
pub fn count(
    b: &Board,
    elf: &Path,
    image: &Path,
    plugin: &Path,
    start: &str,
    end: &str,
) -> Result<u64> {
    count_all(b, elf, image, plugin, start, end)?
        .first()
        .copied()
        .with_context(|| format!("{}: no instruction count for {start}..{end}", b.name))
}

/// Every recorded `start..end` region's count in a QEMU plugin log.
fn counts_of(log: &str, start: &str, end: &str) -> Vec<u64> {
    let prefix = format!("icount: {start}..{end} ");
    log.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// Every `start..end` region of one run.
pub fn count_all(
    b: &Board,
    elf: &Path,
    image: &Path,
    plugin: &Path,
    start: &str,
    end: &str,
) -> Result<Vec<u64>> {
    let out = qemu_command(b, elf, image)?
        .arg("-plugin")
        .arg(format!("{},start={start},end={end}", plugin.display()))
        .args(["-d", "plugin"])
        .output()
        .with_context(|| format!("starting {}", b.qemu))?;
    Ok(counts_of(&String::from_utf8_lossy(&out.stderr), start, end))
}

/// `cargo xtask bench --firmware`'s keyword table: per QEMU board and
/// shipped audio model, two seconds of PCM streamed (a row per 20 ms hop, a
/// window every 100 ms): instructions per one-second window (the model),
/// per hop (the front end and the window's row shift), per second of
/// audio at one window per second and at the streaming rate.
pub fn audio_cost_table(mote: &Path, models: &[(PathBuf, Input)]) -> Result<String> {
    let plugin = icount_plugin()?;
    let mut table = String::from(
        "| board | model | instructions / window (model) | instructions / hop (front end) | per second, one window / s | per second, a window / 100 ms | model (flash) | arena | stack |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let dir = root().join("target/firmware-images");
    std::fs::create_dir_all(&dir)?;
    for b in BOARDS.iter().filter(|b| !b.qemu_machine.is_empty()) {
        for (m, input) in models {
            let arena = arena_for(mote, m, input)?;
            let elf = build(b, arena)?;
            let bytes = std::fs::read(m)?;
            let name = m
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let image = dir.join(format!("{}-audio-cost.img", b.name));
            std::fs::write(
                &image,
                flash_image(
                    b,
                    Some(SlotContent {
                        model: &bytes,
                        seq: 1,
                    }),
                    None,
                    input,
                )?,
            )?;
            let (ok, run_text) = qemu(b, &elf, &image)?;
            if !ok {
                bail!("{name} on {}: the firmware failed:\n{run_text}", b.name);
            }
            let stack = run_text
                .lines()
                .find_map(|l| l.strip_prefix("stack: "))
                .unwrap_or("?")
                .to_string();
            let total = count(b, &elf, &image, &plugin, "mote_mark_start", "mote_mark_end")?;
            let windows = count_all(
                b,
                &elf,
                &image,
                &plugin,
                "mote_window_start",
                "mote_window_end",
            )?;
            let Input::Pcm(samples, _) = input else {
                continue;
            };
            let info: serde_json::Value = serde_json::from_str(&crate::cmd::output(
                std::process::Command::new(mote)
                    .arg("inspect")
                    .arg(m)
                    .arg("--json"),
            )?)?;
            let a = &info["audio"];
            let (frame, hop, rate) = (
                a["frame_len"].as_u64().unwrap_or(1),
                a["hop"].as_u64().unwrap_or(1),
                a["sample_rate"].as_u64().unwrap_or(1),
            );
            let rows = (samples.len() as u64).saturating_sub(frame) / hop + 1;
            let model_total: u64 = windows.iter().sum();
            let per_window = model_total / windows.len().max(1) as u64;
            let per_hop = total.saturating_sub(model_total) / rows.max(1);
            let hops_per_s = rate / hop;
            table.push_str(&format!(
                "| {} | {name} | {per_window} | {per_hop} | {} | {} | {} B | {arena} B | {stack} |\n",
                b.name,
                per_hop * hops_per_s + per_window,
                per_hop * hops_per_s + per_window * (hops_per_s / 5).max(1),
                bytes.len(),
            ));
        }
    }
    Ok(table)
}

/// `cargo xtask bench --firmware`: per QEMU board and int8 model, the
/// instructions per inference and per matrix MAC, the int8 GEMV probe's
/// instructions per MAC, flash (code, model) and RAM (arena, stack, static).
pub fn cost_table(mote: &Path, models: &[PathBuf], ids: &Input) -> Result<String> {
    let plugin = icount_plugin()?;
    let mut arena = 0;
    for m in models {
        arena = arena.max(arena_for(mote, m, ids)?);
    }
    let dir = root().join("target/firmware-images");
    std::fs::create_dir_all(&dir)?;
    let mut table = String::from(
        "| board | model | instructions / inference | matrix MACs | instr / MAC (whole run) | int8 GEMV 64×256 instr / MAC (blocked, f32 epilogue) | int8 GEMV 64×256 instr / MAC (whole rows, integer path) | code (flash) | model (flash) | arena | stack | static RAM |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for b in BOARDS.iter().filter(|b| !b.qemu_machine.is_empty()) {
        let elf = build(b, arena)?;
        let (text, data, bss) = elf_sizes(&elf)?;
        for m in models {
            let bytes = std::fs::read(m)?;
            let name = m
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let image = dir.join(format!("{}-cost.img", b.name));
            let img = match flash_image(
                b,
                Some(SlotContent {
                    model: &bytes,
                    seq: 1,
                }),
                None,
                ids,
            ) {
                Ok(i) => i,
                Err(e) => {
                    table.push_str(&format!(
                        "| {} | {name} | — ({e}) | | | | | | | | | |\n",
                        b.name
                    ));
                    continue;
                }
            };
            std::fs::write(&image, img)?;
            let (ok, run_text) = qemu(b, &elf, &image)?;
            if !ok {
                bail!("{name} on {}: the firmware failed:\n{run_text}", b.name);
            }
            let stack = run_text
                .lines()
                .find_map(|l| l.strip_prefix("stack: "))
                .unwrap_or("?")
                .to_string();
            let total = count(b, &elf, &image, &plugin, "mote_mark_start", "mote_mark_end")?;
            let gemv = count(b, &elf, &image, &plugin, "mote_gemv_start", "mote_gemv_end")?;
            let igemv = count(
                b,
                &elf,
                &image,
                &plugin,
                "mote_igemv_start",
                "mote_igemv_end",
            )?;
            let macs = matrix_macs(&bytes, rows_for(mote, m, ids)? as u64)?;
            let need = arena_for(mote, m, ids)?;
            table.push_str(&format!(
                "| {} | {name} | {total} | {macs} | {:.2} | {:.2} | {:.2} | {text} B | {} B | {need} B (static {arena} B) | {stack} | {} B |\n",
                b.name,
                total as f64 / macs as f64,
                gemv as f64 / (64.0 * 256.0),
                igemv as f64 / (64.0 * 256.0),
                bytes.len(),
                data + bss
            ));
        }
    }
    Ok(table)
}
