//! Export of hard samples from the app (docs/DESIGN.md §Export): what is selected in the latent view, or
//! the moved samples of the last rounds, to a new folder chosen with a dialog.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Shared;
use super::latent_view::Selection;
use crate::worker::{Command, ExportSelection};

/// The export settings kept between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExportSettings {
    /// How many of the latest rounds "Export rounds…" takes.
    pub export_rounds: usize,
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings { export_rounds: 1 }
    }
}

/// Asks where an export goes; returns `None` when the user cancels.
pub type FolderChooser = Box<dyn FnMut() -> Option<PathBuf>>;

/// The export strip under the latent view: its settings and the folder dialog.
pub struct ExportPanel {
    /// Kept between runs (eframe storage).
    pub settings: ExportSettings,
    /// The export folder dialog (rfd); tests put a fixed folder here.
    pub choose_folder: FolderChooser,
}

impl ExportPanel {
    /// Starts with the settings kept from the last run and the system's folder dialog.
    pub fn new(settings: ExportSettings) -> ExportPanel {
        ExportPanel {
            settings,
            choose_folder: Box::new(|| {
                rfd::FileDialog::new()
                    .set_title("Export to a new folder")
                    .set_file_name("hard_samples")
                    .save_file()
            }),
        }
    }

    /// Asks for a new folder and exports `selection` there.
    fn export(&mut self, shared: &mut Shared, selection: ExportSelection) {
        if let Some(out) = (self.choose_folder)() {
            shared.busy = true;
            shared.send(Command::Export { selection, out });
        }
    }

    /// The latent view's `selection` and its export, and the export of the last rounds,
    /// which needs moved samples (`has_moves`).
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        shared: &mut Shared,
        selection: &mut Selection,
        has_moves: bool,
    ) {
        let busy = shared.busy;
        let (picked, moved) = (selection.pool.len(), selection.moved.len());
        ui.horizontal_wrapped(|ui| {
            ui.label(format!(
                "Selected: {picked} pool frames, {moved} moved samples"
            ));
            if ui
                .add_enabled(
                    !busy && picked + moved > 0,
                    egui::Button::new("Export selection…"),
                )
                .on_hover_text("Images, label maps, FEA stress and a manifest, to a new folder")
                .clicked()
            {
                let picked = ExportSelection::Picked {
                    pool: selection.pool.clone(),
                    moved: selection.moved.clone(),
                };
                self.export(shared, picked);
            }
            if ui
                .add_enabled(picked + moved > 0, egui::Button::new("Clear selection"))
                .clicked()
            {
                selection.pool.clear();
                selection.moved.clear();
            }
            ui.separator();
            let label = ui.label("Last");
            ui.add(
                egui::DragValue::new(&mut self.settings.export_rounds)
                    .range(1..=100)
                    .speed(0.1),
            )
            .labelled_by(label.id);
            ui.label("rounds");
            if ui
                .add_enabled(!busy && has_moves, egui::Button::new("Export rounds…"))
                .on_hover_text(
                    "Every moved sample that joined the training set in those rounds of this repeat",
                )
                .clicked()
            {
                self.export(shared, ExportSelection::LastRounds(self.settings.export_rounds));
            }
        });
    }
}
