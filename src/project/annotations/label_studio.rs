//! Label Studio's JSON export: a list of tasks, each with its data (the batch writes the
//! frame's id as `sula_id` beside the image) and its annotations, whose results are
//! PolygonLabels (points in percent of the image) or BrushLabels (Label Studio's own
//! run-length encoding of an RGBA bitmap, of which the alpha channel is the region).

use serde::Deserialize;

use super::regions::{Region, RegionKind};
use super::{Drawn, FrameMatcher};

#[derive(Deserialize)]
struct Task {
    id: Option<u64>,
    #[serde(default)]
    data: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    annotations: Vec<Annotation>,
}

#[derive(Deserialize)]
struct Annotation {
    id: Option<u64>,
    #[serde(default)]
    result: Vec<RegionResult>,
    #[serde(default)]
    was_cancelled: bool,
    #[serde(default)]
    ground_truth: bool,
}

#[derive(Deserialize)]
struct RegionResult {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    value: serde_json::Value,
    original_width: Option<usize>,
    original_height: Option<usize>,
}

#[derive(Deserialize)]
struct Polygon {
    points: Vec<[f64; 2]>,
    polygonlabels: Vec<String>,
}

#[derive(Deserialize)]
struct Brush {
    rle: Vec<u8>,
    brushlabels: Vec<String>,
}

/// Whether `json` looks like a Label Studio JSON export (a list of tasks with annotations).
pub fn is_export(json: &serde_json::Value) -> bool {
    json.as_array().is_some_and(|tasks| {
        tasks
            .iter()
            .all(|t| t.get("data").is_some() && t.get("annotations").is_some())
    })
}

/// Reads the Label Studio export `name` (parsed as `json`): the regions of every batch
/// frame it annotates, and every problem, each naming the file and the task.
pub fn read(
    name: &str,
    json: serde_json::Value,
    frames: &FrameMatcher,
    problems: &mut Vec<String>,
) -> Vec<Drawn> {
    let tasks: Vec<Task> = match serde_json::from_value(json) {
        Ok(tasks) => tasks,
        Err(e) => {
            problems.push(format!("{name}: is not a Label Studio JSON export ({e})"));
            return Vec::new();
        }
    };
    let mut drawn = Vec::new();
    for (k, task) in tasks.iter().enumerate() {
        let label = format!("task {}", task.id.unwrap_or(k as u64));
        let Some(annotation) = chosen_annotation(task, &label, name, problems) else {
            continue;
        };
        let Some(stem) = task_stem(task, frames) else {
            problems.push(format!(
                "{name}: {label} ({}) is not a frame of this batch",
                task_reference(task).unwrap_or("no image")
            ));
            continue;
        };
        let (width, height) = frames.size(&stem);
        let source = format!("{name} ({label}, {stem})");
        let mut regions = Vec::new();
        for result in &annotation.result {
            match region(result, width, height) {
                Ok(Some(region)) => regions.push(region),
                Ok(None) => {}
                Err(reason) => problems.push(format!("{source}: {reason}")),
            }
        }
        if !regions.is_empty() {
            drawn.push(Drawn {
                stem,
                regions,
                source,
            });
        }
    }
    drawn
}

/// The annotation to import: the ground truth if one is marked, else the only one not
/// cancelled; several candidates are a problem, since sula cannot tell which is right.
fn chosen_annotation<'a>(
    task: &'a Task,
    label: &str,
    name: &str,
    problems: &mut Vec<String>,
) -> Option<&'a Annotation> {
    let live: Vec<&Annotation> = task
        .annotations
        .iter()
        .filter(|a| !a.was_cancelled)
        .collect();
    let truth: Vec<&Annotation> = live.iter().copied().filter(|a| a.ground_truth).collect();
    match (truth.as_slice(), live.as_slice()) {
        ([one], _) | ([], [one]) => Some(one),
        (_, []) => None,
        (many, _) => {
            let ids: Vec<String> = (if many.is_empty() { &live } else { many })
                .iter()
                .map(|a| a.id.map_or_else(|| "?".to_string(), |id| id.to_string()))
                .collect();
            problems.push(format!(
                "{name}: {label} has {} annotations ({}); mark one as ground truth or keep one",
                ids.len(),
                ids.join(", ")
            ));
            None
        }
    }
}

fn task_reference(task: &Task) -> Option<&str> {
    task.data
        .get("image")
        .or_else(|| task.data.values().find(|v| v.is_string()))
        .and_then(|v| v.as_str())
}

fn task_stem(task: &Task, frames: &FrameMatcher) -> Option<String> {
    task.data
        .get("sula_id")
        .and_then(|v| v.as_str())
        .and_then(|id| frames.stem_of(id))
        .or_else(|| task_reference(task).and_then(|r| frames.stem_of(r)))
}

/// The region of one result, `None` for results that are not regions (choices, text).
fn region(result: &RegionResult, width: usize, height: usize) -> Result<Option<Region>, String> {
    let size_matches = |w: Option<usize>, h: Option<usize>| {
        if w.is_some_and(|w| w != width) || h.is_some_and(|h| h != height) {
            Err(format!(
                "a region was drawn on a {}×{} image but the batch image is {width}×{height}",
                w.unwrap_or(0),
                h.unwrap_or(0)
            ))
        } else {
            Ok(())
        }
    };
    match result.kind.as_str() {
        "polygonlabels" => {
            size_matches(result.original_width, result.original_height)?;
            let polygon: Polygon = serde_json::from_value(result.value.clone())
                .map_err(|e| format!("a polygon cannot be read ({e})"))?;
            let kind = kind_of(&polygon.polygonlabels)?;
            if polygon.points.len() < 3 || polygon.points.iter().flatten().any(|v| !v.is_finite()) {
                return Err(format!(
                    "a {} polygon needs at least 3 points",
                    name_of(kind)
                ));
            }
            let points: Vec<[f64; 2]> = polygon
                .points
                .iter()
                .map(|p| [p[0] / 100.0 * width as f64, p[1] / 100.0 * height as f64])
                .collect();
            Ok(Some(Region::polygon(kind, &points, width, height)))
        }
        "brushlabels" => {
            size_matches(result.original_width, result.original_height)?;
            let brush: Brush = serde_json::from_value(result.value.clone())
                .map_err(|e| format!("a brush region cannot be read ({e})"))?;
            let kind = kind_of(&brush.brushlabels)?;
            let rgba = decode_brush(&brush.rle, width * height * 4)
                .map_err(|e| format!("a {} brush region: {e}", name_of(kind)))?;
            let pixels = rgba.chunks_exact(4).map(|p| p[3] >= 128).collect();
            Ok(Some(Region { kind, pixels }))
        }
        "rectanglelabels" | "ellipselabels" | "keypointlabels" | "labels" => Err(format!(
            "has a {} region; sula reads polygons and brush strokes",
            result.kind.trim_end_matches("labels")
        )),
        _ => Ok(None),
    }
}

fn kind_of(labels: &[String]) -> Result<RegionKind, String> {
    match labels {
        [one] => RegionKind::from_name(one).ok_or_else(|| {
            format!("a region is labelled {one:?}; sula reads vessel, lipid, calcium and lumen")
        }),
        _ => Err(format!(
            "a region carries {} labels ({}); each region needs exactly one",
            labels.len(),
            labels.join(", ")
        )),
    }
}

fn name_of(kind: RegionKind) -> &'static str {
    super::regions::REGION_NAMES[kind as usize]
}

/// Reads `bits` bits, most significant first, from a byte stream.
struct Bits<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Bits<'_> {
    fn read(&mut self, bits: usize) -> Result<u32, String> {
        if self.position + bits > self.bytes.len() * 8 {
            return Err("its brush data ends early".to_string());
        }
        let mut value = 0u32;
        for _ in 0..bits {
            let byte = self.bytes[self.position / 8];
            let bit = (byte >> (7 - self.position % 8)) & 1;
            value = (value << 1) | u32::from(bit);
            self.position += 1;
        }
        Ok(value)
    }
}

/// Decodes Label Studio's brush RLE (thi.ng rle-pack, as in label-studio-converter): a
/// 32-bit count, a word size, four run-length widths, then runs of one repeated word or
/// of literal words. `expected` is the image's RGBA length (4 values a pixel): data
/// declaring another is refused before anything is decoded.
pub fn decode_brush(rle: &[u8], expected: usize) -> Result<Vec<u8>, String> {
    let mut bits = Bits {
        bytes: rle,
        position: 0,
    };
    let count = bits.read(32)? as usize;
    if count != expected {
        return Err(format!(
            "its brush data holds {} pixels but the image has {}",
            count / 4,
            expected / 4
        ));
    }
    let word = bits.read(5)? as usize + 1;
    let mut widths = [0usize; 4];
    for width in &mut widths {
        *width = bits.read(4)? as usize + 1;
    }
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let repeated = bits.read(1)? == 1;
        let width = widths[bits.read(2)? as usize];
        let run = (bits.read(width)? as usize + 1).min(count - out.len());
        if repeated {
            let value = bits.read(word)?;
            out.extend(std::iter::repeat_n(value.min(255) as u8, run));
        } else {
            for _ in 0..run {
                out.push(bits.read(word)?.min(255) as u8);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs values MSB first, for building brush data by hand.
    fn pack(fields: &[(u32, usize)]) -> Vec<u8> {
        let mut bits = Vec::new();
        for &(value, width) in fields {
            for k in (0..width).rev() {
                bits.push((value >> k) & 1);
            }
        }
        bits.chunks(8)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |b, (k, &v)| b | ((v as u8) << (7 - k)))
            })
            .collect()
    }

    #[test]
    fn brush_runs_and_literals_decode_and_short_data_is_an_error() {
        // 6 values of 8 bits; widths 4,4,4,4; a run of 4 × 255 then 2 literals 0, 7.
        let rle = pack(&[
            (6, 32),
            (7, 5),
            (3, 4),
            (3, 4),
            (3, 4),
            (3, 4),
            (1, 1),
            (0, 2),
            (3, 4),
            (255, 8),
            (0, 1),
            (0, 2),
            (1, 4),
            (0, 8),
            (7, 8),
        ]);
        assert_eq!(
            decode_brush(&rle, 6).unwrap(),
            vec![255, 255, 255, 255, 0, 7]
        );
        let short = decode_brush(&rle[..rle.len() - 2], 6).unwrap_err();
        assert!(short.contains("ends early"), "{short}");
        let huge = decode_brush(&pack(&[(u32::MAX, 32)]), 64).unwrap_err();
        assert!(huge.contains("but the image has 16"), "{huge}");
    }
}
