//! Contact sheets: frames shown as image | label map | stress rows, for people to judge
//! a dataset at a glance.

use image::{Rgb, RgbImage};

use super::colormap::ColorMap;
use super::stress::stress_range;
use super::text::draw_text;
use crate::labels::{LabelMap, Tissue};

/// Display colour of each tissue class.
pub fn tissue_color(tissue: Tissue) -> [u8; 3] {
    match tissue {
        Tissue::Outside => [40, 40, 46],
        Tissue::Lumen => [0, 0, 0],
        Tissue::Fibrous => [200, 120, 110],
        Tissue::Lipid => [240, 210, 60],
        Tissue::Calcium => [245, 245, 255],
    }
}

/// One row of the sheet.
#[derive(Debug, Clone, Copy)]
pub struct SheetFrame<'a> {
    pub image: &'a [u8],
    pub labels: &'a LabelMap,
    pub stress: Option<&'a [f32]>,
}

const GAP: u32 = 6;
const HEADER: u32 = 22;

/// Lays out `frames` in `columns` groups of three tiles (image | labels | stress, each at
/// least 128 px), with a header naming the tiles. Stress uses turbo scaled per frame.
pub fn contact_sheet(frames: &[SheetFrame], columns: usize) -> RgbImage {
    let size = frames.first().map_or(1, |f| f.labels.width());
    let scale = (128 / size).max(1);
    let tile = (size * scale) as u32;
    let columns = columns.clamp(1, frames.len().max(1));
    let rows = frames.len().div_ceil(columns) as u32;
    let group = 3 * tile + 2 * GAP;
    let width = columns as u32 * group + (columns as u32 + 1) * 3 * GAP;
    let height = HEADER + rows * (tile + GAP) + GAP;
    let mut sheet = RgbImage::from_pixel(width, height, Rgb([18, 18, 22]));
    let turbo = ColorMap::turbo();
    for c in 0..columns as u32 {
        let x = 3 * GAP + c * (group + 3 * GAP);
        for (k, title) in ["image", "label map", "stress"].iter().enumerate() {
            draw_text(
                &mut sheet,
                (x + k as u32 * (tile + GAP)) as f32,
                4.0,
                13.0,
                title,
                [220, 220, 220],
            );
        }
    }
    for (n, frame) in frames.iter().enumerate() {
        let x0 = 3 * GAP + (n % columns) as u32 * (group + 3 * GAP);
        let y0 = HEADER + (n / columns) as u32 * (tile + GAP);
        let range = frame.stress.map(|s| stress_range(s, frame.labels));
        for row in 0..size {
            for col in 0..size {
                let i = row * size + col;
                let grey = frame.image[i];
                let tissue = frame.labels.get(row, col);
                let stress_color = match (frame.stress, range) {
                    (Some(s), Some((lo, hi))) if tissue.is_solid() => {
                        turbo.map(f64::from(s[i]), lo, hi)
                    }
                    _ => tissue_color(tissue).map(|v| v / 3),
                };
                let colors = [[grey; 3], tissue_color(tissue), stress_color];
                for (k, color) in colors.iter().enumerate() {
                    for dy in 0..scale as u32 {
                        for dx in 0..scale as u32 {
                            sheet.put_pixel(
                                x0 + k as u32 * (tile + GAP) + col as u32 * scale as u32 + dx,
                                y0 + row as u32 * scale as u32 + dy,
                                Rgb(*color),
                            );
                        }
                    }
                }
            }
        }
    }
    sheet
}
