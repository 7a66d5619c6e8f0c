//! The labels section: class names written, read back, kept through
//! quantization, and each malformed byte refused with its offset.
#![allow(clippy::unwrap_used)]

use mote_core::{Error, Model, SectionKind};
use mote_host::quantize::{quantize, Target};
use mote_host::ModelFile;
use mote_tests::{random_model, tiny_encoder_config};

fn classifier(names: &[&str]) -> (mote_host::ModelBuilder, Vec<u8>) {
    let mut cfg = tiny_encoder_config();
    cfg.n_classes = names.len() as u32;
    let mut b = random_model(cfg, 5);
    b.set_labels(names).unwrap();
    let bytes = b.to_bytes();
    (b, bytes)
}

/// The labels section's bytes inside a file, and its offset.
fn labels_at(bytes: &[u8]) -> usize {
    (0..8)
        .filter_map(|i| mote_core::format::section(bytes, i))
        .find(|s| s.kind == SectionKind::Labels as u32)
        .unwrap()
        .offset as usize
}

#[test]
fn names_round_trip_and_survive_quantization() {
    let names = ["business", "entertainment", "politics", "sport", "tech ✓"];
    let (_, bytes) = classifier(&names);
    let f = ModelFile::from_vec(bytes);
    let m = Model::from_bytes(f.bytes()).unwrap();
    let got: Vec<&str> = (0..m.labels().len())
        .map(|i| m.labels().get(i).unwrap())
        .collect();
    assert_eq!(got, names);
    assert_eq!(m.labels().get(5), None);
    let (q, _) = quantize(&m, Target::Int8, |_, _| {}).unwrap();
    let qf = ModelFile::from_vec(q.to_bytes());
    let qm = Model::from_bytes(qf.bytes()).unwrap();
    assert_eq!(qm.labels().get(4), Some("tech ✓"));
}

#[test]
fn the_writer_refuses_bad_names() {
    let mut cfg = tiny_encoder_config();
    cfg.n_classes = 2;
    let mut b = random_model(cfg, 5);
    assert!(b.set_labels(&["one"]).is_err());
    assert!(b.set_labels(&["a", ""]).is_err());
    assert!(b.set_labels(&["a", "b\n"]).is_err());
    assert!(b.set_labels(&["a", &"x".repeat(65)]).is_err());
}

#[test]
fn every_malformed_byte_is_refused_with_its_offset() {
    let (_, good) = classifier(&["yes", "no", "maybe"]);
    let at = labels_at(&good);
    let put = |b: &mut Vec<u8>, off: usize, v: u32| {
        b[at + off..at + off + 4].copy_from_slice(&v.to_le_bytes());
        mote_host::writer::seal(b);
    };
    let refused = |b: Vec<u8>| -> u32 {
        let f = ModelFile::from_vec(b);
        match Model::from_bytes(f.bytes()) {
            Err(Error::BadLabels { offset }) => offset,
            other => panic!("expected BadLabels, got {other:?}"),
        }
    };
    // Layout: count, reserved, 4 offsets (0, 3, 5, 10), blob "yesnomaybe".
    let cases: &[(usize, u32, u32)] = &[
        (0, 2, 0),   // count ≠ n_classes
        (4, 1, 4),   // reserved
        (8, 1, 8),   // first offset not 0
        (12, 6, 16), // offsets decreasing (3 → 6 > 5)
        (20, 9, 20), // last offset ≠ blob length
    ];
    for &(off, v, want) in cases {
        let mut b = good.clone();
        put(&mut b, off, v);
        assert_eq!(refused(b), want, "field at {off} = {v}");
    }
    // Invalid UTF-8 and a control character inside a name.
    for byte in [0xff, 0x07] {
        let mut b = good.clone();
        b[at + 24 + 1] = byte;
        mote_host::writer::seal(&mut b);
        assert_eq!(refused(b), 24, "name byte {byte:#x}");
    }
}
