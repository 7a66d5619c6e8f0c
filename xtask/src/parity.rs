//! `cargo xtask parity`: the same bits on the host, the edge binary and
//! every QEMU board, the A/B fallback, and the minimal encoder app.

use crate::cmd::{cargo, firmware_cargo, mote_test_bin, output, root, run, two_at_a_time};
use crate::firmware;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds seeded models (tiny and small encoders and decoders, and three
/// models of 100k+ parameters: a keyword-spotting-sized encoder, a
/// text-classification encoder and a small decoder), f32 and quantized.
pub fn parity_models(mote: &Path) -> Result<Vec<(PathBuf, Option<firmware::Input>)>> {
    let dir = root().join("target/firmware-models");
    std::fs::create_dir_all(&dir)?;
    let mut models = Vec::new();
    for kind in [
        "encoder",
        "decoder",
        "encoder-small",
        "decoder-small",
        "kws",
        "textcls",
        "decoder-100k",
    ] {
        let model = dir.join(format!("{kind}.mote"));
        run(cargo()
            .args([
                "run",
                "-q",
                "-p",
                "mote-tests",
                "--example",
                "tiny_model",
                "--",
            ])
            .args([kind, "7"])
            .arg(&model))?;
        let big = kind == "kws" || kind == "textcls" || kind == "decoder-100k";
        let dtypes: &[&str] = if big {
            &["int8", "int4", "int8-kv8", "integer"]
        } else {
            &["int8", "int8-row", "int4", "int8-kv8", "integer", "f16"]
        };
        // Calibration ids for the integer-only models: four seeded sequences.
        let info: serde_json::Value = serde_json::from_str(&output(
            Command::new(mote).arg("inspect").arg(&model).arg("--json"),
        )?)?;
        let vocab = info["vocab_size"].as_u64().unwrap_or(1).max(1);
        let len = info["max_seq"].as_u64().unwrap_or(1).min(16);
        let calib = dir.join(format!("{kind}-calib.json"));
        let seqs: Vec<Vec<u64>> = (0..4u64)
            .map(|s| (0..len).map(|i| (i * 7 + s * 13 + 3) % vocab).collect())
            .collect();
        std::fs::write(&calib, serde_json::to_string(&seqs)?)?;
        for dtype in dtypes {
            let q = dir.join(format!("{kind}-{dtype}.mote"));
            let mut c = Command::new(mote);
            c.arg("quantize")
                .arg(&model)
                .arg("-o")
                .arg(&q)
                .arg("--json");
            match *dtype {
                // Integer-only: static scales calibrated on the ids above.
                "integer" => c.args(["--dtype", "int8", "--calib"]).arg(&calib),
                // `-kv8`: int8 weights and an int8 attention cache.
                d => match d.strip_suffix("-kv8") {
                    Some(w) => c.args(["--dtype", w, "--kv", "int8"]),
                    None => c.args(["--dtype", d, "--kv", "f32"]),
                },
            };
            run(c.stdout(std::process::Stdio::null()))?;
            models.push((q, None));
        }
        if !big {
            models.push((model, None));
        }
    }
    // The trained task models the repository ships (docs/TASKS.md); feature
    // models get a whole sequence of seeded feature rows.
    let mut shipped: Vec<PathBuf> = std::fs::read_dir(root().join("models"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "mote"))
        .collect();
    shipped.sort();
    for m in shipped {
        let v: serde_json::Value = serde_json::from_str(&output(
            Command::new(mote).arg("inspect").arg(&m).arg("--json"),
        )?)?;
        let dim = v["input_dim"].as_u64().unwrap_or(0) as usize;
        let rows = v["max_seq"].as_u64().unwrap_or(1) as usize;
        if v["audio"].is_object() {
            models.push((m, Some(parity_wav()?)));
            continue;
        }
        let input = (dim > 0).then(|| {
            firmware::Input::Features(
                (0..rows * dim)
                    .map(|i| (i * 7 % 17) as f32 / 16.0)
                    .collect(),
            )
        });
        models.push((m, input));
    }
    Ok(models)
}

/// Two seconds of seeded sound for models that hear (a chirp, a burst of
/// noise and a near-silence), written as a 16 kHz mono WAV the host twin
/// reads and the flash image carries.
fn parity_wav() -> Result<firmware::Input> {
    let path = root().join("target/firmware-models/parity.wav");
    let mut state = 0x2545_f491u32;
    let samples: Vec<i16> = (0..32_000u32)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let t = i as f32 / 16_000.0;
            let chirp = (t * (200.0 + 1500.0 * t) * std::f32::consts::TAU).sin() * 8000.0;
            let noise = (state >> 20) as f32 - 2048.0;
            match i / 8000 {
                0 | 1 => chirp + noise,
                2 => noise * 4.0,
                _ => noise / 64.0,
            }
            .clamp(-32768.0, 32767.0) as i16
        })
        .collect();
    let mut b = b"RIFF".to_vec();
    b.extend((36 + 2 * samples.len() as u32).to_le_bytes());
    b.extend(b"WAVEfmt ");
    for w in [16u32, 0x0001_0001, 16_000, 32_000, 0x0010_0002] {
        b.extend(w.to_le_bytes());
    }
    b.extend(b"data");
    b.extend((2 * samples.len() as u32).to_le_bytes());
    samples.iter().for_each(|s| b.extend(s.to_le_bytes()));
    std::fs::write(&path, b)?;
    firmware::Input::wav(&path)
}

/// Runs seeded models — f32 and quantized — on the host (best backend and
/// scalar), on aarch64 Linux under qemu-aarch64 (NEON and scalar) and on
/// every QEMU Cortex-M board (M4F, M7, M33, M55), each board built once and
/// the models flashed into its slot region, and requires the same bits
/// everywhere. Then the A/B check: a damaged newer model in slot B is
/// reported and slot A runs.
pub fn firmware_parity() -> Result<()> {
    let mote = mote_test_bin()?;
    let ids = firmware::Input::Ids(vec![1, 2, 3, 4, 5]);
    let models = parity_models(&mote)?;
    let mut arena = 0;
    for (m, input) in &models {
        arena = arena.max(firmware::arena_for(
            &mote,
            m,
            input.as_ref().unwrap_or(&ids),
        )?);
    }
    let built = build_firmware(arena)?;
    let (edge, elfs) = (built.edge, built.boards);
    // Every aarch64 integer backend (NEON, NEON + SDOT) against the scalar
    // definition on odd shapes, before whole models.
    let check = output(
        Command::new("timeout")
            .args(["120", "qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"])
            .arg(&edge)
            .arg("--check-kernels"),
    )?;
    if !check.contains("neon-dot") {
        bail!("aarch64: the dot-product backend did not run under qemu-aarch64: {check}");
    }
    eprintln!("aarch64: {}", check.trim());
    let pick = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("embedding:") || l.starts_with("logits:"))
            .map(str::to_string)
    };
    let img_dir = root().join("target/firmware-images");
    std::fs::create_dir_all(&img_dir)?;
    let mut stacks = Vec::new();
    for (model, input) in &models {
        let input = input.as_ref().unwrap_or(&ids);
        let name = model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let host_run = |backend: Option<&str>| {
            let mut c = Command::new(&mote);
            if let Some(b) = backend {
                c.env("MOTE_BACKEND", b);
            }
            output(c.args(input.host_args(model)))
        };
        let host = host_run(None)?;
        let reference = pick(&host).context("host printed no output line")?;
        // A stream's detections must match too, line for line.
        let detections: Vec<&str> = host
            .lines()
            .filter(|l| l.starts_with("detection:"))
            .collect();
        let mut runs: Vec<(String, String)> =
            vec![("host scalar".into(), host_run(Some("scalar"))?)];
        let edge_arg = input.edge_arg();
        if edge_arg.is_none() {
            eprintln!("{name}: aarch64 edge binary skipped (it takes no PCM input yet)");
        }
        for backend in ["neon-dot", "neon", "scalar"] {
            let Some(edge_arg) = &edge_arg else { break };
            let mut c = Command::new("timeout");
            c.args(["120", "qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"])
                .arg(&edge)
                .arg(model)
                .arg(edge_arg)
                .arg(backend);
            runs.push((format!("aarch64 {backend}"), output(&mut c)?));
        }
        let bytes = std::fs::read(model)?;
        let mut skipped = Vec::new();
        let mut jobs = Vec::new();
        for (b, elf) in &elfs {
            let image = img_dir.join(format!("{}.img", b.name));
            let img = match firmware::flash_image(
                b,
                Some(firmware::SlotContent {
                    model: &bytes,
                    seq: 1,
                }),
                None,
                input,
            ) {
                Ok(img) => img,
                Err(e) => {
                    skipped.push(format!("{}: {e}", b.name));
                    continue;
                }
            };
            std::fs::write(&image, img)?;
            jobs.push((b, elf, image));
        }
        // QEMU's TCG runs one thread per machine: the boards run side by side.
        let results: Vec<Result<(bool, String)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .iter()
                .map(|(b, elf, image)| scope.spawn(move || firmware::qemu(b, elf, image)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a QEMU thread panicked")))
                })
                .collect()
        });
        for ((b, _, _), result) in jobs.iter().zip(results) {
            let (ok, text) = result?;
            if !ok {
                bail!("{name} on {}: the firmware failed:\n{text}", b.name);
            }
            if !text.lines().any(|l| l.starts_with("kernel check: ")) {
                bail!("{name} on {}: no kernel check line:\n{text}", b.name);
            }
            if let Some(s) = text.lines().find_map(|l| l.strip_prefix("stack: ")) {
                stacks.push(format!("{name} on {}: stack {s}", b.name));
            }
            runs.push((b.name.to_string(), text));
        }
        for (target, out) in &runs {
            let line = pick(out).with_context(|| format!("{name} on {target}: no output line"))?;
            if line != reference {
                bail!("{name}: {target} differs from the host\n host:   {reference}\n {target}: {line}");
            }
            let theirs: Vec<&str> = out
                .lines()
                .filter(|l| l.starts_with("detection:"))
                .collect();
            if theirs != detections {
                bail!("{name}: {target}'s detections differ from the host's\n host: {detections:?}\n {target}: {theirs:?}");
            }
        }
        let floats = reference.split_whitespace().count() - 1;
        let targets: Vec<&str> = runs.iter().map(|(t, _)| t.as_str()).collect();
        eprintln!("{name}: {floats} output floats bit-identical on the host and {targets:?}");
        for s in skipped {
            eprintln!("  skipped {s}");
        }
    }
    for s in &stacks {
        eprintln!("{s}");
    }
    ab_fallback(&mote, &elfs, &ids)?;
    encoder_app(&mote, &models, &built.encoder)
}

/// What [`build_firmware`] built.
struct Firmware {
    /// The aarch64 edge binary.
    edge: PathBuf,
    /// Every QEMU board's app, in `BOARDS` order.
    boards: Vec<(&'static firmware::Board, PathBuf)>,
    /// The minimal encoder app for `mps2-an386`.
    encoder: PathBuf,
}

/// One firmware build.
#[derive(Clone, Copy)]
enum Build {
    Edge,
    App(&'static firmware::Board),
    Encoder(&'static firmware::Board),
}

/// Every firmware build parity needs (the edge binary, each board's app,
/// the encoder app), two at a time: a build spends long stretches on one
/// core (`core` itself, then the LTO link), so two side by side keep both
/// cores busy. Builds that share a target directory run in order, in one
/// group; groups do not share any directory.
fn build_firmware(arena: usize) -> Result<Firmware> {
    let dir = |b: &firmware::Board| format!("{}{}", b.target, b.rustflags);
    let mut groups: Vec<(String, Vec<Build>)> = vec![("edge".into(), vec![Build::Edge])];
    let m4 = firmware::board("mps2-an386")?;
    let jobs = firmware::BOARDS
        .iter()
        .map(Build::App)
        .chain([Build::Encoder(m4)]);
    for job in jobs {
        let key = match job {
            Build::App(b) | Build::Encoder(b) => dir(b),
            Build::Edge => continue,
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(job),
            None => groups.push((key, vec![job])),
        }
    }
    // The longest groups first.
    groups.sort_by_key(|(_, g)| std::cmp::Reverse(g.len()));
    let build = |job: Build| -> Result<PathBuf> {
        match job {
            Build::Edge => {
                run(firmware_cargo().args([
                    "build",
                    "-q",
                    "--release",
                    "-p",
                    "mote-edge",
                    "--target",
                    "aarch64-unknown-linux-gnu",
                    "-Zbuild-std=std,panic_abort",
                ]))?;
                Ok(root().join("firmware/target/aarch64-unknown-linux-gnu/release/mote-edge"))
            }
            Build::App(b) => firmware::build(b, arena),
            Build::Encoder(b) => firmware::build_encoder(b, arena),
        }
    };
    let mut done: Vec<(Build, Result<PathBuf>)> = two_at_a_time(&groups, |(_, group)| {
        let mut out = Vec::new();
        for &job in group {
            let r = build(job);
            let failed = r.is_err();
            out.push((job, r));
            if failed {
                break;
            }
        }
        out
    })
    .into_iter()
    .flatten()
    .collect();
    let mut take = |want: &dyn Fn(Build) -> bool, what: &str| -> Result<PathBuf> {
        let i = done
            .iter()
            .position(|(j, _)| want(*j))
            .with_context(|| format!("{what} was not built"))?;
        let (_, r) = done.swap_remove(i);
        r.with_context(|| format!("building {what}"))
    };
    let edge = take(&|j| matches!(j, Build::Edge), "the edge binary")?;
    let encoder = take(&|j| matches!(j, Build::Encoder(_)), "the encoder app")?;
    let mut boards = Vec::new();
    for b in firmware::BOARDS.iter() {
        let elf = take(&|j| matches!(j, Build::App(x) if x.name == b.name), b.name)?;
        if !b.qemu_machine.is_empty() {
            boards.push((b, elf));
        }
    }
    Ok(Firmware {
        edge,
        boards,
        encoder,
    })
}

/// The minimal encoder app on the M4 (`mps2-an386`): integer-only encoders
/// give the host's bits; a model that needs the f32-activation path and a
/// decoder are refused with `NotBuilt`; a corrupt slot B falls back to A.
/// Prints the app's code size against the 32 KiB goal.
fn encoder_app(
    mote: &Path,
    models: &[(PathBuf, Option<firmware::Input>)],
    elf: &Path,
) -> Result<()> {
    let b = firmware::board("mps2-an386")?;
    let image = root().join("target/firmware-images/encoder.img");
    let ids = firmware::Input::Ids(vec![1, 2, 3, 4, 5]);
    let slot = |model: &Path, input: &firmware::Input| -> Result<(bool, String)> {
        let bytes = std::fs::read(model)?;
        let content = firmware::SlotContent {
            model: &bytes,
            seq: 1,
        };
        std::fs::write(
            &image,
            firmware::flash_image(b, Some(content), None, input)?,
        )?;
        firmware::qemu(b, elf, &image)
    };
    let mut ran = 0;
    for (model, input) in models {
        let input = input.as_ref().unwrap_or(&ids);
        let name = model.file_name().unwrap_or_default().to_string_lossy();
        if let firmware::Input::Pcm(..) = input {
            // The minimal app has no audio front end: it would refuse the
            // input area, not the model.
            eprintln!("{name}: the encoder app skipped (it takes no PCM)");
            continue;
        }
        let info: serde_json::Value = serde_json::from_str(&output(
            Command::new(mote).arg("inspect").arg(model).arg("--json"),
        )?)?;
        let decoder = info["architecture"].as_str() == Some("decoder");
        let integer = info["integer"].as_bool() == Some(true);
        let (ok, text) = slot(model, input)?;
        if integer && !decoder {
            let host = output(Command::new(mote).args(input.host_args(model)))?;
            let want = host
                .lines()
                .find(|l| l.starts_with("embedding:") || l.starts_with("logits:"))
                .context("host printed no output line")?;
            if !ok || !text.lines().any(|l| l == want) {
                bail!("{name}: the encoder app differs from the host\n host: {want}\n app: {text}");
            }
            ran += 1;
        } else {
            // Session::new checks the activation path first.
            let why = if integer {
                "a decoder"
            } else {
                "not an integer-only model"
            };
            if ok || !text.contains(&format!("error: {why}")) {
                bail!("{name}: the encoder app did not refuse it ({why}):\n{text}");
            }
        }
    }
    if ran < 3 {
        bail!("the encoder app ran only {ran} integer-only encoders");
    }
    // Slot B newer but corrupt: reported, slot A runs; no model at all: an error.
    let a_path = root().join("target/firmware-models/encoder-integer.mote");
    let a = std::fs::read(&a_path)?;
    let mut bad = a.clone();
    let at = bad.len() - 5;
    bad[at] ^= 0x10;
    let img = firmware::flash_image(
        b,
        Some(firmware::SlotContent { model: &a, seq: 1 }),
        Some(firmware::SlotContent {
            model: &bad,
            seq: 2,
        }),
        &ids,
    )?;
    std::fs::write(&image, img)?;
    let (ok, text) = firmware::qemu(b, elf, &image)?;
    if !ok
        || !text.contains("slot B passed over: payload CRC mismatch")
        || !text.contains("slot: A seq 1")
    {
        bail!("encoder app: a corrupt slot B did not fall back to slot A:\n{text}");
    }
    std::fs::write(&image, firmware::flash_image(b, None, None, &ids)?)?;
    let (ok, text) = firmware::qemu(b, elf, &image)?;
    if ok || !text.contains("error: model slot is empty") {
        bail!("encoder app: empty slots were not reported:\n{text}");
    }
    let code = firmware::code_bytes(elf)?;
    eprintln!(
        "encoder app on mps2-an386: {ran} integer-only encoders bit-identical to the host, \
         float models and decoders refused (NotBuilt), corrupt slot B passed over, \
         empty slots reported; code {code} bytes (goal 32768)"
    );
    Ok(())
}

/// Slot B holds a newer model with one flipped payload byte: the firmware
/// must report the CRC error and run slot A's model (its output equals the
/// host's for slot A). Also: both slots empty → a clear error, exit 1.
fn ab_fallback(
    mote: &Path,
    elfs: &[(&firmware::Board, PathBuf)],
    ids: &firmware::Input,
) -> Result<()> {
    let dir = root().join("target/firmware-models");
    let (a_path, b_path) = (dir.join("encoder-int8.mote"), dir.join("decoder-int8.mote"));
    let a = std::fs::read(&a_path)?;
    let mut bad = std::fs::read(&b_path)?;
    let at = bad.len() - 7;
    bad[at] ^= 0x20;
    let host = output(Command::new(mote).args(ids.host_args(&a_path)))?;
    let want = host
        .lines()
        .find(|l| l.starts_with("embedding:"))
        .context("host printed no embedding")?;
    let img_dir = root().join("target/firmware-images");
    for (b, elf) in elfs {
        let image = img_dir.join(format!("{}-ab.img", b.name));
        let img = firmware::flash_image(
            b,
            Some(firmware::SlotContent { model: &a, seq: 1 }),
            Some(firmware::SlotContent {
                model: &bad,
                seq: 2,
            }),
            ids,
        )?;
        std::fs::write(&image, img)?;
        let (ok, text) = firmware::qemu(b, elf, &image)?;
        let reported = text
            .lines()
            .any(|l| l.starts_with("slot B passed over: payload CRC"));
        if !ok || !reported || !text.contains("slot: A seq 1") || !text.lines().any(|l| l == want) {
            bail!(
                "{}: a corrupt slot B did not fall back to slot A:\n{text}",
                b.name
            );
        }
        let empty = firmware::flash_image(b, None, None, ids)?;
        std::fs::write(&image, empty)?;
        let (ok, text) = firmware::qemu(b, elf, &image)?;
        if ok || !text.contains("no valid model in slot A or B") {
            bail!("{}: two empty slots were not reported:\n{text}", b.name);
        }
        eprintln!("{}: corrupt slot B reported (payload CRC), slot A ran with the host's bits; empty slots refused", b.name);
    }
    Ok(())
}
