//! Raster output for people to look at: colour maps, text, stress previews with colour bars.

pub mod colormap;
pub mod sheet;
pub mod stress;
pub mod text;

pub use stress::{StressPreview, stress_preview};

/// An RGB image as PNG bytes.
pub fn encode_rgb_png(image: &image::RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encoding an RGB PNG in memory cannot fail");
    bytes
}

/// Writes an RGB image as a PNG, atomically.
pub fn write_rgb_png(
    path: &std::path::Path,
    image: &image::RgbImage,
) -> Result<(), crate::io::IoError> {
    crate::io::atomic::write_bytes(path, &encode_rgb_png(image))
}
