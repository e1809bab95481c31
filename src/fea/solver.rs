//! Assembly, load, factorisation, solve and stress recovery, with a small cache of
//! sparsity patterns so repeated masks skip the symbolic work.

use std::sync::Arc;
use std::time::Instant;

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::sparse::SparseColMatRef;
use faer::{Conj, MatMut, Par, Side};

use super::element::{stiffness, strain_matrix};
use super::pattern::{LOWER_PAIRS, Pattern};
use super::topology::{self, NEIGHBOURS, NONE, Topology};
use super::{FeaError, FeaParams, FeaTimings, PinChoice, StressField};
use crate::labels::{LabelMap, Tissue};

/// How many distinct patterns a solver remembers.
const CACHE_CAPACITY: usize = 4;

#[derive(Debug, PartialEq, Eq)]
struct PatternKey {
    width: usize,
    height: usize,
    meshed: Vec<u64>,
    pins: PinChoice,
}

impl PatternKey {
    fn new(map: &LabelMap, topology: &Topology, pins: PinChoice) -> PatternKey {
        let mut meshed = vec![0u64; topology.body_of_pixel.len().div_ceil(64)];
        for (p, &b) in topology.body_of_pixel.iter().enumerate() {
            if b != NONE {
                meshed[p / 64] |= 1 << (p % 64);
            }
        }
        PatternKey {
            width: map.width(),
            height: map.height(),
            meshed,
            pins,
        }
    }
}

/// A reusable FEA solver. Keep one per thread: it caches the symbolic factorisation of
/// recently seen meshes, so relabelling the same geometry (new pressure, new materials)
/// only pays for the numeric factorisation.
#[derive(Debug, Default)]
pub struct FeaSolver {
    cache: Vec<(PatternKey, Arc<Pattern>)>,
}

impl FeaSolver {
    /// Computes the stress tensor field of one label map.
    pub fn solve(&mut self, map: &LabelMap, params: &FeaParams) -> Result<StressField, FeaError> {
        params.validate()?;
        let start = Instant::now();
        let topology = topology::analyse(map)?;
        let pattern = self.pattern(map, &topology, params.pins)?;
        let mut timings = FeaTimings {
            setup_ms: ms_since(start),
            ..FeaTimings::default()
        };

        let start = Instant::now();
        let element_tissue: Vec<Tissue> = pattern
            .element_pixel
            .iter()
            .map(|&p| map.get(p as usize / map.width(), p as usize % map.width()))
            .collect();
        let values = assemble(&pattern, &element_tissue, params);
        let (mut rhs, load_imbalance) = load_vector(map, &pattern, params.pressure_kpa);
        timings.assemble_ms = ms_since(start);

        let start = Instant::now();
        // One frame is solved on one thread; batches parallelise across frames.
        let par = Par::Seq;
        let symbolic = &pattern.symbolic;
        let mut workspace = MemBuffer::new(
            symbolic
                .factorize_numeric_llt_scratch::<f64>(par, Default::default())
                .or(symbolic.solve_in_place_scratch::<f64>(1, par)),
        );
        let mut factor = vec![0.0; symbolic.len_val()];
        let matrix = SparseColMatRef::new(pattern.structure(), &values);
        let llt = symbolic
            .factorize_numeric_llt(
                &mut factor,
                matrix,
                Side::Lower,
                Default::default(),
                par,
                MemStack::new(&mut workspace),
                Default::default(),
            )
            .map_err(|e| FeaError::Solver(format!("Cholesky factorisation failed: {e:?}")))?;
        timings.factor_ms = ms_since(start);

        let start = Instant::now();
        let n = pattern.free_dofs;
        llt.solve_in_place_with_conj(
            Conj::No,
            MatMut::from_column_major_slice_mut(&mut rhs, n, 1),
            par,
            MemStack::new(&mut workspace),
        );
        // Finite displacements give finite stresses, so this one check covers both.
        if !rhs.iter().all(|v| v.is_finite()) {
            return Err(FeaError::NonFinite);
        }
        let displacement: Vec<f64> = pattern
            .dof_index
            .iter()
            .map(|&d| if d == NONE { 0.0 } else { rhs[d as usize] })
            .collect();
        timings.solve_ms = ms_since(start);

        let start = Instant::now();
        let mut field = recover_stress(&pattern, &element_tissue, &displacement, params);
        field.max_displacement_mm = displacement
            .chunks_exact(2)
            .map(|u| u[0].hypot(u[1]))
            .fold(0.0, f64::max)
            * params.pixel_mm;
        field.load_imbalance = load_imbalance;
        field.dofs = n;
        timings.stress_ms = ms_since(start);
        field.timings = timings;
        Ok(field)
    }

    fn pattern(
        &mut self,
        map: &LabelMap,
        topology: &Topology,
        pins: PinChoice,
    ) -> Result<Arc<Pattern>, FeaError> {
        let key = PatternKey::new(map, topology, pins);
        if let Some(pos) = self.cache.iter().position(|(k, _)| *k == key) {
            let entry = self.cache.remove(pos);
            let pattern = Arc::clone(&entry.1);
            self.cache.insert(0, entry);
            return Ok(pattern);
        }
        let pattern = Arc::new(Pattern::build(map.width(), map.height(), topology, pins)?);
        self.cache.insert(0, (key, Arc::clone(&pattern)));
        self.cache.truncate(CACHE_CAPACITY);
        Ok(pattern)
    }

    /// How many patterns are cached (for tests of reuse).
    pub fn cached_patterns(&self) -> usize {
        self.cache.len()
    }
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Element stiffness per label value (solid labels only).
fn element_matrices(params: &FeaParams) -> [Option<[[f64; 8]; 8]>; 5] {
    Tissue::ALL.map(|t| params.materials.of(t).map(stiffness))
}

fn assemble(pattern: &Pattern, element_tissue: &[Tissue], params: &FeaParams) -> Vec<f64> {
    let matrices = element_matrices(params);
    let mut values = vec![0.0; pattern.row_idx.len()];
    for (scatter, &tissue) in pattern.scatter.iter().zip(element_tissue) {
        let k = matrices[tissue as usize]
            .as_ref()
            .expect("only solid pixels are meshed");
        for (&(a, b), &idx) in LOWER_PAIRS.iter().zip(scatter) {
            if idx != NONE {
                values[idx as usize] += k[a as usize][b as usize];
            }
        }
    }
    values
}

/// Local node pairs and outward normal of each pixel edge, in [`NEIGHBOURS`] order.
const EDGES: [([usize; 2], (f64, f64)); 4] = [
    ([1, 2], (1.0, 0.0)),
    ([0, 3], (-1.0, 0.0)),
    ([0, 1], (0.0, -1.0)),
    ([3, 2], (0.0, 1.0)),
];

/// Pressure on lumen-facing edges, balanced per body by inertia relief; returns the
/// free-DOF right-hand side and the largest relative net force of any body.
fn load_vector(map: &LabelMap, pattern: &Pattern, pressure: f64) -> (Vec<f64>, f64) {
    let nodes = pattern.node_xy.len();
    let mut force = vec![0.0; 2 * nodes];
    let w = map.width();
    for (e, &p) in pattern.element_pixel.iter().enumerate() {
        let (row, col) = (p as usize / w, p as usize % w);
        if !topology::touches_lumen(map, row, col) {
            continue;
        }
        for (&dir, &(local, normal)) in NEIGHBOURS.iter().zip(&EDGES) {
            let faces_lumen = topology::neighbour(map, row, col, dir)
                .is_some_and(|(r, c)| map.get(r, c) == Tissue::Lumen);
            if faces_lumen {
                for l in local {
                    let node = pattern.element_nodes[e][l] as usize;
                    force[2 * node] -= 0.5 * pressure * normal.0;
                    force[2 * node + 1] -= 0.5 * pressure * normal.1;
                }
            }
        }
    }

    // Inertia relief: remove each body's net force and moment with a body force
    // proportional to the lumped mass, so the load is self-equilibrated and the pins
    // carry no reaction.
    let bodies = pattern.body_count;
    let mut mass = vec![0.0; bodies];
    let mut moment_x = vec![0.0; bodies];
    let mut moment_y = vec![0.0; bodies];
    for n in 0..nodes {
        let b = pattern.node_body[n] as usize;
        let m = f64::from(pattern.node_valence[n]);
        let (x, y) = pattern.node_xy[n];
        mass[b] += m;
        moment_x[b] += m * f64::from(x);
        moment_y[b] += m * f64::from(y);
    }
    let centre: Vec<(f64, f64)> = (0..bodies)
        .map(|b| (moment_x[b] / mass[b], moment_y[b] / mass[b]))
        .collect();
    let mut net = vec![[0.0f64; 3]; bodies];
    let mut polar = vec![0.0; bodies];
    let mut magnitude = vec![0.0; bodies];
    for n in 0..nodes {
        let b = pattern.node_body[n] as usize;
        let (dx, dy) = offset(pattern.node_xy[n], centre[b]);
        let (fx, fy) = (force[2 * n], force[2 * n + 1]);
        net[b][0] += fx;
        net[b][1] += fy;
        net[b][2] += dx * fy - dy * fx;
        polar[b] += f64::from(pattern.node_valence[n]) * (dx * dx + dy * dy);
        magnitude[b] += fx.hypot(fy);
    }
    for n in 0..nodes {
        let b = pattern.node_body[n] as usize;
        let (dx, dy) = offset(pattern.node_xy[n], centre[b]);
        let m = f64::from(pattern.node_valence[n]);
        let (ax, ay) = (net[b][0] / mass[b], net[b][1] / mass[b]);
        let alpha = net[b][2] / polar[b];
        force[2 * n] -= m * (ax - alpha * dy);
        force[2 * n + 1] -= m * (ay + alpha * dx);
    }
    let imbalance = (0..bodies)
        .filter(|&b| magnitude[b] > 0.0)
        .map(|b| net[b][0].hypot(net[b][1]) / magnitude[b])
        .fold(0.0, f64::max);

    let mut rhs = vec![0.0; pattern.free_dofs];
    for (dof, &index) in pattern.dof_index.iter().enumerate() {
        if index != NONE {
            rhs[index as usize] = force[dof];
        }
    }
    (rhs, imbalance)
}

fn offset((x, y): (u32, u32), (cx, cy): (f64, f64)) -> (f64, f64) {
    (f64::from(x) - cx, f64::from(y) - cy)
}

/// Stress at each element centre, where the volumetric strain is the element's mean
/// dilatation (consistent with the reduced volumetric integration).
fn recover_stress(
    pattern: &Pattern,
    element_tissue: &[Tissue],
    displacement: &[f64],
    params: &FeaParams,
) -> StressField {
    let size = pattern.width * pattern.height;
    let mut field = StressField {
        width: pattern.width,
        height: pattern.height,
        sxx: vec![0.0; size],
        syy: vec![0.0; size],
        sxy: vec![0.0; size],
        szz: vec![0.0; size],
        max_displacement_mm: 0.0,
        load_imbalance: 0.0,
        dofs: 0,
        timings: FeaTimings::default(),
    };
    let lame = Tissue::ALL.map(|t| params.materials.of(t).map(|m| m.lame()));
    let b = strain_matrix(0.0, 0.0);
    for (e, nodes) in pattern.element_nodes.iter().enumerate() {
        let u: [f64; 8] = std::array::from_fn(|i| displacement[2 * nodes[i / 2] as usize + i % 2]);
        let strain: [f64; 3] = std::array::from_fn(|r| (0..8).map(|i| b[r][i] * u[i]).sum());
        let (lambda, mu) = lame[element_tissue[e] as usize].expect("only solid pixels are meshed");
        let volumetric = lambda * (strain[0] + strain[1]);
        let p = pattern.element_pixel[e] as usize;
        field.sxx[p] = (volumetric + 2.0 * mu * strain[0]) as f32;
        field.syy[p] = (volumetric + 2.0 * mu * strain[1]) as f32;
        field.sxy[p] = (mu * strain[2]) as f32;
        field.szz[p] = volumetric as f32;
    }
    field
}
