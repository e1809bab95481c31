//! One arm of the study for one repeat: a training set grown round by round and the
//! target model F trained on it. The adaptive arm grows by gradient-moved latent points
//! (SI or SNN); the baseline by random real pool samples. Both use the same round sizes,
//! epochs, optimiser, batch size and therefore the same number of optimiser steps.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::nn;

use super::pool::Context;
use super::{Arm, LoopConfig, Mode, Movers, SamplingError};
use crate::fea::stress_label;
use crate::labels::LabelMap;
use crate::metrics::{FrameMetrics, frame_metrics, mean_metrics};
use crate::model::data::FrameSet;
use crate::model::gradient::{latent_gradients, move_latent, norm};
use crate::model::regressor::{Regressor, RegressorConfig};
use crate::model::train::{self, Control, LrSchedule, Progress, TrainConfig};

/// Where a training sample came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "pool_index", rename_all = "lowercase")]
pub enum Origin {
    /// Decoded from a latent point and labelled by the FEA (SI mode).
    Generated,
    /// A real pool frame, by index.
    Pool(usize),
}

/// Provenance of one training-set member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub origin: Origin,
    /// Its latent embedding: the encoder mean for real frames, the stored z for generated.
    pub latent: Vec<f32>,
    /// The round it joined in.
    pub round: usize,
}

/// One original moved along its loss gradient, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovedSample {
    /// Training-set index of the original.
    pub original: usize,
    pub original_origin: Origin,
    /// Where this step started: the original's embedding, or (SI, `walk_step` > 1) where
    /// its previous step this round ended.
    pub z: Vec<f32>,
    pub z_moved: Vec<f32>,
    /// Which step of the original's walk this round this is, from 1. SI steps on from the
    /// previous z' when an original moves again within a round, so that no two moves
    /// decode the same sample; SNN starts every move at the original's embedding and
    /// snaps a repeated z' to the next unused frame.
    #[serde(default = "first_step")]
    pub walk_step: usize,
    pub gradient_norm: f64,
    /// L(F(G_image(z)), y) in kPa²: the original's loss through the generator.
    pub loss_before: f64,
    /// L(F(G_image(z')), y) in kPa²: the same label at the moved point, the quantity the
    /// step climbs.
    pub loss_moved: f64,
    /// F's loss on the sample that joined the training set, against its own label, before
    /// training on it (kPa²); `None` when nothing joined.
    pub loss_after: Option<f64>,
    /// The nearest real pool frame to z' (SNN: the nearest one not yet used).
    pub nearest_real: usize,
    pub nearest_real_id: String,
    pub nearest_distance: f64,
    /// What joined the training set; `None` when the FEA could not label G(z').
    pub added: Option<Origin>,
    /// ‖z' − z‖ as taken (η, or less where the trust region shortened the step).
    #[serde(default)]
    pub step_taken: f64,
    /// Whether the trust region shortened this step.
    #[serde(default)]
    pub clipped: bool,
    /// SNN with the snapping radius: whether the snapped frame lies outside the radius of
    /// every training-set member (false: no free frame did, the nearest was taken).
    #[serde(default)]
    pub outside_radius: Option<bool>,
}

/// Rounds written before walks were recorded took every step from the original.
fn first_step() -> usize {
    1
}

/// Everything one round did, as plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    pub arm: Arm,
    pub repeat: usize,
    pub round: usize,
    /// Training-set size after this round.
    pub size: usize,
    /// Samples that joined the training set this round.
    pub added: Vec<Origin>,
    /// Decoded samples the FEA could not label (open vessels), drawn again.
    pub rejected: usize,
    pub moved: Vec<MovedSample>,
    /// Mean training loss of each epoch of this round (σ/p units).
    pub epoch_losses: Vec<f64>,
    /// The strategy's score of each added sample (core-set: latent distance to the
    /// training set; TTA: prediction variance, kPa²); empty where it scores nothing.
    #[serde(default)]
    pub scores: Vec<f64>,
    /// Optimiser steps since the start of the arm.
    pub steps: usize,
    /// metrics (docs/DESIGN.md §Metrics) on the independent test set after this round's training.
    pub metrics: FrameMetrics,
    pub test_frames: usize,
    /// Seconds spent in this arm so far (labelling, sampling, training, evaluation).
    pub wall_s: f64,
}

/// The note a progress line adds when `rejected` decoded samples had to be drawn again,
/// so a reader sees how often the generator left the space the FEA can label.
pub fn redrawn_note(rejected: usize) -> String {
    match rejected {
        0 => String::new(),
        1 => " (1 open vessel redrawn)".to_owned(),
        n => format!(" ({n} open vessels redrawn)"),
    }
}

/// The seed of repeat `repeat`: both arms of a repeat start F from the same weights.
pub fn repeat_seed(seed: u64, repeat: usize) -> u64 {
    seed.wrapping_add(1000 * repeat as u64)
}

/// The random stream both arms draw a real round 0 from.
const ROUND_ZERO_STREAM: u64 = 7;

/// How many prior or moved samples may fail the FEA per sample needed before a round
/// gives up.
const MAX_REJECTIONS_PER_SAMPLE: usize = 20;

/// The state of one arm: F, its optimiser schedule and the growing training set.
pub struct ArmRun {
    pub arm: Arm,
    pub repeat: usize,
    pub config: LoopConfig,
    vs: nn::VarStore,
    model: Regressor,
    /// Images, label maps and stress (kPa) of the training set.
    pub train: FrameSet,
    pub members: Vec<Member>,
    /// Pool frames already in the training set or found unlabellable.
    used: Vec<bool>,
    rng: ChaCha8Rng,
    pub history: Vec<RoundRecord>,
    steps: usize,
    elapsed: Duration,
    broken: bool,
}

/// A decoded sample and its FEA stress map.
type LabelledSample = (crate::model::evaluate::Decoded, Vec<f32>);

impl ArmRun {
    /// A fresh arm: F initialised from the repeat's seed, an empty training set.
    pub fn new(
        arm: Arm,
        config: &LoopConfig,
        repeat: usize,
        ctx: &Context,
    ) -> Result<ArmRun, SamplingError> {
        config.validate()?;
        let size = ctx.pool.frames.size;
        if ctx.vae.config.size != size || ctx.test.size != size {
            return Err(SamplingError::Config(format!(
                "the VAE works at {0}×{0} but the pool is at {size}×{size} and the test set at {1}×{1}",
                ctx.vae.config.size, ctx.test.size
            )));
        }
        if config.mode == Mode::Si && !ctx.vae.config.labelled {
            return Err(SamplingError::Config(
                "SI mode labels decoded label maps with the FEA, and this VAE is image-only (trained on an unannotated pool), so it decodes none; use SNN mode, or a VAE trained with label maps".into(),
            ));
        }
        if arm.strategy().real_only(config) && config.budget() > ctx.pool.len() {
            return Err(SamplingError::Exhausted(format!(
                "a budget of {} real samples exceeds the pool of {} frames",
                config.budget(),
                ctx.pool.len()
            )));
        }
        let seed = repeat_seed(config.seed, repeat);
        train::seed_torch(seed);
        let vs = nn::VarStore::new(ctx.device);
        let model = Regressor::new(
            &vs.root(),
            RegressorConfig {
                width: config.regressor_width,
                ..RegressorConfig::new(size)
            },
        );
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(arm as u64);
        Ok(ArmRun {
            arm,
            repeat,
            config: config.clone(),
            vs,
            model,
            train: FrameSet::empty_labelled(size),
            members: Vec::new(),
            used: vec![false; ctx.pool.len()],
            rng,
            history: Vec::new(),
            steps: 0,
            elapsed: Duration::ZERO,
            broken: false,
        })
    }

    /// Whether every round up to the budget has run.
    pub fn is_finished(&self) -> bool {
        self.history.len() >= self.config.sizes.len()
    }

    /// Optimiser steps taken so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Runs the next round: grow the training set, train F for `epochs_per_round`,
    /// evaluate on the test set. `on_progress` sees every batch and may cancel; a
    /// cancelled arm cannot continue.
    pub fn step(
        &mut self,
        ctx: &Context,
        on_progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<&RoundRecord, SamplingError> {
        if self.broken {
            return Err(SamplingError::Config(
                "this run was cancelled or failed; start a new one".to_string(),
            ));
        }
        if self.is_finished() {
            return Err(SamplingError::Config(format!(
                "the training set already holds the budget of {} samples",
                self.config.budget()
            )));
        }
        self.broken = true;
        let start = Instant::now();
        let round = self.history.len();
        let need = self.config.sizes[round] - self.train.len();
        let strategy = self.arm.strategy();
        let growth = if round == 0 {
            strategy.round_zero(self, ctx, need)?
        } else {
            strategy.grow(self, ctx, need)?
        };
        let schedule = TrainConfig {
            epochs: self.config.epochs_per_round,
            batch_size: self.config.batch_size,
            learning_rate: self.config.learning_rate,
            seed: repeat_seed(self.config.seed, self.repeat).wrapping_add(round as u64),
            schedule: LrSchedule::Constant,
            augment: true,
        };
        let report = train::train_regressor(
            &self.model,
            &self.vs,
            &self.train,
            ctx.pool.fea.pressure_kpa,
            true,
            &schedule,
            on_progress,
        )?;
        if report.stopped {
            return Err(SamplingError::Cancelled);
        }
        self.steps += report.steps;
        let (metrics, test_frames) = self.evaluate(ctx);
        self.elapsed += start.elapsed();
        self.history.push(RoundRecord {
            arm: self.arm,
            repeat: self.repeat,
            round,
            size: self.train.len(),
            added: growth.added,
            rejected: growth.rejected,
            moved: growth.moved,
            scores: growth.scores,
            epoch_losses: report.epoch_losses,
            steps: self.steps,
            metrics,
            test_frames,
            wall_s: self.elapsed.as_secs_f64(),
        });
        self.broken = false;
        Ok(self.history.last().expect("just pushed"))
    }

    /// F's stress predictions (kPa) for every frame of `data`.
    pub fn predict(&self, data: &FrameSet, ctx: &Context) -> Vec<Vec<f32>> {
        train::predict_kpa(&self.model, data, ctx.pool.fea.pressure_kpa, ctx.device)
    }

    /// F's loss on each labelled frame of `data` (kPa²) and the norm of the latent
    /// gradient of L(F(G_image(z)), y) at its embedding `latents[i]`: how hard the frame is
    /// for F now, and how strongly the loop would move it.
    pub fn loss_and_gradient(
        &self,
        ctx: &Context,
        data: &FrameSet,
        latents: &[Vec<f32>],
    ) -> Vec<(f64, f64)> {
        if data.is_empty() {
            return Vec::new();
        }
        let pressure = ctx.pool.fea.pressure_kpa;
        let indices: Vec<usize> = (0..data.len()).collect();
        let losses = train::regressor_losses(&self.model, data, &indices, pressure, ctx.device);
        let targets = data.stress_batch(&indices, pressure, ctx.device);
        let solid = data.solid_batch(&indices, ctx.device);
        let gradients = latent_gradients(
            ctx.vae,
            &self.model,
            latents,
            &targets,
            Some(&solid),
            ctx.device,
        );
        losses
            .into_iter()
            .zip(gradients)
            .map(|(loss, g)| (loss, f64::from(norm(&g.gradient))))
            .collect()
    }

    fn evaluate(&self, ctx: &Context) -> (FrameMetrics, usize) {
        let predictions = self.predict(ctx.test, ctx);
        let truth = ctx.test.stress.as_ref().expect("the test set is labelled");
        let metrics: Vec<FrameMetrics> = predictions
            .iter()
            .zip(truth)
            .zip(&ctx.test.labels)
            .filter_map(|((p, t), l)| frame_metrics(p, t, l))
            .collect();
        (mean_metrics(&metrics), metrics.len())
    }

    fn push(&mut self, image: Vec<u8>, labels: LabelMap, stress: Vec<f32>, member: Member) {
        self.train.images.push(image);
        self.train.labels.push(labels);
        self.train
            .stress
            .as_mut()
            .expect("training stress is kept")
            .push(stress);
        self.members.push(member);
    }

    /// Whether pool frame `index` is in the training set or was found unlabellable.
    pub(super) fn is_used(&self, index: usize) -> bool {
        self.used[index]
    }

    /// The pool indices of the real training-set members.
    pub(super) fn pool_members(&self) -> Vec<usize> {
        self.members
            .iter()
            .filter_map(|m| match m.origin {
                Origin::Pool(index) => Some(index),
                Origin::Generated => None,
            })
            .collect()
    }

    /// This arm's seeded random stream.
    pub(super) fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// F's test-time-augmentation variance (kPa²) on pool frames `indices`.
    pub fn tta_variance(&self, ctx: &Context, indices: &[usize]) -> Vec<f64> {
        crate::model::uncertainty::tta_variance(
            &self.model,
            &ctx.pool.frames,
            indices,
            ctx.pool.fea.pressure_kpa,
            ctx.device,
        )
    }

    /// Adds pool frame `index` if the FEA can label it; marks it used either way.
    pub(super) fn take_pool(&mut self, ctx: &Context, index: usize) -> bool {
        self.used[index] = true;
        let Some(stress) = ctx.pool.stress(index) else {
            return false;
        };
        let member = Member {
            origin: Origin::Pool(index),
            latent: ctx.pool.embeddings[index].clone(),
            round: self.history.len(),
        };
        self.push(
            ctx.pool.frames.images[index].clone(),
            ctx.pool.frames.labels[index].clone(),
            stress.to_vec(),
            member,
        );
        true
    }

    /// The unused pool frame nearest to `z` that the FEA can label, now taken.
    fn take_nearest(&mut self, ctx: &Context, z: &[f32]) -> Result<(usize, f32), SamplingError> {
        loop {
            let used = &self.used;
            let Some((index, d)) = ctx.pool.nearest(z, |i| !used[i]) else {
                return Err(SamplingError::Exhausted(format!(
                    "every one of the {} pool frames is used or cannot be labelled",
                    ctx.pool.len()
                )));
            };
            if self.take_pool(ctx, index) {
                return Ok((index, d));
            }
        }
    }

    /// Round 0 from random real frames, drawn from a generator both arms of a repeat seed
    /// alike, so they start from the same frames.
    pub(super) fn add_round_zero_real(
        &mut self,
        ctx: &Context,
        need: usize,
    ) -> Result<Vec<Origin>, SamplingError> {
        let mut shared = ChaCha8Rng::seed_from_u64(repeat_seed(self.config.seed, self.repeat));
        shared.set_stream(ROUND_ZERO_STREAM);
        self.add_random_with(ctx, need, &mut shared)
    }

    pub(super) fn add_random(
        &mut self,
        ctx: &Context,
        need: usize,
    ) -> Result<Vec<Origin>, SamplingError> {
        let mut rng = self.rng.clone();
        let added = self.add_random_with(ctx, need, &mut rng);
        self.rng = rng;
        added
    }

    fn add_random_with(
        &mut self,
        ctx: &Context,
        need: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Origin>, SamplingError> {
        let mut candidates: Vec<usize> = (0..ctx.pool.len()).filter(|&i| !self.used[i]).collect();
        candidates.shuffle(rng);
        let mut added = Vec::with_capacity(need);
        for index in candidates {
            if added.len() == need {
                break;
            }
            if self.take_pool(ctx, index) {
                added.push(Origin::Pool(index));
            }
        }
        if added.len() < need {
            return Err(SamplingError::Exhausted(format!(
                "the pool has only {} more frames the FEA can label, {need} were needed",
                added.len()
            )));
        }
        Ok(added)
    }

    /// `count` draws from the generator's prior, from this arm's seeded generator.
    fn prior_draws(&mut self, ctx: &Context, count: usize) -> Vec<Vec<f32>> {
        ctx.pool
            .draw(ctx.vae, self.config.generator, count, &mut self.rng)
    }

    /// Decodes `latents` and labels them with the FEA in parallel; `None` where the
    /// decoded map is not a closed vessel.
    fn decode_and_label(
        &self,
        ctx: &Context,
        latents: &[Vec<f32>],
    ) -> Result<Vec<Option<LabelledSample>>, SamplingError> {
        Ok(ctx
            .pool
            .decode(ctx.vae, self.config.generator, latents, ctx.device)
            .map_err(crate::model::ModelError::from)?
            .into_par_iter()
            .map(|decoded| stress_label(&decoded.labels, &ctx.pool.fea).map(|s| (decoded, s)))
            .collect())
    }

    fn push_generated(
        &mut self,
        decoded: crate::model::evaluate::Decoded,
        stress: Vec<f32>,
        latent: Vec<f32>,
    ) {
        let member = Member {
            origin: Origin::Generated,
            latent,
            round: self.history.len(),
        };
        self.push(decoded.image, decoded.labels, stress, member);
    }

    /// Round 0 of the adaptive arm: z drawn from the VAE's prior, decoded and labelled (SI), or the nearest
    /// unused real frame to each z (SNN).
    pub(super) fn add_from_prior(
        &mut self,
        ctx: &Context,
        need: usize,
    ) -> Result<(Vec<Origin>, usize), SamplingError> {
        let mut added = Vec::with_capacity(need);
        if self.config.mode == Mode::Snn {
            for z in self.prior_draws(ctx, need) {
                let (index, _) = self.take_nearest(ctx, &z)?;
                added.push(Origin::Pool(index));
            }
            return Ok((added, 0));
        }
        let mut rejected = 0;
        while added.len() < need {
            if rejected > MAX_REJECTIONS_PER_SAMPLE * need {
                return Err(SamplingError::Exhausted(format!(
                    "only {} of {} draws from the VAE's prior decoded to a closed vessel the FEA can label; its samples are too poor for round 0 (train it longer)",
                    added.len(),
                    added.len() + rejected
                )));
            }
            let draws = self.prior_draws(ctx, need - added.len());
            let labelled = self.decode_and_label(ctx, &draws)?;
            for (z, outcome) in draws.into_iter().zip(labelled) {
                match outcome {
                    Some((decoded, stress)) => {
                        self.push_generated(decoded, stress, z);
                        added.push(Origin::Generated);
                    }
                    None => rejected += 1,
                }
            }
        }
        Ok((added, rejected))
    }

    /// The training-set members to move: `count` of the first `eligible` members (those of
    /// the round's start) allowed to move (all, or only real ones without chaining), at
    /// random or those with the highest loss under F now.
    /// Members that moved fewer times this round (`moved`, by training-set index) come
    /// first, so a redraw after open vessels tries other members instead of repeating the
    /// same failed moves. With `distinct`, at most one move per member is returned (the
    /// caller asks again for the rest); otherwise fewer candidates than `count` are cycled.
    fn pick_movers(
        &mut self,
        ctx: &Context,
        count: usize,
        eligible: usize,
        moved: &[usize],
        distinct: bool,
    ) -> Result<Vec<usize>, SamplingError> {
        let mut candidates: Vec<usize> = (0..eligible)
            .filter(|&i| {
                self.config.variant.chaining || self.members[i].origin != Origin::Generated
            })
            .collect();
        if candidates.is_empty() {
            return Err(SamplingError::Config(
                "no real training-set member may move (no chaining); take round 0 from real frames"
                    .into(),
            ));
        }
        match self.config.variant.movers {
            Movers::Random => candidates.shuffle(&mut self.rng),
            Movers::HighestLoss => {
                let losses = self.member_losses(ctx);
                let mut ranked: Vec<(usize, f64)> =
                    candidates.into_iter().map(|i| (i, losses[i])).collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                candidates = ranked.into_iter().map(|(i, _)| i).collect();
            }
        }
        candidates.sort_by_key(|&i| moved.get(i).copied().unwrap_or(0));
        let count = if distinct {
            count.min(candidates.len())
        } else {
            count
        };
        // Fewer candidates than needed: cycle through them (a member may move twice).
        Ok((0..count)
            .map(|k| candidates[k % candidates.len()])
            .collect())
    }

    /// F's current loss (kPa²) on each training-set member against its own stress map.
    pub fn member_losses(&self, ctx: &Context) -> Vec<f64> {
        let all: Vec<usize> = (0..self.train.len()).collect();
        train::regressor_losses(
            &self.model,
            &self.train,
            &all,
            ctx.pool.fea.pressure_kpa,
            ctx.device,
        )
    }

    /// SNN with the snapping radius: the nearest unused labellable frame farther than the
    /// pool's typical spacing from every training-set member; when none is, the plain
    /// nearest (the flag says which).
    fn take_nearest_outside_radius(
        &mut self,
        ctx: &Context,
        z: &[f32],
    ) -> Result<((usize, f32), bool), SamplingError> {
        let radius = ctx.pool.typical_spacing;
        let outside: Vec<bool> = ctx
            .pool
            .embeddings
            .par_iter()
            .map(|e| {
                self.members
                    .iter()
                    .all(|m| super::geometry::distance(e, &m.latent) > radius)
            })
            .collect();
        loop {
            let used = &self.used;
            let Some((index, d)) = ctx.pool.nearest(z, |i| !used[i] && outside[i]) else {
                return self.take_nearest(ctx, z).map(|n| (n, false));
            };
            if self.take_pool(ctx, index) {
                return Ok(((index, d), true));
            }
        }
    }

    /// Later rounds of the adaptive arm: move random training samples' latents along the
    /// normalised gradient of F's loss (or, as a control, a random direction) and label
    /// what lies there. When a round needs more moves than members may move, SI walks: a
    /// member's next move starts where its last one this round ended, since the same
    /// deterministic step twice would decode, label and train on the same sample twice.
    pub(super) fn add_moved(
        &mut self,
        ctx: &Context,
        need: usize,
    ) -> Result<(Vec<Origin>, Vec<MovedSample>, usize), SamplingError> {
        let pressure = ctx.pool.fea.pressure_kpa;
        let to_kpa2 = |loss: f32| f64::from(loss) * pressure * pressure;
        let mut added = Vec::with_capacity(need);
        let mut records = Vec::with_capacity(need);
        let mut rejected = 0;
        let at_start = self.train.len();
        let mut moved_count: Vec<usize> = vec![0; at_start];
        let walks = self.config.mode == Mode::Si;
        let mut walk_ends: HashMap<usize, Vec<f32>> = HashMap::new();
        while added.len() < need {
            if rejected > MAX_REJECTIONS_PER_SAMPLE * need {
                return Err(SamplingError::Exhausted(format!(
                    "the FEA could not label {rejected} decoded moved samples (open vessels) while {} were usable; try a smaller step η or another VAE",
                    added.len()
                )));
            }
            let originals =
                self.pick_movers(ctx, need - added.len(), at_start, &moved_count, walks)?;
            let mut walk_steps = Vec::with_capacity(originals.len());
            for &i in &originals {
                moved_count[i] += 1;
                walk_steps.push(if walks { moved_count[i] } else { 1 });
            }
            let latents: Vec<Vec<f32>> = originals
                .iter()
                .map(|i| walk_ends.get(i).unwrap_or(&self.members[*i].latent).clone())
                .collect();
            let targets = self.train.stress_batch(&originals, pressure, ctx.device);
            let solid = self.train.solid_batch(&originals, ctx.device);
            let gradients = |points: &[Vec<f32>]| {
                latent_gradients(
                    ctx.vae,
                    &self.model,
                    points,
                    &targets,
                    Some(&solid),
                    ctx.device,
                )
            };
            let at_original = gradients(&latents);
            let directions: Vec<Vec<f32>> = if self.config.variant.random_direction {
                latents
                    .iter()
                    .map(|z| random_direction(z.len(), &mut self.rng))
                    .collect()
            } else {
                at_original.iter().map(|g| g.gradient.clone()).collect()
            };
            let (moved, clipped): (Vec<Vec<f32>>, Vec<bool>) = latents
                .iter()
                .zip(&directions)
                .map(|(z, direction)| {
                    let full =
                        move_latent(z, direction, self.config.step, self.config.normalisation);
                    if self.config.variant.trust_region {
                        trust_region(z, full, ctx)
                    } else {
                        (full, false)
                    }
                })
                .unzip();
            if walks {
                walk_ends.extend(originals.iter().copied().zip(moved.iter().cloned()));
            }
            let at_moved = gradients(&moved);
            let first_new = self.train.len();
            let mut outside_radius: Vec<Option<bool>> = Vec::with_capacity(moved.len());
            // Per moved point: the nearest real frame, and whether a sample joined.
            let outcomes: Vec<((usize, f32), bool)> = match self.config.mode {
                Mode::Si => {
                    let labelled = self.decode_and_label(ctx, &moved)?;
                    let mut outcomes = Vec::with_capacity(moved.len());
                    for (z, outcome) in moved.iter().zip(labelled) {
                        let nearest = ctx
                            .pool
                            .nearest(z, |_| true)
                            .expect("the pool is not empty");
                        let joined = outcome.is_some();
                        match outcome {
                            Some((decoded, stress)) => {
                                self.push_generated(decoded, stress, z.clone())
                            }
                            None => rejected += 1,
                        }
                        outcomes.push((nearest, joined));
                    }
                    outcomes
                }
                Mode::Snn => {
                    let mut outcomes = Vec::with_capacity(moved.len());
                    for z in &moved {
                        let nearest = if self.config.variant.snap_radius {
                            let (nearest, outside) = self.take_nearest_outside_radius(ctx, z)?;
                            outside_radius.push(Some(outside));
                            nearest
                        } else {
                            outside_radius.push(None);
                            self.take_nearest(ctx, z)?
                        };
                        outcomes.push((nearest, true));
                    }
                    outcomes
                }
            };
            let new_indices: Vec<usize> = (first_new..self.train.len()).collect();
            let losses_after = train::regressor_losses(
                &self.model,
                &self.train,
                &new_indices,
                pressure,
                ctx.device,
            );
            let mut joined_samples = new_indices.iter().zip(losses_after);
            for (k, ((nearest, distance), joined)) in outcomes.into_iter().enumerate() {
                let (origin, loss_after) = match joined.then(|| joined_samples.next()).flatten() {
                    Some((&index, loss)) => (Some(self.members[index].origin), Some(loss)),
                    None => (None, None),
                };
                added.extend(origin);
                let original = originals[k];
                records.push(MovedSample {
                    original,
                    original_origin: self.members[original].origin,
                    z: latents[k].clone(),
                    z_moved: moved[k].clone(),
                    walk_step: walk_steps[k],
                    gradient_norm: f64::from(norm(&at_original[k].gradient)),
                    loss_before: to_kpa2(at_original[k].loss),
                    loss_moved: to_kpa2(at_moved[k].loss),
                    loss_after,
                    nearest_real: nearest,
                    nearest_real_id: ctx.pool.ids[nearest].clone(),
                    nearest_distance: f64::from(distance),
                    added: origin,
                    step_taken: f64::from(super::geometry::distance(&latents[k], &moved[k])),
                    clipped: clipped[k],
                    outside_radius: outside_radius.get(k).copied().flatten(),
                });
            }
        }
        Ok((added, records, rejected))
    }
}

/// A direction drawn uniformly on the sphere (a standard normal vector; `move_latent`
/// scales it to the step).
fn random_direction(dim: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..dim).map(|_| StandardNormal.sample(rng)).collect()
}

/// Shortens the step z → `full` until the point is within the pool's typical spacing of
/// some real embedding (bisection on the step fraction); returns the point and whether it
/// was shortened.
fn trust_region(z: &[f32], full: Vec<f32>, ctx: &Context) -> (Vec<f32>, bool) {
    let radius = ctx.pool.typical_spacing;
    let near = |p: &[f32]| {
        ctx.pool
            .nearest(p, |_| true)
            .is_some_and(|(_, d)| d <= radius)
    };
    if near(&full) {
        return (full, false);
    }
    let at = |t: f32| -> Vec<f32> { z.iter().zip(&full).map(|(a, b)| a + t * (b - a)).collect() };
    let (mut inside, mut outside) = (0.0f32, 1.0f32);
    for _ in 0..20 {
        let mid = (inside + outside) / 2.0;
        if near(&at(mid)) {
            inside = mid;
        } else {
            outside = mid;
        }
    }
    (at(inside), true)
}

#[cfg(test)]
mod tests {
    use super::redrawn_note;

    #[test]
    fn the_redrawn_note_is_silent_at_zero_and_counts_in_words_otherwise() {
        assert_eq!(redrawn_note(0), "");
        assert_eq!(redrawn_note(1), " (1 open vessel redrawn)");
        assert_eq!(redrawn_note(3), " (3 open vessels redrawn)");
    }
}
