//! One DICOM frame to 8-bit grey, whatever its photometric interpretation and bit depth.
//!
//! Native (uncompressed) pixel data is sliced straight out of the parsed element, one
//! frame at a time, so a long pullback is never copied whole; compressed syntaxes go
//! through dicom-pixeldata's frame decoder, which hands back interleaved RGB for colour.

use std::borrow::Cow;

/// How the stored samples map to colour (PS3.3 C.7.6.3.1.2), with the palette when it has one.
#[derive(Debug, Clone, PartialEq)]
pub enum Photometric {
    Monochrome1,
    Monochrome2,
    Rgb,
    YbrFull,
    YbrFull422,
    Palette(Box<Palette>),
}

impl Photometric {
    /// The DICOM term, for messages and `sula info`.
    pub fn name(&self) -> &'static str {
        match self {
            Photometric::Monochrome1 => "MONOCHROME1",
            Photometric::Monochrome2 => "MONOCHROME2",
            Photometric::Rgb => "RGB",
            Photometric::YbrFull => "YBR_FULL",
            Photometric::YbrFull422 => "YBR_FULL_422",
            Photometric::Palette(_) => "PALETTE COLOR",
        }
    }
}

/// Red, green and blue lookup tables of a PALETTE COLOR image, scaled to 8 bits.
#[derive(Debug, Clone, PartialEq)]
pub struct Palette {
    /// The stored value that maps to the first entry.
    pub first: i64,
    pub red: Vec<u8>,
    pub green: Vec<u8>,
    pub blue: Vec<u8>,
}

/// The geometry and encoding of the samples of one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelLayout {
    pub rows: usize,
    pub cols: usize,
    pub samples_per_pixel: usize,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    /// Colour-by-plane (1) instead of colour-by-pixel (0).
    pub planar: bool,
    pub photometric: Photometric,
    /// VOI window (centre, width), used for more-than-8-bit grey.
    pub window: Option<(f64, f64)>,
}

impl PixelLayout {
    /// Bytes of one native frame.
    pub fn native_frame_bytes(&self) -> usize {
        let bytes_per_sample = usize::from(self.bits_allocated.div_ceil(8));
        let samples = match self.photometric {
            // Two luma samples share one Cb and one Cr.
            Photometric::YbrFull422 => self.rows * self.cols * 2,
            _ => self.rows * self.cols * self.samples_per_pixel,
        };
        samples * bytes_per_sample
    }
}

/// One frame's stored samples.
#[derive(Debug)]
pub enum Samples<'a> {
    U8(Cow<'a, [u8]>),
    U16(Cow<'a, [u16]>),
}

/// ITU-R BT.601 luma, the grey a viewer shows for a colour ultrasound frame.
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b) + 500) / 1000) as u8
}

/// Converts the samples of one frame to 8-bit grey, `rows × cols`, row-major.
pub fn to_grey(layout: &PixelLayout, samples: &Samples) -> Result<Vec<u8>, String> {
    let pixels = layout.rows * layout.cols;
    match (&layout.photometric, samples) {
        (Photometric::Monochrome1 | Photometric::Monochrome2, samples) => {
            let grey = monochrome(layout, samples, pixels)?;
            Ok(if layout.photometric == Photometric::Monochrome1 {
                grey.into_iter().map(|v| 255 - v).collect()
            } else {
                grey
            })
        }
        (Photometric::Palette(palette), samples) => {
            let values: Vec<i64> = match samples {
                Samples::U8(v) => v.iter().take(pixels).map(|&x| i64::from(x)).collect(),
                Samples::U16(v) => v.iter().take(pixels).map(|&x| i64::from(x)).collect(),
            };
            check_len(values.len(), pixels)?;
            let last = palette.red.len() as i64 - 1;
            Ok(values
                .into_iter()
                .map(|v| {
                    let i = (v - palette.first).clamp(0, last) as usize;
                    luma(palette.red[i], palette.green[i], palette.blue[i])
                })
                .collect())
        }
        (Photometric::Rgb | Photometric::YbrFull, Samples::U8(data)) => {
            check_len(data.len(), pixels * 3)?;
            let channel = |p: usize, c: usize| {
                if layout.planar {
                    data[c * pixels + p]
                } else {
                    data[p * 3 + c]
                }
            };
            Ok((0..pixels)
                .map(|p| {
                    if layout.photometric == Photometric::YbrFull {
                        channel(p, 0)
                    } else {
                        luma(channel(p, 0), channel(p, 1), channel(p, 2))
                    }
                })
                .collect())
        }
        (Photometric::YbrFull422, Samples::U8(data)) => {
            if !layout.cols.is_multiple_of(2) {
                return Err(format!(
                    "YBR_FULL_422 needs an even number of columns, got {}",
                    layout.cols
                ));
            }
            check_len(data.len(), pixels * 2)?;
            // Groups of four bytes: Y1 Y2 Cb Cr; the luma is all a grey frame needs.
            Ok(data
                .chunks_exact(4)
                .take(pixels / 2)
                .flat_map(|q| [q[0], q[1]])
                .collect())
        }
        (photometric, Samples::U16(_)) => Err(format!(
            "{}-bit {} colour is not supported; only 8-bit colour is",
            layout.bits_allocated,
            photometric.name()
        )),
    }
}

fn check_len(have: usize, need: usize) -> Result<(), String> {
    if have < need {
        Err(format!(
            "pixel data holds {have} samples for a frame that needs {need}"
        ))
    } else {
        Ok(())
    }
}

/// Grey samples to 8 bits: as they are at 8 bits; deeper ones through the VOI window when the
/// file gives one, else scaled over the stored bit range.
fn monochrome(layout: &PixelLayout, samples: &Samples, pixels: usize) -> Result<Vec<u8>, String> {
    match samples {
        Samples::U8(v) if layout.bits_allocated == 8 && !layout.signed => {
            check_len(v.len(), pixels)?;
            Ok(v[..pixels].to_vec())
        }
        _ => {
            let bits = layout.bits_stored.clamp(1, 16);
            let mask = if bits == 16 {
                u16::MAX
            } else {
                (1u16 << bits) - 1
            };
            let value = |raw: u16| -> f64 {
                let stored = raw & mask;
                if layout.signed && stored & (1 << (bits - 1)) != 0 {
                    f64::from(stored) - f64::from(1u32 << bits)
                } else {
                    f64::from(stored)
                }
            };
            let raw: Vec<u16> = match samples {
                Samples::U8(v) => v.iter().map(|&x| u16::from(x)).collect(),
                Samples::U16(v) => v.to_vec(),
            };
            check_len(raw.len(), pixels)?;
            let (low, high) = match layout.window {
                Some((centre, width)) if width >= 1.0 => (
                    centre - 0.5 - (width - 1.0) / 2.0,
                    centre - 0.5 + (width - 1.0) / 2.0,
                ),
                _ if layout.signed => {
                    let half = f64::from(1u32 << (bits - 1));
                    (-half, half - 1.0)
                }
                _ => (0.0, f64::from(mask)),
            };
            let span = (high - low).max(1.0);
            Ok(raw[..pixels]
                .iter()
                .map(|&r| ((value(r) - low) / span * 255.0).round().clamp(0.0, 255.0) as u8)
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(photometric: Photometric, samples_per_pixel: usize) -> PixelLayout {
        PixelLayout {
            rows: 1,
            cols: 2,
            samples_per_pixel,
            bits_allocated: 8,
            bits_stored: 8,
            signed: false,
            planar: false,
            photometric,
            window: None,
        }
    }

    #[test]
    fn monochrome1_is_inverted() {
        let grey = to_grey(
            &layout(Photometric::Monochrome1, 1),
            &Samples::U8(Cow::Borrowed(&[0, 200])),
        )
        .unwrap();
        assert_eq!(grey, vec![255, 55]);
    }

    #[test]
    fn colour_by_plane_and_by_pixel_agree() {
        let mut planar = layout(Photometric::Rgb, 3);
        let by_pixel = to_grey(
            &planar,
            &Samples::U8(Cow::Borrowed(&[255, 0, 0, 0, 0, 255])),
        )
        .unwrap();
        planar.planar = true;
        let by_plane = to_grey(
            &planar,
            &Samples::U8(Cow::Borrowed(&[255, 0, 0, 0, 0, 255])),
        )
        .unwrap();
        assert_eq!(by_pixel, vec![76, 29]);
        assert_eq!(by_plane, vec![76, 29]);
    }

    #[test]
    fn twelve_bit_grey_spans_the_stored_range() {
        let mut deep = layout(Photometric::Monochrome2, 1);
        deep.bits_allocated = 16;
        deep.bits_stored = 12;
        let grey = to_grey(&deep, &Samples::U16(Cow::Borrowed(&[0, 4095]))).unwrap();
        assert_eq!(grey, vec![0, 255]);
        deep.window = Some((100.5, 100.0));
        let windowed = to_grey(&deep, &Samples::U16(Cow::Borrowed(&[100, 4095]))).unwrap();
        assert_eq!(windowed, vec![128, 255]);
    }

    #[test]
    fn short_pixel_data_is_an_error_not_a_panic() {
        let err = to_grey(
            &layout(Photometric::Rgb, 3),
            &Samples::U8(Cow::Borrowed(&[1, 2])),
        )
        .unwrap_err();
        assert!(err.contains("holds 2 samples"), "{err}");
    }
}
