//! The one error type of `mote-core`: small, `Copy`, allocation-free, and
//! precise about what was wrong and where.

use core::fmt;

/// A tensor name copied out of a model file so an error can outlive the bytes.
///
/// Without the `tensor-names` feature it keeps no bytes and reads `?`: every
/// error (and [`crate::TensorInfo`]) is then 24 bytes smaller, which is
/// 1.8 KB of a minimal device app's code (each error is copied where it is
/// passed on). Lookups by name still work: they read the model's table.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TensorName {
    bytes: [u8; KEPT],
}

/// Name bytes a [`TensorName`] keeps.
const KEPT: usize = if cfg!(feature = "tensor-names") {
    TensorName::LEN
} else {
    0
};

impl TensorName {
    /// Maximum name length in bytes (the tensor table's fixed name field).
    pub const LEN: usize = 24;

    /// Copies up to [`TensorName::LEN`] bytes of `name`.
    #[allow(clippy::unnecessary_min_or_max)] // KEPT is 0 without `tensor-names`
    pub fn new(name: &[u8]) -> Self {
        let mut bytes = [0u8; KEPT];
        let n = name.len().min(KEPT);
        if let (Some(to), Some(from)) = (bytes.get_mut(..n), name.get(..n)) {
            to.copy_from_slice(from);
        }
        TensorName { bytes }
    }

    /// The name as text (lossy: invalid UTF-8 shows as `?`; so does every
    /// name without the `tensor-names` feature).
    #[allow(clippy::absurd_extreme_comparisons)] // KEPT is 0 without `tensor-names`
    pub fn as_str(&self) -> &str {
        let end = self.bytes.iter().position(|&b| b == 0).unwrap_or(KEPT);
        match self.bytes.get(..end).map(core::str::from_utf8) {
            Some(Ok(s)) if KEPT > 0 => s,
            _ => "?",
        }
    }
}

impl fmt::Debug for TensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for TensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for TensorName {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "{=str}", self.as_str())
    }
}

/// Everything that can go wrong when loading or running a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The bytes end before a structure that must be there.
    Truncated {
        /// Bytes the structure needs, counted from the start of the file.
        needed: u64,
        /// Bytes available.
        got: u64,
    },
    /// The first four bytes are not `MOTE`.
    BadMagic,
    /// The file's format version is not one this reader understands.
    UnsupportedVersion {
        /// Version written in the file.
        found: u16,
    },
    /// The length recorded in the header differs from the byte count given.
    LengthMismatch {
        /// Length written in the header.
        header: u64,
        /// Length of the byte slice given to the reader.
        actual: u64,
    },
    /// The CRC-32 of the header and section table does not match.
    HeaderCrc {
        /// CRC stored in the file.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },
    /// The CRC-32 of everything after the section table does not match.
    PayloadCrc {
        /// CRC stored in the file.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },
    /// The model bytes do not start on a 16-byte boundary, so tensors cannot be read in place.
    MisalignedBuffer {
        /// Address modulo 16.
        misalignment: u8,
    },
    /// A section lies outside the file or overlaps the header.
    SectionOutOfRange {
        /// Section kind code.
        kind: u32,
        /// Section offset.
        offset: u64,
        /// Section length.
        len: u64,
    },
    /// A required section is absent.
    MissingSection {
        /// Section kind code.
        kind: u32,
    },
    /// The same section kind appears twice.
    DuplicateSection {
        /// Section kind code.
        kind: u32,
    },
    /// A section kind this reader does not know and that is not marked optional.
    UnknownSection {
        /// Section kind code.
        kind: u32,
    },
    /// A config field holds a value that is out of range or inconsistent.
    BadConfig {
        /// Name of the field.
        field: &'static str,
        /// Value found.
        value: u32,
    },
    /// A tensor's dtype code is not known.
    UnknownDtype {
        /// Tensor name.
        tensor: TensorName,
        /// Dtype code found.
        code: u8,
    },
    /// A tensor name is empty or not UTF-8.
    BadTensorName {
        /// Index in the tensor table.
        index: u32,
    },
    /// A tensor's rank is 0 or above 4, or a dimension is zero.
    BadTensorShape {
        /// Tensor name.
        tensor: TensorName,
    },
    /// A tensor's payload lies outside the payload section.
    TensorOutOfRange {
        /// Tensor name.
        tensor: TensorName,
        /// Absolute offset.
        offset: u64,
        /// Byte length.
        len: u64,
    },
    /// A tensor's payload does not start on a 16-byte boundary.
    MisalignedTensor {
        /// Tensor name.
        tensor: TensorName,
        /// Absolute offset.
        offset: u64,
    },
    /// A tensor's byte length does not equal its element count times the dtype size.
    TensorSizeMismatch {
        /// Tensor name.
        tensor: TensorName,
        /// Bytes implied by shape and dtype.
        expected: u64,
        /// Bytes recorded.
        got: u64,
    },
    /// A tensor the architecture needs is absent.
    MissingTensor {
        /// Tensor name.
        tensor: TensorName,
    },
    /// A tensor the architecture does not use is present.
    UnknownTensor {
        /// Tensor name.
        tensor: TensorName,
    },
    /// Two tensors share a name.
    DuplicateTensor {
        /// Tensor name.
        tensor: TensorName,
    },
    /// A tensor's shape does not match the config.
    ShapeMismatch {
        /// Tensor name.
        tensor: TensorName,
        /// Shape the config implies (unused dims are 0).
        expected: [u32; 4],
        /// Shape recorded (unused dims are 0).
        got: [u32; 4],
    },
    /// A tensor's dtype is not one this architecture can run.
    UnsupportedDtype {
        /// Tensor name.
        tensor: TensorName,
        /// Dtype code found.
        code: u8,
    },
    /// An integer-only model (config `integer`) has a matrix that is not
    /// int8 with one scale per row.
    NotIntegerReady {
        /// Tensor name (the matrix, or its scales).
        tensor: TensorName,
    },
    /// The vocabulary section is malformed at this byte offset within it.
    BadVocab {
        /// Offset inside the vocabulary section.
        offset: u32,
    },
    /// The arena is smaller than the run needs.
    ArenaTooSmall {
        /// Bytes needed (including alignment padding for this buffer).
        needed: u64,
        /// Bytes given.
        got: u64,
    },
    /// More tokens than the run config (or the model) allows.
    SequenceTooLong {
        /// Largest sequence allowed.
        max: u32,
        /// Sequence length asked for.
        got: u32,
    },
    /// A token id is not below the vocabulary size.
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab: u32,
    },
    /// An empty token sequence was given.
    EmptyInput,
    /// No feature rows were given to a feature-input model.
    EmptyFeatures,
    /// A feature value is NaN or infinite.
    NonFiniteInput {
        /// Index of the first such value.
        index: u32,
    },
    /// Token types given for a different number of tokens than the ids.
    TokenTypesLength {
        /// Number of token ids.
        ids: u32,
        /// Number of token types.
        types: u32,
    },
    /// The arena a run needs does not fit in this target's address space.
    ArenaOverflow,
    /// A section of a kind this reader knows, at a newer version than it
    /// reads, and not marked optional.
    SectionVersion {
        /// Section kind.
        kind: u32,
        /// The section's version.
        version: u16,
        /// The newest version of this kind this reader reads.
        supported: u16,
    },
    /// A section whose reserved flag bits (1..16) are set, not marked optional.
    SectionFlags {
        /// Section kind.
        kind: u32,
        /// The flags word.
        flags: u32,
    },
    /// A config word past the ones this reader knows is not 0: the file
    /// uses a feature of a newer writer.
    NewerConfig {
        /// Index of the word.
        word: u32,
        /// Its value.
        value: u32,
    },
    /// A kernel backend this machine cannot run was asked for.
    BackendUnavailable {
        /// The backend's name.
        backend: &'static str,
    },
    /// The call does not fit the model's architecture (e.g. `embed` on a decoder).
    WrongArchitecture {
        /// Architecture code the call needs.
        expected: u32,
        /// Architecture code of the model.
        got: u32,
    },
    /// Token ids given to a feature-input model, or feature rows to a token model.
    WrongInputKind {
        /// The model's feature width (0: it takes token ids).
        input_dim: u32,
    },
    /// Feature input whose length is not a whole number of rows.
    FeatureShape {
        /// Width of one feature row.
        width: u32,
        /// Number of values given.
        got: u32,
    },
    /// `classify` on a model without a classifier head.
    NoClassifier,
    /// A flash model slot was never written (no slot magic): see [`crate::slot`].
    EmptySlot,
    /// The model needs a part of the runtime this build leaves out: the
    /// cargo feature `feature` of `mote-core` (`float`: models that are not
    /// integer-only; `decoder`: decoders).
    NotBuilt {
        /// The cargo feature.
        feature: &'static str,
    },
    /// A malformed field of the audio section (`docs/FORMAT.md`).
    BadAudio {
        /// The field (or table: `band bin count`, `window value`, ...).
        field: &'static str,
        /// The value found (a band's or entry's index for tables; an
        /// f32's bits for f32 fields).
        value: u32,
    },
    /// The labels section is malformed at this byte (see [`crate::labels`]).
    BadLabels {
        /// Offset in the section.
        offset: u32,
    },
    /// Audio given to a model without an audio section.
    NoAudio,
    /// A frame of the wrong number of samples.
    AudioFrame {
        /// `frame_len`.
        expected: u32,
        /// Samples given.
        got: u32,
    },
    /// An output buffer too small for a clip's feature rows.
    AudioOutput {
        /// Values needed.
        needed: u32,
        /// Values the buffer holds.
        got: u32,
    },
    /// A stream over a front end that normalises by the whole clip.
    AudioStreaming,
    /// A flash model slot's header is damaged.
    SlotHeaderCrc {
        /// CRC stored in the slot header.
        stored: u32,
        /// CRC computed over the header.
        computed: u32,
    },
}

impl Error {
    /// What went wrong, in a few words and without the details the
    /// `Display` text adds: for device apps that print errors without
    /// `core::fmt` (it is most of a minimal app's code otherwise).
    pub fn summary(&self) -> &'static str {
        use Error::*;
        match self {
            Truncated { .. } => "model truncated",
            BadMagic => "not a .mote model (bad magic)",
            UnsupportedVersion { .. } => "unsupported .mote format version",
            LengthMismatch { .. } => "model length differs from its header",
            HeaderCrc { .. } => "header CRC mismatch",
            PayloadCrc { .. } => "payload CRC mismatch",
            MisalignedBuffer { .. } => "model bytes not 16-byte aligned",
            SectionOutOfRange { .. } => "a section lies outside the file",
            MissingSection { .. } => "a required section is missing",
            DuplicateSection { .. } => "a section appears twice",
            UnknownSection { .. } => "unknown section",
            BadConfig { .. } => "invalid model configuration",
            UnknownDtype { .. } => "unknown tensor dtype",
            BadTensorName { .. } => "invalid tensor name",
            BadTensorShape { .. } => "invalid tensor shape",
            TensorOutOfRange { .. } => "a tensor lies outside the payload",
            MisalignedTensor { .. } => "misaligned tensor",
            TensorSizeMismatch { .. } => "tensor size differs from its shape",
            MissingTensor { .. } => "missing tensor",
            UnknownTensor { .. } => "unknown tensor",
            DuplicateTensor { .. } => "duplicate tensor",
            ShapeMismatch { .. } => "tensor shape differs from the configuration",
            UnsupportedDtype { .. } => "tensor dtype not supported here",
            NotIntegerReady { .. } => "matrix not int8 per-row (integer-only model)",
            BadVocab { .. } => "invalid vocabulary",
            ArenaTooSmall { .. } => "arena too small",
            SequenceTooLong { .. } => "sequence too long",
            TokenOutOfRange { .. } => "token id out of range",
            EmptyInput => "empty token sequence",
            EmptyFeatures => "no feature rows",
            NonFiniteInput { .. } => "feature value is NaN or infinite",
            TokenTypesLength { .. } => "token types and ids differ in length",
            ArenaOverflow => "arena size overflows the address space",
            SectionVersion { .. } => "section written by a newer format version",
            SectionFlags { .. } => "section uses flags this reader does not know",
            NewerConfig { .. } => "config uses a field of a newer writer",
            BackendUnavailable { .. } => "kernel backend not available on this machine",
            WrongArchitecture { .. } => "wrong architecture for this call",
            WrongInputKind { .. } => "wrong input kind (token ids or feature rows)",
            FeatureShape { .. } => "feature values are not whole rows",
            BadAudio { .. } => "invalid audio section",
            NoAudio => "model has no audio front end",
            BadLabels { .. } => "labels section malformed",
            AudioFrame { .. } => "audio frame of the wrong length",
            AudioOutput { .. } => "feature buffer too small",
            AudioStreaming => "front end cannot stream",
            NoClassifier => "no classifier head",
            EmptySlot => "model slot is empty",
            SlotHeaderCrc { .. } => "model slot header CRC mismatch",
            NotBuilt { feature: "float" } => {
                "not an integer-only model: needs mote-core's `float` feature, which this build leaves out"
            }
            NotBuilt { feature: "decoder" } => {
                "a decoder: needs mote-core's `decoder` feature, which this build leaves out"
            }
            NotBuilt { .. } => "needs a mote-core feature this build leaves out",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match *self {
            Truncated { needed, got } => {
                write!(f, "model truncated: needs {needed} bytes, has {got}")
            }
            BadMagic => write!(f, "not a .mote model (bad magic)"),
            UnsupportedVersion { found } => write!(f, "unsupported .mote format version {found}"),
            LengthMismatch { header, actual } => {
                write!(
                    f,
                    "header says the file is {header} bytes but {actual} were given"
                )
            }
            HeaderCrc { stored, computed } => {
                write!(
                    f,
                    "header CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            PayloadCrc { stored, computed } => {
                write!(
                    f,
                    "payload CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            MisalignedBuffer { misalignment } => {
                write!(
                    f,
                    "model bytes must start on a 16-byte boundary (off by {misalignment})"
                )
            }
            SectionOutOfRange { kind, offset, len } => {
                write!(f, "section {kind} at {offset}+{len} lies outside the file")
            }
            MissingSection { kind } => write!(f, "required section {kind} is missing"),
            DuplicateSection { kind } => write!(f, "section {kind} appears twice"),
            UnknownSection { kind } => write!(f, "unknown required section {kind}"),
            BadConfig { field, value } => write!(f, "config field `{field}` has bad value {value}"),
            BadAudio { field, value } => {
                write!(f, "audio section: `{field}` is bad (value {value})")
            }
            NoAudio => write!(f, "the model has no audio section: it takes feature rows, not sound"),
            BadLabels { offset } => write!(f, "labels section malformed at byte {offset}"),
            AudioFrame { expected, got } => {
                write!(f, "an audio frame needs {expected} samples, got {got}")
            }
            AudioOutput { needed, got } => {
                write!(f, "the clip's features need {needed} values, the buffer holds {got}")
            }
            AudioStreaming => write!(
                f,
                "the front end clamps by the whole clip's maximum (dynamic_range): it cannot stream"
            ),
            UnknownDtype { tensor, code } => {
                write!(f, "tensor `{tensor}` has unknown dtype code {code}")
            }
            BadTensorName { index } => write!(f, "tensor #{index} has an empty or non-UTF-8 name"),
            BadTensorShape { tensor } => {
                write!(f, "tensor `{tensor}` has a bad rank or a zero dimension")
            }
            TensorOutOfRange {
                tensor,
                offset,
                len,
            } => {
                write!(
                    f,
                    "tensor `{tensor}` at {offset}+{len} lies outside the payload"
                )
            }
            MisalignedTensor { tensor, offset } => {
                write!(
                    f,
                    "tensor `{tensor}` offset {offset} is not 16-byte aligned"
                )
            }
            TensorSizeMismatch {
                tensor,
                expected,
                got,
            } => {
                write!(
                    f,
                    "tensor `{tensor}` holds {got} bytes but its shape needs {expected}"
                )
            }
            MissingTensor { tensor } => write!(f, "tensor `{tensor}` is required but missing"),
            UnknownTensor { tensor } => {
                write!(f, "tensor `{tensor}` is not used by this architecture")
            }
            DuplicateTensor { tensor } => write!(f, "tensor `{tensor}` appears twice"),
            ShapeMismatch {
                tensor,
                expected,
                got,
            } => {
                write!(
                    f,
                    "tensor `{tensor}` has shape {got:?}, config needs {expected:?}"
                )
            }
            UnsupportedDtype { tensor, code } => {
                write!(
                    f,
                    "tensor `{tensor}` has dtype {code}, which this architecture cannot run"
                )
            }
            NotIntegerReady { tensor } => write!(
                f,
                "integer-only model: matrix `{tensor}` must be int8 with one scale per row"
            ),
            BadVocab { offset } => write!(f, "vocabulary section malformed at byte {offset}"),
            ArenaTooSmall { needed, got } => {
                write!(f, "arena too small: needs {needed} bytes, got {got}")
            }
            SequenceTooLong { max, got } => {
                write!(f, "sequence of {got} tokens exceeds the maximum {max}")
            }
            TokenOutOfRange { id, vocab } => {
                write!(f, "token id {id} is outside the vocabulary of {vocab}")
            }
            EmptyInput => write!(f, "empty token sequence"),
            EmptyFeatures => write!(f, "no feature rows"),
            NonFiniteInput { index } => {
                write!(f, "feature value {index} is NaN or infinite")
            }
            TokenTypesLength { ids, types } => {
                write!(f, "{types} token types given for {ids} token ids")
            }
            SectionVersion {
                kind,
                version,
                supported,
            } => write!(
                f,
                "section kind {kind} is version {version}; this reader reads up to {supported} (a newer writer made it)"
            ),
            SectionFlags { kind, flags } => write!(
                f,
                "section kind {kind} has flags {flags:#010x}: reserved bits set by a newer writer"
            ),
            NewerConfig { word, value } => write!(
                f,
                "config word {word} is {value}: a field of a newer writer, which this reader does not know"
            ),
            ArenaOverflow => write!(
                f,
                "the arena this run needs is larger than this target's address space"
            ),
            BackendUnavailable { backend } => {
                write!(f, "kernel backend {backend} cannot run on this machine")
            }
            WrongArchitecture { expected, got } => {
                write!(
                    f,
                    "this call needs architecture {expected}, the model is architecture {got}"
                )
            }
            WrongInputKind { input_dim: 0 } => {
                write!(f, "this model takes token ids, not feature rows")
            }
            WrongInputKind { input_dim } => write!(
                f,
                "this model takes feature rows of width {input_dim}, not token ids"
            ),
            FeatureShape { width, got } => write!(
                f,
                "{got} feature values are not a whole number of rows of width {width}"
            ),
            NoClassifier => write!(f, "this model has no classifier head"),
            EmptySlot => write!(f, "model slot is empty (no slot magic)"),
            NotBuilt { feature } => write!(
                f,
                "this model needs mote-core's `{feature}` feature, which this build leaves out"
            ),
            SlotHeaderCrc { stored, computed } => write!(
                f,
                "model slot header CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::TensorName;

    /// With `tensor-names` a name is kept (cut at 24 bytes, invalid UTF-8
    /// as `?`); without it nothing is kept and every name reads `?`.
    #[test]
    fn tensor_names_follow_the_feature() {
        let name = TensorName::new(b"L0.wq");
        if cfg!(feature = "tensor-names") {
            assert_eq!(name.as_str(), "L0.wq");
            assert_eq!(TensorName::new(&[0xff, 0xfe]).as_str(), "?");
            assert_eq!(TensorName::new(&[b'a'; 30]).as_str(), "a".repeat(24));
        } else {
            assert_eq!(name.as_str(), "?");
            assert_eq!(core::mem::size_of::<TensorName>(), 0);
        }
    }
}
