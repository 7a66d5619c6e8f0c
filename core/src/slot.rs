//! A/B model slots in flash: safe model updates on a device.
//!
//! A slot is a fixed flash region holding a 16-byte slot header and then a
//! `.mote` model (16-byte aligned, as the model needs):
//!
//! | offset | type | field |
//! |---|---|---|
//! | 0 | `[u8; 4]` | magic `MSLT` |
//! | 4 | u32 LE | sequence number: higher = newer |
//! | 8 | u32 LE | model length in bytes |
//! | 12 | u32 LE | CRC-32 of bytes `[0, 12)` |
//!
//! [`choose`] opens both slots (slot header, then the whole model with its
//! own magic, version and CRCs through [`Model::from_bytes`]) and returns the
//! newest valid one, with the reason the other was passed over. An updater
//! writes the new model into the older slot with a higher sequence number; a
//! write cut short or a flipped bit leaves that slot invalid, and the device
//! keeps running the previous model.

use crate::format::CRC32;
use crate::{Error, Model, Result};

/// Bytes before the model in a slot.
pub const SLOT_HEADER_LEN: usize = 16;
/// First four bytes of a written slot.
pub const SLOT_MAGIC: [u8; 4] = *b"MSLT";

/// Which slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SlotId {
    /// The first slot.
    A,
    /// The second slot.
    B,
}

impl SlotId {
    /// `"A"` or `"B"`.
    pub fn name(self) -> &'static str {
        match self {
            SlotId::A => "A",
            SlotId::B => "B",
        }
    }
}

/// The 16-byte header for a model of `len` bytes with sequence number `seq`.
pub fn slot_header(seq: u32, len: u32) -> [u8; SLOT_HEADER_LEN] {
    let mut h = [0u8; SLOT_HEADER_LEN];
    h[..4].copy_from_slice(&SLOT_MAGIC);
    h[4..8].copy_from_slice(&seq.to_le_bytes());
    h[8..12].copy_from_slice(&len.to_le_bytes());
    let crc = CRC32.checksum(&h[..12]);
    h[12..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Opens one slot region: returns its sequence number and model.
pub fn open(region: &[u8]) -> Result<(u32, Model<'_>)> {
    let header = region.get(..SLOT_HEADER_LEN).ok_or(Error::Truncated {
        needed: SLOT_HEADER_LEN as u64,
        got: region.len() as u64,
    })?;
    if header[..4] != SLOT_MAGIC {
        return Err(Error::EmptySlot);
    }
    let word = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&header[at..at + 4]);
        u32::from_le_bytes(b)
    };
    let (seq, len, stored) = (word(4), word(8), word(12));
    let computed = CRC32.checksum(&header[..12]);
    if computed != stored {
        return Err(Error::SlotHeaderCrc { stored, computed });
    }
    let end = SLOT_HEADER_LEN as u64 + len as u64;
    let model = region
        .get(SLOT_HEADER_LEN..)
        .and_then(|r| r.get(..len as usize))
        .ok_or(Error::Truncated {
            needed: end,
            got: region.len() as u64,
        })?;
    Ok((seq, Model::from_bytes(model)?))
}

/// The outcome of [`choose`].
#[derive(Debug, Clone, Copy)]
pub struct Choice<'a> {
    /// The slot to run, its sequence number and model; `None` when neither is valid.
    pub chosen: Option<(SlotId, u32, Model<'a>)>,
    /// Slot A's error, if it is invalid.
    pub a_error: Option<Error>,
    /// Slot B's error, if it is invalid.
    pub b_error: Option<Error>,
}

/// Opens both slots and picks the valid one with the higher sequence number
/// (A on a tie).
pub fn choose<'a>(a: &'a [u8], b: &'a [u8]) -> Choice<'a> {
    let (ra, rb) = (open(a), open(b));
    let chosen = match (&ra, &rb) {
        (Ok((sa, ma)), Ok((sb, mb))) => Some(if sb > sa {
            (SlotId::B, *sb, *mb)
        } else {
            (SlotId::A, *sa, *ma)
        }),
        (Ok((s, m)), Err(_)) => Some((SlotId::A, *s, *m)),
        (Err(_), Ok((s, m))) => Some((SlotId::B, *s, *m)),
        (Err(_), Err(_)) => None,
    };
    Choice {
        chosen,
        a_error: ra.err(),
        b_error: rb.err(),
    }
}
