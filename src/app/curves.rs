//! Curves: test MSE and accuracy against training-set size for every arm, mean ± std
//! bands over the finished repeats, each arm's label savings against random, a results
//! table, the training loss of each round, and saving the rows as CSV or the figure as
//! PNG.

use egui::Color32;
use egui_plot::{ColorConflictHandling, FilledArea, Legend, Line, Plot, Points};

use super::Shared;
use super::plot_axes::readable;
use crate::experiment::{Row, Summary, plot, results, summarise};
use crate::sampling::{Arm, Mode};

fn color(arm: Arm) -> Color32 {
    let [r, g, b] = plot::arm_rgb(arm);
    Color32::from_rgb(r, g, b)
}

/// The curves panel: the study's rows and what is drawn from them.
#[derive(Default)]
pub struct Curves {
    /// One row per arm, repeat and round: the study's results so far.
    pub rows: Vec<Row>,
    /// The summary of `rows` and how many rows it was made from: its bootstrap intervals
    /// are too dear to recompute every frame, so it is redone only when rows arrive.
    summary: Option<(usize, Summary)>,
    /// Per arm, F's training loss per epoch over the first repeat's rounds.
    train_losses: Vec<(Arm, Vec<[f64; 2]>)>,
}

impl Curves {
    /// A finished round of `arm` in `repeat`: its row and F's losses while it trained.
    pub fn push_round(&mut self, arm: Arm, repeat: usize, row: Row, epoch_losses: &[f64]) {
        self.rows.push(row);
        let offset = self
            .train_losses
            .iter()
            .find(|(a, _)| *a == arm)
            .map_or(0, |(_, l)| l.len());
        let losses: Vec<[f64; 2]> = epoch_losses
            .iter()
            .enumerate()
            .map(|(i, l)| [(offset + i + 1) as f64, *l])
            .collect();
        match self.train_losses.iter_mut().find(|(a, _)| *a == arm) {
            Some((_, existing)) if repeat == 0 => existing.extend(losses),
            Some(_) => {}
            None => self.train_losses.push((arm, losses)),
        }
    }

    /// The curves, savings, table and losses of the study so far, and saving them;
    /// `size` (the working resolution) goes into the figure's title.
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared, size: usize) {
        if self.rows.is_empty() {
            ui.label(
                "Test MSE and accuracy against training-set size appear after the first round.",
            );
            return;
        }
        let fresh = matches!(&self.summary, Some((n, _)) if *n == self.rows.len());
        if !fresh {
            self.summary = Some((self.rows.len(), summarise(&self.rows)));
        }
        let summary = self.summary.as_ref().expect("just set").1.clone();
        let mode = self.rows[0].mode;
        for (title, mse) in [("Test MSE (kPa²)", true), ("Test accuracy", false)] {
            metric_plot(&summary, mode, title, mse, ui);
        }
        savings_plot(&summary, mode, ui);
        results_table(&summary, ui);
        if !self.train_losses.is_empty() {
            readable(Plot::new("train_loss"))
                .height(120.0)
                .legend(Legend::default())
                .x_axis_label("epoch (all rounds, first repeat)")
                .y_axis_label("F training loss")
                .allow_scroll(false)
                .show(ui, |p| {
                    for (arm, losses) in &self.train_losses {
                        p.line(
                            Line::new(plot::arm_label(*arm, mode), losses.clone())
                                .color(color(*arm)),
                        );
                    }
                });
        }
        self.save_buttons(ui, shared, &summary, mode, size);
    }

    /// Save CSV… and Save PNG….
    fn save_buttons(
        &self,
        ui: &mut egui::Ui,
        shared: &mut Shared,
        summary: &Summary,
        mode: Mode,
        size: usize,
    ) {
        ui.horizontal(|ui| {
            if ui.button("Save CSV…").clicked()
                && let Some(path) = rfd::FileDialog::new()
                    .set_file_name("results.csv")
                    .save_file()
            {
                shared.report(results::write_csv(&path, &self.rows).map(|_| path));
            }
            if ui.button("Save PNG…").clicked()
                && let Some(path) = rfd::FileDialog::new()
                    .set_file_name("curves.png")
                    .save_file()
            {
                let arms: Vec<Arm> = summary.arms.iter().map(|a| a.arm).collect();
                let repeats = summary
                    .arms
                    .iter()
                    .flat_map(|a| a.points.iter().map(|p| p.repeats))
                    .max()
                    .unwrap_or(0);
                let title = plot::study_title(mode, &arms, repeats, size);
                shared.report(plot::write_curves(&path, summary, mode, &title).map(|_| path));
            }
        });
    }
}

/// Test MSE (`mse`) or accuracy against training-set size: each arm's mean, with a
/// ± std band once it has more than one size.
fn metric_plot(summary: &Summary, mode: Mode, title: &str, mse: bool, ui: &mut egui::Ui) {
    let values = summary
        .arms
        .iter()
        .flat_map(|a| &a.points)
        .map(|s| if mse { s.mse_mean } else { s.accuracy_mean });
    let mut plot = readable(Plot::new(title))
        .height(170.0)
        .legend(Legend::default().color_conflict_handling(ColorConflictHandling::PickLast))
        // From zero: the axis keeps a sensible scale while there is one size only.
        .include_x(0.0);
    if let Some((low, high)) = y_range(values) {
        plot = plot.include_y(low).include_y(high);
    }
    plot.x_axis_label("training-set size")
        .y_axis_label(title)
        .allow_scroll(false)
        .show(ui, |p| {
            for arm in &summary.arms {
                let xs: Vec<f64> = arm.points.iter().map(|s| s.size as f64).collect();
                let (mean, std): (Vec<f64>, Vec<f64>) = arm
                    .points
                    .iter()
                    .map(|s| {
                        if mse {
                            (s.mse_mean, s.mse_std)
                        } else {
                            (s.accuracy_mean, s.accuracy_std)
                        }
                    })
                    .unzip();
                let lower: Vec<f64> = mean.iter().zip(&std).map(|(m, s)| m - s).collect();
                let upper: Vec<f64> = mean.iter().zip(&std).map(|(m, s)| m + s).collect();
                let name = plot::arm_label(arm.arm, mode);
                let c = color(arm.arm);
                if xs.len() > 1 {
                    p.add(
                        // The arm's own name: one legend entry shows and hides both.
                        FilledArea::new(name.clone(), &xs, &lower, &upper)
                            .fill_color(c.gamma_multiply(0.2)),
                    );
                }
                let line: Vec<[f64; 2]> = xs.iter().zip(&mean).map(|(x, m)| [*x, *m]).collect();
                p.line(Line::new(name.clone(), line.clone()).color(c).width(2.0));
                p.points(Points::new(name, line).color(c).radius(3.0));
            }
        });
}

/// The y range a curve plot must show: its values' span with 5 % of it, and at least 1 % of
/// the values' size, to spare on each side, so the extreme points are not cut by the frame
/// and nearly equal values (the arms after round 0) are not magnified into noise. egui_plot
/// would widen a flat y axis to the x axis's span (an accuracy axis from −20 to 20 after
/// the first round). `None` without a finite value.
fn y_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (low, high) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if low > high {
        return None;
    }
    let margin = (0.05 * (high - low)).max(0.01 * low.abs().max(high.abs()).max(1e-3));
    Some((low - margin, high + margin))
}

/// The share of random's labels each arm needs to reach random's test MSE at each size
/// (below 1: the arm saves labels), with the 75 % goal as a reference line.
fn savings_plot(summary: &Summary, mode: Mode, ui: &mut egui::Ui) {
    if summary.arms.iter().all(|a| a.label_savings.is_empty()) {
        return;
    }
    readable(Plot::new("label_savings"))
        .height(120.0)
        .legend(Legend::default())
        .x_axis_label("random's training-set size")
        .y_axis_label("labels needed / random's")
        .allow_scroll(false)
        .show(ui, |p| {
            let sizes: Vec<f64> = summary
                .arms
                .iter()
                .flat_map(|a| a.label_savings.iter().map(|l| l.size as f64))
                .collect();
            let (lo, hi) = sizes
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            p.line(
                Line::new("75 % (the goal)", vec![[lo, 0.75], [hi, 0.75]])
                    .color(Color32::GRAY)
                    .style(egui_plot::LineStyle::dashed_loose()),
            );
            for arm in summary.arms.iter().filter(|a| !a.label_savings.is_empty()) {
                let points: Vec<[f64; 2]> = arm
                    .label_savings
                    .iter()
                    .filter_map(|l| Some([l.size as f64, l.ratio?]))
                    .collect();
                let name = plot::arm_label(arm.arm, mode);
                p.line(
                    Line::new(name.clone(), points.clone())
                        .color(color(arm.arm))
                        .width(2.0),
                );
                p.points(Points::new(name, points).color(color(arm.arm)).radius(3.0));
            }
        });
}

/// Every arm at every size: mean ± std, the paired difference to random with its 95 %
/// bootstrap interval, and the share of random's labels the arm needed to reach random's
/// MSE there.
fn results_table(summary: &Summary, ui: &mut egui::Ui) {
    egui::Grid::new("results_table")
        .striped(true)
        .show(ui, |ui| {
            for header in [
                "arm",
                "size",
                "test MSE",
                "− random [95 % CI]",
                "labels for random's MSE",
            ] {
                ui.label(egui::RichText::new(header).small().strong());
            }
            ui.end_row();
            for arm in &summary.arms {
                for point in &arm.points {
                    ui.label(arm.arm.name());
                    ui.label(point.size.to_string());
                    ui.label(format!("{:.0} ± {:.0}", point.mse_mean, point.mse_std));
                    let paired = arm.paired_differences.iter().find(|d| d.size == point.size);
                    ui.label(paired.map_or_else(
                        || "–".into(),
                        |d| format!("{:+.0} [{:+.0}, {:+.0}]", d.mean, d.lower, d.upper),
                    ));
                    let saving = arm.label_savings.iter().find(|l| l.size == point.size);
                    ui.label(match saving {
                        None => "–".into(),
                        Some(l) => l.ratio.map_or_else(
                            || "not reached".into(),
                            |r| format!("{:.0} %", 100.0 * r),
                        ),
                    });
                    ui.end_row();
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::y_range;

    #[test]
    fn the_y_range_keeps_five_percent_of_the_span_and_at_least_one_percent_of_the_value() {
        let (low, high) = y_range([0.25].into_iter()).expect("a range");
        assert!((low - 0.2475).abs() < 1e-12 && (high - 0.2525).abs() < 1e-12);
        let (low, high) = y_range([2328.0, 2328.0].into_iter()).expect("a range");
        assert!((low - 2304.72).abs() < 1e-9 && (high - 2351.28).abs() < 1e-9);
        let (low, high) = y_range([0.3, f64::NAN, 0.4].into_iter()).expect("a range");
        assert!((low - 0.295).abs() < 1e-12 && (high - 0.405).abs() < 1e-12);
        let (low, high) = y_range([2327.5, 2328.0].into_iter()).expect("a range");
        assert!((low - 2304.22).abs() < 1e-9 && (high - 2351.28).abs() < 1e-9);
        assert_eq!(y_range([f64::NAN].into_iter()), None);
        assert_eq!(y_range(std::iter::empty()), None);
    }
}
