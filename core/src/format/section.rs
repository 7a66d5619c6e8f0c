//! The section table, and the rule by which the format grows.
//!
//! Each entry names a section's kind, flags, offset and length. New
//! features come as new section kinds (or new dtypes, [`super::Dtype`]),
//! never as a new file version: the flags word's high 16 bits are the
//! section's own version ([`SECTION_VERSION_SHIFT`]), so a kind can grow
//! too. A reader meeting a kind it does not know, or a known kind at a
//! version newer than it reads, skips the section when the writer marked it
//! [`SECTION_OPTIONAL`] (the model is correct without it) and refuses the
//! file otherwise ([`crate::Error::UnknownSection`],
//! [`crate::Error::SectionVersion`]), naming what it lacks.

use super::{read_u32, read_u64, HEADER_LEN, SECTION_ENTRY_LEN};

/// Section flag: a reader that does not know this kind (or this version of
/// it) may skip it.
pub const SECTION_OPTIONAL: u32 = 1;
/// The section's own version sits in the flags' bits 16..32.
pub const SECTION_VERSION_SHIFT: u32 = 16;

/// Byte offsets of a section-table entry's fields.
pub mod field {
    use crate::format::Field;
    /// `u32`: the section kind ([`super::SectionKind`] or a newer one).
    pub const KIND: Field = 0..4;
    /// `u32`: bit 0 [`super::SECTION_OPTIONAL`], bits 16..32 the section's version.
    pub const FLAGS: Field = 4..8;
    /// `u64`: absolute offset.
    pub const OFFSET: Field = 8..16;
    /// `u64`: length in bytes.
    pub const LEN: Field = 16..24;
}

/// Section kinds this reader knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// Architecture config (28 `u32` words; see `docs/FORMAT.md`).
    Config = 1,
    /// Tensor table.
    Tensors = 2,
    /// Tokenizer vocabulary.
    Vocab = 3,
    /// Tensor payloads.
    Payload = 4,
    /// The audio front end ([`crate::audio`]); optional: a model without it
    /// takes feature rows.
    Audio = 5,
    /// Class names ([`crate::labels`]); optional: tools print indices
    /// without it.
    Labels = 6,
}

impl SectionKind {
    /// Every kind this reader knows.
    pub const ALL: [SectionKind; 6] = [
        Self::Config,
        Self::Tensors,
        Self::Vocab,
        Self::Payload,
        Self::Audio,
        Self::Labels,
    ];

    /// The kind for a code, if known.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|k| *k as u32 == code)
    }

    /// The newest version of this kind this reader reads (all are 0 today).
    pub fn version(self) -> u16 {
        0
    }
}

/// One section-table entry.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    /// Kind code.
    pub kind: u32,
    /// Flags ([`SECTION_OPTIONAL`]; the section's version in bits 16..32).
    pub flags: u32,
    /// Absolute offset.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Section {
    /// Whether a reader that cannot read this section may skip it.
    pub fn optional(&self) -> bool {
        self.flags & SECTION_OPTIONAL != 0
    }

    /// The section's own version.
    pub fn version(&self) -> u16 {
        (self.flags >> SECTION_VERSION_SHIFT) as u16
    }
}

/// Reads section entry `i` (`None` past the end of `bytes`).
pub fn section(bytes: &[u8], i: usize) -> Option<Section> {
    let at = HEADER_LEN.checked_add(i.checked_mul(SECTION_ENTRY_LEN)?)?;
    let entry = bytes.get(at..at.checked_add(SECTION_ENTRY_LEN)?)?;
    Some(Section {
        kind: read_u32(entry, field::KIND.start)?,
        flags: read_u32(entry, field::FLAGS.start)?,
        offset: read_u64(entry, field::OFFSET.start)?,
        len: read_u64(entry, field::LEN.start)?,
    })
}
