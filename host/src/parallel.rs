//! Threads for `mote-core` sessions on a host: a [`mote_core::Join`] on rayon.

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
