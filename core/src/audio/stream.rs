//! Streaming: samples pushed as they arrive, a feature row each hop, from
//! a ring buffer of the last frame's samples. Row `t` of a stream is row
//! `t` of [`FrontEnd::features`] on the same samples, bit for bit (both
//! compute [`FrontEnd::frame`] on the same `frame_len` samples).

use super::{FrontEnd, Scratch, MAX_N_FFT};
use crate::{Error, Result};
use heapless::HistoryBuf;

/// A front end fed sample by sample.
pub struct Stream<'f> {
    fe: FrontEnd<'f>,
    ring: HistoryBuf<i16, MAX_N_FFT>,
    /// Samples pushed since the last row (or since the start).
    pending: u32,
    /// Rows produced.
    rows: u32,
}

impl<'f> Stream<'f> {
    /// A stream over `fe`. A front end that clamps by the whole clip's
    /// maximum (`dynamic_range`, Whisper) cannot stream:
    /// [`Error::AudioStreaming`].
    pub fn new(fe: FrontEnd<'f>) -> Result<Self> {
        if fe.dynamic_range != 0.0 {
            return Err(Error::AudioStreaming);
        }
        Ok(Stream {
            fe,
            ring: HistoryBuf::new(),
            pending: 0,
            rows: 0,
        })
    }

    /// Rows produced so far (row `t` starts at sample `t · hop`).
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Pushes samples; calls `row(t, values)` for each feature row they
    /// complete, in order. Stops at the first error `row` returns.
    pub fn push<E>(
        &mut self,
        pcm: &[i16],
        scratch: &mut Scratch,
        mut row: impl FnMut(u32, &[f32]) -> core::result::Result<(), E>,
    ) -> core::result::Result<(), E>
    where
        E: From<Error>,
    {
        let len = self.fe.frame_len as usize;
        let (hop, first) = (self.fe.hop, self.fe.frame_len);
        for &x in pcm {
            self.ring.write(x);
            self.pending += 1;
            let due = if self.rows == 0 { first } else { hop };
            if self.pending < due {
                continue;
            }
            self.pending = 0;
            let (a, b) = self.ring.as_slices();
            // The last `len` samples, oldest first: a's tail then b, or b's tail.
            let skip = (a.len() + b.len()).saturating_sub(len);
            let (a, b) = if skip <= a.len() {
                (a.get(skip..).unwrap_or(&[]), b)
            } else {
                (b.get(skip - a.len()..).unwrap_or(&[]), &[][..])
            };
            let values = self.fe.frame(a, b, scratch)?;
            row(self.rows, values)?;
            self.rows += 1;
        }
        Ok(())
    }
}
