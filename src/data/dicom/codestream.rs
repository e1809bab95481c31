//! The headers inside compressed frames, checked against the frame the file declares before
//! a decoder sees them.
//!
//! dicom-rs's decoders size their buffers from these headers and copy into one sized from
//! Rows and Columns; a header that disagrees makes them ask for gigabytes or index past the
//! end. Checking the few fields they trust turns that into a clear error.

/// RLE Lossless (PS3.5 G).
const RLE: &str = "1.2.840.10008.1.2.5";
/// JPEG Baseline, Extended, Lossless and Lossless SV1 (PS3.5 A.4.1).
const JPEG: [&str; 4] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
];
/// JPEG 2000 lossless and lossy (PS3.5 A.4.4).
const J2K: [&str; 2] = ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"];

/// What a frame must hold: its size and samples as the file declares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub rows: usize,
    pub cols: usize,
    pub samples: usize,
    pub bytes_per_sample: usize,
}

/// Checks the first fragment of a frame compressed with transfer syntax `uid`.
pub fn check(uid: &str, fragment: &[u8], expected: Expected) -> Result<(), String> {
    if uid == RLE {
        rle(fragment, expected.samples * expected.bytes_per_sample)
    } else if JPEG.contains(&uid) {
        jpeg(fragment, expected)
    } else if J2K.contains(&uid) {
        j2k(fragment, expected)
    } else {
        Ok(())
    }
}

fn be16(bytes: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes(
        bytes.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn be32(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u32::from_be_bytes(
        bytes.get(at..at + 4)?.try_into().ok()?,
    )))
}

/// The 64-byte RLE header: one segment per sample byte, each starting inside the fragment.
fn rle(fragment: &[u8], segments: usize) -> Result<(), String> {
    let word = |i: usize| {
        u32::from_le_bytes([
            fragment[4 * i],
            fragment[4 * i + 1],
            fragment[4 * i + 2],
            fragment[4 * i + 3],
        ]) as usize
    };
    if fragment.len() < 64 {
        return Err(format!(
            "its RLE data is {} bytes, shorter than the 64-byte RLE header",
            fragment.len()
        ));
    }
    let listed = word(0);
    if !(1..=15).contains(&listed) || listed != segments {
        return Err(format!(
            "its RLE header lists {listed} segments where its samples need {segments}"
        ));
    }
    let offsets: Vec<usize> = (1..=segments).map(word).collect();
    let in_order = offsets.windows(2).all(|w| w[0] <= w[1]);
    if !in_order || offsets[0] < 64 || offsets[segments - 1] > fragment.len() {
        return Err(format!(
            "its RLE header places segments at {offsets:?}, outside the {} bytes of the frame",
            fragment.len()
        ));
    }
    Ok(())
}

/// The first JPEG frame header (SOF): its size and components must be the file's.
fn jpeg(fragment: &[u8], expected: Expected) -> Result<(), String> {
    if fragment.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err("its JPEG data does not start with a start-of-image marker".into());
    }
    let mut at = 2;
    loop {
        // Markers are 0xFF then a code, optionally after 0xFF fill bytes.
        if fragment.get(at) != Some(&0xFF) {
            return Ok(());
        }
        while fragment.get(at) == Some(&0xFF) {
            at += 1;
        }
        let Some(&code) = fragment.get(at) else {
            return Ok(());
        };
        at += 1;
        match code {
            0x01 | 0xD0..=0xD8 => continue,
            // Start of scan or end of image before a frame header: the decoder says why.
            0xD9 | 0xDA => return Ok(()),
            _ => {}
        }
        let Some(len) = be16(fragment, at) else {
            return Ok(());
        };
        let frame_header = matches!(code, 0xC0..=0xCF) && !matches!(code, 0xC4 | 0xC8 | 0xCC);
        if frame_header {
            let (Some(height), Some(width), Some(&components)) = (
                be16(fragment, at + 3),
                be16(fragment, at + 5),
                fragment.get(at + 7),
            ) else {
                return Ok(());
            };
            return agree("JPEG", width, height, usize::from(components), expected);
        }
        at += len;
    }
}

/// The JPEG 2000 image and tile size (SIZ) of a raw codestream; a JP2 file is left to the
/// decoder.
fn j2k(fragment: &[u8], expected: Expected) -> Result<(), String> {
    if fragment.get(..4) != Some(&[0xFF, 0x4F, 0xFF, 0x51]) {
        return Ok(());
    }
    let field = |at: usize| be32(fragment, at);
    let (
        Some(x),
        Some(y),
        Some(x0),
        Some(y0),
        Some(tile_w),
        Some(tile_h),
        Some(tile_x0),
        Some(tile_y0),
        Some(components),
    ) = (
        field(8),
        field(12),
        field(16),
        field(20),
        field(24),
        field(28),
        field(32),
        field(36),
        be16(fragment, 40),
    )
    else {
        return Err("its JPEG 2000 image header is cut short".into());
    };
    let bad = || Err("its JPEG 2000 image header is inconsistent".to_string());
    if x <= x0 || y <= y0 || tile_w == 0 || tile_h == 0 || tile_x0 > x0 || tile_y0 > y0 {
        return bad();
    }
    if tile_x0 + tile_w <= x0 || tile_y0 + tile_h <= y0 {
        return bad();
    }
    // A codestream numbers its tiles with 16 bits.
    let tiles = (x - tile_x0).div_ceil(tile_w) * (y - tile_y0).div_ceil(tile_h);
    if tiles > 65_535 {
        return bad();
    }
    for c in 0..components {
        match (fragment.get(42 + 3 * c + 1), fragment.get(42 + 3 * c + 2)) {
            (Some(&dx), Some(&dy)) if dx > 0 && dy > 0 => {}
            _ => return bad(),
        }
    }
    agree(
        "JPEG 2000",
        (x - x0) as usize,
        (y - y0) as usize,
        components,
        expected,
    )
}

fn agree(
    format: &str,
    width: usize,
    height: usize,
    components: usize,
    expected: Expected,
) -> Result<(), String> {
    if (width, height) != (expected.cols, expected.rows) {
        return Err(format!(
            "its {format} data is {width}×{height} pixels, but the file declares {}×{}",
            expected.cols, expected.rows
        ));
    }
    if components != expected.samples {
        return Err(format!(
            "its {format} data has {components} components, but the file declares {} samples per pixel",
            expected.samples
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREY: Expected = Expected {
        rows: 40,
        cols: 48,
        samples: 1,
        bytes_per_sample: 1,
    };

    fn rle_header(count: u32, offsets: &[u32], len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        bytes[..4].copy_from_slice(&count.to_le_bytes());
        for (i, o) in offsets.iter().enumerate() {
            bytes[4 + 4 * i..8 + 4 * i].copy_from_slice(&o.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn rle_headers_must_list_one_segment_per_sample_byte_inside_the_frame() {
        assert!(rle(&rle_header(1, &[64], 100), 1).is_ok());
        let wrong_count = rle(&rle_header(3, &[64, 70, 80], 100), 1).unwrap_err();
        assert!(wrong_count.contains("lists 3 segments"), "{wrong_count}");
        let outside = rle(&rle_header(1, &[400], 100), 1).unwrap_err();
        assert!(outside.contains("outside the 100 bytes"), "{outside}");
        let huge = rle(&rle_header(u32::MAX, &[], 100), 1).unwrap_err();
        assert!(huge.contains("segments"), "{huge}");
        assert!(rle(&[0u8; 10], 1).unwrap_err().contains("shorter"));
    }

    #[test]
    fn a_jpeg_frame_header_must_match_the_declared_size() {
        // SOI, an APP0 segment to skip, then SOF0 of 48×40 with one component.
        let mut jpeg_bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00];
        jpeg_bytes.extend([0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 40, 0x00, 48, 0x01]);
        assert!(jpeg(&jpeg_bytes, GREY).is_ok());
        jpeg_bytes[13] = 0xFF;
        let err = jpeg(&jpeg_bytes, GREY).unwrap_err();
        assert!(err.contains("48×65320 pixels"), "{err}");
        assert!(jpeg(&[0x00, 0x01], GREY).is_err());
    }

    #[test]
    fn a_j2k_codestream_must_match_the_declared_size_and_keep_its_tiles_few() {
        let mut siz = vec![0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x29, 0x00, 0x00];
        for v in [48u32, 40, 0, 0, 48, 40, 0, 0] {
            siz.extend(v.to_be_bytes());
        }
        siz.extend([0x00, 0x01, 0x07, 0x01, 0x01]);
        assert!(j2k(&siz, GREY).is_ok());
        let mut tiny_tiles = siz.clone();
        tiny_tiles[24..28].copy_from_slice(&1u32.to_be_bytes());
        tiny_tiles[8..12].copy_from_slice(&200_000u32.to_be_bytes());
        tiny_tiles[16..20].copy_from_slice(&199_952u32.to_be_bytes());
        assert!(j2k(&tiny_tiles, GREY).unwrap_err().contains("inconsistent"));
        let mut wide = siz.clone();
        wide[8..12].copy_from_slice(&4800u32.to_be_bytes());
        wide[24..28].copy_from_slice(&4800u32.to_be_bytes());
        assert!(j2k(&wide, GREY).unwrap_err().contains("4800×40"));
    }
}
