//! The audio front end on any section bytes and any samples
//! (`mote_core::audio`): a section is refused with an error or computes
//! finite rows for every clip, whole or streamed, with the same bits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mote_core::audio::{FrontEnd, Scratch, Stream};

/// A small valid section (16-point FFT, 2 bands) for `variant`, so
/// mutations reach the tables and the arithmetic, not only the header.
fn seed(variant: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for w in [variant, 16_000, 12, 4, 16, 2, 2, 0] {
        b.extend(w.to_le_bytes());
    }
    for f in [1e-6f32, 0.0, 0.0, 1.0] {
        b.extend(f.to_le_bytes());
    }
    b.extend([0u8; 16]);
    let window = |i: usize| 0.5 - 0.5 * (i as f32 * core::f32::consts::PI / 6.0).cos();
    for i in 0..12 {
        if variant == 0 {
            b.extend(window(i).to_le_bytes());
        } else {
            b.extend(((window(i) * 32768.0) as u16).to_le_bytes());
        }
    }
    for (first, count) in [(1u16, 3u16), (3, 4)] {
        b.extend(first.to_le_bytes());
        b.extend(count.to_le_bytes());
    }
    for w in [0.5f32, 1.0, 0.5, 0.25, 0.5, 1.0, 0.25] {
        if variant == 0 {
            b.extend(w.to_le_bytes());
        } else {
            b.extend(((w * 32768.0) as u16).to_le_bytes());
        }
    }
    while b.len() % 4 != 0 {
        b.push(0);
    }
    if variant == 1 {
        b.extend(0i32.to_le_bytes());
        b.extend((-45426i32).to_le_bytes());
    }
    b
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    // The first byte picks the section: the input itself, or a seed with
    // the input's next bytes XORed in at positions the input names.
    let seeded;
    let (section, pcm_bytes) = match head % 3 {
        0 => rest.split_at(rest.len() / 2),
        v => {
            let mut s = seed(u32::from(v - 1));
            let (edits, pcm) = rest.split_at((rest.len() / 2) & !1);
            for e in edits.chunks_exact(2) {
                let at = e[0] as usize % s.len();
                s[at] ^= e[1];
            }
            seeded = s;
            (&seeded[..], pcm)
        }
    };
    let Ok(fe) = FrontEnd::parse(section) else {
        return;
    };
    let pcm: Vec<i16> = pcm_bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let mut scratch = Box::new(Scratch::new());
    let frames = fe.frames(pcm.len());
    let mut clip = vec![0.0f32; frames * fe.n_mels as usize];
    if fe.features(&pcm, &mut scratch, &mut clip).is_err() {
        assert_eq!(frames, 0);
        return;
    }
    assert!(clip.iter().all(|v| v.is_finite()));
    if let Ok(mut stream) = Stream::new(fe) {
        let mut rows = Vec::new();
        for piece in pcm.chunks(37) {
            stream
                .push::<mote_core::Error>(piece, &mut scratch, |_, r| {
                    rows.extend_from_slice(r);
                    Ok(())
                })
                .unwrap();
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&rows), bits(&clip));
    }
});
