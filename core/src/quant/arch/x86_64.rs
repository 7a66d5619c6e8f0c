//! x86_64 kernels: SSE4.1 and AVX2 int8 products (`vpmaddubsw` +
//! `vpmaddwd`), the fused int4 row, and (with `std`, detected at run time)
//! the F16C f16 dot product.

use core::arch::x86_64::*;

// The blocked kernel loads one 32-byte vector per activation block.
const _: () = assert!(crate::quant::BLOCK == 32);

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
pub(crate) unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
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
    hsum_256(acc).wrapping_add(crate::quant::reference::dot_i8_scalar(&a[i..n], &b[i..n]))
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

/// One int4 row (`w` packed, see [`crate::quant::reference::nibble`]) with per-block
/// scales `ws`: the floats of [`crate::quant::reference::blocked_row_scalar`] on the
/// unpacked row, with the nibbles widened in registers.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn blocked_row_i4_avx2(w: &[u8], x: &[i8], xs: &[f32], ws: &[f32]) -> f32 {
    let n = x.len().min(w.len().saturating_mul(2));
    let whole = (n / crate::quant::BLOCK).min(xs.len()).min(ws.len());
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
            *sc = crate::quant::reference::block_scale(
                xs.get(b + k).copied().unwrap_or(0.0),
                Some(ws),
                b + k,
            );
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
    let mut buf = [0i8; crate::quant::BLOCK];
    let mut b = whole;
    while b * crate::quant::BLOCK < n {
        let Some(&s) = xs.get(b) else { break };
        let len = (n - b * crate::quant::BLOCK).min(crate::quant::BLOCK);
        let t = &mut buf[..len];
        crate::quant::reference::unpack_i4(w.get(b * crate::quant::BLOCK / 2..).unwrap_or(&[]), t);
        let xb = x
            .get(b * crate::quant::BLOCK..b * crate::quant::BLOCK + len)
            .unwrap_or(&[]);
        lanes[b % 8] += crate::quant::reference::dot_i8_scalar(t, xb) as f32
            * crate::quant::reference::block_scale(s, Some(ws), b);
        b += 1;
    }
    crate::quant::reference::reduce8(lanes)
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
pub(crate) unsafe fn blocked_row_avx2(w: &[i8], x: &[i8], xs: &[f32], ws: Option<&[f32]>) -> f32 {
    let n = w.len().min(x.len());
    let mut whole = (n / crate::quant::BLOCK).min(xs.len());
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
            let at = b * crate::quant::BLOCK;
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
            let at = (b + k) * crate::quant::BLOCK;
            // SAFETY: block b + k < whole, so at + 32 <= n <= len of both slices.
            sums[k] = unsafe { block_sum(wp.add(at), xp.add(at)) };
            scales[k] = crate::quant::reference::block_scale(xs[b + k], ws, b + k);
        }
        let d = _mm256_cvtepi32_ps(transpose_sum(&sums));
        // SAFETY: `scales` holds 8 f32.
        let s = unsafe { _mm256_loadu_ps(scales.as_ptr()) };
        p = _mm256_add_ps(p, _mm256_mul_ps(d, s));
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds 8 f32; storeu has no alignment need.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), p) };
    if whole * crate::quant::BLOCK == n || whole == xs.len() {
        return crate::quant::reference::reduce8(lanes);
    }
    crate::quant::reference::blocked_row_scalar(w, x, xs, ws, whole, lanes)
}

/// SSE4.1 int8 dot product (same scheme as AVX2, 16 lanes).
///
/// # Safety
/// The CPU must support SSE4.1 (SSSE3 included).
#[target_feature(enable = "sse4.1")]
pub(crate) unsafe fn dot_i8_sse41(a: &[i8], b: &[i8]) -> i32 {
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
    hsum_128(acc).wrapping_add(crate::quant::reference::dot_i8_scalar(&a[i..n], &b[i..n]))
}

/// The f16 dot product with F16C (hosts with `std`: detected at run time).
#[cfg(feature = "std")]
pub(crate) mod f16c {
    use crate::quant::reference::F16_LANES as LANES;
    use core::arch::x86_64::*;

    /// [`crate::quant::reference::dot_f16_scalar`] with one 8-lane vector of partial sums.
    ///
    /// # Safety
    /// The CPU must have AVX2 and F16C.
    #[target_feature(enable = "avx2,f16c")]
    pub(crate) unsafe fn dot_f16(w: &[half::f16], x: &[f32]) -> f32 {
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
        crate::quant::reference::finish(&lanes, cw.remainder(), cx.remainder())
    }
}
