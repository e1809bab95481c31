//! Raster output for people to look at: colour maps, text, stress previews with colour bars.

pub mod colormap;
pub mod sheet;
pub mod stress;
pub mod text;

pub use stress::{StressPreview, stress_preview};

/// Writes an RGB image as a PNG, atomically.
pub fn write_rgb_png(
    path: &std::path::Path,
    image: &image::RgbImage,
) -> Result<(), crate::io::IoError> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encoding an RGB PNG in memory cannot fail");
    crate::io::atomic::write_bytes(path, &bytes)
}
