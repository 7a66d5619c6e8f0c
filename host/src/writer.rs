//! The `.mote` writer (the inverse of `mote_core::Model::from_bytes`) and an
//! aligned in-memory image for reading models back.

use anyhow::{bail, Context, Result};
use mote_core::config::Config;
use mote_core::format::{
    Dtype, SectionKind, ALIGN, CRC32, FORMAT_VERSION, HEADER_LEN, MAGIC, SECTION_ENTRY_LEN,
    TENSOR_ENTRY_LEN,
};
use mote_core::vocab::{PreTokenizer, TokenizerKind, VOCAB_HEADER_LEN};
use mote_core::TensorName;
use std::path::Path;

/// A tokenizer vocabulary to store in a model.
#[derive(Debug, Clone)]
pub struct VocabData {
    /// Tokenizer algorithm.
    pub kind: TokenizerKind,
    /// `mote_core::vocab::FLAG_*` bits.
    pub flags: u32,
    /// Pre-tokenizer.
    pub pre_tokenizer: PreTokenizer,
    /// Token texts and kinds (`mote_core::vocab::kind`), in id order.
    pub tokens: Vec<(Vec<u8>, u8)>,
    /// BPE merges as pairs of token ids, by rank.
    pub merges: Vec<(u32, u32)>,
    /// Unknown token id or `u32::MAX`.
    pub unk_id: u32,
    /// Chat template (Jinja), empty if none.
    pub chat_template: String,
}

impl VocabData {
    /// The vocabulary section's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let n = self.tokens.len() as u32;
        for w in [
            self.kind as u32,
            self.flags,
            self.pre_tokenizer as u32,
            n,
            self.merges.len() as u32,
            self.unk_id,
            self.chat_template.len() as u32,
            0,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        debug_assert_eq!(out.len(), VOCAB_HEADER_LEN);
        if n > 0 {
            let mut off = 0u32;
            out.extend_from_slice(&off.to_le_bytes());
            for (t, _) in &self.tokens {
                off += t.len() as u32;
                out.extend_from_slice(&off.to_le_bytes());
            }
        }
        for (_, k) in &self.tokens {
            out.push(*k);
        }
        while out.len() % 4 != 0 {
            out.push(0);
        }
        for (a, b) in &self.merges {
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
        }
        out.extend_from_slice(self.chat_template.as_bytes());
        for (t, _) in &self.tokens {
            out.extend_from_slice(t);
        }
        out
    }
}

struct TensorEntry {
    name: String,
    dtype: Dtype,
    dims: Vec<u32>,
    data: Vec<u8>,
}

/// Collects a config, tensors and a vocabulary and lays them out as a `.mote` file.
pub struct ModelBuilder {
    config: Config,
    tensors: Vec<TensorEntry>,
    /// The names so far (adding stays linear in the number of tensors).
    names: std::collections::HashSet<String>,
    vocab: Option<VocabData>,
}

fn align_up(v: usize, a: usize) -> usize {
    v.div_ceil(a) * a
}

impl ModelBuilder {
    /// A builder for a model with this config.
    pub fn new(config: Config) -> Self {
        ModelBuilder {
            config,
            tensors: Vec::new(),
            names: std::collections::HashSet::new(),
            vocab: None,
        }
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The config, to change (e.g. the attention cache's storage).
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// Adds an `f32` tensor with dimensions outermost first.
    pub fn add_f32(&mut self, name: &str, dims: &[u32], data: &[f32]) -> Result<()> {
        let elems: u64 = dims.iter().map(|&d| d as u64).product();
        if elems != data.len() as u64 {
            bail!(
                "tensor {name}: shape {dims:?} needs {elems} values, got {}",
                data.len()
            );
        }
        self.add_raw(name, Dtype::F32, dims, bytemuck::cast_slice(data).to_vec())
    }

    /// Adds a tensor from raw little-endian bytes.
    pub fn add_raw(&mut self, name: &str, dtype: Dtype, dims: &[u32], data: Vec<u8>) -> Result<()> {
        if name.is_empty() || name.len() > TensorName::LEN {
            bail!("tensor name {name:?} must be 1..={} bytes", TensorName::LEN);
        }
        if dims.is_empty() || dims.len() > 4 {
            bail!("tensor {name}: rank {} is not 1..=4", dims.len());
        }
        if !self.names.insert(name.to_string()) {
            bail!("tensor {name} added twice");
        }
        self.tensors.push(TensorEntry {
            name: name.to_string(),
            dtype,
            dims: dims.to_vec(),
            data,
        });
        Ok(())
    }

    /// Sets the vocabulary.
    pub fn set_vocab(&mut self, vocab: VocabData) {
        self.vocab = Some(vocab);
    }

    /// The file image.
    pub fn to_bytes(&self) -> Vec<u8> {
        let config: Vec<u8> = self
            .config
            .to_words()
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let vocab = self.vocab.as_ref().map(VocabData::to_bytes);
        let n_sections = if vocab.is_some() { 4 } else { 3 };
        let table_end = HEADER_LEN + SECTION_ENTRY_LEN * n_sections;
        let config_at = table_end;
        let tensors_at = config_at + config.len();
        let tensors_len = 8 + TENSOR_ENTRY_LEN * self.tensors.len();
        let vocab_at = tensors_at + tensors_len;
        let vocab_len = vocab.as_ref().map_or(0, Vec::len);
        let payload_at = align_up(vocab_at + vocab_len, ALIGN);
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut at = payload_at;
        for t in &self.tensors {
            offsets.push(at);
            at = align_up(at + t.data.len(), ALIGN);
        }
        let file_len = at;
        let mut out = vec![0u8; file_len];
        out[..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&(n_sections as u16).to_le_bytes());
        out[8..16].copy_from_slice(&(file_len as u64).to_le_bytes());
        let mut sections = vec![
            (SectionKind::Config, config_at, config.len()),
            (SectionKind::Tensors, tensors_at, tensors_len),
            (SectionKind::Payload, payload_at, file_len - payload_at),
        ];
        if vocab.is_some() {
            sections.push((SectionKind::Vocab, vocab_at, vocab_len));
        }
        for (i, (kind, off, len)) in sections.iter().enumerate() {
            let e = HEADER_LEN + i * SECTION_ENTRY_LEN;
            out[e..e + 4].copy_from_slice(&(*kind as u32).to_le_bytes());
            out[e + 8..e + 16].copy_from_slice(&(*off as u64).to_le_bytes());
            out[e + 16..e + 24].copy_from_slice(&(*len as u64).to_le_bytes());
        }
        out[config_at..config_at + config.len()].copy_from_slice(&config);
        out[tensors_at..tensors_at + 4].copy_from_slice(&(self.tensors.len() as u32).to_le_bytes());
        for (i, (t, off)) in self.tensors.iter().zip(&offsets).enumerate() {
            let e = tensors_at + 8 + i * TENSOR_ENTRY_LEN;
            out[e..e + t.name.len()].copy_from_slice(t.name.as_bytes());
            out[e + 24] = t.dtype as u8;
            out[e + 25] = t.dims.len() as u8;
            for (k, d) in t.dims.iter().enumerate() {
                out[e + 28 + 4 * k..e + 32 + 4 * k].copy_from_slice(&d.to_le_bytes());
            }
            out[e + 48..e + 56].copy_from_slice(&(*off as u64).to_le_bytes());
            out[e + 56..e + 64].copy_from_slice(&(t.data.len() as u64).to_le_bytes());
            out[*off..*off + t.data.len()].copy_from_slice(&t.data);
        }
        if let Some(v) = &vocab {
            out[vocab_at..vocab_at + v.len()].copy_from_slice(v);
        }
        seal(&mut out);
        out
    }

    /// Writes the file atomically: a temporary file beside `path`, then a rename.
    pub fn write(&self, path: &Path) -> Result<u64> {
        let file = ModelFile::from_vec(self.to_bytes());
        mote_core::Model::from_bytes(file.bytes()).map_err(|e| {
            anyhow::anyhow!("the writer produced a model its own reader rejects: {e}")
        })?;
        write_atomic(path, file.bytes())?;
        Ok(file.bytes().len() as u64)
    }
}

/// Recomputes the payload and header CRCs of a file image in place (after
/// the writer, or after a deliberate edit in a test).
pub fn seal(out: &mut [u8]) {
    let n_sections = u16::from_le_bytes([out[6], out[7]]) as usize;
    let table_end = (HEADER_LEN + SECTION_ENTRY_LEN * n_sections).min(out.len());
    let payload_crc = CRC32.checksum(&out[table_end..]);
    out[16..20].copy_from_slice(&payload_crc.to_le_bytes());
    let mut d = CRC32.digest();
    d.update(&out[..28]);
    d.update(&out[HEADER_LEN..table_end]);
    let header_crc = d.finalize();
    out[28..32].copy_from_slice(&header_crc.to_le_bytes());
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// failure never leaves a half-written file at `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().context("output path has no file name")?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// A model image in memory, 16-byte aligned as `Model::from_bytes` requires.
pub struct ModelFile {
    buf: Vec<u128>,
    len: usize,
}

impl ModelFile {
    /// Copies bytes into an aligned buffer.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        let mut buf = vec![0u128; bytes.len().div_ceil(16)];
        bytemuck::cast_slice_mut::<u128, u8>(&mut buf)[..bytes.len()].copy_from_slice(&bytes);
        ModelFile {
            buf,
            len: bytes.len(),
        }
    }

    /// Reads a model file.
    pub fn read(path: &Path) -> Result<Self> {
        if path.is_dir() {
            bail!("{} is a directory, not a .mote model", path.display());
        }
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self::from_vec(bytes))
    }

    /// The file bytes.
    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<u128, u8>(&self.buf)[..self.len]
    }

    /// The file bytes, mutable (for tests that corrupt them).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<u128, u8>(&mut self.buf)[..self.len]
    }
}
