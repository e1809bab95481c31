//! Curves: test MSE and accuracy against training-set size, adaptive vs baseline, mean ±
//! std bands over the finished repeats, the training loss of each round, and saving the
//! rows as CSV or the figure as PNG.

use egui::Color32;
use egui_plot::{FilledArea, Legend, Line, Plot, Points};

use super::SulaApp;
use crate::experiment::{plot, results, summarise};
use crate::sampling::Arm;

fn color(arm: Arm) -> Color32 {
    let [r, g, b] = plot::arm_rgb(arm);
    Color32::from_rgb(r, g, b)
}

pub fn ui(app: &mut SulaApp, ui: &mut egui::Ui) {
    ui.heading("Curves");
    if let Some(project) = &app.view.project {
        super::project_panel::rounds(project, ui);
        return;
    }
    if app.view.rows.is_empty() {
        ui.label("Test MSE and accuracy against training-set size appear after the first round.");
        return;
    }
    let summary = summarise(&app.view.rows);
    let mode = app.view.rows[0].mode;
    for (title, mse) in [("Test MSE (kPa²)", true), ("Test accuracy", false)] {
        Plot::new(title)
            .height(170.0)
            .legend(Legend::default())
            .x_axis_label("training-set size")
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
                            FilledArea::new(format!("{name} ± std"), &xs, &lower, &upper)
                                .fill_color(c.gamma_multiply(0.2)),
                        );
                    }
                    let line: Vec<[f64; 2]> = xs.iter().zip(&mean).map(|(x, m)| [*x, *m]).collect();
                    p.line(Line::new(name.clone(), line.clone()).color(c).width(2.0));
                    p.points(Points::new(name, line).color(c).radius(3.0));
                }
            });
    }
    results_table(&summary, ui);
    if !app.view.train_losses.is_empty() {
        Plot::new("train_loss")
            .height(120.0)
            .legend(Legend::default())
            .x_axis_label("epoch (all rounds, first repeat)")
            .y_axis_label("F training loss")
            .allow_scroll(false)
            .show(ui, |p| {
                for (arm, losses) in &app.view.train_losses {
                    p.line(
                        Line::new(plot::arm_label(*arm, mode), losses.clone()).color(color(*arm)),
                    );
                }
            });
    }
    ui.horizontal(|ui| {
        if ui.button("Save CSV…").clicked()
            && let Some(path) = rfd::FileDialog::new()
                .set_file_name("results.csv")
                .save_file()
        {
            report(app, results::write_csv(&path, &app.view.rows).map(|_| path));
        }
        if ui.button("Save PNG…").clicked()
            && let Some(path) = rfd::FileDialog::new()
                .set_file_name("curves.png")
                .save_file()
        {
            let title = format!(
                "Adaptive sampling ({}) vs random baseline",
                mode.name().to_uppercase()
            );
            report(
                app,
                plot::write_curves(&path, &summary, mode, &title).map(|_| path),
            );
        }
    });
}

/// Every size: each arm's mean ± std, the paired difference with its 95 % bootstrap
/// interval, and the labels the adaptive arm needed to reach random's MSE there.
fn results_table(summary: &crate::experiment::Summary, ui: &mut egui::Ui) {
    let [adaptive, baseline] =
        [Arm::Adaptive, Arm::Baseline].map(|arm| summary.arms.iter().find(|a| a.arm == arm));
    let Some(baseline) = baseline else { return };
    egui::Grid::new("results_table")
        .striped(true)
        .show(ui, |ui| {
            for header in [
                "size",
                "adaptive MSE",
                "random MSE",
                "adaptive − random [95 % CI]",
                "labels for random's MSE",
            ] {
                ui.label(egui::RichText::new(header).small().strong());
            }
            ui.end_row();
            for (k, b) in baseline.points.iter().enumerate() {
                ui.label(b.size.to_string());
                let a = adaptive.and_then(|a| a.points.iter().find(|p| p.size == b.size));
                ui.label(a.map_or_else(
                    || "–".into(),
                    |a| format!("{:.0} ± {:.0}", a.mse_mean, a.mse_std),
                ));
                ui.label(format!("{:.0} ± {:.0}", b.mse_mean, b.mse_std));
                let paired = summary.paired_differences.iter().find(|d| d.size == b.size);
                ui.label(paired.map_or_else(
                    || "–".into(),
                    |d| format!("{:+.0} [{:+.0}, {:+.0}]", d.mean, d.lower, d.upper),
                ));
                let saving = summary.label_savings.get(k).and_then(|l| l.ratio);
                ui.label(
                    saving.map_or_else(|| "not reached".into(), |r| format!("{:.0} %", 100.0 * r)),
                );
                ui.end_row();
            }
        });
}

fn report(app: &mut SulaApp, outcome: Result<std::path::PathBuf, crate::io::IoError>) {
    match outcome {
        Ok(path) => app.view.notice = Some(format!("Saved {}", path.display())),
        Err(e) => app.view.errors.push(e.to_string()),
    }
}
