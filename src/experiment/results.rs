//! `results.csv` rows, reading them back for `--resume`, and the mean ± std summary.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::stats::{
    BOOTSTRAP_RESAMPLES, LabelSaving, PairedDifference, bootstrap_mean_interval, label_savings,
};

use crate::io::IoError;
use crate::sampling::{Arm, Mode};

/// One arm, repeat and training-set size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub arm: Arm,
    pub mode: Mode,
    pub repeat: usize,
    pub round: usize,
    pub size: usize,
    /// Optimiser steps F has taken so far in this arm.
    pub steps: usize,
    /// Test MSE over solid pixels, kPa².
    pub mse: f64,
    pub accuracy: f64,
    pub peak_error: f64,
    pub r2: f64,
    /// Seconds spent in this arm so far.
    pub wall_s: f64,
    /// Decoded samples the FEA could not label this round.
    pub rejected: usize,
}

const HEADER: &str = "arm,mode,repeat,round,size,steps,mse,accuracy,peak_error,r2,wall_s,rejected";

/// The CSV text of `rows`, header first.
pub fn to_csv(rows: &[Row]) -> String {
    let mut text = format!("{HEADER}\n");
    for r in rows {
        text.push_str(&format!(
            "{},{},{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.3},{}\n",
            r.arm.name(),
            r.mode.name(),
            r.repeat,
            r.round,
            r.size,
            r.steps,
            r.mse,
            r.accuracy,
            r.peak_error,
            r.r2,
            r.wall_s,
            r.rejected
        ));
    }
    text
}

/// Writes `rows` to `path` atomically.
pub fn write_csv(path: &Path, rows: &[Row]) -> Result<(), IoError> {
    crate::io::atomic::write_bytes(path, to_csv(rows).as_bytes())
}

/// Reads rows written by [`write_csv`]; a line that does not parse is an error naming it.
pub fn read_csv(path: &Path) -> Result<Vec<Row>, IoError> {
    let text = std::fs::read_to_string(path).map_err(|e| IoError::io(path, e))?;
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(IoError::format(
            path,
            "is not a sula results.csv (unexpected header)",
        ));
    }
    lines
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            parse_row(line).ok_or_else(|| {
                IoError::format(path, format!("line {} is not a valid result row", n + 2))
            })
        })
        .collect()
}

fn parse_row(line: &str) -> Option<Row> {
    let f: Vec<&str> = line.split(',').collect();
    if f.len() != 12 {
        return None;
    }
    let arm = Arm::from_name(f[0])?;
    let mode = match f[1] {
        "si" => Mode::Si,
        "snn" => Mode::Snn,
        _ => return None,
    };
    Some(Row {
        arm,
        mode,
        repeat: f[2].parse().ok()?,
        round: f[3].parse().ok()?,
        size: f[4].parse().ok()?,
        steps: f[5].parse().ok()?,
        mse: f[6].parse().ok()?,
        accuracy: f[7].parse().ok()?,
        peak_error: f[8].parse().ok()?,
        r2: f[9].parse().ok()?,
        wall_s: f[10].parse().ok()?,
        rejected: f[11].parse().ok()?,
    })
}

/// Mean and sample standard deviation over repeats at one size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryPoint {
    pub size: usize,
    pub repeats: usize,
    pub mse_mean: f64,
    pub mse_std: f64,
    pub accuracy_mean: f64,
    pub accuracy_std: f64,
    pub peak_error_mean: f64,
    pub r2_mean: f64,
    pub steps: usize,
}

/// One arm's curve, and how it compares with random sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmSummary {
    pub arm: Arm,
    pub points: Vec<SummaryPoint>,
    /// Per size: this arm − random test MSE over the repeats that share their seed, with
    /// its 95 % bootstrap interval (empty for the random arm itself).
    #[serde(default)]
    pub paired_differences: Vec<PairedDifference>,
    /// Per random size N: the interpolated size at which this arm's mean MSE reaches
    /// random's at N (empty for the random arm itself).
    #[serde(default)]
    pub label_savings: Vec<LabelSaving>,
}

/// Every arm's curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub arms: Vec<ArmSummary>,
}

impl Summary {
    /// The summary of `arm`, if the study ran it.
    pub fn arm(&self, arm: Arm) -> Option<&ArmSummary> {
        self.arms.iter().find(|a| a.arm == arm)
    }
}

/// Mean and sample standard deviation (0 for fewer than two values).
pub(crate) fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n.max(1.0);
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Mean ± std per arm and size over the repeats present in `rows`, and each arm's paired
/// differences and label savings against random.
pub fn summarise(rows: &[Row]) -> Summary {
    let mut present: Vec<Arm> = rows.iter().map(|r| r.arm).collect();
    present.sort_unstable();
    present.dedup();
    let mut arms: Vec<ArmSummary> = present
        .into_iter()
        .map(|arm| ArmSummary {
            arm,
            points: points(rows, arm),
            paired_differences: Vec::new(),
            label_savings: Vec::new(),
        })
        .collect();
    let curve = |points: &[SummaryPoint]| -> Vec<(usize, f64)> {
        points.iter().map(|p| (p.size, p.mse_mean)).collect()
    };
    if let Some(random) = arms.iter().find(|a| a.arm == Arm::Baseline).cloned() {
        for summary in arms.iter_mut().filter(|a| a.arm != Arm::Baseline) {
            summary.paired_differences = paired_differences(rows, summary.arm, &random);
            summary.label_savings = label_savings(&curve(&summary.points), &curve(&random.points));
        }
    }
    Summary { arms }
}

fn points(rows: &[Row], arm: Arm) -> Vec<SummaryPoint> {
    let mut sizes: Vec<usize> = rows
        .iter()
        .filter(|r| r.arm == arm)
        .map(|r| r.size)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
        .into_iter()
        .map(|size| {
            let at: Vec<&Row> = rows
                .iter()
                .filter(|r| r.arm == arm && r.size == size)
                .collect();
            let column = |f: fn(&Row) -> f64| at.iter().map(|r| f(r)).collect::<Vec<f64>>();
            let (mse_mean, mse_std) = mean_std(&column(|r| r.mse));
            let (accuracy_mean, accuracy_std) = mean_std(&column(|r| r.accuracy));
            SummaryPoint {
                size,
                repeats: at.len(),
                mse_mean,
                mse_std,
                accuracy_mean,
                accuracy_std,
                peak_error_mean: mean_std(&column(|r| r.peak_error)).0,
                r2_mean: mean_std(&column(|r| r.r2)).0,
                steps: at.iter().map(|r| r.steps).max().unwrap_or(0),
            }
        })
        .collect()
}

/// `arm` − random MSE per repeat at each random size where both arms have the repeat.
fn paired_differences(rows: &[Row], arm: Arm, random: &ArmSummary) -> Vec<PairedDifference> {
    random
        .points
        .iter()
        .filter_map(|point| {
            let mse = |repeat: usize| {
                rows.iter()
                    .find(|r| r.arm == arm && r.repeat == repeat && r.size == point.size)
                    .map(|r| r.mse)
            };
            let differences: Vec<f64> = rows
                .iter()
                .filter(|r| r.arm == Arm::Baseline && r.size == point.size)
                .filter_map(|r| Some(mse(r.repeat)? - r.mse))
                .collect();
            if differences.is_empty() {
                return None;
            }
            let (mean, lower, upper) =
                bootstrap_mean_interval(&differences, BOOTSTRAP_RESAMPLES, point.size as u64);
            Some(PairedDifference {
                size: point.size,
                pairs: differences.len(),
                mean,
                lower,
                upper,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(arm: Arm, repeat: usize, size: usize, mse: f64) -> Row {
        Row {
            arm,
            mode: Mode::Si,
            repeat,
            round: size / 10 - 1,
            size,
            steps: size,
            mse,
            accuracy: 0.5,
            peak_error: 0.1,
            r2: 0.2,
            wall_s: 1.25,
            rejected: 0,
        }
    }

    #[test]
    fn csv_round_trips_and_bad_lines_are_named() {
        let rows = vec![
            row(Arm::Adaptive, 0, 10, 3.5),
            row(Arm::Baseline, 1, 20, 1.0),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.csv");
        write_csv(&path, &rows).unwrap();
        assert_eq!(read_csv(&path).unwrap(), rows);
        std::fs::write(&path, format!("{}adaptive,si,x\n", to_csv(&rows))).unwrap();
        let error = read_csv(&path).unwrap_err().to_string();
        assert!(error.contains("line 4"), "{error}");
    }

    #[test]
    fn summary_is_mean_and_std_and_matches_sizes() {
        let rows = vec![
            row(Arm::Adaptive, 0, 10, 4.0),
            row(Arm::Adaptive, 1, 10, 6.0),
            row(Arm::Adaptive, 0, 20, 2.0),
            row(Arm::Adaptive, 1, 20, 2.0),
            row(Arm::Baseline, 0, 10, 8.0),
            row(Arm::Baseline, 1, 10, 8.0),
            row(Arm::Baseline, 0, 20, 4.5),
            row(Arm::Baseline, 1, 20, 5.5),
        ];
        let s = summarise(&rows);
        let adaptive = s.arm(Arm::Adaptive).unwrap();
        let a10 = &adaptive.points[0];
        assert_eq!((a10.size, a10.repeats), (10, 2));
        assert!((a10.mse_mean - 5.0).abs() < 1e-12);
        assert!((a10.mse_std - 2f64.sqrt()).abs() < 1e-12);
        // Paired: adaptive − baseline per repeat, (−4, −2) at 10 and (−2.5, −3.5) at 20.
        let d10 = &adaptive.paired_differences[0];
        assert_eq!((d10.size, d10.pairs), (10, 2));
        assert!((d10.mean + 3.0).abs() < 1e-12 && d10.lower >= -4.0 && d10.upper <= -2.0);
        assert!((adaptive.paired_differences[1].mean + 3.0).abs() < 1e-12);
        // Adaptive's mean curve is 5 at 10 and 2 at 20: random's 8 is reached at 10, its
        // 5 at 10 too.
        assert_eq!(adaptive.label_savings[1].arm_size, Some(10.0));
        assert_eq!(adaptive.label_savings[1].ratio, Some(0.5));
        // Random is not compared with itself.
        assert!(s.arm(Arm::Baseline).unwrap().paired_differences.is_empty());
    }
}
