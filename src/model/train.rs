//! Training loops shared by the CLI and the GUI worker: they report through a callback
//! after every batch, and the callback can stop them (cancel) between batches.

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Device, Kind, Tensor};

use super::ModelError;
use super::augment::Symmetry;
use super::data::FrameSet;
use super::optim::FlatAdam;
use super::regressor::Regressor;
use super::vae::Vae;

/// Optimiser and schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// How the learning rate moves over the run.
    #[serde(default)]
    pub schedule: LrSchedule,
    /// Each batch under a random symmetry of the square (see [`Symmetry`]).
    #[serde(default)]
    pub augment: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch_size: 32,
            learning_rate: 1e-3,
            seed: 1,
            schedule: LrSchedule::Cosine,
            augment: true,
        }
    }
}

/// Learning-rate schedule over all steps of one training run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// The same rate throughout.
    #[default]
    Constant,
    /// Half-cosine decay from the rate to zero: large steps early, fine ones at the end,
    /// where a constant rate leaves the loss still falling.
    Cosine,
}

impl LrSchedule {
    /// The rate at `step` of `total` steps.
    pub fn rate(self, base: f64, step: usize, total: usize) -> f64 {
        match self {
            LrSchedule::Constant => base,
            LrSchedule::Cosine => {
                let t = step as f64 / total.max(1) as f64;
                0.5 * base * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
            }
        }
    }
}

/// Where training is, reported after each batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub epoch: usize,
    pub epochs: usize,
    pub batch: usize,
    pub batches: usize,
    /// Loss of this batch.
    pub loss: f64,
    pub elapsed: Duration,
}

impl Progress {
    /// Fraction of all batches done, in [0, 1].
    pub fn fraction(&self) -> f64 {
        ((self.epoch * self.batches + self.batch + 1) as f64
            / (self.epochs * self.batches).max(1) as f64)
            .min(1.0)
    }
}

/// What the callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// Mean loss of each finished epoch, and the number of optimiser steps taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub epoch_losses: Vec<f64>,
    pub steps: usize,
    pub stopped: bool,
}

/// Seeds libtorch's generator for reproducible initialisation and sampling.
pub fn seed_torch(seed: u64) {
    tch::manual_seed(seed as i64);
}

/// One mini-batch as a training step sees it.
struct Batch<'a> {
    epoch: usize,
    /// Steps taken before this one.
    done: usize,
    indices: &'a [usize],
    symmetry: Symmetry,
}

/// Runs `step` on shuffled mini-batches for every epoch.
fn run_epochs(
    len: usize,
    config: &TrainConfig,
    mut step: impl FnMut(&Batch) -> Result<f64, ModelError>,
    on_progress: &mut dyn FnMut(&Progress) -> Control,
) -> Result<TrainReport, ModelError> {
    if len == 0 || config.batch_size == 0 {
        return Err(ModelError::Data("nothing to train on".to_string()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..len).collect();
    let batches = len.div_ceil(config.batch_size);
    let start = Instant::now();
    let mut report = TrainReport::default();
    for epoch in 0..config.epochs {
        order.shuffle(&mut rng);
        let mut sum = 0.0;
        for (batch, indices) in order.chunks(config.batch_size).enumerate() {
            let symmetry = if config.augment {
                Symmetry::random(&mut rng)
            } else {
                Symmetry::IDENTITY
            };
            let loss = step(&Batch {
                epoch,
                done: report.steps,
                indices,
                symmetry,
            })?;
            if !loss.is_finite() {
                return Err(ModelError::Data(format!(
                    "training diverged: loss {loss} in epoch {}",
                    epoch + 1
                )));
            }
            report.steps += 1;
            sum += loss * indices.len() as f64;
            let progress = Progress {
                epoch,
                epochs: config.epochs,
                batch,
                batches,
                loss,
                elapsed: start.elapsed(),
            };
            if on_progress(&progress) == Control::Stop {
                report.stopped = true;
                return Ok(report);
            }
        }
        report.epoch_losses.push(sum / len as f64);
    }
    Ok(report)
}

/// [`run_epochs`] with an Adam optimiser over `vs` on the configured schedule, handed to
/// each step with the epoch.
fn run_adam(
    vs: &nn::VarStore,
    len: usize,
    config: &TrainConfig,
    on_progress: &mut dyn FnMut(&Progress) -> Control,
    mut step: impl FnMut(&mut FlatAdam, &Batch) -> Result<f64, ModelError>,
) -> Result<TrainReport, ModelError> {
    let mut optimiser = FlatAdam::new(vs, config.learning_rate)?;
    let total = config.epochs * len.div_ceil(config.batch_size.max(1));
    run_epochs(
        len,
        config,
        |batch| {
            optimiser.set_lr(
                config
                    .schedule
                    .rate(config.learning_rate, batch.done, total),
            );
            step(&mut optimiser, batch)
        },
        on_progress,
    )
}

/// Trains the VAE on images (and label maps, for a labelled VAE) with Adam and the KL
/// warm-up, then measures the speckle grain and fits the latent prior to the frames'
/// encoder means (both stored with the weights). A stopped run keeps its weights untouched
/// beyond the last step.
pub fn train_vae(
    vae: &mut Vae,
    vs: &nn::VarStore,
    data: &FrameSet,
    config: &TrainConfig,
    on_progress: &mut dyn FnMut(&Progress) -> Control,
) -> Result<TrainReport, ModelError> {
    if vae.config.labelled && !data.is_labelled() {
        return Err(ModelError::Data(
            "a labelled VAE needs a label map for every frame; train an image-only VAE on an unannotated pool".into(),
        ));
    }
    let device = vs.device();
    let model: &Vae = vae;
    let class_weights = class_weight_tensor(model, data, device);
    let report = run_adam(vs, data.len(), config, on_progress, |optimiser, batch| {
        let images = batch
            .symmetry
            .apply(&data.image_batch(batch.indices, device));
        let labels = model.config.labelled.then(|| {
            batch
                .symmetry
                .apply(&data.label_batch(batch.indices, device))
        });
        let out = model.forward(&images, labels.as_ref(), true);
        let beta = model.config.beta_at(batch.epoch);
        let loss = model.loss(&out, &images, labels.as_ref(), class_weights.as_ref(), beta);
        optimiser.backward_step(&loss.total)?;
        Ok(loss.total.double_value(&[]))
    })?;
    if !report.stopped {
        finish_vae(vae, data, config.seed, device)?;
    }
    Ok(report)
}

/// The label cross-entropy's class weights for `vae` on `data`, if it weighs classes.
fn class_weight_tensor(vae: &Vae, data: &FrameSet, device: Device) -> Option<Tensor> {
    vae.config
        .labelled
        .then(|| {
            vae.config
                .label_weighting
                .class_weights(&data.class_counts())
        })
        .flatten()
        .map(|w| {
            Tensor::from_slice(&w)
                .to_kind(Kind::Float)
                .to_device(device)
        })
}

/// After training: the speckle grain from the residuals and the aggregate-posterior prior.
fn finish_vae(vae: &mut Vae, data: &FrameSet, seed: u64, device: Device) -> Result<(), ModelError> {
    let indices: Vec<usize> = (0..data.len()).collect();
    let (mut lagged, mut energy) = (0.0, 0.0);
    for chunk in indices.chunks(64) {
        let labels = vae.config.labelled.then(|| data.label_batch(chunk, device));
        let (l, e) = vae.residual_correlation(&data.image_batch(chunk, device), labels.as_ref());
        lagged += l;
        energy += e;
    }
    vae.set_grain_from_correlation(lagged / energy.max(f64::MIN_POSITIVE));
    let means = super::evaluate::encode_means(vae, data, device);
    let components = vae
        .config
        .prior_components
        .max(1)
        .min(means.len() / 2)
        .max(1);
    let fitted =
        super::prior::LatentPrior::fit(&means, components, seed).map_err(ModelError::Data)?;
    let mut prior = fitted;
    // Fewer frames than the configured components: pad with empty components so the
    // stored tensors keep their shape.
    while prior.components() < vae.config.prior_components.max(1) {
        prior.weights.push(0.0);
        prior.means.push(prior.means[0].clone());
        prior.scale_tril.push(prior.scale_tril[0].clone());
    }
    vae.set_prior(&prior);
    Ok(())
}

/// Trains F on image → stress/pressure with Adam; `masked` restricts the loss to solid
/// pixels.
pub fn train_regressor(
    model: &Regressor,
    vs: &nn::VarStore,
    data: &FrameSet,
    pressure_kpa: f64,
    masked: bool,
    config: &TrainConfig,
    on_progress: &mut dyn FnMut(&Progress) -> Control,
) -> Result<TrainReport, ModelError> {
    if data.stress.is_none() {
        return Err(ModelError::Data(
            "the training frames have no stress maps".to_string(),
        ));
    }
    let device = vs.device();
    run_adam(vs, data.len(), config, on_progress, |optimiser, batch| {
        let (indices, symmetry) = (batch.indices, batch.symmetry);
        let input = symmetry.apply(&model.input_batch(data, indices, device));
        let target = symmetry.apply(&data.stress_batch(indices, pressure_kpa, device));
        let solid = masked.then(|| symmetry.apply(&data.solid_batch(indices, device)));
        let labels = symmetry.apply(&data.label_batch(indices, device));
        let (stress, tissue) = model.forward_with_tissue(&input);
        let loss = Regressor::loss(&stress, &target, solid.as_ref());
        let tissue_loss =
            tissue.cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::Mean, -100, 0.0);
        optimiser.backward_step(&(&loss + tissue_loss * model.config.tissue_weight))?;
        Ok(loss.double_value(&[]))
    })
}

/// Predicted stress in kPa for every frame of `data`, as plain maps.
pub fn predict_kpa(
    model: &Regressor,
    data: &FrameSet,
    pressure_kpa: f64,
    device: Device,
) -> Vec<Vec<f32>> {
    stress_maps(model, data, device, |input| {
        model.forward(input) * pressure_kpa
    })
}

/// Like [`predict_kpa`], but each frame's map is the mean of F's predictions for its eight
/// rotations and mirrors, each brought back onto the frame's grid. The FEA is exactly
/// equivariant under these symmetries and F is trained on all eight, so the mean is the
/// estimate training asks for; a trained net is only approximately equivariant, and its
/// eight views disagree.
pub fn predict_kpa_symmetry_averaged(
    model: &Regressor,
    data: &FrameSet,
    pressure_kpa: f64,
    device: Device,
) -> Vec<Vec<f32>> {
    let views = Symmetry::ALL.len() as f64;
    stress_maps(model, data, device, |input| {
        let sum: Tensor = Symmetry::ALL
            .iter()
            .map(|symmetry| symmetry.undo(&model.forward(&symmetry.apply(input))))
            .sum();
        sum * (pressure_kpa / views)
    })
}

/// Runs `predict` on F's input for every frame of `data`, in chunks and without
/// gradients, and splits its output into one plain map per frame.
fn stress_maps(
    model: &Regressor,
    data: &FrameSet,
    device: Device,
    predict: impl Fn(&Tensor) -> Tensor,
) -> Vec<Vec<f32>> {
    let _guard = tch::no_grad_guard();
    let indices: Vec<usize> = (0..data.len()).collect();
    let per = data.size * data.size;
    indices
        .chunks(64)
        .flat_map(|chunk| {
            let values = super::data::to_vec(&predict(&model.input_batch(data, chunk, device)));
            values.chunks(per).map(<[f32]>::to_vec).collect::<Vec<_>>()
        })
        .collect()
}

/// The label map F's auxiliary tissue head sees in every frame of `data` (the most likely
/// class per pixel): how well F perceives the tissue its stress depends on.
pub fn predict_tissue(model: &Regressor, data: &FrameSet, device: Device) -> Vec<Vec<u8>> {
    let _guard = tch::no_grad_guard();
    let indices: Vec<usize> = (0..data.len()).collect();
    let per = data.size * data.size;
    indices
        .chunks(64)
        .flat_map(|chunk| {
            let (_, tissue) = model.forward_with_tissue(&model.input_batch(data, chunk, device));
            let classes = super::data::to_vec(&tissue.argmax(1, false));
            classes
                .chunks(per)
                .map(|frame| frame.iter().map(|&c| c as u8).collect())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Per-sample loss of F on `indices` of `data` (MSE over solid pixels, kPa²), without
/// training: how hard F finds each sample now.
pub fn regressor_losses(
    model: &Regressor,
    data: &FrameSet,
    indices: &[usize],
    pressure_kpa: f64,
    device: Device,
) -> Vec<f64> {
    if indices.is_empty() {
        return Vec::new();
    }
    let _guard = tch::no_grad_guard();
    let target = data.stress_batch(indices, pressure_kpa, device);
    let solid = data.solid_batch(indices, device);
    let dims = [1i64, 2, 3];
    let squared =
        (model.forward(&model.input_batch(data, indices, device)) - target).pow_tensor_scalar(2);
    let per_sample = (squared * &solid).sum_dim_intlist(dims.as_slice(), false, tch::Kind::Float)
        / solid
            .sum_dim_intlist(dims.as_slice(), false, tch::Kind::Float)
            .clamp_min(1.0);
    super::data::to_vec(&per_sample)
        .into_iter()
        .map(|l| f64::from(l) * pressure_kpa * pressure_kpa)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_schedule_starts_at_the_rate_halves_midway_and_ends_at_zero() {
        let cosine = LrSchedule::Cosine;
        assert_eq!(cosine.rate(1e-3, 0, 100), 1e-3);
        assert!((cosine.rate(1e-3, 50, 100) - 5e-4).abs() < 1e-12);
        assert!(cosine.rate(1e-3, 100, 100).abs() < 1e-12);
        assert_eq!(LrSchedule::Constant.rate(1e-3, 99, 100), 1e-3);
    }
}
