//! What crosses between the UI thread and the worker: plain data only, never tensors.

use std::path::PathBuf;

use crate::experiment::Row;
use crate::export::collect::MovedRef;
use crate::metrics::FrameMetrics;
use crate::sampling::{Arm, Generator, LoopConfig};

/// A request from the UI.
#[derive(Debug, Clone)]
pub enum Command {
    /// Generate the seeded phantom as the pool (and an independent test set).
    LoadPhantom {
        pool: usize,
        test: usize,
        seed: u64,
        size: usize,
    },
    /// Open a dataset folder (a held-out fifth becomes the test set).
    OpenFolder {
        path: PathBuf,
        size: usize,
        pixel_mm: Option<f64>,
    },
    /// Use the VAE shipped in the binary.
    LoadDefaultVae,
    TrainVae {
        epochs: usize,
        latent_dim: usize,
        seed: u64,
    },
    LoadVae(PathBuf),
    SaveVae(PathBuf),
    /// Start a study with `repeats` repeats: the adaptive arm and the comparison `arms`
    /// (random, and any pool strategies); nothing runs until Step or Run. With `run_dir`,
    /// the study is saved there round by round (settings, VAE, records) so it can be
    /// exported or plotted later.
    Start {
        config: LoopConfig,
        arms: Vec<Arm>,
        repeats: usize,
        run_dir: Option<PathBuf>,
    },
    /// One round of every arm.
    Step,
    /// Rounds until every repeat reaches the budget.
    Run,
    Pause,
    Resume,
    Cancel,
    /// Decode a latent point as the generator would and label it with the FEA.
    Decode {
        z: Vec<f32>,
        generator: Generator,
    },
    /// Write the chosen samples to the new folder `out` (docs/DESIGN.md §Export).
    Export {
        selection: ExportSelection,
        out: PathBuf,
    },
    /// Start a project on a DICOM pullback (or dataset folder) at `out`: train an
    /// image-only VAE on its frames, then open it.
    NewProject {
        pool: PathBuf,
        out: PathBuf,
        size: usize,
        epochs: usize,
    },
    /// Open an existing project folder.
    OpenProject(PathBuf),
    /// Write the project's next batch of `count` frames to annotate to the new folder `out`.
    Suggest {
        count: usize,
        out: PathBuf,
    },
    /// Import an annotated batch into the project and train F for a round.
    ImportAnnotations {
        batch: PathBuf,
        epochs: usize,
    },
    /// Retrain the open project's image-only VAE on its pool and switch to it.
    RetrainProjectVae {
        epochs: usize,
    },
    /// Fault injection for tests and bug reports: the worker panics while handling it.
    Crash,
}

/// One round of a project: what was suggested and what came back.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRound {
    pub round: usize,
    pub strategy: String,
    pub suggested: usize,
    /// Frames that came back annotated (`None` while the batch is out).
    pub annotated: Option<usize>,
    /// Annotated frames in all after this round's import.
    pub total_annotated: Option<usize>,
    /// F's validation MSE (kPa²) after the import, when the project has a validation split.
    pub validation_mse: Option<f64>,
    /// F's MSE (kPa²) on the batch's frames before it trained on them (from round 1 on).
    pub new_batch_mse: Option<f64>,
    pub batch: PathBuf,
}

/// The open project, for the project panel and the curves.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectView {
    pub root: PathBuf,
    pub frames: usize,
    pub annotated: usize,
    pub pending: usize,
    pub rounds: Vec<ProjectRound>,
    /// Where each pool frame stands, in the order of the latent view's points.
    pub states: Vec<FrameState>,
    /// Every gradient-SNN suggestion: annotated frame → z' → the frame it snapped to.
    pub arrows: Vec<ProjectArrow>,
    /// The frames out for annotation with F's predicted tissue and stress (no FEA yet).
    pub suggested_samples: Vec<SampleView>,
    /// The last import's frames: image, label map, FEA stress and F's prediction.
    pub imported_samples: Vec<SampleView>,
}

/// Where a pool frame stands in the annotation loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameState {
    /// Neither annotated nor out in a batch.
    Pool,
    /// Out in a batch, waiting for its annotation.
    Suggested,
    Annotated,
}

impl FrameState {
    pub fn name(self) -> &'static str {
        match self {
            FrameState::Pool => "pool",
            FrameState::Suggested => "suggested",
            FrameState::Annotated => "annotated",
        }
    }
}

/// One gradient-SNN suggestion of a project in the latent view: the annotated frame's
/// embedding, its moved point z', and the pool frame z' snapped to.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectArrow {
    pub from: [f32; 2],
    pub moved: [f32; 2],
    pub snapped: [f32; 2],
    pub round: usize,
    /// The pool frame it snapped to.
    pub frame: String,
}

/// Which samples an export takes.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportSelection {
    /// Picked in the latent view: pool frames (indices into the latent view's points)
    /// and gradient-moved samples.
    Picked {
        pool: Vec<usize>,
        moved: Vec<MovedRef>,
    },
    /// Every moved sample that joined the training set in the last `n` rounds of the
    /// current repeat.
    LastRounds(usize),
}

/// A decoded, labelled or predicted frame, ready to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleView {
    pub caption: String,
    pub size: usize,
    pub image: Vec<u8>,
    pub labels: Vec<u8>,
    /// FEA stress (kPa); `None` when the FEA could not label the map.
    pub stress: Option<Vec<f32>>,
    /// F's prediction (kPa), when a model exists.
    pub prediction: Option<Vec<f32>>,
}

/// Plaque type of a pool frame, for colouring the latent view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaqueKind {
    Fibrous,
    Lipid,
    Calcified,
    Mixed,
    /// No label map (a real pullback's frame).
    Unannotated,
}

impl PlaqueKind {
    pub fn of(class_counts: [usize; 5]) -> PlaqueKind {
        match (class_counts[3] > 0, class_counts[4] > 0) {
            (false, false) => PlaqueKind::Fibrous,
            (true, false) => PlaqueKind::Lipid,
            (false, true) => PlaqueKind::Calcified,
            (true, true) => PlaqueKind::Mixed,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            PlaqueKind::Fibrous => "fibrous only",
            PlaqueKind::Lipid => "lipid",
            PlaqueKind::Calcified => "calcium",
            PlaqueKind::Mixed => "lipid + calcium",
            PlaqueKind::Unannotated => "not annotated",
        }
    }
}

/// One pool frame in the latent view.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolPoint {
    pub id: String,
    pub xy: [f32; 2],
    pub latent: Vec<f32>,
    pub plaque: PlaqueKind,
    /// 99th-percentile FEA stress (kPa), once the frame has been labelled.
    pub peak_kpa: Option<f32>,
    pub thumbnail: Vec<u8>,
}

/// A gradient step drawn as an arrow.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrow {
    pub from: [f32; 2],
    pub to: [f32; 2],
    pub loss_before: f64,
    pub loss_moved: f64,
    pub round: usize,
    /// Which moved sample this is (for selecting it for export).
    pub at: MovedRef,
    /// Whether a sample joined the training set from z' (false: the FEA could not label
    /// the decoded map).
    pub joined: bool,
}

/// What the worker reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// The dataset: summary lines and its frames for the latent view (empty until a VAE
    /// embeds them).
    Data {
        name: String,
        summary: Vec<String>,
        size: usize,
        pixel_mm: f64,
    },
    /// The VAE's embedding of the pool, projected by PCA.
    Latent {
        points: Vec<PoolPoint>,
        mean: Vec<f32>,
        axes: [Vec<f32>; 2],
    },
    VaeProgress {
        epoch: usize,
        epochs: usize,
        loss: f64,
        fraction: f64,
    },
    /// A VAE is ready: epoch losses (empty when loaded) and reconstructions.
    VaeReady {
        origin: String,
        epoch_losses: Vec<f64>,
        reconstructions: Vec<(SampleView, SampleView)>,
    },
    /// Training progress of the current round.
    Progress {
        what: String,
        fraction: f64,
        eta_s: Option<f64>,
    },
    /// A round finished in one arm.
    Round {
        arm: Arm,
        repeat: usize,
        round: usize,
        size: usize,
        metrics: FrameMetrics,
        epoch_losses: Vec<f64>,
        row: Row,
        /// Training-set members' 2-D positions.
        training: Vec<[f32; 2]>,
        /// The pool frames this arm has chosen so far in this repeat, with the round each
        /// joined in (pool index, round).
        chosen: Vec<(usize, usize)>,
        arrows: Vec<Arrow>,
        /// (original, moved) pairs of this round, the first few.
        samples: Vec<(SampleView, SampleView)>,
        caption: String,
    },
    Decoded {
        at: [f32; 2],
        sample: SampleView,
    },
    /// Saved a file.
    Saved(PathBuf),
    /// The study is being saved to this run folder.
    RunFolder(PathBuf),
    /// An export finished.
    Exported {
        path: PathBuf,
        count: usize,
        /// Selected samples the FEA could not label, left out.
        skipped: usize,
    },
    /// The worker has nothing running.
    Idle {
        finished: bool,
    },
    Paused,
    /// The open project changed (opened, suggested, imported).
    Project(ProjectView),
    Error(String),
}
