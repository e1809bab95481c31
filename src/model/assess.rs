//! Measuring F and the generator by what matters to the loop: a fresh F trained on a set
//! for a fixed number of optimiser steps and scored on real test frames (docs/DESIGN.md §Metrics). The
//! learning curve, the oracle and train-on-synthetic-test-on-real all reduce to this.

use serde::Serialize;
use tch::Device;

use super::ModelError;
use super::data::FrameSet;
use super::regressor::{Regressor, RegressorConfig};
use super::train::{self, Control, LrSchedule, Progress, TrainConfig};
use crate::metrics::{FrameMetrics, frame_metrics, mean_metrics};

/// How F is trained for an assessment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FitConfig {
    pub regressor: RegressorConfig,
    /// Optimiser steps, whatever the training set's size (epochs are rounded to reach it).
    pub steps: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
    pub pressure_kpa: f64,
}

/// The outcome of one assessment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Assessment {
    pub train_frames: usize,
    pub epochs: usize,
    pub steps: usize,
    /// Test frames with solid pixels that were scored.
    pub test_frames: usize,
    pub metrics: FrameMetrics,
}

/// Epochs that give about `steps` optimiser steps on `frames` frames (at least one).
pub fn epochs_for(steps: usize, frames: usize, batch_size: usize) -> usize {
    let per_epoch = frames.div_ceil(batch_size.max(1)).max(1);
    (steps as f64 / per_epoch as f64).round().max(1.0) as usize
}

/// Train-on-synthetic, test-on-real: the real-frame test MSE of an F trained on synthetic
/// frames over that of an F trained on as many real frames with the same steps. Above 1,
/// the synthetic frames train F worse than real ones would. `None` when the real MSE is
/// zero or not finite, where no ratio says anything.
pub fn tstr_ratio(synthetic: &FrameMetrics, real: &FrameMetrics) -> Option<f64> {
    (real.mse.is_finite() && real.mse > 0.0).then(|| synthetic.mse / real.mse)
}

/// metrics (docs/DESIGN.md §Metrics) of per-frame predictions (kPa) against `test`'s stress, and the number
/// of frames scored.
pub fn score(test: &FrameSet, prediction: impl Fn(usize) -> Vec<f32>) -> (usize, FrameMetrics) {
    summarise(&score_frames(test, prediction))
}

/// The number of scored frames of [`score_frames`]'s output and their mean metrics.
fn summarise(per_frame: &[Option<FrameMetrics>]) -> (usize, FrameMetrics) {
    let scored: Vec<FrameMetrics> = per_frame.iter().flatten().copied().collect();
    (scored.len(), mean_metrics(&scored))
}

/// metrics (docs/DESIGN.md §Metrics) of each frame of `test` on its own, in order; `None` for a frame
/// without solid pixels. Where in the test set an F loses, against another F.
pub fn score_frames(
    test: &FrameSet,
    prediction: impl Fn(usize) -> Vec<f32>,
) -> Vec<Option<FrameMetrics>> {
    let truth = test.stress.as_ref().expect("test frames carry stress");
    (0..test.len())
        .map(|i| frame_metrics(&prediction(i), &truth[i], &test.labels[i]))
        .collect()
}

/// The trivial predictor's metrics: the per-pixel mean of `train`'s stress maps.
pub fn mean_map_metrics(train: &FrameSet, test: &FrameSet) -> (usize, FrameMetrics) {
    let stress = train.stress.as_ref().expect("training frames carry stress");
    let mut mean_map = vec![0.0f32; train.size * train.size];
    for map in stress {
        for (m, v) in mean_map.iter_mut().zip(map) {
            *m += v / stress.len() as f32;
        }
    }
    score(test, |_| mean_map.clone())
}

/// Trains a fresh F (seeded) on `data` for about `config.steps` steps on a cosine schedule
/// and scores it on `test`: over all frames, and each frame on its own (as
/// [`score_frames`]).
pub fn fit_and_test(
    config: &FitConfig,
    data: &FrameSet,
    test: &FrameSet,
    device: Device,
    on_progress: &mut dyn FnMut(&Progress) -> Control,
) -> Result<(Assessment, Vec<Option<FrameMetrics>>), ModelError> {
    if test.stress.is_none() {
        return Err(ModelError::Data(
            "the test frames have no stress maps".to_string(),
        ));
    }
    train::seed_torch(config.seed);
    let vs = tch::nn::VarStore::new(device);
    let model = Regressor::new(&vs.root(), config.regressor);
    let schedule = TrainConfig {
        epochs: epochs_for(config.steps, data.len(), config.batch_size),
        batch_size: config.batch_size,
        learning_rate: config.learning_rate,
        seed: config.seed,
        schedule: LrSchedule::Cosine,
        augment: true,
    };
    let report = train::train_regressor(
        &model,
        &vs,
        data,
        config.pressure_kpa,
        true,
        &schedule,
        on_progress,
    )?;
    let predictions = train::predict_kpa(&model, test, config.pressure_kpa, device);
    let per_frame = score_frames(test, |i| predictions[i].clone());
    let (test_frames, metrics) = summarise(&per_frame);
    let assessment = Assessment {
        train_frames: data.len(),
        epochs: schedule.epochs,
        steps: report.steps,
        test_frames,
        metrics,
    };
    Ok((assessment, per_frame))
}

/// The first `count` frames of `set` after a seeded shuffle.
pub fn random_subset(set: &FrameSet, count: usize, seed: u64) -> FrameSet {
    random_split(set, count, seed).0
}

/// [`random_subset`] and the frames it left out, in the shuffled order: what a measure
/// may draw on without touching the subset.
pub fn random_split(set: &FrameSet, count: usize, seed: u64) -> (FrameSet, FrameSet) {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let mut order: Vec<usize> = (0..set.len()).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let rest = order.split_off(count.min(order.len()));
    (subset(set, &order), subset(set, &rest))
}

/// The frames `indices` of `set`.
pub fn subset(set: &FrameSet, indices: &[usize]) -> FrameSet {
    FrameSet {
        size: set.size,
        images: indices.iter().map(|&i| set.images[i].clone()).collect(),
        labels: indices.iter().map(|&i| set.labels[i].clone()).collect(),
        stress: set
            .stress
            .as_ref()
            .map(|s| indices.iter().map(|&i| s[i].clone()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_rounded_to_the_step_budget() {
        assert_eq!(epochs_for(1000, 320, 32), 100);
        assert_eq!(epochs_for(1000, 1200, 32), 26);
        assert_eq!(epochs_for(10, 1200, 32), 1);
    }

    #[test]
    fn tstr_ratio_divides_the_synthetic_trained_error_by_the_real_trained_one() {
        let labels = crate::labels::LabelMap::new(2, 2, vec![2, 3, 4, 1]).unwrap();
        let truth = [10.0, 20.0, 30.0, 99.0];
        let metrics = |offset: f32| {
            let prediction: Vec<f32> = truth.iter().map(|t| t + offset).collect();
            frame_metrics(&prediction, &truth, &labels).unwrap()
        };
        let (real, synthetic) = (metrics(1.0), metrics(-2.0));
        assert_eq!((real.mse, synthetic.mse), (1.0, 4.0));
        assert_eq!(tstr_ratio(&synthetic, &real), Some(4.0));
        assert_eq!(tstr_ratio(&real, &synthetic), Some(0.25));
        assert_eq!(tstr_ratio(&synthetic, &metrics(0.0)), None);
    }
}
