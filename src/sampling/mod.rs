//! Adaptive latent-space sampling (docs/DESIGN.md §Method) and its random baseline, one round per call so
//! the command line runs it to the end and the GUI worker can step it.
//!
//! [`pool`] holds the real data (embeddings, stress labelled on demand by the FEA tool);
//! [`arm`] grows one training set round by round and trains F on it; [`projection`] is the
//! 2-D view of the latent space that the GUI draws and exports record.

pub mod arm;
pub mod geometry;
pub mod pool;
pub mod projection;
pub mod strategy;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::model::gradient::Normalisation;
pub use arm::{ArmRun, MovedSample, Origin, RoundRecord, redrawn_note};
pub use pool::{Context, Pool};
pub use projection::Projection;

/// How moved latent points become new training samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Sampling by interpolation: decode z' and label the generated sample with the FEA.
    #[default]
    Si,
    /// Sampling by nearest neighbour: label the nearest unused real pool sample to z'.
    Snn,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Si => "si",
            Mode::Snn => "snn",
        }
    }
}

/// The arms of the study: the method, and the strategies a practitioner would otherwise
/// use. Each picks its samples through its [`strategy::Strategy`]; the loop is the same.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Arm {
    /// Rounds grow the training set by gradient-moved latent points (SI or SNN).
    Adaptive,
    /// Rounds grow the training set by random real pool samples.
    #[value(alias = "random")]
    Baseline,
    /// Greedy k-centre on the VAE's encoder means: the unused frames farthest from the
    /// training set (Sener & Savarese's core-set).
    CoreSet,
    /// The unused frames on which F's prediction varies most under the eight symmetries
    /// of the square (test-time augmentation).
    Tta,
}

impl Arm {
    /// Every arm, in the order studies run and tables list them.
    pub const ALL: [Arm; 4] = [Arm::Adaptive, Arm::Baseline, Arm::CoreSet, Arm::Tta];

    /// The name in file names, `results.csv` and `--arms`.
    pub fn name(self) -> &'static str {
        match self {
            Arm::Adaptive => "adaptive",
            Arm::Baseline => "baseline",
            Arm::CoreSet => "core-set",
            Arm::Tta => "tta",
        }
    }

    /// The arm named `name` (as [`Arm::name`] writes it).
    pub fn from_name(name: &str) -> Option<Arm> {
        Arm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// How this arm picks its samples.
    pub fn strategy(self) -> &'static dyn strategy::Strategy {
        match self {
            Arm::Adaptive => &strategy::Adaptive,
            Arm::Baseline => &strategy::Random,
            Arm::CoreSet => &strategy::CoreSet,
            Arm::Tta => &strategy::TtaUncertainty,
        }
    }
}

/// Where the adaptive arm's round 0 comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RoundZero {
    /// n0 draws from the generator's prior (the short paper's wording).
    #[default]
    Prior,
    /// n0 random real pool frames (the long version's algorithm); the same frames as the
    /// random arm's round 0 in the same repeat.
    Real,
}

/// Where the loop draws new latent points from and what noise their decoded images carry.
/// Both parts of [`Generator::Pool`] come from the pool's images alone, so they cost no
/// annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Generator {
    /// Draws from the pool's aggregate posterior (each pool frame's encoder posterior, in
    /// equal shares), images with a pool frame's own standardised residuals as noise: on
    /// validation its draws trained F to a TSTR ratio of 1.21 against 1.36 (docs/journal/models.md).
    #[default]
    Pool,
    /// Draws from the Gaussian mixture stored with the VAE, images with Gaussian speckle of
    /// the measured grain: the generator before the pool one, and how runs recorded
    /// before the option are read.
    Fitted,
}

impl Generator {
    /// The generator of runs recorded before [`LoopConfig::generator`] existed.
    fn recorded_before_the_option() -> Generator {
        Generator::Fitted
    }
}

/// Which training-set members move along the gradient each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Movers {
    /// Random members (the paper).
    #[default]
    Random,
    /// The members on which F's loss is highest now.
    HighestLoss,
}

/// The readings of the method a careful reading of the paper allows (issue 13 §1). The
/// defaults are the reading the study used before these options existed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Variant {
    pub round_zero: RoundZero,
    pub movers: Movers,
    /// Generated members may move again (chaining); when false only real members move.
    pub chaining: bool,
    /// SNN: snap to the nearest unused frame farther than the pool's typical
    /// nearest-neighbour distance from every training-set member, so a snap cannot fall
    /// back into the neighbourhood it came from.
    pub snap_radius: bool,
    /// Keep z' within the pool's typical nearest-neighbour distance of some real frame's
    /// embedding, where the generator is valid (the step is shortened to get there).
    pub trust_region: bool,
    /// A control, not the method: step along a random direction of the same length instead
    /// of F's loss gradient, so that a study can tell the gradient's share of a gain from
    /// that of moving and snapping.
    pub random_direction: bool,
}

impl Default for Variant {
    fn default() -> Variant {
        Setting::PAPER.variant
    }
}

/// Where `sula experiment` takes η and the variant from when no flag says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Defaults {
    /// The setting `sula experiment --select` chose on the validation split.
    #[default]
    Chosen,
    /// The paper's literal reading: η 1, round 0 from the prior, random movers, chaining.
    Paper,
}

/// The step, variant and round size of one reading of the method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setting {
    pub step: f32,
    pub variant: Variant,
    /// Samples per round as a multiple of the protocol's k (n0 and the budget stay).
    pub k_factor: f64,
}

impl Setting {
    /// Samples per round when a protocol's own is `protocol_k`.
    pub fn samples_per_round(&self, protocol_k: usize) -> usize {
        ((protocol_k as f64 * self.k_factor).round() as usize).max(1)
    }

    /// The paper's literal reading: η 1, round 0 from the prior, random movers, chaining.
    pub const PAPER: Setting = Setting {
        step: 1.0,
        variant: Variant {
            round_zero: RoundZero::Prior,
            movers: Movers::Random,
            chaining: true,
            snap_radius: false,
            trust_region: false,
            random_direction: false,
        },
        k_factor: 1.0,
    };
}

/// The setting `sula experiment --select` chose for `mode` on the validation split (the
/// default protocol, 4 repeats, the shipped VAE; SNN on an H100, SI again on the 2-vCPU VM
/// after SI's duplicate samples were fixed); docs/journal/study.md records every trial and its
/// score, `docs/findings/selection_{si,snn}.json` the runs.
pub fn chosen(mode: Mode) -> Setting {
    match mode {
        Mode::Si => Setting {
            step: 0.25,
            variant: Variant {
                round_zero: RoundZero::Real,
                movers: Movers::HighestLoss,
                ..Setting::PAPER.variant
            },
            k_factor: 1.0,
        },
        Mode::Snn => Setting {
            step: 2.0,
            ..Setting::PAPER
        },
    }
}

/// Everything that defines one run of the loop; every arm shares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopConfig {
    pub mode: Mode,
    /// Training-set size after each round: `sizes[0]` is n0, the last is the budget.
    pub sizes: Vec<usize>,
    pub epochs_per_round: usize,
    /// Step size η in latent units.
    pub step: f32,
    pub normalisation: Normalisation,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Channels of F at full resolution.
    pub regressor_width: usize,
    pub seed: u64,
    /// Which reading of the method the adaptive arm follows.
    #[serde(default)]
    pub variant: Variant,
    /// Where new latent points come from and what noise decoded images carry.
    #[serde(default = "Generator::recorded_before_the_option")]
    pub generator: Generator,
}

impl LoopConfig {
    /// Sizes n0, n0 + k, … up to and including `budget` (the last round may add fewer).
    pub fn sizes_from(n0: usize, k: usize, budget: usize) -> Result<Vec<usize>, SamplingError> {
        if n0 == 0 || k == 0 || budget < n0 {
            return Err(SamplingError::Config(format!(
                "need n0 ≥ 1, k ≥ 1 and budget ≥ n0; got n0 {n0}, k {k}, budget {budget}"
            )));
        }
        let mut sizes: Vec<usize> = (n0..budget).step_by(k).collect();
        sizes.push(budget);
        Ok(sizes)
    }

    /// Rejects settings the loop cannot run.
    pub fn validate(&self) -> Result<(), SamplingError> {
        let fail = |message: String| Err(SamplingError::Config(message));
        if self.sizes.is_empty() || self.sizes[0] == 0 {
            return fail("the training-set sizes must start at 1 or more".to_string());
        }
        if self.sizes.windows(2).any(|w| w[1] <= w[0]) {
            return fail(format!(
                "the training-set sizes must increase, got {:?}",
                self.sizes
            ));
        }
        if self.epochs_per_round == 0 || self.batch_size == 0 {
            return fail("epochs per round and batch size must be at least 1".to_string());
        }
        if !(self.step.is_finite() && self.step > 0.0) {
            return fail(format!("the step η must be positive, got {}", self.step));
        }
        if !self.variant.chaining
            && self.mode == Mode::Si
            && self.variant.round_zero == RoundZero::Prior
        {
            return fail(
                "moving only real members (no chaining) needs real frames in the training set: with SI, take round 0 from real frames (--round-zero real)"
                    .to_string(),
            );
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return fail(format!(
                "the learning rate must be positive, got {}",
                self.learning_rate
            ));
        }
        Ok(())
    }

    /// Optimiser steps of one arm over the whole schedule (the same for both arms).
    pub fn steps_per_arm(&self) -> usize {
        self.epochs_per_round
            * self
                .sizes
                .iter()
                .map(|s| s.div_ceil(self.batch_size))
                .sum::<usize>()
    }

    /// The training-set size the loop ends at.
    pub fn budget(&self) -> usize {
        self.sizes.last().copied().unwrap_or(0)
    }
}

/// Why a round could not be run.
#[derive(Debug, Error)]
pub enum SamplingError {
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error("{0}")]
    Config(String),
    /// Not enough usable samples: the pool ran out or the VAE keeps decoding open vessels.
    #[error("{0}")]
    Exhausted(String),
    #[error("cancelled")]
    Cancelled,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_reach_the_budget_exactly() {
        assert_eq!(
            LoopConfig::sizes_from(40, 40, 160).unwrap(),
            [40, 80, 120, 160]
        );
        assert_eq!(LoopConfig::sizes_from(10, 20, 45).unwrap(), [10, 30, 45]);
        assert_eq!(LoopConfig::sizes_from(5, 5, 5).unwrap(), [5]);
        assert!(LoopConfig::sizes_from(10, 0, 45).is_err());
        assert!(LoopConfig::sizes_from(50, 10, 45).is_err());
    }
}
