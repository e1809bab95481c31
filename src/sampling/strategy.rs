//! How each arm of the study picks the samples of a round (issue 13 §2). The loop in
//! [`ArmRun::step`] is the same for every arm: it asks the arm's strategy for `need`
//! samples, trains F on the grown set and evaluates it. Adding a strategy is one more
//! implementation of [`Strategy`] and one more [`Arm`](super::Arm) to name it.

use rand::seq::SliceRandom;

use super::arm::{ArmRun, Origin};
use super::geometry::{distance, k_centre};
use super::pool::Context;
use super::{LoopConfig, Mode, MovedSample, RoundZero, SamplingError};

/// How many unused pool frames the TTA strategy scores per round, drawn at random: eight
/// forward passes per frame over the whole pool would cost more than the round's
/// training on the CPU. Scoring a random subset of the pool is the usual practice.
pub const TTA_CANDIDATES: usize = 120;

/// What a round added to an arm's training set.
#[derive(Debug, Default)]
pub struct Growth {
    pub added: Vec<Origin>,
    /// The adaptive arm's moved points.
    pub moved: Vec<MovedSample>,
    /// Decoded samples the FEA could not label.
    pub rejected: usize,
    /// The strategy's score of each added sample, in order (core-set: latent distance to
    /// the training set when picked; TTA: prediction variance in kPa²); empty for the
    /// strategies that score nothing.
    pub scores: Vec<f64>,
}

impl Growth {
    fn of(added: Vec<Origin>) -> Growth {
        Growth {
            added,
            ..Growth::default()
        }
    }
}

/// One way of choosing the samples to label next.
pub trait Strategy: Sync {
    /// Round 0: by default the random real frames that every arm of a repeat shares, so
    /// the arms start alike.
    fn round_zero(
        &self,
        run: &mut ArmRun,
        ctx: &Context,
        need: usize,
    ) -> Result<Growth, SamplingError> {
        Ok(Growth::of(run.add_round_zero_real(ctx, need)?))
    }

    /// `need` more samples for a later round.
    fn grow(&self, run: &mut ArmRun, ctx: &Context, need: usize) -> Result<Growth, SamplingError>;

    /// Whether every sample is a real pool frame (then the budget must fit the pool).
    fn real_only(&self, _config: &LoopConfig) -> bool {
        true
    }
}

/// The method: latent points moved along the gradient of F's loss (docs/DESIGN.md §Method).
pub struct Adaptive;

impl Strategy for Adaptive {
    fn round_zero(
        &self,
        run: &mut ArmRun,
        ctx: &Context,
        need: usize,
    ) -> Result<Growth, SamplingError> {
        if run.config.variant.round_zero == RoundZero::Real {
            return Ok(Growth::of(run.add_round_zero_real(ctx, need)?));
        }
        let (added, rejected) = run.add_from_prior(ctx, need)?;
        Ok(Growth {
            added,
            rejected,
            ..Growth::default()
        })
    }

    fn grow(&self, run: &mut ArmRun, ctx: &Context, need: usize) -> Result<Growth, SamplingError> {
        let (added, moved, rejected) = run.add_moved(ctx, need)?;
        Ok(Growth {
            added,
            moved,
            rejected,
            scores: Vec::new(),
        })
    }

    fn real_only(&self, config: &LoopConfig) -> bool {
        config.mode == Mode::Snn
    }
}

/// The random baseline: unused pool frames at random.
pub struct Random;

impl Strategy for Random {
    fn grow(&self, run: &mut ArmRun, ctx: &Context, need: usize) -> Result<Growth, SamplingError> {
        Ok(Growth::of(run.add_random(ctx, need)?))
    }
}

/// Core-set (greedy k-centre) on the VAE's encoder means: each pick is the unused frame
/// farthest from the training set and the earlier picks.
pub struct CoreSet;

impl Strategy for CoreSet {
    fn grow(&self, run: &mut ArmRun, ctx: &Context, need: usize) -> Result<Growth, SamplingError> {
        let mut growth = Growth::default();
        while growth.added.len() < need {
            let mut centres: Vec<usize> = run.pool_members();
            let picks = k_centre(
                &ctx.pool.embeddings,
                &centres,
                |i| !run.is_used(i),
                need - growth.added.len(),
                0,
            );
            if picks.is_empty() {
                return Err(exhausted(ctx, need, growth.added.len()));
            }
            for index in picks {
                let point = &ctx.pool.embeddings[index];
                let spread = centres
                    .iter()
                    .map(|&c| distance(point, &ctx.pool.embeddings[c]))
                    .fold(f32::INFINITY, f32::min);
                centres.push(index);
                if run.take_pool(ctx, index) {
                    growth.added.push(Origin::Pool(index));
                    growth.scores.push(f64::from(spread));
                }
            }
        }
        Ok(growth)
    }
}

/// Uncertainty by test-time augmentation: the unused frames (of a random subset of
/// [`TTA_CANDIDATES`]) whose prediction by F varies most under the square's symmetries.
pub struct TtaUncertainty;

impl Strategy for TtaUncertainty {
    fn grow(&self, run: &mut ArmRun, ctx: &Context, need: usize) -> Result<Growth, SamplingError> {
        let mut candidates: Vec<usize> = (0..ctx.pool.len()).filter(|&i| !run.is_used(i)).collect();
        candidates.shuffle(run.rng());
        candidates.truncate(TTA_CANDIDATES.max(need));
        let scores = run.tta_variance(ctx, &candidates);
        let mut ranked: Vec<(usize, f64)> = candidates.into_iter().zip(scores).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut growth = Growth::default();
        for (index, score) in ranked {
            if growth.added.len() == need {
                break;
            }
            if run.take_pool(ctx, index) {
                growth.added.push(Origin::Pool(index));
                growth.scores.push(score);
            }
        }
        if growth.added.len() < need {
            return Err(exhausted(ctx, need, growth.added.len()));
        }
        Ok(growth)
    }
}

fn exhausted(ctx: &Context, need: usize, found: usize) -> SamplingError {
    SamplingError::Exhausted(format!(
        "the pool of {} frames has only {found} more the FEA can label, {need} were needed",
        ctx.pool.len()
    ))
}
