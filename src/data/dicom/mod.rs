//! DICOM IVUS pullbacks (docs/DESIGN.md §Datasets): a multi-frame ultrasound file, a folder of single-frame
//! files (ordered by Instance Number), or a folder of several pullbacks.
//!
//! Headers are read without their pixel data to list series; frames are then decoded one
//! at a time, cropped to the imaging area and resampled, so a pullback of thousands of
//! frames never sits in memory decoded at full size. Patient identifiers are never read
//! into anything sula prints, logs or exports.

mod codestream;
pub mod crop;
pub mod pixels;
mod walk;

use std::any::Any;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use dicom_core::value::{PixelFragmentSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

pub use crop::{CropRect, CropSpec, FrameSelection};
use pixels::{Palette, Photometric, PixelLayout, Samples};
use walk::{PixelData, Walk, WalkError};

use crate::io::IoError;

/// The message of a folder without DICOM files, which callers try other layouts on.
pub const NO_DICOM: &str = "holds no DICOM files";

/// Transfer syntaxes whose pixel data is stored as plain samples (Deflated Explicit VR
/// Little Endian too, but dicom-rs is built without its inflater, so the walk refuses it).
const NATIVE_SYNTAXES: [&str; 3] = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
];

/// The largest compressed frame sula decodes, in decoded bytes: an IVUS frame is a few MB, and
/// a corrupt header claiming more would have a decoder allocate it before failing.
const MAX_DECODED_FRAME: usize = 256 << 20;

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
    /// Whole frames in each file: those its pixel data holds, which a cut file has fewer of.
    pub frames_per_file: Vec<u32>,
    /// Frames each file declares (Number of Frames).
    pub declared_per_file: Vec<u32>,
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

    /// Frames the files declare; more than [`Series::frame_count`] when a file is cut short.
    pub fn declared_count(&self) -> usize {
        self.declared_per_file.iter().map(|&n| n as usize).sum()
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
        one.declared_per_file = vec![1; one.files.len()];
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
    /// Frames the file declares.
    frames: u32,
    /// Frames its pixel data holds whole.
    whole: u32,
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
        let (object, walk) = open_header(path)?;
        let geometry = Geometry::read(path, &object)?;
        let whole = geometry.whole_frames(path, &walk)?;
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
            frames: geometry.frames,
            whole,
            multi_frame_class: sop_class == "1.2.840.10008.5.1.4.1.1.3.1",
            rows: geometry.rows,
            cols: geometry.cols,
            series_uid: text(&object, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
            instance: int(&object, tags::INSTANCE_NUMBER),
            transfer_syntax_uid: walk.transfer_syntax,
            photometric: text(&object, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default(),
            bits_allocated: geometry.bits_allocated,
            spacing,
            frame_rate,
            imaging_region,
        })
    }

    fn into_series(self, name: String, files: Vec<PathBuf>) -> Series {
        Series {
            name,
            frames_per_file: vec![self.whole; files.len()],
            declared_per_file: vec![self.frames; files.len()],
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

/// Walks `path`, then has dicom-rs read its header up to the pixel data, which sula reads
/// itself from where the walk found it.
fn open_header(path: &Path) -> Result<(DefaultDicomObject, Walk), IoError> {
    let unreadable =
        |reason: String| IoError::format(path, format!("is not a readable DICOM file ({reason})"));
    let walk = walk::walk(path).map_err(|e| match e {
        WalkError::Syntax(uid) if is_uid(&uid) => cannot_decode(path, &uid),
        WalkError::Syntax(uid) => unreadable(format!(
            "its transfer syntax UID {:?} is malformed",
            uid.chars().take(64).collect::<String>()
        )),
        WalkError::Malformed(reason) => unreadable(reason),
    })?;
    let object = shielded(|| {
        OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(path)
    })
    .map_err(|panic| unreadable(format!("the DICOM parser failed: {panic}")))?
    .map_err(|e| unreadable(error_chain(&e)))?;
    Ok((object, walk))
}

/// Digits and dots, at most 64 of them (PS3.5 9.1).
fn is_uid(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn cannot_decode(path: &Path, uid: &str) -> IoError {
    let syntax = match TransferSyntaxRegistry.get(uid) {
        Some(ts) => format!("the transfer syntax {} ({uid})", ts.name()),
        None => format!("the unknown transfer syntax {uid}"),
    };
    IoError::format(
        path,
        format!(
            "uses {syntax}, which sula cannot decode; convert it (for example with `dcmdjpeg` or `gdcmconv --raw`) to an uncompressed one"
        ),
    )
}

/// An error and its causes, "outer: inner: root"; dicom-rs's outer messages alone are vague.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// Runs `f`, turning a panic inside it (in dicom-rs or a codec it calls) into the panic's
/// message, so one bad file is an error rather than the end of the process. The panic is
/// not printed: the user sees the one-line error that names the file and the frame.
fn shielded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_PANIC_HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !SHIELDED.with(Cell::get) {
                report(info);
            }
        }));
    });
    let outer = SHIELDED.with(|shielded| shielded.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    SHIELDED.with(|shielded| shielded.set(outer));
    result.map_err(|payload| panic_message(payload.as_ref()))
}

thread_local! {
    /// Whether this thread is inside [`shielded`], whose panics become errors.
    static SHIELDED: Cell<bool> = const { Cell::new(false) };
}

/// Installs, once, the panic hook that stays silent inside [`shielded`] and reports every
/// other panic as the hook before it did.
static QUIET_PANIC_HOOK: std::sync::Once = std::sync::Once::new();

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// The frame geometry of a file, checked to be something sula can read.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    rows: usize,
    cols: usize,
    samples: usize,
    bits_allocated: u16,
    /// Frames the file declares.
    frames: u32,
    /// YBR_FULL_422: two samples per pixel stored instead of three.
    ybr_422: bool,
}

impl Geometry {
    fn read(path: &Path, object: &InMemDicomObject) -> Result<Geometry, IoError> {
        let rows = int(object, tags::ROWS).ok_or_else(|| missing(path, "Rows"))?;
        let cols = int(object, tags::COLUMNS).ok_or_else(|| missing(path, "Columns"))?;
        if rows == 0 || cols == 0 {
            return Err(IoError::format(
                path,
                "has an empty image (0 rows or columns)",
            ));
        }
        if !(1..=65535).contains(&rows) || !(1..=65535).contains(&cols) {
            return Err(IoError::format(
                path,
                format!("declares {cols}×{rows} pixels, which is not an image size"),
            ));
        }
        let bits_allocated = int(object, tags::BITS_ALLOCATED).unwrap_or(8);
        if !(bits_allocated == 8 || bits_allocated == 16) {
            return Err(IoError::format(
                path,
                format!("has {bits_allocated} bits allocated per sample; sula reads 8 and 16"),
            ));
        }
        let samples = int(object, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
        if !(samples == 1 || samples == 3) {
            return Err(IoError::format(
                path,
                format!(
                    "has {samples} samples per pixel; sula reads 1 (grey or palette) and 3 (colour)"
                ),
            ));
        }
        let frames = int(object, tags::NUMBER_OF_FRAMES)
            .unwrap_or(1)
            .clamp(1, i64::from(u32::MAX)) as u32;
        Ok(Geometry {
            rows: rows as usize,
            cols: cols as usize,
            samples: samples as usize,
            bits_allocated: bits_allocated as u16,
            frames,
            ybr_422: text(object, tags::PHOTOMETRIC_INTERPRETATION).as_deref()
                == Some("YBR_FULL_422"),
        })
    }

    /// Bytes of one frame as plain samples.
    fn frame_bytes(&self) -> usize {
        let samples = if self.ybr_422 { 2 } else { self.samples };
        self.rows * self.cols * samples * usize::from(self.bits_allocated / 8)
    }

    /// How many frames the pixel data holds whole; an error when none is, or when a
    /// compressed frame would decode to more than sula decodes.
    fn whole_frames(&self, path: &Path, walk: &Walk) -> Result<u32, IoError> {
        let pixel = walk
            .pixel_data
            .as_ref()
            .ok_or_else(|| IoError::format(path, "has no pixel data"))?;
        let native = NATIVE_SYNTAXES.contains(&walk.transfer_syntax.as_str());
        let whole = match pixel {
            PixelData::Native { available, .. } if native => {
                (available / self.frame_bytes() as u64).min(u64::from(self.frames)) as u32
            }
            PixelData::Encapsulated { .. } if !native => {
                if self.frame_bytes() > MAX_DECODED_FRAME {
                    return Err(IoError::format(
                        path,
                        format!(
                            "declares compressed frames of {}×{} pixels, {} MiB each decoded, more than the {} MiB sula decodes",
                            self.cols,
                            self.rows,
                            self.frame_bytes() >> 20,
                            MAX_DECODED_FRAME >> 20
                        ),
                    ));
                }
                pixel.frame_fragments(self.frames as usize).len() as u32
            }
            PixelData::Native { .. } => {
                return Err(IoError::format(
                    path,
                    format!(
                        "has uncompressed pixel data under the compressed transfer syntax {}",
                        syntax_name(&walk.transfer_syntax)
                    ),
                ));
            }
            PixelData::Encapsulated { .. } => {
                return Err(IoError::format(
                    path,
                    format!(
                        "has compressed pixel data under the uncompressed transfer syntax {}",
                        syntax_name(&walk.transfer_syntax)
                    ),
                ));
            }
        };
        if whole == 0 {
            return Err(IoError::format(
                path,
                format!("holds no whole frame: {}", self.shortfall(pixel, 0)),
            ));
        }
        Ok(whole)
    }

    /// Why only `whole` of the declared frames can be read.
    fn shortfall(&self, pixel: &PixelData, whole: u32) -> String {
        let detail = match pixel {
            PixelData::Native { available, .. } => format!(
                "its pixel data has {available} bytes where {} frames of {} bytes need {}",
                self.frames,
                self.frame_bytes(),
                self.frames as u64 * self.frame_bytes() as u64
            ),
            PixelData::Encapsulated {
                fragments,
                complete,
                ..
            } => format!(
                "its pixel data has {} compressed fragment{}{} for {} frames",
                fragments.len(),
                if fragments.len() == 1 { "" } else { "s" },
                if *complete { "" } else { " before it ends" },
                self.frames
            ),
        };
        format!(
            "{detail}, so {whole} of its {} frames are whole (the file may be truncated)",
            self.frames
        )
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
    geometry: Geometry,
    /// Frames the pixel data holds whole; the rest of the declared ones are missing.
    whole: u32,
    /// Why frames are missing, when some are.
    shortfall: Option<String>,
    /// For compressed data, the fragments of each whole frame.
    frame_fragments: Vec<Range<usize>>,
    native: bool,
}

impl FrameReader {
    /// Opens `path` and checks that sula can decode its transfer syntax and photometric
    /// interpretation before any frame is asked for. A file cut short opens with the frames
    /// it holds whole.
    pub fn open(path: &Path) -> Result<FrameReader, IoError> {
        let (mut object, walk) = open_header(path)?;
        let uid = walk.transfer_syntax.clone();
        let native = NATIVE_SYNTAXES.contains(&uid.as_str());
        if !native
            && !TransferSyntaxRegistry
                .get(&uid)
                .is_some_and(|ts| ts.can_decode_all())
        {
            return Err(cannot_decode(path, &uid));
        }
        let geometry = Geometry::read(path, &object)?;
        let layout = layout(path, &object, &geometry)?;
        let whole = geometry.whole_frames(path, &walk)?;
        let Some(pixel) = &walk.pixel_data else {
            return Err(IoError::format(path, "has no pixel data"));
        };
        let shortfall = (whole < geometry.frames).then(|| geometry.shortfall(pixel, whole));
        let read_failed = |e: std::io::Error| IoError::io(path, e);
        let mut frame_fragments = Vec::new();
        let value = match pixel {
            PixelData::Native { offset, words, .. } => {
                let bytes = walk::read_native(
                    path,
                    *offset,
                    u64::from(whole) * geometry.frame_bytes() as u64,
                )
                .map_err(read_failed)?;
                if *words && walk.big_endian {
                    Value::Primitive(PrimitiveValue::U16(
                        bytes
                            .chunks_exact(2)
                            .map(|b| u16::from_be_bytes([b[0], b[1]]))
                            .collect(),
                    ))
                } else {
                    Value::Primitive(PrimitiveValue::U8(bytes.into()))
                }
            }
            PixelData::Encapsulated {
                offset_table,
                fragments,
                ..
            } => {
                frame_fragments = pixel.frame_fragments(geometry.frames as usize);
                let end = frame_fragments.last().map_or(0, |r| r.end);
                let bytes = walk::read_fragments(path, &fragments[..end]).map_err(read_failed)?;
                let mut table = offset_table.clone();
                if shortfall.is_some() {
                    table.truncate(whole as usize);
                    // The decoders count frames from here; they see only the whole ones.
                    object.put(DataElement::new(
                        tags::NUMBER_OF_FRAMES,
                        VR::IS,
                        PrimitiveValue::from(whole.to_string()),
                    ));
                }
                Value::PixelSequence(PixelFragmentSequence::new(table, bytes))
            }
        };
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            if matches!(value, Value::Primitive(PrimitiveValue::U16(_))) {
                VR::OW
            } else {
                VR::OB
            },
            value,
        ));
        Ok(FrameReader {
            path: path.to_path_buf(),
            object,
            layout,
            geometry,
            whole,
            shortfall,
            frame_fragments,
            native,
        })
    }

    /// Frames that can be read: those the pixel data holds whole.
    pub fn frames(&self) -> u32 {
        self.whole
    }

    /// Frames the file declares; more than [`FrameReader::frames`] when it is cut short.
    pub fn declared_frames(&self) -> u32 {
        self.geometry.frames
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
        if frame >= self.geometry.frames {
            return Err(fail(format!(
                "out of range; the file has {} frames",
                self.geometry.frames
            )));
        }
        if frame >= self.whole {
            return Err(fail(format!(
                "missing: {}",
                self.shortfall
                    .as_deref()
                    .unwrap_or("the pixel data ends before it")
            )));
        }
        if self.native {
            let samples = self.native_frame(frame).map_err(fail)?;
            return pixels::to_grey(&self.layout, &samples).map_err(fail);
        }
        let undecodable = |reason: String| {
            IoError::format(
                &self.path,
                format!("frame {frame} could not be decoded: {reason}"),
            )
        };
        self.check_codestream(frame).map_err(undecodable)?;
        let (samples, colour) = shielded(|| -> Result<(Samples<'static>, bool), String> {
            let decoded = self
                .object
                .decode_pixel_data_frame(frame)
                .map_err(|e| error_chain(&e))?;
            let bytes = decoded.frame_data(0).map_err(|e| error_chain(&e))?;
            let samples = if decoded.bits_allocated() > 8 {
                Samples::U16(Cow::Owned(le_words(bytes)))
            } else {
                Samples::U8(Cow::Owned(bytes.to_vec()))
            };
            Ok((samples, decoded.samples_per_pixel() == 3))
        })
        .map_err(|panic| undecodable(format!("the decoder failed ({panic})")))?
        .map_err(undecodable)?;
        // Decoders hand colour back as interleaved RGB.
        let mut layout = self.layout.clone();
        if colour {
            layout.photometric = Photometric::Rgb;
            layout.planar = false;
        }
        pixels::to_grey(&layout, &samples).map_err(fail)
    }

    /// Checks the header inside a compressed frame against the declared frame, so that a
    /// decoder never sizes its buffers from a corrupt one.
    fn check_codestream(&self, frame: u32) -> Result<(), String> {
        let Some(range) = self.frame_fragments.get(frame as usize) else {
            return Err("its compressed data is missing".into());
        };
        let first = match self.object.element(tags::PIXEL_DATA).map(|e| e.value()) {
            Ok(Value::PixelSequence(sequence)) => sequence.fragments().get(range.start),
            _ => None,
        };
        let Some(first) = first else {
            return Err("its compressed data is missing".into());
        };
        codestream::check(
            self.object.meta().transfer_syntax().trim_end_matches('\0'),
            first,
            codestream::Expected {
                rows: self.geometry.rows,
                cols: self.geometry.cols,
                samples: self.geometry.samples,
                bytes_per_sample: usize::from(self.geometry.bits_allocated / 8),
            },
        )
    }

    /// The samples of one native frame, sliced from the pixel data without copying the rest.
    fn native_frame(&self, frame: u32) -> Result<Samples<'_>, String> {
        let element = self
            .object
            .element(tags::PIXEL_DATA)
            .map_err(|e| e.to_string())?;
        let Value::Primitive(value) = element.value() else {
            return Err("native pixel data is encapsulated".into());
        };
        let bytes = self.layout.native_frame_bytes();
        let start = bytes
            .checked_mul(frame as usize)
            .ok_or("the frame lies past any pixel data")?;
        let short = |have: usize| {
            format!(
                "pixel data ends early: frame {frame} needs bytes {start}..{}, the element has {have} (the file may be truncated)",
                start.saturating_add(bytes)
            )
        };
        match value {
            PrimitiveValue::U8(data) => {
                let slice = data
                    .get(start..start.saturating_add(bytes))
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
                    .get(start..start.saturating_add(count))
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
fn layout(
    path: &Path,
    object: &InMemDicomObject,
    geometry: &Geometry,
) -> Result<PixelLayout, IoError> {
    let samples = geometry.samples;
    let bits_allocated = i64::from(geometry.bits_allocated);
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
        "PALETTE COLOR" => Photometric::Palette(Box::new(palette(
            path,
            object,
            int(object, tags::PIXEL_REPRESENTATION) == Some(1),
        )?)),
        other => {
            return Err(IoError::format(
                path,
                format!(
                    "has the photometric interpretation {other:?}, which sula does not support"
                ),
            ));
        }
    };
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
        rows: geometry.rows,
        cols: geometry.cols,
        samples_per_pixel: samples,
        bits_allocated: bits_allocated as u16,
        bits_stored: bits_stored.clamp(1, bits_allocated) as u16,
        signed: int(object, tags::PIXEL_REPRESENTATION) == Some(1),
        planar: int(object, tags::PLANAR_CONFIGURATION) == Some(1),
        photometric,
        window,
    })
}

/// The three palette lookup tables (PS3.3 C.7.6.3.1.5), plain or segmented (C.7.9.2),
/// scaled to 8 bits.
fn palette(path: &Path, object: &InMemDicomObject, signed: bool) -> Result<Palette, IoError> {
    let channel = |colour: &str, tags: [dicom_core::Tag; 3]| {
        let [descriptor, data, segmented] = tags;
        let bad = |what: String| {
            IoError::format(
                path,
                format!("PALETTE COLOR image whose {colour} lookup table has {what}"),
            )
        };
        let d = object
            .element_opt(descriptor)
            .ok()
            .flatten()
            .and_then(|e| e.to_multi_int::<i64>().ok())
            .filter(|d| d.len() == 3)
            .ok_or_else(|| bad("no descriptor, or a malformed one".into()))?;
        // The first two values are 16-bit, US or SS: 0 entries stands for 65,536, and the
        // first mapped value is signed only for signed pixels.
        let entries = match d[0] as u16 {
            0 => 65536,
            n => usize::from(n),
        };
        let first = if signed {
            i64::from(d[1] as u16 as i16)
        } else {
            i64::from(d[1] as u16)
        };
        let bits = d[2];
        if !(bits == 8 || bits == 16) {
            return Err(bad(format!("{bits} bits per entry; sula reads 8 and 16")));
        }
        let value = |tag| {
            object
                .element_opt(tag)
                .ok()
                .flatten()
                .map(|e| e.value().clone())
        };
        let values = if let Some(plain) = value(data) {
            plain_entries(&plain, entries, bits)
                .ok_or_else(|| bad(format!("fewer than the {entries} entries it declares")))?
        } else if let Some(Value::Primitive(coded)) = value(segmented) {
            // Segments of 8-bit tables are coded in bytes, of 16-bit ones in words.
            let words = match (&coded, bits) {
                (PrimitiveValue::U16(v), 8) => v
                    .iter()
                    .flat_map(|w| w.to_le_bytes())
                    .map(u16::from)
                    .collect(),
                (PrimitiveValue::U8(b), 8) => b.iter().map(|&x| u16::from(x)).collect(),
                (PrimitiveValue::U16(v), _) => v.to_vec(),
                (PrimitiveValue::U8(b), _) => le_words(b),
                _ => return Err(bad("unreadable segmented data".into())),
            };
            pixels::expand_segmented(&words, entries).map_err(bad)?
        } else {
            return Err(bad("no data, plain or segmented".into()));
        };
        let shift = if bits > 8 { 8 } else { 0 };
        Ok((
            first,
            values
                .iter()
                .map(|&w| (w >> shift) as u8)
                .collect::<Vec<u8>>(),
        ))
    };
    let (first, red) = channel(
        "red",
        [
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        ],
    )?;
    let (_, green) = channel(
        "green",
        [
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        ],
    )?;
    let (_, blue) = channel(
        "blue",
        [
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        ],
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

/// The first `entries` entries of plain lookup table data: one per 16-bit word, or one per
/// byte when 8-bit entries come as bytes or packed two to a word.
fn plain_entries(
    value: &Value<InMemDicomObject, Vec<u8>>,
    entries: usize,
    bits: i64,
) -> Option<Vec<u16>> {
    let Value::Primitive(value) = value else {
        return None;
    };
    let words: Vec<u16> = match value {
        PrimitiveValue::U16(v) if v.len() >= entries => v[..entries].to_vec(),
        PrimitiveValue::U16(v) if bits == 8 && v.len() * 2 >= entries => v
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .take(entries)
            .map(u16::from)
            .collect(),
        PrimitiveValue::U8(b) if bits > 8 || b.len() >= 2 * entries => le_words(b),
        PrimitiveValue::U8(b) => b.iter().map(|&x| u16::from(x)).collect(),
        _ => return None,
    };
    (words.len() >= entries).then(|| words[..entries].to_vec())
}
