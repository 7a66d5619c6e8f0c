//! The format's extension rule (`docs/FORMAT.md`, "Growing the format"):
//! what an old reader does with a newer file and a new reader with an older
//! one, and loading that stays linear in the size of the tensor table.
#![allow(clippy::unwrap_used)]

use mote_core::format::{HEADER_LEN, SECTION_ENTRY_LEN, SECTION_OPTIONAL, TENSOR_ENTRY_LEN};
use mote_core::{Error, Model};
use mote_host::writer::seal;
use mote_host::ModelFile;
use mote_tests::*;

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
fn sections(b: &[u8]) -> usize {
    u16::from_le_bytes([b[6], b[7]]) as usize
}
fn sec(i: usize) -> usize {
    HEADER_LEN + i * SECTION_ENTRY_LEN
}
fn find_section(b: &[u8], kind: u32) -> usize {
    (0..sections(b))
        .find(|&i| u32_at(b, sec(i)) == kind)
        .unwrap()
}

fn load(b: &[u8]) -> Result<Model<'_>, Error> {
    Model::from_bytes(b)
}

/// A model's bytes in 16-byte aligned storage, with an edit applied and the
/// CRCs resealed.
fn edited(bytes: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> ModelFile {
    let mut b = bytes.to_vec();
    edit(&mut b);
    seal(&mut b);
    ModelFile::from_vec(b)
}

/// `bytes` with `extra` bytes (a multiple of 16) inserted at the end of the
/// section of `kind`, which grows by as much; every later section and
/// tensor payload moves along.
fn grow_section(bytes: &[u8], kind: u32, extra: &[u8]) -> Vec<u8> {
    assert_eq!(extra.len() % 16, 0);
    let i = find_section(bytes, kind);
    let (off, len) = (u64_at(bytes, sec(i) + 8), u64_at(bytes, sec(i) + 16));
    let at = (off + len) as usize;
    let mut b = bytes[..at].to_vec();
    b.extend_from_slice(extra);
    b.extend_from_slice(&bytes[at..]);
    let shift = extra.len() as u64;
    put64(&mut b, sec(i) + 16, len + shift);
    for j in 0..sections(&b) {
        let o = u64_at(&b, sec(j) + 8);
        if o >= at as u64 {
            put64(&mut b, sec(j) + 8, o + shift);
        }
    }
    let t = u64_at(&b, sec(find_section(&b, 2)) + 8) as usize;
    for k in 0..u32_at(&b, t) as usize {
        let e = t + 8 + k * TENSOR_ENTRY_LEN + 48;
        let o = u64_at(&b, e);
        put64(&mut b, e, o + shift);
    }
    let total = b.len() as u64;
    put64(&mut b, 8, total);
    b
}

/// A model with a vocabulary section (kind 3), so a section can be
/// re-flagged without breaking the model.
fn with_vocab() -> ModelFile {
    use mote_core::vocab::{kind, PreTokenizer, TokenizerKind};
    let cfg = tiny_encoder_config();
    let mut b = random_model(cfg, 5);
    b.set_vocab(mote_host::VocabData {
        kind: TokenizerKind::WordPiece,
        flags: 1,
        pre_tokenizer: PreTokenizer::Bert,
        tokens: (0..cfg.vocab_size)
            .map(|i| (format!("t{i}").into_bytes(), kind::NORMAL))
            .collect(),
        merges: vec![],
        unk_id: 0,
        chat_template: String::new(),
    });
    ModelFile::from_vec(b.to_bytes())
}

/// An old reader and a newer file: a section it cannot read (a kind it
/// does not know, a newer version of a kind it knows, flag bits it does not
/// know) is skipped when optional and refused otherwise, naming what it
/// lacks; config words past the ones it knows must be 0.
#[test]
fn old_reader_newer_file() {
    let f = with_vocab();
    let base = f.bytes();
    let plain = Model::from_bytes(base).unwrap();
    assert!(!plain.vocab().is_empty());
    let v = find_section(base, 3);
    let flagged = |kind: u32, flags: u32| {
        edited(base, |b| {
            put32(b, sec(v), kind);
            put32(b, sec(v) + 4, flags);
        })
    };
    // A newer kind, optional: skipped; required: refused.
    let f = flagged(0x100, SECTION_OPTIONAL | (3 << 16));
    let m = load(f.bytes()).unwrap();
    assert!(m.vocab().is_empty());
    assert_eq!(m.config(), plain.config());
    let f = flagged(0x100, 3 << 16);
    assert_eq!(
        load(f.bytes()).err(),
        Some(Error::UnknownSection { kind: 0x100 })
    );
    // A known kind at a newer version: skipped when optional, else refused.
    let f = flagged(3, SECTION_OPTIONAL | (1 << 16));
    assert!(load(f.bytes()).unwrap().vocab().is_empty());
    let f = flagged(3, 1 << 16);
    assert_eq!(
        load(f.bytes()).err(),
        Some(Error::SectionVersion {
            kind: 3,
            version: 1,
            supported: 0
        })
    );
    let t = find_section(base, 2);
    let f = edited(base, |b| put32(b, sec(t) + 4, 2 << 16));
    assert_eq!(
        load(f.bytes()).err(),
        Some(Error::SectionVersion {
            kind: 2,
            version: 2,
            supported: 0
        })
    );
    // Reserved flag bits: the same.
    let f = flagged(3, 1 << 3);
    assert_eq!(
        load(f.bytes()).err(),
        Some(Error::SectionFlags {
            kind: 3,
            flags: 1 << 3
        })
    );
    assert!(load(flagged(3, SECTION_OPTIONAL | (1 << 3)).bytes()).is_ok());
    // Config words past the 28 this reader knows: 0 is "feature off" and
    // loads the same model; anything else names the word.
    let zeros = ModelFile::from_vec({
        let mut b = grow_section(base, 1, &[0u8; 16]);
        seal(&mut b);
        b
    });
    let m = load(zeros.bytes()).unwrap();
    assert_eq!(m.config(), plain.config());
    assert!(!m.vocab().is_empty());
    let mut extra = [0u8; 16];
    extra[8] = 5;
    let newer_cfg = ModelFile::from_vec({
        let mut b = grow_section(base, 1, &extra);
        seal(&mut b);
        b
    });
    assert_eq!(
        load(newer_cfg.bytes()).err(),
        Some(Error::NewerConfig { word: 30, value: 5 })
    );
}

/// A model whose tensor table has at least `n` entries: the tiny encoder
/// with as many layers as that takes.
fn big_table_model(n: usize) -> ModelFile {
    let mut cfg = tiny_encoder_config();
    cfg.n_layers = 1;
    let per_layer = tensor_list(&cfg).len()
        - tensor_list(&{
            let mut c = cfg;
            c.n_layers = 0;
            c
        })
        .len();
    cfg.n_layers = n.div_ceil(per_layer) as u32;
    random_model_file(cfg, 9)
}

/// A new reader and an older file: every model the project ships (written
/// by earlier sessions' writers) loads, and a file of another format
/// version is refused by version.
#[test]
fn new_reader_older_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "mote") {
            let f = ModelFile::read(&p).unwrap();
            Model::from_bytes(f.bytes()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(
        n >= 3,
        "the shipped models were not found in {}",
        dir.display()
    );
    let f = random_model_file(tiny_encoder_config(), 6);
    let v1 = edited(f.bytes(), |b| b[4..6].copy_from_slice(&1u16.to_le_bytes()));
    assert_eq!(
        load(v1.bytes()).err(),
        Some(Error::UnsupportedVersion { found: 1 })
    );
}

/// A table of 100,000 tensors loads (linear in the table: the duplicate
/// and presence checks use one hash map of the names on hosts), and a
/// duplicate name at its very end is found. The time is in
/// `cargo bench --bench load` (tests/benches/load.rs).
#[test]
fn a_table_of_100k_tensors_loads() {
    let f = big_table_model(100_000);
    let m = load(f.bytes()).unwrap();
    assert!(m.tensor_count() >= 100_000, "{}", m.tensor_count());
    let last = m.tensor_count() as usize - 1;
    let dup = edited(f.bytes(), |b| {
        let t = u64_at(b, sec(find_section(b, 2)) + 8) as usize + 8;
        let first: Vec<u8> = b[t..t + 24].to_vec();
        let e = t + last * TENSOR_ENTRY_LEN;
        b[e..e + 24].copy_from_slice(&first);
    });
    assert!(
        matches!(load(dup.bytes()), Err(Error::DuplicateTensor { .. })),
        "{:?}",
        load(dup.bytes()).err()
    );
}
