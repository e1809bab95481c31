//! VAE quality on held-out frames: label-map Dice per class and image reconstruction
//! error, plus reconstructions and prior samples as plain data for pictures.

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use super::data::{FrameSet, to_vec};
use super::vae::{CLASSES, Vae};
use crate::labels::LabelMap;

/// Reconstruction quality over a frame set.
#[derive(Debug, Clone, Serialize)]
pub struct VaeEvaluation {
    pub frames: usize,
    /// Dice per label class (outside, lumen, fibrous, lipid, calcium), pooled over frames;
    /// `None` for a class absent from both truth and reconstruction.
    pub dice: [Option<f64>; 5],
    /// Mean squared error of the image in [0, 1] grey levels.
    pub image_mse: f64,
}

/// A decoded sample as plain data.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub image: Vec<u8>,
    pub labels: LabelMap,
}

fn decoded(vae: &Vae, image: &Tensor, logits: &Tensor) -> Vec<Decoded> {
    let size = vae.config.size;
    let pixels = to_vec(&(image * 255.0).round().clamp(0.0, 255.0));
    let classes = to_vec(&logits.argmax(1, false));
    pixels
        .chunks(size * size)
        .zip(classes.chunks(size * size))
        .map(|(p, c)| Decoded {
            image: p.iter().map(|v| *v as u8).collect(),
            labels: LabelMap::new(size, size, c.iter().map(|v| *v as u8).collect())
                .expect("argmax over the label classes is a valid label"),
        })
        .collect()
}

/// Reconstructions (encoder mean, no sampling) of `indices`.
pub fn reconstruct(vae: &Vae, data: &FrameSet, indices: &[usize], device: Device) -> Vec<Decoded> {
    let _guard = tch::no_grad_guard();
    let out = vae.forward(
        &data.image_batch(indices, device),
        &data.label_batch(indices, device),
        false,
    );
    decoded(vae, &out.image, &out.label_logits)
}

/// Samples decoded from z ~ N(0, I).
pub fn sample_prior(vae: &Vae, count: usize, device: Device) -> Vec<Decoded> {
    let _guard = tch::no_grad_guard();
    let z = Tensor::randn(
        [count as i64, vae.config.latent_dim as i64],
        (Kind::Float, device),
    );
    let (image, logits) = vae.decode(&z);
    decoded(vae, &image, &logits)
}

/// Dice per class and image MSE over every frame of `data`.
pub fn evaluate(vae: &Vae, data: &FrameSet, device: Device) -> VaeEvaluation {
    let mut overlap = [0usize; CLASSES as usize];
    let mut truth_count = [0usize; CLASSES as usize];
    let mut recon_count = [0usize; CLASSES as usize];
    let mut squared = 0.0;
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(64) {
        for (decoded, &i) in reconstruct(vae, data, chunk, device).iter().zip(chunk) {
            for (&r, &t) in decoded.labels.values().iter().zip(data.labels[i].values()) {
                recon_count[usize::from(r)] += 1;
                truth_count[usize::from(t)] += 1;
                if r == t {
                    overlap[usize::from(t)] += 1;
                }
            }
            squared += decoded
                .image
                .iter()
                .zip(&data.images[i])
                .map(|(a, b)| ((f64::from(*a) - f64::from(*b)) / 255.0).powi(2))
                .sum::<f64>();
        }
    }
    let dice = std::array::from_fn(|c| {
        let total = truth_count[c] + recon_count[c];
        (total > 0).then(|| 2.0 * overlap[c] as f64 / total as f64)
    });
    let pixels = (data.len() * data.size * data.size).max(1) as f64;
    VaeEvaluation {
        frames: data.len(),
        dice,
        image_mse: squared / pixels,
    }
}

/// Fraction of `count` samples decoded from N(0, I) whose label map the FEA can label as
/// a closed vessel (lumen enclosed by wall, so the pressure load balances): the share of
/// round-0 samples the sampling loop can use.
pub fn prior_usable_fraction(vae: &Vae, count: usize, device: Device) -> f64 {
    let params = crate::fea::FeaParams::default();
    let usable = sample_prior(vae, count, device)
        .iter()
        .filter(|s| crate::fea::solve(&s.labels, &params).is_ok_and(|f| f.load_imbalance < 1e-6))
        .count();
    usable as f64 / count.max(1) as f64
}

/// Samples decoded from given latent points (rows of length `latent_dim`).
pub fn decode_latents(vae: &Vae, latents: &[Vec<f32>], device: Device) -> Vec<Decoded> {
    if latents.is_empty() {
        return Vec::new();
    }
    let _guard = tch::no_grad_guard();
    let flat: Vec<f32> = latents.iter().flatten().copied().collect();
    let z = Tensor::from_slice(&flat)
        .view([latents.len() as i64, vae.config.latent_dim as i64])
        .to_device(device);
    let (image, logits) = vae.decode(&z);
    decoded(vae, &image, &logits)
}

/// Encoder means μ of every frame of `data`: the latent embedding of real samples.
pub fn encode_means(vae: &Vae, data: &FrameSet, device: Device) -> Vec<Vec<f32>> {
    let _guard = tch::no_grad_guard();
    let indices: Vec<usize> = (0..data.len()).collect();
    let d = vae.config.latent_dim;
    indices
        .chunks(64)
        .flat_map(|chunk| {
            let (mu, _) = vae.encode(
                &data.image_batch(chunk, device),
                &data.label_batch(chunk, device),
            );
            to_vec(&mu)
                .chunks(d)
                .map(<[f32]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}
