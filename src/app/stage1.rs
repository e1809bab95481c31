//! Stage 1, the VAE: train on the pool's images and label maps, load or save a
//! checkpoint, the live loss curve and a few reconstructions.

use egui_plot::{Line, Plot};
use serde::{Deserialize, Serialize};

use super::{Command, Shared, images, labelled_row};
use crate::worker::SampleView;

/// The VAE settings kept between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stage1Settings {
    pub vae_epochs: usize,
    pub latent_dim: usize,
}

impl Default for Stage1Settings {
    fn default() -> Self {
        Stage1Settings {
            vae_epochs: 20,
            latent_dim: 32,
        }
    }
}

/// The VAE panel: its settings and what the worker told about the VAE.
#[derive(Default)]
pub struct Stage1 {
    /// Kept between runs (eframe storage).
    pub settings: Stage1Settings,
    /// Where the VAE came from (shipped, loaded, trained here); `None` until there is one.
    pub origin: Option<String>,
    /// The loss curve: per batch while training, per epoch once trained.
    pub losses: Vec<[f64; 2]>,
    /// Pool samples beside their reconstructions, to judge the VAE by eye.
    pub reconstructions: Vec<(SampleView, SampleView)>,
}

impl Stage1 {
    /// Starts with the settings kept from the last run; the VAE comes from the worker.
    pub fn new(settings: Stage1Settings) -> Stage1 {
        Stage1 {
            settings,
            ..Stage1::default()
        }
    }

    /// New data: the VAE and its curve stay (the worker keeps it), its reconstructions
    /// were of the old pool.
    pub fn new_data(&mut self) {
        self.reconstructions.clear();
    }

    /// A batch or an epoch of training: one more point on the curve.
    pub fn progress(&mut self, at: f64, loss: f64) {
        self.losses.push([at, loss]);
    }

    /// A VAE is ready: its origin, its per-epoch losses when it was trained here, and
    /// its reconstructions.
    pub fn ready(
        &mut self,
        origin: String,
        epoch_losses: &[f64],
        reconstructions: Vec<(SampleView, SampleView)>,
    ) {
        if !epoch_losses.is_empty() {
            self.losses = epoch_losses
                .iter()
                .enumerate()
                .map(|(i, l)| [i as f64 + 1.0, *l])
                .collect();
        }
        self.origin = Some(origin);
        self.reconstructions = reconstructions;
    }

    /// The settings, the buttons, the loss curve and the reconstructions; `has_data`
    /// enables training, and `seed` (the study's) seeds it.
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared, has_data: bool, seed: u64) {
        ui.heading("Stage 1 · VAE");
        ui.small("The generator G and encoder E, trained on the unannotated pool.");
        egui::Grid::new("stage1_grid")
            .num_columns(2)
            .show(ui, |ui| {
                labelled_row(ui, "VAE epochs", |ui| {
                    ui.add(egui::DragValue::new(&mut self.settings.vae_epochs).range(1..=500))
                });
                labelled_row(ui, "Latent dimension", |ui| {
                    ui.add(egui::DragValue::new(&mut self.settings.latent_dim).range(2..=64))
                });
            });
        self.buttons(ui, shared, has_data, seed);
        self.vae_ui(ui, shared);
    }

    /// Stage 1 on an open project: its image-only VAE, retrained on the pool's frames for
    /// `epochs` on demand (the project switches to the new one only when it is done).
    pub fn project_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared, epochs: &mut usize) {
        ui.heading("Stage 1 · VAE");
        ui.small("The project's image-only VAE: the encoder that places the pullback's frames in the latent view.");
        egui::Grid::new("stage1_project_grid")
            .num_columns(2)
            .show(ui, |ui| {
                labelled_row(ui, "VAE epochs", |ui| {
                    ui.add(egui::DragValue::new(epochs).range(1..=500))
                });
            });
        if ui
            .add_enabled(!shared.busy, egui::Button::new("Retrain on the pool"))
            .on_hover_text("Trains a new image-only VAE on every frame of the pool and switches the project to it once it is done; cancelling keeps the old one")
            .clicked()
        {
            shared.busy = true;
            self.losses.clear();
            shared.send(Command::RetrainProjectVae { epochs: *epochs });
        }
        self.cancel_button(ui, shared);
        self.vae_ui(ui, shared);
    }

    /// Where the VAE came from, its loss curve and its reconstructions.
    fn vae_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        if let Some(origin) = &self.origin {
            ui.small(format!("VAE: {origin}"));
        }
        if !self.losses.is_empty() {
            super::plot_axes::readable(Plot::new("vae_loss"))
                .height(110.0)
                .x_axis_label("epoch")
                .y_axis_label("VAE loss")
                .allow_scroll(false)
                .show(ui, |plot| {
                    plot.line(Line::new("VAE loss", self.losses.clone()))
                });
        }
        self.reconstructions_ui(ui, shared);
    }

    /// Train, Load, Save and, while it trains, Cancel.
    fn buttons(&mut self, ui: &mut egui::Ui, shared: &mut Shared, has_data: bool, seed: u64) {
        let busy = shared.busy;
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!busy && has_data, egui::Button::new("Train VAE"))
                .clicked()
            {
                shared.busy = true;
                self.losses.clear();
                shared.send(Command::TrainVae {
                    epochs: self.settings.vae_epochs,
                    latent_dim: self.settings.latent_dim,
                    seed,
                });
            }
            if ui
                .add_enabled(!busy && has_data, egui::Button::new("Load VAE…"))
                .clicked()
                && let Some(path) = rfd::FileDialog::new()
                    .add_filter("checkpoint", &["safetensors"])
                    .pick_file()
            {
                shared.busy = true;
                shared.send(Command::LoadVae(path));
            }
            if ui
                .add_enabled(
                    !busy && self.origin.is_some(),
                    egui::Button::new("Save VAE…"),
                )
                .clicked()
                && let Some(path) = rfd::FileDialog::new()
                    .add_filter("checkpoint", &["safetensors"])
                    .set_file_name("vae.safetensors")
                    .save_file()
            {
                shared.send(Command::SaveVae(path));
            }
        });
        self.cancel_button(ui, shared);
    }

    /// While the VAE trains: a button that stops it.
    fn cancel_button(&self, ui: &mut egui::Ui, shared: &Shared) {
        if shared.busy
            && shared
                .progress
                .as_ref()
                .is_some_and(|(w, _, _)| w.starts_with("Training the VAE"))
            && ui.button("Cancel VAE training").clicked()
        {
            shared.send(Command::Cancel);
        }
    }

    /// Originals in one row, their reconstructions under them.
    fn reconstructions_ui(&self, ui: &mut egui::Ui, shared: &mut Shared) {
        if self.reconstructions.is_empty() {
            return;
        }
        ui.small("Originals (top) and reconstructions (bottom)");
        let ctx = ui.ctx().clone();
        for row in 0..2 {
            ui.horizontal(|ui| {
                for (original, reconstruction) in &self.reconstructions {
                    let s = if row == 0 { original } else { reconstruction };
                    // An image-only VAE (a project's) decodes grey images alone.
                    let texture = if s.labels.is_empty() {
                        shared
                            .images
                            .get(&ctx, ("img", &s.image), || images::grey(s.size, &s.image))
                    } else {
                        shared.images.get(&ctx, ("lab", &s.labels), || {
                            images::labels(s.size, &s.labels)
                        })
                    };
                    ui.add(egui::Image::new(&texture).fit_to_exact_size(egui::vec2(60.0, 60.0)));
                }
            });
        }
    }
}
