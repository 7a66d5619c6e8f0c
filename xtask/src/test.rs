//! `cargo xtask test`: every test step, each timed; a failed step does not
//! stop the others.

use crate::cmd::{cargo, run};
use crate::{firmware, fuzz, parity, setup};
use anyhow::{bail, Result};

/// The whole suite: workspace tests, firmware parity, the panic-free proof,
/// the fuzz smoke.
pub fn test() -> Result<()> {
    setup::setup()?;
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
            parity::firmware_parity,
        ),
        (
            "panic-free proof: the device's load-and-run path links with an undefined panic handler",
            firmware::panic_free_proof,
        ),
        (
            "fuzz smoke (ASan): model reader + inference, SIMD kernels vs scalar, the audio front end, GGUF, safetensors, tokenizers, training-data readers, the WAV reader, 15 s each",
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
