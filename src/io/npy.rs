//! 2-D float32 `.npy` arrays (row-major), the on-disk format of stress maps.

use std::path::Path;

use npyz::WriterBuilder;

use super::{IoError, atomic};

/// A row-major 2-D float32 array.
#[derive(Debug, Clone, PartialEq)]
pub struct Array2 {
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

/// Encodes `data` (row-major, `height` × `width`) as a little-endian float32 `.npy`.
pub fn encode_f32(height: usize, width: usize, data: &[f32]) -> Vec<u8> {
    assert_eq!(
        data.len(),
        height * width,
        "array data must match its shape"
    );
    let mut bytes = Vec::with_capacity(128 + 4 * data.len());
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[height as u64, width as u64])
        .writer(&mut bytes)
        .begin_nd()
        .expect("writing to memory cannot fail");
    writer
        .extend(data.iter().copied())
        .expect("writing to memory cannot fail");
    writer.finish().expect("writing to memory cannot fail");
    bytes
}

/// Writes [`encode_f32`] to `path` atomically.
pub fn write_f32(path: &Path, height: usize, width: usize, data: &[f32]) -> Result<(), IoError> {
    atomic::write_bytes(path, &encode_f32(height, width, data))
}

/// Reads a 2-D float32 (or float64, converted) C-order `.npy`.
pub fn read_f32(path: &Path) -> Result<Array2, IoError> {
    let bytes = std::fs::read(path).map_err(|e| IoError::io(path, e))?;
    let file = npyz::NpyFile::new(&bytes[..])
        .map_err(|e| IoError::format(path, format!("not a valid .npy file ({e})")))?;
    let shape = file.shape().to_vec();
    if shape.len() != 2 {
        return Err(IoError::format(
            path,
            format!("expected a 2-D array, found shape {shape:?}"),
        ));
    }
    if file.order() != npyz::Order::C {
        return Err(IoError::format(
            path,
            "expected a row-major (C-order) array",
        ));
    }
    let (height, width) = (shape[0] as usize, shape[1] as usize);
    let dtype = file.dtype();
    let truncated =
        |e: std::io::Error| IoError::format(path, format!("truncated or unreadable data ({e})"));
    let data: Vec<f32> = match file.try_data::<f32>() {
        Ok(reader) => reader.collect::<Result<_, _>>().map_err(truncated)?,
        Err(file) => match file.try_data::<f64>() {
            Ok(reader) => reader
                .collect::<Result<Vec<f64>, _>>()
                .map_err(truncated)?
                .into_iter()
                .map(|v| v as f32)
                .collect(),
            Err(_) => {
                return Err(IoError::format(
                    path,
                    format!("expected float32 data, found {}", dtype.descr()),
                ));
            }
        },
    };
    if data.len() != height * width {
        return Err(IoError::format(
            path,
            "data length does not match the shape",
        ));
    }
    Ok(Array2 {
        height,
        width,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_numpy_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.npy");
        let data: Vec<f32> = (0..6).map(|i| i as f32 * 1.5).collect();
        write_f32(&path, 2, 3, &data).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..6], b"\x93NUMPY");
        let header = String::from_utf8_lossy(&bytes[10..80]);
        assert!(header.contains("'descr': '<f4'"), "{header}");
        assert!(header.contains("'shape': (2, 3"), "{header}");
        let back = read_f32(&path).unwrap();
        assert_eq!((back.height, back.width), (2, 3));
        assert_eq!(back.data, data);
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.npy");
        std::fs::write(&path, b"\x93NUMPY garbage").unwrap();
        let message = read_f32(&path).unwrap_err().to_string();
        assert!(message.contains("bad.npy"), "{message}");
        write_f32(&path, 4, 4, &[0.0; 16]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        assert!(read_f32(&path).is_err());
    }
}
