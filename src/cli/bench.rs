//! `sula bench`: performance tables, measured side by side in one run.

use std::path::PathBuf;
use std::time::Instant;

use crate::model::regressor::RegressorConfig;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rayon::prelude::*;
use serde::Serialize;

use crate::data::mask::write_mask;
use crate::data::shapes::plaque;
use crate::fea::{FeaParams, FeaSolver, FeaTimings, StressMeasure};
use crate::io::{atomic, npy};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// FEA labelling speed on phantom-like plaque masks.
    Fea(FeaBenchArgs),
    /// Training throughput of one VAE step and one regressor step.
    Models(ModelBenchArgs),
    /// UI frame CPU time: 10,000 latent points with arrows, and while the worker trains.
    Ui(super::bench_ui::UiBenchArgs),
}

#[derive(Debug, Args)]
pub struct ModelBenchArgs {
    /// Working resolution.
    #[arg(long, default_value_t = 64)]
    size: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Timed optimiser steps per model (after 3 warm-up steps).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Channels of F at full resolution.
    #[arg(long, default_value_t = RegressorConfig::new(64).width)]
    regressor_width: usize,
    /// Print one JSON line instead of the table (for bench/models_reference.py).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct FeaBenchArgs {
    /// Image sizes (square) to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [64, 128, 256])]
    sizes: Vec<usize>,
    /// Solves per size for the single-thread timings (the median is reported).
    #[arg(long, default_value_t = 7)]
    repeats: usize,
    /// Distinct masks per size for the all-cores batch throughput.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Also write the masks, stress maps and timings here (for bench/fea_reference.py).
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
}

/// One row of the table, also exported as JSON.
#[derive(Debug, Serialize)]
struct Row {
    size: usize,
    solid_pixels: usize,
    dofs: usize,
    setup_ms: f64,
    assemble_ms: f64,
    factor_ms: f64,
    solve_ms: f64,
    stress_ms: f64,
    total_ms: f64,
    reused_total_ms: f64,
    batch_frames_per_s: f64,
}

pub fn run(command: &BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Fea(args) => fea(args),
        BenchCommand::Models(args) => models(args),
        BenchCommand::Ui(args) => super::bench_ui::run(args),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn fea(args: &FeaBenchArgs) -> Result<()> {
    let params = FeaParams::default();
    let repeats = args.repeats.max(1);
    if let Some(dir) = &args.export {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    println!(
        "FEA labelling benchmark: phantom-like plaque masks (eccentric lumen, lipid core, calcium arc),"
    );
    println!(
        "one thread per frame, median of {repeats} cold solves (no cached pattern); batch over {} distinct masks on {} threads",
        args.batch,
        rayon::current_num_threads()
    );
    println!(
        "{:>5} {:>7} {:>7} {:>8} {:>9} {:>8} {:>7} {:>7} {:>9} {:>9} {:>10}",
        "size",
        "solid",
        "DOF",
        "setup",
        "assemble",
        "factor",
        "solve",
        "stress",
        "total ms",
        "reuse ms",
        "frames/s"
    );
    let mut rows = Vec::new();
    for &size in &args.sizes {
        let mask = plaque(size, 0.0);
        let mut runs: Vec<FeaTimings> = Vec::new();
        let mut field = None;
        for _ in 0..repeats {
            let result = FeaSolver::default().solve(&mask, &params)?;
            runs.push(result.timings);
            field = Some(result);
        }
        let field = field.expect("at least one repeat");
        let phase = |f: fn(&FeaTimings) -> f64| median(runs.iter().map(f).collect());

        let mut warm = FeaSolver::default();
        warm.solve(&mask, &params)?;
        let reused = median(
            (0..repeats)
                .map(|_| warm.solve(&mask, &params).map(|f| f.timings.total_ms()))
                .collect::<Result<_, _>>()?,
        );

        let masks: Vec<_> = (0..args.batch.max(1))
            .map(|k| plaque(size, 360.0 * k as f64 / args.batch.max(1) as f64))
            .collect();
        let start = Instant::now();
        masks
            .par_iter()
            .map_init(FeaSolver::default, |solver, m| {
                solver.solve(m, &params).map(|_| ())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let throughput = masks.len() as f64 / start.elapsed().as_secs_f64();

        let counts = mask.class_counts();
        let row = Row {
            size,
            solid_pixels: counts[2] + counts[3] + counts[4],
            dofs: field.dofs,
            setup_ms: phase(|t| t.setup_ms),
            assemble_ms: phase(|t| t.assemble_ms),
            factor_ms: phase(|t| t.factor_ms),
            solve_ms: phase(|t| t.solve_ms),
            stress_ms: phase(|t| t.stress_ms),
            total_ms: phase(FeaTimings::total_ms),
            reused_total_ms: reused,
            batch_frames_per_s: throughput,
        };
        println!(
            "{:>5} {:>7} {:>7} {:>8.2} {:>9.2} {:>8.2} {:>7.2} {:>7.2} {:>9.2} {:>9.2} {:>10.1}",
            row.size,
            row.solid_pixels,
            row.dofs,
            row.setup_ms,
            row.assemble_ms,
            row.factor_ms,
            row.solve_ms,
            row.stress_ms,
            row.total_ms,
            row.reused_total_ms,
            row.batch_frames_per_s
        );
        if let Some(dir) = &args.export {
            write_mask(&dir.join(format!("mask_{size}.png")), &mask)?;
            let labels: Vec<f32> = mask.values().iter().map(|&v| f32::from(v)).collect();
            npy::write_f32(&dir.join(format!("labels_{size}.npy")), size, size, &labels)?;
            for (measure, name) in [
                (StressMeasure::MaxPrincipal, "max_principal"),
                (StressMeasure::VonMises, "von_mises"),
            ] {
                npy::write_f32(
                    &dir.join(format!("{name}_{size}.npy")),
                    size,
                    size,
                    &field.measure(measure),
                )?;
            }
        }
        rows.push(row);
    }
    if let Some(dir) = &args.export {
        let json = serde_json::json!({
            "materials": params.materials,
            "pressure_kpa": params.pressure_kpa,
            "rows": rows,
        });
        atomic::write_bytes(
            &dir.join("sula.json"),
            serde_json::to_string_pretty(&json)?.as_bytes(),
        )?;
    }
    Ok(())
}

/// Samples per second of Adam steps on phantom frames, VAE and regressor, on the CPU or
/// CUDA device libtorch picks.
fn models(args: &ModelBenchArgs) -> Result<()> {
    use crate::data::phantom::{self, PhantomConfig};
    use crate::model::data::FrameSet;
    use crate::model::optim::FlatAdam;
    use crate::model::regressor::{Regressor, RegressorConfig};
    use crate::model::vae::{Vae, VaeConfig};
    use tch::nn;

    let device = tch::Device::cuda_if_available();
    let config = PhantomConfig::new(args.size);
    let frames: Vec<_> = (0..args.batch as u64)
        .map(|i| phantom::generate(&config, 1, i))
        .collect();
    let fea = FeaParams::default();
    let data = FrameSet {
        size: args.size,
        images: frames.iter().map(|f| f.image.clone()).collect(),
        stress: Some(
            frames
                .iter()
                .map(|f| {
                    crate::fea::solve(&f.labels, &fea)
                        .map(|s| s.measure(StressMeasure::MaxPrincipal))
                })
                .collect::<Result<_, _>>()?,
        ),
        labels: frames.into_iter().map(|f| f.labels).collect(),
    };
    let indices: Vec<usize> = (0..data.len()).collect();
    let images = data.image_batch(&indices, device);
    let labels = data.label_batch(&indices, device);
    let target = data.stress_batch(&indices, fea.pressure_kpa, device);

    // CUDA kernels run asynchronously: wait for them before reading the clock.
    let synchronize = || {
        if let tch::Device::Cuda(index) = device {
            tch::Cuda::synchronize(index as i64);
        }
    };
    type Step<'a> = dyn FnMut() -> Result<(), crate::model::ModelError> + 'a;
    let time_steps = |step: &mut Step| -> Result<f64> {
        for _ in 0..3 {
            step()?;
        }
        synchronize();
        let start = Instant::now();
        for _ in 0..args.steps.max(1) {
            step()?;
        }
        synchronize();
        Ok((args.steps.max(1) * args.batch) as f64 / start.elapsed().as_secs_f64())
    };

    crate::model::train::seed_torch(1);
    let vs = nn::VarStore::new(device);
    let vae = Vae::new(&vs.root(), VaeConfig::new(args.size));
    let mut optimiser = FlatAdam::new(&vs, 1e-3)?;
    let vae_rate = time_steps(&mut || {
        let out = vae.forward(&images, Some(&labels), true);
        let loss = vae.loss(&out, &images, Some(&labels), None, vae.config.beta);
        optimiser.backward_step(&loss.total)
    })?;

    let fvs = nn::VarStore::new(device);
    let model = Regressor::new(
        &fvs.root(),
        RegressorConfig {
            width: args.regressor_width,
            ..RegressorConfig::new(args.size)
        },
    );
    let mut optimiser = FlatAdam::new(&fvs, 1e-3)?;
    let regressor_rate = time_steps(&mut || {
        let (stress, tissue) = model.forward_with_tissue(&images);
        let tissue_loss = tissue.cross_entropy_loss::<tch::Tensor>(
            &labels,
            None,
            tch::Reduction::Mean,
            -100,
            0.0,
        );
        let loss = Regressor::loss(&stress, &target, None) + tissue_loss;
        optimiser.backward_step(&loss)
    })?;
    let threads = tch::get_num_threads();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "device": format!("{device:?}"),
                "threads": threads,
                "size": args.size,
                "batch": args.batch,
                "vae_samples_per_s": vae_rate,
                "regressor_samples_per_s": regressor_rate,
                "regressor_width": args.regressor_width,
            })
        );
    } else {
        println!(
            "training throughput at {0}×{0}, batch {1}, {device:?} ({threads} threads), Adam steps",
            args.size, args.batch
        );
        println!("  VAE step        {vae_rate:>9.1} samples/s");
        println!("  regressor step  {regressor_rate:>9.1} samples/s");
    }
    Ok(())
}
