//! Stage 1, the VAE: train on the pool's images and label maps, load or save a
//! checkpoint, the live loss curve and a few reconstructions.

use egui_plot::{Line, Plot};

use super::{Command, SulaApp, images, labelled_row};

pub fn ui(app: &mut SulaApp, ui: &mut egui::Ui) {
    ui.heading("Stage 1 · VAE");
    ui.small("The generator G and encoder E, trained on the unannotated pool.");
    let busy = app.view.busy;
    let has_data = app.view.data_name.is_some();
    egui::Grid::new("stage1_grid")
        .num_columns(2)
        .show(ui, |ui| {
            labelled_row(ui, "VAE epochs", |ui| {
                ui.add(egui::DragValue::new(&mut app.settings.vae_epochs).range(1..=500))
            });
            labelled_row(ui, "Latent dimension", |ui| {
                ui.add(egui::DragValue::new(&mut app.settings.latent_dim).range(2..=64))
            });
        });
    ui.horizontal(|ui| {
        if ui
            .add_enabled(!busy && has_data, egui::Button::new("Train VAE"))
            .clicked()
        {
            app.view.busy = true;
            app.view.vae_losses.clear();
            app.send(Command::TrainVae {
                epochs: app.settings.vae_epochs,
                latent_dim: app.settings.latent_dim,
                seed: app.settings.seed,
            });
        }
        if ui
            .add_enabled(!busy && has_data, egui::Button::new("Load VAE…"))
            .clicked()
            && let Some(path) = rfd::FileDialog::new()
                .add_filter("checkpoint", &["safetensors"])
                .pick_file()
        {
            app.view.busy = true;
            app.send(Command::LoadVae(path));
        }
        if ui
            .add_enabled(
                !busy && app.view.vae_origin.is_some(),
                egui::Button::new("Save VAE…"),
            )
            .clicked()
            && let Some(path) = rfd::FileDialog::new()
                .add_filter("checkpoint", &["safetensors"])
                .set_file_name("vae.safetensors")
                .save_file()
        {
            app.send(Command::SaveVae(path));
        }
    });
    if busy
        && app
            .view
            .progress
            .as_ref()
            .is_some_and(|(w, _, _)| w.starts_with("Training the VAE"))
        && ui.button("Cancel VAE training").clicked()
    {
        app.send(Command::Cancel);
    }
    if let Some(origin) = &app.view.vae_origin {
        ui.small(format!("VAE: {origin}"));
    }
    if !app.view.vae_losses.is_empty() {
        super::plot_axes::readable(Plot::new("vae_loss"))
            .height(110.0)
            .x_axis_label("epoch")
            .y_axis_label("VAE loss")
            .allow_scroll(false)
            .show(ui, |plot| {
                plot.line(Line::new("VAE loss", app.view.vae_losses.clone()))
            });
    }
    if !app.view.reconstructions.is_empty() {
        ui.small("Originals (top) and reconstructions (bottom)");
        let ctx = ui.ctx().clone();
        for row in 0..2 {
            ui.horizontal(|ui| {
                for (original, reconstruction) in &app.view.reconstructions {
                    let s = if row == 0 { original } else { reconstruction };
                    let texture = app.images.get(&ctx, ("lab", &s.labels), || {
                        images::labels(s.size, &s.labels)
                    });
                    ui.add(egui::Image::new(&texture).fit_to_exact_size(egui::vec2(60.0, 60.0)));
                }
            });
        }
    }
}
