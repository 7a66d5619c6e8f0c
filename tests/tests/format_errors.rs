//! Every malformed `.mote` case gets its own `Error`, and no byte string
//! makes the reader (or a session on what it accepts) panic.
#![allow(clippy::unwrap_used)]

use mote_core::format::{Dtype, HEADER_LEN, SECTION_ENTRY_LEN, TENSOR_ENTRY_LEN};
use mote_core::vocab::{kind, PreTokenizer, TokenizerKind};
use mote_core::{Architecture, Error, Model, RunConfig, Session};
use mote_host::writer::seal;
use mote_host::{ModelBuilder, ModelFile, VocabData};
use mote_tests::*;

fn load(bytes: &[u8]) -> Result<(), Error> {
    let f = ModelFile::from_vec(bytes.to_vec());
    Model::from_bytes(f.bytes()).map(|_| ())
}

fn tiny_vocab(n: u32) -> VocabData {
    VocabData {
        kind: TokenizerKind::WordPiece,
        flags: 1,
        pre_tokenizer: PreTokenizer::Bert,
        tokens: (0..n)
            .map(|i| {
                (
                    format!("t{i}").into_bytes(),
                    if i < 2 { kind::SPECIAL } else { kind::NORMAL },
                )
            })
            .collect(),
        merges: vec![],
        unk_id: 0,
        chat_template: String::new(),
    }
}

/// The tiny encoder with a vocabulary: sections Config, Tensors, Payload, Vocab.
fn base() -> Vec<u8> {
    let mut b = random_model(tiny_encoder_config(), 3);
    b.set_vocab(tiny_vocab(50));
    b.to_bytes()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
/// Byte offset of section-table entry `i`.
fn sec(i: usize) -> usize {
    HEADER_LEN + i * SECTION_ENTRY_LEN
}
/// Offset of the section of `kind`.
fn section_offset(b: &[u8], kind: u32) -> usize {
    let n = u16::from_le_bytes([b[6], b[7]]) as usize;
    (0..n)
        .find(|&i| u32_at(b, sec(i)) == kind)
        .map(|i| u64_at(b, sec(i) + 8) as usize)
        .unwrap()
}
/// Offset of tensor entry `i`.
fn tensor_entry(b: &[u8], i: usize) -> usize {
    section_offset(b, 2) + 8 + i * TENSOR_ENTRY_LEN
}
/// Applies `edit`, reseals the CRCs, and loads.
fn edited(edit: impl FnOnce(&mut Vec<u8>)) -> Result<(), Error> {
    let mut b = base();
    edit(&mut b);
    seal(&mut b);
    load(&b)
}
fn name(s: &str) -> mote_core::TensorName {
    mote_core::TensorName::new(s.as_bytes())
}

#[test]
fn valid_models_load() {
    load(&base()).unwrap();
    load(random_model_file(tiny_decoder_config(), 1).bytes()).unwrap();
}

#[test]
fn truncated_files() {
    let b = base();
    assert_eq!(load(&b[..0]), Err(Error::Truncated { needed: 32, got: 0 }));
    assert_eq!(
        load(&b[..20]),
        Err(Error::Truncated {
            needed: 32,
            got: 20
        })
    );
    let table_end = HEADER_LEN + 4 * SECTION_ENTRY_LEN;
    assert_eq!(
        load(&b[..40]),
        Err(Error::Truncated {
            needed: table_end as u64,
            got: 40
        })
    );
    let n = b.len() as u64;
    assert_eq!(
        load(&b[..b.len() - 1]),
        Err(Error::Truncated {
            needed: n,
            got: n - 1
        })
    );
    for len in 0..b.len() {
        assert!(load(&b[..len]).is_err(), "prefix of {len} bytes accepted");
    }
}

#[test]
fn bad_magic_and_version() {
    let mut b = base();
    b[0] = b'X';
    assert_eq!(load(&b), Err(Error::BadMagic));
    assert_eq!(load(b"GGUF\x03\0\0\0"), Err(Error::BadMagic));
    let mut b = base();
    b[4] = 1;
    assert_eq!(load(&b), Err(Error::UnsupportedVersion { found: 1 }));
    b[4] = 3;
    assert_eq!(load(&b), Err(Error::UnsupportedVersion { found: 3 }));
}

#[test]
fn crc_mismatches() {
    let mut b = base();
    b[sec(0) + 8] ^= 0x10;
    assert!(matches!(load(&b), Err(Error::HeaderCrc { .. })));
    let mut b = base();
    let last = b.len() - 3;
    b[last] ^= 1;
    assert!(matches!(load(&b), Err(Error::PayloadCrc { .. })));
    // A flipped stored payload CRC is caught by the header CRC, which covers it.
    let mut b = base();
    b[16] ^= 1;
    assert!(matches!(load(&b), Err(Error::HeaderCrc { .. })));
}

#[test]
fn length_mismatch_and_misaligned_buffer() {
    let mut b = base();
    b.extend_from_slice(&[0; 16]);
    let n = b.len() as u64;
    assert_eq!(
        load(&b),
        Err(Error::LengthMismatch {
            header: n - 16,
            actual: n
        })
    );
    let f = ModelFile::from_vec([&[0u8][..], &base()].concat());
    assert_eq!(
        Model::from_bytes(&f.bytes()[1..]).err(),
        Some(Error::MisalignedBuffer { misalignment: 1 })
    );
}

#[test]
fn section_table_errors() {
    let r = edited(|b| {
        let len = b.len() as u64;
        put64(b, sec(1) + 8, len - 8);
    });
    assert!(
        matches!(r, Err(Error::SectionOutOfRange { kind: 2, .. })),
        "{r:?}"
    );
    // A section may not start inside the header or the section table.
    assert!(matches!(
        edited(|b| put64(b, sec(0) + 8, 8)),
        Err(Error::SectionOutOfRange { kind: 1, .. })
    ));
    assert!(matches!(
        edited(|b| put64(b, sec(0) + 16, u64::MAX)),
        Err(Error::SectionOutOfRange { kind: 1, .. })
    ));
    assert_eq!(
        edited(|b| put32(b, sec(2), 1)),
        Err(Error::DuplicateSection { kind: 1 })
    );
    assert_eq!(
        edited(|b| put32(b, sec(3), 99)),
        Err(Error::UnknownSection { kind: 99 })
    );
    assert_eq!(
        edited(|b| {
            put32(b, sec(0), 99);
            put32(b, sec(0) + 4, 1);
        }),
        Err(Error::MissingSection { kind: 1 })
    );
    // An optional section of an unknown kind is skipped: here the vocabulary.
    let mut b = base();
    put32(&mut b, sec(3), 0x8000);
    put32(&mut b, sec(3) + 4, 1);
    seal(&mut b);
    let f = ModelFile::from_vec(b);
    let m = Model::from_bytes(f.bytes()).unwrap();
    assert!(m.vocab().is_empty());
    // The payload section must be 16-byte aligned.
    let r = edited(|b| {
        let off = u64_at(b, sec(2) + 8);
        put64(b, sec(2) + 8, off + 4);
        let len = u64_at(b, sec(2) + 16);
        put64(b, sec(2) + 16, len - 4);
    });
    assert!(
        matches!(r, Err(Error::SectionOutOfRange { kind: 4, .. })),
        "{r:?}"
    );
}

#[test]
fn config_errors() {
    let cfg = |word: usize, v: u32| {
        edited(move |b| {
            let at = section_offset(b, 1) + 4 * word;
            put32(b, at, v);
        })
    };
    assert_eq!(
        cfg(0, 7),
        Err(Error::BadConfig {
            field: "arch",
            value: 7
        })
    );
    assert_eq!(
        cfg(1, 0),
        Err(Error::BadConfig {
            field: "d_model",
            value: 0
        })
    );
    assert_eq!(
        cfg(4, 3),
        Err(Error::BadConfig {
            field: "n_kv_heads",
            value: 3
        })
    );
    assert_eq!(
        cfg(10, 9),
        Err(Error::BadConfig {
            field: "norm",
            value: 9
        })
    );
    assert_eq!(
        cfg(12, 9),
        Err(Error::BadConfig {
            field: "activation",
            value: 9
        })
    );
    assert_eq!(
        cfg(15, f32::NAN.to_bits()),
        Err(Error::BadConfig {
            field: "norm_eps",
            value: f32::NAN.to_bits()
        })
    );
    assert_eq!(
        cfg(11, 2),
        Err(Error::BadConfig {
            field: "pre_norm",
            value: 2
        })
    );
    assert_eq!(
        cfg(19, 1000),
        Err(Error::BadConfig {
            field: "bos",
            value: 1000
        })
    );
    assert_eq!(
        cfg(25, 2),
        Err(Error::BadConfig {
            field: "kv_cache",
            value: 2
        })
    );
    assert!(
        cfg(25, 1).is_ok(),
        "an int8 attention cache is a valid config"
    );
    // Word 26 marks an integer-only model: an f32 file is not one.
    assert_eq!(
        cfg(26, 1),
        Err(Error::NotIntegerReady {
            tensor: name("tok_emb")
        })
    );
    assert_eq!(
        cfg(26, 2),
        Err(Error::BadConfig {
            field: "integer",
            value: 2
        })
    );
    assert_eq!(
        cfg(27, 1),
        Err(Error::BadConfig {
            field: "reserved",
            value: 1
        })
    );
    // A classifier head the file does not carry (decoders refuse a head:
    // tests/tests/training.rs).
    let r = cfg(23, 4);
    assert!(
        matches!(&r, Err(Error::MissingTensor { tensor }) if tensor.as_str() == "cls.w"),
        "{r:?}"
    );
    // Heads × head width beyond 2^20 (would overflow 32-bit arithmetic).
    assert_eq!(
        cfg(5, 1 << 20),
        Err(Error::BadConfig {
            field: "n_heads",
            value: 4
        })
    );
    // A decoder must be causal.
    assert_eq!(
        cfg(0, 1),
        Err(Error::BadConfig {
            field: "causal",
            value: 0
        })
    );
    let r = edited(|b| put64(b, sec(0) + 16, 92));
    assert_eq!(
        r,
        Err(Error::BadConfig {
            field: "section length",
            value: 92
        })
    );
    // A config that disagrees with the tensors: more layers than stored.
    assert_eq!(
        cfg(2, 3),
        Err(Error::MissingTensor {
            tensor: name("L2.attn_norm.w")
        })
    );
}

#[test]
fn tensor_entry_errors() {
    let t = |i: usize, at: usize, v: &[u8]| {
        edited(move |b| {
            let e = tensor_entry(b, i) + at;
            b[e..e + v.len()].copy_from_slice(v);
        })
    };
    assert_eq!(
        t(0, 24, &[9]),
        Err(Error::UnknownDtype {
            tensor: name("tok_emb"),
            code: 9
        })
    );
    assert_eq!(t(0, 0, &[0; 24]), Err(Error::BadTensorName { index: 0 }));
    assert_eq!(
        t(1, 0, &[0xff, 0xfe]),
        Err(Error::BadTensorName { index: 1 })
    );
    assert_eq!(
        t(0, 25, &[0]),
        Err(Error::BadTensorShape {
            tensor: name("tok_emb")
        })
    );
    assert_eq!(
        t(0, 25, &[5]),
        Err(Error::BadTensorShape {
            tensor: name("tok_emb")
        })
    );
    assert_eq!(
        t(0, 28, &[0, 0, 0, 0]),
        Err(Error::BadTensorShape {
            tensor: name("tok_emb")
        })
    );
    assert_eq!(
        t(0, 36, &[1, 0, 0, 0]),
        Err(Error::BadTensorShape {
            tensor: name("tok_emb")
        })
    );
    let r = t(0, 56, &(50u64 * 16 * 4 + 4).to_le_bytes());
    assert_eq!(
        r,
        Err(Error::TensorSizeMismatch {
            tensor: name("tok_emb"),
            expected: 3200,
            got: 3204
        })
    );
    let r = edited(|b| {
        let e = tensor_entry(b, 0);
        let len = b.len() as u64;
        put64(b, e + 48, len);
    });
    assert!(matches!(r, Err(Error::TensorOutOfRange { .. })), "{r:?}");
    let r = edited(|b| {
        let e = tensor_entry(b, 0);
        let off = u64_at(b, e + 48);
        put64(b, e + 48, off + 4);
    });
    assert!(matches!(r, Err(Error::MisalignedTensor { .. })), "{r:?}");
    // Offsets near u64::MAX must not overflow.
    let r = edited(|b| {
        let e = tensor_entry(b, 0);
        put64(b, e + 48, u64::MAX - 8);
    });
    assert!(matches!(r, Err(Error::TensorOutOfRange { .. })), "{r:?}");
    // A tensor count that disagrees with the table length.
    let r = edited(|b| {
        let at = section_offset(b, 2);
        let n = u32_at(b, at);
        put32(b, at, n + 1);
    });
    assert!(matches!(r, Err(Error::Truncated { .. })), "{r:?}");
    // Renaming a tensor to its neighbour's name.
    let r = edited(|b| {
        let (e0, e1) = (tensor_entry(b, 0), tensor_entry(b, 1));
        let n0 = b[e0..e0 + 24].to_vec();
        b[e1..e1 + 24].copy_from_slice(&n0);
    });
    assert_eq!(
        r,
        Err(Error::DuplicateTensor {
            tensor: name("tok_emb")
        })
    );
}

/// A builder with the tiny encoder's tensors, letting a test change one.
fn build_with(change: impl Fn(&str, &[u32]) -> Option<(String, Dtype, Vec<u32>)>) -> Vec<u8> {
    let cfg = tiny_encoder_config();
    let mut b = ModelBuilder::new(cfg);
    for (n, dims) in tensor_list(&cfg) {
        let (n2, dt, d2) = match change(&n, &dims) {
            Some(c) => c,
            None => (n.clone(), Dtype::F32, dims.clone()),
        };
        if n2.is_empty() {
            continue;
        }
        b.add_raw(&n2, dt, &d2, vec![0u8; dt.byte_len(&d2).unwrap() as usize])
            .unwrap();
    }
    b.to_bytes()
}

#[test]
fn architecture_errors() {
    let r = load(&build_with(|n, _| {
        (n == "L1.wq").then(|| (String::new(), Dtype::F32, vec![]))
    }));
    assert_eq!(
        r,
        Err(Error::MissingTensor {
            tensor: name("L1.wq")
        })
    );
    let r = load(&build_with(|n, d| {
        (n == "L1.wq").then(|| ("L1.wz".into(), Dtype::F32, d.to_vec()))
    }));
    assert_eq!(
        r,
        Err(Error::UnknownTensor {
            tensor: name("L1.wz")
        })
    );
    let r = load(&build_with(|n, d| {
        (n == "L1.wq").then(|| ("L7.wq".into(), Dtype::F32, d.to_vec()))
    }));
    assert_eq!(
        r,
        Err(Error::UnknownTensor {
            tensor: name("L7.wq")
        })
    );
    let r = load(&build_with(|n, d| {
        (n == "L0.w1").then(|| (n.into(), Dtype::F32, vec![d[1], d[0]]))
    }));
    assert_eq!(
        r,
        Err(Error::ShapeMismatch {
            tensor: name("L0.w1"),
            expected: [32, 16, 0, 0],
            got: [16, 32, 0, 0]
        })
    );
    // Norm weights and biases are f32 only; matrices are f32, f16 or i8.
    let r = load(&build_with(|n, d| {
        (n == "L0.attn_norm.w").then(|| (n.into(), Dtype::F16, d.to_vec()))
    }));
    assert_eq!(
        r,
        Err(Error::UnsupportedDtype {
            tensor: name("L0.attn_norm.w"),
            code: Dtype::F16 as u8
        })
    );
    let r = load(&build_with(|n, d| {
        (n == "L0.wq").then(|| (n.into(), Dtype::I32, d.to_vec()))
    }));
    assert_eq!(
        r,
        Err(Error::UnsupportedDtype {
            tensor: name("L0.wq"),
            code: Dtype::I32 as u8
        })
    );
    load(&build_with(|n, d| {
        (n == "L0.wq").then(|| (n.into(), Dtype::F16, d.to_vec()))
    }))
    .unwrap();
    // An i8 matrix needs its per-row scales `<name>.s`, with one f32 per row.
    let r = load(&build_with(|n, d| {
        (n == "L0.wq").then(|| (n.into(), Dtype::I8, d.to_vec()))
    }));
    assert_eq!(
        r,
        Err(Error::MissingTensor {
            tensor: name("L0.wq.s")
        })
    );
    let r = load(&build_with(|n, d| match n {
        "L0.wq" => Some((n.into(), Dtype::I8, d.to_vec())),
        "L0.bq" => Some(("L0.wq.s".into(), Dtype::F32, vec![15])),
        _ => None,
    }));
    assert_eq!(
        r,
        Err(Error::ShapeMismatch {
            tensor: name("L0.wq.s"),
            expected: [16, 0, 0, 0],
            got: [15, 0, 0, 0]
        })
    );
    // int4 matrices take per-block scales only, `[rows, ceil(cols / 32)]`.
    let r = load(&build_with(|n, d| match n {
        "L0.wq" => Some((n.into(), Dtype::I4, d.to_vec())),
        "L0.bq" => Some(("L0.wq.s".into(), Dtype::F32, vec![16])),
        _ => None,
    }));
    assert_eq!(
        r,
        Err(Error::ShapeMismatch {
            tensor: name("L0.wq.s"),
            expected: [16, 1, 0, 0],
            got: [16, 0, 0, 0]
        })
    );
    let r = load(&build_with(|n, d| {
        (n == "L0.wq").then(|| (n.into(), Dtype::I4, d.to_vec()))
    }));
    assert_eq!(
        r,
        Err(Error::MissingTensor {
            tensor: name("L0.wq.s")
        })
    );
    // Offsets `<name>.m` belong to int4 matrices only, one per row and block.
    let r = load(&build_with(|n, d| match n {
        "L0.wq" => Some((n.into(), Dtype::I4, d.to_vec())),
        "L0.bq" => Some(("L0.wq.s".into(), Dtype::F32, vec![16, 1])),
        "L0.bk" => Some(("L0.wq.m".into(), Dtype::F32, vec![16])),
        _ => None,
    }));
    assert_eq!(
        r,
        Err(Error::ShapeMismatch {
            tensor: name("L0.wq.m"),
            expected: [16, 1, 0, 0],
            got: [16, 0, 0, 0]
        })
    );
    let r = load(&build_with(|n, d| match n {
        "L0.wq" => Some((n.into(), Dtype::I8, d.to_vec())),
        "L0.bq" => Some(("L0.wq.s".into(), Dtype::F32, vec![16, 1])),
        "L0.bk" => Some(("L0.wq.m".into(), Dtype::F32, vec![16, 1])),
        _ => None,
    }));
    assert_eq!(
        r,
        Err(Error::UnknownTensor {
            tensor: name("L0.wq.m")
        })
    );
    // (Well-formed offsets load: `backends.rs` runs asymmetric int4 models.)
    // Scales for a matrix that is not i8 are not used by anything.
    let r = load(&build_with(|n, _| {
        (n == "L0.bq").then(|| ("L0.wq.s".into(), Dtype::F32, vec![16]))
    }));
    assert!(matches!(r, Err(Error::UnknownTensor { .. })), "{r:?}");
    let r = load(&build_with(|n, _| {
        (n == "L0.bq").then(|| ("L0.attn_norm.w.s".into(), Dtype::F32, vec![16]))
    }));
    assert!(matches!(r, Err(Error::UnknownTensor { .. })), "{r:?}");
    // A decoder without tied embeddings needs an lm_head.
    let mut cfg = tiny_decoder_config();
    cfg.tied_embeddings = false;
    let mut b = ModelBuilder::new(cfg);
    for (n, dims) in tensor_list(&tiny_decoder_config()) {
        let e: u32 = dims.iter().product();
        b.add_f32(&n, &dims, &vec![0.0; e as usize]).unwrap();
    }
    assert_eq!(
        load(&b.to_bytes()),
        Err(Error::MissingTensor {
            tensor: name("lm_head")
        })
    );
}

#[test]
fn vocab_errors() {
    let v = |at: usize, val: u32| {
        edited(move |b| {
            let o = section_offset(b, 3) + at;
            put32(b, o, val);
        })
    };
    assert_eq!(v(0, 5), Err(Error::BadVocab { offset: 0 }));
    assert_eq!(v(4, 0x80), Err(Error::BadVocab { offset: 4 }));
    assert_eq!(v(8, 7), Err(Error::BadVocab { offset: 8 }));
    assert_eq!(v(12, 49), Err(Error::BadVocab { offset: 12 }));
    assert_eq!(v(20, 50), Err(Error::BadVocab { offset: 20 }));
    assert_eq!(v(28, 1), Err(Error::BadVocab { offset: 28 }));
    // Offsets must start at 0 and never decrease.
    assert_eq!(v(32, 1), Err(Error::BadVocab { offset: 32 }));
    assert_eq!(v(32 + 8, 1), Err(Error::BadVocab { offset: 40 }));
    // A token kind that is not known.
    assert_eq!(
        v(32 + 51 * 4, 7),
        Err(Error::BadVocab {
            offset: 32 + 51 * 4
        })
    );
    // Merges that name tokens outside the vocabulary.
    let mut b = random_model(tiny_encoder_config(), 3);
    let mut voc = tiny_vocab(50);
    voc.kind = TokenizerKind::ByteLevelBpe;
    voc.merges = vec![(2, 3), (4, 60)];
    b.set_vocab(voc);
    assert!(matches!(load(&b.to_bytes()), Err(Error::BadVocab { .. })));
    // A chat template that is not UTF-8.
    let mut b = random_model(tiny_encoder_config(), 3);
    let mut voc = tiny_vocab(50);
    voc.chat_template = "ok".into();
    b.set_vocab(voc);
    let mut bytes = b.to_bytes();
    let v_at = section_offset(&bytes, 3);
    let t_at = v_at + 32 + 51 * 4 + 52;
    assert_eq!(&bytes[t_at..t_at + 2], b"ok");
    bytes[t_at] = 0xff;
    seal(&mut bytes);
    assert_eq!(
        load(&bytes),
        Err(Error::BadVocab {
            offset: (t_at - v_at) as u32
        })
    );
}

#[test]
fn session_errors() {
    let f = random_model_file(tiny_encoder_config(), 2);
    let m = Model::from_bytes(f.bytes()).unwrap();
    let run = RunConfig { max_seq: 8 };
    let need = m.arena_bytes(&run).unwrap();
    let mut arena = vec![0u128; need / 16 + 2];
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
    // Exactly `need` bytes on a 16-byte boundary is enough; one less is not.
    assert!(Session::new(&m, &mut bytes[..need], run).is_ok());
    assert_eq!(
        Session::new(&m, &mut bytes[..need - 1], run).err(),
        Some(Error::ArenaTooSmall {
            needed: need as u64,
            got: need as u64 - 1
        })
    );
    // An arena starting 1 byte past a boundary pays 15 bytes of padding.
    assert_eq!(
        Session::new(&m, &mut bytes[1..need + 1], run).err(),
        Some(Error::ArenaTooSmall {
            needed: need as u64 + 15,
            got: need as u64
        })
    );
    assert_eq!(
        m.arena_bytes(&RunConfig { max_seq: 17 }),
        Err(Error::SequenceTooLong { max: 16, got: 17 })
    );
    assert_eq!(
        m.arena_bytes(&RunConfig { max_seq: 0 }),
        Err(Error::SequenceTooLong { max: 16, got: 0 })
    );
    let mut s = Session::new(&m, bytes, run).unwrap();
    assert_eq!(s.embed(&[]).err(), Some(Error::EmptyInput));
    assert_eq!(
        s.embed(&[1; 9]).err(),
        Some(Error::SequenceTooLong { max: 8, got: 9 })
    );
    assert_eq!(
        s.embed(&[1, 50]).err(),
        Some(Error::TokenOutOfRange { id: 50, vocab: 50 })
    );
    assert_eq!(
        s.encode(&[1, 2], Some(&[0, 2])).err(),
        Some(Error::TokenOutOfRange { id: 2, vocab: 2 })
    );
    assert_eq!(
        s.encode(&[1, 2, 3], Some(&[0, 1])).err(),
        Some(Error::TokenTypesLength { ids: 3, types: 2 })
    );
    assert_eq!(
        s.decode_step(1).err(),
        Some(Error::WrongArchitecture {
            expected: 1,
            got: 0
        })
    );
    // The session stays usable after an error.
    let a = s.embed(&[3, 4, 5]).unwrap().to_vec();
    assert!((a.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);

    let f = random_model_file(tiny_decoder_config(), 2);
    let m = Model::from_bytes(f.bytes()).unwrap();
    let run = RunConfig { max_seq: 4 };
    let mut arena = vec![0u8; m.arena_bytes(&run).unwrap() + 15];
    let mut s = Session::new(&m, &mut arena, run).unwrap();
    assert_eq!(
        s.embed(&[1]).err(),
        Some(Error::WrongArchitecture {
            expected: 0,
            got: 1
        })
    );
    assert_eq!(s.prefill(&[]).err(), Some(Error::EmptyInput));
    assert_eq!(
        s.decode_step(40).err(),
        Some(Error::TokenOutOfRange { id: 40, vocab: 40 })
    );
    assert_eq!(
        s.prefill(&[1, 2, 3, 4, 5]).err(),
        Some(Error::SequenceTooLong { max: 4, got: 5 })
    );
    s.prefill(&[1, 2, 3, 4]).unwrap();
    assert_eq!(
        s.decode_step(1).err(),
        Some(Error::SequenceTooLong { max: 4, got: 5 })
    );
    s.reset();
    assert!(s.decode_step(1).is_ok());

    // Feature rows: none at all, and NaN or infinite values, are refused
    // (a NaN would otherwise come out as confident logits).
    let mut cfg = tiny_encoder_config();
    cfg.input_dim = 3;
    cfg.n_classes = 2;
    let f = random_model_file(cfg, 4);
    let m = Model::from_bytes(f.bytes()).unwrap();
    let run = RunConfig { max_seq: 4 };
    let mut arena = vec![0u8; m.arena_bytes(&run).unwrap() + 15];
    let mut s = Session::new(&m, &mut arena, run).unwrap();
    assert_eq!(s.classify_features(&[]).err(), Some(Error::EmptyFeatures));
    assert_eq!(s.encode_features(&[]).err(), Some(Error::EmptyFeatures));
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert_eq!(
            s.classify_features(&[0.5, 1.0, 2.0, 0.0, bad, 1.0]).err(),
            Some(Error::NonFiniteInput { index: 4 })
        );
    }
    assert!(s.classify_features(&[0.5, 1.0, 2.0]).is_ok());
}

#[test]
fn incremental_decoding_matches_fresh_prefill() {
    let f = random_model_file(tiny_decoder_config(), 5);
    let m = Model::from_bytes(f.bytes()).unwrap();
    let run = RunConfig { max_seq: 12 };
    let ids = [3u32, 17, 1, 39, 8, 8, 20];
    let mut arena = vec![0u8; m.arena_bytes(&run).unwrap() + 15];
    let mut s = Session::new(&m, &mut arena, run).unwrap();
    let mut step_logits = Vec::new();
    for &id in &ids {
        step_logits.push(s.decode_step(id).unwrap().to_vec());
    }
    for k in 1..=ids.len() {
        let mut arena2 = vec![0u8; m.arena_bytes(&run).unwrap() + 15];
        let mut fresh = Session::new(&m, &mut arena2, run).unwrap();
        let l = fresh.prefill(&ids[..k]).unwrap();
        assert_eq!(bits(l), bits(&step_logits[k - 1]), "prefix {k}");
    }
    // Different histories give different logits (the cache is really used).
    assert_ne!(bits(&step_logits[5]), bits(&step_logits[4]));
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// Every single-byte change and every truncation of the metadata (header,
/// tables, vocabulary) gives `Ok` or an `Error`, with or without resealed
/// CRCs, and a session on any accepted model runs without panicking.
#[test]
fn mutation_sweep_never_panics() {
    let mut accepted = 0;
    for b in [
        base(),
        random_model_file(tiny_decoder_config(), 9).bytes().to_vec(),
    ] {
        let payload = section_offset(&b, 4);
        for i in 0..payload {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut m = b.clone();
                m[i] ^= mask;
                let _ = load(&m);
                seal(&mut m);
                let f = ModelFile::from_vec(m);
                if let Ok(model) = Model::from_bytes(f.bytes()) {
                    accepted += 1;
                    run_anything(&model);
                }
            }
        }
    }
    // Some edits are harmless (reserved padding, token text, flags of
    // optional data), so some mutants must load and run.
    assert!(accepted > 100, "only {accepted} mutants loaded");
    eprintln!("{accepted} resealed mutants loaded and ran");
}

fn run_anything(m: &Model) {
    let c = *m.config();
    if c.d_model as u64 * c.vocab_size as u64 > 1 << 24 {
        return;
    }
    let run = RunConfig {
        max_seq: c.max_seq.min(4),
    };
    let Ok(need) = m.arena_bytes(&run) else {
        return;
    };
    if need > 64 << 20 {
        return;
    }
    let mut arena = vec![0u8; need + 15];
    let Ok(mut s) = Session::new(m, &mut arena, run) else {
        return;
    };
    let ids = [0u32, 1, 2];
    match c.arch {
        Architecture::Encoder => {
            let _ = s.embed(&ids);
        }
        Architecture::Decoder => {
            let _ = s.prefill(&ids);
        }
    }
}

/// Integer-only models: the config word, the matrices' form, the static
/// scales and phase tables each have their own error.
#[test]
fn integer_model_errors() {
    let f32m = random_model_file(tiny_decoder_config(), 3);
    let m = Model::from_bytes(f32m.bytes()).unwrap();
    let good = integer_model_file(&m, 3);
    assert!(Model::from_bytes(good.bytes()).unwrap().config().integer);
    // Rebuilds the integer model with one tensor changed (or dropped).
    // `change(name)`: `None` keeps the tensor, `Some(None)` drops it,
    // `Some(Some(..))` replaces it.
    type Change<'c> = &'c dyn Fn(&str) -> Option<Option<(Dtype, Vec<u32>, Vec<u8>)>>;
    let rebuild = |change: Change, integer: u32| {
        let g = Model::from_bytes(good.bytes()).unwrap();
        let mut c = *g.config();
        c.integer = integer == 1;
        let mut b = ModelBuilder::new(c);
        for i in 0..g.tensor_count() {
            let t = g.tensor_at(i).unwrap();
            let n = t.name.as_str();
            let (dt, dims, data) = match change(n) {
                Some(None) => continue,
                Some(Some(x)) => x,
                None => (
                    t.dtype,
                    t.dims[..t.rank as usize].to_vec(),
                    g.tensor_bytes(&t).unwrap().to_vec(),
                ),
            };
            b.add_raw(n, dt, &dims, data).unwrap();
        }
        let mut bytes = b.to_bytes();
        if integer > 1 {
            // Config word 26 is `integer`: only 0 and 1 are valid.
            let at = section_offset(&bytes, 1) + 26 * 4;
            put32(&mut bytes, at, integer);
            mote_host::writer::seal(&mut bytes);
        }
        load(&bytes)
    };
    assert_eq!(rebuild(&|_| None, 1), Ok(()));
    assert_eq!(
        rebuild(&|_| None, 2),
        Err(Error::BadConfig {
            field: "integer",
            value: 2
        })
    );
    // The same tensors without the flag: `act` and friends are unknown.
    assert!(matches!(
        rebuild(&|_| None, 0),
        Err(Error::UnknownTensor { .. })
    ));
    // Static scales missing.
    assert_eq!(
        rebuild(&|n| (n == "L1.act").then_some(None), 1),
        Err(Error::MissingTensor {
            tensor: name("L1.act")
        })
    );
    assert_eq!(
        rebuild(&|n| (n == "act").then_some(None), 1),
        Err(Error::MissingTensor {
            tensor: name("act")
        })
    );
    assert_eq!(
        rebuild(&|n| (n == "turns").then_some(None), 1),
        Err(Error::MissingTensor {
            tensor: name("turns")
        })
    );
    assert_eq!(
        rebuild(&|n| (n == "L0.smooth_ffn").then_some(None), 1),
        Err(Error::MissingTensor {
            tensor: name("L0.smooth_ffn")
        })
    );
    // A phase table of the wrong type or length.
    assert!(matches!(
        rebuild(
            &|n| (n == "turns").then(|| Some((Dtype::F32, vec![2], vec![0; 8]))),
            1
        ),
        Err(Error::UnsupportedDtype { .. })
    ));
    assert!(matches!(
        rebuild(
            &|n| (n == "turns").then(|| Some((Dtype::I32, vec![3], vec![0; 12]))),
            1
        ),
        Err(Error::ShapeMismatch { .. })
    ));
    // A matrix with per-block scales (the integer path needs one per row).
    let wq = m.tensor("L0.wq").unwrap();
    let (rows, cols) = (wq.dims[0], wq.dims[1]);
    let nb = cols.div_ceil(32);
    assert_eq!(
        rebuild(
            &|n| (n == "L0.wq.s").then(|| Some((
                Dtype::F32,
                vec![rows, nb],
                vec![0; (4 * rows * nb) as usize]
            ))),
            1
        ),
        Err(Error::NotIntegerReady {
            tensor: name("L0.wq.s")
        })
    );
    // An f16 matrix.
    assert_eq!(
        rebuild(
            &|n| match n {
                "L0.wq" => Some(Some((
                    Dtype::F16,
                    vec![rows, cols],
                    vec![0; (2 * rows * cols) as usize]
                ))),
                "L0.wq.s" => Some(None),
                _ => None,
            },
            1
        ),
        Err(Error::NotIntegerReady {
            tensor: name("L0.wq")
        })
    );
}

/// Hostile values inside an integer-only model's own tensors (static
/// scales of 0, NaN, ±∞, 1e±38, negative; smoothing factors likewise; any
/// phase steps) load and run without a panic (arithmetic overflow checks
/// are on in tests).
#[test]
fn integer_model_hostile_values_never_panic() {
    let mut ran = 0;
    for (cfg, seed) in [(tiny_decoder_config(), 4), (tiny_encoder_config(), 5)] {
        let f32m = random_model_file(cfg, seed);
        let m = Model::from_bytes(f32m.bytes()).unwrap();
        let good = integer_model_file(&m, seed);
        let g = Model::from_bytes(good.bytes()).unwrap();
        let values = [
            0.0f32,
            f32::NAN,
            f32::INFINITY,
            -f32::INFINITY,
            1e38,
            1e-38,
            -3.0,
            1e-45,
            65504.0,
        ];
        for i in 0..g.tensor_count() {
            let t = g.tensor_at(i).unwrap();
            let n = t.name.as_str();
            let ours = n == "act" || n == "turns" || n.ends_with(".act") || n.contains(".smooth_");
            if !ours {
                continue;
            }
            for (k, v) in values.iter().enumerate() {
                let mut bytes = good.bytes().to_vec();
                let at = t.offset as usize;
                let count = t.byte_len as usize / 4;
                for e in 0..count {
                    // Every element, or every other one, gets the value.
                    if k % 2 == 0 || e % 2 == 0 {
                        let word = if n == "turns" {
                            (v.to_bits() ^ (e as u32 * 0x9e37_79b9)).to_le_bytes()
                        } else {
                            v.to_le_bytes()
                        };
                        bytes[at + 4 * e..at + 4 * e + 4].copy_from_slice(&word);
                    }
                }
                seal(&mut bytes);
                let f = ModelFile::from_vec(bytes);
                let model = Model::from_bytes(f.bytes()).unwrap();
                run_anything(&model);
                ran += 1;
            }
        }
    }
    assert!(ran > 50, "{ran}");
}
