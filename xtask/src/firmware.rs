//! `cargo xtask firmware …`: build the device app for a board, write the
//! flash image (model slots A/B and the input area) and run it in QEMU.

use crate::cmd::{firmware_cargo, output, root, run};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(dead_code, missing_docs)]
mod boards {
    include!("../../firmware/boards.rs");
}
pub use boards::{layout, Board, BOARDS};

/// The board called `name`.
pub fn board(name: &str) -> Result<&'static Board> {
    BOARDS.iter().find(|b| b.name == name).with_context(|| {
        let names: Vec<&str> = BOARDS.iter().map(|b| b.name).collect();
        format!("unknown board {name:?} (one of {names:?})")
    })
}

/// `cargo build` of the device app for `b` (memory map, CPU, arena of
/// `arena` bytes) and its target directory. Boards with the same target and
/// CPU share the directory, so only the first one builds `core`.
fn board_cargo(b: &Board, arena: usize) -> (Command, PathBuf) {
    board_cargo_profile(b, arena, "release")
}

/// [`board_cargo`] with the cargo profile `profile`.
fn board_cargo_profile(b: &Board, arena: usize, profile: &str) -> (Command, PathBuf) {
    let cpu = b.rustflags.rsplit('=').next().unwrap_or("cpu");
    let dir = root().join(format!("firmware/target/{}-{cpu}", b.target));
    let mut c = firmware_cargo();
    c.args([
        "build",
        "-q",
        "--profile",
        profile,
        "-p",
        "mote-mcu",
        "--target",
        b.target,
    ])
    .env("CARGO_TARGET_DIR", &dir)
    .env("RUSTFLAGS", format!("-C link-arg=-Tlink.x {}", b.rustflags))
    .env("MOTE_BOARD", b.name)
    .env("MOTE_ARENA", arena.to_string())
    .env_remove("MOTE_MODEL");
    (c, dir)
}

/// Builds the app for `b` with an arena of `arena` bytes; returns the ELF.
/// Boards with the same target and CPU share a target directory, so only
/// the first one builds `core`.
pub fn build(b: &Board, arena: usize) -> Result<PathBuf> {
    let (mut c, dir) = board_cargo(b, arena);
    run(&mut c)?;
    // Boards sharing the directory overwrite each other's ELF: keep a copy per board.
    let elf = root().join(format!("firmware/target/elf/{}.elf", b.name));
    std::fs::create_dir_all(elf.parent().context("no parent")?)?;
    std::fs::copy(dir.join(b.target).join("release/mote-mcu"), &elf)?;
    Ok(elf)
}

/// Builds the minimal encoder app (`mote-encoder`: `mote-core` without its
/// `float` and `decoder` features, `opt-level = "z"`) for `b`; returns the ELF.
pub fn build_encoder(b: &Board, arena: usize) -> Result<PathBuf> {
    let (mut c, dir) = board_cargo_profile(b, arena, "size");
    c.args(["--no-default-features", "--bin", "mote-encoder"]);
    run(&mut c)?;
    let elf = root().join(format!("firmware/target/elf/{}-encoder.elf", b.name));
    std::fs::create_dir_all(elf.parent().context("no parent")?)?;
    std::fs::copy(dir.join(b.target).join("size/mote-encoder"), &elf)?;
    Ok(elf)
}

/// Flash bytes of an ELF's code and read-only data (vector table, `.text`,
/// `.rodata`): what a board's flash holds besides the model.
pub fn code_bytes(elf: &Path) -> Result<u64> {
    Ok(elf_sizes(elf)?.0)
}

/// The link-time proof that the device's load-and-run path cannot panic:
/// `panic-free` (the kernel self-check, slots, model validation, the input
/// area's parser, session, `Session::run`) links
/// only if no call to its panic handler — which calls an undefined symbol —
/// survives optimization. Checked on every QEMU board, then checked to fail
/// with a deliberate panic path (`--features panic-demo`).
pub fn panic_free_proof() -> Result<()> {
    for b in BOARDS.iter().filter(|b| !b.qemu_machine.is_empty()) {
        panic_free_build(b, false).with_context(|| {
            format!("{}: a panic path survives in the load-and-run path (the link names `mote_panic_path_survived`)", b.name)
        })?;
        eprintln!("{}: load-and-run path links without any panic path", b.name);
    }
    let b = board("mps2-an386")?;
    let out = panic_free_build(b, true);
    match out {
        Err(e) if format!("{e:#}").contains("mote_panic_path_survived") => {
            eprintln!(
                "{}: a deliberate panic path makes the link fail, as it must",
                b.name
            );
            Ok(())
        }
        Err(e) => Err(e.context("the panic-demo build failed for another reason")),
        Ok(()) => {
            bail!("the panic-demo build linked: the panic-free check would not catch a panic path")
        }
    }
}

fn panic_free_build(b: &Board, demo: bool) -> Result<()> {
    let (mut c, _) = board_cargo(b, 16384);
    c.args(["--bin", "panic-free"]);
    if demo {
        c.args(["--features", "panic-demo"]);
    }
    let out = c.output().context("starting cargo")?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// What goes into a slot: model bytes and sequence number.
pub struct SlotContent<'a> {
    pub model: &'a [u8],
    pub seq: u32,
}

/// The flash image from slot A to the end of flash: slot A, slot B, input.
pub fn flash_image(
    b: &Board,
    a: Option<SlotContent>,
    bslot: Option<SlotContent>,
    input: &Input,
) -> Result<Vec<u8>> {
    let (slot_a, slot_b, slot_len, input_at) = layout(b);
    let mut img = vec![0xffu8; (b.flash + b.flash_len - slot_a) as usize];
    for (at, content, name) in [(slot_a, a, "A"), (slot_b, bslot, "B")] {
        let Some(c) = content else { continue };
        let need = mote_core::slot::SLOT_HEADER_LEN + c.model.len();
        if need > slot_len as usize {
            bail!(
                "a model of {} bytes does not fit slot {name} of {} ({slot_len} bytes)",
                c.model.len(),
                b.name
            );
        }
        let off = (at - slot_a) as usize;
        img[off..off + mote_core::slot::SLOT_HEADER_LEN]
            .copy_from_slice(&mote_core::slot::slot_header(c.seq, c.model.len() as u32));
        img[off + mote_core::slot::SLOT_HEADER_LEN..off + need].copy_from_slice(c.model);
    }
    let area = input.area()?;
    let off = (input_at - slot_a) as usize;
    img[off..off + area.len()].copy_from_slice(&area);
    Ok(img)
}

/// The QEMU command that runs `elf` on `b` with `image` loaded at slot A's
/// address (semihosting on; the firmware's exit code becomes QEMU's).
pub fn qemu_command(b: &Board, elf: &Path, image: &Path) -> Result<Command> {
    if b.qemu_machine.is_empty() {
        bail!("{} is a real board: QEMU does not run it", b.name);
    }
    let (slot_a, ..) = layout(b);
    let mut c = Command::new("timeout");
    c.args([
        "600",
        b.qemu,
        "-machine",
        b.qemu_machine,
        "-cpu",
        b.qemu_cpu,
    ]);
    if b.qemu == "qemu-system-riscv32" {
        // No firmware below ours: QEMU starts the ELF itself, in M-mode.
        c.args(["-bios", "none"]);
    }
    c.args([
        "-nographic",
        "-monitor",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
    ])
    .arg("-kernel")
    .arg(elf)
    .arg("-device")
    .arg(format!("loader,file={},addr={slot_a:#x}", image.display()));
    Ok(c)
}

/// Runs `elf` on `b` in QEMU with `image` in flash; returns (exit success,
/// stdout + stderr).
pub fn qemu(b: &Board, elf: &Path, image: &Path) -> Result<(bool, String)> {
    let out = qemu_command(b, elf, image)?
        .output()
        .with_context(|| format!("starting {}", b.qemu))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

/// A model input: token ids, feature values (rows of the model's input
/// width), or 16 kHz mono PCM for a model with an audio front end.
#[derive(Debug, Clone)]
pub enum Input {
    /// Token ids.
    Ids(Vec<u32>),
    /// Feature values.
    Features(Vec<f32>),
    /// Samples, and the WAV file they came from (the host twin reads it).
    Pcm(Vec<i16>, PathBuf),
}

impl Input {
    /// Numbers separated by commas or whitespace: token ids, or after a
    /// leading `features:` f32 feature values.
    pub fn parse(text: &str) -> Result<Input> {
        let split = |t: &str| -> Vec<String> {
            t.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        Ok(match text.trim_start().strip_prefix("features:") {
            Some(rest) => Input::Features(
                split(rest)
                    .iter()
                    .map(|s| {
                        s.parse()
                            .with_context(|| format!("bad feature value {s:?}"))
                    })
                    .collect::<Result<_>>()?,
            ),
            None => Input::Ids(
                split(text)
                    .iter()
                    .map(|s| s.parse().with_context(|| format!("bad token id {s:?}")))
                    .collect::<Result<_>>()?,
            ),
        })
    }

    /// A WAV file as the device takes it: 16 kHz mono 16-bit PCM only
    /// (`mote_host::wav`'s checks; another format is refused, not converted).
    pub fn wav(path: &Path) -> Result<Input> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let clip =
            mote_host::wav::read_bytes(&bytes).with_context(|| format!("{}", path.display()))?;
        clip.source
            .check_device()
            .with_context(|| format!("{}", path.display()))?;
        Ok(Input::Pcm(clip.samples, path.to_path_buf()))
    }

    fn values(&self) -> Vec<String> {
        match self {
            Input::Ids(v) => v.iter().map(u32::to_string).collect(),
            // Display prints the shortest text that parses back to the same bits.
            Input::Features(v) => v.iter().map(f32::to_string).collect(),
            Input::Pcm(v, _) => v.iter().map(i16::to_string).collect(),
        }
    }

    /// Arguments of the `mote` command that is this input's host twin:
    /// `run` for ids and features, `classify --stream` for PCM (the
    /// device's windows, detections and last logits).
    pub fn host_args(&self, model: &Path) -> Vec<String> {
        let m = model.display().to_string();
        match self {
            Input::Ids(_) => vec![
                "run".into(),
                m,
                "--ids".into(),
                self.values().join(","),
                "--bits".into(),
            ],
            Input::Features(_) => {
                vec![
                    "run".into(),
                    m,
                    "--features".into(),
                    self.values().join(","),
                    "--bits".into(),
                ]
            }
            Input::Pcm(_, wav) => vec![
                "classify".into(),
                m,
                "--wav".into(),
                wav.display().to_string(),
                "--stream".into(),
                "--bits".into(),
            ],
        }
    }

    /// The `mote-edge` argument for this input (`None`: the edge binary
    /// takes no PCM yet).
    pub fn edge_arg(&self) -> Option<String> {
        match self {
            Input::Ids(_) => Some(self.values().join(",")),
            Input::Features(_) => Some(format!("features:{}", self.values().join(","))),
            Input::Pcm(..) => None,
        }
    }

    /// Sequence rows for a model with feature width `input_dim` (0: tokens;
    /// PCM: the model's own window, so 1 here).
    pub fn rows(&self, input_dim: usize) -> usize {
        match self {
            Input::Ids(v) => v.len(),
            Input::Features(v) => v.len() / input_dim.max(1),
            Input::Pcm(v, _) => usize::from(!v.is_empty()),
        }
    }

    /// The input area's bytes: magic, count, values.
    fn area(&self) -> Result<Vec<u8>> {
        let (magic, body, n, max): (&[u8; 4], Vec<u8>, usize, usize) = match self {
            Input::Ids(v) => (
                b"MIDS",
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                v.len(),
                256,
            ),
            Input::Features(v) => (
                b"MFEA",
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                v.len(),
                256,
            ),
            Input::Pcm(v, _) => (
                b"MPCM",
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                v.len(),
                (boards::INPUT_BYTES as usize - 8) / 2,
            ),
        };
        let max = max.min((boards::INPUT_BYTES as usize - 8) / 4 * 4);
        if n > max {
            bail!("{n} input values: the input area holds {max}");
        }
        let mut out = magic.to_vec();
        out.extend((n as u32).to_le_bytes());
        out.extend(body);
        Ok(out)
    }
}

/// `mote inspect --seq N --json` of a model.
fn inspect(mote: &Path, model: &Path, seq: usize) -> Result<serde_json::Value> {
    let out = output(Command::new(mote).arg("inspect").arg(model).args([
        "--seq",
        &seq.to_string(),
        "--json",
    ]))?;
    Ok(serde_json::from_str(&out)?)
}

/// Sequence rows `input` makes for `model`.
pub fn rows_for(mote: &Path, model: &Path, input: &Input) -> Result<usize> {
    let info = inspect(mote, model, 1)?;
    if let Input::Pcm(..) = input {
        // The model's window of frames.
        return Ok(info["max_seq"].as_u64().unwrap_or(1) as usize);
    }
    let dim = info["input_dim"].as_u64().unwrap_or(0);
    Ok(input.rows(dim as usize))
}

/// Arena bytes `model` needs for `input` (asks `mote inspect`).
pub fn arena_for(mote: &Path, model: &Path, input: &Input) -> Result<usize> {
    let rows = rows_for(mote, model, input)?;
    inspect(mote, model, rows.max(1))?["arena"]["bytes"]
        .as_u64()
        .map(|b| b as usize)
        .context("mote inspect printed no arena size")
}

/// `cargo xtask firmware <run|flash-image|build> …`.
pub fn main(args: &[String]) -> Result<()> {
    let flag = |name: &str| -> Option<&str> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let usage = "usage: cargo xtask firmware run --board B --model M.mote (--input INPUT_FILE | --wav FILE.wav)\n\
                 \x20      cargo xtask firmware flash-image --board B --slot-a M.mote [--slot-b M2.mote] --input INPUT_FILE -o IMAGE\n\
                 \x20      (INPUT_FILE: token ids, or `features:` then feature values; commas or spaces)\n\
                 \x20      cargo xtask firmware build --board B --arena BYTES";
    let b = board(flag("--board").unwrap_or("mps2-an386"))?;
    let ids = || -> Result<Input> {
        if let Some(w) = flag("--wav") {
            return Input::wav(Path::new(w));
        }
        let f = flag("--input").context("--input INPUT_FILE (or --wav FILE.wav) is required")?;
        let ids =
            Input::parse(&std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?)?;
        if ids.rows(1) == 0 {
            bail!("{f}: no token ids");
        }
        Ok(ids)
    };
    let read = |f: &str| std::fs::read(f).with_context(|| format!("reading {f}"));
    match args.first().map(String::as_str) {
        Some("build") => {
            let arena = flag("--arena")
                .context("--arena BYTES is required")?
                .parse()?;
            println!("{}", build(b, arena)?.display());
            Ok(())
        }
        Some("flash-image") => {
            let a = read(flag("--slot-a").context("--slot-a is required")?)?;
            let bm = flag("--slot-b").map(read).transpose()?;
            let img = flash_image(
                b,
                Some(SlotContent { model: &a, seq: 1 }),
                bm.as_deref().map(|m| SlotContent { model: m, seq: 2 }),
                &ids()?,
            )?;
            let out = flag("-o").context("-o IMAGE is required")?;
            std::fs::write(out, img)?;
            let (slot_a, ..) = layout(b);
            println!(
                "{out}: load at {slot_a:#x} (qemu: -device loader,file={out},addr={slot_a:#x})"
            );
            Ok(())
        }
        Some("run") => {
            let model_path = flag("--model").context("--model is required")?;
            let model = read(model_path)?;
            let ids = ids()?;
            let mote = crate::cmd::mote_bin()?;
            let arena = arena_for(&mote, Path::new(model_path), &ids)?;
            let elf = build(b, arena)?;
            let dir = root().join("target/firmware-run");
            std::fs::create_dir_all(&dir)?;
            let image = dir.join(format!("{}.img", b.name));
            let img = flash_image(
                b,
                Some(SlotContent {
                    model: &model,
                    seq: 1,
                }),
                None,
                &ids,
            )?;
            std::fs::write(&image, img)?;
            let (ok, text) = qemu(b, &elf, &image)?;
            print!("{text}");
            if !ok {
                bail!("the firmware failed on {}", b.name);
            }
            Ok(())
        }
        _ => bail!("{usage}"),
    }
}

/// (code and read-only data in flash, initialised data, zeroed data) bytes
/// of `elf`, by section (`size -A`): riscv-rt's `.stack` and `.heap` are
/// reservations, not statics, so they are left out.
pub fn elf_sizes(elf: &Path) -> Result<(u64, u64, u64)> {
    let listing = output(Command::new("size").arg("-A").arg(elf))?;
    let (mut text, mut data, mut bss) = (0, 0, 0);
    for line in listing.lines() {
        let mut f = line.split_whitespace();
        let (Some(name), Some(size)) = (f.next(), f.next().and_then(|v| v.parse::<u64>().ok()))
        else {
            continue;
        };
        match name {
            ".vector_table" | ".text" | ".rodata" | ".init" | ".init.rust" | ".trap" => {
                text += size
            }
            ".data" => data += size,
            ".bss" | ".uninit" => bss += size,
            _ => {}
        }
    }
    Ok((text, data, bss))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The board aliases of `firmware/.cargo/config.toml` (`cargo run-m4` …)
    /// name the target and CPU that `boards.rs` gives each board: one
    /// `run-` alias per QEMU board, one `build-` alias per real board.
    #[test]
    fn board_aliases_match_boards_rs() -> Result<()> {
        let config = std::fs::read_to_string(root().join("firmware/.cargo/config.toml"))?;
        let mut seen = Vec::new();
        let mut in_alias = false;
        for line in config.lines() {
            if line.starts_with('[') {
                in_alias = line == "[alias]";
                continue;
            }
            let Some((alias, list)) = line.split_once(" = [").filter(|_| in_alias) else {
                continue;
            };
            if !alias.starts_with("run-") && !alias.starts_with("build-") {
                continue;
            }
            let words: Vec<&str> = list
                .trim_end_matches(']')
                .split(", ")
                .map(|w| w.trim_matches('"'))
                .collect();
            let after = |flag: &str| {
                words
                    .iter()
                    .position(|w| *w == flag)
                    .and_then(|i| words.get(i + 1))
                    .copied()
                    .with_context(|| format!("{alias}: no {flag}"))
            };
            let name = words
                .iter()
                .find_map(|w| w.strip_prefix("env.MOTE_BOARD='"))
                .and_then(|w| w.strip_suffix('\''))
                .with_context(|| format!("{alias}: no MOTE_BOARD"))?;
            let b = board(name)?;
            assert_eq!(after("--target")?, b.target, "{alias}");
            assert_eq!(after("-p")?, "mote-mcu", "{alias}");
            assert_eq!(
                after("--target-dir")?,
                format!("target/run/{name}"),
                "{alias}"
            );
            let cpu = words
                .iter()
                .find_map(|w| w.split_once("rustflags=['-C").map(|(_, f)| f))
                .and_then(|f| f.strip_suffix("']"))
                .with_context(|| format!("{alias}: no rustflags"))?;
            assert_eq!(format!("-C {cpu}"), b.rustflags, "{alias}");
            let qemu = !b.qemu_machine.is_empty();
            assert_eq!(
                alias.starts_with("run-"),
                qemu,
                "{alias}: run- for QEMU boards, build- for real ones"
            );
            assert_eq!(
                words.first().copied(),
                Some(if qemu { "run" } else { "build" }),
                "{alias}"
            );
            seen.push(name);
        }
        for b in BOARDS.iter() {
            assert_eq!(
                seen.iter().filter(|n| **n == b.name).count(),
                1,
                "{}: one alias",
                b.name
            );
        }
        Ok(())
    }
}
