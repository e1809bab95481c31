//! Pseudo-B-mode rendering: echogenicity on a polar scan-line grid, Rayleigh speckle,
//! point-spread blur, calcium and guidewire shadows, depth attenuation, catheter
//! ring-down, log compression, then scan conversion to the Cartesian image.

use std::f64::consts::TAU;

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use super::geometry::{Echo, Geometry};

/// Scan lines per frame (mechanical IVUS: about 256).
pub const SCAN_LINES: usize = 256;
/// Log-compression dynamic range in dB.
const DYNAMIC_RANGE_DB: f64 = 40.0;
/// Amplitude attenuation per mm of depth (≈ 0.8 dB/(MHz·cm) at 40 MHz, one way, halved
/// by time-gain compensation).
const ATTENUATION_PER_MM: f64 = 0.18;
/// Calcium reflects most at its leading surface; reverberation keeps the echo bright for
/// a short distance into it, decaying with this length.
const CALCIUM_DECAY_MM: f64 = 0.25;
/// Fraction of amplitude that survives behind calcium or the guidewire.
const SHADOW: f64 = 0.07;

fn echogenicity(echo: Echo) -> f64 {
    match echo {
        Echo::Catheter => 0.0,
        Echo::Lumen => 0.045,
        Echo::Intima => 0.7,
        Echo::Fibrous => 0.45,
        Echo::Media => 0.06,
        Echo::Lipid => 0.055,
        Echo::Calcium => 2.2,
        Echo::Adventitia => 0.8,
        Echo::Periadventitia => 0.3,
    }
}

/// Renders the frame's grey image (row-major `size`×`size`), field of view `fov_mm`.
pub fn render(geometry: &Geometry, size: usize, fov_mm: f64, rng: &mut impl Rng) -> Vec<u8> {
    let radius_mm = fov_mm / 2.0;
    let samples = (size * 3 / 4).max(64);
    let dr = radius_mm / samples as f64;
    let lines = SCAN_LINES;
    let guidewire = geometry
        .guidewire
        .as_ref()
        .map(|g| (g.angle_deg.to_radians(), g.distance_mm));

    // Smooth texture: slow random modulation of tissue brightness (heterogeneous plaque).
    let texture: Vec<[f64; 3]> = (0..4)
        .map(|_| {
            [
                rng.gen_range(0.05..0.2),
                rng.gen_range(0.0..TAU),
                rng.gen_range(1.0..4.0),
            ]
        })
        .collect();

    let radial_phase: Vec<(f64, f64)> = (0..samples)
        .map(|i| (3.0 * (i as f64 + 0.5) * dr).sin_cos())
        .collect();
    let mut re = vec![0.0f64; lines * samples];
    let mut im = vec![0.0f64; lines * samples];
    for line in 0..lines {
        let theta = TAU * line as f64 / lines as f64;
        let (c, s) = (theta.cos(), theta.sin());
        let mut shadow = 1.0;
        let mut calcium_depth = 0.0;
        // sin(kθ + φ + 3r) = sin(kθ + φ)·cos 3r + cos(kθ + φ)·sin 3r, per line and per sample.
        let line_phase: Vec<(f64, f64, f64)> = texture
            .iter()
            .map(|[a, phase, k]| {
                let (sin, cos) = (k * theta + phase).sin_cos();
                (*a, sin, cos)
            })
            .collect();
        let wire_here = guidewire.is_some_and(|(angle, _)| {
            super::geometry::wrap(theta - angle).abs()
                < (1.2f64).to_radians() + 0.5 * TAU / lines as f64
        });
        for (i, &(sin_r, cos_r)) in radial_phase.iter().enumerate() {
            let r = (i as f64 + 0.5) * dr;
            let p = [r * c, r * s];
            let echo = geometry.echo_at(p);
            let mut amplitude = echogenicity(echo);
            if echo == Echo::Periadventitia {
                // Perivascular tissue fades into the far field.
                let beyond = -geometry.eem.depth_inside(p) - geometry.adventitia_thickness_mm;
                amplitude *= 0.35 + 0.65 * (-beyond / 0.8).exp();
            }
            if echo == Echo::Calcium {
                amplitude *= (-calcium_depth / CALCIUM_DECAY_MM).exp();
                calcium_depth += dr;
            } else if calcium_depth > 0.0 {
                shadow = SHADOW;
            }
            if let (true, Some((_, distance))) = (wire_here, guidewire) {
                if (r - distance).abs() < 0.06 {
                    amplitude = 2.5;
                } else if r > distance + 0.06 {
                    shadow = shadow.min(SHADOW);
                }
            }
            if matches!(
                echo,
                Echo::Fibrous | Echo::Intima | Echo::Periadventitia | Echo::Adventitia
            ) {
                let modulation: f64 = line_phase
                    .iter()
                    .map(|(a, sin, cos)| a * (sin * cos_r + cos * sin_r))
                    .sum();
                amplitude *= 1.0 + modulation;
            }
            // Sheath reflection and ring-down bands just outside the catheter.
            let ring = r - geometry.catheter_radius_mm;
            if (0.0..0.05).contains(&ring) {
                amplitude = 1.6;
            } else if ring >= 0.05 {
                let band = 0.6 + 0.4 * (TAU * ring / 0.07).cos();
                amplitude += 0.8 * (-(ring - 0.05) / 0.12).exp() * band;
            }
            amplitude *= shadow * (-ATTENUATION_PER_MM * r).exp();
            let k = line * samples + i;
            let (n1, n2): (f64, f64) = (StandardNormal.sample(rng), StandardNormal.sample(rng));
            re[k] = amplitude * n1;
            im[k] = amplitude * n2;
        }
    }

    // Point-spread function: separable Gaussian, axial along samples, lateral across
    // lines (wrapping round the catheter). Normalised to unit energy so the envelope
    // keeps the echogenicity scale.
    let axial = gaussian_kernel(0.9);
    let lateral = gaussian_kernel(0.8);
    for field in [&mut re, &mut im] {
        blur_axial(field, lines, samples, &axial);
        blur_lateral(field, lines, samples, &lateral);
    }
    let reference = 1.6f64;
    let polar: Vec<f64> = re
        .iter()
        .zip(&im)
        .map(|(a, b)| {
            let envelope = a.hypot(*b) + 0.004;
            let db = 20.0 * (envelope / reference).log10();
            ((db + DYNAMIC_RANGE_DB) / DYNAMIC_RANGE_DB).clamp(0.0, 1.0)
        })
        .collect();

    scan_convert(&polar, lines, samples, dr, size, fov_mm)
}

fn gaussian_kernel(sigma: f64) -> Vec<f64> {
    let half = (3.0 * sigma).ceil() as i64;
    let weights: Vec<f64> = (-half..=half)
        .map(|k| (-(k as f64).powi(2) / (2.0 * sigma * sigma)).exp())
        .collect();
    let energy = weights.iter().map(|w| w * w).sum::<f64>().sqrt();
    weights.into_iter().map(|w| w / energy).collect()
}

fn blur_axial(field: &mut [f64], lines: usize, samples: usize, kernel: &[f64]) {
    let half = (kernel.len() / 2) as i64;
    let mut row = vec![0.0; samples];
    for line in 0..lines {
        let data = &mut field[line * samples..(line + 1) * samples];
        for (i, out) in row.iter_mut().enumerate() {
            *out = kernel
                .iter()
                .enumerate()
                .map(|(k, w)| {
                    let j = (i as i64 + k as i64 - half).clamp(0, samples as i64 - 1) as usize;
                    w * data[j]
                })
                .sum();
        }
        data.copy_from_slice(&row);
    }
}

fn blur_lateral(field: &mut [f64], lines: usize, samples: usize, kernel: &[f64]) {
    let half = (kernel.len() / 2) as i64;
    let source = field.to_vec();
    for line in 0..lines {
        for i in 0..samples {
            field[line * samples + i] = kernel
                .iter()
                .enumerate()
                .map(|(k, w)| {
                    let l = (line as i64 + k as i64 - half).rem_euclid(lines as i64) as usize;
                    w * source[l * samples + i]
                })
                .sum();
        }
    }
}

/// Bilinear scan conversion of the polar image onto the Cartesian grid; outside the
/// circular field of view is black.
fn scan_convert(
    polar: &[f64],
    lines: usize,
    samples: usize,
    dr: f64,
    size: usize,
    fov_mm: f64,
) -> Vec<u8> {
    let pixel_mm = fov_mm / size as f64;
    let centre = size as f64 / 2.0;
    let mut image = vec![0u8; size * size];
    for row in 0..size {
        for col in 0..size {
            let x = (col as f64 + 0.5 - centre) * pixel_mm;
            let y = (row as f64 + 0.5 - centre) * pixel_mm;
            let r = x.hypot(y) / dr - 0.5;
            if r > samples as f64 - 1.0 {
                continue;
            }
            let t = y.atan2(x).rem_euclid(TAU) / TAU * lines as f64;
            let (l0, ft) = (t.floor() as usize % lines, t.fract());
            let l1 = (l0 + 1) % lines;
            let r = r.max(0.0);
            let (i0, fr) = (r.floor() as usize, r.fract());
            let i1 = (i0 + 1).min(samples - 1);
            let at = |l: usize, i: usize| polar[l * samples + i];
            let value = (1.0 - ft) * ((1.0 - fr) * at(l0, i0) + fr * at(l0, i1))
                + ft * ((1.0 - fr) * at(l1, i0) + fr * at(l1, i1));
            image[row * size + col] = (value * 255.0).round() as u8;
        }
    }
    image
}
