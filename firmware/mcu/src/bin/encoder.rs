//! The smallest useful device app: an integer-only encoder (keyword
//! spotting on feature rows, text classification or sentence embeddings on
//! token ids) run out of a flash model slot, on `mote-core` built without
//! its `float` and `decoder` features — the build whose code size
//! `docs/PERFORMANCE.md` states against the 32 KiB goal.
//!
//! It does what the main app does with the slots and the input area, minus
//! the kernel self-check, the probes and the stack report: opens slots A/B
//! (the newest valid one runs, `slot B passed over: …` says why the other
//! did not), runs the model once and prints `logits:` or `embedding:` with
//! the bits of every value. A model it cannot run (f32 activations, a
//! decoder) is refused with `mote_core::Error::NotBuilt`. Exit code: 0 ok,
//! 1 on an error (printed), 101 on a panic or a fault.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use mote_core::slot::{self, SlotId};
use mote_core::{RunConfig, Session};
use mote_mcu::device::{self, flash, out};
use mote_mcu::memory_map::{INPUT, INPUT_LEN, SLOT_A, SLOT_B, SLOT_LEN};
use mote_mcu::{input, rt};

#[rt::entry]
fn main() -> ! {
    let code = match mote_mcu::arena().map(run) {
        Some(Ok(())) => 0,
        Some(Err(e)) => {
            // `Error::summary`, not its `Display`: no `core::fmt` in this app.
            line(&[b"error: ", e.summary().as_bytes()]);
            1
        }
        None => 1,
    };
    semihosting::process::exit(code)
}

fn run(arena: &mut [u8]) -> Result<(), mote_core::Error> {
    let choice = slot::choose(flash(SLOT_A, SLOT_LEN), flash(SLOT_B, SLOT_LEN));
    for (id, err) in [(SlotId::A, choice.a_error), (SlotId::B, choice.b_error)] {
        if let Some(e) = err {
            line(&[b"slot ", id.name().as_bytes(), b" passed over: ", e.summary().as_bytes()]);
        }
    }
    let (id, seq, model) = choice.chosen.ok_or(mote_core::Error::EmptySlot)?;
    let mut digits = [0u8; 10];
    line(&[b"slot: ", id.name().as_bytes(), b" seq ", device::decimal(seq, &mut digits)]);
    let mut buf = input::Buffers::new();
    let input = match input::parse(flash(INPUT, INPUT_LEN), &mut buf) {
        Ok(i) => i,
        Err(e) => {
            line(&[b"error: ", e.summary().as_bytes()]);
            semihosting::process::exit(1)
        }
    };
    let run = RunConfig { max_seq: input.rows(model.config()).max(1) as u32 };
    let mut session = Session::new(&model, arena, run)?;
    let out = session.run(input)?;
    let (label, values) = (out.label(), out.values());
    device::print_bits(label, values);
    Ok(())
}

/// Prints the parts and a newline.
fn line(parts: &[&[u8]]) {
    for p in parts {
        out(p);
    }
    out(b"\n");
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    semihosting::process::exit(101)
}

/// The `size` profile builds with `-Cpanic=immediate-abort`: a panic is an
/// undefined instruction, which escalates to a HardFault; exit 101 as the
/// panic handler would.
#[cfg(target_arch = "arm")]
#[allow(unsafe_code)]
#[cortex_m_rt::exception]
unsafe fn HardFault(_: &cortex_m_rt::ExceptionFrame) -> ! {
    semihosting::process::exit(101)
}
