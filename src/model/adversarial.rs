//! A label-conditioned patch critic for fine-tuning the VAE's decoder adversarially.
//!
//! F trained on decoded samples stays about 1.4× worse than F trained on real frames
//! (docs/MODELS.md, TSTR). Blur, speckle amplitude and a sharper likelihood for the mean
//! were measured and do not close it; a pairing of decoded images with their real frames'
//! stress showed that part of the gap is the decoded *label map* not matching what its
//! image shows. The critic here judges small patches of an image *together with its label
//! map*: real frames with their annotations against decoded samples with their decoded
//! label maps. Fooling it asks the decoder for images that look like real B-mode frames
//! and show the tissue their label maps say, which is what the FEA labels and F learns.
//! (Patch critics: Isola et al., pix2pix, CVPR 2017; hinge loss and the adaptive weight:
//! Esser et al., VQGAN, CVPR 2021.)

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::vae::{CLASSES, halving_conv, same_size_conv};

/// Channels of the critic's first convolution.
const CRITIC_WIDTH: i64 = 32;

/// Largest adaptive weight: where the adversarial gradient vanishes the ratio of norms
/// would otherwise explode.
const MAX_ADAPTIVE_WEIGHT: f64 = 1e4;

/// A fully convolutional critic over (image, one-hot label map): one logit per patch of
/// about 22 pixels, `[n, 1, s/4, s/4]`. GroupNorm rather than BatchNorm, so that a real
/// and a decoded batch are judged alike. It owns its weights: it only exists while a VAE
/// is fine-tuned, and no checkpoint keeps it.
#[derive(Debug)]
pub struct PatchCritic {
    vs: nn::VarStore,
    net: nn::Sequential,
}

impl PatchCritic {
    /// A critic with fresh weights on `device`.
    pub fn new(device: tch::Device) -> PatchCritic {
        let vs = nn::VarStore::new(device);
        let p = vs.root() / "critic";
        let (down, same) = (halving_conv(), same_size_conv());
        let w = CRITIC_WIDTH;
        let net = nn::seq()
            .add(nn::conv2d(&p / "conv0", 1 + CLASSES, w, 4, down))
            .add_fn(|x| x.leaky_relu())
            .add(nn::conv2d(&p / "conv1", w, 2 * w, 4, down))
            .add(nn::group_norm(&p / "norm1", 8, 2 * w, Default::default()))
            .add_fn(|x| x.leaky_relu())
            .add(nn::conv2d(&p / "conv2", 2 * w, 2 * w, 3, same))
            .add(nn::group_norm(&p / "norm2", 8, 2 * w, Default::default()))
            .add_fn(|x| x.leaky_relu())
            .add(nn::conv2d(&p / "logits", 2 * w, 1, 3, same));
        PatchCritic { vs, net }
    }

    /// The critic's weights, for its optimiser.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Patch logits for images `[n, 1, s, s]` shown with label maps `[n, s, s]` (class
    /// indices); high means "a real frame with its annotation".
    pub fn logits(&self, image: &Tensor, labels: &Tensor) -> Tensor {
        let one_hot = labels
            .one_hot(CLASSES)
            .permute([0, 3, 1, 2])
            .to_kind(Kind::Float);
        self.net.forward(&Tensor::cat(&[image, &one_hot], 1))
    }
}

/// The critic's hinge loss: real patches pushed above +1, decoded ones below −1.
pub fn critic_hinge_loss(real: &Tensor, fake: &Tensor) -> Tensor {
    (real.neg() + 1.0).relu().mean(Kind::Float) + (fake + 1.0).relu().mean(Kind::Float)
}

/// The generator's side of the hinge game: raise the critic's logits on decoded patches.
pub fn generator_hinge_loss(fake: &Tensor) -> Tensor {
    -fake.mean(Kind::Float)
}

/// The weight that gives the adversarial term's gradient at `last_layer` the norm of the
/// reconstruction term's there (VQGAN's adaptive weight), detached. It keeps the critic's
/// pull in proportion to the likelihood without a hand-tuned scale, however the summed
/// per-pixel likelihood and the mean patch logit differ in size. Both losses must still
/// depend on `last_layer` through a graph that is kept for the training step's backward.
pub fn adaptive_weight(
    reconstruction: &Tensor,
    adversarial: &Tensor,
    last_layer: &Tensor,
) -> Result<f64, tch::TchError> {
    let norm = |loss: &Tensor| -> Result<f64, tch::TchError> {
        let grads = Tensor::f_run_backward(&[loss], &[last_layer], true, false)?;
        grads[0].f_norm()?.f_double_value(&[])
    };
    let reconstruction = norm(reconstruction)?;
    let adversarial = norm(adversarial)?;
    Ok((reconstruction / (adversarial + 1e-4)).clamp(0.0, MAX_ADAPTIVE_WEIGHT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn critic_scores_every_quarter_resolution_patch() {
        let critic = PatchCritic::new(Device::Cpu);
        let image = Tensor::rand([3, 1, 32, 32], (Kind::Float, Device::Cpu));
        let labels = Tensor::randint(CLASSES, [3, 32, 32], (Kind::Int64, Device::Cpu));
        assert_eq!(critic.logits(&image, &labels).size(), vec![3, 1, 8, 8]);
    }

    #[test]
    fn hinge_losses_vanish_only_when_the_critic_is_confident() {
        let confident_real = Tensor::from_slice(&[2.0f32, 1.5]);
        let confident_fake = Tensor::from_slice(&[-1.0f32, -3.0]);
        assert_eq!(
            critic_hinge_loss(&confident_real, &confident_fake).double_value(&[]),
            0.0
        );
        let unsure = Tensor::from_slice(&[0.0f32, 0.0]);
        assert!((critic_hinge_loss(&unsure, &unsure).double_value(&[]) - 2.0).abs() < 1e-6);
        assert!((generator_hinge_loss(&confident_fake).double_value(&[]) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn adaptive_weight_is_the_ratio_of_gradient_norms_at_the_layer() {
        let layer = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        // d/dw of 3·Σw² is 6w, norm 6·√5; of Σw it is 1, norm √2.
        let reconstruction = layer.pow_tensor_scalar(2).sum(Kind::Float) * 3.0;
        let adversarial = layer.sum(Kind::Float);
        let weight = adaptive_weight(&reconstruction, &adversarial, &layer).unwrap();
        let expected = 6.0 * 5f64.sqrt() / (2f64.sqrt() + 1e-4);
        assert!(
            (weight - expected).abs() < 1e-3,
            "{weight} against {expected}"
        );
        // The graph is kept: the step's own backward still runs.
        (reconstruction + adversarial).backward();
        assert!(layer.grad().defined());
    }
}
