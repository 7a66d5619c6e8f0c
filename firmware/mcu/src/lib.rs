//! What the device apps of `mote-mcu` share (the device app `mote-mcu`,
//! the minimal `mote-encoder`, the `panic-free` proof), so the proof links
//! the very code the apps run:
//! - [`memory_map`]: the board's flash slots, input area and arena size,
//!   fixed by `build.rs`;
//! - [`arena`]: the arena, a `static` handed out once;
//! - [`input`]: the parser of the flash input area (token ids or feature rows);
//! - [`device`]: flash regions, and printing output bits without `core::fmt`;
//! - [`rt`]: what differs between Cortex-M and RISC-V (entry, statics taken
//!   once, idling, the interrupt table).
#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod device;
pub mod input;
pub mod rt;

/// Memory map and arena size written by `build.rs` for `MOTE_BOARD`.
pub mod memory_map {
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}

/// Forces 16-byte alignment of what it wraps (the arena; a model's bytes,
/// which `Model::from_bytes` reads in place, are aligned by their slot).
#[repr(C, align(16))]
pub struct Aligned<T: ?Sized>(pub T);

/// The arena, in `.bss`.
static ARENA: rt::Once<Aligned<[u8; memory_map::ARENA_BYTES]>> =
    rt::Once::new(Aligned([0; memory_map::ARENA_BYTES]));

/// The arena (`memory_map::ARENA_BYTES`, 16-byte aligned), the first time;
/// `None` after.
pub fn arena() -> Option<&'static mut [u8]> {
    ARENA.take().map(|a| &mut a.0[..])
}
