//! The worker's side of the annotation round trip: a project folder opened in the app,
//! its pool embedded for the latent view, and *Suggest* / *Import* run on it.

use std::path::Path;

use crossbeam_channel::Receiver;
use tch::Device;

use super::Outbox;
use super::control::{control, vae_progress};
use super::messages::{Command, Event, PlaqueKind, PoolPoint, SampleView};
use super::project_view::{Session, project_view};
use crate::data::dataset::OpenOptions;
use crate::model::checkpoint;
use crate::model::evaluate::reconstruct_images;
use crate::model::train::{Control, Progress};
use crate::model::vae::{Vae, VaeConfig};
use crate::project::import::{ImportOptions, import};
use crate::project::suggest::{EmbeddedPool, PoolStrategy, SuggestOptions, suggest};
use crate::project::{NewProject, Project, VaeSource, new_project};
use crate::sampling::{Mode, Projection, chosen};

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
            *session = Some(open(&out, device, outbox, Vec::new())?);
        }
        Command::OpenProject(root) => *session = Some(open(&root, device, outbox, Vec::new())?),
        Command::Suggest { count, out } => {
            let s = session.as_mut().ok_or("open a project first")?;
            let options = SuggestOptions {
                count,
                round_zero: PoolStrategy::CoreSet,
                step: chosen(Mode::Snn).step,
                device,
            };
            let summary = suggest(&mut s.project, &out, &options).map_err(|e| e.to_string())?;
            outbox.send(Event::Saved(summary.out));
            send_view(s, device, outbox)?;
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
            send_view(s, device, outbox)?;
        }
        Command::RetrainProjectVae { epochs } => {
            let s = session.as_mut().ok_or("open a project first")?;
            let retrained = s
                .project
                .retrain_vae(epochs, device, &mut vae_progress(commands, outbox))
                .map_err(|e| e.to_string())?;
            match retrained {
                Some(losses) => {
                    let root = s.project.root.clone();
                    *session = Some(open(&root, device, outbox, losses)?);
                }
                None => outbox.send(Event::Progress {
                    what: "VAE retraining cancelled; the project keeps its VAE".to_string(),
                    fraction: 0.0,
                    eta_s: None,
                }),
            }
        }
        _ => unreachable!("only project commands come here"),
    }
    outbox.send(Event::Idle { finished: false });
    Ok(())
}

/// Opens the project at `root`, embeds its pool and shows it: Stage 1 its VAE (with
/// `epoch_losses` when it was just trained) and reconstructions of the pullback's frames,
/// the latent view its frames, the project panel its rounds and samples.
fn open(
    root: &Path,
    device: Device,
    outbox: &Outbox,
    epoch_losses: Vec<f64>,
) -> Result<Session, String> {
    outbox.send(Event::Progress {
        what: "Opening the project…".into(),
        fraction: 0.0,
        eta_s: None,
    });
    let project = Project::open(root).map_err(|e| e.to_string())?;
    let vae_path = project.vae_path();
    let (pool, reconstructions) = {
        let (_vs, vae, _) =
            checkpoint::load_vae(&vae_path, device, None).map_err(|e| e.to_string())?;
        let pool = EmbeddedPool::load(&project, &vae, device).map_err(|e| e.to_string())?;
        let reconstructions = reconstructions(&pool, &vae, device);
        (pool, reconstructions)
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
    outbox.send(Event::VaeReady {
        origin: format!("the project's image-only VAE ({})", vae_path.display()),
        epoch_losses,
        reconstructions,
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
    send_view(&session, device, outbox)?;
    Ok(session)
}

/// Four frames spread along the pullback beside the VAE's reconstructions of them (grey
/// images only: a project's VAE decodes no label maps).
fn reconstructions(
    pool: &EmbeddedPool,
    vae: &Vae,
    device: Device,
) -> Vec<(SampleView, SampleView)> {
    let count = pool.ids.len().min(4);
    let indices: Vec<usize> = (0..count)
        .map(|k| k * pool.ids.len() / count.max(1))
        .collect();
    let size = pool.images.size;
    let grey = |caption: String, image: Vec<u8>| SampleView {
        caption,
        size,
        image,
        labels: Vec::new(),
        stress: None,
        prediction: None,
    };
    indices
        .iter()
        .zip(reconstruct_images(vae, &pool.images, &indices, device))
        .map(|(&i, image)| {
            (
                grey(pool.ids[i].clone(), pool.images.images[i].clone()),
                grey("reconstruction (mean image)".to_string(), image),
            )
        })
        .collect()
}

/// Sends the project's view (counts, rounds, frame states, arrows, samples).
fn send_view(session: &Session, device: Device, outbox: &Outbox) -> Result<(), String> {
    outbox.send(Event::Project(project_view(session, device)?));
    Ok(())
}
