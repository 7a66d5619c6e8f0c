//! `mote-core`: reads a flat `.mote` model in place, plans one fixed arena and
//! runs transformer forward passes without a heap and without panicking on
//! data from outside.
//!
//! ```text
//! let model = Model::from_bytes(bytes)?;            // validates everything, copies nothing
//! let need = model.arena_bytes(&RunConfig { max_seq: 128 })?;
//! let mut session = Session::new(&model, &mut arena[..], RunConfig { max_seq: 128 })?;
//! let embedding = session.embed(&ids)?;             // encoder models
//! let logits = session.decode_step(token)?;         // decoder models
//! ```
//!
//! Cargo features (all but `std` and `defmt` on by default; a device app
//! that runs integer-only encoders can leave the rest out, see the
//! `mote-encoder` firmware app):
//!
//! | feature | with it | without it |
//! |---|---|---|
//! | `float` | f32 activations: f32, f16, int4 and int8 weights with f32 activations | integer-only models alone (others: [`Error::NotBuilt`]) |
//! | `decoder` | decoders with a KV cache | encoders alone (decoders: [`Error::NotBuilt`]) |
//! | `crc-table` | CRC-32 with a 1 KiB table (hosts with `std` use 16 KiB) | bit by bit: 1 KiB less flash, about 7× the instructions to open a model |
//! | `tensor-names` | errors and [`TensorInfo`] keep the tensor's name | they read `?` (24 bytes less per error value) |
//! | `vocab` | the tokenizer vocabulary section is read and checked | it is skipped; [`Model::vocab`] is empty |
//! | `audio` | the audio section is read and checked; the front end ([`audio`]: PCM to log-mel rows, whole clips or streamed) | the section is skipped |
//! | `std` | a 16 KiB CRC table (several times faster on big models) and `half`'s `std` | `no_std` |
//! | `defmt` | `defmt::Format` for the public types | — |
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod arena;
#[cfg(feature = "audio")]
pub mod audio;
pub mod config;
pub mod error;
pub mod fixed;
pub mod format;
pub mod kernels;
pub mod labels;
pub mod model;
pub mod quant;
pub mod selfcheck;
pub mod session;
pub mod slot;
pub mod tensors;
pub mod text;

/// The vocabulary section ([`text::vocab`]; this path is kept for hosts).
pub use text::vocab;

pub use arena::RunConfig;
pub use config::{Activation, Architecture, Config, KvCache, NormKind, Pooling, PositionKind};
pub use error::{Error, TensorName};
pub use format::{Dtype, SectionKind, TensorInfo, FORMAT_VERSION, MAGIC};
pub use model::{Model, Weight};
pub use session::{integer, Input, Join, Output, Session};
pub use vocab::{PreTokenizer, TokenizerKind, Vocab};

/// Result type of every fallible `mote-core` call.
pub type Result<T> = core::result::Result<T, Error>;
