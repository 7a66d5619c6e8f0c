//! A/B model slots (`mote_core::slot`): the newest valid slot runs, a damaged
//! or half-written one is passed over with its own error, and no flipped bit
//! anywhere in a slot ever gets a corrupt model run.
#![allow(clippy::unwrap_used)]

use mote_core::slot::{choose, open, slot_header, SlotId, SLOT_HEADER_LEN};
use mote_core::Error;
use mote_tests::*;

/// A slot region of `size` bytes (16-byte aligned storage) holding `model` with `seq`.
fn region(model: &[u8], seq: u32, size: usize) -> Vec<u128> {
    let mut words = vec![0u128; size / 16];
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    bytes[..SLOT_HEADER_LEN].copy_from_slice(&slot_header(seq, model.len() as u32));
    bytes[SLOT_HEADER_LEN..SLOT_HEADER_LEN + model.len()].copy_from_slice(model);
    words
}

fn bytes(w: &[u128]) -> &[u8] {
    bytemuck::cast_slice(w)
}

#[test]
fn the_newest_valid_slot_runs_and_a_bad_one_says_why() {
    let old = random_model(tiny_encoder_config(), 1).to_bytes();
    let new = random_model(tiny_encoder_config(), 2).to_bytes();
    let size = (old.len().max(new.len()) + SLOT_HEADER_LEN).next_multiple_of(16) + 64;
    let a = region(&old, 1, size);
    let empty = vec![0u128; size / 16];

    let c = choose(bytes(&a), bytes(&empty));
    assert_eq!(c.chosen.map(|(s, q, _)| (s, q)), Some((SlotId::A, 1)));
    assert_eq!(c.b_error, Some(Error::EmptySlot));

    let b = region(&new, 2, size);
    let c = choose(bytes(&a), bytes(&b));
    assert_eq!(c.chosen.map(|(s, q, _)| (s, q)), Some((SlotId::B, 2)));
    assert!(c.a_error.is_none() && c.b_error.is_none());

    // A newer slot whose model payload is damaged: slot A runs.
    let mut bad = b.clone();
    let at = SLOT_HEADER_LEN + new.len() - 5;
    bytemuck::cast_slice_mut::<u128, u8>(&mut bad)[at] ^= 0x10;
    let c = choose(bytes(&a), bytes(&bad));
    assert_eq!(c.chosen.map(|(s, _, _)| s), Some(SlotId::A));
    assert!(
        matches!(c.b_error, Some(Error::PayloadCrc { .. })),
        "{:?}",
        c.b_error
    );

    // A damaged slot header (here the sequence number).
    let mut bad = b.clone();
    bytemuck::cast_slice_mut::<u128, u8>(&mut bad)[5] ^= 1;
    let c = choose(bytes(&a), bytes(&bad));
    assert_eq!(c.chosen.map(|(s, _, _)| s), Some(SlotId::A));
    assert!(
        matches!(c.b_error, Some(Error::SlotHeaderCrc { .. })),
        "{:?}",
        c.b_error
    );

    // A header that claims more bytes than the slot holds (a write cut short).
    let mut bad = b.clone();
    bytemuck::cast_slice_mut::<u128, u8>(&mut bad)[..SLOT_HEADER_LEN]
        .copy_from_slice(&slot_header(2, size as u32));
    assert!(matches!(open(bytes(&bad)), Err(Error::Truncated { .. })));

    // Neither slot valid: nothing runs, both say why.
    let c = choose(bytes(&empty), &bytes(&b)[..8]);
    assert!(c.chosen.is_none());
    assert_eq!(c.a_error, Some(Error::EmptySlot));
    assert!(matches!(c.b_error, Some(Error::Truncated { .. })));
}

/// Flips one random bit at a time anywhere in the newer slot B (header,
/// model, and the unused tail) and checks the device never runs a corrupt
/// model: B runs only when the flip fell outside the bytes that matter.
#[test]
fn a_flipped_bit_never_runs_a_corrupt_model() {
    let old = random_model(tiny_decoder_config(), 3).to_bytes();
    let new = random_model(tiny_decoder_config(), 4).to_bytes();
    let size = (new.len() + SLOT_HEADER_LEN).next_multiple_of(16) + 256;
    let a = region(&old, 7, size);
    let b = region(&new, 8, size);
    let used = SLOT_HEADER_LEN + new.len();
    let mut rng = Rng(99);
    let (mut passed_over, mut still_b) = (0, 0);
    for _ in 0..3000 {
        let at = (rng.next_u64() % size as u64) as usize;
        let bit = 1u8 << (rng.next_u64() % 8);
        let mut flipped = b.clone();
        bytemuck::cast_slice_mut::<u128, u8>(&mut flipped)[at] ^= bit;
        let c = choose(bytes(&a), bytes(&flipped));
        match c.chosen {
            Some((SlotId::B, _, _)) => {
                assert!(at >= used, "a flip at byte {at} of {used} went unnoticed");
                still_b += 1;
            }
            Some((SlotId::A, seq, _)) => {
                assert_eq!(seq, 7);
                assert!(at < used && c.b_error.is_some());
                passed_over += 1;
            }
            None => panic!("slot A is intact"),
        }
    }
    assert!(passed_over > 2000 && still_b > 0, "{passed_over} {still_b}");
}
