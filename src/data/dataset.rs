//! One `Dataset` type over the layouts sula reads (docs/DESIGN.md §Datasets): the sula layout, the MICCAI
//! 2011 IVUS challenge layout (contour text files rasterised to label maps), and DICOM
//! pullbacks (unannotated frames decoded one at a time).

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use rayon::prelude::*;

use super::dicom::{self, CropRect, CropSpec, DicomSpacing, FrameReader, FrameSelection, Series};
use super::layout::{DatasetManifest, SulaLayout, png_stems};
use super::mask::read_mask;
use crate::io::{IoError, npy};
use crate::labels::{LabelMap, Tissue, check_closed_lumen, seal_lumen, seal_thin_wall};

/// Pixel spacing assumed for MICCAI 2011 frames (not stored in the files): 10 mm across 384 px.
pub const MICCAI_DEFAULT_PIXEL_MM: f64 = 10.0 / 384.0;

/// Which folder layout a dataset uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutKind {
    Sula,
    Miccai2011,
    Dicom,
}

impl std::fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LayoutKind::Sula => "sula",
            LayoutKind::Miccai2011 => "MICCAI 2011 IVUS challenge",
            LayoutKind::Dicom => "DICOM",
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
    /// The image file: a PNG, or the DICOM file that holds the frame.
    pub image: PathBuf,
    pub mask: MaskSource,
    pub stress: Option<PathBuf>,
    /// For a DICOM frame: which frame of `image`, and how to crop it.
    pub dicom: Option<DicomFrame>,
}

/// Where a frame sits in a DICOM file, and the square of it that is the image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DicomFrame {
    pub frame: u32,
    pub crop: CropRect,
    /// Spacing of the stored frame in mm, when its series records one.
    pub pixel_mm: Option<f64>,
}

/// How to open a dataset: spacing override, and for DICOM the frames and crop.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    pub pixel_mm: Option<f64>,
    pub frames: FrameSelection,
    pub crop: CropSpec,
}

/// One DICOM pullback of a dataset, with the crop chosen for it and the frames taken.
#[derive(Debug, Clone)]
pub struct Pullback {
    pub series: Series,
    pub crop: CropRect,
    pub selected: usize,
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
    /// Lumen pixels of the stored label map that touched the outside and were sealed as a
    /// wall thinner than a pixel ([`crate::labels::close_lumen`]), for a warning; 0 when
    /// none did, or when the lumen is open wider and the map is kept as stored.
    pub sealed: usize,
}

/// Where the pixel spacing came from, for people reading `sula info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpacingSource {
    Manifest,
    Option,
    Default,
    Dicom(DicomSpacing),
    /// A DICOM pullback that records no spacing: the default is assumed until `--pixel-mm`.
    Unknown,
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
    /// The DICOM pullbacks the frames come from (empty for the folder layouts).
    pub pullbacks: Vec<Pullback>,
}

impl Dataset {
    /// Detects the layout of `root` and lists its frames; `pixel_mm` overrides the spacing.
    pub fn open(root: &Path, pixel_mm: Option<f64>) -> Result<Dataset, IoError> {
        Dataset::open_with(
            root,
            &OpenOptions {
                pixel_mm,
                ..OpenOptions::default()
            },
        )
    }

    /// [`Dataset::open`] with DICOM frame selection and crop.
    pub fn open_with(root: &Path, options: &OpenOptions) -> Result<Dataset, IoError> {
        let pixel_mm = options.pixel_mm;
        if !root.exists() {
            return Err(IoError::format(root, "does not exist"));
        }
        if root.is_file() && !dicom::is_dicom_file(root) {
            return Err(IoError::format(
                root,
                "is neither a dataset folder nor a DICOM file",
            ));
        }
        if let Some(mm) = pixel_mm
            && !(mm.is_finite() && mm > 0.0)
        {
            return Err(IoError::format(
                root,
                format!("pixel spacing must be positive, got {mm}"),
            ));
        }
        let mut dataset = if root.is_file() {
            open_dicom(root, options)?
        } else if root.join("masks").is_dir() || root.join("images").is_dir() {
            open_sula(root)?
        } else {
            let mut dcm_dirs = Vec::new();
            find_dcm(root, 0, &mut dcm_dirs)?;
            if dcm_dirs.is_empty() {
                open_dicom(root, options).map_err(|e| match e {
                    IoError::Format { message, .. } if message == dicom::NO_DICOM => IoError::format(
                        root,
                        "is not a dataset sula can read: no images/ and masks/ (sula layout), no DCM/ folder (MICCAI 2011 layout) and no DICOM files",
                    ),
                    other => other,
                })?
            } else {
                open_miccai(root, dcm_dirs)?
            }
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

    /// Reads frames `indices` in that order, each DICOM file opened once for all its frames.
    pub fn load_many(
        &self,
        indices: &[usize],
        working_size: Option<usize>,
    ) -> Result<Vec<LoadedFrame>, IoError> {
        if self.kind != LayoutKind::Dicom {
            return indices
                .par_iter()
                .map(|&i| self.load(i, working_size))
                .collect();
        }
        let mut out: Vec<Option<LoadedFrame>> = vec![None; indices.len()];
        let mut start = 0;
        while start < indices.len() {
            let file = &self.frames[indices[start]].image;
            let end = (start..indices.len())
                .find(|&k| &self.frames[indices[k]].image != file)
                .unwrap_or(indices.len());
            let reader = FrameReader::open(file)?;
            let frames = indices[start..end]
                .par_iter()
                .map(|&i| self.load_dicom(&reader, i, working_size))
                .collect::<Result<Vec<_>, IoError>>()?;
            for (slot, frame) in out[start..end].iter_mut().zip(frames) {
                *slot = Some(frame);
            }
            start = end;
        }
        Ok(out
            .into_iter()
            .map(|f| f.expect("every index loaded"))
            .collect())
    }

    fn load_dicom(
        &self,
        reader: &FrameReader,
        index: usize,
        working_size: Option<usize>,
    ) -> Result<LoadedFrame, IoError> {
        let entry = &self.frames[index];
        let place = entry.dicom.expect("DICOM entries carry their frame");
        let grey = reader.grey(place.frame)?;
        let image = place.crop.apply(&grey, reader.rows(), reader.cols());
        let pixel_mm = match self.spacing_source {
            SpacingSource::Option => self.pixel_mm,
            _ => place.pixel_mm.unwrap_or(self.pixel_mm),
        };
        let frame = LoadedFrame {
            id: entry.id.clone(),
            width: place.crop.size,
            height: place.crop.size,
            image,
            labels: None,
            stress: None,
            pixel_mm,
            sealed: 0,
        };
        Ok(match working_size {
            Some(size) if size != place.crop.size => resample(frame, size),
            _ => frame,
        })
    }

    /// Reads frame `index`; with `working_size`, resamples to that square size (image
    /// with a triangle filter, labels and stress with nearest neighbour). A label map
    /// enters by sula's one rule ([`seal_thin_wall`]): a lumen touching the outside at a
    /// few pixels is sealed at the stored resolution, and a closed lumen is sealed again
    /// after resampling, which can open a thin wall.
    pub fn load(&self, index: usize, working_size: Option<usize>) -> Result<LoadedFrame, IoError> {
        let entry = &self.frames[index];
        if entry.dicom.is_some() {
            return self.load_dicom(&FrameReader::open(&entry.image)?, index, working_size);
        }
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
        let (labels, sealed) = match labels {
            Some(labels) => {
                let (labels, sealed) = seal_thin_wall(labels);
                (Some(labels), sealed)
            }
            None => (None, 0),
        };
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
            sealed,
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
        let resampled = LabelMap::from_fn(size, size, |row, col| {
            Tissue::from_value(l.values()[nearest(row, col)]).expect("valid label")
        });
        match check_closed_lumen(&l) {
            Ok(()) => seal_lumen(resampled),
            Err(_) => resampled,
        }
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
        sealed: frame.sealed,
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
    // Images without a label map are unannotated frames (a partly annotated pool).
    let masks = layout.mask_ids()?;
    let images = png_stems(&root.join("images"))?;
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
            mask: if masks.binary_search(id).is_ok() {
                MaskSource::Png(layout.mask_path(id))
            } else {
                MaskSource::Missing
            },
            stress: Some(layout.stress_path(id)).filter(|p| p.exists()),
            dicom: None,
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
        pullbacks: Vec::new(),
    })
}

/// Reads the `DCM` folders found below `root`, each with `LABELS*` siblings.
fn open_miccai(root: &Path, mut dcm_dirs: Vec<PathBuf>) -> Result<Dataset, IoError> {
    dcm_dirs.sort();
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
                dicom: None,
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
        pullbacks: Vec::new(),
    })
}

/// Frames a crop is judged on: up to eight, spread over the selection.
const CROP_SAMPLES: usize = 8;

/// One DICOM file or a folder of them: every selected frame of every pullback, unannotated.
fn open_dicom(root: &Path, options: &OpenOptions) -> Result<Dataset, IoError> {
    let all = dicom::scan(root)?;
    let mut frames = Vec::new();
    let mut pullbacks = Vec::new();
    for series in all {
        let selected: Vec<usize> = options.frames.indices(series.frame_count()).collect();
        if selected.is_empty() {
            continue;
        }
        let crop = series_crop(&series, &selected, options.crop)?;
        for &index in &selected {
            let (file, frame) = series.locate(index).expect("index within the series");
            frames.push(FrameEntry {
                id: format!("{}/{index:05}", series.name),
                image: file.to_path_buf(),
                mask: MaskSource::Missing,
                stress: None,
                dicom: Some(DicomFrame {
                    frame,
                    crop,
                    pixel_mm: series.spacing.map(|(mm, _)| mm),
                }),
            });
        }
        pullbacks.push(Pullback {
            series,
            crop,
            selected: selected.len(),
        });
    }
    if frames.is_empty() {
        return Err(IoError::format(
            root,
            "has no frames in the selected range (see --frames)",
        ));
    }
    let (pixel_mm, spacing_source) = match pullbacks.iter().find_map(|p| p.series.spacing) {
        Some((mm, source)) => (mm, SpacingSource::Dicom(source)),
        None => (MICCAI_DEFAULT_PIXEL_MM, SpacingSource::Unknown),
    };
    Ok(Dataset {
        kind: LayoutKind::Dicom,
        root: root.to_path_buf(),
        frames,
        pixel_mm,
        spacing_source,
        manifest: None,
        pullbacks,
    })
}

/// The crop of one series; `auto` decodes a few of its frames to find the imaging area.
fn series_crop(series: &Series, selected: &[usize], spec: CropSpec) -> Result<CropRect, IoError> {
    let fail = |message: String| IoError::format(&series.files[0], message);
    if spec != CropSpec::Auto || series.imaging_region.is_some() {
        return dicom::crop::resolve(spec, series.rows, series.cols, series.imaging_region, &[])
            .map_err(fail);
    }
    let picks: Vec<usize> = (0..CROP_SAMPLES.min(selected.len()))
        .map(|k| selected[k * selected.len() / CROP_SAMPLES.min(selected.len())])
        .collect();
    let mut samples = Vec::new();
    let mut open: Option<(PathBuf, FrameReader)> = None;
    for index in picks {
        let (file, frame) = series.locate(index).expect("index within the series");
        if open.as_ref().is_none_or(|(path, _)| path != file) {
            open = Some((file.to_path_buf(), FrameReader::open(file)?));
        }
        let (_, reader) = open.as_ref().expect("just opened");
        samples.push(reader.grey(frame)?);
    }
    dicom::crop::resolve(spec, series.rows, series.cols, None, &samples).map_err(fail)
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
