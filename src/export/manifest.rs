//! `manifest.csv` and `manifest.json` of an export: one entry per sample with its origin,
//! the nearest real pool frame, its latent vector and 2-D position, round, loss and
//! gradient norm (docs/DESIGN.md §Export). The CSV is for spreadsheets (one `z_i` column per latent
//! dimension); the JSON holds the same entries plus the export's provenance.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ExportInfo, ExportSample};
use crate::io::IoError;
use crate::sampling::Arm;

pub const CSV_FILE: &str = "manifest.csv";
pub const JSON_FILE: &str = "manifest.json";
/// Colour previews of the stress maps.
pub const STRESS_PNG_DIR: &str = "stress_png";

/// Where an exported sample's pixels come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleOrigin {
    /// Decoded from its latent vector by the VAE (SI mode) and labelled by the FEA.
    Generated,
    /// A real pool frame (SNN mode, or a pool frame selected in the latent view).
    Real,
}

impl SampleOrigin {
    pub fn name(&self) -> &'static str {
        match self {
            SampleOrigin::Generated => "generated",
            SampleOrigin::Real => "real",
        }
    }
}

/// One exported sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// File stem under `images/`, `masks/`, `stress/` and `stress_png/`.
    pub id: String,
    pub origin: SampleOrigin,
    /// The pool frame's id when `origin` is real.
    pub pool_id: Option<String>,
    /// The real pool frame nearest to `latent` (for a pool frame: the nearest other one),
    /// and its Euclidean latent distance.
    pub nearest_real_id: String,
    pub nearest_distance: f64,
    /// The sample's latent vector: z' for a moved sample, the encoder mean for a pool frame.
    pub latent: Vec<f32>,
    /// The point it was moved from, for moved samples.
    pub latent_original: Option<Vec<f32>>,
    /// Position in the latent view (PCA of the pool's encoder means).
    pub projected: [f32; 2],
    pub arm: Option<Arm>,
    pub repeat: Option<usize>,
    /// The round the sample was generated in (moved samples) or joined the training set.
    pub round: Option<usize>,
    /// F's loss at this latent point against the original's label (kPa²): the quantity
    /// the gradient step climbs; for a pool frame, F's loss on it.
    pub loss_kpa2: Option<f64>,
    /// F's loss at the original point before the move (kPa²).
    pub loss_before_kpa2: Option<f64>,
    /// F's loss on the labelled new sample before training on it (kPa²).
    pub loss_after_kpa2: Option<f64>,
    /// Euclidean norm of the latent gradient of F's loss at the original point.
    pub gradient_norm: Option<f64>,
    /// 99th percentile of the FEA stress over solid pixels (kPa); `None` for a frame not
    /// annotated yet (a batch suggested for annotation).
    pub peak_stress_kpa: Option<f64>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportManifest {
    pub format: String,
    pub version: u32,
    pub sula_version: String,
    /// Image side in pixels.
    pub size: usize,
    pub pixel_mm: f64,
    pub pressure_kpa: f64,
    pub latent_dim: usize,
    pub source: serde_json::Value,
    pub samples: Vec<ManifestEntry>,
}

fn optional<T: std::fmt::Display>(value: &Option<T>) -> String {
    value.as_ref().map(T::to_string).unwrap_or_default()
}

impl ExportManifest {
    pub const FORMAT: &'static str = "sula-export";

    pub fn new(info: &ExportInfo, size: usize, samples: &[ExportSample]) -> ExportManifest {
        ExportManifest {
            format: Self::FORMAT.to_string(),
            version: 1,
            sula_version: env!("CARGO_PKG_VERSION").to_string(),
            size,
            pixel_mm: info.pixel_mm,
            pressure_kpa: info.pressure_kpa,
            latent_dim: samples.first().map_or(0, |s| s.entry.latent.len()),
            source: info.source.clone(),
            samples: samples.iter().map(|s| s.entry.clone()).collect(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the manifest serialises")
    }

    /// One header line, then one line per sample; `z_0 … z_{d-1}` hold the latent vector.
    pub fn to_csv(&self) -> String {
        let mut header = vec![
            "id",
            "origin",
            "pool_id",
            "nearest_real_id",
            "nearest_distance",
            "x",
            "y",
            "arm",
            "repeat",
            "round",
            "loss_kpa2",
            "loss_before_kpa2",
            "loss_after_kpa2",
            "gradient_norm",
            "peak_stress_kpa",
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
        header.extend((0..self.latent_dim).map(|i| format!("z_{i}")));
        let mut text = header.join(",");
        text.push('\n');
        for e in &self.samples {
            let mut fields = vec![
                e.id.clone(),
                e.origin.name().to_string(),
                e.pool_id.clone().unwrap_or_default(),
                e.nearest_real_id.clone(),
                e.nearest_distance.to_string(),
                e.projected[0].to_string(),
                e.projected[1].to_string(),
                e.arm.map(|a| a.name().to_string()).unwrap_or_default(),
                optional(&e.repeat),
                optional(&e.round),
                optional(&e.loss_kpa2),
                optional(&e.loss_before_kpa2),
                optional(&e.loss_after_kpa2),
                optional(&e.gradient_norm),
                optional(&e.peak_stress_kpa),
            ];
            fields.extend(e.latent.iter().map(f32::to_string));
            text.push_str(&fields.join(","));
            text.push('\n');
        }
        text
    }

    /// Reads `manifest.json` of the export folder `root`.
    pub fn read(root: &Path) -> Result<ExportManifest, IoError> {
        let path = root.join(JSON_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| IoError::io(&path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| IoError::format(&path, format!("is not a sula export manifest ({e})")))
    }
}
