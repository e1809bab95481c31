//! The labelling tool (docs/DESIGN.md §FEA): 2D plane-strain plaque structural stress on the pixel grid.
//!
//! One bilinear square element per solid pixel (labels 2–4), locking-free through selective
//! reduced integration, uniform luminal pressure on every solid edge facing a lumen pixel,
//! traction-free elsewhere. Rigid-body motion is removed by inertia relief plus three
//! statically determinate pins per body, so the stress field does not depend on which
//! nodes are pinned. Solved with faer's sparse Cholesky; the symbolic factorisation is
//! cached per sparsity pattern.

mod element;
mod materials;
mod pattern;
mod solver;
mod topology;

pub use materials::{Material, Materials};
pub use solver::FeaSolver;

use thiserror::Error;

use crate::labels::LabelMap;

/// 110 mmHg in kPa, the default luminal pressure.
pub const DEFAULT_PRESSURE_KPA: f64 = 110.0 * 0.133_322_387_415;

/// Why a label map could not be turned into a stress map.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FeaError {
    #[error("the label map has no solid tissue (labels 2–4) to mesh")]
    NoSolid,
    #[error("the label map has no lumen (label 1), so no pressure acts on the wall")]
    NoLumen,
    #[error("no solid pixel touches the lumen, so no pressure acts on the wall")]
    NoLoadedWall,
    #[error("invalid material: {0}")]
    InvalidMaterial(String),
    #[error("invalid load: {0}")]
    InvalidLoad(String),
    #[error("sparse solver failed: {0}")]
    Solver(String),
    #[error("the solution is not finite (numerical breakdown)")]
    NonFinite,
}

/// Which scalar stress a map reports.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum StressMeasure {
    /// Maximum principal in-plane stress (the default label).
    #[default]
    MaxPrincipal,
    /// Von Mises stress with σzz = ν(σxx + σyy).
    VonMises,
}

impl StressMeasure {
    /// Human name for captions and colour bars.
    pub fn title(self) -> &'static str {
        match self {
            StressMeasure::MaxPrincipal => "max principal stress",
            StressMeasure::VonMises => "von Mises stress",
        }
    }
}

/// Which nodes pin the rigid-body motion. The answer must not depend on it; the
/// choice exists so tests (and sceptical users) can check that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PinChoice {
    /// Anchor at each body's first node.
    #[default]
    Auto,
    /// Anchor at each body's k-th node (modulo its node count).
    Offset(usize),
}

/// Everything besides the label map that defines one FEA problem.
#[derive(Debug, Clone, PartialEq)]
pub struct FeaParams {
    pub materials: Materials,
    /// Luminal pressure in kPa.
    pub pressure_kpa: f64,
    /// Pixel side in mm. In-plane stresses of this linear problem do not depend on it;
    /// displacements scale with it.
    pub pixel_mm: f64,
    pub pins: PinChoice,
}

impl Default for FeaParams {
    fn default() -> Self {
        FeaParams {
            materials: Materials::default(),
            pressure_kpa: DEFAULT_PRESSURE_KPA,
            pixel_mm: 0.0625,
            pins: PinChoice::Auto,
        }
    }
}

impl FeaParams {
    /// Rejects non-physical inputs before any work is done.
    pub fn validate(&self) -> Result<(), FeaError> {
        self.materials.validate()?;
        if !self.pressure_kpa.is_finite() {
            return Err(FeaError::InvalidLoad(format!(
                "pressure must be a finite number of kPa, got {}",
                self.pressure_kpa
            )));
        }
        if !(self.pixel_mm.is_finite() && self.pixel_mm > 0.0) {
            return Err(FeaError::InvalidLoad(format!(
                "pixel size must be a positive number of mm, got {}",
                self.pixel_mm
            )));
        }
        Ok(())
    }
}

/// Wall-clock time of each phase of one solve, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FeaTimings {
    /// Topology, mesh numbering, sparsity pattern and symbolic factorisation (0 on reuse).
    pub setup_ms: f64,
    pub assemble_ms: f64,
    pub factor_ms: f64,
    pub solve_ms: f64,
    pub stress_ms: f64,
}

impl FeaTimings {
    pub fn total_ms(&self) -> f64 {
        self.setup_ms + self.assemble_ms + self.factor_ms + self.solve_ms + self.stress_ms
    }
}

/// Per-pixel stress tensor (kPa, row-major, 0 outside the meshed solid) and diagnostics.
#[derive(Debug, Clone)]
pub struct StressField {
    pub width: usize,
    pub height: usize,
    pub sxx: Vec<f32>,
    pub syy: Vec<f32>,
    pub sxy: Vec<f32>,
    pub szz: Vec<f32>,
    /// Largest nodal displacement magnitude, in mm.
    pub max_displacement_mm: f64,
    /// Net force of the pressure load relative to its total magnitude: 0 when every
    /// loaded body encloses the lumen; larger when a wall does not close around it (the
    /// imbalance is then carried by inertia relief).
    pub load_imbalance: f64,
    /// Number of DOFs in the solved system.
    pub dofs: usize,
    pub timings: FeaTimings,
}

impl StressField {
    /// The scalar map of one measure (kPa, 0 outside the solid).
    pub fn measure(&self, measure: StressMeasure) -> Vec<f32> {
        (0..self.sxx.len())
            .map(|i| {
                let (sx, sy, txy, sz) = (
                    f64::from(self.sxx[i]),
                    f64::from(self.syy[i]),
                    f64::from(self.sxy[i]),
                    f64::from(self.szz[i]),
                );
                let value = match measure {
                    StressMeasure::MaxPrincipal => {
                        0.5 * (sx + sy) + (0.25 * (sx - sy).powi(2) + txy * txy).sqrt()
                    }
                    StressMeasure::VonMises => (0.5
                        * ((sx - sy).powi(2) + (sy - sz).powi(2) + (sz - sx).powi(2))
                        + 3.0 * txy * txy)
                        .sqrt(),
                };
                value as f32
            })
            .collect()
    }
}

/// The FEA label of one tissue map, as the loop and the annotation round trip use it:
/// max-principal stress in kPa, or `None` when the map is not a closed vessel the solver
/// can load (no solid, or a lumen open to the outside so the pressure does not balance).
pub fn stress_label(labels: &LabelMap, params: &FeaParams) -> Option<Vec<f32>> {
    if labels.class_counts()[2..].iter().all(|&c| c == 0) {
        return None;
    }
    let field = solve(labels, params).ok()?;
    (field.load_imbalance < 1e-6).then(|| field.measure(StressMeasure::MaxPrincipal))
}

/// Solves one label map with a fresh solver (no pattern reuse across calls).
pub fn solve(map: &LabelMap, params: &FeaParams) -> Result<StressField, FeaError> {
    FeaSolver::default().solve(map, params)
}
