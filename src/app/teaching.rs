//! Teaching mode: one round at a time with a caption of what just happened, the moved
//! points sliding slowly along their gradients, and keyboard shortcuts (Space = step,
//! T = teaching mode, H = arrow history).

use super::SulaApp;

/// Keyboard shortcuts, ignored while a text field has focus.
pub fn shortcuts(app: &mut SulaApp, ctx: &egui::Context) {
    if ctx.memory(|m| m.focused().is_some()) {
        return;
    }
    let (space, t, h) = ctx.input(|i| {
        (
            i.key_pressed(egui::Key::Space),
            i.key_pressed(egui::Key::T),
            i.key_pressed(egui::Key::H),
        )
    });
    if space
        && !app.view.busy
        && !app.view.finished
        && !app.view.points.is_empty()
        && app.view.vae_origin.is_some()
    {
        app.step_round();
    }
    if t {
        app.settings.teaching = !app.settings.teaching;
    }
    if h {
        app.settings.show_history = !app.settings.show_history;
    }
}

/// What to do next, in one sentence, from where the user is.
fn next_hint(app: &SulaApp) -> &'static str {
    let v = &app.view;
    if v.data_name.is_none() {
        "Loading the data: the pool of unannotated IVUS frames."
    } else if v.vae_origin.is_none() {
        "Stage 1: train (or load) the VAE that maps frames to latent points and back."
    } else if v.rows.is_empty() {
        "Press Space (or Step): round 0 draws points from the VAE's prior (fitted to the pool's embeddings), decodes them, labels them with the FEA and trains F."
    } else if v.finished {
        "The budget is reached: compare the curves of the adaptive arm and the random baseline."
    } else {
        "Press Space for the next round: training points move along the gradient of F's loss towards harder samples."
    }
}

pub fn ui(app: &mut SulaApp, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        ui.heading("Teaching");
        ui.label("Space: step · T: teaching mode · H: arrow history");
    });
    ui.label(next_hint(app));
    // The latest round of every arm.
    let arms = app.view.chosen.len().max(2);
    for caption in app.view.captions.iter().rev().take(arms).rev() {
        ui.label(egui::RichText::new(caption).italics());
    }
}
