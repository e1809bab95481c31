//! What a study persists so it can be resumed, plotted and exported later: its settings
//! (loop, data source, resolution, which VAE), and, as rounds finish, the rows and the
//! per-round records. `sula experiment` and the GUI write the same run folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, nn};

use super::source::DataSource;
use super::{ResultsDir, ResultsFile, Row, plot, row, summarise};
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

/// A run folder being written round by round (the GUI's studies): settings first, then
/// rows, per-round records and, at the end, the summary and curves. Every file is
/// replaced atomically, so the folder is consistent whenever the app stops.
#[derive(Debug)]
pub struct RunLog {
    pub dir: ResultsDir,
    settings: StudySettings,
    provenance: serde_json::Value,
    rows: Vec<Row>,
}

impl RunLog {
    /// Creates the folder (which must not hold results yet) and writes `results.json`.
    pub fn create(
        root: &Path,
        settings: StudySettings,
        provenance: serde_json::Value,
    ) -> Result<RunLog, IoError> {
        let dir = ResultsDir::new(root);
        if dir.json().exists() {
            return Err(IoError::format(root, "already holds a study"));
        }
        let rounds = root.join("rounds");
        std::fs::create_dir_all(&rounds).map_err(|e| IoError::io(&rounds, e))?;
        let log = RunLog {
            dir,
            settings,
            provenance,
            rows: Vec::new(),
        };
        log.write_json(false)?;
        Ok(log)
    }

    /// Records a finished round: its row, and the arm's history so far.
    pub fn record(&mut self, history: &[RoundRecord]) -> Result<(), IoError> {
        let Some(last) = history.last() else {
            return Ok(());
        };
        self.rows.push(row(&self.settings.loop_config, last));
        super::results::write_csv(&self.dir.csv(), &self.rows)?;
        let json = serde_json::to_string(history).expect("round records serialise");
        crate::io::atomic::write_bytes(&self.dir.rounds(last.arm, last.repeat), json.as_bytes())
    }

    /// Writes the summary and the curves once every repeat reached the budget.
    pub fn finish(&self) -> Result<(), IoError> {
        let summary = summarise(&self.rows);
        let title = plot::study_title(
            self.settings.loop_config.mode,
            &self.settings.arms,
            self.settings.repeats,
            self.settings.size,
        );
        plot::write_curves(
            &self.dir.curves(),
            &summary,
            self.settings.loop_config.mode,
            &title,
        )?;
        self.write_summary(true, Some(summary))
    }

    fn write_json(&self, finished: bool) -> Result<(), IoError> {
        self.write_summary(finished, None)
    }

    fn write_summary(
        &self,
        finished: bool,
        summary: Option<super::Summary>,
    ) -> Result<(), IoError> {
        let file = ResultsFile {
            config: serde_json::to_value(&self.settings).expect("settings serialise"),
            provenance: self.provenance.clone(),
            finished,
            summary,
        };
        let json = serde_json::to_string_pretty(&file).expect("results serialise");
        crate::io::atomic::write_bytes(&self.dir.json(), json.as_bytes())
    }
}
