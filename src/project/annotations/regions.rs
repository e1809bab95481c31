//! Regions as annotation tools draw them (polygons and masks, each with a tissue name)
//! painted into one tissue label map. Overlapping regions are painted in one fixed order,
//! from the outside in: the vessel (everything inside the media–adventitia border) as
//! fibrous wall, then lipid and calcium plaque, then the lumen, so an annotator can draw
//! each structure whole without cutting holes (docs/DESIGN.md §Annotations).

use crate::data::dataset::fill_polygon;
use crate::labels::{LabelMap, Tissue};

/// The names annotation tools give the regions, in painting order. Batches offer exactly
/// these names (COCO categories, Label Studio labels); import matches them ignoring case.
pub const REGION_NAMES: [&str; 4] = ["vessel", "lipid", "calcium", "lumen"];

/// What a region is, by the tissue it paints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RegionKind {
    /// Inside the media–adventitia border: fibrous wall unless painted over.
    Vessel,
    Lipid,
    Calcium,
    Lumen,
}

impl RegionKind {
    /// The kind named `name` (case and surrounding space ignored).
    pub fn from_name(name: &str) -> Option<RegionKind> {
        match name.trim().to_ascii_lowercase().as_str() {
            "vessel" => Some(RegionKind::Vessel),
            "lipid" => Some(RegionKind::Lipid),
            "calcium" => Some(RegionKind::Calcium),
            "lumen" => Some(RegionKind::Lumen),
            _ => None,
        }
    }

    fn tissue(self) -> Tissue {
        match self {
            RegionKind::Vessel => Tissue::Fibrous,
            RegionKind::Lipid => Tissue::Lipid,
            RegionKind::Calcium => Tissue::Calcium,
            RegionKind::Lumen => Tissue::Lumen,
        }
    }
}

/// One drawn region: which pixels it covers, at the frame's size.
#[derive(Debug, Clone)]
pub struct Region {
    pub kind: RegionKind,
    pub pixels: Vec<bool>,
}

impl Region {
    /// A polygon in continuous image coordinates, where pixel (column c, row r) covers
    /// [c, c+1) × [r, r+1) as in COCO and Label Studio: a pixel is inside when its centre is.
    pub fn polygon(kind: RegionKind, points: &[[f64; 2]], width: usize, height: usize) -> Region {
        let centred: Vec<[f64; 2]> = points.iter().map(|p| [p[0] - 0.5, p[1] - 0.5]).collect();
        Region {
            kind,
            pixels: fill_polygon(&centred, width, height),
        }
    }
}

/// Paints `regions` (all at `width` × `height`) into a label map in the documented order;
/// pixels no region covers are outside the vessel. The caller names the frame in errors:
/// a frame with regions but no vessel is refused, since its lumen would lie outside.
pub fn paint(regions: &[Region], width: usize, height: usize) -> Result<LabelMap, String> {
    if !regions.iter().any(|r| r.kind == RegionKind::Vessel) {
        return Err(
            "has no vessel region (the area inside the media–adventitia border); every annotated frame needs one"
                .to_string(),
        );
    }
    let mut values = vec![Tissue::Outside as u8; width * height];
    let mut ordered: Vec<&Region> = regions.iter().collect();
    ordered.sort_by_key(|r| r.kind);
    for region in ordered {
        let tissue = region.kind.tissue() as u8;
        for (value, &inside) in values.iter_mut().zip(&region.pixels) {
            if inside {
                *value = tissue;
            }
        }
    }
    Ok(LabelMap::new(width, height, values).expect("painted values are tissue labels"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(kind: RegionKind, from: f64, to: f64) -> Region {
        Region::polygon(
            kind,
            &[[from, from], [to, from], [to, to], [from, to]],
            8,
            8,
        )
    }

    #[test]
    fn regions_paint_from_the_vessel_in_whatever_order_they_come() {
        let regions = [
            square(RegionKind::Lumen, 3.0, 5.0),
            square(RegionKind::Calcium, 2.0, 3.0),
            square(RegionKind::Vessel, 1.0, 7.0),
        ];
        let labels = paint(&regions, 8, 8).unwrap();
        let at = |col: usize, row: usize| labels.values()[row * 8 + col];
        assert_eq!(at(0, 0), 0);
        assert_eq!(at(1, 1), 2);
        assert_eq!(at(6, 6), 2);
        assert_eq!(at(7, 7), 0);
        assert_eq!(at(2, 2), 4);
        assert_eq!(at(3, 3), 1);
        assert_eq!(at(4, 4), 1);
        assert_eq!(at(5, 5), 2);
        assert_eq!(labels.class_counts(), [28, 4, 31, 0, 1]);
    }

    #[test]
    fn a_pixel_square_covers_exactly_its_pixels_and_names_match_ignoring_case() {
        let one = square(RegionKind::Vessel, 2.0, 3.0);
        assert_eq!(one.pixels.iter().filter(|&&p| p).count(), 1);
        assert!(one.pixels[2 * 8 + 2]);
        assert_eq!(RegionKind::from_name(" Lumen"), Some(RegionKind::Lumen));
        assert_eq!(RegionKind::from_name("plaque"), None);
        let error = paint(&[square(RegionKind::Lumen, 1.0, 4.0)], 8, 8).unwrap_err();
        assert!(error.contains("no vessel region"), "{error}");
    }
}
