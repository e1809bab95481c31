//! The one study driver that `sula experiment` and the app's Stage 2 both run: the
//! schedule of arms and repeats, one round at a time (every arm of a repeat level with the
//! others), the rows and per-round records written to the run folder as they finish, the
//! progress and ETA, and the summary and curves at the end. Each arm depends only on its
//! repeat's seed, so the order in which rounds of different arms run changes no number.
//!
//! [`gather`] starts a study from folders that already hold some of it (`--resume`,
//! `--merge`, shards gathered between GPU leases).

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Instant;

use thiserror::Error;

use super::results::{Row, Summary, read_csv, summarise};
use super::{ResultsDir, RunLog, StudySettings, plot, row};
use crate::io::IoError;
use crate::model::train::{Control, Progress};
use crate::sampling::{Arm, ArmRun, Context, LoopConfig, RoundRecord, SamplingError};

/// Why a study could not be started or gathered.
#[derive(Debug, Error)]
pub enum StudyError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Sampling(#[from] SamplingError),
    /// A folder that cannot join this study, with the reason and what to do.
    #[error("{0}")]
    Refused(String),
}

/// Which (arm, repeat) pairs a study runs, in order: each repeat runs every arm from the
/// same initial weights.
pub fn schedule(arms: &[Arm], repeats: usize) -> Vec<(Arm, usize)> {
    (0..repeats)
        .flat_map(|r| arms.iter().map(move |&arm| (arm, r)))
        .collect()
}

/// The (arm, repeat) pairs that have rows, each once.
pub fn finished_arms(rows: &[Row]) -> Vec<(Arm, usize)> {
    let mut pairs: Vec<(Arm, usize)> = rows.iter().map(|r| (r.arm, r.repeat)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// Where a running study stands, reported after every training batch.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyProgress {
    pub arm: Arm,
    pub repeat: usize,
    pub repeats: usize,
    /// Share of this process's training steps done.
    pub fraction: f64,
    /// Seconds left at the pace so far.
    pub eta_s: Option<f64>,
}

/// A round that just finished.
pub struct Round<'s> {
    /// The arm it belongs to, with its training set and F after the round.
    pub run: &'s ArmRun,
    pub record: &'s RoundRecord,
    /// The loop's settings, which the round's captions and exports need.
    pub config: &'s LoopConfig,
    pub row: Row,
    /// Whether the run folder took the round; the study itself has it either way.
    pub saved: Result<(), IoError>,
}

/// A study being run: the pairs still to run, the arms of the repeat under way, every
/// finished row (those gathered from earlier folders too) and the run folder.
pub struct Study {
    pub settings: StudySettings,
    pending: VecDeque<(Arm, usize)>,
    /// The arms of the repeat under way (or of the last one, once the study finished).
    runs: Vec<ArmRun>,
    rows: Vec<Row>,
    /// Adaptive-arm records of the repeats this process finished before the current one.
    earlier_adaptive: Vec<RoundRecord>,
    log: Option<RunLog>,
    steps_total: usize,
    steps_done: usize,
    started: Instant,
}

impl Study {
    /// A study that runs `pending` after `rows`, saving to `log`. The first repeat's arms
    /// are built at once, so settings the loop cannot run are refused here, not at the
    /// first round.
    pub fn new(
        settings: StudySettings,
        rows: Vec<Row>,
        pending: Vec<(Arm, usize)>,
        log: Option<RunLog>,
        ctx: &Context,
    ) -> Result<Study, SamplingError> {
        let steps_total = pending.len() * settings.loop_config.steps_per_arm();
        let mut study = Study {
            settings,
            pending: pending.into(),
            runs: Vec::new(),
            rows,
            earlier_adaptive: Vec::new(),
            log,
            steps_total,
            steps_done: 0,
            started: Instant::now(),
        };
        study.start_next_repeat(ctx)?;
        Ok(study)
    }

    fn config(&self) -> &LoopConfig {
        &self.settings.loop_config
    }

    /// Builds the arms of the next pending repeat, keeping the adaptive records of the
    /// one that ended; false when nothing is pending.
    fn start_next_repeat(&mut self, ctx: &Context) -> Result<bool, SamplingError> {
        let Some(&(_, repeat)) = self.pending.front() else {
            return Ok(false);
        };
        let mut runs = Vec::new();
        while let Some(&(arm, r)) = self.pending.front()
            && r == repeat
        {
            runs.push(ArmRun::new(arm, self.config(), repeat, ctx)?);
            self.pending.pop_front();
        }
        for ended in std::mem::replace(&mut self.runs, runs) {
            if ended.arm == Arm::Adaptive {
                self.earlier_adaptive.extend(ended.history);
            }
        }
        Ok(true)
    }

    /// Runs the next round: of the arm of the repeat under way with the fewest rounds, so
    /// that the arms move level. `None` once every pending pair reached the budget.
    pub fn next_round(
        &mut self,
        ctx: &Context,
        on_progress: &mut dyn FnMut(&StudyProgress) -> Control,
    ) -> Result<Option<Round<'_>>, SamplingError> {
        if self.runs.iter().all(ArmRun::is_finished) && !self.start_next_repeat(ctx)? {
            return Ok(None);
        }
        let index = (0..self.runs.len())
            .filter(|&i| !self.runs[i].is_finished())
            .min_by_key(|&i| self.runs[i].history.len())
            .expect("a repeat under way has an unfinished arm");
        let (started, total, repeats) = (self.started, self.steps_total, self.settings.repeats);
        let mut done = self.steps_done;
        let run = &mut self.runs[index];
        let (arm, repeat) = (run.arm, run.repeat);
        let outcome = run.step(ctx, &mut |_: &Progress| {
            done += 1;
            let left = total.saturating_sub(done);
            on_progress(&StudyProgress {
                arm,
                repeat,
                repeats,
                fraction: done as f64 / total.max(1) as f64,
                eta_s: Some(started.elapsed().as_secs_f64() / done as f64 * left as f64),
            })
        });
        self.steps_done = done;
        outcome?;
        let run = &self.runs[index];
        let record = run.history.last().expect("a round was recorded");
        let row = row(&self.settings.loop_config, record);
        self.rows.push(row.clone());
        let saved = match &self.log {
            Some(log) => log.record(&self.rows, &run.history),
            None => Ok(()),
        };
        Ok(Some(Round {
            run,
            record,
            config: &self.settings.loop_config,
            row,
            saved,
        }))
    }

    /// Whether every pending pair reached the budget.
    pub fn is_finished(&self) -> bool {
        self.pending.is_empty() && self.runs.iter().all(ArmRun::is_finished)
    }

    /// Every finished row, gathered ones included.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The share of this process's training steps done.
    pub fn fraction_done(&self) -> f64 {
        self.steps_done as f64 / self.steps_total.max(1) as f64
    }

    /// The adaptive arm of the repeat under way, if it runs one.
    pub fn adaptive(&self) -> Option<&ArmRun> {
        self.runs.iter().find(|run| run.arm == Arm::Adaptive)
    }

    /// The adaptive arm's records of every repeat this process ran, oldest first.
    pub fn adaptive_history(&self) -> Vec<RoundRecord> {
        let current = self.adaptive().map(|run| run.history.as_slice());
        self.earlier_adaptive
            .iter()
            .chain(current.unwrap_or_default())
            .cloned()
            .collect()
    }

    /// The run folder, while the study saves to one.
    pub fn log(&self) -> Option<&RunLog> {
        self.log.as_ref()
    }

    /// Stops saving (after the folder refused a write) and returns the folder.
    pub fn stop_saving(&mut self) -> Option<RunLog> {
        self.log.take()
    }

    /// Whether every pair of the whole study (not only this process's) has its rows.
    pub fn complete(&self) -> bool {
        let done = finished_arms(&self.rows);
        schedule(&self.settings.arms, self.settings.repeats)
            .iter()
            .all(|pair| done.contains(pair))
    }

    /// The summary of every row, and the title its curves carry.
    fn summary(&self, test_frames: usize) -> (Summary, String) {
        let repeats_run = finished_arms(&self.rows)
            .iter()
            .map(|&(_, repeat)| repeat)
            .collect::<BTreeSet<_>>()
            .len();
        // The adaptive arm's legend names the method; a control run says what it changed.
        let control = if self.config().variant.random_direction {
            " (control: adaptive steps along random directions, not F's gradient)"
        } else {
            ""
        };
        let title = format!(
            "{}, {test_frames} test frames{control}",
            plot::study_title(
                self.config().mode,
                &self.settings.arms,
                repeats_run,
                self.settings.size
            ),
        );
        (summarise(&self.rows), title)
    }

    /// Writes the summary and the curves into the run folder; returns the summary.
    pub fn finish(&self, test_frames: usize) -> Result<Summary, IoError> {
        let (summary, title) = self.summary(test_frames);
        if let Some(log) = &self.log {
            log.finish(&summary, &title, self.complete())?;
        }
        Ok(summary)
    }
}

/// What a study starts from: rows of earlier folders, and where they came from.
#[derive(Debug, Default)]
pub struct Gathered {
    pub rows: Vec<Row>,
    /// One entry per merged folder: its path, the device that ran it and whether only its
    /// pool arms joined (recorded in the provenance).
    pub merged_from: Vec<serde_json::Value>,
    /// What the gathering decided, one sentence each, for the user.
    pub notes: Vec<String>,
}

/// The rows a study in `out` starts from: with `resume`, the finished arms already there;
/// then every finished arm of each folder in `merge` (shards, interrupted runs, runs of some
/// of the arms or of fewer repeats), whose per-round records are copied into `out`. With
/// `gather_only`, only the repeats every arm finished are kept. Every merged folder is
/// checked before anything is copied.
pub fn gather(
    settings: &StudySettings,
    out: &Path,
    resume: bool,
    merge: &[PathBuf],
    gather_only: bool,
) -> Result<Gathered, StudyError> {
    let dir = ResultsDir::new(out);
    let mut gathered = Gathered::default();
    if resume && dir.json().exists() {
        gathered.rows = rows_of_study(&dir, settings, false)?.rows;
    } else if dir.csv().exists() || dir.json().exists() {
        return Err(StudyError::Refused(format!(
            "{} already holds results; pass --resume to continue them or choose another --out",
            out.display()
        )));
    }
    let rounds = out.join("rounds");
    std::fs::create_dir_all(&rounds).map_err(|e| IoError::io(&rounds, e))?;
    let mut copies = Vec::new();
    for folder in merge {
        let other = ResultsDir::new(folder);
        let merged = rows_of_study(&other, settings, true)?;
        if merged.pool_arms_only {
            gathered.notes.push(format!(
                "{}: its adaptive arm ran other settings, so only its random, core-set and TTA arms are merged",
                folder.display()
            ));
        }
        gathered.merged_from.push(serde_json::json!({
            "folder": folder.display().to_string(),
            "device": merged.provenance["device"],
            "pool_arms_only": merged.pool_arms_only,
        }));
        let have = finished_arms(&gathered.rows);
        for (arm, repeat) in finished_arms(&merged.rows) {
            if have.contains(&(arm, repeat)) {
                return Err(StudyError::Refused(format!(
                    "{} has {} repeat {repeat}, which another folder already gave; merge each repeat once",
                    folder.display(),
                    arm.name()
                )));
            }
            copies.push((
                (arm, repeat),
                other.rounds(arm, repeat),
                dir.rounds(arm, repeat),
            ));
        }
        gathered.rows.extend(merged.rows);
    }
    if gather_only {
        gathered.rows = paired_rows(std::mem::take(&mut gathered.rows), &settings.arms);
        let kept = finished_arms(&gathered.rows);
        copies.retain(|(pair, _, _)| kept.contains(pair));
        let paired: BTreeSet<usize> = kept.iter().map(|&(_, repeat)| repeat).collect();
        gathered.notes.push(format!(
            "gathered the {} of {} repeats that every arm finished ({paired:?}); nothing else is run",
            paired.len(),
            settings.repeats
        ));
    }
    for (_, from, to) in copies.iter().filter(|(_, from, _)| from.exists()) {
        let bytes = std::fs::read(from).map_err(|e| IoError::io(from, e))?;
        crate::io::atomic::write_bytes(to, &bytes)?;
    }
    Ok(gathered)
}

/// A folder's finished rows that join this study.
struct MergedRows {
    rows: Vec<Row>,
    provenance: serde_json::Value,
    /// Its adaptive arm ran other settings, so only its pool arms were taken.
    pool_arms_only: bool,
}

/// The finished rows of the study in `dir` and the provenance it recorded (which machine
/// ran them), refused unless it was run with `settings`; when merging, a folder whose
/// adaptive arm ran other settings gives only its random, core-set and TTA rows.
fn rows_of_study(
    dir: &ResultsDir,
    settings: &StudySettings,
    merging: bool,
) -> Result<MergedRows, StudyError> {
    let (theirs, previous) = StudySettings::read(&dir.root)?;
    let other_settings = || {
        StudyError::Refused(format!(
            "{} was written with other settings; rerun with the same options or choose another --out",
            dir.json().display()
        ))
    };
    let joins = joins_study(&theirs, settings, merging);
    let pool_arms_only = merging
        && !joins
        && joins_study(&theirs.with_adaptive_settings_of(settings), settings, true);
    let given = |arm: &Arm| !(pool_arms_only && *arm == Arm::Adaptive);
    let extra_arm = theirs
        .arms
        .iter()
        .filter(|arm| given(arm))
        .find(|arm| !settings.arms.contains(arm));
    if let Some(extra) = extra_arm.filter(|_| merging) {
        return Err(StudyError::Refused(format!(
            "{} holds the {} arm, which this study's --arms leaves out; add it or merge without that folder",
            dir.json().display(),
            extra.name()
        )));
    }
    if !joins && !pool_arms_only {
        return Err(other_settings());
    }
    let rows = if dir.csv().exists() {
        finished_rows(read_csv(&dir.csv())?, &settings.loop_config)
            .into_iter()
            .filter(|row| given(&row.arm) && row.repeat < settings.repeats)
            .map(|row| Row {
                mode: settings.loop_config.mode,
                ..row
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(MergedRows {
        rows,
        provenance: previous.provenance,
        pool_arms_only,
    })
}

/// Whether a folder's rows belong to this study: the same settings, except that a merged
/// folder may have run only some of the arms (the caller refuses arms the study leaves
/// out), so that one GPU lease can give each arm of a long repeat its own process, and
/// fewer or more repeats (the caller keeps those this study has), so that a 5-repeat CPU
/// study grows to 10. Both hold because each arm depends only on its repeat's seed.
/// Settings are compared as settings, not as JSON, so that a field added since (read with
/// its default, which is what older studies did) does not refuse an older folder.
fn joins_study(theirs: &StudySettings, ours: &StudySettings, merging: bool) -> bool {
    let (arms, repeats) = if merging {
        (&ours.arms, ours.repeats)
    } else {
        (&theirs.arms, theirs.repeats)
    };
    let compared = StudySettings {
        arms: arms.clone(),
        repeats,
        ..theirs.clone()
    };
    &compared == ours
}

/// Rows of the repeats that every arm finished, so that an interim summary pairs its
/// arms by repeat as the whole study's does.
fn paired_rows(rows: Vec<Row>, arms: &[Arm]) -> Vec<Row> {
    let done = finished_arms(&rows);
    rows.into_iter()
        .filter(|r| arms.iter().all(|&arm| done.contains(&(arm, r.repeat))))
        .collect()
}

/// Rows kept on resume: only (arm, repeat) pairs that reached the budget.
fn finished_rows(rows: Vec<Row>, config: &LoopConfig) -> Vec<Row> {
    let complete = |arm: Arm, repeat: usize| {
        config.sizes.iter().all(|&s| {
            rows.iter()
                .any(|r| r.arm == arm && r.repeat == repeat && r.size == s)
        })
    };
    rows.iter()
        .filter(|r| complete(r.arm, r.repeat) && config.sizes.contains(&r.size))
        .cloned()
        .collect()
}
