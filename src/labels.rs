//! Tissue label maps (docs/DESIGN.md §Label values): the segmentation every other part of sula reads.

use thiserror::Error;

/// One tissue class of a label map; the discriminant is the stored 8-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Tissue {
    /// Perivascular tissue or background: not meshed, traction-free.
    Outside = 0,
    /// Lumen: not meshed; luminal pressure acts on its boundary.
    Lumen = 1,
    /// Fibrous wall or fibrous plaque: solid.
    Fibrous = 2,
    /// Lipid or necrotic core: soft solid.
    Lipid = 3,
    /// Calcium: stiff solid.
    Calcium = 4,
}

impl Tissue {
    /// All classes in label-value order.
    pub const ALL: [Tissue; 5] = [
        Tissue::Outside,
        Tissue::Lumen,
        Tissue::Fibrous,
        Tissue::Lipid,
        Tissue::Calcium,
    ];

    /// The class stored as `value`, or `None` for a value outside 0–4.
    pub fn from_value(value: u8) -> Option<Tissue> {
        Tissue::ALL.get(usize::from(value)).copied()
    }

    /// Whether the FEA meshes this class (fibrous, lipid, calcium).
    pub fn is_solid(self) -> bool {
        matches!(self, Tissue::Fibrous | Tissue::Lipid | Tissue::Calcium)
    }

    /// Lower-case name used in files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Tissue::Outside => "outside",
            Tissue::Lumen => "lumen",
            Tissue::Fibrous => "fibrous",
            Tissue::Lipid => "lipid",
            Tissue::Calcium => "calcium",
        }
    }
}

/// Why raw bytes are not a label map.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LabelMapError {
    #[error("label map has {len} values but {width}×{height} needs {expected}")]
    SizeMismatch {
        width: usize,
        height: usize,
        len: usize,
        expected: usize,
    },
    #[error("label map is empty ({width}×{height})")]
    Empty { width: usize, height: usize },
    #[error("invalid label value {value} at pixel (row {row}, column {col}); valid values are 0–4")]
    InvalidValue { value: u8, row: usize, col: usize },
}

/// Sectors of the circle that [`LabelMap::arc_degrees`] counts (5° each).
const ARC_SECTORS: usize = 72;

/// A validated tissue label map: row-major, every value a [`Tissue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    width: usize,
    height: usize,
    values: Vec<u8>,
}

impl LabelMap {
    /// Checks size and values once, so every consumer can trust the map.
    pub fn new(width: usize, height: usize, values: Vec<u8>) -> Result<LabelMap, LabelMapError> {
        if width == 0 || height == 0 {
            return Err(LabelMapError::Empty { width, height });
        }
        let expected = width * height;
        if values.len() != expected {
            return Err(LabelMapError::SizeMismatch {
                width,
                height,
                len: values.len(),
                expected,
            });
        }
        if let Some(index) = values.iter().position(|&v| Tissue::from_value(v).is_none()) {
            return Err(LabelMapError::InvalidValue {
                value: values[index],
                row: index / width,
                col: index % width,
            });
        }
        Ok(LabelMap {
            width,
            height,
            values,
        })
    }

    /// A map built pixel by pixel from a function of (row, column).
    pub fn from_fn(width: usize, height: usize, f: impl Fn(usize, usize) -> Tissue) -> LabelMap {
        let values = (0..width * height)
            .map(|i| f(i / width, i % width) as u8)
            .collect();
        LabelMap::new(width, height, values).expect("tissue values are always valid")
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Raw label values, row-major.
    pub fn values(&self) -> &[u8] {
        &self.values
    }

    /// The class at (row, column).
    pub fn get(&self, row: usize, col: usize) -> Tissue {
        Tissue::from_value(self.values[row * self.width + col]).expect("validated on construction")
    }

    /// Pixel count per class, indexed by label value.
    pub fn class_counts(&self) -> [usize; 5] {
        let mut counts = [0; 5];
        for &v in &self.values {
            counts[usize::from(v)] += 1;
        }
        counts
    }

    /// Degrees of the circle around the lumen's centroid that `tissue` reaches, counted in
    /// 5° sectors: how far a plaque wraps round the vessel, which sets how the wall carries
    /// the pressure and what a generator's label maps must get right. `None` without a
    /// lumen; 0 when the tissue is absent.
    pub fn arc_degrees(&self, tissue: Tissue) -> Option<f64> {
        let pixels = |class: Tissue| {
            self.values
                .iter()
                .enumerate()
                .filter(move |(_, v)| **v == class as u8)
                .map(|(i, _)| ((i / self.width) as f64, (i % self.width) as f64))
        };
        let (count, row_sum, col_sum) = pixels(Tissue::Lumen)
            .fold((0usize, 0.0, 0.0), |(n, r, c), (row, col)| {
                (n + 1, r + row, c + col)
            });
        if count == 0 {
            return None;
        }
        let centre = (row_sum / count as f64, col_sum / count as f64);
        let mut covered = [false; ARC_SECTORS];
        for (row, col) in pixels(tissue) {
            let angle = (row - centre.0)
                .atan2(col - centre.1)
                .rem_euclid(std::f64::consts::TAU);
            let sector = (angle / std::f64::consts::TAU * ARC_SECTORS as f64) as usize;
            covered[sector.min(ARC_SECTORS - 1)] = true;
        }
        let sectors = covered.iter().filter(|c| **c).count();
        Some(360.0 * sectors as f64 / ARC_SECTORS as f64)
    }
}

/// Makes the wall enclose the lumen on the pixel grid: a wall thinner than a pixel can
/// rasterise (or resample) with gaps where lumen touches outside, even only diagonally,
/// which would leave the pressure unbalanced and the wall in pieces. Such lumen pixels
/// become wall.
pub fn seal_lumen(labels: LabelMap) -> LabelMap {
    let (w, h) = (labels.width(), labels.height());
    let touches_outside = |row: usize, col: usize| {
        (row.saturating_sub(1)..(row + 2).min(h)).any(|r| {
            (col.saturating_sub(1)..(col + 2).min(w)).any(|c| labels.get(r, c) == Tissue::Outside)
        })
    };
    LabelMap::from_fn(w, h, |row, col| match labels.get(row, col) {
        Tissue::Lumen if touches_outside(row, col) => Tissue::Fibrous,
        tissue => tissue,
    })
}

/// Most lumen pixels that may touch the outside (or the image border) for
/// [`close_lumen`] to seal them as a wall thinner than a pixel rather than refuse the map.
///
/// Where an annotated wall is thinner than a pixel, the rasterised lumen and outside meet
/// corner to corner at a few pixels: 3 and 4 in the real annotations that prompted this
/// rule (lumen and media contours at 0.026 mm per pixel on ~500-px frames). 8 is twice the
/// most seen. A real opening (a broken contour, a gap painted in the wall, a lumen cut by
/// the frame) puts a whole stretch of lumen border against the outside: a gap g pixels
/// wide touches g + 2 lumen pixels on a straight border and more on a slanted one, so a
/// 10-pixel gap (0.26 mm at that spacing) is refused. The tolerance is in pixels, not a
/// fraction of the lumen's perimeter: a thin wall's contact is set by where the two
/// contours pass within a pixel of each other, not by the vessel's size, and a fraction
/// allowing the 4 pixels on a 1 mm lumen (about 120 pixels round at 0.026 mm) would
/// allow 16 on a 4 mm lumen, a gap of 0.4 mm.
pub const LUMEN_CONTACT_TOLERANCE: usize = 8;

/// Why a label map's lumen is not closed inside the wall.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LumenError {
    #[error("it has no lumen (value 1)")]
    NoLumen,
    #[error(
        "the lumen is not closed inside the wall: it touches the outside at pixel (row {row}, column {col}), {count} lumen pixels in all"
    )]
    Open {
        row: usize,
        col: usize,
        count: usize,
    },
    #[error(
        "the lumen is not closed inside the wall: it touches the outside at pixel (row {row}, column {col}), {count} lumen pixels in all: more than the {tolerance} sula seals as a wall thinner than a pixel, so the wall has an opening"
    )]
    TooOpen {
        row: usize,
        col: usize,
        count: usize,
        tolerance: usize,
    },
    #[error(
        "every one of its {count} lumen pixels touches the outside, so sealing them would leave no lumen"
    )]
    SealedAway { count: usize },
}

/// How many lumen pixels `labels` has, and the row-major indices of those on the image
/// border or next to (8-neighbourhood) an outside pixel: where the pressure would leak.
fn lumen_contact(labels: &LabelMap) -> (usize, Vec<usize>) {
    let (w, h) = (labels.width(), labels.height());
    let values = labels.values();
    let outside = |r: usize, c: usize| values[r * w + c] == Tissue::Outside as u8;
    let open = |row: usize, col: usize| {
        row == 0
            || col == 0
            || row + 1 == h
            || col + 1 == w
            || (row - 1..row + 2).any(|r| (col - 1..col + 2).any(|c| outside(r, c)))
    };
    let lumen: Vec<usize> = (0..w * h)
        .filter(|&i| values[i] == Tissue::Lumen as u8)
        .collect();
    let contact = lumen
        .iter()
        .copied()
        .filter(|&i| open(i / w, i % w))
        .collect();
    (lumen.len(), contact)
}

/// Checks that a lumen exists and is closed inside the wall: no lumen pixel on the image
/// border or next to (8-neighbourhood) an outside pixel. The first offending pixel is named.
pub fn check_closed_lumen(labels: &LabelMap) -> Result<(), LumenError> {
    let (lumen, contact) = lumen_contact(labels);
    match contact.first() {
        _ if lumen == 0 => Err(LumenError::NoLumen),
        Some(&first) => Err(LumenError::Open {
            row: first / labels.width(),
            col: first % labels.width(),
            count: contact.len(),
        }),
        None => Ok(()),
    }
}

/// The rule for a label map entering sula (an import, `sula label`, a dataset): a lumen
/// touching the outside or the border at no more than `tolerance` pixels (a rasterised
/// wall thinner than a pixel) is sealed with the thinnest wall, exactly those lumen pixels
/// becoming fibrous, and the map comes back with their count for a warning; more contact
/// is a real opening and an error naming the first pixel. One pass closes the lumen: it
/// only turns lumen into wall, so no outside pixel or border appears next to the lumen.
pub fn close_lumen(labels: &LabelMap, tolerance: usize) -> Result<(LabelMap, usize), LumenError> {
    let (lumen, contact) = lumen_contact(labels);
    if lumen == 0 {
        return Err(LumenError::NoLumen);
    }
    if contact.len() > tolerance {
        return Err(LumenError::TooOpen {
            row: contact[0] / labels.width(),
            col: contact[0] % labels.width(),
            count: contact.len(),
            tolerance,
        });
    }
    if contact.len() == lumen {
        return Err(LumenError::SealedAway { count: lumen });
    }
    let mut values = labels.values().to_vec();
    for &i in &contact {
        values[i] = Tissue::Fibrous as u8;
    }
    let sealed = LabelMap {
        width: labels.width,
        height: labels.height,
        values,
    };
    Ok((sealed, contact.len()))
}

/// [`close_lumen`] with [`LUMEN_CONTACT_TOLERANCE`] for a reader of many maps (a dataset,
/// `sula label`), where a map it cannot close goes on unchanged with 0 sealed: the FEA then
/// leaves that frame out or labels it as it is, and one open frame refuses no other.
pub fn seal_thin_wall(labels: LabelMap) -> (LabelMap, usize) {
    match close_lumen(&labels, LUMEN_CONTACT_TOLERANCE) {
        Ok(closed) => closed,
        Err(_) => (labels, 0),
    }
}

/// The warning for a map whose lumen [`close_lumen`] sealed at `pixels` pixels.
pub fn sealed_warning(pixels: usize) -> String {
    format!(
        "the lumen touched the outside at {pixels} pixel{} (a wall thinner than a pixel); sealed with the thinnest wall",
        if pixels == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shapes::{annulus, thin_walled_diamond};

    #[test]
    fn rejects_invalid_values_with_position() {
        let err = LabelMap::new(3, 2, vec![0, 1, 2, 3, 7, 4]).unwrap_err();
        assert_eq!(
            err,
            LabelMapError::InvalidValue {
                value: 7,
                row: 1,
                col: 1
            }
        );
    }

    #[test]
    fn rejects_wrong_length_and_empty() {
        assert!(matches!(
            LabelMap::new(2, 2, vec![0; 3]),
            Err(LabelMapError::SizeMismatch { .. })
        ));
        assert!(matches!(
            LabelMap::new(0, 2, vec![]),
            Err(LabelMapError::Empty { .. })
        ));
    }

    #[test]
    fn counts_classes() {
        let map = LabelMap::new(3, 1, vec![2, 2, 4]).unwrap();
        assert_eq!(map.class_counts(), [0, 0, 2, 0, 1]);
        assert_eq!(map.get(0, 2), Tissue::Calcium);
    }

    /// A ring around a round lumen with calcium over its first `calcium_deg` degrees.
    fn ring_with_calcium(calcium_deg: f64) -> LabelMap {
        LabelMap::from_fn(64, 64, |row, col| {
            let (y, x) = (row as f64 - 31.5, col as f64 - 31.5);
            let (r, angle) = (
                (x * x + y * y).sqrt(),
                y.atan2(x).rem_euclid(std::f64::consts::TAU),
            );
            match r {
                r if r < 12.0 => Tissue::Lumen,
                r if r < 20.0 && angle.to_degrees() < calcium_deg => Tissue::Calcium,
                r if r < 20.0 => Tissue::Fibrous,
                _ => Tissue::Outside,
            }
        })
    }

    /// Where `sealed` differs from `map`: the indices, each of which must have turned
    /// from lumen into fibrous wall.
    fn sealed_at(map: &LabelMap, sealed: &LabelMap) -> Vec<usize> {
        let changed: Vec<usize> = (0..map.values().len())
            .filter(|&i| map.values()[i] != sealed.values()[i])
            .collect();
        assert!(
            changed
                .iter()
                .all(|&i| map.values()[i] == Tissue::Lumen as u8
                    && sealed.values()[i] == Tissue::Fibrous as u8)
        );
        changed
    }

    #[test]
    fn a_thin_wall_touching_at_three_diagonal_pixels_is_sealed_with_a_count_of_three() {
        let thin = thin_walled_diamond(40, 3);
        assert!(matches!(
            check_closed_lumen(&thin),
            Err(LumenError::Open { count: 3, .. })
        ));
        let (sealed, count) = close_lumen(&thin, LUMEN_CONTACT_TOLERANCE).unwrap();
        assert_eq!(count, 3);
        assert_eq!(check_closed_lumen(&sealed), Ok(()));
        assert_eq!(sealed_at(&thin, &sealed), lumen_contact(&thin).1);
        assert!(sealed_warning(count).contains("3 pixels"));
    }

    #[test]
    fn a_real_opening_is_refused_naming_the_pixel_the_count_and_the_tolerance() {
        let ring = thin_walled_diamond(40, 0);
        let open = LabelMap::from_fn(40, 40, |row, col| match ring.get(row, col) {
            Tissue::Fibrous if row < 20 && (20..30).contains(&col) => Tissue::Outside,
            tissue => tissue,
        });
        let err = close_lumen(&open, LUMEN_CONTACT_TOLERANCE).unwrap_err();
        let LumenError::TooOpen { count, .. } = err else {
            panic!("{err:?}")
        };
        assert!(count >= 10, "{count}");
        let message = err.to_string();
        assert!(
            message.contains("not closed inside the wall: it touches the outside at pixel (row")
                && message.contains(&format!("{count} lumen pixels"))
                && message.contains(&format!("more than the {LUMEN_CONTACT_TOLERANCE}")),
            "{message}"
        );
    }

    #[test]
    fn the_tolerance_seals_up_to_and_including_its_count() {
        let at = thin_walled_diamond(40, LUMEN_CONTACT_TOLERANCE);
        let over = thin_walled_diamond(40, LUMEN_CONTACT_TOLERANCE + 1);
        assert_eq!(
            close_lumen(&at, LUMEN_CONTACT_TOLERANCE).unwrap().1,
            LUMEN_CONTACT_TOLERANCE
        );
        assert!(matches!(
            close_lumen(&over, LUMEN_CONTACT_TOLERANCE),
            Err(LumenError::TooOpen { .. })
        ));
        assert_eq!(seal_thin_wall(over.clone()), (over, 0));
    }

    #[test]
    fn a_closed_map_passes_unchanged_and_a_map_without_a_lumen_to_keep_is_refused() {
        let closed = annulus(32, 8.0, 12.0);
        assert_eq!(close_lumen(&closed, 0), Ok((closed.clone(), 0)));
        let no_lumen = LabelMap::from_fn(8, 8, |_, _| Tissue::Fibrous);
        assert_eq!(close_lumen(&no_lumen, 8), Err(LumenError::NoLumen));
        // Two lumen pixels, each touching the outside at a corner of the wall.
        let speck = LabelMap::from_fn(8, 8, |row, col| match (row, col) {
            (3, 3) | (3, 4) => Tissue::Lumen,
            (2, 2) | (4, 5) => Tissue::Outside,
            (2..=4, 2..=5) => Tissue::Fibrous,
            _ => Tissue::Outside,
        });
        assert_eq!(
            close_lumen(&speck, 8),
            Err(LumenError::SealedAway { count: 2 })
        );
    }

    proptest::proptest! {
        /// Whatever the map, a sealed map is closed and differs from it only where a lumen
        /// pixel became wall, as many as counted.
        #[test]
        fn a_sealed_map_is_closed_and_changed_only_at_the_counted_pixels(
            values in proptest::collection::vec(
                proptest::sample::select(vec![0u8, 1, 1, 1, 2, 3, 4]),
                100,
            )
        ) {
            let map = LabelMap::new(10, 10, values).unwrap();
            if let Ok((sealed, count)) = close_lumen(&map, 100) {
                proptest::prop_assert_eq!(check_closed_lumen(&sealed), Ok(()));
                let changed = sealed_at(&map, &sealed);
                proptest::prop_assert_eq!(changed.len(), count);
                proptest::prop_assert_eq!(changed, lumen_contact(&map).1);
            }
        }
    }

    #[test]
    fn arc_degrees_measures_how_far_a_tissue_wraps_round_the_lumen() {
        for calcium in [30.0, 90.0, 200.0] {
            let arc = ring_with_calcium(calcium)
                .arc_degrees(Tissue::Calcium)
                .unwrap();
            assert!(
                (arc - calcium).abs() <= 10.0,
                "{calcium}° arc measured as {arc}°"
            );
        }
        let full = ring_with_calcium(0.0);
        assert_eq!(full.arc_degrees(Tissue::Calcium), Some(0.0));
        assert_eq!(full.arc_degrees(Tissue::Fibrous), Some(360.0));
        let no_lumen = LabelMap::from_fn(8, 8, |_, _| Tissue::Fibrous);
        assert_eq!(no_lumen.arc_degrees(Tissue::Fibrous), None);
    }
}
