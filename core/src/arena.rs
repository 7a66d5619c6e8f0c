//! The arena plan: every buffer a [`crate::Session`] carves out of the
//! caller's arena, sized exactly from the model and the [`RunConfig`].
//!
//! The arena holds, in order (each rounded up to 16 bytes): the residual rows
//! (`max_seq` rows for an encoder, one for a decoder), the key and value
//! caches (every layer for a decoder, one layer at a time for an encoder),
//! per-row scratch (normed row, query, attention output, projection, two
//! feed-forward rows, the RoPE table), the output (logits or the pooled
//! vector) and the matrix-input scratch (int8 copy, block scales, inlier
//! copy, outlier channels, unpacked int4 rows). Attention runs row by row
//! with an online softmax, so nothing in the arena grows with sequence².

use crate::config::{Activation, Architecture, Config, KvCache, PositionKind};
use crate::quant;
use crate::{Error, Result};

/// What one session must be able to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RunConfig {
    /// Longest sequence (encoder input, or decoder prompt + generated tokens).
    pub max_seq: u32,
}

/// Sizes (in `f32` elements, each a multiple of 4) of the arena's buffers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) sizes: [usize; 16],
}

pub(crate) const H: usize = 0;
pub(crate) const KC: usize = 1;
pub(crate) const VC: usize = 2;
pub(crate) const T: usize = 3;
pub(crate) const Q: usize = 4;
pub(crate) const ATT: usize = 5;
pub(crate) const O: usize = 6;
pub(crate) const F1: usize = 7;
pub(crate) const F2: usize = 8;
pub(crate) const ROPE: usize = 9;
pub(crate) const OUT: usize = 10;
pub(crate) const XQ: usize = 11;
pub(crate) const WROW: usize = 12;
pub(crate) const XS: usize = 13;
pub(crate) const OUTL: usize = 14;
pub(crate) const UNPACK: usize = 15;

impl Plan {
    pub(crate) fn total_bytes(&self) -> usize {
        self.sizes.iter().sum::<usize>() * 4
    }
}

fn arena_overflow() -> Error {
    Error::ArenaOverflow
}

/// What of a model the plan depends on: its config and which weight
/// types it stores (they decide the matrix-input scratch).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Needs<'c> {
    /// The model's config.
    pub(crate) cfg: &'c Config,
    /// Some weight is int8 or int4 (activations are quantized).
    pub(crate) i8: bool,
    /// Some weight is int4.
    pub(crate) i4: bool,
    /// Some weight is f16.
    pub(crate) f16: bool,
}

/// Plans the arena for a model with `needs` under `run`.
pub(crate) fn plan(needs: Needs, run: &RunConfig) -> Result<Plan> {
    let cfg = needs.cfg;
    if run.max_seq == 0 || run.max_seq > cfg.max_seq {
        return Err(Error::SequenceTooLong {
            max: cfg.max_seq,
            got: run.max_seq,
        });
    }
    let seq = run.max_seq as usize;
    let d = cfg.d_model as usize;
    let kv = cfg.kv_row_floats();
    let kv_i8 = cfg.kv_cache == KvCache::I8;
    let q = cfg.q_dim();
    let ff = cfg.d_ff as usize;
    let decoder = cfg.arch == Architecture::Decoder;
    let rows = if decoder { 1 } else { seq };
    let cache_layers = if decoder { cfg.n_layers as usize } else { 1 };
    let gated = cfg.activation == Activation::SwiGlu;
    // Widest input of any matrix: int8 activations and f16 row conversion need that much.
    let widest = d.max(q).max(ff).max(cfg.input_dim as usize);
    // The integer path has no per-block scales, inlier copies or int4
    // rows; its attention keeps one score per key in the outlier buffer.
    let int = cfg.integer;
    let raw: [Option<usize>; 16] = [
        rows.checked_mul(d),
        cache_layers
            .checked_mul(seq)
            .and_then(|x| x.checked_mul(kv)),
        cache_layers
            .checked_mul(seq)
            .and_then(|x| x.checked_mul(kv)),
        Some(d),
        Some(q),
        Some(q),
        Some(d),
        Some(ff),
        Some(if gated { ff } else { 0 }),
        Some(if cfg.positions == PositionKind::Rope {
            cfg.head_dim as usize
        } else {
            0
        }),
        Some(if decoder {
            cfg.vocab_size as usize
        } else {
            d.max(cfg.n_classes as usize)
        }),
        // int8 matrix inputs; the int8 cache's quantized query head.
        Some(if needs.i8 || kv_i8 {
            widest.div_ceil(4)
        } else {
            0
        }),
        // Integer models keep their outlier pairs here.
        Some(if needs.f16 || needs.i8 { widest } else { 0 }),
        Some(if needs.i8 && !int {
            widest.div_ceil(quant::BLOCK)
        } else {
            0
        }),
        Some(if int {
            widest.max(seq)
        } else if needs.i8 {
            widest
        } else {
            0
        }),
        // Bytes for two unpacked rows, counted in f32 slots.
        Some(if needs.i4 {
            (2 * widest).div_ceil(4)
        } else {
            0
        }),
    ];
    let mut sizes = [0usize; 16];
    let mut total: usize = 0;
    for (s, r) in sizes.iter_mut().zip(raw) {
        let floats = r
            .and_then(|v| v.checked_add(3))
            .ok_or_else(arena_overflow)?
            & !3;
        total = total.checked_add(floats).ok_or_else(arena_overflow)?;
        *s = floats;
    }
    // In `usize`: a plan whose byte count a pointer cannot hold fails here
    // on any target (every partial product is at most the total).
    total.checked_mul(4).ok_or_else(arena_overflow)?;
    Ok(Plan { sizes })
}
