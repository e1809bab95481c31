//! The sula dataset layout (SPEC §2.2): `dataset.json`, `images/`, `masks/`, `stress/`.

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
        let dir = self.root.join("masks");
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| IoError::io(&dir, e))? {
            let path = entry.map_err(|e| IoError::io(&dir, e))?.path();
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("png"))
                && let Some(stem) = path.file_stem()
            {
                ids.push(stem.to_string_lossy().into_owned());
            }
        }
        ids.sort();
        Ok(ids)
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
