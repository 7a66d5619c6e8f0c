//! Any bytes as a GGUF file: the header/metadata/tensor-table parser, the
//! dequantizers (bounded to small tensors) and the Llama importer must
//! return a value or an error, never panic or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mote_host::gguf::Gguf;

fuzz_target!(|data: &[u8]| {
    let Ok(g) = Gguf::parse(data.to_vec()) else {
        return;
    };
    for t in g.tensors.iter().take(8) {
        if t.elements() <= 1 << 16 {
            let _ = g.dequantize(t);
        }
    }
    let total = g
        .tensors
        .iter()
        .fold(0u64, |n, t| n.saturating_add(t.elements()));
    if total <= 1 << 18 {
        let _ = mote_host::import::import_gguf(&g);
    }
});
