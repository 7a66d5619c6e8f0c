//! Training curves as a PNG: training and validation loss, and the
//! validation metric, per step (f32 training, then QAT). Drawn in memory
//! and written as every output is (`mote_host::writer::write_atomic`).

use crate::metric::Metric;
use anyhow::{Context, Result};
use image::ImageEncoder;
use mote_host::train::Point;
use plotters::prelude::*;
use std::path::Path;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers DejaVu Sans (Debian `fonts-dejavu-core`) for labels once.
fn font() -> Result<()> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        std::fs::read(FONT)
            .ok()
            .map(|b| &*Box::leak(b.into_boxed_slice()))
            .is_some_and(|b| {
                plotters::style::register_font("sans-serif", FontStyle::Normal, b).is_ok()
            })
    });
    anyhow::ensure!(ok, "no font at {FONT} (install fonts-dejavu-core)");
    Ok(())
}

/// Draws `history` into `png` (two panels: losses, and the validation metric).
pub fn curves(history: &[Point], png: &Path, metric: Metric) -> Result<()> {
    font()?;
    anyhow::ensure!(!history.is_empty(), "no validation points");
    // QAT steps continue the f32 step axis.
    let f32_end = history
        .iter()
        .filter(|p| p.phase == "f32")
        .map(|p| p.step)
        .max()
        .unwrap_or(0);
    let x = |p: &Point| {
        (if p.phase == "f32" {
            p.step
        } else {
            f32_end + p.step
        }) as f64
    };
    let xmax = history.iter().map(x).fold(1.0, f64::max);
    const SIZE: (u32, u32) = (1000, 420);
    let mut rgb = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    draw(history, &mut rgb, SIZE, metric, xmax, &x)?;
    let mut file = Vec::new();
    image::codecs::png::PngEncoder::new(&mut file)
        .write_image(&rgb, SIZE.0, SIZE.1, image::ColorType::Rgb8)
        .context("encoding the PNG")?;
    mote_host::writer::write_atomic(png, &file)
}

fn draw(
    history: &[Point],
    rgb: &mut [u8],
    size: (u32, u32),
    metric: Metric,
    xmax: f64,
    x: &dyn Fn(&Point) -> f64,
) -> Result<()> {
    let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("{e}");
    let lmax = history
        .iter()
        .flat_map(|p| [p.train_loss, p.val_loss])
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        * 1.05;
    let mut c = ChartBuilder::on(&left)
        .caption("loss", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..xmax, 0.0..lmax.max(1e-3))
        .map_err(|e| err(&e))?;
    c.configure_mesh()
        .x_desc("step")
        .draw()
        .map_err(|e| err(&e))?;
    for (name, color, f) in [
        (
            "train",
            BLUE,
            (|p: &Point| p.train_loss) as fn(&Point) -> f64,
        ),
        ("validation", RED, |p: &Point| p.val_loss),
    ] {
        c.draw_series(LineSeries::new(history.iter().map(|p| (x(p), f(p))), color))
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(a, b)| PathElement::new(vec![(a, b), (a + 20, b)], color));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    let vals: Vec<f64> = history.iter().map(|p| p.val_metric).collect();
    let (lo, hi) = vals
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let mut c = ChartBuilder::on(&right)
        .caption(format!("validation {}", metric.name()), ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..xmax, (lo - pad)..(hi + pad))
        .map_err(|e| err(&e))?;
    c.configure_mesh()
        .x_desc("step")
        .draw()
        .map_err(|e| err(&e))?;
    c.draw_series(LineSeries::new(
        history.iter().map(|p| (x(p), p.val_metric)),
        GREEN,
    ))
    .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
