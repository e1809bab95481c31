//! Data: the embedded phantom (regenerated with its seed and size), *Open folder…* and
//! folder drag-and-drop, working resolution and spacing, and an `sula info`-style summary.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Command, Shared, labelled_row};

/// What the pixel-spacing field shows while it is unset: each dataset's own spacing is
/// used (a bare 0.000 read as a spacing of zero).
const SPACING_FROM_FILES: &str = "from files";

/// The data settings kept between runs: the phantom's and every dataset's working size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataSettings {
    /// Working resolution (pixels a side) every dataset and the phantom are loaded at.
    pub size: usize,
    pub phantom_pool: usize,
    pub phantom_test: usize,
    pub phantom_seed: u64,
    /// For folders that do not record their spacing; `None`: each dataset's own.
    pub pixel_mm: Option<f64>,
}

impl Default for DataSettings {
    fn default() -> Self {
        DataSettings {
            size: 64,
            phantom_pool: 1200,
            phantom_test: 300,
            phantom_seed: 1,
            pixel_mm: None,
        }
    }
}

/// The data panel: its settings and the loaded dataset's name and summary.
#[derive(Default)]
pub struct DataPanel {
    /// Kept between runs (eframe storage).
    pub settings: DataSettings,
    /// The loaded dataset's name; `None` until the worker has loaded one.
    pub name: Option<String>,
    /// `sula info`-style lines about the loaded dataset.
    pub summary: Vec<String>,
}

impl DataPanel {
    /// Starts with the settings kept from the last run; the data comes from the worker.
    pub fn new(settings: DataSettings) -> DataPanel {
        DataPanel {
            settings,
            ..DataPanel::default()
        }
    }

    /// The worker loaded a dataset (`None`: the views were emptied).
    pub fn loaded(&mut self, name: Option<String>, summary: Vec<String>) {
        self.name = name;
        self.summary = summary;
    }

    /// Regenerates the phantom with the current settings.
    pub fn load_phantom(&self, shared: &Shared) {
        let s = &self.settings;
        shared.send(Command::LoadPhantom {
            pool: s.phantom_pool,
            test: s.phantom_test,
            seed: s.phantom_seed,
            size: s.size,
        });
    }

    /// Asks the worker to load a dataset folder at the working resolution.
    pub fn open_folder(&self, shared: &mut Shared, path: PathBuf) {
        shared.busy = true;
        shared.send(Command::OpenFolder {
            path,
            size: self.settings.size,
            pixel_mm: self.settings.pixel_mm,
        });
    }

    /// Opens a folder dropped on the window as the dataset.
    pub fn handle_dropped_folder(&self, shared: &mut Shared, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if let Some(path) = dropped.into_iter().find(|p| p.is_dir()) {
            self.open_folder(shared, path);
        }
    }

    /// The settings grid, the buttons that load data and what was loaded.
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.heading("Data");
        self.settings_grid(ui);
        let busy = shared.busy;
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!busy, egui::Button::new("Generate phantom"))
                .clicked()
            {
                shared.busy = true;
                self.load_phantom(shared);
            }
            if ui
                .add_enabled(!busy, egui::Button::new("Open folder…"))
                .on_hover_text(
                    "A sula or MICCAI 2011 dataset folder; you can also drop a folder on the window",
                )
                .clicked()
                && let Some(path) = rfd::FileDialog::new().pick_folder()
            {
                self.open_folder(shared, path);
            }
        });
        match &self.name {
            Some(name) => {
                ui.label(egui::RichText::new(name).strong());
                for line in &self.summary {
                    ui.small(line);
                }
            }
            None => {
                ui.label("Loading the phantom…");
            }
        }
    }

    /// Resolution, phantom size and seed, and pixel spacing.
    fn settings_grid(&mut self, ui: &mut egui::Ui) {
        let settings = &mut self.settings;
        egui::Grid::new("data_grid").num_columns(2).show(ui, |ui| {
            let size = &mut settings.size;
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
                ui.add(egui::DragValue::new(&mut settings.phantom_pool).range(10..=5000))
            });
            labelled_row(ui, "Phantom seed", |ui| {
                ui.add(egui::DragValue::new(&mut settings.phantom_seed))
            });
            let mut spacing = settings.pixel_mm.unwrap_or(0.0);
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
                settings.pixel_mm = (spacing > 0.0).then_some(spacing);
            }
        });
    }
}
