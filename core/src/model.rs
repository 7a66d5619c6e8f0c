//! `Model`: a validated `.mote` file, borrowed in place.

use crate::config::{Activation, Architecture, Config, NormKind, PositionKind, CONFIG_WORDS};
use crate::format::{
    self, parse_header, parse_tensor_entry, read_u32, Dtype, SectionKind, TensorInfo, ALIGN, CRC32,
    SECTION_OPTIONAL, TENSOR_ENTRY_LEN,
};
use crate::session::RunConfig;
use crate::vocab::Vocab;
use crate::{Error, Result, TensorName};

/// A model read in place from its bytes (flash or a file image).
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    bytes: &'a [u8],
    config: Config,
    table: &'a [u8],
    tensor_count: u32,
    vocab: Vocab<'a>,
    payload_len: u64,
    has_i8: bool,
    has_f16: bool,
    has_i4: bool,
}

/// A weight matrix as stored, read in place.
#[derive(Debug, Clone, Copy)]
pub enum Weight<'a> {
    /// f32 elements.
    F32(&'a [f32]),
    /// IEEE half elements (f32 accumulation).
    F16(&'a [half::f16]),
    /// int8, symmetric: `w[r, c] ≈ q[r, c] · scales[r]` (per row), or
    /// `q[r, c] · scales[r, c / 32]` (per row and 32-column block).
    I8 {
        /// The quantized elements.
        q: &'a [i8],
        /// The scales, row-major.
        scales: &'a [f32],
        /// True for one scale per 32-column block, false for one per row.
        per_block: bool,
    },
    /// int4, one scale (and optionally one offset) per row and 32-column
    /// block: `w[r, c] ≈ nibble(r, c) · scales[r, c / 32] (+ offsets[r, c / 32])`
    /// with signed nibbles in `[-8, 7]`; each row is `ceil(cols / 2)` bytes,
    /// low nibble first. With offsets the grid is asymmetric (as GGUF's Q4_1).
    I4 {
        /// The packed nibbles.
        q: &'a [u8],
        /// The scales, `[rows, ceil(cols / 32)]`.
        scales: &'a [f32],
        /// The offsets (`<name>.m`), `[rows, ceil(cols / 32)]`, if any.
        offsets: Option<&'a [f32]>,
    },
}

/// Short names buffer: `L{layer}.{suffix}` or a global name, up to 24 bytes.
#[derive(Clone, Copy)]
pub(crate) struct NameBuf {
    buf: [u8; TensorName::LEN],
    pub(crate) len: usize,
}

impl NameBuf {
    pub(crate) fn global(name: &str) -> Self {
        let mut n = NameBuf {
            buf: [0; TensorName::LEN],
            len: 0,
        };
        n.push(name.as_bytes());
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

/// Per-layer tensor suffixes and whether the config needs them.
const LAYER_TENSORS: [&str; 18] = [
    "attn_norm.w",
    "attn_norm.b",
    "ffn_norm.w",
    "ffn_norm.b",
    "wq",
    "wk",
    "wv",
    "wo",
    "bq",
    "bk",
    "bv",
    "bo",
    "w1",
    "w2",
    "w3",
    "b1",
    "b2",
    "b3",
];
const GLOBAL_TENSORS: [&str; 12] = [
    "tok_emb",
    "in_proj.w",
    "in_proj.b",
    "cls.w",
    "cls.b",
    "pos_emb",
    "type_emb",
    "emb_norm.w",
    "emb_norm.b",
    "out_norm.w",
    "out_norm.b",
    "lm_head",
];

/// What a tensor name means under a config.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A norm weight, bias or position/type table: always f32.
    Plain([u32; 4]),
    /// A weight matrix (or the token embedding): f32, f16 or i8 with a scale tensor.
    Matrix([u32; 4]),
    /// `<matrix>.s`: the f32 scales of an i8 matrix: one per row `[rows]`, or
    /// one per row and 32-column block `[rows, ceil(cols / 32)]`.
    /// `<matrix>.m` (offsets of an asymmetric i4 matrix) is always per block.
    Scale([u32; 4], [u32; 4]),
    /// An i32 table (integer-only models' phase steps).
    Table([u32; 4]),
}

fn role(cfg: &Config, name: &[u8]) -> Option<Role> {
    // The per-row and per-block shapes of a matrix's scales.
    let scale_shapes = |base: &[u8]| match expected_shape(cfg, base)? {
        (shape, true) => Some((
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
    if let Some(shape) = integer_shape(cfg, name) {
        return Some(shape);
    }
    expected_shape(cfg, name).map(|(shape, m)| {
        if m {
            Role::Matrix(shape)
        } else {
            Role::Plain(shape)
        }
    })
}

/// The tensors only integer-only models have: static activation scales
/// (`act`, `L<i>.act`) and the phase steps of sinusoidal or rotary positions.
fn integer_shape(cfg: &Config, name: &[u8]) -> Option<Role> {
    use crate::integer::{GLOBAL_SCALES, LAYER_SCALES};
    if !cfg.integer {
        return None;
    }
    if name == b"act" {
        return Some(Role::Plain([GLOBAL_SCALES as u32, 0, 0, 0]));
    }
    if name == b"turns" {
        let n = match cfg.positions {
            PositionKind::Rope => cfg.head_dim / 2,
            PositionKind::Sinusoidal => cfg.d_model / 2,
            PositionKind::Learned => return None,
        };
        return Some(Role::Table([n, 0, 0, 0]));
    }
    let rest = name.strip_prefix(b"L")?;
    let dot = rest.iter().position(|&b| b == b'.')?;
    let (num, suffix) = (&rest[..dot], &rest[dot + 1..]);
    let layer = core::str::from_utf8(num).ok()?;
    if layer.is_empty() || (layer.len() > 1 && layer.starts_with('0')) {
        return None;
    }
    let layer: u32 = layer.parse().ok()?;
    if layer >= cfg.n_layers {
        return None;
    }
    let n = match suffix {
        b"act" => LAYER_SCALES as u32,
        b"smooth_attn" | b"smooth_ffn" => cfg.d_model,
        _ => return None,
    };
    Some(Role::Plain([n, 0, 0, 0]))
}

/// The shape `name` must have under `cfg` and whether it is a (quantizable)
/// matrix, or `None` when the config does not use it.
fn expected_shape(cfg: &Config, name: &[u8]) -> Option<([u32; 4], bool)> {
    let d = cfg.d_model;
    let q = cfg.n_heads * cfg.head_dim;
    let kv = cfg.n_kv_heads * cfg.head_dim;
    let ff = cfg.d_ff;
    let ln = cfg.norm == NormKind::LayerNorm;
    let gated = cfg.activation == Activation::SwiGlu;
    if let Some(rest) = name.strip_prefix(b"L") {
        let dot = rest.iter().position(|&b| b == b'.')?;
        let (num, suffix) = (&rest[..dot], &rest[dot + 1..]);
        if num.is_empty() || num.len() > 6 || (num.len() > 1 && num[0] == b'0') {
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
        let s = |v: u32| Some(([v, 0, 0, 0], false));
        let m = |r: u32, c: u32| Some(([r, c, 0, 0], true));
        return match suffix {
            b"attn_norm.w" | b"ffn_norm.w" => s(d),
            b"attn_norm.b" | b"ffn_norm.b" if ln => s(d),
            b"wq" => m(q, d),
            b"wk" | b"wv" => m(kv, d),
            b"wo" => m(d, q),
            b"w1" => m(ff, d),
            b"w2" => m(d, ff),
            b"w3" if gated => m(ff, d),
            b"bq" if cfg.bias => s(q),
            b"bk" | b"bv" if cfg.bias => s(kv),
            b"bo" | b"b2" if cfg.bias => s(d),
            b"b1" if cfg.bias => s(ff),
            b"b3" if cfg.bias && gated => s(ff),
            _ => None,
        };
    }
    let s = |v: u32| Some(([v, 0, 0, 0], false));
    let m = |r: u32, c: u32| Some(([r, c, 0, 0], true));
    match name {
        b"tok_emb" if cfg.input_dim == 0 => m(cfg.vocab_size, d),
        b"in_proj.w" if cfg.input_dim > 0 => m(d, cfg.input_dim),
        b"in_proj.b" if cfg.input_dim > 0 => s(d),
        b"cls.w" if cfg.n_classes > 0 => m(cfg.n_classes, d),
        b"cls.b" if cfg.n_classes > 0 => s(cfg.n_classes),
        b"pos_emb" if cfg.positions == PositionKind::Learned => {
            Some(([cfg.max_seq, d, 0, 0], false))
        }
        b"type_emb" if cfg.n_token_types > 0 => Some(([cfg.n_token_types, d, 0, 0], false)),
        b"emb_norm.w" if cfg.embedding_norm => s(d),
        b"emb_norm.b" if cfg.embedding_norm && ln => s(d),
        b"out_norm.w" if cfg.pre_norm => s(d),
        b"out_norm.b" if cfg.pre_norm && ln => s(d),
        b"lm_head" if cfg.arch == Architecture::Decoder && !cfg.tied_embeddings => {
            m(cfg.vocab_size, d)
        }
        _ => None,
    }
}

impl<'a> Model<'a> {
    /// Validates `bytes` as a `.mote` model and keeps borrowing them.
    ///
    /// Checks, in order: alignment of the buffer, magic, version, header CRC,
    /// length, payload CRC, the section table, the config, every tensor entry
    /// (dtype, shape, range, alignment, size), that the tensors are exactly
    /// the ones the config needs with the shapes it implies, and the vocabulary.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        let misalignment = (bytes.as_ptr() as usize % ALIGN) as u8;
        if misalignment != 0 {
            return Err(Error::MisalignedBuffer { misalignment });
        }
        let header = parse_header(bytes)?;
        let table_end = header.table_end();
        let computed = CRC32.checksum(&bytes[table_end..]);
        if computed != header.payload_crc {
            return Err(Error::PayloadCrc {
                stored: header.payload_crc,
                computed,
            });
        }
        let file_len = bytes.len() as u64;
        let mut found: [Option<(u64, u64)>; 4] = [None; 4];
        for i in 0..header.section_count as usize {
            let s = format::section(bytes, i).ok_or(Error::Truncated {
                needed: table_end as u64,
                got: file_len,
            })?;
            let in_range = s.offset >= table_end as u64
                && s.offset.checked_add(s.len).is_some_and(|e| e <= file_len);
            if !in_range {
                return Err(Error::SectionOutOfRange {
                    kind: s.kind,
                    offset: s.offset,
                    len: s.len,
                });
            }
            match SectionKind::from_code(s.kind) {
                Some(k) => {
                    let slot = &mut found[k as usize - 1];
                    if slot.is_some() {
                        return Err(Error::DuplicateSection { kind: s.kind });
                    }
                    *slot = Some((s.offset, s.len));
                }
                None if s.flags & SECTION_OPTIONAL != 0 => {}
                None => return Err(Error::UnknownSection { kind: s.kind }),
            }
        }
        let section = |k: SectionKind| -> Result<&'a [u8]> {
            let (off, len) =
                found[k as usize - 1].ok_or(Error::MissingSection { kind: k as u32 })?;
            // In range: checked above; `get` keeps it panic-free regardless.
            bytes
                .get(off as usize..(off + len) as usize)
                .ok_or(Error::SectionOutOfRange {
                    kind: k as u32,
                    offset: off,
                    len,
                })
        };

        let config_bytes = section(SectionKind::Config)?;
        if config_bytes.len() != CONFIG_WORDS * 4 {
            return Err(Error::BadConfig {
                field: "section length",
                value: config_bytes.len() as u32,
            });
        }
        let mut words = [0u32; CONFIG_WORDS];
        for (i, w) in words.iter_mut().enumerate() {
            *w = read_u32(config_bytes, 4 * i).unwrap_or(0);
        }
        let config = Config::from_words(&words)?;

        let payload_range = {
            let (off, len) =
                found[SectionKind::Payload as usize - 1].ok_or(Error::MissingSection {
                    kind: SectionKind::Payload as u32,
                })?;
            if off % ALIGN as u64 != 0 {
                return Err(Error::SectionOutOfRange {
                    kind: SectionKind::Payload as u32,
                    offset: off,
                    len,
                });
            }
            (off, off + len)
        };

        let tensors = section(SectionKind::Tensors)?;
        let count = read_u32(tensors, 0).ok_or(Error::Truncated {
            needed: 8,
            got: tensors.len() as u64,
        })?;
        let table = tensors.get(8..).unwrap_or(&[]);
        let table_len = (count as u64).saturating_mul(TENSOR_ENTRY_LEN as u64);
        if table.len() as u64 != table_len || read_u32(tensors, 4) != Some(0) {
            return Err(Error::Truncated {
                needed: table_len.saturating_add(8),
                got: tensors.len() as u64,
            });
        }
        let model = Model {
            bytes,
            config,
            table,
            tensor_count: count,
            vocab: Vocab::empty(),
            payload_len: payload_range.1 - payload_range.0,
            has_i8: false,
            has_f16: false,
            has_i4: false,
        };
        for i in 0..count {
            let entry = model.entry(i);
            let info = parse_tensor_entry(entry, i, payload_range)?;
            for j in 0..i {
                if format::entry_name(model.entry(j)) == format::entry_name(entry) {
                    return Err(Error::DuplicateTensor { tensor: info.name });
                }
            }
            let name = format::entry_name(entry);
            let (shape, dtype_ok) =
                match role(&config, name).ok_or(Error::UnknownTensor { tensor: info.name })? {
                    Role::Plain(s) => (s, info.dtype == Dtype::F32),
                    Role::Table(s) => (s, info.dtype == Dtype::I32),
                    Role::Scale(row, block) => (
                        if info.dims == block { block } else { row },
                        info.dtype == Dtype::F32,
                    ),
                    Role::Matrix(s) => (
                        s,
                        matches!(info.dtype, Dtype::F32 | Dtype::F16 | Dtype::I8 | Dtype::I4),
                    ),
                };
            if shape != info.dims {
                return Err(Error::ShapeMismatch {
                    tensor: info.name,
                    expected: shape,
                    got: info.dims,
                });
            }
            if !dtype_ok {
                return Err(Error::UnsupportedDtype {
                    tensor: info.name,
                    code: info.dtype as u8,
                });
            }
            // The integer-only path multiplies whole int8 rows and
            // requantizes once per row.
            let per_row = match role(&config, name) {
                Some(Role::Matrix(_)) => info.dtype == Dtype::I8,
                Some(Role::Scale(..)) => info.rank == 1,
                _ => true,
            };
            if config.integer && !per_row {
                return Err(Error::NotIntegerReady { tensor: info.name });
            }
        }
        // Scales belong to i8/i4 matrices, and those have scales (i4: per block).
        for i in 0..count {
            let Some(info) = model.tensor_at(i) else {
                continue;
            };
            let name = format::entry_name(model.entry(i));
            if let Some(base) = name.strip_suffix(b".m") {
                // Offsets belong to i4 matrices only (their shape is checked above).
                match model.find(base, 0).map(|(_, t)| t) {
                    Some(t) if t.dtype == Dtype::I4 => {}
                    _ => return Err(Error::UnknownTensor { tensor: info.name }),
                }
            } else if let Some(base) = name.strip_suffix(b".s") {
                match model.find(base, 0).map(|(_, t)| t) {
                    Some(t) if t.dtype == Dtype::I8 => {}
                    Some(t) if t.dtype == Dtype::I4 => {
                        if info.rank != 2 {
                            let nb = t.dims[1].div_ceil(crate::quant::BLOCK as u32);
                            return Err(Error::ShapeMismatch {
                                tensor: info.name,
                                expected: [t.dims[0], nb, 0, 0],
                                got: info.dims,
                            });
                        }
                    }
                    _ => return Err(Error::UnknownTensor { tensor: info.name }),
                }
            } else if matches!(info.dtype, Dtype::I8 | Dtype::I4) {
                let mut scale = NameBuf::global("");
                scale.push(name);
                scale.push(b".s");
                if scale.len == name.len() + 2 && model.find(scale.as_bytes(), i).is_some() {
                    continue;
                }
                let mut n = [0u8; 26];
                n[..name.len()].copy_from_slice(name);
                n[name.len()..name.len() + 2].copy_from_slice(b".s");
                return Err(Error::MissingTensor {
                    tensor: TensorName::new(&n[..name.len() + 2]),
                });
            }
        }
        // Every tensor the config needs must be present.
        for name in GLOBAL_TENSORS {
            let n = NameBuf::global(name);
            if expected_shape(&config, n.as_bytes()).is_some()
                && model.find(n.as_bytes(), 0).is_none()
            {
                return Err(Error::MissingTensor {
                    tensor: TensorName::new(n.as_bytes()),
                });
            }
        }
        // An integer-only model's static scales and phase steps.
        if config.integer {
            let need = |n: NameBuf| match integer_shape(&config, n.as_bytes()) {
                Some(_) if model.find(n.as_bytes(), 0).is_none() => Err(Error::MissingTensor {
                    tensor: TensorName::new(n.as_bytes()),
                }),
                _ => Ok(()),
            };
            need(NameBuf::global("act"))?;
            need(NameBuf::global("turns"))?;
            for layer in 0..config.n_layers {
                need(NameBuf::layer(layer, "act"))?;
                for t in crate::integer::SMOOTH {
                    need(NameBuf::layer(layer, t))?;
                }
            }
        }
        let mut hint = 0;
        for layer in 0..config.n_layers {
            for suffix in LAYER_TENSORS {
                let n = NameBuf::layer(layer, suffix);
                if expected_shape(&config, n.as_bytes()).is_some() {
                    match model.find(n.as_bytes(), hint) {
                        Some((idx, _)) => hint = idx,
                        None => {
                            return Err(Error::MissingTensor {
                                tensor: TensorName::new(n.as_bytes()),
                            })
                        }
                    }
                }
            }
        }
        let vocab = match found[SectionKind::Vocab as usize - 1] {
            Some(_) => Vocab::parse(section(SectionKind::Vocab)?, config.vocab_size)?,
            None => Vocab::empty(),
        };
        let mut has_i8 = false;
        let mut has_f16 = false;
        let mut has_i4 = false;
        for i in 0..count {
            let dtype = model.tensor_at(i).map(|t| t.dtype);
            has_i8 |= matches!(dtype, Some(Dtype::I8 | Dtype::I4));
            has_i4 |= dtype == Some(Dtype::I4);
            has_f16 |= dtype == Some(Dtype::F16);
        }
        Ok(Model {
            vocab,
            has_i8,
            has_f16,
            has_i4,
            ..model
        })
    }

    fn entry(&self, i: u32) -> &'a [u8] {
        let start = i as usize * TENSOR_ENTRY_LEN;
        self.table
            .get(start..start + TENSOR_ENTRY_LEN)
            .unwrap_or(&[])
    }

    /// Finds a tensor by name, scanning from `hint` (tensors are usually in order).
    pub(crate) fn find(&self, name: &[u8], hint: u32) -> Option<(u32, TensorInfo)> {
        let n = self.tensor_count;
        for k in 0..n {
            let i = (hint + k) % n;
            let entry = self.entry(i);
            if format::entry_name(entry) == name {
                return parse_tensor_entry(entry, i, (0, u64::MAX))
                    .ok()
                    .map(|t| (i, t));
            }
        }
        None
    }

    /// The architecture config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The tokenizer vocabulary (empty when the file has none).
    pub fn vocab(&self) -> &Vocab<'a> {
        &self.vocab
    }

    /// Number of tensors.
    pub fn tensor_count(&self) -> u32 {
        self.tensor_count
    }

    /// Tensor `i` of the table.
    pub fn tensor_at(&self, i: u32) -> Option<TensorInfo> {
        if i >= self.tensor_count {
            return None;
        }
        parse_tensor_entry(self.entry(i), i, (0, u64::MAX)).ok()
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Option<TensorInfo> {
        self.find(name.as_bytes(), 0).map(|(_, t)| t)
    }

    /// Total model bytes.
    pub fn file_len(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes of tensor payload.
    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }

    /// The raw payload bytes of a tensor.
    pub fn tensor_bytes(&self, t: &TensorInfo) -> Result<&'a [u8]> {
        let range = usize::try_from(t.offset)
            .ok()
            .and_then(|s| Some(s..s.checked_add(usize::try_from(t.byte_len).ok()?)?));
        range
            .and_then(|r| self.bytes.get(r))
            .ok_or(Error::TensorOutOfRange {
                tensor: t.name,
                offset: t.offset,
                len: t.byte_len,
            })
    }

    /// The elements of an `f32` tensor, read in place.
    pub fn tensor_f32(&self, t: &TensorInfo) -> Result<&'a [f32]> {
        self.tensor_as(t, Dtype::F32)
    }

    /// An i32 tensor's elements, read in place.
    pub fn tensor_i32(&self, t: &TensorInfo) -> Result<&'a [i32]> {
        self.tensor_as(t, Dtype::I32)
    }

    /// A tensor of dtype `want` as a slice of `T`, read in place.
    fn tensor_as<T: bytemuck::Pod>(&self, t: &TensorInfo, want: Dtype) -> Result<&'a [T]> {
        if t.dtype != want {
            return Err(Error::UnsupportedDtype {
                tensor: t.name,
                code: t.dtype as u8,
            });
        }
        bytemuck::try_cast_slice(self.tensor_bytes(t)?).map_err(|_| Error::MisalignedTensor {
            tensor: t.name,
            offset: t.offset,
        })
    }

    /// A weight matrix (f32, f16, or i8 with its `.s` scales), read in place.
    pub fn weight(&self, t: &TensorInfo) -> Result<Weight<'a>> {
        self.weight_near(t, 0)
    }

    /// [`Model::weight`], looking for the companion tensors from table
    /// index `hint` on (writers put them right after their matrix).
    pub(crate) fn weight_near(&self, t: &TensorInfo, hint: u32) -> Result<Weight<'a>> {
        let misaligned = Error::MisalignedTensor {
            tensor: t.name,
            offset: t.offset,
        };
        match t.dtype {
            Dtype::F32 => self.tensor_f32(t).map(Weight::F32),
            Dtype::F16 => bytemuck::try_cast_slice(self.tensor_bytes(t)?)
                .map(Weight::F16)
                .map_err(|_| misaligned),
            Dtype::I8 => {
                let s = self.scales_of(t, hint)?;
                Ok(Weight::I8 {
                    q: bytemuck::cast_slice(self.tensor_bytes(t)?),
                    scales: self.tensor_f32(&s)?,
                    per_block: s.rank == 2,
                })
            }
            Dtype::I4 => {
                let s = self.scales_of(t, hint)?;
                let offsets = match self.companion(t, b".m", hint) {
                    Some(m) => Some(self.tensor_f32(&m)?),
                    None => None,
                };
                Ok(Weight::I4 {
                    q: self.tensor_bytes(t)?,
                    scales: self.tensor_f32(&s)?,
                    offsets,
                })
            }
            Dtype::I32 => Err(Error::UnsupportedDtype {
                tensor: t.name,
                code: t.dtype as u8,
            }),
        }
    }

    /// The `<name>.s` scales tensor of a quantized matrix.
    fn scales_of(&self, t: &TensorInfo, hint: u32) -> Result<TensorInfo> {
        let mut name = NameBuf::global(t.name.as_str());
        name.push(b".s");
        let missing = Error::MissingTensor {
            tensor: TensorName::new(name.as_bytes()),
        };
        self.companion(t, b".s", hint).ok_or(missing)
    }

    /// The tensor named `<t's name><suffix>`, if present.
    fn companion(&self, t: &TensorInfo, suffix: &[u8], hint: u32) -> Option<TensorInfo> {
        let mut name = NameBuf::global(t.name.as_str());
        name.push(suffix);
        if name.len != t.name.as_str().len() + suffix.len() {
            return None; // too long to name a tensor
        }
        self.find(name.as_bytes(), hint).map(|(_, s)| s)
    }

    /// True when some weight is int8 or int4 (activations are then quantized).
    pub fn has_i8(&self) -> bool {
        self.has_i8
    }

    /// True when some weight is int4.
    pub fn has_i4(&self) -> bool {
        self.has_i4
    }

    /// True when some weight is f16.
    pub fn has_f16(&self) -> bool {
        self.has_f16
    }

    /// Exact arena bytes a [`crate::Session`] with `run` needs (for a 16-byte aligned arena).
    pub fn arena_bytes(&self, run: &RunConfig) -> Result<usize> {
        crate::session::plan(self, run).map(|p| p.total_bytes())
    }
}
