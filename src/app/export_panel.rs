//! Export of hard samples from the app (docs/DESIGN.md §Export): what is selected in the latent view, or
//! the moved samples of the last rounds, to a new folder chosen with a dialog.

use super::SulaApp;
use crate::worker::ExportSelection;

pub fn ui(app: &mut SulaApp, ui: &mut egui::Ui) {
    let busy = app.view.busy;
    let (picked, moved) = (app.view.selected.len(), app.view.selected_moved.len());
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
            let selection = ExportSelection::Picked {
                pool: app.view.selected.clone(),
                moved: app.view.selected_moved.clone(),
            };
            app.export(selection);
        }
        if ui
            .add_enabled(picked + moved > 0, egui::Button::new("Clear selection"))
            .clicked()
        {
            app.view.selected.clear();
            app.view.selected_moved.clear();
        }
        ui.separator();
        let has_moves = !app.view.arrows.is_empty() || !app.view.history.is_empty();
        let label = ui.label("Last");
        ui.add(
            egui::DragValue::new(&mut app.settings.export_rounds)
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
            app.export(ExportSelection::LastRounds(app.settings.export_rounds));
        }
    });
}
