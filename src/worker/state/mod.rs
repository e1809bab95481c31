//! Everything the worker owns and how it handles each command.

mod data;
mod export;
mod stage1;
mod study;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crossbeam_channel::Receiver;
use rayon::prelude::*;
use tch::{Device, nn};

use super::Outbox;
use super::control::{control, vae_progress};
use super::messages::{Arrow, Command, Event, ExportSelection, PlaqueKind, PoolPoint, SampleView};
use crate::experiment::run::RUN_VAE_FILE;
use crate::experiment::source::{DataSource, LabelledStudy};
use crate::experiment::study::StudyProgress;
use crate::experiment::{Row, RunLog, Study, StudySettings, VaeRef, schedule};
use crate::export::collect::{MovedRef, PoolScore, moved_samples, pool_samples};
use crate::export::{ExportError, ExportInfo, write_export};
use crate::labels::LabelMap;
use crate::metrics::peak_stress;
use crate::model::checkpoint::{self, Architecture, Sidecar};
use crate::model::data::FrameSet;
use crate::model::evaluate::reconstruct;
use crate::model::train::{self, Control, TrainConfig};
use crate::model::vae::{Vae, VaeConfig};
use crate::sampling::Projection;
use crate::sampling::{
    Arm, ArmRun, Context, Generator, LoopConfig, Pool, RoundRecord, SamplingError, redrawn_note,
};

/// The loaded dataset: pool frames (ids, images, labels) and the labelled test set.
struct Data {
    name: String,
    source: DataSource,
    study: LabelledStudy,
}

/// How the worker names the VAE shipped in the binary (and recognises it when saving a
/// run's settings).
const SHIPPED_VAE: &str = "shipped phantom VAE (64²)";

pub(super) struct State {
    device: Device,
    data: Option<Data>,
    vae: Option<(nn::VarStore, Vae, String)>,
    pool: Option<Pool>,
    projection: Option<Projection>,
    study: Option<Study>,
    /// The annotation project open in the app, if any.
    project: Option<super::project_view::Session>,
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
            | Command::ImportAnnotations { .. }
            | Command::RetrainProjectVae { .. } => {
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
                arms,
                repeats,
                run_dir,
            } => self.start(config, &arms, repeats, run_dir, outbox),
            Command::Step => self.step(commands, outbox).map(|_| ()),
            Command::Run => {
                while self.step(commands, outbox)? {}
                Ok(())
            }
            Command::Decode { z, generator } => self.decode(z, generator, outbox),
            Command::Export { selection, out } => self.export(selection, &out, commands, outbox),
            Command::Crash => panic!("crash requested from the UI"),
            Command::Pause | Command::Resume | Command::Cancel => Ok(()),
        }
    }

    fn data(&self) -> Result<&Data, String> {
        self.data
            .as_ref()
            .ok_or_else(|| "load a dataset first".to_string())
    }
}
