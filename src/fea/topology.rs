//! Which pixels get meshed: solid pixels grouped into edge-connected bodies, and which
//! of those bodies carry luminal pressure.
//!
//! Bodies are 4-connected: two solid pixels that touch only at a corner would form a
//! hinge (a zero-energy mechanism), so they are treated as separate bodies. A body with
//! no lumen-facing edge carries no load and, being traction-free, has zero stress; it is
//! not meshed at all, which also keeps the stiffness matrix positive definite.

use super::FeaError;
use crate::labels::{LabelMap, Tissue};

/// Sentinel for "no body" in per-pixel maps.
pub const NONE: u32 = u32::MAX;

/// The loaded bodies of a label map.
#[derive(Debug)]
pub struct Topology {
    /// For each pixel, the index of the loaded body it belongs to, or [`NONE`].
    pub body_of_pixel: Vec<u32>,
    /// Number of loaded bodies.
    pub body_count: usize,
}

/// The four edge neighbours as (row offset, column offset).
pub const NEIGHBOURS: [(isize, isize); 4] = [(0, 1), (0, -1), (-1, 0), (1, 0)];

/// Neighbour of (row, col) in direction `d`, if inside the image.
pub fn neighbour(
    map: &LabelMap,
    row: usize,
    col: usize,
    d: (isize, isize),
) -> Option<(usize, usize)> {
    let r = row.checked_add_signed(d.0)?;
    let c = col.checked_add_signed(d.1)?;
    (r < map.height() && c < map.width()).then_some((r, c))
}

/// Whether any edge neighbour of (row, col) is lumen.
pub fn touches_lumen(map: &LabelMap, row: usize, col: usize) -> bool {
    let (w, h, values) = (map.width(), map.height(), map.values());
    let lumen = Tissue::Lumen as u8;
    (col + 1 < w && values[row * w + col + 1] == lumen)
        || (col > 0 && values[row * w + col - 1] == lumen)
        || (row > 0 && values[(row - 1) * w + col] == lumen)
        || (row + 1 < h && values[(row + 1) * w + col] == lumen)
}

fn is_solid(value: u8) -> bool {
    (Tissue::Fibrous as u8..=Tissue::Calcium as u8).contains(&value)
}

/// Finds the loaded bodies, or says why there is nothing to solve.
pub fn analyse(map: &LabelMap) -> Result<Topology, FeaError> {
    let (w, h) = (map.width(), map.height());
    let counts = map.class_counts();
    if counts[2] + counts[3] + counts[4] == 0 {
        return Err(FeaError::NoSolid);
    }
    if counts[1] == 0 {
        return Err(FeaError::NoLumen);
    }
    let mut component = vec![NONE; w * h];
    let mut loaded = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if component[start] != NONE || !is_solid(map.values()[start]) {
            continue;
        }
        let id = loaded.len() as u32;
        let mut is_loaded = false;
        component[start] = id;
        stack.push(start);
        while let Some(p) = stack.pop() {
            let (row, col) = (p / w, p % w);
            is_loaded |= touches_lumen(map, row, col);
            for &d in &NEIGHBOURS {
                if let Some((r, c)) = neighbour(map, row, col, d) {
                    let q = r * w + c;
                    if component[q] == NONE && is_solid(map.values()[q]) {
                        component[q] = id;
                        stack.push(q);
                    }
                }
            }
        }
        loaded.push(is_loaded);
    }
    let mut renumber = vec![NONE; loaded.len()];
    let mut body_count = 0;
    for (old, &is_loaded) in loaded.iter().enumerate() {
        if is_loaded {
            renumber[old] = body_count as u32;
            body_count += 1;
        }
    }
    if body_count == 0 {
        return Err(FeaError::NoLoadedWall);
    }
    let body_of_pixel = component
        .into_iter()
        .map(|c| {
            if c == NONE {
                NONE
            } else {
                renumber[c as usize]
            }
        })
        .collect();
    Ok(Topology {
        body_of_pixel,
        body_count,
    })
}
