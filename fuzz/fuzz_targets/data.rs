//! The training-data readers on any bytes: R's XDR serialization (the
//! Austen novels' database) and the digits CSV. An error or a result,
//! never a panic, a hang or an allocation the input does not pay for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mote_host::train::data::{parse_digits, rserial};

fuzz_target!(|data: &[u8]| {
    // Half the inputs get the header R data starts with, so mutations reach the objects.
    let mut framed = b"X\n\0\0\0\x02\0\x04\x02\x01\0\x02\x03\0".to_vec();
    framed.extend_from_slice(data);
    let _ = rserial::parse(data);
    let _ = rserial::parse(&framed);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_digits(text);
    }
});
