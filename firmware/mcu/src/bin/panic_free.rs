//! The panic-free proof: the device's load-and-run path — the kernel
//! self-check, both slots opened, the model validated, the input area
//! parsed by the apps' own parser (`mote_mcu::input`), a session on the
//! static arena, `Session::run` on token ids or feature rows (a
//! classifier's logits, an encoder's pooled embedding, a decoder's
//! `prefill`) — linked with a panic handler that calls a function that does
//! not exist. If any panic path survives optimization, the link fails and
//! names it; `cargo xtask panic-free` (part of `cargo xtask test`) builds
//! this binary for every QEMU board.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use mote_core::{selfcheck, slot, RunConfig, Session};
use mote_mcu::device::flash;
use mote_mcu::memory_map::{INPUT, INPUT_LEN, SLOT_A, SLOT_B, SLOT_LEN};
use mote_mcu::{input, rt};

/// Where the result goes (so the work is not optimized away).
static RESULT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// The self-check's buffers, as in the device app.
static CHECK: rt::Once<selfcheck::Workspace> = rt::Once::new(selfcheck::Workspace::new());

#[rt::entry]
fn main() -> ! {
    let checked = match CHECK.take().map(selfcheck::check_kernels) {
        Some(Ok(report)) => report.pairs,
        _ => u32::MAX,
    };
    let bits = match mote_mcu::arena() {
        Some(arena) => run(arena).unwrap_or(u32::MAX),
        None => u32::MAX,
    };
    RESULT.store(bits ^ checked, core::sync::atomic::Ordering::Relaxed);
    loop {
        rt::idle();
    }
}

fn run(arena: &mut [u8]) -> Result<u32, mote_core::Error> {
    let choice = slot::choose(flash(SLOT_A, SLOT_LEN), flash(SLOT_B, SLOT_LEN));
    let Some((_, _, model)) = choice.chosen else {
        return Err(mote_core::Error::EmptySlot);
    };
    let mut buf = input::Buffers::new();
    let Ok(input) = input::parse(flash(INPUT, INPUT_LEN), &mut buf) else {
        return Ok(u32::MAX - 1);
    };
    // The checker's own test: an index the compiler cannot prove in range.
    #[cfg(feature = "panic-demo")]
    let _ = core::hint::black_box([1u32, 2, 3])[core::hint::black_box(input.rows(model.config()))];
    let run = RunConfig { max_seq: (input.rows(model.config()) as u32).max(1) };
    let mut s = Session::new(&model, arena, run)?;
    let out = s.run(input)?.values();
    Ok(out.iter().fold(0u32, |h, v| h.rotate_left(5) ^ v.to_bits()))
}

extern "C" {
    /// Deliberately undefined: referencing it makes the link fail.
    fn mote_panic_path_survived() -> !;
}

#[panic_handler]
#[allow(unsafe_code)]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: never called when the proof holds — and if a panic path is
    // left, the binary does not link, so this call never exists at run time.
    unsafe { mote_panic_path_survived() }
}
