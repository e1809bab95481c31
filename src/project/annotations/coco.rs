//! COCO instance segmentation, as CVAT, Label Studio, Labelbox, FiftyOne and pycocotools
//! write it: images (matched to batch frames by file name), categories named as in
//! [`REGION_NAMES`](super::regions::REGION_NAMES), and annotations whose segmentation is
//! polygons or run-length encoded (compressed string or plain counts, column-major).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::regions::{Region, RegionKind};
use super::{Drawn, FrameMatcher};

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<Image>,
    annotations: Vec<Annotation>,
    categories: Vec<Category>,
}

#[derive(Deserialize)]
struct Image {
    id: u64,
    file_name: String,
    width: Option<usize>,
    height: Option<usize>,
}

#[derive(Deserialize)]
struct Category {
    id: u64,
    name: String,
}

#[derive(Deserialize)]
struct Annotation {
    id: Option<u64>,
    image_id: u64,
    category_id: u64,
    segmentation: Segmentation,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Segmentation {
    Polygons(Vec<Vec<f64>>),
    Rle { size: [usize; 2], counts: Counts },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Counts {
    Compressed(String),
    Runs(Vec<u64>),
}

/// Reads the COCO file `name` (already parsed as `json`): the regions of every batch frame
/// it annotates, and every problem, each naming the file and the frame or annotation.
pub fn read(
    name: &str,
    json: serde_json::Value,
    frames: &FrameMatcher,
    problems: &mut Vec<String>,
) -> Vec<Drawn> {
    let file: CocoFile = match serde_json::from_value(json) {
        Ok(file) => file,
        Err(e) => {
            problems.push(format!(
                "{name}: is not a COCO instance segmentation file ({e})"
            ));
            return Vec::new();
        }
    };
    let categories: BTreeMap<u64, &str> = file
        .categories
        .iter()
        .map(|c| (c.id, c.name.as_str()))
        .collect();
    let images: BTreeMap<u64, &Image> = file.images.iter().map(|i| (i.id, i)).collect();
    let mut drawn: BTreeMap<String, Drawn> = BTreeMap::new();
    for (k, annotation) in file.annotations.iter().enumerate() {
        let label = format!("annotation {}", annotation.id.unwrap_or(k as u64));
        let Some(image) = images.get(&annotation.image_id) else {
            problems.push(format!(
                "{name}: {label} refers to image {}, which the file does not list",
                annotation.image_id
            ));
            continue;
        };
        let Some(stem) = frames.stem_of(&image.file_name) else {
            problems.push(format!(
                "{name}: image {} is not a frame of this batch",
                image.file_name
            ));
            continue;
        };
        let (width, height) = frames.size(&stem);
        if image.width.is_some_and(|w| w != width) || image.height.is_some_and(|h| h != height) {
            problems.push(format!(
                "{name}: image {} is {}×{} in the file but the batch image is {width}×{height}",
                image.file_name,
                image.width.unwrap_or(0),
                image.height.unwrap_or(0)
            ));
            continue;
        }
        let category = categories.get(&annotation.category_id).copied();
        let Some(kind) = category.and_then(RegionKind::from_name) else {
            problems.push(format!(
                "{name}: {label} on {stem} has the category {}; sula reads vessel, lipid, calcium and lumen",
                category.map_or_else(|| annotation.category_id.to_string(), str::to_owned)
            ));
            continue;
        };
        match segmentation_pixels(&annotation.segmentation, width, height) {
            Ok(pixels) => drawn
                .entry(stem.clone())
                .or_insert_with(|| Drawn::new(stem, format!("{name} ({})", image.file_name)))
                .regions
                .push(Region { kind, pixels }),
            Err(reason) => problems.push(format!("{name}: {label} on {stem}: {reason}")),
        }
    }
    drawn.into_values().collect()
}

fn segmentation_pixels(
    segmentation: &Segmentation,
    width: usize,
    height: usize,
) -> Result<Vec<bool>, String> {
    match segmentation {
        Segmentation::Polygons(polygons) => {
            let mut pixels = vec![false; width * height];
            for polygon in polygons {
                if polygon.len() < 6 || polygon.len() % 2 != 0 {
                    return Err(format!(
                        "a polygon needs at least 3 x, y pairs; found {} numbers",
                        polygon.len()
                    ));
                }
                if polygon.iter().any(|v| !v.is_finite()) {
                    return Err("a polygon has a coordinate that is not a number".to_string());
                }
                let points: Vec<[f64; 2]> = polygon.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
                let region = Region::polygon(RegionKind::Vessel, &points, width, height);
                for (pixel, inside) in pixels.iter_mut().zip(region.pixels) {
                    *pixel |= inside;
                }
            }
            Ok(pixels)
        }
        Segmentation::Rle { size, counts } => {
            if *size != [height, width] {
                return Err(format!(
                    "its mask is {}×{} (size [{}, {}]) but the image is {width}×{height}",
                    size[1], size[0], size[0], size[1]
                ));
            }
            let runs = match counts {
                Counts::Runs(runs) => runs.clone(),
                Counts::Compressed(text) => decompress_counts(text)?,
            };
            column_major_runs(&runs, width, height)
        }
    }
}

/// The run lengths of a compressed COCO RLE string (pycocotools' `rleFrString`): six bits
/// per character from '0', five of value and a continuation bit, the last one signed, and
/// from the third run on each stored as its difference to the run two before.
pub fn decompress_counts(text: &str) -> Result<Vec<u64>, String> {
    let bytes = text.as_bytes();
    let mut runs: Vec<i64> = Vec::new();
    let mut p = 0;
    while p < bytes.len() {
        let mut value: i64 = 0;
        let mut shift = 0;
        loop {
            let Some(&byte) = bytes.get(p) else {
                return Err("its compressed RLE counts end in the middle of a number".to_string());
            };
            let c = i64::from(byte) - 48;
            if !(0..64).contains(&c) || shift > 55 {
                return Err(format!(
                    "its compressed RLE counts hold a character {:?} that is not part of the encoding",
                    char::from(byte)
                ));
            }
            value |= (c & 0x1f) << shift;
            p += 1;
            shift += 5;
            if c & 0x20 == 0 {
                if c & 0x10 != 0 {
                    value |= -1i64 << shift;
                }
                break;
            }
        }
        if runs.len() > 2 {
            value += runs[runs.len() - 2];
        }
        runs.push(value);
    }
    runs.into_iter()
        .map(|r| {
            u64::try_from(r)
                .map_err(|_| "its compressed RLE counts decode to a negative run".to_string())
        })
        .collect()
}

/// Runs alternating background and region, column by column (COCO's Fortran order).
fn column_major_runs(runs: &[u64], width: usize, height: usize) -> Result<Vec<bool>, String> {
    let total: u64 = runs.iter().sum();
    if total != (width * height) as u64 {
        return Err(format!(
            "its RLE covers {total} pixels but the image has {}",
            width * height
        ));
    }
    let mut pixels = vec![false; width * height];
    let mut index = 0usize;
    for (k, &run) in runs.iter().enumerate() {
        let run = run as usize;
        if k % 2 == 1 {
            for i in index..index + run {
                let (column, row) = (i / height, i % height);
                pixels[row * width + column] = true;
            }
        }
        index += run;
    }
    Ok(pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_counts_decode_as_pycocotools_writes_them() {
        // pycocotools.mask.encode of a 4×3 mask (rows: 0110 / 0110 / 0000), Fortran order:
        // runs 3, 2, 1, 2, 4, stored as 3, 2, 1, 2−2, 4−1 → b"32103".
        assert_eq!(decompress_counts("32103").unwrap(), vec![3, 2, 1, 2, 4]);
        let pixels = column_major_runs(&[3, 2, 1, 2, 4], 4, 3).unwrap();
        let expected = [
            false, true, true, false, false, true, true, false, false, false, false, false,
        ];
        assert_eq!(pixels, expected);
        assert!(decompress_counts("3~").is_err());
        assert!(
            column_major_runs(&[3, 2], 4, 3)
                .unwrap_err()
                .contains("covers 5 pixels")
        );
    }
}
