//! `Model`: a validated `.mote` file, borrowed in place.

use crate::arena::RunConfig;
use crate::config::{Config, CONFIG_WORDS};
use crate::format::{
    self, parse_header, parse_tensor_entry, read_u32, Dtype, SectionKind, TensorInfo, ALIGN, CRC32,
    SECTION_OPTIONAL, SECTION_VERSION_SHIFT, TENSOR_ENTRY_LEN,
};
use crate::labels::Labels;
use crate::tensors::{properties, role, Kind, NameBuf, Role, GLOBAL_SPECS, LAYER_SPECS};
use crate::text::vocab::Vocab;
use crate::{Error, Result, TensorName};

/// A model read in place from its bytes (flash or a file image).
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    bytes: &'a [u8],
    config: Config,
    table: &'a [u8],
    tensor_count: u32,
    vocab: Vocab<'a>,
    /// The audio section's bytes (empty without one), checked at load.
    audio: &'a [u8],
    /// The class names (empty without a labels section), checked at load.
    labels: Labels<'a>,
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

impl<'a> Model<'a> {
    /// Validates `bytes` as a `.mote` model and keeps borrowing them.
    ///
    /// Checks, in order: alignment of the buffer, magic, version, header CRC,
    /// length, payload CRC, the section table, the config, every tensor entry
    /// (dtype, shape, range, alignment, size), that the tensors are exactly
    /// the ones the config needs with the shapes it implies, and the vocabulary.
    // Not inlined: `slot::choose` opens two slots (one copy of the checks).
    #[inline(never)]
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        let misalignment = (bytes.as_ptr() as usize % ALIGN) as u8;
        if misalignment != 0 {
            return Err(Error::MisalignedBuffer { misalignment });
        }
        let header = parse_header(bytes)?;
        let table_end = header.table_end();
        // `parse_header` checked the table ends inside `bytes`; `get` keeps the
        // load path free of panic branches regardless.
        let computed = CRC32.checksum(bytes.get(table_end..).unwrap_or(&[]));
        if computed != header.payload_crc {
            return Err(Error::PayloadCrc {
                stored: header.payload_crc,
                computed,
            });
        }
        let file_len = bytes.len() as u64;
        let mut found: [Option<(u64, u64)>; SectionKind::ALL.len()] =
            [None; SectionKind::ALL.len()];
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
            // The format's extension rule (`format::section`): what this
            // reader cannot read is skipped when optional, else refused.
            let reserved = s.flags & !SECTION_OPTIONAL & ((1 << SECTION_VERSION_SHIFT) - 1);
            match SectionKind::from_code(s.kind) {
                Some(k) if s.version() <= k.version() && reserved == 0 => {
                    let slot = &mut found[k as usize - 1];
                    if slot.is_some() {
                        return Err(Error::DuplicateSection { kind: s.kind });
                    }
                    *slot = Some((s.offset, s.len));
                }
                _ if s.optional() => {}
                None => return Err(Error::UnknownSection { kind: s.kind }),
                Some(k) if reserved != 0 => {
                    return Err(Error::SectionFlags {
                        kind: k as u32,
                        flags: s.flags,
                    })
                }
                Some(k) => {
                    return Err(Error::SectionVersion {
                        kind: k as u32,
                        version: s.version(),
                        supported: k.version(),
                    })
                }
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
        if config_bytes.len() < CONFIG_WORDS * 4 || !config_bytes.len().is_multiple_of(4) {
            return Err(Error::BadConfig {
                field: "section length",
                value: config_bytes.len().min(u32::MAX as usize) as u32,
            });
        }
        let mut words = [0u32; CONFIG_WORDS];
        for (i, w) in words.iter_mut().enumerate() {
            *w = read_u32(config_bytes, 4 * i).unwrap_or(0);
        }
        // Words past the ones this reader knows are a newer writer's
        // fields: 0 means "feature off", anything else is refused.
        let extra = config_bytes.get(CONFIG_WORDS * 4..).unwrap_or(&[]);
        for (i, w) in extra.chunks_exact(4).enumerate() {
            let value = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            if value != 0 {
                return Err(Error::NewerConfig {
                    word: (CONFIG_WORDS + i).min(u32::MAX as usize) as u32,
                    value,
                });
            }
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
            audio: &[],
            labels: Labels::empty(),
            payload_len: payload_range.1 - payload_range.0,
            has_i8: false,
            has_f16: false,
            has_i4: false,
        };
        let (mut has_i8, mut has_f16, mut has_i4) = (false, false, false);
        // Loading stays linear in the table with `std` (a hash set of the
        // names); a device without it compares names pairwise, over a
        // table its own flash bounds.
        #[cfg(feature = "std")]
        let mut names = std::collections::HashMap::with_capacity(count.min(1 << 20) as usize);
        for i in 0..count {
            let entry = model.entry(i);
            let info = parse_tensor_entry(entry, i, payload_range)?;
            #[cfg(feature = "std")]
            let duplicate = names.insert(format::entry_name(entry), i).is_some();
            #[cfg(not(feature = "std"))]
            let duplicate =
                (0..i).any(|j| format::entry_name(model.entry(j)) == format::entry_name(entry));
            if duplicate {
                return Err(Error::DuplicateTensor { tensor: info.name });
            }
            let name = format::entry_name(entry);
            let role = role(&config, name).ok_or(Error::UnknownTensor { tensor: info.name })?;
            let (shape, dtype_ok) = match role {
                Role::Tensor(Kind::Plain, s) => (s, info.dtype == Dtype::F32),
                Role::Tensor(Kind::Table, s) => (s, info.dtype == Dtype::I32),
                Role::Scale(row, block) => (
                    if info.dims == block { block } else { row },
                    info.dtype == Dtype::F32,
                ),
                Role::Tensor(Kind::Matrix, s) => (
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
            let per_row = match role {
                Role::Tensor(Kind::Matrix, _) => info.dtype == Dtype::I8,
                Role::Scale(..) => info.rank == 1,
                _ => true,
            };
            if config.integer && !per_row {
                return Err(Error::NotIntegerReady { tensor: info.name });
            }
            has_i8 |= matches!(info.dtype, Dtype::I8 | Dtype::I4);
            has_i4 |= info.dtype == Dtype::I4;
            has_f16 |= info.dtype == Dtype::F16;
        }
        // Finds a tensor by name from table index `hint` on: in the map with
        // `std`, by scanning (usually a step or two: writers store tensors
        // in order) without.
        let lookup = |name: &[u8], hint: u32| -> Option<(u32, TensorInfo)> {
            #[cfg(feature = "std")]
            {
                let _ = hint;
                let &i = names.get(name)?;
                model.tensor_at(i).map(|t| (i, t))
            }
            #[cfg(not(feature = "std"))]
            model.find(name, hint)
        };
        // Scales belong to i8/i4 matrices, and those have scales (i4: per block).
        for i in 0..count {
            let Some(info) = model.tensor_at(i) else {
                continue;
            };
            let name = format::entry_name(model.entry(i));
            if let Some(base) = name.strip_suffix(b".m") {
                // Offsets belong to i4 matrices only (their shape is checked above).
                match lookup(base, i.saturating_sub(1)).map(|(_, t)| t) {
                    Some(t) if t.dtype == Dtype::I4 => {}
                    _ => return Err(Error::UnknownTensor { tensor: info.name }),
                }
            } else if let Some(base) = name.strip_suffix(b".s") {
                match lookup(base, i.saturating_sub(1)).map(|(_, t)| t) {
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
                // The name with `.s`, cut at 24 bytes as any error's name is.
                let mut scale = NameBuf::bytes(name);
                scale.push(b".s");
                if scale.len == name.len() + 2 && lookup(scale.as_bytes(), i).is_some() {
                    continue;
                }
                return Err(Error::MissingTensor {
                    tensor: TensorName::new(scale.as_bytes()),
                });
            }
        }
        // Every tensor the config uses must be present.
        let props = properties(&config);
        let require = |n: NameBuf, hint: u32| -> Result<u32> {
            match lookup(n.as_bytes(), hint) {
                Some((idx, _)) => Ok(idx),
                None => Err(Error::MissingTensor {
                    tensor: TensorName::new(n.as_bytes()),
                }),
            }
        };
        for spec in GLOBAL_SPECS.iter().filter(|s| s.need & !props == 0) {
            require(NameBuf::global(spec.name), 0)?;
        }
        let mut hint = 0;
        for layer in 0..config.n_layers {
            for spec in LAYER_SPECS.iter().filter(|s| s.need & !props == 0) {
                hint = require(NameBuf::layer(layer, spec.name), hint)?;
            }
        }
        // Without the `vocab` feature the section is not read at all.
        let vocab = match found[SectionKind::Vocab as usize - 1] {
            Some(_) if cfg!(feature = "vocab") => {
                Vocab::parse(section(SectionKind::Vocab)?, config.vocab_size)?
            }
            _ => Vocab::empty(),
        };
        // Without the `audio` feature the section is not read either.
        let audio = match found[SectionKind::Audio as usize - 1] {
            Some(_) if cfg!(feature = "audio") => {
                let bytes = section(SectionKind::Audio)?;
                check_audio(bytes, &config)?;
                bytes
            }
            _ => &[],
        };
        let labels = match found[SectionKind::Labels as usize - 1] {
            Some(_) => Labels::parse(section(SectionKind::Labels)?, config.n_classes)?,
            None => Labels::empty(),
        };
        Ok(Model {
            vocab,
            audio,
            labels,
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

    /// The audio front end, for a model with an audio section
    /// ([`Error::NoAudio`] otherwise, and without the `audio` feature).
    #[cfg(feature = "audio")]
    pub fn audio(&self) -> Result<crate::audio::FrontEnd<'a>> {
        if self.audio.is_empty() {
            return Err(Error::NoAudio);
        }
        crate::audio::FrontEnd::parse(self.audio)
    }

    /// The class names (empty when the file has none).
    pub fn labels(&self) -> &Labels<'a> {
        &self.labels
    }

    /// The bytes of a section the file has (`None` otherwise): for tools
    /// that copy a model's sections into another.
    pub fn section(&self, kind: SectionKind) -> Option<&'a [u8]> {
        let count = format::parse_header(self.bytes).ok()?.section_count as usize;
        (0..count)
            .filter_map(|i| format::section(self.bytes, i))
            .find(|s| s.kind == kind as u32)
            .and_then(|s| {
                self.bytes
                    .get(s.offset as usize..(s.offset + s.len) as usize)
            })
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
            // Integer-only models have int8 matrices alone (checked on load).
            Dtype::F32 | Dtype::F16 | Dtype::I4 if !cfg!(feature = "float") => {
                Err(Error::NotBuilt { feature: "float" })
            }
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
        // The error's name is built only when the scales are missing: this
        // runs for every matrix on every token.
        self.companion(t, b".s", hint).ok_or_else(|| {
            let mut name = NameBuf::bytes(format::entry_name(self.entry(t.index)));
            name.push(b".s");
            Error::MissingTensor {
                tensor: TensorName::new(name.as_bytes()),
            }
        })
    }

    /// The tensor named `<t's name><suffix>`, if present (the name read
    /// from the table: [`TensorInfo::name`] may keep none).
    fn companion(&self, t: &TensorInfo, suffix: &[u8], hint: u32) -> Option<TensorInfo> {
        let base = format::entry_name(self.entry(t.index));
        let mut name = NameBuf::bytes(base);
        name.push(suffix);
        if name.len != base.len() + suffix.len() {
            return None; // too long to name a tensor
        }
        self.find(name.as_bytes(), hint).map(|(_, s)| s)
    }

    /// What the arena plan depends on.
    pub(crate) fn needs(&self) -> crate::arena::Needs<'_> {
        crate::arena::Needs {
            cfg: &self.config,
            i8: self.has_i8,
            i4: self.has_i4,
            f16: self.has_f16,
        }
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
        crate::arena::plan(self.needs(), run).map(|p| p.total_bytes())
    }
}

/// An audio section parses, and its rows are the model's feature rows.
#[cfg(feature = "audio")]
fn check_audio(bytes: &[u8], config: &Config) -> Result<()> {
    let fe = crate::audio::FrontEnd::parse(bytes)?;
    if fe.n_mels != config.input_dim {
        return Err(Error::BadAudio {
            field: "n_mels (the model's input_dim differs)",
            value: fe.n_mels,
        });
    }
    Ok(())
}

#[cfg(not(feature = "audio"))]
fn check_audio(_: &[u8], _: &Config) -> Result<()> {
    Ok(())
}
