//! Arm Helium (MVE, Cortex-M55/M85) kernels: `VLDRB` loads 16 int8 lanes,
//! `VMLADAVA.S8` multiplies them lane by lane with another vector and adds
//! all 16 products to a general-purpose register. Exact (a block's sum fits
//! i32 easily), so the results are the scalar definition's.

use core::arch::asm;

/// Exact `Σ w0[i]·x[i]` and `Σ w1[i]·x[i]` over one 32-element block:
/// the two activation vectors are loaded once for both rows (10
/// instructions for 64 MACs).
#[inline(always)]
pub(crate) fn block2(w0: &[i8], w1: &[i8], x: &[i8]) -> [i32; 2] {
    let Some((w0, w1, x)) = crate::quant::arch::arm_dsp::whole_block(w0, w1, x) else {
        return [dot_i8(w0, x), dot_i8(w1, x)];
    };
    let (mut a0, mut a1) = (0i32, 0i32);
    // SAFETY: reads exactly 32 bytes from each array (two 16-byte
    // `VLDRB` each, byte loads need no alignment); q0–q3 (s0–s15) are
    // declared clobbered; `VMLADAVA` needs even accumulator registers,
    // hence r0 and r2; MVE is present (`Backend::Helium::available`).
    unsafe {
        asm!(
            "vldrb.u8 q0, [{px}]",
            "vldrb.u8 q1, [{px}, #16]",
            "vldrb.u8 q2, [{p0}]",
            "vmladava.s8 r0, q2, q0",
            "vldrb.u8 q3, [{p1}]",
            "vmladava.s8 r2, q3, q0",
            "vldrb.u8 q2, [{p0}, #16]",
            "vmladava.s8 r0, q2, q1",
            "vldrb.u8 q3, [{p1}, #16]",
            "vmladava.s8 r2, q3, q1",
            px = in(reg) x.as_ptr(),
            p0 = in(reg) w0.as_ptr(),
            p1 = in(reg) w1.as_ptr(),
            inout("r0") a0,
            inout("r2") a1,
            out("d0") _, out("d1") _, out("d2") _, out("d3") _,
            out("d4") _, out("d5") _, out("d6") _, out("d7") _,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    [a0, a1]
}

/// Exact `Σ w0[i]·x[i]` and `Σ w1[i]·x[i]` over the first `16·n`
/// elements, the loop inside the asm: per 16 elements one activation
/// load shared by both rows, then per row a load and a `VMLADAVA`
/// (5 instructions per 32 MACs, plus 2 per 32 elements for the loop).
#[inline(always)]
fn rows2(w0: &[i8], w1: &[i8], x: &[i8], n: usize) -> [i32; 2] {
    let (mut a0, mut a1) = (0i32, 0i32);
    let len = n.saturating_mul(16);
    if n == 0 || len > w0.len() || len > w1.len() || len > x.len() {
        return [0; 2];
    }
    // SAFETY: `16·n` bytes are readable from each slice (checked
    // above), read as `n` post-incremented 16-byte `VLDRB`s each;
    // q0–q2 (d0–d5) are clobbered; `VMLADAVA` accumulates into the even
    // registers r0 and r2; the loop's `SUBS` sets the flags; MVE is
    // present (`Backend::Helium::available`).
    unsafe {
        asm!(
            "2:",
            "vldrb.u8 q0, [{px}], #16",
            "vldrb.u8 q1, [{p0}], #16",
            "vmladava.s8 r0, q1, q0",
            "vldrb.u8 q2, [{p1}], #16",
            "vmladava.s8 r2, q2, q0",
            "subs {n}, {n}, #1",
            "bne 2b",
            px = inout(reg) x.as_ptr() => _,
            p0 = inout(reg) w0.as_ptr() => _,
            p1 = inout(reg) w1.as_ptr() => _,
            n = inout(reg) n => _,
            inout("r0") a0,
            inout("r2") a1,
            out("d0") _, out("d1") _, out("d2") _, out("d3") _, out("d4") _, out("d5") _,
            options(pure, readonly, nostack),
        );
    }
    [a0, a1]
}

/// Whole-row products two rows at a time ([`rows2`] over whole
/// 16-element groups, the scalar definition on the rest), an odd last
/// row by [`dot_i8`].
pub(crate) fn gemv(out: &mut [i32], w: &[i8], x: &[i8]) {
    let cols = x.len();
    let n = cols / 16;
    let whole = n * 16;
    let xt = x.get(whole..).unwrap_or(&[]);
    for (o, pair) in out.chunks_exact_mut(2).zip(w.chunks_exact(2 * cols)) {
        let Some((w0, w1)) = pair.split_at_checked(cols) else {
            continue;
        };
        let [s0, s1] = rows2(w0, w1, x, n);
        let t0 = crate::quant::reference::dot_i8_scalar(w0.get(whole..).unwrap_or(&[]), xt);
        let t1 = crate::quant::reference::dot_i8_scalar(w1.get(whole..).unwrap_or(&[]), xt);
        o[0] = s0.wrapping_add(t0);
        o[1] = s1.wrapping_add(t1);
    }
    let last = out.len() & !1;
    if let (Some(o), Some(r)) = (out.get_mut(last), w.get(last * cols..(last + 1) * cols)) {
        *o = dot_i8(r, x);
    }
}

/// Exact (wrapping, as the scalar definition) `Σ a[i]·b[i]`: 16 lanes at a time.
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let mut acc = 0i32;
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n, so 16 bytes are readable from both
        // slices at i; q0/q1 (d0–d3) clobbered; r0 is an even register.
        unsafe {
            asm!(
                "vldrb.u8 q0, [{pa}]",
                "vldrb.u8 q1, [{pb}]",
                "vmladava.s8 r0, q0, q1",
                pa = in(reg) a.as_ptr().add(i),
                pb = in(reg) b.as_ptr().add(i),
                inout("r0") acc,
                out("d0") _, out("d1") _, out("d2") _, out("d3") _,
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        i += 16;
    }
    let (ta, tb) = (a.get(i..n).unwrap_or(&[]), b.get(i..n).unwrap_or(&[]));
    acc.wrapping_add(crate::quant::reference::dot_i8_scalar(ta, tb))
}
