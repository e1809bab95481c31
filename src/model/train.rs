//! Training loops shared by the CLI and the GUI worker: they report through a callback
//! after every batch, and the callback can stop them (cancel) between batches.

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::Device;
use tch::nn::{self, OptimizerConfig};

use super::ModelError;
use super::data::FrameSet;
use super::regressor::Regressor;
use super::vae::Vae;

/// Optimiser and schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch_size: 32,
            learning_rate: 1e-3,
            seed: 1,
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

/// Runs `step` on shuffled mini-batches for every epoch.
fn run_epochs(
    len: usize,
    config: &TrainConfig,
    mut step: impl FnMut(&[usize]) -> Result<f64, ModelError>,
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
            let loss = step(indices)?;
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

/// [`run_epochs`] with an Adam optimiser over `vs`, handed to each step.
fn run_adam(
    vs: &nn::VarStore,
    len: usize,
    config: &TrainConfig,
    on_progress: &mut dyn FnMut(&Progress) -> Control,
    mut step: impl FnMut(&mut nn::Optimizer, &[usize]) -> Result<f64, ModelError>,
) -> Result<TrainReport, ModelError> {
    let mut optimiser = nn::Adam::default().build(vs, config.learning_rate)?;
    run_epochs(
        len,
        config,
        |indices| step(&mut optimiser, indices),
        on_progress,
    )
}

/// Trains the VAE on images and label maps with Adam.
pub fn train_vae(
    vae: &Vae,
    vs: &nn::VarStore,
    data: &FrameSet,
    config: &TrainConfig,
    on_progress: &mut dyn FnMut(&Progress) -> Control,
) -> Result<TrainReport, ModelError> {
    let device = vs.device();
    run_adam(vs, data.len(), config, on_progress, |optimiser, indices| {
        let images = data.image_batch(indices, device);
        let labels = data.label_batch(indices, device);
        let out = vae.forward(&images, &labels, true);
        let loss = vae.loss(&out, &images, &labels);
        optimiser.backward_step(&loss.total);
        Ok(loss.total.double_value(&[]))
    })
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
    run_adam(vs, data.len(), config, on_progress, |optimiser, indices| {
        let images = data.image_batch(indices, device);
        let target = data.stress_batch(indices, pressure_kpa, device);
        let solid = masked.then(|| data.solid_batch(indices, device));
        let loss = Regressor::loss(&model.forward(&images), &target, solid.as_ref());
        optimiser.backward_step(&loss);
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
    let _guard = tch::no_grad_guard();
    let indices: Vec<usize> = (0..data.len()).collect();
    indices
        .chunks(64)
        .flat_map(|chunk| {
            let prediction = model.forward(&data.image_batch(chunk, device)) * pressure_kpa;
            let values = super::data::to_vec(&prediction);
            let per = data.size * data.size;
            values.chunks(per).map(<[f32]>::to_vec).collect::<Vec<_>>()
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
    let squared = (model.forward(&data.image_batch(indices, device)) - target).pow_tensor_scalar(2);
    let per_sample = (squared * &solid).sum_dim_intlist(dims.as_slice(), false, tch::Kind::Float)
        / solid
            .sum_dim_intlist(dims.as_slice(), false, tch::Kind::Float)
            .clamp_min(1.0);
    super::data::to_vec(&per_sample)
        .into_iter()
        .map(|l| f64::from(l) * pressure_kpa * pressure_kpa)
        .collect()
}
