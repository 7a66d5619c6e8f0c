//! `Model::from_bytes` on a table of 100,000 tensors: loading is linear in
//! the table (hash map of the names on hosts), so this stays in
//! milliseconds. Throughput: table entries.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mote_core::Model;
use mote_tests::*;

fn load(c: &mut Criterion) {
    let mut cfg = tiny_encoder_config();
    cfg.n_layers = 6250;
    let f = random_model_file(cfg, 9);
    let n = Model::from_bytes(f.bytes()).unwrap().tensor_count();
    let mut g = c.benchmark_group("load");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    g.bench_function(format!("from_bytes, {n} tensors"), |b| {
        b.iter(|| {
            Model::from_bytes(std::hint::black_box(f.bytes()))
                .unwrap()
                .tensor_count()
        })
    });
    g.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
