//! Evaluation metrics of a stress regressor (docs/DESIGN.md §Metrics), per frame over solid pixels.

use serde::{Deserialize, Serialize};

use crate::labels::LabelMap;

/// Metrics of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameMetrics {
    /// Mean squared error in kPa².
    pub mse: f64,
    /// Fraction of solid pixels with |error| ≤ 10 % of the frame's 99th-percentile true stress.
    pub accuracy: f64,
    /// |p99(pred) − p99(true)| / |p99(true)|.
    pub peak_error: f64,
    /// Coefficient of determination over the frame's solid pixels.
    pub r2: f64,
}

/// The q-th percentile (0–1) by nearest rank.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// 99th percentile of a stress map over its solid pixels (0 without solid): the "peak"
/// stress that the accuracy threshold and the latent view's colouring refer to.
pub fn peak_stress(stress: &[f32], labels: &LabelMap) -> f64 {
    let solid: Vec<f64> = stress
        .iter()
        .zip(labels.values())
        .filter(|(_, l)| (2..=4).contains(*l))
        .map(|(v, _)| f64::from(*v))
        .collect();
    if solid.is_empty() {
        0.0
    } else {
        percentile(&solid, 0.99)
    }
}

/// Metrics over the solid pixels of one frame, or `None` if it has no solid pixel.
pub fn frame_metrics(prediction: &[f32], truth: &[f32], labels: &LabelMap) -> Option<FrameMetrics> {
    let (pred, real): (Vec<f64>, Vec<f64>) = prediction
        .iter()
        .zip(truth)
        .zip(labels.values())
        .filter(|(_, l)| (2..=4).contains(*l))
        .map(|((p, t), _)| (f64::from(*p), f64::from(*t)))
        .unzip();
    if real.is_empty() {
        return None;
    }
    let n = real.len() as f64;
    let mse = pred
        .iter()
        .zip(&real)
        .map(|(p, t)| (p - t).powi(2))
        .sum::<f64>()
        / n;
    let peak = percentile(&real, 0.99);
    let tolerance = 0.1 * peak.abs();
    let accuracy = pred
        .iter()
        .zip(&real)
        .filter(|(p, t)| (*p - *t).abs() <= tolerance)
        .count() as f64
        / n;
    let peak_error = (percentile(&pred, 0.99) - peak).abs() / peak.abs().max(f64::MIN_POSITIVE);
    let mean = real.iter().sum::<f64>() / n;
    let total = real.iter().map(|t| (t - mean).powi(2)).sum::<f64>();
    let r2 = if total > 0.0 {
        1.0 - mse * n / total
    } else {
        0.0
    };
    Some(FrameMetrics {
        mse,
        accuracy,
        peak_error,
        r2,
    })
}

/// Mean of per-frame metrics.
pub fn mean_metrics(frames: &[FrameMetrics]) -> FrameMetrics {
    let n = frames.len().max(1) as f64;
    let sum = |f: fn(&FrameMetrics) -> f64| frames.iter().map(f).sum::<f64>() / n;
    FrameMetrics {
        mse: sum(|m| m.mse),
        accuracy: sum(|m| m.accuracy),
        peak_error: sum(|m| m.peak_error),
        r2: sum(|m| m.r2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shapes::annulus;

    #[test]
    fn perfect_and_offset_predictions() {
        let labels = annulus(16, 3.0, 7.0);
        let truth: Vec<f32> = (0..256).map(|i| (i % 16) as f32 + 10.0).collect();
        let perfect = frame_metrics(&truth, &truth, &labels).unwrap();
        assert_eq!(
            (perfect.mse, perfect.accuracy, perfect.peak_error),
            (0.0, 1.0, 0.0)
        );
        assert!((perfect.r2 - 1.0).abs() < 1e-12);
        let offset: Vec<f32> = truth.iter().map(|t| t + 3.0).collect();
        let m = frame_metrics(&offset, &truth, &labels).unwrap();
        assert!((m.mse - 9.0).abs() < 1e-9);
        // 10 % of the p99 (25) is 2.5 < 3: every pixel is out of tolerance.
        assert_eq!(m.accuracy, 0.0);
        assert!(m.r2 < 1.0);
        let none = LabelMap::new(2, 1, vec![0, 1]).unwrap();
        assert!(frame_metrics(&[0.0, 0.0], &[0.0, 0.0], &none).is_none());
    }
}
