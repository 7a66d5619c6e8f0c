//! Tensor-table entries (64 bytes each) and the element types.

use super::{read_u32, read_u64, ALIGN};
use crate::{Error, Result, TensorName};

/// Size of one tensor-table entry.
pub const TENSOR_ENTRY_LEN: usize = 64;

/// Byte offsets of a tensor-table entry's fields.
pub mod field {
    use crate::format::Field;
    /// `[u8; 24]`: the name, UTF-8, NUL-padded.
    pub const NAME: Field = 0..24;
    /// `u8`: the [`super::Dtype`] code.
    pub const DTYPE: usize = 24;
    /// `u8`: rank, 1..=4.
    pub const RANK: usize = 25;
    /// `u16`: reserved.
    pub const RESERVED: Field = 26..28;
    /// `[u32; 4]`: dimensions, outermost first.
    pub const DIMS: Field = 28..44;
    /// `u32`: reserved.
    pub const RESERVED2: Field = 44..48;
    /// `u64`: absolute offset of the data.
    pub const OFFSET: Field = 48..56;
    /// `u64`: length of the data in bytes.
    pub const BYTE_LEN: Field = 56..64;
}

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Dtype {
    /// IEEE-754 binary32.
    F32 = 0,
    /// IEEE-754 binary16.
    F16 = 1,
    /// Signed 8-bit integer.
    I8 = 2,
    /// Signed 32-bit integer.
    I32 = 3,
    /// Signed 4-bit integer in `[-8, 7]`, two per byte (low nibble first),
    /// each row (innermost dimension) padded to a whole byte.
    I4 = 4,
}

impl Dtype {
    /// The dtype for a code, if known.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::F32),
            1 => Some(Self::F16),
            2 => Some(Self::I8),
            3 => Some(Self::I32),
            4 => Some(Self::I4),
            _ => None,
        }
    }

    /// Bytes per element (int4: 1, as two share a byte; see [`Dtype::byte_len`]).
    pub fn size(self) -> u64 {
        match self {
            Self::F32 | Self::I32 => 4,
            Self::F16 => 2,
            Self::I8 | Self::I4 => 1,
        }
    }

    /// Bytes a tensor of these dimensions takes (`None` on overflow).
    pub fn byte_len(self, dims: &[u32]) -> Option<u64> {
        let (&last, outer) = dims.split_last()?;
        let per_row = match self {
            Self::I4 => (last as u64).div_ceil(2),
            _ => (last as u64).checked_mul(self.size())?,
        };
        outer
            .iter()
            .try_fold(per_row, |acc, &d| acc.checked_mul(d as u64))
    }

    /// Lower-case name (`f32`, `f16`, `i8`, `i32`).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::I8 => "i8",
            Self::I32 => "i32",
            Self::I4 => "i4",
        }
    }
}

/// A validated tensor-table entry.
#[derive(Debug, Clone, Copy)]
pub struct TensorInfo {
    /// Name (reads `?` without the `tensor-names` feature).
    pub name: TensorName,
    /// Index of the tensor's entry in the table.
    pub index: u32,
    /// Element type.
    pub dtype: Dtype,
    /// Number of used dimensions (1..=4).
    pub rank: u8,
    /// Dimensions, outermost first; unused ones are 0.
    pub dims: [u32; 4],
    /// Absolute byte offset of the payload.
    pub offset: u64,
    /// Payload length in bytes.
    pub byte_len: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.dims[..self.rank as usize]
            .iter()
            .map(|&d| d as u64)
            .product()
    }
}

/// Raw name bytes of tensor entry `entry` (64 bytes), trimmed at the first NUL.
pub(crate) fn entry_name(entry: &[u8]) -> &[u8] {
    let raw = entry.get(field::NAME).unwrap_or(entry);
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    &raw[..end]
}

/// Parses tensor entry `index` and checks it against the payload range.
pub fn parse_tensor_entry(entry: &[u8], index: u32, payload: (u64, u64)) -> Result<TensorInfo> {
    let name_bytes = entry_name(entry);
    if name_bytes.is_empty() || core::str::from_utf8(name_bytes).is_err() {
        return Err(Error::BadTensorName { index });
    }
    let name = TensorName::new(name_bytes);
    let bad_entry = Error::Truncated {
        needed: TENSOR_ENTRY_LEN as u64,
        got: entry.len() as u64,
    };
    let code = *entry.get(field::DTYPE).ok_or(bad_entry)?;
    let dtype = Dtype::from_code(code).ok_or(Error::UnknownDtype { tensor: name, code })?;
    let rank = *entry.get(field::RANK).ok_or(bad_entry)?;
    if !(1..=4).contains(&rank) {
        return Err(Error::BadTensorShape { tensor: name });
    }
    let mut dims = [0u32; 4];
    for (k, d) in dims.iter_mut().enumerate() {
        let v = read_u32(entry, field::DIMS.start + 4 * k).ok_or(bad_entry)?;
        if k < rank as usize {
            if v == 0 || v > crate::config::MAX_DIM {
                return Err(Error::BadTensorShape { tensor: name });
            }
            *d = v;
        } else if v != 0 {
            return Err(Error::BadTensorShape { tensor: name });
        }
    }
    let offset = read_u64(entry, field::OFFSET.start).ok_or(bad_entry)?;
    let byte_len = read_u64(entry, field::BYTE_LEN.start).ok_or(bad_entry)?;
    let info = TensorInfo {
        name,
        index,
        dtype,
        rank,
        dims,
        offset,
        byte_len,
    };
    // Each dim is at most 2^20, so four of them overflow u64 only if we multiply
    // blindly: use checked arithmetic anyway.
    let expected = dtype
        .byte_len(&dims[..rank as usize])
        .ok_or(Error::BadTensorShape { tensor: name })?;
    if expected != byte_len {
        return Err(Error::TensorSizeMismatch {
            tensor: name,
            expected,
            got: byte_len,
        });
    }
    let (start, end) = payload;
    let in_range = offset >= start && offset.checked_add(byte_len).is_some_and(|e| e <= end);
    if !in_range {
        return Err(Error::TensorOutOfRange {
            tensor: name,
            offset,
            len: byte_len,
        });
    }
    if offset % ALIGN as u64 != 0 {
        return Err(Error::MisalignedTensor {
            tensor: name,
            offset,
        });
    }
    Ok(info)
}
