//! The VAE over (image, one-hot label map): a convolutional encoder to (μ, log σ²) and a
//! decoder back to an image and label-map logits (SPEC §4).

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::labels::Tissue;

/// Label classes the VAE models.
pub const CLASSES: i64 = Tissue::ALL.len() as i64;

/// Architecture hyper-parameters, stored in the checkpoint sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VaeConfig {
    /// Working resolution (square); a multiple of 8.
    pub size: usize,
    pub latent_dim: usize,
    /// Channels of the first convolution (doubled at each of the three down-samplings).
    pub width: usize,
    /// Weight of the KL term.
    pub beta: f64,
}

impl VaeConfig {
    pub fn new(size: usize) -> VaeConfig {
        VaeConfig {
            size,
            latent_dim: 16,
            width: 32,
            beta: 1.0,
        }
    }

    fn bottleneck(&self) -> (i64, i64) {
        (4 * self.width as i64, (self.size / 8) as i64)
    }
}

/// Encoder and decoder, their weights under `vae/` in a VarStore.
#[derive(Debug)]
pub struct Vae {
    pub config: VaeConfig,
    encoder: nn::Sequential,
    to_stats: nn::Linear,
    from_latent: nn::Linear,
    decoder: nn::Sequential,
}

/// One forward pass: reconstructions and the posterior.
#[derive(Debug)]
pub struct VaeOutput {
    /// `[n, 1, s, s]` in [0, 1].
    pub image: Tensor,
    /// `[n, 5, s, s]` class logits.
    pub label_logits: Tensor,
    pub mu: Tensor,
    pub logvar: Tensor,
}

/// Loss terms of one batch (per-sample sums, averaged over the batch).
#[derive(Debug)]
pub struct VaeLoss {
    pub total: Tensor,
    pub image: f64,
    pub labels: f64,
    pub kl: f64,
}

impl Vae {
    pub fn new(root: &nn::Path, config: VaeConfig) -> Vae {
        let w = config.width as i64;
        let down = nn::ConvConfig {
            stride: 2,
            padding: 1,
            ..Default::default()
        };
        let p = root / "vae";
        let mut encoder = nn::seq();
        for (k, (c_in, c_out)) in [(1 + CLASSES, w), (w, 2 * w), (2 * w, 4 * w)]
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
            .add(nn::conv2d(
                &p / "head",
                w,
                1 + CLASSES,
                3,
                nn::ConvConfig {
                    padding: 1,
                    ..Default::default()
                },
            ));
        Vae {
            config,
            encoder,
            to_stats,
            from_latent,
            decoder,
        }
    }

    /// (μ, log σ²) of images `[n, 1, s, s]` and labels `[n, s, s]`.
    pub fn encode(&self, image: &Tensor, labels: &Tensor) -> (Tensor, Tensor) {
        let one_hot = labels
            .one_hot(CLASSES)
            .permute([0, 3, 1, 2])
            .to_kind(Kind::Float);
        let x = Tensor::cat(&[image, &one_hot], 1);
        let stats = self
            .to_stats
            .forward(&self.encoder.forward(&x).flatten(1, -1));
        let parts = stats.chunk(2, 1);
        (parts[0].shallow_clone(), parts[1].shallow_clone())
    }

    /// Decodes latents `[n, d]` to (image in [0, 1], label logits).
    pub fn decode(&self, z: &Tensor) -> (Tensor, Tensor) {
        let (channels, side) = self.config.bottleneck();
        let h = self
            .from_latent
            .forward(z)
            .leaky_relu()
            .view([-1, channels, side, side]);
        let out = self.decoder.forward(&h);
        let image = out.narrow(1, 0, 1).sigmoid();
        let logits = out.narrow(1, 1, CLASSES);
        (image, logits)
    }

    /// Encode, sample with the reparameterisation trick when `sample`, decode.
    pub fn forward(&self, image: &Tensor, labels: &Tensor, sample: bool) -> VaeOutput {
        let (mu, logvar) = self.encode(image, labels);
        let z = if sample {
            &mu + (&logvar * 0.5).exp() * mu.randn_like()
        } else {
            mu.shallow_clone()
        };
        let (image, label_logits) = self.decode(&z);
        VaeOutput {
            image,
            label_logits,
            mu,
            logvar,
        }
    }

    /// Image MSE + label cross-entropy + β·KL, each summed per sample, mean over the batch.
    pub fn loss(&self, out: &VaeOutput, image: &Tensor, labels: &Tensor) -> VaeLoss {
        let n = image.size()[0] as f64;
        let image_term = out.image.mse_loss(image, tch::Reduction::Sum) / n;
        let label_term = out.label_logits.cross_entropy_loss::<Tensor>(
            labels,
            None,
            tch::Reduction::Sum,
            -100,
            0.0,
        ) / n;
        let kl = (&out.logvar + 1 - out.mu.pow_tensor_scalar(2) - out.logvar.exp())
            .sum(Kind::Float)
            * -0.5
            / n;
        let total = &image_term + &label_term + &kl * self.config.beta;
        VaeLoss {
            image: image_term.double_value(&[]),
            labels: label_term.double_value(&[]),
            kl: kl.double_value(&[]),
            total,
        }
    }
}
