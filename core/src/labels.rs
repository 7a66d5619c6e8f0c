//! The labels section: a classifier's class names, read in place, so every
//! tool (and a device printing a detection) names a class without being
//! told the names.
//!
//! Layout (little-endian, offsets from the section's start): `u32 count`
//! (the config's `n_classes`), `u32` reserved 0, `count + 1` `u32`
//! offsets into the blob (the first 0, non-decreasing, the last the blob's
//! length), then the blob: each name UTF-8, 1 to [`MAX_LABEL`] bytes, no
//! control characters. A malformed byte is [`Error::BadLabels`] with its
//! offset.

use crate::format::read_u32;
use crate::{Error, Result};

/// Longest class name, in bytes.
pub const MAX_LABEL: usize = 64;

/// Class names, borrowed from the model bytes.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    count: u32,
    offsets: &'a [u8],
    blob: &'a [u8],
}

impl<'a> Labels<'a> {
    /// No names.
    pub const fn empty() -> Self {
        Labels {
            count: 0,
            offsets: &[],
            blob: &[],
        }
    }

    /// Parses and checks a labels section for a model of `n_classes` classes.
    pub fn parse(bytes: &'a [u8], n_classes: u32) -> Result<Self> {
        let bad = |offset: usize| Error::BadLabels {
            offset: offset.min(u32::MAX as usize) as u32,
        };
        let count = read_u32(bytes, 0).ok_or(bad(0))?;
        if count != n_classes || count == 0 {
            return Err(bad(0));
        }
        if read_u32(bytes, 4) != Some(0) {
            return Err(bad(4));
        }
        let table_end = (count as usize + 1)
            .checked_mul(4)
            .and_then(|n| n.checked_add(8))
            .filter(|&e| e <= bytes.len())
            .ok_or(bad(bytes.len()))?;
        let offsets = bytes.get(8..table_end).unwrap_or(&[]);
        let blob = bytes.get(table_end..).unwrap_or(&[]);
        let labels = Labels {
            count,
            offsets,
            blob,
        };
        let mut prev = 0usize;
        for i in 0..=count as usize {
            let at = read_u32(offsets, 4 * i).unwrap_or(u32::MAX) as usize;
            let ok = if i == 0 {
                at == 0
            } else if i == count as usize {
                at == blob.len() && at > prev
            } else {
                at > prev && at - prev <= MAX_LABEL
            };
            if !ok || at - prev > MAX_LABEL {
                return Err(bad(8 + 4 * i));
            }
            if i > 0 {
                let name = blob.get(prev..at).unwrap_or(&[]);
                match core::str::from_utf8(name) {
                    Ok(s) if !s.chars().any(char::is_control) => {}
                    _ => return Err(bad(table_end + prev)),
                }
            }
            prev = at;
        }
        Ok(labels)
    }

    /// Number of names (0 without a section).
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True without names.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Class `i`'s name.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        if i >= self.count as usize {
            return None;
        }
        let from = read_u32(self.offsets, 4 * i)? as usize;
        let to = read_u32(self.offsets, 4 * i + 4)? as usize;
        core::str::from_utf8(self.blob.get(from..to)?).ok()
    }
}
