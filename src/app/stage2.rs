//! Stage 2, adaptive sampling: mode, n0, k, η, epochs per round, budget, repeats and
//! seed, the variant of the method and the arms to compare it with; Start, Step, Run,
//! Pause/Resume and Cancel. The random baseline (and core-set and TTA uncertainty, when
//! ticked) run alongside with the same settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Command, Shared, labelled_row};
use crate::experiment::Protocol;
use crate::model::regressor::RegressorConfig;
use crate::sampling::{
    Arm, Generator, LoopConfig, Mode, Movers, Normalisation, RoundZero, Setting, Variant, chosen,
};

/// The study settings kept between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stage2Settings {
    pub mode: Mode,
    pub n0: usize,
    pub k: usize,
    pub step: f32,
    pub normalisation: Normalisation,
    /// Which reading of the method the adaptive arm follows.
    pub variant: Variant,
    /// Where new latent points come from and what noise decoded images carry.
    pub generator: Generator,
    pub epochs_per_round: usize,
    pub budget: usize,
    pub repeats: usize,
    /// Pool strategies run beside the adaptive and random arms.
    pub core_set: bool,
    pub tta: bool,
    pub seed: u64,
    /// Save each study to a run folder (settings, VAE, per-round records, results).
    pub save_runs: bool,
    /// Where run folders go; `None`: `runs/` in the app's data folder.
    pub runs_dir: Option<PathBuf>,
}

impl Default for Stage2Settings {
    fn default() -> Self {
        // The CPU default protocol of `sula experiment`, one repeat.
        let (n0, k, budget, epochs_per_round) = Protocol::Default.sizes();
        let mut settings = Stage2Settings {
            mode: Mode::Si,
            n0,
            k,
            step: 1.0,
            normalisation: Normalisation::L2,
            variant: Setting::PAPER.variant,
            generator: Generator::default(),
            epochs_per_round,
            budget,
            repeats: 1,
            core_set: false,
            tta: false,
            seed: 1,
            save_runs: true,
            runs_dir: None,
        };
        settings.apply(chosen(Mode::Si));
        settings
    }
}

impl Stage2Settings {
    /// Takes η, the variant and k of one reading of the method (the setting chosen on the
    /// validation split for a mode, or the paper's), leaving everything else.
    pub fn apply(&mut self, setting: Setting) {
        self.step = setting.step;
        self.variant = setting.variant;
        let (_, protocol_k, _, _) = Protocol::Default.sizes();
        self.k = setting.samples_per_round(protocol_k);
    }

    /// The loop configuration these settings describe.
    pub fn loop_config(&self) -> Result<LoopConfig, String> {
        let config = LoopConfig {
            mode: self.mode,
            sizes: LoopConfig::sizes_from(self.n0, self.k, self.budget)
                .map_err(|e| e.to_string())?,
            epochs_per_round: self.epochs_per_round,
            step: self.step,
            normalisation: self.normalisation,
            batch_size: 32,
            learning_rate: 1e-3,
            regressor_width: RegressorConfig::new(64).width,
            seed: self.seed,
            variant: self.variant,
            generator: self.generator,
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// The arms run beside the adaptive one: random, and the ticked pool strategies.
    fn comparison_arms(&self) -> Vec<Arm> {
        [
            (Arm::Baseline, true),
            (Arm::CoreSet, self.core_set),
            (Arm::Tta, self.tta),
        ]
        .into_iter()
        .filter_map(|(arm, on)| on.then_some(arm))
        .collect()
    }

    /// A new folder for the next study under the runs folder, named by the UTC time and
    /// mode; `None` when runs are not saved or there is nowhere to save them.
    fn new_run_folder(&self) -> Option<PathBuf> {
        if !self.save_runs {
            return None;
        }
        let root = self
            .runs_dir
            .clone()
            .or_else(|| eframe::storage_dir("sula").map(|d| d.join("runs")))?;
        let stem = format!("{}_{}", utc_stamp(), self.mode.name());
        (1..)
            .map(|n| match n {
                1 => root.join(&stem),
                n => root.join(format!("{stem}_{n}")),
            })
            .find(|p| !p.exists())
    }
}

/// What the study buttons ask of the app: starting a study also clears the other panels'
/// rounds, so the app, which holds them all, carries it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudyRequest {
    /// A fresh study.
    Start,
    /// One round of every arm, starting the study first if needed.
    Step,
    /// Rounds until the budget, starting the study first if needed.
    Run,
}

/// The study panel: its settings and where the study stands.
#[derive(Default)]
pub struct Stage2 {
    /// Kept between runs (eframe storage).
    pub settings: Stage2Settings,
    /// The worker holds a study that Step and Run continue.
    pub study_started: bool,
    /// The study reached its budget.
    pub finished: bool,
    /// The worker paused the run: the Pause button reads Resume.
    pub paused: bool,
    /// The folder the current study is saved to.
    pub run_folder: Option<PathBuf>,
}

impl Stage2 {
    /// Starts with the settings kept from the last run and no study.
    pub fn new(settings: Stage2Settings) -> Stage2 {
        Stage2 {
            settings,
            ..Stage2::default()
        }
    }

    /// New data: a study of the old data cannot go on.
    pub fn new_data(&mut self) {
        *self = Stage2::new(std::mem::take(&mut self.settings));
    }

    /// The worker went idle, at the budget or not.
    pub fn idle(&mut self, finished: bool) {
        self.paused = false;
        self.finished = finished;
    }

    /// Whether Step (button or Space) may run a round: the worker is free, the data and a
    /// VAE are `ready`, and the budget is not reached.
    pub fn can_step(&self, shared: &Shared, ready: bool) -> bool {
        !shared.busy && ready && !self.finished
    }

    /// Sends a fresh study with `config` (from [`Stage2Settings::loop_config`]) to the
    /// worker.
    pub fn start(&mut self, shared: &mut Shared, config: LoopConfig) {
        self.study_started = true;
        self.finished = false;
        self.run_folder = None;
        shared.busy = true;
        shared.send(Command::Start {
            config,
            arms: self.settings.comparison_arms(),
            repeats: self.settings.repeats,
            run_dir: self.settings.new_run_folder(),
        });
    }

    /// The settings, the variant, the run controls and the study's state; `ready`: the
    /// data and a VAE are there. Returns what the study buttons ask for.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        shared: &mut Shared,
        ready: bool,
    ) -> Option<StudyRequest> {
        ui.heading("Stage 2 · adaptive sampling");
        ui.small("Move training points along the gradient of F's loss, label what lies there, train; the random baseline gets the same sizes and steps.");
        settings_grid(ui, &mut self.settings);
        variant_of_the_method(ui, &mut self.settings);
        let request = self.run_controls(ui, shared, ready);
        if !ready {
            ui.small("Waiting for data and a VAE (Stage 1).");
        } else if self.finished {
            ui.small("The study reached its budget. Start a new one to run again.");
        }
        if let Some(folder) = &self.run_folder {
            ui.small(format!("Saved as it runs to {}", folder.display()))
                .on_hover_text(
                    "Settings, per-round records and results: `sula export --run` reads this folder",
                );
        }
        request
    }

    /// Start, Step, Run, Pause/Resume and Cancel.
    fn run_controls(
        &mut self,
        ui: &mut egui::Ui,
        shared: &mut Shared,
        ready: bool,
    ) -> Option<StudyRequest> {
        let busy = shared.busy;
        let can_step = self.can_step(shared, ready);
        let mut request = None;
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!busy && ready, egui::Button::new("Start"))
                .on_hover_text("New study with these settings")
                .clicked()
            {
                request = Some(StudyRequest::Start);
            }
            if ui
                .add_enabled(can_step, egui::Button::new("Step"))
                .on_hover_text("One round of every arm (Space)")
                .clicked()
            {
                request = Some(StudyRequest::Step);
            }
            if ui
                .add_enabled(can_step, egui::Button::new("Run"))
                .on_hover_text("Rounds until the budget, every repeat")
                .clicked()
            {
                request = Some(StudyRequest::Run);
            }
        });
        ui.horizontal(|ui| {
            let label = if self.paused { "Resume" } else { "Pause" };
            if ui.add_enabled(busy, egui::Button::new(label)).clicked() {
                shared.send(if self.paused {
                    Command::Resume
                } else {
                    Command::Pause
                });
            }
            if ui.add_enabled(busy, egui::Button::new("Cancel")).clicked() {
                shared.send(Command::Cancel);
                self.study_started = false;
            }
        });
        request
    }
}

/// Mode, sizes, step, schedule, generator and the arms to compare with.
fn settings_grid(ui: &mut egui::Ui, s: &mut Stage2Settings) {
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
fn variant_of_the_method(ui: &mut egui::Ui, s: &mut Stage2Settings) {
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

/// "2026-11-26_03-04-05": the current UTC time, for folder names.
fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_stamp_of(secs)
}

/// [`utc_stamp`] of `secs` seconds since 1970-01-01 UTC.
fn utc_stamp_of(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}_{:02}-{:02}-{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folder_stamps_are_utc_calendar_times() {
        assert_eq!(utc_stamp_of(0), "1970-01-01_00-00-00");
        assert_eq!(utc_stamp_of(951_782_400), "2000-02-29_00-00-00");
        assert_eq!(utc_stamp_of(1_795_000_000), "2026-11-18_11-06-40");
    }
}
