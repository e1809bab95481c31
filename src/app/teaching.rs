//! Teaching mode: one round at a time with a caption of what just happened, the moved
//! points sliding slowly along their gradients, and keyboard shortcuts (Space = step,
//! T = teaching mode, H = arrow history).

use serde::{Deserialize, Serialize};

/// The teaching settings kept between runs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TeachingSettings {
    /// Teaching mode: the bottom panel with hints and captions, and slowed arrows.
    pub enabled: bool,
}

/// How far the user has come, from the other panels: what the next hint depends on.
#[derive(Debug, Clone, Copy)]
pub struct Reached {
    pub data: bool,
    pub vae: bool,
    pub rounds: bool,
    pub finished: bool,
}

/// The teaching panel: its switch and the captions of the rounds so far.
#[derive(Default)]
pub struct Teaching {
    /// Kept between runs (eframe storage).
    pub settings: TeachingSettings,
    /// One caption per arm and round, saying what the round did.
    pub captions: Vec<String>,
}

impl Teaching {
    /// Starts with the settings kept from the last run and no captions.
    pub fn new(settings: TeachingSettings) -> Teaching {
        Teaching {
            settings,
            captions: Vec::new(),
        }
    }

    /// Keyboard shortcuts, ignored while a text field has focus: T switches teaching
    /// mode and H the latent view's `show_history`; returns whether Space asked for a
    /// round.
    pub fn shortcuts(&mut self, ctx: &egui::Context, show_history: &mut bool) -> bool {
        if ctx.memory(|m| m.focused().is_some()) {
            return false;
        }
        let (space, t, h) = ctx.input(|i| {
            (
                i.key_pressed(egui::Key::Space),
                i.key_pressed(egui::Key::T),
                i.key_pressed(egui::Key::H),
            )
        });
        if t {
            self.settings.enabled = !self.settings.enabled;
        }
        if h {
            *show_history = !*show_history;
        }
        space
    }

    /// The shortcuts, the next hint from where the user has `reached`, and the latest
    /// round's captions of each of the `arms`.
    pub fn ui(&mut self, ui: &mut egui::Ui, reached: Reached, arms: usize) {
        ui.horizontal(|ui| {
            ui.heading("Teaching");
            ui.label("Space: step · T: teaching mode · H: arrow history");
        });
        ui.label(next_hint(reached));
        // The latest round of every arm.
        for caption in self.captions.iter().rev().take(arms.max(2)).rev() {
            ui.label(egui::RichText::new(caption).italics());
        }
    }
}

/// What to do next, in one sentence, from where the user is.
fn next_hint(reached: Reached) -> &'static str {
    if !reached.data {
        "Loading the data: the pool of unannotated IVUS frames."
    } else if !reached.vae {
        "Stage 1: train (or load) the VAE that maps frames to latent points and back."
    } else if !reached.rounds {
        "Press Space (or Step): round 0 draws points from the VAE's prior (fitted to the pool's embeddings), decodes them, labels them with the FEA and trains F."
    } else if reached.finished {
        "The budget is reached: compare the curves of the adaptive arm and the random baseline."
    } else {
        "Press Space for the next round: training points move along the gradient of F's loss towards harder samples."
    }
}
