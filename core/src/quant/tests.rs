//! Every kernel family, on every backend this machine runs, against the
//! scalar definition.
#![allow(clippy::unwrap_used)]

use super::*;

/// Says which backends a kernel test runs here and which it skips because
/// this machine lacks them (never replaced by another).
fn report(test: &str) {
    for b in Backend::ALL {
        let what = if b.available() {
            "runs"
        } else {
            "skipped: not on this machine"
        };
        println!("{test}: {} {what}", b.name());
    }
}

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
    report("all_gemv_backends_match_scalar");
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
    report("all_blocked_gemv_backends_match_scalar");
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
    report("all_int4_gemv_backends_match_the_unpacked_definition");
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
