//! A head that draws part of the VAE's mean image on the scan's own polar grid.
//!
//! An IVUS frame is rendered along scan lines from the catheter outwards: whatever blocks
//! the beam (calcium, the guide wire) darkens everything behind it on its line, so a
//! shadow is a wedge that runs to the edge of the field, and the catheter sheath and its
//! ring-down are rings at fixed radii. A convolutional decoder that up-samples from 8×8
//! on the Cartesian grid has to paint each thin wedge and ring pixel by pixel, and the
//! decoded images lack them (docs/MODELS.md, "Where issue 12 stands"). On a polar grid a
//! ring is a row and a wedge is a column, and a shadow is one cumulative sum along the
//! radius: the head resamples the decoder's features onto (radius, angle), predicts there
//! a non-negative attenuation per sample and a residual to the mean image's logit (plus a
//! learned profile by radius, for what sits at a fixed radius in every frame), and
//! resamples both back. The mean image becomes
//! `sigmoid(logit + residual) · exp(−Σ attenuation in front of the pixel)`.

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::vae::same_size_conv;

/// Scan lines of the polar grid per image side: 128 at 64², about 1.6 pixels apart at the
/// edge of the field.
const LINES_PER_SIDE: usize = 2;

/// Initial bias of the attenuation logit: softplus(−6) ≈ 0.0025 per sample, so the head
/// starts out casting no shadow to speak of and the decoder's image is its own.
const ATTENUATION_BIAS: f64 = -6.0;

/// grid_sample's bilinear interpolation.
const BILINEAR: i64 = 0;
/// grid_sample's padding that repeats the edge (corners of the image lie past the last
/// radius of the polar grid).
const BORDER: i64 = 1;

/// The polar head's weights and its two fixed resampling grids.
#[derive(Debug)]
pub struct PolarHead {
    conv: nn::Conv2D,
    radial_profile: Tensor,
    /// `[1, radii, lines, 2]`: where each polar sample lies in the Cartesian image.
    to_polar: Tensor,
    /// `[1, s, s, 2]`: where each Cartesian pixel lies in the angle-padded polar grid.
    to_cartesian: Tensor,
}

impl PolarHead {
    /// A head for `channels` decoder features at `size`², with weights under `p`.
    pub fn new(p: &nn::Path, channels: i64, size: usize) -> PolarHead {
        let config = nn::ConvConfig {
            padding: 0,
            ..same_size_conv()
        };
        let conv = nn::conv2d(p / "conv", channels, 2, 3, config);
        tch::no_grad(|| {
            if let Some(bias) = &conv.bs {
                let _ = bias.narrow(0, 0, 1).fill_(ATTENUATION_BIAS);
            }
        });
        let (radii, lines) = grid_shape(size);
        let radial_profile = p.zeros("radial_profile", &[1, 1, radii as i64, 1]);
        let device = p.device();
        PolarHead {
            conv,
            radial_profile,
            to_polar: polar_sampling_grid(size, device),
            to_cartesian: cartesian_sampling_grid(size, lines, device),
        }
    }

    /// (residual to the mean image's logit, transmittance in (0, 1]) at every pixel of
    /// `features` `[n, c, s, s]`, each `[n, 1, s, s]`.
    pub fn forward(&self, features: &Tensor) -> (Tensor, Tensor) {
        let n = features.size()[0];
        let polar = features.grid_sampler(
            &self.to_polar.expand([n, -1, -1, -1], false),
            BILINEAR,
            BORDER,
            false,
        );
        let out = self
            .conv
            .forward(&pad_around(&polar, 1).pad([0, 0, 1, 1], "replicate", None));
        let residual = out.narrow(1, 1, 1) + &self.radial_profile;
        let attenuation = out.narrow(1, 0, 1).softplus();
        let both = Tensor::cat(&[residual, transmittance(&attenuation)], 1);
        let grid = self.to_cartesian.expand([n, -1, -1, -1], false);
        let cartesian = pad_around(&both, 1).grid_sampler(&grid, BILINEAR, BORDER, false);
        (cartesian.narrow(1, 0, 1), cartesian.narrow(1, 1, 1))
    }
}

/// The share of the beam that reaches each sample of `[n, 1, radii, lines]` given the
/// attenuation of the samples in front of it on its line, not counting its own: the
/// surface that casts a shadow stays bright.
fn transmittance(attenuation: &Tensor) -> Tensor {
    (attenuation.cumsum(2, Kind::Float) - attenuation)
        .neg()
        .exp()
}

/// (radii, scan lines) of the polar grid at `size`²: one radius per pixel from the centre
/// to the edge of the field.
fn grid_shape(size: usize) -> (usize, usize) {
    (size / 2, LINES_PER_SIDE * size)
}

/// Pads `[n, c, radii, lines]` by `k` lines on each side with the lines from the other
/// side: the angle wraps round the catheter.
fn pad_around(polar: &Tensor, k: i64) -> Tensor {
    polar.pad([k, k, 0, 0], "circular", None)
}

/// Radius and angle of polar sample (`radius`, `line`), in units of the image's half-side
/// and radians.
fn polar_point(radius: usize, line: usize, size: usize) -> (f64, f64) {
    let (radii, lines) = grid_shape(size);
    (
        (radius as f64 + 0.5) / radii as f64,
        std::f64::consts::TAU * (line as f64 + 0.5) / lines as f64,
    )
}

fn polar_sampling_grid(size: usize, device: Device) -> Tensor {
    let (radii, lines) = grid_shape(size);
    let mut grid = Vec::with_capacity(radii * lines * 2);
    for radius in 0..radii {
        for line in 0..lines {
            let (r, theta) = polar_point(radius, line, size);
            grid.extend([(r * theta.cos()) as f32, (r * theta.sin()) as f32]);
        }
    }
    Tensor::from_slice(&grid)
        .view([1, radii as i64, lines as i64, 2])
        .to_device(device)
}

fn cartesian_sampling_grid(size: usize, lines: usize, device: Device) -> Tensor {
    let padded = (lines + 2) as f64;
    let mut grid = Vec::with_capacity(size * size * 2);
    for row in 0..size {
        for col in 0..size {
            let x = (col as f64 + 0.5) / size as f64 * 2.0 - 1.0;
            let y = (row as f64 + 0.5) / size as f64 * 2.0 - 1.0;
            let theta = y.atan2(x).rem_euclid(std::f64::consts::TAU);
            // Line l's centre is at θ = 2π(l + ½)/lines, column l + 1 of the padded grid.
            let column = theta / std::f64::consts::TAU * lines as f64 + 1.0;
            let r = x.hypot(y);
            grid.extend([(column / padded * 2.0 - 1.0) as f32, (r * 2.0 - 1.0) as f32]);
        }
    }
    Tensor::from_slice(&grid)
        .view([1, size as i64, size as i64, 2])
        .to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> (nn::VarStore, PolarHead) {
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let head = PolarHead::new(&(vs.root() / "polar"), 3, 32);
        (vs, head)
    }

    #[test]
    fn the_two_grids_map_a_field_to_polar_and_back() {
        // A smooth field resampled onto the polar grid and back is the field again,
        // within interpolation error, everywhere inside the field of view.
        let (_vs, head) = head();
        let coords = Tensor::arange(32, (Kind::Float, Device::Cpu)) / 31.0;
        let field = (coords.view([1, 1, 32, 1]) * 0.5 + coords.view([1, 1, 1, 32]) * 0.3)
            .expand([1, 1, 32, 32], false)
            .contiguous();
        let polar = field.grid_sampler(&head.to_polar, BILINEAR, BORDER, false);
        let back = pad_around(&polar, 1).grid_sampler(&head.to_cartesian, BILINEAR, BORDER, false);
        let inside = cartesian_radius(32).le(0.9);
        let error = (back - &field).abs().masked_select(&inside).max();
        assert!(error.double_value(&[]) < 0.03, "{error}");
    }

    fn cartesian_radius(size: i64) -> Tensor {
        let c = (Tensor::arange(size, (Kind::Float, Device::Cpu)) + 0.5) / size as f64 * 2.0 - 1.0;
        (c.view([1, 1, size, 1]).square() + c.view([1, 1, 1, size]).square()).sqrt()
    }

    #[test]
    fn a_shadow_darkens_only_what_lies_behind_it_on_its_scan_line() {
        // Attenuation put on one polar sample: the pixels farther out along that line are
        // dark, those in front of it and on the far side of the catheter are not.
        let (_vs, head) = head();
        let (radii, lines) = grid_shape(32);
        let mut attenuation = vec![0f32; radii * lines];
        for line in 0..8 {
            attenuation[6 * lines + line] = 5.0;
        }
        let attenuation = Tensor::from_slice(&attenuation).view([1, 1, radii as i64, lines as i64]);
        let polar = transmittance(&attenuation);
        assert_eq!(
            polar.double_value(&[0, 0, 6, 3]),
            1.0,
            "the surface stays bright"
        );
        assert!((polar.double_value(&[0, 0, 7, 3]) - (-5f64).exp()).abs() < 1e-6);
        assert_eq!(
            polar.double_value(&[0, 0, 15, 8]),
            1.0,
            "the next line is clear"
        );
        let transmittance =
            pad_around(&polar, 1).grid_sampler(&head.to_cartesian, BILINEAR, BORDER, false);
        let at = |row: i64, col: i64| transmittance.double_value(&[0, 0, row, col]);
        // Lines 0–7 span θ ∈ [0, 2π·8/64): just below the centre row, to the right.
        assert!(
            at(17, 28) < 0.05,
            "behind the attenuating ring: {}",
            at(17, 28)
        );
        assert!(at(17, 18) > 0.95, "in front of it: {}", at(17, 18));
        assert!(at(14, 4) > 0.95, "across the catheter: {}", at(14, 4));
    }

    #[test]
    fn a_fresh_head_casts_almost_no_shadow() {
        let (_vs, head) = head();
        let features = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu)) * 0.1;
        let (residual, transmittance) = head.forward(&features);
        assert_eq!(residual.size(), [2, 1, 32, 32]);
        let darkest = transmittance.min().double_value(&[]);
        assert!(darkest > 0.9 && darkest <= 1.0, "{darkest}");
    }
}
