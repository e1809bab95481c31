//! Text on RGB images with the Hack font that egui also ships, so PNG outputs need no
//! system fonts.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::RgbImage;

fn font() -> FontRef<'static> {
    FontRef::try_from_slice(epaint_default_fonts::HACK_REGULAR).expect("embedded font parses")
}

/// Width in pixels of `text` at `size` px.
pub fn text_width(text: &str, size: f32) -> f32 {
    let font = font();
    let scaled = font.as_scaled(PxScale::from(size));
    text.chars()
        .map(|c| scaled.h_advance(font.glyph_id(c)))
        .sum()
}

/// Draws `text` with its top-left corner at (x, y), alpha-blended in `color`.
pub fn draw_text(image: &mut RgbImage, x: f32, y: f32, size: f32, text: &str, color: [u8; 3]) {
    let font = font();
    let scale = PxScale::from(size);
    let scaled = font.as_scaled(scale);
    let mut caret = x;
    for c in text.chars() {
        let id = font.glyph_id(c);
        let glyph = id.with_scale_and_position(scale, point(caret, y + scaled.ascent()));
        caret += scaled.h_advance(id);
        let Some(outline) = font.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let px = bounds.min.x as i64 + i64::from(gx);
            let py = bounds.min.y as i64 + i64::from(gy);
            if px < 0 || py < 0 || px >= i64::from(image.width()) || py >= i64::from(image.height())
            {
                return;
            }
            let pixel = image.get_pixel_mut(px as u32, py as u32);
            for (channel, &target) in pixel.0.iter_mut().zip(&color) {
                let blended = f32::from(*channel) * (1.0 - coverage) + f32::from(target) * coverage;
                *channel = blended.round() as u8;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_visible_text() {
        let mut image = RgbImage::new(80, 24);
        draw_text(&mut image, 2.0, 2.0, 16.0, "kPa 12", [255, 255, 255]);
        let lit = image.pixels().filter(|p| p.0[0] > 128).count();
        assert!(lit > 20, "only {lit} pixels lit");
        assert!(text_width("kPa 12", 16.0) > 30.0);
    }
}
