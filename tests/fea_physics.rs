//! Physics checks of the FEA labelling tool: these fail if the mechanics is wrong.

use sula::data::shapes::{annulus, plaque};
use sula::fea::{self, FeaError, FeaParams, FeaSolver, PinChoice, StressField, StressMeasure};
use sula::labels::{LabelMap, Tissue};

const NU: f64 = 0.49;

/// Analytic Lamé stresses (σrr, σθθ) of a thick-walled cylinder under internal pressure.
fn lame(p: f64, a: f64, b: f64, r: f64) -> (f64, f64) {
    let k = p * a * a / (b * b - a * a);
    (k * (1.0 - b * b / (r * r)), k * (1.0 + b * b / (r * r)))
}

/// Averages of (σrr, σθθ, von Mises) over the pixels whose centres lie within ½ px of radius r.
fn ring_average(field: &StressField, r: f64) -> (f64, f64, f64) {
    let c = field.width as f64 / 2.0;
    let mises = field.measure(StressMeasure::VonMises);
    let (mut srr, mut stt, mut vm, mut n) = (0.0, 0.0, 0.0, 0.0);
    for row in 0..field.height {
        for col in 0..field.width {
            let (x, y) = (col as f64 + 0.5 - c, row as f64 + 0.5 - c);
            let rho = x.hypot(y);
            if (rho - r).abs() < 0.5 {
                let i = row * field.width + col;
                let (cs, sn) = (x / rho, y / rho);
                let (sx, sy, t) = (
                    f64::from(field.sxx[i]),
                    f64::from(field.syy[i]),
                    f64::from(field.sxy[i]),
                );
                srr += sx * cs * cs + sy * sn * sn + 2.0 * t * sn * cs;
                stt += sx * sn * sn + sy * cs * cs - 2.0 * t * sn * cs;
                vm += f64::from(mises[i]);
                n += 1.0;
            }
        }
    }
    (srr / n, stt / n, vm / n)
}

fn relative_difference(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den).sqrt()
}

fn params() -> FeaParams {
    FeaParams::default()
}

#[test]
fn lame_cylinder_mid_wall_within_three_percent_at_128() {
    let p = params();
    let (a, b) = (24.0, 56.0);
    let field = fea::solve(&annulus(128, a, b), &p).unwrap();
    assert!(
        field.load_imbalance < 1e-9,
        "closed lumen must be self-equilibrated"
    );
    let r = 0.5 * (a + b);
    let (srr, stt, vm) = ring_average(&field, r);
    let (er, et) = lame(p.pressure_kpa, a, b, r);
    let k = p.pressure_kpa * a * a / (b * b - a * a);
    let evm = k * (3.0 * b.powi(4) / r.powi(4) + (1.0 - 2.0 * NU).powi(2)).sqrt();
    assert!((srr - er).abs() / er.abs() < 0.03, "σrr {srr} vs {er}");
    assert!((stt - et).abs() / et < 0.03, "σθθ {stt} vs {et}");
    assert!((vm - evm).abs() / evm < 0.03, "von Mises {vm} vs {evm}");
    // Max principal stress is the hoop stress here.
    let principal = field.measure(StressMeasure::MaxPrincipal);
    let centre_row = 64 * 128;
    let at_mid_wall = f64::from(principal[centre_row + 64 + 40]);
    assert!(
        (at_mid_wall - et).abs() / et < 0.03,
        "{at_mid_wall} vs {et}"
    );
}

#[test]
fn lame_error_shrinks_as_resolution_doubles() {
    let p = params();
    let errors: Vec<f64> = [64usize, 128, 256]
        .iter()
        .map(|&size| {
            let s = size as f64 / 128.0;
            let (a, b) = (24.0 * s, 56.0 * s);
            let field = fea::solve(&annulus(size, a, b), &p).unwrap();
            let rings: Vec<f64> = (0..=8)
                .map(|k| a + 4.0 * s + k as f64 * (b - a - 8.0 * s) / 8.0)
                .collect();
            let squared: f64 = rings
                .iter()
                .map(|&r| {
                    let (srr, stt, _) = ring_average(&field, r);
                    let (er, et) = lame(p.pressure_kpa, a, b, r);
                    ((srr - er) / et).powi(2) + ((stt - et) / et).powi(2)
                })
                .sum();
            (squared / (2.0 * rings.len() as f64)).sqrt()
        })
        .collect();
    assert!(
        errors[1] < errors[0] && errors[2] < errors[1],
        "errors {errors:?}"
    );
    assert!(errors[2] < 0.015, "errors {errors:?}");
}

#[test]
fn stress_is_linear_in_pressure() {
    let mask = plaque(64, 20.0);
    let mut p = params();
    let base = fea::solve(&mask, &p).unwrap();
    p.pressure_kpa *= 2.5;
    let scaled = fea::solve(&mask, &p).unwrap();
    let doubled: Vec<f32> = base.sxx.iter().map(|v| v * 2.5).collect();
    assert!(relative_difference(&scaled.sxx, &doubled) < 1e-5);
}

#[test]
fn scaling_all_moduli_leaves_stress_unchanged() {
    let mask = plaque(64, 45.0);
    let mut p = params();
    let base = fea::solve(&mask, &p).unwrap();
    p.materials = p.materials.scaled(37.0);
    let stiffer = fea::solve(&mask, &p).unwrap();
    for measure in [StressMeasure::MaxPrincipal, StressMeasure::VonMises] {
        assert!(relative_difference(&stiffer.measure(measure), &base.measure(measure)) < 1e-5);
    }
    assert!((base.max_displacement_mm / stiffer.max_displacement_mm - 37.0).abs() < 1e-3);
}

#[test]
fn pixel_size_scales_displacement_not_stress() {
    let mask = plaque(64, 0.0);
    let mut p = params();
    p.pixel_mm = 0.05;
    let fine = fea::solve(&mask, &p).unwrap();
    p.pixel_mm = 0.1;
    let coarse = fea::solve(&mask, &p).unwrap();
    assert!(relative_difference(&coarse.syy, &fine.syy) < 1e-6);
    assert!((coarse.max_displacement_mm / fine.max_displacement_mm - 2.0).abs() < 1e-9);
}

/// A wall that does not enclose the lumen: a C-shaped arc with the lumen open to the outside.
fn open_wall() -> LabelMap {
    let base = annulus(48, 8.0, 16.0);
    LabelMap::from_fn(48, 48, |row, col| {
        let t = base.get(row, col);
        if col > 30 && (18..30).contains(&row) {
            if t == Tissue::Fibrous {
                Tissue::Lumen
            } else {
                t
            }
        } else {
            t
        }
    })
}

#[test]
fn result_does_not_depend_on_rigid_body_pins() {
    for mask in [plaque(64, 10.0), open_wall()] {
        let mut p = params();
        let reference = fea::solve(&mask, &p).unwrap();
        for k in [1, 17, 333, 4000] {
            p.pins = PinChoice::Offset(k);
            let other = fea::solve(&mask, &p).unwrap();
            for measure in [StressMeasure::MaxPrincipal, StressMeasure::VonMises] {
                let d = relative_difference(&other.measure(measure), &reference.measure(measure));
                assert!(d < 1e-6, "pins at offset {k} changed stress by {d}");
            }
        }
    }
}

#[test]
fn open_wall_is_finite_and_reports_imbalance() {
    let field = fea::solve(&open_wall(), &params()).unwrap();
    assert!(field.load_imbalance > 0.01, "{}", field.load_imbalance);
    assert!(field.sxx.iter().chain(&field.syy).all(|v| v.is_finite()));
    assert!(
        field
            .measure(StressMeasure::VonMises)
            .iter()
            .any(|v| *v > 1.0)
    );
}

#[test]
fn heterogeneous_plaque_concentrates_stress_in_the_cap_over_the_lipid() {
    let size = 128;
    let mask = plaque(size, 0.0);
    let field = fea::solve(&mask, &params()).unwrap();
    let principal = field.measure(StressMeasure::MaxPrincipal);
    let mises = field.measure(StressMeasure::VonMises);
    let mean = |map: &[f32], keep: &dyn Fn(usize, usize) -> bool| {
        let values: Vec<f64> = (0..size * size)
            .filter(|&i| keep(i / size, i % size))
            .map(|i| f64::from(map[i]))
            .collect();
        assert!(!values.is_empty());
        values.iter().sum::<f64>() / values.len() as f64
    };
    // Geometry of `plaque`: lumen centre and radius, lipid on the +x side of the lumen.
    let s = size as f64;
    let (lx, ly, lumen) = (0.42 * s, 0.53 * s, 0.17 * s);
    let polar = |row: usize, col: usize| {
        let (x, y) = (col as f64 + 0.5 - lx, row as f64 + 0.5 - ly);
        (x.hypot(y) - lumen, y.atan2(x).to_degrees())
    };
    let fibrous_band = |row: usize, col: usize, centre: f64| {
        let (depth, angle) = polar(row, col);
        mask.get(row, col) == Tissue::Fibrous
            && depth < 0.03 * s
            && ((angle - centre + 540.0) % 360.0 - 180.0).abs() < 30.0
    };
    let cap = mean(&principal, &|r, c| fibrous_band(r, c, 0.0));
    let opposite = mean(&principal, &|r, c| fibrous_band(r, c, 180.0));
    assert!(
        cap > 1.2 * opposite,
        "cap {cap} kPa vs opposite wall {opposite} kPa"
    );
    // The soft, nearly incompressible lipid is close to hydrostatic: little shear.
    let lipid = mean(&mises, &|r, c| mask.get(r, c) == Tissue::Lipid);
    let fibrous = mean(&mises, &|r, c| mask.get(r, c) == Tissue::Fibrous);
    assert!(lipid < 0.2 * fibrous, "lipid {lipid} vs fibrous {fibrous}");
}

#[test]
fn repeated_pattern_reuses_the_symbolic_factorisation() {
    let mask = plaque(64, 0.0);
    let mut solver = FeaSolver::default();
    let mut p = params();
    let first = solver.solve(&mask, &p).unwrap();
    p.materials = p.materials.scaled(2.0);
    p.pressure_kpa = 16.0;
    let second = solver.solve(&mask, &p).unwrap();
    assert_eq!(solver.cached_patterns(), 1);
    assert!(second.timings.setup_ms < first.timings.setup_ms);
    let fresh = fea::solve(&mask, &p).unwrap();
    assert_eq!(second.sxx, fresh.sxx);
    solver.solve(&plaque(64, 90.0), &p).unwrap();
    assert_eq!(solver.cached_patterns(), 2);
}

fn from_rows(rows: &[&str]) -> LabelMap {
    let width = rows[0].len();
    let values = rows
        .iter()
        .flat_map(|r| r.bytes().map(|b| b - b'0'))
        .collect();
    LabelMap::new(width, rows.len(), values).unwrap()
}

#[test]
fn empty_problems_are_typed_errors() {
    let p = params();
    let no_lumen = from_rows(&["000", "222", "000"]);
    assert_eq!(fea::solve(&no_lumen, &p).unwrap_err(), FeaError::NoLumen);
    let no_solid = from_rows(&["000", "010", "000"]);
    assert_eq!(fea::solve(&no_solid, &p).unwrap_err(), FeaError::NoSolid);
    let apart = from_rows(&["11000", "11000", "00022", "00022"]);
    assert_eq!(fea::solve(&apart, &p).unwrap_err(), FeaError::NoLoadedWall);
    let mut bad = p.clone();
    bad.pressure_kpa = f64::NAN;
    assert!(matches!(
        fea::solve(&apart, &bad),
        Err(FeaError::InvalidLoad(_))
    ));
    let mut bad = p;
    bad.materials.lipid.poisson_ratio = 0.5;
    assert!(matches!(
        fea::solve(&apart, &bad),
        Err(FeaError::InvalidMaterial(_))
    ));
}

#[test]
fn odd_geometries_give_finite_maps() {
    let cases = [
        // Unloaded island: exactly zero stress there.
        from_rows(&[
            "0000000", "0222000", "0212000", "0222000", "0000022", "0000022",
        ]),
        // One-pixel-thin cap between lumen and outside.
        from_rows(&["00000", "02220", "02120", "00000"]),
        // Bodies touching only at a corner (a hinge if treated as one body).
        from_rows(&["00000", "02220", "02120", "02220", "00002"]),
        // Lumen and wall at the image border.
        from_rows(&["112", "112", "222"]),
        // A single solid pixel beside the lumen.
        from_rows(&["12"]),
        // Calcium and lipid in a thin wall.
        from_rows(&["000000", "034420", "041120", "023320", "000000"]),
    ];
    for (i, mask) in cases.iter().enumerate() {
        let field = fea::solve(mask, &params()).unwrap_or_else(|e| panic!("case {i}: {e}"));
        for measure in [StressMeasure::MaxPrincipal, StressMeasure::VonMises] {
            assert!(
                field.measure(measure).iter().all(|v| v.is_finite()),
                "case {i}"
            );
        }
    }
    let island = fea::solve(&cases[0], &params()).unwrap();
    let w = cases[0].width();
    assert_eq!(island.sxx[4 * w + 5], 0.0);
    assert!(island.measure(StressMeasure::VonMises)[w + 1] > 0.0);
}

mod random_maps {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Any label map gives a finite stress map or a typed error, never a panic.
        #[test]
        fn any_label_map_is_finite_or_a_typed_error(
            (width, height, values) in (1usize..14, 1usize..14).prop_flat_map(|(w, h)| {
                (Just(w), Just(h), proptest::collection::vec(0u8..=4, w * h))
            })
        ) {
            let mask = LabelMap::new(width, height, values).unwrap();
            match fea::solve(&mask, &FeaParams::default()) {
                Ok(field) => {
                    prop_assert!(field.sxx.iter().chain(&field.syy).chain(&field.sxy).all(|v| v.is_finite()));
                }
                Err(e) => prop_assert!(matches!(
                    e,
                    FeaError::NoLumen | FeaError::NoSolid | FeaError::NoLoadedWall
                ), "unexpected error {e}"),
            }
        }
    }
}
