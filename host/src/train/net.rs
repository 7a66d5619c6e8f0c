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
/// and augmentation: the same seed gives the same run.
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
    index: HashMap<String, usize>,
}

/// Checks that `cfg` is in the family this trainer builds.
fn check_family(cfg: &Config) -> Result<()> {
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
        Net { cfg, params, index }
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
                    qat::fake_quant_weight(&t)?
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
        let mask = if cfg.causal {
            let m: Vec<f32> = (0..s * s)
                .map(|i| {
                    if i % s > i / s {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
                .collect();
            Some(Tensor::from_vec(m, (s, s), x.device())?)
        } else {
            None
        };
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
            let mut att = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
            if let Some(m) = &mask {
                att = att.broadcast_add(m)?;
            }
            let att = candle_nn::ops::softmax(&att, D::Minus1)?;
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
