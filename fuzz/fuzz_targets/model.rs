//! Any bytes as a `.mote` model: `Model::from_bytes` either rejects them
//! with an `Error` or accepts them, and then a full inference (encoder
//! `embed` or decoder `prefill`) on token ids taken from the input must
//! return an output or an `Error`, never panic, hang or overrun.
//!
//! Inputs whose last byte is odd get their CRCs recomputed first, so the
//! mutations reach the config, tensor table, vocabulary and kernels instead
//! of stopping at the checksum (as a file written by a buggy or hostile
//! writer would).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mote_core::{Architecture, Model, RunConfig, Session};

fuzz_target!(|data: &[u8]| {
    // The reader needs 16-byte alignment: copy into u128 storage.
    let mut store = vec![0u128; data.len().div_ceil(16)];
    let view: &mut [u8] = bytemuck::cast_slice_mut(&mut store);
    view[..data.len()].copy_from_slice(data);
    if data.last().is_some_and(|b| b & 1 == 1) {
        seal(&mut view[..data.len()]);
    }
    let Ok(model) = Model::from_bytes(&view[..data.len()]) else {
        return;
    };
    let c = *model.config();
    let seq = c.max_seq.min(4);
    let run = RunConfig { max_seq: seq };
    let Ok(need) = model.arena_bytes(&run) else {
        return;
    };
    if need > 64 << 20 {
        return; // a valid but huge model: not this target's concern
    }
    let mut arena = vec![0u8; need + 15];
    let Ok(mut s) = Session::new(&model, &mut arena, run) else {
        return;
    };
    let ids: Vec<u32> = data
        .iter()
        .rev()
        .take(seq as usize)
        .map(|&b| b as u32 % c.vocab_size.max(1))
        .collect();
    let _ = match c.arch {
        Architecture::Encoder => s.embed(&ids).map(|o| o.len()),
        Architecture::Decoder => s.prefill(&ids).map(|o| o.len()),
    };
});

/// Recomputes the payload and header CRCs (docs/FORMAT.md) in place.
fn seal(out: &mut [u8]) {
    if out.len() < 32 {
        return;
    }
    let crc = mote_core::format::CRC32;
    let sections = u16::from_le_bytes([out[6], out[7]]) as usize;
    let table_end = (32 + 24 * sections).min(out.len());
    let payload = crc.checksum(&out[table_end..]);
    out[16..20].copy_from_slice(&payload.to_le_bytes());
    let mut d = crc.digest();
    d.update(&out[..28]);
    d.update(&out[32..table_end]);
    let header = d.finalize();
    out[28..32].copy_from_slice(&header.to_le_bytes());
}
