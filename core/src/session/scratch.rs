//! The session's scratch buffers (views into the arena), the optional
//! two-way split of large products, and the panic-free slice helpers every
//! path uses.

use super::observe::Watch;
use crate::quant::Backend;

/// Per-row scratch buffers.
pub(super) struct Scratch<'a> {
    pub(super) t: &'a mut [f32],
    pub(super) q: &'a mut [f32],
    pub(super) att: &'a mut [f32],
    pub(super) o: &'a mut [f32],
    pub(super) f1: &'a mut [f32],
    pub(super) f2: &'a mut [f32],
    pub(super) rope: &'a mut [f32],
    pub(super) lin: LinearScratch<'a>,
    pub(super) watch: Watch<'a>,
}

/// Runs two closures, possibly in parallel (`rayon::join` on a host). A
/// session given one splits each large matrix–vector product in two halves
/// by rows; each output row is computed by the same code either way, so the
/// bits do not depend on it.
pub trait Join: Sync {
    /// Runs `a` and `b`, returning when both are done.
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send));
}

/// How matrix products run: the kernels' backend (a value the session
/// holds, never a process-global) and an optional two-way split of large
/// products.
#[derive(Clone, Copy)]
pub(super) struct Exec<'s> {
    /// The backend every kernel call of this session uses.
    pub(super) backend: Backend,
    /// Optional parallelism for large products.
    pub(super) join: Option<&'s dyn Join>,
}

/// Computes a run of output rows: `(out, first_row, scratch)`.
pub(super) type RowsFn<'f> = dyn Fn(&mut [f32], usize, &mut [i8]) + Sync + 'f;

/// Rows below which a product is not split.
pub(super) const SPLIT_ROWS: usize = 64;

/// Computes `out` with `f(chunk, first_row)`, in two halves through `join` when given.
/// `f` also gets a private half of `scratch` (for unpacking int4 rows).
pub(super) fn split_rows(
    join: Option<&dyn Join>,
    out: &mut [f32],
    scratch: &mut [i8],
    f: &RowsFn<'_>,
) {
    match join {
        Some(j) if out.len() >= SPLIT_ROWS => {
            let mid = out.len() / 2;
            let (lo, hi) = out.split_at_mut(mid);
            let half = scratch.len() / 2;
            let (s_lo, s_hi) = scratch.split_at_mut(half);
            j.join(&mut || f(lo, 0, s_lo), &mut || f(hi, mid, s_hi));
        }
        _ => f(out, 0, scratch),
    }
}

/// Scratch that [`linear`] needs.
pub(super) struct LinearScratch<'s> {
    /// How products run: kernel backend and optional parallelism.
    pub(super) exec: Exec<'s>,
    /// int8 copy of a matrix input.
    pub(super) xq: &'s mut [i8],
    /// Its per-block scales.
    pub(super) xs: &'s mut [f32],
    /// The inlier copy of an int8 input (integer-only models: outlier pairs).
    pub(super) wrow: &'s mut [f32],
    /// Outlier channels of an int8 input.
    pub(super) outliers: &'s mut [u32],
    /// Two rows' worth of unpacked int4 weights (one per thread half).
    pub(super) unpack: &'s mut [i8],
    /// Outlier pairs in `wrow` (integer-only models).
    pub(super) n_outliers: usize,
}

/// `s[at..at + len]`: in range by the arena plan; empty (never a panic) if not.
pub(super) fn span<T>(s: &[T], at: usize, len: usize) -> &[T] {
    s.get(at..at.saturating_add(len)).unwrap_or(&[])
}

/// [`span`], mutable.
pub(super) fn span_mut<T>(s: &mut [T], at: usize, len: usize) -> &mut [T] {
    s.get_mut(at..at.saturating_add(len)).unwrap_or(&mut [])
}

/// Copies the common length of `src` into `dst` (no length-mismatch panic).
pub(super) fn copy<T: Copy>(dst: &mut [T], src: &[T]) {
    for (d, v) in dst.iter_mut().zip(src) {
        *d = *v;
    }
}

pub(super) fn take<'a>(rest: &mut &'a mut [f32], n: usize, used: usize) -> &'a mut [f32] {
    let all = core::mem::take(rest);
    let (head, tail) = all.split_at_mut(n.min(all.len()));
    *rest = tail;
    let k = used.min(head.len());
    head.get_mut(..k).unwrap_or_default()
}
