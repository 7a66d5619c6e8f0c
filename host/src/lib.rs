//! `mote-host`: the workstation side of Mote — checkpoint import
//! (safetensors, GGUF), weight quantization, calibration and the
//! integer-only model, training (feature `train`), the `.mote` writer,
//! tokenizers built from a model's own vocabulary, threads for sessions, and
//! pinned model packages from the registries.
#![deny(missing_docs)]

pub mod audio;
pub mod calibrate;
pub mod family;
pub mod fetch;
pub mod import;
pub mod parallel;
pub mod quantize;
pub mod tokenizer;
#[cfg(feature = "train")]
pub mod train;
pub mod wav;
/// Without the `train` feature, only the training-data readers.
#[cfg(not(feature = "train"))]
pub mod train {
    #[path = "data.rs"]
    pub mod data;
}
pub mod writer;

pub use import::gguf;
pub use writer::{ModelBuilder, ModelFile, VocabData};
