//! Analytic label-map shapes: the geometries the FEA is validated and benchmarked on.

use crate::labels::{LabelMap, Tissue};

/// A concentric annulus: lumen for r < `inner`, fibrous wall for `inner` ≤ r < `outer`,
/// outside beyond; radii in pixels from the image centre, measured at pixel centres.
pub fn annulus(size: usize, inner: f64, outer: f64) -> LabelMap {
    let centre = size as f64 / 2.0;
    LabelMap::from_fn(size, size, |row, col| {
        let r = (row as f64 + 0.5 - centre).hypot(col as f64 + 0.5 - centre);
        if r < inner {
            Tissue::Lumen
        } else if r < outer {
            Tissue::Fibrous
        } else {
            Tissue::Outside
        }
    })
}

/// A phantom-like plaque at any resolution: eccentric lumen inside a circular wall, a
/// lipid core under a thin cap on the thick side, and a calcium arc deeper on the other.
/// All geometry scales with `size`, so masks at 64², 128², 256² are the same plaque;
/// `rotation_deg` turns the plaque about the image centre, giving distinct meshes.
pub fn plaque(size: usize, rotation_deg: f64) -> LabelMap {
    let s = size as f64;
    let (cx, cy) = (0.5 * s, 0.5 * s);
    let outer = 0.40 * s;
    let (lx, ly, lumen) = (0.5 * s - 0.08 * s, 0.5 * s + 0.03 * s, 0.17 * s);
    let (sin, cos) = rotation_deg.to_radians().sin_cos();
    LabelMap::from_fn(size, size, |row, col| {
        let (px, py) = (col as f64 + 0.5 - cx, row as f64 + 0.5 - cy);
        let (x, y) = (cx + cos * px + sin * py, cy - sin * px + cos * py);
        let r_lumen = (x - lx).hypot(y - ly);
        let r_outer = (x - cx).hypot(y - cy);
        if r_lumen < lumen {
            return Tissue::Lumen;
        }
        if r_outer >= outer {
            return Tissue::Outside;
        }
        let angle = (y - ly).atan2(x - lx).to_degrees();
        let depth = r_lumen - lumen;
        if (-40.0..40.0).contains(&angle) && depth > 0.03 * s && depth < 0.13 * s {
            Tissue::Lipid
        } else if (110.0..200.0).contains(&(angle.rem_euclid(360.0)))
            && depth > 0.06 * s
            && depth < 0.10 * s
        {
            Tissue::Calcium
        } else {
            Tissue::Fibrous
        }
    })
}

/// A diamond lumen (|x| + |y| < r about the image centre) in a wall two pixels thick,
/// where `thin` wall pixels of one side (at most `size`/2 − 5) are outside instead: there
/// the wall is one pixel thick and lumen meets outside corner to corner at exactly `thin`
/// lumen pixels, as where a wall thinner than a pixel is rasterised.
pub fn thin_walled_diamond(size: usize, thin: usize) -> LabelMap {
    let centre = (size / 2) as i64;
    let r = centre - 4;
    LabelMap::from_fn(size, size, |row, col| {
        let (x, y) = (col as i64 - centre, row as i64 - centre);
        let s = x.abs() + y.abs();
        let thinned = s == r + 1 && y >= 1 && (2..2 + thin as i64).contains(&x);
        if s < r {
            Tissue::Lumen
        } else if s < r + 2 && !thinned {
            Tissue::Fibrous
        } else {
            Tissue::Outside
        }
    })
}
