//! The kernel self-check: every integer and f16 backend this machine runs
//! against the scalar definition, bit for bit, on seeded odd shapes.
//!
//! One check for every place that runs it: the device app
//! (`firmware/mcu`, at start on every board), the edge binary
//! (`mote-edge --check-kernels` under qemu-aarch64) and this crate's tests.
//! It needs no allocation — the caller lends a [`Workspace`] (a `static` on
//! a device) — and has no panic path on any input: the firmware's
//! panic-free proof links it.
//!
//! Per shape it checks the whole-row int8 product ([`quant::gemv_i8_with`],
//! the integer path's), the blocked int8 product with per-row and with
//! per-block weight scales, the int4 product ([`quant::gemv_i4_blocked_with`]),
//! the last three with a bias and an outlier channel, and the f16 dot
//! product on every backend that has one of its own ([`quant::f16_simd`]).
//! A backend this machine lacks is not checked (and not counted).

use crate::quant::{self, Activations, Backend, WeightScales, BLOCK};
use half::f16;

/// The shapes checked, `(rows, columns)`: row tails of the two-row kernels
/// (odd rows), column tails of every SIMD width (15, 17, 31, 33, 100, 255),
/// whole blocks (64, 256) and a long row (1000).
pub const SHAPES: [(usize, usize); 14] = [
    (1, 1),
    (3, 15),
    (5, 17),
    (7, 31),
    (3, 31),
    (2, 33),
    (5, 33),
    (2, 64),
    (9, 100),
    (7, 100),
    (4, 255),
    (9, 255),
    (6, 256),
    (3, 1000),
];

/// Most rows of any shape.
pub const MAX_ROWS: usize = 9;
/// Most columns of any shape.
pub const MAX_COLS: usize = 1000;
/// Most weights of any shape (`rows × columns`).
const MAX_WEIGHTS: usize = 3000;
/// Most activation blocks of a row.
const MAX_BLOCKS: usize = MAX_COLS.div_ceil(BLOCK);
/// Most packed int4 bytes of any shape (`rows × ⌈columns / 2⌉`).
const MAX_PACKED: usize = MAX_WEIGHTS / 2 + MAX_ROWS;
/// The channel made an outlier (when a row is wider).
const OUTLIER: u32 = 7;

// Every shape fits the workspace (checked when this crate compiles).
const _: () = {
    let mut i = 0;
    while i < SHAPES.len() {
        let (rows, cols) = SHAPES[i];
        assert!(rows <= MAX_ROWS && cols <= MAX_COLS && rows * cols <= MAX_WEIGHTS);
        assert!(rows * cols.div_ceil(2) <= MAX_PACKED);
        i += 1;
    }
};

/// The buffers the check fills, lent by the caller (about 16 KB: a
/// `static` on a device, anywhere on a host).
pub struct Workspace {
    w: [i8; MAX_WEIGHTS],
    packed: [u8; MAX_PACKED],
    x: [i8; MAX_COLS],
    values: [f32; MAX_COLS],
    x_scales: [f32; MAX_BLOCKS],
    w_scales: [f32; MAX_ROWS * MAX_BLOCKS],
    bias: [f32; MAX_ROWS],
    halves: [f16; MAX_COLS],
    row: [i8; MAX_COLS],
}

impl Workspace {
    /// Zeroed buffers (a `const fn`, so a device can keep one in `.bss`).
    pub const fn new() -> Self {
        Workspace {
            w: [0; MAX_WEIGHTS],
            packed: [0; MAX_PACKED],
            x: [0; MAX_COLS],
            values: [0.0; MAX_COLS],
            x_scales: [0.0; MAX_BLOCKS],
            w_scales: [0.0; MAX_ROWS * MAX_BLOCKS],
            bias: [0.0; MAX_ROWS],
            halves: [f16::ZERO; MAX_COLS],
            row: [0; MAX_COLS],
        }
    }
}

impl Default for Workspace {
    fn default() -> Self {
        Workspace::new()
    }
}

/// A kernel family the check compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Whole-row int8 products with int32 results (the integer path).
    GemvI8,
    /// Blocked int8 products, one weight scale per row.
    BlockedI8RowScales,
    /// Blocked int8 products, one weight scale per row and block.
    BlockedI8BlockScales,
    /// Blocked int4 products (per-block scales).
    BlockedI4,
    /// The f16 dot product.
    DotF16,
}

impl Kernel {
    /// What the kernel is, in words.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::GemvI8 => "whole-row int8 GEMV",
            Kernel::BlockedI8RowScales => "blocked int8 GEMV (per-row scales)",
            Kernel::BlockedI8BlockScales => "blocked int8 GEMV (per-block scales)",
            Kernel::BlockedI4 => "blocked int4 GEMV",
            Kernel::DotF16 => "f16 dot product",
        }
    }
}

/// Why the check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckError {
    /// A backend gave other bits than the scalar definition.
    Differs {
        /// The kernel family.
        kernel: Kernel,
        /// The backend that differs.
        backend: Backend,
        /// The shape it differs on.
        rows: usize,
        /// See `rows`.
        cols: usize,
    },
    /// A backend that says it is available did not run (its dispatcher
    /// returned `None`).
    DidNotRun {
        /// The kernel family.
        kernel: Kernel,
        /// The backend.
        backend: Backend,
    },
}

impl core::fmt::Display for CheckError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            CheckError::Differs {
                kernel,
                backend,
                rows,
                cols,
            } => write!(
                f,
                "kernel check: the {} on {} differs from the scalar definition at {rows}x{cols}",
                kernel.name(),
                backend.name()
            ),
            CheckError::DidNotRun { kernel, backend } => write!(
                f,
                "kernel check: the {} on {} did not run although the backend is available",
                kernel.name(),
                backend.name()
            ),
        }
    }
}

impl core::error::Error for CheckError {}

/// What a passed check compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// (kernel, shape, backend) comparisons that gave the scalar bits.
    pub pairs: u32,
    /// The backends compared: bit `i` for `Backend::ALL[i]`.
    pub backends: u8,
}

impl Report {
    /// The backends compared, in [`Backend::ALL`] order.
    pub fn backends(&self) -> impl Iterator<Item = Backend> {
        let mask = self.backends;
        Backend::ALL
            .into_iter()
            .enumerate()
            .filter(move |&(i, _)| mask & (1 << i) != 0)
            .map(|(_, b)| b)
    }
}

impl core::fmt::Display for Report {
    /// `kernel check: N shape/backend pairs equal the scalar bits (scalar, dsp; best: dsp)`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "kernel check: {} shape/backend pairs equal the scalar bits (",
            self.pairs
        )?;
        for (i, b) in self.backends().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(b.name())?;
        }
        write!(f, "; best: {})", Backend::best().name())
    }
}

/// Runs the check on every backend this machine runs.
pub fn check_kernels(ws: &mut Workspace) -> Result<Report, CheckError> {
    check_with(ws, &KERNELS)
}

/// [`quant::gemv_i8_with`]'s signature.
type GemvI8 = fn(Backend, &mut [i32], &[i8], &[i8]) -> Option<()>;
/// [`quant::gemv_i8_blocked_with`]'s signature.
type BlockedI8 = fn(
    Backend,
    &mut [f32],
    &[i8],
    WeightScales<'_>,
    &Activations<'_>,
    Option<&[f32]>,
) -> Option<()>;
/// [`quant::gemv_i4_blocked_with`]'s signature.
type BlockedI4 = fn(
    Backend,
    &mut [f32],
    &[u8],
    &[f32],
    &Activations<'_>,
    Option<&[f32]>,
    &mut [i8],
) -> Option<()>;

/// The kernels under check, so the tests can hand in a wrong one.
struct Kernels {
    available: fn(Backend) -> bool,
    gemv_i8: GemvI8,
    blocked_i8: BlockedI8,
    blocked_i4: BlockedI4,
    f16_simd: fn(Backend) -> bool,
    dot_f16: fn(Backend, &[f16], &[f32]) -> f32,
}

const KERNELS: Kernels = Kernels {
    available: Backend::available,
    gemv_i8: quant::gemv_i8_with,
    blocked_i8: quant::gemv_i8_blocked_with,
    blocked_i4: quant::gemv_i4_blocked_with,
    f16_simd: quant::f16_simd,
    dot_f16: quant::dot_f16_with,
};

/// xorshift32: the same data on every machine.
fn next(state: &mut u32) -> u32 {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    *state
}

/// Fills the workspace for `cols` columns and `rows` rows.
fn fill(ws: &mut Workspace, state: &mut u32, rows: usize, cols: usize) {
    let nb = cols.div_ceil(BLOCK);
    for v in ws.w.iter_mut().take(rows * cols) {
        *v = (next(state) >> 24) as i8;
    }
    for v in ws.packed.iter_mut().take(rows * cols.div_ceil(2)) {
        *v = (next(state) >> 24) as u8;
    }
    // Activations lie in [-127, 127] (the quantizers never give -128).
    for (q, v) in ws.x.iter_mut().zip(ws.values.iter_mut()).take(cols) {
        *q = ((next(state) >> 24) as i8).max(-127);
        *v = f32::from(*q) * 0.05;
    }
    // One outlier channel: zero in the int8 vector, large in the f32 one.
    if cols > OUTLIER as usize {
        if let (Some(q), Some(v)) = (
            ws.x.get_mut(OUTLIER as usize),
            ws.values.get_mut(OUTLIER as usize),
        ) {
            *q = 0;
            *v = 9.5;
        }
    }
    for (b, s) in ws.x_scales.iter_mut().enumerate().take(nb) {
        *s = 0.01 + 0.003 * b as f32;
    }
    for (i, s) in ws.w_scales.iter_mut().enumerate().take(rows * nb) {
        *s = 0.02 - 0.0001 * i as f32;
    }
    for (r, b) in ws.bias.iter_mut().enumerate() {
        *b = r as f32 * 0.5;
    }
    // Finite halves of every exponent and both signs (exponent 31, inf and
    // NaN, folded to 30).
    for h in ws.halves.iter_mut().take(cols) {
        let b = (next(state) >> 16) as u16;
        *h = f16::from_bits(if b & 0x7c00 == 0x7c00 { b & !0x0400 } else { b });
    }
}

/// The first `n` values of `buf` (all of them if it is shorter).
fn first<T>(buf: &mut [T; MAX_ROWS], n: usize) -> &mut [T] {
    let n = n.min(MAX_ROWS);
    match buf.get_mut(..n) {
        Some(b) => b,
        None => &mut [],
    }
}

fn check_with(ws: &mut Workspace, k: &Kernels) -> Result<Report, CheckError> {
    let mut state = 0x9e37_79b9u32;
    let mut report = Report {
        pairs: 0,
        backends: 0,
    };
    let outliers = [OUTLIER];
    for (rows, cols) in SHAPES {
        fill(ws, &mut state, rows, cols);
        let nb = cols.div_ceil(BLOCK);
        let ws = &mut *ws;
        // The const block above proves every shape fits; `get` keeps the
        // check free of panic paths regardless (a shape skipped here would
        // be missing from `pairs`, which the tests count exactly).
        let (
            Some(w),
            Some(packed),
            Some(x),
            Some(values),
            Some(x_scales),
            Some(w_scales),
            Some(bias),
            Some(halves),
        ) = (
            ws.w.get(..rows * cols),
            ws.packed.get(..rows * cols.div_ceil(2)),
            ws.x.get(..cols),
            ws.values.get(..cols),
            ws.x_scales.get(..nb),
            ws.w_scales.get(..rows * nb),
            ws.bias.get(..rows),
            ws.halves.get(..cols),
        )
        else {
            continue;
        };
        let row = &mut ws.row;
        let act = Activations {
            q: x,
            scales: x_scales,
            outliers: if cols > OUTLIER as usize {
                &outliers
            } else {
                &[]
            },
            values,
        };
        let row_scales = w_scales.get(..rows).unwrap_or(&[]);
        let differs = |kernel, backend| CheckError::Differs {
            kernel,
            backend,
            rows,
            cols,
        };
        let did_not_run = |kernel, backend| CheckError::DidNotRun { kernel, backend };

        // The scalar definition's results.
        let mut want_i = [0i32; MAX_ROWS];
        let mut want = [[0f32; MAX_ROWS]; 3];
        let scalar = Backend::Scalar;
        (k.gemv_i8)(scalar, first(&mut want_i, rows), w, x)
            .ok_or(did_not_run(Kernel::GemvI8, scalar))?;
        let [want_row, want_block, want_i4] = &mut want;
        (k.blocked_i8)(
            scalar,
            first(want_row, rows),
            w,
            WeightScales::Row(row_scales),
            &act,
            Some(bias),
        )
        .ok_or(did_not_run(Kernel::BlockedI8RowScales, scalar))?;
        (k.blocked_i8)(
            scalar,
            first(want_block, rows),
            w,
            WeightScales::Block(w_scales),
            &act,
            Some(bias),
        )
        .ok_or(did_not_run(Kernel::BlockedI8BlockScales, scalar))?;
        (k.blocked_i4)(
            scalar,
            first(want_i4, rows),
            packed,
            w_scales,
            &act,
            Some(bias),
            row,
        )
        .ok_or(did_not_run(Kernel::BlockedI4, scalar))?;
        let want_f16 = quant::dot_f16_scalar(halves, values).to_bits();

        for (i, b) in Backend::ALL.into_iter().enumerate() {
            if !(k.available)(b) {
                continue;
            }
            report.backends |= 1 << i;
            let mut got_i = [0i32; MAX_ROWS];
            (k.gemv_i8)(b, first(&mut got_i, rows), w, x).ok_or(did_not_run(Kernel::GemvI8, b))?;
            if got_i != want_i {
                return Err(differs(Kernel::GemvI8, b));
            }
            let mut got = [0f32; MAX_ROWS];
            for (kernel, want) in [
                (Kernel::BlockedI8RowScales, &*want_row),
                (Kernel::BlockedI8BlockScales, &*want_block),
                (Kernel::BlockedI4, &*want_i4),
            ] {
                let o = first(&mut got, rows);
                let ran = match kernel {
                    Kernel::BlockedI8RowScales => {
                        (k.blocked_i8)(b, o, w, WeightScales::Row(row_scales), &act, Some(bias))
                    }
                    Kernel::BlockedI8BlockScales => {
                        (k.blocked_i8)(b, o, w, WeightScales::Block(w_scales), &act, Some(bias))
                    }
                    _ => (k.blocked_i4)(b, o, packed, w_scales, &act, Some(bias), row),
                };
                ran.ok_or(did_not_run(kernel, b))?;
                if got.map(f32::to_bits) != want.map(f32::to_bits) {
                    return Err(differs(kernel, b));
                }
            }
            report.pairs += 4;
            if (k.f16_simd)(b) {
                let got = (k.dot_f16)(b, halves, values).to_bits();
                if got != want_f16 {
                    return Err(differs(Kernel::DotF16, b));
                }
                report.pairs += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The check passes on this machine, compares every backend it runs
    /// and says so.
    #[test]
    fn every_available_backend_gives_the_scalar_bits() {
        let mut ws = Workspace::new();
        let report = check_kernels(&mut ws).unwrap();
        let available: std::vec::Vec<Backend> =
            Backend::ALL.into_iter().filter(|b| b.available()).collect();
        assert_eq!(report.backends().collect::<std::vec::Vec<_>>(), available);
        let f16 = Backend::ALL
            .into_iter()
            .filter(|&b| quant::f16_simd(b))
            .count();
        assert_eq!(
            report.pairs as usize,
            SHAPES.len() * (4 * available.len() + f16)
        );
        let line = std::format!("{report}");
        assert!(line.starts_with("kernel check: "), "{line}");
        for b in Backend::ALL {
            let what = if b.available() {
                "compared with scalar"
            } else {
                "skipped: not on this machine"
            };
            std::println!("self-check on {}: {what}", b.name());
        }
        std::println!("{line}");
    }

    /// The check catches a backend that differs, and names the kernel, the
    /// backend and the shape: here a fake AVX2 whose blocked int8 product
    /// (per-block scales) is one bit off on rows of 100 columns.
    #[test]
    fn a_wrong_kernel_is_named() {
        fn blocked(
            b: Backend,
            out: &mut [f32],
            w: &[i8],
            s: WeightScales<'_>,
            act: &Activations<'_>,
            bias: Option<&[f32]>,
        ) -> Option<()> {
            quant::gemv_i8_blocked_with(Backend::Scalar, out, w, s, act, bias)?;
            if b == Backend::Avx2 && act.q.len() == 100 && matches!(s, WeightScales::Block(_)) {
                out[0] = f32::from_bits(out[0].to_bits() ^ 1);
            }
            Some(())
        }
        let k = Kernels {
            available: |b| matches!(b, Backend::Scalar | Backend::Avx2),
            gemv_i8: |_, o, w, x| quant::gemv_i8_with(Backend::Scalar, o, w, x),
            blocked_i8: blocked,
            blocked_i4: |_, o, p, s, a, bias, row| {
                quant::gemv_i4_blocked_with(Backend::Scalar, o, p, s, a, bias, row)
            },
            f16_simd: |_| false,
            dot_f16: |_, h, x| quant::dot_f16_scalar(h, x),
        };
        let e = check_with(&mut Workspace::new(), &k).unwrap_err();
        assert_eq!(
            e,
            CheckError::Differs {
                kernel: Kernel::BlockedI8BlockScales,
                backend: Backend::Avx2,
                rows: 9,
                cols: 100
            }
        );
        assert_eq!(
            std::format!("{e}"),
            "kernel check: the blocked int8 GEMV (per-block scales) on avx2 differs from the scalar definition at 9x100"
        );
    }

    /// A wrong f16 dot product and a dispatcher that refuses to run are
    /// each reported as such.
    #[test]
    fn a_wrong_f16_dot_and_a_kernel_that_does_not_run_are_reported() {
        let mut k = Kernels {
            available: |b| matches!(b, Backend::Scalar | Backend::Neon),
            f16_simd: |b| b == Backend::Neon,
            dot_f16: |b, h, x| {
                let d = quant::dot_f16_scalar(h, x);
                if b == Backend::Neon {
                    d + 1.0
                } else {
                    d
                }
            },
            gemv_i8: |_, o, w, x| quant::gemv_i8_with(Backend::Scalar, o, w, x),
            blocked_i8: |_, o, w, s, a, bias| {
                quant::gemv_i8_blocked_with(Backend::Scalar, o, w, s, a, bias)
            },
            blocked_i4: |_, o, p, s, a, bias, row| {
                quant::gemv_i4_blocked_with(Backend::Scalar, o, p, s, a, bias, row)
            },
        };
        let mut ws = Workspace::new();
        assert_eq!(
            check_with(&mut ws, &k),
            Err(CheckError::Differs {
                kernel: Kernel::DotF16,
                backend: Backend::Neon,
                rows: 1,
                cols: 1
            })
        );
        k.gemv_i8 = |b, o, w, x| {
            if b == Backend::Neon {
                None
            } else {
                quant::gemv_i8_with(b, o, w, x)
            }
        };
        assert_eq!(
            check_with(&mut ws, &k),
            Err(CheckError::DidNotRun {
                kernel: Kernel::GemvI8,
                backend: Backend::Neon
            })
        );
    }
}
