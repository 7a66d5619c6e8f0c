//! The model families Mote builds on the host, and the one place a
//! [`Config`] is written field by field: the importers, the trainer and the
//! test fixtures start from [`bert`] or [`llama`] and change what differs.

use mote_core::config::{
    Activation, Architecture, Config, KvCache, NormKind, Pooling, PositionKind, NO_TOKEN,
};

/// The dimensions every config needs; everything else comes from the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Width of the residual stream.
    pub d_model: u32,
    /// Transformer blocks.
    pub n_layers: u32,
    /// Query heads.
    pub n_heads: u32,
    /// Key/value heads.
    pub n_kv_heads: u32,
    /// Width of one head.
    pub head_dim: u32,
    /// Hidden width of the feed-forward block.
    pub d_ff: u32,
    /// Vocabulary size.
    pub vocab_size: u32,
    /// Longest sequence.
    pub max_seq: u32,
}

impl Shape {
    /// Multi-head attention over `d_model`: `n_heads` key/value heads of
    /// `d_model / n_heads` each (0 heads count as 1; the config's own checks
    /// refuse what does not divide).
    pub fn mha(d_model: u32, n_layers: u32, n_heads: u32, d_ff: u32) -> Shape {
        let heads = n_heads.max(1);
        Shape {
            d_model,
            n_layers,
            n_heads: heads,
            n_kv_heads: heads,
            head_dim: d_model / heads,
            d_ff,
            vocab_size: 1,
            max_seq: 1,
        }
    }

    /// The same shape with this vocabulary size.
    pub fn vocab(self, vocab_size: u32) -> Shape {
        Shape { vocab_size, ..self }
    }

    /// The same shape with this longest sequence.
    pub fn max_seq(self, max_seq: u32) -> Shape {
        Shape { max_seq, ..self }
    }

    /// The same shape with this many key/value heads.
    pub fn kv_heads(self, n_kv_heads: u32) -> Shape {
        Shape { n_kv_heads, ..self }
    }
}

/// A BERT-family encoder as Hugging Face's `BertModel` builds it: post-norm
/// LayerNorm blocks with biases, exact GELU, learned positions, a norm after
/// the embedding sum, mean pooling, `layer_norm_eps` 1e-12, no token types,
/// no special tokens, no head, token input, an f32 cache.
pub fn bert(s: Shape) -> Config {
    Config {
        arch: Architecture::Encoder,
        d_model: s.d_model,
        n_layers: s.n_layers,
        n_heads: s.n_heads,
        n_kv_heads: s.n_kv_heads,
        head_dim: s.head_dim,
        d_ff: s.d_ff,
        vocab_size: s.vocab_size,
        max_seq: s.max_seq,
        n_token_types: 0,
        norm: NormKind::LayerNorm,
        pre_norm: false,
        activation: Activation::Gelu,
        positions: PositionKind::Learned,
        rope_theta: 10000.0,
        norm_eps: 1e-12,
        tied_embeddings: false,
        causal: false,
        pooling: Pooling::Mean,
        bos: NO_TOKEN,
        eos: NO_TOKEN,
        bias: true,
        embedding_norm: true,
        n_classes: 0,
        input_dim: 0,
        kv_cache: KvCache::F32,
        integer: false,
    }
}

/// A Llama-family decoder: pre-norm RMSNorm blocks without biases, SwiGLU,
/// rotary positions (base 10000), causal attention, `norm_eps` 1e-5, an LM
/// head of its own (not tied), no special tokens.
pub fn llama(s: Shape) -> Config {
    Config {
        arch: Architecture::Decoder,
        norm: NormKind::RmsNorm,
        pre_norm: true,
        activation: Activation::SwiGlu,
        positions: PositionKind::Rope,
        norm_eps: 1e-5,
        causal: true,
        bias: false,
        embedding_norm: false,
        ..bert(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both families are configs the reader accepts as they are.
    #[test]
    fn both_families_are_valid_configs() {
        let s = Shape::mha(16, 2, 4, 32).vocab(50).max_seq(8);
        for cfg in [bert(s), llama(s.kv_heads(2))] {
            assert_eq!(Config::from_words(&cfg.to_words()), Ok(cfg));
        }
        assert_eq!(llama(s).head_dim, 4);
    }
}
