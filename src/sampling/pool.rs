//! The real data the loop draws from: pool frames with their encoder embeddings and
//! stress maps that the FEA labelling tool computes the first time a frame is needed
//! (each label is an "annotation" the loop pays for), and the fully labelled test set.

use std::sync::OnceLock;

use rayon::prelude::*;
use tch::Device;

use crate::fea::{FeaParams, StressMeasure};
use crate::labels::LabelMap;
use crate::model::data::FrameSet;
use crate::model::vae::Vae;

/// The FEA label of one tissue map: max-principal stress in kPa, or `None` when the map is
/// not a closed vessel the solver can load (no solid, or lumen open to the outside so the
/// pressure does not balance).
pub fn label(labels: &LabelMap, fea: &FeaParams) -> Option<Vec<f32>> {
    if labels.class_counts()[2..].iter().all(|&c| c == 0) {
        return None;
    }
    let field = crate::fea::solve(labels, fea).ok()?;
    (field.load_imbalance < 1e-6).then(|| field.measure(StressMeasure::MaxPrincipal))
}

/// Labels every frame of `frames` in parallel (keeping stress it already has) and drops
/// frames the solver cannot label; returns the labelled set and how many were dropped.
pub fn label_all(frames: FrameSet, fea: &FeaParams) -> (FrameSet, usize) {
    let known = frames.stress.clone();
    let stress: Vec<Option<Vec<f32>>> = (0..frames.len())
        .into_par_iter()
        .map(|i| match &known {
            Some(all) => Some(all[i].clone()),
            None => label(&frames.labels[i], fea),
        })
        .collect();
    let mut kept = FrameSet {
        size: frames.size,
        images: Vec::new(),
        labels: Vec::new(),
        stress: Some(Vec::new()),
    };
    let mut dropped = 0;
    for ((image, labels), stress) in frames.images.into_iter().zip(frames.labels).zip(stress) {
        match stress {
            Some(map) => {
                kept.images.push(image);
                kept.labels.push(labels);
                kept.stress.as_mut().expect("set above").push(map);
            }
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
}

impl Pool {
    /// Embeds every frame with the VAE encoder. Stress maps the frames already carry are
    /// kept as their labels; the rest are computed on demand.
    pub fn new(
        ids: Vec<String>,
        frames: FrameSet,
        fea: FeaParams,
        vae: &Vae,
        device: Device,
    ) -> Pool {
        let embeddings = crate::model::evaluate::encode_means(vae, &frames, device);
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
        }
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
            .get_or_init(|| label(&self.frames.labels[index], &self.fea))
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

/// The median over points of the distance to their nearest other point (0 for fewer than
/// two points).
pub fn median_nearest_distance(points: &[Vec<f32>]) -> f32 {
    let mut nearest: Vec<f32> = (0..points.len())
        .into_par_iter()
        .map(|i| {
            points
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| distance(p, &points[i]))
                .fold(f32::INFINITY, f32::min)
        })
        .filter(|d| d.is_finite())
        .collect();
    if nearest.is_empty() {
        return 0.0;
    }
    nearest.sort_by(f32::total_cmp);
    nearest[nearest.len() / 2]
}

/// Greedy k-centre: the free frame farthest from every annotated or already picked one.
pub fn k_centre(
    points: &[Vec<f32>],
    centres: &[usize],
    allowed: impl Fn(usize) -> bool,
    count: usize,
    first: usize,
) -> Vec<usize> {
    let mut nearest: Vec<f32> = points
        .iter()
        .map(|p| {
            centres
                .iter()
                .map(|&c| distance(p, &points[c]))
                .fold(f32::INFINITY, f32::min)
        })
        .collect();
    let mut picks = Vec::with_capacity(count);
    while picks.len() < count {
        let next = if centres.is_empty() && picks.is_empty() {
            Some(first)
        } else {
            (0..points.len())
                .filter(|&i| allowed(i) && !picks.contains(&i))
                .max_by(|&a, &b| nearest[a].total_cmp(&nearest[b]))
        };
        let Some(next) = next else { break };
        picks.push(next);
        for (i, p) in points.iter().enumerate() {
            nearest[i] = nearest[i].min(distance(p, &points[next]));
        }
    }
    picks
}

/// Euclidean distance of two latent points.
pub fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
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
