//! The tokenizer vocabulary section, read in place: token strings, token
//! kinds, BPE merges (as id pairs) and the chat template.
//!
//! Layout (all little-endian, see `docs/FORMAT.md`):
//! ```text
//! 32-byte header: kind, flags, pre_tokenizer, n_tokens, n_merges, unk_id, template_len, reserved
//! offsets: (n_tokens + 1) × u32, into the string blob, non-decreasing
//! kinds:   n_tokens × u8, zero-padded to a multiple of 4
//! merges:  n_merges × (u32 left, u32 right)
//! template: template_len bytes (UTF-8)
//! blob:    offsets[n_tokens] bytes of token text
//! ```

use crate::config::NO_TOKEN;
use crate::format::read_u32;
use crate::{Error, Result};

/// Size of the vocabulary header.
pub const VOCAB_HEADER_LEN: usize = 32;
/// Flag: lower-case text before splitting (BERT uncased).
pub const FLAG_LOWERCASE: u32 = 1;
/// Flag: strip accents before splitting (BERT uncased).
pub const FLAG_STRIP_ACCENTS: u32 = 2;

/// Token kind codes.
pub mod kind {
    /// An ordinary token.
    pub const NORMAL: u8 = 0;
    /// A control/special token matched whole (`[CLS]`, `<|im_start|>`).
    pub const SPECIAL: u8 = 1;
}

/// The tokenizer algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerKind {
    /// No vocabulary in the file.
    None = 0,
    /// BERT WordPiece with `##` continuation prefix.
    WordPiece = 1,
    /// GPT-2 style byte-level BPE (tokens in the byte-to-unicode alphabet).
    ByteLevelBpe = 2,
}

/// How text is split before the tokenizer model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// BERT: whitespace and punctuation.
    Bert = 0,
    /// GPT-2's regex.
    Gpt2 = 1,
    /// Each digit alone, then GPT-2's regex (SmolLM, StarCoder).
    Gpt2Digits = 2,
}

/// A validated vocabulary borrowing the model bytes.
#[derive(Debug, Clone, Copy)]
pub struct Vocab<'a> {
    /// Tokenizer algorithm.
    pub kind: TokenizerKind,
    /// [`FLAG_LOWERCASE`] | [`FLAG_STRIP_ACCENTS`].
    pub flags: u32,
    /// Pre-tokenizer.
    pub pre_tokenizer: PreTokenizer,
    /// Unknown-token id or [`NO_TOKEN`].
    pub unk_id: u32,
    n_tokens: u32,
    n_merges: u32,
    offsets: &'a [u8],
    kinds: &'a [u8],
    merges: &'a [u8],
    template: &'a [u8],
    blob: &'a [u8],
}

impl<'a> Vocab<'a> {
    /// An empty vocabulary (models without a tokenizer).
    pub fn empty() -> Self {
        Vocab {
            kind: TokenizerKind::None,
            flags: 0,
            pre_tokenizer: PreTokenizer::Bert,
            unk_id: NO_TOKEN,
            n_tokens: 0,
            n_merges: 0,
            offsets: &[],
            kinds: &[],
            merges: &[],
            template: &[],
            blob: &[],
        }
    }

    /// Parses and validates a vocabulary section against the model's vocabulary size.
    pub fn parse(bytes: &'a [u8], vocab_size: u32) -> Result<Self> {
        let bad = |offset: usize| Error::BadVocab {
            offset: offset.min(u32::MAX as usize) as u32,
        };
        // Header words 0..8: offsets far below any overflow.
        let word = |i: usize| read_u32(bytes, 4 * i).ok_or(bad(4 * i));
        let kind = match word(0)? {
            0 => TokenizerKind::None,
            1 => TokenizerKind::WordPiece,
            2 => TokenizerKind::ByteLevelBpe,
            _ => return Err(bad(0)),
        };
        let flags = word(1)?;
        if flags & !(FLAG_LOWERCASE | FLAG_STRIP_ACCENTS) != 0 {
            return Err(bad(4));
        }
        let pre_tokenizer = match word(2)? {
            0 => PreTokenizer::Bert,
            1 => PreTokenizer::Gpt2,
            2 => PreTokenizer::Gpt2Digits,
            _ => return Err(bad(8)),
        };
        let n_tokens = word(3)?;
        let n_merges = word(4)?;
        let unk_id = word(5)?;
        let template_len = word(6)? as usize;
        if word(7)? != 0 {
            return Err(bad(28));
        }
        if kind == TokenizerKind::None {
            if n_tokens != 0 || n_merges != 0 {
                return Err(bad(12));
            }
        } else if n_tokens != vocab_size {
            return Err(bad(12));
        }
        if unk_id != NO_TOKEN && unk_id >= n_tokens {
            return Err(bad(20));
        }
        let n = n_tokens as usize;
        let offsets_len = (n + 1).checked_mul(4).ok_or(bad(12))?;
        let kinds_len = n.checked_add(3).ok_or(bad(12))? & !3;
        let merges_len = (n_merges as usize).checked_mul(8).ok_or(bad(16))?;
        let mut at = VOCAB_HEADER_LEN;
        let mut take = |len: usize| -> Result<&'a [u8]> {
            let end = at.checked_add(len).ok_or(bad(at))?;
            let s = bytes.get(at..end).ok_or(bad(at))?;
            at = end;
            Ok(s)
        };
        let offsets = if n > 0 { take(offsets_len)? } else { take(0)? };
        let kinds = take(kinds_len)?;
        let merges = take(merges_len)?;
        let template = take(template_len)?;
        let blob_start = VOCAB_HEADER_LEN
            + if n > 0 { offsets_len } else { 0 }
            + kinds_len
            + merges_len
            + template_len;
        let blob = bytes.get(blob_start..).ok_or(bad(blob_start))?;
        if core::str::from_utf8(template).is_err() {
            return Err(bad(blob_start - template_len));
        }
        // Offsets must be non-decreasing and inside the blob.
        let mut prev = 0u32;
        for i in 0..if n > 0 { n + 1 } else { 0 } {
            let o = read_u32(offsets, 4 * i).ok_or(bad(VOCAB_HEADER_LEN + 4 * i))?;
            if o < prev || o as usize > blob.len() || (i == 0 && o != 0) {
                return Err(bad(VOCAB_HEADER_LEN + 4 * i));
            }
            prev = o;
        }
        if n > 0 && prev as usize != blob.len() {
            return Err(bad(blob_start));
        }
        for (i, &k) in kinds.iter().enumerate() {
            let valid = if i < n { k <= kind::SPECIAL } else { k == 0 };
            if !valid {
                return Err(bad(VOCAB_HEADER_LEN + offsets_len + i));
            }
        }
        let merges_at = VOCAB_HEADER_LEN + offsets_len + kinds_len;
        for i in 0..2 * n_merges as usize {
            let id = read_u32(merges, 4 * i).ok_or(bad(merges_at + 4 * i))?;
            if id >= n_tokens {
                return Err(bad(merges_at + 4 * i));
            }
        }
        Ok(Vocab {
            kind,
            flags,
            pre_tokenizer,
            unk_id,
            n_tokens,
            n_merges,
            offsets,
            kinds,
            merges,
            template,
            blob,
        })
    }

    /// Number of tokens.
    pub fn len(&self) -> u32 {
        self.n_tokens
    }

    /// True when the file carries no vocabulary.
    pub fn is_empty(&self) -> bool {
        self.n_tokens == 0
    }

    /// Text of token `id` (in the tokenizer's own alphabet), if in range.
    pub fn token(&self, id: u32) -> Option<&'a [u8]> {
        if id >= self.n_tokens {
            return None;
        }
        // Checked: on a 32-bit target `4 * (id + 1)` can pass `usize`.
        let at = (id as usize).checked_mul(4)?;
        let start = read_u32(self.offsets, at)? as usize;
        let end = read_u32(self.offsets, at.checked_add(4)?)? as usize;
        self.blob.get(start..end)
    }

    /// Kind of token `id` ([`kind::NORMAL`] or [`kind::SPECIAL`]).
    pub fn token_kind(&self, id: u32) -> Option<u8> {
        if id < self.n_tokens {
            self.kinds.get(id as usize).copied()
        } else {
            None
        }
    }

    /// Number of BPE merges.
    pub fn merge_count(&self) -> u32 {
        self.n_merges
    }

    /// Merge `rank` as the two token ids it joins.
    pub fn merge(&self, rank: u32) -> Option<(u32, u32)> {
        if rank >= self.n_merges {
            return None;
        }
        let at = (rank as usize).checked_mul(8)?;
        Some((
            read_u32(self.merges, at)?,
            read_u32(self.merges, at.checked_add(4)?)?,
        ))
    }

    /// The chat template (a Jinja text; empty when the model has none).
    pub fn chat_template(&self) -> &'a str {
        core::str::from_utf8(self.template).unwrap_or("")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::Vocab;

    /// Ids and ranks past the end are `None`, never an offset computed in
    /// `usize` that could wrap on a 32-bit target.
    #[test]
    fn out_of_range_ids_and_ranks_are_none() {
        let v = Vocab::empty();
        for id in [0, 1, u32::MAX / 4, u32::MAX / 4 + 1, u32::MAX - 1, u32::MAX] {
            assert_eq!(v.token(id), None);
            assert_eq!(v.token_kind(id), None);
            assert_eq!(v.merge(id), None);
        }
    }
}
