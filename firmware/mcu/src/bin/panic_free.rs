//! The panic-free proof: the device's load-and-run path (both slots opened,
//! the model validated, a session on the static arena, `Session::run` on
//! token ids or feature rows: a classifier's logits, an encoder's pooled
//! embedding, a decoder's `prefill`) linked with a panic handler that calls a function
//! that does not exist. If any panic path survives optimization, the link
//! fails and names it; `cargo xtask test` builds this binary.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

#[path = "../rt.rs"]
mod rt;

use mote_core::{slot, Input, RunConfig, Session};

#[repr(C, align(16))]
struct Aligned<T>(T);

#[allow(dead_code)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}
use generated::{ARENA_BYTES, INPUT, INPUT_LEN, SLOT_A, SLOT_B, SLOT_LEN};

#[allow(unsafe_code)]
fn flash(addr: usize, len: usize) -> &'static [u8] {
    // SAFETY: flash regions reserved by the memory map (see the main app).
    unsafe { core::slice::from_raw_parts(addr as *const u8, len) }
}

/// Where the result goes (so the work is not optimized away).
static RESULT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

static ARENA: rt::Once<Aligned<[u8; ARENA_BYTES]>> = rt::Once::new(Aligned([0; ARENA_BYTES]));

#[rt::entry]
fn main() -> ! {
    let Some(arena) = ARENA.take() else {
        loop {}
    };
    let bits = run(&mut arena.0).unwrap_or(u32::MAX);
    RESULT.store(bits, core::sync::atomic::Ordering::Relaxed);
    loop {
        rt::idle();
    }
}

fn run(arena: &mut [u8]) -> Result<u32, mote_core::Error> {
    let choice = slot::choose(flash(SLOT_A, SLOT_LEN), flash(SLOT_B, SLOT_LEN));
    let Some((_, _, model)) = choice.chosen else {
        return Err(mote_core::Error::EmptySlot);
    };
    let input = flash(INPUT, INPUT_LEN);
    let mut ids = [0u32; 64];
    let mut n = 0;
    for (id, w) in ids.iter_mut().zip(input.chunks_exact(4).skip(2)) {
        *id = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        n += 1;
    }
    let count = input.get(4..8).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])) as usize;
    let ids = ids.get(..count.min(n)).unwrap_or(&[]);
    // The checker's own test: an index the compiler cannot prove in range.
    #[cfg(feature = "panic-demo")]
    let _ = core::hint::black_box([1u32, 2, 3])[core::hint::black_box(ids.len())];
    // The same words read as f32 feature values when the area says MFEA.
    let mut feats = [0f32; 64];
    for (f, id) in feats.iter_mut().zip(ids) {
        *f = f32::from_bits(*id);
    }
    let input = if input.get(..4) == Some(b"MFEA".as_slice()) {
        Input::Features(feats.get(..ids.len()).unwrap_or(&[]))
    } else {
        Input::Ids(ids)
    };
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
