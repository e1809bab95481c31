//! `sula train-vae` and `sula train`: train the VAE or the stress regressor from the
//! command line with a progress bar, and save a checkpoint with its sidecar.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tch::Device;

use super::open::OpenArgs;
use crate::data::dataset::Dataset;
use crate::fea::DEFAULT_PRESSURE_KPA;
use crate::model::assess;
use crate::model::checkpoint::{self, Architecture, Sidecar};
use crate::model::data::FrameSet;
use crate::model::regressor::{Regressor, RegressorConfig, RegressorInput};
use crate::model::train::{self, Control, LrSchedule, Progress, TrainConfig, TrainReport};
use crate::model::vae::{LabelWeighting, VAE_REVISION, Vae, VaeConfig};

/// Where to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceChoice {
    /// CUDA when available, else CPU.
    Auto,
    Cpu,
    Cuda,
}

impl DeviceChoice {
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            DeviceChoice::Cuda => {
                bail!("--device cuda was asked for but libtorch sees no CUDA device")
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Dataset folder (sula or MICCAI 2011 layout), DICOM file or folder of DICOM files.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Checkpoint to write (.safetensors; the sidecar goes next to it as .json).
    #[arg(long, value_name = "CKPT.safetensors")]
    out: PathBuf,
    /// Working resolution (square; frames are resampled).
    #[arg(long, default_value_t = 64)]
    size: usize,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Learning-rate schedule over the whole run.
    #[arg(long, value_enum, default_value_t = LrSchedule::Cosine)]
    schedule: LrSchedule,
    /// Train on the frames as given, without random rotations and mirrors.
    #[arg(long)]
    no_augment: bool,
    /// Seed for initialisation, shuffling and sampling (CPU runs are deterministic).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    #[command(flatten)]
    open: OpenArgs,
}

#[derive(Debug, Args)]
pub struct TrainVaeArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[arg(long, default_value_t = VaeConfig::new(64).latent_dim)]
    latent_dim: usize,
    /// Channels of the first convolution.
    #[arg(long, default_value_t = VaeConfig::new(64).width)]
    width: usize,
    /// Weight of the KL term.
    #[arg(long, default_value_t = 1.0)]
    beta: f64,
    /// Epochs over which the KL weight ramps up from 0 to β.
    #[arg(long, default_value_t = VaeConfig::new(64).kl_warmup_epochs)]
    kl_warmup: usize,
    /// Gaussians in the latent prior fitted to the training frames' encoder means.
    #[arg(long, default_value_t = VaeConfig::new(64).prior_components)]
    prior_components: usize,
    /// Model the images alone, even when every frame has a label map (a pool with
    /// unannotated frames always gets an image-only VAE).
    #[arg(long)]
    image_only: bool,
    /// How the label cross-entropy weighs the tissue classes.
    #[arg(long, value_enum, default_value_t = VaeConfig::new(64).label_weighting)]
    label_weighting: LabelWeighting,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Channels at full resolution.
    #[arg(long, default_value_t = RegressorConfig::new(64).width)]
    width: usize,
    /// Down-samplings of the U-Net (default: down to about 4×4).
    #[arg(long)]
    levels: Option<usize>,
    /// What F reads: the image, or the label map (the oracle that measures F's ceiling).
    #[arg(long, value_enum, default_value_t = RegressorInput::Image)]
    input: RegressorInput,
    /// Weight of the auxiliary tissue cross-entropy (0: stress alone).
    #[arg(long, default_value_t = RegressorConfig::new(64).tissue_weight)]
    tissue_weight: f64,
    /// Compute the loss over solid pixels only.
    #[arg(long)]
    masked: bool,
    /// Luminal pressure the stress maps were computed with (kPa).
    #[arg(long, default_value_t = DEFAULT_PRESSURE_KPA)]
    pressure_kpa: f64,
    /// Validation dataset to report metrics (docs/DESIGN.md §Metrics) on after training: the one to choose
    /// settings (epochs, width) by, so that the test set stays unconsulted.
    #[arg(long, value_name = "DIR")]
    validation: Option<PathBuf>,
    /// Independent test dataset to report metrics (docs/DESIGN.md §Metrics) on after training.
    #[arg(long, value_name = "DIR")]
    test: Option<PathBuf>,
}

fn progress_bar(config: &TrainConfig, frames: usize) -> ProgressBar {
    let batches = frames.div_ceil(config.batch_size.max(1));
    ProgressBar::new((config.epochs * batches) as u64).with_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} batches, ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    )
}

fn report_progress(bar: &ProgressBar) -> impl FnMut(&Progress) -> Control + '_ {
    move |p: &Progress| {
        bar.set_message(format!(
            "epoch {}/{} loss {:.4}",
            p.epoch + 1,
            p.epochs,
            p.loss
        ));
        bar.inc(1);
        Control::Continue
    }
}

fn check_size(size: usize, multiple: usize) -> Result<()> {
    if size < 16 || !size.is_multiple_of(multiple) {
        bail!("--size {size} must be at least 16 and a multiple of {multiple}");
    }
    Ok(())
}

/// Which frames a command trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frames {
    /// Annotated frames with their stress maps.
    Annotated,
    /// Every frame; images only unless every frame is annotated.
    All,
}

/// Checks the size, loads the frames and seeds torch; returns the data, the schedule and
/// an empty VarStore on the chosen device.
fn prepare(
    common: &CommonArgs,
    frames: Frames,
    size_multiple: usize,
) -> Result<(Dataset, FrameSet, TrainConfig, tch::nn::VarStore)> {
    check_size(common.size, size_multiple)?;
    let dataset = Dataset::open_with(&common.data, &common.open.options())?;
    let data = match frames {
        Frames::Annotated => FrameSet::load(&dataset, common.size, true)?,
        Frames::All if dataset.annotated() == dataset.frames.len() => {
            FrameSet::load(&dataset, common.size, false)?
        }
        Frames::All => FrameSet::load_images(&dataset, common.size)?,
    };
    let config = TrainConfig {
        epochs: common.epochs,
        batch_size: common.batch_size.max(1),
        learning_rate: common.lr,
        seed: common.seed,
        schedule: common.schedule,
        augment: !common.no_augment,
    };
    let device = common.device.resolve()?;
    train::seed_torch(config.seed);
    Ok((dataset, data, config, tch::nn::VarStore::new(device)))
}

/// Writes the checkpoint with its sidecar (architecture, data, training provenance) and
/// prints the epoch losses.
fn save_checkpoint(
    vs: &tch::nn::VarStore,
    common: &CommonArgs,
    architecture: Architecture,
    (dataset, data, config): (&Dataset, &FrameSet, &TrainConfig),
    report: &TrainReport,
    extra_data: serde_json::Value,
) -> Result<()> {
    let mut data_info = serde_json::json!({
        "root": dataset.root.display().to_string(),
        "frames": data.len(),
        "size": data.size,
        "source_pixel_mm": dataset.pixel_mm,
    });
    if let (Some(info), serde_json::Value::Object(extra)) = (data_info.as_object_mut(), extra_data)
    {
        info.extend(extra);
    }
    let sidecar = Sidecar {
        architecture,
        sula_version: env!("CARGO_PKG_VERSION").to_string(),
        data: data_info,
        training: serde_json::json!({
            "config": config,
            "report": report,
            "device": format!("{:?}", vs.device()),
        }),
    };
    checkpoint::save(vs, &common.out, &sidecar)?;
    let losses: Vec<String> = report
        .epoch_losses
        .iter()
        .map(|l| format!("{l:.4}"))
        .collect();
    println!("epoch losses: {}", losses.join(" "));
    Ok(())
}

/// Prints what is being trained, runs `train` with a progress bar, clears the bar.
fn with_progress(
    what: &str,
    data: &FrameSet,
    config: &TrainConfig,
    device: Device,
    train: impl FnOnce(
        &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<TrainReport, crate::model::ModelError>,
) -> Result<TrainReport> {
    println!(
        "training {what} on {} frames at {}² ({device:?})",
        data.len(),
        data.size
    );
    let bar = progress_bar(config, data.len());
    let report = train(&mut report_progress(&bar))?;
    bar.finish_and_clear();
    Ok(report)
}

pub fn run_vae(args: &TrainVaeArgs) -> Result<()> {
    let common = &args.common;
    let (dataset, data, config, vs) = prepare(common, Frames::All, 8)?;
    let device = vs.device();
    if args.prior_components == 0 || args.latent_dim == 0 {
        bail!("--latent-dim and --prior-components must be at least 1");
    }
    let vae_config = VaeConfig {
        size: common.size,
        latent_dim: args.latent_dim,
        width: args.width,
        beta: args.beta,
        kl_warmup_epochs: args.kl_warmup,
        prior_components: args.prior_components,
        revision: VAE_REVISION,
        labelled: data.is_labelled() && !args.image_only,
        label_weighting: args.label_weighting,
    };
    if !vae_config.labelled {
        println!(
            "image-only VAE: {} of {} frames are annotated, so it models the images alone (SNN works with it, SI does not)",
            dataset.annotated(),
            dataset.frames.len()
        );
    }
    let mut vae = Vae::new(&vs.root(), vae_config);
    let report = with_progress("the VAE", &data, &config, device, |progress| {
        train::train_vae(&mut vae, &vs, &data, &config, progress)
    })?;
    println!(
        "speckle grain {:.2} px; latent prior: {} Gaussians fitted to {} encoder means",
        vae.grain(),
        vae_config.prior_components,
        data.len()
    );
    let architecture = Architecture::Vae(vae_config);
    save_checkpoint(
        &vs,
        common,
        architecture,
        (&dataset, &data, &config),
        &report,
        serde_json::json!({}),
    )?;
    println!("saved {}", common.out.display());
    Ok(())
}

pub fn run_regressor(args: &TrainArgs) -> Result<()> {
    let common = &args.common;
    let (dataset, data, config, vs) = prepare(common, Frames::Annotated, 4)?;
    let device = vs.device();
    let levels = args
        .levels
        .unwrap_or_else(|| RegressorConfig::levels_for(common.size));
    if levels == 0 || levels > 10 || !common.size.is_multiple_of(1 << levels) {
        bail!(
            "--levels {levels} needs a --size that halves {levels} times exactly, and {} does not",
            common.size
        );
    }
    if !(args.tissue_weight.is_finite() && args.tissue_weight >= 0.0) {
        bail!(
            "--tissue-weight {} must be a number of at least 0",
            args.tissue_weight
        );
    }
    let model_config = RegressorConfig {
        width: args.width,
        levels,
        input: args.input,
        tissue_weight: args.tissue_weight,
        ..RegressorConfig::new(common.size)
    };
    let model = Regressor::new(&vs.root(), model_config);
    let report = with_progress("the stress regressor", &data, &config, device, |progress| {
        train::train_regressor(
            &model,
            &vs,
            &data,
            args.pressure_kpa,
            args.masked,
            &config,
            progress,
        )
    })?;
    // Validation and test metrics go to the console and into the checkpoint's sidecar.
    let mut extra = serde_json::json!({ "pressure_kpa": args.pressure_kpa });
    for (role, dir) in [("validation", &args.validation), ("test", &args.test)] {
        let Some(dir) = dir else { continue };
        let held_out = FrameSet::load(
            &Dataset::open(dir, common.open.pixel_mm)?,
            common.size,
            true,
        )?;
        let predictions = train::predict_kpa(&model, &held_out, args.pressure_kpa, device);
        let (frames, ours) = assess::score(&held_out, |i| predictions[i].clone());
        let (_, trivial) = assess::mean_map_metrics(&data, &held_out);
        println!(
            "{role} ({frames} frames): MSE {:.2} kPa², accuracy {:.3}, peak error {:.3}, R² {:.3}",
            ours.mse, ours.accuracy, ours.peak_error, ours.r2
        );
        println!(
            "per-pixel mean predictor: MSE {:.2} kPa², accuracy {:.3}, R² {:.3}; MSE ratio F / mean = {:.3}",
            trivial.mse,
            trivial.accuracy,
            trivial.r2,
            ours.mse / trivial.mse.max(f64::MIN_POSITIVE)
        );
        extra[role] = serde_json::json!({
            "root": dir.display().to_string(),
            "frames": frames,
            "metrics": ours,
            "per_pixel_mean_metrics": trivial,
        });
    }
    let architecture = Architecture::Regressor(model_config);
    save_checkpoint(
        &vs,
        common,
        architecture,
        (&dataset, &data, &config),
        &report,
        extra,
    )?;
    println!("saved {}", common.out.display());
    Ok(())
}
