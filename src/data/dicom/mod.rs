//! DICOM IVUS pullbacks (docs/DESIGN.md §Datasets): a multi-frame ultrasound file, a folder of single-frame
//! files (ordered by Instance Number), or a folder of several pullbacks.
//!
//! Headers are read without their pixel data to list series; frames are then decoded one
//! at a time, cropped to the imaging area and resampled, so a pullback of thousands of
//! frames never sits in memory decoded at full size. Patient identifiers are never read
//! into anything sula prints, logs or exports.

pub mod crop;
pub mod pixels;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

pub use crop::{CropRect, CropSpec, FrameSelection};
use pixels::{Palette, Photometric, PixelLayout, Samples};

use crate::io::IoError;

/// The message of a folder without DICOM files, which callers try other layouts on.
pub const NO_DICOM: &str = "holds no DICOM files";

/// Transfer syntaxes whose pixel data is stored as plain samples.
const NATIVE_SYNTAXES: [&str; 4] = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
];

/// Where a series' pixel spacing came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DicomSpacing {
    /// Physical Delta X/Y of a Sequence of Ultrasound Regions item in cm.
    UltrasoundRegions,
    /// Pixel Spacing (0028,0030).
    PixelSpacing,
}

impl DicomSpacing {
    pub fn describe(self) -> &'static str {
        match self {
            DicomSpacing::UltrasoundRegions => "from the Sequence of Ultrasound Regions",
            DicomSpacing::PixelSpacing => "from Pixel Spacing",
        }
    }
}

/// One pullback: its files in frame order and the patient-free facts `sula info` shows.
#[derive(Debug, Clone)]
pub struct Series {
    /// Frame-id prefix: the file's or folder's path below the opened root.
    pub name: String,
    /// One multi-frame file, or single-frame files in Instance Number order.
    pub files: Vec<PathBuf>,
    /// Frames in each file.
    pub frames_per_file: Vec<u32>,
    pub rows: usize,
    pub cols: usize,
    pub transfer_syntax_uid: String,
    pub transfer_syntax_name: String,
    pub photometric: String,
    pub bits_allocated: u16,
    /// Spacing in mm per pixel of the stored frame, and where it came from.
    pub spacing: Option<(f64, DicomSpacing)>,
    pub frame_rate: Option<f64>,
    /// The imaging region (x0, y0, x1, y1, inclusive) of the Sequence of Ultrasound Regions.
    pub imaging_region: Option<[usize; 4]>,
}

impl Series {
    pub fn frame_count(&self) -> usize {
        self.frames_per_file.iter().map(|&n| n as usize).sum()
    }

    /// `(file, frame within the file)` of frame `index` of the series.
    pub fn locate(&self, mut index: usize) -> Option<(&Path, u32)> {
        for (file, &n) in self.files.iter().zip(&self.frames_per_file) {
            if index < n as usize {
                return Some((file, index as u32));
            }
            index -= n as usize;
        }
        None
    }
}

/// True when `path` is a file that starts with the DICOM preamble and "DICM" magic.
pub fn is_dicom_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 132];
    path.is_file()
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
        && &head[128..132] == b"DICM"
}

/// Lists the pullbacks at `path`: one file, or every DICOM file up to five folders below it.
pub fn scan(path: &Path) -> Result<Vec<Series>, IoError> {
    if path.is_file() {
        let header = Header::read(path)?;
        return Ok(vec![
            header.into_series(file_stem(path), vec![path.to_path_buf()]),
        ]);
    }
    let mut files = Vec::new();
    find_dicom(path, 0, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(IoError::format(path, NO_DICOM));
    }
    // Multi-frame files stand alone; single frames group by folder and series.
    let mut singles: BTreeMap<SeriesKey, Vec<SingleFrame>> = BTreeMap::new();
    let mut series = Vec::new();
    for file in files {
        let header = Header::read(&file)?;
        let relative = relative_name(path, &file);
        if header.frames > 1 || header.multi_frame_class {
            series.push(header.into_series(relative, vec![file]));
        } else {
            let folder = file.parent().unwrap_or(path).to_path_buf();
            let key = (folder, header.series_uid.clone());
            singles.entry(key).or_default().push((
                header.instance.unwrap_or(i64::MAX),
                file,
                header,
            ));
        }
    }
    let mut per_folder: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for (folder, _) in singles.keys() {
        *per_folder.entry(folder.clone()).or_default() += 1;
    }
    let mut seen: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for ((folder, _), mut members) in singles {
        members.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut name = relative_name(path, &folder);
        if per_folder[&folder] > 1 {
            let n = seen.entry(folder.clone()).or_default();
            *n += 1;
            name = format!("{name}-series{n}");
        }
        let first = &members[0].2;
        if let Some((_, file, h)) = members
            .iter()
            .find(|(_, _, h)| (h.rows, h.cols) != (first.rows, first.cols))
        {
            return Err(IoError::format(
                file,
                format!(
                    "is {}×{} but the other frames of its series are {}×{}",
                    h.cols, h.rows, first.cols, first.rows
                ),
            ));
        }
        let files: Vec<PathBuf> = members.iter().map(|(_, f, _)| f.clone()).collect();
        let header = members.swap_remove(0).2;
        let mut one = header.into_series(name, files);
        one.frames_per_file = vec![1; one.files.len()];
        series.push(one);
    }
    series.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(series)
}

/// A single-frame series: its folder and Series Instance UID.
type SeriesKey = (PathBuf, String);

/// A single-frame file: its Instance Number, path and header.
type SingleFrame = (i64, PathBuf, Header);

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pullback".into())
}

fn relative_name(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let text = relative
        .with_extension("")
        .to_string_lossy()
        .replace('\\', "/");
    if text.is_empty() {
        file_stem(root)
    } else {
        text
    }
}

fn find_dicom(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) -> Result<(), IoError> {
    if depth > 5 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(|e| IoError::io(dir, e))? {
        let path = entry.map_err(|e| IoError::io(dir, e))?.path();
        if path.is_dir() {
            find_dicom(&path, depth + 1, found)?;
        } else if is_dicom_file(&path) {
            found.push(path);
        }
    }
    Ok(())
}

/// What sula reads from a file's header; nothing here identifies a patient.
#[derive(Debug, Clone)]
struct Header {
    frames: u32,
    multi_frame_class: bool,
    rows: usize,
    cols: usize,
    series_uid: String,
    instance: Option<i64>,
    transfer_syntax_uid: String,
    photometric: String,
    bits_allocated: u16,
    spacing: Option<(f64, DicomSpacing)>,
    frame_rate: Option<f64>,
    imaging_region: Option<[usize; 4]>,
}

impl Header {
    fn read(path: &Path) -> Result<Header, IoError> {
        let object = OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(path)
            .map_err(|e| IoError::format(path, format!("is not a readable DICOM file ({e})")))?;
        let rows = int(&object, tags::ROWS).ok_or_else(|| missing(path, "Rows"))?;
        let cols = int(&object, tags::COLUMNS).ok_or_else(|| missing(path, "Columns"))?;
        if rows == 0 || cols == 0 {
            return Err(IoError::format(
                path,
                "has an empty image (0 rows or columns)",
            ));
        }
        let frame_rate = float(&object, tags::CINE_RATE)
            .or_else(|| float(&object, tags::RECOMMENDED_DISPLAY_FRAME_RATE))
            .or_else(|| {
                float(&object, tags::FRAME_TIME)
                    .filter(|&t| t > 0.0)
                    .map(|t| 1000.0 / t)
            })
            .filter(|r| r.is_finite() && *r > 0.0);
        let (spacing, imaging_region) = ultrasound_regions(&object);
        let spacing = spacing.or_else(|| {
            object
                .element_opt(tags::PIXEL_SPACING)
                .ok()
                .flatten()
                .and_then(|e| e.to_multi_float64().ok())
                .and_then(|v| v.first().copied())
                .filter(|mm| mm.is_finite() && *mm > 0.0)
                .map(|mm| (mm, DicomSpacing::PixelSpacing))
        });
        let sop_class = text(&object, tags::SOP_CLASS_UID).unwrap_or_default();
        Ok(Header {
            frames: int(&object, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as u32,
            multi_frame_class: sop_class == "1.2.840.10008.5.1.4.1.1.3.1",
            rows: rows as usize,
            cols: cols as usize,
            series_uid: text(&object, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
            instance: int(&object, tags::INSTANCE_NUMBER),
            transfer_syntax_uid: object
                .meta()
                .transfer_syntax()
                .trim_end_matches('\0')
                .to_owned(),
            photometric: text(&object, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default(),
            bits_allocated: int(&object, tags::BITS_ALLOCATED).unwrap_or(8) as u16,
            spacing,
            frame_rate,
            imaging_region,
        })
    }

    fn into_series(self, name: String, files: Vec<PathBuf>) -> Series {
        Series {
            name,
            frames_per_file: vec![self.frames; files.len()],
            files,
            rows: self.rows,
            cols: self.cols,
            transfer_syntax_name: syntax_name(&self.transfer_syntax_uid),
            transfer_syntax_uid: self.transfer_syntax_uid,
            photometric: self.photometric,
            bits_allocated: self.bits_allocated,
            spacing: self.spacing,
            frame_rate: self.frame_rate,
            imaging_region: self.imaging_region,
        }
    }
}

fn missing(path: &Path, what: &str) -> IoError {
    IoError::format(path, format!("has no {what} attribute"))
}

fn int(object: &InMemDicomObject, tag: dicom_core::Tag) -> Option<i64> {
    object.element_opt(tag).ok().flatten()?.to_int::<i64>().ok()
}

fn float(object: &InMemDicomObject, tag: dicom_core::Tag) -> Option<f64> {
    object.element_opt(tag).ok().flatten()?.to_float64().ok()
}

fn text(object: &InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    let value = object.element_opt(tag).ok().flatten()?.to_str().ok()?;
    Some(value.trim().trim_end_matches('\0').to_owned())
}

/// Spacing (mm) and bounds of the first 2-D tissue region measured in cm: the imaging area.
fn ultrasound_regions(
    object: &InMemDicomObject,
) -> (Option<(f64, DicomSpacing)>, Option<[usize; 4]>) {
    let Some(items) = object
        .element_opt(tags::SEQUENCE_OF_ULTRASOUND_REGIONS)
        .ok()
        .flatten()
        .and_then(|e| e.items())
    else {
        return (None, None);
    };
    for item in items {
        let cm = int(item, tags::PHYSICAL_UNITS_X_DIRECTION) == Some(3)
            && int(item, tags::PHYSICAL_UNITS_Y_DIRECTION) == Some(3);
        let (Some(dx), Some(dy)) = (
            float(item, tags::PHYSICAL_DELTA_X),
            float(item, tags::PHYSICAL_DELTA_Y),
        ) else {
            continue;
        };
        if !(cm && dx.is_finite() && dx > 0.0) {
            continue;
        }
        // Pixels are taken as square; the mean of the two deltas is the spacing.
        let mm = 10.0 * (dx + dy.abs()) / 2.0;
        let bounds = [
            tags::REGION_LOCATION_MIN_X0,
            tags::REGION_LOCATION_MIN_Y0,
            tags::REGION_LOCATION_MAX_X1,
            tags::REGION_LOCATION_MAX_Y1,
        ]
        .map(|tag| int(item, tag));
        let region = match bounds {
            [Some(x0), Some(y0), Some(x1), Some(y1)]
                if x1 > x0 && y1 > y0 && x0 >= 0 && y0 >= 0 =>
            {
                Some([x0 as usize, y0 as usize, x1 as usize, y1 as usize])
            }
            _ => None,
        };
        return (Some((mm, DicomSpacing::UltrasoundRegions)), region);
    }
    (None, None)
}

/// "JPEG Baseline (Process 1) (1.2.840.10008.1.2.4.50)", or the bare UID when unknown.
pub fn syntax_name(uid: &str) -> String {
    match TransferSyntaxRegistry.get(uid) {
        Some(ts) => format!("{} ({uid})", ts.name()),
        None => format!("unknown transfer syntax {uid}"),
    }
}

/// A DICOM file opened with its pixel data, ready to decode frames one at a time.
pub struct FrameReader {
    path: PathBuf,
    object: DefaultDicomObject,
    layout: PixelLayout,
    frames: u32,
    native: bool,
}

impl FrameReader {
    /// Opens `path` and checks that sula can decode its transfer syntax and photometric
    /// interpretation before any frame is asked for.
    pub fn open(path: &Path) -> Result<FrameReader, IoError> {
        let object = dicom_object::open_file(path)
            .map_err(|e| IoError::format(path, format!("is not a readable DICOM file ({e})")))?;
        let uid = object
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_owned();
        let native = NATIVE_SYNTAXES.contains(&uid.as_str());
        if !native {
            match TransferSyntaxRegistry.get(&uid) {
                Some(ts) if ts.can_decode_all() => {}
                _ => {
                    return Err(IoError::format(
                        path,
                        format!(
                            "uses the transfer syntax {}, which sula cannot decode; convert it (for example with `dcmdjpeg` or `gdcmconv --raw`) to an uncompressed one",
                            syntax_name(&uid)
                        ),
                    ));
                }
            }
        }
        let layout = layout(path, &object)?;
        let frames = int(&object, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as u32;
        if object
            .element_opt(tags::PIXEL_DATA)
            .ok()
            .flatten()
            .is_none()
        {
            return Err(IoError::format(path, "has no pixel data"));
        }
        Ok(FrameReader {
            path: path.to_path_buf(),
            object,
            layout,
            frames,
            native,
        })
    }

    pub fn frames(&self) -> u32 {
        self.frames
    }

    pub fn rows(&self) -> usize {
        self.layout.rows
    }

    pub fn cols(&self) -> usize {
        self.layout.cols
    }

    /// Frame `frame` as 8-bit grey, `rows × cols` row-major.
    pub fn grey(&self, frame: u32) -> Result<Vec<u8>, IoError> {
        let fail =
            |message: String| IoError::format(&self.path, format!("frame {frame}: {message}"));
        if frame >= self.frames {
            return Err(fail(format!(
                "out of range; the file has {} frames",
                self.frames
            )));
        }
        if self.native {
            let samples = self.native_frame(frame).map_err(fail)?;
            return pixels::to_grey(&self.layout, &samples).map_err(fail);
        }
        let decoded = self
            .object
            .decode_pixel_data_frame(frame)
            .map_err(|e| fail(format!("cannot be decoded ({e})")))?;
        let bytes = decoded
            .frame_data(0)
            .map_err(|e| fail(format!("cannot be decoded ({e})")))?;
        let samples = if decoded.bits_allocated() > 8 {
            Samples::U16(Cow::Owned(le_words(bytes)))
        } else {
            Samples::U8(Cow::Borrowed(bytes))
        };
        // Decoders hand colour back as interleaved RGB.
        let mut layout = self.layout.clone();
        if decoded.samples_per_pixel() == 3 {
            layout.photometric = Photometric::Rgb;
            layout.planar = false;
        }
        pixels::to_grey(&layout, &samples).map_err(fail)
    }

    /// The samples of one native frame, sliced from the parsed pixel data without copying the rest.
    fn native_frame(&self, frame: u32) -> Result<Samples<'_>, String> {
        let element = self
            .object
            .element(tags::PIXEL_DATA)
            .map_err(|e| e.to_string())?;
        let Value::Primitive(value) = element.value() else {
            return Err("native pixel data is encapsulated".into());
        };
        let bytes = self.layout.native_frame_bytes();
        let start = bytes * frame as usize;
        let short = |have: usize| {
            format!(
                "pixel data ends early: frame {frame} needs bytes {start}..{}, the element has {have} (the file may be truncated)",
                start + bytes
            )
        };
        match value {
            PrimitiveValue::U8(data) => {
                let slice = data
                    .get(start..start + bytes)
                    .ok_or_else(|| short(data.len()))?;
                Ok(if self.layout.bits_allocated > 8 {
                    Samples::U16(Cow::Owned(le_words(slice)))
                } else {
                    Samples::U8(Cow::Borrowed(slice))
                })
            }
            PrimitiveValue::U16(words) => {
                let (start, count) = (start / 2, bytes / 2);
                let slice = words
                    .get(start..start + count)
                    .ok_or_else(|| short(words.len() * 2))?;
                if self.layout.bits_allocated == 8 {
                    // 8-bit samples read as OW: two samples per little-endian word.
                    Ok(Samples::U8(Cow::Owned(
                        slice.iter().flat_map(|w| w.to_le_bytes()).collect(),
                    )))
                } else {
                    Ok(Samples::U16(Cow::Borrowed(slice)))
                }
            }
            _ => Err("pixel data is neither bytes nor 16-bit words".into()),
        }
    }
}

/// Little-endian byte pairs as 16-bit words (a trailing odd byte is dropped).
fn le_words(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// The pixel layout of an opened file, checked for what sula can convert to grey.
fn layout(path: &Path, object: &InMemDicomObject) -> Result<PixelLayout, IoError> {
    let rows = int(object, tags::ROWS).ok_or_else(|| missing(path, "Rows"))?;
    let cols = int(object, tags::COLUMNS).ok_or_else(|| missing(path, "Columns"))?;
    let samples = int(object, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let bits_allocated = int(object, tags::BITS_ALLOCATED).unwrap_or(8);
    let bits_stored = int(object, tags::BITS_STORED).unwrap_or(bits_allocated);
    let name = text(object, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    let photometric = match name.as_str() {
        "MONOCHROME1" => Photometric::Monochrome1,
        "MONOCHROME2" | "" => Photometric::Monochrome2,
        "RGB" => Photometric::Rgb,
        "YBR_FULL" => Photometric::YbrFull,
        "YBR_FULL_422" => Photometric::YbrFull422,
        // Lossy and reversible JPEG colour transforms decode to RGB.
        "YBR_ICT" | "YBR_RCT" | "YBR_PARTIAL_420" => Photometric::Rgb,
        "PALETTE COLOR" => Photometric::Palette(Box::new(palette(path, object)?)),
        other => {
            return Err(IoError::format(
                path,
                format!(
                    "has the photometric interpretation {other:?}, which sula does not support"
                ),
            ));
        }
    };
    if !(bits_allocated == 8 || bits_allocated == 16) {
        return Err(IoError::format(
            path,
            format!("has {bits_allocated} bits allocated per sample; sula reads 8 and 16"),
        ));
    }
    let expected = if matches!(
        photometric,
        Photometric::Monochrome1 | Photometric::Monochrome2 | Photometric::Palette(_)
    ) {
        1
    } else {
        3
    };
    if samples != expected {
        return Err(IoError::format(
            path,
            format!("has {samples} samples per pixel for {name}, which needs {expected}"),
        ));
    }
    let window = match (
        object
            .element_opt(tags::WINDOW_CENTER)
            .ok()
            .flatten()
            .and_then(|e| e.to_multi_float64().ok()),
        object
            .element_opt(tags::WINDOW_WIDTH)
            .ok()
            .flatten()
            .and_then(|e| e.to_multi_float64().ok()),
    ) {
        (Some(c), Some(w)) if !c.is_empty() && !w.is_empty() => Some((c[0], w[0])),
        _ => None,
    };
    Ok(PixelLayout {
        rows: rows as usize,
        cols: cols as usize,
        samples_per_pixel: samples as usize,
        bits_allocated: bits_allocated as u16,
        bits_stored: bits_stored.clamp(1, bits_allocated) as u16,
        signed: int(object, tags::PIXEL_REPRESENTATION) == Some(1),
        planar: int(object, tags::PLANAR_CONFIGURATION) == Some(1),
        photometric,
        window,
    })
}

/// The three palette lookup tables (PS3.3 C.7.6.3.1.5), scaled to 8 bits.
fn palette(path: &Path, object: &InMemDicomObject) -> Result<Palette, IoError> {
    let channel = |descriptor: dicom_core::Tag, data: dicom_core::Tag, colour: &str| {
        let bad = |what: &str| {
            IoError::format(
                path,
                format!("PALETTE COLOR image with {what} {colour} lookup table"),
            )
        };
        let d = object
            .element_opt(descriptor)
            .ok()
            .flatten()
            .and_then(|e| e.to_multi_int::<i64>().ok())
            .filter(|d| d.len() == 3)
            .ok_or_else(|| bad("no or a malformed descriptor for its"))?;
        let entries = if d[0] <= 0 { 65536 } else { d[0] as usize };
        let bits = d[2];
        let element = object
            .element_opt(data)
            .ok()
            .flatten()
            .ok_or_else(|| bad("no data for its"))?;
        let words: Vec<u16> = match element.value() {
            Value::Primitive(PrimitiveValue::U16(v)) => v.to_vec(),
            Value::Primitive(PrimitiveValue::U8(b)) if bits > 8 => le_words(b),
            Value::Primitive(PrimitiveValue::U8(b)) => b.iter().map(|&x| u16::from(x)).collect(),
            _ => return Err(bad("unreadable data in its")),
        };
        if words.len() < entries {
            return Err(bad("too few entries in its"));
        }
        let shift = if bits > 8 { 8 } else { 0 };
        Ok((
            d[1],
            words[..entries]
                .iter()
                .map(|&w| (w >> shift) as u8)
                .collect::<Vec<u8>>(),
        ))
    };
    let (first, red) = channel(
        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        "red",
    )?;
    let (_, green) = channel(
        tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        "green",
    )?;
    let (_, blue) = channel(
        tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        "blue",
    )?;
    if red.len() != green.len() || red.len() != blue.len() {
        return Err(IoError::format(
            path,
            "PALETTE COLOR image whose red, green and blue tables differ in length",
        ));
    }
    Ok(Palette {
        first,
        red,
        green,
        blue,
    })
}
