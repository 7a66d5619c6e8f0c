//! The one table of tensor names: which tensors a config uses, their kind
//! (plain f32, weight matrix, i32 table), their shapes from the config, the
//! companions of quantized matrices (`.s` scales, `.m` offsets), and the
//! short name buffer lookups build (`L{layer}.{suffix}`).

use crate::config::{Activation, Architecture, Config, NormKind, PositionKind};
use crate::TensorName;

/// Scales in the global `act` tensor.
pub const GLOBAL_SCALES: usize = 4;
/// Scales in each layer's `L<i>.act` tensor.
pub const LAYER_SCALES: usize = 7;
/// Per-channel multipliers of each layer's normed int8 matrix inputs
/// (`L<i>.smooth_attn` for `wq`/`wk`/`wv`, `L<i>.smooth_ffn` for
/// `w1`/`w3`): SmoothQuant's migration. Input channel `j` is multiplied by
/// `smooth[j]` before it is rounded to int8, and the matrix's column `j`
/// was divided by it when the model was written, so outlier channels no
/// longer set the whole tensor's scale.
pub const SMOOTH: [&str; 2] = ["smooth_attn", "smooth_ffn"];

/// Short names buffer: `L{layer}.{suffix}` or a global name, up to 24 bytes.
#[derive(Clone, Copy)]
pub(crate) struct NameBuf {
    buf: [u8; TensorName::LEN],
    pub(crate) len: usize,
}

impl NameBuf {
    pub(crate) fn global(name: &str) -> Self {
        Self::bytes(name.as_bytes())
    }

    pub(crate) fn bytes(name: &[u8]) -> Self {
        let mut n = NameBuf {
            buf: [0; TensorName::LEN],
            len: 0,
        };
        n.push(name);
        n
    }

    pub(crate) fn layer(layer: u32, suffix: &str) -> Self {
        let mut n = NameBuf {
            buf: [0; TensorName::LEN],
            len: 0,
        };
        n.push(b"L");
        // Decimal digits, most significant first, without an index the
        // compiler has to prove in range (a u32 has at most 10).
        let mut digits = [0u8; 10];
        let mut k = digits.len();
        let mut v = layer;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            k -= 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        n.push(digits.get(k..).unwrap_or(&[]));
        n.push(b".");
        n.push(suffix.as_bytes());
        n
    }

    pub(crate) fn push(&mut self, s: &[u8]) {
        for &b in s {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

/// A dimension a tensor's shape is made of, read from the config.
#[derive(Clone, Copy)]
pub(crate) enum Dim {
    /// `d_model`.
    D,
    /// `n_heads · head_dim`.
    Q,
    /// `n_kv_heads · head_dim`.
    Kv,
    /// `d_ff`.
    Ff,
    /// `vocab_size`.
    Vocab,
    /// `input_dim`.
    Input,
    /// `n_classes`.
    Classes,
    /// `max_seq`.
    MaxSeq,
    /// `n_token_types`.
    Types,
    /// `head_dim / 2` (rotary phase steps).
    HalfHead,
    /// `d_model / 2` (sinusoidal phase steps).
    HalfD,
    /// The integer-only model's global static scales.
    GlobalScales,
    /// The integer-only model's per-layer static scales.
    LayerScales,
    /// No second dimension (a vector).
    None,
}

/// What a tensor is, by its name alone.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// f32: norm weights and biases, position and type tables, static scales.
    Plain,
    /// A weight matrix (or the token embedding): f32, f16, i8 or i4.
    Matrix,
    /// i32: an integer-only model's phase steps.
    Table,
}

/// Properties of a config; a tensor is used when its spec's `need` bits
/// are all among them.
pub(crate) mod need {
    pub const LAYER_NORM: u16 = 1;
    pub const GATED: u16 = 1 << 1;
    pub const BIAS: u16 = 1 << 2;
    pub const TOKENS: u16 = 1 << 3;
    pub const FEATURES: u16 = 1 << 4;
    pub const CLASSES: u16 = 1 << 5;
    pub const LEARNED: u16 = 1 << 6;
    pub const TYPES: u16 = 1 << 7;
    pub const EMB_NORM: u16 = 1 << 8;
    pub const PRE_NORM: u16 = 1 << 9;
    pub const LM_HEAD: u16 = 1 << 10;
    pub const INTEGER: u16 = 1 << 11;
    pub const ROPE: u16 = 1 << 12;
    pub const SINUSOIDAL: u16 = 1 << 13;
}

/// One tensor a config may use: its name (a layer's without `L<i>.`), kind,
/// shape and the config properties it needs.
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) shape: (Dim, Dim),
    pub(crate) need: u16,
}

const fn spec(name: &'static str, kind: Kind, shape: (Dim, Dim), need: u16) -> Spec {
    Spec {
        name,
        kind,
        shape,
        need,
    }
}

/// Every tensor of a layer, in the order writers store them.
pub(crate) const LAYER_SPECS: [Spec; 21] = {
    use need::*;
    use Dim::*;
    use Kind::*;
    [
        spec("attn_norm.w", Plain, (D, None), 0),
        spec("attn_norm.b", Plain, (D, None), LAYER_NORM),
        spec("ffn_norm.w", Plain, (D, None), 0),
        spec("ffn_norm.b", Plain, (D, None), LAYER_NORM),
        spec("wq", Matrix, (Q, D), 0),
        spec("wk", Matrix, (Kv, D), 0),
        spec("wv", Matrix, (Kv, D), 0),
        spec("wo", Matrix, (D, Q), 0),
        spec("bq", Plain, (Q, None), BIAS),
        spec("bk", Plain, (Kv, None), BIAS),
        spec("bv", Plain, (Kv, None), BIAS),
        spec("bo", Plain, (D, None), BIAS),
        spec("w1", Matrix, (Ff, D), 0),
        spec("w2", Matrix, (D, Ff), 0),
        spec("w3", Matrix, (Ff, D), GATED),
        spec("b1", Plain, (Ff, None), BIAS),
        spec("b2", Plain, (D, None), BIAS),
        spec("b3", Plain, (Ff, None), BIAS | GATED),
        spec("act", Plain, (LayerScales, None), INTEGER),
        spec("smooth_attn", Plain, (D, None), INTEGER),
        spec("smooth_ffn", Plain, (D, None), INTEGER),
    ]
};

/// Every tensor outside the layers.
pub(crate) const GLOBAL_SPECS: [Spec; 15] = {
    use need::*;
    use Dim::*;
    use Kind::*;
    [
        spec("tok_emb", Matrix, (Vocab, D), TOKENS),
        spec("in_proj.w", Matrix, (D, Input), FEATURES),
        spec("in_proj.b", Plain, (D, None), FEATURES),
        spec("cls.w", Matrix, (Classes, D), CLASSES),
        spec("cls.b", Plain, (Classes, None), CLASSES),
        spec("pos_emb", Plain, (MaxSeq, D), LEARNED),
        spec("type_emb", Plain, (Types, D), TYPES),
        spec("emb_norm.w", Plain, (D, None), EMB_NORM),
        spec("emb_norm.b", Plain, (D, None), EMB_NORM | LAYER_NORM),
        spec("out_norm.w", Plain, (D, None), PRE_NORM),
        spec("out_norm.b", Plain, (D, None), PRE_NORM | LAYER_NORM),
        spec("lm_head", Matrix, (Vocab, D), LM_HEAD),
        spec("act", Plain, (GlobalScales, None), INTEGER),
        spec("turns", Table, (HalfHead, None), INTEGER | ROPE),
        spec("turns", Table, (HalfD, None), INTEGER | SINUSOIDAL),
    ]
};

/// The properties of `cfg` the specs' `need` bits test.
pub(crate) fn properties(cfg: &Config) -> u16 {
    use need::*;
    let bit = |on: bool, bit: u16| if on { bit } else { 0 };
    bit(cfg.norm == NormKind::LayerNorm, LAYER_NORM)
        | bit(cfg.activation == Activation::SwiGlu, GATED)
        | bit(cfg.bias, BIAS)
        | bit(cfg.input_dim == 0, TOKENS)
        | bit(cfg.input_dim > 0, FEATURES)
        | bit(cfg.n_classes > 0, CLASSES)
        | bit(cfg.positions == PositionKind::Learned, LEARNED)
        | bit(cfg.n_token_types > 0, TYPES)
        | bit(cfg.embedding_norm, EMB_NORM)
        | bit(cfg.pre_norm, PRE_NORM)
        | bit(
            cfg.arch == Architecture::Decoder && !cfg.tied_embeddings,
            LM_HEAD,
        )
        | bit(cfg.integer, INTEGER)
        | bit(cfg.positions == PositionKind::Rope, ROPE)
        | bit(cfg.positions == PositionKind::Sinusoidal, SINUSOIDAL)
}

/// The size of `dim` under `cfg` (0 for [`Dim::None`]).
fn size(cfg: &Config, dim: Dim) -> u32 {
    match dim {
        Dim::D => cfg.d_model,
        Dim::Q => cfg.n_heads * cfg.head_dim,
        Dim::Kv => cfg.n_kv_heads * cfg.head_dim,
        Dim::Ff => cfg.d_ff,
        Dim::Vocab => cfg.vocab_size,
        Dim::Input => cfg.input_dim,
        Dim::Classes => cfg.n_classes,
        Dim::MaxSeq => cfg.max_seq,
        Dim::Types => cfg.n_token_types,
        Dim::HalfHead => cfg.head_dim / 2,
        Dim::HalfD => cfg.d_model / 2,
        Dim::GlobalScales => GLOBAL_SCALES as u32,
        Dim::LayerScales => LAYER_SCALES as u32,
        Dim::None => 0,
    }
}

/// The spec among `specs` named `name` that `cfg` (with properties `props`) uses.
fn used<'s>(specs: &'s [Spec], name: &[u8], props: u16) -> Option<&'s Spec> {
    specs
        .iter()
        .find(|s| s.name.as_bytes() == name && s.need & !props == 0)
}

/// The kind and shape of tensor `name` under `cfg`, or `None` when the
/// config does not use it. Layer tensors are `L<i>.<suffix>` with `i` a
/// layer of `cfg` in decimal without leading zeros.
fn expected(cfg: &Config, name: &[u8]) -> Option<(Kind, [u32; 4])> {
    let props = properties(cfg);
    let spec = match name.strip_prefix(b"L") {
        Some(rest) => {
            let dot = rest.iter().position(|&b| b == b'.')?;
            let (num, suffix) = rest.split_at(dot);
            if num.is_empty() || num.len() > 7 || (num.len() > 1 && num[0] == b'0') {
                return None;
            }
            let mut layer = 0u32;
            for &c in num {
                if !c.is_ascii_digit() {
                    return None;
                }
                layer = layer * 10 + (c - b'0') as u32;
            }
            if layer >= cfg.n_layers {
                return None;
            }
            used(&LAYER_SPECS, suffix.get(1..)?, props)?
        }
        None => used(&GLOBAL_SPECS, name, props)?,
    };
    let shape = [size(cfg, spec.shape.0), size(cfg, spec.shape.1), 0, 0];
    Some((spec.kind, shape))
}

/// What a tensor name means under a config.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A tensor of the config (see [`expected`]).
    Tensor(Kind, [u32; 4]),
    /// `<matrix>.s`: the f32 scales of an i8 matrix: one per row `[rows]`, or
    /// one per row and 32-column block `[rows, ceil(cols / 32)]`.
    /// `<matrix>.m` (offsets of an asymmetric i4 matrix) is always per block.
    Scale([u32; 4], [u32; 4]),
}

pub(crate) fn role(cfg: &Config, name: &[u8]) -> Option<Role> {
    // The per-row and per-block shapes of a matrix's scales.
    let scale_shapes = |base: &[u8]| match expected(cfg, base)? {
        (Kind::Matrix, shape) => Some((
            [shape[0], 0, 0, 0],
            [
                shape[0],
                shape[1].div_ceil(crate::quant::BLOCK as u32),
                0,
                0,
            ],
        )),
        _ => None,
    };
    if let Some(base) = name.strip_suffix(b".m") {
        let (_, block) = scale_shapes(base)?;
        return Some(Role::Scale(block, block));
    }
    if let Some(base) = name.strip_suffix(b".s") {
        let (row, block) = scale_shapes(base)?;
        return Some(Role::Scale(row, block));
    }
    expected(cfg, name).map(|(kind, shape)| Role::Tensor(kind, shape))
}
