//! Any text through a tokenizer built from a model's vocabulary (WordPiece
//! and byte-level BPE, both small and seeded), and the ids back to text:
//! an error or a result, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mote_core::Model;
use mote_host::tokenizer::Tokenizer;
use std::sync::OnceLock;

/// Tokenizers of the two real models' kinds, built once from small vocabularies.
fn tokenizers() -> &'static [Tokenizer] {
    static T: OnceLock<Vec<Tokenizer>> = OnceLock::new();
    T.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/vocab");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            let mut store = vec![0u128; bytes.len().div_ceil(16)];
            let view: &mut [u8] = bytemuck::cast_slice_mut(&mut store);
            view[..bytes.len()].copy_from_slice(&bytes);
            if let Ok(m) = Model::from_bytes(&view[..bytes.len()]) {
                if let Ok(t) = Tokenizer::from_model(m.vocab(), m.config()) {
                    out.push(t);
                }
            }
        }
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for t in tokenizers() {
        if let Ok(ids) = t.encode(&text) {
            let _ = t.decode(&ids);
        }
    }
});
