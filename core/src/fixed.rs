//! Fixed-point arithmetic for the integer-only path: real multipliers in
//! TFLite's Q31 form derived from f32 bit patterns with integer operations
//! only, and integer `exp`, sigmoid, GELU, SiLU, square root and sine.
//!
//! Nothing here executes a floating-point instruction: a model's f32
//! constants (scales, norm weights, biases) are read as bit patterns and
//! turned into integers with shifts and multiplies, so a core without an FPU
//! runs the integer path without soft-float calls. Reals inside these
//! functions are in Q16 (`v · 2^16` in an `i32`) or Q30.

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

/// Fractional bits of the Q16 format used between integer operations.
pub const Q16: i32 = 16;
/// `1.0` in Q30.
pub const ONE_Q30: i64 = 1 << 30;

/// A real `m · 2^(shift - 31)`: the multiplier form of TFLite's
/// `MultiplyByQuantizedMultiplier`. Its constructors make non-negative
/// multipliers with `m` in `[2^30, 2^31)` (or zero); the fields are public,
/// and [`Mult::apply`] and [`Mult::apply64`] take any `m`, a negative one
/// giving the negated product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mult {
    /// Q31 mantissa in `[2^30, 2^31)`, or 0.
    pub m: i32,
    /// Power-of-two exponent.
    pub shift: i32,
}

impl Mult {
    /// The real 0.
    pub const ZERO: Mult = Mult { m: 0, shift: 0 };
    /// The real 1.
    pub const ONE: Mult = Mult {
        m: 1 << 30,
        shift: 1,
    };

    /// `|v|` from its f32 bits, exactly (a 24-bit mantissa fits in 31 bits);
    /// zero, subnormal, infinite and NaN values give [`Mult::ZERO`].
    pub fn from_f32(v: f32) -> Mult {
        let b = v.to_bits() & 0x7fff_ffff;
        let e = (b >> 23) as i32;
        if e == 0 || e == 255 {
            return Mult::ZERO;
        }
        let mant = (b & 0x7f_ffff) | 0x80_0000;
        // v = mant · 2^(e - 150) = (mant << 7) · 2^(e - 157) = m · 2^(shift - 31).
        Mult {
            m: (mant << 7) as i32,
            shift: e - 126,
        }
    }

    /// `2^k`.
    pub fn pow2(k: i32) -> Mult {
        Mult {
            m: 1 << 30,
            shift: k + 1,
        }
    }

    /// An integer `v`, exactly up to 31 significant bits.
    pub fn from_int(v: u64) -> Mult {
        Mult::normalize(v, 31)
    }

    /// Normalises a positive mantissa held in a `u64` with exponent `shift`.
    #[inline(never)]
    fn normalize(mut p: u64, mut shift: i32) -> Mult {
        if p == 0 {
            return Mult::ZERO;
        }
        while p >= 1 << 31 {
            // Round half up on the bit shifted out.
            p = (p >> 1) + (p & 1);
            shift += 1;
        }
        while p < 1 << 30 {
            p <<= 1;
            shift -= 1;
        }
        Mult { m: p as i32, shift }
    }

    /// The product, rounded to 31 bits.
    #[inline(never)]
    pub fn times(self, o: Mult) -> Mult {
        if self.m == 0 || o.m == 0 {
            return Mult::ZERO;
        }
        // (a·2^(sa-31))·(b·2^(sb-31)) = (a·b >> 31)·2^(sa+sb-31).
        let p = self.m as u64 * o.m as u64;
        Mult::normalize((p >> 31) + ((p >> 30) & 1), self.shift + o.shift)
    }

    /// The quotient `self / o`, rounded to 31 bits (zero for a zero divisor).
    #[inline(never)]
    pub fn over(self, o: Mult) -> Mult {
        if self.m == 0 || o.m == 0 {
            return Mult::ZERO;
        }
        // (a << 31) / b is in (2^30, 2^32).
        let n = (self.m as u64) << 31;
        let d = o.m as u64;
        Mult::normalize(
            (n + d / 2).checked_div(d).unwrap_or(0),
            self.shift - o.shift,
        )
    }

    /// `round(x · self)`, TFLite's `MultiplyByQuantizedMultiplier` (saturating).
    pub fn apply(self, x: i32) -> i32 {
        if self.m == 0 || self.shift < -31 {
            return 0;
        }
        if self.shift > 30 {
            return match x {
                0 => 0,
                x if x > 0 => i32::MAX,
                _ => i32::MIN,
            };
        }
        multiply_by_quantized_multiplier(x, self.m, self.shift)
    }

    /// `round(x · self)` for a wide `x`, rounding half away from zero,
    /// saturating to `i64`.
    ///
    /// In 64-bit pieces: the exact product `|x| · |m|` (up to 94 bits) is
    /// `hi · 2^32 + lo`, shifted with rounding; no 128-bit arithmetic, which
    /// costs a 32-bit core several times the code.
    #[inline(never)]
    pub fn apply64(self, x: i64) -> i64 {
        if self.m == 0 || x == 0 {
            return 0;
        }
        let negative = (x < 0) != (self.m < 0);
        let (a, b) = (x.unsigned_abs(), self.m.unsigned_abs() as u64);
        // |x| · |m| = hi · 2^32 + lo, hi < 2^63, lo < 2^32.
        let low = (a & 0xffff_ffff) * b;
        let hi = (a >> 32) * b + (low >> 32);
        let lo = low & 0xffff_ffff;
        let right = 31 - self.shift as i64;
        // The rounded magnitude; u64::MAX stands for "too large".
        let magnitude = if right <= 0 {
            let p = if hi >> 32 == 0 {
                (hi << 32) | lo
            } else {
                u64::MAX
            };
            match u32::try_from(-right) {
                Ok(l) if l < 64 && p.leading_zeros() >= l => p << l,
                _ => u64::MAX,
            }
        } else if right <= 32 {
            // Add half of the last kept unit to `lo`, carry into `hi`.
            let lo = lo + (1 << (right - 1));
            let hi = hi + (lo >> 32);
            let up = 32 - right;
            if hi.leading_zeros() as i64 >= up {
                (hi << up) | ((lo & 0xffff_ffff) >> right)
            } else {
                u64::MAX
            }
        } else if right - 32 <= 63 {
            // `lo` lies below the rounding bit: only `hi` matters.
            let s = right - 32;
            (hi + (1 << (s - 1))) >> s
        } else {
            0
        };
        match (negative, i64::try_from(magnitude)) {
            (false, Ok(v)) => v,
            (false, Err(_)) => i64::MAX,
            (true, Ok(v)) => -v,
            (true, Err(_)) => i64::MIN,
        }
    }
}

/// `round(v / scale)` for an f32 constant `v`, given `inv = 1 / scale`,
/// saturated to `i32`; integer operations only.
#[inline(never)]
pub fn to_fixed(v: f32, inv: Mult) -> i32 {
    // `round(1 · m · 2^shift)`, saturating (a 32-bit path: no i128).
    let r = inv.times(Mult::from_f32(v)).apply(1).max(i32::MIN + 1);
    if v.to_bits() >> 31 != 0 {
        -r
    } else {
        r
    }
}

/// Saturates to the int8 activation range `[-127, 127]`.
pub fn sat_i8(x: i32) -> i8 {
    x.clamp(-127, 127) as i8
}

/// `floor(sqrt(x))`, bit by bit.
#[inline(never)]
pub fn isqrt(x: u64) -> u64 {
    let mut rem = x;
    let mut root = 0u64;
    let mut bit = 1u64 << 62;
    while bit > x {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

/// `log2(e)` in Q30.
const LOG2E_Q30: i64 = 1_549_082_005;

/// `2^f` for `f` in `[0, 1)` as Q30 (so in `[2^30, 2^31)`): Taylor series in
/// `f·ln 2` to degree 7 (relative error below 2e-7), Horner in Q30.
fn exp2_frac_q30(f: i64) -> i64 {
    // ln2^k / k! in Q30.
    const C1: i64 = 744_261_118;
    const C2: i64 = 257_941_248;
    const C3: i64 = 59_597_083;
    const C4: i64 = 10_327_387;
    const C5: i64 = 1_431_680;
    const C6: i64 = 165_394;
    const C7: i64 = 16_377;
    let mut p = C7;
    for c in [C6, C5, C4, C3, C2, C1] {
        p = c + ((p * f) >> 30);
    }
    ONE_Q30 + ((p * f) >> 30)
}

/// `e^x` for `x ≤ 0` in Q16, as Q30 (`e^0 = 2^30`); integer only.
#[inline(never)]
pub fn exp_q30(x: i32) -> i64 {
    // y = x·log2(e) in Q30 (≤ 0).
    let y = (x.min(0) as i64 * LOG2E_Q30) >> Q16;
    let n = y >> 30; // floor
    let f = y - (n << 30);
    if n < -62 {
        return 0;
    }
    let r = exp2_frac_q30(f);
    // r · 2^n with rounding.
    let s = (-n) as u32;
    if s == 0 {
        r
    } else {
        (r + (1 << (s - 1))) >> s
    }
}

/// The logistic function of a Q16 value, as Q30.
#[inline(never)]
pub fn sigmoid_q30(x: i32) -> i64 {
    let e = exp_q30(-(x.saturating_abs()));
    // 1 / (1 + e) with 1 + e in [1, 2]: no division instruction (a 64-bit
    // division is a long library call on a Cortex-M).
    let r = recip_1_2_q30(ONE_Q30 + e);
    if x >= 0 {
        r
    } else {
        (e * r + (1 << 29)) >> 30
    }
}

/// `1 / y` for `y` in `[1, 2]` (Q30 in, Q30 out): the linear start
/// `24/17 − 8/17·y` (relative error ≤ 1/17) and three Newton steps
/// `r ← r·(2 − y·r)` (error below 2^-30 before rounding).
fn recip_1_2_q30(y: i64) -> i64 {
    let y = y.clamp(ONE_Q30, 2 * ONE_Q30);
    // 24/17 and 8/17 in Q30.
    const A: i64 = 1_515_870_810;
    const B: i64 = 505_290_270;
    let mut r = A - ((B * y) >> 30);
    for _ in 0..3 {
        let t = (y * r) >> 30;
        r = (r * (2 * ONE_Q30 - t)) >> 30;
    }
    r
}

/// SiLU `x·σ(x)` in Q16.
#[inline(never)]
pub fn silu_q16(x: i32) -> i32 {
    ((x as i64 * sigmoid_q30(x) + (1 << 29)) >> 30) as i32
}

/// GELU in Q16, in its tanh form `x·σ(2·√(2/π)·(x + 0.044715·x³))`
/// (within 5e-4 of the erf form, below int8 resolution).
#[inline(never)]
pub fn gelu_q16(x: i32) -> i32 {
    const EIGHT: i32 = 8 << Q16;
    if x >= EIGHT {
        return x;
    }
    if x <= -EIGHT {
        return 0;
    }
    let xl = x as i64;
    // 0.044715 and 2·√(2/π) = 1.5957691 in Q30.
    const A: i64 = 48_012_366;
    const B: i64 = 1_713_444_047;
    let x3 = (((xl * xl) >> Q16) * xl) >> Q16;
    let inner = xl + ((A * x3) >> 30);
    let arg = ((B * inner) >> 30) as i32;
    ((xl * sigmoid_q30(arg) + (1 << 29)) >> 30) as i32
}

/// `sin(2π · phase / 2^32)` as Q30; integer only (quarter-wave symmetry and
/// a Taylor series to degree 11, error below 1e-8).
#[inline(never)]
pub fn sin_turns_q30(phase: u32) -> i32 {
    let quadrant = phase >> 30;
    let mut t = (phase & 0x3fff_ffff) as i64; // fraction of a quarter turn, Q30
    if quadrant & 1 == 1 {
        t = ONE_Q30 - t;
    }
    // a = t·π/2 in Q30.
    const HALF_PI_Q30: i64 = 1_686_629_713;
    let a = (t * HALF_PI_Q30) >> 30;
    let a2 = (a * a) >> 30;
    // sin a = a·(1 − a²/6·(1 − a²/20·(1 − a²/42·(1 − a²/72·(1 − a²/110))))).
    let mut p = ONE_Q30;
    for k in [110i64, 72, 42, 20, 6] {
        p = ONE_Q30 - (((a2 * p) >> 30) / k);
    }
    let s = ((a * p) >> 30).min(ONE_Q30);
    if quadrant >= 2 {
        -(s as i32)
    } else {
        s as i32
    }
}

/// `cos(2π · phase / 2^32)` as Q30.
pub fn cos_turns_q30(phase: u32) -> i32 {
    sin_turns_q30(phase.wrapping_add(1 << 30))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real(m: Mult) -> f64 {
        m.m as f64 * 2f64.powi(m.shift - 31)
    }

    #[test]
    fn multipliers_from_f32_bits_are_exact_and_multiply() {
        for v in [1.0f32, 0.5, 3.0e-7, 1234.5678, 0.007_812_5, 6.1e4] {
            assert_eq!(real(Mult::from_f32(v)), v as f64);
            assert_eq!(real(Mult::from_f32(-v)), v as f64);
        }
        assert_eq!(Mult::from_f32(0.0), Mult::ZERO);
        assert_eq!(Mult::from_f32(f32::NAN), Mult::ZERO);
        assert_eq!(real(Mult::ONE), 1.0);
        assert_eq!(real(Mult::pow2(-16)), 2f64.powi(-16));
        let (a, b) = (Mult::from_f32(0.0123), Mult::from_f32(37.5));
        let rel = |x: f64, y: f64| ((x - y) / y).abs();
        assert!(rel(real(a.times(b)), 0.0123f32 as f64 * 37.5) < 1e-9);
        assert!(rel(real(a.over(b)), 0.0123f32 as f64 / 37.5) < 1e-9);
        assert_eq!(Mult::from_f32(0.25).apply(100), 25);
        assert_eq!(Mult::from_f32(0.3).apply(-10), -3);
        assert_eq!(Mult::from_f32(1e12).apply(5), i32::MAX);
        assert_eq!(Mult::from_f32(1e-12).apply(5), 0);
        assert_eq!(Mult::from_f32(0.5).apply64(-3), -2);
        assert_eq!(Mult::from_f32(3.0).apply64(1 << 40), 3 << 40);
        let inv = Mult::ONE.over(Mult::from_f32(0.01));
        assert_eq!(to_fixed(1.234, inv), 123);
        assert_eq!(to_fixed(-1.236, inv), -124);
        assert_eq!(to_fixed(0.0, inv), 0);
    }

    /// The 128-bit definition `apply64` is computed without.
    fn apply64_i128(m: Mult, x: i64) -> i64 {
        if m.m == 0 || x == 0 {
            return 0;
        }
        let p = x as i128 * m.m as i128;
        let right = 31 - m.shift as i128;
        let r = if right <= 0 {
            // Shifts that would leave i128 saturate (the definition).
            if (p.unsigned_abs().leading_zeros() as i128) > -right {
                p << -right
            } else {
                p.signum() * i128::MAX
            }
        } else if right >= 120 {
            0
        } else {
            let half = 1i128 << (right - 1);
            if p >= 0 {
                (p + half) >> right
            } else {
                -((-p + half) >> right)
            }
        };
        r.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    #[test]
    fn apply64_matches_its_128_bit_definition() {
        // xorshift: every magnitude of x and every shift that matters.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut checked = 0;
        let mut check = |m: i32, shift: i32, x: i64| {
            let mult = Mult { m, shift };
            assert_eq!(
                mult.apply64(x),
                apply64_i128(mult, x),
                "m {m} shift {shift} x {x}"
            );
            checked += 1;
        };
        for _ in 0..200_000 {
            let r = next();
            let x = (r as i64) >> (r % 64);
            let m = match next() % 4 {
                0 => (next() % (1 << 31)) as i32,
                1 => -((next() % (1 << 31)) as i32),
                _ => ((1u64 << 30) + next() % (1 << 30)) as i32,
            };
            check(m, (next() % 200) as i32 - 100, x);
        }
        for x in [i64::MIN, i64::MAX, -1, 1, i64::MIN + 1] {
            for shift in [-100, -31, 0, 1, 31, 32, 33, 62, 63, 64, 94, 95, 96, 200] {
                for m in [i32::MIN, i32::MAX, 1 << 30, -1, 1] {
                    check(m, shift, x);
                }
            }
        }
        assert!(checked > 200_000);
    }

    #[test]
    fn integer_functions_track_their_definitions() {
        for x in [
            0u64,
            1,
            2,
            3,
            4,
            15,
            16,
            17,
            1 << 40,
            u64::MAX,
            999_999_999_999,
        ] {
            let r = isqrt(x);
            assert!(
                r * r <= x && (r + 1).checked_mul(r + 1).is_none_or(|s| s > x),
                "{x}"
            );
        }
        let q16 = |v: f64| (v * 65536.0).round() as i32;
        let mut worst = [0f64; 4];
        for i in -4000..=4000 {
            // −16 ..= 16, on the Q16 grid.
            let v = q16(i as f64 / 250.0) as f64 / 65536.0;
            let e = exp_q30(q16(v.min(0.0))) as f64 / ONE_Q30 as f64;
            worst[0] = worst[0].max((e - v.min(0.0).exp()).abs());
            let s = sigmoid_q30(q16(v)) as f64 / ONE_Q30 as f64;
            worst[1] = worst[1].max((s - 1.0 / (1.0 + (-v).exp())).abs());
            let g = gelu_q16(q16(v)) as f64 / 65536.0;
            let gref = 0.5 * v * (1.0 + libm::erf(v / 2f64.sqrt()));
            worst[2] = worst[2].max((g - gref).abs());
            let si = silu_q16(q16(v)) as f64 / 65536.0;
            worst[3] = worst[3].max((si - v / (1.0 + (-v).exp())).abs());
        }
        assert!(worst[0] < 1e-6, "exp {}", worst[0]);
        assert!(worst[1] < 1e-6, "sigmoid {}", worst[1]);
        assert!(worst[2] < 1e-3, "gelu {}", worst[2]);
        assert!(worst[3] < 1e-4, "silu {}", worst[3]);
        let mut worst = 0f64;
        for i in 0..4096u32 {
            let phase = i.wrapping_mul(1_048_573).wrapping_add(i);
            let a = phase as f64 / 4294967296.0 * core::f64::consts::TAU;
            worst = worst.max((sin_turns_q30(phase) as f64 / ONE_Q30 as f64 - a.sin()).abs());
            worst = worst.max((cos_turns_q30(phase) as f64 / ONE_Q30 as f64 - a.cos()).abs());
        }
        assert!(worst < 1e-7, "sin/cos {worst}");
    }
}
