//! The GGUF (v2/v3) container: metadata, tensor infos, and dequantisation
//! of F32, F16, Q4_0, Q4_1 and Q8_0 tensors to `f32`. What the metadata and
//! tensors mean for one architecture is its mapping's business
//! ([`super::llama`]).

use anyhow::{bail, ensure, Context, Result};
use half::f16;
use std::collections::{BTreeMap, HashMap};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any unsigned integer.
    U64(u64),
    /// Any signed integer.
    I64(i64),
    /// f32 or f64.
    F64(f64),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string.
    Str(String),
    /// Array of values.
    Array(Vec<Value>),
}

impl Value {
    /// As an unsigned integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U64(v) => Some(v),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    /// As a float.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F64(v) => Some(v),
            Value::U64(v) => Some(v as f64),
            Value::I64(v) => Some(v as f64),
            _ => None,
        }
    }
    /// As a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// As an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// Short enough for an error message: numbers whole, strings cut, arrays counted.
impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Str(s) if s.chars().count() > 40 => {
                write!(f, "{:?}…", s.chars().take(40).collect::<String>())
            }
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Array(v) => write!(f, "an array of {} values", v.len()),
        }
    }
}

/// One tensor's description.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// GGUF tensor name.
    pub name: String,
    /// Dimensions as GGUF stores them: `ne0` (contiguous) first.
    pub ne: Vec<u64>,
    /// GGML type code.
    pub ggml_type: u32,
    /// Offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Element count (`u64::MAX` when the product overflows; [`Gguf::parse`]
    /// refuses such tensors).
    pub fn elements(&self) -> u64 {
        self.ne
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .unwrap_or(u64::MAX)
    }
    /// Dimensions outermost first (Mote's order).
    pub fn dims(&self) -> Vec<u32> {
        self.ne.iter().rev().map(|&d| d as u32).collect()
    }
}

/// A parsed GGUF file held in memory.
pub struct Gguf {
    /// Metadata key/values.
    pub meta: BTreeMap<String, Value>,
    /// Tensors in file order.
    pub tensors: Vec<TensorInfo>,
    /// Tensor index by name (names are unique: a file naming one twice is refused).
    index: HashMap<String, usize>,
    data: Vec<u8>,
    data_start: usize,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.at.checked_add(n).context("GGUF length overflow")?;
        let s = self
            .b
            .get(self.at..end)
            .with_context(|| format!("GGUF truncated at byte {}", self.at))?;
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u64()?;
        ensure!(n < 1 << 30, "GGUF string length {n} is implausible");
        Ok(String::from_utf8(self.take(n as usize)?.to_vec())?)
    }
    fn value(&mut self, ty: u32, depth: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U64(self.take(1)?[0] as u64),
            1 => Value::I64(self.take(1)?[0] as i8 as i64),
            2 => Value::U64(u16::from_le_bytes(self.take(2)?.try_into()?) as u64),
            3 => Value::I64(i16::from_le_bytes(self.take(2)?.try_into()?) as i64),
            4 => Value::U64(self.u32()? as u64),
            5 => Value::I64(self.u32()? as i32 as i64),
            6 => Value::F64(f32::from_le_bytes(self.take(4)?.try_into()?) as f64),
            7 => Value::Bool(self.take(1)?[0] != 0),
            8 => Value::Str(self.string()?),
            9 => {
                ensure!(depth < 4, "GGUF arrays nested too deep");
                let elem = self.u32()?;
                let n = self.u64()?;
                ensure!(
                    n <= (self.b.len() - self.at) as u64,
                    "GGUF array of {n} elements overruns the file"
                );
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(self.value(elem, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(self.u64()? as i64),
            12 => Value::F64(f64::from_le_bytes(self.take(8)?.try_into()?)),
            t => bail!("unknown GGUF value type {t}"),
        })
    }
}

/// GGML type codes this reader dequantises.
pub mod ggml {
    /// f32.
    pub const F32: u32 = 0;
    /// f16.
    pub const F16: u32 = 1;
    /// 4-bit, one f16 scale per 32.
    pub const Q4_0: u32 = 2;
    /// 4-bit, f16 scale and minimum per 32.
    pub const Q4_1: u32 = 3;
    /// 8-bit, one f16 scale per 32.
    pub const Q8_0: u32 = 8;
}

/// Bytes per block and elements per block of a GGML type.
fn block_layout(ty: u32) -> Result<(usize, usize)> {
    Ok(match ty {
        ggml::F32 => (4, 1),
        ggml::F16 => (2, 1),
        ggml::Q4_0 => (18, 32),
        ggml::Q4_1 => (20, 32),
        ggml::Q8_0 => (34, 32),
        t => bail!("GGML tensor type {t} is not supported (F32, F16, Q4_0, Q4_1, Q8_0 are)"),
    })
}

fn half_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

impl Gguf {
    /// Parses a GGUF file.
    pub fn parse(data: Vec<u8>) -> Result<Self> {
        let mut r = Reader { b: &data, at: 0 };
        ensure!(r.take(4)? == b"GGUF", "not a GGUF file (bad magic)");
        let version = r.u32()?;
        ensure!(
            version == 2 || version == 3,
            "GGUF version {version} is not supported (2 and 3 are)"
        );
        let n_tensors = r.u64()?;
        let n_kv = r.u64()?;
        ensure!(
            n_tensors < 1 << 20 && n_kv < 1 << 20,
            "GGUF counts are implausible"
        );
        let mut meta = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let ty = r.u32()?;
            let v = r.value(ty, 0).with_context(|| format!("GGUF key {key}"))?;
            meta.insert(key, v);
        }
        let mut tensors = Vec::new();
        for _ in 0..n_tensors {
            let name = r.string()?;
            let nd = r.u32()?;
            ensure!((1..=4).contains(&nd), "GGUF tensor {name} has {nd} dims");
            let ne = (0..nd).map(|_| r.u64()).collect::<Result<Vec<_>>>()?;
            // Mote's dimensions are u32, and the element count must be a u64.
            ensure!(
                ne.iter().all(|&d| d <= u32::MAX as u64)
                    && ne.iter().try_fold(1u64, |n, &d| n.checked_mul(d)).is_some(),
                "GGUF tensor {name} has dimensions {ne:?}: too large"
            );
            let ggml_type = r.u32()?;
            let offset = r.u64()?;
            tensors.push(TensorInfo {
                name,
                ne,
                ggml_type,
                offset,
            });
        }
        let mut index = HashMap::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            ensure!(
                index.insert(t.name.clone(), i).is_none(),
                "GGUF tensor {} is named twice",
                t.name
            );
        }
        let mut g = Gguf {
            meta,
            tensors,
            index,
            data: Vec::new(),
            data_start: 0,
        };
        let align = g.opt_u32("general.alignment")?.unwrap_or(32) as usize;
        ensure!(
            align.is_power_of_two(),
            "GGUF alignment {align} is not a power of two"
        );
        g.data_start = r.at.div_ceil(align) * align;
        g.data = data;
        for t in &g.tensors {
            g.tensor_bytes(t)?;
        }
        Ok(g)
    }

    /// Reads and parses a GGUF file.
    pub fn read(path: &std::path::Path) -> Result<Self> {
        Self::parse(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.meta.get(key)
    }

    /// A required unsigned metadata value.
    pub fn u64(&self, key: &str) -> Result<u64> {
        match self.get(key) {
            None => bail!("GGUF metadata {key} missing"),
            Some(v) => v
                .as_u64()
                .with_context(|| format!("GGUF metadata {key} = {v} is not an unsigned integer")),
        }
    }

    /// A required metadata value that must fit a `u32` (a dimension, a
    /// count, a token id): one above `u32::MAX` is refused with its key and
    /// value, never truncated.
    pub fn u32(&self, key: &str) -> Result<u32> {
        let v = self.u64(key)?;
        u32::try_from(v)
            .map_err(|_| anyhow::anyhow!("GGUF metadata {key} = {v} is larger than {}", u32::MAX))
    }

    /// [`Gguf::u32`] of a key that may be absent.
    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.u32(key).map(Some),
        }
    }

    /// A number that may be absent (an error when present and not a number).
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .with_context(|| format!("GGUF metadata {key} = {v} is not a number")),
        }
    }

    /// A string that may be absent (an error when present and not a string).
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .with_context(|| format!("GGUF metadata {key} = {v} is not a string")),
        }
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).and_then(|&i| self.tensors.get(i))
    }

    fn tensor_bytes(&self, t: &TensorInfo) -> Result<&[u8]> {
        let (bytes, per) = block_layout(t.ggml_type)?;
        let n = t.elements();
        ensure!(
            n.is_multiple_of(per as u64),
            "tensor {}: {n} elements is not a whole number of blocks",
            t.name
        );
        let len = (n / per as u64) * bytes as u64;
        let start = (self.data_start as u64)
            .checked_add(t.offset)
            .context("offset overflow")?;
        let end = start.checked_add(len).context("length overflow")?;
        self.data
            .get(start as usize..end as usize)
            .with_context(|| format!("tensor {} at {start}..{end} lies outside the file", t.name))
    }

    /// Dequantises a tensor to `f32`, elements in storage order.
    pub fn dequantize(&self, t: &TensorInfo) -> Result<Vec<f32>> {
        let b = self.tensor_bytes(t)?;
        let mut out = Vec::with_capacity(t.elements() as usize);
        match t.ggml_type {
            ggml::F32 => out.extend(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
            ggml::F16 => out.extend(
                b.chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()),
            ),
            ggml::Q4_0 => {
                for blk in b.chunks_exact(18) {
                    let d = half_at(blk, 0);
                    let qs = &blk[2..18];
                    out.extend(qs.iter().map(|q| ((q & 0x0f) as i32 - 8) as f32 * d));
                    out.extend(qs.iter().map(|q| ((q >> 4) as i32 - 8) as f32 * d));
                }
            }
            ggml::Q4_1 => {
                for blk in b.chunks_exact(20) {
                    let (d, m) = (half_at(blk, 0), half_at(blk, 2));
                    let qs = &blk[4..20];
                    out.extend(qs.iter().map(|q| (q & 0x0f) as f32 * d + m));
                    out.extend(qs.iter().map(|q| (q >> 4) as f32 * d + m));
                }
            }
            ggml::Q8_0 => {
                for blk in b.chunks_exact(34) {
                    let d = half_at(blk, 0);
                    out.extend(blk[2..34].iter().map(|&q| q as i8 as f32 * d));
                }
            }
            ty => bail!("GGML type {ty} not supported"),
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::{Gguf, Value};

    /// A GGUF file with these metadata values (u64, type 10) and no tensors.
    fn with_u64s(kv: &[(&str, u64)]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(b"GGUF");
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes());
        f.extend_from_slice(&(kv.len() as u64).to_le_bytes());
        for (k, v) in kv {
            f.extend_from_slice(&(k.len() as u64).to_le_bytes());
            f.extend_from_slice(k.as_bytes());
            f.extend_from_slice(&10u32.to_le_bytes());
            f.extend_from_slice(&v.to_le_bytes());
        }
        f
    }

    /// A u64 above `u32::MAX` is refused with its key and value, never
    /// truncated (2^32 + 5 used to read as 5).
    #[test]
    fn metadata_above_u32_is_refused_with_key_and_value() {
        let big = (1u64 << 32) + 5;
        let g =
            Gguf::parse(with_u64s(&[("llama.context_length", big), ("ok", 7)])).expect("parses");
        let err = g.u32("llama.context_length").expect_err("refused");
        assert_eq!(
            err.to_string(),
            format!("GGUF metadata llama.context_length = {big} is larger than 4294967295")
        );
        assert!(g.opt_u32("llama.context_length").is_err());
        assert_eq!(g.u32("ok").ok(), Some(7));
        assert_eq!(g.opt_u32("absent").ok(), Some(None));
        // The alignment is a u32 too.
        let err = Gguf::parse(with_u64s(&[("general.alignment", big)]))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("general.alignment"), "{err}");
    }

    /// Two tensors with one name: which one a lookup finds would be chance.
    #[test]
    fn a_tensor_named_twice_is_refused() {
        let mut f = Vec::new();
        f.extend_from_slice(b"GGUF");
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&2u64.to_le_bytes()); // tensors
        f.extend_from_slice(&0u64.to_le_bytes()); // metadata
        for offset in [0u64, 32] {
            f.extend_from_slice(&1u64.to_le_bytes());
            f.push(b't');
            f.extend_from_slice(&1u32.to_le_bytes()); // dims
            f.extend_from_slice(&1u64.to_le_bytes());
            f.extend_from_slice(&0u32.to_le_bytes()); // f32
            f.extend_from_slice(&offset.to_le_bytes());
        }
        f.resize(f.len().div_ceil(32) * 32 + 64, 0);
        let err = Gguf::parse(f).err().expect("refused");
        assert_eq!(err.to_string(), "GGUF tensor t is named twice");
    }

    #[test]
    fn long_values_are_shown_short_in_errors() {
        let s = Value::Str("x".repeat(1000)).to_string();
        assert!(s.len() < 50, "{s}");
        assert_eq!(
            Value::Array(vec![Value::Bool(true); 3]).to_string(),
            "an array of 3 values"
        );
    }

    /// Found by the fuzz target `gguf` built with overflow checks: one
    /// tensor whose dimensions multiply past `u64`. It must be refused, not
    /// wrap (in release) or panic (with overflow checks).
    #[test]
    fn dimensions_that_overflow_are_refused() {
        let mut f = Vec::new();
        f.extend_from_slice(b"GGUF");
        f.extend_from_slice(&3u32.to_le_bytes()); // version
        f.extend_from_slice(&1u64.to_le_bytes()); // tensors
        f.extend_from_slice(&0u64.to_le_bytes()); // metadata
        f.extend_from_slice(&1u64.to_le_bytes()); // name length
        f.push(b't');
        f.extend_from_slice(&3u32.to_le_bytes()); // dims
        for d in [1u64 << 30, 1 << 30, 1 << 30] {
            f.extend_from_slice(&d.to_le_bytes());
        }
        f.extend_from_slice(&0u32.to_le_bytes()); // f32
        f.extend_from_slice(&0u64.to_le_bytes()); // offset
        let err = Gguf::parse(f.clone()).err().expect("refused");
        assert!(format!("{err:#}").contains("too large"), "{err:#}");
        // One dimension beyond u32 is refused as well.
        let at = f.len() - 12 - 24;
        f[at..at + 8].copy_from_slice(&(1u64 << 33).to_le_bytes());
        f[at + 8..at + 16].copy_from_slice(&1u64.to_le_bytes());
        f[at + 16..at + 24].copy_from_slice(&1u64.to_le_bytes());
        let err = Gguf::parse(f).err().expect("refused");
        assert!(format!("{err:#}").contains("too large"), "{err:#}");
    }
}
