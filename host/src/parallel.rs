//! Threads for `mote-core` sessions on a host.
//!
//! [`SpinJoin`] is the one to use for decoding: the calling thread runs one
//! half of each product and a single helper thread runs the other, so a
//! hand-off costs well under a microsecond (a session makes a few hundred
//! per token). [`RayonJoin`] hands both halves to a rayon pool; it is kept
//! for callers that already live in rayon.
//!
//! A helper must never cost more than it brings when the machine is busy
//! (with one other busy process, two spinning threads once took 18.2 s
//! where one thread took 0.62 s: each hand-off waited for a helper that had
//! lost its core). So nobody waits for a helper that has not started: the
//! caller takes a job back that is still unclaimed when its own half is done
//! and runs it itself; it waits only for a job the helper is running, and
//! then spins briefly before it sleeps. The helper spins briefly between
//! jobs, then yields its core, then sleeps until the next job.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// Splits a session's large products over rayon's pool.
pub struct RayonJoin {
    pool: rayon::ThreadPool,
}

impl RayonJoin {
    /// A pool of `threads` threads (at least 1).
    pub fn new(threads: usize) -> anyhow::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()?;
        Ok(RayonJoin { pool })
    }
}

impl mote_core::Join for RayonJoin {
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
        self.pool.install(|| rayon::join(a, b));
    }
}

/// A job handed to the helper: a closure whose lifetime was erased.
type Job = *mut (dyn FnMut() + Send + 'static);

struct Shared {
    /// The posted job with its epoch, until it is claimed: by the helper,
    /// to run it, or by the joiner, to take it back and run it itself.
    job: Mutex<Option<(u64, SendJob)>>,
    /// The epoch of the latest job posted.
    posted: AtomicU64,
    /// The epoch of the latest job the helper finished.
    done: AtomicU64,
    /// Set when the helper's job panicked.
    panicked: AtomicBool,
    /// True while the helper sleeps (a new job then needs an unpark).
    helper_sleeping: AtomicBool,
    /// The joiner waiting for the helper, while it sleeps.
    joiner: Mutex<Option<Thread>>,
    /// True while a joiner sleeps (the helper then unparks it when done).
    joiner_sleeping: AtomicBool,
    stop: AtomicBool,
}

struct SendJob(Job);
// SAFETY: the pointee is `Send` (the trait object says so); the pointer only
// moves to the helper thread, which uses it while the joiner waits.
unsafe impl Send for SendJob {}

/// How long the helper spins hot (`spin_loop`) for the next job: the gaps
/// between the products of one token are shorter.
const SPIN_HOT: Duration = Duration::from_micros(50);
/// How long the helper stays awake for the next job (after the hot spin it
/// yields its core to any thread that wants it), before it sleeps.
const SPIN: Duration = Duration::from_millis(1);
/// How long a joiner spins for the helper to finish a job it is running
/// before it sleeps (so a helper that lost its core can have this one).
const WAIT_SPIN: Duration = Duration::from_micros(20);

/// One helper thread that runs half of each join (see the module docs).
pub struct SpinJoin {
    shared: Arc<Shared>,
    helper: Option<JoinHandle<()>>,
    /// Serializes joins from different threads.
    busy: Mutex<()>,
}

fn shared() -> Arc<Shared> {
    Arc::new(Shared {
        job: Mutex::new(None),
        posted: AtomicU64::new(0),
        done: AtomicU64::new(0),
        panicked: AtomicBool::new(false),
        helper_sleeping: AtomicBool::new(false),
        joiner: Mutex::new(None),
        joiner_sleeping: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    })
}

impl SpinJoin {
    /// Starts the helper thread.
    pub fn new() -> anyhow::Result<Self> {
        let shared = shared();
        let s = Arc::clone(&shared);
        let helper = std::thread::Builder::new()
            .name("mote-join".into())
            .spawn(move || helper(&s))?;
        Ok(SpinJoin {
            shared,
            helper: Some(helper),
            busy: Mutex::new(()),
        })
    }

    /// Waits until the helper finished the job of `epoch`, which it claimed.
    fn wait_done(&self, epoch: u64) {
        let s = &*self.shared;
        let start = Instant::now();
        while start.elapsed() < WAIT_SPIN {
            if s.done.load(Ordering::Acquire) == epoch {
                return;
            }
            std::hint::spin_loop();
        }
        if let Ok(mut j) = s.joiner.lock() {
            *j = Some(std::thread::current());
        }
        // Either the helper sees this flag after its `done` store and
        // unparks, or this thread sees `done` below (both SeqCst).
        s.joiner_sleeping.store(true, Ordering::SeqCst);
        while s.done.load(Ordering::SeqCst) != epoch {
            std::thread::park();
        }
        s.joiner_sleeping.store(false, Ordering::SeqCst);
    }
}

/// Waits for a job newer than `seen`: spins hot, then yields, then sleeps.
/// Returns the latest epoch posted, or `None` when stopping.
fn next_epoch(s: &Shared, seen: u64) -> Option<u64> {
    let mut idle = Instant::now();
    loop {
        let p = s.posted.load(Ordering::Acquire);
        if p != seen {
            return Some(p);
        }
        if s.stop.load(Ordering::Acquire) {
            return None;
        }
        let waited = idle.elapsed();
        if waited < SPIN_HOT {
            std::hint::spin_loop();
            continue;
        }
        if waited < SPIN {
            std::thread::yield_now();
            continue;
        }
        // Either the joiner sees this flag after its `posted` store and
        // unparks, or this thread sees the new epoch below (both SeqCst).
        s.helper_sleeping.store(true, Ordering::SeqCst);
        if s.posted.load(Ordering::SeqCst) == seen && !s.stop.load(Ordering::SeqCst) {
            std::thread::park();
        }
        s.helper_sleeping.store(false, Ordering::SeqCst);
        idle = Instant::now();
    }
}

/// Claims the posted job, if any (no code panics while holding the lock,
/// but a poisoned one is still read).
fn take(job: &Mutex<Option<(u64, SendJob)>>) -> Option<(u64, SendJob)> {
    match job.lock() {
        Ok(mut j) => j.take(),
        Err(p) => p.into_inner().take(),
    }
}

fn helper(s: &Shared) {
    let mut seen = 0u64;
    while let Some(epoch) = next_epoch(s, seen) {
        seen = epoch;
        // The job may be gone (its joiner took it back), or be a newer one
        // than `epoch`: it carries its own epoch.
        let claimed = take(&s.job);
        let Some((job_epoch, SendJob(f))) = claimed else {
            continue;
        };
        // SAFETY: the joiner published this pointer for `job_epoch` and,
        // since it was claimed here, waits (without touching the closure)
        // until `done` reaches `job_epoch`, so the closure is alive and used
        // by this thread alone.
        let f = unsafe { &mut *f };
        if catch_unwind(AssertUnwindSafe(f)).is_err() {
            s.panicked.store(true, Ordering::Release);
        }
        s.done.store(job_epoch, Ordering::SeqCst);
        if s.joiner_sleeping.load(Ordering::SeqCst) {
            if let Ok(j) = s.joiner.lock() {
                if let Some(t) = j.as_ref() {
                    t.unpark();
                }
            }
        }
    }
}

impl mote_core::Join for SpinJoin {
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
        // A join while another is running (another thread, or a nested join
        // from inside `b`) runs both halves here.
        let Ok(_guard) = self.busy.try_lock() else {
            a();
            b();
            return;
        };
        let s = &*self.shared;
        // SAFETY: only the lifetime is erased; `b` outlives its use, since
        // this function does not return before the job is taken back or the
        // helper reports it done.
        let job: Job =
            unsafe { std::mem::transmute::<*mut (dyn FnMut() + Send + '_), Job>(b as *mut _) };
        let epoch = s.posted.load(Ordering::Relaxed) + 1;
        match s.job.lock() {
            Ok(mut j) => *j = Some((epoch, SendJob(job))),
            Err(_) => {
                a();
                b();
                return;
            }
        }
        s.posted.store(epoch, Ordering::SeqCst);
        if s.helper_sleeping.load(Ordering::SeqCst) {
            if let Some(h) = &self.helper {
                h.thread().unpark();
            }
        }
        a();
        // Still unclaimed: the helper has not started (asleep, or without a
        // core), so run it here rather than wait for it.
        let unclaimed = take(&s.job);
        if unclaimed.is_some() {
            b();
            return;
        }
        self.wait_done(epoch);
        if s.panicked.swap(false, Ordering::AcqRel) {
            resume_unwind(Box::new("a SpinJoin job panicked"));
        }
    }
}

impl Drop for SpinJoin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.helper.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use mote_core::Join;

    #[test]
    fn spin_join_runs_both_halves_every_time() {
        let j = SpinJoin::new().unwrap();
        let (mut x, mut y) = (0u64, 0u64);
        for i in 0..10_000u64 {
            j.join(&mut || x += i, &mut || y += 2 * i);
            if i == 5_000 {
                // Let the helper fall asleep once; the next join must wake it.
                std::thread::sleep(SPIN * 3);
            }
        }
        let n = 10_000u64 * 9_999 / 2;
        assert_eq!((x, y), (n, 2 * n));
    }

    #[test]
    fn spin_join_reports_a_panicking_half() {
        let j = SpinJoin::new().unwrap();
        // The first half waits until the helper has claimed the job, so the
        // panic happens on the helper (a job taken back would panic here).
        let r = catch_unwind(AssertUnwindSafe(|| {
            j.join(&mut || claimed(&j), &mut || panic!("boom"));
        }));
        assert!(r.is_err());
        let mut ran = false;
        j.join(&mut || {}, &mut || ran = true);
        assert!(ran, "the helper survives a panicking job");
    }

    /// Spins until the helper has taken the posted job.
    fn claimed(j: &SpinJoin) {
        while j.shared.job.lock().map(|g| g.is_some()).unwrap_or(false) {
            std::hint::spin_loop();
        }
    }

    /// The joiner never waits for a helper that has not started the job:
    /// with no helper at all, every join still completes, both halves run.
    #[test]
    fn a_job_no_helper_claims_is_run_by_the_joiner() {
        let j = SpinJoin {
            shared: shared(),
            helper: None,
            busy: Mutex::new(()),
        };
        let (mut x, mut y) = (0u64, 0u64);
        for i in 0..1_000u64 {
            j.join(&mut || x += i, &mut || y += 3 * i);
        }
        let n = 1_000u64 * 999 / 2;
        assert_eq!((x, y), (n, 3 * n));
    }

    /// A job the helper runs for longer than the joiner's spin: the joiner
    /// sleeps and is woken when it is done, with the job's effects visible.
    #[test]
    fn a_joiner_sleeps_until_the_helper_is_done() {
        let j = SpinJoin::new().unwrap();
        for round in 0..20u64 {
            let mut y = 0u64;
            j.join(&mut || claimed(&j), &mut || {
                std::thread::sleep(WAIT_SPIN * 10);
                y = round + 1;
            });
            assert_eq!(y, round + 1);
        }
    }

    /// With a busy competitor on every core, joins keep completing with the
    /// right results (whichever thread runs each half). Deterministic: no
    /// timing is asserted; the speed figure is the `spin_join` bench's.
    #[test]
    fn the_pool_makes_progress_with_busy_competitors() {
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let busy: Vec<_> = (0..cores)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                })
            })
            .collect();
        let j = SpinJoin::new().unwrap();
        let (mut x, mut y) = (vec![0u64; 64], vec![0u64; 64]);
        for i in 0..20_000u64 {
            j.join(&mut || x.iter_mut().for_each(|v| *v += i), &mut || {
                y.iter_mut().for_each(|v| *v += 2 * i)
            });
        }
        stop.store(true, Ordering::Relaxed);
        for t in busy {
            t.join().unwrap();
        }
        let n = 20_000u64 * 19_999 / 2;
        assert!(x.iter().all(|&v| v == n) && y.iter().all(|&v| v == 2 * n));
    }
}
