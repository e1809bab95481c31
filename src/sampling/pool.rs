//! The real data the loop draws from: pool frames with their encoder embeddings and
//! stress maps that the FEA labelling tool computes the first time a frame is needed
//! (each label is an "annotation" the loop pays for), and the fully labelled test set.

use std::sync::OnceLock;

use rayon::prelude::*;
use tch::Device;

use super::Generator;
use super::geometry::{distance, median_nearest_distance};
use crate::fea::FeaParams;
use crate::model::data::FrameSet;
use crate::model::evaluate::{
    Decoded, NoLabelMaps, ResidualBank, decode_latents, decode_latents_with_residuals,
    draw_latents, encode_posteriors,
};
use crate::model::prior::LatentPrior;
use crate::model::vae::Vae;

/// Most pool frames whose residuals the pool generator keeps: enough variety for any
/// study, and a bounded memory (16 MiB at 64², 64 MiB at 128²) for pools of any size.
pub const RESIDUAL_BANK_FRAMES: usize = 1024;

/// Labels every frame of `frames` in parallel (keeping stress it already has) and drops
/// frames the solver cannot label; returns the labelled set and how many were dropped.
pub fn label_all(frames: FrameSet, fea: &FeaParams) -> (FrameSet, usize) {
    let known = frames.stress.clone();
    let stress: Vec<Option<Vec<f32>>> = (0..frames.len())
        .into_par_iter()
        .map(|i| match &known {
            Some(all) => Some(all[i].clone()),
            None => crate::fea::stress_label(&frames.labels[i], fea),
        })
        .collect();
    let mut kept = FrameSet::empty_labelled(frames.size);
    let mut dropped = 0;
    for ((image, labels), stress) in frames.images.into_iter().zip(frames.labels).zip(stress) {
        match stress {
            Some(map) => kept.push_labelled(image, labels, map),
            None => dropped += 1,
        }
    }
    (kept, dropped)
}

/// Pool frames, their ids, embeddings and lazily computed stress labels.
#[derive(Debug)]
pub struct Pool {
    pub ids: Vec<String>,
    /// Images and label maps (no stress: see [`Pool::stress`]).
    pub frames: FrameSet,
    /// Encoder mean μ of each frame.
    pub embeddings: Vec<Vec<f32>>,
    /// Median distance from a frame's embedding to its nearest neighbour's: the scale of
    /// "close to real data" for the trust region and the snapping radius.
    pub typical_spacing: f32,
    pub fea: FeaParams,
    stress: Vec<OnceLock<Option<Vec<f32>>>>,
    /// The equal-weight mixture of every frame's encoder posterior: [`Generator::Pool`]'s
    /// prior; `None` for an empty pool.
    aggregate_posterior: Option<LatentPrior>,
    /// Standardised residuals of up to [`RESIDUAL_BANK_FRAMES`] frames, evenly spaced:
    /// [`Generator::Pool`]'s noise; `None` for an empty pool.
    residuals: Option<ResidualBank>,
}

impl Pool {
    /// Embeds every frame with the VAE encoder and gathers what the pool generator draws
    /// from (the frames' posteriors and residuals). Stress maps the frames already carry
    /// are kept as their labels; the rest are computed on demand.
    pub fn new(
        ids: Vec<String>,
        frames: FrameSet,
        fea: FeaParams,
        vae: &Vae,
        device: Device,
    ) -> Pool {
        let posteriors = encode_posteriors(vae, &frames, device);
        let aggregate_posterior = LatentPrior::from_posteriors(&posteriors).ok();
        let embeddings: Vec<Vec<f32>> = posteriors.into_iter().map(|(mu, _)| mu).collect();
        let residuals = ResidualBank::from_frames(vae, &evenly_spaced(&frames), device);
        let typical_spacing = median_nearest_distance(&embeddings);
        let stress = (0..frames.len())
            .map(|i| {
                let cell = OnceLock::new();
                if let Some(all) = &frames.stress {
                    let _ = cell.set(Some(all[i].clone()));
                }
                cell
            })
            .collect();
        let frames = FrameSet {
            stress: None,
            ..frames
        };
        Pool {
            ids,
            frames,
            embeddings,
            typical_spacing,
            fea,
            stress,
            aggregate_posterior,
            residuals,
        }
    }

    /// `count` new latent points from `generator`'s prior. An empty pool has no aggregate
    /// posterior, so its pool generator draws from the VAE's fitted prior.
    pub fn draw(
        &self,
        vae: &Vae,
        generator: Generator,
        count: usize,
        rng: &mut impl rand::Rng,
    ) -> Vec<Vec<f32>> {
        match (generator, &self.aggregate_posterior) {
            (Generator::Pool, Some(prior)) => draw_latents(prior, count, rng),
            _ => draw_latents(&vae.prior(), count, rng),
        }
    }

    /// `latents` decoded to the samples the loop labels and trains on. Each point's noise
    /// is a function of the point, so decoding it again gives the same pixels. An empty
    /// pool has no residuals, so its pool generator decodes with Gaussian speckle.
    pub fn decode(
        &self,
        vae: &Vae,
        generator: Generator,
        latents: &[Vec<f32>],
        device: Device,
    ) -> Result<Vec<Decoded>, NoLabelMaps> {
        let mut decoded = Vec::with_capacity(latents.len());
        for chunk in latents.chunks(64) {
            match (generator, &self.residuals) {
                (Generator::Pool, Some(bank)) => {
                    let picks: Vec<_> = chunk.iter().map(|z| bank.pick_for(z)).collect();
                    decoded.extend(decode_latents_with_residuals(
                        vae, chunk, &picks, bank, device,
                    )?);
                }
                _ => decoded.extend(decode_latents(vae, chunk, device)?),
            }
        }
        Ok(decoded)
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The stress label of frame `index` (computed once), or `None` if the FEA cannot
    /// label it.
    pub fn stress(&self, index: usize) -> Option<&[f32]> {
        self.stress[index]
            .get_or_init(|| crate::fea::stress_label(&self.frames.labels[index], &self.fea))
            .as_deref()
    }

    /// How many frames have been labelled so far.
    pub fn labelled(&self) -> usize {
        self.stress.iter().filter(|s| s.get().is_some()).count()
    }

    /// The frame whose embedding is nearest to `z` (Euclidean) among those `allowed`, with
    /// its distance.
    pub fn nearest(&self, z: &[f32], allowed: impl Fn(usize) -> bool) -> Option<(usize, f32)> {
        self.embeddings
            .iter()
            .enumerate()
            .filter(|(i, _)| allowed(*i))
            .map(|(i, e)| (i, distance(e, z)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// At most [`RESIDUAL_BANK_FRAMES`] frames of `frames`, evenly spaced through it (all of
/// them when there are no more).
fn evenly_spaced(frames: &FrameSet) -> FrameSet {
    let n = frames.len();
    if n <= RESIDUAL_BANK_FRAMES {
        return frames.clone();
    }
    let indices: Vec<usize> = (0..RESIDUAL_BANK_FRAMES)
        .map(|k| k * n / RESIDUAL_BANK_FRAMES)
        .collect();
    FrameSet {
        size: frames.size,
        images: indices.iter().map(|&i| frames.images[i].clone()).collect(),
        labels: indices
            .iter()
            .filter_map(|&i| frames.labels.get(i).cloned())
            .collect(),
        stress: None,
    }
}

/// What one round needs besides its own state: the generator, the real pool, the
/// independent test set (labelled) and the torch device.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub vae: &'a Vae,
    pub pool: &'a Pool,
    pub test: &'a FrameSet,
    pub device: Device,
}
