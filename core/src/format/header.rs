//! The fixed 32-byte header: magic, format version, section count, file
//! length and the two CRCs.

use super::{read_u16, read_u32, read_u64, CRC32, HEADER_LEN, SECTION_ENTRY_LEN};
use crate::{Error, Result};

/// The first four bytes of every `.mote` file.
pub const MAGIC: [u8; 4] = *b"MOTE";
/// The format version this reader and the host writer speak. It changes
/// only when the header, the section table or the tensor entry changes
/// layout; new features come as new section kinds, section versions or
/// dtypes (`docs/FORMAT.md`, "Growing the format").
pub const FORMAT_VERSION: u16 = 2;

/// Byte offsets of the header's fields.
pub mod field {
    use crate::format::Field;
    /// `[u8; 4]`: [`super::MAGIC`].
    pub const MAGIC: Field = 0..4;
    /// `u16`: the format version.
    pub const VERSION: Field = 4..6;
    /// `u16`: entries in the section table.
    pub const SECTION_COUNT: Field = 6..8;
    /// `u64`: the whole file's length.
    pub const FILE_LEN: Field = 8..16;
    /// `u32`: CRC-32 of `[table_end, file_len)`.
    pub const PAYLOAD_CRC: Field = 16..20;
    /// `u32`: flags, 0.
    pub const FLAGS: Field = 20..24;
    /// `u32`: reserved, 0.
    pub const RESERVED: Field = 24..28;
    /// `u32`: CRC-32 of `[0, 28)` followed by the section table.
    pub const HEADER_CRC: Field = 28..32;
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
    let truncated = Error::Truncated {
        needed: HEADER_LEN as u64,
        got,
    };
    let magic = bytes.get(field::MAGIC).ok_or(truncated)?;
    if magic != MAGIC {
        return Err(Error::BadMagic);
    }
    let header = bytes.get(..HEADER_LEN).ok_or(truncated)?;
    let version = read_u16(header, field::VERSION.start).ok_or(truncated)?;
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion { found: version });
    }
    let h = Header {
        version,
        section_count: read_u16(header, field::SECTION_COUNT.start).ok_or(truncated)?,
        file_len: read_u64(header, field::FILE_LEN.start).ok_or(truncated)?,
        payload_crc: read_u32(header, field::PAYLOAD_CRC.start).ok_or(truncated)?,
        header_crc: read_u32(header, field::HEADER_CRC.start).ok_or(truncated)?,
    };
    let table_end = h.table_end();
    let (Some(crc_covered), Some(table)) = (
        bytes.get(..field::HEADER_CRC.start),
        bytes.get(HEADER_LEN..table_end),
    ) else {
        return Err(Error::Truncated {
            needed: table_end as u64,
            got,
        });
    };
    let mut digest = CRC32.digest();
    digest.update(crc_covered);
    digest.update(table);
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
