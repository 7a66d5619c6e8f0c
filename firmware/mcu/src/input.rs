//! The flash input area: magic `MIDS` (token ids, u32 LE), `MFEA`
//! (feature values, f32 LE) or `MPCM` (16 kHz mono samples, i16 LE), a u32
//! count, then the values — what `cargo xtask firmware flash-image` writes.
//! Every app parses it here.

use mote_core::Input;

/// Most token ids (or feature values) the input area holds.
pub const MAX_VALUES: usize = 256;

/// Why the input area could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputError {
    /// Neither `MIDS` nor `MFEA` at its start.
    NoMagic,
    /// A count past [`MAX_VALUES`] or past the end of the area.
    TooMany,
}

impl InputError {
    /// The message, without `core::fmt`.
    pub fn summary(self) -> &'static str {
        match self {
            InputError::NoMagic => "no input: the input area has no MIDS or MFEA magic",
            InputError::TooMany => "input area: more values than it can hold",
        }
    }
}

/// The storage a parsed input borrows.
pub struct Buffers {
    ids: [u32; MAX_VALUES],
    feats: [f32; MAX_VALUES],
}

impl Buffers {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        Buffers { ids: [0; MAX_VALUES], feats: [0.0; MAX_VALUES] }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Buffers::new()
    }
}

/// Reads the input area `area` into `buf`: token ids or feature values.
pub fn parse<'b>(area: &[u8], buf: &'b mut Buffers) -> Result<Input<'b>, InputError> {
    let magic = area.get(..4);
    let features = magic == Some(b"MFEA".as_slice());
    if !features && magic != Some(b"MIDS".as_slice()) {
        return Err(InputError::NoMagic);
    }
    let word = |i: usize| {
        area.get(4 * i..4 * i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let n = word(1).unwrap_or(0) as usize;
    if n > MAX_VALUES || 4 * (2 + n) > area.len() {
        return Err(InputError::TooMany);
    }
    for (i, id) in buf.ids.iter_mut().enumerate().take(n) {
        *id = word(2 + i).unwrap_or(0);
    }
    if features {
        for (f, id) in buf.feats.iter_mut().zip(buf.ids.iter()).take(n) {
            *f = f32::from_bits(*id);
        }
        return Ok(Input::Features(buf.feats.get(..n).unwrap_or(&[])));
    }
    Ok(Input::Ids(buf.ids.get(..n).unwrap_or(&[])))
}

/// The samples of an `MPCM` input area (i16 LE, read in place), or `None`
/// for another kind. A count past the area is [`InputError::TooMany`].
pub fn pcm(area: &[u8]) -> Option<Result<&[u8], InputError>> {
    if area.get(..4) != Some(b"MPCM".as_slice()) {
        return None;
    }
    let n = area
        .get(4..8)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])) as usize;
    Some(
        n.checked_mul(2)
            .and_then(|len| area.get(8..8 + len))
            .ok_or(InputError::TooMany),
    )
}
