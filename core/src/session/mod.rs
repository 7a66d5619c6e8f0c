//! `Session`: one model, one caller-provided arena, no other memory.
//!
//! - [`crate::arena`] plans the buffers; [`scratch`] holds their views;
//! - [`lookup`] resolves a block's weights from the tensor table;
//! - [`float`] is the f32-activation path, [`integer`] the integer-only one;
//! - [`observe`] is where calibration watches the f32 path.
//!
//! The public API is here: encoder passes (`encode`, `embed`, `classify`,
//! their feature-row forms), decoder steps (`decode_step`, `prefill`) and
//! [`Session::run`], the device apps' one call.

use crate::arena::{
    self, RunConfig, ATT, F1, F2, H, KC, O, OUT, OUTL, Q, ROPE, T, UNPACK, VC, WROW, XQ, XS,
};
use crate::config::{Architecture, Config, NormKind, PositionKind};
use crate::model::Model;
use crate::quant::Backend;
use crate::tensors::NameBuf;
use crate::{Error, Result};
use lookup::Lookup;
use observe::{Observe, Point, Watch};
use path::{Float, Integer, Path};
use scratch::{span, span_mut, take, Exec, LinearScratch, Scratch};

mod float;
pub mod integer;
mod lookup;
pub mod observe;
mod path;
mod scratch;

/// Runs `$body` with `$p` bound to the path this session's model takes —
/// [`Integer`] for an integer-only model (always, in a build without
/// `float`: the f32 branch is then dead code the linker drops), else
/// [`Float`] — and `$lookup` a fresh tensor lookup. Both paths run the same
/// control flow, written once in the generic methods below.
macro_rules! on_path {
    ($self:ident, $lookup:ident, |$p:ident| $body:expr) => {{
        let mut $lookup = Lookup {
            model: $self.model,
            hint: 0,
        };
        if $self.integer() {
            let $p = Integer::new(&$self.cfg, &mut $lookup)?;
            $body
        } else {
            let $p = Float;
            $body
        }
    }};
}

pub use scratch::Join;

/// One input to a model: token ids, or feature rows (`input_dim` values each).
#[derive(Debug, Clone, Copy)]
pub enum Input<'i> {
    /// Token ids.
    Ids(&'i [u32]),
    /// Feature rows, flattened.
    Features(&'i [f32]),
}

impl Input<'_> {
    /// Sequence rows this input makes for a model with `cfg` (what the
    /// [`RunConfig`] must allow).
    pub fn rows(&self, cfg: &Config) -> usize {
        match self {
            Input::Ids(ids) => ids.len(),
            Input::Features(f) => f.len() / (cfg.input_dim as usize).max(1),
        }
    }
}

/// What [`Session::run`] returns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Output<'s> {
    /// Logits: a classifier head's, or a decoder's for the next token.
    Logits(&'s [f32]),
    /// The pooled, L2-normalised vector of an encoder without a head.
    Embedding(&'s [f32]),
}

impl<'s> Output<'s> {
    /// `"logits"` or `"embedding"`: the label device apps and `mote run
    /// --bits` print before the values.
    pub fn label(&self) -> &'static str {
        match self {
            Output::Logits(_) => "logits",
            Output::Embedding(_) => "embedding",
        }
    }

    /// The values.
    pub fn values(&self) -> &'s [f32] {
        match *self {
            Output::Logits(v) | Output::Embedding(v) => v,
        }
    }
}

/// A model bound to an arena: runs encoder passes or decoder steps.
pub struct Session<'m, 'a> {
    model: &'m Model<'m>,
    cfg: Config,
    run: RunConfig,
    h: &'a mut [f32],
    kc: &'a mut [f32],
    vc: &'a mut [f32],
    scratch: Scratch<'a>,
    out: &'a mut [f32],
    pos: usize,
}

/// The LM head's tensor name.
fn lm_head(cfg: &Config) -> &'static str {
    if cfg.tied_embeddings {
        "tok_emb"
    } else {
        "lm_head"
    }
}

/// Whether this build has the f32-activation path (cargo feature `float`).
const FLOAT: bool = cfg!(feature = "float");
/// Whether this build has decoders (cargo feature `decoder`).
const DECODER: bool = cfg!(feature = "decoder");

impl<'m, 'a> Session<'m, 'a> {
    /// Binds `model` to `arena`. The arena should start on a 16-byte boundary;
    /// otherwise the padding up to one counts against its size.
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8], run: RunConfig) -> Result<Self> {
        let cfg = *model.config();
        if !cfg.integer && !FLOAT {
            return Err(Error::NotBuilt { feature: "float" });
        }
        if cfg.arch == Architecture::Decoder && !DECODER {
            return Err(Error::NotBuilt { feature: "decoder" });
        }
        let plan = arena::plan(model.needs(), &run)?;
        let total = plan.total_bytes();
        let got = arena.len();
        let pad = arena.as_ptr().align_offset(16).min(got);
        let needed = total.saturating_add(pad);
        if got < needed {
            return Err(Error::ArenaTooSmall {
                needed: needed as u64,
                got: got as u64,
            });
        }
        let bytes = arena
            .get_mut(pad..pad.saturating_add(total))
            .ok_or(Error::ArenaTooSmall {
                needed: needed as u64,
                got: got as u64,
            })?;
        bytes.fill(0);
        let floats: &'a mut [f32] =
            bytemuck::try_cast_slice_mut(bytes).map_err(|_| Error::ArenaTooSmall {
                needed: needed as u64,
                got: got as u64,
            })?;
        let mut rest = floats;
        let s = plan.sizes;
        let d = cfg.d_model as usize;
        let used = |i: usize, n: usize| (s[i], n);
        let (n_h, u_h) = used(H, s[H]);
        let h = take(&mut rest, n_h, u_h);
        let kc = take(&mut rest, s[KC], s[KC]);
        let vc = take(&mut rest, s[VC], s[VC]);
        let scratch = Scratch {
            t: take(&mut rest, s[T], d),
            q: take(&mut rest, s[Q], cfg.q_dim()),
            att: take(&mut rest, s[ATT], cfg.q_dim()),
            o: take(&mut rest, s[O], d),
            f1: take(&mut rest, s[F1], cfg.d_ff as usize),
            f2: take(&mut rest, s[F2], cfg.d_ff as usize),
            rope: take(&mut rest, s[ROPE], cfg.head_dim as usize),
            lin: LinearScratch {
                exec: Exec {
                    backend: Backend::best(),
                    join: None,
                },
                xq: &mut [],
                xs: &mut [],
                wrow: &mut [],
                outliers: &mut [],
                unpack: &mut [],
                n_outliers: 0,
            },
            watch: Watch {
                obs: None,
                layer: 0,
            },
        };
        let out_len = if cfg.arch == Architecture::Decoder {
            cfg.vocab_size as usize
        } else {
            d.max(cfg.n_classes as usize)
        };
        let out = take(&mut rest, s[OUT], out_len);
        let xq_floats = take(&mut rest, s[XQ], s[XQ]);
        let scratch = Scratch {
            lin: LinearScratch {
                exec: Exec {
                    backend: Backend::best(),
                    join: None,
                },
                xq: bytemuck::cast_slice_mut(xq_floats),
                wrow: take(&mut rest, s[WROW], s[WROW]),
                xs: take(&mut rest, s[XS], s[XS]),
                outliers: bytemuck::cast_slice_mut(take(&mut rest, s[OUTL], s[OUTL])),
                unpack: bytemuck::cast_slice_mut(take(&mut rest, s[UNPACK], s[UNPACK])),
                n_outliers: 0,
            },
            ..scratch
        };
        Ok(Session {
            model,
            cfg,
            run,
            h,
            kc,
            vc,
            scratch,
            out,
            pos: 0,
        })
    }

    /// Whether the integer-only path runs. Always, in a build without the
    /// f32-activation path (`new` refused other models): the f32 branches
    /// are then dead code, and the linker leaves them out.
    #[inline(always)]
    fn integer(&self) -> bool {
        !FLOAT || self.cfg.integer
    }

    /// Lets large matrix–vector products run in two halves through `join`
    /// (threads on a host). Results are bit-identical with and without.
    pub fn set_join(&mut self, join: &'a dyn Join) {
        self.scratch.lin.exec.join = Some(join);
    }

    /// Runs every kernel of this session on `backend` (by default the best
    /// this machine has, [`Backend::best`]). Results are bit-identical on
    /// every backend. A backend this machine cannot run is refused
    /// ([`Error::BackendUnavailable`]), never replaced by another.
    pub fn set_backend(&mut self, backend: Backend) -> Result<()> {
        if !backend.available() {
            return Err(Error::BackendUnavailable {
                backend: backend.name(),
            });
        }
        self.scratch.lin.exec.backend = backend;
        Ok(())
    }

    /// The backend this session's kernels run on.
    pub fn backend(&self) -> Backend {
        self.scratch.lin.exec.backend
    }

    /// Shows `obs` the activations of every later f32 run (calibration:
    /// see [`integer::Point`]). Integer models run without observing.
    pub fn set_observer(&mut self, obs: &'a mut (dyn Observe + Send)) {
        self.scratch.watch.obs = Some(obs);
    }

    /// The model's config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Tokens consumed so far by a decoder session.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Forgets the decoder's KV cache.
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    fn check_arch(&self, want: Architecture) -> Result<()> {
        if self.cfg.arch == want {
            Ok(())
        } else {
            Err(Error::WrongArchitecture {
                expected: want as u32,
                got: self.cfg.arch as u32,
            })
        }
    }

    /// Checks an encoder call's input kind (`features`: feature rows, else
    /// token ids) and row count against the model and the run.
    fn check_encoder_input(&self, features: bool, n: usize) -> Result<()> {
        self.check_arch(Architecture::Encoder)?;
        if features != (self.cfg.input_dim > 0) {
            return Err(Error::WrongInputKind {
                input_dim: self.cfg.input_dim,
            });
        }
        if n == 0 {
            return Err(if features {
                Error::EmptyFeatures
            } else {
                Error::EmptyInput
            });
        }
        if n > self.run.max_seq as usize {
            return Err(Error::SequenceTooLong {
                max: self.run.max_seq,
                got: n.min(u32::MAX as usize) as u32,
            });
        }
        Ok(())
    }

    /// Runs an encoder over `ids` (token types all 0 unless given) and returns
    /// the final hidden rows, `ids.len() × d_model`.
    pub fn encode(&mut self, ids: &[u32], types: Option<&[u32]>) -> Result<&[f32]> {
        let n = self.encode_rows(ids, types)?;
        self.hidden_f32(n)
    }

    /// The first `n` hidden rows as f32 (an integer model's are converted
    /// from residual units in place).
    fn hidden_f32(&mut self, n: usize) -> Result<&[f32]> {
        let d = self.cfg.d_model as usize;
        if self.integer() {
            let mut lookup = Lookup {
                model: self.model,
                hint: 0,
            };
            Integer::new(&self.cfg, &mut lookup)?.to_f32(span_mut(self.h, 0, n * d));
        }
        Ok(span(self.h, 0, n * d))
    }

    /// [`Session::encode`] leaving the rows in the arena (residual units
    /// for an integer model); returns the row count.
    fn encode_rows(&mut self, ids: &[u32], types: Option<&[u32]>) -> Result<usize> {
        let n = ids.len();
        self.check_encoder_input(false, n)?;
        if let Some(t) = types {
            if t.len() != n {
                return Err(Error::TokenTypesLength {
                    ids: n.min(u32::MAX as usize) as u32,
                    types: t.len().min(u32::MAX as usize) as u32,
                });
            }
        }
        on_path!(self, lookup, |p| self.encode_tokens(
            &p,
            &mut lookup,
            ids,
            types
        ))?;
        Ok(n)
    }

    /// Embeds every token of `ids`, then runs the encoder layers.
    fn encode_tokens<P: Path<'m>>(
        &mut self,
        p: &P,
        lookup: &mut Lookup<'_, 'm>,
        ids: &[u32],
        types: Option<&[u32]>,
    ) -> Result<()> {
        let d = self.cfg.d_model as usize;
        let h = core::mem::take(&mut self.h);
        let ty = |r: usize| types.and_then(|t| t.get(r)).copied().unwrap_or(0);
        let embedded = ids.iter().enumerate().try_for_each(|(r, &id)| {
            embed_token(p, &self.cfg, lookup, span_mut(h, r * d, d), id, r, ty(r))
        });
        // Put the rows back before reporting a bad token, so the session stays usable.
        self.h = h;
        embedded?;
        self.encoder_layers(p, lookup, ids.len())
    }

    /// Runs an encoder whose input is rows of `input_dim` features (image
    /// patches, audio frames; `in_proj` maps each to `d_model`) and returns
    /// the final hidden rows, `rows × d_model`.
    pub fn encode_features(&mut self, features: &[f32]) -> Result<&[f32]> {
        let n = self.encode_feature_rows(features)?;
        self.hidden_f32(n)
    }

    /// [`Session::encode_features`] leaving the rows in the arena.
    fn encode_feature_rows(&mut self, features: &[f32]) -> Result<usize> {
        let width = self.cfg.input_dim as usize;
        if width > 0 && !features.len().is_multiple_of(width) {
            return Err(Error::FeatureShape {
                width: width as u32,
                got: features.len().min(u32::MAX as usize) as u32,
            });
        }
        let n = features.len().checked_div(width).unwrap_or(0);
        self.check_encoder_input(true, n)?;
        if let Some(i) = features.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteInput {
                index: i.min(u32::MAX as usize) as u32,
            });
        }
        on_path!(self, lookup, |p| self.encode_features_on(
            &p,
            &mut lookup,
            features,
            width
        ))?;
        Ok(n)
    }

    /// Projects every feature row, then runs the encoder layers.
    fn encode_features_on<P: Path<'m>>(
        &mut self,
        p: &P,
        lookup: &mut Lookup<'_, 'm>,
        features: &[f32],
        width: usize,
    ) -> Result<()> {
        let d = self.cfg.d_model as usize;
        let w = lookup.matrix(NameBuf::global("in_proj.w"))?;
        let b = lookup.get(NameBuf::global("in_proj.b"))?;
        let h = core::mem::take(&mut self.h);
        let mut n = 0;
        let embedded = features
            .chunks_exact(width.max(1))
            .enumerate()
            .try_for_each(|(r, f)| {
                let x = span_mut(h, r * d, d);
                p.feature_row(&mut self.scratch, x, f, w, b);
                n = r + 1;
                finish_embedding(p, &self.cfg, lookup, x, r, 0)
            });
        self.h = h;
        embedded?;
        self.encoder_layers(p, lookup, n)
    }

    /// The transformer blocks and final norm over `n` embedded rows.
    fn encoder_layers<P: Path<'m>>(
        &mut self,
        p: &P,
        lookup: &mut Lookup<'_, 'm>,
        n: usize,
    ) -> Result<()> {
        let cfg = self.cfg;
        let d = cfg.d_model as usize;
        let kv = cfg.kv_row_floats();
        self.scratch.watch.layer = 0;
        for x in span(self.h, 0, n * d).chunks_exact(d.max(1)) {
            p.see(&mut self.scratch, Point::Residual, x);
        }
        for l in 0..cfg.n_layers {
            let b = p.block(lookup, &cfg, l)?;
            self.scratch.watch.layer = l;
            for r in 0..n {
                let (k, v) = (span_mut(self.kc, r * kv, kv), span_mut(self.vc, r * kv, kv));
                let x = span_mut(self.h, r * d, d);
                p.project_kv(&cfg, &b, &mut self.scratch, x, k, v, r);
            }
            for r in 0..n {
                let n_keys = if cfg.causal { r + 1 } else { n };
                let x = span_mut(self.h, r * d, d);
                p.block_row(&cfg, &b, &mut self.scratch, x, self.kc, self.vc, r, n_keys);
            }
        }
        self.scratch.watch.layer = 0;
        if cfg.pre_norm {
            let w = final_norm(&cfg, lookup)?;
            for x in span_mut(self.h, 0, n * d).chunks_exact_mut(d.max(1)) {
                p.norm(&cfg, x, w);
                p.see(&mut self.scratch, Point::Residual, x);
            }
        }
        Ok(())
    }

    /// Runs an encoder and pools its rows into one L2-normalised vector
    /// (mean over all tokens, or the first token), as sentence-transformers does.
    pub fn embed(&mut self, ids: &[u32]) -> Result<&[f32]> {
        let n = self.encode_rows(ids, None)?;
        self.pooled_embedding(n)
    }

    /// The first `n` hidden rows (as the layers left them) pooled into the
    /// output and L2-normalised.
    fn pooled_embedding(&mut self, n: usize) -> Result<&[f32]> {
        on_path!(self, lookup, |p| {
            let _ = &mut lookup;
            self.pool_normalized(&p, n);
            Ok(())
        })?;
        Ok(span(self.out, 0, self.cfg.d_model as usize))
    }

    fn pool_normalized<P: Path<'m>>(&mut self, p: &P, n: usize) {
        let d = self.cfg.d_model as usize;
        let pooled = core::mem::take(&mut self.scratch.t);
        p.pool(&self.cfg, span_mut(pooled, 0, d), self.h, n);
        p.normalize(span_mut(self.out, 0, d), span_mut(pooled, 0, d));
        self.scratch.t = pooled;
    }

    /// Runs an encoder with a classifier head over token ids and returns the
    /// `n_classes` logits (`cls.w · pool(rows) + cls.b`, pooled without normalising).
    pub fn classify(&mut self, ids: &[u32]) -> Result<&[f32]> {
        self.check_head()?;
        let n = self.encode_rows(ids, None)?;
        self.head(n)
    }

    /// [`Session::classify`] for a feature-input encoder ([`Session::encode_features`]).
    pub fn classify_features(&mut self, features: &[f32]) -> Result<&[f32]> {
        self.check_head()?;
        let n = self.encode_feature_rows(features)?;
        self.head(n)
    }

    fn check_head(&self) -> Result<()> {
        self.check_arch(Architecture::Encoder)?;
        if self.cfg.n_classes == 0 {
            return Err(Error::NoClassifier);
        }
        Ok(())
    }

    fn head(&mut self, n: usize) -> Result<&[f32]> {
        on_path!(self, lookup, |p| self.head_on(&p, &mut lookup, n))?;
        Ok(span(self.out, 0, self.cfg.n_classes as usize))
    }

    /// The classifier head over the pooled rows.
    fn head_on<P: Path<'m>>(&mut self, p: &P, lookup: &mut Lookup<'_, 'm>, n: usize) -> Result<()> {
        let d = self.cfg.d_model as usize;
        let k = self.cfg.n_classes as usize;
        let w = lookup.matrix(NameBuf::global("cls.w"))?;
        let b = lookup.get(NameBuf::global("cls.b"))?;
        let pooled = core::mem::take(&mut self.scratch.t);
        p.pool(&self.cfg, span_mut(pooled, 0, d), self.h, n);
        p.see(&mut self.scratch, Point::HeadIn, span(pooled, 0, d));
        let out = span_mut(self.out, 0, k);
        p.head(
            out,
            w,
            span_mut(pooled, 0, d),
            Some(b),
            &mut self.scratch.lin,
        );
        self.scratch.t = pooled;
        Ok(())
    }

    /// The model's main output for one input, as device apps print it:
    /// [`Output::Logits`] of a classifier head or of a decoder after the
    /// last token (from the current position), or [`Output::Embedding`],
    /// the pooled vector of an encoder without a head.
    pub fn run(&mut self, input: Input) -> Result<Output<'_>> {
        let cfg = self.cfg;
        match (cfg.arch, input) {
            (Architecture::Decoder, Input::Ids(ids)) => Ok(Output::Logits(self.prefill(ids)?)),
            (Architecture::Decoder, Input::Features(_)) => {
                Err(Error::WrongInputKind { input_dim: 0 })
            }
            (Architecture::Encoder, Input::Ids(ids)) if cfg.n_classes > 0 => {
                Ok(Output::Logits(self.classify(ids)?))
            }
            (Architecture::Encoder, Input::Features(f)) if cfg.n_classes > 0 => {
                Ok(Output::Logits(self.classify_features(f)?))
            }
            (Architecture::Encoder, Input::Ids(ids)) => Ok(Output::Embedding(self.embed(ids)?)),
            (Architecture::Encoder, Input::Features(f)) => {
                // Pooled from the rows as the layers left them (residual
                // units on the integer path), not from their f32 copy.
                let n = self.encode_feature_rows(f)?;
                Ok(Output::Embedding(self.pooled_embedding(n)?))
            }
        }
    }

    /// Feeds one token to a decoder and returns the logits for the next one.
    pub fn decode_step(&mut self, token: u32) -> Result<&[f32]> {
        if !DECODER {
            return Err(Error::NotBuilt { feature: "decoder" });
        }
        self.check_arch(Architecture::Decoder)?;
        if self.pos >= self.run.max_seq as usize {
            return Err(Error::SequenceTooLong {
                max: self.run.max_seq,
                got: self.run.max_seq.saturating_add(1),
            });
        }
        on_path!(self, lookup, |p| self.decode_on(&p, &mut lookup, token))?;
        Ok(self.out)
    }

    /// One decoder step: embed, every block over the cache, final norm, LM head.
    fn decode_on<P: Path<'m>>(
        &mut self,
        p: &P,
        lookup: &mut Lookup<'_, 'm>,
        token: u32,
    ) -> Result<()> {
        let pos = self.pos;
        let cfg = self.cfg;
        let d = cfg.d_model as usize;
        let kv = cfg.kv_row_floats();
        let layer_stride = self.run.max_seq as usize * kv;
        let h = core::mem::take(&mut self.h);
        let embedded = embed_token(p, &cfg, lookup, span_mut(h, 0, d), token, pos, 0);
        self.h = h;
        embedded?;
        self.scratch.watch.layer = 0;
        p.see(&mut self.scratch, Point::Residual, span(self.h, 0, d));
        for l in 0..cfg.n_layers as usize {
            let b = p.block(lookup, &cfg, l as u32)?;
            self.scratch.watch.layer = l as u32;
            let kc = span_mut(self.kc, l * layer_stride, layer_stride);
            let vc = span_mut(self.vc, l * layer_stride, layer_stride);
            let (k, v) = (span_mut(kc, pos * kv, kv), span_mut(vc, pos * kv, kv));
            let x = span_mut(self.h, 0, d);
            p.project_kv(&cfg, &b, &mut self.scratch, x, k, v, pos);
            let x = span_mut(self.h, 0, d);
            p.block_row(&cfg, &b, &mut self.scratch, x, kc, vc, pos, pos + 1);
        }
        if cfg.pre_norm {
            let w = final_norm(&cfg, lookup)?;
            p.norm(&cfg, span_mut(self.h, 0, d), w);
        }
        self.scratch.watch.layer = 0;
        p.see(&mut self.scratch, Point::HeadIn, span(self.h, 0, d));
        let w = lookup.matrix(NameBuf::global(lm_head(&cfg)))?;
        p.head(
            self.out,
            w,
            span_mut(self.h, 0, d),
            None,
            &mut self.scratch.lin,
        );
        self.pos = pos + 1;
        Ok(())
    }

    /// Feeds a whole prompt and returns the logits after its last token.
    pub fn prefill(&mut self, ids: &[u32]) -> Result<&[f32]> {
        self.check_arch(Architecture::Decoder)?;
        if ids.is_empty() {
            return Err(Error::EmptyInput);
        }
        let end = self.pos.saturating_add(ids.len());
        if end > self.run.max_seq as usize {
            return Err(Error::SequenceTooLong {
                max: self.run.max_seq,
                got: end.min(u32::MAX as usize) as u32,
            });
        }
        for &id in ids {
            self.decode_step(id)?;
        }
        Ok(self.out)
    }
}

/// Writes the token embedding (+ absolute position, + token type, + the
/// embedding norm) of `id` into the residual row `x`.
fn embed_token<'m, P: Path<'m>>(
    p: &P,
    cfg: &Config,
    lookup: &mut Lookup<'_, 'm>,
    x: &mut [f32],
    id: u32,
    pos: usize,
    ty: u32,
) -> Result<()> {
    if id >= cfg.vocab_size {
        return Err(Error::TokenOutOfRange {
            id,
            vocab: cfg.vocab_size,
        });
    }
    p.token_row(x, lookup.matrix(NameBuf::global("tok_emb"))?, id as usize);
    finish_embedding(p, cfg, lookup, x, pos, ty)
}

/// Adds position and token type to an embedded row `x`, then the embedding norm.
fn finish_embedding<'m, P: Path<'m>>(
    p: &P,
    cfg: &Config,
    lookup: &mut Lookup<'_, 'm>,
    x: &mut [f32],
    pos: usize,
    ty: u32,
) -> Result<()> {
    let d = cfg.d_model as usize;
    let row = |t: &'m [f32], i: usize| t.get(i * d..(i + 1) * d).unwrap_or(&[]);
    match cfg.positions {
        PositionKind::Learned => p.add_row(x, row(lookup.get(NameBuf::global("pos_emb"))?, pos)),
        PositionKind::Sinusoidal => p.add_sinusoidal(x, pos),
        PositionKind::Rope => {}
    }
    if cfg.n_token_types > 0 {
        if ty >= cfg.n_token_types {
            return Err(Error::TokenOutOfRange {
                id: ty,
                vocab: cfg.n_token_types,
            });
        }
        p.add_row(
            x,
            row(lookup.get(NameBuf::global("type_emb"))?, ty as usize),
        );
    }
    if cfg.embedding_norm {
        let ln = cfg.norm == NormKind::LayerNorm;
        let w = lookup.get(NameBuf::global("emb_norm.w"))?;
        let b = lookup.opt(NameBuf::global("emb_norm.b"), ln)?;
        p.norm(cfg, x, (w, b));
    }
    Ok(())
}

/// The final norm's weights (pre-norm models).
fn final_norm<'m>(
    cfg: &Config,
    lookup: &mut Lookup<'_, 'm>,
) -> Result<(&'m [f32], Option<&'m [f32]>)> {
    let w = lookup.get(NameBuf::global("out_norm.w"))?;
    let b = lookup.opt(
        NameBuf::global("out_norm.b"),
        cfg.norm == NormKind::LayerNorm,
    )?;
    Ok((w, b))
}
