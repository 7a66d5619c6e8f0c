//! The WAV reader on any bytes (`mote_host::wav::read_bytes`): an error or
//! a clip, never a panic, a hang or an allocation the input does not pay
//! for (a chunk's claim is checked against the bytes there are).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Half the inputs get a valid RIFF/WAVE/fmt header (16 kHz mono 16-bit,
    // or whatever the input's first bytes make of its fields), so mutations
    // reach the chunk walk, the decoders and the resampler.
    let mut framed = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".to_vec();
    framed.extend_from_slice(data);
    for bytes in [data, &framed[..]] {
        if let Ok(clip) = mote_host::wav::read_bytes(bytes) {
            assert!(clip.source.channels > 0 && clip.source.rate > 0);
            let _ = clip.source.check_device();
        }
    }
});
