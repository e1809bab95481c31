//! What the app shows of an open project: each pool frame's state, the gradient-SNN
//! arrows of every round, and sample rows of the frames out for annotation (F's
//! prediction) and of the last import (label map, FEA stress, F and its error).

use std::collections::BTreeMap;

use tch::Device;

use super::messages::{FrameState, ProjectArrow, ProjectRound, ProjectView, SampleView};
use crate::data::dataset::Dataset;
use crate::fea::DEFAULT_PRESSURE_KPA;
use crate::model::checkpoint;
use crate::model::data::FrameSet;
use crate::model::regressor::{Regressor, RegressorInput};
use crate::model::train::{predict_kpa, predict_tissue};
use crate::project::suggest::EmbeddedPool;
use crate::project::{History, Project, file_stem};
use crate::sampling::Projection;

/// Sample rows shown per kind: enough to judge F, few enough to draw every frame.
const SAMPLES_SHOWN: usize = 3;

/// An open project as the view needs it: the project, its embedded pool and the
/// latent view's projection.
pub(super) struct Session {
    pub(super) project: Project,
    pub(super) pool: EmbeddedPool,
    pub(super) projection: Projection,
}

/// The project view of `session`; F (when trained) predicts the sample rows on `device`.
pub(super) fn project_view(session: &Session, device: Device) -> Result<ProjectView, String> {
    let history = &session.project.history;
    let index = session.pool.index_of();
    let xy = |id: &str| {
        index
            .get(id)
            .map(|&i| session.projection.project(&session.pool.means[i]))
    };
    let mut states = vec![FrameState::Pool; session.pool.ids.len()];
    for (ids, state) in [
        (history.pending(), FrameState::Suggested),
        (history.annotated(), FrameState::Annotated),
    ] {
        for id in ids {
            if let Some(&i) = index.get(id) {
                states[i] = state;
            }
        }
    }
    let arrows = history
        .batches
        .iter()
        .flat_map(|b| b.moves.iter().map(move |m| (b.round, m)))
        .filter_map(|(round, m)| {
            Some(ProjectArrow {
                from: xy(&m.from)?,
                moved: session.projection.project(&m.moved),
                snapped: xy(&m.frame)?,
                round,
                frame: m.frame.clone(),
            })
        })
        .collect();
    let model = match session.project.regressor_path() {
        Some(path) => Some(
            checkpoint::load_regressor(&path, device, Some(session.project.file.size))
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let regressor = model.as_ref().map(|(_, f, _)| f);
    Ok(ProjectView {
        root: session.project.root.clone(),
        frames: session.pool.ids.len(),
        annotated: history.annotated().len(),
        pending: history.pending().len(),
        rounds: rounds(history),
        states,
        arrows,
        suggested_samples: suggested_samples(session, regressor, device),
        imported_samples: imported_samples(session, regressor, device)?,
    })
}

/// One row per batch: what was suggested, what came back, and F's errors.
fn rounds(history: &History) -> Vec<ProjectRound> {
    let mut total = 0;
    history
        .batches
        .iter()
        .map(|b| {
            let imported = b.imported.as_ref();
            if let Some(i) = imported {
                total += i.annotated.len();
            }
            let mse = |v: Option<&serde_json::Value>| v.and_then(|v| v["metrics"]["mse"].as_f64());
            ProjectRound {
                round: b.round,
                strategy: b.strategy.clone(),
                suggested: b.frames.len(),
                annotated: imported.map(|i| i.annotated.len()),
                total_annotated: imported.map(|_| total),
                validation_mse: mse(imported.and_then(|i| i.validation.as_ref())),
                new_batch_mse: mse(imported.and_then(|i| i.new_batch.as_ref())),
                batch: b.path.clone(),
            }
        })
        .collect()
}

/// The frames out for annotation: the image, and with F its predicted tissue and stress.
fn suggested_samples(
    session: &Session,
    regressor: Option<&Regressor>,
    device: Device,
) -> Vec<SampleView> {
    let index = session.pool.index_of();
    let size = session.pool.images.size;
    let picked: Vec<(String, usize)> = session
        .project
        .history
        .pending()
        .into_iter()
        .filter_map(|id| index.get(id).map(|&i| (id.to_string(), i)))
        .take(SAMPLES_SHOWN)
        .collect();
    let set = FrameSet {
        size,
        images: picked
            .iter()
            .map(|&(_, i)| session.pool.images.images[i].clone())
            .collect(),
        labels: Vec::new(),
        stress: None,
    };
    let (tissue, stress) = match regressor {
        // F reads images here; a label-map F has nothing to read before annotation.
        Some(f) if !set.images.is_empty() && f.config.input == RegressorInput::Image => (
            predict_tissue(f, &set, device),
            predict_kpa(f, &set, DEFAULT_PRESSURE_KPA, device)
                .into_iter()
                .map(Some)
                .collect(),
        ),
        _ => (vec![Vec::new(); picked.len()], vec![None; picked.len()]),
    };
    picked
        .iter()
        .zip(set.images)
        .zip(tissue.into_iter().zip(stress))
        .map(|(((id, _), image), (labels, prediction))| SampleView {
            caption: format!("{id}: suggested, not annotated yet"),
            size,
            image,
            labels,
            stress: None,
            prediction,
        })
        .collect()
}

/// The last import's frames from the annotated set, with F's prediction (F has trained
/// on them, so this shows how well it fits, not how it generalises).
fn imported_samples(
    session: &Session,
    regressor: Option<&Regressor>,
    device: Device,
) -> Result<Vec<SampleView>, String> {
    let project = &session.project;
    let (Some(dir), Some(last)) = (
        project.annotated_dir(),
        project
            .history
            .batches
            .iter()
            .rev()
            .find_map(|b| b.imported.as_ref()),
    ) else {
        return Ok(Vec::new());
    };
    let dataset = Dataset::open(&dir, None).map_err(|e| e.to_string())?;
    let position: BTreeMap<&str, usize> = dataset
        .frames
        .iter()
        .enumerate()
        .map(|(k, f)| (f.id.as_str(), k))
        .collect();
    let chosen: Vec<(String, usize)> = last
        .annotated
        .iter()
        .filter_map(|id| {
            position
                .get(file_stem(id).as_str())
                .map(|&k| (id.clone(), k))
        })
        .take(SAMPLES_SHOWN)
        .collect();
    // Only the frames shown are read, at the working size, not the whole annotated set.
    let mut set = FrameSet::empty_labelled(project.file.size);
    for &(_, k) in &chosen {
        let frame = dataset
            .load(k, Some(project.file.size))
            .map_err(|e| e.to_string())?;
        match (frame.labels, frame.stress) {
            (Some(labels), Some(stress)) => set.push_labelled(frame.image, labels, stress),
            _ => {
                return Err(format!(
                    "{}: annotated frame {} has no label map or stress",
                    dir.display(),
                    frame.id
                ));
            }
        }
    }
    let predictions = match regressor {
        Some(f) if !set.images.is_empty() => predict_kpa(f, &set, DEFAULT_PRESSURE_KPA, device)
            .into_iter()
            .map(Some)
            .collect(),
        _ => vec![None; set.images.len()],
    };
    Ok(chosen
        .iter()
        .enumerate()
        .zip(predictions)
        .map(|((k, (id, _)), prediction)| SampleView {
            caption: format!("{id}: annotated"),
            size: set.size,
            image: set.images[k].clone(),
            labels: set.labels[k].values().to_vec(),
            stress: set.stress.as_ref().map(|s| s[k].clone()),
            prediction,
        })
        .collect())
}
