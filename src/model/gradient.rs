//! The gradient of the target model's loss through the generator with respect to latent
//! points (docs/DESIGN.md §Method): L(F(G_image(z)), y) and ∇z L per point, and the moved points.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::regressor::Regressor;
use super::vae::{SpeckleSeed, Vae};

/// How a gradient is turned into a step direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Normalisation {
    /// z' = z + η · g / ‖g‖ (per sample).
    #[default]
    L2,
    /// z' = z + η · sign(g) (per dimension).
    Sign,
}

/// Loss and gradient at each latent point.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentGradient {
    pub loss: f32,
    pub gradient: Vec<f32>,
}

/// Per-point loss L(F(G_image(z)), y) (MSE over solid pixels of the target's label map
/// when `solid` is given, in units of pressure²) and ∇z L. G_image carries one speckle
/// realisation shared by all points ([`SpeckleSeed::Common`]), so L is smooth in z. `targets` is `[n, 1, s, s]`
/// stress / pressure. Only z receives gradients: the model parameters' `.grad` are
/// untouched.
pub fn latent_gradients(
    vae: &Vae,
    regressor: &Regressor,
    latents: &[Vec<f32>],
    targets: &Tensor,
    solid: Option<&Tensor>,
    device: Device,
) -> Vec<LatentGradient> {
    let n = latents.len() as i64;
    let d = vae.config.latent_dim as i64;
    let flat: Vec<f32> = latents.iter().flatten().copied().collect();
    // A leaf on the target device: create it there, then ask for gradients.
    let z = Tensor::from_slice(&flat)
        .view([n, d])
        .to_device(device)
        .set_requires_grad(true);
    let (image, _) = vae.decode_speckled(&z, SpeckleSeed::Common);
    let squared = (regressor.forward(&image) - targets).pow_tensor_scalar(2);
    let per_sample = match solid {
        Some(mask) => {
            (squared * mask).sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float)
                / mask
                    .sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float)
                    .clamp_min(1.0)
        }
        None => squared.mean_dim([1, 2, 3].as_slice(), false, Kind::Float),
    };
    let total = per_sample.sum(Kind::Float);
    let gradient = Tensor::run_backward(&[&total], &[&z], false, false)
        .pop()
        .expect("one gradient per input");
    let losses = super::data::to_vec(&per_sample.detach());
    let gradients = super::data::to_vec(&gradient);
    losses
        .into_iter()
        .zip(gradients.chunks(d as usize))
        .map(|(loss, g)| LatentGradient {
            loss,
            gradient: g.to_vec(),
        })
        .collect()
}

/// z' = z + η · direction(∇z L); a zero gradient leaves the point where it is.
pub fn move_latent(
    z: &[f32],
    gradient: &[f32],
    step: f32,
    normalisation: Normalisation,
) -> Vec<f32> {
    match normalisation {
        Normalisation::L2 => {
            let norm = gradient.iter().map(|g| g * g).sum::<f32>().sqrt();
            if norm == 0.0 || !norm.is_finite() {
                return z.to_vec();
            }
            z.iter()
                .zip(gradient)
                .map(|(z, g)| z + step * g / norm)
                .collect()
        }
        Normalisation::Sign => z
            .iter()
            .zip(gradient)
            .map(|(z, g)| if *g == 0.0 { *z } else { z + step * g.signum() })
            .collect(),
    }
}

/// Euclidean norm of a gradient.
pub fn norm(gradient: &[f32]) -> f32 {
    gradient.iter().map(|g| g * g).sum::<f32>().sqrt()
}
