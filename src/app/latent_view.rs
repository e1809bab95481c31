//! The latent view: the pool's encoder means projected on the two leading principal axes,
//! coloured by set membership, plaque type or peak stress; the adaptive arm's training
//! points; arrows from the chosen originals to their gradient-moved points. Hover shows a
//! thumbnail, a click selects the nearest point (in screen space) or decodes the clicked
//! empty location, Shift+drag box-selects. On a project: the frames coloured by their
//! state in the annotation loop or their place in the pullback, each gradient-SNN
//! suggestion as its arrow z → z' and its snap to the chosen frame, and hover shows a
//! frame between its neighbours in the pullback.

use std::time::Instant;

use egui::Color32;
use egui_plot::{Arrows, Legend, MarkerShape, Plot, PlotPoint, PlotPoints, Points};
use serde::{Deserialize, Serialize};

use super::{Shared, images};
use crate::export::collect::MovedRef;
use crate::sampling::{Arm, Generator, Mode};
use crate::worker::{Arrow, Command, FrameState, PlaqueKind, PoolPoint, ProjectView, SampleView};

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
    /// A project's frames: annotated, out for annotation, or still in the pool.
    State,
}

impl ColorBy {
    /// The colouring shown: the chosen one when it means something for what is open (a
    /// project's frames have no plaque or arm), else the default for it.
    fn shown(self, project: bool) -> ColorBy {
        match (project, self) {
            (true, ColorBy::State | ColorBy::Position) => self,
            (true, _) => ColorBy::State,
            (false, ColorBy::State) => ColorBy::Membership,
            (false, _) => self,
        }
    }
}

/// Colours of a project frame's states.
fn state_color(state: FrameState) -> Color32 {
    match state {
        FrameState::Pool => Color32::from_gray(150),
        FrameState::Suggested => Color32::from_rgb(240, 80, 170),
        FrameState::Annotated => Color32::from_rgb(80, 220, 120),
    }
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

/// The latent view's settings kept between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LatentSettings {
    pub color_by: ColorBy,
    /// Earlier rounds' arrows are drawn too.
    pub show_history: bool,
}

impl Default for LatentSettings {
    fn default() -> Self {
        LatentSettings {
            color_by: ColorBy::Membership,
            show_history: false,
        }
    }
}

/// What is selected in the latent view, for the export strip under it.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Pool frames (indices into the shared points).
    pub pool: Vec<usize>,
    /// Gradient-moved samples.
    pub moved: Vec<MovedRef>,
}

/// What the latent view shows or sets of other panels' state.
pub struct Others<'a> {
    /// The study's generator, which decodes a clicked place.
    pub generator: Generator,
    /// Teaching mode's switch, which sits among the view's switches.
    pub teaching: &'a mut bool,
    /// The samples decoded so far, marked where they were decoded.
    pub decoded: &'a [([f32; 2], SampleView)],
    /// The open project, whose annotated and suggested frames are marked.
    pub project: Option<&'a ProjectView>,
}

/// The latent view: its settings and the study's marks over the pool's points.
#[derive(Default)]
pub struct LatentView {
    /// Kept between runs (eframe storage).
    pub settings: LatentSettings,
    /// Side in pixels of the pool's thumbnails (the working resolution of the data).
    pub data_size: usize,
    /// The PCA the points are drawn in (mean and two axes), to lift a click back to a
    /// latent code.
    projection: Option<(Vec<f32>, [Vec<f32>; 2])>,
    /// The adaptive arm's training set.
    pub training: Vec<[f32; 2]>,
    /// Per arm, the pool frames it chose in the current repeat and the round of each.
    pub chosen: Vec<(Arm, Vec<(usize, usize)>)>,
    /// The mode of the study `chosen` comes from, for the arms' names.
    chosen_mode: Mode,
    /// This round's gradient steps.
    pub arrows: Vec<Arrow>,
    /// Earlier rounds' gradient steps.
    pub history: Vec<Arrow>,
    pub selection: Selection,
    /// When the latest round arrived (the teaching animation runs from here).
    round_arrived: Option<Instant>,
}

impl LatentView {
    /// Starts with the settings kept from the last run and nothing to show.
    pub fn new(settings: LatentSettings) -> LatentView {
        LatentView {
            settings,
            ..LatentView::default()
        }
    }

    /// New data, of thumbnails `size` pixels a side: nothing of the old pool stays.
    pub fn new_data(&mut self, size: usize) {
        *self = LatentView {
            data_size: size,
            ..LatentView::new(std::mem::take(&mut self.settings))
        };
    }

    /// New points, in the PCA `projection`: the marks over the old ones go.
    pub fn new_latent(&mut self, projection: (Vec<f32>, [Vec<f32>; 2])) {
        self.projection = Some(projection);
        self.training.clear();
        self.arrows.clear();
        self.history.clear();
        self.selection = Selection::default();
    }

    /// A new study: the old one's rounds go, and so do selected moved samples.
    pub fn new_study(&mut self) {
        self.chosen.clear();
        self.arrows.clear();
        self.history.clear();
        self.training.clear();
        self.selection.moved.clear();
    }

    /// A finished round of `arm` in a study of `mode`: the frames it has chosen, and for
    /// the adaptive arm its gradient steps and training set.
    pub fn push_round(
        &mut self,
        arm: Arm,
        mode: Mode,
        chosen: Vec<(usize, usize)>,
        arrows: Vec<Arrow>,
        training: Vec<[f32; 2]>,
    ) {
        self.chosen_mode = mode;
        match self.chosen.iter_mut().find(|(a, _)| *a == arm) {
            Some((_, existing)) => *existing = chosen,
            None => self.chosen.push((arm, chosen)),
        }
        if arm == Arm::Adaptive {
            self.history.append(&mut self.arrows);
            self.arrows = arrows;
            self.training = training;
            self.round_arrived = Some(Instant::now());
        }
    }

    /// Whether any round has moved samples to export.
    pub fn has_moves(&self) -> bool {
        !self.arrows.is_empty() || !self.history.is_empty()
    }

    /// The switches, and the plot of the shared points with hover, click and box
    /// selection, once there are points.
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared, others: Others<'_>) {
        let project = others.project.is_some();
        self.controls(ui, others.teaching, project);
        if shared.points.is_empty() {
            ui.label("The pool's latent embedding appears here once data and a VAE are loaded.");
            return;
        }
        ui.small(if project {
            "PCA of the pullback's encoder means. Arrows: annotated frames moved along the gradient of F's loss to z' (orange), each snapped to the nearest free frame (blue), which was suggested. Hover a frame to see it between its neighbours in the pullback."
        } else {
            "PCA of the pool's encoder means. Arrows: training points moved along the gradient of F's loss (orange tip = the harder point). Click a point to select it, click empty space to decode it, Shift+drag to box-select pool frames and moved points for export."
        });
        let animation = self.arrow_animation(*others.teaching, ui);
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
                self.pool_points(plot, &shared.points, others.project);
                self.overlays(plot, &shared.points, &others, animation);
                plot.pointer_coordinate()
            });
        self.box_select(&shared.points, ui, &response, shift);
        if response.response.clicked()
            && let Some(pos) = response.response.interact_pointer_pos()
        {
            // A project's pool has no decoder that labels, so clicks only select.
            let generator = (!project).then_some(others.generator);
            self.click(shared, generator, &response, pos);
        }
        if let Some(pos) = response.response.hover_pos()
            && let Some(i) = nearest_point(&shared.points, &response.transform, pos)
        {
            match others.project {
                Some(project) => self.pullback_tooltip(shared, ui, i, project),
                None => self.tooltip(shared, ui, i),
            }
        }
    }

    /// The colouring choices and the view's switches above the plot.
    fn controls(&mut self, ui: &mut egui::Ui, teaching: &mut bool, project: bool) {
        // Wrapped, so that a narrow window does not widen the panel past the screen.
        ui.horizontal_wrapped(|ui| {
            ui.heading("Latent space");
            ui.label("colour by");
            let c = &mut self.settings.color_by;
            *c = c.shown(project);
            if project {
                ui.selectable_value(c, ColorBy::State, "annotation state")
                    .on_hover_text(
                        "Annotated, out for annotation in a batch, or still in the pool",
                    );
                ui.selectable_value(c, ColorBy::Position, "position in pullback")
                    .on_hover_text("The frame's place along the pullback");
                return;
            }
            ui.selectable_value(c, ColorBy::Membership, "set membership");
            ui.selectable_value(c, ColorBy::Plaque, "plaque type");
            ui.selectable_value(c, ColorBy::PeakStress, "peak stress");
            ui.selectable_value(c, ColorBy::Position, "position in pullback")
                .on_hover_text("The pool's frame order: along the pullback for a DICOM pool");
            ui.selectable_value(c, ColorBy::ChosenBy, "chosen by arm")
                .on_hover_text(
                    "Pool frames each arm of the study chose in this repeat; later rounds darker",
                );
            ui.checkbox(&mut self.settings.show_history, "arrow history");
            ui.checkbox(teaching, "teaching mode");
        });
    }

    /// How far this round's arrows have grown (teaching mode animates them over 2.5 s).
    fn arrow_animation(&self, teaching: bool, ui: &egui::Ui) -> f32 {
        let animation = if teaching {
            self.round_arrived
                .map_or(1.0, |t| (t.elapsed().as_secs_f32() / 2.5).min(1.0))
        } else {
            1.0
        };
        if animation < 1.0 {
            ui.ctx().request_repaint();
        }
        animation
    }

    /// The arrows on screen: this round's, and earlier rounds' when the history is shown.
    fn shown_arrows(&self) -> impl Iterator<Item = &Arrow> {
        let earlier: &[Arrow] = if self.settings.show_history {
            &self.history
        } else {
            &[]
        };
        self.arrows.iter().chain(earlier)
    }

    /// The pool's points, coloured as chosen.
    fn pool_points(
        &self,
        plot: &mut egui_plot::PlotUi,
        points: &[PoolPoint],
        project: Option<&ProjectView>,
    ) {
        let (peak_lo, peak_hi) = points
            .iter()
            .filter_map(|p| p.peak_kpa)
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        let turbo = crate::render::colormap::ColorMap::turbo();
        match self.settings.color_by.shown(project.is_some()) {
            ColorBy::State => state_points(plot, points, project),
            ColorBy::ChosenBy => self.chosen_by(plot, points),
            ColorBy::Membership => {
                let all: Vec<[f64; 2]> = points.iter().map(|p| plot_xy(p.xy)).collect();
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
                    let pts: Vec<[f64; 2]> = points
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
                    let pts: Vec<[f64; 2]> = points
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
                let len = points.len();
                for range in position_bins(len) {
                    let middle = (range.start + range.end) as f64 / 2.0;
                    let [r, g, b] = turbo.map(middle, 0.0, len as f64);
                    let name = format!("frames {}–{}", range.start, range.end - 1);
                    let pts: Vec<[f64; 2]> = points[range].iter().map(|p| plot_xy(p.xy)).collect();
                    plot.points(
                        Points::new(name, pts)
                            .radius(2.0)
                            .color(Color32::from_rgb(r, g, b)),
                    );
                }
            }
        }
    }

    /// The pool in grey, and over it the frames each arm chose: round 0 (shared by the arms
    /// that start from real frames) in white, later rounds in the arm's colour, lighter for
    /// early rounds and darker for late ones. One legend entry per arm.
    fn chosen_by(&self, plot: &mut egui_plot::PlotUi, points: &[PoolPoint]) {
        let all: Vec<[f64; 2]> = points.iter().map(|p| plot_xy(p.xy)).collect();
        plot.points(
            Points::new("pool", all)
                .radius(2.0)
                .color(Color32::from_gray(90)),
        );
        let position = |index: usize| points.get(index).map(|p| plot_xy(p.xy));
        let last_round = self
            .chosen
            .iter()
            .flat_map(|(_, c)| c.iter().map(|&(_, r)| r))
            .max()
            .unwrap_or(0)
            .max(1);
        let mode = self.chosen_mode;
        let round_zero: Vec<[f64; 2]> = self
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
        for (arm, chosen) in &self.chosen {
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

    /// What lies over the pool: the project's frames, the training set, the arrows, the
    /// selection and the points decoded by clicking.
    fn overlays(
        &self,
        plot: &mut egui_plot::PlotUi,
        points: &[PoolPoint],
        others: &Others<'_>,
        animation: f32,
    ) {
        if let Some(project) = others.project {
            if self.settings.color_by.shown(true) == ColorBy::Position {
                project_points(plot, points, project);
            }
            project_arrows(plot, project);
        }
        // Colouring by arm already marks the training sets.
        if !self.training.is_empty() && self.settings.color_by != ColorBy::ChosenBy {
            let pts: Vec<[f64; 2]> = self.training.iter().map(|p| plot_xy(*p)).collect();
            plot.points(
                Points::new("training set (adaptive)", pts)
                    .radius(3.0)
                    .shape(MarkerShape::Circle)
                    .color(Color32::from_rgb(80, 220, 120)),
            );
        }
        if self.settings.show_history && !self.history.is_empty() {
            let (from, to) = arrow_ends(&self.history, 1.0);
            plot.arrows(
                Arrows::new(
                    "earlier rounds",
                    PlotPoints::from(from),
                    PlotPoints::from(to),
                )
                .color(Color32::from_rgba_unmultiplied(230, 97, 1, 70)),
            );
        }
        if !self.arrows.is_empty() {
            let (from, to) = arrow_ends(&self.arrows, animation);
            plot.points(
                Points::new("originals", from.clone())
                    .radius(3.5)
                    .color(Color32::from_rgb(43, 108, 176)),
            );
            gradient_steps(plot, from, to.clone());
            plot.points(
                Points::new("moved z'", to)
                    .radius(3.5)
                    .color(Color32::from_rgb(230, 97, 1)),
            );
        }
        if !self.selection.pool.is_empty() {
            let pts: Vec<[f64; 2]> = self
                .selection
                .pool
                .iter()
                .filter_map(|&i| points.get(i))
                .map(|p| plot_xy(p.xy))
                .collect();
            plot.points(
                Points::new("selected", pts)
                    .radius(5.0)
                    .filled(false)
                    .color(Color32::from_rgb(220, 30, 30)),
            );
        }
        if !self.selection.moved.is_empty() {
            let pts: Vec<[f64; 2]> = self
                .shown_arrows()
                .filter(|a| self.selection.moved.contains(&a.at))
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
        if !others.decoded.is_empty() {
            let pts: Vec<[f64; 2]> = others.decoded.iter().map(|(p, _)| plot_xy(*p)).collect();
            plot.points(
                Points::new("decoded here", pts)
                    .radius(5.0)
                    .shape(MarkerShape::Diamond)
                    .color(Color32::from_rgb(20, 160, 90)),
            );
        }
    }

    /// Shift+drag draws a box; when it is let go, the pool frames and the labelled moved
    /// points inside it become the selection.
    fn box_select(
        &mut self,
        points: &[PoolPoint],
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
                    let pool = points
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| inside(p.xy))
                        .map(|(i, _)| i)
                        .collect();
                    // Moved points whose sample joined the training set (they have a label).
                    let selected_moved = self
                        .shown_arrows()
                        .filter(|a| a.joined && inside(a.to))
                        .map(|a| a.at)
                        .collect();
                    self.selection = Selection {
                        pool,
                        moved: selected_moved,
                    };
                    ui.data_mut(|d| d.remove::<[f64; 2]>(drag_id));
                }
            }
            if !response.response.dragged() && !response.response.drag_stopped() {
                ui.data_mut(|d| d.remove::<[f64; 2]>(drag_id));
            }
        }
    }

    /// A click selects (or unselects) the nearest pool point, or decodes the empty place
    /// with `generator` when there is one.
    fn click(
        &mut self,
        shared: &Shared,
        generator: Option<Generator>,
        response: &egui_plot::PlotResponse<Option<PlotPoint>>,
        pos: egui::Pos2,
    ) {
        match nearest_point(&shared.points, &response.transform, pos) {
            Some(i) => {
                if let Some(at) = self.selection.pool.iter().position(|&s| s == i) {
                    self.selection.pool.remove(at);
                } else {
                    self.selection.pool.push(i);
                }
            }
            None => {
                if let (Some((mean, axes)), Some(p), Some(generator)) =
                    (&self.projection, response.inner, generator)
                {
                    let projection = crate::sampling::Projection {
                        mean: mean.clone(),
                        axes: axes.clone(),
                    };
                    shared.send(Command::Decode {
                        z: projection.lift([p.x as f32, p.y as f32]),
                        generator,
                    });
                }
            }
        }
    }

    /// The hovered pool frame: its thumbnail, id, plaque and peak stress.
    fn tooltip(&self, shared: &mut Shared, ui: &mut egui::Ui, i: usize) {
        let texture = self.thumbnail(shared, ui.ctx(), i);
        let p = &shared.points[i];
        pointer_tooltip(ui, |ui| {
            ui.add(egui::Image::new(&texture).fit_to_exact_size(egui::vec2(96.0, 96.0)));
            ui.label(&p.id);
            ui.small(format!("plaque: {}", p.plaque.name()));
            if let Some(peak) = p.peak_kpa {
                ui.small(format!("peak stress (p99): {peak:.0} kPa"));
            }
        });
    }
}

/// A project's frames coloured by their state in the annotation loop.
fn state_points(plot: &mut egui_plot::PlotUi, points: &[PoolPoint], project: Option<&ProjectView>) {
    let states = project.map_or(&[][..], |p| &p.states[..]);
    for state in [
        FrameState::Pool,
        FrameState::Suggested,
        FrameState::Annotated,
    ] {
        let pts: Vec<[f64; 2]> = points
            .iter()
            .zip(states)
            .filter(|(_, s)| **s == state)
            .map(|(p, _)| plot_xy(p.xy))
            .collect();
        let radius = if state == FrameState::Pool { 2.0 } else { 3.5 };
        plot.points(
            Points::new(state.name(), pts)
                .radius(radius)
                .color(state_color(state)),
        );
    }
}

impl LatentView {
    /// Pool frame `i`'s thumbnail as a texture.
    fn thumbnail(&self, shared: &mut Shared, ctx: &egui::Context, i: usize) -> egui::TextureHandle {
        let thumbnail = &shared.points[i].thumbnail;
        shared.images.get(ctx, ("img", thumbnail), || {
            images::grey(self.data_size, thumbnail)
        })
    }
}

/// A tooltip at the pointer, the latent view's one.
fn pointer_tooltip(ui: &egui::Ui, add: impl FnOnce(&mut egui::Ui)) {
    egui::Tooltip::always_open(
        ui.ctx().clone(),
        ui.layer_id(),
        ui.scope_id().with("latent_tooltip"),
        egui::PopupAnchor::Pointer,
    )
    .show(add);
}

/// How many frames on each side of a hovered frame its pullback tooltip shows.
const PULLBACK_NEIGHBOURS: usize = 2;

impl LatentView {
    /// The hovered frame of a project between its neighbours in the pullback, with its
    /// id and state: nearby frames look alike, and this shows whether its place in the
    /// latent view follows the pullback.
    fn pullback_tooltip(
        &self,
        shared: &mut Shared,
        ui: &mut egui::Ui,
        i: usize,
        project: &ProjectView,
    ) {
        let ctx = ui.ctx().clone();
        let range = i.saturating_sub(PULLBACK_NEIGHBOURS)
            ..(i + PULLBACK_NEIGHBOURS + 1).min(shared.points.len());
        let textures: Vec<(usize, egui::TextureHandle)> = range
            .map(|k| (k, self.thumbnail(shared, &ctx, k)))
            .collect();
        let state = project.states.get(i).map_or("pool", |s| s.name());
        pointer_tooltip(ui, |ui| {
            ui.horizontal(|ui| {
                for (k, texture) in &textures {
                    let side = if *k == i { 96.0 } else { 64.0 };
                    ui.vertical(|ui| {
                        ui.add(egui::Image::new(texture).fit_to_exact_size(egui::vec2(side, side)));
                        ui.small(format!("frame {k}"));
                    });
                }
            });
            ui.label(&shared.points[i].id);
            ui.small(format!(
                "{state}; its neighbours along the pullback beside it"
            ));
        });
    }
}

/// Each gradient-SNN suggestion of the project: the arrow from the annotated frame's
/// embedding z to its moved point z', and a thin line from z' to the frame it snapped to.
fn project_arrows(plot: &mut egui_plot::PlotUi, project: &ProjectView) {
    if project.arrows.is_empty() {
        return;
    }
    let from: Vec<[f64; 2]> = project.arrows.iter().map(|a| plot_xy(a.from)).collect();
    let moved: Vec<[f64; 2]> = project.arrows.iter().map(|a| plot_xy(a.moved)).collect();
    let snapped: Vec<[f64; 2]> = project.arrows.iter().map(|a| plot_xy(a.snapped)).collect();
    gradient_steps(plot, from, moved.clone());
    plot.arrows(
        Arrows::new(
            "snap to the nearest free frame",
            PlotPoints::from(moved.clone()),
            PlotPoints::from(snapped),
        )
        .tip_length(6.0)
        .color(Color32::from_rgb(120, 120, 220)),
    );
    plot.points(
        Points::new("moved z'", moved)
            .radius(3.0)
            .shape(MarkerShape::Cross)
            .color(Color32::from_rgb(230, 97, 1)),
    );
}

/// The open project's annotated frames, and those suggested and awaiting annotation, over
/// another colouring.
fn project_points(plot: &mut egui_plot::PlotUi, points: &[PoolPoint], project: &ProjectView) {
    for (state, name, shape) in [
        (
            FrameState::Annotated,
            "annotated (project)",
            MarkerShape::Circle,
        ),
        (
            FrameState::Suggested,
            "suggested, awaiting annotation",
            MarkerShape::Diamond,
        ),
    ] {
        let pts: Vec<[f64; 2]> = points
            .iter()
            .zip(&project.states)
            .filter(|(_, s)| **s == state)
            .map(|(p, _)| plot_xy(p.xy))
            .collect();
        plot.points(
            Points::new(name, pts)
                .radius(3.5)
                .shape(shape)
                .color(state_color(state)),
        );
    }
}

/// The method's picture: orange arrows from the points z to their gradient steps z'.
fn gradient_steps(plot: &mut egui_plot::PlotUi, from: Vec<[f64; 2]>, to: Vec<[f64; 2]>) {
    plot.arrows(
        Arrows::new(
            "gradient step z to z'",
            PlotPoints::from(from),
            PlotPoints::from(to),
        )
        .color(Color32::from_rgb(230, 97, 1)),
    );
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

/// The pool point within [`PICK_RADIUS_PX`] of the screen position `pos`, if any.
fn nearest_point(
    points: &[PoolPoint],
    transform: &egui_plot::PlotTransform,
    pos: egui::Pos2,
) -> Option<usize> {
    points
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_and_a_study_each_keep_only_colourings_that_mean_something_for_them() {
        assert_eq!(ColorBy::Plaque.shown(true), ColorBy::State);
        assert_eq!(ColorBy::ChosenBy.shown(true), ColorBy::State);
        assert_eq!(ColorBy::Position.shown(true), ColorBy::Position);
        assert_eq!(ColorBy::State.shown(false), ColorBy::Membership);
        assert_eq!(ColorBy::Position.shown(false), ColorBy::Position);
        assert_eq!(ColorBy::PeakStress.shown(false), ColorBy::PeakStress);
    }

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
