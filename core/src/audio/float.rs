//! The f32 front end: `microfft`'s real FFT and `libm`'s logarithms, the
//! same operations in the same order on every target (Rust never fuses or
//! reorders float operations), so the same bits everywhere.

use super::{FrontEnd, LogBase, Scratch};
use microfft::real;

/// One frame (`a` then `b`, `frame_len` samples in all) into `s.row`.
pub(super) fn frame(fe: &FrontEnd, a: &[i16], b: &[i16], s: &mut Scratch) {
    let n = fe.n_fft as usize;
    let Some(buf) = s.buf.get_mut(..n + 2) else {
        return;
    };
    let buf: &mut [f32] = bytemuck::cast_slice_mut(buf);
    let samples = a.iter().chain(b);
    let window = fe.window.chunks_exact(4);
    let mut len = 0;
    for ((x, &pcm), w) in buf.iter_mut().zip(samples).zip(window) {
        *x = (pcm as f32 / 32768.0) * f32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        len += 1;
    }
    if let Some(pad) = buf.get_mut(len..n) {
        pad.fill(0.0);
    }
    rfft(buf, n);
    // microfft packs the Nyquist bin's real part into bin 0's imaginary
    // part. Powers go in place: bin k's power into slot k, after slots 2k
    // and 2k+1 (bin k) are read; slot k held bin k/2, read before.
    let nyquist = buf.get(1).copied().unwrap_or(0.0);
    let half = n / 2;
    if let Some(dc) = buf.get_mut(0) {
        *dc *= *dc;
    }
    for k in 1..half {
        let (re, im) = (buf.get(2 * k).copied(), buf.get(2 * k + 1).copied());
        if let (Some(re), Some(im), Some(p)) = (re, im, buf.get_mut(k)) {
            *p = re * re + im * im;
        }
    }
    if let Some(p) = buf.get_mut(half) {
        *p = nyquist * nyquist;
    }
    let power = buf.get(..=half).unwrap_or(&[]);
    let mut weights = fe.weights.chunks_exact(4);
    for (m, out) in s.row.iter_mut().take(fe.n_mels as usize).enumerate() {
        let (first, count) = fe.band(m);
        let bins = power.get(first..first + count).unwrap_or(&[]);
        let mut acc = 0.0f32;
        for (p, w) in bins.iter().zip(weights.by_ref()) {
            acc += f32::from_le_bytes([w[0], w[1], w[2], w[3]]) * p;
        }
        let v = acc.max(fe.floor);
        let v = match fe.log {
            LogBase::E => libm::logf(v),
            LogBase::Ten => libm::log10f(v),
        };
        *out = (v - fe.offset) * fe.scale;
    }
}

/// `microfft`'s real FFT of `buf[..n]` in place (`n` a power of two the
/// section allows: 16 to 512).
fn rfft(buf: &mut [f32], n: usize) {
    macro_rules! sized {
        ($($n:literal => $f:ident),*) => {
            match n {
                $($n => {
                    if let Some(b) = buf.get_mut(..$n).and_then(|b| <&mut [f32; $n]>::try_from(b).ok()) {
                        let _in_place = real::$f(b);
                    }
                })*
                _ => {}
            }
        };
    }
    sized!(16 => rfft_16, 32 => rfft_32, 64 => rfft_64, 128 => rfft_128, 256 => rfft_256, 512 => rfft_512);
}
