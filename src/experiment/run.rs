//! What a study persists so it can be resumed, plotted and exported later: its settings
//! (loop, data source, resolution, which VAE), and, as rounds finish, the rows and the
//! per-round records. `sula experiment` and the GUI write the same run folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Device, nn};

use super::source::DataSource;
use super::{ResultsDir, ResultsFile, Row, Summary, plot};
use crate::io::IoError;
use crate::model::ModelError;
use crate::model::checkpoint;
use crate::model::vae::Vae;
use crate::sampling::{Arm, LoopConfig, RoundRecord};

/// The file name a run folder keeps its own copy of the VAE under.
pub const RUN_VAE_FILE: &str = "vae.safetensors";

const EMBEDDED_PREFIX: &str = "embedded ";

/// Which VAE a study used, so an export can decode its latent points again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum VaeRef {
    /// The VAE shipped in the binary.
    Embedded,
    /// A checkpoint file; a relative path is relative to the run folder.
    File(PathBuf),
}

impl From<VaeRef> for String {
    fn from(vae: VaeRef) -> String {
        match vae {
            VaeRef::Embedded => format!(
                "{EMBEDDED_PREFIX}assets/{}.safetensors",
                checkpoint::DEFAULT_VAE_NAME
            ),
            VaeRef::File(path) => path.display().to_string(),
        }
    }
}

impl From<String> for VaeRef {
    fn from(text: String) -> VaeRef {
        if text.starts_with(EMBEDDED_PREFIX) {
            VaeRef::Embedded
        } else {
            VaeRef::File(PathBuf::from(text))
        }
    }
}

impl VaeRef {
    /// Loads the VAE, resolving a relative checkpoint path against `run_root`.
    pub fn load(&self, run_root: &Path, device: Device) -> Result<(nn::VarStore, Vae), ModelError> {
        let (vs, vae, _) = match self {
            VaeRef::Embedded => checkpoint::load_default_vae(device)?,
            VaeRef::File(path) => checkpoint::load_vae(&run_root.join(path), device, None)?,
        };
        Ok((vs, vae))
    }
}

/// The `config` object of `results.json`: everything that decides a study's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudySettings {
    #[serde(rename = "loop")]
    pub loop_config: LoopConfig,
    /// The arms, in the order each repeat runs them.
    #[serde(default = "two_arms")]
    pub arms: Vec<Arm>,
    pub repeats: usize,
    /// Pool frames held out as the validation split (not candidates for any arm).
    #[serde(default)]
    pub validation: usize,
    pub data: DataSource,
    /// Working resolution (pixels per side).
    pub size: usize,
    pub vae: VaeRef,
}

/// The arms of a study written before pool strategies existed.
fn two_arms() -> Vec<Arm> {
    vec![Arm::Adaptive, Arm::Baseline]
}

impl StudySettings {
    /// Reads the settings of the run folder `root`.
    pub fn read(root: &Path) -> Result<(StudySettings, ResultsFile), IoError> {
        let dir = ResultsDir::new(root);
        let path = dir.json();
        if !root.is_dir() {
            return Err(IoError::format(root, "is not a folder"));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| IoError::io(&path, e))?;
        let file: ResultsFile = serde_json::from_str(&text)
            .map_err(|e| IoError::format(&path, format!("is not a sula results.json ({e})")))?;
        if file.config["loop"]["regressor_input_blur"]
            .as_f64()
            .is_some_and(|sigma| sigma > 0.0)
        {
            return Err(IoError::format(
                &path,
                format!(
                    "was run with an input blur for F, a variant that was measured and not adopted and is no longer in sula; it is kept at the git tag `{}`",
                    crate::model::checkpoint::RETIRED_VARIANTS_TAG
                ),
            ));
        }
        let settings = serde_json::from_value(file.config.clone())
            .map_err(|e| IoError::format(&path, format!("has no usable study settings ({e})")))?;
        Ok((settings, file))
    }

    /// These settings with the adaptive arm's own ones (mode, η, normalisation, variant,
    /// generator) taken from `other`. Random, core-set and TTA depend on everything else only, so two
    /// studies equal after this ran the same pool arms, and may share them.
    pub fn with_adaptive_settings_of(&self, other: &StudySettings) -> StudySettings {
        let mut shared = self.clone();
        shared.loop_config.mode = other.loop_config.mode;
        shared.loop_config.step = other.loop_config.step;
        shared.loop_config.normalisation = other.loop_config.normalisation;
        shared.loop_config.variant = other.loop_config.variant;
        shared.loop_config.generator = other.loop_config.generator;
        shared
    }
}

/// Reads the per-round records of one arm and repeat of the run folder `root`.
pub fn read_rounds(root: &Path, arm: Arm, repeat: usize) -> Result<Vec<RoundRecord>, IoError> {
    let path = ResultsDir::new(root).rounds(arm, repeat);
    let text = std::fs::read_to_string(&path).map_err(|e| IoError::io(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| IoError::format(&path, format!("is not a list of round records ({e})")))
}

/// Writes `results.csv` with the rows in one order, by repeat, arm and round, whatever
/// order the rounds ran in (arms level with each other, a resumed arm last, merged
/// folders), so that the same study always gives the same file.
fn write_rows(dir: &ResultsDir, rows: &[Row]) -> Result<(), IoError> {
    let mut sorted = rows.to_vec();
    sorted.sort_by_key(|r| (r.repeat, r.arm, r.round));
    super::results::write_csv(&dir.csv(), &sorted)
}

/// A run folder being written round by round (by [`super::study::Study`]): settings
/// first, then rows and per-round records as rounds finish and, at the end, the summary
/// and curves. Every file is replaced atomically, so the folder is consistent whenever the
/// study stops, and `--resume` can continue it.
#[derive(Debug)]
pub struct RunLog {
    pub dir: ResultsDir,
    settings: StudySettings,
    provenance: serde_json::Value,
    /// When the study's process started: `wall_s` in the provenance counts from here.
    started: Instant,
}

impl RunLog {
    /// Opens the folder `root` for `settings` and writes `results.json` and the `rows` the
    /// study starts from. A folder that holds a study already is refused unless
    /// `continuing` (its rows were gathered by [`super::study::gather`]).
    pub fn create(
        root: &Path,
        settings: StudySettings,
        provenance: serde_json::Value,
        rows: &[Row],
        continuing: bool,
        started: Instant,
    ) -> Result<RunLog, IoError> {
        let dir = ResultsDir::new(root);
        if !continuing && dir.json().exists() {
            return Err(IoError::format(root, "already holds a study"));
        }
        let rounds = root.join("rounds");
        std::fs::create_dir_all(&rounds).map_err(|e| IoError::io(&rounds, e))?;
        let log = RunLog {
            dir,
            settings,
            provenance,
            started,
        };
        log.write_summary(false, None)?;
        write_rows(&log.dir, rows)?;
        Ok(log)
    }

    /// Records a finished round: every row so far, and the arm's history so far.
    pub fn record(&self, rows: &[Row], history: &[RoundRecord]) -> Result<(), IoError> {
        let Some(last) = history.last() else {
            return Ok(());
        };
        write_rows(&self.dir, rows)?;
        let json = serde_json::to_string(history).expect("round records serialise");
        crate::io::atomic::write_bytes(&self.dir.rounds(last.arm, last.repeat), json.as_bytes())
    }

    /// Writes the curves and the summary; `complete` when every repeat of every arm has
    /// its rows.
    pub fn finish(&self, summary: &Summary, title: &str, complete: bool) -> Result<(), IoError> {
        plot::write_curves(
            &self.dir.curves(),
            summary,
            self.settings.loop_config.mode,
            title,
        )?;
        self.write_summary(complete, Some(summary.clone()))
    }

    fn write_summary(&self, finished: bool, summary: Option<Summary>) -> Result<(), IoError> {
        let mut provenance = self.provenance.clone();
        provenance["wall_s"] = serde_json::json!(self.started.elapsed().as_secs_f64());
        let file = ResultsFile {
            config: serde_json::to_value(&self.settings).expect("settings serialise"),
            provenance,
            finished,
            summary,
        };
        let json = serde_json::to_string_pretty(&file).expect("results serialise");
        crate::io::atomic::write_bytes(&self.dir.json(), json.as_bytes())
    }
}
