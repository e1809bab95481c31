//! The target model F: a U-Net mapping an IVUS image to its stress map, in units of the
//! luminal pressure (docs/DESIGN.md §Models). Wall stress depends on the whole ring (thin caps and
//! eccentric lumens load each other), so the U-Net goes down to about 4×4 at the bottom,
//! where every unit sees the whole vessel. GroupNorm keeps training stable at that depth
//! and, unlike BatchNorm, makes a sample's prediction independent of its batch, which the
//! per-point latent gradients and per-sample losses of the loop rely on.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::data::FrameSet;
use super::vae::CLASSES;

/// The architecture revision this build writes; checkpoints of older revisions (the
/// two-level U-Net without normalisation) are refused on load.
pub const REGRESSOR_REVISION: u32 = 2;

/// What F reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RegressorInput {
    /// The grey IVUS image (the target model of the method).
    #[default]
    Image,
    /// The one-hot tissue label map: the oracle that sees the tissue perfectly, whose
    /// error is F's ceiling for a given architecture.
    LabelMap,
}

impl RegressorInput {
    fn channels(self) -> i64 {
        match self {
            RegressorInput::Image => 1,
            RegressorInput::LabelMap => CLASSES,
        }
    }
}

/// Architecture hyper-parameters, stored in the checkpoint sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressorConfig {
    /// Working resolution (square); a multiple of 4.
    pub size: usize,
    /// Channels at full resolution (doubled at each down-sampling, up to 8×).
    pub width: usize,
    /// Down-samplings; see [`RegressorConfig::levels_for`] (absent in older files, whose
    /// revision is refused).
    #[serde(default)]
    pub levels: usize,
    #[serde(default)]
    pub input: RegressorInput,
    /// Weight of the auxiliary tissue cross-entropy (per pixel) beside the stress error
    /// (per solid pixel, in pressure² units) in the training loss; 0 trains on stress alone.
    #[serde(default = "default_tissue_weight")]
    pub tissue_weight: f64,
    /// Architecture revision ([`REGRESSOR_REVISION`] for checkpoints written now; absent,
    /// hence 0, in checkpoints of older builds).
    #[serde(default)]
    pub revision: u32,
}

impl RegressorConfig {
    /// The default F at `size`² reading images.
    pub fn new(size: usize) -> RegressorConfig {
        RegressorConfig {
            size,
            width: 16,
            levels: RegressorConfig::levels_for(size),
            input: RegressorInput::Image,
            tissue_weight: default_tissue_weight(),
            revision: REGRESSOR_REVISION,
        }
    }

    /// The most down-samplings that divide `size` exactly and leave at least 4×4 at the
    /// bottom (4 at 64², 5 at 128²); at least 1.
    pub fn levels_for(size: usize) -> usize {
        let mut levels = 0;
        while size.is_multiple_of(1 << (levels + 1)) && size >> (levels + 1) >= 4 {
            levels += 1;
        }
        levels.max(1)
    }

    fn channels(&self, level: usize) -> i64 {
        (self.width << level.min(3)) as i64
    }
}

fn default_tissue_weight() -> f64 {
    1.0
}

/// Groups for GroupNorm: 8 channels per group, at least one group.
fn groups(channels: i64) -> i64 {
    (channels / 8).max(1)
}

/// conv 3×3 → GroupNorm → ReLU, twice.
fn double_conv(p: nn::Path, c_in: i64, c_out: i64) -> nn::Sequential {
    let same = nn::ConvConfig {
        padding: 1,
        bias: false,
        ..Default::default()
    };
    nn::seq()
        .add(nn::conv2d(&p / "a", c_in, c_out, 3, same))
        .add(nn::group_norm(
            &p / "norm_a",
            groups(c_out),
            c_out,
            Default::default(),
        ))
        .add_fn(|x| x.relu())
        .add(nn::conv2d(&p / "b", c_out, c_out, 3, same))
        .add(nn::group_norm(
            &p / "norm_b",
            groups(c_out),
            c_out,
            Default::default(),
        ))
        .add_fn(|x| x.relu())
}

/// U-Net with skip connections; weights under `regressor/`.
#[derive(Debug)]
pub struct Regressor {
    pub config: RegressorConfig,
    /// One block per resolution, full resolution first.
    encoders: Vec<nn::Sequential>,
    bottom: nn::Sequential,
    /// Up-sampling and decoder block per level, deepest first.
    ups: Vec<nn::ConvTranspose2D>,
    decoders: Vec<nn::Sequential>,
    head: nn::Conv2D,
    /// Tissue logits from the same features: an auxiliary task that teaches the network
    /// to see lipid, calcium and fibrous tissue in the speckle, which is most of what
    /// separates F(image) from the oracle that is given the label map.
    tissue_head: nn::Conv2D,
}

impl Regressor {
    pub fn new(root: &nn::Path, config: RegressorConfig) -> Regressor {
        let p = root / "regressor";
        let up = nn::ConvTransposeConfig {
            stride: 2,
            ..Default::default()
        };
        let levels = config.levels;
        let mut encoders = Vec::with_capacity(levels);
        let mut c_in = config.input.channels();
        for level in 0..levels {
            let c = config.channels(level);
            encoders.push(double_conv(&p / format!("enc{level}"), c_in, c));
            c_in = c;
        }
        let bottom_channels = config.channels(levels);
        let bottom = double_conv(&p / "bottom", c_in, bottom_channels);
        let mut ups = Vec::with_capacity(levels);
        let mut decoders = Vec::with_capacity(levels);
        let mut below = bottom_channels;
        for level in (0..levels).rev() {
            let c = config.channels(level);
            ups.push(nn::conv_transpose2d(
                &p / format!("up{level}"),
                below,
                c,
                2,
                up,
            ));
            decoders.push(double_conv(&p / format!("dec{level}"), 2 * c, c));
            below = c;
        }
        Regressor {
            config,
            encoders,
            bottom,
            ups,
            decoders,
            head: nn::conv2d(&p / "head", below, 1, 1, Default::default()),
            tissue_head: nn::conv2d(&p / "tissue_head", below, CLASSES, 1, Default::default()),
        }
    }

    /// Stress / pressure for inputs `[n, c, s, s]` (see [`Regressor::input_batch`]).
    pub fn forward(&self, input: &Tensor) -> Tensor {
        self.head.forward(&self.features(input))
    }

    /// Stress / pressure and tissue logits `[n, 5, s, s]`, for training.
    pub fn forward_with_tissue(&self, input: &Tensor) -> (Tensor, Tensor) {
        let features = self.features(input);
        (
            self.head.forward(&features),
            self.tissue_head.forward(&features),
        )
    }

    /// The last decoder block's features at full resolution.
    fn features(&self, input: &Tensor) -> Tensor {
        let mut skips = Vec::with_capacity(self.encoders.len());
        let mut x = input.shallow_clone();
        for encoder in &self.encoders {
            let e = encoder.forward(&x);
            x = e.max_pool2d_default(2);
            skips.push(e);
        }
        x = self.bottom.forward(&x);
        for ((up, decoder), skip) in self.ups.iter().zip(&self.decoders).zip(skips.iter().rev()) {
            x = decoder.forward(&Tensor::cat(&[up.forward(&x), skip.shallow_clone()], 1));
        }
        x
    }

    /// F's input for `indices` of `data`: the images, or the one-hot label maps for the
    /// oracle.
    pub fn input_batch(&self, data: &FrameSet, indices: &[usize], device: tch::Device) -> Tensor {
        match self.config.input {
            RegressorInput::Image => data.image_batch(indices, device),
            RegressorInput::LabelMap => data
                .label_batch(indices, device)
                .one_hot(CLASSES)
                .permute([0, 3, 1, 2])
                .to_kind(Kind::Float),
        }
    }

    /// Mean squared error, over solid pixels only when `solid` is given.
    pub fn loss(prediction: &Tensor, target: &Tensor, solid: Option<&Tensor>) -> Tensor {
        match solid {
            Some(mask) => {
                let squared = (prediction - target).pow_tensor_scalar(2) * mask;
                squared.sum(Kind::Float) / mask.sum(Kind::Float).clamp_min(1.0)
            }
            None => prediction.mse_loss(target, tch::Reduction::Mean),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_reach_four_by_four_or_stop_where_the_size_no_longer_halves() {
        assert_eq!(RegressorConfig::levels_for(64), 4);
        assert_eq!(RegressorConfig::levels_for(128), 5);
        assert_eq!(RegressorConfig::levels_for(32), 3);
        assert_eq!(RegressorConfig::levels_for(48), 3);
        assert_eq!(RegressorConfig::levels_for(20), 2);
    }

    #[test]
    fn oracle_reads_one_hot_label_maps_and_keeps_the_output_shape() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let config = RegressorConfig {
            input: RegressorInput::LabelMap,
            width: 4,
            ..RegressorConfig::new(32)
        };
        let model = Regressor::new(&vs.root(), config);
        let labels = vec![crate::labels::LabelMap::new(32, 32, vec![2; 32 * 32]).unwrap(); 2];
        let data = FrameSet {
            size: 32,
            images: vec![vec![0; 32 * 32]; 2],
            labels,
            stress: None,
        };
        let input = model.input_batch(&data, &[0, 1], tch::Device::Cpu);
        assert_eq!(input.size(), [2, CLASSES, 32, 32]);
        assert_eq!(input.sum(Kind::Float).double_value(&[]), 2.0 * 32.0 * 32.0);
        assert_eq!(model.forward(&input).size(), [2, 1, 32, 32]);
    }
}
