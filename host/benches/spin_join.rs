//! `SpinJoin` against one thread, on an idle machine and with one busy
//! competitor thread (the case where two spinning threads once took 18.2 s
//! for what one thread did in 0.62 s). Prints microseconds per join of two
//! halves of a 2 × 16k-element multiply-add; the split must never be much
//! slower than one thread. Run: `cargo bench -p mote-host --bench spin_join`.

use mote_core::Join;
use mote_host::parallel::SpinJoin;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

const HALF: usize = 16 * 1024;
const JOINS: u32 = 20_000;

fn work(x: &[f32], acc: &mut f32) {
    *acc += x.iter().fold(0.0f32, |s, v| s + v * 1.0001);
}

/// Microseconds per join: `split` runs the halves with the helper, else in turn.
fn measure(join: Option<&SpinJoin>) -> f64 {
    let x: Vec<f32> = (0..2 * HALF).map(|i| (i % 7) as f32).collect();
    let (lo, hi) = x.split_at(HALF);
    let (mut a, mut b) = (0.0f32, 0.0f32);
    let t = Instant::now();
    for _ in 0..JOINS {
        match join {
            Some(j) => j.join(&mut || work(lo, &mut a), &mut || work(hi, &mut b)),
            None => {
                work(lo, &mut a);
                work(hi, &mut b);
            }
        }
    }
    black_box((a, b));
    t.elapsed().as_secs_f64() * 1e6 / JOINS as f64
}

fn main() -> anyhow::Result<()> {
    let join = SpinJoin::new()?;
    for busy in [false, true] {
        let stop = Arc::new(AtomicBool::new(false));
        let competitor = busy.then(|| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n = black_box(n.wrapping_add(1));
                }
            })
        });
        let one = measure(None);
        let two = measure(Some(&join));
        stop.store(true, Ordering::Relaxed);
        if let Some(c) = competitor {
            let _ = c.join();
        }
        let label = if busy { "one busy competitor" } else { "idle" };
        println!(
            "spin_join/{label}: one thread {one:.2} µs/join, SpinJoin {two:.2} µs/join ({:.2}× one thread's time)",
            two / one
        );
    }
    Ok(())
}
