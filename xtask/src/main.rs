//! `cargo xtask <command>`: the commands a newcomer runs. This file only
//! dispatches; each command is its own module.
//!
//! Each command installs what it needs when it is missing (Debian packages
//! for the cross toolchain and QEMU, `setup`), so a fresh machine needs
//! nothing but Rust, Python 3 with pip, and network access to the package
//! registries.

use anyhow::Result;

mod bench;
mod cmd;
mod data;
mod demo;
mod firmware;
mod fuzz;
mod parity;
mod setup;
mod test;

const USAGE: &str = "usage: cargo xtask <command>
  setup                     install the Debian packages the firmware needs (cross Rust, QEMU)
  demo                      MiniLM and SmolLM2 imported, quantized and run; the task models scored
  test                      the whole suite (workspace tests, parity, panic-free proof, fuzz smoke)
  parity                    the same bits on the host, aarch64 and every QEMU board; A/B fallback; the encoder app
  panic-free                the link-time proof that the device's load-and-run path cannot panic
  firmware run|flash-image|build …   one board (cargo xtask firmware for its usage)
  fuzz [--minutes N] [target…]       the fuzz targets (ASan)
  bench [--firmware | criterion filter]   host benches, or the QEMU boards' cost table
  data kws [--force]        the keyword-spotting data set, built into ~/.cache/mote/kws/v1 (docs/DATA-KWS.md)";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or(&[]);
    match args.first().map(String::as_str) {
        Some("setup") => setup::setup(),
        Some("demo") => demo::demo(),
        Some("test") => test::test(),
        Some("parity") => parity::firmware_parity(),
        Some("panic-free") => firmware::panic_free_proof(),
        Some("firmware") => firmware::main(rest),
        Some("fuzz") => fuzz::main(rest),
        Some("bench") => bench::main(rest),
        Some("data") => data::main(rest),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}
