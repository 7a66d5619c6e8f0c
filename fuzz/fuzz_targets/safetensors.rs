//! Any bytes as the `model.safetensors` of a small BERT checkpoint (its
//! `config.json` fixed, below): the importer must return a model or an
//! error, never panic; an imported model must load in `mote-core`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The checkpoint's config, the one the seed (`fuzz_seeds`) was written for.
pub const CONFIG: &str = r#"{"model_type": "bert", "hidden_act": "gelu", "hidden_size": 16,
"num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 32, "vocab_size": 50,
"max_position_embeddings": 16, "type_vocab_size": 2, "layer_norm_eps": 1e-12}"#;

/// A directory of this process's own, holding `config.json`.
fn dir() -> &'static PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("mote-fuzz-st-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        let _ = std::fs::write(d.join("config.json"), CONFIG);
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    if std::fs::write(d.join("model.safetensors"), data).is_err() {
        return;
    }
    let Ok(b) = mote_host::import::import_bert_dir(d) else {
        return;
    };
    let bytes = b.to_bytes();
    let mut store = vec![0u128; bytes.len().div_ceil(16)];
    let view: &mut [u8] = bytemuck::cast_slice_mut(&mut store);
    view[..bytes.len()].copy_from_slice(&bytes);
    // What the importer writes must be a model the runtime accepts.
    assert!(mote_core::Model::from_bytes(&view[..bytes.len()]).is_ok());
});
