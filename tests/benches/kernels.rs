//! Kernel throughput: f32 and int8 matrix–vector products (blocked, and
//! the integer-only path's whole rows), per backend.
//! Throughput is in elements = multiply–accumulates (criterion prints Melem/s = MMAC/s).
#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mote_core::quant::{self, Backend};
use mote_tests::Rng;
use std::hint::black_box;

/// SmolLM2's FFN down projection and LM-head slice (both stream from L3 or
/// memory), an L2-resident matrix (96 KiB) and an L1-resident one (16 KiB):
/// the last two show the kernel's compute ceiling.
const SHAPES: [(usize, usize); 4] = [(576, 1536), (4096, 576), (64, 1536), (16, 1024)];

fn gemv(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemv");
    for (rows, cols) in SHAPES {
        let mut rng = Rng(1);
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.signed()).collect();
        let x: Vec<f32> = (0..cols).map(|_| rng.signed()).collect();
        let (wq, ws) = mote_host::quantize::quantize_blocks_i8(&w, cols);
        let mut xq = vec![0i8; cols];
        let mut xs = vec![0f32; cols.div_ceil(quant::BLOCK)];
        quant::quantize_blocks(&x, &mut xq, &mut xs);
        let act = quant::Activations {
            q: &xq,
            scales: &xs,
            outliers: &[],
            values: &x,
        };
        let mut out = vec![0f32; rows];
        g.throughput(Throughput::Elements((rows * cols) as u64));
        let shape = format!("{rows}x{cols}");
        g.bench_with_input(BenchmarkId::new("f32", &shape), &(), |b, _| {
            b.iter(|| mote_core::kernels::matvec(black_box(&mut out), &w, &x, None))
        });
        let mut acc = vec![0i32; rows];
        for backend in Backend::ALL.into_iter().filter(|b| b.available()) {
            // The integer-only path's product: whole rows, exact i32 sums.
            g.bench_with_input(
                BenchmarkId::new(format!("i8row-{backend:?}"), &shape),
                &(),
                |b, _| b.iter(|| quant::gemv_i8_with(backend, black_box(&mut acc), &wq, &xq)),
            );
            g.bench_with_input(
                BenchmarkId::new(format!("i8-{backend:?}"), &shape),
                &(),
                |b, _| {
                    b.iter(|| {
                        quant::gemv_i8_blocked_with(
                            backend,
                            black_box(&mut out),
                            &wq,
                            quant::WeightScales::Block(&ws),
                            &act,
                            None,
                        )
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, gemv);
criterion_main!(benches);
