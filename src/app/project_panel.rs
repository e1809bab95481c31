//! Real data: *Open pullback…* starts a project on a DICOM pullback (an image-only VAE is
//! trained on its frames), *Open project…* reopens one, and the open project's
//! *Suggest frames to annotate…* and *Import annotations…* run the round trip.

use std::path::PathBuf;

use egui_plot::{Line, Plot, Points};
use serde::{Deserialize, Serialize};

use super::{Command, Shared, labelled_row};
use crate::worker::ProjectView;

/// The project settings kept between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectSettings {
    /// Frames per suggested batch of a project.
    pub suggest_count: usize,
    /// Epochs F trains after each import.
    pub import_epochs: usize,
    /// Epochs of the image-only VAE a new project trains.
    pub project_vae_epochs: usize,
}

impl Default for ProjectSettings {
    fn default() -> Self {
        ProjectSettings {
            suggest_count: 8,
            import_epochs: 20,
            project_vae_epochs: 30,
        }
    }
}

/// The real-data panel: its settings and the project open in the app.
#[derive(Default)]
pub struct ProjectPanel {
    /// Kept between runs (eframe storage).
    pub settings: ProjectSettings,
    /// The annotation project open in the app, as the worker last described it.
    pub open: Option<ProjectView>,
    /// The last project opened, reopened when the app switches back to projects.
    pub last_root: Option<PathBuf>,
}

impl ProjectPanel {
    /// Starts with the settings kept from the last run and no project.
    pub fn new(settings: ProjectSettings) -> ProjectPanel {
        ProjectPanel {
            settings,
            open: None,
            last_root: None,
        }
    }

    /// Starts a project on the pullback `pool` in the new folder `out`, at the working
    /// resolution `size`.
    pub fn new_project(&self, shared: &mut Shared, pool: PathBuf, out: PathBuf, size: usize) {
        shared.busy = true;
        shared.send(Command::NewProject {
            pool,
            out,
            size,
            epochs: self.settings.project_vae_epochs,
        });
    }

    /// Reopens the project folder `root`.
    pub fn open_project(&self, shared: &mut Shared, root: PathBuf) {
        shared.busy = true;
        shared.send(Command::OpenProject(root));
    }

    /// Writes the next batch to annotate to the new folder `out`.
    pub fn suggest_frames(&self, shared: &mut Shared, out: PathBuf) {
        shared.busy = true;
        shared.send(Command::Suggest {
            count: self.settings.suggest_count,
            out,
        });
    }

    /// Imports the annotated batch folder `batch`.
    pub fn import_annotations(&self, shared: &mut Shared, batch: PathBuf) {
        shared.busy = true;
        shared.send(Command::ImportAnnotations {
            batch,
            epochs: self.settings.import_epochs,
        });
    }

    /// Opening a pullback or a project, and what is open; `size` is the working
    /// resolution a new project takes.
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared, size: usize) {
        ui.heading("Your pullback");
        let busy = shared.busy;
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!busy, egui::Button::new("Open pullback…"))
                .on_hover_text(
                    "A DICOM IVUS pullback: sula trains an image-only VAE on its frames and keeps the annotation loop in a new project folder",
                )
                .clicked()
                && let Some(pool) = rfd::FileDialog::new()
                    .set_title("DICOM pullback")
                    .pick_file()
                && let Some(out) = new_folder("New project folder", "pullback_project")
            {
                self.new_project(shared, pool, out, size);
            }
            if ui
                .add_enabled(!busy, egui::Button::new("Open project…"))
                .clicked()
                && let Some(root) = rfd::FileDialog::new().set_title("Project folder").pick_folder()
            {
                self.open_project(shared, root);
            }
        });
        match &self.open {
            Some(project) => {
                ui.label(egui::RichText::new(project.root.display().to_string()).strong());
                ui.small(format!(
                    "{} frames: {} annotated, {} waiting in a batch, {} rounds",
                    project.frames,
                    project.annotated,
                    project.pending,
                    project.rounds.len()
                ));
            }
            None => {
                ui.small("Suggest which frames of your own pullback to annotate next, and bring the annotations back.");
            }
        }
    }

    /// Stage 2 of a project, the annotation loop: the next batch's size, F's epochs per
    /// import, and the two buttons.
    pub fn loop_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.heading("Stage 2 · annotation loop");
        // Only the round count is needed: the view itself (with its sample images) is not
        // copied every frame.
        let Some(rounds) = self.open.as_ref().map(|p| p.rounds.len()) else {
            ui.small("Open a pullback or a project first.");
            return;
        };
        ui.small("Round 0 covers the pool (core-set); later rounds move the annotated frames along F's loss gradient and snap to the nearest free frames.");
        let busy = shared.busy;
        egui::Grid::new("project_grid")
            .num_columns(2)
            .show(ui, |ui| {
                labelled_row(ui, "Frames to suggest", |ui| {
                    ui.add(egui::DragValue::new(&mut self.settings.suggest_count).range(1..=500))
                });
                labelled_row(ui, "F epochs per import", |ui| {
                    ui.add(egui::DragValue::new(&mut self.settings.import_epochs).range(1..=500))
                });
            });
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!busy, egui::Button::new("Suggest frames to annotate…"))
                .on_hover_text("Round 0: core-set; later rounds: the annotated frames' gradient steps, snapped to the nearest free frames")
                .clicked()
                && let Some(out) = new_folder(
                    "New folder for the batch",
                    &format!("batch_round{rounds}"),
                )
            {
                self.suggest_frames(shared, out);
            }
            if ui
                .add_enabled(!busy, egui::Button::new("Import annotations…"))
                .on_hover_text("A batch folder with its masks/ filled in; checked whole before anything is applied")
                .clicked()
                && let Some(batch) = rfd::FileDialog::new().set_title("Annotated batch").pick_folder()
            {
                self.import_annotations(shared, batch);
            }
        });
    }
}

/// A new folder chosen with a save dialog titled `title`, proposing `name`.
fn new_folder(title: &str, name: &str) -> Option<PathBuf> {
    rfd::FileDialog::new()
        .set_title(title)
        .set_file_name(name)
        .save_file()
}

/// The project's rounds in the curves panel: a table, and F's error against the number of
/// annotated frames it was trained on: on the validation split when the project has one,
/// and on each new batch before F trained on it (its strategy in the table).
pub fn rounds(project: &ProjectView, ui: &mut egui::Ui) {
    ui.label(egui::RichText::new("Project rounds").strong());
    egui::Grid::new("project_rounds")
        .striped(true)
        .show(ui, |ui| {
            for header in [
                "round",
                "strategy",
                "suggested",
                "annotated",
                "in all",
                "validation MSE (kPa²)",
                "new batch MSE before training (kPa²)",
            ] {
                ui.label(egui::RichText::new(header).small().strong());
            }
            ui.end_row();
            for r in &project.rounds {
                let dash = || "–".to_string();
                ui.label(r.round.to_string());
                ui.label(&r.strategy);
                ui.label(r.suggested.to_string());
                ui.label(
                    r.annotated
                        .map_or_else(|| "waiting".into(), |n| n.to_string()),
                );
                ui.label(r.total_annotated.map_or_else(dash, |n| n.to_string()));
                ui.label(r.validation_mse.map_or_else(dash, |m| format!("{m:.1}")));
                ui.label(r.new_batch_mse.map_or_else(dash, |m| format!("{m:.1}")));
                ui.end_row();
            }
        });
    let validation: Vec<[f64; 2]> = project
        .rounds
        .iter()
        .filter_map(|r| Some([r.total_annotated? as f64, r.validation_mse?]))
        .collect();
    // Before an import F had trained on the frames annotated until then.
    let new_batches: Vec<[f64; 2]> = project
        .rounds
        .iter()
        .filter_map(|r| {
            let before = r.total_annotated? - r.annotated?;
            Some([before as f64, r.new_batch_mse?])
        })
        .collect();
    if validation.is_empty() && new_batches.is_empty() {
        return;
    }
    super::plot_axes::readable(Plot::new("project_validation"))
        .height(150.0)
        .legend(egui_plot::Legend::default())
        .x_axis_label("annotated frames F trained on")
        .y_axis_label("MSE (kPa²)")
        .allow_scroll(false)
        .show(ui, |p| {
            for (name, curve) in [
                ("F on the validation split", validation),
                ("F on each new batch, before training on it", new_batches),
            ] {
                if !curve.is_empty() {
                    p.line(Line::new(name, curve.clone()).width(2.0));
                    p.points(Points::new(name, curve).radius(3.0));
                }
            }
        });
}
