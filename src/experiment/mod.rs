//! The adaptive-vs-random study (docs/DESIGN.md §Study): every arm, each
//! repeated, rows written as they finish so an interrupted study keeps its results and
//! can be resumed, then a summary and the curves figure. [`study::Study`] drives it for
//! the command line and the app alike.

pub mod plot;
pub mod results;
pub mod run;
pub mod select;
pub mod source;
pub mod stats;
pub mod study;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use results::{ArmSummary, Row, Summary, SummaryPoint, summarise};
pub use run::{RunLog, StudySettings, VaeRef};
pub use study::{Study, schedule};

use crate::sampling::{Arm, ArmRun, Context, LoopConfig, RoundRecord, SamplingError};

/// Preset sizes of a study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// Sized so that both modes with every arm finish within 30 minutes on a 2-core CPU:
    /// n0 40, k 40, budget 240, 5 epochs per round, 5 repeats on the CPU.
    Default,
    /// A larger run for a GPU: n0 100, k 100, budget 1000, 20 epochs per round, 10 repeats on a GPU.
    Paper,
}

impl Protocol {
    /// (n0, k, budget, epochs per round).
    pub fn sizes(self) -> (usize, usize, usize, usize) {
        match self {
            Protocol::Default => (40, 40, 240, 5),
            Protocol::Paper => (100, 100, 1000, 20),
        }
    }
}

/// The row of one finished round.
pub fn row(config: &LoopConfig, record: &RoundRecord) -> Row {
    Row {
        arm: record.arm,
        mode: config.mode,
        repeat: record.repeat,
        round: record.round,
        size: record.size,
        steps: record.steps,
        mse: record.metrics.mse,
        accuracy: record.metrics.accuracy,
        peak_error: record.metrics.peak_error,
        r2: record.metrics.r2,
        wall_s: record.wall_s,
        rejected: record.rejected,
    }
}

/// Runs one arm of one repeat to the budget; `on_round` sees each finished round and
/// `on_progress` each training batch (it may cancel).
pub fn run_arm(
    arm: Arm,
    repeat: usize,
    config: &LoopConfig,
    ctx: &Context,
    on_round: &mut dyn FnMut(&RoundRecord) -> Result<(), SamplingError>,
    on_progress: &mut dyn FnMut(&crate::model::train::Progress) -> crate::model::train::Control,
) -> Result<Vec<RoundRecord>, SamplingError> {
    let mut run = ArmRun::new(arm, config, repeat, ctx)?;
    while !run.is_finished() {
        let record = run.step(ctx, on_progress)?;
        on_round(record)?;
    }
    Ok(run.history)
}

/// Files of a results folder.
#[derive(Debug, Clone)]
pub struct ResultsDir {
    pub root: PathBuf,
}

impl ResultsDir {
    pub fn new(root: &Path) -> ResultsDir {
        ResultsDir {
            root: root.to_path_buf(),
        }
    }
    pub fn csv(&self) -> PathBuf {
        self.root.join("results.csv")
    }
    pub fn json(&self) -> PathBuf {
        self.root.join("results.json")
    }
    pub fn curves(&self) -> PathBuf {
        self.root.join("curves.png")
    }
    /// Per-round records of one arm and repeat (moved points, losses, nearest frames).
    pub fn rounds(&self, arm: Arm, repeat: usize) -> PathBuf {
        self.root
            .join("rounds")
            .join(format!("{}_repeat{repeat}.json", arm.name()))
    }
}

/// What `results.json` holds: the configuration (checked on resume), provenance and,
/// once finished, the summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultsFile {
    pub config: serde_json::Value,
    pub provenance: serde_json::Value,
    pub finished: bool,
    pub summary: Option<Summary>,
}
