//! `curves.png`: test MSE and accuracy against training-set size, adaptive vs random
//! baseline, mean lines with ± std bands over repeats (the paper's Figure 2(b) layout).
//! Drawn with plotters into memory and written through the atomic PNG writer.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use super::results::{ArmSummary, Summary, SummaryPoint};
use crate::io::IoError;
use crate::sampling::{Arm, Mode};

/// Colour of each arm, shared with the GUI's curves panel.
pub fn arm_rgb(arm: Arm) -> [u8; 3] {
    match arm {
        Arm::Adaptive => [230, 97, 1],
        Arm::Baseline => [43, 108, 176],
        Arm::CoreSet => [27, 158, 119],
        Arm::Tta => [117, 112, 179],
    }
}

/// Legend name of an arm.
pub fn arm_label(arm: Arm, mode: Mode) -> String {
    match arm {
        Arm::Adaptive => format!("adaptive ({})", mode.name().to_uppercase()),
        Arm::Baseline => "random baseline".to_string(),
        Arm::CoreSet => "core-set".to_string(),
        Arm::Tta => "TTA uncertainty".to_string(),
    }
}

/// The figure's title: which arms, how many repeats, at which resolution.
pub fn study_title(mode: Mode, arms: &[Arm], repeats: usize, size: usize) -> String {
    let names: Vec<String> = arms.iter().map(|&a| arm_label(a, mode)).collect();
    format!("{}: {repeats} repeats, {size}²", names.join(" vs "))
}

fn register_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        // The embedded font is a valid TrueType file; a failure would only lose text.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

/// The series legend in the upper right corner, shared by every figure here.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())
}

/// Which quantity a panel shows.
#[derive(Clone, Copy)]
enum Panel {
    Mse,
    Accuracy,
}

impl Panel {
    fn value(self, p: &SummaryPoint) -> (f64, f64) {
        match self {
            Panel::Mse => (p.mse_mean, p.mse_std),
            Panel::Accuracy => (p.accuracy_mean, p.accuracy_std),
        }
    }
    fn title(self) -> &'static str {
        match self {
            Panel::Mse => "Test MSE over solid pixels",
            Panel::Accuracy => "Test accuracy (|error| ≤ 10 % of p99)",
        }
    }
    fn unit(self) -> &'static str {
        match self {
            Panel::Mse => "MSE (kPa²)",
            Panel::Accuracy => "accuracy",
        }
    }
}

fn range(arms: &[ArmSummary], panel: Panel) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in arms.iter().flat_map(|a| &a.points) {
        let (mean, std) = panel.value(p);
        lo = lo.min(mean - std);
        hi = hi.max(mean + std);
    }
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-6);
    (lo - pad, hi + pad)
}

fn draw(
    buffer: &mut [u8],
    (width, height): (u32, u32),
    summary: &Summary,
    mode: Mode,
    title: &str,
) -> Result<(), String> {
    let root = BitMapBackend::with_buffer(buffer, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(title, ("sans-serif", 24))
        .map_err(|e| e.to_string())?;
    let sizes: Vec<usize> = summary
        .arms
        .iter()
        .flat_map(|a| a.points.iter().map(|p| p.size))
        .collect();
    let x_min = sizes.iter().copied().min().unwrap_or(0) as f64;
    let x_max = sizes.iter().copied().max().unwrap_or(1) as f64;
    let x_pad = ((x_max - x_min) * 0.04).max(1.0);
    let columns = if has_paired(summary) { 3 } else { 2 };
    let areas = root.split_evenly((1, columns));
    if let Some(area) = areas.get(2) {
        draw_paired(area, summary, (x_min - x_pad, x_max + x_pad))?;
    }
    for (area, panel) in areas.iter().zip([Panel::Mse, Panel::Accuracy]) {
        let (y_min, y_max) = range(&summary.arms, panel);
        let mut chart = ChartBuilder::on(area)
            .margin(18)
            .caption(panel.title(), ("sans-serif", 19))
            .x_label_area_size(46)
            .y_label_area_size(72)
            .build_cartesian_2d((x_min - x_pad)..(x_max + x_pad), y_min..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("training-set size")
            .y_desc(panel.unit())
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .max_light_lines(1)
            .light_line_style(RGBColor(240, 240, 240))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| match panel {
                Panel::Mse => format!("{y:.0}"),
                Panel::Accuracy => format!("{y:.2}"),
            })
            .draw()
            .map_err(|e| e.to_string())?;
        for arm in &summary.arms {
            let [r, g, b] = arm_rgb(arm.arm);
            let color = RGBColor(r, g, b);
            let points: Vec<(f64, f64, f64)> = arm
                .points
                .iter()
                .map(|p| {
                    let (mean, std) = panel.value(p);
                    (p.size as f64, mean, std)
                })
                .collect();
            let band: Vec<(f64, f64)> = points
                .iter()
                .map(|&(x, m, s)| (x, m + s))
                .chain(points.iter().rev().map(|&(x, m, s)| (x, m - s)))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(band, color.mix(0.18))))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|&(x, m, _)| (x, m)),
                    color.stroke_width(3),
                ))
                .map_err(|e| e.to_string())?
                .label(arm_label(arm.arm, mode))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(3))
                });
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&(x, m, _)| Circle::new((x, m), 4, color.filled())),
                )
                .map_err(|e| e.to_string())?;
        }
        draw_legend(&mut chart)?;
    }
    root.present().map_err(|e| e.to_string())
}

fn has_paired(summary: &Summary) -> bool {
    summary
        .arms
        .iter()
        .any(|a| !a.paired_differences.is_empty())
}

/// The third panel: each arm − random test MSE per size, mean of the paired repeats with
/// its 95 % bootstrap interval, and the zero line (below it the arm beats random).
fn draw_paired<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    summary: &Summary,
    (x_lo, x_hi): (f64, f64),
) -> Result<(), String> {
    let compared: Vec<_> = summary
        .arms
        .iter()
        .filter(|a| !a.paired_differences.is_empty())
        .collect();
    let all = compared.iter().flat_map(|a| &a.paired_differences);
    let lo = all.clone().map(|p| p.lower).fold(0.0, f64::min);
    let hi = all.map(|p| p.upper).fold(0.0, f64::max);
    let pad = ((hi - lo) * 0.08).max(1e-6);
    let mut chart = ChartBuilder::on(area)
        .margin(18)
        .caption("Arm − random, paired (95 % CI)", ("sans-serif", 19))
        .x_label_area_size(46)
        .y_label_area_size(72)
        .build_cartesian_2d(x_lo..x_hi, (lo - pad)..(hi + pad))
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("training-set size")
        .y_desc("Δ MSE (kPa²)")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .max_light_lines(1)
        .light_line_style(RGBColor(240, 240, 240))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(
            [(x_lo, 0.0), (x_hi, 0.0)],
            RGBColor(120, 120, 120).stroke_width(1),
        ))
        .map_err(|e| e.to_string())?;
    // Arms side by side at each size, so their intervals do not hide each other.
    let spread = (x_hi - x_lo) * 0.008;
    for (k, arm) in compared.iter().enumerate() {
        let offset = (k as f64 - (compared.len() as f64 - 1.0) / 2.0) * spread;
        let [r, g, b] = arm_rgb(arm.arm);
        let color = RGBColor(r, g, b);
        let d = &arm.paired_differences;
        let x = |p: &crate::experiment::stats::PairedDifference| p.size as f64 + offset;
        chart
            .draw_series(d.iter().map(|p| {
                PathElement::new(
                    vec![(x(p), p.lower), (x(p), p.upper)],
                    color.stroke_width(2),
                )
            }))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                d.iter().map(|p| (x(p), p.mean)),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                d.iter()
                    .map(|p| Circle::new((x(p), p.mean), 4, color.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The figure as an RGB image.
pub fn render_curves(summary: &Summary, mode: Mode, title: &str) -> image::RgbImage {
    register_font();
    let width = if has_paired(summary) { 2000 } else { 1400u32 };
    let height = 560u32;
    let mut buffer = vec![0u8; (width * height * 3) as usize];
    if let Err(message) = draw(&mut buffer, (width, height), summary, mode, title) {
        // Drawing into memory only fails on a plotters bug; keep what was drawn.
        eprintln!("warning: the curves figure is incomplete ({message})");
    }
    image::RgbImage::from_raw(width, height, buffer).expect("buffer matches the size")
}

/// Writes the figure to `path` atomically.
pub fn write_curves(
    path: &Path,
    summary: &Summary,
    mode: Mode,
    title: &str,
) -> Result<(), IoError> {
    crate::render::write_rgb_png(path, &render_curves(summary, mode, title))
}

/// F's test MSE against training-set size on log–log axes, with the per-pixel mean map's
/// MSE as a reference line: the learning curve of the random baseline.
pub fn render_learning_curve(
    points: &[(usize, f64)],
    mean_map_mse: f64,
    steps: usize,
) -> image::RgbImage {
    register_font();
    let (width, height) = (900u32, 560u32);
    let mut buffer = vec![0u8; (width * height * 3) as usize];
    let drawn = (|| -> Result<(), String> {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let x_max = points.iter().map(|p| p.0).max().unwrap_or(1) as f64;
        let x_min = points.iter().map(|p| p.0).min().unwrap_or(1).max(1) as f64;
        let y_values = points.iter().map(|p| p.1).chain([mean_map_mse]);
        let y_max = y_values.clone().fold(f64::MIN, f64::max).max(1.0);
        let y_min = y_values.fold(f64::MAX, f64::min).max(1.0);
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .caption(
                format!("F's test MSE against random real training frames ({steps} steps each)"),
                ("sans-serif", 20),
            )
            .x_label_area_size(46)
            .y_label_area_size(72)
            .build_cartesian_2d(
                ((x_min * 0.8)..(x_max * 1.25)).log_scale(),
                ((y_min * 0.8)..(y_max * 1.25)).log_scale(),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("training-set size")
            .y_desc("MSE (kPa²)")
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        let [r, g, b] = arm_rgb(Arm::Baseline);
        let color = RGBColor(r, g, b);
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|&(n, m)| (n as f64, m)),
                color.stroke_width(3),
            ))
            .map_err(|e| e.to_string())?
            .label("F(image), random real frames")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(3))
            });
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&(n, m)| Circle::new((n as f64, m), 4, color.filled())),
            )
            .map_err(|e| e.to_string())?;
        let grey = RGBColor(120, 120, 120);
        chart
            .draw_series(LineSeries::new(
                [(x_min * 0.8, mean_map_mse), (x_max * 1.25, mean_map_mse)],
                grey.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label("per-pixel mean map")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 22, y)], grey.stroke_width(2))
            });
        draw_legend(&mut chart)?;
        root.present().map_err(|e| e.to_string())
    })();
    if let Err(message) = drawn {
        eprintln!("warning: the learning-curve figure is incomplete ({message})");
    }
    image::RgbImage::from_raw(width, height, buffer).expect("buffer matches the size")
}

/// Writes the learning-curve figure to `path` atomically.
pub fn write_learning_curve(
    path: &Path,
    points: &[(usize, f64)],
    mean_map_mse: f64,
    steps: usize,
) -> Result<(), IoError> {
    crate::render::write_rgb_png(path, &render_learning_curve(points, mean_map_mse, steps))
}
