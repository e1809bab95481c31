//! Export of hard samples for offline annotation (docs/DESIGN.md §Export): images, label maps, FEA stress
//! (`.npy` and a colour preview) and a manifest that says where each sample came from.
//! The folder is a sula-layout dataset, so `sula info` and every loader read it, and it
//! appears under its final name only when complete.
//!
//! [`collect`] turns round records (from a live study or a run folder on disk) into
//! [`ExportSample`]s; [`write_export`] writes them.

pub mod collect;
pub mod manifest;
pub mod run;

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::data::layout::{DatasetManifest, SulaWriter};
use crate::io::IoError;
use crate::labels::LabelMap;
use crate::render::{StressPreview, encode_rgb_png, stress_preview};
pub use manifest::{ExportManifest, ManifestEntry, SampleOrigin};

/// Why an export did not happen.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error("nothing to export: {0}")]
    Empty(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the export was cancelled; nothing was written")]
    Cancelled,
}

/// One sample to export: its manifest entry and its pixels.
#[derive(Debug, Clone)]
pub struct ExportSample {
    pub entry: ManifestEntry,
    pub image: Vec<u8>,
    pub labels: LabelMap,
    /// FEA stress in kPa (max principal), row-major.
    pub stress: Vec<f32>,
}

/// What the dataset and manifest record about the export as a whole.
#[derive(Debug, Clone)]
pub struct ExportInfo {
    pub pixel_mm: f64,
    pub pressure_kpa: f64,
    /// Where the samples came from (run folder or live study, mode, selection).
    pub source: serde_json::Value,
}

/// Whether a sample id can be a file stem everywhere: letters, digits, `_`, `-`, `.`.
fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn validate(samples: &[ExportSample]) -> Result<usize, ExportError> {
    let first = samples
        .first()
        .ok_or_else(|| ExportError::Empty("no sample was selected".to_string()))?;
    let (width, height) = (first.labels.width(), first.labels.height());
    let mut seen = std::collections::HashSet::new();
    for sample in samples {
        let id = &sample.entry.id;
        if !is_safe_id(id) {
            return Err(ExportError::Invalid(format!(
                "sample id {id:?} cannot be a file name"
            )));
        }
        if !seen.insert(id.as_str()) {
            return Err(ExportError::Invalid(format!(
                "sample id {id} appears twice"
            )));
        }
        let pixels = width * height;
        if sample.labels.width() != width
            || sample.labels.height() != height
            || sample.image.len() != pixels
            || sample.stress.len() != pixels
        {
            return Err(ExportError::Invalid(format!(
                "sample {id} is not {width}×{height} like the others"
            )));
        }
    }
    Ok(width)
}

fn write_sample(writer: &SulaWriter, sample: &ExportSample) -> Result<(), IoError> {
    let id = &sample.entry.id;
    writer.write_image_and_mask(id, &sample.image, &sample.labels)?;
    writer.write_stress(id, &sample.labels, &sample.stress)?;
    let preview = stress_preview(&StressPreview {
        stress: &sample.stress,
        labels: &sample.labels,
        title: &format!("{id}: max principal stress"),
    });
    writer.write(
        &format!("{}/{id}.png", manifest::STRESS_PNG_DIR),
        &encode_rgb_png(&preview),
    )
}

/// Writes `samples` to the new folder `out`: `images/`, `masks/`, `stress/`,
/// `stress_png/`, `manifest.csv`, `manifest.json` and `dataset.json`. An existing `out` is
/// refused. Everything goes to a hidden sibling folder first that is renamed to `out`
/// only at the end; on any failure (or when `before_sample` returns an error, which is
/// how callers cancel) that folder is removed and `out` does not exist.
pub fn write_export(
    out: &Path,
    samples: &[ExportSample],
    info: &ExportInfo,
    before_sample: &mut dyn FnMut(usize) -> Result<(), ExportError>,
) -> Result<PathBuf, ExportError> {
    let size = validate(samples)?;
    let writer = SulaWriter::create(out)?;
    let result = (|| {
        writer.create_dir(manifest::STRESS_PNG_DIR)?;
        for (k, sample) in samples.iter().enumerate() {
            before_sample(k)?;
            write_sample(&writer, sample)?;
        }
        let manifest = ExportManifest::new(info, size, samples);
        writer.write(manifest::CSV_FILE, manifest.to_csv().as_bytes())?;
        writer.write(manifest::JSON_FILE, manifest.to_json().as_bytes())?;
        Ok::<_, ExportError>(())
    })();
    if let Err(error) = result {
        writer.abandon();
        return Err(error);
    }
    let dataset = DatasetManifest {
        format: DatasetManifest::FORMAT.to_string(),
        version: 1,
        count: samples.len(),
        image_size: [size, size],
        pixel_mm: info.pixel_mm,
        provenance: serde_json::json!({
            "source": "sula export",
            "sula_version": env!("CARGO_PKG_VERSION"),
            "export": info.source,
        }),
        generator: None,
        stress: Some(serde_json::json!({
            "field": crate::fea::StressMeasure::MaxPrincipal,
            "unit": "kPa",
            "pressure_kpa": info.pressure_kpa,
        })),
    };
    Ok(writer.finish(&dataset)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::Dataset;
    use crate::data::phantom::{PhantomConfig, generate};
    use crate::fea::FeaParams;

    /// Phantom frames labelled by the FEA, as real-origin samples.
    fn samples(count: u64) -> (Vec<ExportSample>, ExportInfo) {
        let config = PhantomConfig::new(32);
        let fea = FeaParams {
            pixel_mm: config.pixel_mm(),
            ..FeaParams::default()
        };
        let samples = (0..count)
            .map(|i| {
                let frame = generate(&config, 3, i);
                let stress = crate::fea::stress_label(&frame.labels, &fea)
                    .expect("phantom frames are closed vessels");
                ExportSample {
                    entry: ManifestEntry {
                        id: format!("s{i}"),
                        origin: SampleOrigin::Real,
                        pool_id: Some(frame.meta.id.clone()),
                        nearest_real_id: frame.meta.id.clone(),
                        nearest_distance: 0.0,
                        latent: vec![i as f32, 1.0],
                        latent_original: None,
                        projected: [i as f32, 0.0],
                        arm: None,
                        repeat: None,
                        round: None,
                        loss_kpa2: None,
                        loss_before_kpa2: None,
                        loss_after_kpa2: None,
                        gradient_norm: None,
                        peak_stress_kpa: Some(crate::metrics::peak_stress(&stress, &frame.labels)),
                    },
                    image: frame.image,
                    labels: frame.labels,
                    stress,
                }
            })
            .collect();
        let info = ExportInfo {
            pixel_mm: fea.pixel_mm,
            pressure_kpa: fea.pressure_kpa,
            source: serde_json::json!({ "test": true }),
        };
        (samples, info)
    }

    fn keep_going(_: usize) -> Result<(), ExportError> {
        Ok(())
    }

    #[test]
    fn export_reads_back_as_a_dataset_with_the_same_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("export");
        let (samples, info) = samples(3);
        write_export(&out, &samples, &info, &mut keep_going).unwrap();
        let dataset = Dataset::open(&out, None).unwrap();
        assert_eq!(dataset.frames.len(), 3);
        assert!((dataset.pixel_mm - info.pixel_mm).abs() < 1e-12);
        for sample in &samples {
            let index = dataset
                .frames
                .iter()
                .position(|f| f.id == sample.entry.id)
                .unwrap();
            let frame = dataset.load(index, None).unwrap();
            assert_eq!(frame.image, sample.image);
            assert_eq!(frame.labels.as_ref(), Some(&sample.labels));
            assert_eq!(frame.stress.as_ref(), Some(&sample.stress));
            assert!(
                out.join(manifest::STRESS_PNG_DIR)
                    .join(format!("{}.png", sample.entry.id))
                    .is_file()
            );
        }
        let manifest = ExportManifest::read(&out).unwrap();
        assert_eq!(manifest.samples.len(), 3);
        assert_eq!(manifest.latent_dim, 2);
        let csv = std::fs::read_to_string(out.join(manifest::CSV_FILE)).unwrap();
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.lines().next().unwrap().ends_with("z_0,z_1"));
    }

    #[test]
    fn a_failure_midway_leaves_no_folder_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("export");
        let (samples, info) = samples(4);
        let error = write_export(&out, &samples, &info, &mut |k| {
            if k == 2 {
                Err(ExportError::Invalid("injected failure".to_string()))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert!(error.to_string().contains("injected failure"));
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_existing_folder_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("export");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("notes.txt"), b"mine").unwrap();
        let (samples, info) = samples(1);
        let error = write_export(&out, &samples, &info, &mut keep_going).unwrap_err();
        assert!(error.to_string().contains("already exists"), "{error}");
        assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine");
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
    }

    #[test]
    fn bad_selections_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("export");
        let (mut samples, info) = samples(2);
        let empty = write_export(&out, &[], &info, &mut keep_going).unwrap_err();
        assert!(empty.to_string().starts_with("nothing to export"));
        samples[1].entry.id = samples[0].entry.id.clone();
        let twice = write_export(&out, &samples, &info, &mut keep_going).unwrap_err();
        assert!(twice.to_string().contains("appears twice"), "{twice}");
        samples[1].entry.id = "../escape".to_string();
        let unsafe_id = write_export(&out, &samples, &info, &mut keep_going).unwrap_err();
        assert!(unsafe_id.to_string().contains("cannot be a file name"));
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
