//! Threads for `mote-core` sessions on a host.
//!
//! [`SpinJoin`] is the one to use for decoding: the calling thread runs one
//! half of each product and a single helper thread, spinning between jobs,
//! runs the other, so a hand-off costs well under a microsecond (a session
//! makes a few hundred per token). [`RayonJoin`] hands both halves to a rayon
//! pool; it is kept for callers that already live in rayon.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
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
    /// The job of the current epoch (written only by the joiner, while the helper is idle).
    job: Mutex<Option<SendJob>>,
    /// Incremented by the joiner for each job.
    posted: AtomicU64,
    /// Set by the helper to the epoch it finished.
    done: AtomicU64,
    /// Set when the helper's job panicked.
    panicked: AtomicBool,
    /// True while the helper sleeps (it then needs an unpark).
    sleeping: AtomicBool,
    stop: AtomicBool,
}

struct SendJob(Job);
// SAFETY: the pointee is `Send` (the trait object says so); the pointer only
// moves to the helper thread, which uses it while the joiner waits.
unsafe impl Send for SendJob {}

/// How long the helper spins for a new job before it sleeps.
const SPIN: Duration = Duration::from_millis(2);

/// One helper thread that spins between jobs (see the module docs).
pub struct SpinJoin {
    shared: Arc<Shared>,
    helper: Option<JoinHandle<()>>,
    /// Serializes joins from different threads.
    busy: Mutex<()>,
}

impl SpinJoin {
    /// Starts the helper thread.
    pub fn new() -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            job: Mutex::new(None),
            posted: AtomicU64::new(0),
            done: AtomicU64::new(0),
            panicked: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
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
}

fn helper(s: &Shared) {
    let mut seen = 0u64;
    loop {
        let mut idle = Instant::now();
        let epoch = loop {
            let p = s.posted.load(Ordering::Acquire);
            if p != seen {
                break p;
            }
            if s.stop.load(Ordering::Acquire) {
                return;
            }
            if idle.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            s.sleeping.store(true, Ordering::SeqCst);
            if s.posted.load(Ordering::SeqCst) == seen && !s.stop.load(Ordering::SeqCst) {
                std::thread::park_timeout(Duration::from_millis(100));
            }
            s.sleeping.store(false, Ordering::SeqCst);
            idle = Instant::now();
        };
        let job = s.job.lock().map(|mut j| j.take()).unwrap_or(None);
        if let Some(SendJob(f)) = job {
            // SAFETY: the joiner published this pointer for `epoch` and waits
            // (without touching the closure) until `done` reaches `epoch`, so
            // the closure is alive and used by this thread alone.
            let f = unsafe { &mut *f };
            if catch_unwind(AssertUnwindSafe(f)).is_err() {
                s.panicked.store(true, Ordering::Release);
            }
        }
        seen = epoch;
        s.done.store(epoch, Ordering::Release);
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
        // this function does not return before the helper reports it done.
        let job: Job =
            unsafe { std::mem::transmute::<*mut (dyn FnMut() + Send + '_), Job>(b as *mut _) };
        match s.job.lock() {
            Ok(mut j) => *j = Some(SendJob(job)),
            Err(_) => {
                a();
                b();
                return;
            }
        }
        let epoch = s.posted.load(Ordering::Relaxed) + 1;
        s.posted.store(epoch, Ordering::SeqCst);
        if s.sleeping.load(Ordering::SeqCst) {
            if let Some(h) = &self.helper {
                h.thread().unpark();
            }
        }
        a();
        while s.done.load(Ordering::Acquire) != epoch {
            std::hint::spin_loop();
        }
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
        let r = catch_unwind(AssertUnwindSafe(|| {
            j.join(&mut || {}, &mut || panic!("boom"));
        }));
        assert!(r.is_err());
        let mut ran = false;
        j.join(&mut || {}, &mut || ran = true);
        assert!(ran, "the helper survives a panicking job");
    }
}
