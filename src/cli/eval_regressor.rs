//! `sula eval-f`: a trained F on held-out frames: the metrics of docs/DESIGN.md §Metrics over all frames and
//! split into frames with lipid or calcium and fibrous-only ones, and the Dice per class
//! of F's auxiliary tissue head: how much of F's error goes with plaque, and how well F
//! sees it.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use super::train::DeviceChoice;
use crate::data::dataset::Dataset;
use crate::fea::DEFAULT_PRESSURE_KPA;
use crate::labels::Tissue;
use crate::metrics::FrameMetrics;
use crate::model::assess;
use crate::model::checkpoint;
use crate::model::data::FrameSet;
use crate::model::evaluate::DiceCounts;
use crate::model::train;

#[derive(Debug, Args)]
pub struct EvalRegressorArgs {
    /// Stress regressor checkpoint (.safetensors with its .json sidecar).
    #[arg(long, value_name = "F.safetensors")]
    regressor: PathBuf,
    /// Held-out dataset with label and stress maps, read at F's resolution.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Luminal pressure the stress maps were computed with (kPa).
    #[arg(long, default_value_t = DEFAULT_PRESSURE_KPA)]
    pressure_kpa: f64,
    /// Pixel spacing in mm, for sources that do not record it.
    #[arg(long, value_name = "MM")]
    pixel_mm: Option<f64>,
    /// Score the mean of F's predictions for each frame's eight rotations and mirrors
    /// (each rotated back) instead of its single prediction.
    #[arg(long)]
    symmetry_average: bool,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

/// Whether a frame holds lipid or calcium, the tissue F must find in the speckle.
fn has_plaque(data: &FrameSet, frame: usize) -> bool {
    data.labels[frame]
        .values()
        .iter()
        .any(|&v| v == Tissue::Lipid as u8 || v == Tissue::Calcium as u8)
}

fn metrics_line(name: &str, frames: usize, m: &FrameMetrics) -> String {
    format!(
        "{name} ({frames} frames): MSE {:.2} kPa², accuracy {:.3}, peak error {:.3}, R² {:.3}",
        m.mse, m.accuracy, m.peak_error, m.r2
    )
}

pub fn run(args: &EvalRegressorArgs) -> Result<()> {
    if !(args.pressure_kpa.is_finite() && args.pressure_kpa > 0.0) {
        bail!(
            "--pressure-kpa {} must be a positive number",
            args.pressure_kpa
        );
    }
    let device = args.device.resolve()?;
    let (_vs, model, _) = checkpoint::load_regressor(&args.regressor, device, None)?;
    let data = FrameSet::load(
        &Dataset::open(&args.data, args.pixel_mm)?,
        model.config.size,
        true,
    )?;
    let predictions = if args.symmetry_average {
        train::predict_kpa_symmetry_averaged(&model, &data, args.pressure_kpa, device)
    } else {
        train::predict_kpa(&model, &data, args.pressure_kpa, device)
    };
    let (frames, all) = assess::score(&data, |i| predictions[i].clone());
    println!("{}", metrics_line("all", frames, &all));
    let (plaque, fibrous): (Vec<usize>, Vec<usize>) =
        (0..data.len()).partition(|&i| has_plaque(&data, i));
    for (name, indices) in [
        ("with lipid or calcium", &plaque),
        ("fibrous only", &fibrous),
    ] {
        if indices.is_empty() {
            continue;
        }
        let part = assess::subset(&data, indices);
        let (frames, metrics) = assess::score(&part, |j| predictions[indices[j]].clone());
        println!("{}", metrics_line(name, frames, &metrics));
    }
    let mut counts = DiceCounts::default();
    for (seen, truth) in train::predict_tissue(&model, &data, device)
        .iter()
        .zip(&data.labels)
    {
        counts.add(seen, truth.values());
    }
    let dice: Vec<String> = Tissue::ALL
        .iter()
        .zip(counts.dice())
        .filter_map(|(tissue, d)| d.map(|d| format!("{} {d:.3}", tissue.name())))
        .collect();
    println!("tissue head Dice: {}", dice.join(", "));
    Ok(())
}
