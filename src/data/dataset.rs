//! One `Dataset` type over the folder layouts sula reads (SPEC §2.2): the sula layout and
//! the MICCAI 2011 IVUS challenge layout (contour text files rasterised to label maps).

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use super::layout::{DatasetManifest, SulaLayout, png_stems};
use super::mask::read_mask;
use crate::io::{IoError, npy};
use crate::labels::{LabelMap, Tissue};

/// Pixel spacing assumed for MICCAI 2011 frames (not stored in the files): 10 mm across 384 px.
pub const MICCAI_DEFAULT_PIXEL_MM: f64 = 10.0 / 384.0;

/// Which folder layout a dataset uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutKind {
    Sula,
    Miccai2011,
}

impl std::fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LayoutKind::Sula => "sula",
            LayoutKind::Miccai2011 => "MICCAI 2011 IVUS challenge",
        })
    }
}

/// Where a frame's label map comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum MaskSource {
    Png(PathBuf),
    Contours {
        lumen: PathBuf,
        media: PathBuf,
    },
    /// Unannotated frame.
    Missing,
}

/// One frame's files.
#[derive(Debug, Clone)]
pub struct FrameEntry {
    pub id: String,
    pub image: PathBuf,
    pub mask: MaskSource,
    pub stress: Option<PathBuf>,
}

/// A frame read from disk, resampled to the working resolution if asked.
#[derive(Debug, Clone)]
pub struct LoadedFrame {
    pub id: String,
    pub width: usize,
    pub height: usize,
    pub image: Vec<u8>,
    pub labels: Option<LabelMap>,
    pub stress: Option<Vec<f32>>,
    pub pixel_mm: f64,
}

/// Where the pixel spacing came from, for people reading `sula info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpacingSource {
    Manifest,
    Option,
    Default,
}

/// A dataset folder: its layout, frames and pixel spacing.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub kind: LayoutKind,
    pub root: PathBuf,
    pub frames: Vec<FrameEntry>,
    pub pixel_mm: f64,
    pub spacing_source: SpacingSource,
    pub manifest: Option<DatasetManifest>,
}

impl Dataset {
    /// Detects the layout of `root` and lists its frames; `pixel_mm` overrides the spacing.
    pub fn open(root: &Path, pixel_mm: Option<f64>) -> Result<Dataset, IoError> {
        if !root.is_dir() {
            return Err(IoError::format(root, "is not a folder"));
        }
        if let Some(mm) = pixel_mm
            && !(mm.is_finite() && mm > 0.0)
        {
            return Err(IoError::format(
                root,
                format!("pixel spacing must be positive, got {mm}"),
            ));
        }
        let mut dataset = if root.join("masks").is_dir() || root.join("images").is_dir() {
            open_sula(root)?
        } else {
            open_miccai(root)?
        };
        if let Some(mm) = pixel_mm {
            dataset.pixel_mm = mm;
            dataset.spacing_source = SpacingSource::Option;
        }
        Ok(dataset)
    }

    /// Frames with a label map.
    pub fn annotated(&self) -> usize {
        self.frames
            .iter()
            .filter(|f| f.mask != MaskSource::Missing)
            .count()
    }

    /// Reads frame `index`; with `working_size`, resamples to that square size (image
    /// with a triangle filter, labels and stress with nearest neighbour).
    pub fn load(&self, index: usize, working_size: Option<usize>) -> Result<LoadedFrame, IoError> {
        let entry = &self.frames[index];
        let bytes = std::fs::read(&entry.image).map_err(|e| IoError::io(&entry.image, e))?;
        let image = image::load_from_memory(&bytes)
            .map_err(|e| IoError::format(&entry.image, format!("not a readable image ({e})")))?
            .to_luma8();
        let (width, height) = (image.width() as usize, image.height() as usize);
        let labels = match &entry.mask {
            MaskSource::Png(path) => Some(read_mask(path)?),
            MaskSource::Contours { lumen, media } => {
                Some(rasterise_contours(lumen, media, width, height)?)
            }
            MaskSource::Missing => None,
        };
        if let (Some(labels), MaskSource::Png(path)) = (&labels, &entry.mask)
            && (labels.width(), labels.height()) != (width, height)
        {
            return Err(IoError::format(
                path,
                format!(
                    "mask is {}×{} but its image {} is {width}×{height}",
                    labels.width(),
                    labels.height(),
                    entry.image.display()
                ),
            ));
        }
        let stress = match &entry.stress {
            Some(path) => {
                let array = npy::read_f32(path)?;
                if (array.width, array.height) != (width, height) {
                    return Err(IoError::format(
                        path,
                        format!(
                            "stress map is {}×{} but the image is {width}×{height}",
                            array.width, array.height
                        ),
                    ));
                }
                Some(array.data)
            }
            None => None,
        };
        let mut frame = LoadedFrame {
            id: entry.id.clone(),
            width,
            height,
            image: image.into_raw(),
            labels,
            stress,
            pixel_mm: self.pixel_mm,
        };
        if let Some(size) = working_size
            && (size, size) != (width, height)
        {
            frame = resample(frame, size);
        }
        Ok(frame)
    }
}

fn resample(frame: LoadedFrame, size: usize) -> LoadedFrame {
    let grey = image::GrayImage::from_raw(frame.width as u32, frame.height as u32, frame.image)
        .expect("pixel count matches");
    let image =
        image::imageops::resize(&grey, size as u32, size as u32, FilterType::Triangle).into_raw();
    let nearest = |row: usize, col: usize| {
        let r = ((row as f64 + 0.5) * frame.height as f64 / size as f64) as usize;
        let c = ((col as f64 + 0.5) * frame.width as f64 / size as f64) as usize;
        r.min(frame.height - 1) * frame.width + c.min(frame.width - 1)
    };
    let labels = frame.labels.map(|l| {
        LabelMap::from_fn(size, size, |row, col| {
            Tissue::from_value(l.values()[nearest(row, col)]).expect("valid label")
        })
    });
    let stress = frame.stress.map(|s| {
        (0..size * size)
            .map(|i| s[nearest(i / size, i % size)])
            .collect()
    });
    LoadedFrame {
        id: frame.id,
        width: size,
        height: size,
        image,
        labels,
        stress,
        pixel_mm: frame.pixel_mm * frame.width as f64 / size as f64,
    }
}

fn open_sula(root: &Path) -> Result<Dataset, IoError> {
    let layout = SulaLayout::open(root)?;
    let manifest_path = root.join("dataset.json");
    let manifest: Option<DatasetManifest> =
        if manifest_path.exists() {
            let text = std::fs::read_to_string(&manifest_path)
                .map_err(|e| IoError::io(&manifest_path, e))?;
            Some(serde_json::from_str(&text).map_err(|e| {
                IoError::format(&manifest_path, format!("invalid dataset.json ({e})"))
            })?)
        } else {
            None
        };
    let masks = layout.mask_ids()?;
    let images = png_stems(&root.join("images"))?;
    if let Some(id) = images.iter().find(|id| masks.binary_search(id).is_err()) {
        return Err(IoError::format(
            &layout.image_path(id),
            format!(
                "has no label map: expected {}",
                layout.mask_path(id).display()
            ),
        ));
    }
    if let Some(id) = masks.iter().find(|id| images.binary_search(id).is_err()) {
        return Err(IoError::format(
            &layout.mask_path(id),
            format!("has no image: expected {}", layout.image_path(id).display()),
        ));
    }
    if images.is_empty() {
        return Err(IoError::format(
            root,
            "has no frames: images/ and masks/ hold no PNG files",
        ));
    }
    let frames = images
        .iter()
        .map(|id| FrameEntry {
            id: id.clone(),
            image: layout.image_path(id),
            mask: MaskSource::Png(layout.mask_path(id)),
            stress: Some(layout.stress_path(id)).filter(|p| p.exists()),
        })
        .collect();
    let (pixel_mm, spacing_source) = match &manifest {
        Some(m) if m.pixel_mm > 0.0 => (m.pixel_mm, SpacingSource::Manifest),
        _ => (MICCAI_DEFAULT_PIXEL_MM, SpacingSource::Default),
    };
    Ok(Dataset {
        kind: LayoutKind::Sula,
        root: root.to_path_buf(),
        frames,
        pixel_mm,
        spacing_source,
        manifest,
    })
}

/// Finds `DCM` folders below `root` (a few levels deep), each with `LABELS*` siblings.
fn open_miccai(root: &Path) -> Result<Dataset, IoError> {
    let mut dcm_dirs = Vec::new();
    find_dcm(root, 0, &mut dcm_dirs)?;
    dcm_dirs.sort();
    if dcm_dirs.is_empty() {
        return Err(IoError::format(
            root,
            "is not a dataset sula can read: no images/ and masks/ (sula layout) and no DCM/ folder (MICCAI 2011 layout)",
        ));
    }
    let mut frames = Vec::new();
    for dcm in &dcm_dirs {
        let parent = dcm.parent().unwrap_or(root);
        let mut label_dirs: Vec<PathBuf> = std::fs::read_dir(parent)
            .map_err(|e| IoError::io(parent, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().to_uppercase().starts_with("LABELS"))
            })
            .collect();
        label_dirs.sort();
        let prefix = parent
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        for stem in png_stems(dcm)? {
            let mask = label_dirs
                .iter()
                .map(|d| {
                    (
                        d.join(format!("lum_{stem}.txt")),
                        d.join(format!("med_{stem}.txt")),
                    )
                })
                .find(|(l, m)| l.exists() && m.exists())
                .map_or(MaskSource::Missing, |(lumen, media)| MaskSource::Contours {
                    lumen,
                    media,
                });
            frames.push(FrameEntry {
                id: if prefix.is_empty() {
                    stem.clone()
                } else {
                    format!("{prefix}/{stem}")
                },
                image: dcm.join(format!("{stem}.png")),
                mask,
                stress: None,
            });
        }
    }
    if frames.is_empty() {
        return Err(IoError::format(&dcm_dirs[0], "holds no PNG frames"));
    }
    Ok(Dataset {
        kind: LayoutKind::Miccai2011,
        root: root.to_path_buf(),
        frames,
        pixel_mm: MICCAI_DEFAULT_PIXEL_MM,
        spacing_source: SpacingSource::Default,
        manifest: None,
    })
}

fn find_dcm(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) -> Result<(), IoError> {
    if depth > 5 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(|e| IoError::io(dir, e))? {
        let path = entry.map_err(|e| IoError::io(dir, e))?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "DCM") {
                found.push(path);
            } else {
                find_dcm(&path, depth + 1, found)?;
            }
        }
    }
    Ok(())
}

/// Reads a contour file: one `x,y` (or `x, y`) vertex per line, pixel coordinates.
pub fn read_contour(path: &Path) -> Result<Vec<[f64; 2]>, IoError> {
    let text = std::fs::read_to_string(path).map_err(|e| IoError::io(path, e))?;
    let mut points = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = line
            .split_once(',')
            .and_then(|(x, y)| Some([x.trim().parse::<f64>().ok()?, y.trim().parse::<f64>().ok()?]))
            .filter(|[x, y]| x.is_finite() && y.is_finite());
        match parsed {
            Some(p) => points.push(p),
            None => {
                return Err(IoError::format(
                    path,
                    format!("line {}: expected `x, y` numbers, found {line:?}", n + 1),
                ));
            }
        }
    }
    if points.len() < 3 {
        return Err(IoError::format(
            path,
            format!(
                "a contour needs at least 3 vertices, found {}",
                points.len()
            ),
        ));
    }
    Ok(points)
}

/// Pixels whose centres (x = column, y = row) lie inside the closed polygon (even-odd).
pub fn fill_polygon(points: &[[f64; 2]], width: usize, height: usize) -> Vec<bool> {
    let mut inside = vec![false; width * height];
    let mut crossings = Vec::new();
    for row in 0..height {
        let y = row as f64;
        crossings.clear();
        for (k, a) in points.iter().enumerate() {
            let b = points[(k + 1) % points.len()];
            if (a[1] <= y) != (b[1] <= y) {
                crossings.push(a[0] + (y - a[1]) / (b[1] - a[1]) * (b[0] - a[0]));
            }
        }
        crossings.sort_by(f64::total_cmp);
        for pair in crossings.chunks_exact(2) {
            let start = pair[0].ceil().max(0.0) as usize;
            let end = (pair[1].ceil().max(0.0) as usize).min(width);
            for col in start..end {
                inside[row * width + col] = true;
            }
        }
    }
    inside
}

/// Label map from lumen and media-adventitia contours: lumen 1, between them 2, else 0.
pub fn rasterise_contours(
    lumen: &Path,
    media: &Path,
    width: usize,
    height: usize,
) -> Result<LabelMap, IoError> {
    let inner = fill_polygon(&read_contour(lumen)?, width, height);
    let outer = fill_polygon(&read_contour(media)?, width, height);
    let values = inner
        .iter()
        .zip(&outer)
        .map(|(&l, &m)| {
            if l {
                1
            } else if m {
                2
            } else {
                0
            }
        })
        .collect();
    Ok(LabelMap::new(width, height, values).expect("values are valid labels"))
}
