//! Writes a seeded random model:
//! `tiny_model (encoder|decoder)[-small] | kws | textcls | decoder-100k  SEED OUT.mote`.
#![allow(clippy::unwrap_used)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map(String::as_str).unwrap_or("encoder");
    let cfg = match kind {
        "kws" => mote_tests::kws_config(),
        "textcls" => mote_tests::textcls_config(),
        "decoder-100k" => mote_tests::decoder_100k_config(),
        k => {
            let cfg = if k.starts_with("decoder") {
                mote_tests::tiny_decoder_config()
            } else {
                mote_tests::tiny_encoder_config()
            };
            if k.ends_with("-small") {
                mote_tests::small_config(cfg)
            } else {
                cfg
            }
        }
    };
    let seed = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let out = std::path::PathBuf::from(args.get(3).cloned().unwrap_or_else(|| "tiny.mote".into()));
    let b = mote_tests::random_model(cfg, seed);
    b.write(&out).unwrap();
    let m = mote_core::Model::from_bytes(mote_host::ModelFile::read(&out).unwrap().bytes())
        .map(|m| {
            (0..m.tensor_count())
                .filter_map(|i| m.tensor_at(i))
                .map(|t| t.elements())
                .sum::<u64>()
        })
        .unwrap();
    eprintln!("{}: {m} parameters", out.display());
    println!("{}", out.display());
}
