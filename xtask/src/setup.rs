//! `cargo xtask setup`: the Debian packages for cross-building and running
//! the firmware (see the shared TOOLCHAIN.md) and for building the data sets
//! (`cargo xtask data`), installed when missing.

use crate::cmd::{output, run};
use anyhow::Result;
use std::process::Command;

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
    // The keyword-spotting data set (cargo xtask data kws): speech synthesis
    // and resampling.
    "espeak-ng",
    "sox",
];

/// Installs the Debian packages that are missing.
pub fn setup() -> Result<()> {
    install_missing(DEBIAN_PACKAGES)
}

/// Installs those of `packages` that are missing (a command that needs only a
/// few packages need not pull in the cross toolchain and QEMU).
pub fn install_missing(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
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
    // Another apt run on a shared machine holds the lock for a while: wait.
    let mut args = vec![
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        "DPkg::Lock::Timeout=600",
    ];
    args.extend(missing);
    run(&mut sudo(&args))
}
