//! Smoke test of `mote-core` on a Cortex-M4F (QEMU `mps2-an386`).
//!
//! Runs the model baked in at build time (`MOTE_MODEL`) on the ids baked in
//! (`MOTE_IDS`) and prints one line over semihosting: `embedding: ` (encoder)
//! or `logits: ` (decoder, after `prefill`), then every `f32` as the 8 hex
//! digits of its bits. Exits 0 on success, 1 on a `mote_core::Error`, 101 on
//! a panic.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::fmt::Write as _;

use cortex_m_rt::entry;
use mote_core::{Architecture, Model, RunConfig, Session};
use semihosting::{eprintln, print, println, process};

/// Forces 16-byte alignment of what it wraps (the model and the arena).
#[repr(C, align(16))]
pub struct Aligned<T: ?Sized>(pub T);

/// Constants and the model bytes written by `build.rs`.
#[allow(dead_code)]
mod generated {
    use super::Aligned;
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}
use generated::{ARENA_BYTES, IDS, MAX_SEQ, MODEL};

#[entry]
fn main() -> ! {
    // Taken exactly once; lives in .bss.
    let Some(arena) = cortex_m::singleton!(: Aligned<[u8; ARENA_BYTES]> = Aligned([0; ARENA_BYTES])) else {
        fail("arena already taken")
    };
    match run(&MODEL.0, &mut arena.0) {
        Ok(()) => process::exit(0),
        Err(e) => {
            eprintln!("error: {e}");
            process::exit(1)
        }
    }
}

fn run(bytes: &'static [u8], arena: &mut [u8]) -> Result<(), mote_core::Error> {
    let model = Model::from_bytes(bytes)?;
    let mut session = Session::new(&model, arena, RunConfig { max_seq: MAX_SEQ })?;
    let (label, values) = match model.config().arch {
        Architecture::Encoder => ("embedding:", session.embed(&IDS)?),
        Architecture::Decoder => ("logits:", session.prefill(&IDS)?),
    };
    print_bits(label, values);
    Ok(())
}

/// Prints `label` and the bits of each value as 8 hex digits, one line,
/// in chunks to keep the number of semihosting calls small.
fn print_bits(label: &str, values: &[f32]) {
    let mut line = Line::new();
    let _ = line.write_str(label);
    for v in values {
        if line.len + 9 > line.buf.len() {
            print!("{}", line.as_str());
            line.len = 0;
        }
        let _ = write!(line, " {:08x}", v.to_bits());
    }
    println!("{}", line.as_str());
}

/// A small fixed buffer that collects output before it goes to the host.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Line { buf: [0; 512], len: 0 }
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    process::exit(1)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    eprintln!("panic: {info}");
    process::exit(101)
}
