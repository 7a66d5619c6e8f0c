//! `cargo xtask setup | demo | test | bench`: the commands a newcomer runs.
//!
//! Each installs what it needs when it is missing (Debian packages for the
//! cross toolchain and QEMU), so a fresh machine needs nothing but Rust,
//! Python 3 with pip, and network access to the package registries.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

mod firmware;
mod fuzz;

/// Debian packages for cross-building and running firmware (see shared TOOLCHAIN.md), and a font.
const DEBIAN_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "rust-web-llvm",
    "lld-22",
    "qemu-system-arm",
    "qemu-system-misc",
    "qemu-user",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "binutils-arm-none-eabi",
    // The training curves' labels (mote train).
    "fonts-dejavu-core",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Installs the Debian packages that are missing.
fn setup() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing Debian packages: {}", missing.join(" "));
    let sudo = |args: &[&str]| {
        let is_root = output(Command::new("id").arg("-u"))
            .map(|u| u.trim() == "0")
            .unwrap_or(false);
        let mut c = if is_root {
            Command::new(args[0])
        } else {
            Command::new("sudo")
        };
        if is_root {
            c.args(&args[1..]);
        } else {
            c.args(args);
        }
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run(&mut sudo(&["apt-get", "update", "-q"]))?;
    let mut args = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    args.extend(missing);
    run(&mut sudo(&args))
}

fn mote_bin() -> Result<PathBuf> {
    run(cargo().args(["build", "--release", "-q", "-p", "mote-quantize"]))?;
    Ok(root().join("target/release/mote"))
}

/// The CLI as `cargo test` already built it (dev profile: `mote-core` and
/// every dependency optimised). Its output bits are the release build's — no
/// fast-math anywhere — and the test run saves a second full release build.
fn mote_test_bin() -> Result<PathBuf> {
    run(cargo().args(["build", "-q", "-p", "mote-quantize"]))?;
    Ok(root().join("target/debug/mote"))
}

fn demo() -> Result<()> {
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

/// Reads a JSON array of numbers under `key` (xtask keeps no JSON dependency).
fn parse_floats(json: &str, key: &str) -> Result<Vec<f32>> {
    let start = json
        .find(&format!("\"{key}\":["))
        .context("key not found")?
        + key.len()
        + 4;
    let end = start + json[start..].find(']').context("unterminated array")?;
    json[start..end]
        .split(',')
        .map(|s| s.trim().parse::<f32>().context("not a number"))
        .collect()
}

fn test() -> Result<()> {
    setup()?;
    type Step = (&'static str, fn() -> Result<()>);
    let plan: [Step; 4] = [
        ("workspace tests, and mote-core's unit tests without its default features", || {
            run(cargo().args(["test", "--workspace", "--no-fail-fast"]))?;
            run(cargo().args([
                "test",
                "-q",
                "-p",
                "mote-core",
                "--lib",
                "--no-default-features",
                "--features",
                "std",
            ]))
        }),
        (
            "x86_64, aarch64 (qemu-aarch64), Cortex-M4F/M7/M33/M55 and RV32IMC (QEMU) give the same bits; A/B fallback",
            firmware_parity,
        ),
        (
            "panic-free proof: the device's load-and-run path links with an undefined panic handler",
            firmware::panic_free_proof,
        ),
        (
            "fuzz smoke (ASan): model reader + inference, SIMD kernels vs scalar, GGUF, safetensors, tokenizers, training-data readers, 15 s each",
            || fuzz::fuzz(&fuzz::ALL_TARGETS, 15),
        ),
    ];
    // Every step runs even when an earlier one fails; each reports its time.
    let steps: Vec<(&str, Result<()>, f64)> = plan
        .iter()
        .map(|(name, step)| {
            let start = std::time::Instant::now();
            let r = step();
            (*name, r, start.elapsed().as_secs_f64())
        })
        .collect();
    let failed: Vec<_> = steps.iter().filter(|(_, r, _)| r.is_err()).collect();
    for (name, r, secs) in &steps {
        match r {
            Ok(()) => eprintln!("ok ({secs:.0} s): {name}"),
            Err(e) => eprintln!("FAILED ({secs:.0} s): {name}: {e:#}"),
        }
    }
    println!(
        "steps: {} passed, {} failed",
        steps.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        bail!("{} step(s) failed", failed.len());
    }
    Ok(())
}

/// A command running Debian's Rust (with its library source) in `firmware/`.
fn firmware_cargo() -> Command {
    let mut c = Command::new("/usr/bin/cargo");
    c.current_dir(root().join("firmware"));
    c.env("RUSTC_BOOTSTRAP", "1");
    c.env(
        "PATH",
        format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default()),
    );
    for v in [
        "RUSTC",
        "RUSTDOC",
        "CARGO",
        "RUSTUP_TOOLCHAIN",
        "CARGO_TARGET_DIR",
    ] {
        c.env_remove(v);
    }
    c
}

/// Builds seeded models (tiny and small encoders and decoders, and three
/// models of 100k+ parameters: a keyword-spotting-sized encoder, a
/// text-classification encoder and a small decoder), f32 and quantized.
fn parity_models(mote: &Path) -> Result<Vec<(PathBuf, Option<firmware::Input>)>> {
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

/// Runs seeded models — f32 and quantized — on the host (best backend and
/// scalar), on aarch64 Linux under qemu-aarch64 (NEON and scalar) and on
/// every QEMU Cortex-M board (M4F, M7, M33, M55), each board built once and
/// the models flashed into its slot region, and requires the same bits
/// everywhere. Then the A/B check: a damaged newer model in slot B is
/// reported and slot A runs.
fn firmware_parity() -> Result<()> {
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
            output(c.arg("run").arg(model).args(input.run_args()).arg("--bits"))
        };
        let reference = pick(&host_run(None)?).context("host printed no output line")?;
        let mut runs: Vec<(String, String)> =
            vec![("host scalar".into(), host_run(Some("scalar"))?)];
        for backend in ["neon-dot", "neon", "scalar"] {
            let mut c = Command::new("timeout");
            c.args(["120", "qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"])
                .arg(&edge)
                .arg(model)
                .arg(input.edge_arg())
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

/// `f` of every item, two items at a time (this machine has two cores),
/// the results in item order.
fn two_at_a_time<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (Some(item), Some(slot)) = (items.get(i), results.get(i)) else {
                    break;
                };
                let r = f(item);
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            });
        }
    });
    results
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect()
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
        let info: serde_json::Value = serde_json::from_str(&output(
            Command::new(mote).arg("inspect").arg(model).arg("--json"),
        )?)?;
        let decoder = info["architecture"].as_str() == Some("decoder");
        let integer = info["integer"].as_bool() == Some(true);
        let (ok, text) = slot(model, input)?;
        if integer && !decoder {
            let host = output(
                Command::new(mote)
                    .arg("run")
                    .arg(model)
                    .args(input.run_args())
                    .arg("--bits"),
            )?;
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
    let host = output(
        Command::new(mote)
            .arg("run")
            .arg(&a_path)
            .args(ids.run_args())
            .arg("--bits"),
    )?;
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

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("demo") => demo(),
        Some("test") => test(),
        Some("parity") => firmware_parity(),
        Some("firmware") => firmware::main(&args[1..]),
        Some("panic-free") => firmware::panic_free_proof(),
        Some("fuzz") => fuzz::main(&args[1..]),
        Some("bench") if args.get(1).map(String::as_str) == Some("--firmware") => {
            let mote = mote_bin()?;
            let models = parity_models(&mote)?;
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
            let ids = firmware::Input::Ids((1..=8).collect());
            let table = firmware::cost_table(&mote, &pick, &ids)?;
            println!("{table}");
            Ok(())
        }
        Some("bench") => run(cargo().args(["bench", "-p", "mote-tests"]).args(&args[1..])),
        _ => {
            eprintln!(
                "usage: cargo xtask <setup|demo|test|parity|firmware …|fuzz [--minutes N] [target…]|bench [--firmware | criterion filter]>"
            );
            std::process::exit(2);
        }
    }
}
