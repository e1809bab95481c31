//! Tissue label maps (SPEC §2.1): the segmentation every other part of sula reads.

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

/// Checks that a lumen exists and is closed inside the wall: no lumen pixel on the image
/// border or next to (8-neighbourhood) an outside pixel. The first offending pixel is named.
pub fn check_closed_lumen(labels: &LabelMap) -> Result<(), String> {
    let (w, h) = (labels.width(), labels.height());
    let mut any = false;
    for row in 0..h {
        for col in 0..w {
            if labels.get(row, col) != Tissue::Lumen {
                continue;
            }
            any = true;
            let open = row == 0
                || col == 0
                || row + 1 == h
                || col + 1 == w
                || (row - 1..row + 2)
                    .any(|r| (col - 1..col + 2).any(|c| labels.get(r, c) == Tissue::Outside));
            if open {
                return Err(format!(
                    "the lumen is not closed inside the wall: it touches the outside at pixel (row {row}, column {col})"
                ));
            }
        }
    }
    if any {
        Ok(())
    } else {
        Err("it has no lumen (value 1)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
