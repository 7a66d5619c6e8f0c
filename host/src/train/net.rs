//! The transformer `mote-core` runs, written in candle so it can be trained:
//! the same parameter names, shapes and arithmetic as the runtime (pre-norm
//! LayerNorm blocks with biases, exact-erf GELU, learned positions, a token
//! embedding or a feature projection, a pooled classifier head or a tied LM
//! head). With `qat` on, every quantizable matrix and every matrix input goes
//! through `mote-core`'s own int8 rounding ([`super::qat`]).

use super::qat;
use crate::quantize::is_quantizable;
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use mote_core::config::{Activation, Architecture, NormKind, PositionKind};
use mote_core::Config;
use std::collections::HashMap;

/// A small deterministic generator (SplitMix64) for initialisation, shuffling
/// and augmentation (and the tests' seeded models): the same seed gives the same run.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[-1, 1)`.
    pub fn signed(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-7);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// Softmax over the last dimension in one pass (attention's biggest tensor),
/// with an optional causal mask (key `j` > query `i` gets 0), and its gradient
/// `y ⊙ (g − Σ g ⊙ y)`.
struct Softmax {
    causal: bool,
}

impl candle_core::CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "mote-softmax"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let candle_core::CpuStorage::F32(v) = s else {
            candle_core::bail!("softmax needs f32");
        };
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("softmax needs a contiguous tensor");
        };
        let dims = l.dims();
        let cols = dims.last().copied().unwrap_or(1).max(1);
        let rows_per = if dims.len() >= 2 {
            dims[dims.len() - 2]
        } else {
            1
        };
        let mut out = v[a..b].to_vec();
        let causal = self.causal;
        out.par_chunks_mut(cols).enumerate().for_each(|(r, row)| {
            let allowed = if causal {
                (r % rows_per + 1).min(cols)
            } else {
                cols
            };
            let (keep, masked) = row.split_at_mut(allowed);
            let m = keep.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let mut sum = 0f32;
            for x in keep.iter_mut() {
                *x = (*x - m).exp();
                sum += *x;
            }
            let inv = 1.0 / sum;
            for x in keep.iter_mut() {
                *x *= inv;
            }
            masked.fill(0.0);
        });
        Ok((candle_core::CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let dot = (grad * res)?.sum_keepdim(D::Minus1)?;
        Ok(Some((grad.broadcast_sub(&dot)? * res)?))
    }
}

/// A batch of model input.
pub enum Input {
    /// Token ids, `[batch, seq]` u32.
    Tokens(Tensor),
    /// Feature rows, `[batch, seq, input_dim]` f32.
    Features(Tensor),
}

/// How a parameter starts.
#[derive(Clone, Copy)]
enum Init {
    Normal(f32),
    Zeros,
    Ones,
}

/// A parameter's name, shape and values.
pub type NamedValues = (String, Vec<usize>, Vec<f32>);

/// The parameters of a model, in `.mote` order, with their names.
pub struct Net {
    /// The architecture (what `mote-core` will run).
    pub cfg: Config,
    /// Parameters in `.mote` tensor order.
    pub params: Vec<(String, Var)>,
    /// QAT weights get one int8 scale per row (`mote quantize --dtype
    /// int8-row`) instead of per row and 32-column block.
    pub row_scales: bool,
    index: HashMap<String, usize>,
}

/// Checks that `cfg` is in the family this trainer builds.
fn check_family(cfg: &Config) -> Result<()> {
    // The reader's own checks, before a parameter is made (a net the reader
    // would refuse trains every step and only fails at export).
    Config::from_words(&cfg.to_words())
        .map_err(|e| anyhow::anyhow!("the model to train is invalid: {e}"))?;
    if cfg.norm != NormKind::LayerNorm
        || !cfg.pre_norm
        || cfg.activation != Activation::Gelu
        || cfg.positions != PositionKind::Learned
        || !cfg.bias
        || cfg.embedding_norm
        || cfg.n_token_types != 0
    {
        bail!("the trainer builds pre-norm LayerNorm/GELU/learned-position models with biases");
    }
    match cfg.arch {
        Architecture::Encoder if cfg.n_classes == 0 => {
            bail!("an encoder to train needs a classifier head (n_classes > 0)")
        }
        Architecture::Decoder if !cfg.tied_embeddings => {
            bail!("a decoder to train ties its LM head to the token embedding")
        }
        _ => Ok(()),
    }
}

/// Names, shapes and initialisations of every parameter of `cfg`, in order.
fn layout(cfg: &Config) -> Vec<(String, Vec<usize>, Init)> {
    let d = cfg.d_model as usize;
    let (q, kv, ff) = (cfg.q_dim(), cfg.kv_dim(), cfg.d_ff as usize);
    let layers = cfg.n_layers as usize;
    // GPT-2's initialisation: N(0, 0.02), residual projections scaled by depth.
    let std = 0.02;
    let resid = std / (2.0 * layers as f32).sqrt();
    let mut v: Vec<(String, Vec<usize>, Init)> = Vec::new();
    let mut push = |n: String, s: Vec<usize>, i: Init| v.push((n, s, i));
    if cfg.input_dim > 0 {
        let f = cfg.input_dim as usize;
        push(
            "in_proj.w".into(),
            vec![d, f],
            Init::Normal(1.0 / (f as f32).sqrt()),
        );
        push("in_proj.b".into(), vec![d], Init::Zeros);
    } else {
        push(
            "tok_emb".into(),
            vec![cfg.vocab_size as usize, d],
            Init::Normal(std),
        );
    }
    push(
        "pos_emb".into(),
        vec![cfg.max_seq as usize, d],
        Init::Normal(std),
    );
    for l in 0..layers {
        let n = |s: &str| format!("L{l}.{s}");
        push(n("attn_norm.w"), vec![d], Init::Ones);
        push(n("attn_norm.b"), vec![d], Init::Zeros);
        push(n("wq"), vec![q, d], Init::Normal(std));
        push(n("bq"), vec![q], Init::Zeros);
        push(n("wk"), vec![kv, d], Init::Normal(std));
        push(n("bk"), vec![kv], Init::Zeros);
        push(n("wv"), vec![kv, d], Init::Normal(std));
        push(n("bv"), vec![kv], Init::Zeros);
        push(n("wo"), vec![d, q], Init::Normal(resid));
        push(n("bo"), vec![d], Init::Zeros);
        push(n("ffn_norm.w"), vec![d], Init::Ones);
        push(n("ffn_norm.b"), vec![d], Init::Zeros);
        push(n("w1"), vec![ff, d], Init::Normal(std));
        push(n("b1"), vec![ff], Init::Zeros);
        push(n("w2"), vec![d, ff], Init::Normal(resid));
        push(n("b2"), vec![d], Init::Zeros);
    }
    push("out_norm.w".into(), vec![d], Init::Ones);
    push("out_norm.b".into(), vec![d], Init::Zeros);
    if cfg.n_classes > 0 {
        push(
            "cls.w".into(),
            vec![cfg.n_classes as usize, d],
            Init::Normal(std),
        );
        push("cls.b".into(), vec![cfg.n_classes as usize], Init::Zeros);
    }
    v
}

impl Net {
    /// A freshly initialised model (the same `seed` gives the same weights).
    pub fn new(cfg: Config, seed: u64) -> Result<Net> {
        check_family(&cfg)?;
        let mut rng = Rng(seed);
        let mut params = Vec::new();
        for (name, shape, init) in layout(&cfg) {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = match init {
                Init::Normal(s) => (0..n).map(|_| rng.normal() * s).collect(),
                Init::Zeros => vec![0.0; n],
                Init::Ones => vec![1.0; n],
            };
            let t = Tensor::from_vec(data, shape, &Device::Cpu)?;
            params.push((name, Var::from_tensor(&t)?));
        }
        Ok(Net::from_params(cfg, params))
    }

    fn from_params(cfg: Config, params: Vec<(String, Var)>) -> Net {
        let index = params
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
        Net {
            cfg,
            params,
            row_scales: false,
            index,
        }
    }

    /// A model with the given parameter values (names and shapes must match `cfg`).
    pub fn from_tensors(cfg: Config, tensors: &HashMap<String, Tensor>) -> Result<Net> {
        check_family(&cfg)?;
        let mut params = Vec::new();
        for (name, shape, _) in layout(&cfg) {
            let Some(t) = tensors.get(&name) else {
                bail!("checkpoint has no tensor {name}");
            };
            if t.dims() != shape.as_slice() {
                bail!(
                    "checkpoint tensor {name} has shape {:?}, the config needs {shape:?}",
                    t.dims()
                );
            }
            params.push((name, Var::from_tensor(&t.to_dtype(DType::F32)?)?));
        }
        Ok(Net::from_params(cfg, params))
    }

    /// Number of trainable values.
    pub fn parameter_count(&self) -> usize {
        self.params.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// The tensors the forward pass uses: the parameters themselves, or with
    /// `qat` the quantizable matrices through the int8 weight fake-quantizer.
    pub fn weights(&self, qat: bool) -> Result<Vec<Tensor>> {
        self.params
            .iter()
            .map(|(name, v)| {
                let t = v.as_tensor().clone();
                Ok(if qat && is_quantizable(name) {
                    qat::fake_quant_weight(&t, self.row_scales)?
                } else {
                    t
                })
            })
            .collect()
    }

    fn w<'t>(&self, w: &'t [Tensor], name: &str) -> Result<&'t Tensor> {
        match self.index.get(name).and_then(|&i| w.get(i)) {
            Some(t) => Ok(t),
            None => bail!("model has no parameter {name}"),
        }
    }

    /// `x Wᵀ + b` with `x` through the activation fake-quantizer under `qat`.
    fn linear(
        &self,
        w: &[Tensor],
        x: &Tensor,
        weight: &str,
        bias: Option<&str>,
        qat: bool,
    ) -> Result<Tensor> {
        let x = if qat {
            qat::fake_quant_act(x)?
        } else {
            x.clone()
        };
        let y = x.broadcast_matmul(&self.w(w, weight)?.t()?)?;
        Ok(match bias {
            Some(b) => y.broadcast_add(self.w(w, b)?)?,
            None => y,
        })
    }

    fn layer_norm(&self, w: &[Tensor], x: &Tensor, prefix: &str) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + self.cfg.norm_eps as f64)?.sqrt()?)?;
        let g = self.w(w, &format!("{prefix}.w"))?;
        let b = self.w(w, &format!("{prefix}.b"))?;
        Ok(xn.broadcast_mul(g)?.broadcast_add(b)?)
    }

    /// The final hidden rows `[batch, seq, d_model]` (after the output norm).
    pub fn hidden(&self, w: &[Tensor], input: &Input, qat: bool) -> Result<Tensor> {
        let cfg = &self.cfg;
        let d = cfg.d_model as usize;
        let mut x = match input {
            Input::Tokens(ids) => {
                let (b, s) = ids.dims2()?;
                self.w(w, "tok_emb")?
                    .embedding(&ids.flatten_all()?)?
                    .reshape((b, s, d))?
            }
            Input::Features(f) => self.linear(w, f, "in_proj.w", Some("in_proj.b"), qat)?,
        };
        let (b, s, _) = x.dims3()?;
        if s > cfg.max_seq as usize {
            bail!("sequence of {s} is longer than the model's {}", cfg.max_seq);
        }
        x = x.broadcast_add(&self.w(w, "pos_emb")?.narrow(0, 0, s)?)?;
        let (nh, nkv, hd) = (
            cfg.n_heads as usize,
            cfg.n_kv_heads as usize,
            cfg.head_dim as usize,
        );
        let heads = |t: Tensor, n: usize| -> Result<Tensor> {
            let t = t.reshape((b, s, n, hd))?.transpose(1, 2)?;
            // Grouped-query attention: each key/value head serves n_heads / n_kv_heads queries.
            Ok(if n < nh {
                t.unsqueeze(2)?
                    .broadcast_as((b, n, nh / n, s, hd))?
                    .reshape((b, nh, s, hd))?
            } else {
                t.contiguous()?
            })
        };
        for l in 0..cfg.n_layers {
            let p = |s: &str| format!("L{l}.{s}");
            let h = self.layer_norm(w, &x, &p("attn_norm"))?;
            let q = heads(self.linear(w, &h, &p("wq"), Some(&p("bq")), qat)?, nh)?;
            let k = heads(self.linear(w, &h, &p("wk"), Some(&p("bk")), qat)?, nkv)?;
            let v = heads(self.linear(w, &h, &p("wv"), Some(&p("bv")), qat)?, nkv)?;
            let att = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
            let att = att.apply_op1(Softmax { causal: cfg.causal })?;
            let o = att.matmul(&v)?.transpose(1, 2)?.reshape((b, s, nh * hd))?;
            x = (x + self.linear(w, &o, &p("wo"), Some(&p("bo")), qat)?)?;
            let h = self.layer_norm(w, &x, &p("ffn_norm"))?;
            let f = self
                .linear(w, &h, &p("w1"), Some(&p("b1")), qat)?
                .gelu_erf()?;
            x = (x + self.linear(w, &f, &p("w2"), Some(&p("b2")), qat)?)?;
        }
        self.layer_norm(w, &x, "out_norm")
    }

    /// Logits: `[batch, n_classes]` for a classifier (mean-pooled rows through
    /// `cls`), `[batch, seq, vocab]` for a decoder (tied LM head).
    pub fn logits(&self, w: &[Tensor], input: &Input, qat: bool) -> Result<Tensor> {
        let h = self.hidden(w, input, qat)?;
        if self.cfg.arch == Architecture::Decoder {
            return self.linear(w, &h, "tok_emb", None, qat);
        }
        let pooled = match self.cfg.pooling {
            mote_core::config::Pooling::Mean => h.mean(1)?,
            mote_core::config::Pooling::Cls => h.narrow(1, 0, 1)?.squeeze(1)?,
        };
        self.linear(w, &pooled, "cls.w", Some("cls.b"), qat)
    }

    /// Parameter values as host vectors, in order.
    pub fn values(&self) -> Result<Vec<NamedValues>> {
        self.params
            .iter()
            .map(|(n, v)| {
                Ok((
                    n.clone(),
                    v.dims().to_vec(),
                    v.as_tensor().flatten_all()?.to_vec1::<f32>()?,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused softmax and its gradient equal candle's composed softmax
    /// (with an explicit −∞ mask for the causal case).
    #[test]
    fn fused_softmax_matches_composed_ops() -> Result<()> {
        let (s, dev) = (5usize, &Device::Cpu);
        let mut rng = Rng(9);
        let x: Vec<f32> = (0..2 * 3 * s * s).map(|_| rng.normal() * 3.0).collect();
        let c: Vec<f32> = (0..2 * 3 * s * s).map(|_| rng.normal()).collect();
        let c = Tensor::from_vec(c, (2, 3, s, s), dev)?;
        for causal in [false, true] {
            let v = Var::from_vec(x.clone(), (2, 3, s, s), dev)?;
            let fused = v.as_tensor().apply_op1(Softmax { causal })?;
            let g1 = (&fused * &c)?.sum_all()?.backward()?;
            let mask: Vec<f32> = (0..s * s)
                .map(|i| {
                    if causal && i % s > i / s {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
                .collect();
            let mask = Tensor::from_vec(mask, (s, s), dev)?;
            let composed =
                candle_nn::ops::softmax(&v.as_tensor().broadcast_add(&mask)?, D::Minus1)?;
            let g2 = (&composed * &c)?.sum_all()?.backward()?;
            let diff = |a: &Tensor, b: &Tensor| -> Result<f32> {
                Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
            };
            assert!(diff(&fused, &composed)? < 1e-6, "causal {causal}: values");
            let (a, b) = (g1.get(&v), g2.get(&v));
            let (Some(a), Some(b)) = (a, b) else {
                bail!("no gradient")
            };
            assert!(diff(a, b)? < 1e-5, "causal {causal}: gradients");
        }
        Ok(())
    }
}
