//! The architecture config: one configurable transformer covers BERT-style
//! encoders and Llama-style decoders. Stored as 28 little-endian `u32` words.

use crate::{Error, Result};

/// Number of `u32` words in the config section.
pub const CONFIG_WORDS: usize = 28;
/// Marker for "no such token".
pub const NO_TOKEN: u32 = u32::MAX;
/// Upper bound for any single dimension; keeps every product inside `u64` and sane.
pub const MAX_DIM: u32 = 1 << 20;

/// Which way the model is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Architecture {
    /// Bidirectional (or causal) encoder over a whole sequence, pooled to one vector.
    Encoder = 0,
    /// Autoregressive decoder with a KV cache and an LM head.
    Decoder = 1,
}

/// Normalisation layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NormKind {
    /// LayerNorm with weight and bias.
    LayerNorm = 0,
    /// RMSNorm with weight only.
    RmsNorm = 1,
}

/// Feed-forward activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Activation {
    /// GELU with the exact erf form.
    Gelu = 0,
    /// GELU, tanh approximation.
    GeluTanh = 1,
    /// ReLU.
    Relu = 2,
    /// SiLU (swish).
    Silu = 3,
    /// Gated SiLU: `w2 · (silu(w1 x) ⊙ w3 x)`.
    SwiGlu = 4,
}

/// How positions enter the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PositionKind {
    /// A learned table `pos_emb` added to the token embedding.
    Learned = 0,
    /// Rotary embedding on Q and K, rotating consecutive pairs `(x[2i], x[2i+1])`.
    Rope = 1,
    /// Fixed sinusoidal table added to the token embedding.
    Sinusoidal = 2,
}

/// How an encoder turns rows into one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Pooling {
    /// Mean over all rows, then L2 normalisation (sentence-transformers).
    Mean = 0,
    /// The first row, then L2 normalisation.
    Cls = 1,
}

/// How the attention cache (an encoder's keys and values, a decoder's KV
/// cache) is stored in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KvCache {
    /// f32 rows.
    #[default]
    F32 = 0,
    /// int8 rows with one f32 scale per row and head (symmetric, absmax):
    /// about a quarter of the bytes. Scores are int8 dot products of the
    /// quantized query and key heads.
    I8 = 1,
}

/// The architecture of a model, as stored in its config section.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Encoder or decoder.
    pub arch: Architecture,
    /// Width of the residual stream.
    pub d_model: u32,
    /// Number of transformer blocks.
    pub n_layers: u32,
    /// Query heads.
    pub n_heads: u32,
    /// Key/value heads (equal to `n_heads` for MHA, 1 for MQA, between for GQA).
    pub n_kv_heads: u32,
    /// Width of one head.
    pub head_dim: u32,
    /// Hidden width of the feed-forward block.
    pub d_ff: u32,
    /// Vocabulary size (rows of `tok_emb`).
    pub vocab_size: u32,
    /// Longest sequence the model supports.
    pub max_seq: u32,
    /// Rows of `type_emb` (0: no token types).
    pub n_token_types: u32,
    /// Normalisation kind.
    pub norm: NormKind,
    /// Pre-norm (`x + f(norm(x))`) instead of post-norm (`norm(x + f(x))`).
    pub pre_norm: bool,
    /// Feed-forward activation.
    pub activation: Activation,
    /// Position encoding.
    pub positions: PositionKind,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// Epsilon inside every norm.
    pub norm_eps: f32,
    /// The LM head reuses `tok_emb`.
    pub tied_embeddings: bool,
    /// Causal attention mask.
    pub causal: bool,
    /// Encoder pooling.
    pub pooling: Pooling,
    /// Beginning-of-sequence token or [`NO_TOKEN`].
    pub bos: u32,
    /// End-of-sequence token or [`NO_TOKEN`].
    pub eos: u32,
    /// Linear layers carry biases.
    pub bias: bool,
    /// A norm (`emb_norm`) follows the embedding sum.
    pub embedding_norm: bool,
    /// Rows of the classifier head `cls.w` (encoders; 0: no head).
    pub n_classes: u32,
    /// Width of one input feature row (a patch or an audio frame) that
    /// `in_proj` maps to `d_model` instead of a token embedding (encoders; 0: token input).
    pub input_dim: u32,
    /// Storage of the attention cache.
    pub kv_cache: KvCache,
    /// Integer-only inference: int8 activations with static scales from
    /// calibration (`act` and `L<i>.act` tensors), integer norms, softmax,
    /// activations and RoPE, an int8 cache at static scales. Needs int8
    /// matrices with one scale per row.
    pub integer: bool,
}

/// How a config word is checked.
#[derive(Clone, Copy)]
enum Word {
    /// A code in `0..=max`: an enum's, or a flag's when `max` is 1.
    Code(u8),
    /// A dimension in `min..=MAX_DIM`.
    Dim(u8),
    /// The bits of a positive finite f32.
    Positive,
    /// A token id or [`NO_TOKEN`] (checked against `vocab_size` after).
    Token,
    /// Reserved: 0.
    Zero,
}

/// Each word's field name and check, in word order.
const WORDS: [(&str, Word); CONFIG_WORDS] = {
    use Word::*;
    [
        ("arch", Code(1)),
        ("d_model", Dim(1)),
        ("n_layers", Dim(1)),
        ("n_heads", Dim(1)),
        ("n_kv_heads", Dim(1)),
        ("head_dim", Dim(1)),
        ("d_ff", Dim(1)),
        ("vocab_size", Dim(1)),
        ("max_seq", Dim(1)),
        ("n_token_types", Dim(0)),
        ("norm", Code(1)),
        ("pre_norm", Code(1)),
        ("activation", Code(4)),
        ("positions", Code(2)),
        ("rope_theta", Positive),
        ("norm_eps", Positive),
        ("tied_embeddings", Code(1)),
        ("causal", Code(1)),
        ("pooling", Code(1)),
        ("bos", Token),
        ("eos", Token),
        ("bias", Code(1)),
        ("embedding_norm", Code(1)),
        ("n_classes", Dim(0)),
        ("input_dim", Dim(0)),
        ("kv_cache", Code(1)),
        ("integer", Code(1)),
        ("reserved", Zero),
    ]
};

impl Config {
    /// Width of all query heads together.
    pub fn q_dim(&self) -> usize {
        self.n_heads as usize * self.head_dim as usize
    }

    /// Width of all key (or value) heads together.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads as usize * self.head_dim as usize
    }

    /// f32 slots one cached row (one position's keys, or values) takes in
    /// the arena: `kv_dim` floats, or for an int8 cache `kv_dim` bytes
    /// (padded to whole slots) followed by one scale per key/value head.
    pub fn kv_row_floats(&self) -> usize {
        if self.integer {
            // int8 at the layer's static key/value scale.
            return self.kv_dim().div_ceil(4);
        }
        match self.kv_cache {
            KvCache::F32 => self.kv_dim(),
            KvCache::I8 => self.kv_dim().div_ceil(4) + self.n_kv_heads as usize,
        }
    }

    /// Parses and validates the config words.
    pub fn from_words(w: &[u32; CONFIG_WORDS]) -> Result<Config> {
        for (&value, &(field, check)) in w.iter().zip(WORDS.iter()) {
            let ok = match check {
                Word::Code(max) => value <= max as u32,
                Word::Dim(min) => (min as u32..=MAX_DIM).contains(&value),
                Word::Positive => {
                    let v = f32::from_bits(value);
                    v.is_finite() && v > 0.0
                }
                Word::Token => true,
                Word::Zero => value == 0,
            };
            if !ok {
                return Err(Error::BadConfig { field, value });
            }
        }
        // Every code is in range now: the matches' last arms are their
        // highest codes.
        let cfg = Config {
            arch: match w[0] {
                0 => Architecture::Encoder,
                _ => Architecture::Decoder,
            },
            d_model: w[1],
            n_layers: w[2],
            n_heads: w[3],
            n_kv_heads: w[4],
            head_dim: w[5],
            d_ff: w[6],
            vocab_size: w[7],
            max_seq: w[8],
            n_token_types: w[9],
            norm: match w[10] {
                0 => NormKind::LayerNorm,
                _ => NormKind::RmsNorm,
            },
            pre_norm: w[11] != 0,
            activation: match w[12] {
                0 => Activation::Gelu,
                1 => Activation::GeluTanh,
                2 => Activation::Relu,
                3 => Activation::Silu,
                _ => Activation::SwiGlu,
            },
            positions: match w[13] {
                0 => PositionKind::Learned,
                1 => PositionKind::Rope,
                _ => PositionKind::Sinusoidal,
            },
            rope_theta: f32::from_bits(w[14]),
            norm_eps: f32::from_bits(w[15]),
            tied_embeddings: w[16] != 0,
            causal: w[17] != 0,
            pooling: match w[18] {
                0 => Pooling::Mean,
                _ => Pooling::Cls,
            },
            bos: w[19],
            eos: w[20],
            bias: w[21] != 0,
            embedding_norm: w[22] != 0,
            n_classes: w[23],
            input_dim: w[24],
            kv_cache: match w[25] {
                0 => KvCache::F32,
                _ => KvCache::I8,
            },
            integer: w[26] != 0,
        };
        // A classifier head and feature input belong to encoders.
        for (field, value) in [("n_classes", cfg.n_classes), ("input_dim", cfg.input_dim)] {
            if value != 0 && cfg.arch != Architecture::Encoder {
                return Err(Error::BadConfig { field, value });
            }
        }
        // Head widths must stay within a dimension's bound (this also keeps
        // every u32 product the reader forms from overflowing).
        for (field, heads) in [("n_heads", cfg.n_heads), ("n_kv_heads", cfg.n_kv_heads)] {
            if heads.checked_mul(cfg.head_dim).is_none_or(|w| w > MAX_DIM) {
                return Err(Error::BadConfig {
                    field,
                    value: heads,
                });
            }
        }
        if !cfg.n_heads.is_multiple_of(cfg.n_kv_heads) {
            return Err(Error::BadConfig {
                field: "n_kv_heads",
                value: cfg.n_kv_heads,
            });
        }
        if cfg.positions == PositionKind::Rope && !cfg.head_dim.is_multiple_of(2) {
            return Err(Error::BadConfig {
                field: "head_dim",
                value: cfg.head_dim,
            });
        }
        if cfg.positions == PositionKind::Sinusoidal && !cfg.d_model.is_multiple_of(2) {
            return Err(Error::BadConfig {
                field: "d_model",
                value: cfg.d_model,
            });
        }
        if cfg.arch == Architecture::Decoder && !cfg.causal {
            return Err(Error::BadConfig {
                field: "causal",
                value: 0,
            });
        }
        for (field, id) in [("bos", cfg.bos), ("eos", cfg.eos)] {
            if id != NO_TOKEN && id >= cfg.vocab_size {
                return Err(Error::BadConfig { field, value: id });
            }
        }
        Ok(cfg)
    }

    /// The config as stored words (inverse of [`Config::from_words`]).
    pub fn to_words(&self) -> [u32; CONFIG_WORDS] {
        [
            self.arch as u32,
            self.d_model,
            self.n_layers,
            self.n_heads,
            self.n_kv_heads,
            self.head_dim,
            self.d_ff,
            self.vocab_size,
            self.max_seq,
            self.n_token_types,
            self.norm as u32,
            self.pre_norm as u32,
            self.activation as u32,
            self.positions as u32,
            self.rope_theta.to_bits(),
            self.norm_eps.to_bits(),
            self.tied_embeddings as u32,
            self.causal as u32,
            self.pooling as u32,
            self.bos,
            self.eos,
            self.bias as u32,
            self.embedding_norm as u32,
            self.n_classes,
            self.input_dim,
            self.kv_cache as u32,
            self.integer as u32,
            0,
        ]
    }

    /// Number of weights (parameters) the config implies.
    pub fn parameter_count(&self) -> u64 {
        let d = self.d_model as u64;
        let (q, kv, ff) = (self.q_dim() as u64, self.kv_dim() as u64, self.d_ff as u64);
        let gated = if self.activation == Activation::SwiGlu {
            3
        } else {
            2
        };
        let mut layer = d * (q + 2 * kv) + q * d + gated * d * ff;
        let norm_params = if self.norm == NormKind::LayerNorm {
            2 * d
        } else {
            d
        };
        layer += 2 * norm_params;
        if self.bias {
            layer += q + 2 * kv + d + ff + d + if gated == 3 { ff } else { 0 };
        }
        let input = if self.input_dim > 0 {
            (self.input_dim as u64 + 1) * d
        } else {
            self.vocab_size as u64 * d
        };
        let mut total = layer * self.n_layers as u64 + input;
        total += self.n_classes as u64 * (d + 1);
        if self.positions == PositionKind::Learned {
            total += self.max_seq as u64 * d;
        }
        total += self.n_token_types as u64 * d;
        if self.embedding_norm {
            total += norm_params;
        }
        if self.pre_norm {
            total += norm_params;
        }
        if self.arch == Architecture::Decoder && !self.tied_embeddings {
            total += self.vocab_size as u64 * d;
        }
        total
    }
}
