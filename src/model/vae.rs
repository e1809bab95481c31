//! The VAE over (image, one-hot label map): a convolutional encoder to (μ, log σ²) and a
//! decoder back to an image and label-map logits (docs/DESIGN.md §Models).
//!
//! Three things make its samples worth training F on:
//! - a speckle model: besides the mean grey image the decoder predicts the per-pixel
//!   spread of log-compressed speckle, fitted by maximum likelihood around the (detached)
//!   mean, and the grain (spatial correlation) of the training residuals is measured after
//!   training. A decoded sample is mean + spread × correlated noise, so it looks like a
//!   B-mode frame rather than a smooth grey picture. The noise is seeded by the latent
//!   point itself, so G stays a deterministic function of z (exports decode again to the
//!   same pixels, and the latent gradient sees a fixed noise realisation);
//! - a KL warm-up, so the posterior is shaped by reconstruction first;
//! - an aggregate-posterior prior ([`LatentPrior`]) fitted to the training frames' encoder
//!   means and stored with the weights, from which new points are drawn.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::filter::{TapScale, gaussian_blur};
use super::prior::LatentPrior;
use crate::labels::Tissue;

/// Label classes the VAE models.
pub const CLASSES: i64 = Tissue::ALL.len() as i64;

/// The architecture revision this build writes; older checkpoints (no speckle model, no
/// fitted prior) are refused on load.
pub const VAE_REVISION: u32 = 2;

/// Largest speckle grain (Gaussian σ of the noise correlation, pixels) the sampler uses.
const MAX_GRAIN: f64 = 3.0;

/// Architecture hyper-parameters, stored in the checkpoint sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VaeConfig {
    /// Working resolution (square); a multiple of 8.
    pub size: usize,
    pub latent_dim: usize,
    /// Channels of the first convolution (doubled at each of the three down-samplings).
    pub width: usize,
    /// Weight of the KL term once warmed up.
    pub beta: f64,
    /// Epochs over which the KL weight ramps linearly from 0 to β.
    #[serde(default)]
    pub kl_warmup_epochs: usize,
    /// Gaussians in the aggregate-posterior prior.
    #[serde(default)]
    pub prior_components: usize,
    /// Architecture revision ([`VAE_REVISION`] now; absent, hence 0, in older files).
    #[serde(default)]
    pub revision: u32,
    /// Whether the VAE models label maps with the images. An image-only VAE (false) is what
    /// an unannotated pool allows: it encodes images alone and decodes no label map, so
    /// SNN works with it and SI, which labels decoded maps with the FEA, does not.
    #[serde(default = "labelled_default")]
    pub labelled: bool,
    /// How the label cross-entropy weighs the classes (absent, hence uniform, in files
    /// written before the option existed).
    #[serde(default)]
    pub label_weighting: LabelWeighting,
}

/// The mean image's error against `image`, summed over pixels and frames: a Laplace
/// likelihood of variance ½ (2·|x − μ| per pixel). A squared error (a Gaussian of that
/// variance) averages the two sides of an edge into a soft ramp, and next to the label
/// cross-entropy and the KL term leaves the latent code little reason to carry image
/// structure the label map does not imply; the absolute error's gradient does not shrink
/// with the error, so the mean is fitted to the median and keeps hard edges
/// (docs/journal/models.md, "An edge-keeping likelihood for the mean image").
fn image_error(mean: &Tensor, image: &Tensor) -> Tensor {
    (image - mean).abs().sum(Kind::Float) * 2.0
}

/// Class weights of the VAE's label cross-entropy. Lipid and calcium cover about 1 % of a
/// frame's pixels, so under a uniform loss the latent code can drop them for little cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LabelWeighting {
    /// Every pixel counts the same.
    #[default]
    Uniform,
    /// Each class weighted by 1/√(its pixel share in the training frames), scaled so that
    /// the average pixel keeps weight 1 (the loss keeps its size against the other terms).
    InverseSqrtFrequency,
}

/// Pixel share below which a class counts as this rare when weighted (a class absent from
/// the training frames gets a finite weight it never uses).
const MIN_CLASS_SHARE: f64 = 1e-4;

impl LabelWeighting {
    /// The weight of each class given its pixel counts in the training frames; `None` for
    /// uniform weights.
    pub fn class_weights(self, counts: &[usize]) -> Option<Vec<f64>> {
        match self {
            LabelWeighting::Uniform => None,
            LabelWeighting::InverseSqrtFrequency => {
                let total = counts.iter().sum::<usize>().max(1) as f64;
                let shares: Vec<f64> = counts.iter().map(|&c| c as f64 / total).collect();
                let raw: Vec<f64> = shares
                    .iter()
                    .map(|&f| 1.0 / f.max(MIN_CLASS_SHARE).sqrt())
                    .collect();
                let mean: f64 = shares.iter().zip(&raw).map(|(f, w)| f * w).sum();
                Some(
                    raw.iter()
                        .map(|w| w / mean.max(f64::MIN_POSITIVE))
                        .collect(),
                )
            }
        }
    }
}

fn labelled_default() -> bool {
    true
}

impl VaeConfig {
    pub fn new(size: usize) -> VaeConfig {
        VaeConfig {
            size,
            latent_dim: 32,
            width: 32,
            beta: 1.0,
            kl_warmup_epochs: 10,
            prior_components: 10,
            revision: VAE_REVISION,
            labelled: true,
            label_weighting: LabelWeighting::InverseSqrtFrequency,
        }
    }

    /// Channels the encoder reads: the image, and the one-hot label map when labelled.
    fn input_channels(&self) -> i64 {
        if self.labelled { 1 + CLASSES } else { 1 }
    }

    fn bottleneck(&self) -> (i64, i64) {
        (4 * self.width as i64, (self.size / 8) as i64)
    }

    /// The KL weight in `epoch` (0-based): linear warm-up, then β.
    pub fn beta_at(&self, epoch: usize) -> f64 {
        if self.kl_warmup_epochs == 0 {
            return self.beta;
        }
        self.beta * ((epoch + 1) as f64 / self.kl_warmup_epochs as f64).min(1.0)
    }
}

/// Encoder and decoder, their weights under `vae/` in a VarStore.
#[derive(Debug)]
pub struct Vae {
    pub config: VaeConfig,
    encoder: nn::Sequential,
    to_stats: nn::Linear,
    from_latent: nn::Linear,
    /// Up-sampling trunk shared by the heads.
    decoder: nn::Sequential,
    /// Mean grey level and label logits.
    head: nn::Conv2D,
    /// Log spread of the speckle per pixel. In training it reads the trunk's features
    /// detached, so the many per-pixel likelihood terms of the speckle model cannot pull
    /// the trunk away from the geometry the label maps need.
    spread_head: nn::Conv2D,
    /// Gaussian σ (pixels) of the speckle's spatial correlation, measured after training.
    speckle_grain: Tensor,
    prior_weights: Tensor,
    prior_means: Tensor,
    prior_scale_tril: Tensor,
}

/// A decoder output before sampling.
#[derive(Debug)]
pub struct Decoding {
    /// `[n, 1, s, s]` mean grey level, in [0, 1].
    pub mean: Tensor,
    /// `[n, 1, s, s]` log of the speckle's standard deviation around the mean.
    pub log_spread: Tensor,
    /// `[n, 5, s, s]` class logits; `None` for an image-only VAE.
    pub label_logits: Option<Tensor>,
}

/// One forward pass: reconstructions and the posterior.
#[derive(Debug)]
pub struct VaeOutput {
    pub decoding: Decoding,
    pub mu: Tensor,
    pub logvar: Tensor,
}

/// Loss terms of one batch (per-sample sums, averaged over the batch).
#[derive(Debug)]
pub struct VaeLoss {
    pub total: Tensor,
    /// Error of the mean image under the Laplace likelihood.
    pub image: Tensor,
    /// Negative log-likelihood of the speckle spread around the detached mean.
    pub speckle: Tensor,
    /// Label cross-entropy (zero for an image-only VAE).
    pub labels: Tensor,
    pub kl: Tensor,
}

impl Vae {
    pub fn new(root: &nn::Path, config: VaeConfig) -> Vae {
        let w = config.width as i64;
        let (down, same) = (halving_conv(), same_size_conv());
        let p = root / "vae";
        let mut encoder = nn::seq();
        for (k, (c_in, c_out)) in [(config.input_channels(), w), (w, 2 * w), (2 * w, 4 * w)]
            .into_iter()
            .enumerate()
        {
            encoder = encoder
                .add(nn::conv2d(&p / format!("enc{k}"), c_in, c_out, 4, down))
                .add_fn(|x| x.leaky_relu());
        }
        let (channels, side) = config.bottleneck();
        let flat = channels * side * side;
        let latent = config.latent_dim as i64;
        let to_stats = nn::linear(&p / "to_stats", flat, 2 * latent, Default::default());
        let from_latent = nn::linear(&p / "from_latent", latent, flat, Default::default());
        let up = nn::ConvTransposeConfig {
            stride: 2,
            padding: 1,
            ..Default::default()
        };
        let decoder = nn::seq()
            .add(nn::conv_transpose2d(&p / "dec0", 4 * w, 2 * w, 4, up))
            .add_fn(|x| x.leaky_relu())
            .add(nn::conv_transpose2d(&p / "dec1", 2 * w, w, 4, up))
            .add_fn(|x| x.leaky_relu())
            .add(nn::conv_transpose2d(&p / "dec2", w, w, 4, up))
            .add_fn(|x| x.leaky_relu())
            .add(nn::conv2d(&p / "refine", w, w, 3, same))
            .add_fn(|x| x.leaky_relu());
        let head_channels = if config.labelled { 1 + CLASSES } else { 1 };
        let head = nn::conv2d(&p / "head", w, head_channels, 3, same);
        let spread_head = nn::conv2d(&p / "spread_head", w, 1, 3, same);
        let k = config.prior_components.max(1) as i64;
        let prior = &p / "prior";
        Vae {
            config,
            encoder,
            to_stats,
            from_latent,
            decoder,
            head,
            spread_head,
            speckle_grain: p.zeros_no_train("speckle_grain", &[1]),
            prior_weights: prior.zeros_no_train("weights", &[k]),
            prior_means: prior.zeros_no_train("means", &[k, latent]),
            prior_scale_tril: prior.zeros_no_train("scale_tril", &[k, latent, latent]),
        }
    }

    /// (μ, log σ²) of images `[n, 1, s, s]` and labels `[n, s, s]`. A labelled VAE needs
    /// the labels; an image-only one ignores them.
    pub fn encode(&self, image: &Tensor, labels: Option<&Tensor>) -> (Tensor, Tensor) {
        let x = if self.config.labelled {
            let one_hot = labels
                .expect("a labelled VAE encodes images with their label maps")
                .one_hot(CLASSES)
                .permute([0, 3, 1, 2])
                .to_kind(Kind::Float);
            Tensor::cat(&[image, &one_hot], 1)
        } else {
            image.shallow_clone()
        };
        let stats = self
            .to_stats
            .forward(&self.encoder.forward(&x).flatten(1, -1));
        let parts = stats.chunk(2, 1);
        (parts[0].shallow_clone(), parts[1].shallow_clone())
    }

    /// The decoder's mean image, speckle spread and label logits at latents `[n, d]`.
    pub fn decode_parts(&self, z: &Tensor) -> Decoding {
        self.decode_with(z, false)
    }

    /// [`Vae::decode_parts`]; with `training`, the spread head reads detached features, so
    /// the speckle likelihood does not pull the geometry the label maps need.
    fn decode_with(&self, z: &Tensor, training: bool) -> Decoding {
        let (channels, side) = self.config.bottleneck();
        let h = self
            .from_latent
            .forward(z)
            .leaky_relu()
            .view([-1, channels, side, side]);
        let features = self.decoder.forward(&h);
        let out = self.head.forward(&features);
        let label_logits = self.config.labelled.then(|| out.narrow(1, 1, CLASSES));
        let mean = out.narrow(1, 0, 1).sigmoid();
        let spread_input = if training {
            features.detach()
        } else {
            features
        };
        let log_spread = self.spread_head.forward(&spread_input).clamp(-7.0, 0.0);
        Decoding {
            mean,
            log_spread,
            label_logits,
        }
    }

    /// Decodes latents `[n, d]` to a sample: (speckled image in [0, 1], label logits). The
    /// speckle realisation is a function of each latent point, so the same z always gives
    /// the same pixels; gradients flow through the mean and the spread.
    pub fn decode(&self, z: &Tensor) -> (Tensor, Option<Tensor>) {
        self.decode_speckled(z, SpeckleSeed::PerPoint)
    }

    /// Decodes with the speckle realisation `seed` picks.
    pub fn decode_speckled(&self, z: &Tensor, seed: SpeckleSeed) -> (Tensor, Option<Tensor>) {
        let parts = self.decode_parts(z);
        let noise = self.speckle_noise(z, seed);
        let image = (&parts.mean + parts.log_spread.exp() * noise).clamp(0.0, 1.0);
        (image, parts.label_logits)
    }

    /// Zero-mean, unit-variance Gaussian noise `[n, 1, s, s]` with the measured speckle
    /// grain, drawn from each point's own generator (or the common one).
    fn speckle_noise(&self, z: &Tensor, seed: SpeckleSeed) -> Tensor {
        let n = z.size()[0];
        let d = z.size()[1] as usize;
        let s = self.config.size as i64;
        let rows = super::data::to_vec(&z.detach());
        let mut values = Vec::with_capacity((n * s * s) as usize);
        for row in rows.chunks(d.max(1)) {
            use rand::SeedableRng;
            use rand_distr::Distribution;
            let bits = match seed {
                SpeckleSeed::PerPoint => latent_hash(row),
                SpeckleSeed::Common => COMMON_SPECKLE_SEED,
            };
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(bits);
            values
                .extend((0..s * s).map(|_| -> f32 { rand_distr::StandardNormal.sample(&mut rng) }));
        }
        let white = Tensor::from_slice(&values)
            .view([n, 1, s, s])
            .to_device(z.device());
        gaussian_blur(&white, self.grain(), TapScale::UnitEnergy)
    }

    /// The speckle grain in pixels (0: white noise).
    pub fn grain(&self) -> f64 {
        self.speckle_grain.double_value(&[0])
    }

    /// Encode, sample with the reparameterisation trick when `sample`, decode (mean image,
    /// spread and logits; no speckle).
    pub fn forward(&self, image: &Tensor, labels: Option<&Tensor>, sample: bool) -> VaeOutput {
        let (mu, logvar) = self.encode(image, labels);
        let z = if sample {
            &mu + (&logvar * 0.5).exp() * mu.randn_like()
        } else {
            mu.shallow_clone()
        };
        VaeOutput {
            decoding: self.decode_with(&z, true),
            mu,
            logvar,
        }
    }

    /// Image term (Laplace) + speckle NLL + label cross-entropy (weighted
    /// per class by `class_weights`, `[5]`, when given) + `beta`·KL, each summed per sample,
    /// mean over the batch. The terms stay on the device: reading them would wait for it.
    pub fn loss(
        &self,
        out: &VaeOutput,
        image: &Tensor,
        labels: Option<&Tensor>,
        class_weights: Option<&Tensor>,
        beta: f64,
    ) -> VaeLoss {
        let n = image.size()[0] as f64;
        let d = &out.decoding;
        let image_term = image_error(&d.mean, image) / n;
        let residual = (image - d.mean.detach()).pow_tensor_scalar(2);
        let speckle = ((residual * (&d.log_spread * -2.0).exp() + &d.log_spread * 2.0) * 0.5)
            .sum(Kind::Float)
            / n;
        let label_term = match (&d.label_logits, labels) {
            (Some(logits), Some(labels)) => {
                logits.cross_entropy_loss(labels, class_weights, tch::Reduction::Sum, -100, 0.0) / n
            }
            _ => image_term.zeros_like(),
        };
        let kl = (&out.logvar + 1 - out.mu.pow_tensor_scalar(2) - out.logvar.exp())
            .sum(Kind::Float)
            * -0.5
            / n;
        let total = &image_term + &speckle + &label_term + &kl * beta;
        VaeLoss {
            total,
            image: image_term,
            speckle,
            labels: label_term,
            kl,
        }
    }

    /// Lag-one correlation of the standardised residuals (image − mean) / spread,
    /// horizontally and vertically pooled, as sums: (Σ r·r_next, Σ r²).
    pub fn residual_correlation(&self, image: &Tensor, labels: Option<&Tensor>) -> (f64, f64) {
        let _guard = tch::no_grad_guard();
        let d = self.forward(image, labels, false).decoding;
        let r = (image - &d.mean) * (-&d.log_spread).exp();
        let s = r.size()[3];
        let horizontal = (r.narrow(3, 0, s - 1) * r.narrow(3, 1, s - 1)).sum(Kind::Double);
        let vertical = (r.narrow(2, 0, s - 1) * r.narrow(2, 1, s - 1)).sum(Kind::Double);
        let lagged = (horizontal + vertical).double_value(&[]) / 2.0;
        let energy =
            r.pow_tensor_scalar(2).sum(Kind::Double).double_value(&[]) * (s - 1) as f64 / s as f64;
        (lagged, energy)
    }

    /// Stores the grain that gives white noise blurred by a Gaussian a lag-one correlation
    /// of `rho` (ρ = exp(−1 / (4σ²))).
    pub fn set_grain_from_correlation(&mut self, rho: f64) {
        let grain = if rho <= 0.01 {
            0.0
        } else if rho >= 0.999 {
            MAX_GRAIN
        } else {
            (-1.0 / (4.0 * rho.ln())).sqrt().min(MAX_GRAIN)
        };
        let _ = tch::no_grad(|| self.speckle_grain.fill_(grain));
    }

    /// The prior stored with the weights.
    pub fn prior(&self) -> LatentPrior {
        let k = self.prior_weights.size()[0] as usize;
        let d = self.config.latent_dim;
        let weights = super::data::to_vec(&self.prior_weights);
        let means = super::data::to_vec(&self.prior_means);
        let tril = super::data::to_vec(&self.prior_scale_tril);
        LatentPrior {
            weights: weights.iter().map(|&w| f64::from(w)).collect(),
            means: means
                .chunks(d)
                .take(k)
                .map(|m| m.iter().map(|&v| f64::from(v)).collect())
                .collect(),
            scale_tril: tril
                .chunks(d * d)
                .take(k)
                .map(|m| m.iter().map(|&v| f64::from(v)).collect())
                .collect(),
        }
    }

    /// Stores `prior` with the weights; it must have the configured components and latent
    /// dimension.
    pub fn set_prior(&mut self, prior: &LatentPrior) {
        let k = self.prior_weights.size()[0] as usize;
        assert_eq!(prior.components(), k, "prior components");
        assert_eq!(prior.dim(), self.config.latent_dim, "prior dimension");
        let flat =
            |rows: &[Vec<f64>]| -> Vec<f32> { rows.iter().flatten().map(|&v| v as f32).collect() };
        let device = self.prior_weights.device();
        let weights: Vec<f32> = prior.weights.iter().map(|&w| w as f32).collect();
        tch::no_grad(|| {
            self.prior_weights
                .copy_(&Tensor::from_slice(&weights).to_device(device));
            self.prior_means.copy_(
                &Tensor::from_slice(&flat(&prior.means))
                    .view(self.prior_means.size().as_slice())
                    .to_device(device),
            );
            self.prior_scale_tril.copy_(
                &Tensor::from_slice(&flat(&prior.scale_tril))
                    .view(self.prior_scale_tril.size().as_slice())
                    .to_device(device),
            );
        });
    }
}

/// Stride 2, padding 1: with a kernel of 4 the convolution halves the resolution.
pub(super) fn halving_conv() -> nn::ConvConfig {
    nn::ConvConfig {
        stride: 2,
        padding: 1,
        ..Default::default()
    }
}

/// Padding 1: with a kernel of 3 the convolution keeps the resolution.
pub(super) fn same_size_conv() -> nn::ConvConfig {
    nn::ConvConfig {
        padding: 1,
        ..Default::default()
    }
}

/// Which speckle realisation a decoded image carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeckleSeed {
    /// Seeded by the latent point's bits: each point its own frame, reproducibly.
    PerPoint,
    /// One realisation shared by every point (common random numbers): the loss of F on
    /// the decoded image is then a smooth function of z, so gradients and the losses at
    /// z and z' compare like with like.
    Common,
}

const COMMON_SPECKLE_SEED: u64 = 0x5eed_5bec_41e5;

/// FNV-1a over the bits of a latent row: a stable seed for its speckle realisation.
pub(crate) fn latent_hash(row: &[f32]) -> u64 {
    row.iter()
        .flat_map(|v| v.to_bits().to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_weight_warms_up_linearly_then_holds() {
        let config = VaeConfig {
            beta: 2.0,
            kl_warmup_epochs: 4,
            ..VaeConfig::new(32)
        };
        let betas: Vec<f64> = (0..6).map(|e| config.beta_at(e)).collect();
        assert_eq!(betas, [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]);
        let flat = VaeConfig {
            kl_warmup_epochs: 0,
            ..config
        };
        assert_eq!(flat.beta_at(0), 2.0);
    }

    #[test]
    fn inverse_sqrt_weights_favour_rare_classes_and_keep_the_mean_pixel_at_one() {
        assert_eq!(
            LabelWeighting::Uniform.class_weights(&[8, 1, 1, 0, 0]),
            None
        );
        let counts = [6400, 900, 900, 100, 0];
        let w = LabelWeighting::InverseSqrtFrequency
            .class_weights(&counts)
            .expect("weights");
        // Shares 0.77, 0.108, 0.108, 0.012, 0: raw weights 1/√share (the absent class at
        // the 1e-4 floor), scaled by Σ share·raw = (80 + 30 + 30 + 10) / √8300.
        let scale = 150.0 / 8300f64.sqrt();
        let expected = [
            8300f64.sqrt() / 80.0 / scale,
            8300f64.sqrt() / 30.0 / scale,
            8300f64.sqrt() / 30.0 / scale,
            8300f64.sqrt() / 10.0 / scale,
            100.0 / scale,
        ];
        for (got, want) in w.iter().zip(expected) {
            assert!((got - want).abs() < 1e-9, "{w:?} against {expected:?}");
        }
        let mean: f64 = counts
            .iter()
            .zip(&w)
            .map(|(&c, w)| c as f64 * w)
            .sum::<f64>()
            / 8300.0;
        assert!((mean - 1.0).abs() < 1e-12);
        assert!(w[3] > w[1] && w[1] > w[0]);
    }

    #[test]
    fn a_sidecar_without_the_label_weighting_reads_as_uniform_and_round_trips() {
        let mut json = serde_json::to_value(VaeConfig::new(32)).expect("serialise");
        json.as_object_mut()
            .expect("object")
            .remove("label_weighting");
        let config: VaeConfig = serde_json::from_value(json).expect("deserialise");
        assert_eq!(config.label_weighting, LabelWeighting::Uniform);
        let weighted = VaeConfig::new(32);
        let json = serde_json::to_string(&weighted).expect("serialise");
        assert!(json.contains("\"label_weighting\":\"inverse-sqrt-frequency\""));
        assert_eq!(
            serde_json::from_str::<VaeConfig>(&json).expect("read"),
            weighted
        );
    }

    #[test]
    fn the_laplace_image_term_pulls_every_pixel_alike_whatever_its_error() {
        let image = Tensor::from_slice(&[0.1f32, 0.2, 0.9, 0.4]).view([1, 1, 2, 2]);
        let mean = Tensor::from_slice(&[0.0f32, 0.25, 0.0, 0.4])
            .view([1, 1, 2, 2])
            .set_requires_grad(true);
        let laplace = image_error(&mean, &image);
        // 2 (0.1 + 0.05 + 0.9 + 0).
        assert!((laplace.double_value(&[]) - 2.1).abs() < 1e-5);
        laplace.backward();
        // The pixel 0.9 off pulls as hard as the one 0.1 off (a squared error would pull
        // nine times harder); the exact pixel does not pull.
        let expected = Tensor::from_slice(&[-2.0f32, 2.0, -2.0, 0.0]).view([1, 1, 2, 2]);
        assert!(mean.grad().allclose(&expected, 1e-5, 1e-6, false));
    }

    /// An untrained VAE at 32² with a latent of 3 (width 4, two components), quick to build.
    fn tiny_vae() -> (nn::VarStore, Vae) {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let config = VaeConfig {
            width: 4,
            latent_dim: 3,
            prior_components: 2,
            ..VaeConfig::new(32)
        };
        let vae = Vae::new(&vs.root(), config);
        (vs, vae)
    }

    #[test]
    fn decoding_is_a_function_of_z_and_the_grain_sets_the_noise_correlation() {
        let (_vs, mut vae) = tiny_vae();
        let z = Tensor::from_slice(&[0.1f32, -0.2, 0.3, 1.0, 2.0, 3.0]).view([2, 3]);
        let a = vae.decode(&z).0;
        let b = vae.decode(&z).0;
        assert!(a.equal(&b));
        assert!(!a.get(0).equal(&a.get(1)));
        for (rho, lo, hi) in [(0.0, -0.03, 0.03), (0.6, 0.5, 0.7)] {
            vae.set_grain_from_correlation(rho);
            let zs = Tensor::randn([64, 3], (Kind::Float, tch::Device::Cpu));
            let noise = vae.speckle_noise(&zs, SpeckleSeed::PerPoint);
            let s = 32;
            let inner = noise.narrow(2, 8, 16).narrow(3, 8, 16);
            let lagged = (inner.narrow(3, 0, 15) * inner.narrow(3, 1, 15)).mean(Kind::Double);
            let variance = inner.pow_tensor_scalar(2).mean(Kind::Double);
            let measured = lagged.double_value(&[]) / variance.double_value(&[]);
            assert!(
                (lo..hi).contains(&measured),
                "ρ {rho}: measured {measured} at {s}²"
            );
            assert!((variance.double_value(&[]) - 1.0).abs() < 0.1);
        }
    }
}
