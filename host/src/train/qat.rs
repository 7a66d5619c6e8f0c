//! Fake quantization for quantization-aware training, computed by
//! `mote-core`'s own code so that training sees exactly the values the
//! device computes with:
//!
//! - weights: [`crate::quantize::quantize_blocks_i8`] (what `mote quantize
//!   --dtype int8` stores) or [`crate::quantize::quantize_rows_i8`]
//!   (`--dtype int8-row`), dequantized as `q · scale`;
//! - matrix inputs: [`mote_core::quant::prepare_activations`] (what every
//!   int8 product in `mote-core` does to its input: symmetric int8 per
//!   32-element block, channels above the outlier limit kept in f32).
//!
//! Both pass gradients straight through (the straight-through estimator).

use crate::quantize::{quantize_blocks_i8, quantize_rows_i8};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use mote_core::quant::{prepare_activations, BLOCK, OUTLIER_LIMIT};

fn contiguous_f32<'s>(s: &'s CpuStorage, l: &Layout) -> candle_core::Result<&'s [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("fake quantization needs f32");
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("fake quantization needs a contiguous tensor"),
    }
}

/// Per-row fake quantization of the last dimension, with an identity gradient.
struct FakeQuant {
    weight: bool,
    /// Weights with one scale per row instead of per row and 32-column block.
    per_row: bool,
}

/// One activation row as the int8 kernels see it: dequantized inliers, exact outliers.
pub fn fake_quant_act_row(x: &[f32]) -> Vec<f32> {
    let n = x.len();
    let nb = n.div_ceil(BLOCK);
    let (mut inl, mut q, mut s, mut out) = (vec![0.0; n], vec![0i8; n], vec![0.0; nb], vec![0; n]);
    let k = prepare_activations(x, OUTLIER_LIMIT, &mut inl, &mut q, &mut s, &mut out);
    let mut y: Vec<f32> = q
        .iter()
        .enumerate()
        .map(|(c, &v)| v as f32 * s[c / BLOCK])
        .collect();
    for &c in &out[..k] {
        y[c as usize] = x[c as usize];
    }
    y
}

impl CustomOp1 for FakeQuant {
    fn name(&self) -> &'static str {
        if self.weight {
            "mote-fake-quant-weight"
        } else {
            "mote-fake-quant-act"
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l)?;
        let cols = l.dims().last().copied().unwrap_or(1).max(1);
        let y = if self.weight && self.per_row {
            let (q, scales) = quantize_rows_i8(x, cols);
            q.iter()
                .enumerate()
                .map(|(i, &v)| v as f32 * scales[i / cols])
                .collect()
        } else if self.weight {
            let (q, scales) = quantize_blocks_i8(x, cols);
            let nb = cols.div_ceil(BLOCK);
            q.iter()
                .enumerate()
                .map(|(i, &v)| v as f32 * scales[(i / cols) * nb + (i % cols) / BLOCK])
                .collect()
        } else {
            use rayon::prelude::*;
            x.par_chunks(cols)
                .flat_map_iter(fake_quant_act_row)
                .collect()
        };
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_res.clone()))
    }
}

/// A weight matrix as `mote quantize --dtype int8` (or `int8-row`, with
/// `per_row`) will store it.
pub fn fake_quant_weight(w: &Tensor, per_row: bool) -> candle_core::Result<Tensor> {
    w.contiguous()?.apply_op1(FakeQuant {
        weight: true,
        per_row,
    })
}

/// A matrix input as the int8 kernels quantize it.
pub fn fake_quant_act(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(FakeQuant {
        weight: false,
        per_row: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn weights_match_the_writer_and_gradients_pass_through() -> anyhow::Result<()> {
        let cols = 40;
        let w: Vec<f32> = (0..3 * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let v = Var::from_vec(w.clone(), (3, cols), &Device::Cpu)?;
        let fq = fake_quant_weight(v.as_tensor(), false)?;
        let (q, s) = quantize_blocks_i8(&w, cols);
        let got = fq.flatten_all()?.to_vec1::<f32>()?;
        for (i, g) in got.iter().enumerate() {
            let want = q[i] as f32 * s[(i / cols) * 2 + (i % cols) / BLOCK];
            assert_eq!(g.to_bits(), want.to_bits(), "element {i}");
        }
        let grads = (fq * 3.0)?.sum_all()?.backward()?;
        let g = grads.get(&v).map(|g| g.flatten_all()).transpose()?;
        assert_eq!(
            g.map(|g| g.to_vec1::<f32>()).transpose()?,
            Some(vec![3.0; 3 * cols])
        );
        Ok(())
    }

    #[test]
    fn activations_keep_outliers_exact() {
        let mut x: Vec<f32> = (0..70).map(|i| (i as f32 - 35.0) / 9.0).collect();
        x[5] = 40.0;
        let y = fake_quant_act_row(&x);
        assert_eq!(y[5], 40.0, "an outlier channel stays exact");
        // Inliers are on the block's int8 grid: block 0's scale is its inlier max / 127.
        let s0 = x[..32]
            .iter()
            .enumerate()
            .filter(|&(c, _)| c != 5)
            .fold(0f32, |m, (_, v)| m.max(v.abs()))
            / 127.0;
        for c in (0..32).filter(|&c| c != 5) {
            let k = y[c] / s0;
            assert!((k - k.round()).abs() < 1e-3, "channel {c}: {k}");
            assert!((y[c] - x[c]).abs() <= s0 * 0.5 + 1e-6);
        }
    }
}
