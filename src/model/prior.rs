//! The generator's prior for new latent points: a Gaussian mixture fitted by EM to the
//! encoder means of the training frames (the aggregate posterior). A VAE's encoder means
//! fill a thinner, correlated region than N(0, I); most N(0, I) draws decode to blobs that
//! are not vessels, while draws from this fit land where real frames live. Plain data, so
//! the sampling loop can draw from it with its own seeded generator.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// A full-covariance Gaussian mixture in latent space.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentPrior {
    /// Mixture weights, summing to 1.
    pub weights: Vec<f64>,
    /// Component means, each of the latent dimension.
    pub means: Vec<Vec<f64>>,
    /// Lower Cholesky factor L of each covariance (Σ = L Lᵀ), row-major d×d.
    pub scale_tril: Vec<Vec<f64>>,
}

/// EM iterations after the k-means start.
const EM_ITERATIONS: usize = 60;
const KMEANS_ITERATIONS: usize = 15;
/// Ridge added to every covariance, relative to the data's mean variance: keeps a
/// component with few points from collapsing onto a subspace.
const RIDGE: f64 = 1e-3;

impl LatentPrior {
    /// The standard normal N(0, I) in `dim` dimensions (one component).
    pub fn standard(dim: usize) -> LatentPrior {
        LatentPrior {
            weights: vec![1.0],
            means: vec![vec![0.0; dim]],
            scale_tril: vec![identity(dim)],
        }
    }

    pub fn dim(&self) -> usize {
        self.means.first().map_or(0, Vec::len)
    }

    pub fn components(&self) -> usize {
        self.weights.len()
    }

    /// The aggregate posterior itself: the equal-weight mixture of the encoder posteriors
    /// N(μ, diag σ²) given as (μ, σ) pairs. It draws where real frames' codes are and in
    /// their proportions, which a mixture of a few fitted components only approximates.
    /// No posteriors, or posteriors of unequal or empty dimension, are an error.
    pub fn from_posteriors(posteriors: &[(Vec<f32>, Vec<f32>)]) -> Result<LatentPrior, String> {
        let dim = posteriors.first().map_or(0, |(mu, _)| mu.len());
        if dim == 0 {
            return Err("an aggregate-posterior prior needs at least one posterior".to_string());
        }
        if posteriors
            .iter()
            .any(|(mu, sigma)| mu.len() != dim || sigma.len() != dim)
        {
            return Err("posteriors of unequal dimension".to_string());
        }
        let n = posteriors.len();
        let diagonal = |sigma: &[f32]| {
            let mut l = vec![0.0; dim * dim];
            for (i, s) in sigma.iter().enumerate() {
                l[i * dim + i] = f64::from(*s);
            }
            l
        };
        Ok(LatentPrior {
            weights: vec![1.0 / n as f64; n],
            means: posteriors
                .iter()
                .map(|(mu, _)| mu.iter().map(|&m| f64::from(m)).collect())
                .collect(),
            scale_tril: posteriors
                .iter()
                .map(|(_, sigma)| diagonal(sigma))
                .collect(),
        })
    }

    /// Fits `components` Gaussians to `points` (k-means++ start, then EM), seeded.
    /// Fewer points than components, or points of unequal length, are an error.
    pub fn fit(points: &[Vec<f32>], components: usize, seed: u64) -> Result<LatentPrior, String> {
        let dim = points.first().map_or(0, Vec::len);
        if dim == 0 || components == 0 || points.len() < 2 * components {
            return Err(format!(
                "a {components}-component latent prior needs at least {} points, got {}",
                2 * components,
                points.len()
            ));
        }
        if points.iter().any(|p| p.len() != dim) {
            return Err("latent points of unequal dimension".to_string());
        }
        let x: Vec<Vec<f64>> = points
            .iter()
            .map(|p| p.iter().map(|&v| f64::from(v)).collect())
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ridge = RIDGE * mean_variance(&x).max(1e-12);
        let centres = kmeans(&x, components, &mut rng);
        // Responsibilities from the hard k-means assignment, then EM.
        let mut resp: Vec<Vec<f64>> = x
            .iter()
            .map(|p| {
                let nearest = nearest(p, &centres);
                (0..components)
                    .map(|k| if k == nearest { 1.0 } else { 0.0 })
                    .collect()
            })
            .collect();
        let mut prior = LatentPrior::standard(dim);
        for _ in 0..EM_ITERATIONS {
            prior = maximise(&x, &resp, ridge, &mut rng);
            resp = prior.responsibilities(&x);
        }
        Ok(prior)
    }

    /// Mean log-density of `points` under the mixture (nats per point).
    pub fn mean_log_likelihood(&self, points: &[Vec<f32>]) -> f64 {
        let x: Vec<Vec<f64>> = points
            .iter()
            .map(|p| p.iter().map(|&v| f64::from(v)).collect())
            .collect();
        let total: f64 = x
            .iter()
            .map(|p| log_sum_exp(&self.component_log_densities(p)))
            .sum();
        total / x.len().max(1) as f64
    }

    /// One draw: a component by weight, then μ + L ε.
    pub fn sample(&self, rng: &mut impl Rng) -> Vec<f32> {
        let u: f64 = rng.r#gen();
        let mut k = 0;
        let mut acc = self.weights[0];
        while u > acc && k + 1 < self.weights.len() {
            k += 1;
            acc += self.weights[k];
        }
        let dim = self.dim();
        let eps: Vec<f64> = (0..dim).map(|_| StandardNormal.sample(rng)).collect();
        let l = &self.scale_tril[k];
        (0..dim)
            .map(|i| {
                let offset: f64 = (0..=i).map(|j| l[i * dim + j] * eps[j]).sum();
                (self.means[k][i] + offset) as f32
            })
            .collect()
    }

    /// log(w_k · N(p; μ_k, Σ_k)) for every component.
    fn component_log_densities(&self, p: &[f64]) -> Vec<f64> {
        let dim = p.len();
        let log_2pi = (2.0 * std::f64::consts::PI).ln();
        (0..self.components())
            .map(|k| {
                let l = &self.scale_tril[k];
                let diff: Vec<f64> = p.iter().zip(&self.means[k]).map(|(a, b)| a - b).collect();
                let y = forward_substitute(l, &diff);
                let mahalanobis: f64 = y.iter().map(|v| v * v).sum();
                let log_det: f64 = (0..dim).map(|i| l[i * dim + i].ln()).sum::<f64>() * 2.0;
                self.weights[k].max(1e-300).ln()
                    - 0.5 * (dim as f64 * log_2pi + log_det + mahalanobis)
            })
            .collect()
    }

    fn responsibilities(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        x.iter()
            .map(|p| {
                let logs = self.component_log_densities(p);
                let total = log_sum_exp(&logs);
                logs.iter().map(|l| (l - total).exp()).collect()
            })
            .collect()
    }
}

fn identity(dim: usize) -> Vec<f64> {
    let mut m = vec![0.0; dim * dim];
    for i in 0..dim {
        m[i * dim + i] = 1.0;
    }
    m
}

fn mean_variance(x: &[Vec<f64>]) -> f64 {
    let dim = x[0].len();
    let n = x.len() as f64;
    (0..dim)
        .map(|j| {
            let mean = x.iter().map(|p| p[j]).sum::<f64>() / n;
            x.iter().map(|p| (p[j] - mean).powi(2)).sum::<f64>() / n
        })
        .sum::<f64>()
        / dim as f64
}

fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

fn nearest(p: &[f64], centres: &[Vec<f64>]) -> usize {
    centres
        .iter()
        .enumerate()
        .map(|(k, c)| (k, squared_distance(p, c)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(0, |(k, _)| k)
}

/// k-means++ seeding and Lloyd iterations.
fn kmeans(x: &[Vec<f64>], k: usize, rng: &mut impl Rng) -> Vec<Vec<f64>> {
    let mut centres = vec![x[rng.gen_range(0..x.len())].clone()];
    while centres.len() < k {
        let distances: Vec<f64> = x
            .iter()
            .map(|p| squared_distance(p, &centres[nearest(p, &centres)]))
            .collect();
        let total: f64 = distances.iter().sum();
        let mut target = rng.r#gen::<f64>() * total;
        let mut chosen = x.len() - 1;
        for (i, d) in distances.iter().enumerate() {
            if target < *d {
                chosen = i;
                break;
            }
            target -= d;
        }
        centres.push(x[chosen].clone());
    }
    for _ in 0..KMEANS_ITERATIONS {
        let mut sums = vec![vec![0.0; x[0].len()]; k];
        let mut counts = vec![0usize; k];
        for p in x {
            let c = nearest(p, &centres);
            counts[c] += 1;
            for (s, v) in sums[c].iter_mut().zip(p) {
                *s += v;
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                centres[c] = sums[c].iter().map(|s| s / counts[c] as f64).collect();
            }
        }
    }
    centres
}

/// The M step: weights, means and ridged covariances from responsibilities. A component
/// that lost all its points restarts on a random point with the data's spread.
fn maximise(x: &[Vec<f64>], resp: &[Vec<f64>], ridge: f64, rng: &mut impl Rng) -> LatentPrior {
    let n = x.len();
    let dim = x[0].len();
    let k = resp[0].len();
    let mut weights = Vec::with_capacity(k);
    let mut means = Vec::with_capacity(k);
    let mut scale_tril = Vec::with_capacity(k);
    for c in 0..k {
        let mass: f64 = resp.iter().map(|r| r[c]).sum();
        if mass < 1e-6 * n as f64 {
            weights.push(1.0 / n as f64);
            means.push(x[rng.gen_range(0..n)].clone());
            let spread = identity(dim)
                .iter()
                .map(|v| v * mean_variance(x).sqrt())
                .collect();
            scale_tril.push(spread);
            continue;
        }
        let mean: Vec<f64> = (0..dim)
            .map(|j| x.iter().zip(resp).map(|(p, r)| r[c] * p[j]).sum::<f64>() / mass)
            .collect();
        let mut cov = vec![0.0; dim * dim];
        for (p, r) in x.iter().zip(resp) {
            let w = r[c];
            if w < 1e-12 {
                continue;
            }
            for i in 0..dim {
                let di = p[i] - mean[i];
                for j in 0..=i {
                    cov[i * dim + j] += w * di * (p[j] - mean[j]);
                }
            }
        }
        for i in 0..dim {
            for j in 0..=i {
                cov[i * dim + j] /= mass;
                cov[j * dim + i] = cov[i * dim + j];
            }
            cov[i * dim + i] += ridge;
        }
        weights.push(mass / n as f64);
        means.push(mean);
        scale_tril.push(cholesky(&cov, dim));
    }
    let total: f64 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= total);
    LatentPrior {
        weights,
        means,
        scale_tril,
    }
}

/// Lower Cholesky factor of a symmetric positive-definite matrix (row-major); the ridge
/// keeps the pivots positive, and a non-positive pivot is clamped rather than failing.
fn cholesky(a: &[f64], dim: usize) -> Vec<f64> {
    let mut l = vec![0.0; dim * dim];
    for i in 0..dim {
        for j in 0..=i {
            let s: f64 = (0..j).map(|m| l[i * dim + m] * l[j * dim + m]).sum();
            if i == j {
                l[i * dim + i] = (a[i * dim + i] - s).max(1e-12).sqrt();
            } else {
                l[i * dim + j] = (a[i * dim + j] - s) / l[j * dim + j];
            }
        }
    }
    l
}

/// Solves L y = b for lower-triangular L.
fn forward_substitute(l: &[f64], b: &[f64]) -> Vec<f64> {
    let dim = b.len();
    let mut y = vec![0.0; dim];
    for i in 0..dim {
        let s: f64 = (0..i).map(|j| l[i * dim + j] * y[j]).sum();
        y[i] = (b[i] - s) / l[i * dim + i];
    }
    y
}

fn log_sum_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two well-separated correlated clusters in 2-D.
    fn clusters(n: usize, rng: &mut impl Rng) -> Vec<Vec<f32>> {
        (0..n)
            .map(|i| {
                let a: f64 = StandardNormal.sample(rng);
                let b: f64 = StandardNormal.sample(rng);
                let (cx, cy) = if i % 2 == 0 { (-5.0, 0.0) } else { (5.0, 3.0) };
                vec![(cx + a) as f32, (cy + 0.9 * a + 0.2 * b) as f32]
            })
            .collect()
    }

    #[test]
    fn the_aggregate_posterior_draws_each_posterior_equally_with_its_own_spread() {
        let posteriors = vec![
            (vec![-10.0f32, 0.0], vec![1.0f32, 0.1]),
            (vec![10.0, 5.0], vec![0.1, 2.0]),
        ];
        let prior = LatentPrior::from_posteriors(&posteriors).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let draws: Vec<Vec<f32>> = (0..4000).map(|_| prior.sample(&mut rng)).collect();
        let (left, right): (Vec<_>, Vec<_>) = draws.iter().partition(|z| z[0] < 0.0);
        assert!((left.len() as f64 / 4000.0 - 0.5).abs() < 0.03);
        let sd = |zs: &[&Vec<f32>], axis: usize, centre: f32| {
            (zs.iter().map(|z| (z[axis] - centre).powi(2)).sum::<f32>() / zs.len() as f32).sqrt()
        };
        assert!((sd(&left, 0, -10.0) - 1.0).abs() < 0.1);
        assert!((sd(&left, 1, 0.0) - 0.1).abs() < 0.01);
        assert!((sd(&right, 1, 5.0) - 2.0).abs() < 0.2);
        assert!(LatentPrior::from_posteriors(&[]).is_err());
        assert!(LatentPrior::from_posteriors(&[(vec![0.0], vec![1.0, 1.0])]).is_err());
    }

    #[test]
    fn recovers_two_correlated_clusters() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let points = clusters(2000, &mut rng);
        let prior = LatentPrior::fit(&points, 2, 1).unwrap();
        let mut order: Vec<usize> = (0..2).collect();
        order.sort_by(|&a, &b| prior.means[a][0].total_cmp(&prior.means[b][0]));
        let (left, right) = (order[0], order[1]);
        assert!((prior.means[left][0] + 5.0).abs() < 0.1);
        assert!((prior.means[right][1] - 3.0).abs() < 0.1);
        assert!((prior.weights[left] - 0.5).abs() < 0.02);
        // Σ = L Lᵀ: var(x) = 1, cov(x, y) = 0.9, var(y) = 0.81 + 0.04.
        let l = &prior.scale_tril[left];
        let (l00, l10, l11) = (l[0], l[2], l[3]);
        assert!((l00 * l00 - 1.0).abs() < 0.1);
        assert!((l10 * l00 - 0.9).abs() < 0.1);
        assert!((l10 * l10 + l11 * l11 - 0.85).abs() < 0.1);
        // The fit explains the data better than N(0, I) does.
        assert!(
            prior.mean_log_likelihood(&points)
                > LatentPrior::standard(2).mean_log_likelihood(&points) + 5.0
        );
    }

    #[test]
    fn draws_follow_the_fitted_mixture() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let points = clusters(1000, &mut rng);
        let prior = LatentPrior::fit(&points, 2, 2).unwrap();
        let draws: Vec<Vec<f32>> = (0..4000).map(|_| prior.sample(&mut rng)).collect();
        let right = draws.iter().filter(|d| d[0] > 0.0).count() as f64 / 4000.0;
        assert!((right - 0.5).abs() < 0.05, "{right}");
        let far = draws.iter().filter(|d| d[0].abs() < 2.0).count();
        assert!(far < 40, "{far} draws fell between the clusters");
    }

    #[test]
    fn too_few_points_are_refused() {
        let error = LatentPrior::fit(&vec![vec![0.0, 1.0]; 3], 4, 1).unwrap_err();
        assert!(error.contains("needs at least 8 points"), "{error}");
    }
}
