//! The desktop application (docs/DESIGN.md §App): one window, a left column with the data and the two
//! stages, and in the middle the latent view beside the samples and the curves. The UI
//! thread only draws and sends commands; the worker (`crate::worker`) does all training,
//! FEA and decoding, and its events are drained at the start of every frame.
//!
//! As in egui's demo app, each panel is a struct that owns what only it uses (its
//! settings, kept between runs, apart from what the worker told it) and draws itself with
//! `ui`; what several panels use is in [`Shared`], passed to each. The app holds the
//! panels, routes each worker event to the panels whose state it changes, and carries out
//! what spans panels (a new study clears every panel's rounds).

mod curves;
mod data_panel;
mod export_panel;
mod images;
pub mod latent_view;
mod plot_axes;
mod project_panel;
mod samples;
mod shared;
mod stage1;
mod stage2;
mod teaching;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use curves::Curves;
pub use data_panel::{DataPanel, DataSettings};
pub use export_panel::{ExportPanel, ExportSettings, FolderChooser};
pub use latent_view::{LatentSettings, LatentView};
pub use project_panel::{ProjectPanel, ProjectSettings};
pub use samples::Samples;
pub use shared::Shared;
pub use stage1::{Stage1, Stage1Settings};
pub use stage2::{Stage2, Stage2Settings, StudyRequest};
pub use teaching::{Reached, Teaching, TeachingSettings};

use crate::worker::{Command, Event, WorkerHandle};

/// Settings kept between runs (eframe storage): each panel's own.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub data: DataSettings,
    pub stage1: Stage1Settings,
    pub stage2: Stage2Settings,
    pub project: ProjectSettings,
    pub latent: LatentSettings,
    pub export: ExportSettings,
    pub teaching: TeachingSettings,
}

/// What the window works on. Each has its own controls, and every panel shows only its
/// data: switching empties the views and loads the other's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workspace {
    /// The phantom or a labelled dataset: arms, repeats, curves.
    Study,
    /// A pullback's annotation loop: suggest, annotate, import.
    Project,
}

/// The eframe application: the panels and what they share.
pub struct SulaApp {
    /// What several panels use; each panel's `ui` gets it.
    pub shared: Shared,
    /// Study or project: which controls the left column shows.
    pub workspace: Workspace,
    pub data: DataPanel,
    pub stage1: Stage1,
    pub stage2: Stage2,
    pub project: ProjectPanel,
    pub latent: LatentView,
    pub export: ExportPanel,
    pub samples: Samples,
    pub curves: Curves,
    pub teaching: Teaching,
    device_badge: String,
    /// Whether the study's data (and its first VAE) were ever loaded.
    study_loaded: bool,
}

impl SulaApp {
    /// Builds the app with the worker, on the project folder `project` when one is given,
    /// else on the phantom. `cc.storage` restores the settings.
    pub fn new(cc: &eframe::CreationContext<'_>, project: Option<PathBuf>) -> SulaApp {
        let settings = cc
            .storage
            .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
            .unwrap_or_default();
        match project {
            Some(root) => SulaApp::on_project(&cc.egui_ctx, settings, root),
            None => SulaApp::with_settings(&cc.egui_ctx, settings),
        }
    }

    /// Builds the app with given settings (tests use tiny ones) and loads the phantom and
    /// the VAE that fits it: the shipped one at 64², otherwise one trained on demand.
    pub fn with_settings(ctx: &egui::Context, settings: Settings) -> SulaApp {
        let mut app = SulaApp::unloaded(ctx, settings);
        app.load_study_data();
        app
    }

    /// Loads the phantom; the first time, also the VAE that fits it (later the worker
    /// still holds the study's VAE, which may be one trained here).
    fn load_study_data(&mut self) {
        self.data.load_phantom(&self.shared);
        if !self.study_loaded && self.data.settings.size == 64 {
            self.send(Command::LoadDefaultVae);
        }
        self.study_loaded = true;
    }

    /// Builds the app on the project folder `root`: the phantom is never generated.
    pub fn on_project(ctx: &egui::Context, settings: Settings, root: PathBuf) -> SulaApp {
        let mut app = SulaApp::unloaded(ctx, settings);
        app.workspace = Workspace::Project;
        app.project.open_project(&mut app.shared, root);
        app
    }

    /// The app with its worker and panels, nothing loaded yet.
    fn unloaded(ctx: &egui::Context, settings: Settings) -> SulaApp {
        let waker_ctx = ctx.clone();
        let worker = WorkerHandle::spawn(Box::new(move || waker_ctx.request_repaint()));
        SulaApp {
            shared: Shared::new(worker),
            workspace: Workspace::Study,
            data: DataPanel::new(settings.data),
            stage1: Stage1::new(settings.stage1),
            stage2: Stage2::new(settings.stage2),
            project: ProjectPanel::new(settings.project),
            latent: LatentView::new(settings.latent),
            export: ExportPanel::new(settings.export),
            samples: Samples::default(),
            curves: Curves::default(),
            teaching: Teaching::new(settings.teaching),
            device_badge: crate::device::ComputeDevice::detect().to_string(),
            study_loaded: false,
        }
    }

    /// The settings to keep: each panel's.
    fn settings(&self) -> Settings {
        Settings {
            data: self.data.settings.clone(),
            stage1: self.stage1.settings.clone(),
            stage2: self.stage2.settings.clone(),
            project: self.project.settings.clone(),
            latent: self.latent.settings.clone(),
            export: self.export.settings.clone(),
            teaching: self.teaching.settings.clone(),
        }
    }

    /// Sends a command to the worker.
    pub fn send(&self, command: Command) {
        self.shared.send(command);
    }

    /// Asks the worker to load a dataset folder at the working resolution.
    pub fn open_folder(&mut self, path: PathBuf) {
        self.data.open_folder(&mut self.shared, path);
    }

    /// Starts a project on the pullback `pool` in the new folder `out`.
    pub fn new_project(&mut self, pool: PathBuf, out: PathBuf) {
        self.switch_to(Workspace::Project);
        let size = self.data.settings.size;
        self.project.new_project(&mut self.shared, pool, out, size);
    }

    /// Reopens the project folder `root`.
    pub fn open_project(&mut self, root: PathBuf) {
        self.switch_to(Workspace::Project);
        self.project.open_project(&mut self.shared, root);
    }

    /// Switches between the study and the project: the views empty, then the study reloads
    /// the phantom (the worker announces its VAE again), and the project reopens the last
    /// project, if there was one.
    pub fn switch_to(&mut self, workspace: Workspace) {
        if self.workspace == workspace {
            return;
        }
        self.workspace = workspace;
        self.new_data(None, Vec::new(), self.data.settings.size);
        self.stage1 = Stage1::new(self.stage1.settings.clone());
        match workspace {
            Workspace::Study => {
                self.shared.busy = true;
                self.load_study_data();
            }
            Workspace::Project => {
                if let Some(root) = self.project.last_root.clone() {
                    self.project.open_project(&mut self.shared, root);
                }
            }
        }
    }

    /// Writes the open project's next batch to annotate to the new folder `out`.
    pub fn suggest_frames(&mut self, out: PathBuf) {
        self.project.suggest_frames(&mut self.shared, out);
    }

    /// Imports the annotated batch folder `batch` into the open project.
    pub fn import_annotations(&mut self, batch: PathBuf) {
        self.project.import_annotations(&mut self.shared, batch);
    }

    /// Starts a fresh study with the current settings; the rounds of the last one leave
    /// every panel.
    pub fn start_study(&mut self) {
        match self.stage2.settings.loop_config() {
            Ok(config) => {
                self.curves = Curves::default();
                self.latent.new_study();
                self.samples.pairs.clear();
                self.teaching.captions.clear();
                self.stage2.start(&mut self.shared, config);
            }
            Err(message) => self.shared.errors.push(message),
        }
    }

    /// Carries out a study button's request: Step and Run start the study first if needed.
    fn study(&mut self, request: StudyRequest) {
        let command = match request {
            StudyRequest::Start => {
                self.start_study();
                return;
            }
            StudyRequest::Step => Command::Step,
            StudyRequest::Run => Command::Run,
        };
        if !self.stage2.study_started {
            self.start_study();
        }
        self.shared.busy = true;
        self.send(command);
    }

    /// Whether the study can run: the data and a VAE are there.
    fn ready(&self) -> bool {
        self.stage1.origin.is_some() && !self.shared.points.is_empty()
    }

    /// How far the user has come, for the teaching hint.
    fn reached(&self) -> Reached {
        Reached {
            data: self.data.name.is_some(),
            vae: self.stage1.origin.is_some(),
            rounds: !self.curves.rows.is_empty(),
            finished: self.stage2.finished,
        }
    }

    /// Applies every event the worker has sent since the last frame.
    fn drain_events(&mut self) {
        while let Some(event) = self.shared.next_event() {
            self.apply(event);
        }
    }

    /// Routes a worker event to the panels whose state it changes.
    fn apply(&mut self, event: Event) {
        match event {
            Event::Data {
                name,
                summary,
                size,
                ..
            } => self.new_data(Some(name), summary, size),
            Event::Latent { points, mean, axes } => {
                self.shared.points = points;
                self.latent.new_latent((mean, axes));
                self.samples.decoded.clear();
            }
            Event::VaeProgress {
                epoch,
                epochs,
                loss,
                fraction,
            } => {
                self.stage1.progress(fraction * epochs as f64, loss);
                self.shared.progress = Some((
                    format!("Training the VAE · epoch {}/{epochs}", epoch + 1),
                    fraction,
                    None,
                ));
                self.shared.busy = true;
            }
            Event::VaeReady {
                origin,
                epoch_losses,
                reconstructions,
            } => {
                self.stage1.ready(origin, &epoch_losses, reconstructions);
                self.stage2.study_started = false;
            }
            Event::Progress {
                what,
                fraction,
                eta_s,
            } => {
                // Training batches mean the worker is busy, even right after a Start's Idle.
                self.shared.busy |= fraction > 0.0;
                self.shared.progress = Some((what, fraction, eta_s));
                self.stage2.paused = false;
            }
            round @ Event::Round { .. } => self.apply_round(round),
            Event::Decoded { at, sample } => self.samples.decoded.push((at, sample)),
            Event::Saved(path) => self.shared.notice = Some(format!("Saved {}", path.display())),
            Event::RunFolder(path) => self.stage2.run_folder = Some(path),
            Event::Exported {
                path,
                count,
                skipped,
            } => {
                self.shared.notice = Some(format!(
                    "Exported {count} samples to {}{}",
                    path.display(),
                    if skipped > 0 {
                        format!(" ({skipped} the FEA could not label were left out)")
                    } else {
                        String::new()
                    }
                ));
            }
            Event::Idle { finished } => {
                self.shared.idle(finished);
                self.stage2.idle(finished);
            }
            Event::Paused => self.stage2.paused = true,
            Event::Project(project) => {
                self.workspace = Workspace::Project;
                self.project.last_root = Some(project.root.clone());
                self.project.open = Some(project);
            }
            Event::Error(message) => {
                self.shared.errors.push(message);
                self.shared.busy = false;
            }
        }
    }

    /// New data: every panel forgets the old pool, but the VAE (which the worker keeps)
    /// and the errors stay.
    fn new_data(&mut self, name: Option<String>, summary: Vec<String>, size: usize) {
        self.shared.new_data();
        self.data.loaded(name, summary);
        self.stage1.new_data();
        self.stage2.new_data();
        self.project.open = None;
        self.latent.new_data(size);
        self.samples = Samples::default();
        self.curves = Curves::default();
        self.teaching.captions.clear();
    }

    /// A finished round, shared out: its row and F's losses to the curves, what each arm
    /// chose (and the adaptive arm's steps) to the latent view, the adaptive arm's sample
    /// pairs to the samples, the caption to teaching.
    fn apply_round(&mut self, event: Event) {
        let Event::Round {
            arm,
            repeat,
            row,
            training,
            chosen,
            arrows,
            samples,
            caption,
            epoch_losses,
            ..
        } = event
        else {
            return;
        };
        let mode = row.mode;
        self.curves.push_round(arm, repeat, row, &epoch_losses);
        self.latent.push_round(arm, mode, chosen, arrows, training);
        if arm == crate::sampling::Arm::Adaptive && !samples.is_empty() {
            self.samples.pairs = samples;
        }
        self.teaching.captions.push(caption);
    }

    /// Per-frame logic before drawing: worker events, dropped folders, shortcuts.
    pub fn logic_step(&mut self, ctx: &egui::Context) {
        self.drain_events();
        self.data.handle_dropped_folder(&mut self.shared, ctx);
        let space = self
            .teaching
            .shortcuts(ctx, &mut self.latent.settings.show_history);
        if space && self.stage2.can_step(&self.shared, self.ready()) {
            self.study(StudyRequest::Step);
        }
    }

    /// Draws the whole window into `ui`: each panel draws itself.
    pub fn draw(&mut self, ui: &mut egui::Ui) {
        let mut workspace = self.workspace;
        let busy = self.shared.busy;
        egui::Panel::top("top_bar").show(ui, |ui| {
            self.shared.top_bar(ui, &self.device_badge, |ui| {
                ui.add_enabled_ui(!busy, |ui| workspace_switch(ui, &mut workspace));
            });
        });
        if workspace != self.workspace {
            self.switch_to(workspace);
        }
        if self.teaching.settings.enabled {
            let (reached, arms) = (self.reached(), self.latent.chosen.len());
            egui::Panel::bottom("teaching").show(ui, |ui| self.teaching.ui(ui, reached, arms));
        }
        let request = self.left_column(ui);
        if let Some(request) = request {
            self.study(request);
        }
        egui::Panel::right("results")
            .default_size(620.0)
            .show(ui, |ui| {
                // Both collapse, so either can have the whole column.
                egui::ScrollArea::vertical().show(ui, |ui| {
                    egui::CollapsingHeader::new(egui::RichText::new("Samples").heading())
                        .id_salt("samples")
                        .default_open(true)
                        .show(ui, |ui| match &self.project.open {
                            Some(project) => Samples::project_ui(ui, &mut self.shared, project),
                            None => self.samples.ui(ui, &mut self.shared),
                        });
                    ui.separator();
                    egui::CollapsingHeader::new(egui::RichText::new("Curves").heading())
                        .id_salt("curves")
                        .default_open(true)
                        .show(ui, |ui| match &self.project.open {
                            Some(project) => project_panel::rounds(project, ui),
                            None => self
                                .curves
                                .ui(ui, &mut self.shared, self.data.settings.size),
                        });
                });
            });
        egui::CentralPanel::default().show(ui, |ui| {
            let others = latent_view::Others {
                generator: self.stage2.settings.generator,
                teaching: &mut self.teaching.settings.enabled,
                decoded: &self.samples.decoded,
                project: self.project.open.as_ref(),
            };
            self.latent.ui(ui, &mut self.shared, others);
            // The export strip sits under the plot, which shows once there are points; a
            // project's frames leave as batches instead.
            if !self.shared.points.is_empty() && self.workspace == Workspace::Study {
                let has_moves = self.latent.has_moves();
                self.export
                    .ui(ui, &mut self.shared, &mut self.latent.selection, has_moves);
            }
        });
    }

    /// The left column: data, the two stages and the project; returns what the study
    /// buttons ask for, carried out once the column is drawn.
    fn left_column(&mut self, ui: &mut egui::Ui) -> Option<StudyRequest> {
        let (has_data, ready) = (self.data.name.is_some(), self.ready());
        let mut request = None;
        egui::Panel::left("controls")
            .default_size(330.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    let shared = &mut self.shared;
                    match self.workspace {
                        Workspace::Study => {
                            self.data.ui(ui, shared);
                            ui.separator();
                            let seed = self.stage2.settings.seed;
                            self.stage1.ui(ui, shared, has_data, seed);
                            ui.separator();
                            request = self.stage2.ui(ui, shared, ready);
                        }
                        Workspace::Project => {
                            self.project.ui(ui, shared, self.data.settings.size);
                            ui.separator();
                            let epochs = &mut self.project.settings.project_vae_epochs;
                            if self.project.open.is_some() {
                                self.stage1.project_ui(ui, shared, epochs);
                                ui.separator();
                            }
                            self.project.loop_ui(ui, shared);
                        }
                    }
                });
            });
        request
    }
}

/// The choice between the study and the project, in the top bar.
fn workspace_switch(ui: &mut egui::Ui, workspace: &mut Workspace) {
    ui.label("Work on");
    ui.selectable_value(workspace, Workspace::Study, "Study")
        .on_hover_text("The phantom or a labelled dataset: the method against random and the other arms, over repeats");
    ui.selectable_value(workspace, Workspace::Project, "Project")
        .on_hover_text(
            "Your own pullback: suggest frames to annotate, import the annotations, train F",
        );
}

/// A grid row: a label and the widget `add` puts after it, named by the label for
/// screen readers and tests.
fn labelled_row(ui: &mut egui::Ui, text: &str, add: impl FnOnce(&mut egui::Ui) -> egui::Response) {
    let label = ui.label(text);
    add(ui).labelled_by(label.id);
    ui.end_row();
}

impl eframe::App for SulaApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.logic_step(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.draw(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings());
    }
}

/// The app icon, also installed by the packages (`packaging/sula.png`).
const ICON_PNG: &[u8] = include_bytes!("../../packaging/sula.png");

/// Opens the window (1600×1000 by default) and runs the app until it is closed; with
/// `project`, that project folder is opened once the app has started.
pub fn run_native(project: Option<PathBuf>) -> eframe::Result {
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("sula")
        .with_app_id("sula")
        .with_inner_size([1600.0, 1000.0]);
    // The icon is compiled in; a broken one only costs the icon, never the window.
    if let Ok(icon) = eframe::icon_data::from_png_bytes(ICON_PNG) {
        viewport = viewport.with_icon(icon);
    }
    let options = eframe::NativeOptions {
        viewport,
        ..Default::default()
    };
    eframe::run_native(
        "sula",
        options,
        Box::new(|cc| Ok(Box::new(SulaApp::new(cc, project)))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// eframe's storage, in memory.
    #[derive(Default)]
    struct Memory(std::collections::HashMap<String, String>);

    impl eframe::Storage for Memory {
        fn get_string(&self, key: &str) -> Option<String> {
            self.0.get(key).cloned()
        }

        fn set_string(&mut self, key: &str, value: String) {
            self.0.insert(key.to_string(), value);
        }

        fn remove_string(&mut self, key: &str) {
            self.0.remove(key);
        }

        fn flush(&mut self) {}
    }

    #[test]
    fn every_panels_settings_survive_storage() {
        let mut settings = Settings::default();
        settings.data.pixel_mm = Some(0.02);
        settings.stage2.runs_dir = Some(PathBuf::from("/tmp/runs"));
        settings.latent.color_by = latent_view::ColorBy::Position;
        settings.export.export_rounds = 3;
        settings.project.suggest_count = 5;
        settings.teaching.enabled = true;
        let mut storage = Memory::default();
        eframe::set_value(&mut storage, eframe::APP_KEY, &settings);
        let restored: Option<Settings> = eframe::get_value(&storage, eframe::APP_KEY);
        assert_eq!(restored, Some(settings));
    }

    #[test]
    fn the_window_icon_decodes() {
        let icon = eframe::icon_data::from_png_bytes(ICON_PNG).unwrap();
        assert_eq!((icon.width, icon.height), (256, 256));
    }
}
