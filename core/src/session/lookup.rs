//! Resolving a block's weights from the tensor table (each lookup starts
//! where the last one ended: writers store tensors in order).

use crate::config::{Activation, Config, NormKind};
use crate::model::{Model, Weight};
use crate::tensors::NameBuf;
use crate::{Error, Result, TensorName};

/// The weights of one block, resolved from the tensor table.
pub(super) struct Layer<'w> {
    pub(super) attn_norm: (&'w [f32], Option<&'w [f32]>),
    pub(super) ffn_norm: (&'w [f32], Option<&'w [f32]>),
    pub(super) wq: Weight<'w>,
    pub(super) wk: Weight<'w>,
    pub(super) wv: Weight<'w>,
    pub(super) wo: Weight<'w>,
    pub(super) bq: Option<&'w [f32]>,
    pub(super) bk: Option<&'w [f32]>,
    pub(super) bv: Option<&'w [f32]>,
    pub(super) bo: Option<&'w [f32]>,
    pub(super) w1: Weight<'w>,
    pub(super) w2: Weight<'w>,
    pub(super) w3: Option<Weight<'w>>,
    pub(super) b1: Option<&'w [f32]>,
    pub(super) b2: Option<&'w [f32]>,
    pub(super) b3: Option<&'w [f32]>,
}

pub(super) struct Lookup<'m, 'w> {
    pub(super) model: &'m Model<'w>,
    pub(super) hint: u32,
}

impl<'w> Lookup<'_, 'w> {
    pub(super) fn info(&mut self, name: NameBuf) -> Result<crate::TensorInfo> {
        let (i, info) =
            self.model
                .find(name.as_bytes(), self.hint)
                .ok_or(Error::MissingTensor {
                    tensor: TensorName::new(name.as_bytes()),
                })?;
        self.hint = i;
        Ok(info)
    }

    pub(super) fn get(&mut self, name: NameBuf) -> Result<&'w [f32]> {
        let info = self.info(name)?;
        self.model.tensor_f32(&info)
    }

    pub(super) fn matrix(&mut self, name: NameBuf) -> Result<Weight<'w>> {
        let info = self.info(name)?;
        self.model.weight_near(&info, self.hint)
    }

    pub(super) fn opt(&mut self, name: NameBuf, present: bool) -> Result<Option<&'w [f32]>> {
        if present {
            self.get(name).map(Some)
        } else {
            Ok(None)
        }
    }

    pub(super) fn layer(&mut self, cfg: &Config, l: u32) -> Result<Layer<'w>> {
        let ln = cfg.norm == NormKind::LayerNorm;
        let b = cfg.bias;
        let gated = cfg.activation == Activation::SwiGlu;
        let n = |s: &str| NameBuf::layer(l, s);
        Ok(Layer {
            attn_norm: (self.get(n("attn_norm.w"))?, self.opt(n("attn_norm.b"), ln)?),
            ffn_norm: (self.get(n("ffn_norm.w"))?, self.opt(n("ffn_norm.b"), ln)?),
            wq: self.matrix(n("wq"))?,
            wk: self.matrix(n("wk"))?,
            wv: self.matrix(n("wv"))?,
            wo: self.matrix(n("wo"))?,
            bq: self.opt(n("bq"), b)?,
            bk: self.opt(n("bk"), b)?,
            bv: self.opt(n("bv"), b)?,
            bo: self.opt(n("bo"), b)?,
            w1: self.matrix(n("w1"))?,
            w2: self.matrix(n("w2"))?,
            w3: if gated {
                Some(self.matrix(n("w3"))?)
            } else {
                None
            },
            b1: self.opt(n("b1"), b)?,
            b2: self.opt(n("b2"), b)?,
            b3: self.opt(n("b3"), b && gated)?,
        })
    }
}
