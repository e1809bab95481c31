//! Data: the embedded phantom (regenerated with its seed and size), *Open folder…* and
//! folder drag-and-drop, working resolution and spacing, and an `sula info`-style summary.

use super::{Command, SulaApp, labelled_row};

/// What the pixel-spacing field shows while it is unset: each dataset's own spacing is
/// used (a bare 0.000 read as a spacing of zero).
const SPACING_FROM_FILES: &str = "from files";

/// Opens a dropped folder as the dataset.
pub fn handle_dropped_folder(app: &mut SulaApp, ctx: &egui::Context) {
    let dropped: Vec<std::path::PathBuf> = ctx.input(|i| {
        i.raw
            .dropped_files
            .iter()
            .map(|f| f.path().to_path_buf())
            .collect()
    });
    if let Some(path) = dropped.into_iter().find(|p| p.is_dir()) {
        app.open_folder(path);
    }
}

impl SulaApp {
    /// Asks the worker to load a dataset folder at the working resolution.
    pub fn open_folder(&mut self, path: std::path::PathBuf) {
        self.view.busy = true;
        self.send(Command::OpenFolder {
            path,
            size: self.settings.size,
            pixel_mm: self.settings.pixel_mm,
        });
    }
}

pub fn ui(app: &mut SulaApp, ui: &mut egui::Ui) {
    ui.heading("Data");
    let busy = app.view.busy;
    egui::Grid::new("data_grid").num_columns(2).show(ui, |ui| {
        let size = &mut app.settings.size;
        labelled_row(ui, "Working resolution", |ui| {
            egui::ComboBox::from_id_salt("size")
                .selected_text(format!("{0}×{0}", *size))
                .show_ui(ui, |ui| {
                    for s in [32, 64, 128] {
                        ui.selectable_value(size, s, format!("{s}×{s}"));
                    }
                })
                .response
        });
        labelled_row(ui, "Phantom frames", |ui| {
            ui.add(egui::DragValue::new(&mut app.settings.phantom_pool).range(10..=5000))
        });
        labelled_row(ui, "Phantom seed", |ui| {
            ui.add(egui::DragValue::new(&mut app.settings.phantom_seed))
        });
        let mut spacing = app.settings.pixel_mm.unwrap_or(0.0);
        let mut changed = false;
        labelled_row(ui, "Pixel spacing (mm)", |ui| {
            let response = ui
                .add(
                    egui::DragValue::new(&mut spacing)
                        .range(0.0..=1.0)
                        .speed(0.001)
                        .max_decimals(4)
                        .custom_formatter(|mm, _| {
                            if mm > 0.0 {
                                format!("{mm:.4}")
                            } else {
                                SPACING_FROM_FILES.to_string()
                            }
                        })
                        .custom_parser(|text| {
                            let text = text.trim();
                            if text.is_empty() || text == SPACING_FROM_FILES {
                                Some(0.0)
                            } else {
                                text.parse().ok()
                            }
                        }),
                )
                .on_hover_text("For folders that do not record it; at 0 (\"from files\") each dataset's own is used");
            changed = response.changed();
            response
        });
        if changed {
            app.settings.pixel_mm = (spacing > 0.0).then_some(spacing);
        }
    });
    ui.horizontal(|ui| {
        if ui
            .add_enabled(!busy, egui::Button::new("Generate phantom"))
            .clicked()
        {
            app.view.busy = true;
            app.load_phantom();
        }
        if ui
            .add_enabled(!busy, egui::Button::new("Open folder…"))
            .on_hover_text(
                "A sula or MICCAI 2011 dataset folder; you can also drop a folder on the window",
            )
            .clicked()
            && let Some(path) = rfd::FileDialog::new().pick_folder()
        {
            app.open_folder(path);
        }
    });
    match &app.view.data_name {
        Some(name) => {
            ui.label(egui::RichText::new(name).strong());
            for line in &app.view.data_summary {
                ui.small(line);
            }
        }
        None => {
            ui.label("Loading the phantom…");
        }
    }
}
