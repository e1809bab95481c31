//! VAE quality on held-out frames: label-map Dice per class and image reconstruction
//! error, plus reconstructions and prior samples as plain data for pictures.

use serde::Serialize;
use tch::{Device, Tensor};

use super::augment::Symmetry;
use super::data::{FrameSet, to_vec};
use super::prior::LatentPrior;
use super::vae::{CLASSES, Vae};
use crate::labels::LabelMap;

/// Reconstruction quality over a frame set.
#[derive(Debug, Clone, Serialize)]
pub struct VaeEvaluation {
    pub frames: usize,
    /// Dice per label class (outside, lumen, fibrous, lipid, calcium), pooled over frames;
    /// `None` for a class absent from both truth and reconstruction.
    pub dice: [Option<f64>; 5],
    /// Mean squared error of the decoder's mean image in [0, 1] grey levels.
    pub image_mse: f64,
}

/// A decoded sample as plain data.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub image: Vec<u8>,
    pub labels: LabelMap,
}

/// Images decoded by an image-only VAE: there is no label map to label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this VAE is image-only (trained on an unannotated pool) and decodes no label maps; SI mode and measures of decoded label maps need a VAE trained with label maps"
)]
pub struct NoLabelMaps;

fn decoded(
    vae: &Vae,
    image: &Tensor,
    logits: Option<&Tensor>,
) -> Result<Vec<Decoded>, NoLabelMaps> {
    let size = vae.config.size;
    let logits = logits.ok_or(NoLabelMaps)?;
    let pixels = to_vec(&(image * 255.0).round().clamp(0.0, 255.0));
    let classes = to_vec(&logits.argmax(1, false));
    Ok(pixels
        .chunks(size * size)
        .zip(classes.chunks(size * size))
        .map(|(p, c)| Decoded {
            image: p.iter().map(|v| *v as u8).collect(),
            labels: LabelMap::new(size, size, c.iter().map(|v| *v as u8).collect())
                .expect("argmax over the label classes is a valid label"),
        })
        .collect())
}

/// Reconstructions G(E(x)) of `indices`: the samples decoded (with speckle) at the
/// encoder means.
pub fn reconstruct(
    vae: &Vae,
    data: &FrameSet,
    indices: &[usize],
    device: Device,
) -> Result<Vec<Decoded>, NoLabelMaps> {
    let _guard = tch::no_grad_guard();
    let (image, logits) = vae.decode(&encode_batch(vae, data, indices, device));
    decoded(vae, &image, logits.as_ref())
}

/// Grey reconstructions of `indices` by any VAE (an image-only one included): the
/// decoder's mean image at the encoder means, in 0–255. The mean, not a speckled sample:
/// speckle is drawn afresh each time and hides what the VAE has learned of the frame.
pub fn reconstruct_images(
    vae: &Vae,
    data: &FrameSet,
    indices: &[usize],
    device: Device,
) -> Vec<Vec<u8>> {
    let _guard = tch::no_grad_guard();
    let image = vae
        .decode_parts(&encode_batch(vae, data, indices, device))
        .mean;
    let pixels = to_vec(&(image * 255.0).round().clamp(0.0, 255.0));
    let size = vae.config.size;
    pixels
        .chunks(size * size)
        .map(|p| p.iter().map(|v| *v as u8).collect())
        .collect()
}

/// Encoder means of `indices`, with their label maps when the VAE is labelled.
fn encode_batch(vae: &Vae, data: &FrameSet, indices: &[usize], device: Device) -> Tensor {
    encode_posterior_batch(vae, data, indices, device).0
}

/// Encoder posterior (μ, log σ²) of the frames `indices`.
fn encode_posterior_batch(
    vae: &Vae,
    data: &FrameSet,
    indices: &[usize],
    device: Device,
) -> (Tensor, Tensor) {
    let labels = vae
        .config
        .labelled
        .then(|| data.label_batch(indices, device));
    vae.encode(&data.image_batch(indices, device), labels.as_ref())
}

/// `count` latent points drawn from `prior` with `rng`.
pub fn draw_latents(prior: &LatentPrior, count: usize, rng: &mut impl rand::Rng) -> Vec<Vec<f32>> {
    (0..count).map(|_| prior.sample(rng)).collect()
}

/// Dice per class and image MSE over every frame of `data`.
pub fn evaluate(vae: &Vae, data: &FrameSet, device: Device) -> Result<VaeEvaluation, NoLabelMaps> {
    let mut counts = DiceCounts::default();
    let mut squared = 0.0;
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(64) {
        for (decoded, &i) in reconstruct(vae, data, chunk, device)?.iter().zip(chunk) {
            counts.add(decoded.labels.values(), data.labels[i].values());
        }
        let _guard = tch::no_grad_guard();
        let images = data.image_batch(chunk, device);
        let out = vae.forward(&images, Some(&data.label_batch(chunk, device)), false);
        squared += out
            .decoding
            .mean
            .clamp(0.0, 1.0)
            .mse_loss(&images, tch::Reduction::Sum)
            .double_value(&[]);
    }
    let pixels = (data.len() * data.size * data.size).max(1) as f64;
    Ok(VaeEvaluation {
        frames: data.len(),
        dice: counts.dice(),
        image_mse: squared / pixels,
    })
}

/// Pixel counts behind a Dice score per tissue class, pooled over frames: rare classes
/// (lipid, calcium) get one score over all their pixels rather than a mean of noisy
/// per-frame ones.
#[derive(Debug, Clone, Default)]
pub struct DiceCounts {
    overlap: [usize; CLASSES as usize],
    truth: [usize; CLASSES as usize],
    predicted: [usize; CLASSES as usize],
}

impl DiceCounts {
    /// Counts one frame's predicted label values against the true ones; values outside
    /// the classes are skipped.
    pub fn add(&mut self, predicted: &[u8], truth: &[u8]) {
        let classes = CLASSES as usize;
        for (&p, &t) in predicted.iter().zip(truth) {
            let (p, t) = (usize::from(p), usize::from(t));
            if p < classes {
                self.predicted[p] += 1;
            }
            if t < classes {
                self.truth[t] += 1;
                if p == t {
                    self.overlap[t] += 1;
                }
            }
        }
    }

    /// Dice per class; `None` for a class in neither the truth nor the prediction.
    pub fn dice(&self) -> [Option<f64>; CLASSES as usize] {
        std::array::from_fn(|c| {
            let total = self.truth[c] + self.predicted[c];
            (total > 0).then(|| 2.0 * self.overlap[c] as f64 / total as f64)
        })
    }
}

/// Whether the FEA can label a decoded label map as a closed vessel (lumen enclosed by
/// wall, so the pressure load balances).
pub fn is_valid_vessel(labels: &LabelMap) -> bool {
    let params = crate::fea::FeaParams::default();
    crate::fea::solve(labels, &params).is_ok_and(|f| f.load_imbalance < 1e-6)
}

/// Fraction of `latents` that decode to a closed vessel the FEA can label: for prior
/// draws, the share of round-0 samples the sampling loop can use.
pub fn usable_fraction(
    vae: &Vae,
    latents: &[Vec<f32>],
    device: Device,
) -> Result<f64, NoLabelMaps> {
    use rayon::prelude::*;
    let mut samples = Vec::with_capacity(latents.len());
    for chunk in latents.chunks(64) {
        samples.extend(decode_latents(vae, chunk, device)?);
    }
    let usable = samples
        .par_iter()
        .filter(|s| is_valid_vessel(&s.labels))
        .count();
    Ok(usable as f64 / latents.len().max(1) as f64)
}

/// Samples decoded from given latent points (rows of length `latent_dim`).
pub fn decode_latents(
    vae: &Vae,
    latents: &[Vec<f32>],
    device: Device,
) -> Result<Vec<Decoded>, NoLabelMaps> {
    decode_latents_as(vae, latents, device, Texture::Speckle)
}

/// Which image a decoded sample carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Texture {
    /// The sample: mean plus speckle (what the loop trains on).
    Speckle,
    /// The decoder's mean image alone (smooth), for measuring what the speckle buys.
    Mean,
}

/// [`decode_latents`] with a choice of image. Each point is decoded on its own: libtorch's
/// CPU kernels round differently for different batch sizes, and a sample's pixels (and so
/// its label map and FEA stress) must not depend on which other points shared its batch,
/// so that the loop, the app and an export decode a latent point to the same pixels.
pub fn decode_latents_as(
    vae: &Vae,
    latents: &[Vec<f32>],
    device: Device,
    texture: Texture,
) -> Result<Vec<Decoded>, NoLabelMaps> {
    let _guard = tch::no_grad_guard();
    let mut samples = Vec::with_capacity(latents.len());
    for latent in latents {
        let z = Tensor::from_slice(latent)
            .view([1, vae.config.latent_dim as i64])
            .to_device(device);
        let (image, logits) = match texture {
            Texture::Speckle => vae.decode(&z),
            Texture::Mean => {
                let parts = vae.decode_parts(&z);
                (parts.mean.clamp(0.0, 1.0), parts.label_logits)
            }
        };
        samples.extend(decoded(vae, &image, logits.as_ref())?);
    }
    Ok(samples)
}

/// Standardised residuals beyond this many spreads are clipped: where the fitted spread is
/// tiny (the dark lumen, clipped at black) one grey level is many spreads, and such a value
/// would be an outlier wherever it lands on another frame.
pub const RESIDUAL_CLIP: f64 = 6.0;

/// Standardised residuals u = (x − μ) / σ of real frames, clipped to ±[`RESIDUAL_CLIP`],
/// with μ and σ the VAE's mean image and per-pixel spread at each frame's encoder mean.
/// They carry the real noise itself: its grain, tails and shape, and the small structures
/// the mean misses. Decoded images with them in place of a parametric noise field teach F
/// more as real frames do (docs/journal/models.md, TSTR), so the loop's pool generator uses them.
/// Plain data, so a [`crate::sampling::Pool`] holding a bank can be shared across threads.
#[derive(Clone)]
pub struct ResidualBank {
    /// Side of each square field.
    size: usize,
    /// `n` fields of `size × size`, row-major, one after the other.
    fields: Vec<f32>,
}

impl std::fmt::Debug for ResidualBank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResidualBank({} fields of {}²)", self.len(), self.size)
    }
}

/// A bank field and the symmetry it is turned by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResidualPick {
    pub field: usize,
    pub symmetry: Symmetry,
}

impl ResidualBank {
    /// The residuals of every frame of `frames` under `vae`; `None` when `frames` is empty.
    pub fn from_frames(vae: &Vae, frames: &FrameSet, device: Device) -> Option<ResidualBank> {
        let _guard = tch::no_grad_guard();
        let indices: Vec<usize> = (0..frames.len()).collect();
        let fields: Vec<f32> = indices
            .chunks(64)
            .flat_map(|chunk| {
                let parts = vae.decode_parts(&encode_batch(vae, frames, chunk, device));
                to_vec(
                    &((frames.image_batch(chunk, device) - parts.mean) / parts.log_spread.exp())
                        .clamp(-RESIDUAL_CLIP, RESIDUAL_CLIP),
                )
            })
            .collect();
        (!fields.is_empty()).then_some(ResidualBank {
            size: frames.size,
            fields,
        })
    }

    /// Fields in the bank.
    pub fn len(&self) -> usize {
        self.fields.len() / (self.size * self.size).max(1)
    }

    /// Whether the bank holds no field (never, for one [`ResidualBank::from_frames`] built).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A field and a symmetry, each uniformly at random.
    pub fn pick(&self, rng: &mut impl rand::Rng) -> ResidualPick {
        ResidualPick {
            field: rng.gen_range(0..self.len()),
            symmetry: Symmetry::random(rng),
        }
    }

    /// The pick that belongs to latent point `latent`: a function of its coordinates, so
    /// the same z always decodes to the same pixels (an export decodes a run's z' again
    /// and gets the sample the run trained on), and distinct points get independent picks.
    pub fn pick_for(&self, latent: &[f32]) -> ResidualPick {
        use rand::SeedableRng;
        self.pick(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            super::vae::latent_hash(latent) ^ LATENT_PICK_SEED,
        ))
    }

    /// The picked field, turned: `[1, 1, s, s]` on `device`.
    fn field(&self, pick: ResidualPick, device: Device) -> Tensor {
        let area = self.size * self.size;
        let s = self.size as i64;
        let field = Tensor::from_slice(&self.fields[pick.field * area..(pick.field + 1) * area])
            .view([1, 1, s, s]);
        pick.symmetry.apply(&field).to_device(device)
    }
}

/// Mixed into a latent point's hash for its residual pick, so the pick's stream differs
/// from the point's Gaussian speckle stream.
const LATENT_PICK_SEED: u64 = 0x7069_636b_5f66_6f72;

/// Samples decoded at `latents` with the picked bank fields as noise: μ + σ · u clamped to
/// [0, 1], each with its own mean and spread. One pick per latent point.
pub fn decode_latents_with_residuals(
    vae: &Vae,
    latents: &[Vec<f32>],
    picks: &[ResidualPick],
    bank: &ResidualBank,
    device: Device,
) -> Result<Vec<Decoded>, NoLabelMaps> {
    assert_eq!(
        latents.len(),
        picks.len(),
        "one residual pick per latent point"
    );
    let _guard = tch::no_grad_guard();
    let mut samples = Vec::with_capacity(latents.len());
    for (latent, &pick) in latents.iter().zip(picks) {
        let z = Tensor::from_slice(latent)
            .view([1, vae.config.latent_dim as i64])
            .to_device(device);
        let parts = vae.decode_parts(&z);
        let noise = bank.field(pick, device);
        let image = (&parts.mean + parts.log_spread.exp() * noise).clamp(0.0, 1.0);
        samples.extend(decoded(vae, &image, parts.label_logits.as_ref())?);
    }
    Ok(samples)
}

/// Encoder means μ of every frame of `data`: the latent embedding of real samples.
pub fn encode_means(vae: &Vae, data: &FrameSet, device: Device) -> Vec<Vec<f32>> {
    let _guard = tch::no_grad_guard();
    let indices: Vec<usize> = (0..data.len()).collect();
    let d = vae.config.latent_dim;
    indices
        .chunks(64)
        .flat_map(|chunk| {
            to_vec(&encode_batch(vae, data, chunk, device))
                .chunks(d)
                .map(<[f32]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Encoder posteriors (μ, σ) of every frame of `data`: what an aggregate-posterior prior
/// ([`crate::model::prior::LatentPrior::from_posteriors`]) is made of.
pub fn encode_posteriors(vae: &Vae, data: &FrameSet, device: Device) -> Vec<(Vec<f32>, Vec<f32>)> {
    let _guard = tch::no_grad_guard();
    let indices: Vec<usize> = (0..data.len()).collect();
    let d = vae.config.latent_dim;
    let mut out = Vec::with_capacity(data.len());
    for chunk in indices.chunks(64) {
        let (mu, logvar) = encode_posterior_batch(vae, data, chunk, device);
        let sigma = (logvar * 0.5).exp();
        out.extend(
            to_vec(&mu)
                .chunks(d)
                .zip(to_vec(&sigma).chunks(d))
                .map(|(m, s)| (m.to_vec(), s.to_vec())),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dice_counts_pool_pixels_over_frames_and_skip_absent_classes() {
        let mut counts = DiceCounts::default();
        // Frame 1: lipid predicted on 2 pixels, true on 1 of them and on 1 other.
        counts.add(&[3, 3, 2, 0], &[3, 2, 3, 0]);
        // Frame 2: lipid right on its only pixel; an invalid predicted value is skipped.
        counts.add(&[3, 9, 0, 0], &[3, 2, 0, 0]);
        let dice = counts.dice();
        // Lipid: overlap 2, truth 3, predicted 3.
        assert!((dice[3].unwrap() - 4.0 / 6.0).abs() < 1e-12);
        // Outside: overlap 3, truth 3, predicted 3.
        assert_eq!(dice[0], Some(1.0));
        assert_eq!(dice[1], None);
        assert_eq!(dice[4], None);
        // Fibrous: overlap 0, truth 2, predicted 1.
        assert_eq!(dice[2], Some(0.0));
    }
}
