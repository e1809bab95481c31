//! A walk over a file's element headers before dicom-rs parses it.
//!
//! dicom-rs sizes a buffer from an element's declared length before reading its value, so
//! one flipped length byte can ask for gigabytes; and it refuses a file whose pixel data is
//! cut short, although the frames before the cut are whole. This walk reads headers only,
//! mirroring how dicom-rs nests sequences and items, refuses any length that reaches past
//! the end of the file, and notes where the top-level Pixel Data lies so that sula reads
//! that element itself, whole or cut.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

/// Sequences nested deeper than this are refused: dicom-rs recurses once per level.
const MAX_DEPTH: usize = 32;

const UNDEFINED: u32 = u32::MAX;
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_END: Tag = Tag(0xFFFE, 0xE0DD);

/// What the walk found: the data set's transfer syntax and where its pixel data lies.
#[derive(Debug, Clone)]
pub struct Walk {
    pub transfer_syntax: String,
    pub big_endian: bool,
    pub pixel_data: Option<PixelData>,
}

/// The top-level Pixel Data element's place in the file.
#[derive(Debug, Clone)]
pub enum PixelData {
    /// Plain samples: `available` bytes of the element from byte `offset` are in the file.
    Native {
        offset: u64,
        available: u64,
        /// Stored as 16-bit words (OW), which a big-endian file byte-swaps.
        words: bool,
    },
    /// Compressed fragments: the basic offset table and every fragment the file holds whole;
    /// `complete` when the sequence delimiter after them was reached.
    Encapsulated {
        offset_table: Vec<u32>,
        fragments: Vec<Fragment>,
        complete: bool,
    },
}

/// One fragment of encapsulated pixel data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Where its bytes start in the file.
    pub offset: u64,
    pub len: u32,
    /// Bytes from the first fragment's item tag to this one's, as offset tables count.
    pub position: u64,
}

impl PixelData {
    /// For encapsulated data, the fragments of each whole frame in order (PS3.5 A.4): one per
    /// frame when the counts agree in a complete sequence (as dicom-rs's decoders take them),
    /// else as the basic offset table delimits them, else one fragment per frame as far as
    /// they go. Stops at the first frame it cannot place whole.
    pub fn frame_fragments(&self, frames: usize) -> Vec<Range<usize>> {
        let PixelData::Encapsulated {
            offset_table,
            fragments,
            complete,
        } = self
        else {
            return Vec::new();
        };
        if fragments.len() == frames && (*complete || offset_table.len() != frames) {
            return (0..frames).map(|k| k..k + 1).collect();
        }
        if offset_table.len() == frames {
            // The fragment an offset points at; one past the last whole fragment is where a
            // cut file ends.
            let end_of_whole = fragments
                .last()
                .map_or(0, |f| f.position + 8 + u64::from(f.len));
            let start_of = |offset: u32| {
                let offset = u64::from(offset);
                fragments
                    .iter()
                    .position(|f| f.position == offset)
                    .or((offset == end_of_whole).then_some(fragments.len()))
            };
            let mut ranges = Vec::new();
            for k in 0..frames {
                let Some(start) = start_of(offset_table[k]) else {
                    break;
                };
                let end = match offset_table.get(k + 1) {
                    Some(&next) => start_of(next),
                    None => complete.then_some(fragments.len()),
                };
                match end {
                    Some(end) if end > start => ranges.push(start..end),
                    _ => break,
                }
            }
            return ranges;
        }
        if frames == 1 && *complete && !fragments.is_empty() {
            return std::iter::once(0..fragments.len()).collect();
        }
        (0..frames.min(fragments.len())).map(|k| k..k + 1).collect()
    }
}

/// Why a walk stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkError {
    /// The data set uses this transfer syntax, which dicom-rs cannot read.
    Syntax(String),
    /// What is wrong with the file, and where.
    Malformed(String),
}

impl From<String> for WalkError {
    fn from(message: String) -> WalkError {
        WalkError::Malformed(message)
    }
}

/// Walks the file at `path` up to its Pixel Data.
pub fn walk(path: &Path) -> Result<Walk, WalkError> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut source = Source {
        reader: BufReader::new(file),
        pos: 0,
        counted: 0,
        len,
        encoding: Encoding::ExplicitLe,
    };
    source.skip(128)?;
    if source.bytes::<4>()? != Some(*b"DICM") {
        return Err("it has no DICM marker after a 128-byte preamble"
            .to_string()
            .into());
    }
    let transfer_syntax = source.meta()?;
    if !TransferSyntaxRegistry
        .get(&transfer_syntax)
        .is_some_and(|ts| ts.can_decode_dataset())
    {
        return Err(WalkError::Syntax(transfer_syntax));
    }
    source.encoding = match transfer_syntax.as_str() {
        "1.2.840.10008.1.2" => Encoding::ImplicitLe,
        "1.2.840.10008.1.2.2" => Encoding::ExplicitBe,
        _ => Encoding::ExplicitLe,
    };
    let pixel_data = source.data_set()?;
    Ok(Walk {
        transfer_syntax,
        big_endian: source.encoding == Encoding::ExplicitBe,
        pixel_data,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    ImplicitLe,
    ExplicitLe,
    ExplicitBe,
}

/// Where a run of elements ends.
#[derive(Debug, Clone, Copy)]
enum Until {
    /// At this counted offset; the item started at the given byte.
    Counted(u64, u64),
    /// At an item delimiter.
    ItemEnd,
}

/// One element or item header.
#[derive(Debug, Clone, Copy)]
struct Header {
    tag: Tag,
    vr: VR,
    len: u32,
    /// Where the header started, for messages.
    at: u64,
}

struct Source {
    reader: BufReader<File>,
    /// The offset in the file.
    pos: u64,
    /// The offset as dicom-rs counts it, which it checks item and sequence ends against; it
    /// counts a numeric value's whole length but reads only whole numbers of it, so an odd
    /// length makes the two part.
    counted: u64,
    len: u64,
    encoding: Encoding,
}

impl Source {
    fn left(&self) -> u64 {
        self.len - self.pos
    }

    /// The next `N` bytes, or `None` when the file ends before them.
    fn bytes<const N: usize>(&mut self) -> Result<Option<[u8; N]>, String> {
        if self.left() < N as u64 {
            return Ok(None);
        }
        let mut buf = [0u8; N];
        self.reader
            .read_exact(&mut buf)
            .map_err(|e| e.to_string())?;
        self.pos += N as u64;
        self.counted += N as u64;
        Ok(Some(buf))
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        self.advance(n, n)
    }

    /// Moves `real` bytes on in the file while dicom-rs counts `counted`.
    fn advance(&mut self, real: u64, counted: u64) -> Result<(), String> {
        if real > self.left() {
            return Err(format!("it ends early, at byte {}", self.len));
        }
        let jump = i64::try_from(real).map_err(|e| e.to_string())?;
        self.reader.seek_relative(jump).map_err(|e| e.to_string())?;
        self.pos += real;
        self.counted += counted;
        Ok(())
    }

    /// Whether a run of elements that ends at the counted offset `end` is over; dicom-rs
    /// fails when a value reaches past it.
    fn ended(&self, end: u64, at: u64) -> Result<bool, String> {
        if self.counted > end {
            return Err(format!(
                "an item or sequence at byte {at} ends inside one of its elements"
            ));
        }
        Ok(self.counted == end)
    }

    fn read_vec(&mut self, n: u32) -> Result<Vec<u8>, String> {
        if u64::from(n) > self.left() {
            return Err(self.overrun_message(self.pos, n));
        }
        let mut buf = vec![0u8; n as usize];
        self.reader
            .read_exact(&mut buf)
            .map_err(|e| e.to_string())?;
        self.pos += u64::from(n);
        self.counted += u64::from(n);
        Ok(buf)
    }

    fn overrun_message(&self, at: u64, len: u32) -> String {
        format!(
            "a value at byte {at} claims {len} bytes, but the file ends {} bytes later; it is truncated or corrupt",
            self.len.saturating_sub(at)
        )
    }

    fn u16(&self, b: [u8; 2]) -> u16 {
        match self.encoding {
            Encoding::ExplicitBe => u16::from_be_bytes(b),
            _ => u16::from_le_bytes(b),
        }
    }

    fn u32(&self, b: [u8; 4]) -> u32 {
        match self.encoding {
            Encoding::ExplicitBe => u32::from_be_bytes(b),
            _ => u32::from_le_bytes(b),
        }
    }

    /// The next header, or `None` when the file ends within it (dicom-rs ends the data set
    /// there, or fails on its own).
    fn header(&mut self) -> Result<Option<Header>, String> {
        let at = self.pos;
        let Some(tag) = self.bytes::<4>()? else {
            return Ok(None);
        };
        let tag = Tag(self.u16([tag[0], tag[1]]), self.u16([tag[2], tag[3]]));
        let long = |source: &mut Source| -> Result<Option<u32>, String> {
            Ok(source.bytes::<4>()?.map(|b| source.u32(b)))
        };
        if tag.0 == 0xFFFE || self.encoding == Encoding::ImplicitLe {
            let Some(len) = long(self)? else {
                return Ok(None);
            };
            let vr = if tag.0 == 0xFFFE {
                VR::UN
            } else {
                implicit_vr(tag)
            };
            return Ok(Some(Header { tag, vr, len, at }));
        }
        let Some(code) = self.bytes::<2>()? else {
            return Ok(None);
        };
        let vr = VR::from_binary(code).unwrap_or(VR::UN);
        let len = if short_length(vr) {
            match self.bytes::<2>()? {
                Some(b) => u32::from(self.u16(b)),
                None => return Ok(None),
            }
        } else {
            if self.bytes::<2>()?.is_none() {
                return Ok(None);
            }
            match long(self)? {
                Some(len) => len,
                None => return Ok(None),
            }
        };
        Ok(Some(Header { tag, vr, len, at }))
    }

    /// The file meta group, as dicom-object reads it: its group length first, then elements
    /// until that many bytes are read. Returns the transfer syntax UID.
    fn meta(&mut self) -> Result<String, String> {
        let bad = || "its file meta group is malformed".to_string();
        let first = self.header()?.ok_or_else(bad)?;
        if first.tag != Tag(0x0002, 0x0000) || first.len != 4 {
            return Err("its file meta group does not start with its group length".into());
        }
        let group = u32::from_le_bytes(self.bytes::<4>()?.ok_or_else(bad)?);
        let start = self.pos;
        let mut syntax = None;
        while self.pos - start < u64::from(group) {
            let header = self.header()?.ok_or_else(bad)?;
            if header.len == UNDEFINED {
                return Err(format!(
                    "its file meta element {} at byte {} has an undefined length",
                    header.tag, header.at
                ));
            }
            if header.tag == Tag(0x0002, 0x0010) {
                let value = self.read_vec(header.len)?;
                let text = String::from_utf8_lossy(&value);
                syntax = Some(text.trim_end_matches(['\0', ' ']).to_owned());
            } else if u64::from(header.len) > self.left() {
                return Err(self.overrun_message(header.at, header.len));
            } else {
                self.skip(u64::from(header.len))?;
            }
        }
        syntax.ok_or_else(|| "its file meta group has no transfer syntax".into())
    }

    /// The top-level data set up to its Pixel Data, where dicom-rs stops when told to read
    /// until Pixel Data (at the first tag at or past it).
    fn data_set(&mut self) -> Result<Option<PixelData>, String> {
        loop {
            let Some(header) = self.header()? else {
                return Ok(None);
            };
            // dicom-rs skips a stray item delimiter outside any sequence.
            if header.tag == ITEM_END {
                continue;
            }
            if header.tag >= PIXEL_DATA {
                if header.tag != PIXEL_DATA {
                    return Ok(None);
                }
                if header.len == UNDEFINED {
                    return self.fragments(header).map(Some);
                }
                return Ok(Some(PixelData::Native {
                    offset: self.pos,
                    available: u64::from(header.len).min(self.left()),
                    words: header.vr == VR::OW,
                }));
            }
            self.value(header, 0)?;
        }
    }

    /// Steps over one element's value, into sequences where dicom-rs parses them.
    fn value(&mut self, header: Header, depth: usize) -> Result<(), String> {
        if header.tag == PIXEL_DATA && header.len == UNDEFINED {
            return self.fragments(header).map(|_| ());
        }
        if header.vr == VR::SQ || header.len == UNDEFINED {
            return self.sequence(header, depth + 1);
        }
        if u64::from(header.len) > self.left() {
            return Err(self.overrun_message(header.at, header.len));
        }
        let len = u64::from(header.len);
        self.advance(len - len % value_size(header.vr), len)
    }

    fn sequence(&mut self, header: Header, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "its sequences nest deeper than {MAX_DEPTH} levels at byte {}",
                header.at
            ));
        }
        let end = if header.len == UNDEFINED {
            None
        } else if u64::from(header.len) > self.left() {
            return Err(self.overrun_message(header.at, header.len));
        } else {
            Some(self.counted + u64::from(header.len))
        };
        loop {
            if let Some(end) = end
                && self.ended(end, header.at)?
            {
                return Ok(());
            }
            let Some(item) = self.header()? else {
                return Ok(());
            };
            match item.tag {
                ITEM if item.len == UNDEFINED => self.elements(Until::ItemEnd, depth)?,
                ITEM if u64::from(item.len) > self.left() => {
                    return Err(self.overrun_message(item.at, item.len));
                }
                ITEM => self.elements(
                    Until::Counted(self.counted + u64::from(item.len), item.at),
                    depth,
                )?,
                SEQUENCE_END => return Ok(()),
                ITEM_END => {}
                other => {
                    return Err(format!(
                        "a sequence at byte {} holds the tag {other} where an item should be",
                        item.at
                    ));
                }
            }
        }
    }

    /// The elements of one item.
    fn elements(&mut self, until: Until, depth: usize) -> Result<(), String> {
        loop {
            if let Until::Counted(end, at) = until
                && self.ended(end, at)?
            {
                return Ok(());
            }
            let Some(header) = self.header()? else {
                return Ok(());
            };
            if header.tag == ITEM_END {
                return Ok(());
            }
            self.value(header, depth)?;
        }
    }

    /// An encapsulated pixel data sequence: the offset table, then the fragments as far as
    /// the file holds them whole.
    fn fragments(&mut self, header: Header) -> Result<PixelData, String> {
        let mut offset_table = Vec::new();
        let mut fragments = Vec::new();
        // Where the first fragment's item starts, once the offset table is read.
        let mut base: Option<u64> = None;
        let complete = loop {
            let Some(item) = self.header()? else {
                break false;
            };
            match item.tag {
                SEQUENCE_END => break true,
                ITEM if item.len == UNDEFINED => {
                    return Err(format!(
                        "a pixel data fragment at byte {} has an undefined length",
                        item.at
                    ));
                }
                ITEM if u64::from(item.len) > self.left() => break false,
                ITEM if base.is_none() => {
                    // The first item is the basic offset table.
                    let bytes = self.read_vec(item.len)?;
                    offset_table = bytes
                        .chunks_exact(4)
                        .map(|b| self.u32([b[0], b[1], b[2], b[3]]))
                        .collect();
                    base = Some(self.pos);
                }
                ITEM => {
                    fragments.push(Fragment {
                        offset: self.pos,
                        len: item.len,
                        position: item.at - base.unwrap_or(item.at),
                    });
                    self.skip(u64::from(item.len))?;
                }
                other => {
                    return Err(format!(
                        "the pixel data sequence at byte {} holds the tag {other} where a fragment should be",
                        header.at
                    ));
                }
            }
        };
        Ok(PixelData::Encapsulated {
            offset_table,
            fragments,
            complete,
        })
    }
}

/// The size of one number of a numeric VR, 1 for the rest: dicom-rs reads only whole numbers.
fn value_size(vr: VR) -> u64 {
    match vr {
        VR::US | VR::OW | VR::SS => 2,
        VR::FL | VR::OF | VR::SL | VR::UL | VR::OL | VR::AT => 4,
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => 8,
        _ => 1,
    }
}

/// VRs whose explicit-VR header has a 16-bit length (PS3.5 7.1.2).
fn short_length(vr: VR) -> bool {
    matches!(
        vr,
        VR::AE
            | VR::AS
            | VR::AT
            | VR::CS
            | VR::DA
            | VR::DS
            | VR::DT
            | VR::FL
            | VR::FD
            | VR::IS
            | VR::LO
            | VR::LT
            | VR::PN
            | VR::SH
            | VR::SL
            | VR::SS
            | VR::ST
            | VR::TM
            | VR::UI
            | VR::UL
            | VR::US
    )
}

/// The VR dicom-rs gives an implicit-VR element: OW for pixel and overlay data, else the
/// standard dictionary's.
fn implicit_vr(tag: Tag) -> VR {
    if tag == PIXEL_DATA || (tag.0 >> 8 == 0x60 && tag.1 == 0x3000) {
        VR::OW
    } else {
        StandardDataDictionary
            .by_tag(tag)
            .map(|entry| entry.vr().relaxed())
            .unwrap_or(VR::UN)
    }
}

/// Reads `len` bytes of native pixel data from byte `offset`.
pub fn read_native(path: &Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads the bytes of `fragments`.
pub fn read_fragments(path: &Path, fragments: &[Fragment]) -> std::io::Result<Vec<Vec<u8>>> {
    let mut file = BufReader::new(File::open(path)?);
    fragments
        .iter()
        .map(|f| {
            file.seek(SeekFrom::Start(f.offset))?;
            let mut bytes = vec![0u8; f.len as usize];
            file.read_exact(&mut bytes)?;
            Ok(bytes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Explicit VR little endian element bytes, with a 16-bit or 32-bit length by VR.
    fn element(group: u16, element: u16, vr: &[u8; 2], len: u32, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(group.to_le_bytes());
        out.extend(element.to_le_bytes());
        out.extend(vr);
        if short_length(VR::from_binary(*vr).unwrap()) {
            out.extend((len as u16).to_le_bytes());
        } else {
            out.extend([0, 0]);
            out.extend(len.to_le_bytes());
        }
        out.extend(value);
        out
    }

    /// A file of `data_set` after a meta group naming Explicit VR Little Endian.
    fn file(data_set: &[u8]) -> tempfile::NamedTempFile {
        let syntax = b"1.2.840.10008.1.2.1\0";
        let uid = element(0x0002, 0x0010, b"UI", syntax.len() as u32, syntax);
        let mut bytes = vec![0u8; 128];
        bytes.extend(b"DICM");
        bytes.extend(element(
            0x0002,
            0x0000,
            b"UL",
            4,
            &(uid.len() as u32).to_le_bytes(),
        ));
        bytes.extend(uid);
        bytes.extend(data_set);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        file
    }

    fn fragment(position: u64, len: u32) -> Fragment {
        Fragment {
            offset: 0,
            len,
            position,
        }
    }

    #[test]
    fn a_length_past_the_end_of_the_file_is_refused_before_anything_reads_it() {
        let huge = element(0x0009, 0x0010, b"OB", 0xFFFF_FFF0, &[1, 2, 3, 4]);
        let err = walk(file(&huge).path()).unwrap_err();
        let WalkError::Malformed(message) = err else {
            panic!("{err:?}");
        };
        assert!(message.contains("claims 4294967280 bytes"), "{message}");
    }

    #[test]
    fn native_pixel_data_cut_short_is_found_with_the_bytes_it_has() {
        let mut data_set = element(0x0028, 0x0010, b"US", 2, &40u16.to_le_bytes());
        data_set.extend(element(0x7FE0, 0x0010, b"OB", 1000, &[7; 300]));
        let found = walk(file(&data_set).path()).unwrap();
        match found.pixel_data {
            Some(PixelData::Native {
                available, words, ..
            }) => assert_eq!((available, words), (300, false)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_odd_numeric_length_is_stepped_over_as_dicom_rs_reads_it() {
        // dicom-rs reads the one whole US of a 3-byte value and goes on from there: the
        // next header starts at the value's third byte.
        let mut data_set = element(0x0028, 0x0010, b"US", 3, &[40, 0]);
        data_set.extend(element(0x7FE0, 0x0010, b"OB", 4, &[1, 2, 3, 4]));
        let found = walk(file(&data_set).path()).unwrap();
        assert!(
            matches!(
                found.pixel_data,
                Some(PixelData::Native { available: 4, .. })
            ),
            "{:?}",
            found.pixel_data
        );
    }

    #[test]
    fn frames_take_one_fragment_each_or_what_the_offset_table_delimits() {
        let one_each = PixelData::Encapsulated {
            offset_table: Vec::new(),
            fragments: vec![fragment(0, 10), fragment(18, 10)],
            complete: true,
        };
        assert_eq!(one_each.frame_fragments(2), vec![0..1, 1..2]);
        // Frame 0 in two fragments, frame 1 in one; cut after frame 1's first fragment.
        let table = PixelData::Encapsulated {
            offset_table: vec![0, 36],
            fragments: vec![fragment(0, 10), fragment(18, 10), fragment(36, 10)],
            complete: false,
        };
        assert_eq!(table.frame_fragments(2), vec![0..2]);
        // Cut exactly after frame 0: its end is where frame 1 would start.
        let cut = PixelData::Encapsulated {
            offset_table: vec![0, 36],
            fragments: vec![fragment(0, 10), fragment(18, 10)],
            complete: false,
        };
        assert_eq!(cut.frame_fragments(2), vec![0..2]);
        let short = PixelData::Encapsulated {
            offset_table: Vec::new(),
            fragments: vec![fragment(0, 10)],
            complete: false,
        };
        assert_eq!(short.frame_fragments(3), vec![0..1]);
    }
}
