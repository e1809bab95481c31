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
}
