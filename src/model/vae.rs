//! The VAE over (image, one-hot label map): a convolutional encoder to (μ, log σ²) and a
//! decoder back to an image and label-map logits (SPEC §4).
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
use super::polar::PolarHead;
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
    /// How the mean image is fitted (absent, hence squared error, in files written before
    /// the option existed).
    #[serde(default)]
    pub image_likelihood: ImageLikelihood,
    /// Whether the mean image adds a 3×3 convolution of the decoded label probabilities
    /// to its logit, so tissue takes its grey level where the decoded label map puts it,
    /// with the label map's sharp edges (labelled VAEs only; absent, hence false, in files
    /// written before the option existed).
    #[serde(default)]
    pub label_conditioned_image: bool,
    /// Whether a [`PolarHead`] draws shadows along the scan lines and a residual on the
    /// scan's polar grid into the mean image (absent, hence false, in files written
    /// before the option existed).
    #[serde(default)]
    pub polar_head: bool,
}

/// The likelihood under which the decoder's mean image is fitted.
///
/// A plain squared error summed over pixels is a Gaussian likelihood with variance ½,
/// about 30 times the real frames' residual variance around the mean, so next to the
/// label cross-entropy and the KL term the latent code gains little by carrying image
/// structure the label map does not imply (shadow sectors, the catheter ring, sharp wall
/// edges), and the mean image comes out blurred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ImageLikelihood {
    /// Squared error of the mean image, every pixel alike (what a sidecar written before
    /// the option existed was trained with; new VAEs default to [`ImageLikelihood::Laplace`]).
    #[default]
    SquaredError,
    /// The speckle model's own Gaussian likelihood: each pixel's squared error divided by
    /// its fitted spread (detached, floored at [`MIN_WEIGHTED_SPREAD`]), halved. This is
    /// β-NLL with β = ½ (Seitzer et al., ICLR 2022): it sharpens the mean where the
    /// speckle is weak, without the full likelihood's neglect of pixels fitted with a
    /// large spread.
    SpreadWeighted,
    /// A Laplace likelihood of the same variance as the squared error's Gaussian (½):
    /// 2·|x − μ| per pixel. Its gradient does not shrink with the error, so the mean is
    /// fitted to the median, which keeps a hard edge where the squared error's mean
    /// averages the two sides into a soft ramp.
    Laplace,
    /// Log-compressed speckle's own likelihood: a B-mode pixel is the log of a Rayleigh
    /// envelope, μ + h·(ln V + γ) with V exponential, clipped to [0, 1] by the display's
    /// dynamic range, so black and white pixels count as censored (their probability mass,
    /// not a density). h is one fitted scale for the whole image, as fully developed
    /// speckle has one spread whatever the echo's strength: unlike a per-pixel spread it
    /// cannot absorb an edge or ring the mean image misses, and the mean's bright tail
    /// pulls hard towards thin bright structures. Samples draw the same shape of noise.
    /// Tempered by 2h² (h detached), so a pixel weighs what it does under the squared
    /// error at its optimum, beside the label and KL terms.
    LogRayleigh,
}

/// Grey level below which (and above 1 minus which) a pixel counts as clipped by the
/// display's dynamic range: half a grey step of an 8-bit image.
const CLIPPED: f64 = 0.5 / 255.0;

/// The location μ of a [`ImageLikelihood::LogRayleigh`] VAE spans this range: the mean
/// log-intensity of a shadow or the catheter lies well below black before clipping.
const LOCATION_RANGE: (f64, f64) = (-0.25, 1.25);

/// Log-likelihood terms grow as e^t; above this t they grow linearly, so one badly
/// fitted pixel early in training cannot overflow the loss.
const EXP_GUARD: f64 = 12.0;

/// e^t up to [`EXP_GUARD`], then its tangent: finite with a gradient everywhere.
fn guarded_exp(t: &Tensor) -> Tensor {
    t.clamp_max(EXP_GUARD).exp() * ((t - EXP_GUARD).relu() + 1.0)
}

/// Per-pixel negative log-likelihood of `image` under log-compressed speckle of location
/// `location` and scale `exp(log_scale)` (`[1]`), clipped to [0, 1]: for an unclipped
/// pixel the density of x = μ + h·(ln V + γ), V ~ Exp(1); for a black or white pixel the
/// probability of lying at or beyond its end.
pub fn log_rayleigh_nll(image: &Tensor, location: &Tensor, log_scale: &Tensor) -> Tensor {
    let h = log_scale.exp();
    let log_v = |x: &Tensor| (x - location) / &h - EULER_GAMMA;
    let t = log_v(image);
    let inside = guarded_exp(&t) - &t + log_scale;
    let low = log_v(&image.zeros_like()).clamp(-40.0, EXP_GUARD);
    let below = -(low.exp().neg().expm1().neg().log());
    let above = guarded_exp(&log_v(&image.ones_like()));
    let black = image.le(CLIPPED);
    let white = image.ge(1.0 - CLIPPED);
    below.where_self(&black, &above.where_self(&white, &inside))
}

impl ImageLikelihood {
    /// The shape of the speckle a decoded sample of a VAE fitted under this likelihood
    /// draws.
    pub fn speckle_shape(self) -> SpeckleShape {
        match self {
            ImageLikelihood::LogRayleigh => SpeckleShape::LogRayleigh,
            _ => SpeckleShape::Gaussian,
        }
    }

    /// The mean image's error against `image`, summed over pixels and frames; the spread
    /// only weighs the pixels and receives no gradient from this term, except under
    /// [`ImageLikelihood::LogRayleigh`], whose one scale is fitted with the mean.
    pub fn error(self, mean: &Tensor, log_spread: &Tensor, image: &Tensor) -> Tensor {
        match self {
            ImageLikelihood::SquaredError => mean.mse_loss(image, tch::Reduction::Sum),
            ImageLikelihood::SpreadWeighted => {
                let weight = (-log_spread.detach().clamp_min(MIN_WEIGHTED_SPREAD.ln())).exp();
                ((image - mean).pow_tensor_scalar(2) * weight * 0.5).sum(Kind::Float)
            }
            ImageLikelihood::Laplace => (image - mean).abs().sum(Kind::Float) * 2.0,
            ImageLikelihood::LogRayleigh => {
                let log_scale = log_spread.flatten(0, -1).narrow(0, 0, 1) - LOG_RAYLEIGH_SD;
                let temper = (log_scale.detach() * 2.0).exp() * 2.0;
                (log_rayleigh_nll(image, mean, &log_scale) * temper).sum(Kind::Float)
            }
        }
    }
}

/// Smallest spread (grey levels) a pixel's image weight uses under
/// [`ImageLikelihood::SpreadWeighted`]: the weight stays at most 100, so black pixels
/// outside the field of view, fitted with almost no spread, cannot dominate the loss.
pub const MIN_WEIGHTED_SPREAD: f64 = 0.01;

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
            image_likelihood: ImageLikelihood::Laplace,
            label_conditioned_image: false,
            polar_head: false,
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
    /// With [`VaeConfig::label_conditioned_image`]: the decoded label probabilities' part
    /// of the mean image's logit.
    label_to_image: Option<nn::Conv2D>,
    /// With [`VaeConfig::polar_head`]: shadows and rings drawn on the polar grid.
    polar: Option<PolarHead>,
    /// How the speckle's spread is modelled.
    speckle: SpreadModel,
    /// Gaussian σ (pixels) of the speckle's spatial correlation, measured after training.
    speckle_grain: Tensor,
    prior_weights: Tensor,
    prior_means: Tensor,
    prior_scale_tril: Tensor,
}

/// The speckle spread: per pixel from the decoder's features, or one fitted scale.
#[derive(Debug)]
enum SpreadModel {
    /// Log spread per pixel. In training the head reads the trunk's features detached, so
    /// the many per-pixel likelihood terms of the speckle model cannot pull the trunk away
    /// from the geometry the label maps need.
    PerPixel(nn::Conv2D),
    /// Log scale h of [`ImageLikelihood::LogRayleigh`], fitted with the mean image.
    Global(Tensor),
}

/// ln(π/√6): the standard deviation of ln V, V ~ Exp(1), so a log-Rayleigh spread of
/// scale h has standard deviation h·π/√6.
const LOG_RAYLEIGH_SD: f64 = 0.248_850_151_235_372_66;

/// A decoder output before sampling.
#[derive(Debug)]
pub struct Decoding {
    /// `[n, 1, s, s]` mean grey level, in [0, 1]; under [`ImageLikelihood::LogRayleigh`]
    /// the mean log-intensity before clipping, in [`LOCATION_RANGE`].
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
    /// Error of the mean image under the configured [`ImageLikelihood`].
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
        let speckle = if config.image_likelihood == ImageLikelihood::LogRayleigh {
            SpreadModel::Global(p.var(
                "speckle_log_scale",
                &[1],
                nn::Init::Const(INITIAL_LOG_RAYLEIGH_SCALE.ln()),
            ))
        } else {
            SpreadModel::PerPixel(nn::conv2d(&p / "spread_head", w, 1, 3, same))
        };
        let label_to_image = (config.labelled && config.label_conditioned_image)
            .then(|| nn::conv2d(&p / "label_to_image", CLASSES, 1, 3, same));
        let polar = config
            .polar_head
            .then(|| PolarHead::new(&(&p / "polar"), w, config.size));
        let k = config.prior_components.max(1) as i64;
        let prior = &p / "prior";
        Vae {
            config,
            encoder,
            to_stats,
            from_latent,
            decoder,
            head,
            label_to_image,
            polar,
            speckle,
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

    /// [`Vae::decode_parts`]; with `training`, the spread head reads detached features and
    /// the mean image detached label probabilities, so neither the speckle likelihood nor
    /// the image term pulls the geometry the label maps need.
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
        let mean_logit = match (&self.label_to_image, &label_logits) {
            (Some(conv), Some(logits)) => {
                let probabilities = logits.softmax(1, Kind::Float);
                let probabilities = if training {
                    probabilities.detach()
                } else {
                    probabilities
                };
                out.narrow(1, 0, 1) + conv.forward(&probabilities)
            }
            _ => out.narrow(1, 0, 1),
        };
        let grey = match &self.polar {
            Some(polar) => {
                let (residual, transmittance) = polar.forward(&features);
                (mean_logit + residual).sigmoid() * transmittance
            }
            None => mean_logit.sigmoid(),
        };
        let (mean, log_spread) = match &self.speckle {
            SpreadModel::PerPixel(head) => {
                let spread_input = if training {
                    features.detach()
                } else {
                    features
                };
                (grey, head.forward(&spread_input).clamp(-7.0, 0.0))
            }
            SpreadModel::Global(log_scale) => {
                let (low, high) = LOCATION_RANGE;
                let log_spread =
                    grey.zeros_like() + (log_scale + LOG_RAYLEIGH_SD).view([1, 1, 1, 1]);
                (grey * (high - low) + low, log_spread)
            }
        };
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
        self.decode_with_spread(z, seed, 1.0, self.config.image_likelihood.speckle_shape())
    }

    /// Decodes with the fitted speckle spread multiplied by `scale` and noise of the given
    /// `shape`: the spread absorbs whatever the mean image misses, not only speckle, so
    /// `sula tstr` measures how much of it, and of which shape, is worth sampling (1 and
    /// Gaussian: the sample the loop trains on).
    pub fn decode_with_spread(
        &self,
        z: &Tensor,
        seed: SpeckleSeed,
        scale: f64,
        shape: SpeckleShape,
    ) -> (Tensor, Option<Tensor>) {
        let parts = self.decode_parts(z);
        let noise = self.speckle_noise(z, seed, shape);
        let image = (&parts.mean + parts.log_spread.exp() * noise * scale).clamp(0.0, 1.0);
        (image, parts.label_logits)
    }

    /// A speckled sample of a training forward pass, with fresh noise of the measured
    /// grain: gradients reach the mean and the spread, so a critic that judges it can
    /// train both.
    pub fn training_sample(&self, decoding: &Decoding) -> Tensor {
        let shape = self.config.image_likelihood.speckle_shape();
        let fields = (0..shape.fields())
            .map(|_| decoding.mean.randn_like())
            .collect();
        let noise = self.shaped_noise(fields, shape);
        (&decoding.mean + decoding.log_spread.exp() * noise).clamp(0.0, 1.0)
    }

    /// The weights of the decoder's last convolution (mean image and label logits): where
    /// [`super::adversarial::adaptive_weight`] compares the likelihood's and the critic's
    /// gradients.
    pub fn head_weight(&self) -> &Tensor {
        &self.head.ws
    }

    /// Zero-mean, unit-variance noise `[n, 1, s, s]` with the measured speckle grain, of
    /// the given shape. A Gaussian field is drawn first from each point's generator, so
    /// its realisation does not depend on the shape asked for.
    fn speckle_noise(&self, z: &Tensor, seed: SpeckleSeed, shape: SpeckleShape) -> Tensor {
        let n = z.size()[0];
        let d = z.size()[1] as usize;
        let s = self.config.size as i64;
        let fields = shape.fields();
        let rows = super::data::to_vec(&z.detach());
        let mut values = vec![Vec::with_capacity((n * s * s) as usize); fields];
        for row in rows.chunks(d.max(1)) {
            use rand::SeedableRng;
            use rand_distr::Distribution;
            let bits = match seed {
                SpeckleSeed::PerPoint => latent_hash(row),
                SpeckleSeed::Common => COMMON_SPECKLE_SEED,
            };
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(bits);
            for field in &mut values {
                field.extend(
                    (0..s * s).map(|_| -> f32 { rand_distr::StandardNormal.sample(&mut rng) }),
                );
            }
        }
        let white = values
            .iter()
            .map(|field| {
                Tensor::from_slice(field)
                    .view([n, 1, s, s])
                    .to_device(z.device())
            })
            .collect();
        self.shaped_noise(white, shape)
    }

    /// White Gaussian `fields` (one, or two for [`SpeckleShape::LogRayleigh`]) given the
    /// measured grain and turned into zero-mean, unit-variance noise of `shape`.
    fn shaped_noise(&self, fields: Vec<Tensor>, shape: SpeckleShape) -> Tensor {
        debug_assert_eq!(fields.len(), shape.fields());
        let mut correlated = fields
            .iter()
            .map(|white| gaussian_blur(white, self.grain(), TapScale::UnitEnergy));
        let in_phase = correlated.next().expect("at least one field");
        match correlated.next() {
            None => in_phase,
            Some(quadrature) => {
                // Log of the envelope of a complex Gaussian field (unit variance per part):
                // R² is exponential with mean 2, so ln R has mean (ln 2 − γ) / 2 and
                // variance π² / 24. Standardised, it keeps the fitted spread's meaning.
                let log_envelope = (in_phase.square() + quadrature.square())
                    .clamp_min(1e-12)
                    .log()
                    * 0.5;
                let mean = (std::f64::consts::LN_2 - EULER_GAMMA) / 2.0;
                let sd = std::f64::consts::PI / 24f64.sqrt();
                (log_envelope - mean) / sd
            }
        }
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

    /// Image term (per [`ImageLikelihood`]) + speckle NLL + label cross-entropy (weighted
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
        let image_term = self
            .config
            .image_likelihood
            .error(&d.mean, &d.log_spread, image)
            / n;
        let speckle = match self.speckle {
            SpreadModel::PerPixel(_) => {
                let residual = (image - d.mean.detach()).pow_tensor_scalar(2);
                ((residual * (&d.log_spread * -2.0).exp() + &d.log_spread * 2.0) * 0.5)
                    .sum(Kind::Float)
                    / n
            }
            SpreadModel::Global(_) => image_term.zeros_like(),
        };
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
    /// horizontally and vertically pooled, as sums: (Σ r·r_next, Σ r²). Under
    /// [`ImageLikelihood::LogRayleigh`] the clipped pixels, whose residual is not
    /// speckle, are left out.
    pub fn residual_correlation(&self, image: &Tensor, labels: Option<&Tensor>) -> (f64, f64) {
        let _guard = tch::no_grad_guard();
        let d = self.forward(image, labels, false).decoding;
        let mut r = (image - &d.mean) * (-&d.log_spread).exp();
        if let SpreadModel::Global(_) = self.speckle {
            let unclipped = image.gt(CLIPPED).logical_and(&image.lt(1.0 - CLIPPED));
            r = (&r - r.masked_select(&unclipped).mean(Kind::Float))
                * unclipped.to_kind(Kind::Float);
        }
        let s = r.size()[3];
        let horizontal = (r.narrow(3, 0, s - 1) * r.narrow(3, 1, s - 1)).sum(Kind::Double);
        let vertical = (r.narrow(2, 0, s - 1) * r.narrow(2, 1, s - 1)).sum(Kind::Double);
        let lagged = (horizontal + vertical).double_value(&[]) / 2.0;
        let energy =
            r.pow_tensor_scalar(2).sum(Kind::Double).double_value(&[]) * (s - 1) as f64 / s as f64;
        (lagged, energy)
    }

    /// Stores the grain that gives white noise blurred by a Gaussian a lag-one correlation
    /// of `rho` (ρ = exp(−1 / (4σ²))). Under [`ImageLikelihood::LogRayleigh`] `rho` is
    /// the correlation of log-envelopes, which is weaker than that of the complex field
    /// they come from; the field's is found first.
    pub fn set_grain_from_correlation(&mut self, rho: f64) {
        let rho = match self.speckle {
            SpreadModel::PerPixel(_) => rho,
            SpreadModel::Global(_) => field_correlation_of_log_envelopes(rho),
        };
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

/// The distribution of the noise a decoded image's speckle is drawn from (zero mean, unit
/// variance, times the fitted spread).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SpeckleShape {
    /// Symmetric: bright and dark outliers alike (what the spread was fitted under).
    Gaussian,
    /// The log of a Rayleigh envelope, as log compression turns fully developed speckle
    /// into: a long tail of dark pixels and a short one of bright ones.
    LogRayleigh,
}

impl SpeckleShape {
    /// White Gaussian fields a noise of this shape is made from.
    fn fields(self) -> usize {
        match self {
            SpeckleShape::Gaussian => 1,
            SpeckleShape::LogRayleigh => 2,
        }
    }
}

/// The scale h a [`ImageLikelihood::LogRayleigh`] VAE starts from: 40 dB of dynamic range
/// on the grey scale gives (20 / ln 10) / 40 / 2 ≈ 0.11.
const INITIAL_LOG_RAYLEIGH_SCALE: f64 = 0.1;

/// The correlation |ρ| of a complex Gaussian field whose log-envelopes correlate by
/// `rho`: for exponential intensities whose correlation is |ρ|², the log-intensities
/// correlate by 6·Li₂(|ρ|²)/π² (Li₂ the dilogarithm), which is solved for |ρ| by bisection.
fn field_correlation_of_log_envelopes(rho: f64) -> f64 {
    let log_correlation = |field: f64| {
        let x = field * field;
        let dilog: f64 = (1..=20_000u32)
            .scan(1.0, |power, k| {
                *power *= x;
                Some(*power / f64::from(k * k))
            })
            .sum();
        6.0 * dilog / std::f64::consts::PI.powi(2)
    };
    let target = rho.clamp(0.0, 1.0);
    let (mut low, mut high) = (0.0, 1.0);
    for _ in 0..50 {
        let mid = 0.5 * (low + high);
        if log_correlation(mid) < target {
            low = mid;
        } else {
            high = mid;
        }
    }
    0.5 * (low + high)
}

/// The Euler–Mascheroni constant: minus the mean of the log of an exponential variate.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

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
    fn a_sidecar_without_the_loss_options_reads_as_the_loss_it_was_trained_with() {
        let mut json = serde_json::to_value(VaeConfig::new(32)).expect("serialise");
        let fields = json.as_object_mut().expect("object");
        fields.remove("label_weighting");
        fields.remove("image_likelihood");
        fields.remove("label_conditioned_image");
        fields.remove("polar_head");
        let config: VaeConfig = serde_json::from_value(json).expect("deserialise");
        assert_eq!(config.label_weighting, LabelWeighting::Uniform);
        assert_eq!(config.image_likelihood, ImageLikelihood::SquaredError);
        assert!(!config.label_conditioned_image);
        assert!(!config.polar_head);
        let weighted = VaeConfig {
            label_weighting: LabelWeighting::InverseSqrtFrequency,
            image_likelihood: ImageLikelihood::SpreadWeighted,
            label_conditioned_image: true,
            polar_head: true,
            ..VaeConfig::new(32)
        };
        let json = serde_json::to_string(&weighted).expect("serialise");
        assert!(json.contains("\"label_weighting\":\"inverse-sqrt-frequency\""));
        assert!(json.contains("\"image_likelihood\":\"spread-weighted\""));
        assert!(json.contains("\"label_conditioned_image\":true"));
        assert!(json.contains("\"polar_head\":true"));
        assert_eq!(
            serde_json::from_str::<VaeConfig>(&json).expect("read"),
            weighted
        );
    }

    #[test]
    fn the_spread_weighted_image_term_divides_each_error_by_its_floored_spread() {
        let image = Tensor::from_slice(&[0.1f32, 0.2, 0.3, 0.4]).view([1, 1, 2, 2]);
        let spreads = [1.0f32, 0.1, 0.001, 0.5];
        let log_spread = Tensor::from_slice(&spreads.map(f32::ln))
            .view([1, 1, 2, 2])
            .set_requires_grad(true);
        let mean = image.zeros_like().set_requires_grad(true);
        let squared = ImageLikelihood::SquaredError.error(&mean, &log_spread, &image);
        assert!((squared.double_value(&[]) - 0.3).abs() < 1e-6);
        // ½ (0.01 / 1 + 0.04 / 0.1 + 0.09 / 0.01 (the floor, not 0.001) + 0.16 / 0.5).
        let weighted = ImageLikelihood::SpreadWeighted.error(&mean, &log_spread, &image);
        assert!((weighted.double_value(&[]) - 4.865).abs() < 1e-4);
        weighted.backward();
        // The mean's gradient is its error over the floored spread; the spread gets none.
        let expected = Tensor::from_slice(&[-0.1f32, -2.0, -30.0, -0.8]).view([1, 1, 2, 2]);
        assert!(mean.grad().allclose(&expected, 1e-4, 1e-5, false));
        let grad = log_spread.grad();
        assert!(!grad.defined() || grad.abs().max().double_value(&[]) == 0.0);
    }

    #[test]
    fn the_laplace_image_term_pulls_every_pixel_alike_whatever_its_error() {
        let image = Tensor::from_slice(&[0.1f32, 0.2, 0.9, 0.4]).view([1, 1, 2, 2]);
        let log_spread = image.zeros_like().set_requires_grad(true);
        let mean = Tensor::from_slice(&[0.0f32, 0.25, 0.0, 0.4])
            .view([1, 1, 2, 2])
            .set_requires_grad(true);
        let laplace = ImageLikelihood::Laplace.error(&mean, &log_spread, &image);
        // 2 (0.1 + 0.05 + 0.9 + 0).
        assert!((laplace.double_value(&[]) - 2.1).abs() < 1e-5);
        laplace.backward();
        // The pixel 0.9 off pulls as hard as the one 0.1 off (a squared error would pull
        // nine times harder); the exact pixel does not pull.
        let expected = Tensor::from_slice(&[-2.0f32, 2.0, -2.0, 0.0]).view([1, 1, 2, 2]);
        assert!(mean.grad().allclose(&expected, 1e-5, 1e-6, false));
        let grad = log_spread.grad();
        assert!(!grad.defined() || grad.abs().max().double_value(&[]) == 0.0);
    }

    /// The value of a one-element tensor.
    fn scalar(t: impl std::borrow::Borrow<Tensor>) -> f64 {
        t.borrow().view([-1]).double_value(&[0])
    }

    /// `count` pixels of clipped log-compressed speckle, location `mu`, scale `h`.
    fn clipped_speckle(mu: f64, h: f64, count: usize, seed: u64) -> Tensor {
        use rand::SeedableRng;
        use rand_distr::Distribution;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let pixels: Vec<f32> = (0..count)
            .map(|_| {
                let v: f64 = rand_distr::Exp1.sample(&mut rng);
                let x = (mu + h * (v.ln() + EULER_GAMMA)).clamp(0.0, 1.0);
                ((x * 255.0).round() / 255.0) as f32
            })
            .collect();
        Tensor::from_slice(&pixels)
    }

    #[test]
    fn the_log_rayleigh_likelihood_recovers_location_and_scale_through_the_clipping() {
        // μ = 0.05, h = 0.1: about 29 % of the pixels are clipped to black, so a fit to
        // the unclipped pixels alone, or a median, would put μ far too high.
        let (mu, h) = (0.05, 0.1);
        let image = clipped_speckle(mu, h, 20_000, 7);
        let black = scalar(image.le(CLIPPED).to_kind(Kind::Float).mean(Kind::Float));
        assert!((0.25..0.33).contains(&black), "clipped share {black}");
        let location = Tensor::from_slice(&[0.3f32]).set_requires_grad(true);
        let log_scale = Tensor::from_slice(&[0.2f32.ln()]).set_requires_grad(true);
        let mut adam = tch::COptimizer::adam(0.02, 0.9, 0.999, 0.0, 1e-8, false).unwrap();
        adam.add_parameters(&location, 0).unwrap();
        adam.add_parameters(&log_scale, 0).unwrap();
        for _ in 0..1500 {
            adam.zero_grad().unwrap();
            log_rayleigh_nll(&image, &location, &log_scale)
                .mean(Kind::Float)
                .backward();
            adam.step().unwrap();
        }
        let fitted = (scalar(&location), scalar(log_scale.exp()));
        assert!((fitted.0 - mu).abs() < 0.01, "location {fitted:?}");
        assert!((fitted.1 - h).abs() < 0.005, "scale {fitted:?}");
        // White pixels count as mass above 1: bright speckle near white is fitted too.
        let bright = clipped_speckle(0.95, h, 20_000, 8);
        let at = |m: f64| {
            let nll = log_rayleigh_nll(
                &bright,
                &Tensor::from_slice(&[m as f32]),
                &Tensor::from_slice(&[(h as f32).ln()]),
            );
            scalar(nll.mean(Kind::Float))
        };
        assert!(
            at(0.95) < at(0.9) && at(0.95) < at(1.0),
            "{} {} {}",
            at(0.9),
            at(0.95),
            at(1.0)
        );
    }

    #[test]
    fn a_log_rayleigh_vae_fits_one_scale_and_samples_clipped_log_rayleigh_speckle() {
        let (vs, vae) = tiny_vae_of(VaeConfig {
            image_likelihood: ImageLikelihood::LogRayleigh,
            ..VaeConfig::new(32)
        });
        assert!(
            vs.variables()
                .keys()
                .any(|k| k.ends_with("speckle_log_scale"))
        );
        assert!(!vs.variables().keys().any(|k| k.contains("spread_head")));
        let z = Tensor::randn([4, 3], (Kind::Float, tch::Device::Cpu));
        let parts = vae.decode_parts(&z);
        // One spread for every pixel: h·π/√6 with h at its starting 0.1.
        let spread = parts.log_spread.exp();
        let expected = INITIAL_LOG_RAYLEIGH_SCALE * std::f64::consts::PI / 6f64.sqrt();
        assert!((scalar(spread.max()) - expected).abs() < 1e-5);
        assert!((scalar(spread.min()) - expected).abs() < 1e-5);
        let (low, high) = LOCATION_RANGE;
        assert!(scalar(parts.mean.min()) >= low && scalar(parts.mean.max()) <= high);
        let (image, _) = vae.decode(&z);
        assert!(scalar(image.min()) >= 0.0 && scalar(image.max()) <= 1.0);
        // The loss reaches the scale, and no speckle term is left over.
        let images = Tensor::rand([4, 1, 32, 32], (Kind::Float, tch::Device::Cpu));
        let labels = Tensor::zeros([4, 32, 32], (Kind::Int64, tch::Device::Cpu));
        let out = vae.forward(&images, Some(&labels), true);
        let loss = vae.loss(&out, &images, Some(&labels), None, 1.0);
        assert_eq!(scalar(&loss.speckle), 0.0);
        loss.total.backward();
        let log_scale = &vs.variables()["vae.speckle_log_scale"];
        assert!(scalar(log_scale.grad().abs().sum(Kind::Float)) > 0.0);
    }

    #[test]
    fn the_grain_of_log_envelopes_is_read_back_as_the_field_grain_that_made_them() {
        // Log-envelopes of a complex field blurred by σ correlate less than the field;
        // a log-Rayleigh VAE's grain must be the field's σ, or its samples come out finer.
        let (_vs, mut vae) = tiny_vae_of(VaeConfig {
            image_likelihood: ImageLikelihood::LogRayleigh,
            ..VaeConfig::new(32)
        });
        let field_grain = 0.9;
        let _ = tch::no_grad(|| vae.speckle_grain.fill_(field_grain));
        let z = Tensor::randn([64, 3], (Kind::Float, tch::Device::Cpu));
        let noise = vae.speckle_noise(&z, SpeckleSeed::PerPoint, SpeckleShape::LogRayleigh);
        let s = noise.size()[3];
        let lagged =
            scalar((noise.narrow(3, 0, s - 1) * noise.narrow(3, 1, s - 1)).mean(Kind::Float));
        let energy = scalar(noise.square().mean(Kind::Float));
        let log_rho = lagged / energy;
        let field_rho = (-1.0 / (4.0 * field_grain * field_grain)).exp();
        assert!(log_rho < field_rho - 0.1, "log {log_rho} field {field_rho}");
        vae.set_grain_from_correlation(log_rho);
        assert!(
            (vae.grain() - field_grain).abs() < 0.08,
            "grain {}",
            vae.grain()
        );
    }

    /// An untrained VAE at 32² with a latent of 3, quick to build.
    fn tiny_vae() -> (nn::VarStore, Vae) {
        tiny_vae_with(false)
    }

    /// [`tiny_vae`], with or without the label-conditioned mean image.
    fn tiny_vae_with(label_conditioned_image: bool) -> (nn::VarStore, Vae) {
        tiny_vae_of(VaeConfig {
            label_conditioned_image,
            ..VaeConfig::new(32)
        })
    }

    /// `config`'s options on a tiny architecture (width 4, latent 3, two components).
    fn tiny_vae_of(config: VaeConfig) -> (nn::VarStore, Vae) {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let config = VaeConfig {
            width: 4,
            latent_dim: 3,
            prior_components: 2,
            ..config
        };
        let vae = Vae::new(&vs.root(), config);
        (vs, vae)
    }

    #[test]
    fn a_label_conditioned_mean_takes_each_class_grey_from_the_decoded_label_map() {
        let (_vs, vae) = tiny_vae_with(true);
        let conv = vae
            .label_to_image
            .as_ref()
            .expect("a label-conditioned VAE");
        // The head's own mean logit is switched off and each class maps, through the
        // centre tap alone, to a logit of its own: the mean is then sigmoid(Σ p_k v_k).
        let logits = [-2.0f32, -1.0, 0.0, 1.0, 2.0];
        tch::no_grad(|| {
            let _ = vae.head.ws.get(0).zero_();
            if let Some(bias) = &vae.head.bs {
                let _ = bias.get(0).zero_();
            }
            let _ = conv.ws.shallow_clone().zero_();
            for (k, v) in logits.iter().enumerate() {
                let _ = conv
                    .ws
                    .get(0)
                    .get(k as i64)
                    .get(1)
                    .get(1)
                    .fill_(f64::from(*v));
            }
            if let Some(bias) = &conv.bs {
                let _ = bias.shallow_clone().zero_();
            }
        });
        let z = Tensor::from_slice(&[0.3f32, -0.7, 1.1]).view([1, 3]);
        let parts = vae.decode_parts(&z);
        let p = parts
            .label_logits
            .as_ref()
            .expect("label logits")
            .softmax(1, Kind::Float);
        let expected = (p * Tensor::from_slice(&logits).view([1, 5, 1, 1]))
            .sum_dim_intlist(1, true, Kind::Float)
            .sigmoid();
        assert!(parts.mean.allclose(&expected, 1e-5, 1e-6, false));
        assert!(tiny_vae_with(false).1.label_to_image.is_none());
    }

    #[test]
    fn in_training_the_image_term_does_not_reach_the_label_logits() {
        let (vs, vae) = tiny_vae_with(true);
        let z = Tensor::from_slice(&[0.3f32, -0.7, 1.1]).view([1, 3]);
        // Gradient of the mean image alone on the head's label rows (channels 1..6).
        let label_rows_grad = |training: bool| {
            vs.variables().values().for_each(|v| {
                let mut grad = v.grad();
                if grad.defined() {
                    let _ = grad.zero_();
                }
            });
            vae.decode_with(&z, training)
                .mean
                .sum(Kind::Float)
                .backward();
            vae.head
                .ws
                .grad()
                .narrow(0, 1, CLASSES)
                .abs()
                .sum(Kind::Float)
                .double_value(&[])
        };
        assert_eq!(label_rows_grad(true), 0.0);
        // When sampling (the loop's latent gradients), the image depends on the labels.
        assert!(label_rows_grad(false) > 0.0);
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
            let noise = vae.speckle_noise(&zs, SpeckleSeed::PerPoint, SpeckleShape::Gaussian);
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

    #[test]
    fn the_spread_scale_interpolates_between_the_mean_and_the_sample() {
        let (_vs, vae) = tiny_vae();
        let z = Tensor::from_slice(&[0.1f32, -0.2, 0.3]).view([1, 3]);
        let seed = SpeckleSeed::PerPoint;
        let sample = vae.decode(&z).0;
        let gaussian = SpeckleShape::Gaussian;
        assert!(
            vae.decode_with_spread(&z, seed, 1.0, gaussian)
                .0
                .equal(&sample)
        );
        let mean = vae.decode_parts(&z).mean.clamp(0.0, 1.0);
        assert!(
            vae.decode_with_spread(&z, seed, 0.0, gaussian)
                .0
                .equal(&mean)
        );
        let deviation = |scale: f64| {
            (vae.decode_with_spread(&z, seed, scale, gaussian).0 - &mean)
                .abs()
                .mean(Kind::Double)
                .double_value(&[])
        };
        assert!(0.0 < deviation(0.5) && deviation(0.5) < deviation(1.0));
    }

    #[test]
    fn log_rayleigh_speckle_is_standardised_and_skewed_towards_dark_pixels() {
        let (_vs, mut vae) = tiny_vae();
        let zs = Tensor::randn([64, 3], (Kind::Float, tch::Device::Cpu));
        let moments = |noise: &Tensor| {
            let values: Vec<f64> = Vec::<f32>::try_from(noise.flatten(0, -1))
                .unwrap()
                .into_iter()
                .map(f64::from)
                .collect();
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let skew = values.iter().map(|v| (v - mean).powi(3)).sum::<f64>() / n / var.powf(1.5);
            (mean, var, skew)
        };
        for rho in [0.0, 0.6] {
            vae.set_grain_from_correlation(rho);
            let shaped = vae.speckle_noise(&zs, SpeckleSeed::PerPoint, SpeckleShape::LogRayleigh);
            let (mean, var, skew) = moments(&shaped);
            // The log of an exponential variate has skewness −1.14; halving keeps it.
            assert!(
                mean.abs() < 0.05 && (var - 1.0).abs() < 0.1,
                "ρ {rho}: {mean} {var}"
            );
            assert!((-1.4..-0.9).contains(&skew), "ρ {rho}: skewness {skew}");
            let gaussian = vae.speckle_noise(&zs, SpeckleSeed::PerPoint, SpeckleShape::Gaussian);
            let (_, _, symmetric) = moments(&gaussian);
            assert!(
                symmetric.abs() < 0.1,
                "ρ {rho}: Gaussian skewness {symmetric}"
            );
        }
        // The shape leaves the decoded mean and the realisation's seed alone: the same z
        // decodes to the same pixels, and a different image than the Gaussian sample.
        let z = Tensor::from_slice(&[0.1f32, -0.2, 0.3]).view([1, 3]);
        let seed = SpeckleSeed::PerPoint;
        let shaped = |shape| vae.decode_with_spread(&z, seed, 1.0, shape).0;
        assert!(shaped(SpeckleShape::LogRayleigh).equal(&shaped(SpeckleShape::LogRayleigh)));
        assert!(!shaped(SpeckleShape::LogRayleigh).equal(&shaped(SpeckleShape::Gaussian)));
    }
}
