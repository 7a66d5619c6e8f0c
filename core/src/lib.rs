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
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod config;
pub mod error;
pub mod fixed;
pub mod format;
pub mod kernels;
pub mod model;
pub mod quant;
pub mod session;
pub mod slot;
pub mod vocab;

pub use config::{Activation, Architecture, Config, KvCache, NormKind, Pooling, PositionKind};
pub use error::{Error, TensorName};
pub use format::{Dtype, SectionKind, TensorInfo, FORMAT_VERSION, MAGIC};
pub use model::{Model, Weight};
pub use session::{integer, Input, Join, RunConfig, Session};
pub use vocab::{PreTokenizer, TokenizerKind, Vocab};

/// Result type of every fallible `mote-core` call.
pub type Result<T> = core::result::Result<T, Error>;
