//! The worker's side of the annotation round trip: a project folder opened in the app,
//! its pool embedded for the latent view, and *Suggest* / *Import* run on it.

use std::path::Path;

use crossbeam_channel::Receiver;
use tch::Device;

use super::Outbox;
use super::control::{control, vae_progress};
use super::messages::{Command, Event, PlaqueKind, PoolPoint, ProjectRound, ProjectView};
use crate::data::dataset::OpenOptions;
use crate::model::checkpoint;
use crate::model::train::{Control, Progress};
use crate::model::vae::VaeConfig;
use crate::project::import::{ImportOptions, import};
use crate::project::suggest::{EmbeddedPool, PoolStrategy, SuggestOptions, suggest};
use crate::project::{NewProject, Project, VaeSource, new_project};
use crate::sampling::Projection;

/// An open project with its embedded pool.
pub(super) struct Session {
    project: Project,
    pool: EmbeddedPool,
    projection: Projection,
}

/// Handles a project command; `session` is the open project, if any.
pub(super) fn handle(
    session: &mut Option<Session>,
    command: Command,
    device: Device,
    commands: &Receiver<Command>,
    outbox: &Outbox,
) -> Result<(), String> {
    match command {
        Command::NewProject {
            pool,
            out,
            size,
            epochs,
        } => {
            let spec = NewProject {
                pool,
                options: OpenOptions::default(),
                out: out.clone(),
                size,
                vae: VaeSource::Train {
                    epochs,
                    latent_dim: VaeConfig::new(size).latent_dim,
                    width: VaeConfig::new(size).width,
                },
                validation: None,
                seed: 1,
                device,
            };
            let dataset = crate::data::dataset::Dataset::open_with(&spec.pool, &spec.options)
                .map_err(|e| e.to_string())?;
            new_project(&spec, &dataset, &mut vae_progress(commands, outbox))
                .map_err(|e| e.to_string())?;
            *session = Some(open(&out, device, outbox)?);
        }
        Command::OpenProject(root) => *session = Some(open(&root, device, outbox)?),
        Command::Suggest { count, out } => {
            let s = session.as_mut().ok_or("open a project first")?;
            let options = SuggestOptions {
                count,
                round_zero: PoolStrategy::CoreSet,
                step: 1.0,
                device,
            };
            let summary = suggest(&mut s.project, &out, &options).map_err(|e| e.to_string())?;
            outbox.send(Event::Saved(summary.out));
            send_view(s, outbox);
        }
        Command::ImportAnnotations { batch, epochs } => {
            let s = session.as_mut().ok_or("open a project first")?;
            let options = ImportOptions {
                epochs,
                batch_size: 16,
                learning_rate: 1e-3,
                device,
            };
            let mut on_progress = |p: &Progress| -> Control {
                outbox.send(Event::Progress {
                    what: format!(
                        "Training F on the annotated frames · epoch {}/{}",
                        p.epoch + 1,
                        p.epochs
                    ),
                    fraction: p.fraction(),
                    eta_s: None,
                });
                control(commands, outbox)
            };
            let summary = import(&mut s.project, &batch, &options, &mut on_progress)
                .map_err(|e| e.to_string())?;
            outbox.send(Event::Progress {
                what: format!(
                    "Imported {} annotated frames (round {})",
                    summary.annotated, summary.round
                ),
                fraction: 1.0,
                eta_s: None,
            });
            send_view(s, outbox);
        }
        _ => unreachable!("only project commands come here"),
    }
    outbox.send(Event::Idle { finished: false });
    Ok(())
}

/// Opens the project at `root`, embeds its pool and shows it.
fn open(root: &Path, device: Device, outbox: &Outbox) -> Result<Session, String> {
    outbox.send(Event::Progress {
        what: "Opening the project…".into(),
        fraction: 0.0,
        eta_s: None,
    });
    let project = Project::open(root).map_err(|e| e.to_string())?;
    let pool = {
        let (_vs, vae, _) =
            checkpoint::load_vae(&project.vae_path(), device, None).map_err(|e| e.to_string())?;
        EmbeddedPool::load(&project, &vae, device).map_err(|e| e.to_string())?
    };
    let projection = Projection::fit(&pool.means);
    let size = project.file.size;

    outbox.send(Event::Data {
        name: format!("project {}", root.display()),
        summary: vec![
            format!("pool: {}", project.file.pool.path.display()),
            format!(
                "{} frames at {size}×{size} px, {} annotated",
                pool.ids.len(),
                project.history.annotated().len()
            ),
        ],
        size,
        pixel_mm: pool.dataset.pixel_mm,
    });
    let points = (0..pool.ids.len())
        .map(|i| PoolPoint {
            id: pool.ids[i].clone(),
            xy: projection.project(&pool.means[i]),
            latent: pool.means[i].clone(),
            plaque: PlaqueKind::Unannotated,
            peak_kpa: None,
            thumbnail: pool.images.images[i].clone(),
        })
        .collect();
    outbox.send(Event::Latent {
        points,
        mean: projection.mean.clone(),
        axes: projection.axes.clone(),
    });
    let session = Session {
        project,
        pool,
        projection,
    };
    send_view(&session, outbox);
    Ok(session)
}

/// The project's counts, rounds and marked frames.
fn send_view(session: &Session, outbox: &Outbox) {
    let history = &session.project.history;
    let index = session.pool.index_of();
    let xy = |ids: Vec<&str>| -> Vec<[f32; 2]> {
        ids.into_iter()
            .filter_map(|id| index.get(id))
            .map(|&i| session.projection.project(&session.pool.means[i]))
            .collect()
    };
    let mut total = 0;
    let rounds = history
        .batches
        .iter()
        .map(|b| {
            let imported = b.imported.as_ref();
            if let Some(i) = imported {
                total += i.annotated.len();
            }
            ProjectRound {
                round: b.round,
                strategy: b.strategy.clone(),
                suggested: b.frames.len(),
                annotated: imported.map(|i| i.annotated.len()),
                total_annotated: imported.map(|_| total),
                validation_mse: imported
                    .and_then(|i| i.validation.as_ref())
                    .and_then(|v| v["metrics"]["mse"].as_f64()),
                new_batch_mse: imported
                    .and_then(|i| i.new_batch.as_ref())
                    .and_then(|v| v["metrics"]["mse"].as_f64()),
                batch: b.path.clone(),
            }
        })
        .collect();
    outbox.send(Event::Project(ProjectView {
        root: session.project.root.clone(),
        frames: session.pool.ids.len(),
        annotated: history.annotated().len(),
        pending: history.pending().len(),
        rounds,
        annotated_xy: xy(history.annotated()),
        pending_xy: xy(history.pending()),
    }));
}
