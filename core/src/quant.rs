//! Integer kernels: int8 dot products and matrix–vector products with int32
//! accumulation, and TFLite-style fixed-point requantization.
//!
//! The scalar functions are the definition. SIMD variants (x86_64 AVX2 and
//! SSE4.1, aarch64 NEON with and without `SDOT`, Arm DSP and Helium) sit behind one safe dispatcher per family and must return
//! exactly the scalar bits; tests force each available variant.
//!
//! Inputs: weights are any `i8`; activations must lie in `[-127, 127]` (the
//! quantizers here never produce -128). With that, no SIMD step can saturate,
//! which is what makes the variants bit-identical.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

/// A kernel implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Plain Rust, every target: the definition.
    Scalar,
    /// x86_64 SSE4.1.
    Sse41,
    /// x86_64 AVX2.
    Avx2,
    /// aarch64 NEON (Advanced SIMD): widening multiplies, pairwise adds.
    Neon,
    /// aarch64 NEON with the dot-product extension (`SDOT`: Armv8.2+, e.g.
    /// Cortex-A55/A76): sixteen int8 MACs an instruction.
    NeonDot,
    /// Arm DSP extension (`SXTB16`/`SMLAD`: Cortex-M4/M7/M33), two rows at a time.
    Dsp,
    /// Arm Helium (M-profile Vector Extension, Cortex-M55/M85): `VMLADAVA`, 16 MACs an instruction.
    Helium,
}

impl Backend {
    /// Every backend.
    pub const ALL: [Backend; 7] = [
        Backend::Scalar,
        Backend::Sse41,
        Backend::Avx2,
        Backend::Neon,
        Backend::NeonDot,
        Backend::Dsp,
        Backend::Helium,
    ];

    /// The backend's lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Sse41 => "sse4.1",
            Backend::Avx2 => "avx2",
            Backend::Neon => "neon",
            Backend::NeonDot => "neon-dot",
            Backend::Dsp => "dsp",
            Backend::Helium => "helium",
        }
    }

    /// The backend with this name.
    pub fn from_name(name: &str) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| b.name() == name)
    }

    /// True when this backend can run on this machine.
    pub fn available(self) -> bool {
        match self {
            Backend::Scalar => true,
            #[cfg(all(target_arch = "x86_64", feature = "std"))]
            Backend::Sse41 => std::is_x86_feature_detected!("sse4.1"),
            #[cfg(all(target_arch = "x86_64", feature = "std"))]
            Backend::Avx2 => std::is_x86_feature_detected!("avx2"),
            #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
            Backend::Sse41 => cfg!(target_feature = "sse4.1"),
            #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
            Backend::Avx2 => cfg!(target_feature = "avx2"),
            #[cfg(target_arch = "aarch64")]
            Backend::Neon => cfg!(target_feature = "neon"),
            #[cfg(all(target_arch = "aarch64", feature = "std"))]
            Backend::NeonDot => std::arch::is_aarch64_feature_detected!("dotprod"),
            #[cfg(all(target_arch = "aarch64", not(feature = "std")))]
            Backend::NeonDot => cfg!(target_feature = "dotprod"),
            #[cfg(target_arch = "arm")]
            Backend::Dsp => cfg!(target_feature = "dsp"),
            // Rust reports MVE-integer cores (M55/M85) as `neon` + `mclass`;
            // no other M-profile core has `neon`.
            #[cfg(target_arch = "arm")]
            Backend::Helium => cfg!(all(target_feature = "mclass", target_feature = "neon")),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The backend every dispatcher uses: the one chosen with [`force`] if
    /// any (and available), else the best this machine runs.
    pub fn best() -> Backend {
        let forced = FORCED.load(core::sync::atomic::Ordering::Relaxed);
        if let Some(b) = Backend::ALL
            .get(forced as usize)
            .copied()
            .filter(|b| b.available())
        {
            return b;
        }
        if Backend::NeonDot.available() {
            Backend::NeonDot
        } else if Backend::Neon.available() {
            Backend::Neon
        } else if Backend::Helium.available() {
            Backend::Helium
        } else if Backend::Dsp.available() {
            Backend::Dsp
        } else if Backend::Avx2.available() {
            Backend::Avx2
        } else if Backend::Sse41.available() {
            Backend::Sse41
        } else {
            Backend::Scalar
        }
    }
}

/// Index into [`Backend::ALL`] of the forced backend; out of range = none.
static FORCED: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(u8::MAX);

/// Makes every dispatcher use `backend` (`None`: the best available again).
/// Returns false, changing nothing, when `backend` cannot run here. Used by
/// tests and `MOTE_BACKEND` to prove whole models give the same bits on every backend.
pub fn force(backend: Option<Backend>) -> bool {
    let index = match backend {
        Some(b) if !b.available() => return false,
        Some(b) => Backend::ALL
            .iter()
            .position(|&x| x == b)
            .unwrap_or(u8::MAX as usize) as u8,
        None => u8::MAX,
    };
    FORCED.store(index, core::sync::atomic::Ordering::Relaxed);
    true
}

/// The definition: `Σ a[i]·b[i]` over the shorter length, in `i32`
/// (wrapping, as every SIMD variant does, should a hostile model overflow it).
pub fn dot_i8_scalar(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .fold(0i32, |acc, (&x, &y)| acc.wrapping_add(x as i32 * y as i32))
}

/// Lanes of partial sums in [`dot_f16`]: those of [`crate::kernels::dot`].
const F16_LANES: usize = 8;

/// [`crate::kernels::dot`] of an f16 row (widened exactly to f32) and `x`, without a
/// widened copy of the row: the same eight lanes, the same order, no fused
/// multiply-add, so the same bits as `kernels::dot` of the widened row. On x86_64
/// hosts with AVX2 and F16C (`std`, detected at run time) eight halves are
/// widened by one `vcvtph2ps` and multiplied and added as one 8-lane vector;
/// on aarch64 by `fcvtl`/`fcvtl2` into two 4-lane NEON vectors. A forced
/// scalar backend ([`force`]) runs the definition.
pub fn dot_f16(w: &[half::f16], x: &[f32]) -> f32 {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if !scalar_forced()
        && std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("f16c")
    {
        // SAFETY: both features were just detected on this CPU.
        return unsafe { f16c::dot_f16(w, x) };
    }
    #[cfg(target_arch = "aarch64")]
    if !scalar_forced() {
        return arm::dot_f16_neon(w, x);
    }
    dot_f16_scalar(w, x)
}

/// Whether [`force`] chose the scalar backend: one load per call, cheaper
/// than [`Backend::best`] on a per-row path.
#[allow(dead_code)]
fn scalar_forced() -> bool {
    let forced = FORCED.load(core::sync::atomic::Ordering::Relaxed) as usize;
    Backend::ALL.get(forced) == Some(&Backend::Scalar)
}

/// The definition of [`dot_f16`] (any target).
pub fn dot_f16_scalar(w: &[half::f16], x: &[f32]) -> f32 {
    let n = w.len().min(x.len());
    let (w, x) = (&w[..n], &x[..n]);
    let mut acc = [0.0f32; F16_LANES];
    let mut cw = w.chunks_exact(F16_LANES);
    let mut cx = x.chunks_exact(F16_LANES);
    for (a, b) in (&mut cw).zip(&mut cx) {
        for ((s, h), v) in acc.iter_mut().zip(a).zip(b) {
            *s += h.to_f32() * v;
        }
    }
    finish(&acc, cw.remainder(), cx.remainder())
}

/// The lane reduction and tail shared by the f16 dot products.
#[inline(always)]
fn finish(acc: &[f32; F16_LANES], w: &[half::f16], x: &[f32]) -> f32 {
    let mut tail = 0.0f32;
    for (h, v) in w.iter().zip(x) {
        tail += h.to_f32() * v;
    }
    let s01 = (acc[0] + acc[4]) + (acc[1] + acc[5]);
    let s23 = (acc[2] + acc[6]) + (acc[3] + acc[7]);
    s01 + s23 + tail
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod f16c {
    use super::F16_LANES as LANES;
    use core::arch::x86_64::*;

    /// [`super::dot_f16_scalar`] with one 8-lane vector of partial sums.
    ///
    /// # Safety
    /// The CPU must have AVX2 and F16C.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn dot_f16(w: &[half::f16], x: &[f32]) -> f32 {
        let n = w.len().min(x.len());
        let (w, x) = (&w[..n], &x[..n]);
        let mut cw = w.chunks_exact(LANES);
        let mut cx = x.chunks_exact(LANES);
        let mut acc = _mm256_setzero_ps();
        for (a, b) in (&mut cw).zip(&mut cx) {
            // SAFETY: `a` holds 8 halves (16 bytes) and `b` 8 floats (32
            // bytes), both read unaligned.
            let (wv, xv) = unsafe {
                (
                    _mm256_cvtph_ps(_mm_loadu_si128(a.as_ptr().cast())),
                    _mm256_loadu_ps(b.as_ptr()),
                )
            };
            // Multiply, then add: no FMA, as the definition.
            acc = _mm256_add_ps(acc, _mm256_mul_ps(wv, xv));
        }
        let mut lanes = [0.0f32; LANES];
        // SAFETY: `lanes` has room for 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
        super::finish(&lanes, cw.remainder(), cx.remainder())
    }
}

/// `out[r] = Σ_c w[r, c]·x[c]` for row-major `w` with `x.len()` columns,
/// on the given backend (`None` if it cannot run here).
pub fn gemv_i8_with(backend: Backend, out: &mut [i32], w: &[i8], x: &[i8]) -> Option<()> {
    if !backend.available() {
        return None;
    }
    let cols = x.len();
    if cols == 0 {
        out.fill(0);
        return Some(());
    }
    let rows = out.iter_mut().zip(w.chunks_exact(cols));
    match backend {
        Backend::Scalar => rows.for_each(|(o, r)| *o = dot_i8_scalar(r, x)),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 => {
            // SAFETY: `available()` confirmed AVX2 on this CPU.
            rows.for_each(|(o, r)| *o = unsafe { x86::dot_i8_avx2(r, x) })
        }
        #[cfg(target_arch = "x86_64")]
        Backend::Sse41 => {
            // SAFETY: `available()` confirmed SSE4.1 on this CPU.
            rows.for_each(|(o, r)| *o = unsafe { x86::dot_i8_sse41(r, x) })
        }
        #[cfg(target_arch = "aarch64")]
        Backend::Neon => rows.for_each(|(o, r)| *o = arm::dot_i8_neon(r, x)),
        #[cfg(target_arch = "aarch64")]
        Backend::NeonDot => {
            // SAFETY: `available()` confirmed the dot-product extension.
            rows.for_each(|(o, r)| *o = unsafe { arm::dot_i8_sdot(r, x) })
        }
        #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
        Backend::Dsp => dsp::gemv(out, w, x),
        #[cfg(all(
            target_arch = "arm",
            target_feature = "mclass",
            target_feature = "neon"
        ))]
        Backend::Helium => helium::gemv(out, w, x),
        #[allow(unreachable_patterns)]
        _ => return None,
    }
    Some(())
}

/// Whole-row products two rows at a time with a two-row 32-element block
/// kernel (the activation block is loaded and unpacked once for both
/// rows); an odd last row by `dot`. Sums wrap, as the scalar definition's.
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[inline(always)]
fn rows_by_two(
    out: &mut [i32],
    w: &[i8],
    x: &[i8],
    block2: impl Fn(&[i8], &[i8], &[i8]) -> [i32; 2],
    dot: impl Fn(&[i8], &[i8]) -> i32,
) {
    let cols = x.len();
    for (o, pair) in out.chunks_exact_mut(2).zip(w.chunks_exact(2 * cols)) {
        let Some((w0, w1)) = pair.split_at_checked(cols) else {
            continue;
        };
        let mut acc = [0i32; 2];
        for ((b0, b1), xb) in w0.chunks(BLOCK).zip(w1.chunks(BLOCK)).zip(x.chunks(BLOCK)) {
            let [s0, s1] = block2(b0, b1, xb);
            acc[0] = acc[0].wrapping_add(s0);
            acc[1] = acc[1].wrapping_add(s1);
        }
        o[0] = acc[0];
        o[1] = acc[1];
    }
    let last = out.len() & !1;
    if let (Some(o), Some(r)) = (out.get_mut(last), w.get(last * cols..(last + 1) * cols)) {
        *o = dot(r, x);
    }
}

/// Activations with `|x|` above this stay out of the int8 copy and are added
/// exactly in f32 (LLM.int8()-style outlier channels).
pub const OUTLIER_LIMIT: f32 = 6.0;

/// Elements per activation block: each block of an int8 activation vector
/// has its own scale, so one outlier channel only coarsens its own block.
pub const BLOCK: usize = 32;

/// Quantizes `x` block by block ([`BLOCK`] elements, the last may be short)
/// with [`quantize_symmetric`]; writes one scale per block into `scales`.
pub fn quantize_blocks(x: &[f32], q: &mut [i8], scales: &mut [f32]) {
    for ((xb, qb), s) in x
        .chunks(BLOCK)
        .zip(q.chunks_mut(BLOCK))
        .zip(scales.iter_mut())
    {
        *s = quantize_symmetric(xb, qb);
    }
}

/// Scales of an int8 weight matrix.
#[derive(Debug, Clone, Copy)]
pub enum WeightScales<'a> {
    /// One per row.
    Row(&'a [f32]),
    /// One per row and [`BLOCK`]-column block, row-major `[rows, ceil(cols / BLOCK)]`.
    Block(&'a [f32]),
}

/// An int8 matrix (per-row or per-block scales) times an int8 vector with
/// per-block scales, plus an optional bias, plus the exact f32 contribution
/// of the vector's outlier channels (added last, in channel order).
///
/// The definition of the float part, which every backend follows exactly:
/// block `b`'s exact integer sum `d_b` is scaled by `x_scales[b]` (per-row
/// weights) or by `(x_scales[b] * w_scale[r, b])` (per-block weights) and
/// added to lane `b % 8` of eight partial sums, in block order; the lanes are
/// reduced as `((p0+p1)+(p2+p3))+((p4+p5)+(p6+p7))`, then multiplied by the
/// row's scale (per-row weights) and the bias added. No fused multiply-add
/// anywhere, so every backend gives the same bits.
pub fn gemv_i8_blocked_with(
    backend: Backend,
    out: &mut [f32],
    q: &[i8],
    scales: WeightScales,
    act: &Activations,
    bias: Option<&[f32]>,
) -> Option<()> {
    if !backend.available() {
        return None;
    }
    let (x, x_scales) = (act.q, act.scales);
    let cols = x.len();
    let nb = cols.div_ceil(BLOCK);
    let finish = |r: usize, acc: f32, w: &[i8]| {
        let acc = match scales {
            WeightScales::Row(s) => acc * s.get(r).copied().unwrap_or(0.0),
            WeightScales::Block(_) => acc,
        };
        add_outliers(
            acc + bias.and_then(|b| b.get(r)).copied().unwrap_or(0.0),
            w,
            scales,
            r,
            nb,
            act,
        )
    };
    if cols == 0 || x_scales.len() < nb {
        out.iter_mut()
            .enumerate()
            .for_each(|(r, o)| *o = finish(r, 0.0, &[]));
        return Some(());
    }
    let row_scales = |r: usize| match scales {
        WeightScales::Row(_) => None,
        WeightScales::Block(s) => Some(s.get(r * nb..(r + 1) * nb).unwrap_or(&[])),
    };
    let rows = out.iter_mut().zip(q.chunks_exact(cols)).enumerate();
    match backend {
        Backend::Scalar => rows.for_each(|(r, (o, w))| {
            *o = finish(
                r,
                blocked_row_scalar(w, x, x_scales, row_scales(r), 0, [0.0; 8]),
                w,
            )
        }),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 => rows.for_each(|(r, (o, w))| {
            // SAFETY: `available()` confirmed AVX2 on this CPU.
            *o = finish(
                r,
                unsafe { x86::blocked_row_avx2(w, x, x_scales, row_scales(r)) },
                w,
            )
        }),
        // One row at a time through a per-block dot kernel: the scalar
        // definition's float sequence, the kernel's exact block sums.
        #[cfg(target_arch = "x86_64")]
        Backend::Sse41 => rows.for_each(|(r, (o, w))| {
            // SAFETY: `available()` confirmed SSE4.1 on this CPU.
            let dot = |a: &[i8], b: &[i8]| unsafe { x86::dot_i8_sse41(a, b) };
            *o = finish(
                r,
                blocked_row_by(dot, w, x, x_scales, row_scales(r), 0, [0.0; 8]),
                w,
            );
        }),
        #[cfg(target_arch = "aarch64")]
        Backend::Neon => rows.for_each(|(r, (o, w))| {
            let dot = arm::dot_i8_neon;
            *o = finish(
                r,
                blocked_row_by(dot, w, x, x_scales, row_scales(r), 0, [0.0; 8]),
                w,
            );
        }),
        #[cfg(target_arch = "aarch64")]
        Backend::NeonDot => rows.for_each(|(r, (o, w))| {
            // SAFETY: `available()` confirmed the dot-product extension.
            let dot = |a: &[i8], b: &[i8]| unsafe { arm::dot_i8_sdot(a, b) };
            *o = finish(
                r,
                blocked_row_by(dot, w, x, x_scales, row_scales(r), 0, [0.0; 8]),
                w,
            );
        }),
        #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
        Backend::Dsp => two_rows(
            out,
            q,
            x,
            x_scales,
            &row_scales,
            &finish,
            dsp::block2,
            dsp::dot_i8,
        ),
        #[cfg(all(
            target_arch = "arm",
            target_feature = "mclass",
            target_feature = "neon"
        ))]
        Backend::Helium => two_rows(
            out,
            q,
            x,
            x_scales,
            &row_scales,
            &finish,
            helium::block2,
            helium::dot_i8,
        ),
        #[allow(unreachable_patterns)]
        _ => return None,
    }
    Some(())
}

/// The blocked GEMV two rows at a time, for kernels whose block sums come
/// from `block2` (two rows × one 32-element block) and `dot` (one row): the
/// Cortex-M DSP and Helium backends. The float steps are the definition's.
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn two_rows<'s>(
    out: &mut [f32],
    q: &[i8],
    x: &[i8],
    x_scales: &[f32],
    row_scales: &impl Fn(usize) -> Option<&'s [f32]>,
    finish: &impl Fn(usize, f32, &[i8]) -> f32,
    block2: impl Fn(&[i8], &[i8], &[i8]) -> [i32; 2],
    dot: impl Fn(&[i8], &[i8]) -> i32,
) {
    let cols = x.len();
    let mut rows = out.iter_mut().zip(q.chunks_exact(cols)).enumerate();
    // Two rows at a time share each activation word's unpacking.
    let whole = (cols / BLOCK).min(x_scales.len());
    loop {
        let (Some((r, (o0, w0))), Some((_, (o1, w1)))) = (rows.next(), rows.next()) else {
            break;
        };
        let ws = [row_scales(r), row_scales(r + 1)];
        let mut p = [[0.0f32; 8]; 2];
        // Whole groups of eight blocks (lane j = block j of the
        // group): integer sums first, then the float steps in a
        // fixed-length loop over arrays.
        let groups = whole / 8;
        for g in 0..groups {
            let at = g * 8 * BLOCK;
            let (Some(g0), Some(g1), Some(gx), Some(xs8)) = (
                w0.get(at..at + 8 * BLOCK),
                w1.get(at..at + 8 * BLOCK),
                x.get(at..at + 8 * BLOCK),
                x_scales.get(g * 8..g * 8 + 8),
            ) else {
                break;
            };
            let mut d = [[0i32; 8]; 2];
            for j in 0..8 {
                let span = j * BLOCK..(j + 1) * BLOCK;
                [d[0][j], d[1][j]] = block2(&g0[span.clone()], &g1[span.clone()], &gx[span]);
            }
            for k in 0..2 {
                let mut sc = [0.0f32; 8];
                match ws[k] {
                    Some(w) => {
                        for j in 0..8 {
                            sc[j] = xs8[j] * w.get(g * 8 + j).copied().unwrap_or(0.0);
                        }
                    }
                    None => sc.copy_from_slice(xs8),
                }
                for j in 0..8 {
                    p[k][j] += d[k][j] as f32 * sc[j];
                }
            }
        }
        for b in groups * 8..whole {
            let span = b * BLOCK..(b + 1) * BLOCK;
            let (Some(b0), Some(b1), Some(xb), Some(&xs)) = (
                w0.get(span.clone()),
                w1.get(span.clone()),
                x.get(span),
                x_scales.get(b),
            ) else {
                break;
            };
            let d = block2(b0, b1, xb);
            p[0][b % 8] += d[0] as f32 * block_scale(xs, ws[0], b);
            p[1][b % 8] += d[1] as f32 * block_scale(xs, ws[1], b);
        }
        for (k, (o, w)) in [(o0, w0), (o1, w1)].into_iter().enumerate() {
            let acc = if whole * BLOCK == cols {
                reduce8(p[k])
            } else {
                blocked_row_scalar(w, x, x_scales, ws[k], whole, p[k])
            };
            *o = finish(r + k, acc, w);
        }
    }
    // The row left over, if any.
    let done = out.len() - out.len() % 2;
    let rest = out[done..]
        .iter_mut()
        .zip(q.get(done * cols..).unwrap_or(&[]).chunks_exact(cols));
    for (i, (o, w)) in rest.enumerate() {
        let r = done + i;
        let mut p = [0.0f32; 8];
        let ws = row_scales(r);
        for (b, ((wb, xb), &xs)) in w
            .chunks_exact(BLOCK)
            .zip(x.chunks_exact(BLOCK))
            .zip(x_scales)
            .take(whole)
            .enumerate()
        {
            p[b % 8] += dot(wb, xb) as f32 * block_scale(xs, ws, b);
        }
        *o = finish(r, blocked_row_scalar(w, x, x_scales, ws, whole, p), w);
    }
}

/// An activation vector prepared for [`gemv_i8_blocked_with`].
#[derive(Debug, Clone, Copy)]
pub struct Activations<'a> {
    /// int8 values (outlier channels zeroed).
    pub q: &'a [i8],
    /// One scale per [`BLOCK`].
    pub scales: &'a [f32],
    /// Channels kept out of `q`, in increasing order.
    pub outliers: &'a [u32],
    /// The original f32 vector (read at the outlier channels).
    pub values: &'a [f32],
}

/// Adds the outlier channels' exact contribution to row `r`'s result:
/// `Σ_c dequantized(w[r, c]) · x[c]`, in channel order.
#[inline]
fn add_outliers(
    acc: f32,
    w: &[i8],
    scales: WeightScales,
    r: usize,
    nb: usize,
    a: &Activations,
) -> f32 {
    add_outliers_by(acc, |c| w.get(c).copied().unwrap_or(0), scales, r, nb, a)
}

/// [`add_outliers`] with the weight of channel `c` from `w(c)`.
#[inline]
fn add_outliers_by(
    mut acc: f32,
    w: impl Fn(usize) -> i8,
    scales: WeightScales,
    r: usize,
    nb: usize,
    a: &Activations,
) -> f32 {
    for &c in a.outliers {
        let c = c as usize;
        let s = match scales {
            WeightScales::Row(s) => s.get(r),
            WeightScales::Block(s) => s.get(r * nb + c / BLOCK),
        };
        acc += w(c) as f32 * s.copied().unwrap_or(0.0) * a.values.get(c).copied().unwrap_or(0.0);
    }
    acc
}

/// Splits `x` into int8 blocks (into `q`, `scales`) and outlier channels
/// (`|x| > limit`, indices into `outliers`); returns how many outliers.
/// `inliers` is f32 scratch as long as `x`.
pub fn prepare_activations(
    x: &[f32],
    limit: f32,
    inliers: &mut [f32],
    q: &mut [i8],
    scales: &mut [f32],
    outliers: &mut [u32],
) -> usize {
    let mut k = 0;
    for (c, (o, &v)) in inliers.iter_mut().zip(x).enumerate() {
        if v.abs() > limit && k < outliers.len() {
            outliers[k] = c as u32;
            k += 1;
            *o = 0.0;
        } else {
            *o = v;
        }
    }
    quantize_blocks(&inliers[..x.len().min(inliers.len())], q, scales);
    k
}

/// The scale block `b`'s integer sum is multiplied by.
#[inline]
fn block_scale(x_scale: f32, w_scales: Option<&[f32]>, b: usize) -> f32 {
    match w_scales {
        Some(ws) => x_scale * ws.get(b).copied().unwrap_or(0.0),
        None => x_scale,
    }
}

/// The fixed reduction of eight partial sums.
#[inline]
fn reduce8(p: [f32; 8]) -> f32 {
    ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]))
}

/// The definition of one blocked row, continuing from block `first` with
/// partial sums `p` (so SIMD code can hand its leftover blocks here).
fn blocked_row_scalar(
    w: &[i8],
    x: &[i8],
    x_scales: &[f32],
    w_scales: Option<&[f32]>,
    first: usize,
    p: [f32; 8],
) -> f32 {
    blocked_row_by(dot_i8_scalar, w, x, x_scales, w_scales, first, p)
}

/// [`blocked_row_scalar`] with the exact block sums from `dot` (any kernel
/// equal to [`dot_i8_scalar`]): the same floats in the same order.
fn blocked_row_by(
    dot: impl Fn(&[i8], &[i8]) -> i32,
    w: &[i8],
    x: &[i8],
    x_scales: &[f32],
    w_scales: Option<&[f32]>,
    first: usize,
    mut p: [f32; 8],
) -> f32 {
    let start = first * BLOCK;
    let (w, x) = (w.get(start..).unwrap_or(&[]), x.get(start..).unwrap_or(&[]));
    for (k, ((wb, xb), s)) in w
        .chunks(BLOCK)
        .zip(x.chunks(BLOCK))
        .zip(x_scales.get(first..).unwrap_or(&[]))
        .enumerate()
    {
        let b = first + k;
        p[b % 8] += dot(wb, xb) as f32 * block_scale(*s, w_scales, b);
    }
    reduce8(p)
}

/// [`gemv_i8_blocked_with`] on the best backend.
pub fn gemv_i8_blocked(
    out: &mut [f32],
    q: &[i8],
    scales: WeightScales,
    act: &Activations,
    bias: Option<&[f32]>,
) {
    let _ = gemv_i8_blocked_with(Backend::best(), out, q, scales, act, bias);
}

/// Value `c` of a packed int4 row: two signed values per byte, the even
/// one in the low nibble.
#[inline]
pub fn nibble(packed: &[u8], c: usize) -> i8 {
    let b = packed.get(c / 2).copied().unwrap_or(0);
    if c.is_multiple_of(2) {
        ((b << 4) as i8) >> 4
    } else {
        (b as i8) >> 4
    }
}

/// Unpacks `out.len()` int4 values (see [`nibble`]) from `packed`; values
/// past the end of `packed` are 0, as [`nibble`] reads them.
pub fn unpack_i4(packed: &[u8], out: &mut [i8]) {
    // Whole pairs in fixed-size steps (the compiler vectorizes this), then
    // the odd last value.
    let even = out.len() & !1;
    let (pairs, last) = out.split_at_mut(even);
    for (pair, &b) in pairs.chunks_exact_mut(2).zip(packed) {
        pair[0] = ((b << 4) as i8) >> 4;
        pair[1] = (b as i8) >> 4;
    }
    let covered = (even / 2).min(packed.len()) * 2;
    if let Some(rest) = pairs.get_mut(covered..) {
        rest.fill(0);
    }
    if let Some(o) = last.first_mut() {
        *o = packed.get(even / 2).map_or(0, |&b| ((b << 4) as i8) >> 4);
    }
}

/// An int4 matrix (rows of `ceil(n / 2)` packed bytes, see [`nibble`]; one
/// scale per row and [`BLOCK`]) times an int8 vector of `n = act.q.len()`
/// values, plus an optional bias.
///
/// The definition: row by row, the row unpacked to int8 ([`unpack_i4`])
/// and run through [`gemv_i8_blocked_with`] with per-block scales; every
/// backend gives those bits. AVX2 reads the nibbles straight into its
/// block sums (no unpacked copy); the others unpack each row into `row`
/// (at least `n` bytes; `None` if shorter).
pub fn gemv_i4_blocked_with(
    backend: Backend,
    out: &mut [f32],
    packed: &[u8],
    scales: &[f32],
    act: &Activations,
    bias: Option<&[f32]>,
    row: &mut [i8],
) -> Option<()> {
    if !backend.available() {
        return None;
    }
    let n = act.q.len();
    let nb = n.div_ceil(BLOCK);
    let bytes = n.div_ceil(2);
    let rows = out.iter_mut().enumerate();
    #[cfg(target_arch = "x86_64")]
    if backend == Backend::Avx2 && n > 0 && act.scales.len() >= nb {
        for (r, o) in rows {
            let w = packed.get(r * bytes..(r + 1) * bytes).unwrap_or(&[]);
            let ws = scales.get(r * nb..(r + 1) * nb).unwrap_or(&[]);
            // SAFETY: `available()` confirmed AVX2 on this CPU.
            let acc = unsafe { x86::blocked_row_i4_avx2(w, act.q, act.scales, ws) };
            let b = bias.and_then(|b| b.get(r)).copied().unwrap_or(0.0);
            *o = add_outliers_by(
                acc + b,
                // Channels past the row (none in a valid input) weigh 0,
                // as in the unpacked definition.
                |c| if c < n { nibble(w, c) } else { 0 },
                WeightScales::Block(ws),
                0,
                nb,
                act,
            );
        }
        return Some(());
    }
    let row = row.get_mut(..n)?;
    for (r, o) in rows {
        unpack_i4(packed.get(r * bytes..(r + 1) * bytes).unwrap_or(&[]), row);
        let ws = WeightScales::Block(scales.get(r * nb..(r + 1) * nb).unwrap_or(&[]));
        let b = bias.and_then(|b| b.get(r..r + 1));
        gemv_i8_blocked_with(backend, core::slice::from_mut(o), row, ws, act, b)?;
    }
    Some(())
}

/// [`gemv_i4_blocked_with`] on the best backend.
pub fn gemv_i4_blocked(
    out: &mut [f32],
    packed: &[u8],
    scales: &[f32],
    act: &Activations,
    bias: Option<&[f32]>,
    row: &mut [i8],
) {
    if gemv_i4_blocked_with(Backend::best(), out, packed, scales, act, bias, row).is_none() {
        out.fill(0.0);
    }
}

/// `Σ a[i]·b[i]` over the shorter length (wrapping), on the best backend:
/// the scalar definition's result on every one.
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32];
    let n = a.len().min(b.len());
    match (a.get(..n), b.get(..n)) {
        (Some(a), Some(b)) if n > 0 => {
            let _ = gemv_i8_with(Backend::best(), &mut acc, a, b);
        }
        _ => {}
    }
    acc[0]
}

/// [`gemv_i8_with`] on the best backend.
pub fn gemv_i8(out: &mut [i32], w: &[i8], x: &[i8]) {
    // The best backend is always available, so this cannot be `None`.
    let _ = gemv_i8_with(Backend::best(), out, w, x);
}

/// Symmetric per-vector quantization: `q = round(x / s)` in `[-127, 127]`
/// with `s = max|x| / 127` (1 when `x` is all zero). Returns `s`.
pub fn quantize_symmetric(x: &[f32], q: &mut [i8]) -> f32 {
    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 && max.is_finite() {
        max / 127.0
    } else {
        1.0
    };
    let inv = 1.0 / scale;
    for (o, v) in q.iter_mut().zip(x) {
        *o = libm::roundf(v * inv).clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// TFLite's `MultiplyByQuantizedMultiplier`: `round(x · m · 2^shift / 2^31)`
/// with `m` in `[2^30, 2^31)` (a Q31 multiplier) and `shift` in `-31..=30`,
/// bit for bit as TFLite/gemmlowp: a saturating rounding doubling high
/// multiply (ties upward), then a rounding right shift (ties away from zero).
/// A left shift that overflows saturates.
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = shift.clamp(0, 30);
    let right = (-shift).clamp(0, 31);
    let x = (x as i64) << left;
    let x = x.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    rounding_right_shift(saturating_doubling_high_mul(x, multiplier), right)
}

/// gemmlowp `SaturatingRoundingDoublingHighMul`.
fn saturating_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp `RoundingDivideByPOT`: divide by `2^exp`, ties away from zero.
fn rounding_right_shift(x: i32, exp: i32) -> i32 {
    if exp <= 0 {
        return x;
    }
    let mask = ((1i64 << exp) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exp) + i32::from(remainder > threshold)
}

/// Splits a positive real multiplier into a Q31 mantissa and a power-of-two
/// shift for [`multiply_by_quantized_multiplier`] (TFLite's `QuantizeMultiplier`).
pub fn quantize_multiplier(real: f64) -> (i32, i32) {
    if real <= 0.0 || !real.is_finite() {
        return (0, 0);
    }
    let mut shift = 0i32;
    let mut m = real;
    while m >= 1.0 {
        m /= 2.0;
        shift += 1;
    }
    while m < 0.5 {
        m *= 2.0;
        shift -= 1;
    }
    let mut q = libm::round(m * (1u64 << 31) as f64) as i64;
    if q == 1i64 << 31 {
        q /= 2;
        shift += 1;
    }
    if shift < -31 {
        return (0, 0);
    }
    (q as i32, shift.min(30))
}

/// Two weight rows and the activations of one block as 32-byte arrays, so
/// the Arm kernels can read them at fixed offsets; `None` for a short block.
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[inline(always)]
#[allow(clippy::type_complexity)]
fn whole_block<'a>(
    w0: &'a [i8],
    w1: &'a [i8],
    x: &'a [i8],
) -> Option<(&'a [i8; 32], &'a [i8; 32], &'a [i8; 32])> {
    Some((w0.try_into().ok()?, w1.try_into().ok()?, x.try_into().ok()?))
}

/// Arm DSP-extension kernels: `SXTB16` unpacks bytes 0 and 2 (or, rotated
/// by 8, bytes 1 and 3) of a word into two sign-extended halfwords, and
/// `SMLAD` adds both halfword products to an accumulator: four int8 MACs in
/// four instructions, with the activation word unpacked once for four rows.
/// Every product and sum is exact (a 32-element block sums to at most
/// 32·128·128 in magnitude), so the results are the scalar definition's.
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
mod dsp {
    use core::arch::asm;

    #[inline(always)]
    fn sxtb16(v: u32) -> u32 {
        let r: u32;
        // SAFETY: a register-only instruction of the DSP extension, which
        // this module is compiled for (`target_feature = "dsp"`).
        unsafe {
            asm!("sxtb16 {r}, {v}", r = lateout(reg) r, v = in(reg) v, options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    #[inline(always)]
    fn sxtb16_ror8(v: u32) -> u32 {
        let r: u32;
        // SAFETY: as in `sxtb16`.
        unsafe {
            asm!("sxtb16 {r}, {v}, ror #8", r = lateout(reg) r, v = in(reg) v, options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    #[inline(always)]
    fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let r: i32;
        // SAFETY: as in `sxtb16` (SMLAD sets only the sticky Q flag).
        unsafe {
            asm!("smlad {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack))
        };
        r
    }

    #[inline(always)]
    fn word(b: &[i8]) -> u32 {
        u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
    }

    /// Exact `Σ w0[i]·x[i]` and `Σ w1[i]·x[i]` over one 32-element block:
    /// eight steps of (load an activation word, unpack it once, then per row
    /// load a weight word, unpack and `SMLAD` twice), 13 instructions per
    /// 8 MACs, written out so the compiler cannot re-roll or spill it.
    #[inline(always)]
    pub(super) fn block2(w0: &[i8], w1: &[i8], x: &[i8]) -> [i32; 2] {
        let Some((w0, w1, x)) = super::whole_block(w0, w1, x) else {
            return [dot_i8(w0, x), dot_i8(w1, x)];
        };
        let (mut a0, mut a1) = (0i32, 0i32);
        // One step: an activation word unpacked once, then two rows.
        macro_rules! step {
            () => {
                concat!(
                    "ldr {x}, [{px}], #4\n",
                    "sxtb16 {xe}, {x}\n",
                    "sxtb16 {xo}, {x}, ror #8\n",
                    "ldr {w}, [{p0}], #4\n",
                    "sxtb16 {t}, {w}\n",
                    "smlad {a0}, {t}, {xe}, {a0}\n",
                    "sxtb16 {t}, {w}, ror #8\n",
                    "smlad {a0}, {t}, {xo}, {a0}\n",
                    "ldr {w}, [{p1}], #4\n",
                    "sxtb16 {t}, {w}\n",
                    "smlad {a1}, {t}, {xe}, {a1}\n",
                    "sxtb16 {t}, {w}, ror #8\n",
                    "smlad {a1}, {t}, {xo}, {a1}\n",
                )
            };
        }
        // Eight steps written out, not `.rept`: the compiler sizes inline asm
        // by its lines when it lays out branches.
        // SAFETY: reads exactly 32 bytes from each of the three arrays
        // (eight post-incremented word loads each; unaligned LDR is allowed
        // on Armv7E-M/Armv8-M); the pointer registers are scratch (`inout`
        // with results discarded); DSP instructions only, no flags read.
        unsafe {
            asm!(
                step!(), step!(), step!(), step!(), step!(), step!(), step!(), step!(),
                px = inout(reg) x.as_ptr() => _,
                p0 = inout(reg) w0.as_ptr() => _,
                p1 = inout(reg) w1.as_ptr() => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                x = out(reg) _,
                xe = out(reg) _,
                xo = out(reg) _,
                w = out(reg) _,
                t = out(reg) _,
                options(pure, readonly, nostack),
            );
        }
        [a0, a1]
    }

    /// What the row-group loop of [`rows4`] keeps in memory (it has no free
    /// register left): where the activations start, blocks per row, groups
    /// still to do, and where the next four sums go.
    #[repr(C)]
    struct Groups {
        x: *const i8,
        nb: usize,
        left: usize,
        out: *mut i32,
        skip: usize,
    }

    /// Exact `Σ w_r[i]·x[i]` over the first `nb` whole 32-element blocks for
    /// rows `0..4·groups` of `w` (`cols` bytes apart), written to `out`.
    /// Per activation word, one load and two unpacks shared by four rows,
    /// then per row a load, two unpacks and two `SMLAD`s — 23 instructions
    /// per 16 MACs. Both the block loop and the row-group loop are inside the
    /// asm, so the sums and pointers stay in registers; per group of four
    /// rows it costs about 20 instructions more. `None` (and nothing written)
    /// if the slices are too short.
    #[inline(never)]
    pub(super) fn rows4(out: &mut [i32], w: &[i8], cols: usize, x: &[i8], nb: usize) -> Option<()> {
        let groups = out.len() / 4;
        if groups == 0 {
            return Some(());
        }
        let span = nb.checked_mul(32)?;
        let rows = groups.checked_mul(4)?;
        if nb == 0 || span > cols || span > x.len() || rows.checked_mul(cols)? > w.len() {
            return None;
        }
        let skip = cols.wrapping_mul(4).wrapping_sub(span);
        let mut st = Groups {
            x: x.as_ptr(),
            nb,
            left: groups,
            out: out.as_mut_ptr(),
            skip,
        };
        macro_rules! step {
            () => {
                concat!(
                    "ldr {x}, [{px}], #4\n",
                    "sxtb16 {xe}, {x}\n",
                    "sxtb16 {xo}, {x}, ror #8\n",
                    "ldr {x}, [{pa}, {s}]\n",
                    "sxtb16 {t}, {x}\n",
                    "smlad {a1}, {t}, {xe}, {a1}\n",
                    "sxtb16 {t}, {x}, ror #8\n",
                    "smlad {a1}, {t}, {xo}, {a1}\n",
                    "ldr {x}, [{pa}], #4\n",
                    "sxtb16 {t}, {x}\n",
                    "smlad {a0}, {t}, {xe}, {a0}\n",
                    "sxtb16 {t}, {x}, ror #8\n",
                    "smlad {a0}, {t}, {xo}, {a0}\n",
                    "ldr {x}, [{pb}, {s}]\n",
                    "sxtb16 {t}, {x}\n",
                    "smlad {a3}, {t}, {xe}, {a3}\n",
                    "sxtb16 {t}, {x}, ror #8\n",
                    "smlad {a3}, {t}, {xo}, {a3}\n",
                    "ldr {x}, [{pb}], #4\n",
                    "sxtb16 {t}, {x}\n",
                    "smlad {a2}, {t}, {xe}, {a2}\n",
                    "sxtb16 {t}, {x}, ror #8\n",
                    "smlad {a2}, {t}, {xo}, {a2}\n",
                )
            };
        }
        // SAFETY: checked above: each of the `4·groups` rows (at `pa`,
        // `pa + s`, `pb = pa + 2s`, `pb + s` per group, the next group at
        // `pa + 4s`) and `x` have `32·nb ≥ 32` readable bytes, read as
        // post-incremented (or register-offset) word loads, eight per block;
        // `out` has room for `4·groups` sums, stored four per group through
        // `st.out`. Unaligned LDR is allowed on Armv7E-M/Armv8-M. The asm
        // keeps the address of `st` (which lives across it) in one 8-byte
        // aligned stack slot it pops before it ends. Every other register it
        // names is scratch; `SUBS` sets the flags (not preserved).
        unsafe {
            asm!(
                "sub sp, sp, #8",
                "str {t}, [sp]",
                "3:",
                "ldr {t}, [sp]",
                "ldr {px}, [{t}]",
                "ldr {n}, [{t}, #4]",
                "mov {a0}, #0",
                "mov {a1}, #0",
                "mov {a2}, #0",
                "mov {a3}, #0",
                "2:",
                step!(), step!(), step!(), step!(), step!(), step!(), step!(), step!(),
                "subs {n}, {n}, #1",
                "bne 2b",
                "ldr {t}, [sp]",
                "ldr {x}, [{t}, #12]",
                "str {a0}, [{x}], #4",
                "str {a1}, [{x}], #4",
                "str {a2}, [{x}], #4",
                "str {a3}, [{x}], #4",
                "str {x}, [{t}, #12]",
                "ldr {x}, [{t}, #16]",
                "add {pa}, {pa}, {x}",
                "add {pb}, {pa}, {s}, lsl #1",
                "ldr {x}, [{t}, #8]",
                "subs {x}, {x}, #1",
                "str {x}, [{t}, #8]",
                "bne 3b",
                "add sp, sp, #8",
                px = out(reg) _,
                pa = inout(reg) w.as_ptr() => _,
                pb = inout(reg) w.as_ptr().add(2 * cols) => _,
                s = in(reg) cols,
                n = out(reg) _,
                a0 = out(reg) _,
                a1 = out(reg) _,
                a2 = out(reg) _,
                a3 = out(reg) _,
                x = out(reg) _,
                xe = out(reg) _,
                xo = out(reg) _,
                t = inout(reg) &mut st as *mut Groups => _,
            );
        }
        Some(())
    }

    /// Whole-row products four rows at a time ([`rows4`] over the whole
    /// blocks, then the scalar definition on a short last block), then the
    /// remaining rows two at a time.
    pub(super) fn gemv(out: &mut [i32], w: &[i8], x: &[i8]) {
        let cols = x.len();
        let nb = cols / 32;
        let whole = nb * 32;
        let xt = x.get(whole..).unwrap_or(&[]);
        let four = out.len().min(w.len() / cols.max(1)) & !3;
        let Some((head, rest)) = out.split_at_mut_checked(four) else {
            return;
        };
        if nb == 0 || rows4(head, w, cols, x, nb).is_none() {
            head.fill(0);
        }
        if !xt.is_empty() {
            for (o, row) in head.iter_mut().zip(w.chunks_exact(cols.max(1))) {
                let tail = row.get(whole..).unwrap_or(&[]);
                *o = o.wrapping_add(super::dot_i8_scalar(tail, xt));
            }
        }
        if let Some(wr) = w.get(four * cols..) {
            super::rows_by_two(rest, wr, x, block2, dot_i8);
        }
    }

    /// Exact (wrapping, as the scalar definition) `Σ a[i]·b[i]`.
    pub(super) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
        // Whole 4-byte words by `chunks_exact`: no index the compiler has to
        // prove in range (the load-and-run path must link without panics).
        let mut acc = 0i32;
        let (mut ca, mut cb) = (a.chunks_exact(4), b.chunks_exact(4));
        for (x, y) in (&mut ca).zip(&mut cb) {
            let (av, bv) = (word(x), word(y));
            acc = smlad(
                sxtb16_ror8(av),
                sxtb16_ror8(bv),
                smlad(sxtb16(av), sxtb16(bv), acc),
            );
        }
        acc.wrapping_add(super::dot_i8_scalar(ca.remainder(), cb.remainder()))
    }
}

/// Arm Helium (MVE) kernels: `VLDRB` loads 16 int8 lanes, `VMLADAVA.S8`
/// multiplies them lane by lane with another vector and adds all 16 products
/// to a general-purpose register. Exact (a block's sum fits i32 easily), so
/// the results are the scalar definition's.
#[cfg(all(
    target_arch = "arm",
    target_feature = "mclass",
    target_feature = "neon"
))]
mod helium {
    use core::arch::asm;

    /// Exact `Σ w0[i]·x[i]` and `Σ w1[i]·x[i]` over one 32-element block:
    /// the two activation vectors are loaded once for both rows (10
    /// instructions for 64 MACs).
    #[inline(always)]
    pub(super) fn block2(w0: &[i8], w1: &[i8], x: &[i8]) -> [i32; 2] {
        let Some((w0, w1, x)) = super::whole_block(w0, w1, x) else {
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
    pub(super) fn gemv(out: &mut [i32], w: &[i8], x: &[i8]) {
        let cols = x.len();
        let n = cols / 16;
        let whole = n * 16;
        let xt = x.get(whole..).unwrap_or(&[]);
        for (o, pair) in out.chunks_exact_mut(2).zip(w.chunks_exact(2 * cols)) {
            let Some((w0, w1)) = pair.split_at_checked(cols) else {
                continue;
            };
            let [s0, s1] = rows2(w0, w1, x, n);
            let t0 = super::dot_i8_scalar(w0.get(whole..).unwrap_or(&[]), xt);
            let t1 = super::dot_i8_scalar(w1.get(whole..).unwrap_or(&[]), xt);
            o[0] = s0.wrapping_add(t0);
            o[1] = s1.wrapping_add(t1);
        }
        let last = out.len() & !1;
        if let (Some(o), Some(r)) = (out.get_mut(last), w.get(last * cols..(last + 1) * cols)) {
            *o = dot_i8(r, x);
        }
    }

    /// Exact (wrapping, as the scalar definition) `Σ a[i]·b[i]`: 16 lanes at a time.
    pub(super) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
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
        acc.wrapping_add(super::dot_i8_scalar(ta, tb))
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use core::arch::aarch64::*;

    /// [`super::dot_f16_scalar`] with the eight lanes in two NEON vectors:
    /// `fcvtl`/`fcvtl2` widen eight halves exactly, then multiply and add
    /// (no fused multiply-add, as the definition).
    pub(super) fn dot_f16_neon(w: &[half::f16], x: &[f32]) -> f32 {
        let n = w.len().min(x.len());
        let (w, x) = (&w[..n], &x[..n]);
        let mut cw = w.chunks_exact(super::F16_LANES);
        let mut cx = x.chunks_exact(super::F16_LANES);
        let mut lanes = [0.0f32; super::F16_LANES];
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
        super::finish(&lanes, cw.remainder(), cx.remainder())
    }

    /// NEON int8 dot product: widening multiplies (i8·i8 fits i16 exactly)
    /// and pairwise widening accumulation into i32 — exact, so equal to the
    /// scalar definition for any inputs.
    pub(super) fn dot_i8_neon(a: &[i8], b: &[i8]) -> i32 {
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
        total.wrapping_add(super::dot_i8_scalar(&a[i..n], &b[i..n]))
    }

    /// NEON dot-product-extension int8 dot product: `SDOT` adds four i8·i8
    /// products into each i32 lane, exactly, so the result is the scalar
    /// definition's (wrapping) for any inputs.
    ///
    /// # Safety
    /// The CPU must support the dot-product extension (`dotprod`).
    #[target_feature(enable = "neon,dotprod")]
    pub(super) unsafe fn dot_i8_sdot(a: &[i8], b: &[i8]) -> i32 {
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
        vaddvq_s32(acc).wrapping_add(super::dot_i8_scalar(ta, tb))
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    // The blocked kernel loads one 32-byte vector per activation block.
    const _: () = assert!(super::BLOCK == 32);

    /// Sum of the eight i32 lanes.
    #[target_feature(enable = "avx2")]
    fn hsum_256(v: __m256i) -> i32 {
        let lo = _mm256_castsi256_si128(v);
        let hi = _mm256_extracti128_si256::<1>(v);
        hsum_128(_mm_add_epi32(lo, hi))
    }

    #[target_feature(enable = "sse4.1")]
    fn hsum_128(v: __m128i) -> i32 {
        let s = _mm_add_epi32(v, _mm_shuffle_epi32::<0b01_00_11_10>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    /// AVX2 int8 dot product. `maddubs` multiplies |a| (u8) by b·sign(a) (i8)
    /// and adds pairs into i16; with b in [-127, 127] a pair is at most
    /// 2·128·127 = 32512, so it never saturates and the result equals the scalar one.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_si256();
        let mut i = 0;
        while i + 32 <= n {
            // SAFETY: i + 32 <= n <= len of both slices; loadu has no alignment need.
            let (va, vb) = unsafe {
                (
                    _mm256_loadu_si256(a.as_ptr().add(i) as *const __m256i),
                    _mm256_loadu_si256(b.as_ptr().add(i) as *const __m256i),
                )
            };
            let ua = _mm256_sign_epi8(va, va);
            let sb = _mm256_sign_epi8(vb, va);
            let pairs = _mm256_maddubs_epi16(ua, sb);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
            i += 32;
        }
        hsum_256(acc).wrapping_add(super::dot_i8_scalar(&a[i..n], &b[i..n]))
    }

    /// The exact i32 sum of one 32-element block, as eight i32 lanes.
    ///
    /// # Safety
    /// The CPU must support AVX2, and `w`, `x` must be readable for 32 bytes.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn block_sum(w: *const i8, x: *const i8) -> __m256i {
        // SAFETY: the caller guarantees 32 readable bytes at each pointer.
        let (vw, vx) = unsafe {
            (
                _mm256_loadu_si256(w as *const __m256i),
                _mm256_loadu_si256(x as *const __m256i),
            )
        };
        block_sum_v(vw, vx)
    }

    /// Eight partial sums of one 32-element block's exact products.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn block_sum_v(vw: __m256i, vx: __m256i) -> __m256i {
        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(vw, vw), _mm256_sign_epi8(vx, vw));
        _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
    }

    /// 32 int4 values (16 packed bytes, even values in the low nibbles) as
    /// signed int8 lanes in order: nibbles split by mask and shift,
    /// interleaved back, then `(u ^ 8) - 8` sign-extends each.
    ///
    /// # Safety
    /// 16 bytes must be readable at `p`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn load_i4(p: *const u8) -> __m256i {
        // SAFETY: the caller guarantees 16 readable bytes; loadu has no alignment need.
        let v = unsafe { _mm_loadu_si128(p as *const __m128i) };
        let m = _mm_set1_epi8(0x0f);
        let lo = _mm_and_si128(v, m);
        let hi = _mm_and_si128(_mm_srli_epi16::<4>(v), m);
        let u = _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
        let eight = _mm256_set1_epi8(8);
        _mm256_sub_epi8(_mm256_xor_si256(u, eight), eight)
    }

    /// One int4 row (`w` packed, see [`super::nibble`]) with per-block
    /// scales `ws`: the floats of [`super::blocked_row_scalar`] on the
    /// unpacked row, with the nibbles widened in registers.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn blocked_row_i4_avx2(w: &[u8], x: &[i8], xs: &[f32], ws: &[f32]) -> f32 {
        let n = x.len().min(w.len().saturating_mul(2));
        let whole = (n / super::BLOCK).min(xs.len()).min(ws.len());
        let mut p = _mm256_setzero_ps();
        let mut b = 0;
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let sum = |k: usize| {
            if k >= whole {
                return _mm256_setzero_si256();
            }
            // SAFETY: block k < whole ≤ n / 32 reads packed bytes
            // 16k..16k + 16 ≤ n / 2 ≤ w.len() and x bytes 32k..32k + 32 ≤
            // n ≤ x.len(); unaligned loads.
            unsafe {
                block_sum_v(
                    load_i4(wp.add(16 * k)),
                    _mm256_loadu_si256(xp.add(32 * k) as *const __m256i),
                )
            }
        };
        while b + 8 <= whole {
            let sums = [
                sum(b),
                sum(b + 1),
                sum(b + 2),
                sum(b + 3),
                sum(b + 4),
                sum(b + 5),
                sum(b + 6),
                sum(b + 7),
            ];
            let d = _mm256_cvtepi32_ps(transpose_sum(&sums));
            // SAFETY: b + 8 <= whole <= xs.len(), ws.len().
            let s = unsafe {
                _mm256_mul_ps(
                    _mm256_loadu_ps(xs.as_ptr().add(b)),
                    _mm256_loadu_ps(ws.as_ptr().add(b)),
                )
            };
            p = _mm256_add_ps(p, _mm256_mul_ps(d, s));
            b += 8;
        }
        if b < whole {
            let mut sums = [_mm256_setzero_si256(); 8];
            let mut scales = [0.0f32; 8];
            for (k, (sm, sc)) in sums
                .iter_mut()
                .zip(scales.iter_mut())
                .take(whole - b)
                .enumerate()
            {
                *sm = sum(b + k);
                *sc = super::block_scale(xs.get(b + k).copied().unwrap_or(0.0), Some(ws), b + k);
            }
            let d = _mm256_cvtepi32_ps(transpose_sum(&sums));
            // SAFETY: `scales` holds 8 f32.
            let s = unsafe { _mm256_loadu_ps(scales.as_ptr()) };
            p = _mm256_add_ps(p, _mm256_mul_ps(d, s));
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds 8 f32; storeu has no alignment need.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), p) };
        // The blocks left (a short last one, or any beyond short scales),
        // as the definition: unpacked, exact sum, into lane b % 8.
        let mut buf = [0i8; super::BLOCK];
        let mut b = whole;
        while b * super::BLOCK < n {
            let Some(&s) = xs.get(b) else { break };
            let len = (n - b * super::BLOCK).min(super::BLOCK);
            let t = &mut buf[..len];
            super::unpack_i4(w.get(b * super::BLOCK / 2..).unwrap_or(&[]), t);
            let xb = x
                .get(b * super::BLOCK..b * super::BLOCK + len)
                .unwrap_or(&[]);
            lanes[b % 8] += super::dot_i8_scalar(t, xb) as f32 * super::block_scale(s, Some(ws), b);
            b += 1;
        }
        super::reduce8(lanes)
    }

    /// Lane k = the horizontal sum of `s[k]`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn transpose_sum(s: &[__m256i; 8]) -> __m256i {
        let h01 = _mm256_hadd_epi32(s[0], s[1]);
        let h23 = _mm256_hadd_epi32(s[2], s[3]);
        let h45 = _mm256_hadd_epi32(s[4], s[5]);
        let h67 = _mm256_hadd_epi32(s[6], s[7]);
        let h0123 = _mm256_hadd_epi32(h01, h23);
        let h4567 = _mm256_hadd_epi32(h45, h67);
        let lo = _mm256_permute2x128_si256::<0x20>(h0123, h4567);
        let hi = _mm256_permute2x128_si256::<0x31>(h0123, h4567);
        _mm256_add_epi32(lo, hi)
    }

    /// One blocked row: eight 32-element blocks at a time, exact i32 block
    /// sums gathered into one vector (lane k = block k), widened to f32,
    /// multiplied by the block scales and added lane-wise: exactly the scalar
    /// definition's lanes. Leftover whole blocks go through the same steps
    /// with zero sums and zero scales in the unused lanes (adding +0.0 leaves
    /// a lane's bits unchanged, as no lane is ever -0.0); a short last block
    /// is the scalar definition's.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn blocked_row_avx2(
        w: &[i8],
        x: &[i8],
        xs: &[f32],
        ws: Option<&[f32]>,
    ) -> f32 {
        let n = w.len().min(x.len());
        let mut whole = (n / super::BLOCK).min(xs.len());
        if let Some(ws) = ws {
            whole = whole.min(ws.len());
        }
        let mut p = _mm256_setzero_ps();
        let mut b = 0;
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        while b + 8 <= whole {
            // SAFETY: blocks b..b + 8 are below `whole`, so each of the eight
            // 32-byte read ends at or before n <= the length of both slices.
            let sums = unsafe {
                let at = b * super::BLOCK;
                [
                    block_sum(wp.add(at), xp.add(at)),
                    block_sum(wp.add(at + 32), xp.add(at + 32)),
                    block_sum(wp.add(at + 64), xp.add(at + 64)),
                    block_sum(wp.add(at + 96), xp.add(at + 96)),
                    block_sum(wp.add(at + 128), xp.add(at + 128)),
                    block_sum(wp.add(at + 160), xp.add(at + 160)),
                    block_sum(wp.add(at + 192), xp.add(at + 192)),
                    block_sum(wp.add(at + 224), xp.add(at + 224)),
                ]
            };
            let d = _mm256_cvtepi32_ps(transpose_sum(&sums));
            // SAFETY: b + 8 <= whole <= xs.len() (and ws.len() when given).
            let xv = unsafe { _mm256_loadu_ps(xs.as_ptr().add(b)) };
            let s = match ws {
                // SAFETY: as above.
                Some(ws) => _mm256_mul_ps(xv, unsafe { _mm256_loadu_ps(ws.as_ptr().add(b)) }),
                None => xv,
            };
            p = _mm256_add_ps(p, _mm256_mul_ps(d, s));
            b += 8;
        }
        if b < whole {
            let k_max = whole - b;
            let mut sums = [_mm256_setzero_si256(); 8];
            let mut scales = [0.0f32; 8];
            for k in 0..k_max {
                let at = (b + k) * super::BLOCK;
                // SAFETY: block b + k < whole, so at + 32 <= n <= len of both slices.
                sums[k] = unsafe { block_sum(wp.add(at), xp.add(at)) };
                scales[k] = super::block_scale(xs[b + k], ws, b + k);
            }
            let d = _mm256_cvtepi32_ps(transpose_sum(&sums));
            // SAFETY: `scales` holds 8 f32.
            let s = unsafe { _mm256_loadu_ps(scales.as_ptr()) };
            p = _mm256_add_ps(p, _mm256_mul_ps(d, s));
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds 8 f32; storeu has no alignment need.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), p) };
        if whole * super::BLOCK == n || whole == xs.len() {
            return super::reduce8(lanes);
        }
        super::blocked_row_scalar(w, x, xs, ws, whole, lanes)
    }

    /// SSE4.1 int8 dot product (same scheme as AVX2, 16 lanes).
    ///
    /// # Safety
    /// The CPU must support SSE4.1 (SSSE3 included).
    #[target_feature(enable = "sse4.1")]
    pub(super) unsafe fn dot_i8_sse41(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let ones = _mm_set1_epi16(1);
        let mut acc = _mm_setzero_si128();
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: i + 16 <= n <= len of both slices; loadu has no alignment need.
            let (va, vb) = unsafe {
                (
                    _mm_loadu_si128(a.as_ptr().add(i) as *const __m128i),
                    _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i),
                )
            };
            let ua = _mm_sign_epi8(va, va);
            let sb = _mm_sign_epi8(vb, va);
            acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_maddubs_epi16(ua, sb), ones));
            i += 16;
        }
        hsum_128(acc).wrapping_add(super::dot_i8_scalar(&a[i..n], &b[i..n]))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// A random f32 input in [-10, 10] and its int8 form (per-block scales,
    /// channels beyond 9 kept out as outliers).
    struct TestInput {
        xf: Vec<f32>,
        xq: Vec<i8>,
        xs: Vec<f32>,
        outl: Vec<u32>,
    }

    impl TestInput {
        fn random(s: &mut u64, cols: usize) -> TestInput {
            let xf: Vec<f32> = (0..cols)
                .map(|_| (rng(s) % 2001) as f32 / 100.0 - 10.0)
                .collect();
            let mut xq = vec![0i8; cols];
            let mut xs = vec![0f32; cols.div_ceil(BLOCK)];
            let mut inl = vec![0f32; cols];
            let mut outl = vec![0u32; cols];
            let k = prepare_activations(&xf, 9.0, &mut inl, &mut xq, &mut xs, &mut outl);
            outl.truncate(k);
            TestInput { xf, xq, xs, outl }
        }

        fn act(&self) -> Activations<'_> {
            Activations {
                q: &self.xq,
                scales: &self.xs,
                outliers: &self.outl,
                values: &self.xf,
            }
        }
    }

    /// Every available backend returns the scalar bytes, on random shapes
    /// with odd sizes and tails, weights over the full i8 range (including -128).
    #[test]
    fn all_gemv_backends_match_scalar() {
        let mut s = 0x1234_5678_9abc_def1u64;
        let mut tested = 0;
        for _ in 0..300 {
            let rows = 1 + (rng(&mut s) % 9) as usize;
            let cols = (rng(&mut s) % 200) as usize;
            let w: Vec<i8> = (0..rows * cols).map(|_| rng(&mut s) as i8).collect();
            let x: Vec<i8> = (0..cols)
                .map(|_| (rng(&mut s) % 255) as i8)
                .map(|v| v.max(-127))
                .collect();
            let mut want = vec![0i32; rows];
            gemv_i8_with(Backend::Scalar, &mut want, &w, &x).unwrap();
            for b in Backend::ALL {
                let mut got = vec![7i32; rows];
                if gemv_i8_with(b, &mut got, &w, &x).is_some() {
                    assert_eq!(got, want, "{b:?} rows {rows} cols {cols}");
                    tested += 1;
                }
            }
        }
        assert!(tested >= 300);
        // The extremes: every weight -128, every activation ±127.
        let w = vec![-128i8; 64];
        for xv in [127i8, -127] {
            let x = vec![xv; 64];
            let mut want = [0i32];
            gemv_i8_with(Backend::Scalar, &mut want, &w, &x).unwrap();
            assert_eq!(want[0], -128 * xv as i32 * 64);
            for b in Backend::ALL {
                let mut got = [0i32];
                if gemv_i8_with(b, &mut got, &w, &x).is_some() {
                    assert_eq!(got, want, "{b:?}");
                }
            }
        }
    }

    /// The blocked int8 GEMV gives the scalar definition's exact bits on every
    /// backend, including partial blocks and groups.
    #[test]
    fn all_blocked_gemv_backends_match_scalar() {
        let mut s = 0xfeed_beef_u64;
        for _ in 0..300 {
            let rows = 1 + (rng(&mut s) % 5) as usize;
            let cols = 1 + (rng(&mut s) % 700) as usize;
            let w: Vec<i8> = (0..rows * cols).map(|_| rng(&mut s) as i8).collect();
            let input = TestInput::random(&mut s, cols);
            let (act, xs) = (input.act(), input.xs.as_slice());
            let row_scales: Vec<f32> = (0..rows).map(|r| 0.01 + r as f32 * 0.003).collect();
            let block_scales: Vec<f32> = (0..rows * xs.len())
                .map(|i| 0.001 + (i % 13) as f32 * 0.0007)
                .collect();
            let bias: Vec<f32> = (0..rows).map(|r| r as f32 * 0.5 - 1.0).collect();
            for scales in [
                WeightScales::Row(&row_scales),
                WeightScales::Block(&block_scales),
            ] {
                let mut want = vec![0f32; rows];
                gemv_i8_blocked_with(Backend::Scalar, &mut want, &w, scales, &act, Some(&bias))
                    .unwrap();
                for b in Backend::ALL {
                    let mut got = vec![f32::NAN; rows];
                    if gemv_i8_blocked_with(b, &mut got, &w, scales, &act, Some(&bias)).is_some() {
                        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        assert_eq!(
                            bits(&got),
                            bits(&want),
                            "{b:?} {scales:?} rows {rows} cols {cols}"
                        );
                    }
                }
            }
        }
    }

    /// The int4 GEMV gives, on every backend, the bits of its definition:
    /// each row unpacked and run through the scalar blocked int8 GEMV. Odd
    /// widths (a short last block, an odd last nibble), every nibble value,
    /// outlier channels, and rows with many whole 8-block groups.
    #[test]
    fn all_int4_gemv_backends_match_the_unpacked_definition() {
        let mut s = 0x1234_4321_u64;
        let mut fused = 0;
        for i in 0..300 {
            let rows = 1 + (rng(&mut s) % 5) as usize;
            let cols = if i % 10 == 0 {
                512
            } else {
                1 + (rng(&mut s) % 700) as usize
            };
            let bytes = cols.div_ceil(2);
            let packed: Vec<u8> = (0..rows * bytes).map(|_| rng(&mut s) as u8).collect();
            let nb = cols.div_ceil(BLOCK);
            let input = TestInput::random(&mut s, cols);
            let act = input.act();
            let scales: Vec<f32> = (0..rows * nb)
                .map(|i| 0.001 + (i % 13) as f32 * 0.0007)
                .collect();
            let bias: Vec<f32> = (0..rows).map(|r| r as f32 * 0.5 - 1.0).collect();
            let mut want = vec![0f32; rows];
            let mut row = vec![0i8; cols];
            for (r, o) in want.iter_mut().enumerate() {
                unpack_i4(&packed[r * bytes..(r + 1) * bytes], &mut row);
                for (c, &v) in row.iter().enumerate() {
                    assert_eq!(v, nibble(&packed[r * bytes..], c));
                }
                let ws = WeightScales::Block(&scales[r * nb..(r + 1) * nb]);
                gemv_i8_blocked_with(
                    Backend::Scalar,
                    core::slice::from_mut(o),
                    &row,
                    ws,
                    &act,
                    Some(&bias[r..r + 1]),
                )
                .unwrap();
            }
            for b in Backend::ALL {
                let mut got = vec![f32::NAN; rows];
                let mut buf = vec![0i8; cols];
                if gemv_i4_blocked_with(b, &mut got, &packed, &scales, &act, Some(&bias), &mut buf)
                    .is_some()
                {
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{b:?} rows {rows} cols {cols}");
                    #[cfg(target_arch = "x86_64")]
                    {
                        fused += usize::from(b == Backend::Avx2);
                    }
                }
            }
        }
        // Malformed: the packed rows end early. Missing values read as 0 on
        // every backend (no stale scratch), so they still agree.
        let (rows, cols) = (3, 100);
        let input = TestInput::random(&mut s, cols);
        let nb = cols.div_ceil(BLOCK);
        let packed: Vec<u8> = (0..2 * cols.div_ceil(2) + 7)
            .map(|_| rng(&mut s) as u8)
            .collect();
        let scales = vec![0.01f32; rows * nb];
        let mut want = vec![0f32; rows];
        let mut buf = vec![55i8; cols];
        gemv_i4_blocked_with(
            Backend::Scalar,
            &mut want,
            &packed,
            &scales,
            &input.act(),
            None,
            &mut buf,
        )
        .unwrap();
        for b in Backend::ALL {
            let mut got = vec![f32::NAN; rows];
            let mut buf = vec![-77i8; cols];
            if gemv_i4_blocked_with(b, &mut got, &packed, &scales, &input.act(), None, &mut buf)
                .is_some()
            {
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{b:?} short rows");
            }
        }
        // The fused kernel ran on every case wherever this CPU has it.
        #[cfg(target_arch = "x86_64")]
        assert_eq!(fused, if Backend::Avx2.available() { 300 } else { 0 });
        let _ = fused;
    }

    #[test]
    fn unpack_i4_handles_every_length() {
        let packed = [0x7fu8, 0x80, 0x1e, 0xf9];
        let all = [-1i8, 7, 0, -8, -2, 1, -7, -1];
        for n in 0..=8 {
            let mut out = [99i8; 8];
            unpack_i4(&packed, &mut out[..n]);
            assert_eq!(out[..n], all[..n], "{n} values");
            assert!(out[n..].iter().all(|&v| v == 99));
        }
        // Values past the packed bytes are 0 (as `nibble` reads them), not
        // whatever the buffer held.
        let mut out = [99i8; 7];
        unpack_i4(&packed[..2], &mut out);
        assert_eq!(out, [-1, 7, 0, -8, 0, 0, 0]);
        assert!((0..7).all(|c| nibble(&packed[..2], c) == out[c]));
    }

    #[test]
    fn requantization_matches_real_arithmetic() {
        let mut s = 99u64;
        for _ in 0..20000 {
            let real =
                (rng(&mut s) % 1_000_000) as f64 / 1e6 * 2f64.powi((rng(&mut s) % 20) as i32 - 16);
            let x = (rng(&mut s) as i32) >> (rng(&mut s) % 24);
            let (m, sh) = quantize_multiplier(real);
            if ((x as i64) << sh.max(0)).abs() > i32::MAX as i64 {
                // The left shift saturates (TFLite overflows here); checked below.
                continue;
            }
            let got = multiply_by_quantized_multiplier(x, m, sh) as f64;
            let exact = x as f64 * m as f64 * 2f64.powi(sh) / 2f64.powi(31);
            // Two roundings (high multiply, then shift) can each lose half a unit.
            assert!(
                (got - exact).abs() <= 1.0 || m == 0,
                "x {x} m {m} sh {sh}: {got} vs {exact}"
            );
        }
        // gemmlowp's nudge: +2.5 rounds to 3, -2.5 to -2 (ties upward).
        assert_eq!(multiply_by_quantized_multiplier(5, 1 << 30, 0), 3);
        assert_eq!(multiply_by_quantized_multiplier(-5, 1 << 30, 0), -2);
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, i32::MIN, 0),
            i32::MAX
        );
        assert_eq!(quantize_multiplier(0.5), (1 << 30, 0));
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MAX, 1 << 30, 4),
            i32::MAX / 2 + 1
        );
        assert_eq!(quantize_multiplier(1.0), (1 << 30, 1));
    }

    #[test]
    fn symmetric_quantization_round_trips() {
        let x = [0.0f32, 1.0, -2.0, 0.5, 1.99];
        let mut q = [0i8; 5];
        let s = quantize_symmetric(&x, &mut q);
        assert_eq!(q, [0, 64, -127, 32, 126]);
        assert!((s - 2.0 / 127.0).abs() < 1e-9);
        let mut z = [1i8; 3];
        assert_eq!(quantize_symmetric(&[0.0; 3], &mut z), 1.0);
        assert_eq!(z, [0; 3]);
    }
}
