//! Samples: this round's originals beside their moved samples, each as image | label map
//! | FEA stress | F prediction | |error|, and samples decoded from clicks in the latent
//! view.

use super::{SulaApp, images};

pub fn ui(app: &mut SulaApp, ui: &mut egui::Ui) {
    if app.view.samples.is_empty() && app.view.decoded.is_empty() {
        ui.label("After a round, its originals and their gradient-moved samples appear here.");
        return;
    }
    let side = 84.0;
    for (original, moved) in &app.view.samples {
        ui.label(egui::RichText::new(&original.caption).strong());
        images::sample_row(&mut app.images, ui, original, side);
        ui.label(egui::RichText::new(&moved.caption).strong());
        images::sample_row(&mut app.images, ui, moved, side);
        ui.add_space(6.0);
    }
    if let Some((at, decoded)) = app.view.decoded.last() {
        ui.label(
            egui::RichText::new(format!(
                "Decoded at ({:.2}, {:.2}): {}",
                at[0], at[1], decoded.caption
            ))
            .strong(),
        );
        images::sample_row(&mut app.images, ui, decoded, side);
    }
}
