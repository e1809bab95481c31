//! `sula import`: a batch comes back annotated. Every file is checked (size, values, that
//! it belongs to the batch, a lumen closed inside the wall so the FEA can label it, where
//! a lumen touching the outside at a few pixels is a wall thinner than a pixel and sealed
//! with a warning); one problem anywhere refuses the whole import. Then the FEA labels
//! the frames, they join the annotated set, and F trains for a round, all in the
//! project's next state.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;
use tch::Device;

use super::annotations::read_annotations;
use super::{ANNOTATED_DIR, ImportRecord, Project, ProjectError, REGRESSOR_FILE, file_stem, now};
use crate::data::dataset::Dataset;
use crate::data::layout::{DatasetManifest, SulaLayout};
use crate::data::mask::{encode_grey_png, write_mask};
use crate::export::manifest::ExportManifest;
use crate::fea::stress_label;
use crate::fea::{DEFAULT_PRESSURE_KPA, FeaParams};
use crate::io::{IoError, atomic, npy};
use crate::labels::{
    LUMEN_CONTACT_TOLERANCE, LabelMap, Tissue, close_lumen, seal_lumen, sealed_warning,
};
use crate::metrics::FrameMetrics;
use crate::model::checkpoint::{self, Architecture, Sidecar};
use crate::model::data::FrameSet;
use crate::model::regressor::{Regressor, RegressorConfig};
use crate::model::train::{self, Control, LrSchedule, Progress, TrainConfig};
use crate::sampling::pool::label_all;

/// How F trains after an import.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub device: Device,
}

/// F on the validation split after an import.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    pub frames: usize,
    pub metrics: FrameMetrics,
}

/// What an import applied.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    pub round: usize,
    pub annotated: usize,
    pub skipped: Vec<String>,
    pub total_annotated: usize,
    pub validation: Option<Validation>,
    /// F on this batch's frames before it trained on them; `None` on the first import.
    pub new_batch: Option<Validation>,
    pub epoch_losses: Vec<f64>,
    /// One warning per annotation whose lumen touched the outside at a few pixels and was
    /// sealed (see [`close_lumen`]), naming the file and the pixels, for the annotator.
    pub sealed: Vec<String>,
}

/// A checked annotation at the working resolution, with its FEA stress.
struct Labelled {
    id: String,
    stem: String,
    labels: LabelMap,
    stress: Vec<f32>,
    /// The warning when its lumen was sealed on entry.
    sealed: Option<String>,
}

/// Imports the annotated batch folder `batch` into `project`.
pub fn import(
    project: &mut Project,
    batch: &Path,
    options: &ImportOptions,
    on_progress: &mut dyn FnMut(&Progress) -> Control,
) -> Result<ImportSummary, ProjectError> {
    let manifest = ExportManifest::read(batch)?;
    let batch_id = manifest
        .source
        .get("batch_id")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            ProjectError::Invalid(format!(
                "{}: its manifest does not come from `sula suggest` (no batch id)",
                batch.display()
            ))
        })?;
    let position = project
        .history
        .batches
        .iter()
        .position(|b| b.id == batch_id)
        .ok_or_else(|| {
            ProjectError::Invalid(format!(
                "{}: batch {batch_id} was not suggested by the project {}",
                batch.display(),
                project.root.display()
            ))
        })?;
    let record = &project.history.batches[position];
    if record.imported.is_some() {
        return Err(ProjectError::Invalid(format!(
            "{}: batch {batch_id} (round {}) was imported already; importing it twice is refused",
            batch.display(),
            record.round
        )));
    }
    let round = record.round;
    let ids: BTreeMap<String, String> = record
        .frames
        .iter()
        .map(|id| (file_stem(id), id.clone()))
        .collect();

    let mut problems = Vec::new();
    let mut sizes = BTreeMap::new();
    for stem in ids.keys() {
        let image = batch.join("images").join(format!("{stem}.png"));
        match image::image_dimensions(&image) {
            Ok((w, h)) => {
                sizes.insert(stem.clone(), (w as usize, h as usize));
            }
            Err(e) => problems.push(format!("{}: cannot be read ({e})", image.display())),
        }
    }
    let masks = batch.join("masks");
    if !masks.is_dir() {
        problems.push(format!("{}: the masks/ folder is missing", masks.display()));
    }
    let stems: Vec<String> = sizes.keys().cloned().collect();
    let (annotations, found) = if problems.is_empty() {
        read_annotations(&masks, &stems, &sizes)
    } else {
        (Vec::new(), Vec::new())
    };
    problems.extend(found);

    let size = project.file.size;
    let pool = project.file.pool.open()?;
    let fea = FeaParams {
        pixel_mm: working_pixel_mm(&pool, size),
        ..FeaParams::default()
    };
    let labelled: Vec<Result<Labelled, String>> = annotations
        .into_par_iter()
        .map(|a| {
            let (closed, sealed) = close_lumen(&a.labels, LUMEN_CONTACT_TOLERANCE)
                .map_err(|e| format!("{}: {e}", a.source))?;
            // Resampling can open a thin wall by a pixel; sealing closes it again.
            let labels = seal_lumen(nearest_resample(&closed, size));
            match stress_label(&labels, &fea) {
                Some(stress) => Ok(Labelled {
                    id: ids[&a.stem].clone(),
                    stem: a.stem,
                    labels,
                    stress,
                    sealed: (sealed > 0)
                        .then(|| format!("{}: {}", a.source, sealed_warning(sealed))),
                }),
                None => Err(format!(
                    "{}: the FEA cannot label it at the working resolution ({}); a wall thinner than a working pixel breaks apart",
                    a.source,
                    describe(&labels)
                )),
            }
        })
        .collect();
    let mut accepted = Vec::new();
    for item in labelled {
        match item {
            Ok(l) => accepted.push(l),
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        problems.sort();
        return Err(ProjectError::Rejected {
            batch: batch.to_path_buf(),
            problems,
        });
    }
    if accepted.is_empty() {
        return Err(ProjectError::Invalid(format!(
            "{}: masks/ holds no annotation; nothing to import",
            batch.display()
        )));
    }
    accepted.sort_by(|a, b| a.stem.cmp(&b.stem));

    // The pool images of the annotated frames at the working resolution.
    let index: BTreeMap<&str, usize> = pool
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| (f.id.as_str(), i))
        .collect();
    let wanted: Vec<usize> = accepted
        .iter()
        .map(|a| {
            index.get(a.id.as_str()).copied().ok_or_else(|| {
                ProjectError::Invalid(format!(
                    "frame {} is not in the pool {} any more",
                    a.id,
                    project.file.pool.path.display()
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let (_, pool_images) = project.pool_images(&pool)?;
    let images: Vec<&Vec<u8>> = wanted.iter().map(|&i| &pool_images.images[i]).collect();
    let skipped: Vec<String> = ids
        .iter()
        .filter(|(stem, _)| !accepted.iter().any(|a| &a.stem == *stem))
        .map(|(_, id)| id.clone())
        .collect();
    let validation_set = match &project.file.validation {
        Some(dir) => Some(validation_frames(dir, size)?),
        None => None,
    };

    let mut summary = None;
    let seed = project.file.seed.wrapping_add(round as u64);
    let pool_path = project.file.pool.path.display().to_string();
    project.commit(|state, history| {
        let annotated = state.join(ANNOTATED_DIR);
        for sub in ["images", "masks", "stress"] {
            let dir = annotated.join(sub);
            std::fs::create_dir_all(&dir).map_err(|e| IoError::io(&dir, e))?;
        }
        for (a, frame) in accepted.iter().zip(&images) {
            atomic::write_bytes(
                &annotated.join("images").join(format!("{}.png", a.stem)),
                &encode_grey_png(size, size, frame),
            )?;
            write_mask(
                &annotated.join("masks").join(format!("{}.png", a.stem)),
                &a.labels,
            )?;
            npy::write_f32(
                &annotated.join("stress").join(format!("{}.npy", a.stem)),
                size,
                size,
                &a.stress,
            )?;
        }
        let count = SulaLayout::open(&annotated)?.mask_ids()?.len();
        let manifest = DatasetManifest {
            format: DatasetManifest::FORMAT.into(),
            version: 1,
            count,
            image_size: [size, size],
            pixel_mm: fea.pixel_mm,
            provenance: serde_json::json!({
                "source": "sula import",
                "sula_version": env!("CARGO_PKG_VERSION"),
                "pool": pool_path,
            }),
            generator: None,
            stress: Some(serde_json::json!({
                "field": "max-principal",
                "pressure_kpa": fea.pressure_kpa,
                "pixel_mm": fea.pixel_mm,
            })),
        };
        let text = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
        atomic::write_bytes(&annotated.join("dataset.json"), text.as_bytes())?;

        let train_set = FrameSet::load(&Dataset::open(&annotated, None)?, size, true)?;
        let new_batch = FrameSet {
            size,
            images: images.iter().map(|image| (*image).clone()).collect(),
            labels: accepted.iter().map(|a| a.labels.clone()).collect(),
            stress: Some(accepted.iter().map(|a| a.stress.clone()).collect()),
        };
        let rounds = RoundSets {
            train: &train_set,
            new_batch: &new_batch,
            validation: validation_set.as_ref(),
        };
        let RoundOutcome {
            epoch_losses,
            validation,
            new_batch,
        } = train_round(state, &rounds, options, seed, on_progress)?;
        let record = &mut history.batches[position];
        record.imported = Some(ImportRecord {
            at: now(),
            annotated: accepted.iter().map(|a| a.id.clone()).collect(),
            skipped: skipped.clone(),
            validation: validation
                .as_ref()
                .map(|v| serde_json::to_value(v).expect("metrics serialise")),
            new_batch: new_batch
                .as_ref()
                .map(|v| serde_json::to_value(v).expect("metrics serialise")),
            epoch_losses: epoch_losses.clone(),
        });
        summary = Some(ImportSummary {
            round,
            annotated: accepted.len(),
            skipped: skipped.clone(),
            total_annotated: train_set.len(),
            validation,
            new_batch,
            epoch_losses,
            sealed: accepted.iter().filter_map(|a| a.sealed.clone()).collect(),
        });
        Ok(())
    })?;
    Ok(summary.expect("set by the committed step"))
}

/// Spacing of a pool frame resampled to `size`.
fn working_pixel_mm(pool: &Dataset, size: usize) -> f64 {
    match pool.pullbacks.first() {
        Some(p) => {
            let stored = p.series.spacing.map_or(pool.pixel_mm, |(mm, _)| mm);
            let mm = match pool.spacing_source {
                crate::data::dataset::SpacingSource::Option => pool.pixel_mm,
                _ => stored,
            };
            mm * p.crop.size as f64 / size as f64
        }
        None => pool
            .load(0, Some(size))
            .map_or(pool.pixel_mm, |f| f.pixel_mm),
    }
}

/// The frames one import's round works with.
struct RoundSets<'a> {
    /// Every annotated frame, this batch's included.
    train: &'a FrameSet,
    /// This batch's frames alone.
    new_batch: &'a FrameSet,
    validation: Option<&'a FrameSet>,
}

/// What one import's round of training measured.
struct RoundOutcome {
    epoch_losses: Vec<f64>,
    validation: Option<Validation>,
    /// F on the new batch before training on it; `None` when there was no F yet.
    new_batch: Option<Validation>,
}

/// F scored on `frames` (stress in kPa).
fn score(model: &Regressor, frames: &FrameSet, device: Device) -> Validation {
    let predictions = train::predict_kpa(model, frames, DEFAULT_PRESSURE_KPA, device);
    let (frames, metrics) = crate::model::assess::score(frames, |i| predictions[i].clone());
    Validation { frames, metrics }
}

/// F (continuing from the last round's weights) is scored on the new batch before it
/// sees it, trains on every annotated frame for one round, and is scored on the
/// validation split when there is one.
fn train_round(
    state: &Path,
    sets: &RoundSets,
    options: &ImportOptions,
    seed: u64,
    on_progress: &mut dyn FnMut(&Progress) -> Control,
) -> Result<RoundOutcome, ProjectError> {
    let train_set = sets.train;
    let size = train_set.size;
    let path = state.join(REGRESSOR_FILE);
    train::seed_torch(seed);
    let (vs, model, new_batch) = if path.is_file() {
        let (vs, model, _) = checkpoint::load_regressor(&path, options.device, Some(size))?;
        let before = score(&model, sets.new_batch, options.device);
        (vs, model, Some(before))
    } else {
        let vs = tch::nn::VarStore::new(options.device);
        let model = Regressor::new(&vs.root(), RegressorConfig::new(size));
        (vs, model, None)
    };
    let config = TrainConfig {
        epochs: options.epochs,
        batch_size: options.batch_size.max(1),
        learning_rate: options.learning_rate,
        seed,
        schedule: LrSchedule::Cosine,
        augment: true,
    };
    let report = train::train_regressor(
        &model,
        &vs,
        train_set,
        DEFAULT_PRESSURE_KPA,
        true,
        &config,
        on_progress,
    )?;
    if report.stopped {
        return Err(ProjectError::Invalid(
            "training was stopped; nothing was imported".into(),
        ));
    }
    let validation = sets
        .validation
        .map(|test| score(&model, test, options.device));
    let sidecar = Sidecar {
        architecture: Architecture::Regressor(model.config),
        sula_version: env!("CARGO_PKG_VERSION").to_string(),
        data: serde_json::json!({
            "frames": train_set.len(),
            "size": size,
            "pressure_kpa": DEFAULT_PRESSURE_KPA,
        }),
        training: serde_json::json!({ "config": config, "report": report }),
    };
    checkpoint::save(&vs, &path, &sidecar)?;
    Ok(RoundOutcome {
        epoch_losses: report.epoch_losses,
        validation,
        new_batch,
    })
}

/// The validation split: annotated frames labelled by the FEA at the working size.
fn validation_frames(dir: &Path, size: usize) -> Result<FrameSet, ProjectError> {
    let dataset = Dataset::open(dir, None)?;
    let frames = FrameSet::load(&dataset, size, false)?;
    let spacing = dataset
        .load(0, Some(size))
        .map_or(dataset.pixel_mm, |f| f.pixel_mm);
    let fea = FeaParams {
        pixel_mm: spacing,
        ..FeaParams::default()
    };
    let (labelled, _) = label_all(frames, &fea);
    if labelled.is_empty() {
        return Err(ProjectError::Invalid(format!(
            "{}: the validation split has no frame the FEA can label",
            dir.display()
        )));
    }
    Ok(labelled)
}

/// A label map resampled to `size`² with nearest neighbour.
fn nearest_resample(labels: &LabelMap, size: usize) -> LabelMap {
    let (w, h) = (labels.width(), labels.height());
    if (w, h) == (size, size) {
        return labels.clone();
    }
    LabelMap::from_fn(size, size, |row, col| {
        let r = (((row as f64 + 0.5) * h as f64 / size as f64) as usize).min(h - 1);
        let c = (((col as f64 + 0.5) * w as f64 / size as f64) as usize).min(w - 1);
        Tissue::from_value(labels.values()[r * w + c]).expect("valid label")
    })
}

/// Which classes a rejected map holds, to help the annotator see what is missing.
fn describe(labels: &LabelMap) -> String {
    let counts = labels.class_counts();
    let present: Vec<&str> = Tissue::ALL
        .iter()
        .filter(|t| counts[**t as usize] > 0)
        .map(|t| t.name())
        .collect();
    format!("it holds {}", present.join(", "))
}
