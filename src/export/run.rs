//! Headless export from a run folder (`sula experiment` results or a GUI run): reads the
//! settings and per-round records, rebuilds the pool and the VAE the run used, and
//! collects the moved samples of the chosen rounds.

use std::path::Path;

use tch::Device;

use super::collect::{Collected, MovedRef, moved_samples};
use super::{ExportError, ExportInfo};
use crate::experiment::StudySettings;
use crate::experiment::run::read_rounds;
use crate::model::data::FrameSet;
use crate::sampling::{Arm, Context, Pool, Projection, RoundRecord};

/// Which rounds of the adaptive arm to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rounds {
    /// Every round with moved samples.
    All,
    /// The last `n` rounds that ran.
    Last(usize),
    /// These round numbers.
    Only(Vec<usize>),
}

impl Rounds {
    /// The round numbers kept, given the rounds that ran (sorted).
    pub fn keep(&self, ran: &[usize]) -> Vec<usize> {
        match self {
            Rounds::All => ran.to_vec(),
            Rounds::Last(n) => ran[ran.len().saturating_sub(*n)..].to_vec(),
            Rounds::Only(wanted) => ran.iter().copied().filter(|r| wanted.contains(r)).collect(),
        }
    }
}

/// A run folder's samples, ready for [`super::write_export`].
#[derive(Debug)]
pub struct RunExport {
    pub collected: Collected,
    pub info: ExportInfo,
    /// Rounds and repeats the samples come from.
    pub rounds: Vec<usize>,
    pub repeats: Vec<usize>,
}

/// Collects the moved samples of `rounds` (of the adaptive arm; repeats `repeats`, or all
/// that have records) from the run folder `run`.
pub fn collect_run(
    run: &Path,
    repeats: Option<&[usize]>,
    rounds: &Rounds,
    device: Device,
) -> Result<RunExport, ExportError> {
    let (settings, _) = StudySettings::read(run)?;
    let repeats: Vec<usize> = match repeats {
        Some(wanted) => {
            if let Some(r) = wanted.iter().find(|&&r| r >= settings.repeats) {
                return Err(ExportError::Invalid(format!(
                    "repeat {r} does not exist: {} has repeats 0 to {}",
                    run.display(),
                    settings.repeats.saturating_sub(1)
                )));
            }
            wanted.to_vec()
        }
        None => (0..settings.repeats).collect(),
    };
    let mut records: Vec<RoundRecord> = Vec::new();
    for &repeat in &repeats {
        let path = crate::experiment::ResultsDir::new(run).rounds(Arm::Adaptive, repeat);
        if path.exists() {
            records.extend(read_rounds(run, Arm::Adaptive, repeat)?);
        }
    }
    let mut ran: Vec<usize> = records
        .iter()
        .filter(|r| !r.moved.is_empty())
        .map(|r| r.round)
        .collect();
    ran.sort_unstable();
    ran.dedup();
    if ran.is_empty() {
        return Err(ExportError::Empty(format!(
            "{} has no finished adaptive round with moved samples",
            run.display()
        )));
    }
    let kept = rounds.keep(&ran);
    if kept.is_empty() {
        return Err(ExportError::Empty(format!(
            "none of the requested rounds ran; {} has rounds {ran:?} with moved samples",
            run.display()
        )));
    }

    let (_vs, vae) = settings.vae.load(run, device)?;
    if vae.config.size != settings.size {
        return Err(ExportError::Invalid(format!(
            "the run's VAE works at {0}×{0} but the run was at {1}×{1}",
            vae.config.size, settings.size
        )));
    }
    // The run's pool: its candidates, without the validation split it held out.
    let mut data = settings.data.load_pool(settings.size)?.label_test();
    if settings.validation > 0 {
        data = data
            .split_validation(settings.validation, settings.loop_config.seed)
            .map_err(ExportError::Invalid)?
            .0;
    }
    let fea = data.fea.clone();
    let pool = Pool::new(data.pool.ids, data.pool.set, fea.clone(), &vae, device);
    let projection = Projection::fit(&pool.embeddings);
    let no_test = FrameSet::empty_labelled(settings.size);
    let ctx = Context {
        vae: &vae,
        pool: &pool,
        test: &no_test,
        device,
    };
    let wanted = |at: MovedRef| kept.contains(&at.round);
    let collected = moved_samples(&records, &wanted, &settings.loop_config, &ctx, &projection)?;
    let info = ExportInfo {
        pixel_mm: fea.pixel_mm,
        pressure_kpa: fea.pressure_kpa,
        source: serde_json::json!({
            "run": std::path::absolute(run).unwrap_or_else(|_| run.to_path_buf()),
            "mode": settings.loop_config.mode,
            "repeats": repeats,
            "rounds": kept,
            "vae": settings.vae,
            "data": settings.data,
        }),
    };
    Ok(RunExport {
        collected,
        info,
        rounds: kept,
        repeats,
    })
}
