//! Choosing the method's settings on the validation split (issue 13 §3), never on the
//! test set: a coordinate search over the step η, then each variant switch in turn, then
//! the samples per round k. Every candidate is scored by the adaptive arm's validation
//! MSE over the whole schedule minus the random arm's on the same schedule, paired by
//! repeat and averaged: k changes how many rounds, and so how many optimiser steps, every
//! arm takes, so only the difference to random at the same k compares across k. The
//! caller builds the context with the validation split as the evaluation set, so nothing
//! here can see test labels.

use serde::{Deserialize, Serialize};

use super::results::mean_std;
use super::run_arm;
use crate::model::train::{Control, Progress};
use crate::sampling::{
    Arm, Context, LoopConfig, Mode, Movers, RoundRecord, RoundZero, SamplingError,
};

/// The η values tried (issue 13 §3).
pub const STEPS: [f32; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];

/// Samples per round tried, as multiples of the protocol's k.
pub const K_FACTORS: [f64; 3] = [0.5, 1.0, 2.0];

/// One setting tried and how it scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// What changed against the stage's starting point, in words.
    pub label: String,
    pub arm: Arm,
    pub config: LoopConfig,
    /// Per repeat: the validation MSE averaged over the reference sizes (kPa²).
    pub scores: Vec<f64>,
    /// Mean and sample std of `scores`; `None` when the setting could not run.
    pub mean: Option<f64>,
    pub std: Option<f64>,
    /// Mean over repeats of (this score − the random arm's on the same schedule and
    /// repeat), kPa²: the criterion (negative: better than random).
    pub gain: Option<f64>,
    /// Why the setting could not run to the budget (say, a step so long that the decoded
    /// samples are open vessels the FEA cannot label); such a setting cannot win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

impl Trial {
    /// The criterion, infinite for a setting that could not run.
    fn score(&self) -> f64 {
        self.gain.unwrap_or(f64::INFINITY)
    }
}

/// One stage of the search: what was varied, every trial, and which was kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub varied: String,
    pub trials: Vec<Trial>,
    /// Label of the trial kept (the stage's best, or its starting point when nothing beat it).
    pub kept: String,
}

/// What `sula experiment --select` writes to `selection.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub mode: Mode,
    pub repeats: usize,
    pub validation_frames: usize,
    /// The sizes the criterion averages over (the protocol's; other k are interpolated).
    pub reference_sizes: Vec<usize>,
    pub criterion: String,
    pub stages: Vec<Stage>,
    /// The random arm on the protocol's schedule, the same validation split and repeats.
    pub random: Trial,
    pub winner: LoopConfig,
    pub reason: String,
}

/// The validation MSE of a finished arm, interpolated linearly at each reference size
/// (held at the ends) and averaged: the area under its learning curve per label.
pub fn criterion(records: &[RoundRecord], reference_sizes: &[usize]) -> f64 {
    let curve: Vec<(f64, f64)> = records
        .iter()
        .map(|r| (r.size as f64, r.metrics.mse))
        .collect();
    let at = |size: f64| -> f64 {
        match curve.iter().position(|&(s, _)| s >= size) {
            None => curve.last().map_or(f64::NAN, |p| p.1),
            Some(0) => curve[0].1,
            Some(j) => {
                let ((s0, m0), (s1, m1)) = (curve[j - 1], curve[j]);
                m0 + (m1 - m0) * (size - s0) / (s1 - s0)
            }
        }
    };
    reference_sizes.iter().map(|&s| at(s as f64)).sum::<f64>() / reference_sizes.len().max(1) as f64
}

/// Runs the search. `ctx.test` must be the validation split; `base` is the protocol
/// (sizes, epochs, seed) and the starting point; `say` gets one line per trial.
pub fn select(
    base: &LoopConfig,
    repeats: usize,
    ctx: &Context,
    say: &mut dyn FnMut(&str),
    on_progress: &mut dyn FnMut(&Progress) -> Control,
) -> Result<Selection, SamplingError> {
    let reference_sizes = base.sizes.clone();
    let mut evaluate = |label: String,
                        config: LoopConfig,
                        arm: Arm,
                        random: Option<&Trial>|
     -> Result<Trial, SamplingError> {
        let mut scores = Vec::with_capacity(repeats);
        for repeat in 0..repeats {
            match run_arm(arm, repeat, &config, ctx, &mut |_| Ok(()), on_progress) {
                Ok(records) => scores.push(criterion(&records, &reference_sizes)),
                Err(SamplingError::Exhausted(reason)) => {
                    say(&format!("{label:<34} could not run: {reason}"));
                    return Ok(Trial {
                        label,
                        arm,
                        config,
                        scores,
                        mean: None,
                        std: None,
                        gain: None,
                        failed: Some(reason),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        let (mean, std) = mean_std(&scores);
        let gain = match random {
            Some(random) => {
                let differences: Vec<f64> = scores
                    .iter()
                    .zip(&random.scores)
                    .map(|(a, r)| a - r)
                    .collect();
                mean_std(&differences).0
            }
            None => 0.0,
        };
        say(&format!(
            "{label:<34} validation MSE {mean:>8.1} ± {std:<7.1} kPa², − random {gain:>+7.1}"
        ));
        Ok(Trial {
            label,
            arm,
            config,
            scores,
            mean: Some(mean),
            std: Some(std),
            gain: Some(gain),
            failed: None,
        })
    };
    let random = evaluate("random".to_string(), base.clone(), Arm::Baseline, None)?;

    let mut stages = Vec::new();
    let mut best = {
        let trials = STEPS
            .iter()
            .map(|&step| {
                let config = LoopConfig {
                    step,
                    ..base.clone()
                };
                evaluate(format!("η = {step}"), config, Arm::Adaptive, Some(&random))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let best = lowest(&trials).clone();
        stages.push(Stage {
            varied: "step η along the normalised gradient".to_string(),
            kept: best.label.clone(),
            trials,
        });
        best
    };

    for (label, apply) in variant_switches(base.mode) {
        let mut config = best.config.clone();
        apply(&mut config);
        if config == best.config || config.validate().is_err() {
            continue;
        }
        let trial = evaluate(
            format!("{} + {label}", best.label),
            config,
            Arm::Adaptive,
            Some(&random),
        )?;
        let kept = if trial.score() < best.score() {
            trial.label.clone()
        } else {
            best.label.clone()
        };
        let trials = vec![best.clone(), trial.clone()];
        stages.push(Stage {
            varied: label.to_string(),
            trials,
            kept: kept.clone(),
        });
        if kept == trial.label {
            best = trial;
        }
    }

    let (n0, budget) = (base.sizes[0], base.budget());
    let k = base.sizes.get(1).map_or(n0, |s| s - n0);
    let mut k_trials = vec![best.clone()];
    for factor in K_FACTORS {
        let other = ((k as f64 * factor).round() as usize).max(1);
        if other == k {
            continue;
        }
        let Ok(sizes) = LoopConfig::sizes_from(n0, other, budget) else {
            continue;
        };
        if sizes == best.config.sizes {
            continue;
        }
        let random_k = evaluate(
            format!("random, k = {other}"),
            LoopConfig {
                sizes: sizes.clone(),
                ..base.clone()
            },
            Arm::Baseline,
            None,
        )?;
        let config = LoopConfig {
            sizes,
            ..best.config.clone()
        };
        let trial = evaluate(
            format!("{} + k = {other}", best.label),
            config,
            Arm::Adaptive,
            Some(&random_k),
        )?;
        k_trials.extend([random_k, trial]);
    }
    let k_best = lowest(&k_trials).clone();
    stages.push(Stage {
        varied: "samples per round k (n0 and the budget fixed)".to_string(),
        kept: k_best.label.clone(),
        trials: k_trials,
    });
    best = k_best;

    let (Some(mean), Some(gain)) = (best.mean, best.gain) else {
        return Err(SamplingError::Exhausted(format!(
            "no setting could run to the budget; the last reason: {}",
            best.failed.unwrap_or_default()
        )));
    };
    let reason = format!(
        "lowest validation MSE over the schedule relative to random on the same schedule ({gain:+.1} kPa², paired over {repeats} repeats; its own {mean:.1} kPa², random's on that schedule {:.1}): {}",
        mean - gain,
        best.label
    );
    Ok(Selection {
        mode: base.mode,
        repeats,
        validation_frames: ctx.test.len(),
        reference_sizes,
        criterion: "adaptive arm's validation MSE, interpolated at the protocol's sizes and averaged (the area under its learning curve), minus the random arm's on the same schedule, paired by repeat and averaged".to_string(),
        stages,
        random,
        winner: best.config,
        reason,
    })
}

/// The adaptive trial with the lowest criterion.
fn lowest(trials: &[Trial]) -> &Trial {
    trials
        .iter()
        .filter(|t| t.arm == Arm::Adaptive)
        .min_by(|a, b| a.score().total_cmp(&b.score()))
        .expect("a stage has trials")
}

type Switch = (&'static str, fn(&mut LoopConfig));

/// The variant switches of issue 13 §1 that apply to `mode`, each tried on the best
/// setting so far.
fn variant_switches(mode: Mode) -> Vec<Switch> {
    let mut switches: Vec<Switch> = vec![
        ("round 0 from real frames", |c| {
            c.variant.round_zero = RoundZero::Real
        }),
        ("highest-loss movers", |c| {
            c.variant.movers = Movers::HighestLoss
        }),
        ("no chaining", |c| c.variant.chaining = false),
        ("trust region", |c| c.variant.trust_region = true),
    ];
    if mode == Mode::Snn {
        switches.push(("snapping radius", |c| c.variant.snap_radius = true));
    }
    switches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::FrameMetrics;

    fn record(size: usize, mse: f64) -> RoundRecord {
        RoundRecord {
            arm: Arm::Adaptive,
            repeat: 0,
            round: 0,
            size,
            added: Vec::new(),
            rejected: 0,
            moved: Vec::new(),
            scores: Vec::new(),
            epoch_losses: Vec::new(),
            steps: 0,
            metrics: FrameMetrics {
                mse,
                accuracy: 0.5,
                peak_error: 0.1,
                r2: 0.0,
            },
            test_frames: 1,
            wall_s: 0.0,
        }
    }

    #[test]
    fn the_criterion_interpolates_at_the_reference_sizes() {
        let records = [record(10, 100.0), record(30, 60.0)];
        // At 10: 100; at 20: halfway, 80; at 30: 60; mean 80.
        assert!((criterion(&records, &[10, 20, 30]) - 80.0).abs() < 1e-9);
        // Past the ends the curve is held.
        assert!((criterion(&records, &[5, 40]) - 80.0).abs() < 1e-9);
    }
}
