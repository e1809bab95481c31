//! `sula project new`, `sula suggest` and `sula import`: the annotation round trip on real
//! data (docs/DESIGN.md §Project) from the command line.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::open::OpenArgs;
use super::train::DeviceChoice;
use crate::model::train::{Control, Progress};
use crate::model::vae::VaeConfig;
use crate::project::import::{ImportOptions, import};
use crate::project::suggest::{PoolStrategy, SuggestOptions, suggest};
use crate::project::{NewProject, Project, VaeSource, new_project};

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Start a project on a pool (DICOM pullback or dataset folder): embed it with an
    /// image-only VAE, trained here or reused.
    New(NewArgs),
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The pool: a DICOM file, a folder of DICOM files, or a dataset folder.
    #[arg(long, value_name = "SRC")]
    pool: PathBuf,
    /// The project folder to create.
    #[arg(long, value_name = "P")]
    out: PathBuf,
    #[command(flatten)]
    open: OpenArgs,
    /// Working resolution of the VAE and F (square, a multiple of 16).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Reuse this image-only VAE instead of training one.
    #[arg(long, value_name = "CKPT.safetensors")]
    vae: Option<PathBuf>,
    /// Epochs of VAE training on the pool's images.
    #[arg(long, default_value_t = 60)]
    epochs: usize,
    #[arg(long, default_value_t = VaeConfig::new(64).latent_dim)]
    latent_dim: usize,
    #[arg(long, default_value_t = VaeConfig::new(64).width)]
    width: usize,
    /// An annotated dataset to validate F on after every import.
    #[arg(long, value_name = "DIR")]
    validation: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Debug, Args)]
pub struct SuggestArgs {
    /// The project folder.
    project: PathBuf,
    /// Frames to suggest.
    #[arg(long)]
    count: usize,
    /// The batch folder to write (images, manifest, empty masks/, README for the annotator).
    #[arg(long, value_name = "BATCH")]
    out: PathBuf,
    /// How round 0 picks frames before anything is annotated.
    #[arg(long, value_enum, default_value_t = PoolStrategy::CoreSet)]
    round_zero: PoolStrategy,
    /// η: how far annotated frames move along F's loss gradient (latent units); the
    /// default is SNN's η chosen on the phantom's validation split.
    #[arg(long, default_value_t = crate::sampling::chosen(crate::sampling::Mode::Snn).step)]
    step: f32,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The project folder.
    project: PathBuf,
    /// The annotated batch folder (as `sula suggest` wrote it, with masks/ filled in).
    #[arg(long, value_name = "BATCH")]
    annotations: PathBuf,
    /// Epochs F trains for this round, on every annotated frame.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

fn quiet(_: &Progress) -> Control {
    Control::Continue
}

pub fn run_project(command: &ProjectCommand) -> Result<()> {
    match command {
        ProjectCommand::New(args) => run_new(args),
    }
}

fn run_new(args: &NewArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let options = args.open.options();
    let pool = crate::data::dataset::Dataset::open_with(&args.pool, &options)?;
    println!(
        "pool: {} ({} frames, {} annotated)",
        args.pool.display(),
        pool.frames.len(),
        pool.annotated()
    );
    for pullback in &pool.pullbacks {
        let series = &pullback.series;
        if series.declared_count() > series.frame_count() {
            eprintln!(
                "warning: {}: only {} of its {} declared frames are whole (the file may be truncated); the project uses those",
                series.name,
                series.frame_count(),
                series.declared_count()
            );
        }
    }
    let spec = NewProject {
        pool: args.pool.clone(),
        options,
        out: args.out.clone(),
        size: args.size,
        vae: match &args.vae {
            Some(path) => VaeSource::Reuse(path.clone()),
            None => VaeSource::Train {
                epochs: args.epochs,
                latent_dim: args.latent_dim,
                width: args.width,
            },
        },
        validation: args.validation.clone(),
        seed: args.seed,
        device,
    };
    if args.vae.is_none() {
        println!(
            "training an image-only VAE on {} frames at {}² for {} epochs ({device:?})",
            pool.frames.len(),
            args.size,
            args.epochs
        );
    }
    let project = new_project(&spec, &pool, &mut quiet)?;
    println!("created {}", project.root.display());
    println!(
        "next: sula suggest {} --count N --out BATCH",
        project.root.display()
    );
    Ok(())
}

pub fn run_suggest(args: &SuggestArgs) -> Result<()> {
    let mut project = Project::open(&args.project)?;
    let options = SuggestOptions {
        count: args.count,
        round_zero: args.round_zero,
        step: args.step,
        device: args.device.resolve()?,
    };
    let summary = suggest(&mut project, &args.out, &options)?;
    println!(
        "round {}: {} frames by {} written to {}",
        summary.round,
        summary.frames.len(),
        summary.strategy,
        summary.out.display()
    );
    println!(
        "annotate them into {}/masks/ (see its README.md), then: sula import {} --annotations {}",
        summary.out.display(),
        args.project.display(),
        summary.out.display()
    );
    Ok(())
}

pub fn run_import(args: &ImportArgs) -> Result<()> {
    let mut project = Project::open(&args.project)?;
    let options = ImportOptions {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        device: args.device.resolve()?,
    };
    let summary = import(&mut project, &args.annotations, &options, &mut quiet)?;
    for warning in &summary.sealed {
        eprintln!("warning: {warning}");
    }
    println!(
        "round {}: {} frames imported ({} annotated in all); F trained for {} epochs, final loss {:.4}",
        summary.round,
        summary.annotated,
        summary.total_annotated,
        summary.epoch_losses.len(),
        summary.epoch_losses.last().copied().unwrap_or(f64::NAN)
    );
    if !summary.skipped.is_empty() {
        println!(
            "  not annotated, back in the pool: {}",
            summary.skipped.join(", ")
        );
    }
    if let Some(v) = &summary.new_batch {
        println!(
            "  F on this batch before training on it ({} frames): MSE {:.2} kPa², accuracy {:.3}, R² {:.3}, peak error {:.3}",
            v.frames, v.metrics.mse, v.metrics.accuracy, v.metrics.r2, v.metrics.peak_error
        );
    }
    match &summary.validation {
        Some(v) => println!(
            "  F on the validation split ({} frames): MSE {:.2} kPa², accuracy {:.3}, R² {:.3}, peak error {:.3}",
            v.frames, v.metrics.mse, v.metrics.accuracy, v.metrics.r2, v.metrics.peak_error
        ),
        None => {
            println!("  no validation split (give one with `sula project new --validation DIR`)")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SuggestArgs,
    }

    #[test]
    fn suggest_steps_by_snn_s_chosen_eta_unless_told() {
        let parse = |extra: &[&str]| {
            let words = ["suggest", "P", "--count", "4", "--out", "B"];
            Cli::try_parse_from(words.iter().chain(extra)).unwrap().args
        };
        assert_eq!(parse(&[]).step, 2.0);
        assert_eq!(parse(&["--step", "0.5"]).step, 0.5);
    }
}
