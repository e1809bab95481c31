//! Axis ticks for the app's small plots. egui_plot's default grid steps by powers of ten
//! and paints a tick label only where labels are at least 60 points apart (x) or 20 (y),
//! so a plot 110 points tall whose values span 7 × 10⁴, or one 240 points wide over 8
//! epochs, showed no label but 0. These grids step by 1, 2 or 5 × 10ⁿ, chosen so that
//! the labelled step always fits, and label each tick with the decimals its step needs
//! (egui_plot's own formatter rounds the decimals of a 0.5 step to none, so 0.5 read "0").

use egui::Rangef;
use egui_plot::{GridInput, GridMark, Plot, uniform_grid_spacer};

/// The spacing, in points, below which egui_plot draws no grid line; the grid passed to
/// the spacer is scaled by it, so the plots set it explicitly.
const GRID_MIN_POINTS: f32 = 8.0;
/// Spacing between labelled ticks: above egui_plot's fade-in range (60–80 points on x,
/// 20–30 on y), so the labels are drawn at full strength.
const X_LABEL_POINTS: f64 = 80.0;
const Y_LABEL_POINTS: f64 = 30.0;

/// `plot` with grids whose labelled steps fit its size on both axes.
pub fn readable(plot: Plot<'_>) -> Plot<'_> {
    plot.grid_spacing(Rangef::new(GRID_MIN_POINTS, 300.0))
        .x_grid_spacer(uniform_grid_spacer(|input| steps(input, X_LABEL_POINTS)))
        .y_grid_spacer(uniform_grid_spacer(|input| steps(input, Y_LABEL_POINTS)))
        .x_axis_formatter(|mark, _| tick_label(mark))
        .y_axis_formatter(|mark, _| tick_label(mark))
}

/// The mark's value with as many decimals as its step has: 0.5 steps print "0.5", 20 000
/// steps print "20000".
fn tick_label(mark: GridMark) -> String {
    let decimals = if mark.step_size >= 1.0 {
        0
    } else {
        (-mark.step_size.log10() - 1e-9).ceil() as usize
    };
    egui::emath::format_with_decimals_in_range(mark.value, decimals..=decimals)
}

/// A fine step, the labelled step and a coarse one, each a multiple of the one before.
fn steps(input: GridInput, label_points: f64) -> [f64; 3] {
    let value_per_point = input.base_step_size / f64::from(GRID_MIN_POINTS);
    let (label, fine) = nice_step(value_per_point * label_points);
    [fine, label, label * 10.0]
}

/// The smallest 1, 2 or 5 × 10ⁿ that is at least `least`, and the finer grid step it is
/// a multiple of (a fifth, or for a 2 a half).
fn nice_step(least: f64) -> (f64, f64) {
    if !least.is_finite() || least <= 0.0 {
        return (1.0, 0.2);
    }
    let power = 10f64.powf(least.log10().floor());
    [(1.0, 0.2), (2.0, 1.0), (5.0, 1.0), (10.0, 2.0)]
        .into_iter()
        .map(|(step, fine)| (step * power, fine * power))
        .find(|&(step, _)| step >= least * (1.0 - 1e-9))
        .unwrap_or((10.0 * power, 2.0 * power))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leading_digit(step: f64) -> u32 {
        (step / 10f64.powf(step.log10().floor())).round() as u32
    }

    fn input(span: f64, points: f64) -> GridInput {
        GridInput {
            bounds: (0.0, span),
            base_step_size: span / points * f64::from(GRID_MIN_POINTS),
        }
    }

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        for least in [0.013, 0.2, 0.21, 3.0, 7.5, 45.0, 999.0, 12_345.0] {
            let (s, _) = nice_step(least);
            assert!(s >= least, "{s} < {least}");
            assert!(
                s < least * 2.5 + 1e-12,
                "{s} is more than the next step above {least}"
            );
            assert!([1, 2, 5].contains(&leading_digit(s)), "{s}");
        }
        assert_eq!(nice_step(2.0).0, 2.0);
        assert_eq!(nice_step(0.0).0, 1.0);
    }

    #[test]
    fn the_labelled_step_fits_where_the_power_of_ten_grid_showed_only_zero() {
        // 8 epochs over 240 points and 70,000 loss units over 110 points: the cases the
        // stage-1 loss plot showed unlabelled.
        let [fine, label, coarse] = steps(input(8.0, 240.0), X_LABEL_POINTS);
        assert_eq!(label, 5.0);
        assert!(label * 240.0 / 8.0 >= X_LABEL_POINTS);
        assert_eq!((fine, coarse), (1.0, 50.0));
        let [fine, label, _] = steps(input(70_000.0, 110.0), Y_LABEL_POINTS);
        assert_eq!(label, 20_000.0);
        assert_eq!(fine, 10_000.0);
        assert!(label * 110.0 / 70_000.0 >= Y_LABEL_POINTS);
    }

    #[test]
    fn tick_labels_keep_the_decimals_of_their_step() {
        let label = |value, step_size| tick_label(GridMark { value, step_size });
        assert_eq!(label(0.5, 0.5), "0.5");
        assert_eq!(label(1.0, 0.5), "1.0");
        assert_eq!(label(0.75, 0.05), "0.75");
        assert_eq!(label(0.3, 0.1), "0.3");
        assert_eq!(label(0.4, 0.2), "0.4");
        assert_eq!(label(20_000.0, 20_000.0), "20000");
        assert_eq!(label(150.0, 50.0), "150");
    }

    #[test]
    fn each_step_is_a_multiple_of_the_finer_one() {
        for span in [0.7, 3.0, 8.0, 130.0, 2_400.0, 70_000.0] {
            let [fine, label, coarse] = steps(input(span, 170.0), Y_LABEL_POINTS);
            for (a, b) in [(fine, label), (label, coarse)] {
                let ratio = b / a;
                assert!(
                    (ratio - ratio.round()).abs() < 1e-9 && ratio >= 2.0,
                    "{a} {b}"
                );
            }
        }
    }
}
