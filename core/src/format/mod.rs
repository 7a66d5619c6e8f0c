//! Byte layout of a `.mote` file (documented in `docs/FORMAT.md`), one file
//! per structure as smoltcp's `wire/`: [`header`], [`section`] (the section
//! table and the extension rule), [`tensor`] (tensor-table entries and
//! dtypes). Each names its byte offsets in a `field` module; every read is
//! bounds-checked, so nothing here panics on any input.

pub mod header;
pub mod section;
pub mod tensor;

pub use header::{parse_header, Header, FORMAT_VERSION, MAGIC};
pub use section::{section, Section, SectionKind, SECTION_OPTIONAL, SECTION_VERSION_SHIFT};
pub(crate) use tensor::entry_name;
pub use tensor::{parse_tensor_entry, Dtype, TensorInfo, TENSOR_ENTRY_LEN};

/// A field: a byte range inside a structure.
pub type Field = core::ops::Range<usize>;

/// Size of the fixed header.
pub const HEADER_LEN: usize = 32;
/// Size of one section-table entry.
pub const SECTION_ENTRY_LEN: usize = 24;

/// Alignment of every tensor payload (and of the model bytes in memory).
pub const ALIGN: usize = 16;

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

/// Bounds-checked little-endian reads at byte offset `at` of `bytes`
/// (`None` past the end).
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// [`read_u32`] for a `u16`.
pub(crate) fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// [`read_u32`] for a `u64`.
pub(crate) fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}
