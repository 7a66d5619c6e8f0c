//! What the f32 and the integer-only paths do differently: the operations.
//!
//! The control flow — input checks, embedding, the layer loop, the caches,
//! pooling and the heads — is written once, in [`super::Session`], over a
//! [`Path`]; [`Float`] and [`Integer`] supply the arithmetic. Rows are
//! arena rows (`&mut [f32]`): the integer path keeps `i32` residual units in
//! them ([`integer::ints`]).

use super::float::{self, add, linear, norm};
use super::integer::{self, ints, Globals, LayerScales};
use super::lookup::{Layer, Lookup};
use super::observe::Point;
use super::scratch::{copy, span, span_mut, LinearScratch, Scratch};
use crate::config::{Config, Pooling};
use crate::kernels;
use crate::model::Weight;
use crate::Result;

/// The operations one numeric path runs.
pub(super) trait Path<'m> {
    /// A block's weights (and, for the integer path, its static scales).
    type Block;
    /// Resolves block `l`.
    fn block(&self, lookup: &mut Lookup<'_, 'm>, cfg: &Config, l: u32) -> Result<Self::Block>;
    /// Shows a calibration observer one row at `point` (the f32 path only).
    fn see(&self, s: &mut Scratch, point: Point, x: &[f32]);
    /// Row `id` of the token embedding into the residual row `x`.
    fn token_row(&self, x: &mut [f32], w: Weight, id: usize);
    /// `in_proj` of one feature row `f` into the residual row `x`.
    fn feature_row(&self, s: &mut Scratch, x: &mut [f32], f: &[f32], w: Weight, b: &[f32]);
    /// Adds a row of f32 constants (a position or token-type embedding).
    fn add_row(&self, x: &mut [f32], row: &[f32]);
    /// Adds the sinusoidal position `pos`.
    fn add_sinusoidal(&self, x: &mut [f32], pos: usize);
    /// A norm of the residual row (the embedding norm, the final norm).
    fn norm(&self, cfg: &Config, x: &mut [f32], w: (&[f32], Option<&[f32]>));
    /// Key and value of the row `x` into the cache rows `k`, `v`.
    #[allow(clippy::too_many_arguments)]
    fn project_kv(
        &self,
        cfg: &Config,
        b: &Self::Block,
        s: &mut Scratch,
        x: &mut [f32],
        k: &mut [f32],
        v: &mut [f32],
        pos: usize,
    );
    /// The rest of the block for the row `x` over `n_keys` cached rows.
    #[allow(clippy::too_many_arguments)]
    fn block_row(
        &self,
        cfg: &Config,
        b: &Self::Block,
        s: &mut Scratch,
        x: &mut [f32],
        kc: &[f32],
        vc: &[f32],
        pos: usize,
        n_keys: usize,
    );
    /// The first `n` residual rows of `h` pooled into `into` (mean or first row).
    fn pool(&self, cfg: &Config, into: &mut [f32], h: &mut [f32], n: usize);
    /// The pooled row L2-normalised into `out` (f32).
    fn normalize(&self, out: &mut [f32], pooled: &mut [f32]);
    /// A head (classifier or LM head) over the row `x`: logits into `out`.
    fn head(
        &self,
        out: &mut [f32],
        w: Weight,
        x: &mut [f32],
        bias: Option<&[f32]>,
        lin: &mut LinearScratch,
    );
}

/// The f32-activation path ([`super::float`]).
pub(super) struct Float;

impl<'m> Path<'m> for Float {
    type Block = Layer<'m>;

    fn block(&self, lookup: &mut Lookup<'_, 'm>, cfg: &Config, l: u32) -> Result<Layer<'m>> {
        lookup.layer(cfg, l)
    }

    fn see(&self, s: &mut Scratch, point: Point, x: &[f32]) {
        s.watch.see(point, x);
    }

    fn token_row(&self, x: &mut [f32], w: Weight, id: usize) {
        float::embedding_row(x, w, id);
    }

    fn feature_row(&self, s: &mut Scratch, x: &mut [f32], f: &[f32], w: Weight, b: &[f32]) {
        s.watch.see(Point::Features, f);
        linear(x, w, f, Some(b), &mut s.lin);
    }

    fn add_row(&self, x: &mut [f32], row: &[f32]) {
        add(x, row);
    }

    fn add_sinusoidal(&self, x: &mut [f32], pos: usize) {
        let d = x.len();
        for (i, pair) in x.chunks_exact_mut(2).enumerate() {
            let angle = pos as f32 / libm::powf(10000.0, 2.0 * i as f32 / d as f32);
            pair[0] += libm::sinf(angle);
            pair[1] += libm::cosf(angle);
        }
    }

    fn norm(&self, cfg: &Config, x: &mut [f32], w: (&[f32], Option<&[f32]>)) {
        norm(cfg, x, w);
    }

    fn project_kv(
        &self,
        cfg: &Config,
        b: &Layer<'m>,
        s: &mut Scratch,
        x: &mut [f32],
        k: &mut [f32],
        v: &mut [f32],
        pos: usize,
    ) {
        float::project_kv(cfg, b, s, x, k, v, pos);
    }

    fn block_row(
        &self,
        cfg: &Config,
        b: &Layer<'m>,
        s: &mut Scratch,
        x: &mut [f32],
        kc: &[f32],
        vc: &[f32],
        pos: usize,
        n_keys: usize,
    ) {
        float::block_row(cfg, b, s, x, kc, vc, pos, n_keys);
    }

    fn pool(&self, cfg: &Config, into: &mut [f32], h: &mut [f32], n: usize) {
        let d = cfg.d_model as usize;
        match cfg.pooling {
            Pooling::Mean => {
                into.fill(0.0);
                for row in span(h, 0, n * d).chunks_exact(d.max(1)) {
                    add(into, row);
                }
                let inv = 1.0 / n as f32;
                for v in into.iter_mut() {
                    *v *= inv;
                }
            }
            Pooling::Cls => copy(into, span(h, 0, d)),
        }
    }

    fn normalize(&self, out: &mut [f32], pooled: &mut [f32]) {
        copy(out, pooled);
        kernels::l2_normalize(out);
    }

    fn head(
        &self,
        out: &mut [f32],
        w: Weight,
        x: &mut [f32],
        bias: Option<&[f32]>,
        lin: &mut LinearScratch,
    ) {
        linear(out, w, x, bias, lin);
    }
}

/// The integer-only path ([`super::integer`]), with the model's global
/// static scales.
pub(super) struct Integer<'w> {
    g: Globals<'w>,
}

impl<'w> Integer<'w> {
    /// Reads the global scales and phase steps.
    pub(super) fn new(cfg: &Config, lookup: &mut Lookup<'_, 'w>) -> Result<Self> {
        Ok(Integer {
            g: integer::globals(cfg, lookup)?,
        })
    }

    /// Hidden rows from residual units to f32, in place.
    pub(super) fn to_f32(&self, h: &mut [f32]) {
        integer::to_f32(h, &self.g);
    }
}

impl<'m> Path<'m> for Integer<'m> {
    type Block = (Layer<'m>, LayerScales<'m>);

    fn block(&self, lookup: &mut Lookup<'_, 'm>, cfg: &Config, l: u32) -> Result<Self::Block> {
        let lw = lookup.layer(cfg, l)?;
        Ok((lw, integer::layer_scales(lookup, l)?))
    }

    fn see(&self, _: &mut Scratch, _: Point, _: &[f32]) {}

    fn token_row(&self, x: &mut [f32], w: Weight, id: usize) {
        integer::embedding_row(ints(x), w, id, &self.g);
    }

    fn feature_row(&self, s: &mut Scratch, x: &mut [f32], f: &[f32], w: Weight, b: &[f32]) {
        let fq = span_mut(s.lin.xq, 0, f.len());
        integer::features_i8(fq, f, &self.g);
        integer::input_projection(ints(x), w, fq, b, &self.g, s.lin.exec);
    }

    fn add_row(&self, x: &mut [f32], row: &[f32]) {
        integer::add_constants(ints(x), row, &self.g);
    }

    fn add_sinusoidal(&self, x: &mut [f32], pos: usize) {
        integer::add_sinusoidal(ints(x), pos, &self.g);
    }

    fn norm(&self, cfg: &Config, x: &mut [f32], w: (&[f32], Option<&[f32]>)) {
        integer::norm_residual(cfg, ints(x), w, &self.g);
    }

    fn project_kv(
        &self,
        cfg: &Config,
        (lw, ls): &Self::Block,
        s: &mut Scratch,
        x: &mut [f32],
        k: &mut [f32],
        v: &mut [f32],
        pos: usize,
    ) {
        integer::project_kv(cfg, lw, ls, &self.g, s, ints(x), k, v, pos);
    }

    fn block_row(
        &self,
        cfg: &Config,
        (lw, ls): &Self::Block,
        s: &mut Scratch,
        x: &mut [f32],
        kc: &[f32],
        vc: &[f32],
        pos: usize,
        n_keys: usize,
    ) {
        integer::block_row(cfg, lw, ls, &self.g, s, ints(x), kc, vc, pos, n_keys);
    }

    fn pool(&self, cfg: &Config, into: &mut [f32], h: &mut [f32], n: usize) {
        integer::pool(cfg, ints(into), ints(h), n);
    }

    fn normalize(&self, out: &mut [f32], pooled: &mut [f32]) {
        integer::l2_normalize(out, ints(pooled));
    }

    fn head(
        &self,
        out: &mut [f32],
        w: Weight,
        x: &mut [f32],
        bias: Option<&[f32]>,
        lin: &mut LinearScratch,
    ) {
        integer::head_logits(out, w, ints(x), bias, lin, &self.g);
    }
}
