//! Running commands: the repository root, `cargo` for the host workspace
//! and for `firmware/` (Debian's Rust), the `mote` CLI binaries.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs `cmd` (echoed), failing on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// The standard output of `cmd`, failing (with its standard error) on a
/// non-zero exit.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `cargo` of the host workspace, in the repository root.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// A command running Debian's Rust (with its library source) in `firmware/`.
pub fn firmware_cargo() -> Command {
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

/// The `mote` CLI, release build.
pub fn mote_bin() -> Result<PathBuf> {
    run(cargo().args(["build", "--release", "-q", "-p", "mote-quantize"]))?;
    Ok(root().join("target/release/mote"))
}

/// The CLI as `cargo test` already built it (dev profile: `mote-core` and
/// every dependency optimised). Its output bits are the release build's — no
/// fast-math anywhere — and the test run saves a second full release build.
pub fn mote_test_bin() -> Result<PathBuf> {
    run(cargo().args(["build", "-q", "-p", "mote-quantize"]))?;
    Ok(root().join("target/debug/mote"))
}

/// `f` of every item, two items at a time (this machine has two cores),
/// the results in item order.
pub fn two_at_a_time<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
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
