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

/// Indirect segments copying indirect segments deeper than this are refused.
const MAX_INDIRECTION: usize = 8;

/// Segments expanded, indirect copies included, before a table is refused as circular.
const MAX_SEGMENTS: usize = 1 << 20;

/// Expands Segmented Palette Color Lookup Table Data (PS3.3 C.7.9.2) to its first `entries`
/// values. The offset of an indirect segment counts the data's words from its start, as
/// pydicom and GDCM read it.
pub fn expand_segmented(data: &[u16], entries: usize) -> Result<Vec<u16>, String> {
    let mut table = Vec::with_capacity(entries);
    let mut budget = MAX_SEGMENTS;
    expand(data, 0, None, entries, 0, &mut budget, &mut table)?;
    if table.len() < entries {
        return Err(format!(
            "segments that expand to {} of its {entries} entries",
            table.len()
        ));
    }
    table.truncate(entries);
    Ok(table)
}

/// Expands `count` segments (all, when `None`) from word `at` onto `table`, stopping once it
/// holds `entries`.
fn expand(
    data: &[u16],
    mut at: usize,
    count: Option<usize>,
    entries: usize,
    depth: usize,
    budget: &mut usize,
    table: &mut Vec<u16>,
) -> Result<(), String> {
    let mut done = 0;
    // A trailing odd word is padding; every segment is at least three words.
    while at + 1 < data.len() && count.is_none_or(|c| done < c) && table.len() < entries {
        *budget = budget
            .checked_sub(1)
            .ok_or("segments that refer to one another without end")?;
        let (opcode, length) = (data[at], usize::from(data[at + 1]));
        match opcode {
            0 => {
                let values = data
                    .get(at + 2..at + 2 + length)
                    .ok_or("a discrete segment that runs past the end of its data")?;
                table.extend_from_slice(values);
                at += 2 + length;
            }
            1 => {
                let &start = table
                    .last()
                    .ok_or("a linear segment with no value before it to start from")?;
                let &end = data
                    .get(at + 2)
                    .ok_or("a linear segment cut off by the end of its data")?;
                let (y0, y1) = (f64::from(start), f64::from(end));
                table.extend(
                    (1..=length)
                        .map(|i| (y0 + (y1 - y0) * i as f64 / length as f64).round() as u16),
                );
                at += 3;
            }
            2 => {
                if table.is_empty() {
                    return Err("an indirect segment with no segment before it".into());
                }
                let (Some(&low), Some(&high)) = (data.get(at + 2), data.get(at + 3)) else {
                    return Err("an indirect segment cut off by the end of its data".into());
                };
                let offset = (usize::from(high) << 16) | usize::from(low);
                if offset >= at || depth >= MAX_INDIRECTION {
                    return Err(format!(
                        "an indirect segment at word {at} that copies from word {offset}, not from a segment before it"
                    ));
                }
                expand(
                    data,
                    offset,
                    Some(length),
                    entries,
                    depth + 1,
                    budget,
                    table,
                )?;
                at += 4;
            }
            other => return Err(format!("a segment of the unknown type {other}")),
        }
        done += 1;
    }
    Ok(())
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
            let stored = stored_value(layout);
            let values: Vec<i64> = match samples {
                Samples::U8(v) => v
                    .iter()
                    .take(pixels)
                    .map(|&x| stored(u16::from(x)))
                    .collect(),
                Samples::U16(v) => v.iter().take(pixels).map(|&x| stored(x)).collect(),
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

/// The value a stored sample holds: its Bits Stored, sign-extended for signed pixels.
fn stored_value(layout: &PixelLayout) -> impl Fn(u16) -> i64 {
    let bits = layout.bits_stored.clamp(1, 16);
    let mask = if bits == 16 {
        u16::MAX
    } else {
        (1u16 << bits) - 1
    };
    let signed = layout.signed;
    move |raw: u16| {
        let stored = raw & mask;
        if signed && stored & (1 << (bits - 1)) != 0 {
            i64::from(stored) - (1i64 << bits)
        } else {
            i64::from(stored)
        }
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
            let stored = stored_value(layout);
            let value = |raw: u16| stored(raw) as f64;
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
    fn segmented_tables_expand_discrete_linear_and_indirect_segments() {
        // 2 discrete values, a linear ramp of 3 to 40, then a copy of the ramp (from 40 to 40).
        let data = [0, 2, 5, 10, 1, 3, 40, 2, 1, 4, 0];
        let table = expand_segmented(&data, 8).unwrap();
        assert_eq!(table, vec![5, 10, 20, 30, 40, 40, 40, 40]);
        // An odd trailing word is padding.
        assert_eq!(expand_segmented(&[0, 1, 7, 0], 1).unwrap(), vec![7]);
    }

    #[test]
    fn broken_segmented_tables_are_errors_not_panics_or_loops() {
        let short = expand_segmented(&[0, 2, 5, 10], 4).unwrap_err();
        assert!(short.contains("2 of its 4 entries"), "{short}");
        let past = expand_segmented(&[0, 9, 5], 4).unwrap_err();
        assert!(past.contains("runs past"), "{past}");
        assert!(
            expand_segmented(&[1, 4, 9], 4)
                .unwrap_err()
                .contains("linear")
        );
        // An indirect segment that copies itself, or one after it.
        let circular = expand_segmented(&[0, 1, 5, 2, 1, 3, 0], 4).unwrap_err();
        assert!(
            circular.contains("not from a segment before it"),
            "{circular}"
        );
        assert!(
            expand_segmented(&[0, 1, 5, 7, 1, 0], 4)
                .unwrap_err()
                .contains("unknown type 7")
        );
    }

    #[test]
    fn palette_indices_are_the_stored_bits_and_clamp_to_the_table() {
        let palette = Palette {
            first: 0,
            red: vec![0, 100, 200],
            green: vec![0, 100, 200],
            blue: vec![0, 100, 200],
        };
        let mut deep = layout(Photometric::Palette(Box::new(palette)), 1);
        deep.bits_allocated = 16;
        deep.bits_stored = 12;
        // The bits above Bits Stored are not part of the index; past the table is its last entry.
        let grey = to_grey(&deep, &Samples::U16(Cow::Borrowed(&[0xF001, 9]))).unwrap();
        assert_eq!(grey, vec![100, 200]);
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
