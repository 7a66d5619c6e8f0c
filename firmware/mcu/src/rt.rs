//! What differs between the Cortex-M and RISC-V boards, in one place: the
//! runtime's `entry` attribute, waiting for an interrupt, and statics taken
//! once (the arena, the probe buffers). Shared by every app.

#[cfg(target_arch = "arm")]
pub use cortex_m_rt::entry;
#[cfg(target_arch = "riscv32")]
pub use riscv_rt::entry;

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// The device interrupt part of the Cortex-M vector table: one entry (IRQ 0
/// goes to the default handler; `link.x` refuses an empty table). The
/// firmware enables no interrupt (every NVIC line is off from reset), so it
/// needs no handler; without cortex-m-rt's `device` feature the runtime would
/// fill 240 (Armv7-M) or 480 (Armv8-M Mainline) entries pointing at the
/// default handler, 960 or 1,920 bytes of flash. An app that enables an
/// interrupt lists its handler here, at the interrupt's number.
#[cfg(target_arch = "arm")]
// SAFETY: the only `__INTERRUPTS` in the program (cortex-m-rt defines none
// with its `device` feature); its link section is where `link.x` places the
// device vectors, right after the 16 exception vectors, and `DefaultHandler`
// is the runtime's handler for any exception or interrupt.
#[allow(unsafe_code)]
#[no_mangle]
#[link_section = ".vector_table.interrupts"]
pub static __INTERRUPTS: [unsafe extern "C" fn(); 1] = [{
    extern "C" {
        fn DefaultHandler();
    }
    DefaultHandler
}];

/// A `static` whose value is handed out as `&'static mut` at most once.
/// Replaces `cortex_m::singleton!`, which RISC-V has no equivalent of; works
/// without compare-and-swap (RV32IMC has none).
pub struct Once<T> {
    value: UnsafeCell<T>,
    taken: AtomicBool,
}

// SAFETY: the value is reachable only through `take`, which gives out one
// `&mut` in the whole program (see there).
#[allow(unsafe_code)]
unsafe impl<T> Sync for Once<T> {}

impl<T> Once<T> {
    /// A value not yet taken.
    pub const fn new(value: T) -> Self {
        Once { value: UnsafeCell::new(value), taken: AtomicBool::new(false) }
    }

    /// The value, the first time; `None` after.
    #[allow(unsafe_code)]
    pub fn take(&'static self) -> Option<&'static mut T> {
        // The firmware is single-core and enables no interrupts, so nothing
        // runs between the load and the store: a plain load/store pair is
        // the whole critical section.
        if self.taken.load(Ordering::Acquire) {
            return None;
        }
        self.taken.store(true, Ordering::Release);
        // SAFETY: `taken` was false and is now true, so this is the only
        // reference ever made to the value.
        Some(unsafe { &mut *self.value.get() })
    }
}

/// Waits for an interrupt (none come: the firmware parks here).
pub fn idle() {
    #[cfg(target_arch = "arm")]
    cortex_m::asm::wfi();
    #[cfg(target_arch = "riscv32")]
    core::hint::spin_loop();
}

/// An address in the current stack frame (the stack pointer, near enough).
#[inline(always)]
pub fn stack_pointer() -> usize {
    let marker = 0u8;
    core::hint::black_box(core::ptr::addr_of!(marker)) as usize
}
