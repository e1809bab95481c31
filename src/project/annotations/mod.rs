//! Reading what an annotator sends back: label-map PNGs (values 0–4, or the tissue colours
//! of sula's previews), MICCAI 2011 lumen/media contour files, COCO instance segmentation
//! or a Label Studio JSON export, each checked before anything is applied. Every problem of
//! a batch is collected, not just the first.

mod coco;
mod label_studio;
pub mod regions;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageReader};

use crate::data::dataset::rasterise_contours;
use crate::labels::{LabelMap, Tissue};
use crate::render::sheet::tissue_color;

/// Largest distance (RGB, Euclidean) at which a painted pixel counts as a palette colour:
/// paint tools blend colours at stroke edges.
const PALETTE_TOLERANCE: i32 = 40;

/// One annotated frame of a batch, at the batch image's size.
#[derive(Debug, Clone)]
pub struct Annotation {
    pub stem: String,
    pub labels: LabelMap,
    /// The file (or files) it was read from, for messages.
    pub source: String,
}

/// The regions an annotation tool drew on one frame, before they are painted.
pub struct Drawn {
    pub stem: String,
    pub regions: Vec<regions::Region>,
    /// The file and the frame or task, for messages.
    pub source: String,
}

impl Drawn {
    fn new(stem: String, source: String) -> Drawn {
        Drawn {
            stem,
            regions: Vec::new(),
            source,
        }
    }
}

/// Finds the batch frame an annotation tool's image reference means: a frame id, a file
/// name or path (`images/<id>.png`), a Label Studio local-files URL (`…?d=images/<id>.png`)
/// or a copy Label Studio renamed (`<8 hex digits>-<file name>` when uploaded,
/// `<8 hex digits>__<file name>` in its COCO export with images).
pub struct FrameMatcher<'a> {
    sizes: &'a BTreeMap<String, (usize, usize)>,
}

impl FrameMatcher<'_> {
    /// The stem of the batch frame `reference` names, if any.
    pub fn stem_of(&self, reference: &str) -> Option<String> {
        let path = reference.rsplit_once("?d=").map_or(reference, |(_, p)| p);
        let path = percent_decoded(path);
        let file = path.rsplit(['/', '\\']).next().unwrap_or(&path);
        let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
        let known = |s: &str| self.sizes.contains_key(s).then(|| s.to_string());
        // Label Studio prefixes copies with 8 hex digits: `-` for uploads, `__` in its
        // COCO export with images.
        let copied = [stem.split_once("__"), stem.split_once('-')]
            .into_iter()
            .flatten()
            .find(|(prefix, _)| prefix.len() == 8 && prefix.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|(_, rest)| known(rest));
        known(stem).or(copied)
    }

    /// Width and height of the batch image `stem`.
    pub fn size(&self, stem: &str) -> (usize, usize) {
        self.sizes[stem]
    }
}

/// `%XX` escapes of a URL path decoded; anything malformed is kept as it is.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(value)) => {
                out.push(value);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the annotation-tool file `path` (COCO or a Label Studio JSON export) into regions.
fn read_tool_file(path: &Path, frames: &FrameMatcher, problems: &mut Vec<String>) -> Vec<Drawn> {
    let name = path.display().to_string();
    let json = match std::fs::read(path)
        .map_err(|e| format!("cannot be read ({e})"))
        .and_then(|bytes| {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|e| format!("is not valid JSON ({e})"))
        }) {
        Ok(json) => json,
        Err(reason) => {
            problems.push(format!("{name}: {reason}"));
            return Vec::new();
        }
    };
    if json.get("images").is_some() && json.get("annotations").is_some() {
        coco::read(&name, json, frames, problems)
    } else if label_studio::is_export(&json) {
        label_studio::read(&name, json, frames, problems)
    } else {
        problems.push(format!(
            "{name}: is neither a COCO file (images, annotations, categories) nor a Label Studio JSON export (a list of tasks with annotations; Label Studio's JSON-MIN and CSV exports lack the regions)"
        ));
        Vec::new()
    }
}

/// Where one frame's annotation is.
#[derive(Debug, Default)]
struct Files {
    png: Option<PathBuf>,
    lumen: Option<PathBuf>,
    media: Option<PathBuf>,
}

/// Reads the annotations in `masks` for frames `stems` whose images are `sizes` (width,
/// height): per-frame files, and JSON files from annotation tools covering many frames.
/// Returns the annotations found and every problem (file: reason); stems without any
/// annotation are simply not annotated, and a frame annotated twice is a problem.
pub fn read_annotations(
    masks: &Path,
    stems: &[String],
    sizes: &BTreeMap<String, (usize, usize)>,
) -> (Vec<Annotation>, Vec<String>) {
    let mut problems = Vec::new();
    let known: BTreeSet<&str> = stems.iter().map(String::as_str).collect();
    let mut files: BTreeMap<String, Files> = BTreeMap::new();
    let mut tool_files = Vec::new();
    let entries = match std::fs::read_dir(masks) {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(format!("{}: cannot be read ({e})", masks.display()));
            return (Vec::new(), problems);
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || path.is_dir() {
            continue;
        }
        if name.to_ascii_lowercase().ends_with(".json") {
            tool_files.push(path);
            continue;
        }
        let (stem, slot) = if let Some(stem) = name.strip_suffix(".png") {
            (stem.to_owned(), 0)
        } else if let Some(stem) = name
            .strip_prefix("lum_")
            .and_then(|s| s.strip_suffix(".txt"))
        {
            (stem.to_owned(), 1)
        } else if let Some(stem) = name
            .strip_prefix("med_")
            .and_then(|s| s.strip_suffix(".txt"))
        {
            (stem.to_owned(), 2)
        } else {
            problems.push(format!(
                "{}: not an annotation file (expected <id>.png, lum_<id>.txt and med_<id>.txt, or a COCO or Label Studio .json)",
                path.display()
            ));
            continue;
        };
        if !known.contains(stem.as_str()) {
            problems.push(format!(
                "{}: {stem} is not a frame of this batch",
                path.display()
            ));
            continue;
        }
        let frame = files.entry(stem).or_default();
        match slot {
            0 => frame.png = Some(path),
            1 => frame.lumen = Some(path),
            _ => frame.media = Some(path),
        }
    }
    let mut annotations = Vec::new();
    for (stem, found) in files {
        let (width, height) = sizes[&stem];
        let read = match (&found.png, &found.lumen, &found.media) {
            (Some(png), None, None) => read_label_png(png).map(|l| (l, png.display().to_string())),
            (None, Some(lumen), Some(media)) => rasterise_contours(lumen, media, width, height)
                .map(|l| (l, format!("{} and {}", lumen.display(), media.display())))
                .map_err(|e| e.to_string()),
            (Some(png), _, _) => Err(format!(
                "{}: has both a label map and contour files; keep one",
                png.display()
            )),
            (None, Some(one), None) | (None, None, Some(one)) => Err(format!(
                "{}: the lumen and the media-adventitia contour files come in pairs; its partner is missing",
                one.display()
            )),
            (None, None, None) => continue,
        };
        match read {
            Ok((labels, source)) if (labels.width(), labels.height()) == (width, height) => {
                annotations.push(Annotation {
                    stem,
                    labels,
                    source,
                })
            }
            Ok((labels, source)) => problems.push(format!(
                "{source}: is {}×{} but its image is {width}×{height}",
                labels.width(),
                labels.height()
            )),
            Err(problem) => problems.push(problem),
        }
    }
    tool_files.sort();
    let frames = FrameMatcher { sizes };
    for path in tool_files {
        for drawn in read_tool_file(&path, &frames, &mut problems) {
            if let Some(other) = annotations.iter().find(|a| a.stem == drawn.stem) {
                problems.push(format!(
                    "{}: annotates {} again (also in {}); keep one",
                    drawn.source, drawn.stem, other.source
                ));
                continue;
            }
            let (width, height) = frames.size(&drawn.stem);
            match regions::paint(&drawn.regions, width, height) {
                Ok(labels) => annotations.push(Annotation {
                    stem: drawn.stem,
                    labels,
                    source: drawn.source,
                }),
                Err(reason) => problems.push(format!("{}: {reason}", drawn.source)),
            }
        }
    }
    (annotations, problems)
}

/// A label-map PNG: 8-bit values 0–4, or colour pixels in the tissue palette.
pub fn read_label_png(path: &Path) -> Result<LabelMap, String> {
    let fail = |reason: String| format!("{}: {reason}", path.display());
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot be read ({e})")))?;
    let image = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| fail(e.to_string()))?
        .decode()
        .map_err(|e| fail(format!("is not a readable image ({e})")))?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let values = match image {
        DynamicImage::ImageLuma8(grey) => grey.into_raw(),
        DynamicImage::ImageLumaA8(_) => image.to_luma8().into_raw(),
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => {
            palette_values(&image.to_rgb8(), width).map_err(fail)?
        }
        other => {
            return Err(fail(format!(
                "is a {:?} image; a label map is 8-bit grey (values 0–4) or 8-bit colour in the tissue palette",
                other.color()
            )));
        }
    };
    LabelMap::new(width, height, values).map_err(|e| fail(e.to_string()))
}

/// Colour pixels to label values: grey pixels 0–4 are values, anything else must be near a
/// tissue colour.
fn palette_values(rgb: &image::RgbImage, width: usize) -> Result<Vec<u8>, String> {
    let pixels: Vec<[u8; 3]> = rgb.pixels().map(|p| p.0).collect();
    if pixels.iter().all(|[r, g, b]| r == g && g == b && *r <= 4) {
        return Ok(pixels.iter().map(|p| p[0]).collect());
    }
    let palette: Vec<(u8, [u8; 3])> = Tissue::ALL
        .iter()
        .map(|&t| (t as u8, tissue_color(t)))
        .collect();
    pixels
        .iter()
        .enumerate()
        .map(|(i, &colour)| {
            let distance = |c: [u8; 3]| -> i32 {
                (0..3)
                    .map(|k| (i32::from(c[k]) - i32::from(colour[k])).pow(2))
                    .sum()
            };
            let (value, nearest) = palette
                .iter()
                .map(|&(v, c)| (v, distance(c)))
                .min_by_key(|&(_, d)| d)
                .expect("the palette has colours");
            if nearest <= PALETTE_TOLERANCE * PALETTE_TOLERANCE {
                Ok(value)
            } else {
                Err(format!(
                    "pixel (row {}, column {}) has the colour {colour:?}, which is neither a label value 0–4 nor a tissue colour of the palette",
                    i / width,
                    i % width
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_colours_and_grey_values_read_as_the_same_labels() {
        let dir = tempfile::tempdir().unwrap();
        let values = [0u8, 1, 2, 3, 4, 2];
        let grey = image::GrayImage::from_raw(3, 2, values.to_vec()).unwrap();
        grey.save(dir.path().join("grey.png")).unwrap();
        let mut colour = image::RgbImage::new(3, 2);
        for (i, &v) in values.iter().enumerate() {
            let mut c = tissue_color(Tissue::from_value(v).unwrap());
            c[0] = c[0].saturating_add(9);
            colour.put_pixel((i % 3) as u32, (i / 3) as u32, image::Rgb(c));
        }
        colour.save(dir.path().join("colour.png")).unwrap();
        let a = read_label_png(&dir.path().join("grey.png")).unwrap();
        let b = read_label_png(&dir.path().join("colour.png")).unwrap();
        assert_eq!(a.values(), &values);
        assert_eq!(b.values(), &values);

        colour.put_pixel(1, 1, image::Rgb([0, 255, 0]));
        colour.save(dir.path().join("green.png")).unwrap();
        let err = read_label_png(&dir.path().join("green.png")).unwrap_err();
        assert!(
            err.contains("row 1, column 1") && err.contains("[0, 255, 0]"),
            "{err}"
        );
        let bad = image::GrayImage::from_raw(3, 2, vec![0, 1, 7, 0, 0, 0]).unwrap();
        bad.save(dir.path().join("bad.png")).unwrap();
        let err = read_label_png(&dir.path().join("bad.png")).unwrap_err();
        assert!(err.contains("invalid label value 7"), "{err}");
    }

    #[test]
    fn contour_pairs_are_rasterised_and_a_lone_contour_or_a_stranger_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let circle = |r: f64| -> String {
            (0..24)
                .map(|k| {
                    let t = std::f64::consts::TAU * k as f64 / 24.0;
                    format!("{:.2}, {:.2}\n", 16.0 + r * t.cos(), 16.0 + r * t.sin())
                })
                .collect()
        };
        std::fs::write(dir.path().join("lum_a.txt"), circle(5.0)).unwrap();
        std::fs::write(dir.path().join("med_a.txt"), circle(10.0)).unwrap();
        std::fs::write(dir.path().join("lum_b.txt"), circle(5.0)).unwrap();
        std::fs::write(dir.path().join("c.png"), b"not a png").unwrap();
        std::fs::write(dir.path().join("notes.doc"), b"?").unwrap();
        let stems = vec!["a".to_string(), "b".to_string()];
        let sizes = BTreeMap::from([("a".to_string(), (32, 32)), ("b".to_string(), (32, 32))]);
        let (found, problems) = read_annotations(dir.path(), &stems, &sizes);
        assert_eq!(found.len(), 1);
        let counts = found[0].labels.class_counts();
        assert!(counts[1] > 50 && counts[2] > 150, "{counts:?}");
        assert!(crate::labels::check_closed_lumen(&found[0].labels).is_ok());
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("lum_b.txt") && p.contains("partner"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("c.png") && p.contains("not a frame of this batch"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("notes.doc") && p.contains("not an annotation file"))
        );
    }

    #[test]
    fn tool_references_find_their_frame_and_strangers_do_not() {
        let sizes = BTreeMap::from([("f0007".to_string(), (4, 4)), ("a-b".to_string(), (4, 4))]);
        let frames = FrameMatcher { sizes: &sizes };
        for reference in [
            "f0007",
            "images/f0007.png",
            "/data/local-files/?d=images%2Ff0007.png",
            "/data/upload/3/0a1b2c3d-f0007.png",
            "images/0a1b2c3d__f0007.png",
            "C:\\export\\images\\f0007.png",
            "a-b.png",
        ] {
            assert!(frames.stem_of(reference).is_some(), "{reference}");
        }
        assert_eq!(frames.stem_of("images/f0008.png"), None);
        assert_eq!(frames.stem_of("zzzzzzzz-f0007.png"), None);
    }

    #[test]
    fn json_that_no_tool_wrote_and_a_frame_annotated_twice_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        let square = "[[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]]";
        let task = format!(
            r#"[{{"id": 1, "data": {{"image": "x", "sula_id": "a"}}, "annotations": [{{"id": 5, "result": [
                {{"type": "polygonlabels", "original_width": 4, "original_height": 4,
                  "value": {{"points": {square}, "polygonlabels": ["Vessel"]}}}}]}}]}}]"#
        );
        std::fs::write(dir.path().join("ls.json"), task).unwrap();
        std::fs::write(dir.path().join("other.json"), r#"{"hello": 1}"#).unwrap();
        let grey = image::GrayImage::from_raw(4, 4, vec![2; 16]).unwrap();
        grey.save(dir.path().join("a.png")).unwrap();
        let stems = vec!["a".to_string()];
        let sizes = BTreeMap::from([("a".to_string(), (4, 4))]);
        let (found, problems) = read_annotations(dir.path(), &stems, &sizes);
        assert_eq!(found.len(), 1);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("ls.json (task 1, a)") && p.contains("again"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("other.json") && p.contains("neither a COCO"))
        );

        std::fs::remove_file(dir.path().join("a.png")).unwrap();
        std::fs::remove_file(dir.path().join("other.json")).unwrap();
        let (found, problems) = read_annotations(dir.path(), &stems, &sizes);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(found[0].labels.values(), &[2; 16]);
    }
}
