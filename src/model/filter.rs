//! Separable Gaussian smoothing of `[n, 1, s, s]` images, shared by the VAE's speckle
//! sampler (which colours white noise) and F's optional input blur (which removes the
//! fine grain a decoder cannot reproduce, so that F reads real and decoded images alike).

use tch::Tensor;

/// How the Gaussian taps are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapScale {
    /// Taps sum to 1: a smoothing filter that keeps the local mean (F's input).
    UnitSum,
    /// Taps have unit energy: filtered white noise keeps unit variance (speckle noise).
    UnitEnergy,
}

/// `images` `[n, 1, s, s]` convolved with a Gaussian of standard deviation `sigma` pixels,
/// edges reflected; differentiable. Returns the input unchanged for `sigma` below 0.3,
/// where the kernel would be a single tap.
pub fn gaussian_blur(images: &Tensor, sigma: f64, scale: TapScale) -> Tensor {
    if sigma < 0.3 {
        return images.shallow_clone();
    }
    let size = *images.size().last().unwrap_or(&1);
    let radius = ((3.0 * sigma).ceil() as i64).min((size - 1).max(1));
    let taps: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let norm = match scale {
        TapScale::UnitSum => taps.iter().sum::<f32>(),
        TapScale::UnitEnergy => taps.iter().map(|t| t * t).sum::<f32>().sqrt(),
    };
    let taps: Vec<f32> = taps.iter().map(|t| t / norm).collect();
    let k = taps.len() as i64;
    let kernel = Tensor::from_slice(&taps)
        .to_device(images.device())
        .to_kind(images.kind());
    let horizontal = images.reflection_pad2d([radius, radius, 0, 0]).conv2d(
        &kernel.view([1, 1, 1, k]),
        None::<Tensor>,
        1,
        0,
        1,
        1,
    );
    horizontal.reflection_pad2d([0, 0, radius, radius]).conv2d(
        &kernel.view([1, 1, k, 1]),
        None::<Tensor>,
        1,
        0,
        1,
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn unit_sum_keeps_a_constant_image_and_smooths_white_noise_by_the_gaussian_factor() {
        let flat = Tensor::full([1, 1, 32, 32], 0.4, (Kind::Float, tch::Device::Cpu));
        let blurred = gaussian_blur(&flat, 2.0, TapScale::UnitSum);
        assert!((blurred - 0.4).abs().max().double_value(&[]) < 1e-5);

        tch::manual_seed(3);
        let white = Tensor::randn([4, 1, 64, 64], (Kind::Float, tch::Device::Cpu));
        let sigma = 2.0;
        let variance = gaussian_blur(&white, sigma, TapScale::UnitSum)
            .var(true)
            .double_value(&[]);
        // White noise through a unit-sum 2-D Gaussian keeps 1 / (4πσ²) of its variance.
        let expected = 1.0 / (4.0 * std::f64::consts::PI * sigma * sigma);
        assert!(
            (variance / expected - 1.0).abs() < 0.15,
            "variance {variance}, expected {expected}"
        );
        let energy = gaussian_blur(&white, sigma, TapScale::UnitEnergy)
            .var(true)
            .double_value(&[]);
        assert!((energy - 1.0).abs() < 0.15, "unit-energy variance {energy}");
    }

    #[test]
    fn tiny_sigma_is_the_identity() {
        let x = Tensor::randn([2, 1, 8, 8], (Kind::Float, tch::Device::Cpu));
        let y = gaussian_blur(&x, 0.1, TapScale::UnitSum);
        assert_eq!((y - &x).abs().max().double_value(&[]), 0.0);
    }
}
