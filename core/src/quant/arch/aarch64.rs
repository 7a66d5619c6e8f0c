//! aarch64 NEON kernels (with and without the `SDOT` dot-product
//! extension), and the f16 dot product (`fcvtl`/`fcvtl2`).

use core::arch::aarch64::*;

/// [`crate::quant::reference::dot_f16_scalar`] with the eight lanes in two NEON vectors:
/// `fcvtl`/`fcvtl2` widen eight halves exactly, then multiply and add
/// (no fused multiply-add, as the definition).
pub(crate) fn dot_f16_neon(w: &[half::f16], x: &[f32]) -> f32 {
    let n = w.len().min(x.len());
    let (w, x) = (&w[..n], &x[..n]);
    let mut cw = w.chunks_exact(crate::quant::reference::F16_LANES);
    let mut cx = x.chunks_exact(crate::quant::reference::F16_LANES);
    let mut lanes = [0.0f32; crate::quant::reference::F16_LANES];
    // SAFETY: NEON is part of every aarch64 target this crate builds
    // for; each chunk holds 8 halves (16 bytes, `f16` is a `u16`) and 8
    // floats (32 bytes), read unaligned; `lanes` has room for 8 floats.
    // The asm only converts registers (no memory, no stack, no flags).
    unsafe {
        let (mut lo, mut hi) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
        for (a, b) in (&mut cw).zip(&mut cx) {
            let h = vld1q_u16(a.as_ptr().cast());
            let (wl, wh): (float32x4_t, float32x4_t);
            core::arch::asm!(
                "fcvtl {lo:v}.4s, {h:v}.4h",
                "fcvtl2 {hi:v}.4s, {h:v}.8h",
                h = in(vreg) h,
                lo = out(vreg) wl,
                hi = out(vreg) wh,
                options(pure, nomem, nostack, preserves_flags),
            );
            lo = vaddq_f32(lo, vmulq_f32(wl, vld1q_f32(b.as_ptr())));
            hi = vaddq_f32(hi, vmulq_f32(wh, vld1q_f32(b.as_ptr().add(4))));
        }
        vst1q_f32(lanes.as_mut_ptr(), lo);
        vst1q_f32(lanes.as_mut_ptr().add(4), hi);
    }
    crate::quant::reference::finish(&lanes, cw.remainder(), cx.remainder())
}

/// NEON int8 dot product: widening multiplies (i8·i8 fits i16 exactly)
/// and pairwise widening accumulation into i32 — exact, so equal to the
/// scalar definition for any inputs.
pub(crate) fn dot_i8_neon(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let mut i = 0;
    // SAFETY: NEON is part of every aarch64 target this crate builds for
    // (`available()` checks target_feature = "neon"); loads stay below n.
    let total = unsafe {
        let mut acc = vdupq_n_s32(0);
        while i + 16 <= n {
            let va = vld1q_s8(a.as_ptr().add(i));
            let vb = vld1q_s8(b.as_ptr().add(i));
            let lo = vmull_s8(vget_low_s8(va), vget_low_s8(vb));
            let hi = vmull_high_s8(va, vb);
            acc = vpadalq_s16(acc, lo);
            acc = vpadalq_s16(acc, hi);
            i += 16;
        }
        vaddvq_s32(acc)
    };
    total.wrapping_add(crate::quant::reference::dot_i8_scalar(&a[i..n], &b[i..n]))
}

/// NEON dot-product-extension int8 dot product: `SDOT` adds four i8·i8
/// products into each i32 lane, exactly, so the result is the scalar
/// definition's (wrapping) for any inputs.
///
/// # Safety
/// The CPU must support the dot-product extension (`dotprod`).
#[target_feature(enable = "neon,dotprod")]
pub(crate) unsafe fn dot_i8_sdot(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let mut i = 0;
    let mut acc = vdupq_n_s32(0);
    while i + 16 <= n {
        // SAFETY: i + 16 <= n <= len of both slices; vld1q has no alignment need.
        let (va, vb) = unsafe { (vld1q_s8(a.as_ptr().add(i)), vld1q_s8(b.as_ptr().add(i))) };
        // SAFETY: SDOT only reads and writes the three vector registers;
        // the caller guarantees the CPU has it.
        unsafe {
            core::arch::asm!(
                "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) va,
                b = in(vreg) vb,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        i += 16;
    }
    let (ta, tb) = (a.get(i..n).unwrap_or(&[]), b.get(i..n).unwrap_or(&[]));
    vaddvq_s32(acc).wrapping_add(crate::quant::reference::dot_i8_scalar(ta, tb))
}
