//! Colour-mapped stress previews with a kPa colour bar.

use image::{Rgb, RgbImage};

use super::colormap::ColorMap;
use super::text::{draw_text, text_width};
use crate::labels::{LabelMap, Tissue};

/// What to draw: a stress map, the label map it belongs to, and a title.
#[derive(Debug, Clone, Copy)]
pub struct StressPreview<'a> {
    pub stress: &'a [f32],
    pub labels: &'a LabelMap,
    pub title: &'a str,
}

const BACKGROUND: [u8; 3] = [24, 24, 28];
const FOREGROUND: [u8; 3] = [230, 230, 230];
const LUMEN: [u8; 3] = [0, 0, 0];
const OUTSIDE: [u8; 3] = [56, 56, 60];

/// Colour range of a preview: from min(0, lowest solid value) to the highest solid value.
pub fn stress_range(stress: &[f32], labels: &LabelMap) -> (f64, f64) {
    let solid = stress
        .iter()
        .zip(labels.values())
        .filter(|(_, l)| Tissue::from_value(**l).is_some_and(Tissue::is_solid))
        .map(|(s, _)| f64::from(*s));
    let (lo, hi) = solid.fold((0.0f64, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi > lo { (lo, hi) } else { (lo, lo + 1.0) }
}

/// Renders the preview: the map scaled up to about 384 px (solid pixels in turbo, lumen
/// black, outside dark grey), a title, and a colour bar with ticks in kPa.
pub fn stress_preview(preview: &StressPreview) -> RgbImage {
    let (w, h) = (preview.labels.width(), preview.labels.height());
    let scale = (384 / w.max(h)).max(1);
    let (map_w, map_h) = ((w * scale) as u32, (h * scale) as u32);
    let (margin, title_h, bar_w, legend_w) = (12u32, 30u32, 18u32, 90u32);
    let width = margin + map_w + margin + bar_w + legend_w;
    let height = title_h + map_h + margin;
    let mut image = RgbImage::from_pixel(width, height, Rgb(BACKGROUND));
    let colors = ColorMap::turbo();
    let (lo, hi) = stress_range(preview.stress, preview.labels);

    for row in 0..h {
        for col in 0..w {
            let i = row * w + col;
            let color = match preview.labels.get(row, col) {
                Tissue::Lumen => LUMEN,
                Tissue::Outside => OUTSIDE,
                _ => colors.map(f64::from(preview.stress[i]), lo, hi),
            };
            for dy in 0..scale {
                for dx in 0..scale {
                    image.put_pixel(
                        margin + (col * scale + dx) as u32,
                        title_h + (row * scale + dy) as u32,
                        Rgb(color),
                    );
                }
            }
        }
    }

    draw_text(
        &mut image,
        margin as f32,
        6.0,
        16.0,
        preview.title,
        FOREGROUND,
    );
    let bar_x = margin + map_w + margin;
    for y in 0..map_h {
        let t = 1.0 - f64::from(y) / f64::from(map_h.max(2) - 1);
        let color = colors.map(lo + t * (hi - lo), lo, hi);
        for x in 0..bar_w {
            image.put_pixel(bar_x + x, title_h + y, Rgb(color));
        }
    }
    let unit = "kPa";
    let unit_x = bar_x + bar_w / 2;
    draw_text(
        &mut image,
        unit_x as f32 - text_width(unit, 13.0) / 2.0,
        title_h as f32 - 15.0,
        13.0,
        unit,
        FOREGROUND,
    );
    let ticks = 5;
    for k in 0..ticks {
        let t = k as f64 / (ticks - 1) as f64;
        let value = lo + t * (hi - lo);
        let y = title_h as f64 + (1.0 - t) * f64::from(map_h - 1);
        for x in 0..5 {
            image.put_pixel(bar_x + bar_w + x, y as u32, Rgb(FOREGROUND));
        }
        let label = format_tick(value, hi - lo);
        draw_text(
            &mut image,
            (bar_x + bar_w + 8) as f32,
            (y - 7.0).clamp(0.0, f64::from(height) - 14.0) as f32,
            13.0,
            &label,
            FOREGROUND,
        );
    }
    image
}

/// A tick label with as many decimals as the range needs.
fn format_tick(value: f64, range: f64) -> String {
    if range >= 20.0 {
        format!("{value:.0}")
    } else if range >= 2.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shapes::annulus;

    #[test]
    fn solid_pixels_are_coloured_by_value() {
        let labels = annulus(32, 6.0, 14.0);
        let stress: Vec<f32> = (0..32 * 32).map(|i| (i % 32) as f32).collect();
        let image = stress_preview(&StressPreview {
            stress: &stress,
            labels: &labels,
            title: "test",
        });
        let scale = 384 / 32;
        // Centre pixel is lumen: black.
        let centre = image.get_pixel(12 + 16 * scale as u32, 30 + 16 * scale as u32);
        assert_eq!(centre.0, LUMEN);
        // Wall pixels on the left and right of the ring get different colours.
        let left = image.get_pixel(12 + 4 * scale as u32, 30 + 16 * scale as u32);
        let right = image.get_pixel(12 + 27 * scale as u32, 30 + 16 * scale as u32);
        assert_ne!(left.0, right.0);
        assert_ne!(left.0, OUTSIDE);
    }
}
