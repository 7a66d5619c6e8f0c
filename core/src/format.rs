//! Byte layout of a `.mote` file (documented in `docs/FORMAT.md`): the
//! header, the section table and tensor-table entries, with bounds-checked
//! little-endian readers. Nothing here panics on any input.

use crate::{Error, Result, TensorName};

/// The first four bytes of every `.mote` file.
pub const MAGIC: [u8; 4] = *b"MOTE";
/// The format version this reader and the host writer speak.
pub const FORMAT_VERSION: u16 = 2;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 32;
/// Size of one section-table entry.
pub const SECTION_ENTRY_LEN: usize = 24;
/// Size of one tensor-table entry.
pub const TENSOR_ENTRY_LEN: usize = 64;
/// Alignment of every tensor payload (and of the model bytes in memory).
pub const ALIGN: usize = 16;
/// Section flag: a reader that does not know this kind may skip it.
pub const SECTION_OPTIONAL: u32 = 1;

/// The CRC used for header and payload: CRC-32/ISO-HDLC (zlib's `crc32`).
/// Hosts use 16 tables (16 KiB, several times faster on big models); the
/// device keeps one 1 KiB table, or none without the `crc-table` feature
/// (bit by bit: 1 KiB less flash, several times slower to open a model).
#[cfg(feature = "std")]
pub const CRC32: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);
/// The CRC used for header and payload: CRC-32/ISO-HDLC (zlib's `crc32`).
#[cfg(all(not(feature = "std"), feature = "crc-table"))]
pub const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
/// The CRC used for header and payload: CRC-32/ISO-HDLC (zlib's `crc32`).
#[cfg(not(any(feature = "std", feature = "crc-table")))]
pub const CRC32: crc::Crc<u32, crc::NoTable> =
    crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);

/// Section kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// Architecture config (24 `u32` words).
    Config = 1,
    /// Tensor table.
    Tensors = 2,
    /// Tokenizer vocabulary.
    Vocab = 3,
    /// Tensor payloads.
    Payload = 4,
}

impl SectionKind {
    /// The kind for a code, if known.
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::Config),
            2 => Some(Self::Tensors),
            3 => Some(Self::Vocab),
            4 => Some(Self::Payload),
            _ => None,
        }
    }
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

/// Bounds-checked little-endian reads. `at` is an offset into `bytes`;
/// errors report offsets relative to the whole file via `base`.
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub(crate) fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

pub(crate) fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// The parsed fixed header.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// Format version.
    pub version: u16,
    /// Entries in the section table.
    pub section_count: u16,
    /// Total file length.
    pub file_len: u64,
    /// CRC-32 of bytes `[table_end, file_len)`.
    pub payload_crc: u32,
    /// CRC-32 of bytes `[0, 28)` followed by the section table.
    pub header_crc: u32,
}

impl Header {
    /// End of the section table (start of the CRC-covered payload).
    pub fn table_end(&self) -> usize {
        HEADER_LEN + SECTION_ENTRY_LEN * self.section_count as usize
    }
}

/// Parses and checks the header: magic, version, length and header CRC.
pub fn parse_header(bytes: &[u8]) -> Result<Header> {
    let got = bytes.len() as u64;
    if bytes.len() < 4 {
        return Err(Error::Truncated {
            needed: HEADER_LEN as u64,
            got,
        });
    }
    if bytes[..4] != MAGIC {
        return Err(Error::BadMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(Error::Truncated {
            needed: HEADER_LEN as u64,
            got,
        });
    }
    let version = read_u16(bytes, 4).ok_or(Error::BadMagic)?;
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion { found: version });
    }
    let h = Header {
        version,
        section_count: read_u16(bytes, 6).unwrap_or(0),
        file_len: read_u64(bytes, 8).unwrap_or(0),
        payload_crc: read_u32(bytes, 16).unwrap_or(0),
        header_crc: read_u32(bytes, 28).unwrap_or(0),
    };
    let table_end = h.table_end();
    if bytes.len() < table_end {
        return Err(Error::Truncated {
            needed: table_end as u64,
            got,
        });
    }
    let mut digest = CRC32.digest();
    digest.update(&bytes[..28]);
    digest.update(&bytes[HEADER_LEN..table_end]);
    let computed = digest.finalize();
    if computed != h.header_crc {
        return Err(Error::HeaderCrc {
            stored: h.header_crc,
            computed,
        });
    }
    if h.file_len < got {
        return Err(Error::LengthMismatch {
            header: h.file_len,
            actual: got,
        });
    }
    if h.file_len > got {
        return Err(Error::Truncated {
            needed: h.file_len,
            got,
        });
    }
    Ok(h)
}

/// One section-table entry.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    /// Kind code.
    pub kind: u32,
    /// Flags ([`SECTION_OPTIONAL`]).
    pub flags: u32,
    /// Absolute offset.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// Reads section entry `i` (the header must already be checked).
pub fn section(bytes: &[u8], i: usize) -> Option<Section> {
    let at = HEADER_LEN + i * SECTION_ENTRY_LEN;
    Some(Section {
        kind: read_u32(bytes, at)?,
        flags: read_u32(bytes, at + 4)?,
        offset: read_u64(bytes, at + 8)?,
        len: read_u64(bytes, at + 16)?,
    })
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
    let raw = &entry[..TensorName::LEN.min(entry.len())];
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
    let code = *entry.get(24).ok_or(bad_entry)?;
    let dtype = Dtype::from_code(code).ok_or(Error::UnknownDtype { tensor: name, code })?;
    let rank = *entry.get(25).ok_or(bad_entry)?;
    if !(1..=4).contains(&rank) {
        return Err(Error::BadTensorShape { tensor: name });
    }
    let mut dims = [0u32; 4];
    for (k, d) in dims.iter_mut().enumerate() {
        let v = read_u32(entry, 28 + 4 * k).ok_or(bad_entry)?;
        if k < rank as usize {
            if v == 0 || v > crate::config::MAX_DIM {
                return Err(Error::BadTensorShape { tensor: name });
            }
            *d = v;
        } else if v != 0 {
            return Err(Error::BadTensorShape { tensor: name });
        }
    }
    let offset = read_u64(entry, 48).ok_or(bad_entry)?;
    let byte_len = read_u64(entry, 56).ok_or(bad_entry)?;
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
