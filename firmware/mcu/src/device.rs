//! What every device app does with the flash and the host, without
//! `core::fmt`: read a flash region, print output bits.

/// A flash region the memory map reserves (slots, input).
#[allow(unsafe_code)]
pub fn flash(addr: usize, len: usize) -> &'static [u8] {
    // SAFETY: `build.rs` places these regions inside the board's flash,
    // outside the firmware's own sections (memory.x gives the linker only the
    // code part); nothing writes flash while the firmware runs, and any byte
    // value is a valid u8.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len) }
}

/// Writes `bytes` to the host's standard output (semihosting).
pub fn out(bytes: &[u8]) {
    use semihosting::io::Write as _;
    if let Ok(mut o) = semihosting::io::stdout() {
        let _ = o.write_all(bytes);
    }
}

/// Prints `label:` and the bits of each value as ` ` and 8 hex digits, one
/// line, in chunks to keep the number of semihosting calls small.
pub fn print_bits(label: &str, values: &[f32]) {
    let mut buf = [0u8; 512];
    let mut len = 0;
    for &b in label.as_bytes().iter().chain(b":") {
        if let Some(slot) = buf.get_mut(len) {
            *slot = b;
            len += 1;
        }
    }
    for v in values {
        if len + 9 > buf.len() {
            out(buf.get(..len).unwrap_or(&[]));
            len = 0;
        }
        let bits = v.to_bits();
        if let Some(field) = buf.get_mut(len..len + 9) {
            field[0] = b' ';
            for (i, c) in field[1..].iter_mut().enumerate() {
                let nibble = (bits >> (28 - 4 * i)) & 0xf;
                *c = b"0123456789abcdef"[nibble as usize];
            }
            len += 9;
        }
    }
    out(buf.get(..len).unwrap_or(&[]));
    out(b"\n");
}

/// `n` in decimal, written into the end of `buf` (for apps without `core::fmt`).
pub fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        if let Some(d) = buf.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    buf.get(at..).unwrap_or(&[])
}
