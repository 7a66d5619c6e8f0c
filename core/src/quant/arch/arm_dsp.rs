//! Arm DSP-extension kernels (Cortex-M4/M7/M33): `SXTB16` unpacks bytes 0
//! and 2 (or, rotated by 8, bytes 1 and 3) of a word into two sign-extended
//! halfwords, and `SMLAD` adds both halfword products to an accumulator:
//! four int8 MACs in four instructions, with the activation word unpacked
//! once for four rows. Every product and sum is exact (a 32-element block
//! sums to at most 32·128·128 in magnitude), so the results are the scalar
//! definition's. The row-pair drivers here also serve Helium.

use crate::quant::reference::{block_scale, blocked_row_scalar, reduce8};
use crate::quant::BLOCK;
use core::arch::asm;

/// Whole-row products two rows at a time with a two-row 32-element block
/// kernel (the activation block is loaded and unpacked once for both
/// rows); an odd last row by `dot`. Sums wrap, as the scalar definition's.
#[inline(always)]
pub(crate) fn rows_by_two(
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

/// The blocked GEMV two rows at a time, for kernels whose block sums come
/// from `block2` (two rows × one 32-element block) and `dot` (one row): the
/// Cortex-M DSP and Helium backends. The float steps are the definition's.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn two_rows<'s>(
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

/// Two weight rows and the activations of one block as 32-byte arrays, so
/// the Arm kernels can read them at fixed offsets; `None` for a short block.
#[inline(always)]
#[allow(clippy::type_complexity)]
pub(crate) fn whole_block<'a>(
    w0: &'a [i8],
    w1: &'a [i8],
    x: &'a [i8],
) -> Option<(&'a [i8; 32], &'a [i8; 32], &'a [i8; 32])> {
    Some((w0.try_into().ok()?, w1.try_into().ok()?, x.try_into().ok()?))
}

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
pub(crate) fn block2(w0: &[i8], w1: &[i8], x: &[i8]) -> [i32; 2] {
    let Some((w0, w1, x)) = whole_block(w0, w1, x) else {
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
pub(crate) fn rows4(out: &mut [i32], w: &[i8], cols: usize, x: &[i8], nb: usize) -> Option<()> {
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
pub(crate) fn gemv(out: &mut [i32], w: &[i8], x: &[i8]) {
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
            *o = o.wrapping_add(crate::quant::reference::dot_i8_scalar(tail, xt));
        }
    }
    if let Some(wr) = w.get(four * cols..) {
        rows_by_two(rest, wr, x, block2, dot_i8);
    }
}

/// Exact (wrapping, as the scalar definition) `Σ a[i]·b[i]`.
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
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
    acc.wrapping_add(crate::quant::reference::dot_i8_scalar(
        ca.remainder(),
        cb.remainder(),
    ))
}
