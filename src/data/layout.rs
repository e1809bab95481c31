//! The sula dataset layout (docs/DESIGN.md §Datasets): `dataset.json`, `images/`, `masks/`, `stress/`.

use std::path::{Path, PathBuf};

use crate::io::IoError;

/// Paths of one sula-layout dataset folder.
#[derive(Debug, Clone)]
pub struct SulaLayout {
    root: PathBuf,
}

impl SulaLayout {
    /// Opens a folder that has a `masks/` subfolder.
    pub fn open(root: &Path) -> Result<SulaLayout, IoError> {
        if !root.is_dir() {
            return Err(IoError::format(root, "is not a folder"));
        }
        if !root.join("masks").is_dir() {
            return Err(IoError::format(
                root,
                "is not a sula dataset: it has no masks/ folder",
            ));
        }
        Ok(SulaLayout {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Frame ids (file stems of `masks/*.png`), sorted.
    pub fn mask_ids(&self) -> Result<Vec<String>, IoError> {
        png_stems(&self.root.join("masks"))
    }

    pub fn mask_path(&self, id: &str) -> PathBuf {
        self.root.join("masks").join(format!("{id}.png"))
    }

    pub fn image_path(&self, id: &str) -> PathBuf {
        self.root.join("images").join(format!("{id}.png"))
    }

    pub fn stress_dir(&self) -> PathBuf {
        self.root.join("stress")
    }

    pub fn stress_path(&self, id: &str) -> PathBuf {
        self.stress_dir().join(format!("{id}.npy"))
    }

    /// Pixel spacing recorded in `dataset.json` (`pixel_mm`), if any.
    pub fn pixel_mm(&self) -> Result<Option<f64>, IoError> {
        let path = self.root.join("dataset.json");
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| IoError::io(&path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| IoError::format(&path, format!("invalid JSON ({e})")))?;
        match value.get("pixel_mm") {
            None => Ok(None),
            Some(v) => v.as_f64().filter(|v| *v > 0.0).map(Some).ok_or_else(|| {
                IoError::format(
                    &path,
                    format!("pixel_mm must be a positive number, got {v}"),
                )
            }),
        }
    }
}

/// Sorted file stems of the `*.png` files in `dir` (none if `dir` does not exist).
pub fn png_stems(dir: &Path) -> Result<Vec<String>, IoError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut stems = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| IoError::io(dir, e))? {
        let path = entry.map_err(|e| IoError::io(dir, e))?.path();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"))
            && let Some(stem) = path.file_stem()
        {
            stems.push(stem.to_string_lossy().into_owned());
        }
    }
    stems.sort();
    Ok(stems)
}

/// `dataset.json` of the sula layout.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DatasetManifest {
    pub format: String,
    pub version: u32,
    pub count: usize,
    /// Image size as [width, height] in pixels.
    pub image_size: [usize; 2],
    pub pixel_mm: f64,
    /// Where the frames came from (tool, version, command line).
    pub provenance: serde_json::Value,
    /// Generator parameters when synthetic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<serde_json::Value>,
    /// How `stress/` was computed, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stress: Option<serde_json::Value>,
}

impl DatasetManifest {
    pub const FORMAT: &'static str = "sula-dataset";
}

/// Writes a sula-layout dataset into a hidden sibling folder and moves it under its final
/// name only in [`SulaWriter::finish`], so an interrupted write leaves no dataset behind.
#[derive(Debug)]
pub struct SulaWriter {
    staging: PathBuf,
    target: PathBuf,
}

impl SulaWriter {
    /// Refuses an existing target; creates the staging folder with its subfolders.
    pub fn create(target: &Path) -> Result<SulaWriter, IoError> {
        if target.exists() {
            return Err(IoError::format(
                target,
                "already exists; choose a new folder or remove it first",
            ));
        }
        let name = target
            .file_name()
            .ok_or_else(|| IoError::format(target, "is not a folder name"))?
            .to_string_lossy()
            .into_owned();
        let staging = target.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| IoError::io(&staging, e))?;
        }
        for sub in ["images", "masks", "meta", "stress"] {
            let dir = staging.join(sub);
            std::fs::create_dir_all(&dir).map_err(|e| IoError::io(&dir, e))?;
        }
        Ok(SulaWriter {
            staging,
            target: target.to_path_buf(),
        })
    }

    /// Writes one file of the dataset. No temporary file or sync per file: the whole
    /// staging folder is the unit that appears atomically in [`SulaWriter::finish`].
    pub fn write(&self, relative: &str, bytes: &[u8]) -> Result<(), IoError> {
        let path = self.staging.join(relative);
        std::fs::write(&path, bytes).map_err(|e| IoError::io(&path, e))
    }

    /// Writes a frame's image (8-bit grey) and label map as `images/<id>.png` and
    /// `masks/<id>.png`.
    pub fn write_image_and_mask(
        &self,
        id: &str,
        image: &[u8],
        labels: &crate::labels::LabelMap,
    ) -> Result<(), IoError> {
        let (w, h) = (labels.width(), labels.height());
        self.write(
            &format!("images/{id}.png"),
            &super::mask::encode_grey_png(w, h, image),
        )?;
        self.write(
            &format!("masks/{id}.png"),
            &super::mask::encode_grey_png(w, h, labels.values()),
        )
    }

    /// Writes a frame's stress map (kPa, the label map's size) as `stress/<id>.npy`.
    pub fn write_stress(
        &self,
        id: &str,
        labels: &crate::labels::LabelMap,
        stress: &[f32],
    ) -> Result<(), IoError> {
        self.write(
            &format!("stress/{id}.npy"),
            &crate::io::npy::encode_f32(labels.height(), labels.width(), stress),
        )
    }

    /// Adds a subfolder beyond the standard ones (dropped again if it stays empty).
    pub fn create_dir(&self, relative: &str) -> Result<(), IoError> {
        let dir = self.staging.join(relative);
        std::fs::create_dir_all(&dir).map_err(|e| IoError::io(&dir, e))
    }

    /// Writes `dataset.json`, drops empty subfolders, and moves the folder into place; on
    /// failure the staging folder is removed and nothing appears under the final name.
    pub fn finish(self, manifest: &DatasetManifest) -> Result<PathBuf, IoError> {
        let result = self.publish(manifest);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
        result
    }

    fn publish(&self, manifest: &DatasetManifest) -> Result<PathBuf, IoError> {
        let json = serde_json::to_string_pretty(manifest).expect("manifest serialises");
        crate::io::atomic::write_bytes(&self.staging.join("dataset.json"), json.as_bytes())?;
        for entry in std::fs::read_dir(&self.staging).map_err(|e| IoError::io(&self.staging, e))? {
            let path = entry.map_err(|e| IoError::io(&self.staging, e))?.path();
            if path.is_dir() && std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_none()) {
                std::fs::remove_dir(&path).map_err(|e| IoError::io(&path, e))?;
            }
        }
        if self.target.exists() {
            return Err(IoError::format(
                &self.target,
                "appeared while it was being written; nothing was replaced",
            ));
        }
        std::fs::rename(&self.staging, &self.target).map_err(|e| IoError::io(&self.target, e))?;
        Ok(self.target.clone())
    }

    /// Removes the staging folder (after a failure).
    pub fn abandon(self) {
        let _ = std::fs::remove_dir_all(&self.staging);
    }
}
