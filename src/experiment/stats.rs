//! Statistics a reader can trust for an adaptive-vs-random comparison: paired differences
//! with a bootstrap interval (repeats share their seed, so the pairing removes the
//! between-repeat variance), and label savings read off the two mean curves.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Resamples of the bootstrap; the interval's ends move by well under 1 % between seeds.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// The mean of paired differences at one size, with its 95 % bootstrap interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedDifference {
    pub size: usize,
    /// Repeats with both arms at this size.
    pub pairs: usize,
    /// Mean of (arm − random) test MSE over the pairs, kPa²; negative favours the arm.
    pub mean: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Mean of `differences` and the 2.5th and 97.5th percentiles of the means of
/// `resamples` resamples drawn with replacement (percentile bootstrap, seeded).
pub fn bootstrap_mean_interval(
    differences: &[f64],
    resamples: usize,
    seed: u64,
) -> (f64, f64, f64) {
    let n = differences.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mean = differences.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, mean, mean);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples.max(1))
        .map(|_| {
            (0..n)
                .map(|_| differences[rng.gen_range(0..n)])
                .sum::<f64>()
                / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (means.len() - 1) as f64).round() as usize).min(means.len() - 1)];
    (mean, at(0.025), at(0.975))
}

/// For each size `n` of the random curve: the (linearly interpolated) training-set size at
/// which the arm's mean test MSE first reaches random's mean MSE at `n`, and its ratio to
/// `n`. `None` where the arm never gets there within its curve. Curves are (size, mean
/// MSE) sorted by size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSaving {
    pub size: usize,
    pub arm_size: Option<f64>,
    /// `arm_size / size`: 0.75 means the arm needed 75 % of random's labels.
    pub ratio: Option<f64>,
}

pub fn label_savings(arm: &[(usize, f64)], random: &[(usize, f64)]) -> Vec<LabelSaving> {
    random
        .iter()
        .map(|&(size, target)| {
            let arm_size = first_reaching(arm, target);
            LabelSaving {
                size,
                arm_size,
                ratio: arm_size.map(|a| a / size as f64),
            }
        })
        .collect()
}

/// The first size at which the piecewise-linear curve falls to `target` or below.
fn first_reaching(curve: &[(usize, f64)], target: f64) -> Option<f64> {
    let (&(first_size, first_mse), rest) = curve.split_first()?;
    if first_mse <= target {
        return Some(first_size as f64);
    }
    let mut previous = (first_size as f64, first_mse);
    for &(size, mse) in rest {
        let size = size as f64;
        if mse <= target {
            let (x0, y0) = previous;
            let t = (y0 - target) / (y0 - mse);
            return Some(x0 + t * (size - x0));
        }
        previous = (size, mse);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_covers_a_known_difference_in_most_synthetic_studies() {
        // 200 studies of 10 paired repeats whose true mean difference is −50 with noise of
        // σ 40: a 95 % interval should miss the truth in roughly 5 % of them.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let normal = |rng: &mut ChaCha8Rng| -> f64 {
            // Box–Muller.
            let (u, v): (f64, f64) = (rng.r#gen::<f64>().max(1e-12), rng.r#gen());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        };
        let mut covered = 0;
        for study in 0..200 {
            let diffs: Vec<f64> = (0..10).map(|_| -50.0 + 40.0 * normal(&mut rng)).collect();
            let (mean, lower, upper) = bootstrap_mean_interval(&diffs, 2000, study);
            assert!(lower <= mean && mean <= upper);
            if lower <= -50.0 && -50.0 <= upper {
                covered += 1;
            }
        }
        // The percentile bootstrap runs a little narrow at n = 10; 85–100 % is its range.
        assert!((170..=200).contains(&covered), "covered {covered} of 200");
    }

    #[test]
    fn an_interval_away_from_zero_for_a_clear_gain_and_around_it_for_none() {
        let gain = [-30.0, -42.0, -25.0, -38.0, -33.0];
        let (_, _, upper) = bootstrap_mean_interval(&gain, BOOTSTRAP_RESAMPLES, 1);
        assert!(upper < 0.0);
        let none = [-10.0, 12.0, -8.0, 9.0, 1.0];
        let (_, lower, upper) = bootstrap_mean_interval(&none, BOOTSTRAP_RESAMPLES, 1);
        assert!(lower < 0.0 && upper > 0.0);
    }

    #[test]
    fn label_savings_interpolate_the_arm_curve() {
        let random = [(40, 1000.0), (80, 800.0), (120, 700.0), (160, 650.0)];
        // The arm reaches 800 halfway between 40 (1000) and 80 (600), i.e. at 60.
        let arm = [(40, 1000.0), (80, 600.0), (120, 560.0), (160, 640.0)];
        let savings = label_savings(&arm, &random);
        assert_eq!(savings[0].arm_size, Some(40.0));
        assert_eq!(savings[1].arm_size, Some(60.0));
        assert_eq!(savings[1].ratio, Some(0.75));
        // 700: between 40 (1000) and 80 (600), at 40 + 40·300/400 = 70.
        assert_eq!(savings[2].arm_size, Some(70.0));
        // 650: at 40 + 40·350/400 = 75.
        assert!((savings[3].ratio.unwrap() - 75.0 / 160.0).abs() < 1e-12);
        // A target below the whole arm curve is never reached.
        assert_eq!(label_savings(&arm, &[(200, 500.0)])[0].arm_size, None);
    }
}
