//! The integer-only model: the smoothed f32 weights quantized to int8 with
//! one scale per row, the smoothing multipliers, the static scales and the
//! phase table, config `integer` set.

use super::smooth::smoothed_weights;
use super::Calibration;
use crate::quantize::{quantize, Target, TensorReport};
use crate::writer::ModelBuilder;
use anyhow::{bail, Result};
use mote_core::integer::{GLOBAL_SCALES, LAYER_SCALES};
use mote_core::{Model, PositionKind};

/// Phase steps (`u32` turns per position) of sinusoidal or rotary positions.
pub fn phase_turns(cfg: &mote_core::Config) -> Option<Vec<i32>> {
    let turns = |freq: f64| {
        let t = freq / std::f64::consts::TAU;
        ((t - t.floor()) * 4294967296.0).round() as u64 as u32 as i32
    };
    match cfg.positions {
        PositionKind::Rope => {
            let hd = cfg.head_dim as f64;
            Some(
                (0..cfg.head_dim / 2)
                    .map(|i| turns((cfg.rope_theta as f64).powf(-2.0 * i as f64 / hd)))
                    .collect(),
            )
        }
        PositionKind::Sinusoidal => {
            let d = cfg.d_model as f64;
            Some(
                (0..cfg.d_model / 2)
                    .map(|i| turns(1.0 / 10000f64.powf(2.0 * i as f64 / d)))
                    .collect(),
            )
        }
        PositionKind::Learned => None,
    }
}

/// The integer-only model: int8 weights with one scale per row, the static
/// scales of `calib`, the phase table, config `integer` set.
pub fn integer_model(
    m: &Model,
    calib: &Calibration,
    progress: impl FnMut(usize, usize),
) -> Result<(ModelBuilder, Vec<TensorReport>)> {
    if m.has_i8() || m.has_f16() {
        bail!("calibrate an f32 model (this one is already quantized)");
    }
    let smoothed = smoothed_weights(m, calib)?;
    let sm = Model::from_bytes(smoothed.bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut b, report) = quantize(&sm, Target::Int8Row, progress)?;
    b.config_mut().integer = true;
    for (l, f) in calib.smooth.iter().enumerate() {
        for (k, name) in f.iter().zip(mote_core::integer::SMOOTH) {
            b.add_f32(&format!("L{l}.{name}"), &[k.len() as u32], k)?;
        }
    }
    b.add_f32("act", &[GLOBAL_SCALES as u32], &calib.global)?;
    for (l, s) in calib.layers.iter().enumerate() {
        b.add_f32(&format!("L{l}.act"), &[LAYER_SCALES as u32], s)?;
    }
    if let Some(t) = phase_turns(m.config()) {
        b.add_raw(
            "turns",
            mote_core::Dtype::I32,
            &[t.len() as u32],
            bytemuck::cast_slice(&t).to_vec(),
        )?;
    }
    Ok((b, report))
}
