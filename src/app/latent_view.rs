//! The latent view: the pool's encoder means projected on the two leading principal axes,
//! coloured by set membership, plaque type or peak stress; the adaptive arm's training
//! points; arrows from the chosen originals to their gradient-moved points. Hover shows a
//! thumbnail, a click selects the nearest point (in screen space) or decodes the clicked
//! empty location, Shift+drag box-selects.

use egui::Color32;
use egui_plot::{Arrows, Legend, MarkerShape, Plot, PlotPoint, PlotPoints, Points};
use serde::{Deserialize, Serialize};

use super::{SulaApp, images};
use crate::worker::{Arrow, Command, PlaqueKind};

/// What the pool points' colour shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColorBy {
    Membership,
    Plaque,
    PeakStress,
    /// Which arm chose each pool frame, and in which round (later rounds darker).
    ChosenBy,
    /// The frame's position in the pool's order: along the pullback for a DICOM pool, so
    /// neighbouring frames of a pullback show as neighbouring colours.
    Position,
}

/// Bins of the turbo scale that position and peak-stress colouring use, each one legend item.
const COLOUR_BINS: usize = 8;

/// `len` frames in order split into at most [`COLOUR_BINS`] consecutive, non-empty ranges.
fn position_bins(len: usize) -> Vec<std::ops::Range<usize>> {
    let bins = COLOUR_BINS.min(len);
    (0..bins)
        .map(|b| b * len / bins..(b + 1) * len / bins)
        .collect()
}

const PICK_RADIUS_PX: f32 = 8.0;

fn plaque_color(kind: PlaqueKind) -> Color32 {
    match kind {
        PlaqueKind::Fibrous => Color32::from_rgb(150, 150, 150),
        PlaqueKind::Lipid => Color32::from_rgb(220, 180, 40),
        PlaqueKind::Calcified => Color32::from_rgb(90, 160, 230),
        PlaqueKind::Mixed => Color32::from_rgb(170, 90, 200),
        PlaqueKind::Unannotated => Color32::from_rgb(110, 110, 120),
    }
}

/// The pool in grey, and over it the frames each arm chose: round 0 (shared by the arms
/// that start from real frames) in white, later rounds in the arm's colour, lighter for
/// early rounds and darker for late ones. One legend entry per arm.
fn chosen_by(plot: &mut egui_plot::PlotUi, view: &super::View) {
    let all: Vec<[f64; 2]> = view.points.iter().map(|p| plot_xy(p.xy)).collect();
    plot.points(
        Points::new("pool", all)
            .radius(2.0)
            .color(Color32::from_gray(90)),
    );
    let position = |index: usize| view.points.get(index).map(|p| plot_xy(p.xy));
    let last_round = view
        .chosen
        .iter()
        .flat_map(|(_, c)| c.iter().map(|&(_, r)| r))
        .max()
        .unwrap_or(0)
        .max(1);
    let mode = view.rows.first().map(|r| r.mode).unwrap_or_default();
    let round_zero: Vec<[f64; 2]> = view
        .chosen
        .iter()
        .flat_map(|(_, c)| {
            c.iter()
                .filter(|&&(_, r)| r == 0)
                .filter_map(|&(i, _)| position(i))
        })
        .collect();
    plot.points(
        Points::new("round 0", round_zero)
            .radius(3.0)
            .color(Color32::from_gray(235)),
    );
    for (arm, chosen) in &view.chosen {
        let [r, g, b] = crate::experiment::plot::arm_rgb(*arm);
        let name = crate::experiment::plot::arm_label(*arm, mode);
        for round in 1..=last_round {
            let pts: Vec<[f64; 2]> = chosen
                .iter()
                .filter(|&&(_, joined)| joined == round)
                .filter_map(|&(i, _)| position(i))
                .collect();
            if pts.is_empty() {
                continue;
            }
            // From 1.3× (lighter) at round 1 to 0.7× (darker) at the last round.
            let shade = 1.3 - 0.6 * (round - 1) as f32 / (last_round - 1).max(1) as f32;
            let tone = |c: u8| (f32::from(c) * shade).min(255.0) as u8;
            plot.points(
                Points::new(name.clone(), pts)
                    .radius(3.0)
                    .color(Color32::from_rgb(tone(r), tone(g), tone(b))),
            );
        }
    }
}

/// A 2-D latent position as plot coordinates.
fn plot_xy(p: [f32; 2]) -> [f64; 2] {
    [f64::from(p[0]), f64::from(p[1])]
}

/// Arrow tails and tips, the tips a fraction `t` of the way along (for the slowed motion).
fn arrow_ends(arrows: &[crate::worker::Arrow], t: f32) -> (Vec<[f64; 2]>, Vec<[f64; 2]>) {
    arrows
        .iter()
        .map(|a| {
            let tip = [
                a.from[0] + (a.to[0] - a.from[0]) * t,
                a.from[1] + (a.to[1] - a.from[1]) * t,
            ];
            (plot_xy(a.from), plot_xy(tip))
        })
        .unzip()
}

pub fn ui(app: &mut SulaApp, ui: &mut egui::Ui) {
    controls(app, ui);
    if app.view.points.is_empty() {
        ui.label("The pool's latent embedding appears here once data and a VAE are loaded.");
        return;
    }
    ui.small("PCA of the pool's encoder means. Arrows: training points moved along the gradient of F's loss (orange tip = the harder point). Click a point to select it, click empty space to decode it, Shift+drag to box-select pool frames and moved points for export.");
    let animation = arrow_animation(app, ui);
    let shift = ui.input(|i| i.modifiers.shift);
    let response = super::plot_axes::readable(Plot::new("latent"))
        .legend(
            // An arm's rounds are shades of one colour under one name: show the first.
            Legend::default()
                .position(egui_plot::Corner::LeftTop)
                .follow_insertion_order(true)
                .color_conflict_handling(egui_plot::ColorConflictHandling::PickFirst),
        )
        .width(ui.available_width())
        .height(ui.available_height() - 54.0)
        .data_aspect(1.0)
        .allow_drag(!shift)
        .allow_boxed_zoom(false)
        .x_axis_label("PC 1")
        .y_axis_label("PC 2")
        .show(ui, |plot| {
            pool_points(plot, &app.view, app.settings.color_by);
            overlays(plot, &app.view, &app.settings, animation);
            plot.pointer_coordinate()
        });
    box_select(app, ui, &response, shift);
    if response.response.clicked()
        && let Some(pos) = response.response.interact_pointer_pos()
    {
        click(app, &response, pos);
    }
    if let Some(pos) = response.response.hover_pos()
        && let Some(i) = nearest_point(&app.view, &response.transform, pos)
    {
        tooltip(app, ui, i);
    }
    super::export_panel::ui(app, ui);
}

/// The colouring choices and the view's switches above the plot.
fn controls(app: &mut SulaApp, ui: &mut egui::Ui) {
    // Wrapped, so that a narrow window does not widen the panel past the screen.
    ui.horizontal_wrapped(|ui| {
        ui.heading("Latent space");
        ui.label("colour by");
        let c = &mut app.settings.color_by;
        ui.selectable_value(c, ColorBy::Membership, "set membership");
        ui.selectable_value(c, ColorBy::Plaque, "plaque type");
        ui.selectable_value(c, ColorBy::PeakStress, "peak stress");
        ui.selectable_value(c, ColorBy::Position, "position in pullback")
            .on_hover_text("The pool's frame order: along the pullback for a DICOM pool");
        ui.selectable_value(c, ColorBy::ChosenBy, "chosen by arm")
            .on_hover_text(
                "Pool frames each arm of the study chose in this repeat; later rounds darker",
            );
        ui.checkbox(&mut app.settings.show_history, "arrow history");
        ui.checkbox(&mut app.settings.teaching, "teaching mode");
    });
}

/// How far this round's arrows have grown (teaching mode animates them over 2.5 s).
fn arrow_animation(app: &SulaApp, ui: &egui::Ui) -> f32 {
    let animation = if app.settings.teaching {
        app.view
            .round_arrived
            .map_or(1.0, |t| (t.elapsed().as_secs_f32() / 2.5).min(1.0))
    } else {
        1.0
    };
    if animation < 1.0 {
        ui.ctx().request_repaint();
    }
    animation
}

/// The pool's points, coloured as chosen.
fn pool_points(plot: &mut egui_plot::PlotUi, view: &super::View, color_by: ColorBy) {
    let (peak_lo, peak_hi) = view
        .points
        .iter()
        .filter_map(|p| p.peak_kpa)
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    let turbo = crate::render::colormap::ColorMap::turbo();
    match color_by {
        ColorBy::ChosenBy => chosen_by(plot, view),
        ColorBy::Membership => {
            let all: Vec<[f64; 2]> = view.points.iter().map(|p| plot_xy(p.xy)).collect();
            plot.points(
                Points::new("pool", all)
                    .radius(2.0)
                    .color(Color32::from_gray(150)),
            );
        }
        ColorBy::Plaque => {
            for kind in [
                PlaqueKind::Fibrous,
                PlaqueKind::Lipid,
                PlaqueKind::Calcified,
                PlaqueKind::Mixed,
                PlaqueKind::Unannotated,
            ] {
                let pts: Vec<[f64; 2]> = view
                    .points
                    .iter()
                    .filter(|p| p.plaque == kind)
                    .map(|p| plot_xy(p.xy))
                    .collect();
                plot.points(
                    Points::new(kind.name(), pts)
                        .radius(2.0)
                        .color(plaque_color(kind)),
                );
            }
        }
        ColorBy::PeakStress => {
            // Bins of the turbo scale, each one item with its kPa range as name.
            let bins = COLOUR_BINS;
            for b in 0..bins {
                let lo = peak_lo + (peak_hi - peak_lo) * b as f32 / bins as f32;
                let hi = peak_lo + (peak_hi - peak_lo) * (b + 1) as f32 / bins as f32;
                let pts: Vec<[f64; 2]> = view
                    .points
                    .iter()
                    .filter(|p| {
                        p.peak_kpa
                            .is_some_and(|v| v >= lo && (v < hi || b == bins - 1))
                    })
                    .map(|p| plot_xy(p.xy))
                    .collect();
                let [r, g, bl] = turbo.map(
                    f64::from((lo + hi) / 2.0),
                    f64::from(peak_lo),
                    f64::from(peak_hi),
                );
                plot.points(
                    Points::new(format!("peak {lo:.0}–{hi:.0} kPa"), pts)
                        .radius(2.0)
                        .color(Color32::from_rgb(r, g, bl)),
                );
            }
        }
        ColorBy::Position => {
            let len = view.points.len();
            for range in position_bins(len) {
                let middle = (range.start + range.end) as f64 / 2.0;
                let [r, g, b] = turbo.map(middle, 0.0, len as f64);
                let name = format!("frames {}–{}", range.start, range.end - 1);
                let pts: Vec<[f64; 2]> = view.points[range].iter().map(|p| plot_xy(p.xy)).collect();
                plot.points(
                    Points::new(name, pts)
                        .radius(2.0)
                        .color(Color32::from_rgb(r, g, b)),
                );
            }
        }
    }
}

/// What lies over the pool: the project's frames, the training set, the arrows, the
/// selection and the points decoded by clicking.
fn overlays(
    plot: &mut egui_plot::PlotUi,
    view: &super::View,
    settings: &super::Settings,
    animation: f32,
) {
    if let Some(project) = &view.project {
        let annotated: Vec<[f64; 2]> = project.annotated_xy.iter().map(|p| plot_xy(*p)).collect();
        plot.points(
            Points::new("annotated (project)", annotated)
                .radius(3.5)
                .color(Color32::from_rgb(80, 220, 120)),
        );
        let pending: Vec<[f64; 2]> = project.pending_xy.iter().map(|p| plot_xy(*p)).collect();
        plot.points(
            Points::new("suggested, awaiting annotation", pending)
                .radius(3.5)
                .shape(MarkerShape::Diamond)
                .color(Color32::from_rgb(230, 97, 1)),
        );
    }
    // Colouring by arm already marks the training sets.
    if !view.training.is_empty() && settings.color_by != ColorBy::ChosenBy {
        let pts: Vec<[f64; 2]> = view.training.iter().map(|p| plot_xy(*p)).collect();
        plot.points(
            Points::new("training set (adaptive)", pts)
                .radius(3.0)
                .shape(MarkerShape::Circle)
                .color(Color32::from_rgb(80, 220, 120)),
        );
    }
    if settings.show_history && !view.history.is_empty() {
        let (from, to) = arrow_ends(&view.history, 1.0);
        plot.arrows(
            Arrows::new(
                "earlier rounds",
                PlotPoints::from(from),
                PlotPoints::from(to),
            )
            .color(Color32::from_rgba_unmultiplied(230, 97, 1, 70)),
        );
    }
    if !view.arrows.is_empty() {
        let (from, to) = arrow_ends(&view.arrows, animation);
        plot.points(
            Points::new("originals", from.clone())
                .radius(3.5)
                .color(Color32::from_rgb(43, 108, 176)),
        );
        plot.arrows(
            Arrows::new(
                "gradient step z to z'",
                PlotPoints::from(from),
                PlotPoints::from(to.clone()),
            )
            .color(Color32::from_rgb(230, 97, 1)),
        );
        plot.points(
            Points::new("moved z'", to)
                .radius(3.5)
                .color(Color32::from_rgb(230, 97, 1)),
        );
    }
    if !view.selected.is_empty() {
        let pts: Vec<[f64; 2]> = view
            .selected
            .iter()
            .filter_map(|&i| view.points.get(i))
            .map(|p| plot_xy(p.xy))
            .collect();
        plot.points(
            Points::new("selected", pts)
                .radius(5.0)
                .filled(false)
                .color(Color32::from_rgb(220, 30, 30)),
        );
    }
    if !view.selected_moved.is_empty() {
        let pts: Vec<[f64; 2]> = shown_arrows(view, settings.show_history)
            .filter(|a| view.selected_moved.contains(&a.at))
            .map(|a| plot_xy(a.to))
            .collect();
        plot.points(
            Points::new("selected moved", pts)
                .radius(6.0)
                .filled(false)
                .shape(MarkerShape::Square)
                .color(Color32::from_rgb(220, 30, 30)),
        );
    }
    if !view.decoded.is_empty() {
        let pts: Vec<[f64; 2]> = view.decoded.iter().map(|(p, _)| plot_xy(*p)).collect();
        plot.points(
            Points::new("decoded here", pts)
                .radius(5.0)
                .shape(MarkerShape::Diamond)
                .color(Color32::from_rgb(20, 160, 90)),
        );
    }
}

/// The pool point within [`PICK_RADIUS_PX`] of the screen position `pos`, if any.
fn nearest_point(
    view: &super::View,
    transform: &egui_plot::PlotTransform,
    pos: egui::Pos2,
) -> Option<usize> {
    view.points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                i,
                transform
                    .position_from_point(&PlotPoint::new(p.xy[0], p.xy[1]))
                    .distance(pos),
            )
        })
        .filter(|(_, d)| *d <= PICK_RADIUS_PX)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// Shift+drag draws a box; when it is let go, the pool frames and the labelled moved
/// points inside it become the selection.
fn box_select(
    app: &mut SulaApp,
    ui: &mut egui::Ui,
    response: &egui_plot::PlotResponse<Option<PlotPoint>>,
    shift: bool,
) {
    let drag_id = ui.scope_id().with("box_select_start");
    let transform = response.transform;
    if shift
        && response.response.drag_started()
        && let Some(p) = response.inner
    {
        ui.data_mut(|d| d.insert_temp(drag_id, [p.x, p.y]));
    }
    if let Some(start) = ui.data(|d| d.get_temp::<[f64; 2]>(drag_id)) {
        if let Some(current) = response.inner {
            let a = transform.position_from_point(&PlotPoint::new(start[0], start[1]));
            let b = transform.position_from_point(&current);
            ui.painter().rect_stroke(
                egui::Rect::from_two_pos(a, b),
                0.0,
                egui::Stroke::new(1.0, Color32::from_rgb(220, 30, 30)),
                egui::StrokeKind::Middle,
            );
            if response.response.drag_stopped() {
                let (x0, x1) = (start[0].min(current.x), start[0].max(current.x));
                let (y0, y1) = (start[1].min(current.y), start[1].max(current.y));
                let inside = |xy: [f32; 2]| {
                    let [x, y] = plot_xy(xy);
                    x >= x0 && x <= x1 && y >= y0 && y <= y1
                };
                let view = &app.view;
                let selected = view
                    .points
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| inside(p.xy))
                    .map(|(i, _)| i)
                    .collect();
                // Moved points whose sample joined the training set (they have a label).
                let selected_moved = shown_arrows(view, app.settings.show_history)
                    .filter(|a| a.joined && inside(a.to))
                    .map(|a| a.at)
                    .collect();
                app.view.selected = selected;
                app.view.selected_moved = selected_moved;
                ui.data_mut(|d| d.remove::<[f64; 2]>(drag_id));
            }
        }
        if !response.response.dragged() && !response.response.drag_stopped() {
            ui.data_mut(|d| d.remove::<[f64; 2]>(drag_id));
        }
    }
}

/// A click selects (or unselects) the nearest pool point, or decodes the empty place.
fn click(
    app: &mut SulaApp,
    response: &egui_plot::PlotResponse<Option<PlotPoint>>,
    pos: egui::Pos2,
) {
    match nearest_point(&app.view, &response.transform, pos) {
        Some(i) => {
            if let Some(at) = app.view.selected.iter().position(|&s| s == i) {
                app.view.selected.remove(at);
            } else {
                app.view.selected.push(i);
            }
        }
        None => {
            if let (Some((mean, axes)), Some(p)) = (&app.view.projection, response.inner) {
                let projection = crate::sampling::Projection {
                    mean: mean.clone(),
                    axes: axes.clone(),
                };
                app.send(Command::Decode {
                    z: projection.lift([p.x as f32, p.y as f32]),
                    generator: app.settings.generator,
                });
            }
        }
    }
}

/// The hovered pool frame: its thumbnail, id, plaque and peak stress.
fn tooltip(app: &mut SulaApp, ui: &mut egui::Ui, i: usize) {
    let p = &app.view.points[i];
    let ctx = ui.ctx().clone();
    let texture = app.images.get(&ctx, ("img", &p.thumbnail), || {
        images::grey(app.view.data_size, &p.thumbnail)
    });
    egui::Tooltip::always_open(
        ctx.clone(),
        ui.layer_id(),
        ui.scope_id().with("latent_tooltip"),
        egui::PopupAnchor::Pointer,
    )
    .show(|ui| {
        ui.add(egui::Image::new(&texture).fit_to_exact_size(egui::vec2(96.0, 96.0)));
        ui.label(&p.id);
        ui.small(format!("plaque: {}", p.plaque.name()));
        if let Some(peak) = p.peak_kpa {
            ui.small(format!("peak stress (p99): {peak:.0} kPa"));
        }
    });
}

/// The arrows on screen: this round's, and earlier rounds' when the history is shown.
fn shown_arrows(view: &super::View, history: bool) -> impl Iterator<Item = &Arrow> {
    let earlier: &[Arrow] = if history { &view.history } else { &[] };
    view.arrows.iter().chain(earlier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_bins_cover_every_frame_once_in_order() {
        for len in [0, 1, 5, 8, 9, 200, 1201] {
            let bins = position_bins(len);
            assert_eq!(bins.len(), COLOUR_BINS.min(len), "{len} frames");
            let covered: Vec<usize> = bins.iter().flat_map(|r| r.clone()).collect();
            assert_eq!(covered, (0..len).collect::<Vec<_>>(), "{len} frames");
            assert!(bins.iter().all(|r| !r.is_empty()), "{len} frames: {bins:?}");
        }
    }
}
