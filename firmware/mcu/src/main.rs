//! The Mote device app for Cortex-M and RISC-V boards (QEMU `mps2-an386`
//! M4F, `mps2-an500` M7, `mps2-an505` M33, `mps3-an547` M55, `virt` RV32IMC;
//! STM32F746 and nRF52840 memory maps build too).
//!
//! The firmware holds no model: it opens the two flash model slots (A/B) at
//! fixed addresses, runs the newest valid one (reporting why the other was
//! passed over) on the input in the flash input area (token ids, feature
//! rows such as an image's patches, or 16 kHz PCM for a model with an audio
//! front end), and prints over semihosting:
//! - `kernel check: …` (`mote_core::selfcheck`: every backend this core runs
//!   against the scalar definition, before anything else) and the GEMV
//!   probes' lines (the cost markers below),
//! - `slot: A seq 3` (and `slot B passed over: <error>` when one is bad),
//! - `logits: ` (a classifier head, or a decoder after `prefill`) or
//!   `embedding: ` (an encoder's pooled vector), then every `f32` as the 8
//!   hex digits of its bits,
//! - for PCM: the samples streamed through the model's front end hop by
//!   hop, a window classified every [`EVERY`] frames, `detection: <label>
//!   <score bits> at <ms> ms` for each keyword (`mote_core::audio::detect`,
//!   as `mote classify --stream`), then `windows: N` and the last window's
//!   `logits:`,
//! - `stack: N bytes` (high-water mark, by stack painting), `arena: N bytes`.
//!
//! Exit code: 0 ok, 1 on a `mote_core::Error` (printed), 101 on a panic.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use mote_core::slot::{self, SlotId};
use mote_core::{RunConfig, Session};
use mote_mcu::device::{flash, print_bits};
use mote_mcu::memory_map::{ARENA_BYTES, INPUT, INPUT_LEN, SLOT_A, SLOT_B, SLOT_LEN};
use mote_mcu::{input, rt};
use semihosting::{eprintln, println, process};

/// Cost markers: `tools/qemu-icount` counts the instructions executed
/// between entering a start marker and entering its end marker. Distinct
/// bodies, so the linker cannot fold them into one function. `no_mangle`
/// (which `unsafe_code` flags) only fixes their names: nothing else in the
/// image defines these symbols.
#[allow(unsafe_code)]
mod markers {
    /// Start of the inference region.
    #[no_mangle]
    #[inline(never)]
    pub extern "C" fn mote_mark_start(x: u32) -> u32 {
        core::hint::black_box(x).wrapping_add(1)
    }
    /// See [`mote_mark_start`].
    #[no_mangle]
    #[inline(never)]
    pub extern "C" fn mote_mark_end(x: u32) -> u32 {
        core::hint::black_box(x) ^ 0x5a5a
    }
    /// Around each classified window of a PCM stream (the model alone; the
    /// front end is the rest of the `mote_mark_*` region).
    #[no_mangle]
    #[inline(never)]
    pub extern "C" fn mote_window_start(x: u32) -> u32 {
        core::hint::black_box(x).wrapping_mul(7)
    }
    /// See [`mote_window_start`].
    #[no_mangle]
    #[inline(never)]
    pub extern "C" fn mote_window_end(x: u32) -> u32 {
        core::hint::black_box(x).rotate_left(13)
    }
    /// Around the int8 GEMV probe.
    #[no_mangle]
    #[inline(never)]
    pub extern "C" fn mote_gemv_start(x: u32) -> u32 {
        core::hint::black_box(x).wrapping_mul(3)
    }
    /// See [`mote_gemv_start`].
    #[no_mangle]
    #[inline(never)]
    pub extern "C" fn mote_gemv_end(x: u32) -> u32 {
        core::hint::black_box(x).rotate_left(7)
    }
    /// Around the integer-only path's whole-row GEMV probe.
    #[no_mangle]
    #[inline(never)]
    pub extern "C" fn mote_igemv_start(x: u32) -> u32 {
        core::hint::black_box(x).wrapping_mul(5)
    }
    /// See [`mote_igemv_start`].
    #[no_mangle]
    #[inline(never)]
    pub extern "C" fn mote_igemv_end(x: u32) -> u32 {
        core::hint::black_box(x).rotate_left(11)
    }
}
use markers::{
    mote_gemv_end, mote_gemv_start, mote_igemv_end, mote_igemv_start, mote_mark_end,
    mote_mark_start, mote_window_end, mote_window_start,
};

/// The int8 GEMV probe: `GEMV_ROWS × GEMV_COLS` int8 weights (per-row
/// scales) times an int8 vector, the kernel every int8 matrix goes through,
/// run once between `mote_gemv_start` and `mote_gemv_end`.
pub const GEMV_ROWS: usize = 64;
/// Columns of the probe (eight 32-element blocks).
pub const GEMV_COLS: usize = 256;

struct Probe {
    w: [i8; GEMV_ROWS * GEMV_COLS],
    x: [i8; GEMV_COLS],
    xf: [f32; GEMV_COLS],
    xs: [f32; GEMV_COLS / mote_core::quant::BLOCK],
    ws: [f32; GEMV_ROWS * GEMV_COLS / mote_core::quant::BLOCK],
    out: [f32; GEMV_ROWS],
    iout: [i32; GEMV_ROWS],
}

static PROBE: rt::Once<Probe> = rt::Once::new(Probe {
    w: [0; GEMV_ROWS * GEMV_COLS],
    x: [0; GEMV_COLS],
    xf: [0.0; GEMV_COLS],
    xs: [0.0; GEMV_COLS / mote_core::quant::BLOCK],
    ws: [0.0; GEMV_ROWS * GEMV_COLS / mote_core::quant::BLOCK],
    out: [0.0; GEMV_ROWS],
    iout: [0; GEMV_ROWS],
});

/// The kernel self-check's buffers.
static CHECK: rt::Once<mote_core::selfcheck::Workspace> = rt::Once::new(mote_core::selfcheck::Workspace::new());

/// The kernel self-check (`mote_core::selfcheck`: every backend this core
/// runs against the scalar definition); exits 1 on a difference.
fn kernel_check() {
    let Some(ws) = CHECK.take() else {
        fail("kernel check: workspace already taken")
    };
    match mote_core::selfcheck::check_kernels(ws) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("error: {e}");
            process::exit(1)
        }
    }
}

fn gemv_probe() {
    let Some(p) = PROBE.take() else {
        return;
    };
    let mut state = 0x1234_5678u32;
    for v in p.w.iter_mut().chain(p.x.iter_mut()) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *v = ((state >> 24) as i8).max(-127);
    }
    for (i, v) in p.xs.iter_mut().enumerate() {
        *v = 0.01 + 0.001 * i as f32;
    }
    for (i, v) in p.ws.iter_mut().enumerate() {
        *v = 0.02 - 0.0001 * i as f32;
    }
    let act = mote_core::quant::Activations { q: &p.x, scales: &p.xs, outliers: &[], values: &p.xf };
    let m = mote_gemv_start(0);
    let _ = mote_core::quant::gemv_i8_blocked_with(mote_core::quant::Backend::best(), &mut p.out, &p.w, mote_core::quant::WeightScales::Row(&p.ws), &act, None);
    let _ = mote_gemv_end(m);
    println!("gemv probe: {}x{} int8, out[0] bits {:08x}", GEMV_ROWS, GEMV_COLS, p.out[0].to_bits());
    let m = mote_igemv_start(0);
    let _ = mote_core::quant::gemv_i8_with(mote_core::quant::Backend::best(), &mut p.iout, &p.w, &p.x);
    let _ = mote_igemv_end(m);
    println!("integer gemv probe: out[0] {}", p.iout[0]);
}

#[rt::entry]
fn main() -> ! {
    stack::paint();
    kernel_check();
    gemv_probe();
    let Some(arena) = mote_mcu::arena() else {
        fail("arena already taken")
    };
    let code = match run(arena) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    println!("stack: {} bytes", stack::high_water());
    println!("arena: {ARENA_BYTES} bytes");
    process::exit(code)
}

fn run(arena: &mut [u8]) -> Result<(), mote_core::Error> {
    let choice = slot::choose(flash(SLOT_A, SLOT_LEN), flash(SLOT_B, SLOT_LEN));
    for (id, err) in [(SlotId::A, choice.a_error), (SlotId::B, choice.b_error)] {
        if let Some(e) = err {
            println!("slot {} passed over: {e}", id.name());
        }
    }
    let Some((id, seq, model)) = choice.chosen else {
        fail("no valid model in slot A or B")
    };
    println!("slot: {} seq {seq}", id.name());
    if let Some(pcm) = input::pcm(flash(INPUT, INPUT_LEN)) {
        let pcm = pcm.unwrap_or_else(|e| fail(e.summary()));
        return run_audio(&model, arena, pcm);
    }
    let mut buf = input::Buffers::new();
    let inp = input::parse(flash(INPUT, INPUT_LEN), &mut buf).unwrap_or_else(|e| fail(e.summary()));
    let rows = inp.rows(model.config());
    let run = RunConfig { max_seq: rows.max(1) as u32 };
    let mark = mote_mark_start(rows as u32);
    let mut session = Session::new(&model, arena, run)?;
    let out = session.run(inp)?;
    let (label, values) = (out.label(), out.values());
    let _ = mote_mark_end(mark);
    print_bits(label, values);
    Ok(())
}

/// Frames between classified windows of a stream (100 ms at the keyword
/// front end's 20 ms hop; `mote classify --stream`'s `--every`).
pub const EVERY: u32 = 5;
/// Most feature values in one model window.
const MAX_WINDOW: usize = 4096;

struct Audio {
    scratch: mote_core::audio::Scratch,
    rows: [f32; MAX_WINDOW],
    /// The window the model reads (the rows normalised: `FrontEnd::normalize_window`).
    window: [f32; MAX_WINDOW],
    last: [f32; mote_core::audio::detect::MAX_CLASSES],
}

static AUDIO: rt::Once<Audio> = rt::Once::new(Audio {
    scratch: mote_core::audio::Scratch::new(),
    rows: [0.0; MAX_WINDOW],
    window: [0.0; MAX_WINDOW],
    last: [0.0; mote_core::audio::detect::MAX_CLASSES],
});

/// Streams `pcm` (i16 LE) through the model's front end and classifier as
/// a device hears a microphone: one row per hop, a window every [`EVERY`]
/// rows once the first is full, each detection printed as it happens.
fn run_audio(model: &mote_core::Model, arena: &mut [u8], pcm: &[u8]) -> Result<(), mote_core::Error> {
    use mote_core::audio::detect::{Detector, Settings};
    let fe = model.audio()?;
    let Some(a) = AUDIO.take() else { fail("audio buffers already taken") };
    let window = match fe.window_frames {
        0 => model.config().max_seq,
        w => w,
    } as usize;
    let width = fe.n_mels as usize;
    let Some(rows) = a.rows.get_mut(..window * width) else { fail("the model's window is larger than the app's buffer") };
    let labels = model.labels();
    let n_classes = model.config().n_classes as usize;
    let keywords = (0..n_classes.min(32))
        .filter(|&i| !matches!(labels.get(i).map(|n| n.trim_matches('_')), Some("silence" | "unknown")))
        .fold(0u32, |m, i| m | 1 << i);
    // One second between reports, counted in windows (as the host rounds it).
    let per_second = (fe.sample_rate + fe.hop * EVERY / 2) / (fe.hop * EVERY);
    let settings = Settings { refractory: per_second, ..Settings::default() };
    let mut detector = Detector::new(n_classes, keywords, settings);
    let mut session = Session::new(model, arena, RunConfig { max_seq: window as u32 })?;
    let mut stream = mote_core::audio::Stream::new(fe)?;
    let Some(input) = a.window.get_mut(..window * width) else { fail("the model's window is larger than the app's buffer") };
    let (last, scratch) = (&mut a.last, &mut a.scratch);
    let mut windows = 0u32;
    let mark = mote_mark_start(pcm.len() as u32);
    let mut block = [0i16; 256];
    for chunk in pcm.chunks(2 * block.len()) {
        let n = chunk.len() / 2;
        for (s, b) in block.iter_mut().zip(chunk.chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]);
        }
        stream.push::<mote_core::Error>(block.get(..n).unwrap_or(&[]), scratch, |t, row| {
            let t = t as usize;
            // A ring of rows: row t in slot t mod window; nothing moves per hop.
            let slot = t % window;
            if let Some(r) = rows.get_mut(slot * width..(slot + 1) * width) {
                r.copy_from_slice(row);
            }
            if t + 1 < window || !((t + 1 - window) as u32).is_multiple_of(EVERY) {
                return Ok(());
            }
            let w = mote_window_start(windows);
            // The window oldest row first: slots after this one, then up to it.
            let split = (slot + 1) * width;
            let (newer, older) = rows.split_at(split.min(rows.len()));
            let (head, tail) = input.split_at_mut(older.len());
            head.copy_from_slice(older);
            tail.copy_from_slice(newer);
            fe.normalize_window(input);
            let logits = session.classify_features(input)?;
            let _ = mote_window_end(w);
            windows += 1;
            for (l, v) in last.iter_mut().zip(logits) {
                *l = *v;
            }
            if let Some(d) = detector.push(logits) {
                let ms = (t as u64 * fe.hop as u64 + fe.frame_len as u64) * 1000 / fe.sample_rate as u64;
                println!("detection: {} {:08x} at {ms} ms", labels.get(d.class).unwrap_or("?"), d.score.to_bits());
            }
            Ok(())
        })?;
    }
    let _ = mote_mark_end(mark);
    println!("windows: {windows}");
    print_bits("logits", last.get(..n_classes).unwrap_or(&[]));
    Ok(())
}

/// Stack high-water mark: the free stack is filled with a pattern at start;
/// the lowest word no longer holding it shows how deep the stack went.
#[allow(unsafe_code)]
mod stack {
    const PATTERN: u32 = 0x5AFE_C0DE;
    /// Bytes below the current stack pointer left alone while painting
    /// (`paint`'s own frame).
    const MARGIN: usize = 256;

    extern "C" {
        static _stack_start: u32;
        static __sheap: u32;
    }

    fn bounds() -> (usize, usize) {
        // Addresses of linker symbols (never read).
        (
            core::ptr::addr_of!(__sheap) as usize,
            core::ptr::addr_of!(_stack_start) as usize,
        )
    }

    /// Fills the unused stack (from the end of static data up to just below
    /// the current stack pointer) with the pattern.
    #[inline(never)]
    pub fn paint() {
        let (bottom, _) = bounds();
        let sp = super::rt::stack_pointer();
        let mut p = bottom;
        while p + 4 <= sp.saturating_sub(MARGIN) {
            // SAFETY: [bottom, sp - MARGIN) is RAM between the end of .bss
            // (`__sheap`; there is no heap) and the live stack: nothing uses it yet.
            unsafe { core::ptr::write_volatile(p as *mut u32, PATTERN) };
            p += 4;
        }
    }

    /// Bytes of stack used since [`paint`].
    pub fn high_water() -> usize {
        let (bottom, top) = bounds();
        let mut p = bottom;
        // SAFETY: reads RAM in [bottom, top), the stack region.
        while p + 4 <= top && unsafe { core::ptr::read_volatile(p as *const u32) } == PATTERN {
            p += 4;
        }
        top - p
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
