//! The desktop application (docs/DESIGN.md §App): one window, a left column with the data and the two
//! stages, and in the middle the latent view beside the samples and the curves. The UI
//! thread only draws and sends commands; the worker (`crate::worker`) does all training,
//! FEA and decoding, and its events are drained at the start of every frame.

mod curves;
mod data_panel;
mod export_panel;
mod images;
pub mod latent_view;
mod plot_axes;
mod project_panel;
mod samples;
mod stage1;
mod stage2;
mod teaching;

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::experiment::{Protocol, Row};
use crate::export::collect::MovedRef;
use crate::sampling::{Arm, Mode, Normalisation, Setting, chosen};
use crate::worker::{Arrow, Command, Event, ExportSelection, PoolPoint, SampleView, WorkerHandle};

/// Settings kept between runs (eframe storage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub size: usize,
    pub phantom_pool: usize,
    pub phantom_test: usize,
    pub phantom_seed: u64,
    pub pixel_mm: Option<f64>,
    pub vae_epochs: usize,
    pub latent_dim: usize,
    pub mode: Mode,
    pub n0: usize,
    pub k: usize,
    pub step: f32,
    pub normalisation: Normalisation,
    /// Which reading of the method the adaptive arm follows.
    pub variant: crate::sampling::Variant,
    /// Where new latent points come from and what noise decoded images carry.
    pub generator: crate::sampling::Generator,
    pub epochs_per_round: usize,
    pub budget: usize,
    pub repeats: usize,
    /// Pool strategies run beside the adaptive and random arms.
    pub core_set: bool,
    pub tta: bool,
    pub seed: u64,
    pub color_by: latent_view::ColorBy,
    pub show_history: bool,
    pub teaching: bool,
    /// Save each study to a run folder (settings, VAE, per-round records, results).
    pub save_runs: bool,
    /// Where run folders go; `None`: `runs/` in the app's data folder.
    pub runs_dir: Option<PathBuf>,
    /// How many of the latest rounds "Export rounds…" takes.
    pub export_rounds: usize,
    /// Frames per suggested batch of a project.
    pub suggest_count: usize,
    /// Epochs F trains after each import.
    pub import_epochs: usize,
    /// Epochs of the image-only VAE a new project trains.
    pub project_vae_epochs: usize,
}

impl Default for Settings {
    fn default() -> Self {
        // The CPU default protocol of `sula experiment`, one repeat.
        let (n0, k, budget, epochs_per_round) = Protocol::Default.sizes();
        let mut settings = Settings {
            size: 64,
            phantom_pool: 1200,
            phantom_test: 300,
            phantom_seed: 1,
            pixel_mm: None,
            vae_epochs: 20,
            latent_dim: 32,
            mode: Mode::Si,
            n0,
            k,
            step: 1.0,
            normalisation: Normalisation::L2,
            variant: Setting::PAPER.variant,
            generator: crate::sampling::Generator::default(),
            epochs_per_round,
            budget,
            repeats: 1,
            core_set: false,
            tta: false,
            seed: 1,
            color_by: latent_view::ColorBy::Membership,
            show_history: false,
            teaching: false,
            save_runs: true,
            runs_dir: None,
            export_rounds: 1,
            suggest_count: 8,
            import_epochs: 20,
            project_vae_epochs: 30,
        };
        settings.apply(chosen(Mode::Si));
        settings
    }
}

impl Settings {
    /// Takes η, the variant and k of one reading of the method (the setting chosen on the
    /// validation split for a mode, or the paper's), leaving everything else.
    pub fn apply(&mut self, setting: Setting) {
        self.step = setting.step;
        self.variant = setting.variant;
        let (_, protocol_k, _, _) = Protocol::Default.sizes();
        self.k = setting.samples_per_round(protocol_k);
    }
}

/// What the worker has told the UI so far.
#[derive(Default)]
pub struct View {
    pub data_name: Option<String>,
    pub data_summary: Vec<String>,
    pub data_size: usize,
    pub vae_origin: Option<String>,
    pub vae_losses: Vec<[f64; 2]>,
    pub reconstructions: Vec<(SampleView, SampleView)>,
    pub points: Vec<PoolPoint>,
    pub projection: Option<(Vec<f32>, [Vec<f32>; 2])>,
    pub training: Vec<[f32; 2]>,
    /// Per arm, the pool frames it chose in the current repeat and the round of each.
    pub chosen: Vec<(Arm, Vec<(usize, usize)>)>,
    pub arrows: Vec<Arrow>,
    pub history: Vec<Arrow>,
    pub samples: Vec<(SampleView, SampleView)>,
    pub decoded: Vec<([f32; 2], SampleView)>,
    pub rows: Vec<Row>,
    /// The summary of `rows` and how many rows it was made from: its bootstrap intervals
    /// are too dear to recompute every frame, so it is redone only when rows arrive.
    pub summary: Option<(usize, crate::experiment::Summary)>,
    pub train_losses: Vec<(Arm, Vec<[f64; 2]>)>,
    pub captions: Vec<String>,
    pub progress: Option<(String, f64, Option<f64>)>,
    pub busy: bool,
    pub paused: bool,
    pub study_started: bool,
    pub finished: bool,
    pub errors: Vec<String>,
    pub notice: Option<String>,
    /// Pool points selected in the latent view (indices into `points`).
    pub selected: Vec<usize>,
    /// Gradient-moved samples selected in the latent view.
    pub selected_moved: Vec<MovedRef>,
    /// The folder the current study is saved to.
    pub run_folder: Option<PathBuf>,
    /// When the latest round arrived (the teaching animation runs from here).
    pub round_arrived: Option<Instant>,
    /// The annotation project open in the app.
    pub project: Option<crate::worker::ProjectView>,
}

/// Asks where an export goes; returns `None` when the user cancels.
pub type FolderChooser = Box<dyn FnMut() -> Option<PathBuf>>;

/// The eframe application.
pub struct SulaApp {
    pub settings: Settings,
    pub view: View,
    /// The export folder dialog (rfd); tests put a fixed folder here.
    pub choose_export_folder: FolderChooser,
    worker: WorkerHandle,
    images: images::TextureCache,
    device_badge: String,
}

impl View {
    /// A finished round: its row, what each arm chose, F's training losses and, for the
    /// adaptive arm, the arrows, training points and sample pairs.
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
        self.rows.push(row);
        match self.chosen.iter_mut().find(|(a, _)| *a == arm) {
            Some((_, existing)) => *existing = chosen,
            None => self.chosen.push((arm, chosen)),
        }
        let offset = self
            .train_losses
            .iter()
            .find(|(a, _)| *a == arm)
            .map_or(0, |(_, l)| l.len());
        let losses: Vec<[f64; 2]> = epoch_losses
            .iter()
            .enumerate()
            .map(|(i, l)| [(offset + i + 1) as f64, *l])
            .collect();
        match self.train_losses.iter_mut().find(|(a, _)| *a == arm) {
            Some((_, existing)) if repeat == 0 => existing.extend(losses),
            Some(_) => {}
            None => self.train_losses.push((arm, losses)),
        }
        if arm == Arm::Adaptive {
            self.history.append(&mut self.arrows);
            self.arrows = arrows;
            self.training = training;
            if !samples.is_empty() {
                self.samples = samples;
            }
            self.round_arrived = Some(Instant::now());
        }
        self.captions.push(caption);
    }

    /// The worker went idle: status lines end with the work, and an ETA means nothing.
    fn idle(&mut self, finished: bool) {
        // Status lines ("Loading…", "Embedding…") end with the work; a finished or
        // cancelled run keeps its last line.
        if self
            .progress
            .as_ref()
            .is_some_and(|(_, f, _)| *f == 0.0 && !finished)
            && !self
                .progress
                .as_ref()
                .is_some_and(|(w, _, _)| w.starts_with("Cancelled") || w.starts_with("Ready"))
        {
            self.progress = None;
        }
        // An ETA means nothing once the worker is idle.
        if let Some((_, _, eta)) = &mut self.progress {
            *eta = None;
        }
        self.busy = false;
        self.paused = false;
        self.finished = finished;
    }
}

impl SulaApp {
    /// Builds the app with the worker and starts generating the phantom. `cc.storage`
    /// restores the settings.
    pub fn new(cc: &eframe::CreationContext<'_>) -> SulaApp {
        let settings = cc
            .storage
            .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
            .unwrap_or_default();
        SulaApp::with_settings(&cc.egui_ctx, settings)
    }

    /// Builds the app with given settings (tests use tiny ones) and loads the phantom and
    /// the VAE that fits it: the shipped one at 64², otherwise one trained on demand.
    pub fn with_settings(ctx: &egui::Context, settings: Settings) -> SulaApp {
        let waker_ctx = ctx.clone();
        let worker = WorkerHandle::spawn(Box::new(move || waker_ctx.request_repaint()));
        let app = SulaApp {
            settings,
            view: View::default(),
            choose_export_folder: Box::new(|| {
                rfd::FileDialog::new()
                    .set_title("Export to a new folder")
                    .set_file_name("hard_samples")
                    .save_file()
            }),
            worker,
            images: images::TextureCache::default(),
            device_badge: crate::device::ComputeDevice::detect().to_string(),
        };
        app.load_phantom();
        if app.settings.size == 64 {
            app.send(Command::LoadDefaultVae);
        }
        app
    }

    /// Sends a command to the worker.
    pub fn send(&self, command: Command) {
        self.worker.send(command);
    }

    /// Regenerates the phantom with the current settings.
    pub fn load_phantom(&self) {
        self.send(Command::LoadPhantom {
            pool: self.settings.phantom_pool,
            test: self.settings.phantom_test,
            seed: self.settings.phantom_seed,
            size: self.settings.size,
        });
    }

    /// A new folder for the next study under the runs folder, named by the UTC time and
    /// mode; `None` when runs are not saved or there is nowhere to save them.
    pub fn new_run_folder(&self) -> Option<PathBuf> {
        if !self.settings.save_runs {
            return None;
        }
        let root = self
            .settings
            .runs_dir
            .clone()
            .or_else(|| eframe::storage_dir("sula").map(|d| d.join("runs")))?;
        let stem = format!("{}_{}", utc_stamp(), self.settings.mode.name());
        (1..)
            .map(|n| match n {
                1 => root.join(&stem),
                n => root.join(format!("{stem}_{n}")),
            })
            .find(|p| !p.exists())
    }

    /// Asks for a new folder and exports `selection` there.
    pub fn export(&mut self, selection: ExportSelection) {
        if let Some(out) = (self.choose_export_folder)() {
            self.view.busy = true;
            self.send(Command::Export { selection, out });
        }
    }

    /// Applies every event the worker has sent since the last frame.
    fn drain_events(&mut self) {
        while let Ok(event) = self.worker.events.try_recv() {
            self.apply(event);
        }
    }

    fn apply(&mut self, event: Event) {
        let view = &mut self.view;
        match event {
            Event::Data {
                name,
                summary,
                size,
                ..
            } => {
                *view = View {
                    vae_origin: view.vae_origin.take(),
                    vae_losses: std::mem::take(&mut view.vae_losses),
                    errors: std::mem::take(&mut view.errors),
                    data_name: Some(name),
                    data_summary: summary,
                    data_size: size,
                    busy: true,
                    ..View::default()
                };
            }
            Event::Latent { points, mean, axes } => {
                view.points = points;
                view.projection = Some((mean, axes));
                view.training.clear();
                view.arrows.clear();
                view.history.clear();
                view.selected.clear();
                view.selected_moved.clear();
                view.decoded.clear();
            }
            Event::VaeProgress {
                epoch,
                epochs,
                loss,
                fraction,
            } => {
                let x = fraction * epochs as f64;
                view.vae_losses.push([x, loss]);
                view.progress = Some((
                    format!("Training the VAE · epoch {}/{epochs}", epoch + 1),
                    fraction,
                    None,
                ));
                view.busy = true;
            }
            Event::VaeReady {
                origin,
                epoch_losses,
                reconstructions,
            } => {
                if !epoch_losses.is_empty() {
                    view.vae_losses = epoch_losses
                        .iter()
                        .enumerate()
                        .map(|(i, l)| [i as f64 + 1.0, *l])
                        .collect();
                }
                view.vae_origin = Some(origin);
                view.reconstructions = reconstructions;
                view.study_started = false;
            }
            Event::Progress {
                what,
                fraction,
                eta_s,
            } => {
                // Training batches mean the worker is busy, even right after a Start's Idle.
                view.busy |= fraction > 0.0;
                view.progress = Some((what, fraction, eta_s));
                view.paused = false;
            }
            round @ Event::Round { .. } => view.apply_round(round),
            Event::Decoded { at, sample } => view.decoded.push((at, sample)),
            Event::Saved(path) => view.notice = Some(format!("Saved {}", path.display())),
            Event::RunFolder(path) => view.run_folder = Some(path),
            Event::Exported {
                path,
                count,
                skipped,
            } => {
                view.notice = Some(format!(
                    "Exported {count} samples to {}{}",
                    path.display(),
                    if skipped > 0 {
                        format!(" ({skipped} the FEA could not label were left out)")
                    } else {
                        String::new()
                    }
                ));
            }
            Event::Idle { finished } => view.idle(finished),
            Event::Paused => view.paused = true,
            Event::Project(project) => view.project = Some(project),
            Event::Error(message) => {
                view.errors.push(message);
                view.busy = false;
            }
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("sula");
            ui.label("suggestive labelling by adaptive latent-space sampling");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.label(
                    egui::RichText::new(&self.device_badge)
                        .strong()
                        .color(egui::Color32::from_rgb(40, 130, 60)),
                )
                .on_hover_text("The torch device the worker trains on");
                if let Some((what, fraction, eta)) = &self.view.progress {
                    let text = match eta {
                        Some(eta) => format!("{what} · ETA {}", format_eta(*eta)),
                        None => what.clone(),
                    };
                    ui.add(
                        egui::ProgressBar::new(*fraction as f32)
                            .desired_width(260.0)
                            .text(text),
                    );
                }
                // No spinner: it repaints every frame, and with a software renderer on a
                // CPU-only machine that takes the cores the worker trains on. The progress
                // bar moves with the worker's own events.
                if self.view.busy && self.view.progress.is_none() {
                    ui.label("working…");
                }
            });
        });
        let mut dismiss = None;
        for (i, error) in self.view.errors.iter().enumerate() {
            ui.horizontal(|ui| {
                ui.colored_label(
                    egui::Color32::from_rgb(200, 40, 40),
                    format!("Error: {error}"),
                );
                if ui.small_button("Dismiss").clicked() {
                    dismiss = Some(i);
                }
            });
        }
        if let Some(i) = dismiss {
            self.view.errors.remove(i);
        }
        if let Some(notice) = &self.view.notice {
            ui.label(notice);
        }
    }
}

/// A grid row: a label and the widget `add` puts after it, named by the label for
/// screen readers and tests.
fn labelled_row(ui: &mut egui::Ui, text: &str, add: impl FnOnce(&mut egui::Ui) -> egui::Response) {
    let label = ui.label(text);
    add(ui).labelled_by(label.id);
    ui.end_row();
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

/// "1 min 05 s" style.
fn format_eta(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

impl SulaApp {
    /// Per-frame logic before drawing: worker events, dropped folders, shortcuts.
    pub fn logic_step(&mut self, ctx: &egui::Context) {
        self.drain_events();
        data_panel::handle_dropped_folder(self, ctx);
        teaching::shortcuts(self, ctx);
    }

    /// Draws the whole window into `ui`.
    pub fn draw(&mut self, ui: &mut egui::Ui) {
        egui::Panel::top("top_bar").show(ui, |ui| self.top_bar(ui));
        if self.settings.teaching {
            egui::Panel::bottom("teaching").show(ui, |ui| teaching::ui(self, ui));
        }
        egui::Panel::left("controls")
            .default_size(330.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    data_panel::ui(self, ui);
                    ui.separator();
                    stage1::ui(self, ui);
                    ui.separator();
                    stage2::ui(self, ui);
                    ui.separator();
                    project_panel::ui(self, ui);
                });
            });
        egui::Panel::right("results")
            .default_size(620.0)
            .show(ui, |ui| {
                // Both collapse, so either can have the whole column.
                egui::ScrollArea::vertical().show(ui, |ui| {
                    egui::CollapsingHeader::new(egui::RichText::new("Samples").heading())
                        .id_salt("samples")
                        .default_open(true)
                        .show(ui, |ui| samples::ui(self, ui));
                    ui.separator();
                    egui::CollapsingHeader::new(egui::RichText::new("Curves").heading())
                        .id_salt("curves")
                        .default_open(true)
                        .show(ui, |ui| curves::ui(self, ui));
                });
            });
        egui::CentralPanel::default().show(ui, |ui| latent_view::ui(self, ui));
    }
}

impl eframe::App for SulaApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.logic_step(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.draw(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
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
        Box::new(|cc| {
            let mut app = SulaApp::new(cc);
            if let Some(root) = project {
                app.open_project(root);
            }
            Ok(Box::new(app))
        }),
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

    #[test]
    fn the_window_icon_decodes() {
        let icon = eframe::icon_data::from_png_bytes(ICON_PNG).unwrap();
        assert_eq!((icon.width, icon.height), (256, 256));
    }
}
