//! The annotation round trip on real data (docs/DESIGN.md §Project): a project folder keeps the loop's
//! whole state on disk so it can span days and machines.
//!
//! ```text
//! P/project.json          pool reference, working size, seed, and which state is current
//! P/vae.safetensors       the image-only VAE the pool is embedded with (+ vae.json)
//! P/state-NNNN/history.json   every suggested batch and every import
//! P/state-NNNN/annotated/     the annotated frames (sula layout, working resolution)
//! P/state-NNNN/f.safetensors  F after the last import (+ f.json)
//! ```
//!
//! A state folder is never changed once written: `suggest` and `import` build the next one
//! beside it (hard-linking what they keep) and then switch `project.json` to it with one
//! atomic rename, so an interrupted or refused step leaves the project as it was.

pub mod annotations;
pub mod import;
pub mod suggest;
pub mod tool_files;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::data::dataset::{Dataset, OpenOptions};
use crate::data::dicom::{CropSpec, FrameSelection};
use crate::io::IoError;
use crate::model::ModelError;
use crate::model::checkpoint::{self, Architecture, Sidecar};
use crate::model::data::FrameSet;
use crate::model::train::{self, Control, LrSchedule, Progress, TrainConfig};
use crate::model::vae::{Vae, VaeConfig};

pub const PROJECT_FILE: &str = "project.json";
pub const VAE_FILE: &str = "vae.safetensors";
pub const HISTORY_FILE: &str = "history.json";
pub const ANNOTATED_DIR: &str = "annotated";
pub const REGRESSOR_FILE: &str = "f.safetensors";
/// The pool's frames at the working resolution, so a round need not decode the pullback.
pub const POOL_CACHE: &str = "pool_frames.bin";
pub const POOL_CACHE_IDS: &str = "pool_frames.json";

/// Why a project step failed; nothing of the step was applied.
#[derive(Debug, Error)]
pub enum ProjectError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    Invalid(String),
    /// Every problem of an annotation batch, one per line.
    #[error("{batch}: nothing was imported, because {} file{} failed the checks:\n{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, problems.join("\n"))]
    Rejected {
        batch: PathBuf,
        problems: Vec<String>,
    },
}

/// The pool a project suggests from, as it was opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolRef {
    /// Absolute path of the DICOM file, DICOM folder or dataset folder.
    pub path: PathBuf,
    /// `START:END:STEP` frame selection for DICOM.
    pub frames: String,
    /// `auto`, `full` or `X,Y,SIZE` for DICOM.
    pub crop: String,
    pub pixel_mm: Option<f64>,
}

impl PoolRef {
    pub fn new(path: &Path, options: &OpenOptions) -> Result<PoolRef, IoError> {
        let path = std::fs::canonicalize(path).map_err(|e| IoError::io(path, e))?;
        Ok(PoolRef {
            path,
            frames: options.frames.to_string(),
            crop: options.crop.to_string(),
            pixel_mm: options.pixel_mm,
        })
    }

    pub fn options(&self) -> Result<OpenOptions, ProjectError> {
        let bad = |e: String| ProjectError::Invalid(format!("{PROJECT_FILE}: {e}"));
        Ok(OpenOptions {
            pixel_mm: self.pixel_mm,
            frames: self.frames.parse::<FrameSelection>().map_err(bad)?,
            crop: self.crop.parse::<CropSpec>().map_err(bad)?,
        })
    }

    pub fn open(&self) -> Result<Dataset, ProjectError> {
        Ok(Dataset::open_with(&self.path, &self.options()?)?)
    }
}

/// `project.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectFile {
    pub format: String,
    pub version: u32,
    pub sula_version: String,
    pub pool: PoolRef,
    /// Working resolution of the VAE, F and the annotated set.
    pub size: usize,
    pub seed: u64,
    /// An annotated dataset (sula or MICCAI layout) F is validated on after each import.
    pub validation: Option<PathBuf>,
    /// The current state folder.
    pub state: String,
}

impl ProjectFile {
    pub const FORMAT: &'static str = "sula-project";
}

/// One suggested batch and, once it came back, its import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// Random id written into the batch's manifest, so an import finds its batch.
    pub id: String,
    pub round: usize,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// `random`, `core-set` or `gradient-snn`.
    pub strategy: String,
    /// Where the batch was written.
    pub path: PathBuf,
    /// Pool frame ids, in the batch's order.
    pub frames: Vec<String>,
    /// Gradient-SNN rounds: how each frame was reached, for drawing the method's arrows
    /// (absent in earlier rounds and in histories written before it was kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<GradientMove>,
    pub imported: Option<ImportRecord>,
}

/// One gradient-SNN suggestion: the annotated frame `from` moved along F's loss gradient
/// to the latent point `moved` (z'), which snapped to the pool frame `frame`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradientMove {
    pub frame: String,
    pub from: String,
    pub moved: Vec<f32>,
}

/// What an import applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportRecord {
    pub at: u64,
    /// Pool frame ids that came back annotated.
    pub annotated: Vec<String>,
    /// Suggested frames without an annotation (back in the pool).
    pub skipped: Vec<String>,
    /// F's metrics on the validation split after training, when the project has one.
    pub validation: Option<serde_json::Value>,
    /// F's metrics on this batch's frames before it trained on them (absent for the first
    /// import, which has no F yet, and in histories written before it was measured): an
    /// honest running estimate of F's error on new frames that costs no extra annotation.
    #[serde(default)]
    pub new_batch: Option<serde_json::Value>,
    /// F's training loss per epoch of this round.
    pub epoch_losses: Vec<f64>,
}

/// `history.json` of a state folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub batches: Vec<BatchRecord>,
}

impl History {
    /// Pool frame ids that are annotated, in the order they came back.
    pub fn annotated(&self) -> Vec<&str> {
        self.batches
            .iter()
            .filter_map(|b| b.imported.as_ref())
            .flat_map(|i| i.annotated.iter().map(String::as_str))
            .collect()
    }

    /// Pool frame ids suggested in batches that have not come back yet.
    pub fn pending(&self) -> Vec<&str> {
        self.batches
            .iter()
            .filter(|b| b.imported.is_none())
            .flat_map(|b| b.frames.iter().map(String::as_str))
            .collect()
    }
}

/// A project folder, opened.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub file: ProjectFile,
    pub history: History,
}

/// Seconds since the Unix epoch, for records.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A pool frame id as a file stem: `pullback/00012` → `pullback__00012`.
pub fn file_stem(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.') {
                c
            } else if c == '/' || c == '\\' {
                '~'
            } else {
                '_'
            }
        })
        .collect::<String>()
        .replace('~', "__")
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T, IoError> {
    let text = std::fs::read_to_string(path).map_err(|e| IoError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| IoError::format(path, format!("is not a {what} ({e})")))
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), IoError> {
    let text = serde_json::to_string_pretty(value).expect("project records serialise");
    crate::io::atomic::write_bytes(path, text.as_bytes())
}

impl Project {
    /// Opens the project folder `root`.
    pub fn open(root: &Path) -> Result<Project, ProjectError> {
        let path = root.join(PROJECT_FILE);
        if !path.is_file() {
            return Err(ProjectError::Invalid(format!(
                "{} is not a sula project: it has no {PROJECT_FILE} (create one with `sula project new`)",
                root.display()
            )));
        }
        let file: ProjectFile = read_json(&path, "sula project file")?;
        if file.format != ProjectFile::FORMAT || file.version != 1 {
            return Err(ProjectError::Invalid(format!(
                "{}: format {:?} version {} is not a sula project this version reads",
                path.display(),
                file.format,
                file.version
            )));
        }
        let history = read_json(
            &root.join(&file.state).join(HISTORY_FILE),
            "project history",
        )?;
        Ok(Project {
            root: root.to_path_buf(),
            file,
            history,
        })
    }

    /// Writes a new project folder with its VAE already at `root/vae.safetensors`'s
    /// staging place: `prepare` gets the staging folder and writes the VAE there.
    pub fn create(
        root: &Path,
        file: ProjectFile,
        prepare: impl FnOnce(&Path) -> Result<(), ProjectError>,
    ) -> Result<Project, ProjectError> {
        if root.exists() {
            return Err(ProjectError::Invalid(format!(
                "{} already exists; choose a new folder for the project",
                root.display()
            )));
        }
        let name = root
            .file_name()
            .ok_or_else(|| {
                ProjectError::Invalid(format!("{} is not a folder name", root.display()))
            })?
            .to_string_lossy()
            .into_owned();
        let staging =
            Staging(root.with_file_name(format!(".{name}.partial-{}", std::process::id())));
        let _ = std::fs::remove_dir_all(&staging.0);
        let state = staging.0.join(&file.state);
        std::fs::create_dir_all(&state).map_err(|e| IoError::io(&state, e))?;
        write_json(&state.join(HISTORY_FILE), &History::default())?;
        prepare(&staging.0)?;
        write_json(&staging.0.join(PROJECT_FILE), &file)?;
        std::fs::rename(&staging.0, root).map_err(|e| IoError::io(root, e))?;
        Project::open(root)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join(&self.file.state)
    }

    /// The project's image-only VAE: the current state's when it was retrained, else the
    /// one the project was created with.
    pub fn vae_path(&self) -> PathBuf {
        Some(self.state_dir().join(VAE_FILE))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| self.root.join(VAE_FILE))
    }

    /// Retrains the image-only VAE on the pool for `epochs` (same architecture, a new
    /// seed per retraining) and switches to it in the next state, so the swap is atomic:
    /// an error or a stop leaves the project on its old VAE. Returns the epoch losses, or
    /// `None` when `on_progress` stopped the training.
    pub fn retrain_vae(
        &mut self,
        epochs: usize,
        device: tch::Device,
        on_progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<Option<Vec<f64>>, ProjectError> {
        let (_vs, old, _) = checkpoint::load_vae(&self.vae_path(), device, Some(self.file.size))?;
        let pool = self.file.pool.open()?;
        let (_, images) = self.pool_images(&pool)?;
        let seed = self.retrain_seed();
        let mut stopped = false;
        let mut losses = Vec::new();
        let result = self.commit(|next, _history| {
            let training = VaeTraining {
                epochs,
                seed,
                device,
            };
            let target = next.join(VAE_FILE);
            match train_vae(&pool, &images, &target, old.config, &training, on_progress)? {
                Some(epoch_losses) => {
                    losses = epoch_losses;
                    Ok(())
                }
                None => {
                    stopped = true;
                    Err(ProjectError::Invalid("VAE retraining was stopped".into()))
                }
            }
        });
        match result {
            Ok(()) => Ok(Some(losses)),
            Err(_) if stopped => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A seed for the next retraining that differs from the project's and from every
    /// earlier retraining's (state numbers only grow).
    fn retrain_seed(&self) -> u64 {
        let state = self
            .file
            .state
            .strip_prefix("state-")
            .and_then(|n| n.parse::<u64>().ok());
        self.file.seed.wrapping_add(1 + state.unwrap_or(0))
    }

    /// F of the current state, if an import has trained one.
    pub fn regressor_path(&self) -> Option<PathBuf> {
        Some(self.state_dir().join(REGRESSOR_FILE)).filter(|p| p.is_file())
    }

    /// The annotated frames of the current state, as a sula dataset, if any.
    pub fn annotated_dir(&self) -> Option<PathBuf> {
        Some(self.state_dir().join(ANNOTATED_DIR)).filter(|p| p.is_dir())
    }

    /// Builds the next state: `build` gets a folder holding hard links to everything of
    /// the current state and the history to change; the project switches to it only when
    /// `build` succeeds. On failure the new folder is removed and nothing changed.
    pub fn commit(
        &mut self,
        build: impl FnOnce(&Path, &mut History) -> Result<(), ProjectError>,
    ) -> Result<(), ProjectError> {
        let number = self
            .file
            .state
            .strip_prefix("state-")
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
            + 1;
        let next_name = format!("state-{number:04}");
        let next = self
            .root
            .join(format!(".{next_name}.partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&next);
        let mut history = self.history.clone();
        let result = (|| {
            link_tree(&self.state_dir(), &next)?;
            build(&next, &mut history)?;
            write_json(&next.join(HISTORY_FILE), &history)?;
            let target = self.root.join(&next_name);
            // A state folder that is not current is left over from a step interrupted
            // before its switch; it was never in use.
            if target.exists() {
                std::fs::remove_dir_all(&target).map_err(|e| IoError::io(&target, e))?;
            }
            std::fs::rename(&next, &target).map_err(|e| IoError::io(&target, e))?;
            let mut file = self.file.clone();
            file.state = next_name.clone();
            // The switch: one atomic rename of project.json.
            if let Err(e) = write_json(&self.root.join(PROJECT_FILE), &file) {
                let _ = std::fs::remove_dir_all(&target);
                return Err(e.into());
            }
            Ok::<_, ProjectError>(file)
        })();
        match result {
            Ok(file) => {
                let old = self.state_dir();
                self.file = file;
                self.history = history;
                let _ = std::fs::remove_dir_all(old);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&next);
                Err(e)
            }
        }
    }
}

/// A project's staging folder, removed when this is dropped, so that neither an error nor a
/// panic part-way through leaves a half-built project behind; once renamed to its final name
/// there is nothing left to remove.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The pool's frame ids and their images at `size`², in pool order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PoolCacheIndex {
    size: usize,
    ids: Vec<String>,
}

/// Writes the pool's images at the working resolution into the project folder `dir`.
fn write_pool_cache(dir: &Path, ids: &[String], images: &FrameSet) -> Result<(), IoError> {
    let bytes: Vec<u8> = images.images.concat();
    crate::io::atomic::write_bytes(&dir.join(POOL_CACHE), &bytes)?;
    write_json(
        &dir.join(POOL_CACHE_IDS),
        &PoolCacheIndex {
            size: images.size,
            ids: ids.to_vec(),
        },
    )
}

impl Project {
    /// The pool's images at the working resolution and their ids: from the project's cache
    /// when it matches the pool, else decoded from the pool itself.
    pub fn pool_images(&self, pool: &Dataset) -> Result<(Vec<String>, FrameSet), ProjectError> {
        let ids: Vec<String> = pool.frames.iter().map(|f| f.id.clone()).collect();
        let size = self.file.size;
        let index: Option<PoolCacheIndex> =
            read_json(&self.root.join(POOL_CACHE_IDS), "pool cache index").ok();
        if let Some(index) = index
            && index.size == size
            && index.ids == ids
            && let Ok(bytes) = std::fs::read(self.root.join(POOL_CACHE))
            && bytes.len() == ids.len() * size * size
        {
            let images = bytes.chunks(size * size).map(<[u8]>::to_vec).collect();
            return Ok((
                ids,
                FrameSet {
                    size,
                    images,
                    labels: Vec::new(),
                    stress: None,
                },
            ));
        }
        Ok((ids, FrameSet::load_images(pool, size)?))
    }
}

/// Where a new project's VAE comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum VaeSource {
    /// Train an image-only VAE on the pool's images.
    Train {
        epochs: usize,
        latent_dim: usize,
        width: usize,
    },
    /// Copy this image-only VAE in.
    Reuse(PathBuf),
}

/// Everything `sula project new` (or the app's *Open pullback…*) decides.
#[derive(Debug, Clone)]
pub struct NewProject {
    pub pool: PathBuf,
    pub options: OpenOptions,
    pub out: PathBuf,
    pub size: usize,
    pub vae: VaeSource,
    pub validation: Option<PathBuf>,
    pub seed: u64,
    pub device: tch::Device,
}

/// Creates the project folder `spec.out` on `pool` (the dataset `spec.pool` opened with
/// `spec.options`) with an image-only VAE; nothing appears under that name unless every
/// step succeeded.
pub fn new_project(
    spec: &NewProject,
    pool: &Dataset,
    on_progress: &mut dyn FnMut(&Progress) -> Control,
) -> Result<Project, ProjectError> {
    if spec.size < 16 || !spec.size.is_multiple_of(16) {
        return Err(ProjectError::Invalid(format!(
            "the working size {} must be a multiple of 16",
            spec.size
        )));
    }
    let file = ProjectFile {
        format: ProjectFile::FORMAT.into(),
        version: 1,
        sula_version: env!("CARGO_PKG_VERSION").into(),
        pool: PoolRef::new(&spec.pool, &spec.options)?,
        size: spec.size,
        seed: spec.seed,
        validation: match &spec.validation {
            Some(dir) => Some(std::fs::canonicalize(dir).map_err(|e| IoError::io(dir, e))?),
            None => None,
        },
        state: "state-0000".into(),
    };
    Project::create(&spec.out, file, |staging| {
        let images = FrameSet::load_images(pool, spec.size)?;
        let ids: Vec<String> = pool.frames.iter().map(|f| f.id.clone()).collect();
        write_pool_cache(staging, &ids, &images)?;
        let target = staging.join(VAE_FILE);
        match &spec.vae {
            VaeSource::Reuse(path) => reuse_vae(path, &target, spec.size, spec.device),
            VaeSource::Train {
                epochs,
                latent_dim,
                width,
            } => {
                let config = VaeConfig {
                    latent_dim: *latent_dim,
                    width: *width,
                    labelled: false,
                    ..VaeConfig::new(spec.size)
                };
                let training = VaeTraining {
                    epochs: *epochs,
                    seed: spec.seed,
                    device: spec.device,
                };
                match train_vae(pool, &images, &target, config, &training, on_progress)? {
                    Some(_) => Ok(()),
                    None => Err(ProjectError::Invalid(
                        "VAE training was stopped; no project was created".into(),
                    )),
                }
            }
        }
    })
}

/// How a project's VAE trains.
struct VaeTraining {
    epochs: usize,
    seed: u64,
    device: tch::Device,
}

/// Copies an image-only VAE of the right size into the project.
fn reuse_vae(
    path: &Path,
    target: &Path,
    size: usize,
    device: tch::Device,
) -> Result<(), ProjectError> {
    let (_vs, vae, _) = checkpoint::load_vae(path, device, Some(size))?;
    if vae.config.labelled {
        return Err(ProjectError::Invalid(format!(
            "{}: this VAE was trained with label maps, so it cannot embed unannotated frames; a project needs an image-only VAE (`sula train-vae --image-only`)",
            path.display()
        )));
    }
    for (from, to) in [
        (path.to_path_buf(), target.to_path_buf()),
        (
            checkpoint::sidecar_path(path),
            checkpoint::sidecar_path(target),
        ),
    ] {
        std::fs::copy(&from, &to).map_err(|e| IoError::io(&from, e))?;
    }
    Ok(())
}

/// Trains the image-only VAE on every pool frame and saves it to `target`; returns the
/// epoch losses, or `None` when `on_progress` stopped it (nothing is saved then).
fn train_vae(
    pool: &Dataset,
    images: &FrameSet,
    target: &Path,
    config: VaeConfig,
    how: &VaeTraining,
    on_progress: &mut dyn FnMut(&Progress) -> Control,
) -> Result<Option<Vec<f64>>, ProjectError> {
    let training = TrainConfig {
        epochs: how.epochs,
        batch_size: 32,
        learning_rate: 1e-3,
        seed: how.seed,
        schedule: LrSchedule::Cosine,
        augment: true,
    };
    train::seed_torch(how.seed);
    let vs = tch::nn::VarStore::new(how.device);
    let mut vae = Vae::new(&vs.root(), config);
    let report = train::train_vae(&mut vae, &vs, images, &training, on_progress)?;
    if report.stopped {
        return Ok(None);
    }
    let sidecar = Sidecar {
        architecture: Architecture::Vae(config),
        sula_version: env!("CARGO_PKG_VERSION").to_string(),
        data: serde_json::json!({
            "root": pool.root.display().to_string(),
            "frames": images.len(),
            "size": config.size,
        }),
        training: serde_json::json!({ "config": training, "report": report }),
    };
    checkpoint::save(&vs, target, &sidecar)?;
    Ok(Some(report.epoch_losses))
}

/// Recreates the folder tree `from` at `to`, hard-linking files (copying where links fail).
fn link_tree(from: &Path, to: &Path) -> Result<(), IoError> {
    std::fs::create_dir_all(to).map_err(|e| IoError::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| IoError::io(from, e))? {
        let path = entry.map_err(|e| IoError::io(from, e))?.path();
        let target = to.join(path.file_name().expect("directory entries have names"));
        if path.is_dir() {
            link_tree(&path, &target)?;
        } else if std::fs::hard_link(&path, &target).is_err() {
            std::fs::copy(&path, &target).map_err(|e| IoError::io(&target, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ids_become_safe_file_stems() {
        assert_eq!(file_stem("pullback/00012"), "pullback__00012");
        assert_eq!(file_stem("a b/c:d"), "a_b__c_d");
    }

    fn project_file(pool: &Path) -> ProjectFile {
        ProjectFile {
            format: ProjectFile::FORMAT.into(),
            version: 1,
            sula_version: "test".into(),
            pool: PoolRef {
                path: pool.to_path_buf(),
                frames: "0::1".into(),
                crop: "auto".into(),
                pixel_mm: None,
            },
            size: 32,
            seed: 1,
            validation: None,
            state: "state-0000".into(),
        }
    }

    #[test]
    fn a_create_that_fails_or_panics_part_way_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("p");
        let failed = Project::create(&root, project_file(dir.path()), |staging| {
            std::fs::write(staging.join(VAE_FILE), b"half").unwrap();
            Err(ProjectError::Invalid("refused".into()))
        });
        assert!(failed.is_err());
        let panicked = std::panic::catch_unwind(|| {
            Project::create(&root, project_file(dir.path()), |staging| {
                std::fs::write(staging.join(VAE_FILE), b"half").unwrap();
                panic!("a decoder gave up");
            })
        });
        assert!(panicked.is_err());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_failed_commit_leaves_the_state_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("p");
        let file = project_file(dir.path());
        let mut project = Project::create(&root, file, |_| Ok(())).unwrap();
        let failed = project.commit(|dir, history| {
            std::fs::write(dir.join("extra"), b"x").unwrap();
            history.batches.push(BatchRecord {
                moves: Vec::new(),
                id: "b".into(),
                round: 0,
                created: 0,
                strategy: "random".into(),
                path: PathBuf::new(),
                frames: vec!["f".into()],
                imported: None,
            });
            Err(ProjectError::Invalid("refused".into()))
        });
        assert!(failed.is_err());
        let reopened = Project::open(&root).unwrap();
        assert_eq!(reopened.file.state, "state-0000");
        assert!(reopened.history.batches.is_empty());
        let names: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");

        // A state folder left over by an interrupted step does not block the next one.
        std::fs::create_dir_all(root.join("state-0001/stale")).unwrap();
        project
            .commit(|dir, _| {
                std::fs::write(dir.join("extra"), b"x").unwrap();
                Ok(())
            })
            .unwrap();
        assert!(!root.join("state-0001/stale").exists());
        let reopened = Project::open(&root).unwrap();
        assert_eq!(reopened.file.state, "state-0001");
        assert!(root.join("state-0001/extra").is_file());
        assert!(!root.join("state-0000").exists());
    }
}
