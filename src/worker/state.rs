//! Everything the worker owns and how it handles each command.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crossbeam_channel::Receiver;
use rayon::prelude::*;
use tch::{Device, nn};

use super::Outbox;
use super::messages::{Arrow, Command, Event, ExportSelection, PlaqueKind, PoolPoint, SampleView};
use crate::experiment::run::RUN_VAE_FILE;
use crate::experiment::source::{DataSource, LabelledStudy};
use crate::experiment::{Row, RunLog, StudySettings, VaeRef, row};
use crate::export::collect::{MovedRef, PoolScore, moved_samples, pool_samples};
use crate::export::{ExportError, ExportInfo, write_export};
use crate::labels::LabelMap;
use crate::metrics::peak_stress;
use crate::model::checkpoint::{self, Architecture, Sidecar};
use crate::model::data::FrameSet;
use crate::model::evaluate::{decode_latents, reconstruct};
use crate::model::train::{self, Control, Progress, TrainConfig};
use crate::model::vae::{Vae, VaeConfig};
use crate::sampling::Projection;
use crate::sampling::{Arm, ArmRun, Context, LoopConfig, Pool, RoundRecord, SamplingError};

/// The loaded dataset: pool frames (ids, images, labels) and the labelled test set.
struct Data {
    name: String,
    source: DataSource,
    study: LabelledStudy,
}

/// How the worker names the VAE shipped in the binary (and recognises it when saving a
/// run's settings).
const SHIPPED_VAE: &str = "shipped phantom VAE (64²)";

struct Study {
    config: LoopConfig,
    repeats: usize,
    repeat: usize,
    adaptive: ArmRun,
    baseline: ArmRun,
    rows: Vec<Row>,
    steps_done: usize,
    started: Instant,
    /// The run folder the study is saved to, if any.
    log: Option<RunLog>,
    /// Adaptive-arm records of the repeats already finished (for export).
    earlier: Vec<RoundRecord>,
}

pub(super) struct State {
    device: Device,
    data: Option<Data>,
    vae: Option<(nn::VarStore, Vae, String)>,
    pool: Option<Pool>,
    projection: Option<Projection>,
    study: Option<Study>,
    /// The annotation project open in the app, if any.
    project: Option<super::project::Session>,
}

/// How the training callback should react to commands that arrive mid-batch.
pub(super) fn control(commands: &Receiver<Command>, outbox: &Outbox) -> Control {
    while let Ok(command) = commands.try_recv() {
        match command {
            Command::Cancel => return Control::Stop,
            Command::Pause => {
                outbox.send(Event::Paused);
                loop {
                    match commands.recv() {
                        Ok(Command::Resume) => break,
                        Ok(Command::Cancel) | Err(_) => return Control::Stop,
                        Ok(_) => {}
                    }
                }
                outbox.send(Event::Progress {
                    what: "Resumed".to_string(),
                    fraction: 0.0,
                    eta_s: None,
                });
            }
            _ => {}
        }
    }
    Control::Continue
}

/// The training callback of a VAE: reports each batch to the UI, obeys Pause and Cancel.
pub(super) fn vae_progress<'a>(
    commands: &'a Receiver<Command>,
    outbox: &'a Outbox,
) -> impl FnMut(&Progress) -> Control + 'a {
    move |p: &Progress| {
        outbox.send(Event::VaeProgress {
            epoch: p.epoch,
            epochs: p.epochs,
            loss: p.loss,
            fraction: p.fraction(),
        });
        control(commands, outbox)
    }
}

fn view(
    caption: String,
    size: usize,
    image: &[u8],
    labels: &LabelMap,
    stress: Option<Vec<f32>>,
    prediction: Option<Vec<f32>>,
) -> SampleView {
    SampleView {
        caption,
        size,
        image: image.to_vec(),
        labels: labels.values().to_vec(),
        stress,
        prediction,
    }
}

impl State {
    pub(super) fn new() -> State {
        State {
            device: Device::cuda_if_available(),
            data: None,
            vae: None,
            pool: None,
            projection: None,
            study: None,
            project: None,
        }
    }

    pub(super) fn handle(
        &mut self,
        command: Command,
        commands: &Receiver<Command>,
        outbox: &Outbox,
    ) -> Result<(), String> {
        match command {
            Command::NewProject { .. }
            | Command::OpenProject(_)
            | Command::Suggest { .. }
            | Command::ImportAnnotations { .. } => {
                // The project replaces the study's data in the views.
                self.data = None;
                self.pool = None;
                self.study = None;
                super::project::handle(&mut self.project, command, self.device, commands, outbox)
            }
            Command::LoadPhantom {
                pool,
                test,
                seed,
                size,
            } => self.load(
                format!("phantom (seed {seed})"),
                DataSource::Phantom {
                    pool_count: pool,
                    pool_seed: seed,
                    test_count: test,
                    test_seed: seed + 1,
                },
                size,
                outbox,
            ),
            Command::OpenFolder {
                path,
                size,
                pixel_mm,
            } => self.load(
                path.display().to_string(),
                DataSource::Folder {
                    data: path,
                    test: None,
                    test_fraction: 0.2,
                    split_seed: 1,
                    pixel_mm,
                },
                size,
                outbox,
            ),
            Command::LoadDefaultVae => {
                let (vs, vae, _) =
                    checkpoint::load_default_vae(self.device).map_err(|e| e.to_string())?;
                self.set_vae(vs, vae, SHIPPED_VAE.to_string(), Vec::new(), outbox)
            }
            Command::LoadVae(path) => {
                let (vs, vae, _) =
                    checkpoint::load_vae(&path, self.device, None).map_err(|e| e.to_string())?;
                self.set_vae(vs, vae, path.display().to_string(), Vec::new(), outbox)
            }
            Command::SaveVae(path) => self.save_vae(&path, outbox),
            Command::TrainVae {
                epochs,
                latent_dim,
                seed,
            } => self.train_vae(epochs, latent_dim, seed, commands, outbox),
            Command::Start {
                config,
                repeats,
                run_dir,
            } => self.start(config, repeats, run_dir, outbox),
            Command::Step => self.step(commands, outbox).map(|_| ()),
            Command::Run => {
                while self.step(commands, outbox)? {}
                Ok(())
            }
            Command::Decode(z) => self.decode(z, outbox),
            Command::Export { selection, out } => self.export(selection, &out, commands, outbox),
            Command::Crash => panic!("crash requested from the UI"),
            Command::Pause | Command::Resume | Command::Cancel => Ok(()),
        }
    }

    fn load(
        &mut self,
        name: String,
        source: DataSource,
        size: usize,
        outbox: &Outbox,
    ) -> Result<(), String> {
        if size < 16 || !size.is_multiple_of(8) {
            return Err(format!(
                "working resolution {size} must be at least 16 and a multiple of 8"
            ));
        }
        outbox.send(Event::Progress {
            what: format!("Loading {name}…"),
            fraction: 0.0,
            eta_s: None,
        });
        let study = source.load(size).map_err(|e| e.to_string())?.label_test();
        self.project = None;
        let (test, dropped) = (&study.test, study.dropped);
        let mut fractions = [0usize; 5];
        for labels in &study.pool.set.labels {
            for (f, c) in fractions.iter_mut().zip(labels.class_counts()) {
                *f += c;
            }
        }
        let total = fractions.iter().sum::<usize>().max(1) as f64;
        let summary = vec![
            format!(
                "{} pool frames, {} test frames{}",
                study.pool.ids.len(),
                test.len(),
                if dropped > 0 {
                    format!(" ({dropped} unlabellable left out)")
                } else {
                    String::new()
                }
            ),
            format!(
                "{} of {} frames annotated{}",
                study.pool.ids.len() + test.len() + dropped,
                study.pool.ids.len() + test.len() + dropped + study.unannotated,
                if study.unannotated > 0 {
                    " (frames without a label map are left out of the study)"
                } else {
                    ""
                }
            ),
            format!("{size}×{size} px at {:.3} mm/px", study.fea.pixel_mm),
            format!(
                "labels: outside {:.0} %, lumen {:.0} %, fibrous {:.0} %, lipid {:.1} %, calcium {:.1} %",
                100.0 * fractions[0] as f64 / total,
                100.0 * fractions[1] as f64 / total,
                100.0 * fractions[2] as f64 / total,
                100.0 * fractions[3] as f64 / total,
                100.0 * fractions[4] as f64 / total
            ),
        ];
        outbox.send(Event::Data {
            name: name.clone(),
            summary,
            size,
            pixel_mm: study.fea.pixel_mm,
        });
        self.data = Some(Data {
            name,
            source,
            study,
        });
        self.study = None;
        self.pool = None;
        if self
            .vae
            .as_ref()
            .is_some_and(|(_, vae, _)| vae.config.size == size)
        {
            self.embed(outbox);
        }
        outbox.send(Event::Idle { finished: false });
        Ok(())
    }

    fn data(&self) -> Result<&Data, String> {
        self.data
            .as_ref()
            .ok_or_else(|| "load a dataset first".to_string())
    }

    fn set_vae(
        &mut self,
        vs: nn::VarStore,
        vae: Vae,
        origin: String,
        epoch_losses: Vec<f64>,
        outbox: &Outbox,
    ) -> Result<(), String> {
        let data = self.data()?;
        let size = data.study.pool.set.size;
        if vae.config.size != size {
            return Err(format!(
                "the VAE works at {0}×{0} but the data is at {size}×{size}; change the working resolution or train a VAE",
                vae.config.size
            ));
        }
        let count = data.study.pool.set.len().min(4);
        let indices: Vec<usize> = (0..count).collect();
        let recon = reconstruct(&vae, &data.study.pool.set, &indices, self.device)
            .map_err(|e| e.to_string())?;
        let reconstructions = indices
            .iter()
            .zip(recon)
            .map(|(&i, r)| {
                let set = &data.study.pool.set;
                (
                    view(
                        data.study.pool.ids[i].clone(),
                        size,
                        &set.images[i],
                        &set.labels[i],
                        None,
                        None,
                    ),
                    view(
                        "reconstruction".to_string(),
                        size,
                        &r.image,
                        &r.labels,
                        None,
                        None,
                    ),
                )
            })
            .collect();
        outbox.send(Event::VaeReady {
            origin: origin.clone(),
            epoch_losses,
            reconstructions,
        });
        self.vae = Some((vs, vae, origin));
        self.study = None;
        self.embed(outbox);
        outbox.send(Event::Idle { finished: false });
        Ok(())
    }

    /// Embeds the pool with the current VAE, labels it for the peak-stress colouring and
    /// fits the projection.
    fn embed(&mut self, outbox: &Outbox) {
        let (Some(data), Some((_, vae, _))) = (&self.data, &self.vae) else {
            return;
        };
        outbox.send(Event::Progress {
            what: "Embedding the pool…".to_string(),
            fraction: 0.0,
            eta_s: None,
        });
        let pool = Pool::new(
            data.study.pool.ids.clone(),
            data.study.pool.set.clone(),
            data.study.fea.clone(),
            vae,
            self.device,
        );
        let peaks: Vec<Option<f32>> = (0..pool.len())
            .into_par_iter()
            .map(|i| {
                pool.stress(i)
                    .map(|s| peak_stress(s, &pool.frames.labels[i]) as f32)
            })
            .collect();
        let projection = Projection::fit(&pool.embeddings);
        let points = (0..pool.len())
            .map(|i| PoolPoint {
                id: pool.ids[i].clone(),
                xy: projection.project(&pool.embeddings[i]),
                latent: pool.embeddings[i].clone(),
                plaque: PlaqueKind::of(pool.frames.labels[i].class_counts()),
                peak_kpa: peaks[i],
                thumbnail: pool.frames.images[i].clone(),
            })
            .collect();
        outbox.send(Event::Latent {
            points,
            mean: projection.mean.clone(),
            axes: projection.axes.clone(),
        });
        self.pool = Some(pool);
        self.projection = Some(projection);
    }

    fn train_vae(
        &mut self,
        epochs: usize,
        latent_dim: usize,
        seed: u64,
        commands: &Receiver<Command>,
        outbox: &Outbox,
    ) -> Result<(), String> {
        let data = self.data()?;
        let set = &data.study.pool.set;
        let config = VaeConfig {
            latent_dim,
            ..VaeConfig::new(set.size)
        };
        train::seed_torch(seed);
        let vs = nn::VarStore::new(self.device);
        let mut vae = Vae::new(&vs.root(), config);
        let schedule = TrainConfig {
            epochs,
            seed,
            ..TrainConfig::default()
        };
        let report = train::train_vae(
            &mut vae,
            &vs,
            set,
            &schedule,
            &mut vae_progress(commands, outbox),
        )
        .map_err(|e| e.to_string())?;
        if report.stopped {
            outbox.send(Event::Progress {
                what: "VAE training cancelled".to_string(),
                fraction: 0.0,
                eta_s: None,
            });
            outbox.send(Event::Idle { finished: false });
            return Ok(());
        }
        self.set_vae(
            vs,
            vae,
            format!("trained here ({epochs} epochs)"),
            report.epoch_losses,
            outbox,
        )
    }

    fn save_vae(&self, path: &Path, outbox: &Outbox) -> Result<(), String> {
        let (vs, vae, origin) = self.vae.as_ref().ok_or("there is no VAE to save")?;
        self.save_checkpoint(vs, vae, origin, path)?;
        outbox.send(Event::Saved(path.to_path_buf()));
        Ok(())
    }

    fn save_checkpoint(
        &self,
        vs: &nn::VarStore,
        vae: &Vae,
        origin: &str,
        path: &Path,
    ) -> Result<(), String> {
        let sidecar = Sidecar {
            architecture: Architecture::Vae(vae.config),
            sula_version: env!("CARGO_PKG_VERSION").to_string(),
            data: serde_json::json!({ "root": self.data.as_ref().map(|d| d.name.clone()) }),
            training: serde_json::json!({ "origin": origin }),
        };
        checkpoint::save(vs, path, &sidecar).map_err(|e| e.to_string())
    }

    fn start(
        &mut self,
        config: LoopConfig,
        repeats: usize,
        run_dir: Option<PathBuf>,
        outbox: &Outbox,
    ) -> Result<(), String> {
        let mut study = self.new_study(config, repeats.max(1), 0, Vec::new())?;
        if let Some(dir) = run_dir {
            match self.open_log(&dir, &study) {
                Ok(log) => {
                    outbox.send(Event::RunFolder(dir));
                    study.log = Some(log);
                }
                Err(e) => outbox.send(Event::Error(format!(
                    "cannot save the study to {} ({e}); it runs without a run folder",
                    dir.display()
                ))),
            }
        }
        self.study = Some(study);
        outbox.send(Event::Progress {
            what: "Ready: press Step or Run".to_string(),
            fraction: 0.0,
            eta_s: None,
        });
        outbox.send(Event::Idle { finished: false });
        Ok(())
    }

    /// Creates the run folder of `study`: settings, and the VAE unless it is the shipped
    /// one (a run must be exportable after the app has moved on to another VAE).
    fn open_log(&self, dir: &Path, study: &Study) -> Result<RunLog, String> {
        let (data, (vs, vae, origin)) = match (&self.data, &self.vae) {
            (Some(d), Some(v)) => (d, v),
            _ => return Err("no data or VAE".to_string()),
        };
        let vae_ref = if origin == SHIPPED_VAE {
            VaeRef::Embedded
        } else {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            self.save_checkpoint(vs, vae, origin, &dir.join(RUN_VAE_FILE))?;
            VaeRef::File(PathBuf::from(RUN_VAE_FILE))
        };
        let settings = StudySettings {
            loop_config: study.config.clone(),
            repeats: study.repeats,
            data: data.source.clone(),
            size: data.study.pool.set.size,
            vae: vae_ref,
        };
        let provenance = serde_json::json!({
            "source": "sula app",
            "sula_version": env!("CARGO_PKG_VERSION"),
            "device": format!("{:?}", self.device),
            "data": data.name,
            "vae": origin,
        });
        RunLog::create(dir, settings, provenance).map_err(|e| e.to_string())
    }

    fn new_study(
        &self,
        config: LoopConfig,
        repeats: usize,
        repeat: usize,
        rows: Vec<Row>,
    ) -> Result<Study, String> {
        let data = self.data()?;
        let (Some((_, vae, _)), Some(pool)) = (&self.vae, &self.pool) else {
            return Err("load or train a VAE first".to_string());
        };
        let ctx = Context {
            vae,
            pool,
            test: &data.study.test,
            device: self.device,
        };
        let adaptive =
            ArmRun::new(Arm::Adaptive, &config, repeat, &ctx).map_err(|e| e.to_string())?;
        let baseline =
            ArmRun::new(Arm::Baseline, &config, repeat, &ctx).map_err(|e| e.to_string())?;
        Ok(Study {
            config,
            repeats,
            repeat,
            adaptive,
            baseline,
            rows,
            steps_done: 0,
            started: Instant::now(),
            log: None,
            earlier: Vec::new(),
        })
    }

    /// One round of both arms; `Ok(false)` when the study has finished.
    fn step(&mut self, commands: &Receiver<Command>, outbox: &Outbox) -> Result<bool, String> {
        let Some(mut study) = self.study.take() else {
            return Err("start a study first (Stage 2)".to_string());
        };
        if study.adaptive.is_finished() && study.repeat + 1 < study.repeats {
            let steps_done = study.steps_done;
            let started = study.started;
            let log = study.log.take();
            let mut earlier = std::mem::take(&mut study.earlier);
            earlier.append(&mut study.adaptive.history);
            study = Study {
                steps_done,
                started,
                log,
                earlier,
                ..self.new_study(
                    study.config.clone(),
                    study.repeats,
                    study.repeat + 1,
                    std::mem::take(&mut study.rows),
                )?
            };
        }
        if study.adaptive.is_finished() {
            outbox.send(Event::Idle { finished: true });
            self.study = Some(study);
            return Ok(false);
        }
        let (data, (_, vae, _), pool, projection) =
            match (&self.data, &self.vae, &self.pool, &self.projection) {
                (Some(d), Some(v), Some(p), Some(q)) => (d, v, p, q),
                _ => return Err("load data and a VAE first".to_string()),
            };
        let ctx = Context {
            vae,
            pool,
            test: &data.study.test,
            device: self.device,
        };
        let total = 2 * study.repeats * study.config.steps_per_arm();
        for arm in [Arm::Adaptive, Arm::Baseline] {
            let started = study.started;
            let mut done = study.steps_done;
            let what = format!(
                "{} · repeat {}/{}",
                arm.name(),
                study.repeat + 1,
                study.repeats
            );
            let run = match arm {
                Arm::Adaptive => &mut study.adaptive,
                Arm::Baseline => &mut study.baseline,
            };
            let outcome = run.step(&ctx, &mut |_: &Progress| {
                done += 1;
                let fraction = done as f64 / total.max(1) as f64;
                let eta_s = (done > 0).then(|| {
                    started.elapsed().as_secs_f64() / done as f64 * (total - done.min(total)) as f64
                });
                outbox.send(Event::Progress {
                    what: what.clone(),
                    fraction,
                    eta_s,
                });
                control(commands, outbox)
            });
            study.steps_done = done;
            let record = match outcome {
                Ok(record) => record.clone(),
                Err(SamplingError::Cancelled) => {
                    outbox.send(Event::Progress {
                        what: "Cancelled: press Start for a new run".to_string(),
                        fraction: 0.0,
                        eta_s: None,
                    });
                    outbox.send(Event::Idle { finished: false });
                    return Ok(false);
                }
                Err(e) => return Err(e.to_string()),
            };
            study.rows.push(row(&study.config, &record));
            let run = match arm {
                Arm::Adaptive => &study.adaptive,
                Arm::Baseline => &study.baseline,
            };
            if let Some(log) = &mut study.log
                && let Err(e) = log.record(&run.history)
            {
                outbox.send(Event::Error(format!(
                    "cannot save the round to {} ({e}); the study goes on without saving",
                    log.dir.root.display()
                )));
                study.log = None;
            }
            outbox.send(round_event(
                run,
                &record,
                &study.config,
                &ctx,
                projection,
                study.rows.last().cloned().expect("pushed"),
            ));
        }
        let more = !(study.adaptive.is_finished() && study.repeat + 1 >= study.repeats);
        if !more
            && let Some(log) = study.log.take()
            && let Err(e) = log.finish()
        {
            outbox.send(Event::Error(format!(
                "cannot write the summary to {} ({e})",
                log.dir.root.display()
            )));
        }
        self.study = Some(study);
        outbox.send(Event::Idle { finished: !more });
        Ok(more)
    }

    fn decode(&self, z: Vec<f32>, outbox: &Outbox) -> Result<(), String> {
        let (Some(data), Some((_, vae, _)), Some(projection)) =
            (&self.data, &self.vae, &self.projection)
        else {
            return Err("load data and a VAE first".to_string());
        };
        let decoded = decode_latents(vae, std::slice::from_ref(&z), self.device)
            .map_err(|e| e.to_string())?
            .remove(0);
        let stress = crate::sampling::pool::label(&decoded.labels, &data.study.fea);
        let prediction = self.study.as_ref().map(|s| {
            let set = FrameSet {
                size: vae.config.size,
                images: vec![decoded.image.clone()],
                labels: vec![decoded.labels.clone()],
                stress: None,
            };
            let ctx = Context {
                vae,
                pool: self.pool.as_ref().expect("embedded with the VAE"),
                test: &data.study.test,
                device: self.device,
            };
            s.adaptive.predict(&set, &ctx).remove(0)
        });
        let caption = if stress.is_some() {
            "decoded here, FEA-labelled"
        } else {
            "decoded here: not a closed vessel, the FEA cannot label it"
        };
        outbox.send(Event::Decoded {
            at: projection.project(&z),
            sample: view(
                caption.to_string(),
                vae.config.size,
                &decoded.image,
                &decoded.labels,
                stress,
                prediction,
            ),
        });
        Ok(())
    }
}

impl State {
    /// Writes the selected samples to the new folder `out` (SPEC §8) with progress; Cancel
    /// stops it and leaves nothing behind.
    fn export(
        &self,
        selection: ExportSelection,
        out: &Path,
        commands: &Receiver<Command>,
        outbox: &Outbox,
    ) -> Result<(), String> {
        let (Some(data), Some((_, vae, _)), Some(pool), Some(projection)) =
            (&self.data, &self.vae, &self.pool, &self.projection)
        else {
            return Err("load data and a VAE first".to_string());
        };
        let ctx = Context {
            vae,
            pool,
            test: &data.study.test,
            device: self.device,
        };
        let study = self.study.as_ref();
        let (collected, described) = match selection {
            ExportSelection::LastRounds(n) => {
                let study = study.ok_or("run some rounds first (Stage 2)")?;
                let records = &study.adaptive.history;
                let ran: Vec<usize> = records
                    .iter()
                    .filter(|r| !r.moved.is_empty())
                    .map(|r| r.round)
                    .collect();
                let kept = ran[ran.len().saturating_sub(n)..].to_vec();
                if kept.is_empty() {
                    return Err("no round has moved samples yet: export after round 1".to_string());
                }
                let repeat = study.repeat;
                let wanted = |at: MovedRef| at.repeat == repeat && kept.contains(&at.round);
                let collected =
                    moved_samples(records, &wanted, study.config.mode, &ctx, projection)
                        .map_err(|e| e.to_string())?;
                let described = serde_json::json!({ "last_rounds": kept, "repeat": repeat });
                (collected, described)
            }
            ExportSelection::Picked {
                pool: picked,
                moved,
            } => {
                if let Some(&i) = picked.iter().find(|&&i| i >= pool.len()) {
                    return Err(format!(
                        "selected point {i} is not in the pool of {} frames",
                        pool.len()
                    ));
                }
                let mut collected = match study {
                    Some(study) if !moved.is_empty() => {
                        let records: Vec<RoundRecord> = study
                            .earlier
                            .iter()
                            .chain(&study.adaptive.history)
                            .cloned()
                            .collect();
                        let wanted = |at: MovedRef| moved.contains(&at);
                        moved_samples(&records, &wanted, study.config.mode, &ctx, projection)
                            .map_err(|e| e.to_string())?
                    }
                    None if !moved.is_empty() => {
                        return Err("the selected moved samples belong to a study that is gone; select again".to_string());
                    }
                    _ => crate::export::collect::Collected {
                        samples: Vec::new(),
                        skipped: 0,
                    },
                };
                let scores = study
                    .map(|s| pool_scores(s, &picked, &ctx))
                    .unwrap_or_default();
                let real = pool_samples(&picked, &ctx, projection, &|i| scores.get(&i).copied());
                collected.samples.extend(real.samples);
                collected.skipped += real.skipped;
                let described = serde_json::json!({
                    "pool_frames": picked.len(),
                    "moved_samples": moved.len(),
                });
                (collected, described)
            }
        };
        let info = ExportInfo {
            pixel_mm: data.study.fea.pixel_mm,
            pressure_kpa: data.study.fea.pressure_kpa,
            source: serde_json::json!({
                "app": data.name,
                "data": data.source,
                "mode": study.map(|s| s.config.mode),
                "run": study.and_then(|s| s.log.as_ref()).map(|l| l.dir.root.clone()),
                "selection": described,
            }),
        };
        let total = collected.samples.len();
        let path = write_export(out, &collected.samples, &info, &mut |k| {
            outbox.send(Event::Progress {
                what: format!("Exporting {k}/{total}"),
                fraction: k as f64 / total.max(1) as f64,
                eta_s: None,
            });
            match control(commands, outbox) {
                Control::Stop => Err(ExportError::Cancelled),
                Control::Continue => Ok(()),
            }
        })
        .map_err(|e| e.to_string())?;
        outbox.send(Event::Exported {
            path,
            count: total,
            skipped: collected.skipped,
        });
        outbox.send(Event::Idle { finished: false });
        Ok(())
    }
}

/// F's loss and latent gradient norm on each labellable picked pool frame, and the round
/// it joined the adaptive training set.
fn pool_scores(
    study: &Study,
    picked: &[usize],
    ctx: &Context,
) -> std::collections::HashMap<usize, PoolScore> {
    let labelled: Vec<(usize, &[f32])> = picked
        .iter()
        .filter_map(|&i| ctx.pool.stress(i).map(|s| (i, s)))
        .collect();
    let set = FrameSet {
        size: ctx.pool.frames.size,
        images: labelled
            .iter()
            .map(|&(i, _)| ctx.pool.frames.images[i].clone())
            .collect(),
        labels: labelled
            .iter()
            .map(|&(i, _)| ctx.pool.frames.labels[i].clone())
            .collect(),
        stress: Some(labelled.iter().map(|(_, s)| s.to_vec()).collect()),
    };
    let latents: Vec<Vec<f32>> = labelled
        .iter()
        .map(|&(i, _)| ctx.pool.embeddings[i].clone())
        .collect();
    let run = &study.adaptive;
    labelled
        .iter()
        .zip(run.loss_and_gradient(ctx, &set, &latents))
        .map(|(&(i, _), (loss_kpa2, gradient_norm))| {
            let round = run
                .members
                .iter()
                .find(|m| m.origin == crate::sampling::Origin::Pool(i))
                .map(|m| m.round);
            let score = PoolScore {
                repeat: study.repeat,
                loss_kpa2,
                gradient_norm,
                round,
            };
            (i, score)
        })
        .collect()
}

/// The event for a finished round: positions, arrows, a few sample pairs and a caption.
fn round_event(
    run: &ArmRun,
    record: &RoundRecord,
    config: &LoopConfig,
    ctx: &Context,
    projection: &Projection,
    row: Row,
) -> Event {
    let size = run.train.size;
    let training = run
        .members
        .iter()
        .map(|m| projection.project(&m.latent))
        .collect();
    let arrows = record
        .moved
        .iter()
        .enumerate()
        .map(|(index, m)| Arrow {
            from: projection.project(&m.z),
            to: projection.project(&m.z_moved),
            loss_before: m.loss_before,
            loss_moved: m.loss_moved,
            round: record.round,
            at: MovedRef {
                repeat: record.repeat,
                round: record.round,
                index,
            },
            joined: m.added.is_some(),
        })
        .collect();
    let new_members: Vec<usize> = (0..run.members.len())
        .filter(|&i| run.members[i].round == record.round)
        .collect();
    let joined: Vec<(usize, usize)> = record
        .moved
        .iter()
        .filter(|m| m.added.is_some())
        .map(|m| m.original)
        .zip(new_members.iter().copied())
        .take(3)
        .collect();
    let indices: Vec<usize> = joined.iter().flat_map(|&(a, b)| [a, b]).collect();
    let subset = FrameSet {
        size,
        images: indices
            .iter()
            .map(|&i| run.train.images[i].clone())
            .collect(),
        labels: indices
            .iter()
            .map(|&i| run.train.labels[i].clone())
            .collect(),
        stress: None,
    };
    let predictions = run.predict(&subset, ctx);
    let stress = run.train.stress.as_ref().expect("training stress is kept");
    let sample = |k: usize, caption: String| {
        let i = indices[k];
        view(
            caption,
            size,
            &run.train.images[i],
            &run.train.labels[i],
            Some(stress[i].clone()),
            Some(predictions[k].clone()),
        )
    };
    let samples = (0..joined.len())
        .map(|k| {
            (
                sample(2 * k, format!("original #{}", joined[k].0)),
                sample(2 * k + 1, format!("moved, now #{}", joined[k].1)),
            )
        })
        .collect();
    let m = &record.metrics;
    let caption = match (record.arm, record.round) {
        (Arm::Baseline, _) => format!(
            "Baseline round {}: {} random real frames added, F trained {} epochs on {}; test MSE {:.0} kPa².",
            record.round,
            record.added.len(),
            config.epochs_per_round,
            record.size,
            m.mse
        ),
        (Arm::Adaptive, 0) => format!(
            "Round 0: {} points drawn from the VAE's prior, decoded and labelled{}; F trained {} epochs; test MSE {:.0} kPa².",
            record.added.len(),
            if record.rejected > 0 {
                format!(" ({} open vessels redrawn)", record.rejected)
            } else {
                String::new()
            },
            config.epochs_per_round,
            m.mse
        ),
        (Arm::Adaptive, _) => {
            let n = record.moved.len().max(1) as f64;
            let before = record.moved.iter().map(|m| m.loss_before).sum::<f64>() / n;
            let after = record.moved.iter().map(|m| m.loss_moved).sum::<f64>() / n;
            format!(
                "Round {}: {} training points moved by η = {} along the gradient of the loss (mean loss {:.0} to {:.0} kPa²), {} new samples labelled; F trained on {}; test MSE {:.0} kPa².",
                record.round,
                record.moved.len(),
                config.step,
                before,
                after,
                record.added.len(),
                record.size,
                m.mse
            )
        }
    };
    Event::Round {
        arm: record.arm,
        repeat: record.repeat,
        round: record.round,
        size: record.size,
        metrics: record.metrics,
        epoch_losses: record.epoch_losses.clone(),
        row,
        training,
        arrows,
        samples,
        caption,
    }
}
