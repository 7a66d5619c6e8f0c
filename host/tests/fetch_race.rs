//! Tests that fetch the same package side by side on a cold cache (as the
//! test binaries' threads do on a fresh machine) each get it whole: one
//! fetches, the others wait for it (a lock file per package).
#![allow(clippy::unwrap_used)]

#[test]
fn concurrent_fetches_of_one_package_all_succeed() {
    let cache = std::env::temp_dir().join(format!("mote-fetch-race-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    // This test binary holds this one test: the variable is its own.
    std::env::set_var("MOTE_CACHE", &cache);
    let paths: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| mote_host::fetch::ensure(&mote_host::fetch::BECKETT)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = paths[0].as_ref().unwrap().clone();
    for p in &paths {
        assert_eq!(p.as_ref().unwrap(), &first);
    }
    let wav = mote_host::wav::read(&first).unwrap();
    assert!(wav.samples.len() > 100_000);
    let _ = std::fs::remove_dir_all(&cache);
}
