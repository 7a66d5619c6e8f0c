//! Writes a seeded tiny model: `tiny_model (encoder|decoder)[-small] SEED OUT.mote`.
#![allow(clippy::unwrap_used)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map(String::as_str).unwrap_or("encoder");
    let mut cfg = if kind.starts_with("decoder") {
        mote_tests::tiny_decoder_config()
    } else {
        mote_tests::tiny_encoder_config()
    };
    if kind.ends_with("-small") {
        cfg = mote_tests::small_config(cfg);
    }
    let seed = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let out = std::path::PathBuf::from(args.get(3).cloned().unwrap_or_else(|| "tiny.mote".into()));
    mote_tests::random_model(cfg, seed).write(&out).unwrap();
    println!("{}", out.display());
}
