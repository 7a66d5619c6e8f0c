//! Integer and f16 kernels behind one safe dispatcher per family: int8 dot
//! products and matrix–vector products with int32 accumulation, the blocked
//! int8 and int4 products with f32 activation scales, and the f16 dot
//! product.
//!
//! - [`reference`]: the scalar functions, the definition.
//! - [`arch`]: one file per architecture (x86_64 SSE4.1/AVX2/F16C, aarch64
//!   NEON with and without `SDOT`, Arm DSP, Helium); every `unsafe` SIMD
//!   function is private to the crate and reached only through the
//!   dispatchers here, which check [`Backend::available`] first.
//! - [`activations`]: the int8 activation quantizers.
//!
//! The backend is a value: each dispatcher takes the [`Backend`] to run, a
//! [`crate::Session`] holds the one it was given (the best this machine has
//! unless chosen with [`crate::Session::set_backend`]), and nothing is
//! process-global. Every variant returns exactly the scalar bits; the tests
//! run each available one.
//!
//! Inputs: weights are any `i8`; activations must lie in `[-127, 127]` (the
//! quantizers here never produce -128). With that, no SIMD step can saturate,
//! which is what makes the variants bit-identical.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod activations;
mod arch;
pub mod reference;
#[cfg(test)]
mod tests;

pub use crate::fixed::{multiply_by_quantized_multiplier, quantize_multiplier};
pub use activations::{prepare_activations, quantize_blocks, quantize_symmetric};
use reference::{add_outliers, blocked_row_scalar};
// The per-block dot kernels of SSE4.1 and NEON run through the scalar row loop.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use reference::blocked_row_by;
pub use reference::{dot_f16_scalar, dot_i8_scalar, nibble, unpack_i4};

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

    /// The fastest backend this machine runs (detected at run time on hosts
    /// with `std`, fixed at compile time on devices). Pure: nothing chosen
    /// elsewhere changes it.
    pub fn best() -> Backend {
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
            rows.for_each(|(o, r)| *o = unsafe { arch::x86_64::dot_i8_avx2(r, x) })
        }
        #[cfg(target_arch = "x86_64")]
        Backend::Sse41 => {
            // SAFETY: `available()` confirmed SSE4.1 on this CPU.
            rows.for_each(|(o, r)| *o = unsafe { arch::x86_64::dot_i8_sse41(r, x) })
        }
        #[cfg(target_arch = "aarch64")]
        Backend::Neon => rows.for_each(|(o, r)| *o = arch::aarch64::dot_i8_neon(r, x)),
        #[cfg(target_arch = "aarch64")]
        Backend::NeonDot => {
            // SAFETY: `available()` confirmed the dot-product extension.
            rows.for_each(|(o, r)| *o = unsafe { arch::aarch64::dot_i8_sdot(r, x) })
        }
        #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
        Backend::Dsp => arch::arm_dsp::gemv(out, w, x),
        #[cfg(all(
            target_arch = "arm",
            target_feature = "mclass",
            target_feature = "neon"
        ))]
        Backend::Helium => arch::helium::gemv(out, w, x),
        #[allow(unreachable_patterns)]
        _ => return None,
    }
    Some(())
}

/// Activations with `|x|` above this stay out of the int8 copy and are added
/// exactly in f32 (LLM.int8()-style outlier channels).
pub const OUTLIER_LIMIT: f32 = 6.0;

/// Elements per activation block: each block of an int8 activation vector
/// has its own scale, so one outlier channel only coarsens its own block.
pub const BLOCK: usize = 32;

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
                unsafe { arch::x86_64::blocked_row_avx2(w, x, x_scales, row_scales(r)) },
                w,
            )
        }),
        // One row at a time through a per-block dot kernel: the scalar
        // definition's float sequence, the kernel's exact block sums.
        #[cfg(target_arch = "x86_64")]
        Backend::Sse41 => rows.for_each(|(r, (o, w))| {
            // SAFETY: `available()` confirmed SSE4.1 on this CPU.
            let dot = |a: &[i8], b: &[i8]| unsafe { arch::x86_64::dot_i8_sse41(a, b) };
            *o = finish(
                r,
                blocked_row_by(dot, w, x, x_scales, row_scales(r), 0, [0.0; 8]),
                w,
            );
        }),
        #[cfg(target_arch = "aarch64")]
        Backend::Neon => rows.for_each(|(r, (o, w))| {
            let dot = arch::aarch64::dot_i8_neon;
            *o = finish(
                r,
                blocked_row_by(dot, w, x, x_scales, row_scales(r), 0, [0.0; 8]),
                w,
            );
        }),
        #[cfg(target_arch = "aarch64")]
        Backend::NeonDot => rows.for_each(|(r, (o, w))| {
            // SAFETY: `available()` confirmed the dot-product extension.
            let dot = |a: &[i8], b: &[i8]| unsafe { arch::aarch64::dot_i8_sdot(a, b) };
            *o = finish(
                r,
                blocked_row_by(dot, w, x, x_scales, row_scales(r), 0, [0.0; 8]),
                w,
            );
        }),
        #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
        Backend::Dsp => arch::arm_dsp::two_rows(
            out,
            q,
            x,
            x_scales,
            &row_scales,
            &finish,
            arch::arm_dsp::block2,
            arch::arm_dsp::dot_i8,
        ),
        #[cfg(all(
            target_arch = "arm",
            target_feature = "mclass",
            target_feature = "neon"
        ))]
        Backend::Helium => arch::arm_dsp::two_rows(
            out,
            q,
            x,
            x_scales,
            &row_scales,
            &finish,
            arch::helium::block2,
            arch::helium::dot_i8,
        ),
        #[allow(unreachable_patterns)]
        _ => return None,
    }
    Some(())
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
            let acc = unsafe { arch::x86_64::blocked_row_i4_avx2(w, act.q, act.scales, ws) };
            let b = bias.and_then(|b| b.get(r)).copied().unwrap_or(0.0);
            *o = reference::add_outliers_by(
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

/// `Σ a[i]·b[i]` over the shorter length (wrapping), on `backend` (`None`
/// if it cannot run here): the definition's result on every one.
pub fn dot_i8_with(backend: Backend, a: &[i8], b: &[i8]) -> Option<i32> {
    let mut acc = [0i32];
    let n = a.len().min(b.len());
    if let (Some(a), Some(b)) = (a.get(..n), b.get(..n)) {
        gemv_i8_with(backend, &mut acc, a, b)?;
    }
    Some(acc[0])
}

/// Whether `backend` has its own f16 dot product on this machine (x86_64
/// AVX2 with F16C on hosts, aarch64 NEON); otherwise [`dot_f16_with`] runs
/// the definition.
pub fn f16_simd(backend: Backend) -> bool {
    match backend {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        Backend::Avx2 => backend.available() && std::is_x86_feature_detected!("f16c"),
        #[cfg(target_arch = "aarch64")]
        Backend::Neon | Backend::NeonDot => backend.available(),
        _ => false,
    }
}

/// [`crate::kernels::dot`] of an f16 row (widened exactly to f32) and `x`, without a
/// widened copy of the row: the same eight lanes, the same order, no fused
/// multiply-add, so the same bits as `kernels::dot` of the widened row. With
/// [`Backend::Avx2`] on x86_64 hosts with F16C (`std`, detected at run time)
/// eight halves are widened by one `vcvtph2ps` and multiplied and added as
/// one 8-lane vector; with NEON on aarch64 by `fcvtl`/`fcvtl2` into two 4-lane
/// vectors (see [`f16_simd`]). Every other backend runs the definition.
pub fn dot_f16_with(backend: Backend, w: &[half::f16], x: &[f32]) -> f32 {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if backend == Backend::Avx2 && f16_simd(backend) {
        // SAFETY: AVX2 and F16C were just detected on this CPU.
        return unsafe { arch::x86_64::f16c::dot_f16(w, x) };
    }
    #[cfg(target_arch = "aarch64")]
    if f16_simd(backend) {
        return arch::aarch64::dot_f16_neon(w, x);
    }
    let _ = backend;
    dot_f16_scalar(w, x)
}
