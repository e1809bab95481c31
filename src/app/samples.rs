//! Samples: this round's originals beside their moved samples, each as image | label map
//! | FEA stress | F prediction | |error|, and samples decoded from clicks in the latent
//! view.

use super::{Shared, images};
use crate::worker::SampleView;

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
}
