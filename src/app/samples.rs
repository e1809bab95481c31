//! Samples: this round's originals beside their moved samples, each as image | label map
//! | FEA stress | F prediction | |error|, and samples decoded from clicks in the latent
//! view; on a project, the frames out for annotation with F's prediction, and the last
//! import's frames.

use super::{Shared, images};
use crate::worker::{ProjectView, SampleView};

/// The samples panel: the latest round's sample pairs and the samples decoded so far.
#[derive(Default)]
pub struct Samples {
    /// The adaptive arm's latest originals and their gradient-moved samples.
    pub pairs: Vec<(SampleView, SampleView)>,
    /// Samples decoded where the latent view was clicked, with where: the latent view
    /// marks them all, this panel shows the latest.
    pub decoded: Vec<([f32; 2], SampleView)>,
}

impl Samples {
    /// The pairs, or the hint where they will appear, and the latest decoded sample.
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        if self.pairs.is_empty() && self.decoded.is_empty() {
            ui.label("After a round, its originals and their gradient-moved samples appear here.");
            return;
        }
        let side = 84.0;
        for (original, moved) in &self.pairs {
            ui.label(egui::RichText::new(&original.caption).strong());
            images::sample_row(&mut shared.images, ui, original, side);
            ui.label(egui::RichText::new(&moved.caption).strong());
            images::sample_row(&mut shared.images, ui, moved, side);
            ui.add_space(6.0);
        }
        if let Some((at, decoded)) = self.decoded.last() {
            ui.label(
                egui::RichText::new(format!(
                    "Decoded at ({:.2}, {:.2}): {}",
                    at[0], at[1], decoded.caption
                ))
                .strong(),
            );
            images::sample_row(&mut shared.images, ui, decoded, side);
        }
    }

    /// The open project's samples: the frames out for annotation (F's predicted tissue
    /// and stress once F exists), and the last import's frames with the FEA's stress, F's
    /// prediction and its error.
    pub fn project_ui(ui: &mut egui::Ui, shared: &mut Shared, project: &ProjectView) {
        let side = 84.0;
        if project.suggested_samples.is_empty() && project.imported_samples.is_empty() {
            ui.label("Suggested frames appear here with F's prediction; imported ones with their FEA stress beside F's.");
            return;
        }
        for (title, samples) in [
            ("Out for annotation", &project.suggested_samples),
            ("Last import", &project.imported_samples),
        ] {
            if samples.is_empty() {
                continue;
            }
            ui.label(egui::RichText::new(title).strong());
            for sample in samples {
                ui.small(&sample.caption);
                images::sample_row(&mut shared.images, ui, sample, side);
            }
            ui.add_space(6.0);
        }
    }
}
