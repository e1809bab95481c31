//! What several panels read or change: the worker's command sender, whether it is busy and
//! how far it has come, the messages of the top bar, the pool's latent points and the
//! texture cache. Every panel's `ui` gets it; what only one panel uses lives in that panel.

use crate::worker::{Command, PoolPoint, WorkerHandle};

use super::images::TextureCache;

/// The state no single panel owns.
pub struct Shared {
    worker: WorkerHandle,
    /// The worker is at work: buttons that would give it more are disabled.
    pub busy: bool,
    /// The top bar's status line: what the worker does, the fraction done and the ETA in
    /// seconds.
    pub progress: Option<(String, f64, Option<f64>)>,
    /// Errors in the top bar until dismissed; any panel reports here.
    pub errors: Vec<String>,
    /// The latest outcome worth a line in the top bar ("Saved …", "Exported …").
    pub notice: Option<String>,
    /// The pool's encoder means: the latent view draws them, and the study and the
    /// shortcuts wait for them.
    pub points: Vec<PoolPoint>,
    /// Textures of sample pictures, kept between frames for every panel that shows them.
    pub images: TextureCache,
}

impl Shared {
    /// Holds the worker that every panel sends its commands to.
    pub fn new(worker: WorkerHandle) -> Shared {
        Shared {
            worker,
            busy: false,
            progress: None,
            errors: Vec::new(),
            notice: None,
            points: Vec::new(),
            images: TextureCache::default(),
        }
    }

    /// Sends a command to the worker.
    pub fn send(&self, command: Command) {
        self.worker.send(command);
    }

    /// The worker's next event not yet routed to the panels, if any.
    pub fn next_event(&self) -> Option<crate::worker::Event> {
        self.worker.events.try_recv().ok()
    }

    /// New data: what the worker told about the old pool goes, its errors stay.
    pub fn new_data(&mut self) {
        self.busy = true;
        self.progress = None;
        self.notice = None;
        self.points.clear();
    }

    /// The worker went idle: status lines end with the work, and an ETA means nothing.
    pub fn idle(&mut self, finished: bool) {
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
    }

    /// A saved file's path, or the error that kept it from being saved.
    pub fn report(&mut self, outcome: Result<std::path::PathBuf, crate::io::IoError>) {
        match outcome {
            Ok(path) => self.notice = Some(format!("Saved {}", path.display())),
            Err(e) => self.errors.push(e.to_string()),
        }
    }

    /// The top bar: the title, the device badge, the progress bar, errors and the notice.
    pub fn top_bar(
        &mut self,
        ui: &mut egui::Ui,
        device_badge: &str,
        switches: impl FnOnce(&mut egui::Ui),
    ) {
        ui.horizontal(|ui| {
            ui.heading("sula");
            ui.label("suggestive labelling by adaptive latent-space sampling");
            ui.separator();
            switches(ui);
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.label(
                    egui::RichText::new(device_badge)
                        .strong()
                        .color(egui::Color32::from_rgb(40, 130, 60)),
                )
                .on_hover_text("The torch device the worker trains on");
                if let Some((what, fraction, eta)) = &self.progress {
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
                if self.busy && self.progress.is_none() {
                    ui.label("working…");
                }
            });
        });
        let mut dismiss = None;
        for (i, error) in self.errors.iter().enumerate() {
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
            self.errors.remove(i);
        }
        if let Some(notice) = &self.notice {
            ui.label(notice);
        }
    }
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
