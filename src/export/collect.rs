//! Turning a study's records into samples to export: the gradient-moved samples of the
//! adaptive arm (generated in SI mode, the chosen real frame in SNN mode) and pool frames
//! picked in the latent view. The live GUI study and a run folder on disk both go
//! through here, so an export looks the same whichever way it was made.

use rayon::prelude::*;

use super::manifest::{ManifestEntry, SampleOrigin};
use super::{ExportError, ExportSample};
use crate::fea::stress_label;
use crate::labels::LabelMap;
use crate::metrics::peak_stress;
use crate::sampling::geometry::distance;
use crate::sampling::{
    Arm, Context, LoopConfig, Mode, MovedSample, Origin, Projection, RoundRecord,
};

/// One moved sample of the adaptive arm, by repeat, round and position in that round's
/// record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MovedRef {
    pub repeat: usize,
    pub round: usize,
    pub index: usize,
}

impl MovedRef {
    /// The export id: `rep<r>_round<NN>_<KKK>`.
    pub fn id(self) -> String {
        format!(
            "rep{}_round{:02}_{:03}",
            self.repeat, self.round, self.index
        )
    }
}

/// Samples to export and how many selected ones could not be (the FEA failed to label
/// a sample decoded again, e.g. on another device).
#[derive(Debug, Clone)]
pub struct Collected {
    pub samples: Vec<ExportSample>,
    pub skipped: usize,
}

/// A sample's image, label map and stress (kPa).
type Pixels = (Vec<u8>, LabelMap, Vec<f32>);

/// The moved samples of the adaptive arm's `records` that joined its training set and
/// that `wanted` keeps. SI: G(z') decoded again, by the run's generator, and labelled by
/// the FEA; SNN: the real pool frame that joined, checked against the id the run recorded.
pub fn moved_samples(
    records: &[RoundRecord],
    wanted: &dyn Fn(MovedRef) -> bool,
    config: &LoopConfig,
    ctx: &Context,
    projection: &Projection,
) -> Result<Collected, ExportError> {
    let chosen: Vec<(MovedRef, &MovedSample)> = records
        .iter()
        .filter(|r| r.arm == Arm::Adaptive)
        .flat_map(|r| {
            r.moved.iter().enumerate().map(|(index, m)| {
                let at = MovedRef {
                    repeat: r.repeat,
                    round: r.round,
                    index,
                };
                (at, m)
            })
        })
        .filter(|(at, m)| m.added.is_some() && wanted(*at))
        .collect();
    let pixels: Vec<Option<Pixels>> = match config.mode {
        Mode::Si => {
            let latents: Vec<Vec<f32>> = chosen.iter().map(|(_, m)| m.z_moved.clone()).collect();
            ctx.pool
                .decode(ctx.vae, config.generator, &latents, ctx.device)
                .map_err(crate::model::ModelError::from)?
                .into_par_iter()
                .map(|d| stress_label(&d.labels, &ctx.pool.fea).map(|s| (d.image, d.labels, s)))
                .collect()
        }
        Mode::Snn => chosen
            .iter()
            .map(|(at, m)| {
                let Some(Origin::Pool(index)) = m.added else {
                    return Err(ExportError::Invalid(format!(
                        "sample {} of an SNN run is not a pool frame",
                        at.id()
                    )));
                };
                if ctx.pool.ids.get(index) != Some(&m.nearest_real_id) {
                    return Err(ExportError::Invalid(format!(
                        "pool frame {index} was {} when the run was made but the data now has {}; the dataset changed since the run",
                        m.nearest_real_id,
                        ctx.pool.ids.get(index).map_or("no such frame", String::as_str)
                    )));
                }
                Ok(ctx.pool.stress(index).map(|s| {
                    (
                        ctx.pool.frames.images[index].clone(),
                        ctx.pool.frames.labels[index].clone(),
                        s.to_vec(),
                    )
                }))
            })
            .collect::<Result<_, _>>()?,
    };
    let mut samples = Vec::with_capacity(chosen.len());
    let mut skipped = 0;
    for ((at, m), pixels) in chosen.into_iter().zip(pixels) {
        let Some((image, labels, stress)) = pixels else {
            skipped += 1;
            continue;
        };
        let pool_id = match m.added {
            Some(Origin::Pool(index)) => Some(ctx.pool.ids[index].clone()),
            _ => None,
        };
        let entry = ManifestEntry {
            id: at.id(),
            origin: if pool_id.is_some() {
                SampleOrigin::Real
            } else {
                SampleOrigin::Generated
            },
            pool_id,
            nearest_real_id: m.nearest_real_id.clone(),
            nearest_distance: m.nearest_distance,
            latent: m.z_moved.clone(),
            latent_original: Some(m.z.clone()),
            projected: projection.project(&m.z_moved),
            arm: Some(Arm::Adaptive),
            repeat: Some(at.repeat),
            round: Some(at.round),
            loss_kpa2: Some(m.loss_moved),
            loss_before_kpa2: Some(m.loss_before),
            loss_after_kpa2: m.loss_after,
            gradient_norm: Some(m.gradient_norm),
            peak_stress_kpa: Some(peak_stress(&stress, &labels)),
        };
        samples.push(ExportSample {
            entry,
            image,
            labels,
            stress,
        });
    }
    Ok(Collected { samples, skipped })
}

/// What a live study knows about a pool frame: F's loss on it and the latent gradient
/// norm of that loss at its embedding, and the round it joined the training set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolScore {
    pub repeat: usize,
    pub loss_kpa2: f64,
    pub gradient_norm: f64,
    pub round: Option<usize>,
}

/// Pool frames picked in the latent view (frames the FEA cannot label are skipped).
/// `score` (from the current study, by pool index) fills loss, gradient and round.
pub fn pool_samples(
    indices: &[usize],
    ctx: &Context,
    projection: &Projection,
    score: &dyn Fn(usize) -> Option<PoolScore>,
) -> Collected {
    let pool = ctx.pool;
    let mut samples = Vec::with_capacity(indices.len());
    let mut skipped = 0;
    for &i in indices {
        let Some(stress) = pool.stress(i) else {
            skipped += 1;
            continue;
        };
        let latent = pool.embeddings[i].clone();
        let nearest = pool
            .nearest(&latent, |j| j != i)
            .map(|(j, _)| j)
            .unwrap_or(i);
        let score = score(i);
        let labels = pool.frames.labels[i].clone();
        let entry = ManifestEntry {
            id: format!("pool_{}", pool.ids[i]),
            origin: SampleOrigin::Real,
            pool_id: Some(pool.ids[i].clone()),
            nearest_real_id: pool.ids[nearest].clone(),
            nearest_distance: f64::from(distance(&pool.embeddings[nearest], &latent)),
            projected: projection.project(&latent),
            latent,
            latent_original: None,
            arm: score.map(|_| Arm::Adaptive),
            repeat: score.map(|s| s.repeat),
            round: score.and_then(|s| s.round),
            loss_kpa2: score.map(|s| s.loss_kpa2),
            loss_before_kpa2: None,
            loss_after_kpa2: None,
            gradient_norm: score.map(|s| s.gradient_norm),
            peak_stress_kpa: Some(peak_stress(stress, &labels)),
        };
        samples.push(ExportSample {
            entry,
            image: pool.frames.images[i].clone(),
            labels,
            stress: stress.to_vec(),
        });
    }
    Collected { samples, skipped }
}
