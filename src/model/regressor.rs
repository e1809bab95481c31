//! The target model F: a U-Net mapping an IVUS image to its stress map, in units of the
//! luminal pressure (SPEC §4). Wall stress depends on the whole ring (thin caps and
//! eccentric lumens load each other), so the U-Net goes down to about 4×4 at the bottom,
//! where every unit sees the whole vessel. GroupNorm keeps training stable at that depth
//! and, unlike BatchNorm, makes a sample's prediction independent of its batch, which the
//! per-point latent gradients and per-sample losses of the loop rely on.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::data::FrameSet;
use super::filter::{TapScale, gaussian_blur};
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

/// How F's stress loss weighs the frames of a batch against each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FrameWeighting {
    /// Squared error in pressure units pooled over every solid pixel of the batch: a frame
    /// weighs about its peak stress squared and its solid area (what files without the
    /// field were trained with).
    #[default]
    Absolute,
    /// Each frame's mean squared error over its solid pixels divided by its own peak (p99)
    /// stress squared, averaged over frames and scaled by the training frames' mean peak
    /// squared: every frame counts alike relative to its peak, as SPEC §5's accuracy and
    /// R² count it.
    PeakRelative,
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
    /// Gaussian σ (pixels) of a fixed blur applied to image inputs before the first
    /// convolution; 0 reads the image as it is (and is what files without it mean). It
    /// removes the fine speckle grain that decoded samples do not reproduce, so F trained
    /// on decoded samples reads real frames the same way. Off by default: on validation it
    /// cost F on real frames more than it bought on prior draws (docs/MODELS.md).
    #[serde(default)]
    pub input_blur: f64,
    /// How the stress loss weighs frames (training only; recorded so a checkpoint says
    /// how it was made).
    #[serde(default)]
    pub frame_weighting: FrameWeighting,
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
            input_blur: 0.0,
            frame_weighting: FrameWeighting::Absolute,
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

    /// Whether `sigma` is an input blur F accepts: 0 to 8 pixels, a radius every working
    /// resolution can reflect.
    pub fn input_blur_is_valid(sigma: f64) -> bool {
        sigma.is_finite() && (0.0..=8.0).contains(&sigma)
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
        let mut x = match self.config.input {
            RegressorInput::Image => {
                gaussian_blur(input, self.config.input_blur, TapScale::UnitSum)
            }
            RegressorInput::LabelMap => input.shallow_clone(),
        };
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

    /// [`FrameWeighting::PeakRelative`]'s loss: each frame's mean squared error over its
    /// solid pixels times its weight `[n]` (the mean peak squared over its own), averaged
    /// over frames.
    pub fn frame_weighted_loss(
        prediction: &Tensor,
        target: &Tensor,
        solid: &Tensor,
        weights: &Tensor,
    ) -> Tensor {
        let dims = [1i64, 2, 3];
        let squared = (prediction - target).pow_tensor_scalar(2) * solid;
        let per_frame = squared.sum_dim_intlist(dims.as_slice(), false, Kind::Float)
            / solid
                .sum_dim_intlist(dims.as_slice(), false, Kind::Float)
                .clamp_min(1.0);
        (per_frame * weights).mean(Kind::Float)
    }
}

/// Per-frame weights of [`FrameWeighting::PeakRelative`] from each frame's peak (p99)
/// stress: the mean peak squared over the frame's own, so that the average frame keeps
/// the weight it has under the absolute loss. Frames without a positive peak (no solid
/// pixel, or no load) weigh 0.
pub fn peak_relative_weights(peaks: &[f64]) -> Vec<f32> {
    let loaded: Vec<f64> = peaks.iter().copied().filter(|p| *p > 0.0).collect();
    if loaded.is_empty() {
        return vec![0.0; peaks.len()];
    }
    let mean_square = loaded.iter().map(|p| p * p).sum::<f64>() / loaded.len() as f64;
    peaks
        .iter()
        .map(|&p| {
            if p > 0.0 {
                (mean_square / (p * p)) as f32
            } else {
                0.0
            }
        })
        .collect()
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
    fn sidecars_written_before_the_input_blur_read_as_no_blur_and_absolute_loss() {
        let older = r#"{"size": 64, "width": 16, "levels": 4, "input": "image", "tissue_weight": 1.0, "revision": 2}"#;
        let config: RegressorConfig = serde_json::from_str(older).unwrap();
        assert_eq!(config.input_blur, 0.0);
        assert_eq!(config.frame_weighting, FrameWeighting::Absolute);
        assert_eq!(config.revision, REGRESSOR_REVISION);
    }

    #[test]
    fn peak_relative_weights_keep_the_mean_square_and_skip_unloaded_frames() {
        let weights = peak_relative_weights(&[1.0, 3.0, 0.0]);
        assert_eq!(weights, vec![5.0, 5.0 / 9.0, 0.0]);
        assert_eq!(peak_relative_weights(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn frame_weighted_loss_counts_frames_alike_relative_to_their_peaks() {
        // Frame 1 is frame 0 scaled by 10, errors included: pooled, it carries 100 times
        // frame 0's error; weighted by its peak, exactly as much as frame 0.
        let frame: [f32; 4] = [1.0, 2.0, 0.0, 0.0];
        let guess: [f32; 4] = [2.0, 2.0, 5.0, 0.0];
        let scaled = |values: [f32; 4]| values.map(|v| v * 10.0);
        let target = Tensor::from_slice(&[frame, scaled(frame)].concat()).view([2, 1, 2, 2]);
        let prediction = Tensor::from_slice(&[guess, scaled(guess)].concat()).view([2, 1, 2, 2]);
        let solid = Tensor::from_slice(&[1.0f32, 1.0, 0.0, 1.0].repeat(2)).view([2, 1, 2, 2]);
        let weights = peak_relative_weights(&[2.0, 20.0]);
        let both = Regressor::frame_weighted_loss(
            &prediction,
            &target,
            &solid,
            &Tensor::from_slice(&weights),
        );
        // Frame 0: squared error 1 over 3 solid pixels, weight (4 + 400) / 2 / 4.
        assert!((both.double_value(&[]) - 50.5 / 3.0).abs() < 1e-4);
        let frame_zero_alone = Regressor::frame_weighted_loss(
            &prediction.narrow(0, 0, 1),
            &target.narrow(0, 0, 1),
            &solid.narrow(0, 0, 1),
            &Tensor::from_slice(&weights[..1]),
        );
        assert!((both.double_value(&[]) - frame_zero_alone.double_value(&[])).abs() < 1e-4);
        let pooled = Regressor::loss(&prediction, &target, Some(&solid));
        let pooled_zero_alone = Regressor::loss(
            &prediction.narrow(0, 0, 1),
            &target.narrow(0, 0, 1),
            Some(&solid.narrow(0, 0, 1)),
        );
        // Pooled: (1 + 100) / 6 against frame 0's own 1 / 3.
        assert!((pooled.double_value(&[]) - 101.0 / 6.0).abs() < 1e-4);
        assert!((pooled_zero_alone.double_value(&[]) - 1.0 / 3.0).abs() < 1e-4);
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
