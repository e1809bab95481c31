//! The mesh and sparsity pattern of one set of meshed pixels: node and DOF numbering,
//! rigid-body pins, the lower-triangular CSC structure, the element-to-matrix scatter map
//! and the symbolic Cholesky factorisation. Everything here depends only on *which*
//! pixels are meshed, so it is cached and reused when the same pattern comes back.

use faer::Side;
use faer::sparse::SymbolicSparseColMatRef;
use faer::sparse::linalg::SupernodalThreshold;
use faer::sparse::linalg::cholesky::SymmetricOrdering;
use faer::sparse::linalg::cholesky::{
    CholeskySymbolicParams, SymbolicCholesky, factorize_symbolic_cholesky,
};

use super::topology::{NONE, Topology};
use super::{FeaError, PinChoice};

/// Local DOF pairs (a, b) with a ≥ b: the lower triangle of an 8×8 element matrix.
pub const LOWER_PAIRS: [(u8, u8); 36] = {
    let mut pairs = [(0u8, 0u8); 36];
    let mut n = 0;
    let mut a = 0;
    while a < 8 {
        let mut b = 0;
        while b <= a {
            pairs[n] = (a as u8, b as u8);
            n += 1;
            b += 1;
        }
        a += 1;
    }
    pairs
};

/// Mesh, DOF numbering and symbolic factorisation for one meshed-pixel set.
#[derive(Debug)]
pub struct Pattern {
    pub width: usize,
    pub height: usize,
    /// Pixel index of each element.
    pub element_pixel: Vec<u32>,
    /// The four node ids of each element (local order of [`super::element`]).
    pub element_nodes: Vec<[u32; 4]>,
    /// Grid coordinates (x = column, y = row) of each node, in pixels.
    pub node_xy: Vec<(u32, u32)>,
    /// Body of each node.
    pub node_body: Vec<u32>,
    /// Number of elements touching each node (lumped mass in units of ¼ pixel area).
    pub node_valence: Vec<u8>,
    pub body_count: usize,
    /// Free-DOF index of each nodal DOF (2·node + component), or [`NONE`] if pinned.
    pub dof_index: Vec<u32>,
    pub free_dofs: usize,
    pub col_ptr: Vec<u32>,
    pub row_idx: Vec<u32>,
    /// For each element and each of [`LOWER_PAIRS`], the index into the CSC values, or [`NONE`].
    pub scatter: Vec<[u32; 36]>,
    pub symbolic: SymbolicCholesky<u32>,
}

impl Pattern {
    /// Builds mesh, numbering, pins, CSC structure and symbolic factorisation.
    pub fn build(
        width: usize,
        height: usize,
        topology: &Topology,
        pins: PinChoice,
    ) -> Result<Pattern, FeaError> {
        let grid_w = width + 1;
        let mut pixels_by_body = vec![Vec::new(); topology.body_count];
        for (p, &b) in topology.body_of_pixel.iter().enumerate() {
            if b != NONE {
                pixels_by_body[b as usize].push(p as u32);
            }
        }

        let mut grid_stamp = vec![NONE; grid_w * (height + 1)];
        let mut grid_node = vec![0u32; grid_w * (height + 1)];
        let mut node_xy = Vec::new();
        let mut node_body = Vec::new();
        let mut node_valence: Vec<u8> = Vec::new();
        let mut element_pixel = Vec::new();
        let mut element_nodes = Vec::new();
        let mut pinned = Vec::new();

        for (body, pixels) in pixels_by_body.iter().enumerate() {
            let first_node = node_xy.len();
            for &p in pixels {
                let (row, col) = (p as usize / width, p as usize % width);
                let corners = [
                    (col, row),
                    (col + 1, row),
                    (col + 1, row + 1),
                    (col, row + 1),
                ];
                let mut ids = [0u32; 4];
                for (k, &(x, y)) in corners.iter().enumerate() {
                    let g = y * grid_w + x;
                    if grid_stamp[g] != body as u32 {
                        grid_stamp[g] = body as u32;
                        grid_node[g] = node_xy.len() as u32;
                        node_xy.push((x as u32, y as u32));
                        node_body.push(body as u32);
                        node_valence.push(0);
                    }
                    ids[k] = grid_node[g];
                    node_valence[grid_node[g] as usize] += 1;
                }
                element_pixel.push(p);
                element_nodes.push(ids);
            }
            pinned.extend(body_pins(&node_xy[first_node..], first_node, pins));
        }

        // Free DOFs are numbered in nested-dissection order of their nodes, so the
        // Cholesky factor needs no further fill-reducing permutation.
        let mut dof_index = vec![0u32; 2 * node_xy.len()];
        for &d in &pinned {
            dof_index[d] = NONE;
        }
        let mut free_dofs = 0u32;
        for node in nested_dissection(&node_xy) {
            for dof in [2 * node as usize, 2 * node as usize + 1] {
                if dof_index[dof] != NONE {
                    dof_index[dof] = free_dofs;
                    free_dofs += 1;
                }
            }
        }
        let free_dofs = free_dofs as usize;

        // Nodes sharing an element with each node, by grid offset slot (3×3 around it).
        let mut neighbours = vec![[NONE; 9]; node_xy.len()];
        for nodes in &element_nodes {
            for (k, &n) in nodes.iter().enumerate() {
                for (l, &m) in nodes.iter().enumerate() {
                    neighbours[n as usize][offset_slot(l, k)] = m;
                }
            }
        }
        let mut dof_node = vec![0u32; free_dofs];
        for (dof, &index) in dof_index.iter().enumerate() {
            if index != NONE {
                dof_node[index as usize] = (dof / 2) as u32;
            }
        }

        // Lower-triangular CSC, columns in DOF order; `position[d]` remembers where the
        // row of (neighbour slot, component) sits in column d for the scatter map.
        let mut col_ptr = Vec::with_capacity(free_dofs + 1);
        let mut row_idx = Vec::with_capacity(10 * free_dofs);
        let mut position = vec![[NONE; 18]; free_dofs];
        col_ptr.push(0u32);
        for (col, &node) in dof_node.iter().enumerate() {
            let mut rows: Vec<(u32, usize)> = Vec::with_capacity(18);
            for (slot, &m) in neighbours[node as usize].iter().enumerate() {
                if m == NONE {
                    continue;
                }
                for c in 0..2 {
                    let row = dof_index[2 * m as usize + c];
                    if row != NONE && row as usize >= col {
                        rows.push((row, 2 * slot + c));
                    }
                }
            }
            rows.sort_unstable();
            for (row, key) in rows {
                position[col][key] = row_idx.len() as u32;
                row_idx.push(row);
            }
            col_ptr.push(row_idx.len() as u32);
        }

        let scatter = element_nodes
            .iter()
            .map(|nodes| {
                let dof = |i: usize| dof_index[2 * nodes[i / 2] as usize + i % 2];
                LOWER_PAIRS.map(|(a, b)| {
                    let (a, b) = (a as usize, b as usize);
                    let (ga, gb) = (dof(a), dof(b));
                    if ga == NONE || gb == NONE {
                        return NONE;
                    }
                    // Column = the smaller DOF; the row's node is found by its offset.
                    let (row, col) = if ga >= gb { (a, b) } else { (b, a) };
                    let slot = offset_slot(row / 2, col / 2);
                    position[dof(col) as usize][2 * slot + row % 2]
                })
            })
            .collect();

        // The DOFs are already in elimination order, so no permutation is asked for;
        // faer's symbolic analysis without one reads the upper triangle, which has the
        // structure of our lower triangle transposed.
        let (upper_ptr, upper_idx) = transpose_structure(free_dofs, &col_ptr, &row_idx);
        let upper = SymbolicSparseColMatRef::new_checked(
            free_dofs, free_dofs, &upper_ptr, None, &upper_idx,
        );
        let symbolic = factorize_symbolic_cholesky(
            upper,
            Side::Upper,
            SymmetricOrdering::Identity,
            // faer's automatic choice picks the simplicial factorisation for small
            // meshes, which measured 3.5× slower at 64² (docs/BENCHMARKS.md).
            CholeskySymbolicParams {
                supernodal_flop_ratio_threshold: SupernodalThreshold::FORCE_SUPERNODAL,
                ..Default::default()
            },
        )
        .map_err(|e| FeaError::Solver(format!("symbolic factorisation failed: {e:?}")))?;
        Ok(Pattern {
            width,
            height,
            element_pixel,
            element_nodes,
            node_xy,
            node_body,
            node_valence,
            body_count: topology.body_count,
            dof_index,
            free_dofs,
            col_ptr,
            row_idx,
            scatter,
            symbolic,
        })
    }

    /// The CSC structure as a faer view.
    pub fn structure(&self) -> SymbolicSparseColMatRef<'_, u32> {
        SymbolicSparseColMatRef::new_checked(
            self.free_dofs,
            self.free_dofs,
            &self.col_ptr,
            None,
            &self.row_idx,
        )
    }
}

/// Three statically determinate constraints for one body: both DOFs of an anchor node,
/// and at the node farthest from it the DOF across the anchor–node line.
fn body_pins(nodes: &[(u32, u32)], first_node: usize, pins: PinChoice) -> [usize; 3] {
    let anchor = match pins {
        PinChoice::Auto => 0,
        PinChoice::Offset(k) => k % nodes.len(),
    };
    let (ax, ay) = (nodes[anchor].0 as i64, nodes[anchor].1 as i64);
    let (far, &(fx, fy)) = nodes
        .iter()
        .enumerate()
        .max_by_key(|(_, (x, y))| (*x as i64 - ax).pow(2) + (*y as i64 - ay).pow(2))
        .expect("a body has at least four nodes");
    let across = if (fx as i64 - ax).abs() >= (fy as i64 - ay).abs() {
        1
    } else {
        0
    };
    let a = first_node + anchor;
    [2 * a, 2 * a + 1, 2 * (first_node + far) + across]
}

/// Leaves at or below this many nodes are not split further.
const DISSECTION_LEAF: usize = 24;

/// Geometric nested dissection of grid nodes: split along the longer side of the bounding
/// box at the median grid line; that line of nodes separates the two halves (nodes of one
/// element differ by at most one grid step) and is ordered after both. On a 2D grid this
/// gives O(N^1.5) factorisation work, the optimal order, and beats minimum degree.
fn nested_dissection(node_xy: &[(u32, u32)]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..node_xy.len() as u32).collect();
    dissect(&mut order, node_xy);
    order
}

/// Reorders `nodes` in place as [low half][high half][separator], recursively.
fn dissect(nodes: &mut [u32], node_xy: &[(u32, u32)]) {
    if nodes.len() <= DISSECTION_LEAF {
        return;
    }
    let (mut min, mut max) = ((u32::MAX, u32::MAX), (0, 0));
    for &n in nodes.iter() {
        let (x, y) = node_xy[n as usize];
        min = (min.0.min(x), min.1.min(y));
        max = (max.0.max(x), max.1.max(y));
    }
    let along_x = max.0 - min.0 >= max.1 - min.1;
    let coord = |n: u32| {
        let (x, y) = node_xy[n as usize];
        if along_x { x } else { y }
    };
    let middle = nodes.len() / 2;
    nodes.select_nth_unstable_by_key(middle, |&n| coord(n));
    let cut = coord(nodes[middle]);
    // Three-way partition: low (< cut), high (> cut), separator (== cut).
    let (mut low, mut next, mut sep) = (0, 0, nodes.len());
    while next < sep {
        match coord(nodes[next]).cmp(&cut) {
            std::cmp::Ordering::Less => {
                nodes.swap(low, next);
                low += 1;
                next += 1;
            }
            std::cmp::Ordering::Greater => next += 1,
            std::cmp::Ordering::Equal => {
                sep -= 1;
                nodes.swap(next, sep);
            }
        }
    }
    if sep == 0 {
        return;
    }
    let (low_half, rest) = nodes.split_at_mut(low);
    dissect(low_half, node_xy);
    dissect(&mut rest[..sep - low], node_xy);
}

/// Grid offset of local corner `to` relative to local corner `from`, as a slot in 0..9.
fn offset_slot(to: usize, from: usize) -> usize {
    const CORNER: [(usize, usize); 4] = [(0, 0), (1, 0), (1, 1), (0, 1)];
    let (tx, ty) = CORNER[to];
    let (fx, fy) = CORNER[from];
    (tx + 1 - fx) * 3 + (ty + 1 - fy)
}

/// CSC structure of the transpose (sorted row indices, since columns are visited in order).
fn transpose_structure(n: usize, col_ptr: &[u32], row_idx: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut counts = vec![0u32; n + 1];
    for &row in row_idx {
        counts[row as usize + 1] += 1;
    }
    for i in 0..n {
        counts[i + 1] += counts[i];
    }
    let mut next = counts.clone();
    let mut transposed = vec![0u32; row_idx.len()];
    for col in 0..n {
        for &row in &row_idx[col_ptr[col] as usize..col_ptr[col + 1] as usize] {
            transposed[next[row as usize] as usize] = col as u32;
            next[row as usize] += 1;
        }
    }
    (counts, transposed)
}
