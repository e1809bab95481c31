//! The target model F: a small U-Net mapping an IVUS image to its stress map, in units of
//! the luminal pressure (SPEC §4).

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Module};

/// Architecture hyper-parameters, stored in the checkpoint sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressorConfig {
    /// Working resolution (square); a multiple of 4.
    pub size: usize,
    /// Channels at full resolution (doubled at each of the two down-samplings).
    pub width: usize,
}

impl RegressorConfig {
    pub fn new(size: usize) -> RegressorConfig {
        RegressorConfig { size, width: 16 }
    }
}

fn double_conv(p: nn::Path, c_in: i64, c_out: i64) -> nn::Sequential {
    let same = nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    nn::seq()
        .add(nn::conv2d(&p / "a", c_in, c_out, 3, same))
        .add_fn(|x| x.relu())
        .add(nn::conv2d(&p / "b", c_out, c_out, 3, same))
        .add_fn(|x| x.relu())
}

/// Two-level U-Net with skip connections; weights under `regressor/`.
#[derive(Debug)]
pub struct Regressor {
    pub config: RegressorConfig,
    enc1: nn::Sequential,
    enc2: nn::Sequential,
    bottom: nn::Sequential,
    up2: nn::ConvTranspose2D,
    dec2: nn::Sequential,
    up1: nn::ConvTranspose2D,
    dec1: nn::Sequential,
    head: nn::Conv2D,
}

impl Regressor {
    pub fn new(root: &nn::Path, config: RegressorConfig) -> Regressor {
        let w = config.width as i64;
        let p = root / "regressor";
        let up = nn::ConvTransposeConfig {
            stride: 2,
            ..Default::default()
        };
        Regressor {
            config,
            enc1: double_conv(&p / "enc1", 1, w),
            enc2: double_conv(&p / "enc2", w, 2 * w),
            bottom: double_conv(&p / "bottom", 2 * w, 4 * w),
            up2: nn::conv_transpose2d(&p / "up2", 4 * w, 2 * w, 2, up),
            dec2: double_conv(&p / "dec2", 4 * w, 2 * w),
            up1: nn::conv_transpose2d(&p / "up1", 2 * w, w, 2, up),
            dec1: double_conv(&p / "dec1", 2 * w, w),
            head: nn::conv2d(&p / "head", w, 1, 1, Default::default()),
        }
    }

    /// Stress / pressure for images `[n, 1, s, s]`.
    pub fn forward(&self, image: &Tensor) -> Tensor {
        let e1 = self.enc1.forward(image);
        let e2 = self.enc2.forward(&e1.max_pool2d_default(2));
        let b = self.bottom.forward(&e2.max_pool2d_default(2));
        let d2 = self
            .dec2
            .forward(&Tensor::cat(&[self.up2.forward(&b), e2], 1));
        let d1 = self
            .dec1
            .forward(&Tensor::cat(&[self.up1.forward(&d2), e1], 1));
        self.head.forward(&d1)
    }

    /// Mean squared error, over solid pixels only when `solid` is given.
    pub fn loss(prediction: &Tensor, target: &Tensor, solid: Option<&Tensor>) -> Tensor {
        match solid {
            Some(mask) => {
                let squared = (prediction - target).pow_tensor_scalar(2) * mask;
                squared.sum(tch::Kind::Float) / mask.sum(tch::Kind::Float).clamp_min(1.0)
            }
            None => prediction.mse_loss(target, tch::Reduction::Mean),
        }
    }
}
