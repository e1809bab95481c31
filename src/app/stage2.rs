//! Stage 2, adaptive sampling: mode, n0, k, η, epochs per round, budget, repeats and
//! seed, the variant of the method and the arms to compare it with; Start, Step, Run,
//! Pause/Resume and Cancel. The random baseline (and core-set and TTA uncertainty, when
//! ticked) run alongside with the same settings.

use super::{Command, Settings, SulaApp, labelled_row};
use crate::model::regressor::RegressorConfig;
use crate::sampling::{
    Arm, Generator, LoopConfig, Mode, Movers, Normalisation, RoundZero, Setting, chosen,
};

impl SulaApp {
    /// The loop configuration the stage-2 settings describe.
    pub fn loop_config(&self) -> Result<LoopConfig, String> {
        let s = &self.settings;
        let config = LoopConfig {
            mode: s.mode,
            sizes: LoopConfig::sizes_from(s.n0, s.k, s.budget).map_err(|e| e.to_string())?,
            epochs_per_round: s.epochs_per_round,
            step: s.step,
            normalisation: s.normalisation,
            batch_size: 32,
            learning_rate: 1e-3,
            regressor_width: RegressorConfig::new(64).width,
            seed: s.seed,
            variant: s.variant,
            generator: s.generator,
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// Starts a fresh study with the current settings.
    pub fn start_study(&mut self) {
        match self.loop_config() {
            Ok(config) => {
                self.view.rows.clear();
                self.view.summary = None;
                self.view.chosen.clear();
                self.view.train_losses.clear();
                self.view.captions.clear();
                self.view.arrows.clear();
                self.view.history.clear();
                self.view.training.clear();
                self.view.samples.clear();
                self.view.study_started = true;
                self.view.finished = false;
                self.view.busy = true;
                self.view.run_folder = None;
                self.view.selected_moved.clear();
                let run_dir = self.new_run_folder();
                self.send(Command::Start {
                    config,
                    arms: self.comparison_arms(),
                    repeats: self.settings.repeats,
                    run_dir,
                });
            }
            Err(message) => self.view.errors.push(message),
        }
    }

    /// The arms run beside the adaptive one: random, and the ticked pool strategies.
    pub fn comparison_arms(&self) -> Vec<Arm> {
        let s = &self.settings;
        [
            (Arm::Baseline, true),
            (Arm::CoreSet, s.core_set),
            (Arm::Tta, s.tta),
        ]
        .into_iter()
        .filter_map(|(arm, on)| on.then_some(arm))
        .collect()
    }

    /// One round of every arm (starting the study first if needed).
    pub fn step_round(&mut self) {
        if !self.view.study_started {
            self.start_study();
        }
        self.view.busy = true;
        self.send(Command::Step);
    }
}

pub fn ui(app: &mut SulaApp, ui: &mut egui::Ui) {
    ui.heading("Stage 2 · adaptive sampling");
    ui.small("Move training points along the gradient of F's loss, label what lies there, train; the random baseline gets the same sizes and steps.");
    let busy = app.view.busy;
    let ready = app.view.vae_origin.is_some() && !app.view.points.is_empty();
    settings_grid(ui, &mut app.settings);
    variant_of_the_method(ui, &mut app.settings);
    run_controls(app, ui, busy, ready);
    if !ready {
        ui.small("Waiting for data and a VAE (Stage 1).");
    } else if app.view.finished {
        ui.small("The study reached its budget. Start a new one to run again.");
    }
    if let Some(folder) = &app.view.run_folder {
        ui.small(format!("Saved as it runs to {}", folder.display()))
            .on_hover_text(
                "Settings, per-round records and results: `sula export --run` reads this folder",
            );
    }
}

/// Mode, sizes, step, schedule, generator and the arms to compare with.
fn settings_grid(ui: &mut egui::Ui, s: &mut Settings) {
    egui::Grid::new("stage2_grid")
        .num_columns(2)
        .show(ui, |ui| {
            ui.label("Mode").on_hover_text(
                "Switching mode takes that mode's η, k and variant chosen on the validation split",
            );
            ui.horizontal(|ui| {
                let before = s.mode;
                ui.radio_value(&mut s.mode, Mode::Si, "SI")
                    .on_hover_text("Decode z' and label the generated sample with the FEA");
                ui.radio_value(&mut s.mode, Mode::Snn, "SNN")
                    .on_hover_text("Label the nearest unused real frame to z'");
                if s.mode != before {
                    s.apply(chosen(s.mode));
                }
            });
            ui.end_row();
            labelled_row(ui, "n0 (round 0)", |ui| {
                ui.add(egui::DragValue::new(&mut s.n0).range(1..=5000))
            });
            labelled_row(ui, "k (per round)", |ui| {
                ui.add(egui::DragValue::new(&mut s.k).range(1..=5000))
            });
            labelled_row(ui, "Step η", |ui| {
                ui.add(
                    egui::DragValue::new(&mut s.step)
                        .range(0.01..=10.0)
                        .speed(0.05),
                )
            });
            ui.label("Normalisation");
            ui.horizontal(|ui| {
                ui.radio_value(&mut s.normalisation, Normalisation::L2, "L2");
                ui.radio_value(&mut s.normalisation, Normalisation::Sign, "sign");
            });
            ui.end_row();
            labelled_row(ui, "Epochs per round", |ui| {
                ui.add(egui::DragValue::new(&mut s.epochs_per_round).range(1..=200))
            });
            labelled_row(ui, "Budget", |ui| {
                ui.add(egui::DragValue::new(&mut s.budget).range(1..=100000))
            });
            labelled_row(ui, "Repeats", |ui| {
                ui.add(egui::DragValue::new(&mut s.repeats).range(1..=20))
            });
            labelled_row(ui, "Seed", |ui| ui.add(egui::DragValue::new(&mut s.seed)));
            ui.label("Generator").on_hover_text(
                "Where new latent points are drawn and what noise decoded images carry (docs/FINDINGS.md)",
            );
            ui.horizontal(|ui| {
                ui.radio_value(&mut s.generator, Generator::Pool, "pool").on_hover_text(
                    "Draws round the pool frames' own codes; images carry real frames' residual noise",
                );
                ui.radio_value(&mut s.generator, Generator::Fitted, "fitted").on_hover_text(
                    "Draws from the Gaussian mixture stored with the VAE; images carry Gaussian speckle",
                );
            });
            ui.end_row();
            ui.label("Compare with")
                .on_hover_text("The random baseline always runs; tick the pool strategies to add");
            ui.horizontal(|ui| {
                ui.checkbox(&mut s.core_set, "core-set").on_hover_text(
                    "Greedy k-centre on the VAE's encoder means: the frames farthest from the training set",
                );
                ui.checkbox(&mut s.tta, "TTA").on_hover_text(
                    "Uncertainty by test-time augmentation: the frames F's prediction varies most on under rotations and mirrors",
                );
            });
            ui.end_row();
        });
}

/// The variant of the method (folded): round 0, movers, the chosen and the paper's
/// settings, and the switches.
fn variant_of_the_method(ui: &mut egui::Ui, s: &mut Settings) {
    egui::CollapsingHeader::new("Variant of the method")
        .default_open(false)
        .show(ui, |ui| {
            egui::Grid::new("variant_grid")
                .num_columns(2)
                .show(ui, |ui| {
                    ui.label("Round 0");
                    ui.horizontal(|ui| {
                        ui.radio_value(&mut s.variant.round_zero, RoundZero::Prior, "prior draws")
                            .on_hover_text("n0 samples drawn from the generator's prior");
                        ui.radio_value(&mut s.variant.round_zero, RoundZero::Real, "real frames")
                            .on_hover_text("n0 random real frames, the same as the random arm's");
                    });
                    ui.end_row();
                    ui.label("Moving");
                    ui.horizontal(|ui| {
                        ui.radio_value(&mut s.variant.movers, Movers::Random, "random members");
                        ui.radio_value(&mut s.variant.movers, Movers::HighestLoss, "highest loss")
                            .on_hover_text("The members F currently fits worst");
                    });
                    ui.end_row();
                });
            ui.horizontal(|ui| {
                if ui
                    .button("chosen")
                    .on_hover_text("η, k and variant chosen for this mode on the validation split (docs/FINDINGS.md)")
                    .clicked()
                {
                    s.apply(chosen(s.mode));
                }
                if ui
                    .button("paper's reading")
                    .on_hover_text("η 1, k 40, round 0 from the prior, random movers, chaining")
                    .clicked()
                {
                    s.apply(Setting::PAPER);
                }
            });
            ui.horizontal_wrapped(|ui| {
                ui.checkbox(&mut s.variant.chaining, "chaining")
                    .on_hover_text("Generated members may move again; off: only real members move");
                ui.checkbox(&mut s.variant.snap_radius, "snap radius")
                    .on_hover_text(
                        "SNN: snap outside the typical neighbour distance of every training member",
                    );
                ui.checkbox(&mut s.variant.trust_region, "trust region")
                    .on_hover_text("Keep z' within the typical neighbour distance of a real frame");
                ui.checkbox(&mut s.variant.random_direction, "random direction")
                    .on_hover_text(
                        "A control, not the method: step η along a random direction instead of the gradient",
                    );
            });
        });
}

/// Start, Step, Run, Pause/Resume and Cancel.
fn run_controls(app: &mut SulaApp, ui: &mut egui::Ui, busy: bool, ready: bool) {
    ui.horizontal(|ui| {
        if ui
            .add_enabled(!busy && ready, egui::Button::new("Start"))
            .on_hover_text("New study with these settings")
            .clicked()
        {
            app.start_study();
        }
        if ui
            .add_enabled(
                !busy && ready && !app.view.finished,
                egui::Button::new("Step"),
            )
            .on_hover_text("One round of every arm (Space)")
            .clicked()
        {
            app.step_round();
        }
        if ui
            .add_enabled(
                !busy && ready && !app.view.finished,
                egui::Button::new("Run"),
            )
            .on_hover_text("Rounds until the budget, every repeat")
            .clicked()
        {
            if !app.view.study_started {
                app.start_study();
            }
            app.view.busy = true;
            app.send(Command::Run);
        }
    });
    ui.horizontal(|ui| {
        let label = if app.view.paused { "Resume" } else { "Pause" };
        if ui.add_enabled(busy, egui::Button::new(label)).clicked() {
            app.send(if app.view.paused {
                Command::Resume
            } else {
                Command::Pause
            });
        }
        if ui.add_enabled(busy, egui::Button::new("Cancel")).clicked() {
            app.send(Command::Cancel);
            app.view.study_started = false;
        }
    });
}
