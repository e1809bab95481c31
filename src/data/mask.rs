//! Label-map PNG files: 8-bit single-channel, values 0–4 (docs/DESIGN.md §Label values).

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, ImageReader};

use crate::io::{IoError, atomic};
use crate::labels::{LabelMap, LabelMapError};

/// Reads and validates a label-map PNG; every failure names the file.
pub fn read_mask(path: &Path) -> Result<LabelMap, IoError> {
    let bytes = std::fs::read(path).map_err(|e| IoError::io(path, e))?;
    let image = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| IoError::io(path, e))?
        .decode()
        .map_err(|e| IoError::format(path, format!("not a readable image ({e})")))?;
    let image::DynamicImage::ImageLuma8(grey) = image else {
        return Err(IoError::format(
            path,
            format!(
                "expected an 8-bit single-channel label map, found {:?}",
                image.color()
            ),
        ));
    };
    let (width, height) = (grey.width() as usize, grey.height() as usize);
    LabelMap::new(width, height, grey.into_raw()).map_err(|e| match e {
        LabelMapError::InvalidValue { .. } => IoError::format(path, e.to_string()),
        other => IoError::format(path, other.to_string()),
    })
}

/// Writes a label map as an 8-bit grey PNG (atomically).
pub fn write_mask(path: &Path, map: &LabelMap) -> Result<(), IoError> {
    write_grey_png(path, map.width(), map.height(), map.values())
}

/// Writes 8-bit grey pixels (row-major) as a PNG (atomically).
pub fn write_grey_png(
    path: &Path,
    width: usize,
    height: usize,
    pixels: &[u8],
) -> Result<(), IoError> {
    atomic::write_bytes(path, &encode_grey_png(width, height, pixels))
}

/// Encodes 8-bit grey pixels (row-major) as PNG bytes.
pub fn encode_grey_png(width: usize, height: usize, pixels: &[u8]) -> Vec<u8> {
    let image = image::GrayImage::from_raw(width as u32, height as u32, pixels.to_vec())
        .expect("pixel count matches the size");
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .expect("encoding a grey PNG in memory cannot fail");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shapes::annulus;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.png");
        let map = annulus(32, 6.0, 12.0);
        write_mask(&path, &map).unwrap();
        assert_eq!(read_mask(&path).unwrap(), map);
    }

    #[test]
    fn invalid_value_and_colour_and_truncation_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seven.png");
        write_grey_png(&path, 2, 2, &[0, 1, 7, 2]).unwrap();
        let message = read_mask(&path).unwrap_err().to_string();
        assert!(
            message.contains("seven.png") && message.contains("7"),
            "{message}"
        );

        let rgb = dir.path().join("rgb.png");
        image::RgbImage::new(4, 4).save(&rgb).unwrap();
        let message = read_mask(&rgb).unwrap_err().to_string();
        assert!(
            message.contains("rgb.png") && message.contains("single-channel"),
            "{message}"
        );

        let cut = dir.path().join("cut.png");
        write_mask(&cut, &annulus(32, 6.0, 12.0)).unwrap();
        let bytes = std::fs::read(&cut).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let message = read_mask(&cut).unwrap_err().to_string();
        assert!(message.contains("cut.png"), "{message}");
    }
}
